//! One rank's object store as the layers above use it: the arena, the ids
//! it gives objects, the capture of refs nested in stored values, and where
//! failed objects nobody read are counted.

use std::sync::Arc;

use ferry_store::Arena;

use crate::error::Result;
use crate::ids::IdGen;
use crate::object::cell::{Bytes, Slot, StoredValue, UnhandledSink};
use crate::object::exports::{self, Exports};
use crate::object::mailbox::Mailbox;
use crate::values::Object;

/// One rank's store side.
pub(crate) struct ObjectStore {
    pub(crate) ids: IdGen,
    pub(crate) arena: Arena,
    pub(crate) exports: Arc<Exports>,
    pub(crate) unhandled: Arc<UnhandledSink>,
    /// Objects sent to and from other ranks under tags.
    pub(crate) mailbox: Mailbox,
}

impl ObjectStore {
    pub(crate) fn new(rank: u32, arena: Arena, unhandled: UnhandledSink) -> ObjectStore {
        ObjectStore {
            ids: IdGen::new(rank),
            arena,
            exports: Arc::new(Exports::default()),
            unhandled: Arc::new(unhandled),
            mailbox: Mailbox::default(),
        }
    }

    /// Serializes `value` into the store (one copy: kept inline when its
    /// archive is small, see `ferry_store::put_sealed`, else in the arena),
    /// capturing nested refs.
    pub(crate) fn store_value<T: Object>(&self, value: &T) -> Result<StoredValue> {
        // Numbers hold no refs: nothing to capture.
        if ferry_store::is_plain_vec::<T>() {
            let sealed = ferry_store::put_sealed(&self.arena, value)?;
            return Ok(StoredValue::written::<T>(Bytes::Own(sealed), Vec::new()));
        }
        let (sealed, contained) = exports::capture(&self.exports, || {
            ferry_store::put_sealed(&self.arena, value)
        });
        Ok(StoredValue::written::<T>(Bytes::Own(sealed?), contained))
    }

    /// A new pending output slot, for a task's or call's result.
    pub(crate) fn new_output(&self) -> Arc<Slot> {
        Slot::pending(self.ids.object(), None, self.unhandled.clone())
    }
}
