//! The byte stream under an MSRP connection: plain TCP (`msrp://`) or TLS (`msrps://`,
//! RFC 4975 §6: "the msrps scheme ... indicates that TLS MUST be used").

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use huddle_msrp::MsrpUri;
use huddle_msrp::uri::Host;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// TLS configuration for `msrps` connections: a client side to connect and a server side
/// to accept. Either may be absent; using an `msrps` URI without the needed side is a
/// [`StreamError::TlsNotConfigured`].
#[derive(Clone, Default)]
pub struct TlsSettings {
    /// Used when connecting to an `msrps` URI.
    pub connector: Option<TlsConnector>,
    /// Used when accepting on an `msrps` URI.
    pub acceptor: Option<TlsAcceptor>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("connector", &self.connector.is_some())
            .field("acceptor", &self.acceptor.is_some())
            .finish()
    }
}

impl TlsSettings {
    /// Client-side TLS from a rustls client configuration.
    pub fn client(config: Arc<rustls::ClientConfig>) -> Self {
        TlsSettings {
            connector: Some(TlsConnector::from(config)),
            acceptor: None,
        }
    }

    /// Server-side TLS from a rustls server configuration.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Self {
        TlsSettings {
            connector: None,
            acceptor: Some(TlsAcceptor::from(config)),
        }
    }

    /// Both sides.
    pub fn both(client: Arc<rustls::ClientConfig>, server: Arc<rustls::ServerConfig>) -> Self {
        TlsSettings {
            connector: Some(TlsConnector::from(client)),
            acceptor: Some(TlsAcceptor::from(server)),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// TCP connect, accept or the TLS handshake failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// An `msrps` URI was used without TLS settings for that side.
    #[error("msrps requires TLS settings that were not configured")]
    TlsNotConfigured,
    /// The URI's host cannot be used as a TLS server name.
    #[error("host {0} is not a valid TLS server name")]
    BadServerName(String),
    /// The URI's host could not be resolved.
    #[error("cannot resolve {0}")]
    Resolve(String),
}

/// A connected MSRP byte stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum MsrpStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, this side connected.
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// TLS, this side accepted.
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// One session's part of a connection shared with other sessions
    /// ([`super::SharedConnection::attach_stream`], RFC 4975 §5.4).
    Shared(Box<super::shared::SharedStream>),
}

impl MsrpStream {
    /// Connects to the host and port of `uri` (RFC 4975 §6: port 2855 when absent), with
    /// TLS when the scheme is `msrps`.
    pub async fn connect(uri: &MsrpUri, tls: &TlsSettings) -> Result<MsrpStream, StreamError> {
        let port = uri.effective_port();
        let tcp = match uri.host() {
            Host::V4(a) => TcpStream::connect(SocketAddr::from((*a, port))).await?,
            Host::V6(a) => TcpStream::connect(SocketAddr::from((*a, port))).await?,
            Host::Name(n) => TcpStream::connect((n.as_str(), port)).await?,
        };
        tcp.set_nodelay(true)?;
        if !uri.secure() {
            return Ok(MsrpStream::Tcp(tcp));
        }
        let connector = tls
            .connector
            .as_ref()
            .ok_or(StreamError::TlsNotConfigured)?;
        let name = match uri.host() {
            Host::V4(a) => ServerName::IpAddress((*a).into()),
            Host::V6(a) => ServerName::IpAddress((*a).into()),
            Host::Name(n) => ServerName::try_from(n.clone())
                .map_err(|_| StreamError::BadServerName(n.clone()))?,
        };
        let s = connector.connect(name, tcp).await?;
        Ok(MsrpStream::TlsClient(Box::new(s)))
    }

    /// Wraps an accepted TCP connection, running the TLS handshake when `secure`.
    pub async fn accept(
        tcp: TcpStream,
        secure: bool,
        tls: &TlsSettings,
    ) -> Result<MsrpStream, StreamError> {
        tcp.set_nodelay(true)?;
        if !secure {
            return Ok(MsrpStream::Tcp(tcp));
        }
        let acceptor = tls.acceptor.as_ref().ok_or(StreamError::TlsNotConfigured)?;
        let s = acceptor.accept(tcp).await?;
        Ok(MsrpStream::TlsServer(Box::new(s)))
    }

    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            MsrpStream::Tcp(s) => Some(s),
            MsrpStream::TlsClient(s) => Some(s.get_ref().0),
            MsrpStream::TlsServer(s) => Some(s.get_ref().0),
            MsrpStream::Shared(_) => None,
        }
    }

    /// The local socket address (of the shared connection for [`MsrpStream::Shared`]).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match (self, self.tcp()) {
            (MsrpStream::Shared(s), _) => Ok(s.local_addr()),
            (_, Some(t)) => t.local_addr(),
            (_, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// The peer's socket address (of the shared connection for [`MsrpStream::Shared`]).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match (self, self.tcp()) {
            (MsrpStream::Shared(s), _) => Ok(s.peer_addr()),
            (_, Some(t)) => t.peer_addr(),
            (_, None) => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// True for TLS.
    pub fn is_secure(&self) -> bool {
        match self {
            MsrpStream::Tcp(_) => false,
            MsrpStream::Shared(s) => s.is_secure(),
            _ => true,
        }
    }
}

impl AsyncRead for MsrpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MsrpStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            MsrpStream::TlsClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MsrpStream::TlsServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MsrpStream::Shared(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MsrpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MsrpStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            MsrpStream::TlsClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MsrpStream::TlsServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MsrpStream::Shared(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MsrpStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MsrpStream::TlsClient(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MsrpStream::TlsServer(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MsrpStream::Shared(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MsrpStream::Tcp(s) => s.is_write_vectored(),
            MsrpStream::TlsClient(s) => s.is_write_vectored(),
            MsrpStream::TlsServer(s) => s.is_write_vectored(),
            MsrpStream::Shared(_) => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MsrpStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            MsrpStream::TlsClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MsrpStream::TlsServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MsrpStream::Shared(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MsrpStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            MsrpStream::TlsClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MsrpStream::TlsServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MsrpStream::Shared(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
