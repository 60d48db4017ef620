//! SDP-style offer/answer for MSRP media (RFC 4975 §8, RFC 5547 §6, RFC 6135 §4),
//! and what follows it: a bound connection driven as an [`MsrpSessionHandle`] or an
//! [`MsrpChatHandle`].
//!
//! Each side wraps one connector of `huddle-transport` ([`ConnectorDirect`],
//! [`AcceptorDirect`], [`ConnectorRelay`], [`AcceptorRelay`]) in an
//! [`MsrpNegotiation`] with the role it plays ([`Role::Active`] sends the binding SEND):
//!
//! 1. the offerer calls [`MsrpNegotiation::offer`]: the connector is prepared and its
//!    full path goes into `a=path`, with `a=setup` for the role;
//! 2. the answerer calls [`MsrpNegotiation::answer`] with that offer (checked first);
//! 3. both call [`MsrpNegotiation::complete`] with the other side's description: the
//!    descriptions are checked against each other, the connector binds, and the result
//!    is a [`Negotiated`] connection, ready to be driven.
//!
//! An endpoint that can play either role wraps a [`ConnectorActpass`] with
//! [`MsrpNegotiation::actpass`]: as offerer it offers `a=setup:actpass` and connects or
//! accepts as the answer's `a=setup` says; as answerer it picks its role from the offer.
//!
//! The descriptions travel however the application likes: SDP lines
//! ([`MsrpDescription::to_lines`]) or Jingle (`super::jingle`).
//!
//! [`ConnectorDirect`]: huddle_transport::msrp::ConnectorDirect
//! [`AcceptorDirect`]: huddle_transport::msrp::AcceptorDirect
//! [`ConnectorRelay`]: huddle_transport::msrp::ConnectorRelay
//! [`AcceptorRelay`]: huddle_transport::msrp::AcceptorRelay
//! [`ConnectorActpass`]: huddle_transport::msrp::ConnectorActpass

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use huddle_msrp::cpim::{DateTime, NameAddr};
use huddle_msrp::sdp::{MsrpAttributes, SdpError, Setup};
use huddle_transport::codec::MsrpCodec;
use huddle_transport::msrp::{ConnectError, MsrpConnector, MsrpStream};
use huddle_transport::relay::client::{Grant, RelayAuth};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::chat::{ChatError, ChatEvent, MsrpChat, RemoteCapabilities};
use super::driver::{self, MsrpSessionHandle};
use super::file::FileOffer;
use super::session::{MessageId, MsrpConfig, MsrpSession};

/// What an MSRP media stream is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrpMedia {
    /// Instant messaging (RFC 4975, CPIM per RFC 3862).
    Chat,
    /// One file (RFC 5547).
    File,
}

impl MsrpMedia {
    /// The token used on the wire (`chat`, `file`).
    pub fn as_str(self) -> &'static str {
        match self {
            MsrpMedia::Chat => "chat",
            MsrpMedia::File => "file",
        }
    }

    /// Reads a token written by [`MsrpMedia::as_str`].
    pub fn parse(s: &str) -> Option<MsrpMedia> {
        match s {
            "chat" => Some(MsrpMedia::Chat),
            "file" => Some(MsrpMedia::File),
            _ => None,
        }
    }
}

/// One side's description of an MSRP media stream: its kind and its SDP attributes
/// (`a=path`, `a=accept-types`, `a=accept-wrapped-types`, `a=max-size`, `a=setup`,
/// and for files the RFC 5547 attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpDescription {
    /// Chat or file.
    pub media: MsrpMedia,
    /// The attributes.
    pub attributes: MsrpAttributes,
}

impl MsrpDescription {
    /// A chat description accepting CPIM and plain text, wrapped text and anything
    /// wrapped (sipsimple's defaults).
    pub fn chat() -> MsrpDescription {
        let attributes = MsrpAttributes {
            accept_types: Some(vec!["message/cpim".into(), "text/*".into()]),
            accept_wrapped_types: Some(vec!["*".into()]),
            ..MsrpAttributes::default()
        };
        MsrpDescription {
            media: MsrpMedia::Chat,
            attributes,
        }
    }

