//! The tokio driver of custom sessions: moves IQs between a [`Signaling`] channel and
//! [`CustomSessions`], and carries out its [`TransportAction`]s over real sockets
//! (`huddle_transport::message` for Message mode, `huddle_transport::streams` for
//! Streams mode). It makes no protocol decisions of its own.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use huddle_jingle::Jid;
use huddle_transport::message::{
    self, HostEvent, MessageClient, MessageHost, ParticipantEvent, ParticipantId, Recipient,
};
use huddle_transport::streams::{self, AuthError, AuthenticatedStream, StreamConfig};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::core::{CustomError, CustomId, CustomSessions, Event, Role, SendId, TransportAction};
use super::description::{Mode, TransportInfo};
use crate::jingle::Config;
use crate::signaling::Signaling;

/// Options of a [`CustomEndpoint`].
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address owner-side listeners bind to (port chosen by the OS).
    pub bind: IpAddr,
    /// Message-mode timers and limits (keep-alives).
    pub message: message::Config,
    /// Streams-mode handshake options.
    pub stream: StreamConfig,
    /// The Jingle manager's configuration (its `jid` is replaced by the channel's).
    pub jingle: Option<Config>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            message: message::Config::default(),
            stream: StreamConfig::default(),
            jingle: None,
        }
    }
}

/// Why an endpoint call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The custom-session layer refused the call.
    #[error(transparent)]
    Custom(#[from] CustomError),
    /// A socket operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The Streams-mode peer did not prove knowledge of the session secret (or refused
    /// ours).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No random bytes for the session secret.
    #[error("no randomness for the session secret")]
    Random,
}

enum Input {
    Host(CustomId, HostEvent),
    Client(CustomId, ParticipantEvent),
    Joined(CustomId, Result<MessageClient, String>),
    Sent(CustomId, SendId, Result<(), String>),
}

struct HostState {
    host: MessageHost,
    names: HashMap<ParticipantId, String>,
    tasks: Vec<AbortHandle>,
}

struct ClientState {
    client: MessageClient,
    names: HashMap<ParticipantId, String>,
    /// Sends in order, through one task (a participant's send may wait for room).
    out: mpsc::UnboundedSender<(SendId, Recipient, Bytes)>,
    tasks: [AbortHandle; 2],
}

/// Custom sessions of one party, driven over a signaling channel and real sockets.
pub struct CustomEndpoint<S: Signaling> {
    core: CustomSessions,
    signaling: S,
    config: EndpointConfig,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    hosts: HashMap<CustomId, HostState>,
    clients: HashMap<CustomId, ClientState>,
    joins: HashMap<CustomId, AbortHandle>,
    listeners: HashMap<CustomId, TcpListener>,
    /// The signaling channel said it is closed: stop polling it.
    signaling_closed: bool,
}

impl<S: Signaling> std::fmt::Debug for CustomEndpoint<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomEndpoint")
            .field("core", &self.core)
            .field("hosts", &self.hosts.len())
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl<S: Signaling> Drop for CustomEndpoint<S> {
    fn drop(&mut self) {
        for h in self.hosts.values() {
            h.tasks.iter().for_each(AbortHandle::abort);
        }
        self.clients
            .values()
            .for_each(|c| c.tasks.iter().for_each(AbortHandle::abort));
        self.joins.values().for_each(AbortHandle::abort);
    }
}

impl<S: Signaling> CustomEndpoint<S> {
    /// An endpoint speaking for `signaling.jid()`.
    pub fn new(signaling: S, config: EndpointConfig) -> CustomEndpoint<S> {
        let mut jc = config
            .jingle
            .clone()
            .unwrap_or_else(|| Config::new(signaling.jid().clone()));
        jc.jid = signaling.jid().clone();
        let (tx, rx) = mpsc::unbounded_channel();
        CustomEndpoint {
            core: CustomSessions::new(jc),
            signaling,
            config,
            tx,
            rx,
            hosts: HashMap::new(),
            clients: HashMap::new(),
            joins: HashMap::new(),
            listeners: HashMap::new(),
            signaling_closed: false,
        }
    }

