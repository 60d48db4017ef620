//! [`MsrpServer`]: one listening socket shared by many sessions (msrplib's `MSRPServer`).
//!
//! `prepare` registers a session URI on the shared port and returns its path;
//! `complete(remote_path)` waits until a connection binds with that URI (its first SEND
//! has our URI as To-Path and the remote endpoint at the end of its From-Path) and
//! returns the bound transport, or [`ConnectError::BindTimeout`]. A connection whose
//! first SEND names no registered session is answered 481 and closed; one that sends
//! nothing is closed after the bind timeout (RFC 4975 §7.3).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use huddle_msrp::{Chunk, Method, MsrpUri, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::connect::{ConnectError, answer_binding, first_chunk};
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
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let registry: Registry = Arc::default();
        let accept_task = tokio::spawn(accept_loop(
            listener,
            secure,
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
        tokio::spawn(async move {
            let Ok(placeholder) = uri_for(local, secure, None) else {
                return;
            };
            let deadline = Instant::now() + options.bind_timeout;
            let Ok((mut t, chunk)) = first_chunk(tcp, secure, placeholder, options, deadline).await
            else {
                return;
            };
            let slot = if chunk.method() == Some(&Method::SEND) {
                match chunk.to_path() {
                    Ok(to) if to.len() == 1 => registry
                        .lock()
                        .expect("registry lock poisoned")
                        .get(&to[0])
                        .cloned(),
                    _ => None,
                }
            } else {
                None
            };
            match slot {
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
