//! Instant messaging over an MSRP session, as sipsimple's `MSRPChat` does it:
//! CPIM (RFC 3862) wrapping when the peer's accept-types call for it, unwrapping of
//! incoming CPIM, messages queued before the session starts, end-to-end success
//! reports without hop-by-hop 200s (`Success-Report: yes`, `Failure-Report: partial`),
//! and the seed's notifications as [`ChatEvent`]s.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use huddle_msrp::cpim::{CpimMessage, DateTime, NameAddr};
use huddle_msrp::{Chunk, ReportRequest};

use super::session::{MessageId, MessageOutcome, MsrpEvent, MsrpSession, SendOptions};

/// Why a chat call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// A message to another URI than the session's peer needs CPIM and the peer's
    /// support for private messages (seed 003: "If it does not, MSRPChatError").
    #[error("the peer does not support private messages")]
    PrivateMessagesNotSupported,
    /// The peer accepts this content type neither directly nor wrapped in CPIM.
    #[error("the peer does not accept {0}")]
    UnsupportedContentType(String),
    /// The chat has ended.
    #[error("the chat has ended")]
    Ended,
    /// The CPIM wrapper could not be built (bad URI or header text).
    #[error("cannot build CPIM wrapper: {0}")]
    Cpim(String),
}

/// What the peer said about itself in SDP (RFC 4975 §8).
#[derive(Debug, Clone, Default)]
pub struct RemoteCapabilities {
    /// `a=accept-types`.
    pub accept_types: Vec<String>,
    /// `a=accept-wrapped-types`.
    pub accept_wrapped_types: Vec<String>,
    /// Whether the peer takes CPIM messages addressed to other participants
    /// (RFC 7701 chat rooms announce it with `a=chatroom:private-messages`).
    pub private_messages: bool,
}

/// An incoming chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    /// The MSRP Message-ID.
    pub message_id: MessageId,
    /// The content the remote user typed.
    pub content: Bytes,
    /// Its content type (the inner one when CPIM was used).
    pub content_type: String,
    /// The CPIM headers as (name, value), empty when no wrapper was used.
    pub cpim_headers: Vec<(String, String)>,
    /// The CPIM sender, when wrapped.
    pub sender: Option<String>,
}

/// sipsimple's MSRPChat notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// MSRPChatDidStart: the session is bound; queued messages are going out.
    DidStart,
    /// MSRPChatWillEnd: [`MsrpChat::end`] was called.
    WillEnd,
    /// MSRPChatDidEnd: always posted at the end, also after a failure.
    DidEnd,
    /// MSRPChatDidFail.
    DidFail {
        /// `initialize`, `sdp_negotiation`, `start` or `reading`.
        context: String,
        /// What went wrong.
        reason: String,
    },
    /// MSRPChatGotMessage.
    GotMessage(ChatMessage),
    /// MSRPChatDidDeliverMessage.
    DidDeliverMessage {
        /// The message.
        message_id: MessageId,
        /// The status code (200).
        code: u16,
        /// The reason text.
        reason: String,
    },
    /// MSRPChatDidNotDeliverMessage.
    DidNotDeliverMessage {
        /// The message.
        message_id: MessageId,
        /// The failure code.
        code: u16,
        /// The reason text.
        reason: String,
    },
}

#[derive(Debug)]
struct Queued {
    id: MessageId,
    content_type: String,
    body: Bytes,
}

/// The chat state machine. Drive the wrapped [`MsrpSession`] through
/// [`MsrpChat::session_mut`] (transmits, timeouts, incoming chunks) and call
/// [`MsrpChat::pump`] after each input so session events become chat events.
#[derive(Debug)]
pub struct MsrpChat {
    local: NameAddr,
    remote: NameAddr,
    caps: RemoteCapabilities,
    session: Option<MsrpSession>,
    queued: VecDeque<Queued>,
    events: VecDeque<ChatEvent>,
    ended: bool,
}

fn media_matches(pattern: &str, ct: &str) -> bool {
    let ct = ct.split(';').next().unwrap_or("").trim();
    pattern == "*"
        || pattern.eq_ignore_ascii_case(ct)
        || pattern.strip_suffix("/*").is_some_and(|major| {
            ct.split('/')
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case(major))
        })
}

