//! Streaming returns (Ray's `num_returns="streaming"`): what the code
//! `#[ferry::remote(num_returns = "streaming")]` generates calls.
//!
//! # How
//!
//! 1. `remote` opens a stream on the calling rank ([`open_stream`]): its
//!    id, this rank and the backpressure make a [`StreamTarget`], passed to
//!    the task as a hidden first argument (so it crosses ranks with the
//!    call's encoded arguments).
//! 2. The task runs as any task does (here or on another rank, with its
//!    options and retries); its body calls the function and hands the
//!    iterator to [`drain`], which, before each item, waits for room
//!    (backpressure), then stores the item and reports it: into the stream
//!    itself when the caller is on this rank, else in a `StreamItem` to the
//!    caller's rank (`cluster::streams`). The task's own result is the
//!    number of items.
//! 3. An `Err` item ends the task with that error (an application error,
//!    as a `Result` return would); a panic ends it as any panic does. A
//!    retry runs the function again from its start: the items already
//!    reported are produced again but not reported again.
//! 4. The caller's [`ObjectRefGenerator`] hands out the items and, after
//!    the last, the task's error if it failed; dropping it cancels the
//!    stream, and the producer stops at its next item.

use std::fmt::Display;
use std::marker::PhantomData;
use std::sync::Arc;

use rkyv::{Archive, Deserialize, Serialize};

use crate::cluster::streams;
use crate::error::{Error, Result};
use crate::object::cell::Slot;
use crate::object::object_ref::ObjectRef;
use crate::object::stream::{Room, StreamState};
use crate::resources::options::{DEFAULT_BACKPRESSURE, TaskOptions};
use crate::runtime::Runtime;
use crate::runtime::actor_handle::{ActorClass, ActorRef};
use crate::runtime::call_result::Failure;
use crate::runtime::generator::ObjectRefGenerator;
use crate::values::Object;

/// Where a streaming task reports its items: the stream `stream` on rank
/// `owner`, with its backpressure.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub struct StreamTarget {
    owner: u32,
    stream: u64,
    backpressure: u64,
}

/// A stream opened by [`open_stream`], for [`generator`].
pub struct OpenStream(Arc<StreamState>);

/// Step 1: a new stream on this rank, for a task submitted with `opts`.
pub fn open_stream(rt: &Runtime, opts: &TaskOptions) -> (StreamTarget, OpenStream) {
    open_with(rt, opts.backpressure)
}

fn open_with(rt: &Runtime, backpressure: u64) -> (StreamTarget, OpenStream) {
    let inner = &rt.inner;
    let state = StreamState::new(inner.store.ids.object().as_u64(), backpressure);
    inner.streams.open(&state);
    let target = StreamTarget {
        owner: inner.rank,
        stream: state.id,
        backpressure: state.backpressure,
    };
    (target, OpenStream(state))
}

/// Step 4: the caller's generator over `state`, whose task gave `done`.
pub fn generator<T>(
    rt: &Runtime,
    state: OpenStream,
    done: Result<ObjectRef<u64>>,
) -> Result<ObjectRefGenerator<T>> {
    let OpenStream(state) = state;
    match done {
        Ok(done) => Ok(ObjectRefGenerator::new(rt, state, done)),
        Err(e) => {
            rt.inner.streams.close(state.id);
            Err(e)
        }
    }
}

/// What an [`ActorStreamCall`] borrows and streams.
type Marker<'a, T> = (&'a (), fn() -> T);

/// A call of a streaming actor method (one returning `impl Iterator`),
/// made by the method's proxy on the actor's handle; `remote()` submits
/// it (Ray's generator actor methods).
#[must_use]
pub struct ActorStreamCall<'a, T, F> {
    rt: Option<Runtime>,
    backpressure: u64,
    build: F,
    /// The handle the call borrows, and the item type.
    _t: PhantomData<Marker<'a, T>>,
}

impl<'a, T, F> ActorStreamCall<'a, T, F>
where
    F: FnOnce(StreamTarget) -> Result<ObjectRef<u64>>,
{
    /// Prepares a call of a method of `actor`; `build` submits it with the
    /// stream to report to. Used by generated code.
    #[doc(hidden)]
    pub fn new<A: ActorClass>(actor: &'a ActorRef<A>, build: F) -> Self {
        ActorStreamCall {
            rt: actor.runtime(),
            backpressure: DEFAULT_BACKPRESSURE,
            build,
            _t: PhantomData,
        }
    }

    /// Items produced and not yet taken at which the method pauses
    /// (default 16; see [`TaskOptions::generator_backpressure_num_objects`]).
    pub fn generator_backpressure_num_objects(mut self, n: u64) -> Self {
        self.backpressure = n;
        self
    }

    /// Submits the call: one ref per item the method produces, as it
    /// produces them.
    pub fn remote(self) -> Result<ObjectRefGenerator<T>> {
        let rt = self.rt.ok_or(Error::Shutdown)?;
        let (target, state) = open_with(&rt, self.backpressure);
        generator(&rt, state, (self.build)(target))
    }
}

