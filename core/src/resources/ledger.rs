//! Logical resource accounting, as in Ray: `CPU`, `GPU`, `memory` and custom
//! resources are numbers a task reserves while it runs, not physical limits.
//!
//! Amounts are fixed point (1/10 000 of a unit) so fractional requests add up
//! exactly. The [`Ledger`] keeps what is available in one atomic per resource:
//! acquiring is a compare-and-swap loop per resource asked for, with rollback
//! when a later one does not fit, so the hot path takes no lock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crossbeam_utils::CachePadded;

use crate::error::{Error, PlacementGroupError, Result};
use crate::resources::bundles::{BundleBook, BundleRef, BundleSlot};
use crate::resources::items::Items;

/// Fixed-point scale: one unit of a resource.
pub(crate) const UNIT: i64 = 10_000;

/// Index of the CPU resource.
pub(crate) const CPU: usize = 0;
/// Index of the GPU resource.
pub(crate) const GPU: usize = 1;
/// Index of the memory resource.
pub(crate) const MEMORY: usize = 2;

/// A resource amount a user may ask for or configure: finite and not negative.
pub(crate) fn valid_amount(amount: f64) -> bool {
    amount.is_finite() && amount >= 0.0
}

pub(crate) fn to_fixed(amount: f64) -> i64 {
    (amount * UNIT as f64).round() as i64
}

pub(crate) fn from_fixed(amount: i64) -> f64 {
    amount as f64 / UNIT as f64
}

/// A request: how much of which resources, by index into a [`Ledger`],
/// and the placement-group bundle it is granted from, if any (else the
/// rank's free pool).
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    items: Items,
    bundle: Option<Arc<BundleSlot>>,
}

impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.items == other.items
            && match (&self.bundle, &other.bundle) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for Request {}

/// As [`PartialEq`]: the amounts, and the bundle by identity.
impl std::hash::Hash for Request {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.items[..].hash(state);
        self.bundle.as_ref().map(Arc::as_ptr).hash(state);
    }
}

impl Request {
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bundle it is granted from, if any.
    pub(crate) fn bundle(&self) -> Option<&Arc<BundleSlot>> {
        self.bundle.as_ref()
    }

    /// The GPUs asked for (fixed point).
    pub(crate) fn gpus(&self) -> i64 {
        self.items
            .iter()
            .find(|(i, _)| *i == GPU)
            .map_or(0, |(_, a)| *a)
    }

    /// The part of this request that is CPU (given back while blocked).
    pub(crate) fn cpu_only(&self) -> Request {
        Request {
            items: self
                .items
                .iter()
                .copied()
                .filter(|(i, _)| *i == CPU)
                .collect(),
            bundle: self.bundle.clone(),
        }
    }
}

/// What a rank has, and what is free of it now.
#[derive(Debug)]
pub(crate) struct Ledger {
    names: Vec<String>,
    totals: Vec<i64>,
    /// One line each: workers change them on every task, while submitters
    /// read `names` and `totals` (a shared line would move between their
    /// CPUs twice per task).
    available: Vec<CachePadded<AtomicI64>>,
    /// The placement-group bundles this rank holds.
    pub(crate) bundles: BundleBook,
    /// The request for one CPU alone (a task's default), made once when
    /// the rank has a CPU: ~65 instructions of each submission's
    /// [`request_base`](Self::request_base) less (Task Bench's 2-rank
    /// stencil, `callgrind`).
    one_cpu: Option<Request>,
}

impl Ledger {
    /// A ledger with the given totals; the first three names must be CPU, GPU, memory.
    pub(crate) fn new(totals: Vec<(String, f64)>) -> Self {
        debug_assert_eq!(totals[CPU].0, "CPU");
        debug_assert_eq!(totals[GPU].0, "GPU");
        debug_assert_eq!(totals[MEMORY].0, "memory");
        let (names, amounts): (Vec<_>, Vec<_>) =
            totals.into_iter().map(|(n, a)| (n, to_fixed(a))).unzip();
        let available = amounts
            .iter()
            .map(|a| CachePadded::new(AtomicI64::new(*a)))
            .collect();
        let one_cpu = (to_fixed(1.0) <= amounts[CPU]).then(|| Request {
            items: [(CPU, to_fixed(1.0))].into_iter().collect(),
            bundle: None,
        });
        Ledger {
            names,
            totals: amounts,
            available,
            bundles: BundleBook::default(),
            one_cpu,
        }
    }

    /// The ledger a request is granted from: its bundle's, or this one.
    fn of<'a>(&'a self, req: &'a Request) -> &'a Ledger {
        req.bundle.as_ref().map_or(self, |b| &b.ledger)
    }