    /// A file description: `accept-types` is the file's type (RFC 5547 §6 example) and
    /// the file attributes come from `offer`.
    pub fn file(offer: &FileOffer) -> MsrpDescription {
        let mut attributes = MsrpAttributes {
            accept_types: Some(vec![offer.content_type()]),
            ..MsrpAttributes::default()
        };
        for a in offer.to_attributes() {
            // A FileOffer's attributes are distinct, so pushing cannot hit a duplicate.
            let _ = attributes.push(a);
        }
        MsrpDescription {
            media: MsrpMedia::File,
            attributes,
        }
    }

    /// The attribute lines (`a=...`), as they would appear in SDP.
    pub fn to_lines(&self) -> Vec<String> {
        self.attributes.to_lines()
    }

    /// Reads a description from attribute lines.
    pub fn from_lines<'a>(
        media: MsrpMedia,
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<MsrpDescription, SdpError> {
        Ok(MsrpDescription {
            media,
            attributes: MsrpAttributes::collect(lines)?,
        })
    }

    /// The file offer it carries (file media).
    pub fn file_offer(&self) -> Option<FileOffer> {
        FileOffer::from_attributes(&self.attributes).ok()
    }
}

/// Who opens and binds the connection (RFC 4145 §4, applied to MSRP by RFC 6135 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects (if needed) and sends the binding SEND: [`ConnectorDirect`],
    /// [`ConnectorRelay`].
    ///
    /// [`ConnectorDirect`]: huddle_transport::msrp::ConnectorDirect
    /// [`ConnectorRelay`]: huddle_transport::msrp::ConnectorRelay
    Active,
    /// Waits for the peer's binding SEND: [`AcceptorDirect`], [`AcceptorRelay`].
    ///
    /// [`AcceptorDirect`]: huddle_transport::msrp::AcceptorDirect
    /// [`AcceptorRelay`]: huddle_transport::msrp::AcceptorRelay
    Passive,
}

impl Role {
    fn setup(self) -> Setup {
        match self {
            Role::Active => Setup::Active,
            Role::Passive => Setup::Passive,
        }
    }
}

/// Why an offer/answer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiateError {
    /// The peer's description has no `a=path` (RFC 4975 §8.1: it is mandatory).
    #[error("the peer's description has no a=path")]
    MissingPath,
    /// The peer's description has no `a=accept-types` (RFC 4975 §8: mandatory).
    #[error("the peer's description has no a=accept-types")]
    MissingAcceptTypes,
    /// Both sides want the same role (RFC 4145 §4.1: one active, one passive).
    #[error("a=setup conflict: both sides are {0:?}")]
    SetupConflict(Role),
    /// Chat against file, or a file answer without the offer's file-selector or
    /// file-transfer-id (RFC 5547 §8).
    #[error("the descriptions do not match: {0}")]
    Mismatch(&'static str),
    /// `offer`/`answer` twice, or `complete` first.
    #[error("negotiation step out of order")]
    OutOfOrder,
    /// The connector failed (prepare or bind).
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The bound transport could not be handed over.
    #[error("cannot take over the connection: {0}")]
    Handover(String),
}

/// One side of an MSRP offer/answer around one connector.
#[derive(Debug)]
pub struct MsrpNegotiation<C> {
    connector: C,
    role: Role,
    /// The role is still open (an actpass connector before the other side's setup).
    either: bool,
    local: Option<MsrpDescription>,
}

impl<C: MsrpConnector> MsrpNegotiation<C> {
    /// A negotiation whose connection `connector` makes, playing `role` (it must be
    /// the connector's: [`Role::Active`] for connectors, [`Role::Passive`] for acceptors).
    pub fn new(connector: C, role: Role) -> Self {
        MsrpNegotiation {
            connector,
            role,
            either: false,
            local: None,
        }
    }

