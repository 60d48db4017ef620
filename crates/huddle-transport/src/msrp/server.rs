//! [`MsrpServer`]: one listening socket shared by many sessions (msrplib's `MSRPServer`).
//!
//! `prepare` registers a session URI on the shared port and returns its path;
//! `complete(remote_path)` waits until a connection binds with that URI (its first SEND
//! has our URI as To-Path and the remote endpoint at the end of its From-Path) and
//! returns the bound transport, or [`ConnectError::BindTimeout`]. A connection whose
//! first SEND names no registered session is answered 481 and closed; one that sends
//! nothing is closed after the bind timeout (RFC 4975 §7.3).
//!
//! [`MsrpServer::bind_shared`] also lets one inbound connection carry several sessions
//! (RFC 4975 §5.4, a peer whose connectors reuse connections, e.g. through a
//! [`super::ConnectionPool`]): every connection becomes a [`SharedConnection`], and each
//! binding SEND on it for a registered session binds that session to its own stream over
//! the connection.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use huddle_msrp::{Chunk, Method, MsrpUri, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connect::{ConnectError, answer_binding, first_chunk};
use super::shared::SharedConnection;
use super::stream::MsrpStream;
use super::transport::MsrpTransport;
use super::{TransportOptions, new_session_id, uri_for};

/// Bindings that may wait for one registered session at a time (extra ones are refused).
const PER_SESSION_QUEUE: usize = 4;

type Registry = Arc<Mutex<HashMap<MsrpUri, mpsc::Sender<(MsrpTransport, Chunk)>>>>;

/// A listening socket shared by sessions. Dropping it stops accepting.
#[derive(Debug)]
pub struct MsrpServer {
    registry: Registry,
    local_addr: SocketAddr,
    secure: bool,
    options: TransportOptions,
    accept_task: JoinHandle<()>,
}

impl Drop for MsrpServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl MsrpServer {
    /// Listens on `addr` (`msrps` with TLS when `secure`; `options.tls.acceptor` must be
    /// set then).
    pub async fn bind(
        addr: SocketAddr,
        secure: bool,
        options: TransportOptions,
    ) -> io::Result<MsrpServer> {
        Self::start(addr, secure, options, false).await
    }

    /// Like [`MsrpServer::bind`], and an inbound connection may carry several sessions
    /// (RFC 4975 §5.4): after the first binding, later binding SENDs on the same
    /// connection bind other registered sessions; requests for unknown sessions get 481
    /// and the connection stays up for the others. A connection that binds nothing
    /// within the bind timeout is closed; one whose sessions all ended closes.
    pub async fn bind_shared(
        addr: SocketAddr,
        secure: bool,
        options: TransportOptions,
    ) -> io::Result<MsrpServer> {
        Self::start(addr, secure, options, true).await
    }

