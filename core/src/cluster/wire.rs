//! The control messages ranks exchange, as rkyv archives in transport frames
//! (after the frame's header, see `frame`).

use rkyv::{Archive, Deserialize, Serialize};

use ferry_transport::{Rank, Transport, TransportError};

use crate::ids::ActorId;

use super::frame;

pub(crate) use super::wire_error::WireError;
pub(crate) use super::wire_groups::{WirePgAnswer, WirePgOp};
pub(crate) use super::wire_options::{WireActorOptions, WireOptions};

/// The version of these messages; bump it with every change to [`Msg`].
pub(crate) const PROTOCOL: u32 = 14;

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
///
/// A frame is at least as large as the archived enum, which is as large as
/// its largest variant: the big parts of rare or slow-path variants (a
/// state listing, task and actor options, an error) are boxed, so that the
/// frames of the hot path (`Done`, `Value`, `RemoveBorrow`, …) stay about
/// one cache line (80 bytes, against 288 with them inline; see the test
/// `control_frames_stay_small`).
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
        opts: Box<WireOptions>,
        /// Arguments of the sender's that are still being made on a third
        /// rank, with that rank: the executor asks it for their values
        /// (`Fetch`) rather than the sender, one hop less.
        makers: Vec<(u64, u32)>,
        /// The sender's own objects among the arguments, each already
        /// counted as borrowed by the receiver (see `lent_args`).
        lent: Vec<WireLent>,
    },
    /// The outcome of a `Submit`; `contained` lists the objects the result
    /// holds refs to, which the owner borrows before it sends `Free`;
    /// `ended` the receiver's objects whose borrows the sender ended as the
    /// task let go of its inputs (each one `RemoveBorrow`, taken before the
    /// outcome, as if those frames had come first).
    Done {
        object: u64,
        result: WireResult,
        contained: Vec<WireRef>,
        ended: Vec<u64>,
    },
    /// Create actor `actor` (an id minted by the sender, who holds the first
    /// handle) of class `class` here, from encoded constructor arguments.
    CreateActor {
        actor: u64,
        class: u64,
        args: Vec<u8>,
        opts: Box<WireActorOptions>,
    },
    /// Call method `method` of actor `actor` (which lives on the receiver);
    /// the sender owns the result, named `object`, and gets a `Done` back.
    ActorCall {
        actor: u64,
        method: u64,
        object: u64,
        args: Vec<u8>,
        /// As `Submit`'s.
        lent: Vec<WireLent>,
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
    /// `AddBorrow` for each of `objects` (made while one call's arguments
    /// were decoded), and a `Fetch` for those marked: answered by one
    /// `BorrowAcks`.
    AddBorrows { objects: Vec<(u64, bool)> },
    /// The answers to one `AddBorrows`, in its order.
    BorrowAcks { acks: Vec<WireAck> },
    /// The sender no longer holds refs to `object`.
    RemoveBorrow { object: u64 },
    /// The sender (a borrower) wants the value of `object` when it is ready.
    Fetch { object: u64 },
    /// The answer of a rank asked for a value it is making (see `Submit`'s
    /// `makers`) that cannot give it (it has already gone to its owner, is
    /// too large to travel inline, or failed): ask the owner.
    NotHeld { object: u64 },
    /// The answer to `Fetch`: the value is read where `result` says.
    Value {
        object: u64,
        type_name: String,
        result: WireResult,
    },
    /// The `seq`-th object the sender sends the receiver under `tag`
    /// (`Runtime::send_to`; see `channels`) failed: its failure. (A value
    /// goes as a value frame, see `frame`.)
    SendFailed {
        tag: u64,
        seq: u64,
        error: Box<WireError>,
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
    StateReply { state: Box<crate::state::RankState> },
    /// Give `name` to actor `named` if it is free (to rank 0, the name
    /// registry; answered by `NameReply`). With `get_if_exists` a taken
    /// name answers with its holder. `dead`: actors the sender heard died
    /// (its latest few), whose names are free whether or not their hosts'
    /// `NameFree` has come yet.
    NameRegister {
        req: u64,
        name: String,
        named: WireNamed,
        get_if_exists: bool,
        dead: Vec<u64>,
    },
    /// Which actor holds `name` (to rank 0; answered by `NameReply`).
    NameLookup { req: u64, name: String },
    /// Rank 0's answer to request `req`: `fresh` when the name was given,
    /// else its holder (`None`: nobody).
    NameReply {
        req: u64,
        fresh: bool,
        holder: Option<WireNamed>,
    },
    /// Actor `actor` stopped for good: free `name` if it still holds it
    /// (to rank 0).
    NameFree { name: String, actor: u64 },
    /// Item `index` of stream `stream`, which the receiver owns (a
    /// streaming task running on the sender): its archived bytes, of
    /// type `type_name`. Answered by `StreamConsumed`.
    StreamItem {
        stream: u64,
        index: u64,
        type_name: String,
        bytes: Vec<u8>,
    },
    /// The owner of stream `stream` has handed `consumed` of its items to
    /// the caller (the producer on the receiver may go on while it is fewer
    /// than the backpressure ahead), or the caller dropped the stream
    /// (`cancelled`: the producer stops).
    StreamConsumed {
        stream: u64,
        consumed: u64,
        cancelled: bool,
    },
    /// A request to the placement-group registry (to rank 0; answered by
    /// `PgAnswer`).
    PgAsk { req: u64, op: WirePgOp },
    /// The registry's answer to `PgAsk` `req`.
    PgAnswer { req: u64, answer: WirePgAnswer },
    /// Hold these bundles of `group` here: `(index, amounts)` (from rank
    /// 0; answered by `PgHeld`).
    PgHold {
        group: u64,
        bundles: Vec<(u32, Vec<(String, f64)>)>,
    },
    /// The sender holds its bundles of `group` (to rank 0).
    PgHeld { group: u64 },
    /// Free every bundle of `group` held here: its tasks are cancelled and
    /// its actors killed (from rank 0).
    PgFree { group: u64 },
}

/// A named actor as the registry knows it (see `actor::names::Named`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy)]
pub(crate) struct WireNamed {
    pub(crate) class: u64,
    pub(crate) actor: u64,
    pub(crate) host: u32,
    pub(crate) task_retries: i32,
}

impl WireNamed {
    pub(crate) fn from_named(n: &crate::actor::names::Named) -> WireNamed {
        WireNamed {
            class: n.class,
            actor: n.actor.as_u64(),
            host: n.host,
            task_retries: n.task_retries,
        }
    }

    pub(crate) fn into_named(self) -> crate::actor::names::Named {
        crate::actor::names::Named {
            class: self.class,
            actor: ActorId::from_u64(self.actor),
            host: self.host,
            task_retries: self.task_retries,
        }
    }
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

/// One answer of `BorrowAcks`: as `BorrowAck`; with `answered`, `value`
/// (if any) is also the answer to the `Fetch` asked with the borrow, which
/// otherwise comes later as `Value`.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) struct WireAck {
    pub(crate) object: u64,
    pub(crate) ok: bool,
    pub(crate) value: Option<WireValue>,
    pub(crate) answered: bool,
}

/// One of a `Submit`'s or `ActorCall`'s arguments that its sender owns and
/// has counted as borrowed by the receiver (one count, which the receiver
/// gives back): with its `value` when the sender had it and the receiver
/// did not borrow it already, or `push` when the sender will send it as
/// `Value`, unasked, once it is made.
#[derive(Archive, Serialize, Deserialize, Debug)]
pub(crate) struct WireLent {
    pub(crate) object: u64,
    pub(crate) value: Option<WireValue>,
    pub(crate) push: bool,
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
    /// The task failed (boxed: a frame is at least as large as the largest
    /// of `Msg`'s variants, and an error held inline made `Done` and
    /// `Value` so).
    Failed(Box<WireError>),
}

impl WireResult {
    /// A failure.
    pub(crate) fn failed(e: WireError) -> WireResult {
        WireResult::Failed(Box::new(e))
    }
}

/// Encodes `msg` as a frame of its own.
pub(crate) fn encode(msg: &Msg) -> Vec<u8> {
    with_kept(|kept| {
        // Straight into the frame's own buffer, sized for most frames at
        // once (growing an archive buffer from empty, then copying it out,
        // was ~7% of a rank's time in Task Bench's 2-rank stencil).
        archive(msg, Vec::with_capacity(FRAME_CAPACITY), &mut kept.arena)
    })
}

/// What a frame's buffer starts with: most control frames are smaller.
const FRAME_CAPACITY: usize = 512;

/// The largest frame buffer a thread keeps for its next frame.
const KEPT_CAPACITY: usize = 64 << 10;

/// What a thread keeps from one frame to the next: the buffer it encodes
/// into and the serializer's scratch arena.
#[derive(Default)]
struct Kept {
    buffer: Vec<u8>,
    arena: rkyv::ser::allocator::Arena,
}

/// Runs `f` with this thread's [`Kept`], or with fresh ones when they are
/// in use (a send made from a transport's handler during another) or gone
/// (a ref dropped while the thread's locals are destroyed: its borrow still
/// ends). rkyv's own thread-local arena is not used for that reason.
fn with_kept<R>(f: impl FnOnce(&mut Kept) -> R) -> R {
    thread_local! {
        static KEPT: std::cell::Cell<Option<Kept>> = const { std::cell::Cell::new(None) };
    }
    let mut kept = KEPT
        .try_with(std::cell::Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default();
    let r = f(&mut kept);
    kept.arena.shrink();
    if kept.buffer.capacity() > KEPT_CAPACITY {
        kept.buffer = Vec::new();
    }
    let _ = KEPT.try_with(|k| k.set(Some(kept)));
    r
}

/// `msg` as a message frame in `buffer`, which must be empty: the header,
/// then the archive, whose positions count from the buffer's start (so an
/// archive 16-byte aligned in the buffer stays so after the header).
fn archive(msg: &Msg, mut buffer: Vec<u8>, arena: &mut rkyv::ser::allocator::Arena) -> Vec<u8> {
    debug_assert!(buffer.is_empty(), "a frame starts its buffer");
    frame::message_header(&mut buffer);
    rkyv::api::high::to_bytes_in_with_alloc::<_, _, ferry_store::ArchiveError>(
        msg,
        buffer,
        arena.acquire(),
    )
    .unwrap_or_default()
}

/// Encodes `msg` into this thread's frame buffer and sends it from there
/// ([`Transport::send_from`]): a frame that goes through a shared-memory
/// ring needs no buffer of its own (one allocation per frame less).
pub(crate) fn send(transport: &dyn Transport, to: Rank, msg: &Msg) -> Result<(), TransportError> {
    with_kept(|kept| {
        let mut buffer = std::mem::take(&mut kept.buffer);
        buffer.clear();
        buffer.reserve(FRAME_CAPACITY);
        kept.buffer = archive(msg, buffer, &mut kept.arena);
        transport.send_from(to, &kept.buffer)
    })
}

/// Sends `value` as a value frame (see `frame`) from this thread's frame
/// buffer.
pub(crate) fn send_value(
    transport: &dyn Transport,
    to: Rank,
    value: &frame::Value<'_>,
) -> Result<(), TransportError> {
    with_kept(|kept| {
        frame::write_value(&mut kept.buffer, value);
        transport.send_from(to, &kept.buffer)
    })
}

/// Decodes a message frame (validated: frames come from other processes);
/// the receive loop uses `frame::read`, [`with_archived`] and
/// [`deserialize`] instead.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Msg, String> {
    match frame::read(bytes)? {
        frame::Frame::Message(archive) => {
            with_archived(archive, |archived| archived.and_then(deserialize))
        }
        frame::Frame::Value(_) => Err("a value frame, not a message".into()),
    }
}

/// A validated archived message, made owned.
pub(crate) fn deserialize(archived: &ArchivedMsg) -> Result<Msg, String> {
    rkyv::deserialize::<Msg, ferry_store::ArchiveError>(archived).map_err(|e| e.to_string())
}

/// Runs `f` on a message frame's `archive` (what follows its header)
/// validated as an archived message (or on why it is not one), without
/// making it owned.
pub(crate) fn with_archived<R>(
    bytes: &[u8],
    f: impl FnOnce(Result<&ArchivedMsg, String>) -> R,
) -> R {
    // In place when aligned as an archive must be (a frame's own buffer
    // is: a copy per frame was one allocation per message); else from an
    // aligned copy.
    fn access(b: &[u8]) -> Result<&ArchivedMsg, String> {
        rkyv::access::<ArchivedMsg, ferry_store::ArchiveError>(b).map_err(|e| e.to_string())
    }
    if (bytes.as_ptr() as usize).is_multiple_of(16) {
        return f(access(bytes));
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    f(access(&aligned))
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

    /// Every frame is copied into the receiver's ring and read from another
    /// core: the frames of the cross-rank hot path must not carry the size
    /// of the largest variant. With a state listing inline every frame was
    /// 288 bytes; boxing it (and the options and errors) made actor call
    /// round trips ~10% faster on the 2-core VM.
    #[test]
    fn control_frames_stay_small() {
        let small = [
            Msg::RemoveBorrow { object: 7 },
            Msg::Free { object: 7 },
            Msg::Done {
                object: 7,
                result: WireResult::Inline(vec![0u8; 16]),
                contained: Vec::new(),
                ended: vec![8, 9],
            },
            Msg::Value {
                object: 7,
                type_name: "alloc::vec::Vec<u8>".into(),
                result: WireResult::Inline(vec![0u8; 16]),
            },
        ];
        for msg in &small {
            // Every frame carries the 16-byte header too.
            let len = encode(msg).len();
            assert!(len <= 128 + frame::HEADER, "{msg:?} took {len} bytes");
        }
        let mut sent = Vec::new();
        let value = frame::Value {
            tag: 7,
            seq: 8,
            type_name: "alloc::vec::Vec<u8>",
            bytes: &[0u8; 24],
        };
        frame::write_value(&mut sent, &value);
        assert!(sent.len() <= 128, "a value frame took {} bytes", sent.len());
        assert!(std::mem::size_of::<ArchivedMsg>() <= 96);
    }

    #[test]
    fn a_frame_decodes_in_place_and_at_any_offset() {
        let msg = Msg::Submit {
            object: 5,
            fn_id: 6,
            args: vec![1, 2, 3],
            opts: Box::new(WireOptions::from_options(
                &crate::resources::options::TaskOptions::default(),
            )),
            makers: vec![(7, 1)],
            lent: vec![WireLent {
                object: 8,
                value: None,
                push: true,
            }],
        };
        let frame = encode(&msg);
        let mut shifted = vec![0u8; frame.len() + 1];
        shifted[1..].copy_from_slice(&frame);
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&frame);
        for bytes in [&aligned[..], &shifted[1..]] {
            match decode(bytes).unwrap() {
                Msg::Submit {
                    object,
                    args,
                    makers,
                    lent,
                    ..
                } => {
                    assert_eq!((object, args, makers), (5, vec![1, 2, 3], vec![(7, 1)]));
                    assert_eq!((lent[0].object, lent[0].push), (8, true));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(decode(&frame[..frame.len() / 2]).is_err(), "a cut frame");
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

#[cfg(test)]
mod error_tests {
    use super::*;
    use crate::cluster::wire::{Msg, WireResult, decode, encode};
    use crate::error::Error;
    use crate::ids::ObjectId;
    use ferry_store::StoreError;

    /// `e` as the receiver of a `Done` carrying it gets it back.
    fn across(e: &Error) -> Error {
        let msg = Msg::Done {
            object: 1,
            result: WireResult::failed(WireError::from_error(e, "f", 2)),
            contained: Vec::new(),
            ended: Vec::new(),
        };
        match decode(&encode(&msg)).unwrap() {
            Msg::Done {
                result: WireResult::Failed(w),
                ..
            } => w.into_error(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn named_kinds_cross_ranks_as_themselves() {
        let object = ObjectId::from_u64(7);
        match across(&Error::ObjectFreed { object }) {
            Error::ObjectFreed { object: o } => assert_eq!(o, object),
            other => panic!("{other:?}"),
        }
        match across(&Error::OwnerLost {
            object,
            rank: 3,
            reason: "killed".into(),
        }) {
            Error::OwnerLost { rank, reason, .. } => assert_eq!((rank, &*reason), (3, "killed")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            across(&Error::FunctionNotInBinary { id: 9 }),
            Error::FunctionNotInBinary { id: 9 }
        ));
        let full = Error::from(StoreError::Full {
            requested: 10,
            used: 5,
            capacity: 12,
        });
        let back = across(&full);
        assert!(back.is_store_full(), "{back:?}");
        assert_eq!(back.to_string(), full.to_string());
    }

    #[test]
    fn other_kinds_arrive_as_their_message_naming_the_rank() {
        let io = Error::from(StoreError::Io {
            path: "/dev/shm/x".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
        match across(&io) {
            Error::Remote {
                what,
                rank,
                message,
            } => {
                assert_eq!((&*what, rank), ("f", 2));
                assert_eq!(message, io.to_string());
            }
            other => panic!("{other:?}"),
        }
        // Forwarded again, it still names the rank it happened on.
        let again = WireError::from_error(&across(&io), "g", 5).into_error();
        assert!(matches!(again, Error::Remote { rank: 2, .. }), "{again:?}");
    }
}