    /// A negotiation whose connector can play either role (such as
    /// [`huddle_transport::msrp::ConnectorActpass`]): the role is settled by the other
    /// side's `a=setup` (RFC 4145 §4.1, RFC 6135 §4). As offerer it offers
    /// `a=setup:actpass` and takes the role the answer leaves; as answerer it is active
    /// for an `actpass` or `passive` offer and passive for an `active` one. A connector
    /// with a fixed role is [`ConnectError::RoleFixed`].
    pub fn actpass(connector: C) -> Result<Self, NegotiateError> {
        if !connector.can_choose_role() {
            return Err(ConnectError::RoleFixed.into());
        }
        Ok(MsrpNegotiation {
            connector,
            role: Role::Passive,
            either: true,
            local: None,
        })
    }

    /// The role; for [`MsrpNegotiation::actpass`], settled once the other side's
    /// description was seen (`answer` or `complete`), [`Role::Passive`] until then.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the role is still open (an actpass offer before the answer).
    pub fn role_open(&self) -> bool {
        self.either
    }

    /// Settles an open role against the other side's `a=setup`.
    fn settle(&mut self, remote: &MsrpDescription, answering: bool) -> Result<(), NegotiateError> {
        if !self.either {
            return Ok(());
        }
        // RFC 4145 §4.1: an absent a=setup means active; the answer must choose active or
        // passive (actpass is for offers only; holdconn asks for no connection).
        let theirs = remote.attributes.setup.unwrap_or(Setup::Active);
        self.role = match theirs {
            Setup::Active => Role::Passive,
            Setup::Passive => Role::Active,
            // An actpass offer leaves the choice to us: connecting at once needs no
            // further round trip.
            Setup::ActPass if answering => Role::Active,
            Setup::ActPass => return Err(NegotiateError::Mismatch("a=setup:actpass in an answer")),
            Setup::HoldConn => return Err(NegotiateError::Mismatch("a=setup:holdconn")),
        };
        self.connector.set_active(self.role == Role::Active)?;
        self.either = false;
        Ok(())
    }

    async fn describe(
        &mut self,
        mut local: MsrpDescription,
    ) -> Result<MsrpDescription, NegotiateError> {
        if self.local.is_some() {
            return Err(NegotiateError::OutOfOrder);
        }
        // RFC 4975 §8.1: a=path is the full local path (relays first, our URI last).
        local.attributes.path = Some(self.connector.prepare().await?);
        // RFC 6135 §4 / RFC 4145 §4: a=setup says which end connects; an offerer that
        // can do either says actpass.
        local.attributes.setup = Some(if self.either {
            Setup::ActPass
        } else {
            self.role.setup()
        });
        self.local = Some(local.clone());
        Ok(local)
    }

    /// Makes the offer from `local` (accept-types and media attributes as wanted; the
    /// path and setup are filled in).
    pub async fn offer(
        &mut self,
        local: MsrpDescription,
    ) -> Result<MsrpDescription, NegotiateError> {
        self.describe(local).await
    }

    /// Answers `offer` with `local` (checked against the offer first). For a file, the
    /// answer takes the offer's file-selector, file-transfer-id and file-range unless
    /// `local` sets them (RFC 5547 §8: the answerer echoes the file description).
    pub async fn answer(
        &mut self,
        offer: &MsrpDescription,
        mut local: MsrpDescription,
    ) -> Result<MsrpDescription, NegotiateError> {
        if self.local.is_some() {
            return Err(NegotiateError::OutOfOrder);
        }
        self.settle(offer, true)?;
        check_remote(self.role, offer)?;
        if offer.media != local.media {
            return Err(NegotiateError::Mismatch("chat against file"));
        }
        if local.media == MsrpMedia::File {
            let (o, l) = (&offer.attributes, &mut local.attributes);
            if l.file_selector.is_none() {
                l.file_selector.clone_from(&o.file_selector);
            }
            if l.file_transfer_id.is_none() {
                l.file_transfer_id.clone_from(&o.file_transfer_id);
            }
            if l.file_range.is_none() {
                l.file_range = o.file_range;
            }
            if l.file_disposition.is_none() {
                l.file_disposition.clone_from(&o.file_disposition);
            }
        }
        self.describe(local).await
    }

