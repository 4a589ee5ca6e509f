//! [`ActorPool`]: calls spread over a fixed set of actors of one class
//! (Ray's `ray.util.ActorPool`).
//!
//! # How a submission travels
//!
//! 1. [`submit`](ActorPool::submit) queues the value with the closure that
//!    calls an actor on it.
//! 2. While an actor is idle and a submission is queued, the first queued
//!    submission goes to the actor idle the longest: the closure runs there
//!    and then, and the ref it returns (or its error) is kept under the
//!    submission's number. Numbers follow submission order, since the
//!    queue is first in, first out.
//! 3. [`get_next`](ActorPool::get_next) waits (with [`Runtime::wait`]) for
//!    the lowest number still held, [`get_next_unordered`](ActorPool::get_next_unordered)
//!    for whichever call is done first. The result is taken out, its actor
//!    goes back to the idle ones (after a failed call too) and step 2 runs
//!    again.
//!
//! As in Ray, an actor is busy from the call it is given until that call's
//! result is collected: a pool of `n` actors has at most `n` calls in
//! flight.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::object::object_ref::ObjectRef;
use crate::object::view::View;
use crate::runtime::Runtime;
use crate::runtime::actor_handle::{ActorClass, ActorHandle};
use crate::values::Object;

/// A queued submission: the user's closure with its value.
type Job<A, R> = Box<dyn FnOnce(&ActorHandle<A>) -> Result<ObjectRef<R>> + Send>;

/// A submission given to an actor, until its result is collected.
enum InFlight<A: ActorClass, R: Object> {
    /// The call was made; its actor is busy until the result is collected.
    Call {
        r: ObjectRef<R>,
        actor: ActorHandle<A>,
    },
    /// The result, its actor already idle again: the closure failed before
    /// making a call, or a `map` needed the actor while the result was not
    /// yet collected.
    Finished(Result<View<R>>),
}

/// A pool of actors of one class that calls are spread over (Ray's
/// `ray.util.ActorPool`): [`submit`](Self::submit) a value with a closure
/// that calls an actor on it; the pool gives it to an idle actor, or queues
/// it until one is free; [`get_next`](Self::get_next) returns the results in
/// submission order, [`get_next_unordered`](Self::get_next_unordered) as
/// they finish; [`map`](Self::map) and [`map_unordered`](Self::map_unordered)
/// do it for a whole sequence of values.
///
/// The closure is the Rust form of Ray's `lambda a, v: a.method.remote(v)`:
/// `|a, v| a.method(v).remote()`. A call that fails (the method panicked or
/// returned `Err`, the actor died) gives its error as its result, and its
/// actor goes back to the pool, as in Ray (so a dead actor stays in the
/// pool and fails the calls it is given, as in Ray).
///
/// An example with actors, from Ray's documentation, is on the `ferry`
/// crate's `ActorPool`; the pool itself needs only handles:
///
/// ```
/// use ferry_core::{ActorClass, ActorHandle, ActorPool, ObjectRef, Result};
///
/// /// Calls `call` on every value of `0..10` over the actors, in order.
/// fn over_actors<A: ActorClass>(
///     actors: Vec<ActorHandle<A>>,
///     call: impl FnMut(&ActorHandle<A>, u64) -> Result<ObjectRef<u64>>,
/// ) -> Result<Vec<u64>> {
///     let mut pool = ActorPool::new(actors);
///     pool.map(call, 0..10).map(|r| r.map(|v| v.to_native())).collect()
/// }
/// ```
///
/// # Differences from Ray
///
/// - A pool holds actors of one class and its calls return one type `R`,
///   so results come back typed, as zero-copy [`View`]s.
/// - `submit` never fails: an error of the closure itself (the runtime has
///   shut down, an argument could not be sent) becomes that submission's
///   result, in its turn.
/// - With nothing pending, `get_next` returns [`ActorPoolError::Empty`]
///   where Ray raises `StopIteration`; past the timeout of
///   [`get_next_timeout`](Self::get_next_timeout) it returns
///   [`ActorPoolError::Timeout`] and the call stays pending, as in Ray (there
///   is no `ignore_if_timedout`). Submissions queued in a pool that has no
///   actor left give [`ActorPoolError::NoActor`] rather than waiting forever.
/// - `get_next` may follow `get_next_unordered` (Ray raises `ValueError`):
///   it returns the earliest submission not yet returned.
/// - `map` and `map_unordered` return only their own values' results and
///   take values from the iterator as actors become free. Submissions made
///   before them stay in the pool for `get_next` (Ray's `map` drops them);
///   submissions still queued go to actors before the map's values do.
///   Dropping the iterator early leaves its calls in flight for `get_next`.
/// - `push` of an actor already in the pool gives it back in
///   [`AlreadyInPool`] (Ray raises `ValueError`).
/// - An idle actor that is given a call is the one idle the longest (Ray
///   takes the one that became idle last); `pop_idle` takes the one that
///   became idle last, as Ray does.
pub struct ActorPool<A: ActorClass, R: Object> {
    /// Actors with no call, longest idle first.
    idle: VecDeque<ActorHandle<A>>,
    /// Submissions given to an actor, by number.
    in_flight: BTreeMap<u64, InFlight<A, R>>,
    /// Submissions waiting for an actor. Empty whenever `idle` is not.
    queued: VecDeque<Job<A, R>>,
    /// The next submission's number.
    next: u64,
}

