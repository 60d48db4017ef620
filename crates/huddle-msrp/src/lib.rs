//! # huddle-msrp: the MSRP wire codec
//!
//! Bytes in, typed values out and back, for the Message Session Relay Protocol
//! (RFC 4975) and its relay extensions (RFC 4976), with the pieces every MSRP
//! application needs beside the chunk codec: MSRP URIs (§9), message splitting and
//! reassembly (§5.1, §7.1.1), REPORT and response builders (§7.1.2, §7.2), CPIM
//! (RFC 3862) and the SDP attributes of RFC 4975 §8 and RFC 5547.
//!
//! What this crate deliberately does **not** do: sockets, timers, tokio, clocks or any
//! protocol decision that needs state beyond one chunk stream. It is sans-IO: the
//! [`Decoder`] follows tokio-util's `Decoder` contract (`Ok(None)` = need more bytes,
//! `Err` with [`DecodeError::is_fatal`] = the stream is unusable) so `huddle-transport`
//! can wrap it without adding logic.
//!
//! Invariants:
//! - A peer's bytes never make this crate panic, and never make it hold more than the
//!   configured [`Limits`] (plus one read buffer).
//! - Unknown but legal input (extension methods, extension headers, unknown status
//!   codes) survives a decode/encode round trip.
//! - Bodies are zero-copy [`bytes::Bytes`] slices of the read buffer.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod generated;

pub mod chunk;
pub mod cpim;
pub mod decode;
pub mod encode;
pub mod header;
pub mod ids;
pub mod sdp;
pub mod split;
pub mod status;
#[cfg(feature = "summary")]
pub mod summary;
pub mod uri;

pub use chunk::{Chunk, ChunkBuilder, Flag, Method, StartLine, TransactionId};
pub use decode::{DecodeError, DecodeErrorKind, Decoder, Limits};
pub use generated::headers::KnownHeader;
pub use generated::methods::KnownMethod;
pub use header::{ByteRange, HeaderError, HeaderName, Headers, ReportRequest, StatusHeader};
pub use status::StatusCode;
pub use uri::{Host, MsrpUri, UriError, format_path, parse_path};
