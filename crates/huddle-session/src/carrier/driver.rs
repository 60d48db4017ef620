//! The tokio layer of Carrier sessions: it owns the sockets and the clock, answers the
//! manager's I/O requests (bind a loopback listener, dial, expect the dialer's token) and
//! reports back; protocol decisions stay in [`CarrierManager`].
//!
//! - A plain stream carries messages framed as a 4-byte big-endian length and the bytes;
//!   a zero-length frame is the graceful end (the peer sees `Closed`; an end without it,
//!   `Failed`).
//! - A multiplexed stream carries huddle-transport's channel mux ([`Connection`]); a
//!   GOAWAY is the graceful end.
//! - [`forward_port`] / [`serve_services`]: port forwarding of local TCP listeners to
//!   named services on the peer; [`send_file`] / [`receive_file`]: a file-transfer helper
//!   on one channel.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use huddle_transport::mux::{self, Channel, Connection, Incoming, RefuseReason, Role};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use super::core::{Candidate, CarrierEvent, CarrierManager, SessionId, StreamId, StreamOptions};
use crate::signaling::Signaling;

/// Largest message on a plain stream.
pub const MAX_MESSAGE: usize = 1 << 20;

/// What the application hears from a [`CarrierEndpoint`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AppEvent {
    /// A manager event (session requests, completions, stream states, closes). I/O
    /// requests are handled by the endpoint and also shown here.
    Carrier(CarrierEvent),
    /// A stream is connected: its data path.
    Stream {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// Its data path.
        io: StreamIo,
    },
    /// A message arrived on a plain stream (Carrier's `onStreamData`).
    Data {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: StreamId,
        /// The message.
        data: Bytes,
    },
}

/// The data path of a connected stream.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StreamIo {
    /// A plain stream: `write` messages, received ones come as [`AppEvent::Data`].
    Plain(PlainStream),
    /// A multiplexed stream: channels.
    Mux(Connection),
}

/// The sending half of a plain stream.
#[derive(Debug, Clone)]
pub struct PlainStream {
    tx: mpsc::UnboundedSender<Bytes>,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The stream is closed.
    #[error("stream closed")]
    Closed,
    /// Empty or larger than [`MAX_MESSAGE`].
    #[error("message size {0} out of range 1..={MAX_MESSAGE}")]
    Size(usize),
}

impl PlainStream {
    /// Queues a message (Carrier's `writeData`); returns its size.
    pub fn write(&self, data: impl Into<Bytes>) -> Result<usize, WriteError> {
        let data = data.into();
        if data.is_empty() || data.len() > MAX_MESSAGE {
            return Err(WriteError::Size(data.len()));
        }
        let n = data.len();
        self.tx.send(data).map_err(|_| WriteError::Closed)?;
        Ok(n)
    }
}

enum Report {
    Connected {
        session: SessionId,
        stream: StreamId,
        tcp: TcpStream,
        role: Role,
        options: StreamOptions,
    },
    Ended {
        session: SessionId,
        stream: StreamId,
        graceful: bool,
    },
}

enum Ctl {
    Plain(mpsc::UnboundedSender<Bytes>),
    Mux(Connection),
}

struct Shared {
    manager: Mutex<CarrierManager>,
    wake: Notify,
}

/// A [`CarrierManager`] driven on tokio: signaling through a [`Signaling`] channel (the
/// application's XMPP connection, a [`ChannelSignaling`](crate::signaling::ChannelSignaling),
/// or the in-memory hub), streams over TCP.
#[derive(Debug)]
pub struct CarrierEndpoint {
    shared: Arc<SharedHandle>,
    events: mpsc::UnboundedReceiver<AppEvent>,
    task: tokio::task::JoinHandle<()>,
}

struct SharedHandle(Shared);

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CarrierShared")
    }
}