    async fn start(
        addr: SocketAddr,
        secure: bool,
        options: TransportOptions,
        shared: bool,
    ) -> io::Result<MsrpServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let registry: Registry = Arc::default();
        let accept_task = tokio::spawn(accept_loop(
            listener,
            secure,
            shared,
            registry.clone(),
            options.clone(),
        ));
        Ok(MsrpServer {
            registry,
            local_addr,
            secure,
            options,
            accept_task,
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers a new session with a random session id on this socket.
    pub fn prepare(&self) -> Result<ServerSession, ConnectError> {
        self.prepare_with_session_id(&new_session_id())
    }

    /// Registers a session with this session id ([`ConnectError::Duplicate`] if taken).
    pub fn prepare_with_session_id(&self, session_id: &str) -> Result<ServerSession, ConnectError> {
        let uri = uri_for(self.local_addr, self.secure, Some(session_id))?;
        let (tx, rx) = mpsc::channel(PER_SESSION_QUEUE);
        {
            let mut reg = self.registry.lock().expect("registry lock poisoned");
            if reg.contains_key(&uri) {
                return Err(ConnectError::Duplicate);
            }
            reg.insert(uri.clone(), tx);
        }
        Ok(ServerSession {
            registry: self.registry.clone(),
            local_uri: uri,
            rx: Some(rx),
            options: self.options.clone(),
            registered: true,
        })
    }

    /// Sessions waiting for their binding.
    pub fn pending_sessions(&self) -> usize {
        self.registry.lock().expect("registry lock poisoned").len()
    }
}

async fn accept_loop(
    listener: TcpListener,
    secure: bool,
    shared: bool,
    registry: Registry,
    options: TransportOptions,
) {
    let local = listener.local_addr().ok();
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of descriptors and the like: keep serving the sessions we have.
            Err(e) => {
                tracing::warn!(target: super::trafficlog::TRAFFIC_TARGET, error = %e, "accept failed");
                // Errors such as EMFILE persist for a while: do not spin on them.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let registry = registry.clone();
        let options = options.clone();
        let Some(local) = local else { continue };
        if shared {
            tokio::spawn(serve_shared(tcp, secure, registry, options));
            continue;
        }
        tokio::spawn(async move {
            let Ok(placeholder) = uri_for(local, secure, None) else {
                return;
            };
            let deadline = Instant::now() + options.bind_timeout;
            let Ok((mut t, chunk)) = first_chunk(tcp, secure, placeholder, options, deadline).await
            else {
                return;
            };
            match registered(&registry, &chunk).map(|(_, tx)| tx) {
                Some(tx) => {
                    if let Err(mpsc::error::TrySendError::Full((mut t, chunk))) =
                        tx.try_send((t, chunk))
                    {
                        let _ = t
                            .respond(&chunk, StatusCode::SESSION_DOES_NOT_EXIST, None)
                            .await;
                        let _ = t.shutdown().await;
                    }
                }
                None => {
                    // RFC 4975 §7.3: a request for a session we do not have gets 481.
                    let _ = t
                        .respond(&chunk, StatusCode::SESSION_DOES_NOT_EXIST, None)
                        .await;
                    let _ = t.shutdown().await;
                }
            }
        });
    }
}

/// The registered session a binding SEND is for (RFC 4975 §7.3: its To-Path is exactly
/// our URI).
fn registered(
    registry: &Registry,
    chunk: &Chunk,
) -> Option<(MsrpUri, mpsc::Sender<(MsrpTransport, Chunk)>)> {
    if chunk.method() != Some(&Method::SEND) {
        return None;
    }
    match chunk.to_path() {
        Ok(mut to) if to.len() == 1 => {
            let uri = to.pop()?;
            let tx = registry
                .lock()
                .expect("registry lock poisoned")
                .get(&uri)
                .cloned()?;
            Some((uri, tx))
        }
        _ => None,
    }
}

/// One inbound connection of a [`MsrpServer::bind_shared`] server: binding SENDs for
/// registered sessions attach them to the connection; other requests get 481.
async fn serve_shared(tcp: TcpStream, secure: bool, registry: Registry, options: TransportOptions) {
    let deadline = Instant::now() + options.bind_timeout;
    let accepted = tokio::time::timeout_at(deadline, MsrpStream::accept(tcp, secure, &options.tls));
    let Ok(Ok(stream)) = accepted.await else {
        return;
    };
    let (conn, mut unrouted) = SharedConnection::with_unrouted(stream, &options);
    let conn = Arc::new(conn);
    let weak = Arc::downgrade(&conn);
    // Held until a session holds the connection; then the sessions keep it open.
    let mut waiting = Some(conn);
    loop {
        let next = if waiting.is_some() {
            match tokio::time::timeout_at(deadline, unrouted.recv()).await {
                Ok(next) => next,
                // Nothing bound in time (RFC 4975 §7.3 leaves idle connections to us).
                Err(_) => return,
            }
        } else {
            unrouted.recv().await
        };
        let (Some(chunk), Some(conn)) = (next, weak.upgrade()) else {
            return;
        };
        let Some((uri, tx)) = registered(&registry, &chunk) else {
            conn.refuse(&chunk).await;
            continue;
        };
        let transport = conn
            .attach_stream(uri.clone())
            .and_then(|stream| Ok(MsrpTransport::new(stream, uri, &options)?));
        match transport {
            Ok(t) => match tx.try_send((t, chunk)) {
                Ok(()) => waiting = None,
                Err(
                    mpsc::error::TrySendError::Full((mut t, chunk))
                    | mpsc::error::TrySendError::Closed((mut t, chunk)),
                ) => {
                    let _ = t
                        .respond(&chunk, StatusCode::SESSION_DOES_NOT_EXIST, None)
                        .await;
                    let _ = t.shutdown().await;
                }
            },
            // Already attached (a second binding for it): not a new session.
            Err(_) => conn.refuse(&chunk).await,
        }
    }
}

/// A session registered on a [`MsrpServer`]. Dropping it (or [`ServerSession::cleanup`])
/// unregisters its URI.
#[derive(Debug)]
pub struct ServerSession {
    registry: Registry,
    local_uri: MsrpUri,
    rx: Option<mpsc::Receiver<(MsrpTransport, Chunk)>>,
    options: TransportOptions,
    registered: bool,
}

impl ServerSession {
    /// Our URI for this session.
    pub fn local_uri(&self) -> &MsrpUri {
        &self.local_uri
    }

    /// The full local path for SDP `a=path`.
    pub fn full_local_path(&self) -> Vec<MsrpUri> {
        vec![self.local_uri.clone()]
    }

    /// Waits until a connection binds to this session from the end of `remote_path`.
    /// A binding from anyone else is answered 481 and the wait goes on, until the bind
    /// timeout. One use: a second call is [`ConnectError::AlreadyUsed`].
    pub async fn complete(
        &mut self,
        remote_path: &[MsrpUri],
    ) -> Result<MsrpTransport, ConnectError> {
        let mut rx = self.rx.take().ok_or(ConnectError::AlreadyUsed)?;
        if remote_path.is_empty() {
            return Err(ConnectError::EmptyRemotePath);
        }
        let deadline = Instant::now() + self.options.bind_timeout;
        let result = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => break Err(ConnectError::BindTimeout),
                Ok(None) => break Err(ConnectError::BindTimeout),
                Ok(Some((t, chunk))) => {
                    match answer_binding(t, &chunk, &self.local_uri, remote_path).await {
                        Ok(t) => break Ok(t),
                        Err(_) => continue,
                    }
                }
            }
        };
        self.cleanup();
        result
    }

    /// Unregisters the session URI (msrplib's `MSRPServer.cleanup(local_uri)`).
    pub fn cleanup(&mut self) {
        self.rx = None;
        if !std::mem::take(&mut self.registered) {
            return;
        }
        self.registry
            .lock()
            .expect("registry lock poisoned")
            .remove(&self.local_uri);
    }
}

impl Drop for ServerSession {
    fn drop(&mut self) {
        self.cleanup();
    }
}
