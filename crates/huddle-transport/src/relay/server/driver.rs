//! The tokio driver of the relay: listeners, one task per connection (TLS handshake,
//! reader, writer), and one task that owns the [`RelayCore`] and carries out its outputs.
//! No protocol decision is made here.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use huddle_msrp::uri::Host;
use huddle_msrp::{Chunk, DecodeError, Limits, MsrpUri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder as _;

use super::core::{ConnId, Output, RelayConfig, RelayCore};
use super::credentials::CredentialStore;
use super::metrics::RelayMetrics;
use crate::codec::MsrpCodec;

/// One listening socket.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// TLS (`msrps`) when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The relay's URI on this listener, as clients write it (no session-id). Default:
    /// `msrp[s]://<bound address>;tcp`.
    pub uri: Option<MsrpUri>,
}

impl ListenerConfig {
    /// A plain TCP listener.
    pub fn tcp(addr: SocketAddr) -> Self {
        ListenerConfig {
            addr,
            tls: None,
            uri: None,
        }
    }

    /// A TLS listener.
    pub fn tls(addr: SocketAddr, config: Arc<rustls::ServerConfig>) -> Self {
        ListenerConfig {
            addr,
            tls: Some(config),
            uri: None,
        }
    }

    /// Announces `uri` (host, port, scheme) instead of the bound address.
    pub fn with_uri(mut self, uri: MsrpUri) -> Self {
        self.uri = Some(uri);
        self
    }
}

/// Everything a [`RelayServer`] needs besides credentials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The core's policy and limits.
    pub relay: RelayConfig,
    /// Listening sockets.
    pub listeners: Vec<ListenerConfig>,
    /// Decoder limits. `max_body_in_memory` is the largest piece of a body held at once:
    /// bigger chunks are forwarded as they arrive, in pieces of that size.
    pub limits: Limits,
    /// TLS client configuration for `msrps` next hops (none: such hops fail).
    pub tls_client: Option<Arc<rustls::ClientConfig>>,
    /// Bytes of decoded frames one connection may have waiting for the core.
    pub read_budget: usize,
    /// How long a graceful shutdown waits for queued frames to be written.
    pub shutdown_grace: Duration,
    /// How long an outbound connection or a TLS handshake may take.
    pub connect_timeout: Duration,
}