    /// Checks the other side's description (the answer for the offerer, the offer for
    /// the answerer) and binds the connection.
    pub async fn complete(
        mut self,
        remote: &MsrpDescription,
    ) -> Result<Negotiated, NegotiateError> {
        let Some(local) = self.local.take() else {
            return Err(NegotiateError::OutOfOrder);
        };
        if let Err(e) = self
            .settle(remote, false)
            .and_then(|()| check_pair(self.role, &local, remote))
        {
            self.connector.cleanup();
            return Err(e);
        }
        let path = remote.attributes.path.clone().unwrap_or_default();
        let transport = self.connector.complete(&path).await?;
        let local_path = transport.full_local_path();
        let remote_path = transport.remote_path().to_vec();
        let parts = transport
            .into_parts()
            .map_err(|e| NegotiateError::Handover(e.to_string()))?;
        let mut config = MsrpConfig::new(local_path, remote_path);
        // RFC 4975 §8: what we announced in a=accept-types is what we take.
        if let Some(types) = &local.attributes.accept_types {
            config.accept_types.clone_from(types);
        }
        if let Some(max) = local.attributes.max_size {
            config.max_incoming_message = max;
        }
        Ok(Negotiated {
            role: self.role,
            local,
            remote: remote.clone(),
            config,
            relay: parts.relay,
            io: PrefixedIo {
                prefix: parts.read_prefix.freeze(),
                inner: parts.stream,
            },
        })
    }

    /// Gives up: releases what the connector took.
    pub fn cleanup(mut self) {
        self.connector.cleanup();
    }
}

fn check_remote(role: Role, remote: &MsrpDescription) -> Result<(), NegotiateError> {
    if remote.attributes.path.as_ref().is_none_or(Vec::is_empty) {
        return Err(NegotiateError::MissingPath);
    }
    if remote.attributes.accept_types.is_none() {
        return Err(NegotiateError::MissingAcceptTypes);
    }
    // RFC 4145 §4.1: an absent a=setup means active; actpass lets us choose.
    let theirs = remote.attributes.setup.unwrap_or(Setup::Active);
    match (role, theirs) {
        (Role::Active, Setup::Active) => Err(NegotiateError::SetupConflict(Role::Active)),
        (Role::Passive, Setup::Passive) => Err(NegotiateError::SetupConflict(Role::Passive)),
        _ => Ok(()),
    }
}

fn check_pair(
    role: Role,
    local: &MsrpDescription,
    remote: &MsrpDescription,
) -> Result<(), NegotiateError> {
    check_remote(role, remote)?;
    if local.media != remote.media {
        return Err(NegotiateError::Mismatch("chat against file"));
    }
    if local.media == MsrpMedia::File {
        // RFC 5547 §6: a=file-selector is mandatory in offer and answer, and §8: the
        // answer keeps the offer's file-transfer-id.
        if remote.attributes.file_selector.is_none() {
            return Err(NegotiateError::Mismatch("no a=file-selector"));
        }
        if remote.attributes.file_transfer_id != local.attributes.file_transfer_id {
            return Err(NegotiateError::Mismatch("file-transfer-id differs"));
        }
    }
    Ok(())
}

/// A bound MSRP connection after offer/answer, with the session settings derived from
/// both descriptions. Drive it with [`Negotiated::spawn`] or [`Negotiated::spawn_chat`].
#[derive(Debug)]
pub struct Negotiated {
    role: Role,
    local: MsrpDescription,
    remote: MsrpDescription,
    config: MsrpConfig,
    relay: Option<RelayAuth>,
    io: PrefixedIo<MsrpStream>,
}

