//! Message mode's wire format (huddle's own; AIMCC documents the behaviour, not bytes).
//!
//! Each frame is `length (u32, big-endian, of what follows) | kind (u8) | body`:
//!
//! | kind | name        | body                                                     |
//! |------|-------------|----------------------------------------------------------|
//! | 1    | HELLO       | version (u8) name (UTF-8, the rest)                      |
//! | 2    | WELCOME     | your id (u32) count (u16) then count × (id u32, len u8, name) |
//! | 3    | REJECT      | reason (u8)                                              |
//! | 4    | JOINED      | id (u32) name (UTF-8, the rest)                          |
//! | 5    | LEFT        | id (u32) reason (u8)                                     |
//! | 6    | EJECTED     | id (u32)                                                 |
//! | 7    | DATA        | from (u32) to (u32, `u32::MAX` = everyone) payload       |
//! | 8    | KEEPALIVE   | empty                                                    |
//! | 9    | BYE         | empty                                                    |
//! | 10   | UNDELIVERABLE | to (u32): a DATA for someone who is not in the session |

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version in HELLO.
pub const VERSION: u8 = 1;

/// AIMCC Technote 8: "What is the maximum data size that can be sent in Message mode?
/// 64 KB."
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Longest participant name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// Most participants in a session (the host included), so a WELCOME stays bounded.
pub const MAX_PARTICIPANTS: usize = 255;

/// Largest frame body accepted (a full WELCOME, or a DATA with the largest payload).
pub const MAX_FRAME: usize = 1 + 4 + 2 + MAX_PARTICIPANTS * (4 + 1 + MAX_NAME_LEN);

/// `to` meaning every participant.
pub const TO_ALL: u32 = u32::MAX;

/// A participant's id in its session: the host is 0, others are numbered by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u32);

impl ParticipantId {
    /// The session owner.
    pub const HOST: ParticipantId = ParticipantId(0);
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// Every other participant.
    All,
    /// One participant.
    One(ParticipantId),
}

impl Recipient {
    fn wire(self) -> u32 {
        match self {
            Recipient::All => TO_ALL,
            Recipient::One(p) => p.0,
        }
    }

    fn from_wire(v: u32) -> Self {
        if v == TO_ALL {
            Recipient::All
        } else {
            Recipient::One(ParticipantId(v))
        }
    }
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The name was not invited (or the invitation was cancelled).
    NotInvited,
    /// Someone with this name is already in the session.
    NameTaken,
    /// The session has [`MAX_PARTICIPANTS`].
    Full,
    /// The HELLO's version is not supported.
    BadVersion,
    /// A code this version does not know.
    Other(u8),
}

impl RejectReason {
    fn code(self) -> u8 {
        match self {
            RejectReason::NotInvited => 0,
            RejectReason::NameTaken => 1,
            RejectReason::Full => 2,
            RejectReason::BadVersion => 3,
            RejectReason::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => RejectReason::NotInvited,
            1 => RejectReason::NameTaken,
            2 => RejectReason::Full,
            3 => RejectReason::BadVersion,
            c => RejectReason::Other(c),
        }
    }
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// It said goodbye.
    Left,
    /// Its keep-alive timed out.
    Timeout,
    /// Its connection broke or it sent something invalid.
    Error,
    /// It did not read fast enough and its queue overflowed.
    TooSlow,
    /// A code this version does not know.
    Other(u8),
}

