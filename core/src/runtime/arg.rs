//! Task and actor-call arguments: a value, or a ref to resolve first.

use std::sync::Arc;

use crate::error::Result;
use crate::object::cell::Slot;
use crate::object::object_ref::ObjectRef;
use crate::object::view::View;
use crate::runtime::Runtime;
use crate::values::{Object, Remotable};

/// One argument of a remote call, as Ray passes them: a plain value, or an
/// [`ObjectRef`] at top level, which the runtime resolves before the call
/// runs (the task waits until the object is ready). Refs nested inside a
/// value (a `Vec<ObjectRef<T>>`) are passed as refs.
///
/// An `Arg` is itself archivable, so a call's arguments can be encoded and
/// run later by id (see `ferry::__private::encode_call`).
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Arg<T> {
    /// A value moved into the call.
    Value(T),
    /// An object the call waits for and receives resolved.
    Ref(ObjectRef<T>),
}

impl<T: Clone> Clone for Arg<T> {
    fn clone(&self) -> Self {
        match self {
            Arg::Value(v) => Arg::Value(v.clone()),
            Arg::Ref(r) => Arg::Ref(r.clone()),
        }
    }
}

impl<T> Arg<T> {
    pub(crate) fn dep(&self) -> Option<&Arc<Slot>> {
        match self {
            Arg::Value(_) => None,
            Arg::Ref(r) => Some(&r.slot),
        }
    }

    /// The owned value: the value itself, or the object deserialized.
    pub fn into_value(self, rt: &Runtime) -> Result<T>
    where
        T: Remotable,
    {
        match self {
            Arg::Value(v) => Ok(v),
            Arg::Ref(r) => rt.get(&r)?.deserialize(),
        }
    }

    /// A zero-copy view: the object's, or a value put into the store first.
    pub fn into_view(self, rt: &Runtime) -> Result<View<T>>
    where
        T: Object,
    {
        match self {
            Arg::Value(v) => rt.get(&rt.put(&v)?),
            Arg::Ref(r) => rt.get(&r),
        }
    }
}

/// What can be passed where a remote function takes a `T`: a `T`, an
/// `ObjectRef<T>` or a `&ObjectRef<T>`.
pub trait IntoArg<T> {
    /// Makes the argument.
    fn into_arg(self) -> Arg<T>;
}

impl<T> IntoArg<T> for T {
    fn into_arg(self) -> Arg<T> {
        Arg::Value(self)
    }
}

impl<T> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self)
    }
}

impl<T> IntoArg<T> for Arg<T> {
    fn into_arg(self) -> Arg<T> {
        self
    }
}

impl<T> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg<T> {
        Arg::Ref(self.clone())
    }
}