impl ServerConfig {
    /// Defaults with these listeners.
    pub fn new(listeners: Vec<ListenerConfig>) -> Self {
        ServerConfig {
            relay: RelayConfig::default(),
            listeners,
            limits: Limits {
                max_body_in_memory: 64 * 1024,
                ..Limits::default()
            },
            tls_client: None,
            read_budget: 128 * 1024,
            shutdown_grace: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

enum Event {
    Accepted {
        conn: ConnId,
        listener: usize,
        stream: TcpStream,
    },
    Chunk {
        conn: ConnId,
        item: Result<Chunk, DecodeError>,
        end_of_frame: bool,
        read: usize,
        _permit: Option<OwnedSemaphorePermit>,
    },
    Partial {
        conn: ConnId,
        read: usize,
    },
    Connected(ConnId),
    Written(ConnId, usize),
    Closed(ConnId),
}

enum Command {
    Metrics(oneshot::Sender<RelayMetrics>),
    Shutdown,
}

struct ConnHandle {
    tx: mpsc::UnboundedSender<Chunk>,
    gate: watch::Sender<bool>,
}

/// A running relay. Dropping it does not stop it; call [`RelayServer::shutdown`].
#[derive(Debug)]
pub struct RelayServer {
    addrs: Vec<SocketAddr>,
    uris: Vec<MsrpUri>,
    cmd: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl RelayServer {
    /// Binds the listeners and starts serving.
    pub async fn start(config: ServerConfig, credentials: CredentialStore) -> io::Result<Self> {
        if config.listeners.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no listener"));
        }
        let mut sockets = Vec::new();
        let mut addrs = Vec::new();
        let mut uris = Vec::new();
        for l in &config.listeners {
            let sock = TcpListener::bind(l.addr).await?;
            let addr = sock.local_addr()?;
            let uri = match &l.uri {
                Some(u) => u.clone().without_session_id(),
                None => MsrpUri::new(
                    l.tls.is_some(),
                    Host::from(addr.ip()),
                    Some(addr.port()),
                    None,
                    "tcp",
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            };
            sockets.push(sock);
            addrs.push(addr);
            uris.push(uri);
        }
        let core = RelayCore::new(
            config.relay.clone(),
            credentials,
            uris.clone(),
            Instant::now().into_std(),
        );
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let next_id = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut listeners = Vec::new();
        for (i, sock) in sockets.into_iter().enumerate() {
            listeners.push(tokio::spawn(accept_loop(
                sock,
                i,
                ev_tx.clone(),
                next_id.clone(),
            )));
        }
        let driver = Driver {
            core,
            config,
            conns: HashMap::new(),
            ev_tx,
            listeners,
        };
        let task = tokio::spawn(driver.run(ev_rx, cmd_rx));
        Ok(RelayServer {
            addrs,
            uris,
            cmd: cmd_tx,
            task,
        })
    }

    /// The first listener's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Every listener's bound address, in configuration order.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first listener's relay URI (what clients put in To-Path and the digest uri).
    pub fn uri(&self) -> &MsrpUri {
        &self.uris[0]
    }

    /// Every listener's relay URI.
    pub fn uris(&self) -> &[MsrpUri] {
        &self.uris
    }

    /// A snapshot of the counters (`None` once the relay has stopped).
    pub async fn metrics(&self) -> Option<RelayMetrics> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Metrics(tx)).ok()?;
        rx.await.ok()
    }

    /// Graceful shutdown: stop accepting and reading, write what is queued (for at most
    /// the configured grace period), close everything, and wait until done.
    pub async fn shutdown(self) {
        let _ = self.cmd.send(Command::Shutdown);
        let _ = self.task.await;
    }

    /// Waits until the relay stops (after a shutdown).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that can ask for metrics or a shutdown from elsewhere.
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            cmd: self.cmd.clone(),
        }
    }
}

/// Asks a running [`RelayServer`] for metrics or a shutdown.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    cmd: mpsc::UnboundedSender<Command>,
}

impl RelayHandle {
    /// A snapshot of the counters (`None` once the relay has stopped).
    pub async fn metrics(&self) -> Option<RelayMetrics> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Metrics(tx)).ok()?;
        rx.await.ok()
    }

    /// Starts a graceful shutdown (see [`RelayServer::shutdown`]).
    pub fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown);
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Metrics(_) => "Metrics",
            Command::Shutdown => "Shutdown",
        })
    }
}