/// Why [`ActorPool::get_next`] and its variants returned no result.
///
/// It converts into an [`Error`], so `?` works in a function returning
/// [`Result`]:
///
/// ```
/// use ferry_core::{ActorPoolError, Error};
/// use std::time::Duration;
///
/// let t = Duration::from_millis(5);
/// assert!(matches!(Error::from(ActorPoolError::Timeout(t)), Error::Timeout(d) if d == t));
/// assert!(matches!(Error::from(ActorPoolError::Empty), Error::InvalidArgument(_)));
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorPoolError {
    /// Nothing was submitted that has not been returned (Ray's
    /// `StopIteration`).
    #[error("the actor pool has no pending results")]
    Empty,
    /// Submissions are queued but the pool has no actor to run them (it was
    /// made with none, or [`pop_idle`](ActorPool::pop_idle) took them all):
    /// [`push`](ActorPool::push) one.
    #[error("the actor pool has {queued} queued submissions and no actor to run them")]
    NoActor {
        /// How many submissions are queued.
        queued: usize,
    },
    /// No result was ready within the timeout; the calls stay pending.
    #[error("timed out after {0:?} waiting for a result of the actor pool")]
    Timeout(Duration),
    /// The call failed (its error, as `get` gives it), or the closure
    /// failed before making one. The submission is consumed and its actor
    /// is back in the pool.
    #[error("{0}")]
    Call(Error),
}

impl From<ActorPoolError> for Error {
    /// The call's own error, [`Error::Timeout`] for a timeout, and
    /// [`Error::InvalidArgument`] for asking an empty pool or one without
    /// actors, so that `?` works in a function returning [`Result`].
    fn from(e: ActorPoolError) -> Error {
        match e {
            ActorPoolError::Call(e) => e,
            ActorPoolError::Timeout(d) => Error::Timeout(d),
            other => Error::InvalidArgument(other.to_string()),
        }
    }
}

/// [`ActorPool::push`] was given an actor the pool already has; the handle
/// comes back.
pub struct AlreadyInPool<A: ActorClass>(pub ActorHandle<A>);

impl<A: ActorClass> AlreadyInPool<A> {
    /// The handle that was pushed.
    pub fn into_inner(self) -> ActorHandle<A> {
        self.0
    }
}

impl<A: ActorClass> fmt::Debug for AlreadyInPool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AlreadyInPool").field(&self.0).finish()
    }
}

impl<A: ActorClass> fmt::Display for AlreadyInPool<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "actor {} is already in the pool", self.0.id())
    }
}

impl<A: ActorClass> std::error::Error for AlreadyInPool<A> {}

impl<A: ActorClass, R: Object> ActorPool<A, R> {
    /// A pool over `actors`, all idle.
    pub fn new(actors: impl IntoIterator<Item = ActorHandle<A>>) -> Self {
        ActorPool {
            idle: actors.into_iter().collect(),
            in_flight: BTreeMap::new(),
            queued: VecDeque::new(),
            next: 0,
        }
    }

