//! Objects and actors listed by id, so that a ref or handle serialized inside
//! another object can be turned back into a live one.
//!
//! Serializing an [`ObjectRef`](crate::ObjectRef) or an
//! [`ActorHandle`](crate::ActorHandle) into an object happens inside
//! [`capture`]: the serializer lists the slot here (weakly) and hands a strong
//! reference to the object being built, which keeps the inner object alive
//! for as long as the outer one lives (Ray's "contained refs"). Deserializing
//! looks the id up here.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, Result};
use crate::ids::{ActorId, IdMap, ObjectId};
use crate::object::cell::{KeepAlive, Slot};
use crate::sync::lock;

/// One rank's table of serialized objects and actor handles.
#[derive(Default)]
pub(crate) struct Exports {
    objects: Mutex<IdMap<ObjectId, Weak<Slot>>>,
    actors: Mutex<IdMap<ActorId, Weak<dyn Any + Send + Sync>>>,
}

impl Exports {
    /// Lists `slot` (once): from when its mark is seen set, any thread can
    /// look it up, as it is listed under the table's lock first.
    pub(crate) fn export_object(self: &Arc<Self>, slot: &Arc<Slot>) {
        if slot.is_exported() {
            return;
        }
        let mut objects = lock(&self.objects);
        if !slot.is_exported() {
            objects.insert(slot.id, Arc::downgrade(slot));
            slot.set_exported(Arc::downgrade(self));
        }
    }

    pub(crate) fn forget_object(&self, id: ObjectId) {
        let mut map = lock(&self.objects);
        if map.get(&id).is_some_and(|w| w.strong_count() == 0) {
            map.remove(&id);
        }
    }

    pub(crate) fn object(&self, id: ObjectId) -> Result<Arc<Slot>> {
        lock(&self.objects)
            .get(&id)
            .and_then(Weak::upgrade)
            .ok_or(Error::ObjectFreed { object: id })
    }

    pub(crate) fn export_actor(&self, id: ActorId, handle: &Arc<dyn Any + Send + Sync>) {
        lock(&self.actors).insert(id, Arc::downgrade(handle));
    }

    pub(crate) fn forget_actor(&self, id: ActorId) {
        lock(&self.actors).remove(&id);
    }

    pub(crate) fn actor(&self, id: ActorId) -> Option<Arc<dyn Any + Send + Sync>> {
        lock(&self.actors).get(&id).and_then(Weak::upgrade)
    }
}

struct Capture {
    exports: Arc<Exports>,
    kept: Vec<KeepAlive>,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

/// Runs `f` (a serialization) with refs and handles captured into the result.
pub(crate) fn capture<R>(exports: &Arc<Exports>, f: impl FnOnce() -> R) -> (R, Vec<KeepAlive>) {
    let outer = CAPTURE.with(|c| {
        c.borrow_mut().replace(Capture {
            exports: exports.clone(),
            kept: Vec::new(),
        })
    });
    let r = f();
    let kept = CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        let mine = std::mem::replace(&mut *c, outer);
        mine.map(|m| m.kept).unwrap_or_default()
    });
    (r, kept)
}

/// Called by the serializer of a ref or handle; false outside [`capture`].
pub(crate) fn note(f: impl FnOnce(&Arc<Exports>) -> KeepAlive) -> bool {
    CAPTURE.with(|c| match &mut *c.borrow_mut() {
        Some(cap) => {
            let keep = f(&cap.exports);
            cap.kept.push(keep);
            true
        }
        None => false,
    })
}

/// The error a serializer gives when a ref is serialized outside the runtime.
#[derive(Debug)]
pub(crate) struct NotInRuntime(pub(crate) &'static str);

impl std::fmt::Display for NotInRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a {} can only be serialized by the Ferry runtime (put it, return it from a task, or pass it to one)",
            self.0
        )
    }
}

impl std::error::Error for NotInRuntime {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::cell::UnhandledSink;

    #[test]
    fn an_object_exported_by_any_thread_can_be_looked_up_once_its_export_returns() {
        for round in 0..100u64 {
            let exports = Arc::new(Exports::default());
            let slot = Slot::pending(
                ObjectId::from_u64(round + 1),
                None,
                Arc::new(UnhandledSink::default()),
            );
            let start = Arc::new(std::sync::Barrier::new(4));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (exports, slot, start) = (exports.clone(), slot.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        exports.export_object(&slot);
                        // What a peer does with the id it was just sent.
                        let found = exports.object(slot.id).expect("listed");
                        assert!(Arc::ptr_eq(&found, &slot));
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("every exporter finds it");
            }
            assert!(slot.is_exported());
            let id = slot.id;
            drop(slot);
            assert!(
                exports.object(id).is_err(),
                "a dropped object is no longer listed"
            );
        }
    }
}
