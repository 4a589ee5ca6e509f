//! Several ranks: placing tasks on other ranks, and the messages that carry
//! them (over any [`Transport`]: loopback threads in tests, MPI for real).
//!
//! # Protocol
//!
//! 1. At start every rank sends `Hello` with its resource totals to every
//!    other rank and waits until it has heard from all of them.
//! 2. A task runs where it was submitted while that rank has room, unless
//!    its options name a rank or a bundle, or a large argument lies on
//!    another rank; when it has none (or cannot ever run it), the task goes
//!    to the least loaded rank that can run it and has room: the owner
//!    sends `Submit` with the function's stable id, its encoded arguments
//!    and the arguments it lends (see Borrowing), and keeps the pending
//!    output slot.
//! 3. The executor runs the function by id, pinned there. When the result is
//!    sealed it sends `Done`: small results inline, larger ones as an
//!    (offset, length) in its arena, which it keeps until the owner has read
//!    them one-sidedly (`Transport::read`) and sent `Free`.
//! 4. A rank lost while running a task fails it with a system error, and
//!    the owner resubmits it (to itself if need be) while `max_retries` allows.
//! 5. Rank 0's shutdown sends `Shutdown` to every rank; each shuts down its
//!    runtime and closes its endpoint.
//!
//! # Borrowing (refs that cross ranks)
//!
//! The rank that made an object owns it (its id carries the rank). A rank
//! that receives a ref to a foreign object makes a *borrowed* slot for it
//! (one per object per rank) and sends `AddBorrow` to the owner, which keeps
//! the object while any rank borrows it and answers `BorrowAck`. Whoever
//! handed the ref over keeps its own ref until the receiver has that ack:
//! a submitter keeps a task's arguments until `Done`, and an executor sends
//! `Done` only once the borrows made while decoding the arguments are acked
//! (and, for refs inside a result, the owner of the result borrows them
//! before it sends `Free`). So an object is never freed while a ref to it is
//! in flight. A borrowed value is fetched on first need (`Fetch` →
//! `Value`, read one-sidedly when large); dropping the last borrowed ref
//! sends `RemoveBorrow`. A task sent ahead while an argument is still being
//! made on a third rank asks that rank (`makers`): it answers `Value` as
//! soon as the value exists, or `NotHeld`, and then the owner is asked.
//! The owner of a task's arguments counts their borrows by the executor
//! before it sends `Submit` (`lent_args`): the executor sends no
//! `AddBorrow` for them, and gets the values of top-level ones with the
//! task, or pushed (`Value`, unasked) as they are made on the owner. An
//! `ActorCall`'s arguments are lent the same way.
//!
//! # Where each part lives
//!
//! From the top down: `membership` (joining, the receive loop that hands
//! each message to its part, leaving); the parts: `placement`,
//! `remote_task` (sending tasks, retries; how many go ahead of their
//! inputs is `send_ahead`'s record), `executor` (running what other
//! ranks send), `results` (their `Done`), `borrowing`, `lent_args` (a
//! task's arguments counted and sent with it), `makers` (asking the rank
//! that makes a value), `transfer` (values crossing ranks),
//! `rank_loss`, `rebuild` and `lineage`, the remote actors
//! (`remote_actor`, `actor_host`, `actor_restart`, `actor_book`),
//! `names` (the named-actor registry on rank 0), `gather`, `cancel`,
//! `heartbeat`, `streams` (the items of a streaming task made on
//! another rank than its caller's), `channels` (objects sent to a rank
//! under a tag); at the bottom the state they share
//! (`shared`: the [`Cluster`]), what they need of the rank they run on
//! (`rank_host`: [`RankHost`], implemented by the runtime, and
//! [`RunById`], implemented by the registry of what this binary can run),
//! the records (`sent`, `latch`, `lent`, `releases`, `stream_windows`) and the `wire`
//! format. `arena_region` and `node_hello` serve the runtime's start-up.

pub(crate) mod arena_region;
pub(crate) mod channels;
pub(crate) mod frame;
pub(crate) mod group_registry;
pub(crate) mod groups;
pub(crate) mod heartbeat;
#[cfg(feature = "mpi")]
pub(crate) mod inbox;
pub(crate) mod names;
pub(crate) mod node_hello;
pub(crate) mod remote_actor;
pub(crate) mod wire;
pub(crate) mod wire_error;
pub(crate) mod wire_groups;
pub(crate) mod wire_options;

mod actor_book;
mod actor_host;
mod actor_restart;
mod borrowing;
mod cancel;
mod executor;
mod gather;
mod group_requests;
mod held_adds;
mod latch;
mod lent;
mod lent_args;
mod lineage;
mod makers;
mod membership;
mod name_requests;
pub(crate) mod owner_answers;
mod placement;
mod rank_host;
mod rank_loss;
mod rebuild;
mod releases;
mod remote_task;
mod results;
mod send_ahead;
mod sent;
mod shared;
mod stream_windows;
pub(crate) mod streams;
mod transfer;

pub(crate) use actor_host::replay_early;
pub(crate) use borrowing::{fetch, lookup, unborrow};
pub(crate) use cancel::cancel_remote;
pub(crate) use gather::{gather_states, gather_timelines};
pub(crate) use placement::explain_infeasible;
pub(crate) use rank_host::{RankHost, RunById};
pub(crate) use remote_task::try_remote;
pub(crate) use shared::{Cluster, ClusterHost};