    /// Calls `f(actor, value)` on an idle actor now, or queues it for the
    /// first actor to become free when none is idle (Ray's `submit`); an
    /// actor becomes free when the result of its call is collected. `f`
    /// makes the call and returns its ref: `|a, v| a.method(v).remote()`.
    /// The result comes back from `get_next` or `get_next_unordered`; an
    /// error of `f` itself comes back there too.
    pub fn submit<V, F>(&mut self, f: F, value: V)
    where
        F: FnOnce(&ActorHandle<A>, V) -> Result<ObjectRef<R>> + Send + 'static,
        V: Send + 'static,
    {
        if self.queued.is_empty()
            && let Some(actor) = self.idle.pop_front()
        {
            self.start(actor, |a| f(a, value));
        } else {
            self.queued.push_back(Box::new(move |a| f(a, value)));
        }
    }

    /// Whether a result is still to be returned (submitted, queued or
    /// done but not yet collected).
    pub fn has_next(&self) -> bool {
        !self.in_flight.is_empty() || !self.queued.is_empty()
    }

    /// Whether an actor is idle, so that a submission would start now.
    pub fn has_free(&self) -> bool {
        !self.idle.is_empty() && self.queued.is_empty()
    }

    /// Takes an idle actor out of the pool (the one that became idle last);
    /// `None` when every actor is busy.
    pub fn pop_idle(&mut self) -> Option<ActorHandle<A>> {
        if self.has_free() {
            self.idle.pop_back()
        } else {
            None
        }
    }

    /// Adds an actor to the pool; a queued submission starts on it at once.
    ///
    /// # Errors
    ///
    /// [`AlreadyInPool`], with the handle, when the pool already has this
    /// actor (idle or busy).
    pub fn push(&mut self, actor: ActorHandle<A>) -> std::result::Result<(), AlreadyInPool<A>> {
        let id = actor.id();
        let busy = self
            .in_flight
            .values()
            .any(|e| matches!(e, InFlight::Call { actor: a, .. } if a.id() == id));
        if busy || self.idle.iter().any(|a| a.id() == id) {
            return Err(AlreadyInPool(actor));
        }
        self.idle.push_back(actor);
        self.dispatch();
        Ok(())
    }

    /// The result of the earliest submission not yet returned, waiting for
    /// it (Ray's `get_next()`).
    ///
    /// # Errors
    ///
    /// [`ActorPoolError::Call`] when the call failed; [`ActorPoolError::Empty`]
    /// when nothing is pending; [`ActorPoolError::NoActor`] when the pool
    /// has submissions but no actor.
    pub fn get_next(&mut self) -> std::result::Result<View<R>, ActorPoolError> {
        self.next_in_order(None)
    }

    /// [`get_next`](Self::get_next), giving up after `timeout` with
    /// [`ActorPoolError::Timeout`]; the call stays pending (Ray's
    /// `get_next(timeout=…)`).
    ///
    /// # Errors
    ///
    /// As [`get_next`](Self::get_next), and [`ActorPoolError::Timeout`].
    pub fn get_next_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<View<R>, ActorPoolError> {
        self.next_in_order(Some(timeout))
    }

    /// The result of whichever pending call is done first, waiting for one
    /// (Ray's `get_next_unordered()`).
    ///
    /// # Errors
    ///
    /// As [`get_next`](Self::get_next).
    pub fn get_next_unordered(&mut self) -> std::result::Result<View<R>, ActorPoolError> {
        self.next_any(None)
    }

    /// [`get_next_unordered`](Self::get_next_unordered), giving up after
    /// `timeout` with [`ActorPoolError::Timeout`]; the calls stay pending.
    ///
    /// # Errors
    ///
    /// As [`get_next`](Self::get_next), and [`ActorPoolError::Timeout`].
    pub fn get_next_unordered_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<View<R>, ActorPoolError> {
        self.next_any(Some(timeout))
    }

