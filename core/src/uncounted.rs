//! Values every task carries that usually cost no shared count to copy.
//!
//! A task is made on one thread and run and dropped on another. A field it
//! holds as a clone of one `Arc` shared by every task (its function's name,
//! an empty environment, an empty GPU list) is a reference count that both
//! threads update for every task, so its cache line moves between their
//! cores twice per task. On the 2-core VM, such counts were most of a
//! worker's own time per task in Task Bench's stencil. These types keep
//! the common case out of any shared count: a name known at compile time
//! is a `&'static str`, and an empty list is no allocation at all.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A task's or actor's name: its function's (static, copied freely) or
/// one given at run time (shared).
#[derive(Clone)]
pub(crate) enum Name {
    /// Known at compile time: copying it touches no count.
    Static(&'static str),
    /// Given at run time.
    Shared(Arc<str>),
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Name::Static(s) => s,
            Name::Shared(s) => s,
        }
    }
}

impl From<&'static str> for Name {
    fn from(s: &'static str) -> Name {
        Name::Static(s)
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Name {
        Name::Shared(s)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A list shared by the tasks that carry it, with no allocation and no
/// count when it is empty (most tasks' environment and GPU ids).
pub(crate) struct List<T>(Option<Arc<[T]>>);

impl<T> List<T> {
    /// The empty list.
    pub(crate) const fn empty() -> List<T> {
        List(None)
    }
}

impl<T> Clone for List<T> {
    fn clone(&self) -> Self {
        List(self.0.clone())
    }
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List::empty()
    }
}

impl<T> Deref for List<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(v: Vec<T>) -> List<T> {
        if v.is_empty() {
            List(None)
        } else {
            List(Some(v.into()))
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_holds_nothing_and_a_full_one_is_shared() {
        let empty: List<u32> = Vec::new().into();
        assert!(empty.0.is_none() && empty.is_empty());
        let ids: List<u32> = vec![2, 3].into();
        let copy = ids.clone();
        assert_eq!(&*copy, &[2, 3]);
        assert!(Arc::ptr_eq(
            ids.0.as_ref().expect("full"),
            copy.0.as_ref().expect("full")
        ));
    }

    #[test]
    fn a_name_reads_the_same_whichever_way_it_was_made() {
        let fixed = Name::from("square");
        let given = Name::from(Arc::<str>::from("square"));
        assert!(matches!(fixed, Name::Static(_)));
        assert_eq!(&*fixed, &*given);
        assert_eq!(format!("{fixed} {given:?}"), "square \"square\"");
    }
}
