//! Whether an actor class is `Sync`, asked where the class is concrete
//! (autoref specialization, as `EncodeProbe`): `#[ferry::actor]` calls
//! `(&&SyncProbe::<C>::new()).share()` in its `ActorClass::share`, so an
//! actor that is not `Sync` still compiles and only `max_concurrency` above
//! 1 is refused ([`Error::NotSync`](crate::Error::NotSync)).

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

/// Asks whether `T` is `Sync`.
pub struct SyncProbe<T>(PhantomData<fn() -> T>);

impl<T> SyncProbe<T> {
    /// A probe for `T`.
    pub fn new() -> Self {
        SyncProbe(PhantomData)
    }
}

impl<T> Default for SyncProbe<T> {
    fn default() -> Self {
        SyncProbe::new()
    }
}

/// How the state of a `Sync` class is shared by threads.
pub type ShareFn<T> = fn(T) -> Arc<dyn Any + Send + Sync>;

/// The `Sync` arm of [`SyncProbe`].
pub trait ViaSync<T> {
    /// How to share the state.
    fn share(&self) -> Option<ShareFn<T>>;
}

impl<T: Send + Sync + 'static> ViaSync<T> for &SyncProbe<T> {
    fn share(&self) -> Option<ShareFn<T>> {
        Some(|a| Arc::new(a))
    }
}

/// The fallback arm of [`SyncProbe`]: not `Sync`.
pub trait ViaNoSync<T> {
    /// None: the state cannot be shared.
    fn share(&self) -> Option<ShareFn<T>>;
}

impl<T> ViaNoSync<T> for SyncProbe<T> {
    fn share(&self) -> Option<ShareFn<T>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The borrows pick the arm: that is the probe.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn a_sync_type_is_shared_and_a_cell_is_not() {
        assert!((&&SyncProbe::<Vec<u8>>::new()).share().is_some());
        assert!(
            (&&SyncProbe::<std::cell::Cell<u8>>::new())
                .share()
                .is_none()
        );
    }
}