async fn accept_loop(
    sock: TcpListener,
    listener: usize,
    ev: mpsc::UnboundedSender<Event>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        match sock.accept().await {
            Ok((stream, _peer)) => {
                let conn = ConnId(next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                if ev
                    .send(Event::Accepted {
                        conn,
                        listener,
                        stream,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(target: "huddle::relay", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Driver {
    core: RelayCore,
    config: ServerConfig,
    conns: HashMap<ConnId, ConnHandle>,
    ev_tx: mpsc::UnboundedSender<Event>,
    listeners: Vec<JoinHandle<()>>,
}

impl Driver {
    async fn run(
        mut self,
        mut ev_rx: mpsc::UnboundedReceiver<Event>,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ) {
        let mut deadline: Option<Instant> = None;
        loop {
            let wake = self
                .core
                .poll_timeout()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            let wake = deadline.map_or(wake, |d| d.min(wake));
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Metrics(tx)) => { let _ = tx.send(self.core.metrics()); }
                    Some(Command::Shutdown) | None => {
                        if deadline.is_none() {
                            for l in &self.listeners {
                                l.abort();
                            }
                            self.core.begin_shutdown(Instant::now().into_std());
                            deadline = Some(Instant::now() + self.config.shutdown_grace);
                        }
                    }
                },
                ev = ev_rx.recv() => {
                    let Some(ev) = ev else { return };
                    let now = Instant::now().into_std();
                    self.handle(ev, now);
                    // Take what else is waiting before acting on the outputs.
                    for _ in 0..256 {
                        match ev_rx.try_recv() {
                            Ok(ev) => self.handle(ev, now),
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(wake) => {
                    self.core.handle_timeout(Instant::now().into_std());
                }
            }
            self.dispatch();
            if let Some(d) = deadline
                && (self.core.is_drained() || Instant::now() >= d)
            {
                // Whatever is left is cut.
                self.conns.clear();
                return;
            }
        }
    }

    fn handle(&mut self, ev: Event, now: std::time::Instant) {
        match ev {
            Event::Accepted {
                conn,
                listener,
                stream,
            } => {
                if self.core.handle_accept(conn, listener, now) {
                    let _ = stream.set_nodelay(true);
                    let tls = self.config.listeners[listener].tls.clone();
                    let handle = self.spawn_conn(conn, move |timeout| async move {
                        match tls {
                            None => Ok(Box::new(stream) as BoxedStream),
                            Some(cfg) => {
                                let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                                let tls = tokio::time::timeout(timeout, acceptor.accept(stream))
                                    .await
                                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                                Ok(Box::new(tls) as BoxedStream)
                            }
                        }
                    });
                    self.conns.insert(conn, handle);
                }
            }
            Event::Chunk {
                conn,
                item,
                end_of_frame,
                read,
                _permit,
            } => {
                self.core.handle_bytes_read(conn, read);
                match item {
                    Ok(chunk) => self.core.handle_chunk(conn, chunk, end_of_frame, now),
                    Err(e) => self.core.handle_decode_error(conn, &e, now),
                }
            }
            Event::Partial { conn, read } => {
                self.core.handle_bytes_read(conn, read);
                self.core.handle_partial(conn, now);
            }
            Event::Connected(conn) => self.core.handle_connected(conn, now),
            Event::Written(conn, n) => self.core.handle_written(conn, n, now),
            Event::Closed(conn) => self.core.handle_closed(conn, now),
        }
    }

    fn dispatch(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit { conn, chunk } => {
                    if let Some(h) = self.conns.get(&conn) {
                        let _ = h.tx.send(chunk);
                    }
                }
                Output::PauseRead(conn) => {
                    if let Some(h) = self.conns.get(&conn) {
                        let _ = h.gate.send(true);
                    }
                }
                Output::ResumeRead(conn) => {
                    if let Some(h) = self.conns.get(&conn) {
                        let _ = h.gate.send(false);
                    }
                }
                Output::Close { conn, reason } => {
                    tracing::debug!(target: "huddle::relay", ?conn, ?reason, "close");
                    // Dropping the sender lets the writer flush what is queued and stop;
                    // the reader stops with it.
                    self.conns.remove(&conn);
                }
                Output::Connect { conn, target } => {
                    let tls = self.config.tls_client.clone();
                    let ev = self.ev_tx.clone();
                    let handle = self.spawn_conn(conn, move |timeout| async move {
                        let host = target.host().to_string();
                        let host = host
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_owned();
                        let port = target.effective_port();
                        let tcp = tokio::time::timeout(
                            timeout,
                            TcpStream::connect((host.as_str(), port)),
                        )
                        .await
                        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                        let _ = tcp.set_nodelay(true);
                        let stream: BoxedStream = if target.secure() {
                            let cfg = tls.ok_or_else(|| {
                                io::Error::new(io::ErrorKind::Unsupported, "no TLS client config")
                            })?;
                            let name = rustls_pki_types::ServerName::try_from(host)
                                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                            let tls = tokio::time::timeout(
                                timeout,
                                tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
                            )
                            .await
                            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                            Box::new(tls)
                        } else {
                            Box::new(tcp)
                        };
                        let _ = ev.send(Event::Connected(conn));
                        Ok(stream)
                    });
                    self.conns.insert(conn, handle);
                }
            }
        }
    }

    /// Creates the connection's channels and spawns its task: `open` produces the
    /// stream (accept a TLS handshake, or connect), then the reader and writer run.
    fn spawn_conn<F, Fut>(&self, conn: ConnId, open: F) -> ConnHandle
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = io::Result<BoxedStream>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let (gate, gate_rx) = watch::channel(false);
        let ev = self.ev_tx.clone();
        let limits = self.config.limits;
        let budget = self.config.read_budget.max(1);
        let timeout = self.config.connect_timeout;
        let write_timeout = self.config.relay.write_timeout;
        tokio::spawn(async move {
            let stream = match open(timeout).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(target: "huddle::relay", ?conn, "open failed: {e}");
                    let _ = ev.send(Event::Closed(conn));
                    return;
                }
            };
            let (rd, wr) = tokio::io::split(stream);
            let reader = read_loop(rd, conn, gate_rx, ev.clone(), limits, budget);
            let writer = write_loop(wr, conn, rx, ev, write_timeout);
            tokio::pin!(reader, writer);
            tokio::select! {
                _ = &mut reader => writer.await,
                _ = &mut writer => {}
            }
        });
        ConnHandle { tx, gate }
    }
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}
type BoxedStream = Box<dyn Stream>;

async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    conn: ConnId,
    mut gate: watch::Receiver<bool>,
    ev: mpsc::UnboundedSender<Event>,
    limits: Limits,
    budget: usize,
) {
    let credit = Arc::new(Semaphore::new(budget));
    let mut codec = MsrpCodec::new(limits);
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let mut reported_partial = false;
    loop {
        while *gate.borrow_and_update() {
            if gate.changed().await.is_err() {
                return;
            }
        }
        if buf.capacity() - buf.len() < 8 * 1024 {
            buf.reserve(32 * 1024);
        }
        let mut read = match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = ev.send(Event::Closed(conn));
                return;
            }
            Ok(n) => n,
        };
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => {
                    let end_of_frame = codec.is_idle();
                    let size = item.as_ref().ok().and_then(|c| c.body_len()).unwrap_or(0) + 512;
                    let permits = size.min(budget) as u32;
                    let Ok(permit) = credit.clone().acquire_many_owned(permits).await else {
                        return;
                    };
                    reported_partial = false;
                    let sent = ev.send(Event::Chunk {
                        conn,
                        item,
                        end_of_frame,
                        read,
                        _permit: Some(permit),
                    });
                    if sent.is_err() {
                        return;
                    }
                    read = 0;
                }
                Ok(None) => break,
                Err(_) => {
                    // The stream is out of sync: nothing more can be read from it.
                    let _ = ev.send(Event::Closed(conn));
                    return;
                }
            }
        }
        if (!codec.is_idle() || !buf.is_empty()) && !reported_partial || read > 0 {
            reported_partial = true;
            if ev.send(Event::Partial { conn, read }).is_err() {
                return;
            }
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    conn: ConnId,
    mut rx: mpsc::UnboundedReceiver<Chunk>,
    ev: mpsc::UnboundedSender<Event>,
    write_timeout: Duration,
) {
    const BATCH: usize = 64 * 1024;
    let mut buf = BytesMut::with_capacity(BATCH);
    while let Some(chunk) = rx.recv().await {
        buf.clear();
        chunk.encode(&mut buf);
        while buf.len() < BATCH {
            match rx.try_recv() {
                Ok(c) => c.encode(&mut buf),
                Err(_) => break,
            }
        }
        match tokio::time::timeout(write_timeout, wr.write_all(&buf)).await {
            Ok(Ok(())) => {
                let _ = ev.send(Event::Written(conn, buf.len()));
            }
            _ => {
                let _ = ev.send(Event::Closed(conn));
                return;
            }
        }
    }
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
}