fn lock(m: &Mutex<CarrierManager>) -> MutexGuard<'_, CarrierManager> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CarrierEndpoint {
    /// Starts the driver task: IQs go out through `signaling` and come in from it (it
    /// wakes the driver when one arrives; `from` stamped, as an XMPP server stamps it).
    /// The manager's JID should be `signaling.jid()`. Streams listen on `bind_ip` (a loopback
    /// address in tests).
    pub fn spawn<S>(
        manager: CarrierManager,
        signaling: S,
        bind_ip: std::net::IpAddr,
    ) -> CarrierEndpoint
    where
        S: Signaling + Send + 'static,
    {
        let shared = Arc::new(SharedHandle(Shared {
            manager: Mutex::new(manager),
            wake: Notify::new(),
        }));
        let (etx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(shared.clone(), signaling, etx, bind_ip));
        CarrierEndpoint {
            shared,
            events,
            task,
        }
    }

    /// Runs a command on the manager (e.g. `|m| m.add_stream(s, kind, opts)`) and wakes
    /// the driver so its effects go out.
    pub fn with<R>(&self, f: impl FnOnce(&mut CarrierManager) -> R) -> R {
        let r = f(&mut lock(&self.shared.0.manager));
        self.shared.0.wake.notify_one();
        r
    }

    /// The next event (`None` only if the driver task ended abnormally).
    pub async fn next_event(&mut self) -> Option<AppEvent> {
        self.events.recv().await
    }

    /// Stops at once, without closing anything gracefully: sockets are dropped as a
    /// crashed process would drop them (what a vanished peer looks like).
    pub fn abort(self) {
        self.task.abort();
    }
}

impl Drop for CarrierEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn token() -> String {
    let a = RandomState::new().hash_one(0u8);
    let b = RandomState::new().hash_one(1u8);
    format!("{a:016x}{b:016x}")
}

