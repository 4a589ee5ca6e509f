//! Ferry's runtime: remote tasks, stateful actors and immutable objects in a
//! zero-copy shared-memory store, on one rank or many.
//!
//! Most users depend on the `ferry` facade crate, which re-exports this one
//! together with the `#[ferry::remote]`, `#[ferry::actor]` and
//! `#[ferry::main]` macros.
//!
//! # How the crate is built
//!
//! Each concept has a folder, and the folders are layers, lowest first:
//!
//! | layer | holds |
//! |---|---|
//! | vocabulary (`error`, `ids`, `config`, `values`, `state`, `log`, `signal`, `sync`, `timeline`, `host`) | the words every layer uses |
//! | `resources/` | the ledger of logical resources, GPU ids, pinning, task and actor options, GPU objects |
//! | `object/` | the object cell, [`ObjectRef`], [`View`], nested-ref capture, the call codec |
//! | `task/` | the task cell, the task pool (scheduler, work-stealing workers), cancellation, the task context |
//! | `actor/` | the local actor engine: mailbox, actor thread, call order, restarts, checkpoints |
//! | `cluster/` | several ranks: membership, the receive loop, placement, remote tasks and actors, borrowing, lineage, heartbeats, the wire format |
//! | `runtime/` | the public [`Runtime`]: start-up, put/get/wait, actor handles, the actor pool, the thread's current runtime |
//! | `private/` | what the macros call: the function registry, submit, `run_main` |
//!
//! A module names only its own layer and the layers below it
//! (`core/tests/layers.rs` checks it). Where a lower layer needs something
//! from above, it defines a trait and the layer above implements it: the
//! object layer's `Lender` (how a borrowed object is fetched and released),
//! the task pool's thread hooks (the thread's current runtime), the actor
//! engine's `ActorHost`, the cluster's `RankHost` (the rank's services it
//! uses) and `RunById` (run a task or create and call an actor named by id
//! in an incoming message; the function registry implements it). Jobs and
//! actor calls are closures built at the top.

// The layers, lowest first: a module imports only from its own layer and
// the layers listed before it.

// Vocabulary: the words every layer uses.
mod cache;
mod config;
mod error;
mod host;
mod ids;
mod log;
mod once;
mod signal;
mod state;
mod sync;
mod timeline;
mod uncounted;
mod values;

// Resources: the ledger, GPU ids, pinning, task and actor options.
mod resources;

// Objects: the object cell, refs, views, nested-ref capture.
mod object;

// Tasks: the task cell, the scheduler and its workers, the task context.
mod task;

// Actors: the local actor engine.
mod actor;

// The cluster: membership, the receive loop, placement, remote tasks and
// actors, borrowing, lineage, heartbeats, the wire format.
mod cluster;

// The runtime: the public `Runtime`, start-up, actor handles, status.
mod runtime;

// What the macros call.
#[doc(hidden)]
pub mod private;

pub use resources::gpu;
pub use runtime::loopback;

pub use actor::checkpoint::Restored;
pub use config::Config;
pub use error::{Error, FailureKind, PlacementGroupError, Result, TaskError};
pub use ids::{ActorId, ObjectId};
pub use object::object_ref::{ArchivedObjectRef, ObjectRef};
pub use object::ref_future::GetFuture;
pub use object::view::View;
pub use private::ActorStreamCall;
pub use resources::bundles::{Bundle, PlacementGroup};
pub use resources::options::{ActorOptions, DEFAULT_BACKPRESSURE, RetryOn, TaskOptions};
pub use resources::pinning::Pin;
pub use runtime::actor_handle::{
    ActorCall, ActorClass, ActorHandle, ActorRef, create as create_actor,
};
pub use runtime::actor_pool::{ActorPool, ActorPoolError, AlreadyInPool};
pub use runtime::archived_actor_handle::ArchivedActorHandle;
pub use runtime::arg::{Arg, Args, IntoArg, IntoArgs};
pub use runtime::current::current;
pub use runtime::generator::{GeneratorNext, ObjectRefGenerator};
pub use runtime::named::get_actor;
pub use runtime::{Runtime, WaitResult, init};
pub use state::{
    ActorState, ClusterState, ObjectState, PlacementGroupInfo, PlacementGroupState,
    PlacementStrategy, RankState, StoreUse, TaskCounts, TaskFailure,
};
pub use task::context::{command, env_var, gpu_ids, is_cancelled, task_name};
pub use values::{Object, Remotable};

pub use ferry_launcher::LaunchError;
pub use ferry_store::{HeldReport, PodElement, SpillStats, StoreError};
pub use ferry_transport::TransportError;
pub use rkyv;