impl MsrpChat {
    /// A chat between `local` and `remote` (the CPIM From and To), with what the peer
    /// announced.
    pub fn new(local: NameAddr, remote: NameAddr, caps: RemoteCapabilities) -> Self {
        MsrpChat {
            local,
            remote,
            caps,
            session: None,
            queued: VecDeque::new(),
            events: VecDeque::new(),
            ended: false,
        }
    }

    /// The session, once started.
    pub fn session_mut(&mut self) -> Option<&mut MsrpSession> {
        self.session.as_mut()
    }

    /// Starts the chat on a bound session; queued messages are sent now.
    pub fn start(&mut self, session: MsrpSession) {
        self.session = Some(session);
        self.events.push_back(ChatEvent::DidStart);
        while let Some(q) = self.queued.pop_front() {
            self.session_send(&q.id, &q.content_type, q.body);
        }
    }

    fn session_send(&mut self, id: &str, content_type: &str, body: Bytes) {
        let opts = SendOptions {
            success_report: ReportRequest::Yes,
            failure_report: ReportRequest::Partial,
        };
        let session = self.session.as_mut().expect("started");
        if session
            .send_message_as(id, content_type, body, opts)
            .is_none()
        {
            self.events.push_back(ChatEvent::DidNotDeliverMessage {
                message_id: id.to_owned(),
                code: 481,
                reason: "session is shutting down".into(),
            });
        }
    }

    fn peer_accepts_cpim(&self) -> bool {
        self.caps
            .accept_types
            .iter()
            .any(|a| a.eq_ignore_ascii_case("message/cpim"))
    }

    /// Sends a message (seed 003 `send_message`): wrapped in CPIM when the peer
    /// supports it (always for private messages to `to`), plain otherwise; queued until
    /// [`MsrpChat::start`] when called before. Returns the Message-ID.
    pub fn send_message(
        &mut self,
        content: impl Into<Bytes>,
        content_type: &str,
        to: Option<NameAddr>,
        date_time: Option<DateTime>,
    ) -> Result<MessageId, ChatError> {
        if self.ended {
            return Err(ChatError::Ended);
        }
        let content = content.into();
        let private = to.as_ref().is_some_and(|t| t.uri() != self.remote.uri());
        if private && !(self.peer_accepts_cpim() && self.caps.private_messages) {
            return Err(ChatError::PrivateMessagesNotSupported);
        }
        let wrapped_ok = self
            .caps
            .accept_wrapped_types
            .iter()
            .any(|p| media_matches(p, content_type));
        let direct_ok = self
            .caps
            .accept_types
            .iter()
            .any(|p| !p.eq_ignore_ascii_case("message/cpim") && media_matches(p, content_type));
        let (ct, body) = if self.peer_accepts_cpim() && (wrapped_ok || private || !direct_ok) {
            if !wrapped_ok && !self.caps.accept_wrapped_types.is_empty() {
                return Err(ChatError::UnsupportedContentType(content_type.to_owned()));
            }
            let to = to.unwrap_or_else(|| self.remote.clone());
            let cpim = CpimMessage::new(self.local.clone(), to, content_type, content)
                .map_err(|e| ChatError::Cpim(e.to_string()))?
                .with_date_time(date_time);
            ("message/cpim".to_owned(), cpim.to_bytes())
        } else if direct_ok {
            (content_type.to_owned(), content)
        } else {
            return Err(ChatError::UnsupportedContentType(content_type.to_owned()));
        };
        let id = huddle_msrp::ids::new_message_id();
        if self.session.is_some() {
            self.session_send(&id, &ct, body);
        } else {
            self.queued.push_back(Queued {
                id: id.clone(),
                content_type: ct,
                body,
            });
        }
        Ok(id)
    }

    /// Ends the chat: WillEnd now; queued messages fail (they were never sent); the
    /// session shuts down and DidEnd follows once every sent message has its outcome.
    pub fn end(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.events.push_back(ChatEvent::WillEnd);
        while let Some(q) = self.queued.pop_front() {
            self.events.push_back(ChatEvent::DidNotDeliverMessage {
                message_id: q.id,
                code: 481,
                reason: "chat ended before start".into(),
            });
        }
        match self.session.as_mut() {
            Some(s) => s.shutdown(),
            None => self.events.push_back(ChatEvent::DidEnd),
        }
        self.pump();
    }

