//! One connection carrying several sessions (RFC 4975 §5.4: a connection is not tied
//! to one session; an endpoint may send the chunks of several sessions over it, and
//! the receiver tells them apart by the session URI in To-Path).
//!
//! [`SharedConnection`] owns the connection: a reader task that routes each incoming
//! frame to the session whose URI is its To-Path (§7.3: a request for no session here
//! is answered 481; a response or REPORT for none is dropped, as they are never
//! answered), and a writer task that serializes the sessions' outgoing chunks. Each
//! [`SharedSession`] sends and receives its own chunks.
//!
//! [`SharedConnection::attach_stream`] gives a session an [`MsrpStream`] of its own over
//! the shared connection (frames in, frames out), so everything built on a stream
//! (an [`super::MsrpTransport`], binding, relay AUTH, the session drivers) works unchanged
//! on a shared connection; [`ConnectionPool`] finds the connection to reuse.
//!
//! The sessions share the connection's ordering: a session that stops reading holds
//! its bounded queue, then the reader waits for it (TCP head-of-line blocking, which a
//! shared connection cannot avoid); sessions that need isolation use their own
//! connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use huddle_msrp::{Chunk, Method, MsrpUri, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Framed, FramedRead, FramedWrite};

use super::stream::MsrpStream;
use super::{TransportOptions, connect::ConnectError};
use crate::codec::MsrpCodec;

/// Largest body of our own sessions' frames decoded whole on the way out.
const OWN_FRAME_MAX: usize = 1 << 30;
/// Bytes buffered between a session's stream and the connection.
const PIPE_BYTES: usize = 64 * 1024;
/// Chunks queued per session before the reader waits for it.
const SESSION_QUEUE: usize = 64;
/// Chunks queued for writing before senders wait.
const WRITE_QUEUE: usize = 256;

type Routes = Arc<Mutex<HashMap<MsrpUri, mpsc::Sender<Chunk>>>>;

/// A connection shared by sessions. Dropping it closes the connection.
#[derive(Debug)]
pub struct SharedConnection {
    routes: Routes,
    out: mpsc::Sender<Chunk>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    addrs: Option<(SocketAddr, SocketAddr)>,
    secure: bool,
    limits: huddle_msrp::Limits,
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Why a shared session cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The connection is closed.
    #[error("the shared connection is closed")]
    Closed,
}

impl SharedConnection {
    /// Starts sharing `stream` (connected, TCP or TLS).
    pub fn new(stream: MsrpStream, options: &TransportOptions) -> SharedConnection {
        Self::start(stream, options, None)
    }

    /// Like [`SharedConnection::new`], but frames for no attached session are handed to
    /// the returned receiver instead of being refused (an accepting side learns of a new
    /// session from its binding SEND, attaches it, and refuses the rest with
    /// [`SharedConnection::refuse`]).
    pub fn with_unrouted(
        stream: MsrpStream,
        options: &TransportOptions,
    ) -> (SharedConnection, mpsc::Receiver<Chunk>) {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        (Self::start(stream, options, Some(tx)), rx)
    }

    /// Answers a request for no session here with 481 (RFC 4975 §7.3); responses and
    /// REPORTs are never answered.
    pub async fn refuse(&self, chunk: &Chunk) {
        refuse(&self.out, chunk).await;
    }