    /// Calls `f(actor, value)` for every value, spread over the pool's
    /// actors, and returns the results in the order of the values (Ray's
    /// `map`). Values are taken from `values` as actors become free; a
    /// failed call is an `Err` item and the next items follow.
    pub fn map<'p, V, F, I>(
        &'p mut self,
        f: F,
        values: I,
    ) -> impl Iterator<Item = Result<View<R>>> + 'p
    where
        F: FnMut(&ActorHandle<A>, V) -> Result<ObjectRef<R>> + 'p,
        I: IntoIterator<Item = V>,
        I::IntoIter: 'p,
    {
        Mapped::new(self, f, values.into_iter(), true)
    }

    /// [`map`](Self::map), returning each result as soon as its call is done
    /// (Ray's `map_unordered`).
    pub fn map_unordered<'p, V, F, I>(
        &'p mut self,
        f: F,
        values: I,
    ) -> impl Iterator<Item = Result<View<R>>> + 'p
    where
        F: FnMut(&ActorHandle<A>, V) -> Result<ObjectRef<R>> + 'p,
        I: IntoIterator<Item = V>,
        I::IntoIter: 'p,
    {
        Mapped::new(self, f, values.into_iter(), false)
    }

    /// Gives `actor` the call `call` makes, under the next number.
    fn start(
        &mut self,
        actor: ActorHandle<A>,
        call: impl FnOnce(&ActorHandle<A>) -> Result<ObjectRef<R>>,
    ) -> u64 {
        let n = self.next;
        self.next += 1;
        let entry = match call(&actor) {
            Ok(r) => InFlight::Call { r, actor },
            Err(e) => {
                self.idle.push_back(actor);
                InFlight::Finished(Err(e))
            }
        };
        self.in_flight.insert(n, entry);
        n
    }

    /// Starts queued submissions on idle actors, first come first served.
    fn dispatch(&mut self) {
        while let Some(actor) = self.idle.pop_front() {
            match self.queued.pop_front() {
                Some(job) => {
                    self.start(actor, job);
                }
                None => {
                    self.idle.push_front(actor);
                    return;
                }
            }
        }
    }

    /// Fails when nothing is pending, or nothing can ever run.
    fn check_pending(&self) -> std::result::Result<(), ActorPoolError> {
        if !self.in_flight.is_empty() {
            Ok(())
        } else if self.queued.is_empty() {
            Err(ActorPoolError::Empty)
        } else {
            // Nothing in flight holds an actor and none is idle (or a
            // queued submission would have started): the pool has none.
            Err(ActorPoolError::NoActor {
                queued: self.queued.len(),
            })
        }
    }

    fn next_in_order(
        &mut self,
        timeout: Option<Duration>,
    ) -> std::result::Result<View<R>, ActorPoolError> {
        self.check_pending()?;
        match self.in_flight.keys().next() {
            Some(&n) => self.collect_first(&[n], timeout),
            None => Err(ActorPoolError::Empty),
        }
    }

    fn next_any(
        &mut self,
        timeout: Option<Duration>,
    ) -> std::result::Result<View<R>, ActorPoolError> {
        self.check_pending()?;
        let all: Vec<u64> = self.in_flight.keys().copied().collect();
        self.collect_first(&all, timeout)
    }

    /// Waits for the first of `numbers` to be done and takes its result.
    fn collect_first(
        &mut self,
        numbers: &[u64],
        timeout: Option<Duration>,
    ) -> std::result::Result<View<R>, ActorPoolError> {
        match self.first_done(numbers, timeout) {
            Ok(Some(n)) => self.take(n).map_err(ActorPoolError::Call),
            Ok(None) => Err(ActorPoolError::Timeout(timeout.unwrap_or(Duration::MAX))),
            Err(e) => Err(ActorPoolError::Call(e)),
        }
    }

    /// The first of `numbers` (submissions in flight) to be done, waiting
    /// for one with [`Runtime::wait`]; `None` when `timeout` passes first.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] when the runtime the actors' handles belong to
    /// is gone.
    fn first_done(&self, numbers: &[u64], timeout: Option<Duration>) -> Result<Option<u64>> {
        let mut refs: Vec<ObjectRef<R>> = Vec::with_capacity(numbers.len());
        let mut rt: Option<Runtime> = None;
        for n in numbers {
            match self.in_flight.get(n) {
                Some(InFlight::Finished(_)) => return Ok(Some(*n)),
                Some(InFlight::Call { r, actor }) => {
                    if rt.is_none() {
                        rt = actor.actor_ref().runtime();
                    }
                    // `wait` refuses a ref given twice (a closure may
                    // return the same ref for two submissions).
                    if !refs.contains(r) {
                        refs.push(r.clone());
                    }
                }
                None => {}
            }
        }
        if refs.is_empty() {
            return Ok(None);
        }
        let rt = rt.ok_or(Error::Shutdown)?;
        let (ready, _) = rt.wait(refs, 1, timeout)?;
        Ok(ready.first().and_then(|done| {
            numbers.iter().copied().find(
                |n| matches!(self.in_flight.get(n), Some(InFlight::Call { r, .. }) if r == done),
            )
        }))
    }

    /// Takes out the result of submission `n`, which is done; its actor
    /// goes back to the idle ones and queued submissions start.
    fn take(&mut self, n: u64) -> Result<View<R>> {
        match self.in_flight.remove(&n) {
            Some(InFlight::Call { r, actor }) => {
                let result = match actor.actor_ref().runtime() {
                    Some(rt) => rt.get(&r),
                    None => Err(Error::Shutdown),
                };
                self.idle.push_back(actor);
                self.dispatch();
                result
            }
            Some(InFlight::Finished(result)) => result,
            None => Err(Error::InvalidArgument(format!(
                "the actor pool holds no submission {n}"
            ))),
        }
    }

    /// Frees the actor of submission `n`, which is done, keeping its result
    /// for `get_next`.
    fn settle(&mut self, n: u64) {
        if matches!(self.in_flight.get(&n), Some(InFlight::Call { .. })) {
            let result = self.take(n);
            self.in_flight.insert(n, InFlight::Finished(result));
        }
    }
}

