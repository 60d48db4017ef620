//! Establishing and binding MSRP connections (msrplib's `connect`):
//!
//! | who | no relay | through a relay |
//! |---|---|---|
//! | calling (active) endpoint | [`ConnectorDirect`] | [`ConnectorRelay`] |
//! | answering (passive) endpoint | [`AcceptorDirect`] | [`AcceptorRelay`] |
//!
//! All four are used the same way ([`MsrpConnector`]): `prepare()` returns the full local
//! path for SDP `a=path`; `complete(remote_path)` connects if needed and binds the
//! session, i.e. exchanges an empty SEND so each side verifies the other's To-Path and
//! From-Path (RFC 4975 §5.4, §7.3: the active endpoint sends first); `cleanup()` releases
//! what `prepare` took when `complete` cannot be called. Each is good for one session:
//! using one again is [`ConnectError::AlreadyUsed`].
//!
//! [`ConnectorActpass`] plays either role, chosen after the offer/answer (an offer with
//! `a=setup:actpass`, RFC 4145 §4.1 / RFC 6135 §4).

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use huddle_msrp::header::HeaderError;
use huddle_msrp::uri::Host;
use huddle_msrp::{Chunk, Method, MsrpUri, StatusCode, UriError};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::shared::ConnectionPool;
use super::stream::{MsrpStream, StreamError};
use super::transport::{MsrpTransport, TransportError, check_paths};
use super::{SessionMismatch, TransportOptions, uri_for};
use crate::relay::client::{AuthError, Grant, RelayAuth, RelayAuthConfig, connect_relay};