    fn start(
        stream: MsrpStream,
        options: &TransportOptions,
        unrouted: Option<mpsc::Sender<Chunk>>,
    ) -> SharedConnection {
        let addrs = stream.local_addr().ok().zip(stream.peer_addr().ok());
        let secure = stream.is_secure();
        let (rd, wr) = tokio::io::split(stream);
        let routes: Routes = Arc::default();
        let (out_tx, mut out_rx) = mpsc::channel::<Chunk>(WRITE_QUEUE);
        let mut sink = FramedWrite::new(wr, MsrpCodec::new(options.limits));
        let writer = tokio::spawn(async move {
            while let Some(first) = out_rx.recv().await {
                if sink.feed(&first).await.is_err() {
                    break;
                }
                // Everything already queued shares one flush.
                while let Ok(next) = out_rx.try_recv() {
                    if sink.feed(&next).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<&Chunk>::flush(&mut sink).await.is_err() {
                    break;
                }
            }
        });
        let mut frames = FramedRead::new(rd, MsrpCodec::new(options.limits));
        let reader_routes = routes.clone();
        let reader_out = out_tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(item) = frames.next().await {
                match item {
                    Ok(Ok(chunk)) => {
                        route(&reader_routes, &reader_out, unrouted.as_ref(), chunk).await
                    }
                    // A bad frame that left the stream usable: answer it (RFC 4975 §7.2).
                    Ok(Err(bad)) => {
                        if let Some(resp) = bad.response() {
                            let _ = reader_out.send(resp).await;
                        }
                    }
                    Err(_) => break,
                }
            }
            // The connection is gone: every session sees its queue end.
            reader_routes.lock().expect("routes lock poisoned").clear();
        });
        SharedConnection {
            routes,
            out: out_tx,
            reader,
            writer,
            addrs,
            secure,
            limits: options.limits,
        }
    }

    /// Our socket address on the connection.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.map(|a| a.0)
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.addrs.map(|a| a.1)
    }

    /// True for TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// True once the connection failed or was closed: new sessions must not use it.
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished() || self.writer.is_finished()
    }

    /// Adds a session whose URI is `local_uri` and returns its own [`MsrpStream`] over
    /// this connection ([`MsrpStream::Shared`]): frames written to it go out on the
    /// connection, frames for `local_uri` come out of it. The stream keeps the
    /// connection open; the session is detached when the stream is dropped or shut
    /// down, and the stream ends when the connection closes.
    pub fn attach_stream(self: &Arc<Self>, local_uri: MsrpUri) -> Result<MsrpStream, ConnectError> {
        let (local, peer) = self.addrs.ok_or_else(|| {
            ConnectError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "the shared connection has no socket address",
            ))
        })?;
        if self.is_closed() {
            return Err(ConnectError::Transport(super::TransportError::Closed));
        }
        let session = self.attach(local_uri)?;
        let (mine, theirs) = tokio::io::duplex(PIPE_BYTES);
        tokio::spawn(pump(session, theirs, Arc::clone(self), self.limits));
        Ok(MsrpStream::Shared(Box::new(SharedStream {
            io: mine,
            local,
            peer,
            secure: self.secure,
        })))
    }

    /// Adds a session whose URI is `local_uri` (its To-Path on incoming frames).
    pub fn attach(&self, local_uri: MsrpUri) -> Result<SharedSession, ConnectError> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut routes = self.routes.lock().expect("routes lock poisoned");
        if routes.contains_key(&local_uri) {
            return Err(ConnectError::Duplicate);
        }
        routes.insert(local_uri.clone(), tx);
        Ok(SharedSession {
            local_uri,
            rx,
            out: self.out.clone(),
            routes: self.routes.clone(),
        })
    }

    /// Sessions attached.
    pub fn sessions(&self) -> usize {
        self.routes.lock().expect("routes lock poisoned").len()
    }
}

async fn route(
    routes: &Routes,
    out: &mpsc::Sender<Chunk>,
    unrouted: Option<&mpsc::Sender<Chunk>>,
    chunk: Chunk,
) {
    // RFC 4975 §7.3: an endpoint is the last hop, so To-Path holds exactly its URI.
    let target = match chunk.to_path() {
        Ok(to) if to.len() == 1 => routes
            .lock()
            .expect("routes lock poisoned")
            .get(&to[0])
            .cloned(),
        _ => None,
    };
    match target {
        Some(tx) => {
            // A session that went away between lookup and send is a session that does
            // not exist any more.
            if let Err(mpsc::error::SendError(chunk)) = tx.send(chunk).await {
                refuse(out, &chunk).await;
            }
        }
        None => match unrouted {
            Some(u) => {
                if let Err(mpsc::error::SendError(chunk)) = u.send(chunk).await {
                    refuse(out, &chunk).await;
                }
            }
            None => refuse(out, &chunk).await,
        },
    }
}

async fn refuse(out: &mpsc::Sender<Chunk>, chunk: &Chunk) {
    // Responses and REPORTs are never answered (RFC 4975 §7.1.2, §7.2).
    if chunk.method().is_some_and(|m| *m != Method::REPORT)
        && let Some(resp) = chunk.response(
            StatusCode::SESSION_DOES_NOT_EXIST,
            StatusCode::SESSION_DOES_NOT_EXIST.canonical_reason(),
        )
    {
        let _ = out.send(resp).await;
    }
}

/// One session on a [`SharedConnection`]. Dropping it detaches the session (later
/// requests for it are answered 481).
#[derive(Debug)]
pub struct SharedSession {
    local_uri: MsrpUri,
    rx: mpsc::Receiver<Chunk>,
    out: mpsc::Sender<Chunk>,
    routes: Routes,
}

impl SharedSession {
    /// This session's URI.
    pub fn local_uri(&self) -> &MsrpUri {
        &self.local_uri
    }

    /// Queues a chunk for the connection (waits while the write queue is full).
    pub async fn send(&self, chunk: Chunk) -> Result<(), SharedError> {
        self.out.send(chunk).await.map_err(|_| SharedError::Closed)
    }

