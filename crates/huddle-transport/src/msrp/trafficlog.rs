//! Traffic logging (msrplib's `trafficlog`): every frame sent and received, and the
//! connection's life, handed to a [`TrafficLogger`].
//!
//! Loggers get borrowed `&Chunk`s: nothing is copied or encoded unless the logger
//! decides to. The default, [`TracingLogger`], writes to the `tracing` target
//! [`TRAFFIC_TARGET`]: a one-line summary at DEBUG and the whole frame (body escaped,
//! written straight from the chunk's `Bytes`) at TRACE, both evaluated only when enabled.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use huddle_msrp::{Chunk, StartLine};

/// The `tracing` target of [`TracingLogger`].
pub const TRAFFIC_TARGET: &str = "huddle::msrp::traffic";

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the peer.
    In,
    /// Sent to the peer.
    Out,
}

/// The connection a log record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Our socket address.
    pub local: SocketAddr,
    /// The peer's socket address.
    pub peer: SocketAddr,
    /// TLS (`msrps`).
    pub secure: bool,
}

/// Something that happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent<'a> {
    /// The connection is open (after the TLS handshake, if any).
    Opened,
    /// The peer closed it.
    PeerClosed,
    /// It failed; the text says why.
    Failed(&'a str),
    /// The peer sent a frame that broke the stream (the connection is closed).
    Garbage(&'a str),
}

/// Receives every frame and connection event. Called inline on the I/O path: keep it
/// cheap and do not block.
pub trait TrafficLogger: Send + Sync + 'static {
    /// A frame went in or out. Segments of large chunks are logged as they are read.
    fn frame(&self, conn: &ConnectionInfo, dir: Direction, chunk: &Chunk);

    /// Raw bytes written with `MsrpTransport::write` (not parsed as a frame).
    fn raw(&self, conn: &ConnectionInfo, dir: Direction, bytes: &[u8]) {
        let _ = (conn, dir, bytes);
    }

    /// A connection event.
    fn event(&self, conn: &ConnectionInfo, event: ConnectionEvent<'_>) {
        let _ = (conn, event);
    }
}

/// A shared logger handle.
pub type SharedLogger = Arc<dyn TrafficLogger>;

/// The default logger: `tracing` events on [`TRAFFIC_TARGET`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingLogger;

impl TracingLogger {
    /// As a [`SharedLogger`].
    pub fn shared() -> SharedLogger {
        Arc::new(TracingLogger)
    }
}

impl TrafficLogger for TracingLogger {
    fn frame(&self, conn: &ConnectionInfo, dir: Direction, chunk: &Chunk) {
        if tracing::enabled!(target: TRAFFIC_TARGET, tracing::Level::TRACE) {
            tracing::trace!(
                target: TRAFFIC_TARGET,
                local = %conn.local,
                peer = %conn.peer,
                dir = ?dir,
                "\n{}",
                FrameText(chunk)
            );
        } else {
            tracing::debug!(
                target: TRAFFIC_TARGET,
                local = %conn.local,
                peer = %conn.peer,
                dir = ?dir,
                tid = %chunk.transaction_id,
                start = %StartText(chunk),
                message_id = chunk.message_id().unwrap_or(""),
                body_len = chunk.body_len().unwrap_or(0),
                flag = %(chunk.flag.as_byte() as char),
                segment = chunk.segment,
            );
        }
    }

    fn raw(&self, conn: &ConnectionInfo, dir: Direction, bytes: &[u8]) {
        tracing::trace!(
            target: TRAFFIC_TARGET,
            local = %conn.local,
            peer = %conn.peer,
            dir = ?dir,
            raw = %bytes.escape_ascii(),
        );
    }

    fn event(&self, conn: &ConnectionInfo, event: ConnectionEvent<'_>) {
        tracing::debug!(
            target: TRAFFIC_TARGET,
            local = %conn.local,
            peer = %conn.peer,
            secure = conn.secure,
            event = ?event,
        );
    }
}

/// `SEND`, or `200 OK`.
struct StartText<'a>(&'a Chunk);

impl fmt::Display for StartText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.start {
            StartLine::Request(m) => f.write_str(m.as_str()),
            StartLine::Response { status, comment } => {
                write!(f, "{status}")?;
                if let Some(c) = comment {
                    write!(f, " {c}")?;
                }
                Ok(())
            }
        }
    }
}

/// The frame as it is on the wire, body bytes escaped; written from the chunk without
/// building an intermediate buffer.
pub struct FrameText<'a>(pub &'a Chunk);

impl fmt::Display for FrameText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        writeln!(f, "MSRP {} {}", c.transaction_id, StartText(c))?;
        for (name, value) in c.headers().iter() {
            writeln!(f, "{name}: {value}")?;
        }
        if let Some(body) = c.body() {
            writeln!(f)?;
            writeln!(f, "{}", body.escape_ascii())?;
        }
        match c.segment {
            Some(n) => write!(
                f,
                "-------{}{} (segment {n})",
                c.transaction_id,
                c.flag.as_byte() as char
            ),
            None => write!(f, "-------{}{}", c.transaction_id, c.flag.as_byte() as char),
        }
    }
}

impl fmt::Debug for FrameText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