impl LeaveReason {
    fn code(self) -> u8 {
        match self {
            LeaveReason::Left => 0,
            LeaveReason::Timeout => 1,
            LeaveReason::Error => 2,
            LeaveReason::TooSlow => 3,
            LeaveReason::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => LeaveReason::Left,
            1 => LeaveReason::Timeout,
            2 => LeaveReason::Error,
            3 => LeaveReason::TooSlow,
            c => LeaveReason::Other(c),
        }
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A participant introduces itself to the host.
    Hello {
        /// Protocol version.
        version: u8,
        /// Its name.
        name: String,
    },
    /// The host admits a participant: its id and everyone present (itself included).
    Welcome {
        /// The new participant's id.
        you: ParticipantId,
        /// Everyone in the session.
        participants: Vec<(ParticipantId, String)>,
    },
    /// The host refuses a join.
    Reject(RejectReason),
    /// Someone joined.
    Joined(ParticipantId, String),
    /// Someone left.
    Left(ParticipantId, LeaveReason),
    /// The host ejected someone.
    Ejected(ParticipantId),
    /// A message.
    Data {
        /// The sender (set by the host; a participant's own value is ignored).
        from: ParticipantId,
        /// The recipient.
        to: Recipient,
        /// At most [`MAX_PAYLOAD`] bytes.
        payload: Bytes,
    },
    /// Nothing to say, but alive.
    KeepAlive,
    /// The sender leaves (a participant) or ends the session (the host).
    Bye,
    /// A message could not be delivered: its recipient is not in the session.
    Undeliverable(ParticipantId),
}

/// A frame that breaks the format. The connection is unusable after it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame longer than [`MAX_FRAME`] (checked before it is buffered).
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(u32),
    /// A DATA payload over [`MAX_PAYLOAD`].
    #[error("message payload of {0} bytes exceeds 64 KiB")]
    PayloadTooLarge(usize),
    /// An unknown frame kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A body that does not match its kind.
    #[error("malformed {0} frame")]
    Malformed(&'static str),
}

/// Bytes a DATA frame adds to its payload: length, kind, from, to.
pub const DATA_HEADER: usize = 4 + 1 + 4 + 4;

/// Room that any frame but HELLO, WELCOME, JOINED and DATA fits in.
pub(crate) const CONTROL_ROOM: usize = 16;

fn put_len_kind(out: &mut BytesMut, body_len: usize, kind: u8) {
    out.put_u32((1 + body_len) as u32);
    out.put_u8(kind);
}

/// A DATA frame's header for a payload of `len` bytes.
#[inline]
pub(crate) fn data_header(from: ParticipantId, to: Recipient, len: usize) -> [u8; DATA_HEADER] {
    let mut head = [0u8; DATA_HEADER];
    set_data_len(&mut head, len);
    head[4] = 7;
    head[5..9].copy_from_slice(&from.0.to_be_bytes());
    head[9..].copy_from_slice(&to.wire().to_be_bytes());
    head
}

/// Sets the payload length in a DATA header.
#[inline]
pub(crate) fn set_data_len(head: &mut [u8; DATA_HEADER], len: usize) {
    head[..4].copy_from_slice(&((1 + 8 + len) as u32).to_be_bytes());
}

/// Appends a DATA frame (the hot path: no intermediate `Frame`).
pub fn put_data(out: &mut BytesMut, from: ParticipantId, to: Recipient, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let head = data_header(from, to, payload.len());
    out.reserve(DATA_HEADER + payload.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
}

/// The length of the complete DATA frame at the start of `buf` (`None` when there is
/// none).
pub(crate) fn data_frame_len(buf: &[u8]) -> Option<usize> {
    let head: &[u8; DATA_HEADER] = buf.get(..DATA_HEADER)?.try_into().ok()?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    // The checks of `decode`: a DATA body holds at least from and to, and a payload of
    // at most MAX_PAYLOAD.
    (head[4] == 7 && (9..=9 + MAX_PAYLOAD).contains(&len) && buf.len() - 4 >= len)
        .then_some(4 + len)
}

/// The longest run of complete, well-formed DATA frames to `to` at the start of `buf`:
/// its length in bytes and how many frames it holds. `decode` would return each of them
/// as a [`Frame::Data`] to `to`; anything else ends the run (and is left to `decode`).
pub(crate) fn data_run(buf: &[u8], to: ParticipantId) -> (usize, usize) {
    let to = to.0.to_be_bytes();
    let (mut at, mut count) = (0, 0);
    while let Some(n) = data_frame_len(&buf[at..]) {
        if buf[at + 9..at + 13] != to {
            break;
        }
        at += n;
        count += 1;
    }
    (at, count)
}

/// Appends `frame`.
pub fn encode(frame: &Frame, out: &mut BytesMut) {
    match frame {
        Frame::Hello { version, name } => {
            put_len_kind(out, 1 + name.len(), 1);
            out.put_u8(*version);
            out.put_slice(name.as_bytes());
        }
        Frame::Welcome { you, participants } => {
            let body: usize = 6 + participants.iter().map(|(_, n)| 5 + n.len()).sum::<usize>();
            put_len_kind(out, body, 2);
            out.put_u32(you.0);
            out.put_u16(participants.len() as u16);
            for (id, name) in participants {
                out.put_u32(id.0);
                out.put_u8(name.len() as u8);
                out.put_slice(name.as_bytes());
            }
        }
        Frame::Reject(r) => {
            put_len_kind(out, 1, 3);
            out.put_u8(r.code());
        }
        Frame::Joined(id, name) => {
            put_len_kind(out, 4 + name.len(), 4);
            out.put_u32(id.0);
            out.put_slice(name.as_bytes());
        }
        Frame::Left(id, r) => {
            put_len_kind(out, 5, 5);
            out.put_u32(id.0);
            out.put_u8(r.code());
        }
        Frame::Ejected(id) => {
            put_len_kind(out, 4, 6);
            out.put_u32(id.0);
        }
        Frame::Data { from, to, payload } => put_data(out, *from, *to, payload),
        Frame::KeepAlive => put_len_kind(out, 0, 8),
        Frame::Bye => put_len_kind(out, 0, 9),
        Frame::Undeliverable(id) => {
            put_len_kind(out, 4, 10);
            out.put_u32(id.0);
        }
    }
}

fn name(b: &[u8], what: &'static str) -> Result<String, FrameError> {
    if b.len() > MAX_NAME_LEN {
        return Err(FrameError::Malformed(what));
    }
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| FrameError::Malformed(what))
}

/// Decodes the next frame from `buf` (tokio-util's `Decoder` contract: `Ok(None)` = need
/// more bytes). DATA payloads are slices of `buf`, not copies.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len as usize > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    if len == 0 {
        return Err(FrameError::Malformed("empty"));
    }
    if buf.len() < 4 + len as usize {
        buf.reserve(4 + len as usize - buf.len());
        return Ok(None);
    }
    // The hot path: a DATA frame (kind 7) with its 8-byte header present is sliced
    // straight out of `buf`; the checks are those of the general path below.
    if buf[4] == 7 && len >= 9 {
        let payload_len = len as usize - 9;
        if payload_len > MAX_PAYLOAD {
            buf.advance(4 + len as usize);
            return Err(FrameError::PayloadTooLarge(payload_len));
        }
        let from = ParticipantId(u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]));
        let to = Recipient::from_wire(u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]));
        buf.advance(13);
        let payload = buf.split_to(payload_len).freeze();
        return Ok(Some(Frame::Data { from, to, payload }));
    }
    buf.advance(4);
    let mut body = buf.split_to(len as usize);
    let kind = body.get_u8();
    let need = |b: &BytesMut, n: usize, what| {
        if b.len() < n {
            Err(FrameError::Malformed(what))
        } else {
            Ok(())
        }
    };
    let exact = |b: &BytesMut, n: usize, what| {
        if b.len() != n {
            Err(FrameError::Malformed(what))
        } else {
            Ok(())
        }
    };
    Ok(Some(match kind {
        1 => {
            need(&body, 1, "HELLO")?;
            let version = body.get_u8();
            Frame::Hello {
                version,
                name: name(&body, "HELLO")?,
            }
        }
        2 => {
            need(&body, 6, "WELCOME")?;
            let you = ParticipantId(body.get_u32());
            let n = body.get_u16() as usize;
            let mut participants = Vec::with_capacity(n.min(MAX_PARTICIPANTS));
            for _ in 0..n {
                need(&body, 5, "WELCOME")?;
                let id = ParticipantId(body.get_u32());
                let l = body.get_u8() as usize;
                need(&body, l, "WELCOME")?;
                participants.push((id, name(&body.split_to(l), "WELCOME")?));
            }
            exact(&body, 0, "WELCOME")?;
            Frame::Welcome { you, participants }
        }
        3 => {
            exact(&body, 1, "REJECT")?;
            Frame::Reject(RejectReason::from_code(body[0]))
        }
        4 => {
            need(&body, 4, "JOINED")?;
            let id = ParticipantId(body.get_u32());
            Frame::Joined(id, name(&body, "JOINED")?)
        }
        5 => {
            exact(&body, 5, "LEFT")?;
            Frame::Left(
                ParticipantId(body.get_u32()),
                LeaveReason::from_code(body[0]),
            )
        }
        6 => {
            exact(&body, 4, "EJECTED")?;
            Frame::Ejected(ParticipantId(body.get_u32()))
        }
        7 => {
            need(&body, 8, "DATA")?;
            let from = ParticipantId(body.get_u32());
            let to = Recipient::from_wire(body.get_u32());
            if body.len() > MAX_PAYLOAD {
                return Err(FrameError::PayloadTooLarge(body.len()));
            }
            Frame::Data {
                from,
                to,
                payload: body.freeze(),
            }
        }
        8 => {
            exact(&body, 0, "KEEPALIVE")?;
            Frame::KeepAlive
        }
        9 => {
            exact(&body, 0, "BYE")?;
            Frame::Bye
        }
        10 => {
            exact(&body, 4, "UNDELIVERABLE")?;
            Frame::Undeliverable(ParticipantId(body.get_u32()))
        }
        k => return Err(FrameError::UnknownKind(k)),
    }))
}
