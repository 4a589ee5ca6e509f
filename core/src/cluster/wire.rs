//! The control messages ranks exchange, as rkyv archives in transport frames.

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Error, FailureKind, TaskError};
use crate::resources::options::{ActorOptions, ResourceAsk, RetryOn, TaskOptions};
use crate::resources::pinning::Pin;

/// The version of these messages; bump it with every change to [`Msg`].
pub(crate) const PROTOCOL: u32 = 2;

/// Why a rank that said `Hello` with `protocol` and `build` cannot work
/// with this one (`None`: it can).
pub(crate) fn incompatible(from: u32, protocol: u32, build: u64, own_build: u64) -> Option<String> {
    if protocol != PROTOCOL {
        return Some(format!(
            "rank {from} speaks protocol {protocol}, this rank {PROTOCOL}: \
             the ranks run different versions of Ferry"
        ));
    }
    (build != own_build).then(|| {
        format!(
            "rank {from} runs build {build:016x}, this rank {own_build:016x}: \
             the ranks run different builds of the program (its remote functions or \
             actors differ); start every rank from the same binary"
        )
    })
}

/// One control message.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) enum Msg {
    /// A rank announces its resources, its host and its arena file (sent
    /// to every rank at start).
    Hello {
        /// [`PROTOCOL`] of the sender.
        protocol: u32,
        /// The sender's build (see `private::build_id`): ranks of different
        /// builds refuse to work together.
        build: u64,
        totals: Vec<(String, f64)>,
        host: String,
        store: String,
    },
    /// Run remote function `fn_id` on the encoded `args`; the sender owns
    /// the result, named `object`, and gets a `Done` back.
    Submit {
        object: u64,
        fn_id: u64,
        args: Vec<u8>,
        opts: WireOptions,
    },
    /// The outcome of a `Submit`; `contained` lists the objects the result
    /// holds refs to, which the owner borrows before it sends `Free`.
    Done {
        object: u64,
        result: WireResult,
        contained: Vec<WireRef>,
    },
    /// Create actor `actor` (an id minted by the sender, who holds the first
    /// handle) of class `class` here, from encoded constructor arguments.
    CreateActor {
        actor: u64,
        class: u64,
        args: Vec<u8>,
        opts: WireActorOptions,
    },
    /// Call method `method` of actor `actor` (which lives on the receiver);
    /// the sender owns the result, named `object`, and gets a `Done` back.
    ActorCall {
        actor: u64,
        method: u64,
        object: u64,
        args: Vec<u8>,
    },
    /// The sender holds a handle to actor `actor`, which lives on the
    /// receiver: keep it (answered by `BorrowAck`).
    AddActorBorrow { actor: u64 },
    /// The sender no longer holds handles to `actor`.
    RemoveActorBorrow { actor: u64 },
    /// Stop actor `actor` now (Ray's `ray.kill`).
    KillActor { actor: u64 },
    /// Actor `actor`'s rank was lost and its creator (the sender) re-created
    /// it on `host`; calls in flight to it are resent up to
    /// `max_task_retries` times.
    ActorRestarted {
        actor: u64,
        host: u32,
        max_task_retries: i32,
    },
    /// Actor `actor`'s rank was lost and its creator will not re-create it.
    ActorGone { actor: u64, reason: String },
    /// The sender holds a ref to `object`, owned by the receiver: keep it.
    AddBorrow { object: u64 },
    /// The answer to `AddBorrow`; `ok` is false if the object was gone.
    /// When the object is already sealed, `value` says where it is (or holds
    /// it, when tiny), so that a later get needs no `Fetch`.
    BorrowAck {
        object: u64,
        ok: bool,
        value: Option<WireValue>,
    },
    /// The sender no longer holds refs to `object`.
    RemoveBorrow { object: u64 },
    /// The sender (a borrower) wants the value of `object` when it is ready.
    Fetch { object: u64 },
    /// The answer to `Fetch`: the value is read where `result` says.
    Value {
        object: u64,
        type_name: String,
        result: WireResult,
    },
    /// The owner has copied a result out: its bytes may be freed.
    Free { object: u64 },
    /// Rank 0 ends the job: every rank shuts down.
    Shutdown,
    /// Take part in a raw ping-pong of `iters` round trips with the sender
    /// (`Transport::raw_ping_pong`, the baseline `ferry bench` prints).
    PingPong { iters: u64 },
    /// Cancel the task the receiver runs for the sender's `object` (and,
    /// when `recursive`, the tasks it submitted).
    Cancel { object: u64, recursive: bool },
    /// Rank 0 asks for this rank's timeline events (answered by
    /// `TimelineReply`).
    TimelineRequest,
    /// A rank's timeline events.
    TimelineReply { events: crate::timeline::RankEvents },
    /// Asks for this rank's state listing (answered by `StateReply`).
    StateRequest,
    /// "Still here" (see `heartbeat`); any frame counts as much.
    Heartbeat,
    /// A rank's state listing.
    StateReply { state: crate::state::RankState },
}