    /// The connection failed while reading: DidFail, then every outstanding message
    /// fails and DidEnd follows.
    pub fn fail(&mut self, context: &str, reason: &str) {
        self.events.push_back(ChatEvent::DidFail {
            context: context.to_owned(),
            reason: reason.to_owned(),
        });
        self.ended = true;
        while let Some(q) = self.queued.pop_front() {
            self.events.push_back(ChatEvent::DidNotDeliverMessage {
                message_id: q.id,
                code: 408,
                reason: reason.to_owned(),
            });
        }
        match self.session.as_mut() {
            Some(s) => s.handle_connection_lost(),
            None => self.events.push_back(ChatEvent::DidEnd),
        }
        self.pump();
    }

    /// Turns session events into chat events.
    pub fn pump(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut relay_failure = None;
        while let Some(ev) = session.poll_event() {
            match ev {
                MsrpEvent::Message {
                    message_id,
                    content_type,
                    body,
                    ..
                } => {
                    let msg = unwrap(message_id, &content_type, body);
                    self.events.push_back(ChatEvent::GotMessage(msg));
                }
                MsrpEvent::Outcome {
                    message_id,
                    outcome: MessageOutcome::Delivered { .. },
                } => self.events.push_back(ChatEvent::DidDeliverMessage {
                    message_id,
                    code: 200,
                    reason: "OK".into(),
                }),
                MsrpEvent::Outcome {
                    message_id,
                    outcome: MessageOutcome::Failed { code, reason },
                } => self.events.push_back(ChatEvent::DidNotDeliverMessage {
                    message_id,
                    code: code.as_u16(),
                    reason,
                }),
                MsrpEvent::Closed => self.events.push_back(ChatEvent::DidEnd),
                MsrpEvent::RelayAuthFailed { error } => relay_failure = Some(error.to_string()),
                MsrpEvent::RelayRefreshed { .. }
                | MsrpEvent::Refused { .. }
                | MsrpEvent::Response { .. }
                | MsrpEvent::MessageAborted { .. }
                | MsrpEvent::SendProgress { .. }
                | MsrpEvent::ReceiveProgress { .. } => {}
            }
        }
        // The relay stops carrying the session once its grant lapses: the chat fails
        // visibly now rather than losing messages later (sipsimple's MSRPChatDidFail).
        if let Some(reason) = relay_failure
            && !self.ended
        {
            self.fail("relay", &reason);
        }
    }

    /// Convenience for drivers: feed a chunk and pump.
    pub fn handle_chunk(&mut self, chunk: Chunk, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            s.handle_chunk(chunk, now);
        }
        self.pump();
    }

    /// The next chat event.
    pub fn poll_event(&mut self) -> Option<ChatEvent> {
        self.events.pop_front()
    }
}

/// Unwraps CPIM (seed 003: "unwraps incoming Message/CPIM messages").
fn unwrap(message_id: MessageId, content_type: &str, body: Bytes) -> ChatMessage {
    if media_matches("message/cpim", content_type)
        && let Ok(cpim) = CpimMessage::parse(&body)
    {
        let mut headers = Vec::new();
        if let Some(f) = cpim.from() {
            headers.push(("From".to_owned(), f.to_string()));
        }
        for t in cpim.to() {
            headers.push(("To".to_owned(), t.to_string()));
        }
        for c in cpim.cc() {
            headers.push(("cc".to_owned(), c.to_string()));
        }
        if let Some(dt) = cpim.date_time() {
            headers.push(("DateTime".to_owned(), dt.to_string()));
        }
        for s in cpim.subjects() {
            headers.push(("Subject".to_owned(), s.text().to_owned()));
        }
        for h in cpim.headers() {
            headers.push((h.name().to_owned(), h.value().to_owned()));
        }
        return ChatMessage {
            message_id,
            content: cpim.body().clone(),
            content_type: cpim.content_type().unwrap_or("text/plain").to_owned(),
            cpim_headers: headers,
            sender: cpim.from().map(|f| f.uri().to_owned()),
        };
    }
    ChatMessage {
        message_id,
        content: body,
        content_type: content_type.to_owned(),
        cpim_headers: Vec::new(),
        sender: None,
    }
}
