//! The object API of [`Runtime`]: `put`, `get`, `wait`, and the resources
//! a rank and the cluster have.

use crate::error::{Error, Result};
use crate::object::cell::{Bytes, Slot, StoredValue, Waiter};
use crate::object::object_ref::ObjectRef;
use crate::object::view::View;
use crate::runtime::{Runtime, WaitResult};
use crate::signal::{self, Signal};
use crate::task::context;
use crate::values::Object;
use ferry_store::PodElement;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a `get` or `wait` spins in all while its rank's workers run
/// tasks and leave it a core (the configured spin when longer; none when
/// spinning is off). A driver pacing a chain of small tasks waits a few
/// hundred microseconds at a time: parked, each wait ended with a wake-up
/// the worker paid for and the driver slept through (on the 2-core VM,
/// Task Bench's stencil on one rank, `-iter 128`: 1.54 -> 1.51 µs a task
/// over 50,000 steps, 1.75 -> 1.61 µs over 1,000, medians).
const BUSY_SPIN: Duration = Duration::from_millis(1);

impl Runtime {
    fn check_live(&self) -> Result<()> {
        if self.inner.is_shut() {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Stores a value and returns a ref to it (Ray's `ray.put`). The value is
    /// serialized straight into shared memory: one copy of its bytes.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&vec![1.5f64, 2.5])?;
    /// assert_eq!(rt.get(&r)?.as_slice(), &[1.5, 2.5]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put<T: Object>(&self, value: &T) -> Result<ObjectRef<T>> {
        self.check_live()?;
        let stored = self.inner.store.store_value(value)?;
        Ok(ObjectRef::from_slot(Slot::ready(
            self.inner.store.ids.object(),
            stored,
        )))
    }

    /// Builds a `Vec<P>` of `len` numbers directly in shared memory: `fill`
    /// writes the elements in place, so nothing is copied at all.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put_vec_with::<f64>(4, |xs| {
    ///     for (i, x) in xs.iter_mut().enumerate() { *x = i as f64; }
    /// })?;
    /// assert_eq!(rt.get(&r)?.as_slice(), &[0.0, 1.0, 2.0, 3.0]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put_vec_with<P>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [P]),
    ) -> Result<ObjectRef<Vec<P>>>
    where
        P: PodElement,
        Vec<P>: Object,
    {
        self.check_live()?;
        let block = ferry_store::put_pod_slice_with::<P>(&self.inner.store.arena, len, fill)?;
        Ok(self.pod_vec_ref(block))
    }

    /// The ref of a sealed block holding a `Vec<P>` built in place (valid by
    /// construction).
    fn pod_vec_ref<P>(&self, block: ferry_store::Block) -> ObjectRef<Vec<P>>
    where
        P: PodElement,
        Vec<P>: Object,
    {
        let stored = StoredValue::written::<Vec<P>>(
            Bytes::Own(self.inner.store.arena.seal(block)),
            Vec::new(),
        );
        ObjectRef::from_slot(Slot::ready(self.inner.store.ids.object(), stored))
    }

    /// Puts a whole file into the store as a `Vec<u8>`, read from disk
    /// straight into shared memory (io_uring, several reads in flight; `pread`
    /// where io_uring is not allowed), with no buffer in between: a dataset
    /// or a checkpoint becomes an object every task can view.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the file cannot be opened,
    /// [`Error::Store`] when the store cannot hold it or a read fails.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("ferry-doc-put-file-{}", std::process::id()));
    /// std::fs::write(&path, b"a checkpoint")?;
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0).object_store_memory(16 << 20))?;
    /// let r = rt.put_file(&path)?;
    /// assert_eq!(rt.get(&r)?.as_slice(), b"a checkpoint");
    /// # std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn put_file(&self, path: impl AsRef<std::path::Path>) -> Result<ObjectRef<Vec<u8>>> {
        let path = path.as_ref();
        let len = std::fs::metadata(path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?
            .len();
        self.put_file_range(path, 0, len)
    }

    /// Puts `len` bytes of a file, from byte `offset` on, into the store as a
    /// `Vec<u8>` (as [`put_file`](Self::put_file) does for a whole file).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the file cannot be opened or the range
    /// goes past its end, [`Error::Store`] when the store cannot hold it or
    /// a read fails.
    pub fn put_file_range(
        &self,
        path: impl AsRef<std::path::Path>,
        offset: u64,
        len: u64,
    ) -> Result<ObjectRef<Vec<u8>>> {
        self.check_live()?;
        let path = path.as_ref();
        let bad =
            |why: String| Error::InvalidArgument(format!("cannot read {}: {why}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let size = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        let end = offset
            .checked_add(len)
            .filter(|&end| end <= size)
            .ok_or_else(|| {
                bad(format!(
                    "bytes {offset}..{} asked for, the file has {size}",
                    offset.saturating_add(len)
                ))
            })?;
        debug_assert!(end <= size);
        let len =
            usize::try_from(len).map_err(|_| bad(format!("{len} bytes do not fit in memory")))?;
        let block =
            ferry_store::try_put_pod_slice_with::<u8>(&self.inner.store.arena, len, |dst| {
                ferry_store::read_exact_at(&file, offset, dst)
                    .map(|_| ())
                    .map_err(|source| ferry_store::StoreError::Io {
                        path: path.to_path_buf(),
                        source,
                    })
            })?;
        Ok(self.pod_vec_ref(block))
    }

    /// Stores bytes that claim to be an rkyv archive of a `T` (read from a
    /// file, received from elsewhere). They are validated at the first `get`:
    /// bytes that are not a valid archive give [`Error::Corrupt`], never
    /// undefined behaviour.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put_archive::<Vec<u64>>(&[0xff; 16])?;
    /// assert!(matches!(rt.get(&r), Err(ferry_core::Error::Corrupt { .. })));
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn put_archive<T: Object>(&self, bytes: &[u8]) -> Result<ObjectRef<T>> {
        self.check_live()?;
        let sealed = self.inner.store.arena.seal_copy(bytes)?;
        let stored = StoredValue::unchecked::<T>(Bytes::Own(sealed));
        Ok(ObjectRef::from_slot(Slot::ready(
            self.inner.store.ids.object(),
            stored,
        )))
    }

    /// Waits for the object and returns a zero-copy view of it (Ray's
    /// `ray.get`). A failed task's error comes back here.
    ///
    /// While it waits inside a task, the task's CPUs go back to the pool; if
    /// the producing task has not started, the caller runs it itself.
    pub fn get<T: Object>(&self, r: &ObjectRef<T>) -> Result<View<T>> {
        self.wait_slot(&r.slot, None)?;
        View::of(r.slot.clone())
    }

    /// [`get`](Self::get), the ref given up for the view (a task's argument).
    pub(crate) fn get_owned<T: Object>(&self, r: ObjectRef<T>) -> Result<View<T>> {
        self.wait_slot(&r.slot, None)?;
        View::of(r.slot)
    }

    /// [`get`](Self::get) with a timeout: [`Error::Timeout`] when it passes.
    /// A timeout too long to be a deadline ([`Duration::MAX`]) is no
    /// timeout: as `get`.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let r = rt.put(&1u8)?;
    /// assert_eq!(*rt.get_timeout(&r, std::time::Duration::from_secs(1))?, 1);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn get_timeout<T: Object>(&self, r: &ObjectRef<T>, timeout: Duration) -> Result<View<T>> {
        self.wait_slot(&r.slot, crate::config::deadline_after(timeout))
            .map_err(|_| Error::Timeout(timeout))?;
        View::of(r.slot.clone())
    }

    /// Gets every object, in order; the first error is returned.
    pub fn get_all<T: Object>(&self, refs: &[ObjectRef<T>]) -> Result<Vec<View<T>>> {
        refs.iter().map(|r| self.get(r)).collect()
    }

    /// Gets and deserializes an owned copy (for small values; `get` is zero-copy).
    pub fn get_value<T: crate::values::Remotable>(&self, r: &ObjectRef<T>) -> Result<T> {
        self.get(r)?.deserialize()
    }

    fn wait_slot(&self, slot: &Arc<Slot>, deadline: Option<Instant>) -> Result<()> {
        if slot.is_ready() {
            return Ok(());
        }
        slot.start_fetch();
        // Run the producer here rather than sleep, unless a deadline forbids
        // starting work of unknown length.
        if deadline.is_none()
            && let Some(p) = slot.producer()
            && p.run_inline()
            && slot.is_ready()
        {
            return Ok(());
        }
        if signal::spin_while_busy(
            self.spin_budget(deadline),
            self.busy_spin(deadline),
            self.inner.pool.sched.first_pauses(),
            || self.inner.pool.sched.busy_with_a_core_free(),
            || {
                self.poll_wire();
                slot.is_ready()
            },
        ) {
            return Ok(());
        }
        self.inner.pool.sched.poll_before_sleep();
        let sig = Signal::for_current();
        if !slot.add_waiter(Waiter::Thread(sig.clone())) {
            return Ok(());
        }
        let ok = self.blocking(|| signal::park_until(deadline, || slot.is_ready()));
        if ok {
            Ok(())
        } else {
            Err(Error::Timeout(Duration::ZERO))
        }
    }

    /// While a getter spins, it receives what arrives itself: its reply
    /// reaches it with no thread in between.
    fn poll_wire(&self) {
        if let Some(c) = &self.inner.cluster {
            c.transport.poll();
        }
    }

    /// How long a wait may spin while the rank's workers are busy and leave
    /// it a core (see `signal::spin_while_busy`), before its deadline.
    fn busy_spin(&self, deadline: Option<Instant>) -> Duration {
        let most = if self.inner.spin.is_zero() {
            Duration::ZERO
        } else {
            BUSY_SPIN.max(self.inner.spin)
        };
        match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(most),
            None => most,
        }
    }

    fn spin_budget(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(self.inner.spin),
            None => self.inner.spin,
        }
    }

    /// Runs a blocking wait; inside a task, its CPUs go back to the pool meanwhile.
    pub(crate) fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        let cpus = context::current_task()
            .filter(|c| c.is_task)
            .map(|c| c.held.cpu_only());
        // What finished tasks left goes back to this thread's allocator
        // before it sleeps: a worker blocked inside a task hands over the
        // batch it was collecting and drops everything waiting (it would
        // hold it for the whole wait, however long, while other workers
        // may stay busy); another thread drops all but the latest remains
        // on a rank of several CPUs (see `task::leftovers::HELD`). What
        // they leave while it sleeps waits for its next submissions, one
        // task's remains each, or for a worker that found no work (see
        // `task::leftovers`): dropped all at once on waking, they
        // overflowed its malloc cache, and the submissions after found it
        // empty.
        self.inner.pool.hand_over_remains();
        if cpus.is_some() {
            self.inner.pool.leftovers.drain_all();
        } else {
            self.inner.pool.leftovers.drain_unheld();
        }
        if let Some(cpus) = &cpus {
            self.inner.pool.block_begin(cpus);
        }
        let r = f();
        if let Some(cpus) = &cpus {
            self.inner.pool.block_end(cpus);
        }
        r
    }

    /// Waits until `num_returns` of `refs` are ready or `timeout` passes (Ray's
    /// `ray.wait`). Returns `(ready, not_ready)`, both in the order of `refs`;
    /// `ready` holds at most `num_returns` refs. Pass the refs by value
    /// (`rt.wait(not_ready, 1, None)`, as Ray code does) to move them into the
    /// result without touching their reference counts, or borrow them
    /// (`rt.wait(&refs, …)`) to keep yours. `Some(Duration::MAX)` waits as
    /// `None` does.
    ///
    /// ```
    /// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
    /// let refs = vec![rt.put(&1u32)?, rt.put(&2u32)?];
    /// let (ready, rest) = rt.wait(&refs, 1, None)?;
    /// assert_eq!((ready.len(), rest.len()), (1, 1));
    /// assert_eq!(ready[0], refs[0]);
    /// # Ok::<(), ferry_core::Error>(())
    /// ```
    pub fn wait<'a, T: 'a>(
        &self,
        refs: impl Into<Cow<'a, [ObjectRef<T>]>>,
        num_returns: usize,
        timeout: Option<Duration>,
    ) -> Result<WaitResult<T>> {
        let refs: Cow<'a, [ObjectRef<T>]> = refs.into();
        if num_returns > refs.len() {
            return Err(Error::InvalidArgument(format!(
                "wait: num_returns ({num_returns}) is more than the {} refs given",
                refs.len()
            )));
        }
        if let Some(dup) = first_duplicate(&refs) {
            return Err(Error::InvalidArgument(format!(
                "wait: {dup} is given twice"
            )));
        }
        // A timeout too long to be a deadline (`Duration::MAX`) is none.
        let deadline = timeout.and_then(crate::config::deadline_after);
        let enough = || {
            refs.iter()
                .filter(|r| r.is_ready())
                .take(num_returns)
                .count()
                >= num_returns
        };
        if !signal::spin_while_busy(
            self.spin_budget(deadline),
            self.busy_spin(deadline),
            self.inner.pool.sched.first_pauses(),
            || self.inner.pool.sched.busy_with_a_core_free(),
            || {
                self.poll_wire();
                enough()
            },
        ) {
            self.inner.pool.sched.poll_before_sleep();
            let sig = Signal::for_current();
            for r in refs.iter() {
                r.slot.add_waiter(Waiter::Thread(sig.clone()));
            }
            self.blocking(|| signal::park_until(deadline, enough));
        }
        let mut ready = Vec::with_capacity(num_returns);
        let mut not_ready = Vec::with_capacity(refs.len());
        let mut split = |r: ObjectRef<T>| {
            if ready.len() < num_returns && r.is_ready() {
                ready.push(r);
            } else {
                not_ready.push(r);
            }
        };
        // Refs given by value move into the result; borrowed ones are cloned.
        match refs {
            Cow::Owned(v) => v.into_iter().for_each(&mut split),
            Cow::Borrowed(s) => s.iter().cloned().for_each(&mut split),
        }
        Ok((ready, not_ready))
    }

    /// Every resource of the cluster and its total (Ray's `ray.cluster_resources()`),
    /// including `object_store_memory` in bytes: summed over all ranks.
    pub fn cluster_resources(&self) -> BTreeMap<String, f64> {
        if let Some(c) = self.inner.cluster() {
            return c.cluster_totals();
        }
        let mut m = self.inner.pool.ledger.totals();
        m.insert(
            "object_store_memory".into(),
            self.inner.store.arena.capacity() as f64,
        );
        m
    }

    /// What is free now (Ray's `ray.available_resources()`): this rank's
    /// free resources plus, on several ranks, the others' as this rank sees
    /// them (their totals less the tasks it has running there).
    pub fn available_resources(&self) -> BTreeMap<String, f64> {
        let mut m = self.inner.pool.ledger.available();
        m.insert(
            "object_store_memory".into(),
            (self.inner.store.arena.capacity() - self.inner.store.arena.used()) as f64,
        );
        if let Some(c) = self.inner.cluster() {
            for (k, v) in c.others_available() {
                *m.entry(k).or_insert(0.0) += v;
            }
        }
        m
    }
}

/// The first id that appears twice in `refs`. Refs in submission order (the
/// usual case, and what `wait` hands back as `not_ready`) have increasing
/// ids, which one pass confirms; other orders are checked with a hash set.
fn first_duplicate<T>(refs: &[ObjectRef<T>]) -> Option<crate::ids::ObjectId> {
    if refs.windows(2).all(|w| w[0].id() < w[1].id()) {
        return None;
    }
    let mut seen = HashSet::with_capacity(refs.len());
    refs.iter().map(ObjectRef::id).find(|id| !seen.insert(*id))
}