/// Why a connection could not be established or bound.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// `prepare` or `complete` called on a connector that was already used (one use).
    #[error("connector already used")]
    AlreadyUsed,
    /// `complete` before `prepare`.
    #[error("complete() called before prepare()")]
    NotPrepared,
    /// The remote path is empty.
    #[error("empty remote path")]
    EmptyRemotePath,
    /// Opening the connection failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The connection failed while binding.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The relay refused authentication.
    #[error(transparent)]
    Relay(#[from] AuthError),
    /// No matching binding in time (msrplib's `MSRPBindSessionTimeout`).
    #[error("no binding within the bind timeout")]
    BindTimeout,
    /// The peer (or a relay) answered the binding SEND with a failure.
    #[error("binding refused with {status} {comment:?}")]
    BindRejected {
        /// The status.
        status: StatusCode,
        /// Its comment.
        comment: Option<String>,
    },
    /// The binding SEND does not match the session (it was answered with 481).
    #[error("binding for another session: {0}")]
    WrongSession(SessionMismatch),
    /// A URI could not be built.
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    /// A chunk could not be built.
    #[error("cannot build chunk: {0}")]
    Build(#[from] HeaderError),
    /// The session id is already registered on this server.
    #[error("session URI already registered")]
    Duplicate,
    /// [`MsrpConnector::set_active`] on a connector whose role is fixed (only
    /// [`ConnectorActpass`] chooses its role after the offer/answer).
    #[error("this connector's role is fixed")]
    RoleFixed,
}

/// The common interface of the connectors and acceptors (msrplib's).
pub trait MsrpConnector {
    /// Prepares the connection (listens, or connects and authenticates at the relay)
    /// and returns the full local path for SDP `a=path`.
    fn prepare(&mut self) -> impl Future<Output = Result<Vec<MsrpUri>, ConnectError>> + Send;

    /// Connects if needed and binds with the remote full path (its `a=path`).
    fn complete(
        &mut self,
        remote_path: &[MsrpUri],
    ) -> impl Future<Output = Result<MsrpTransport, ConnectError>> + Send;

    /// Releases what `prepare` took (listening socket, relay connection). After it the
    /// connector is used up.
    fn cleanup(&mut self);

    /// Whether this connector can play either role, chosen with
    /// [`MsrpConnector::set_active`] before `complete` (it may offer `a=setup:actpass`,
    /// RFC 4145 §4.1). False for the four fixed connectors.
    fn can_choose_role(&self) -> bool {
        false
    }

    /// Chooses the role `complete` plays: active (connect if needed and send the binding
    /// SEND) or passive (wait for the peer's). Connectors with a fixed role answer
    /// [`ConnectError::RoleFixed`].
    fn set_active(&mut self, active: bool) -> Result<(), ConnectError> {
        let _ = active;
        Err(ConnectError::RoleFixed)
    }
}

#[derive(Debug)]
enum Phase<T> {
    New,
    Prepared(T),
    Used,
}

impl<T> Phase<T> {
    fn start(&mut self) -> Result<(), ConnectError> {
        match self {
            Phase::New => Ok(()),
            _ => Err(ConnectError::AlreadyUsed),
        }
    }

    fn take_prepared(&mut self) -> Result<T, ConnectError> {
        match std::mem::replace(self, Phase::Used) {
            Phase::Prepared(t) => Ok(t),
            Phase::New => {
                *self = Phase::New;
                Err(ConnectError::NotPrepared)
            }
            Phase::Used => Err(ConnectError::AlreadyUsed),
        }
    }
}

/// The binding SEND (RFC 4975 §5.4: the active endpoint "MUST immediately issue a SEND
/// request", which may be empty, so the passive side learns the connection's session).
pub(crate) async fn bind_active(
    transport: &mut MsrpTransport,
    options: &TransportOptions,
) -> Result<(), ConnectError> {
    let chunk = transport.make_chunk().build()?;
    match transport.transaction(&chunk, options.bind_timeout).await {
        Ok(_) => Ok(()),
        Err(TransportError::Timeout) => Err(ConnectError::BindTimeout),
        Err(TransportError::Failed { status, comment }) => {
            Err(ConnectError::BindRejected { status, comment })
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads the first frame of an accepted connection, until `deadline`.
pub(crate) async fn first_chunk(
    tcp: TcpStream,
    secure: bool,
    placeholder: MsrpUri,
    options: TransportOptions,
    deadline: Instant,
) -> Result<(MsrpTransport, Chunk), ConnectError> {
    let work = async {
        let stream = MsrpStream::accept(tcp, secure, &options.tls).await?;
        let mut t = MsrpTransport::new(stream, placeholder, &options)?;
        loop {
            match t.read_chunk().await {
                Ok(c) => return Ok((t, c)),
                // A bad frame was answered; keep waiting for a good one.
                Err(TransportError::BadFrame(_)) => continue,
                Err(e) => return Err(ConnectError::from(e)),
            }
        }
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or(Err(ConnectError::BindTimeout))
}

/// Answers a binding SEND: 200 when it matches (the transport is then bound to
/// `local_uri` and `remote_path`), 481 otherwise (RFC 4975 §7.3).
pub(crate) async fn answer_binding(
    mut t: MsrpTransport,
    chunk: &Chunk,
    local_uri: &MsrpUri,
    remote_path: &[MsrpUri],
) -> Result<MsrpTransport, ConnectError> {
    match check_paths(chunk, local_uri, remote_path) {
        Ok(()) => {
            t.set_local_uri(local_uri.clone());
            t.set_remote_path(remote_path.to_vec());
            t.respond(chunk, StatusCode::OK, None).await?;
            Ok(t)
        }
        Err(m) => {
            // Non-SEND requests get 481 as well; REPORTs and responses are not answered.
            let _ = t
                .respond(chunk, StatusCode::SESSION_DOES_NOT_EXIST, None)
                .await;
            let _ = t.shutdown().await;
            Err(ConnectError::WrongSession(m))
        }
    }
}

async fn resolve(host: &Host, port: u16) -> Result<SocketAddr, ConnectError> {
    Ok(match host {
        Host::V4(a) => SocketAddr::from((*a, port)),
        Host::V6(a) => SocketAddr::from((*a, port)),
        Host::Name(n) => tokio::net::lookup_host((n.as_str(), port))
            .await?
            .next()
            .ok_or_else(|| StreamError::Resolve(n.clone()))?,
    })
}

/// Listens where `wanted` says (127.0.0.1, any port, plain TCP by default); returns
/// the listener and the URI to announce, with the real port and a session id.
async fn listen(wanted: Option<MsrpUri>) -> Result<(TcpListener, MsrpUri), ConnectError> {
    let (host, port, secure, sid) = match &wanted {
        Some(u) => (
            u.host().clone(),
            u.port().unwrap_or(0),
            u.secure(),
            u.session_id().map(str::to_owned),
        ),
        None => (Host::V4([127, 0, 0, 1].into()), 0, false, None),
    };
    let listener = TcpListener::bind(resolve(&host, port).await?).await?;
    let addr = listener.local_addr()?;
    let uri = match wanted {
        Some(u) => {
            let u = u.with_port(Some(addr.port()));
            match sid {
                Some(_) => u,
                None => u.with_session_id(&super::new_session_id())?,
            }
        }
        None => uri_for(addr, secure, None)?,
    };
    Ok((listener, uri))
}

/// The active side without a relay: connects to the first URI of the remote path and
/// sends the binding SEND from `local_uri`.
async fn direct_active(
    local_uri: MsrpUri,
    remote_path: &[MsrpUri],
    options: &TransportOptions,
    pool: Option<&ConnectionPool>,
) -> Result<MsrpTransport, ConnectError> {
    let first = remote_path.first().ok_or(ConnectError::EmptyRemotePath)?;
    // RFC 4975 §5.4 / §6: connect to the first URI of the path, or use a connection
    // that already goes to its authority.
    let stream = match pool {
        Some(pool) => pool
            .connection(first, options)
            .await?
            .attach_stream(local_uri.clone())?,
        None => MsrpStream::connect(first, &options.tls).await?,
    };
    let mut t = MsrpTransport::new(stream, local_uri, options)?;
    t.set_remote_path(remote_path.to_vec());
    bind_active(&mut t, options).await?;
    Ok(t)
}

/// The passive side without a relay: accepts on `listener` until a connection brings
/// the binding SEND for `local_uri` from the remote path's last URI.
async fn direct_passive(
    listener: TcpListener,
    local_uri: MsrpUri,
    remote_path: &[MsrpUri],
    options: &TransportOptions,
) -> Result<MsrpTransport, ConnectError> {
    if remote_path.is_empty() {
        return Err(ConnectError::EmptyRemotePath);
    }
    let deadline = Instant::now() + options.bind_timeout;
    let secure = local_uri.secure();
    // Several connections may arrive (a stray or hostile one among them): each reads
    // its first frame concurrently, so a silent one cannot block the right one.
    let mut binding = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = accepted?;
                binding.spawn(first_chunk(
                    tcp,
                    secure,
                    local_uri.clone(),
                    options.clone(),
                    deadline,
                ));
            }
            Some(done) = binding.join_next() => {
                let Ok(Ok((t, chunk))) = done else { continue };
                match answer_binding(t, &chunk, &local_uri, remote_path).await {
                    Ok(t) => return Ok(t),
                    Err(_) => continue,
                }
            }
            () = tokio::time::sleep_until(deadline) => return Err(ConnectError::BindTimeout),
        }
    }
}

/// The active side on a prepared relay connection: the binding SEND goes through the
/// relay, which answers it hop by hop (RFC 4976 §7.3).
async fn relay_active(
    mut t: MsrpTransport,
    remote_path: &[MsrpUri],
    options: &TransportOptions,
) -> Result<MsrpTransport, ConnectError> {
    if remote_path.is_empty() {
        return Err(ConnectError::EmptyRemotePath);
    }
    t.set_remote_path(remote_path.to_vec());
    bind_active(&mut t, options).await?;
    Ok(t)
}

/// The passive side on a prepared relay connection: waits for the peer's binding SEND
/// and answers it.
async fn relay_passive(
    mut t: MsrpTransport,
    remote_path: &[MsrpUri],
    options: &TransportOptions,
) -> Result<MsrpTransport, ConnectError> {
    if remote_path.is_empty() {
        return Err(ConnectError::EmptyRemotePath);
    }
    t.set_remote_path(remote_path.to_vec());
    let deadline = Instant::now() + options.bind_timeout;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, t.read_chunk()).await {
            Err(_) => return Err(ConnectError::BindTimeout),
            Ok(Err(TransportError::BadFrame(_))) => continue,
            Ok(Err(e)) => return Err(e.into()),
            Ok(Ok(c)) => c,
        };
        if chunk.method() != Some(&Method::SEND) {
            continue;
        }
        // RFC 4975 §7.3: a SEND for another session gets 481; keep waiting for ours.
        match t.accept_incoming_send(&chunk).await {
            Ok(()) => {
                t.respond(&chunk, StatusCode::OK, None).await?;
                return Ok(t);
            }
            Err(TransportError::WrongSession(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The calling endpoint without a relay: connects to the first URI of the remote path
/// and sends the binding SEND.
#[derive(Debug)]
pub struct ConnectorDirect {
    options: TransportOptions,
    local_uri: Option<MsrpUri>,
    pool: Option<ConnectionPool>,
    phase: Phase<MsrpUri>,
}

impl ConnectorDirect {
    /// A connector; its local URI is `msrp://127.0.0.1:9/<random>;tcp` unless set with
    /// [`ConnectorDirect::with_local_uri`] (the active side does not listen, so the
    /// URI only names the session).
    pub fn new(options: TransportOptions) -> Self {
        ConnectorDirect {
            options,
            local_uri: None,
            pool: None,
            phase: Phase::New,
        }
    }

    /// Uses this local URI (a random session id is added when it has none).
    pub fn with_local_uri(mut self, uri: MsrpUri) -> Self {
        self.local_uri = Some(uri);
        self
    }

    /// Takes the connection from `pool`: an open connection to the authority of the
    /// remote path's first URI is reused (RFC 4975 §5.4), else one is opened and left in
    /// the pool for later sessions.
    pub fn with_pool(mut self, pool: ConnectionPool) -> Self {
        self.pool = Some(pool);
        self
    }
}

impl MsrpConnector for ConnectorDirect {
    async fn prepare(&mut self) -> Result<Vec<MsrpUri>, ConnectError> {
        self.phase.start()?;
        let uri = match self.local_uri.take() {
            Some(u) if u.session_id().is_some() => u,
            Some(u) => u.with_session_id(&super::new_session_id())?,
            None => uri_for(SocketAddr::from(([127, 0, 0, 1], 9)), false, None)?,
        };
        self.phase = Phase::Prepared(uri.clone());
        Ok(vec![uri])
    }

    async fn complete(&mut self, remote_path: &[MsrpUri]) -> Result<MsrpTransport, ConnectError> {
        let local_uri = self.phase.take_prepared()?;
        direct_active(local_uri, remote_path, &self.options, self.pool.as_ref()).await
    }

    fn cleanup(&mut self) {
        self.phase = Phase::Used;
    }
}

/// The answering endpoint without a relay: listens on one port for one session (use
/// [`super::MsrpServer`] to share a port among sessions).
#[derive(Debug)]
pub struct AcceptorDirect {
    options: TransportOptions,
    local_uri: Option<MsrpUri>,
    phase: Phase<(TcpListener, MsrpUri)>,
}

impl AcceptorDirect {
    /// An acceptor listening on `127.0.0.1`, any port, plain TCP, unless
    /// [`AcceptorDirect::with_local_uri`] says otherwise.
    pub fn new(options: TransportOptions) -> Self {
        AcceptorDirect {
            options,
            local_uri: None,
            phase: Phase::New,
        }
    }

    /// Listens on this URI's host and port (port 0 or none: any free port; `msrps`:
    /// TLS). The URI returned by `prepare` carries the real port.
    pub fn with_local_uri(mut self, uri: MsrpUri) -> Self {
        self.local_uri = Some(uri);
        self
    }
}

impl MsrpConnector for AcceptorDirect {
    async fn prepare(&mut self) -> Result<Vec<MsrpUri>, ConnectError> {
        self.phase.start()?;
        let (listener, uri) = listen(self.local_uri.take()).await?;
        self.phase = Phase::Prepared((listener, uri.clone()));
        Ok(vec![uri])
    }

    async fn complete(&mut self, remote_path: &[MsrpUri]) -> Result<MsrpTransport, ConnectError> {
        let (listener, local_uri) = self.phase.take_prepared()?;
        direct_passive(listener, local_uri, remote_path, &self.options).await
    }

    fn cleanup(&mut self) {
        // Dropping the listener closes the port.
        self.phase = Phase::Used;
    }
}

/// Credentials and wishes for a relay (RFC 4976 §5).
#[derive(Clone)]
pub struct RelaySettings {
    /// The relay's URI, e.g. `msrps://relay.example.com:2855;tcp`.
    pub relay_uri: MsrpUri,
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// Expires to ask for.
    pub expires: Option<u32>,
}

impl std::fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySettings")
            .field("relay_uri", &self.relay_uri.to_string())
            .field("username", &self.username)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl RelaySettings {
    fn auth_config(&self) -> Result<RelayAuthConfig, ConnectError> {
        // The host and port are replaced by the connection's local address.
        let placeholder = uri_for(
            SocketAddr::from(([127, 0, 0, 1], 9)),
            self.relay_uri.secure(),
            None,
        )?;
        let mut cfg = RelayAuthConfig::new(
            self.relay_uri.clone(),
            placeholder,
            &self.username,
            &self.password,
        );
        cfg.expires = self.expires;
        Ok(cfg)
    }
}

async fn prepare_relay(
    settings: &RelaySettings,
    options: &TransportOptions,
    pool: Option<&ConnectionPool>,
) -> Result<(MsrpTransport, Grant, Vec<MsrpUri>), ConnectError> {
    let (t, grant) = match pool {
        None => connect_relay(settings.auth_config()?, options).await?,
        Some(pool) => {
            // RFC 4975 §5.4 / RFC 4976 §5: another session's connection to the relay
            // carries this session's AUTH too; the relay tells the sessions apart by
            // their URIs (each AUTH gets its own Use-Path).
            let conn = pool.connection(&settings.relay_uri, options).await?;
            let mut cfg = settings.auth_config()?;
            let local = conn
                .local_addr()
                .ok_or(ConnectError::Transport(TransportError::Closed))?;
            cfg.local_uri = uri_for(local, settings.relay_uri.secure(), None)?;
            let stream = conn.attach_stream(cfg.local_uri.clone())?;
            let mut t = MsrpTransport::new(stream, cfg.local_uri.clone(), options)?;
            match t.relay_authenticate(RelayAuth::new(cfg)).await {
                Ok(grant) => (t, grant),
                Err(TransportError::RelayAuth(e)) => return Err(ConnectError::Relay(e)),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let path = t.full_local_path();
    Ok((t, grant, path))
}

/// The calling endpoint through a relay: `prepare` connects and authenticates at the
/// relay (RFC 4976 §5) and returns Use-Path + our URI; `complete` sends the binding SEND
/// through it (the relay answers it hop by hop, RFC 4976 §7.3).
#[derive(Debug)]
pub struct ConnectorRelay {
    settings: RelaySettings,
    options: TransportOptions,
    pool: Option<ConnectionPool>,
    phase: Phase<MsrpTransport>,
    grant: Option<Grant>,
}

impl ConnectorRelay {
    /// A connector through the relay described by `settings`.
    pub fn new(settings: RelaySettings, options: TransportOptions) -> Self {
        ConnectorRelay {
            settings,
            options,
            pool: None,
            phase: Phase::New,
            grant: None,
        }
    }

    /// Takes the connection to the relay from `pool`: a connection another session
    /// already holds to the relay's authority carries this session too (RFC 4975 §5.4).
    pub fn with_pool(mut self, pool: ConnectionPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The relay's grant, after `prepare`.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }
}

impl MsrpConnector for ConnectorRelay {
    async fn prepare(&mut self) -> Result<Vec<MsrpUri>, ConnectError> {
        self.phase.start()?;
        self.phase = Phase::Used;
        let (t, grant, path) =
            prepare_relay(&self.settings, &self.options, self.pool.as_ref()).await?;
        self.grant = Some(grant);
        self.phase = Phase::Prepared(t);
        Ok(path)
    }

    async fn complete(&mut self, remote_path: &[MsrpUri]) -> Result<MsrpTransport, ConnectError> {
        let t = self.phase.take_prepared()?;
        relay_active(t, remote_path, &self.options).await
    }

    fn cleanup(&mut self) {
        self.phase = Phase::Used;
    }
}

/// The answering endpoint through a relay: `prepare` as [`ConnectorRelay`]; `complete`
/// waits on the relay connection for the peer's binding SEND and answers it.
#[derive(Debug)]
pub struct AcceptorRelay {
    settings: RelaySettings,
    options: TransportOptions,
    pool: Option<ConnectionPool>,
    phase: Phase<MsrpTransport>,
    grant: Option<Grant>,
}

impl AcceptorRelay {
    /// An acceptor through the relay described by `settings`.
    pub fn new(settings: RelaySettings, options: TransportOptions) -> Self {
        AcceptorRelay {
            settings,
            options,
            pool: None,
            phase: Phase::New,
            grant: None,
        }
    }

    /// Takes the connection to the relay from `pool`: a connection another session
    /// already holds to the relay's authority carries this session too (RFC 4975 §5.4).
    pub fn with_pool(mut self, pool: ConnectionPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The relay's grant, after `prepare`.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }
}

impl MsrpConnector for AcceptorRelay {
    async fn prepare(&mut self) -> Result<Vec<MsrpUri>, ConnectError> {
        self.phase.start()?;
        self.phase = Phase::Used;
        let (t, grant, path) =
            prepare_relay(&self.settings, &self.options, self.pool.as_ref()).await?;
        self.grant = Some(grant);
        self.phase = Phase::Prepared(t);
        Ok(path)
    }

    async fn complete(&mut self, remote_path: &[MsrpUri]) -> Result<MsrpTransport, ConnectError> {
        let t = self.phase.take_prepared()?;
        relay_passive(t, remote_path, &self.options).await
    }

    fn cleanup(&mut self) {
        self.phase = Phase::Used;
    }
}

/// What a [`ConnectorActpass`] prepared.
#[derive(Debug)]
enum ActpassPrepared {
    /// Listening, and able to connect from the same URI.
    Direct(TcpListener, MsrpUri),
    /// Authenticated at the relay.
    Relay(Box<MsrpTransport>),
}

/// An endpoint that can play either role, chosen after the offer/answer: it offers
/// `a=setup:actpass` (RFC 4145 §4.1, used for MSRP by RFC 6135 §4) and then connects or
/// accepts as the answer's `a=setup` asks ([`MsrpConnector::set_active`] before
/// `complete`; passive until told otherwise).
///
/// Without a relay `prepare` listens (like [`AcceptorDirect`]) and the announced URI also
/// names the session when it connects (like [`ConnectorDirect`] with that local URI);
/// through a relay it authenticates (like [`ConnectorRelay`]) and then sends or waits for
/// the binding SEND on the relay connection.
#[derive(Debug)]
pub struct ConnectorActpass {
    options: TransportOptions,
    relay: Option<RelaySettings>,
    local_uri: Option<MsrpUri>,
    pool: Option<ConnectionPool>,
    active: bool,
    phase: Phase<ActpassPrepared>,
    grant: Option<Grant>,
}

impl ConnectorActpass {
    /// Without a relay, listening on `127.0.0.1`, any port, plain TCP, unless
    /// [`ConnectorActpass::with_local_uri`] says otherwise.
    pub fn direct(options: TransportOptions) -> Self {
        ConnectorActpass {
            options,
            relay: None,
            local_uri: None,
            pool: None,
            active: false,
            phase: Phase::New,
            grant: None,
        }
    }

    /// Through the relay described by `settings`.
    pub fn relay(settings: RelaySettings, options: TransportOptions) -> Self {
        ConnectorActpass {
            relay: Some(settings),
            ..ConnectorActpass::direct(options)
        }
    }

    /// Listens on this URI's host and port (direct only; see
    /// [`AcceptorDirect::with_local_uri`]).
    pub fn with_local_uri(mut self, uri: MsrpUri) -> Self {
        self.local_uri = Some(uri);
        self
    }

    /// The relay's grant, after `prepare` through a relay.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    /// Takes outgoing connections (to the relay, or to the peer when active) from
    /// `pool` (see [`ConnectorDirect::with_pool`]).
    pub fn with_pool(mut self, pool: ConnectionPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// The role `complete` will play.
    pub fn is_active(&self) -> bool {
        self.active
    }
}

impl MsrpConnector for ConnectorActpass {
    async fn prepare(&mut self) -> Result<Vec<MsrpUri>, ConnectError> {
        self.phase.start()?;
        self.phase = Phase::Used;
        match &self.relay {
            Some(settings) => {
                let (t, grant, path) =
                    prepare_relay(settings, &self.options, self.pool.as_ref()).await?;
                self.grant = Some(grant);
                self.phase = Phase::Prepared(ActpassPrepared::Relay(Box::new(t)));
                Ok(path)
            }
            None => {
                let (listener, uri) = listen(self.local_uri.take()).await?;
                self.phase = Phase::Prepared(ActpassPrepared::Direct(listener, uri.clone()));
                Ok(vec![uri])
            }
        }
    }

    async fn complete(&mut self, remote_path: &[MsrpUri]) -> Result<MsrpTransport, ConnectError> {
        let opts = &self.options;
        match (self.phase.take_prepared()?, self.active) {
            // The listener is dropped: the peer waits for our connection instead.
            (ActpassPrepared::Direct(_, uri), true) => {
                direct_active(uri, remote_path, opts, self.pool.as_ref()).await
            }
            (ActpassPrepared::Direct(listener, uri), false) => {
                direct_passive(listener, uri, remote_path, opts).await
            }
            (ActpassPrepared::Relay(t), true) => relay_active(*t, remote_path, opts).await,
            (ActpassPrepared::Relay(t), false) => relay_passive(*t, remote_path, opts).await,
        }
    }

    fn cleanup(&mut self) {
        self.phase = Phase::Used;
    }

    fn can_choose_role(&self) -> bool {
        true
    }

    fn set_active(&mut self, active: bool) -> Result<(), ConnectError> {
        if matches!(self.phase, Phase::Used) {
            return Err(ConnectError::AlreadyUsed);
        }
        self.active = active;
        Ok(())
    }
}