/// A ref or actor handle inside a result, which its owner must register
/// before the executor lets the result go.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireRef {
    /// An object (its id carries its owner).
    Object(u64),
    /// An actor and the rank it lives on.
    Actor { id: u64, host: u32 },
}

/// A sealed object's type and where to find its bytes.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) struct WireValue {
    pub(crate) type_name: String,
    pub(crate) result: WireResult,
}

/// A task's result as its owner receives it.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) enum WireResult {
    /// Small results travel in the message.
    Inline(Vec<u8>),
    /// Larger ones stay in the executor's arena until the owner has read them.
    At { offset: u64, len: u64 },
    /// The task failed.
    Failed(WireError),
}

/// A task error crossing ranks.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) struct WireError {
    pub(crate) task: String,
    pub(crate) rank: u32,
    /// 0 panic, 1 application, 2 system, 3 the actor died (`task` names
    /// the actor, `message` says why).
    pub(crate) kind: u8,
    pub(crate) message: String,
    pub(crate) attempts: u32,
}

impl WireError {
    pub(crate) fn from_error(e: &Error, task: &str, rank: u32) -> WireError {
        if let Error::ActorDied { actor, reason } = e {
            return WireError::actor_died(actor, reason, rank);
        }
        if let Error::Cancelled { task } = e {
            return WireError {
                task: task.clone(),
                rank,
                kind: 4,
                message: String::new(),
                attempts: 1,
            };
        }
        match e.task_error() {
            Some(t) => WireError {
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
            None => WireError {
                task: task.to_string(),
                rank,
                kind: 2,
                message: e.to_string(),
                attempts: 1,
            },
        }
    }

    pub(crate) fn is_actor_died(&self) -> bool {
        self.kind == 3
    }

    pub(crate) fn actor_died(actor: &str, reason: &str, rank: u32) -> WireError {
        WireError {
            task: actor.to_string(),
            rank,
            kind: 3,
            message: reason.to_string(),
            attempts: 1,
        }
    }

    pub(crate) fn into_error(self) -> Error {
        if self.kind == 4 {
            return Error::Cancelled { task: self.task };
        }
        if self.kind == 3 {
            return Error::ActorDied {
                actor: self.task,
                reason: self.message,
            };
        }
        Error::Task(Box::new(TaskError {
            task: self.task,
            rank: self.rank,
            kind: match self.kind {
                0 => FailureKind::Panic,
                1 => FailureKind::Application,
                _ => FailureKind::System,
            },
            message: self.message,
            attempts: self.attempts,
        }))
    }
}

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
        }
    }
}

/// Encodes a message into a frame.
pub(crate) fn encode(msg: &Msg) -> Vec<u8> {
    rkyv::to_bytes::<ferry_store::ArchiveError>(msg)
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// Decodes a frame (validated: frames come from other processes).
pub(crate) fn decode(bytes: &[u8]) -> Result<Msg, String> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<Msg, ferry_store::ArchiveError>(&aligned).map_err(|e| e.to_string())
}

#[cfg(test)]
mod hello_tests {
    use super::*;

    #[test]
    fn ranks_of_another_protocol_or_build_are_refused_by_name() {
        assert_eq!(incompatible(3, PROTOCOL, 7, 7), None);
        let e = incompatible(3, PROTOCOL + 1, 7, 7).unwrap();
        assert!(e.contains("rank 3") && e.contains("protocol"), "{e}");
        let e = incompatible(2, PROTOCOL, 8, 7).unwrap();
        assert!(
            e.contains("rank 2") && e.contains("different builds"),
            "{e}"
        );
    }

    #[test]
    fn hello_carries_protocol_and_build() {
        let hello = Msg::Hello {
            protocol: PROTOCOL,
            build: 0xfeed,
            totals: vec![("CPU".into(), 2.0)],
            host: "n1".into(),
            store: "/dev/shm/x".into(),
        };
        match decode(&encode(&hello)).unwrap() {
            Msg::Hello {
                protocol, build, ..
            } => assert_eq!((protocol, build), (PROTOCOL, 0xfeed)),
            other => panic!("{other:?}"),
        }
    }
}
