//! The envelope of every frame ranks exchange: a 16-byte header naming
//! what follows, an archived control message ([`Msg`](super::wire::Msg))
//! or a value sent under a tag (`Runtime::send_to`), laid out by hand.
//!
//! A tagged value is the frame of a stencil's every step between ranks; as
//! an archived `Msg::Sent` its sender serialized it with rkyv and its
//! receiver validated the archive, ~800 instructions of a rank's ~16,000 a
//! step in Task Bench's 2-rank stencil. Laid out by hand it is written with
//! a few copies and read with bounds checks; the value's own bytes are an
//! archive of their type, checked when they are first viewed, as any bytes
//! from another process are.
//!
//! ```text
//! header  0..8   MAGIC (little-endian u64)
//!         8      kind: MESSAGE or VALUE
//!         9..16  reserved (written zero, not read)
//! MESSAGE 16..   the archived message (16-byte aligned where the frame is)
//! VALUE   16..24 tag, 24..32 sequence number (little-endian u64)
//!         32..36 the type name's length n (little-endian u32)
//!         36..40 reserved (written zero, not read)
//!         40..40+n the type name (UTF-8), then the value's bytes
//! ```

/// What every frame starts with ("ferry" and a format number): a frame of
/// another version or of something else is refused by it.
const MAGIC: u64 = u64::from_le_bytes(*b"ferry\0\x01\0");

/// The header's length: what follows it stays 16-byte aligned.
pub(crate) const HEADER: usize = 16;

/// An archived control message follows.
const MESSAGE: u8 = 1;

/// A tagged value follows.
const VALUE: u8 = 2;

/// Where a value frame's type name starts.
const NAME_AT: usize = HEADER + 24;

/// A frame, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// An archived control message (not validated yet).
    Message(&'a [u8]),
    /// A value sent under a tag.
    Value(Value<'a>),
}

/// A value sent under a tag: the `seq`-th its sender sent this rank under
/// `tag`, of type `type_name`, as `bytes`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Value<'a> {
    pub(crate) tag: u64,
    pub(crate) seq: u64,
    pub(crate) type_name: &'a str,
    pub(crate) bytes: &'a [u8],
}

/// Appends the header of a frame of `kind` to `buffer`.
fn header(buffer: &mut Vec<u8>, kind: u8) {
    buffer.extend_from_slice(&MAGIC.to_le_bytes());
    buffer.push(kind);
    buffer.extend_from_slice(&[0; HEADER - 9]);
}

/// Starts a message frame in `buffer`: its archive is appended after.
pub(crate) fn message_header(buffer: &mut Vec<u8>) {
    header(buffer, MESSAGE);
}

/// Writes `value` as a frame into `buffer` (cleared first).
pub(crate) fn write_value(buffer: &mut Vec<u8>, value: &Value<'_>) {
    buffer.clear();
    buffer.reserve(NAME_AT + value.type_name.len() + value.bytes.len());
    header(buffer, VALUE);
    buffer.extend_from_slice(&value.tag.to_le_bytes());
    buffer.extend_from_slice(&value.seq.to_le_bytes());
    // A type name is far shorter than 4 GiB; a longer one is cut at a
    // character (and then names another type, which the receiver's get
    // refuses).
    let name = value.type_name;
    let mut cut = name.len().min(u32::MAX as usize);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let name = &name.as_bytes()[..cut];
    buffer.extend_from_slice(&(name.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&[0; 4]);
    buffer.extend_from_slice(name);
    buffer.extend_from_slice(value.bytes);
}

/// Reads `bytes` as a frame, or says why it is not one.
pub(crate) fn read(bytes: &[u8]) -> Result<Frame<'_>, String> {
    let Some((head, rest)) = bytes.split_first_chunk::<HEADER>() else {
        return Err(format!("a frame of {} bytes has no header", bytes.len()));
    };
    let magic = u64::from_le_bytes(head[..8].try_into().expect("8 of 16 bytes"));
    if magic != MAGIC {
        return Err(format!(
            "a frame starts with {magic:#018x}, not Ferry's header"
        ));
    }
    match head[8] {
        MESSAGE => Ok(Frame::Message(rest)),
        VALUE => read_value(rest).map(Frame::Value),
        kind => Err(format!("a frame of unknown kind {kind}")),
    }
}

/// A value frame's body (what follows its header).
fn read_value(body: &[u8]) -> Result<Value<'_>, String> {
    let word = |at: usize| -> Option<[u8; 8]> { body.get(at..at + 8)?.try_into().ok() };
    let (Some(tag), Some(seq), Some(len)) = (word(0), word(8), word(16)) else {
        return Err(format!(
            "a value frame of {} bytes is cut",
            body.len() + HEADER
        ));
    };
    let len = u32::from_le_bytes(len[..4].try_into().expect("4 of 8 bytes")) as usize;
    let at = NAME_AT - HEADER;
    let Some(name) = at.checked_add(len).and_then(|end| body.get(at..end)) else {
        return Err(format!(
            "a value frame's type name of {len} bytes passes its end ({} bytes)",
            body.len() + HEADER
        ));
    };
    let type_name = std::str::from_utf8(name)
        .map_err(|e| format!("a value frame's type name is not UTF-8: {e}"))?;
    Ok(Value {
        tag: u64::from_le_bytes(tag),
        seq: u64::from_le_bytes(seq),
        type_name,
        bytes: body.get(at + len..).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value() -> Value<'static> {
        Value {
            tag: 0x0102_0304_0506_0708,
            seq: 9,
            type_name: "alloc::vec::Vec<u8>",
            bytes: &[1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn a_value_frame_reads_back_as_written() {
        let mut frame = vec![0xAA; 3]; // cleared by the write
        write_value(&mut frame, &value());
        assert_eq!(frame.len(), NAME_AT + 19 + 5);
        assert_eq!(read(&frame), Ok(Frame::Value(value())));
        let empty = Value {
            type_name: "",
            bytes: &[],
            ..value()
        };
        write_value(&mut frame, &empty);
        assert_eq!(read(&frame), Ok(Frame::Value(empty)));
    }

    #[test]
    fn a_message_frame_hands_over_what_follows_its_header() {
        let mut frame = Vec::new();
        message_header(&mut frame);
        assert_eq!(frame.len(), HEADER);
        frame.extend_from_slice(b"archive");
        assert_eq!(read(&frame), Ok(Frame::Message(b"archive")));
    }

    #[test]
    fn every_cut_or_damaged_frame_is_refused_with_a_reason() {
        let mut frame = Vec::new();
        write_value(&mut frame, &value());
        // Cut anywhere before the value's bytes: refused, never a panic.
        for end in 0..NAME_AT + 19 {
            let e = read(&frame[..end]).unwrap_err();
            assert!(!e.is_empty());
        }
        let mut other = frame.clone();
        other[0] ^= 1;
        assert!(read(&other).unwrap_err().contains("not Ferry's header"));
        let mut kind = frame.clone();
        kind[8] = 9;
        assert!(read(&kind).unwrap_err().contains("unknown kind 9"));
        let mut long = frame.clone();
        long[HEADER + 16..HEADER + 20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&long).unwrap_err().contains("passes its end"));
        let mut bad = frame.clone();
        bad[NAME_AT] = 0xFF;
        assert!(read(&bad).unwrap_err().contains("UTF-8"));
        assert!(read(&[0xFF; 24]).is_err(), "garbage");
    }
}
