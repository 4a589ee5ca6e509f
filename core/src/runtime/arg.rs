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
            // The ref is given up for the view: no count taken and given back.
            Arg::Ref(r) => rt.get_owned(r),
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

/// A list of top-level arguments, for a `Vec<View<T>>` parameter: every
/// [`ObjectRef`] in it is a dependency the call waits for (as for a single
/// [`Arg`]), and the call receives one [`View`] per element, in order. Ray
/// passes a variable number of refs as `f.remote(*refs)`; a remote function
/// in Rust has a fixed signature, so the list is one parameter instead.
///
/// ```
/// use ferry_core::{Args, IntoArgs, ObjectRef};
///
/// let rt = ferry_core::init(ferry_core::Config::default().num_cpus(1.0))?;
/// let refs: Vec<ObjectRef<u64>> = vec![rt.put(&1)?, rt.put(&2)?];
/// let args: Args<u64> = refs.into_args();
/// assert_eq!(args.len(), 2);
/// let views = args.into_views(&rt)?;
/// assert_eq!(*views[1], 2);
/// # rt.shutdown()?;
/// # Ok::<(), ferry_core::Error>(())
/// ```
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Args<T>(Vec<Arg<T>>);

impl<T: Clone> Clone for Args<T> {
    fn clone(&self) -> Self {
        Args(self.0.clone())
    }
}

impl<T> Default for Args<T> {
    fn default() -> Self {
        Args(Vec::new())
    }
}

impl<T> Args<T> {
    /// How many arguments the list holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The arguments, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Arg<T>> {
        self.0.iter()
    }

    /// Where the list keeps its arguments: address and length in bytes.
    pub(crate) fn region(&self) -> (usize, usize) {
        (
            self.0.as_ptr() as usize,
            std::mem::size_of_val(self.0.as_slice()),
        )
    }

    /// The objects the call waits for.
    pub(crate) fn deps(&self) -> impl Iterator<Item = &Arc<Slot>> {
        self.0.iter().filter_map(Arg::dep)
    }

    /// One zero-copy view per argument, in order (see [`Arg::into_view`]);
    /// the first argument that cannot be resolved is the error.
    pub fn into_views(self, rt: &Runtime) -> Result<Vec<View<T>>>
    where
        T: Object,
    {
        // A fresh vector, not the arguments' own reused in place: that one
        // was allocated by the submitting thread, and reallocating it here
        // would take that thread's allocator lock (glibc's `realloc` of
        // another thread's chunk locks its arena) once per task. Its memory
        // goes back with the task's remains, to be freed there too.
        let mut views = Vec::with_capacity(self.0.len());
        let mut list = self.0;
        for a in list.drain(..) {
            views.push(a.into_view(rt)?);
        }
        crate::task::context::hand_back(crate::task::spent::Spent::of(list));
        Ok(views)
    }
}

impl<T> IntoIterator for Args<T> {
    type Item = Arg<T>;
    type IntoIter = std::vec::IntoIter<Arg<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T, A: IntoArg<T>> FromIterator<A> for Args<T> {
    fn from_iter<I: IntoIterator<Item = A>>(iter: I) -> Self {
        Args(iter.into_iter().map(IntoArg::into_arg).collect())
    }
}

/// What can be passed where a remote function takes a `Vec<View<T>>`: any
/// iterable of things that are [`IntoArg<T>`] — a `Vec<ObjectRef<T>>`, a
/// `&[ObjectRef<T>]`, a `Vec<T>` of values, a `Vec<Arg<T>>` mixing both.
pub trait IntoArgs<T> {
    /// Makes the list.
    fn into_args(self) -> Args<T>;
}

impl<T, I> IntoArgs<T> for I
where
    I: IntoIterator,
    I::Item: IntoArg<T>,
{
    fn into_args(self) -> Args<T> {
        self.into_iter().collect()
    }
}