async fn drive<S: Signaling>(
    shared: Arc<SharedHandle>,
    mut signaling: S,
    etx: mpsc::UnboundedSender<AppEvent>,
    bind_ip: std::net::IpAddr,
) {
    let sh = &shared.0;
    let (rtx, mut rrx) = mpsc::unbounded_channel::<Report>();
    // I/O tasks die with the driver (abort drops every socket).
    let mut tasks = JoinSet::new();
    let mut listeners: HashMap<(SessionId, StreamId), TcpListener> = HashMap::new();
    let mut ctls: HashMap<(SessionId, StreamId), Ctl> = HashMap::new();
    let mut signaling_closed = false;
    loop {
        let timeout = {
            let mut m = lock(&sh.manager);
            // Handling an event may queue IQs (the offer goes out once the last stream is
            // bound) and sending may queue events: drain both until neither moves.
            loop {
                let mut busy = false;
                while let Some(iq) = m.poll_transmit(Instant::now()) {
                    busy = true;
                    // A closed channel shows up as the requests' reply timeouts.
                    let _ = signaling.send(iq);
                }
                while let Some(ev) = m.poll_event() {
                    busy = true;
                    match &ev {
                        CarrierEvent::Bind { session, stream } => {
                            let (s, st) = (*session, *stream);
                            match std::net::TcpListener::bind(SocketAddr::new(bind_ip, 0)).and_then(
                                |l| {
                                    l.set_nonblocking(true)?;
                                    TcpListener::from_std(l)
                                },
                            ) {
                                Ok(l) => {
                                    let addr =
                                        l.local_addr().unwrap_or(SocketAddr::new(bind_ip, 0));
                                    listeners.insert((s, st), l);
                                    let _ = m.set_local_candidate(
                                        s,
                                        st,
                                        Candidate {
                                            addr,
                                            token: token(),
                                        },
                                    );
                                }
                                Err(_) => {
                                    let _ = m.stream_ended(s, st, false);
                                }
                            }
                        }
                        CarrierEvent::Connect {
                            session,
                            stream,
                            remote,
                            options,
                        } => {
                            let (s, st, remote, options) =
                                (*session, *stream, remote.clone(), *options);
                            listeners.remove(&(s, st));
                            let rtx = rtx.clone();
                            tasks.spawn(async move {
                                let r = async {
                                    let mut tcp = TcpStream::connect(remote.addr).await?;
                                    tcp.set_nodelay(true)?;
                                    tcp.write_all(format!("{}\n", remote.token).as_bytes())
                                        .await?;
                                    io::Result::Ok(tcp)
                                }
                                .await;
                                let _ = rtx.send(match r {
                                    Ok(tcp) => Report::Connected {
                                        session: s,
                                        stream: st,
                                        tcp,
                                        role: Role::Client,
                                        options,
                                    },
                                    Err(_) => Report::Ended {
                                        session: s,
                                        stream: st,
                                        graceful: false,
                                    },
                                });
                            });
                        }
                        CarrierEvent::Expect {
                            session,
                            stream,
                            options,
                        } => {
                            let (s, st, options) = (*session, *stream, *options);
                            let want = m.local_candidate(s, st).map(|c| c.token.clone());
                            if let (Some(l), Some(want)) = (listeners.remove(&(s, st)), want) {
                                let rtx = rtx.clone();
                                tasks.spawn(async move {
                                    // Connections that do not present the token are dropped.
                                    while let Ok((tcp, _)) = l.accept().await {
                                        if let Ok(tcp) = check_token(tcp, &want).await {
                                            let _ = rtx.send(Report::Connected {
                                                session: s,
                                                stream: st,
                                                tcp,
                                                role: Role::Server,
                                                options,
                                            });
                                            return;
                                        }
                                    }
                                });
                            }
                        }
                        CarrierEvent::StreamState {
                            session,
                            stream,
                            state,
                        } if state.is_final() => {
                            listeners.remove(&(*session, *stream));
                            // A local end: tell the peer gracefully.
                            match ctls.remove(&(*session, *stream)) {
                                Some(Ctl::Plain(tx)) => {
                                    let _ = tx.send(Bytes::new());
                                }
                                Some(Ctl::Mux(c)) => c.close(),
                                None => {}
                            }
                        }
                        _ => {}
                    }
                    let _ = etx.send(AppEvent::Carrier(ev));
                }
                if !busy {
                    break;
                }
            }
            m.poll_timeout()
        };
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A closed signaling channel does not stop the streams: they run on until
            // they end (the endpoint's drop stops everything).
            iq = std::future::poll_fn(|cx| signaling.poll_recv(cx)), if !signaling_closed => {
                match iq {
                    Some(iq) => {
                        let mut m = lock(&sh.manager);
                        let now = Instant::now();
                        m.handle_iq(iq, now);
                        // Whatever else is there already, in the same turn.
                        while let Some(iq) = signaling.try_recv() {
                            m.handle_iq(iq, now);
                        }
                    }
                    None => signaling_closed = true,
                }
            }
            () = sh.wake.notified() => {}
            Some(r) = rrx.recv() => match r {
                Report::Connected { session, stream, tcp, role, options } => {
                    let mut m = lock(&sh.manager);
                    if m.stream_connected(session, stream).is_err() {
                        continue;
                    }
                    let io = if options.multiplexing {
                        let conn = Connection::new(tcp, role, mux::Config::default());
                        let watch = conn.clone();
                        let rtx = rtx.clone();
                        tasks.spawn(async move {
                            let end = watch.closed().await;
                            drop(watch);
                            let graceful = matches!(
                                end,
                                mux::ConnectionEnd::Peer(_) | mux::ConnectionEnd::Local
                            );
                            let _ = rtx.send(Report::Ended { session, stream, graceful });
                        });
                        ctls.insert((session, stream), Ctl::Mux(conn.clone()));
                        StreamIo::Mux(conn)
                    } else {
                        let (rd, wr) = tcp.into_split();
                        let (tx, wrx) = mpsc::unbounded_channel();
                        tasks.spawn(write_frames(wr, wrx));
                        let (etx, rtx) = (etx.clone(), rtx.clone());
                        tasks.spawn(async move {
                            let graceful = read_frames(rd, |data| {
                                let _ = etx.send(AppEvent::Data { session, stream, data });
                            })
                            .await;
                            let _ = rtx.send(Report::Ended { session, stream, graceful });
                        });
                        ctls.insert((session, stream), Ctl::Plain(tx.clone()));
                        StreamIo::Plain(PlainStream { tx })
                    };
                    drop(m);
                    let _ = etx.send(AppEvent::Stream { session, stream, io });
                }
                Report::Ended { session, stream, graceful } => {
                    ctls.remove(&(session, stream));
                    let mut m = lock(&sh.manager);
                    if m.stream_state(session, stream).is_some_and(|s| !s.is_final()) {
                        let _ = m.stream_ended(session, stream, graceful);
                    }
                }
            },
            () = sleep => lock(&sh.manager).handle_timeout(Instant::now()),
        }
    }
}

async fn check_token(mut tcp: TcpStream, want: &str) -> io::Result<TcpStream> {
    let mut line = Vec::with_capacity(want.len() + 1);
    let mut b = [0u8; 1];
    while line.len() <= want.len() {
        tcp.read_exact(&mut b).await?;
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    if line != want.as_bytes() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, "bad token"));
    }
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