    /// The next frame for this session (requests and responses); `None` once the
    /// connection closed.
    pub async fn recv(&mut self) -> Option<Chunk> {
        self.rx.recv().await
    }
}

impl Drop for SharedSession {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&self.local_uri);
        }
    }
}

/// Moves one session's frames between its stream (the other end of `io`) and the
/// shared connection, holding the connection open meanwhile.
async fn pump(
    mut session: SharedSession,
    io: DuplexStream,
    conn: Arc<SharedConnection>,
    mut limits: huddle_msrp::Limits,
) {
    // What comes out of `io` is our own session's frames, already in memory: decode them
    // whole, so a chunk above the connection's segment size still leaves as one frame
    // with one transaction id (segments would each be re-encoded as a frame of their own).
    limits.max_body_in_memory = limits.max_body_in_memory.max(OWN_FRAME_MAX);
    let mut framed = Framed::new(io, MsrpCodec::new(limits));
    loop {
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(Ok(chunk))) => {
                    if session.send(chunk).await.is_err() {
                        break;
                    }
                }
                // Our own session wrote it; a frame the decoder refuses cannot go out.
                Some(Ok(Err(_))) => {}
                // The session's side closed its stream.
                Some(Err(_)) | None => break,
            },
            incoming = session.recv() => match incoming {
                Some(chunk) => {
                    if framed.send(chunk).await.is_err() {
                        break;
                    }
                }
                // The connection closed: the session's stream ends.
                None => break,
            },
        }
    }
    let _ = SinkExt::<Chunk>::close(&mut framed).await;
    drop(session);
    drop(conn);
}

/// One session's stream over a [`SharedConnection`] (inside [`MsrpStream::Shared`]).
#[derive(Debug)]
pub struct SharedStream {
    io: DuplexStream,
    local: SocketAddr,
    peer: SocketAddr,
    secure: bool,
}

impl SharedStream {
    /// The shared connection's local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The shared connection's peer address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// True when the shared connection is TLS.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
}

impl AsyncRead for SharedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SharedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Where a URI's connection goes: RFC 4975 §6.1 compares the scheme, the authority
/// (host case-insensitively, the port with 2855 as default) and the transport.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Authority {
    secure: bool,
    host: String,
    port: u16,
    transport: String,
}

impl Authority {
    fn of(uri: &MsrpUri) -> Authority {
        Authority {
            secure: uri.secure(),
            host: uri.host().to_string().to_ascii_lowercase(),
            port: uri.effective_port(),
            transport: uri.transport().to_ascii_lowercase(),
        }
    }
}

/// Connections shared by the sessions that go to the same place (RFC 4975 §5.4: a
/// session may use an existing connection whose URI authority matches the first URI of
/// its path). Connectors given a pool (`with_pool`) take their connection from it:
/// the first session to a peer or relay connects, later ones attach to the same
/// connection, which stays open while any of them uses it. Clones share the pool.
///
/// Opt-in: sessions on one connection share its ordering and its fate (a session that
/// stops reading holds the others back; a cut ends them all), which not every
/// application wants.
#[derive(Debug, Clone, Default)]
pub struct ConnectionPool {
    conns: Arc<tokio::sync::Mutex<HashMap<Authority, Weak<SharedConnection>>>>,
}

impl ConnectionPool {
    /// An empty pool.
    pub fn new() -> ConnectionPool {
        ConnectionPool::default()
    }

    /// The open connection to `target`'s authority, or a new one (TLS for `msrps`).
    pub async fn connection(
        &self,
        target: &MsrpUri,
        options: &TransportOptions,
    ) -> Result<Arc<SharedConnection>, ConnectError> {
        let key = Authority::of(target);
        // Held while connecting, so two sessions starting together share one connection.
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&key).and_then(Weak::upgrade)
            && !c.is_closed()
        {
            return Ok(c);
        }
        let stream = MsrpStream::connect(target, &options.tls).await?;
        let conn = Arc::new(SharedConnection::new(stream, options));
        conns.retain(|_, w| w.strong_count() > 0);
        conns.insert(key, Arc::downgrade(&conn));
        Ok(conn)
    }

    /// Adds a connection made elsewhere (e.g. accepted) for sessions going to `target`.
    pub async fn insert(&self, target: &MsrpUri, conn: &Arc<SharedConnection>) {
        self.conns
            .lock()
            .await
            .insert(Authority::of(target), Arc::downgrade(conn));
    }

    /// Connections open and in use.
    pub async fn connections(&self) -> usize {
        self.conns
            .lock()
            .await
            .values()
            .filter_map(Weak::upgrade)
            .filter(|c| !c.is_closed())
            .count()
    }
}