    /// The sans-IO layer: capabilities, `create`, `set_mode`, `set_name`, properties.
    /// Commands with side effects on sockets go through the endpoint's own methods.
    pub fn sessions(&mut self) -> &mut CustomSessions {
        &mut self.core
    }

    /// The sans-IO layer, read-only (states, participants, properties).
    pub fn core(&self) -> &CustomSessions {
        &self.core
    }

    /// Invites `peer`. For Streams and Message modes, the first invitation binds the
    /// owner's listener (and, for Streams, draws a 32-byte session secret) and puts its
    /// address in the proposal.
    pub async fn invite(&mut self, id: CustomId, peer: Jid) -> Result<(), EndpointError> {
        let mode = self.core.mode(id)?;
        if mode != Mode::OfferAnswer && self.core.transport(id)?.is_none() {
            let listener = TcpListener::bind(SocketAddr::new(self.config.bind, 0)).await?;
            let addr = listener.local_addr()?;
            let mut secret = Vec::new();
            if mode == Mode::Streams {
                secret = vec![0u8; 32];
                getrandom::fill(&mut secret).map_err(|_| EndpointError::Random)?;
            }
            self.core
                .set_transport(id, TransportInfo { addr, secret })?;
            if mode == Mode::Streams {
                self.listeners.insert(id, listener);
            } else {
                self.start_host(id, listener)?;
            }
        }
        self.core.invite(id, peer)?;
        self.flush();
        Ok(())
    }

