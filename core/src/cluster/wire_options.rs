//! Task and actor options as they cross ranks inside [`super::wire::Msg`].

use rkyv::{Archive, Deserialize, Serialize};

use crate::resources::options::{ActorOptions, ResourceAsk, RetryOn, TaskOptions};
use crate::resources::pinning::Pin;

/// The task options that can cross ranks (a `retry_when` predicate cannot:
/// such tasks run where they were submitted).
#[derive(Archive, Serialize, Deserialize, Debug, Clone)]
pub(crate) struct WireOptions {
    name: Option<String>,
    ask: ResourceAsk,
    max_retries: i32,
    retry_all: bool,
    env: Vec<(String, String)>,
}

impl WireOptions {
    pub(crate) fn from_options(o: &TaskOptions) -> WireOptions {
        WireOptions {
            name: o.name.clone(),
            ask: o.ask.clone(),
            max_retries: o.max_retries,
            retry_all: matches!(o.retry_on, RetryOn::All),
            env: o.env.clone(),
        }
    }

    /// The options to run with on the executing rank (pinned there).
    pub(crate) fn into_options(self) -> TaskOptions {
        TaskOptions {
            name: self.name,
            ask: self.ask,
            max_retries: self.max_retries,
            retry_on: if self.retry_all {
                RetryOn::All
            } else {
                RetryOn::Never
            },
            env: self.env,
            pinned_here: true,
            rank: None,
            // A streaming task's own travels with its stream's target.
            backpressure: crate::resources::options::DEFAULT_BACKPRESSURE,
        }
    }
}

/// The actor options that cross ranks with `CreateActor`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone)]
pub(crate) struct WireActorOptions {
    name: Option<String>,
    ask: ResourceAsk,
    max_restarts: i32,
    max_task_retries: i32,
    checkpoint_every: u64,
    env: Vec<(String, String)>,
    /// `Pin::Core(n)` as `(0, n)`, `Pin::NumaNode(n)` as `(1, n)`.
    pin: Option<(u8, u64)>,
    detached: bool,
    max_concurrency: Option<u32>,
}

impl WireActorOptions {
    pub(crate) fn from_options(o: &ActorOptions) -> WireActorOptions {
        WireActorOptions {
            name: o.name.clone(),
            ask: o.ask.clone(),
            max_restarts: o.max_restarts,
            max_task_retries: o.max_task_retries,
            checkpoint_every: o.checkpoint_every,
            env: o.env.clone(),
            pin: o.pin.map(|p| match p {
                Pin::Core(c) => (0, c as u64),
                Pin::NumaNode(n) => (1, u64::from(n)),
            }),
            detached: o.detached,
            max_concurrency: o.max_concurrency,
        }
    }

    /// The options to create the actor with on the receiving rank (there).
    pub(crate) fn into_options(self) -> ActorOptions {
        ActorOptions {
            name: self.name,
            ask: self.ask,
            max_restarts: self.max_restarts,
            max_task_retries: self.max_task_retries,
            checkpoint_every: self.checkpoint_every,
            env: self.env,
            rank: None,
            pin: self.pin.map(|(kind, n)| match kind {
                0 => Pin::Core(n as usize),
                _ => Pin::NumaNode(n as u32),
            }),
            get_if_exists: false,
            detached: self.detached,
            max_concurrency: self.max_concurrency,
        }
    }
}