    /// Turns named amounts into a request granted from bundle `at` held
    /// here: an error when the bundle is not here or cannot hold them.
    pub(crate) fn request_in(
        &self,
        what: &str,
        asks: &[(&str, f64)],
        at: BundleRef,
    ) -> Result<Request> {
        let Some(slot) = self.bundles.get(at.group, at.index) else {
            return Err(PlacementGroupError::Removed {
                group: at.group,
                reason: format!(
                    "{what}: bundle {} is not held on this rank (removed or re-placed)",
                    at.index
                ),
            }
            .into());
        };
        let mut req = slot.ledger.request(what, asks).map_err(|e| match e {
            Error::Infeasible {
                resource,
                asked,
                total,
                ..
            } => Error::PlacementGroup(PlacementGroupError::DoesNotFit {
                what: what.to_string(),
                group: at.group,
                index: at.index,
                resource,
                asked,
                has: total,
            }),
            other => other,
        })?;
        req.bundle = Some(slot);
        Ok(req)
    }

    /// Step 1 of `bundles`: holds bundle `index` of `group` here, taking
    /// its amounts out of this ledger (past what is free if need be).
    pub(crate) fn hold_bundle(&self, group: u64, index: u32, amounts: &[(String, f64)]) {
        let mut items = Items::default();
        let mut totals: Vec<(String, f64)> = self.names.iter().map(|n| (n.clone(), 0.0)).collect();
        for (name, amount) in amounts {
            if let Some(i) = self.names.iter().position(|n| n == name) {
                items.push((i, to_fixed(*amount)));
                totals[i].1 += amount;
            }
        }
        let held = Request {
            items,
            bundle: None,
        };
        self.force_acquire(&held);
        self.bundles
            .insert(self, group, index, Ledger::new(totals), held);
    }

    /// [`request`](Self::request) of CPUs, GPUs and memory alone (the
    /// first three resources, in that order): what nearly every task asks,
    /// made with no name looked up and no list sorted (on the 2-core VM,
    /// ~380 of the ~2,200 instructions a submission took). An amount that
    /// is invalid or does not fit goes the general way, for its error.
    pub(crate) fn request_base(
        &self,
        what: &str,
        [cpus, gpus, memory]: [f64; 3],
    ) -> Result<Request> {
        if (cpus, gpus, memory) == (1.0, 0.0, 0.0)
            && let Some(one) = &self.one_cpu
        {
            return Ok(one.clone());
        }
        let mut items = Items::default();
        for (i, amount) in [(CPU, cpus), (GPU, gpus), (MEMORY, memory)] {
            if amount == 0.0 {
                continue;
            }
            let fixed = to_fixed(amount);
            let fits = valid_amount(amount)
                && (amount <= 1.0 || amount.fract() == 0.0)
                && fixed <= self.totals[i];
            if !fits {
                let named = [("CPU", cpus), ("GPU", gpus), ("memory", memory)];
                return self.request(what, &named);
            }
            if fixed != 0 {
                // Pushed in index order: sorted as `request` sorts them.
                items.push((i, fixed));
            }
        }
        Ok(Request {
            items,
            bundle: None,
        })
    }

    /// Turns named amounts into a request, or says why no rank could ever run it.
    pub(crate) fn request(&self, what: &str, asks: &[(&str, f64)]) -> Result<Request> {
        let mut items = Items::default();
        for &(name, amount) in asks {
            if !valid_amount(amount) {
                return Err(Error::InvalidArgument(format!(
                    "{what}: resource {name} must be a finite number >= 0, got {amount}"
                )));
            }
            let fixed = to_fixed(amount);
            if fixed == 0 {
                continue;
            }
            if amount > 1.0 && amount.fract() != 0.0 {
                return Err(Error::InvalidArgument(format!(
                    "{what}: {name} = {amount}: amounts above 1 must be whole numbers (as in Ray)"
                )));
            }
            let index = self.names.iter().position(|n| n == name);
            let total = index.map_or(0, |i| self.totals[i]);
            match index {
                Some(i) if fixed <= total => match items.iter_mut().find(|(j, _)| *j == i) {
                    Some(item) => item.1 += fixed,
                    None => items.push((i, fixed)),
                },
                _ => {
                    // This rank's view; the cluster widens it to every
                    // rank's (`Cluster::explain_infeasible`).
                    return Err(Error::Infeasible {
                        what: what.to_string(),
                        resource: name.to_string(),
                        asked: amount,
                        largest: from_fixed(total),
                        largest_rank: 0,
                        total: from_fixed(total),
                        hint: crate::error::more_of(name),
                    });
                }
            }
        }
        items.sort_unstable();
        Ok(Request {
            items,
            bundle: None,
        })
    }

    /// Reserves `req` if all of it is free now.
    pub(crate) fn try_acquire(&self, req: &Request) -> bool {
        if req.bundle.as_ref().is_some_and(|b| b.is_removed()) {
            return false;
        }
        self.of(req).acquire_items(&req.items)
    }

