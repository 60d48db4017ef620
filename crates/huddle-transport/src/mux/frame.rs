//! The multiplexer's wire format.
//!
//! huddle's own framing (Carrier documents channels inside a stream but no wire format):
//! after an 8-byte preface ([`PREFACE`]), each frame is a 9-byte header followed by its
//! payload:
//!
//! ```text
//! +------+----------------+----------------+---------------
//! | kind | channel (u32)  | length (u32)   | payload ...
//! +------+----------------+----------------+---------------
//! ```
//!
//! All integers are big-endian. Channel 0 is the connection itself (PING, PONG, GOAWAY);
//! the side that dialed the connection ([`Role::Client`](super::Role::Client)) numbers its
//! channels with odd ids, the other side with even ids, so both can open channels without
//! agreeing first. Ids are never reused within a connection.
//!
//! `DATA` payloads are streamed (a receiver may hand out part of a payload before the
//! rest arrives) and bounded only by the receiver's credit; every other payload is small
//! and bounded by [`MAX_CONTROL_PAYLOAD`].

use bytes::{BufMut, BytesMut};

/// The bytes each side sends first, so a peer speaking something else fails fast.
pub const PREFACE: &[u8; 8] = b"HMUX/1.0";

/// Size of a frame header.
pub const HEADER_LEN: usize = 9;

/// Largest payload of a frame other than DATA (an OPEN with the longest service name).
pub const MAX_CONTROL_PAYLOAD: usize = 4 + MAX_SERVICE_LEN;

/// Longest service name, in bytes of UTF-8.
pub const MAX_SERVICE_LEN: usize = 255;

/// Frame kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Channel data.
    Data = 0,
    /// Open a channel: initial window (u32) then the service name (UTF-8).
    Open = 1,
    /// Accept an open: initial window (u32).
    Accept = 2,
    /// Refuse an open: reason (u8).
    Refuse = 3,
    /// Grant more credit: increment (u32).
    Credit = 4,
    /// The sender will send no more data on this channel (half-close).
    Fin = 5,
    /// Close a channel in both directions: reason (u8).
    Close = 6,
    /// Keep-alive probe: opaque (u64), echoed by PONG.
    Ping = 7,
    /// Keep-alive answer: the PING's opaque value (u64).
    Pong = 8,
    /// The connection ends: code (u8).
    GoAway = 9,
}

impl Kind {
    /// The kind for a wire byte, if known.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Kind::Data,
            1 => Kind::Open,
            2 => Kind::Accept,
            3 => Kind::Refuse,
            4 => Kind::Credit,
            5 => Kind::Fin,
            6 => Kind::Close,
            7 => Kind::Ping,
            8 => Kind::Pong,
            9 => Kind::GoAway,
            _ => return None,
        })
    }
}

/// Why a channel was closed (Carrier's `CloseReason`: normal, timeout, error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The application closed it.
    Normal,
    /// A timer expired: the open was not answered, or the connection's keep-alive failed.
    Timeout,
    /// An error (a protocol error on the connection, or the application gave up).
    Error,
    /// A reason code this version does not know, kept as received.
    Other(u8),
}

impl CloseReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            CloseReason::Normal => 0,
            CloseReason::Timeout => 1,
            CloseReason::Error => 2,
            CloseReason::Other(c) => c,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => CloseReason::Normal,
            1 => CloseReason::Timeout,
            2 => CloseReason::Error,
            c => CloseReason::Other(c),
        }
    }
}

/// Why an open was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// The application said no.
    Refused,
    /// No one serves this service name.
    UnknownService,
    /// Too many channels or too many unanswered opens on the connection.
    Busy,
    /// A reason code this version does not know, kept as received.
    Other(u8),
}

impl RefuseReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            RefuseReason::Refused => 0,
            RefuseReason::UnknownService => 1,
            RefuseReason::Busy => 2,
            RefuseReason::Other(c) => c,
        }
    }

    /// The reason for a wire code.
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => RefuseReason::Refused,
            1 => RefuseReason::UnknownService,
            2 => RefuseReason::Busy,
            c => RefuseReason::Other(c),
        }
    }
}

/// Why a connection ended (the GOAWAY code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GoAwayCode {
    /// The sender is done.
    Normal,
    /// The sender saw a frame it could not accept.
    ProtocolError,
    /// The receiver of the GOAWAY sent more than its credit.
    FlowControl,
    /// The sender heard nothing within its keep-alive timeout.
    Timeout,
    /// A code this version does not know, kept as received.
    Other(u8),
}

impl GoAwayCode {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            GoAwayCode::Normal => 0,
            GoAwayCode::ProtocolError => 1,
            GoAwayCode::FlowControl => 2,
            GoAwayCode::Timeout => 3,
            GoAwayCode::Other(c) => c,
        }
    }

    /// The code for a wire byte.
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => GoAwayCode::Normal,
            1 => GoAwayCode::ProtocolError,
            2 => GoAwayCode::FlowControl,
            3 => GoAwayCode::Timeout,
            c => GoAwayCode::Other(c),
        }
    }
}

/// Appends a frame header.
pub fn put_header(out: &mut BytesMut, kind: Kind, channel: u32, len: usize) {
    debug_assert!(u32::try_from(len).is_ok());
    out.put_u8(kind as u8);
    out.put_u32(channel);
    out.put_u32(len as u32);
}

/// Appends a frame whose payload is one u32.
pub fn put_u32_frame(out: &mut BytesMut, kind: Kind, channel: u32, v: u32) {
    put_header(out, kind, channel, 4);
    out.put_u32(v);
}

/// Appends a frame whose payload is one byte.
pub fn put_u8_frame(out: &mut BytesMut, kind: Kind, channel: u32, v: u8) {
    put_header(out, kind, channel, 1);
    out.put_u8(v);
}

/// Appends a frame whose payload is one u64.
pub fn put_u64_frame(out: &mut BytesMut, kind: Kind, channel: u32, v: u64) {
    put_header(out, kind, channel, 8);
    out.put_u64(v);
}

/// Appends an OPEN frame.
pub fn put_open(out: &mut BytesMut, channel: u32, window: u32, service: &str) {
    put_header(out, Kind::Open, channel, 4 + service.len());
    out.put_u32(window);
    out.put_slice(service.as_bytes());
}
