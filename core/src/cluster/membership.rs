//! Membership and the receive loop: a rank joins (`Hello` to every rank,
//! then it waits to hear from all: protocol step 1), receives every frame
//! and hands each message to the part of the protocol it belongs to, and
//! leaves (`Shutdown`: step 5). The top of the cluster: no other part of
//! it calls back into this one.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ferry_transport::{Event, Rank, Transport, TransportError};

use crate::cluster::actor_host::on_actor_message;
use crate::cluster::borrowing::{borrow_ended, on_borrow_message};
use crate::cluster::cancel::on_cancel;
use crate::cluster::executor::{CallName, execute, free};
use crate::cluster::frame::{self, Frame};
use crate::cluster::gather::on_gather_message;
use crate::cluster::lent_args::with_lent;
use crate::cluster::makers::with_makers;
use crate::cluster::rank_host::RankHost;
use crate::cluster::rank_loss::rank_lost;
use crate::cluster::results::done;
use crate::cluster::sent::Sent;
use crate::cluster::shared::Cluster;
use crate::cluster::wire::{self, Msg};
use crate::error::{Error, Result};
use crate::object::cell::Stored;
use crate::sync::lock;

/// How often a starting rank looks again at who was lost while it waits.
const START_SLICE: Duration = Duration::from_millis(50);

impl<H: RankHost> Cluster<H> {
    /// Step 1: starts the receive thread, says hello, waits to hear from all.
    pub(crate) fn start(inner: &Arc<H>, timeout: Duration) -> Result<()> {
        let c = inner
            .cluster()
            .expect("start is called on a cluster runtime");
        let weak = Arc::downgrade(inner);
        let transport = c.transport.clone();
        let handle = std::thread::Builder::new()
            .name(format!("ferry-r{}-net", c.rank))
            .spawn(move || {
                let rank = transport.rank();
                crate::log::set_thread_rank(rank);
                let fatal = transport.clone();
                let run = std::panic::AssertUnwindSafe(|| net_main(weak, transport));
                if let Err(p) = std::panic::catch_unwind(run) {
                    // The rank can no longer take part in the job: end it, so
                    // that the launcher stops every rank and names this one.
                    fatal.abort(&format!(
                        "rank {rank}: internal error in the receive thread: {}",
                        crate::task::cell::panic_message(p.as_ref())
                    ));
                }
            })
            .map_err(|e| Error::Thread {
                what: "the receive thread".into(),
                source: Arc::new(e),
            })?;
        *lock(&c.net) = Some(handle);
        // Where the transport can, frames are handled on the thread that
        // receives them (MPI: the progress thread), one handoff less each.
        let _ = c
            .transport
            .set_handler(event_handler(Arc::downgrade(inner)));
        let own: Vec<(String, f64)> = lock(&c.totals)[c.rank as usize]
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let (host, store) = lock(&c.places)[c.rank as usize].clone().unwrap_or_default();
        let hello = wire::encode(&Msg::Hello {
            protocol: wire::PROTOCOL,
            build: inner.build_id(),
            totals: own,
            host,
            store: store.to_string_lossy().into_owned(),
        });
        // A rank lost while this one starts (a loopback rank killed early)
        // is neither greeted nor waited for: its loss is handled like any
        // other once the runtime runs.
        for r in (0..c.size).filter(|r| *r != c.rank) {
            match c.transport.send(r, hello.clone()) {
                Err(TransportError::RankLost { .. }) => {}
                Err(source) => {
                    return Err(Error::Transport {
                        what: format!("could not start the runtime: could not greet rank {r}"),
                        source,
                    });
                }
                Ok(()) => {}
            }
        }
        // Beat while waiting (a rank whose greeting went missing keeps this
        // one waiting, and this one must not look silent meanwhile).
        c.heartbeat.start(inner, c)?;
        let deadline = Instant::now() + timeout;
        let mut totals = lock(&c.totals);
        while (0..totals.len()).any(|r| totals[r].is_none() && !c.transport.is_lost(r as Rank)) {
            if let Some(why) = lock(&c.incompatible).clone() {
                return Err(Error::Init(why));
            }
            if c.transport.is_lost(c.rank) {
                // Declared lost by the others while starting (its greetings
                // or beats never arrived): it takes no part in the job.
                return Err(Error::Transport {
                    what: "could not start the runtime".into(),
                    source: TransportError::RankLost {
                        rank: c.rank,
                        reason: "this rank was declared lost while it started".into(),
                    },
                });
            }
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<usize> =
                    (0..totals.len()).filter(|i| totals[*i].is_none()).collect();
                return Err(Error::Init(format!(
                    "ranks {missing:?} did not answer within {timeout:?}"
                )));
            }
            // A lost rank is no longer waited for: its loss wakes this wait
            // (see `on_event`), and the slice bounds the wait if a wake-up
            // is missed (this rank itself lost, its receive thread ended).
            totals = c
                .heard
                .wait_timeout(totals, (deadline - now).min(START_SLICE))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(totals);
        c.heartbeat.judge_from_now();
        Ok(())
    }

