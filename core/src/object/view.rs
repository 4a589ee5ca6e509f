//! [`View`]: a zero-copy, borrowed view of an object's archive.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rkyv::Archive;

use ferry_store::PodElement;

use crate::error::{Error, Result};
use crate::ids::ObjectId;
use crate::object::cell::{Bytes, Slot, Stored};
use crate::values::{Object, Remotable};

/// A read-only view of an object's archived value, straight in shared memory
/// (or in its slot, for a small object kept inline): no copy, no
/// deserialization. It dereferences to `T::Archived`
/// (`ArchivedVec`, `ArchivedString`, `u64_le`, … which compare with their
/// native counterparts). The object stays alive while the view does.
///
/// ```
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
/// let r = rt.put(&String::from("hello"))?;
/// let v = rt.get(&r)?;
/// assert_eq!(v.as_str(), "hello");
/// let owned: String = v.deserialize()?;
/// assert_eq!(owned, "hello");
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub struct View<T: Archive> {
    slot: Arc<Slot>,
    /// Into the bytes, which stay in place while the view lives: the view
    /// holds a pin on the slot's own bytes (given back on drop), a
    /// neighbour's object is kept by its owner, and an object kept inline
    /// is in the slot, which the view keeps and which never moves (it is
    /// set once, inside its `Arc`).
    archived: NonNull<T::Archived>,
}

// SAFETY: a View only hands out shared references to immutable archived
// bytes; it is as thread-safe as `&T::Archived`, which needs `Sync`.
unsafe impl<T: Archive> Send for View<T> where T::Archived: Sync {}
// SAFETY: as above.
unsafe impl<T: Archive> Sync for View<T> where T::Archived: Sync {}

impl<T: Object> View<T> {
    /// A view of the value in `slot`, which must be complete.
    pub(crate) fn of(slot: Arc<Slot>) -> Result<View<T>> {
        slot.mark_observed();
        let value = match slot.get() {
            Some(Stored::Value(v)) => v,
            Some(Stored::Error(e)) => return Err(e.clone()),
            None => return Err(Error::ObjectNotReady { object: slot.id }),
        };
        if !value.type_tag.is::<T>() {
            return Err(Error::TypeMismatch {
                object: slot.id.to_string(),
                stored: value.type_name.to_string(),
                asked: std::any::type_name::<T>(),
            });
        }
        let bytes = match &value.block {
            Bytes::Own(s) => match s.small_bytes() {
                Some(b) => b,
                // A spilled object that comes back damaged is this object's
                // corruption, not the store's.
                None => {
                    s.acquire()
                        .map_err(|e| match e {
                            ferry_store::StoreError::Corrupt(reason) => Error::Corrupt {
                                object: slot.id.to_string(),
                                reason,
                            },
                            e => Error::from(e),
                        })?
                        .bytes
                }
            },
            other => other.mapped(),
        };
        // Gives the pin back if the checks below fail.
        let guard = Unpin(&slot);
        // Acquire pairs with the Release below: whoever sees `validated` sees a
        // check that succeeded on these same immutable bytes.
        let archived: &T::Archived = if value.validated.load(Ordering::Acquire) {
            // SAFETY: the bytes were validated as a `T` archive before (or were
            // written by this rank's serializer for `T`, which the type id
            // check above confirms), and they never change after sealing.
            unsafe { ferry_store::access_unchecked::<T>(bytes) }
        } else {
            let a = ferry_store::access::<T>(bytes).map_err(|e| Error::Corrupt {
                object: slot.id.to_string(),
                reason: e.to_string(),
            })?;
            value.validated.store(true, Ordering::Release);
            a
        };
        let archived = NonNull::from(archived);
        std::mem::forget(guard);
        Ok(View { slot, archived })
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.slot.id
    }

    /// The archive's bytes in the store.
    pub fn bytes(&self) -> &[u8] {
        match self.slot.get() {
            Some(Stored::Value(v)) => match &v.block {
                // SAFETY: this view holds a pin on them (taken in `of`).
                Bytes::Own(s) => unsafe { s.pinned_bytes() },
                other => other.mapped(),
            },
            _ => &[],
        }
    }

    /// Deserializes an owned copy of the value.
    pub fn deserialize(&self) -> Result<T>
    where
        T: Remotable,
    {
        ferry_store::deserialize::<T>(self).map_err(|e| Error::Corrupt {
            object: self.slot.id.to_string(),
            reason: e.to_string(),
        })
    }
}

impl<T: Archive> Deref for View<T> {
    type Target = T::Archived;

    fn deref(&self) -> &T::Archived {
        // SAFETY: `archived` points into the slot's sealed bytes, which
        // `self` keeps alive (`slot`) and in place (the pin; an inline
        // object's bytes are in the slot, which never moves), and which are
        // never written after sealing.
        unsafe { self.archived.as_ref() }
    }
}

impl<T: Archive> Clone for View<T> {
    fn clone(&self) -> Self {
        if let Some(Stored::Value(v)) = self.slot.get()
            && let Bytes::Own(s) = &v.block
        {
            s.repin();
        }
        View {
            slot: self.slot.clone(),
            archived: self.archived,
        }
    }
}

/// Gives back the pin of a view being made that fails its checks.
struct Unpin<'a>(&'a Slot);

impl Drop for Unpin<'_> {
    fn drop(&mut self) {
        release(self.0);
    }
}

/// Gives back one pin on the slot's own bytes (nothing to do for small
/// objects and for neighbours' objects).
#[inline]
fn release(slot: &Slot) {
    if let Some(Stored::Value(v)) = slot.get()
        && let Bytes::Own(s) = &v.block
    {
        // SAFETY: called once per pin a view took (`View::of`, `clone`),
        // when that view (or the one being made) is done with its bytes.
        unsafe { s.release() };
    }
}

impl<T: Archive> Drop for View<T> {
    fn drop(&mut self) {
        release(&self.slot);
    }
}

impl<T: Archive> fmt::Debug for View<T>
where
    T::Archived: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<P: PodElement + Object> View<Vec<P>>
where
    Vec<P>: Archive<Archived = rkyv::vec::ArchivedVec<P::Archived>>,
{
    /// The elements as a native slice, without a copy (plain numbers are
    /// archived little-endian, so on little-endian machines this is a cast).
    pub fn as_slice(&self) -> &[P] {
        ferry_store::as_native_slice::<P>(self)
    }
}
