//! [`ObjectRef`]: a typed, reference-counted name of an immutable object.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use rkyv::rancor::{Fallible, Source};
use rkyv::rend::u64_le;
use rkyv::{Archive, Deserialize, Place, Portable, Serialize};

use crate::error::Error;
use crate::ids::ObjectId;
use crate::object::cell::{KeepAlive, Slot};
use crate::object::exports::{self, NotInRuntime};
use crate::object::lender;

/// A reference to an object in the store, made by `put`, a task or an actor
/// call (Ray's `ObjectRef`).
///
/// Cloning is cheap (a reference count). The object lives while any ref,
/// [`View`](crate::View) or object containing the ref lives; dropping the last
/// one frees it. `T` is the type of the value; [`Runtime::get`](crate::Runtime::get)
/// returns a zero-copy view of its archive.
///
/// ```
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
/// let r = rt.put(&vec![1u32, 2, 3])?;
/// let again = r.clone();
/// assert_eq!(r.id(), again.id());
/// assert_eq!(rt.get(&again)?.as_slice(), &[1, 2, 3]);
/// # Ok::<(), ferry_core::Error>(())
/// ```
pub struct ObjectRef<T> {
    pub(crate) slot: Arc<Slot>,
    _t: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    pub(crate) fn from_slot(slot: Arc<Slot>) -> Self {
        ObjectRef {
            slot,
            _t: PhantomData,
        }
    }

    /// The object's id.
    pub fn id(&self) -> ObjectId {
        self.slot.id
    }

    /// True once the object's value (or error) is available, without waiting.
    pub fn is_ready(&self) -> bool {
        self.slot.is_ready()
    }

    /// The same object seen as another type. A `get` through the result checks
    /// the type and fails with [`Error::TypeMismatch`] if it is wrong.
    pub fn cast<U>(self) -> ObjectRef<U> {
        ObjectRef::from_slot(self.slot)
    }
}

impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef::from_slot(self.slot.clone())
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef({:016x})", self.slot.id.as_u64())
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.slot.id == other.slot.id
    }
}

impl<T> Eq for ObjectRef<T> {}

impl<T> std::hash::Hash for ObjectRef<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.slot.id.hash(state);
    }
}

/// An [`ObjectRef`] inside an archived object: just the object's id.
///
/// Turn it back into a live ref with [`to_ref`](Self::to_ref).
#[repr(transparent)]
pub struct ArchivedObjectRef<T> {
    id: u64_le,
    _t: PhantomData<fn() -> T>,
}

impl<T> ArchivedObjectRef<T> {
    /// The id of the object it names.
    pub fn id(&self) -> ObjectId {
        ObjectId::from_u64(self.id.to_native())
    }

    /// The live ref, looked up in this thread's runtime.
    pub fn to_ref(&self) -> Result<ObjectRef<T>, Error> {
        let lender = lender::current().ok_or(Error::NoRuntime)?;
        lender.lookup(self.id()).map(ObjectRef::from_slot)
    }
}

impl<T> fmt::Debug for ArchivedObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef({:016x})", self.id.to_native())
    }
}

// SAFETY: a transparent wrapper of `u64_le`, which is portable; PhantomData
// of a fn pointer type adds no bytes.
unsafe impl<T> Portable for ArchivedObjectRef<T> {}
// SAFETY: as above; `u64_le` has no padding.
unsafe impl<T> rkyv::traits::NoUndef for ArchivedObjectRef<T> {}

// SAFETY: every bit pattern of a `u64_le` is a valid id (an unknown id is an
// error at lookup time, not undefined behaviour).
unsafe impl<T, C: Fallible + ?Sized> rkyv::bytecheck::CheckBytes<C> for ArchivedObjectRef<T> {
    unsafe fn check_bytes(_value: *const Self, _context: &mut C) -> Result<(), C::Error> {
        Ok(())
    }
}

impl<T> Archive for ObjectRef<T> {
    type Archived = ArchivedObjectRef<T>;
    type Resolver = ();

    fn resolve(&self, _resolver: (), out: Place<Self::Archived>) {
        out.write(ArchivedObjectRef {
            id: u64_le::from_native(self.slot.id.as_u64()),
            _t: PhantomData,
        });
    }
}

impl<T, S> Serialize<S> for ObjectRef<T>
where
    S: Fallible + ?Sized,
    S::Error: Source,
{
    fn serialize(&self, _serializer: &mut S) -> Result<(), S::Error> {
        let slot = self.slot.clone();
        let noted = exports::note(move |ex| {
            ex.export_object(&slot);
            slot as KeepAlive
        });
        if noted {
            Ok(())
        } else {
            Err(S::Error::new(NotInRuntime("ObjectRef")))
        }
    }
}

impl<T, D> Deserialize<ObjectRef<T>, D> for ArchivedObjectRef<T>
where
    D: Fallible + ?Sized,
    D::Error: Source,
{
    fn deserialize(&self, _deserializer: &mut D) -> Result<ObjectRef<T>, D::Error> {
        self.to_ref().map_err(D::Error::new)
    }
}