impl<A: ActorClass, R: Object> fmt::Debug for ActorPool<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorPool")
            .field("idle", &self.idle)
            .field("in_flight", &self.in_flight.len())
            .field("queued", &self.queued.len())
            .finish()
    }
}

/// The iterator of [`ActorPool::map`] and [`ActorPool::map_unordered`].
struct Mapped<'p, A: ActorClass, R: Object, F, I> {
    pool: &'p mut ActorPool<A, R>,
    f: F,
    values: I,
    /// Whether values remain in `values`.
    more: bool,
    /// This map's submissions not yet returned, in order.
    mine: VecDeque<u64>,
    ordered: bool,
}

impl<'p, A, R, V, F, I> Mapped<'p, A, R, F, I>
where
    A: ActorClass,
    R: Object,
    F: FnMut(&ActorHandle<A>, V) -> Result<ObjectRef<R>>,
    I: Iterator<Item = V>,
{
    fn new(pool: &'p mut ActorPool<A, R>, f: F, values: I, ordered: bool) -> Self {
        Mapped {
            pool,
            f,
            values,
            more: true,
            mine: VecDeque::new(),
            ordered,
        }
    }

    /// Gives every idle actor a value.
    ///
    /// # Errors
    ///
    /// [`ActorPoolError::NoActor`] (as an [`Error`]) when no actor could
    /// ever take one; [`Error::Shutdown`] when the runtime is gone.
    fn start_values(&mut self) -> Result<()> {
        while self.more {
            if self.pool.has_free() {
                let Some(actor) = self.pool.idle.pop_front() else {
                    break;
                };
                let Some(v) = self.values.next() else {
                    self.pool.idle.push_front(actor);
                    self.more = false;
                    break;
                };
                let f = &mut self.f;
                let n = self.pool.start(actor, |a| f(a, v));
                self.mine.push_back(n);
            } else if self.mine.is_empty() {
                // Every actor is busy with submissions made before this
                // map: free the first to finish, keeping its result.
                let others: Vec<u64> = self
                    .pool
                    .in_flight
                    .iter()
                    .filter(|(_, e)| matches!(e, InFlight::Call { .. }))
                    .map(|(n, _)| *n)
                    .collect();
                if others.is_empty() {
                    self.more = false;
                    return Err(ActorPoolError::NoActor {
                        queued: self.pool.queued.len(),
                    }
                    .into());
                }
                if let Some(n) = self.pool.first_done(&others, None)? {
                    self.pool.settle(n);
                }
            } else {
                break;
            }
        }
        Ok(())
    }
}

impl<A, R, V, F, I> Iterator for Mapped<'_, A, R, F, I>
where
    A: ActorClass,
    R: Object,
    F: FnMut(&ActorHandle<A>, V) -> Result<ObjectRef<R>>,
    I: Iterator<Item = V>,
{
    type Item = Result<View<R>>;

    fn next(&mut self) -> Option<Result<View<R>>> {
        if let Err(e) = self.start_values() {
            self.more = false;
            return Some(Err(e));
        }
        let n = if self.ordered {
            *self.mine.front()?
        } else {
            let mine: Vec<u64> = self.mine.iter().copied().collect();
            match self.pool.first_done(&mine, None) {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => {
                    self.more = false;
                    self.mine.clear();
                    return Some(Err(e));
                }
            }
        };
        self.mine.retain(|m| *m != n);
        Some(self.pool.take(n))
    }
}