async fn write_frames(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    while let Some(data) = rx.recv().await {
        let end = data.is_empty();
        let len = (data.len() as u32).to_be_bytes();
        if wr.write_all(&len).await.is_err() || wr.write_all(&data).await.is_err() {
            return;
        }
        if end {
            let _ = wr.shutdown().await;
            return;
        }
    }
}

/// Reads frames until the end; `true` when the end was the graceful zero-length frame.
async fn read_frames(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut on_data: impl FnMut(Bytes),
) -> bool {
    let mut len = [0u8; 4];
    loop {
        if rd.read_exact(&mut len).await.is_err() {
            return false;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n == 0 {
            return true;
        }
        if n > MAX_MESSAGE {
            return false;
        }
        let mut buf = BytesMut::zeroed(n);
        if rd.read_exact(&mut buf).await.is_err() {
            return false;
        }
        on_data(buf.freeze());
    }
}

/// Forwards every connection accepted on `listener` to `service` on the peer: each one
/// opens a channel named after the service and the bytes are copied both ways. Runs
/// until the listener fails or the connection ends.
pub async fn forward_port(conn: Connection, listener: TcpListener, service: String) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        let conn = conn.clone();
        let service = service.clone();
        tokio::spawn(async move {
            if let Ok(mut ch) = conn.open(&service).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut ch).await;
            }
        });
    }
}

/// Serves incoming channels: a channel whose service name is in `services` is accepted
/// and joined to a new TCP connection to that address; any other open goes to `other`
/// when given (e.g. [`receive_file`]), else it is refused with `unknown-service`.
pub async fn serve_services(
    conn: Connection,
    services: HashMap<String, SocketAddr>,
    other: Option<mpsc::UnboundedSender<Incoming>>,
) {
    while let Some(inc) = conn.accept().await {
        if let Some(&addr) = services.get(inc.service()) {
            tokio::spawn(async move {
                match TcpStream::connect(addr).await {
                    Ok(mut tcp) => {
                        if let Ok(mut ch) = inc.accept() {
                            let _ = tokio::io::copy_bidirectional(&mut ch, &mut tcp).await;
                        }
                    }
                    Err(_) => inc.refuse(RefuseReason::Refused),
                }
            });
        } else if let Some(tx) = &other {
            if let Err(e) = tx.send(inc) {
                e.0.refuse(RefuseReason::UnknownService);
            }
        } else {
            inc.refuse(RefuseReason::UnknownService);
        }
    }
}

/// The service-name prefix of file-transfer channels.
pub const FILE_SERVICE_PREFIX: &str = "file:";

/// Sends a file on a new channel `file:<name>`: its size (8 bytes, big endian), then its
/// bytes; returns the size sent.
pub async fn send_file(
    conn: &Connection,
    name: &str,
    mut reader: impl AsyncRead + Unpin,
) -> io::Result<u64> {
    let mut buf = Vec::new();
    reader.read_to_end(&mut buf).await?;
    let mut ch: Channel = conn
        .open(&format!("{FILE_SERVICE_PREFIX}{name}"))
        .await
        .map_err(io::Error::other)?;
    ch.write_all(&(buf.len() as u64).to_be_bytes()).await?;
    ch.write_all(&buf).await?;
    ch.shutdown().await?;
    // Wait for the receiver's confirmation (one byte) so the caller knows it arrived.
    let mut ack = [0u8; 1];
    ch.read_exact(&mut ack).await?;
    Ok(buf.len() as u64)
}

/// Receives a file offered on `incoming` (a `file:<name>` channel) into `writer`;
/// returns the name and the size. A short file is an error.
pub async fn receive_file(
    incoming: Incoming,
    mut writer: impl AsyncWrite + Unpin,
) -> io::Result<(String, u64)> {
    let Some(name) = incoming.service().strip_prefix(FILE_SERVICE_PREFIX) else {
        incoming.refuse(RefuseReason::UnknownService);
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a file channel",
        ));
    };
    let name = name.to_owned();
    let mut ch = incoming.accept().map_err(io::Error::other)?;
    let mut len = [0u8; 8];
    ch.read_exact(&mut len).await?;
    let size = u64::from_be_bytes(len);
    let got = tokio::io::copy(&mut (&mut ch).take(size), &mut writer).await?;
    if got != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file cut short",
        ));
    }
    writer.flush().await?;
    ch.write_all(&[1]).await?;
    // The sender closes the channel once it read the confirmation, so finishing our
    // side may find it closed already: the file has arrived either way.
    let _ = ch.shutdown().await;
    Ok((name, size))
}