    /// Step 5 on rank 0: tells every other rank to stop.
    pub(crate) fn broadcast_shutdown(&self) {
        // Ranks leave from here on: nobody is lost for it.
        self.heartbeat.finish();
        let bye = wire::encode(&Msg::Shutdown);
        for r in (0..self.size).filter(|r| *r != self.rank) {
            let _ = self.transport.send(r, bye.clone());
        }
    }

    /// Stops the receive thread and closes the endpoint.
    pub(crate) fn close(&self) {
        self.stop.store(true, Ordering::Release);
        self.heartbeat.finish();
        let handle = lock(&self.net).take();
        if let Some(h) = handle
            && h.thread().id() != std::thread::current().id()
        {
            let _ = h.join();
        }
        lock(&self.held).clear();
        drop(self.lent.clear());
        lock(&self.awaiting).clear();
        self.actors.clear();
        let sent: Vec<Box<Sent>> = lock(&self.sent).drain().map(|(_, s)| s).collect();
        for s in sent {
            s.slot.complete(Stored::Error(Error::Shutdown));
        }
        if let Err(e) = self.transport.close() {
            tracing::warn!("closing the transport: {e}");
        }
    }
}

/// Handles one event from the transport (on the receive thread, or on the
/// transport's own thread through [`event_handler`]).
fn on_event<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, ev: &Event) {
    match *ev {
        Event::Frame { from, ref bytes } => {
            c.heartbeat.heard(from);
            let decoded = match frame::read(bytes) {
                Ok(Frame::Value(v)) => {
                    crate::cluster::channels::on_value(inner, from, &v);
                    Ok(None)
                }
                Ok(Frame::Message(archive)) => {
                    wire::with_archived(archive, |a| a.and_then(wire::deserialize)).map(Some)
                }
                Err(e) => Err(e),
            };
            match decoded {
                Ok(Some(msg)) => on_message(inner, c, from, msg),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!("rank {}: undecodable frame from rank {from}: {e}", c.rank);
                    // Before its `Hello`: most likely another build.
                    if lock(&c.totals)[from as usize].is_none() {
                        lock(&c.incompatible).get_or_insert(format!(
                            "rank {from} sent a frame this rank cannot read before its Hello \
                             ({e}): the ranks run different builds or versions of Ferry"
                        ));
                        c.heard.notify_all();
                    } else {
                        // Whoever waits for that frame would wait forever:
                        // the rank is lost (MPI: the job ends naming it).
                        let why = format!("rank {from} sent a frame this rank cannot decode: {e}");
                        if let Err(e) = c.transport.declare_lost(from, &why) {
                            tracing::error!("could not declare rank {from} lost: {e}");
                        }
                    }
                }
            }
        }
        Event::RankLost { rank, ref reason } => {
            rank_lost(inner, c, rank, reason);
            // A rank still starting stops waiting for the lost one's hello.
            c.heard.notify_all();
        }
    }
}

/// The handler the transport calls with each event it receives. A panic
/// in it ends the rank, as one in the receive thread does.
fn event_handler<H: RankHost>(weak: Weak<H>) -> ferry_transport::Handler {
    Box::new(move |ev| {
        // Frees arrive as messages on this thread: while it handles one it
        // must not wait for space (a worker that receives between tasks
        // gets its own way back for its tasks).
        let run = std::panic::AssertUnwindSafe(|| {
            let Some(inner) = weak.upgrade() else { return };
            crate::log::set_thread_rank(inner.rank());
            let Some(c) = inner.cluster() else { return };
            if !c.stop.load(Ordering::Acquire) {
                ferry_store::never_wait_while(|| on_event(&inner, c, ev));
            }
        });
        if let Err(p) = std::panic::catch_unwind(run) {
            let message = format!(
                "internal error handling a message: {}",
                crate::task::cell::panic_message(p.as_ref())
            );
            match weak.upgrade() {
                Some(inner) => match inner.cluster() {
                    Some(c) => c
                        .transport
                        .abort(&format!("rank {}: {message}", inner.rank())),
                    None => {
                        eprintln!("ferry: rank {}: {message}", inner.rank());
                        std::process::exit(70);
                    }
                },
                None => {
                    eprintln!("ferry: {message}");
                    std::process::exit(70);
                }
            }
        }
    })
}

