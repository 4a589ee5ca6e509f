//! Ferry's runtime: remote tasks, stateful actors and immutable objects in a
//! zero-copy shared-memory store, on one rank or many.
//!
//! Most users depend on the `ferry` facade crate, which re-exports this one
//! together with the `#[ferry::remote]`, `#[ferry::actor]` and
//! `#[ferry::main]` macros.

mod actor;
mod arg;
mod cancel;
mod checkpoint;
mod cluster;
mod config;
mod context;
mod error;
mod exports;
mod exposed;
pub mod gpu;
mod gpus;
mod heartbeat;
mod ids;
mod lent;
mod lineage;
mod log;
pub mod loopback;
mod node_hello;
mod object_ref;
mod options;
mod pinning;
#[doc(hidden)]
pub mod private;
mod releases;
mod remote_actor;
mod resources;
mod runtime;
mod scheduler;
mod signal;
mod slot;
mod state;
mod status;
mod task;
mod timeline;
mod values;
mod view;
mod wire;

pub use actor::{
    ActorCall, ActorClass, ActorHandle, ActorRef, ArchivedActorHandle, create as create_actor,
};
pub use arg::{Arg, IntoArg};
pub use checkpoint::Restored;
pub use config::Config;
pub use context::{command, current, env_var, gpu_ids, is_cancelled, task_name};
pub use error::{Error, FailureKind, Result, TaskError};
pub use ids::{ActorId, ObjectId};
pub use object_ref::{ArchivedObjectRef, ObjectRef};
pub use options::{ActorOptions, RetryOn, TaskOptions};
pub use pinning::Pin;
pub use runtime::{Runtime, WaitResult, init};
pub use state::{
    ActorState, ClusterState, ObjectState, RankState, StoreUse, TaskCounts, TaskFailure,
};
pub use values::{Object, Remotable};
pub use view::View;

pub use ferry_store::{HeldReport, PodElement, SpillStats};
pub use rkyv;