    fn acquire_items(&self, items: &[(usize, i64)]) -> bool {
        for (done, &(i, amount)) in items.iter().enumerate() {
            let slot = &self.available[i];
            // Acquire/Release pair with `release`: a task that sees the amount
            // free also sees everything the task that freed it did before.
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if cur < amount {
                    for &(j, a) in &items[..done] {
                        self.available[j].fetch_add(a, Ordering::Release);
                    }
                    return false;
                }
                match slot.compare_exchange_weak(
                    cur,
                    cur - amount,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        true
    }

    /// Whether `req` would fit now (a hint: it may change at once).
    pub(crate) fn fits_now(&self, req: &Request) -> bool {
        let l = self.of(req);
        req.items
            .iter()
            .all(|&(i, amount)| l.available[i].load(Ordering::Relaxed) >= amount)
    }

    /// Reserves `req` even if that overdraws (a blocked task taking its CPU back).
    pub(crate) fn force_acquire(&self, req: &Request) {
        let l = self.of(req);
        for &(i, amount) in &req.items {
            l.available[i].fetch_sub(amount, Ordering::AcqRel);
        }
    }

    /// Whether a grant of `req` that its holder has finished with may pass
    /// to another task asking the same instead of coming back: not when its
    /// placement group is being removed (a new grant is refused then), nor
    /// when one of its amounts is overdrawn (a task woken from a blocking
    /// `get` took its CPU back over another's grant: giving it back is
    /// what evens the ledger).
    pub(crate) fn may_hand_on(&self, req: &Request) -> bool {
        if req.bundle.as_ref().is_some_and(|b| b.is_removed()) {
            return false;
        }
        let l = self.of(req);
        req.items
            .iter()
            .all(|&(i, _)| l.available[i].load(Ordering::Acquire) >= 0)
    }

    /// Gives `req` back.
    pub(crate) fn release(&self, req: &Request) {
        let l = self.of(req);
        for &(i, amount) in &req.items {
            l.available[i].fetch_add(amount, Ordering::Release);
        }
    }

    /// Whole-rank totals by name (resources with a zero total are left out, as Ray does).
    pub(crate) fn totals(&self) -> BTreeMap<String, f64> {
        self.names
            .iter()
            .zip(&self.totals)
            .filter(|(_, t)| **t > 0)
            .map(|(n, t)| (n.clone(), from_fixed(*t)))
            .collect()
    }

    /// What is free now by name (never below zero).
    pub(crate) fn available(&self) -> BTreeMap<String, f64> {
        self.names
            .iter()
            .zip(self.totals.iter().zip(&self.available))
            .filter(|(_, (t, _))| **t > 0)
            .map(|(n, (_, a))| (n.clone(), from_fixed(a.load(Ordering::Acquire).max(0))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger::new(vec![
            ("CPU".into(), 2.0),
            ("GPU".into(), 0.0),
            ("memory".into(), 1e9),
            ("TPU".into(), 1.0),
        ])
    }

    #[test]
    fn fractional_requests_add_up_exactly() {
        let l = ledger();
        let half = l.request("t", &[("CPU", 0.5)]).unwrap();
        for _ in 0..4 {
            assert!(l.try_acquire(&half));
        }
        assert!(!l.try_acquire(&half));
        l.release(&half);
        assert_eq!(l.available()["CPU"], 0.5);
    }

    #[test]
    fn failed_acquire_rolls_back() {
        let l = ledger();
        let both = l.request("t", &[("CPU", 1.0), ("TPU", 1.0)]).unwrap();
        let tpu = l.request("t", &[("TPU", 1.0)]).unwrap();
        assert!(l.try_acquire(&tpu));
        assert!(!l.try_acquire(&both));
        assert_eq!(l.available()["CPU"], 2.0);
    }

    #[test]
    fn infeasible_names_the_resource() {
        let l = ledger();
        let err = l.request("train", &[("GPU", 1.0)]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("GPU") && msg.contains("train"), "{msg}");
        assert!(l.request("t", &[("CPU", 3.0)]).is_err());
        assert!(l.request("t", &[("CPU", -1.0)]).is_err());
        assert!(l.request("t", &[("CPU", 1.5)]).is_err());
        assert!(l.request("t", &[("CPU", 0.0)]).unwrap().is_empty());
    }

    #[test]
    fn the_base_request_is_the_named_one() {
        // Ranks with room for one CPU (whose request is made once) and
        // without.
        let small = |cpus: f64| {
            Ledger::new(vec![
                ("CPU".into(), cpus),
                ("GPU".into(), 1.0),
                ("memory".into(), 1e9),
            ])
        };
        for l in [ledger(), small(1.0), small(0.5), small(0.0)] {
            the_base_request_is_the_named_one_in(&l);
        }
        assert!(small(1.0).one_cpu.is_some() && small(0.5).one_cpu.is_none());
    }

    fn the_base_request_is_the_named_one_in(l: &Ledger) {
        let amounts = [
            0.0,
            -0.0,
            1e-9,
            0.25,
            1.0,
            1.5,
            2.0,
            3.0,
            1e9,
            2e9,
            -1.0,
            f64::NAN,
        ];
        for cpus in amounts {
            for gpus in [0.0, 0.5, 1.0] {
                for memory in [0.0, 1e9, f64::INFINITY] {
                    let named = [("CPU", cpus), ("GPU", gpus), ("memory", memory)];
                    let general = l.request("t", &named).map_err(|e| e.to_string());
                    let base = l
                        .request_base("t", [cpus, gpus, memory])
                        .map_err(|e| e.to_string());
                    assert_eq!(base, general, "{named:?}");
                }
            }
        }
    }
}
