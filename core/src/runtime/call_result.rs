//! What a task's or actor call's body gives back: its value, stored in this
//! rank's store, or why it failed ([`Failure`]), as the task cell's
//! [`Outcome`].

use crate::error::{Error, FailureKind};
use crate::runtime::Runtime;
use crate::task::cell::Outcome;
use crate::values::Object;

/// Why a call's body failed before or instead of producing a value.
#[derive(Debug)]
pub enum Failure {
    /// The user's function returned `Err` (its `Display`).
    App(String),
    /// The runtime could not resolve an argument.
    Runtime(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Stores a call's value, or describes its failure.
pub(crate) fn finish<R: Object>(
    rt: &Runtime,
    task_name: &dyn Fn() -> String,
    result: std::result::Result<R, Failure>,
) -> Outcome {
    match result {
        Ok(v) => match rt.inner.store.store_value(&v) {
            Ok(stored) => Outcome::Value(stored),
            Err(e) => Outcome::Error(e),
        },
        Err(Failure::App(message)) => Outcome::Failed {
            kind: FailureKind::Application,
            message,
        },
        Err(Failure::Runtime(cause)) => Outcome::Error(Error::Dependency {
            task: task_name(),
            cause: Box::new(cause),
        }),
    }
}
