//! Which GPUs a task or actor gets (Ray's `ray.get_gpu_ids()`).
//!
//! The [`Ledger`](crate::resources::ledger::Ledger) counts GPUs as a number; this pool
//! picks the devices. A whole-GPU request takes that many free devices; a
//! fractional one shares a device with others, best fit (the device with the
//! least room that still fits), as Ray packs fractional GPU requests.

use std::sync::Mutex;

use crate::resources::ledger::UNIT;
use crate::sync::lock;

#[derive(Debug)]
pub(crate) struct GpuPool {
    /// The rank's device ids (CUDA ordinals of this process).
    ids: Vec<u32>,
    /// Free capacity per device, fixed point; index into `ids`.
    free: Mutex<Vec<i64>>,
}

impl GpuPool {
    pub(crate) fn new(ids: Vec<u32>) -> Self {
        GpuPool {
            free: Mutex::new(vec![UNIT; ids.len()]),
            ids,
        }
    }

    fn slot(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|&i| i == id)
    }

    /// Picks devices for `amount` (fixed point); `None` if they are not free.
    pub(crate) fn assign(&self, amount: i64) -> Option<Vec<u32>> {
        if amount <= 0 {
            return Some(Vec::new());
        }
        let mut free = lock(&self.free);
        if amount >= UNIT {
            let want = (amount / UNIT) as usize;
            let slots: Vec<usize> = (0..free.len())
                .filter(|&i| free[i] == UNIT)
                .take(want)
                .collect();
            if slots.len() < want {
                return None;
            }
            for &i in &slots {
                free[i] = 0;
            }
            Some(slots.into_iter().map(|i| self.ids[i]).collect())
        } else {
            let best = (0..free.len())
                .filter(|&i| free[i] >= amount)
                .min_by_key(|&i| free[i])?;
            free[best] -= amount;
            Some(vec![self.ids[best]])
        }
    }

    /// Gives back what [`assign`](Self::assign) returned for `amount`.
    pub(crate) fn release(&self, ids: &[u32], amount: i64) {
        if ids.is_empty() {
            // Most tasks hold no GPU: their release takes no lock.
            return;
        }
        let mut free = lock(&self.free);
        let each = if amount >= UNIT { UNIT } else { amount };
        for &id in ids {
            if let Some(f) = self.slot(id).and_then(|i| free.get_mut(i)) {
                *f = (*f + each).min(UNIT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_ranks_devices() {
        let p = GpuPool::new(vec![2, 3]);
        assert_eq!(p.assign(UNIT), Some(vec![2]));
        assert_eq!(p.assign(UNIT), Some(vec![3]));
        assert_eq!(p.assign(UNIT / 2), None);
        p.release(&[3], UNIT);
        assert_eq!(p.assign(UNIT / 2), Some(vec![3]));
    }

    #[test]
    fn whole_requests_take_distinct_devices() {
        let p = GpuPool::new(vec![0, 1, 2]);
        assert_eq!(p.assign(2 * UNIT), Some(vec![0, 1]));
        assert_eq!(p.assign(2 * UNIT), None);
        assert_eq!(p.assign(UNIT), Some(vec![2]));
        p.release(&[0, 1], 2 * UNIT);
        assert_eq!(p.assign(UNIT), Some(vec![0]));
    }

    #[test]
    fn fractional_requests_pack_best_fit() {
        let p = GpuPool::new(vec![0, 1]);
        assert_eq!(p.assign(UNIT / 2), Some(vec![0]));
        assert_eq!(p.assign(UNIT / 4), Some(vec![0]));
        assert_eq!(p.assign(UNIT / 2), Some(vec![1]));
        assert_eq!(p.assign(UNIT / 4), Some(vec![0]));
        assert_eq!(p.assign(UNIT), None);
        p.release(&[1], UNIT / 2);
        assert_eq!(p.assign(UNIT), Some(vec![1]));
    }
}