fn net_main<H: RankHost>(inner: Weak<H>, transport: Arc<dyn Transport>) {
    // Frees arrive as messages on this thread: it must not wait for space.
    ferry_store::never_wait_on_this_thread();
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let Some(c) = inner.cluster() else { return };
        if c.stop.load(Ordering::Acquire) {
            return;
        }
        match transport.recv(Some(Duration::from_millis(50))) {
            Ok(Some(ev)) => on_event(&inner, c, &ev),
            Ok(None) => {}
            Err(e) => {
                c.end(Err(Error::Transport {
                    what: "receiving messages".into(),
                    source: e,
                }));
                return;
            }
        }
    }
}

/// Hands message `msg` from rank `from` to the part of the protocol it
/// belongs to.
fn on_message<H: RankHost>(inner: &Arc<H>, c: &Cluster<H>, from: Rank, msg: Msg) {
    match msg {
        Msg::Hello {
            protocol,
            build,
            totals,
            host,
            store,
        } => {
            if let Some(why) = wire::incompatible(from, protocol, build, inner.build_id()) {
                tracing::error!("{why}");
                lock(&c.incompatible).get_or_insert(why);
                c.heard.notify_all();
                return;
            }
            lock(&c.places)[from as usize] = Some((host, PathBuf::from(store)));
            lock(&c.totals)[from as usize] = Some(totals.into_iter().collect());
            c.heard.notify_all();
        }
        Msg::Submit {
            object,
            fn_id,
            args,
            opts,
            makers,
            lent,
        } => {
            let opts = (*opts).into_options();
            let task = match &opts.name {
                Some(name) => CallName::Text(name.clone()),
                None => CallName::Function(fn_id),
            };
            with_lent(c, from, lent, || {
                with_makers(makers, || {
                    execute(inner, c, from, object, task, || {
                        inner.run_task(fn_id, &opts, &args)
                    })
                })
            })
        }
        Msg::Done {
            object,
            result,
            contained,
            ended,
        } => {
            for object in ended {
                borrow_ended(c, from, object);
            }
            done(inner, c, from, object, result, contained)
        }
        Msg::Free { object } => free(c, object),
        Msg::SendFailed { tag, seq, error } => {
            crate::cluster::channels::on_send_failed(inner, from, tag, seq, *error)
        }
        Msg::Shutdown => {
            c.heartbeat.finish();
            c.end(Ok(()))
        }
        Msg::Heartbeat => {} // counted as a sign of life in `on_event`
        Msg::PingPong { iters } => {
            if let Err(e) = c.transport.raw_ping_pong(from, iters as usize, false) {
                tracing::warn!("rank {}: raw ping-pong with rank {from}: {e}", c.rank);
            }
        }
        Msg::Cancel { object, recursive } => on_cancel(c, object, recursive),
        msg @ (Msg::TimelineRequest
        | Msg::TimelineReply { .. }
        | Msg::StateRequest
        | Msg::StateReply { .. }) => on_gather_message(inner, c, from, msg),
        msg @ (Msg::CreateActor { .. }
        | Msg::ActorCall { .. }
        | Msg::AddActorBorrow { .. }
        | Msg::RemoveActorBorrow { .. }
        | Msg::KillActor { .. }
        | Msg::ActorRestarted { .. }
        | Msg::ActorGone { .. }) => on_actor_message(inner, c, from, msg),
        msg @ (Msg::NameRegister { .. }
        | Msg::NameLookup { .. }
        | Msg::NameReply { .. }
        | Msg::NameFree { .. }) => crate::cluster::names::on_name_message(inner, c, from, msg),
        Msg::StreamItem {
            stream,
            index,
            type_name,
            bytes,
        } => crate::cluster::streams::on_item(inner, c, from, stream, index, type_name, bytes),
        Msg::StreamConsumed {
            stream,
            consumed,
            cancelled,
        } => crate::cluster::streams::on_consumed(c, stream, consumed, cancelled),
        msg @ (Msg::PgAsk { .. }
        | Msg::PgAnswer { .. }
        | Msg::PgHold { .. }
        | Msg::PgHeld { .. }
        | Msg::PgFree { .. }) => crate::cluster::groups::on_group_message(inner, c, from, msg),
        other => on_borrow_message(inner, c, from, other),
    }
}
