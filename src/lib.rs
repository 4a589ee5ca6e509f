//! # Ferry: Ray Core for HPC, in Rust
//!
//! Remote tasks, stateful actors and immutable objects in a zero-copy
//! shared-memory store, on a laptop with `cargo run` and on a cluster under
//! `mpirun` or `srun`, unchanged.
//!
//! ```
//! #[ferry::remote]
//! fn square(x: u64) -> u64 { x * x }
//!
//! let rt = ferry::init(ferry::Config::default().num_cpus(2.0))?;
//! let r = square::remote(&rt, 4)?;
//! assert_eq!(*rt.get(&r)?, 16);
//! # Ok::<(), ferry::Error>(())
//! ```
//!
//! A `Vec<View<T>>` parameter takes any number of top-level refs (Ray's
//! `f.remote(*refs)`): the task waits for all of them.
//!
//! ```
//! use ferry::View;
//!
//! #[ferry::remote]
//! fn total(xs: Vec<View<Vec<u64>>>) -> u64 {
//!     xs.iter().flat_map(|x| x.as_slice()).sum()
//! }
//!
//! let rt = ferry::init(ferry::Config::default().num_cpus(1.0))?;
//! let refs = vec![rt.put(&vec![1u64, 2])?, rt.put(&vec![3u64])?];
//! assert_eq!(*rt.get(&total::remote(&rt, &refs[..])?)?, 6);
//! # rt.shutdown()?;
//! # Ok::<(), ferry::Error>(())
//! ```
//!
//! `num_returns = "streaming"` on a function returning an iterator (Ray's
//! generators) gives an [`ObjectRefGenerator`]: one ref per item, as the
//! task produces it; the producer pauses `generator_backpressure_num_objects`
//! items ahead of the caller. An actor method returning `impl Iterator`
//! streams the same way.
//!
//! ```
//! use ferry::GeneratorNext;
//!
//! #[ferry::remote(num_returns = "streaming")]
//! fn count(n: u64) -> impl Iterator<Item = u64> {
//!     0..n
//! }
//!
//! #[ferry::actor]
//! struct Source { next: u64 }
//!
//! #[ferry::actor]
//! impl Source {
//!     fn new() -> Self { Source { next: 0 } }
//!     fn take(&mut self, n: u64) -> impl Iterator<Item = u64> {
//!         (0..n).map(move |_| { self.next += 1; self.next })
//!     }
//! }
//!
//! let rt = ferry::init(ferry::Config::default().num_cpus(1.0))?;
//! let mut items = count::options()
//!     .generator_backpressure_num_objects(ferry::DEFAULT_BACKPRESSURE)
//!     .remote(&rt, 3)?;
//! let first = items.next().expect("an item")?;
//! assert_eq!(*rt.get(&first)?, 0);
//! let rest: Vec<u64> = items.by_ref().map(|r| rt.get_value(&r?)).collect::<ferry::Result<_>>()?;
//! assert_eq!(rest, [1, 2]);
//! assert!(matches!(items.try_next(), GeneratorNext::Finished));
//! assert_eq!(rt.get_value(items.completed())?, 3);
//!
//! let source = Source::remote(&rt)?;
//! let call: ferry::ActorStreamCall<'_, u64, _> = source.take(2);
//! let got: Vec<u64> = call.remote()?.map(|r| rt.get_value(&r?)).collect::<ferry::Result<_>>()?;
//! assert_eq!(got, [1, 2]);
//! # rt.shutdown()?;
//! # Ok::<(), ferry::Error>(())
//! ```

extern crate self as ferry;

pub use ferry_core::*;

/// A pool of actors that calls are spread over (Ray's
/// `ray.util.ActorPool`). Ray's documentation shows it with two actors:
///
/// ```
/// #[ferry::actor]
/// struct Actor {
///     calls: u64,
/// }
///
/// #[ferry::actor]
/// impl Actor {
///     fn new() -> Self {
///         Actor { calls: 0 }
///     }
///
///     fn double(&mut self, n: u64) -> u64 {
///         self.calls += 1;
///         n * 2
///     }
/// }
///
/// let rt = ferry::init(ferry::Config::default().num_cpus(2.0))?;
/// let (a1, a2) = (Actor::remote(&rt)?, Actor::remote(&rt)?);
/// let mut pool = ferry::ActorPool::new([a1, a2]);
/// let doubled: Vec<u64> = pool
///     .map(|a, v| a.double(v).remote(), [1, 2, 3, 4])
///     .map(|r| r.map(|v| v.to_native()))
///     .collect::<ferry::Result<_>>()?;
/// assert_eq!(doubled, [2, 4, 6, 8]);
///
/// pool.submit(|a, v| a.double(v).remote(), 5);
/// assert_eq!(*pool.get_next()?, 10);
/// assert!(matches!(pool.get_next(), Err(ferry::ActorPoolError::Empty)));
/// # rt.shutdown()?;
/// # Ok::<(), ferry::Error>(())
/// ```
pub use ferry_core::ActorPool;

/// The handle of the actor named `name` in this job (Ray's
/// `ray.get_actor`), from any rank, thread or task. Ray's documentation
/// names an actor, then retrieves it "later somewhere":
///
/// ```
/// #[ferry::actor]
/// struct Counter {
///     n: u64,
/// }
///
/// #[ferry::actor]
/// impl Counter {
///     fn new() -> Self {
///         Counter { n: 0 }
///     }
///
///     fn incr(&mut self) -> u64 {
///         self.n += 1;
///         self.n
///     }
/// }
///
/// let rt = ferry::init(ferry::Config::default())?;
/// let counter = Counter::options().name("some_name").remote(&rt)?;
/// rt.get(&counter.incr().remote()?)?;
/// let same = ferry::get_actor::<Counter>(&rt, "some_name")?;
/// assert_eq!(*rt.get(&same.incr().remote()?)?, 2);
/// assert!(matches!(
///     ferry::get_actor::<Counter>(&rt, "nobody"),
///     Err(ferry::Error::ActorNameNotFound { .. })
/// ));
/// # drop((counter, same));
/// # rt.shutdown()?;
/// # Ok::<(), ferry::Error>(())
/// ```
pub use ferry_core::get_actor;
pub use ferry_macros::{actor, main, remote};

#[doc(hidden)]
pub use ferry_core::private as __private;

/// Ferry's building blocks, for tools and benchmarks.
pub mod parts {
    pub use ferry_launcher as launcher;
    pub use ferry_store as store;
}