    fn start_host(&mut self, id: CustomId, listener: TcpListener) -> Result<(), EndpointError> {
        let host = MessageHost::new(self.core.jid().as_ref(), self.config.message.clone())
            .map_err(|e| EndpointError::Io(io::Error::other(e)))?;
        let h = host.clone();
        let accept = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                h.add_connection(s);
            }
        });
        let h = host.clone();
        let tx = self.tx.clone();
        let events = tokio::spawn(async move {
            loop {
                let ev = h.recv().await;
                if tx.send(Input::Host(id, ev)).is_err() {
                    break;
                }
            }
        });
        self.hosts.insert(
            id,
            HostState {
                host,
                names: HashMap::new(),
                tasks: vec![accept.abort_handle(), events.abort_handle()],
            },
        );
        Ok(())
    }

    /// Accepts a proposal.
    pub fn accept(&mut self, id: CustomId) -> Result<(), EndpointError> {
        self.core.accept(id)?;
        self.flush();
        Ok(())
    }

    /// Rejects a proposal.
    pub fn reject(&mut self, id: CustomId) -> Result<(), EndpointError> {
        self.core.reject(id)?;
        self.flush();
        Ok(())
    }

    /// Withdraws an invitation (Message mode).
    pub fn cancel_proposal(&mut self, id: CustomId, peer: &Jid) -> Result<(), EndpointError> {
        self.core.cancel_proposal(id, peer)?;
        self.flush();
        Ok(())
    }

    /// Ejects a participant (Message mode).
    pub fn eject(&mut self, id: CustomId, peer: &Jid) -> Result<(), EndpointError> {
        self.core.eject(id, peer)?;
        self.flush();
        Ok(())
    }

    /// Sends data (Offer-Answer and Message modes); the result comes as
    /// [`Event::SendResult`].
    pub fn send_data(
        &mut self,
        id: CustomId,
        to: Option<&Jid>,
        data: impl Into<Bytes>,
    ) -> Result<SendId, EndpointError> {
        let send = self.core.send_data(id, to, data.into())?;
        self.flush();
        Ok(send)
    }

    /// Ends the session.
    pub fn end(&mut self, id: CustomId) -> Result<(), EndpointError> {
        self.core.end(id)?;
        self.flush();
        Ok(())
    }

    /// The Streams-mode stream (AIMCC's `GetStream`): the owner accepts one connection
    /// on its listener, the invitee connects; both then prove knowledge of the session
    /// secret. A connection that fails the proof is closed and reported as
    /// [`EndpointError::Auth`]; the owner may call again to accept the next one.
    pub async fn stream(
        &mut self,
        id: CustomId,
    ) -> Result<AuthenticatedStream<TcpStream>, EndpointError> {
        let (info, role) = self.core.stream_params(id)?;
        match role {
            Role::Owner => {
                let listener = self
                    .listeners
                    .get(&id)
                    .ok_or(CustomError::MissingTransport)?;
                let (s, _) = listener.accept().await?;
                Ok(streams::accept(s, &info.secret, &self.config.stream).await?)
            }
            Role::Invitee => {
                let s = TcpStream::connect(info.addr).await?;
                Ok(streams::connect(s, &info.secret, &self.config.stream).await?)
            }
        }
    }

    /// The next event, driving signaling, timers and transports meanwhile. It sleeps
    /// until an IQ arrives ([`Signaling::poll_recv`] wakes it), a timer of the session
    /// layer is due, or a transport reports; cancel-safe (dropping the future loses
    /// nothing).
    pub async fn next_event(&mut self) -> Event {
        loop {
            self.flush();
            if let Some(e) = self.core.poll_event() {
                return e;
            }
            let deadline = self.core.poll_timeout();
            let timer = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            let signaling = &mut self.signaling;
            let open = !self.signaling_closed;
            tokio::select! {
                Some(input) = self.rx.recv() => self.on_input(input),
                iq = std::future::poll_fn(|cx| signaling.poll_recv(cx)), if open => match iq {
                    Some(iq) => {
                        self.core.handle_iq(iq, Instant::now());
                        self.poll_signaling();
                    }
                    // A closed channel shows up as the requests' reply timeouts.
                    None => self.signaling_closed = true,
                },
                () = timer => self.core.handle_timeout(Instant::now()),
            }
        }
    }

    /// Handles what the signaling channel and the clock have for us, without waiting
    /// (for applications that drive the endpoint from their own loop).
    pub fn poll_signaling(&mut self) {
        let now = Instant::now();
        while let Some(iq) = self.signaling.try_recv() {
            self.core.handle_iq(iq, now);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
    }

    fn flush(&mut self) {
        loop {
            let now = Instant::now();
            while let Some(iq) = self.core.poll_transmit(now) {
                // A closed channel shows up as the requests' reply timeouts.
                let _ = self.signaling.send(iq);
            }
            let Some(action) = self.core.poll_action() else {
                break;
            };
            self.run(action);
        }
    }

    fn run(&mut self, action: TransportAction) {
        match action {
            TransportAction::HostInvite { id, name } => {
                if let Some(h) = self.hosts.get(&id) {
                    h.host.invite(&name);
                }
            }
            TransportAction::HostCancelInvite { id, name } => {
                if let Some(h) = self.hosts.get(&id) {
                    h.host.cancel_invite(&name);
                }
            }
            TransportAction::HostEject { id, name } => {
                if let Some(h) = self.hosts.get(&id)
                    && let Some(pid) = find(&h.host.participants(), &name)
                {
                    let _ = h.host.eject(pid);
                }
            }
            TransportAction::Join { id, addr, name } => {
                let tx = self.tx.clone();
                let config = self.config.message.clone();
                let task = tokio::spawn(async move {
                    let r = match TcpStream::connect(addr).await {
                        Ok(s) => MessageClient::join(s, &name, config)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(Input::Joined(id, r));
                });
                self.joins.insert(id, task.abort_handle());
            }
            TransportAction::Send { id, send, to, data } => {
                if let Err(e) = self.transport_send(id, send, to.as_deref(), data) {
                    self.core.handle_send_result(id, send, Err(e));
                }
            }
            TransportAction::Close { id } => {
                if let Some(h) = self.hosts.remove(&id) {
                    // The goodbyes go out on the links' own tasks; ours (the
                    // listener and the event forwarder) stop now.
                    h.host.end();
                    h.tasks.iter().for_each(AbortHandle::abort);
                }
                if let Some(c) = self.clients.remove(&id) {
                    c.client.leave();
                    c.tasks.iter().for_each(AbortHandle::abort);
                }
                if let Some(j) = self.joins.remove(&id) {
                    j.abort();
                }
                self.listeners.remove(&id);
            }
        }
    }

    /// Hands a message to the transport: the host's send is immediate (its result
    /// reported at once); a participant's goes through its send task, which reports
    /// back as `Input::Sent`. `Err` means nothing was queued.
    fn transport_send(
        &mut self,
        id: CustomId,
        send: SendId,
        to: Option<&str>,
        data: Bytes,
    ) -> Result<(), String> {
        if let Some(h) = self.hosts.get(&id) {
            let r = recipient(&h.host.participants(), to)?;
            h.host.send(r, &data).map_err(|e| e.to_string())?;
            self.core.handle_send_result(id, send, Ok(()));
            return Ok(());
        }
        if let Some(c) = self.clients.get(&id) {
            let r = recipient(&c.client.participants(), to)?;
            return c
                .out
                .send((send, r, data))
                .map_err(|_| "the message session is closed".to_owned());
        }
        Err("not joined to the message session".into())
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Host(id, ev) => {
                let Some(h) = self.hosts.get_mut(&id) else {
                    return;
                };
                match ev {
                    HostEvent::Joined(pid, name) => {
                        h.names.insert(pid, name.clone());
                        self.core.handle_member(id, &name, true);
                    }
                    HostEvent::Left(pid, _) => {
                        if let Some(name) = h.names.remove(&pid) {
                            self.core.handle_member(id, &name, false);
                        }
                    }
                    HostEvent::Message { from, payload, .. } => {
                        if let Some(name) = h.names.get(&from).cloned() {
                            self.core.handle_message(id, &name, payload);
                        }
                    }
                    _ => {}
                }
            }
            Input::Joined(id, r) => {
                self.joins.remove(&id);
                match r {
                    Ok(client) => {
                        let names: HashMap<ParticipantId, String> =
                            client.participants().into_iter().collect();
                        for n in names.values() {
                            self.core.handle_member(id, n, true);
                        }
                        let c = client.clone();
                        let tx = self.tx.clone();
                        let events = tokio::spawn(async move {
                            while let Some(ev) = c.recv().await {
                                if tx.send(Input::Client(id, ev)).is_err() {
                                    break;
                                }
                            }
                        });
                        let (out, mut queue) =
                            mpsc::unbounded_channel::<(SendId, Recipient, Bytes)>();
                        let c = client.clone();
                        let tx = self.tx.clone();
                        let sender = tokio::spawn(async move {
                            while let Some((send, to, data)) = queue.recv().await {
                                let r = c.send(to, &data).await.map_err(|e| e.to_string());
                                if tx.send(Input::Sent(id, send, r)).is_err() {
                                    break;
                                }
                            }
                        });
                        self.clients.insert(
                            id,
                            ClientState {
                                client,
                                names,
                                out,
                                tasks: [events.abort_handle(), sender.abort_handle()],
                            },
                        );
                    }
                    Err(_) => self.core.handle_transport_ended(id),
                }
            }
            Input::Sent(id, send, r) => self.core.handle_send_result(id, send, r),
            Input::Client(id, ev) => {
                let Some(c) = self.clients.get_mut(&id) else {
                    return;
                };
                match ev {
                    ParticipantEvent::Joined(pid, name) => {
                        c.names.insert(pid, name.clone());
                        self.core.handle_member(id, &name, true);
                    }
                    ParticipantEvent::Left(pid, _) | ParticipantEvent::Ejected(pid) => {
                        if let Some(name) = c.names.remove(&pid) {
                            self.core.handle_member(id, &name, false);
                        }
                    }
                    ParticipantEvent::Message { from, payload, .. } => {
                        if let Some(name) = c.names.get(&from).cloned() {
                            self.core.handle_message(id, &name, payload);
                        }
                    }
                    ParticipantEvent::Ended(_) => self.core.handle_transport_ended(id),
                    _ => {}
                }
            }
        }
    }
}

fn find(list: &[(ParticipantId, String)], name: &str) -> Option<ParticipantId> {
    list.iter().find(|(_, n)| n == name).map(|(p, _)| *p)
}

fn recipient(list: &[(ParticipantId, String)], to: Option<&str>) -> Result<Recipient, String> {
    match to {
        None => Ok(Recipient::All),
        Some(name) => find(list, name)
            .map(Recipient::One)
            .ok_or_else(|| format!("{name} is not in the message session")),
    }
}