impl Negotiated {
    /// The role this side played (who connected and sent the binding SEND).
    pub fn role(&self) -> Role {
        self.role
    }

    /// Our description.
    pub fn local(&self) -> &MsrpDescription {
        &self.local
    }

    /// The peer's description.
    pub fn remote(&self) -> &MsrpDescription {
        &self.remote
    }

    /// The session settings (paths, accept-types, max-size); adjust before spawning.
    pub fn config_mut(&mut self) -> &mut MsrpConfig {
        &mut self.config
    }

    /// What the peer announced, for [`MsrpChat`].
    pub fn remote_capabilities(&self) -> RemoteCapabilities {
        let a = &self.remote.attributes;
        RemoteCapabilities {
            accept_types: a.accept_types.clone().unwrap_or_default(),
            accept_wrapped_types: a.accept_wrapped_types.clone().unwrap_or_default(),
            private_messages: false,
        }
    }

    /// The relay grant the connection was bound with (through a relay only). The
    /// session driven by [`Negotiated::spawn`] or [`Negotiated::spawn_chat`] keeps it
    /// refreshed on the same connection ([`MsrpSession::set_relay`]).
    pub fn relay_grant(&self) -> Option<&Grant> {
        self.relay.as_ref().and_then(RelayAuth::grant)
    }

    fn session(config: MsrpConfig, relay: Option<RelayAuth>) -> MsrpSession {
        let mut session = MsrpSession::new(config);
        if let Some(relay) = relay {
            session.set_relay(relay);
        }
        session
    }

    /// Drives an [`MsrpSession`] over the connection.
    pub fn spawn(self) -> MsrpSessionHandle {
        self.spawn_with(|_| {})
    }

    /// Like [`Negotiated::spawn`], letting `setup` prepare the session first (attach a
    /// [`super::file::FileReceiver`], queue a file with [`super::file::send_file`]).
    pub fn spawn_with(self, setup: impl FnOnce(&mut MsrpSession)) -> MsrpSessionHandle {
        let mut session = Self::session(self.config, self.relay);
        setup(&mut session);
        driver::spawn(self.io, session)
    }

    /// Drives an [`MsrpChat`] between `local` and `remote` (the CPIM From and To).
    pub fn spawn_chat(self, local: NameAddr, remote: NameAddr) -> MsrpChatHandle {
        let caps = self.remote_capabilities();
        let mut chat = MsrpChat::new(local, remote, caps);
        chat.start(Self::session(self.config, self.relay));
        MsrpChatHandle::spawn(self.io, chat)
    }
}

/// A stream whose first bytes were already read by someone else: they are read again
/// from `prefix` before the stream itself.
#[derive(Debug)]
struct PrefixedIo<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefixedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

enum ChatCommand {
    Send {
        content: Bytes,
        content_type: String,
        to: Option<NameAddr>,
        date_time: Option<DateTime>,
        reply: oneshot::Sender<Result<MessageId, ChatError>>,
    },
    End,
}

/// The async API of an [`MsrpChat`]: a task drives the chat's session over the
/// connection; messages go in with [`send_message`](Self::send_message), sipsimple's
/// notifications come out of [`next_event`](Self::next_event). Every message sent ends
/// in exactly one `DidDeliverMessage` or `DidNotDeliverMessage`, then `DidEnd` closes
/// the stream of events.
#[derive(Debug)]
pub struct MsrpChatHandle {
    commands: mpsc::Sender<ChatCommand>,
    events: mpsc::Receiver<ChatEvent>,
}

impl std::fmt::Debug for ChatCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatCommand::Send { content_type, .. } => write!(f, "Send({content_type})"),
            ChatCommand::End => f.write_str("End"),
        }
    }
}

