//! MSRP connections (RFC 4975, RFC 4976), with msrplib's abilities:
//!
//! - [`MsrpStream`]: TCP or TLS (`msrps`) under a connection.
//! - [`MsrpTransport`]: one connection bound to a session: make chunks with its paths,
//!   write, read whole or bounded segments, check incoming SENDs (481 otherwise).
//! - [`connect`]: [`ConnectorDirect`], [`AcceptorDirect`], [`ConnectorRelay`],
//!   [`AcceptorRelay`]: `prepare` → the full local path for SDP `a=path`,
//!   `complete(remote_path)` → a bound transport, `cleanup`. One use each.
//! - [`MsrpServer`]: one listening socket shared by many sessions.
//! - [`SharedConnection`]: one connection carrying several sessions (RFC 4975 §5.4);
//!   [`ConnectionPool`]: connectors given one (`with_pool`) reuse the connection to a
//!   peer or relay that another session already opened.
//! - [`trafficlog`]: every frame in and out, to `tracing` or a user logger.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_msrp::header::HeaderError;
use huddle_msrp::uri::Host;
use huddle_msrp::{Limits, MsrpUri, UriError};

pub mod connect;
pub mod server;
pub mod shared;
pub mod stream;
pub mod trafficlog;
pub mod transport;

pub use connect::{
    AcceptorDirect, AcceptorRelay, ConnectError, ConnectorActpass, ConnectorDirect, ConnectorRelay,
    MsrpConnector,
};
pub use server::MsrpServer;
pub use shared::{ConnectionPool, SharedConnection, SharedError, SharedSession, SharedStream};
pub use stream::{MsrpStream, StreamError, TlsSettings};
pub use trafficlog::{SharedLogger, TracingLogger, TrafficLogger};
pub use transport::{MsrpTransport, TransportError, TransportParts};

/// Settings shared by transports, connectors and servers.
#[derive(Clone)]
pub struct TransportOptions {
    /// Decoder bounds (bodies above `max_body_in_memory` arrive as segments).
    pub limits: Limits,
    /// Where frames are logged.
    pub logger: SharedLogger,
    /// TLS for `msrps` URIs.
    pub tls: TlsSettings,
    /// How long binding (the empty SEND exchange) may take.
    pub bind_timeout: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            limits: Limits::default(),
            logger: TracingLogger::shared(),
            tls: TlsSettings::default(),
            bind_timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportOptions")
            .field("limits", &self.limits)
            .field("tls", &self.tls)
            .field("bind_timeout", &self.bind_timeout)
            .finish_non_exhaustive()
    }
}

/// Why an incoming SEND does not belong to a session (answered with 481).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionMismatch {
    /// Only SEND requests bind or carry session data here.
    #[error("not a SEND request")]
    NotSend,
    /// To-Path is not exactly our URI.
    #[error("To-Path {got:?} is not {expected:?}")]
    ToPath {
        /// Our URI.
        expected: String,
        /// The request's To-Path.
        got: String,
    },
    /// From-Path does not end with the remote endpoint's URI.
    #[error("From-Path {got:?} does not end with {expected:?}")]
    FromPath {
        /// The remote endpoint's URI.
        expected: String,
        /// The request's From-Path.
        got: String,
    },
    /// A path did not parse.
    #[error("bad path: {0}")]
    BadPath(HeaderError),
}

/// An MSRP URI for a socket address: `msrp[s]://IP:PORT/SESSION;tcp`, with a random
/// session id (RFC 4975 §14.1: session ids have at least 80 bits of randomness) unless
/// one is given.
pub fn uri_for(
    addr: SocketAddr,
    secure: bool,
    session_id: Option<&str>,
) -> Result<MsrpUri, UriError> {
    let sid = match session_id {
        Some(s) => s.to_owned(),
        None => new_session_id(),
    };
    MsrpUri::new(
        secure,
        Host::from(addr.ip()),
        Some(addr.port()),
        Some(&sid),
        "tcp",
    )
}

/// A fresh session id (≈ 95 bits of randomness; RFC 4975 §14.1 asks for ≥ 80).
pub fn new_session_id() -> String {
    huddle_msrp::ids::random_token()
}
