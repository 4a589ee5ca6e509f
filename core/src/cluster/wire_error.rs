//! Errors as they cross ranks inside [`super::wire::Msg`].

use rkyv::{Archive, Deserialize, Serialize};

use ferry_store::StoreError;

use crate::error::{Error, FailureKind, TaskError};
use crate::ids::{ActorId, ObjectId};

/// An error crossing ranks. The kinds a receiver can rebuild travel as
/// themselves; any other (an I/O failure of the sender's store, a transport
/// failure there, ...) arrives as [`Error::Remote`] with its message.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) enum WireError {
    /// [`Error::Task`], also when it reached the sender through a failed
    /// dependency. `kind`: 0 panic, 1 application, 2 system.
    Task {
        task: String,
        rank: u32,
        kind: u8,
        message: String,
        attempts: u32,
    },
    /// [`Error::ActorDied`].
    ActorDied { actor: String, reason: String },
    /// [`Error::Cancelled`].
    Cancelled { task: String },
    /// [`Error::ObjectFreed`].
    ObjectFreed { object: u64 },
    /// [`Error::OwnerLost`].
    OwnerLost {
        object: u64,
        rank: u32,
        reason: String,
    },
    /// [`Error::RebuildFailed`].
    RebuildFailed { object: u64, reason: String },
    /// [`Error::FunctionNotInBinary`].
    FunctionNotInBinary { id: u64 },
    /// [`Error::ActorClassNotInBinary`].
    ActorClassNotInBinary { class: u64 },
    /// [`Error::ActorMethodNotInBinary`].
    ActorMethodNotInBinary { method: u64 },
    /// [`Error::ActorNotFound`].
    ActorNotFound { actor: u64, reason: String },
    /// [`Error::NotThisActorClass`].
    NotThisActorClass { actor: u64, class: String },
    /// [`Error::Store`] with [`StoreError::Full`]: a full store stays one.
    StoreFull {
        requested: u64,
        used: u64,
        capacity: u64,
    },
    /// Any other error, as [`Error::Remote`]: what it was about, the rank
    /// it happened on, its message.
    Other {
        what: String,
        rank: u32,
        message: String,
    },
}

impl WireError {
    /// `e`, which happened on `rank` to task or object `task`, as it
    /// crosses ranks.
    pub(crate) fn from_error(e: &Error, task: &str, rank: u32) -> WireError {
        match e {
            Error::ActorDied { actor, reason } => return WireError::actor_died(actor, reason),
            Error::Cancelled { task } => return WireError::Cancelled { task: task.clone() },
            Error::ObjectFreed { object } => {
                return WireError::ObjectFreed {
                    object: object.as_u64(),
                };
            }
            Error::OwnerLost {
                object,
                rank,
                reason,
            } => {
                return WireError::OwnerLost {
                    object: object.as_u64(),
                    rank: *rank,
                    reason: reason.clone(),
                };
            }
            Error::RebuildFailed { object, reason } => {
                return WireError::RebuildFailed {
                    object: object.as_u64(),
                    reason: reason.clone(),
                };
            }
            Error::FunctionNotInBinary { id } => return WireError::FunctionNotInBinary { id: *id },
            Error::ActorClassNotInBinary { class } => {
                return WireError::ActorClassNotInBinary { class: *class };
            }
            Error::ActorMethodNotInBinary { method } => {
                return WireError::ActorMethodNotInBinary { method: *method };
            }
            Error::ActorNotFound { actor, reason } => {
                return WireError::ActorNotFound {
                    actor: actor.as_u64(),
                    reason: reason.clone(),
                };
            }
            Error::NotThisActorClass { actor, class } => {
                return WireError::NotThisActorClass {
                    actor: actor.as_u64(),
                    class: class.clone(),
                };
            }
            Error::Store(s) => {
                if let StoreError::Full {
                    requested,
                    used,
                    capacity,
                } = **s
                {
                    return WireError::StoreFull {
                        requested: requested as u64,
                        used: used as u64,
                        capacity: capacity as u64,
                    };
                }
            }
            // Already from another rank: it keeps naming that rank.
            Error::Remote {
                what,
                rank,
                message,
            } => {
                return WireError::Other {
                    what: what.clone(),
                    rank: *rank,
                    message: message.clone(),
                };
            }
            _ => {}
        }
        match e.task_error() {
            Some(t) => WireError::Task {
                task: t.task.clone(),
                rank: t.rank,
                kind: match t.kind {
                    FailureKind::Panic => 0,
                    FailureKind::Application => 1,
                    FailureKind::System => 2,
                },
                message: t.message.clone(),
                attempts: t.attempts,
            },
            None => WireError::Other {
                what: task.to_string(),
                rank,
                message: e.to_string(),
            },
        }
    }

    /// Why the actor died, if this says it did.
    pub(crate) fn actor_died_reason(&self) -> Option<&str> {
        match self {
            WireError::ActorDied { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn actor_died(actor: &str, reason: &str) -> WireError {
        WireError::ActorDied {
            actor: actor.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        match self {
            WireError::Task {
                task,
                rank,
                kind,
                message,
                attempts,
            } => Error::Task(Box::new(TaskError {
                task,
                rank,
                kind: match kind {
                    0 => FailureKind::Panic,
                    1 => FailureKind::Application,
                    _ => FailureKind::System,
                },
                message,
                attempts,
            })),
            WireError::ActorDied { actor, reason } => Error::ActorDied { actor, reason },
            WireError::Cancelled { task } => Error::Cancelled { task },
            WireError::ObjectFreed { object } => Error::ObjectFreed {
                object: ObjectId::from_u64(object),
            },
            WireError::OwnerLost {
                object,
                rank,
                reason,
            } => Error::OwnerLost {
                object: ObjectId::from_u64(object),
                rank,
                reason,
            },
            WireError::RebuildFailed { object, reason } => Error::RebuildFailed {
                object: ObjectId::from_u64(object),
                reason,
            },
            WireError::FunctionNotInBinary { id } => Error::FunctionNotInBinary { id },
            WireError::ActorClassNotInBinary { class } => Error::ActorClassNotInBinary { class },
            WireError::ActorMethodNotInBinary { method } => {
                Error::ActorMethodNotInBinary { method }
            }
            WireError::ActorNotFound { actor, reason } => Error::ActorNotFound {
                actor: ActorId::from_u64(actor),
                reason,
            },
            WireError::NotThisActorClass { actor, class } => Error::NotThisActorClass {
                actor: ActorId::from_u64(actor),
                class,
            },
            WireError::StoreFull {
                requested,
                used,
                capacity,
            } => StoreError::Full {
                requested: requested as usize,
                used: used as usize,
                capacity: capacity as usize,
            }
            .into(),
            WireError::Other {
                what,
                rank,
                message,
            } => Error::Remote {
                what,
                rank,
                message,
            },
        }
    }
}