impl MsrpChatHandle {
    /// Drives `chat` (already started on its session) over `io`, a bound connection.
    pub fn spawn<T>(io: T, chat: MsrpChat) -> MsrpChatHandle
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ev_tx, ev_rx) = mpsc::channel(256);
        tokio::spawn(run_chat(
            Framed::new(io, MsrpCodec::default()),
            chat,
            cmd_rx,
            ev_tx,
        ));
        MsrpChatHandle {
            commands: cmd_tx,
            events: ev_rx,
        }
    }

    /// Sends a message ([`MsrpChat::send_message`]); returns its Message-ID.
    pub async fn send_message(
        &self,
        content: impl Into<Bytes>,
        content_type: &str,
        to: Option<NameAddr>,
        date_time: Option<DateTime>,
    ) -> Result<MessageId, ChatError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(ChatCommand::Send {
                content: content.into(),
                content_type: content_type.to_owned(),
                to,
                date_time,
                reply,
            })
            .await
            .map_err(|_| ChatError::Ended)?;
        rx.await.map_err(|_| ChatError::Ended)?
    }

    /// Ends the chat ([`MsrpChat::end`]): outstanding messages get their outcome, then
    /// `DidEnd`.
    pub async fn end(&self) -> Result<(), ChatError> {
        self.commands
            .send(ChatCommand::End)
            .await
            .map_err(|_| ChatError::Ended)
    }

    /// The next notification; `None` after `DidEnd` was taken.
    pub async fn next_event(&mut self) -> Option<ChatEvent> {
        self.events.recv().await
    }
}

async fn run_chat<T>(
    mut framed: Framed<T, MsrpCodec>,
    mut chat: MsrpChat,
    mut commands: mpsc::Receiver<ChatCommand>,
    events: mpsc::Sender<ChatEvent>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut commands_open = true;
    let mut lost = false;
    loop {
        let now = Instant::now().into_std();
        let mut wrote = false;
        let mut write_failed = false;
        if let Some(session) = chat.session_mut() {
            while let Some(chunk) = session.poll_transmit(now) {
                if framed.feed(chunk).await.is_err() {
                    write_failed = true;
                    break;
                }
                wrote = true;
            }
        }
        if wrote
            && !write_failed
            && SinkExt::<huddle_msrp::Chunk>::flush(&mut framed)
                .await
                .is_err()
        {
            write_failed = true;
        }
        if write_failed && !lost {
            lost = true;
            chat.fail("reading", "connection lost");
        }
        chat.pump();
        let mut ended = false;
        while let Some(ev) = chat.poll_event() {
            ended |= ev == ChatEvent::DidEnd;
            // A listener that went away does not change the chat's course.
            let _ = events.send(ev).await;
        }
        if ended {
            let _ = SinkExt::<huddle_msrp::Chunk>::close(&mut framed).await;
            return;
        }
        let deadline = chat
            .session_mut()
            .and_then(|s| s.poll_timeout())
            .map(Instant::from_std);
        tokio::select! {
            frame = framed.next(), if !lost => match frame {
                Some(Ok(Ok(chunk))) => chat.handle_chunk(chunk, Instant::now().into_std()),
                Some(Ok(Err(bad))) => {
                    if let Some(s) = chat.session_mut() {
                        s.handle_decode_error(&bad);
                    }
                }
                Some(Err(_)) | None => {
                    lost = true;
                    chat.fail("reading", "connection lost");
                }
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(ChatCommand::Send { content, content_type, to, date_time, reply }) => {
                    let r = chat.send_message(content, &content_type, to, date_time);
                    let _ = reply.send(r);
                }
                Some(ChatCommand::End) => chat.end(),
                None => {
                    commands_open = false;
                    chat.end();
                }
            },
            () = sleep_until(deadline) => {
                if let Some(s) = chat.session_mut() {
                    s.handle_timeout(Instant::now().into_std());
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