/// The items of an iterator of plain values.
pub fn items_ok<T>(
    it: impl IntoIterator<Item = T>,
) -> impl Iterator<Item = std::result::Result<T, Failure>> {
    it.into_iter().map(Ok)
}

/// The items of an iterator of `Result`s: an `Err` ends the stream.
pub fn items_fallible<T, E: Display>(
    it: impl IntoIterator<Item = std::result::Result<T, E>>,
) -> impl Iterator<Item = std::result::Result<T, Failure>> {
    it.into_iter()
        .map(|r| r.map_err(|e| Failure::App(e.to_string())))
}

/// Where step 2 reports to.
enum Sink<'a> {
    Here(Arc<StreamState>),
    Away(&'a crate::cluster::Cluster<crate::runtime::Inner>),
}

/// Step 2 and 3: produces `items` into the stream `to`; the number of
/// items, or why it stopped.
pub fn drain<T: Object>(
    rt: &Runtime,
    to: &StreamTarget,
    items: impl Iterator<Item = std::result::Result<T, Failure>>,
) -> std::result::Result<u64, Failure> {
    let inner = &rt.inner;
    let sink = if to.owner == inner.rank {
        match inner.streams.find(to.stream) {
            Some(s) => Sink::Here(s),
            // The caller dropped the stream before the task started.
            None => return Ok(0),
        }
    } else {
        match inner.cluster() {
            Some(c) => Sink::Away(c),
            None => {
                return Err(Failure::Runtime(Error::InvalidArgument(format!(
                    "stream {:016x} belongs to rank {}, and this runtime has one rank",
                    to.stream, to.owner
                ))));
            }
        }
    };
    // A retry here skips what the stream already has (step 3); a retry on
    // another rank reports everything, and the owner drops the repeats.
    let skip = match &sink {
        Sink::Here(s) => s.received(),
        Sink::Away(_) => 0,
    };
    let _closed = CloseWindow(rt, to.stream);
    let mut items = items;
    let mut index = 0u64;
    loop {
        let now = match &sink {
            Sink::Here(s) => s.room_now(index),
            Sink::Away(c) => c.streams.get(to.stream).room_now(index, to.backpressure),
        };
        // A producer paused by backpressure gives its CPUs back meanwhile.
        let room = now.map_or_else(
            || {
                rt.blocking(|| match &sink {
                    Sink::Here(s) => Ok(s.wait_room(index, streams::TICK, || !inner.is_shut())),
                    Sink::Away(c) => {
                        streams::wait_room(&**inner, c, to.owner, to.stream, index, to.backpressure)
                    }
                })
            },
            Ok,
        )?;
        match room {
            Room::Free => {}
            Room::Cancelled => return Ok(index),
            Room::Stopped => return Err(Failure::Runtime(Error::Shutdown)),
        }
        if crate::task::context::is_cancelled() {
            return Ok(index);
        }
        let Some(item) = items.next() else {
            return Ok(index);
        };
        let value = item?;
        if index >= skip {
            report(rt, &sink, to, index, &value)?;
        }
        index += 1;
    }
}

/// Reports item `index` (step 2).
fn report<T: Object>(
    rt: &Runtime,
    sink: &Sink<'_>,
    to: &StreamTarget,
    index: u64,
    value: &T,
) -> Result<()> {
    let stored = rt.inner.store.store_value(value)?;
    match sink {
        Sink::Here(s) => {
            s.push(
                index,
                Slot::ready(rt.inner.store.ids.object(), stored),
                None,
            );
            Ok(())
        }
        Sink::Away(c) => {
            if !stored._contained.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "item {index} of a stream holds refs, and a streamed item that holds \
                     refs cannot go to another rank (rank {})",
                    to.owner
                )));
            }
            let bytes = stored.block.access()?.as_slice().to_vec();
            streams::send_item(
                c,
                to.owner,
                to.stream,
                index,
                std::any::type_name::<T>(),
                bytes,
            )
        }
    }
}

/// Forgets this rank's window on a stream when its producer ends.
struct CloseWindow<'a>(&'a Runtime, u64);

impl Drop for CloseWindow<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0.inner.cluster() {
            c.streams.close(self.1);
        }
    }
}
