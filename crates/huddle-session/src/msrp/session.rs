//! The sans-IO MSRP session core.
//!
//! Inputs: [`MsrpSession::handle_chunk`] (every decoded frame), [`MsrpSession::handle_decode_error`]
//! (non-fatal decoder errors), [`MsrpSession::handle_timeout`]. Commands:
//! [`MsrpSession::send_message`], [`MsrpSession::send_chunk`], [`MsrpSession::shutdown`].
//! Outputs: [`MsrpSession::poll_transmit`] (chunks to write), [`MsrpSession::poll_event`],
//! [`MsrpSession::poll_timeout`].
//!
//! Invariant: every message given to [`MsrpSession::send_message`] ends in exactly one
//! [`MsrpEvent::Outcome`], delivered or failed, whatever the peer does (answers, errors,
//! silence, or the session shutting down).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_msrp::split::{BodySource, MemorySink, OutgoingMessage, Progress, Reassembler, Sink};
use huddle_msrp::{
    ByteRange, Chunk, DecodeError, KnownHeader, Method, MsrpUri, ReportRequest, StatusCode,
    TransactionId,
};
use huddle_transport::relay::client::{AuthError, AuthStep, Grant, RelayAuth};

/// An application-level message id (the MSRP Message-ID).
pub type MessageId = String;

/// Where an incoming message's bytes go. The default keeps them in memory (bounded by
/// [`MsrpConfig::max_incoming_message`]); file transfer writes them to a file.
pub trait IncomingSink: Sink + Send + std::fmt::Debug {
    /// The message body once complete (empty for sinks that do not hold it).
    fn into_body(self: Box<Self>) -> Bytes;

    /// 0-based half-open ranges the sink already holds (a resumed file transfer).
    fn already_have(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }
}

impl IncomingSink for MemorySink {
    fn into_body(self: Box<Self>) -> Bytes {
        (*self).into_bytes()
    }
}

/// Makes the sink for a new incoming message from its Message-ID and first chunk.
pub type SinkFactory = Box<dyn FnMut(&str, &Chunk) -> Box<dyn IncomingSink> + Send>;

/// Session settings.
#[derive(Debug, Clone)]
pub struct MsrpConfig {
    /// Our full path as put in SDP `a=path` (relays first, our own URI last).
    pub local_path: Vec<MsrpUri>,
    /// The peer's full path from its `a=path`.
    pub remote_path: Vec<MsrpUri>,
    /// How long to wait for a transaction response (msrplib's `RESPONSE_TIMEOUT`, 30 s).
    pub response_timeout: Duration,
    /// How long to wait for a success REPORT that was asked for before failing the
    /// message (RFC 4975 leaves this to the application; sipsimple uses 30 s as well).
    pub report_timeout: Duration,
    /// Largest body per outgoing chunk (RFC 4975 §7.1: chunks over 2048 bytes should be
    /// interruptible; huddle's transport interrupts at chunk boundaries).
    pub max_chunk_size: usize,
    /// Largest incoming message reassembled in memory (larger → 413).
    pub max_incoming_message: u64,
    /// Media types we accept (`a=accept-types`; `*` accepts anything).
    pub accept_types: Vec<String>,
}

impl MsrpConfig {
    /// Defaults for a session between these paths.
    pub fn new(local_path: Vec<MsrpUri>, remote_path: Vec<MsrpUri>) -> Self {
        MsrpConfig {
            local_path,
            remote_path,
            response_timeout: Duration::from_secs(30),
            report_timeout: Duration::from_secs(30),
            max_chunk_size: 2048,
            max_incoming_message: 16 << 20,
            accept_types: vec!["*".into()],
        }
    }
}

/// Report settings of an outgoing message (RFC 4975 §7.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// Success-Report (absent = `no`).
    pub success_report: ReportRequest,
    /// Failure-Report (absent = `yes`).
    pub failure_report: ReportRequest,
}

impl Default for SendOptions {
    /// RFC 4975 defaults: no success report, failures reported.
    fn default() -> Self {
        SendOptions {
            success_report: ReportRequest::No,
            failure_report: ReportRequest::Yes,
        }
    }
}

/// How a delivery was confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// A success REPORT from the receiving endpoint (end to end).
    Report,
    /// 200 responses to every chunk (hop by hop: the next hop took it).
    Responses,
    /// Neither reports nor responses were asked for (`Failure-Report: no` without a
    /// success report): the message was written, nothing more can be known.
    Unconfirmed,
}

/// The end of an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Delivered.
    Delivered {
        /// How that is known.
        confirmation: Confirmation,
    },
    /// Not delivered.
    Failed {
        /// The status (from a response, a REPORT, or generated locally: 408 for a
        /// timeout, 481 when the session ended first).
        code: StatusCode,
        /// Reason text.
        reason: String,
    },
}

/// What the session tells its user.
#[derive(Debug, Clone, PartialEq)]
pub enum MsrpEvent {
    /// A complete incoming message.
    Message {
        /// Its Message-ID.
        message_id: MessageId,
        /// Its Content-Type.
        content_type: String,
        /// Its body.
        body: Bytes,
        /// The first chunk's headers, for callers that need more (CPIM, Content-Disposition).
        first_chunk: Box<Chunk>,
    },
    /// The sender aborted an incoming message (`#`).
    MessageAborted {
        /// Its Message-ID.
        message_id: MessageId,
    },
    /// A response to a chunk sent with [`MsrpSession::send_chunk`] (or generated
    /// locally on timeout, msrplib's `response_cb`).
    Response {
        /// The transaction.
        transaction_id: TransactionId,
        /// The status.
        code: StatusCode,
        /// True when huddle generated it (timeout).
        local: bool,
    },
    /// The final outcome of a message sent with [`MsrpSession::send_message`].
    Outcome {
        /// Its Message-ID.
        message_id: MessageId,
        /// What happened.
        outcome: MessageOutcome,
    },
    /// Progress of an outgoing message: bytes handed to the transport so far.
    SendProgress {
        /// Its Message-ID.
        message_id: MessageId,
        /// Bytes sent.
        sent: u64,
        /// Its size.
        total: u64,
    },
    /// Progress of an incoming message.
    ReceiveProgress {
        /// Its Message-ID.
        message_id: MessageId,
        /// Distinct bytes received.
        received: u64,
        /// Its size, when announced.
        total: Option<u64>,
    },
    /// A chunk the session refused (wrong session, unknown method, ...) and how it was
    /// answered.
    Refused {
        /// The status sent back (none for REPORTs and responses).
        code: StatusCode,
        /// Why.
        reason: String,
    },
    /// [`MsrpSession::shutdown`] completed: everything queued was sent and every
    /// message has its outcome.
    Closed,
    /// The relay in front of this session renewed its grant (a refresh AUTH succeeded,
    /// see [`MsrpSession::set_relay`]). The session keeps the Use-Path it was bound with.
    RelayRefreshed {
        /// The new grant.
        grant: Grant,
    },
    /// A refresh AUTH failed (wrong credentials, no acceptable Expires, no response...):
    /// the relay stops carrying the session when the current grant expires.
    RelayAuthFailed {
        /// Why.
        error: AuthError,
    },
}

#[derive(Debug)]
struct PendingTx {
    message_id: Option<MessageId>,
    deadline: Instant,
    failure_report: ReportRequest,
    /// Sent with `send_chunk`: report the response as an event.
    report_response: bool,
}

#[derive(Debug)]
struct OutState {
    options: SendOptions,
    /// Transactions awaiting a response.
    outstanding: usize,
    /// All chunks have been handed to the transport.
    all_sent: bool,
    /// When to give up waiting for a success REPORT.
    report_deadline: Option<Instant>,
    total: u64,
}

/// The MSRP session state machine.
#[derive(Debug)]
pub struct MsrpSession {
    cfg: MsrpConfig,
    queue: VecDeque<OutgoingMessage>,
    pending: HashMap<TransactionId, PendingTx>,
    out: HashMap<MessageId, OutState>,
    reassembler: Reassembler<Box<dyn IncomingSink>>,
    transmits: VecDeque<Chunk>,
    events: VecDeque<MsrpEvent>,
    first_chunks: HashMap<MessageId, Box<Chunk>>,
    relay: Option<RelayAuth>,
    shutting_down: bool,
    closed: bool,
}

impl MsrpSession {
    /// A session with these settings.
    pub fn new(cfg: MsrpConfig) -> Self {
        let max = cfg.max_incoming_message;
        MsrpSession {
            cfg,
            queue: VecDeque::new(),
            pending: HashMap::new(),
            out: HashMap::new(),
            reassembler: Reassembler::with_sink(move |_, _| {
                Box::new(MemorySink::new(max)) as Box<dyn IncomingSink>
            }),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            first_chunks: HashMap::new(),
            relay: None,
            shutting_down: false,
            closed: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &MsrpConfig {
        &self.cfg
    }

    /// Keeps the grant of the relay this session's connection goes through alive
    /// (the state machine handed over by `MsrpTransport::into_parts`): RFC 4976 §5.1,
    /// the client re-authenticates before the Expires of its grant. The refresh AUTH
    /// goes out through [`MsrpSession::poll_transmit`] when
    /// [`MsrpSession::poll_timeout`] says so, on the same connection; its responses
    /// (401 challenge answered again, 423 retried within the relay's bounds, 200) are
    /// taken by [`MsrpSession::handle_chunk`]. Outcomes are
    /// [`MsrpEvent::RelayRefreshed`] and [`MsrpEvent::RelayAuthFailed`].
    pub fn set_relay(&mut self, relay: RelayAuth) {
        self.relay = Some(relay);
    }

    /// The relay state machine, when the session goes through a relay.
    pub fn relay(&self) -> Option<&RelayAuth> {
        self.relay.as_ref()
    }

    fn on_relay_step(&mut self, step: Result<AuthStep, AuthError>) {
        match step {
            Ok(AuthStep::Send(req)) => self.transmits.push_back(req),
            Ok(AuthStep::Granted(grant)) => {
                self.events.push_back(MsrpEvent::RelayRefreshed { grant });
            }
            Err(error) => self.events.push_back(MsrpEvent::RelayAuthFailed { error }),
            // AuthStep is non_exhaustive; no other step exists today.
            Ok(_) => {}
        }
    }

    /// Sends incoming messages' bytes to sinks made by `factory` (e.g. files).
    pub fn set_sink_factory(&mut self, mut factory: SinkFactory) {
        self.reassembler = Reassembler::with_resumable_sink(move |id, c| {
            let sink = factory(id, c);
            let have = sink.already_have();
            (sink, have)
        });
    }

    /// The To-Path for chunks we send: the peer's path as the hops after ours.
    /// RFC 4975 §5.3/RFC 4976 §3: our relays (all of our path but our own URI) come first.
    fn to_path(&self) -> Vec<MsrpUri> {
        let n = self.cfg.local_path.len();
        let mut p: Vec<MsrpUri> = self.cfg.local_path[..n.saturating_sub(1)].to_vec();
        p.extend(self.cfg.remote_path.iter().cloned());
        p
    }

    fn own_from_path(&self) -> Vec<MsrpUri> {
        self.cfg.local_path.last().cloned().into_iter().collect()
    }

    /// Queues a message; it is cut into chunks as the transport asks for them.
    /// Returns its Message-ID. Refused once shutdown started.
    pub fn send_message(
        &mut self,
        content_type: &str,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Option<MessageId> {
        self.send_message_as(
            &huddle_msrp::ids::new_message_id(),
            content_type,
            body,
            options,
        )
    }

    /// Like [`MsrpSession::send_message`] with a Message-ID chosen by the caller (it must
    /// be unique in the session, RFC 4975 §7.1.1).
    pub fn send_message_as(
        &mut self,
        message_id: &str,
        content_type: &str,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Option<MessageId> {
        if self.shutting_down || self.out.contains_key(message_id) {
            return None;
        }
        let msg = OutgoingMessage::new(&self.to_path(), &self.own_from_path(), content_type, body)
            .with_message_id(message_id)
            .with_reports(options.success_report, options.failure_report);
        self.enqueue(msg, options)
    }

    /// Queues a message read from `source` as chunks go out (file transfer), starting at
    /// byte `offset` (0-based; RFC 5547 §8 resumption sends only the missing range), with
    /// extra headers on every chunk (e.g. Content-Disposition).
    pub fn send_source(
        &mut self,
        message_id: &str,
        content_type: &str,
        source: Box<dyn BodySource>,
        headers: &[(KnownHeader, String)],
        offset: u64,
        options: SendOptions,
    ) -> Option<MessageId> {
        if self.shutting_down || self.out.contains_key(message_id) {
            return None;
        }
        let mut msg = OutgoingMessage::from_source(
            &self.to_path(),
            &self.own_from_path(),
            content_type,
            source,
        )
        .with_message_id(message_id)
        .with_reports(options.success_report, options.failure_report);
        for (h, v) in headers {
            msg = msg.with_header(*h, v);
        }
        msg.resume_at(offset);
        self.enqueue(msg, options)
    }

    fn enqueue(&mut self, msg: OutgoingMessage, options: SendOptions) -> Option<MessageId> {
        let id = msg.message_id().to_owned();
        self.out.insert(
            id.clone(),
            OutState {
                options,
                outstanding: 0,
                all_sent: false,
                report_deadline: None,
                total: msg.total(),
            },
        );
        self.queue.push_back(msg);
        Some(id)
    }

    /// Sends a chunk made by the caller and reports its response as
    /// [`MsrpEvent::Response`] (msrplib's `send_chunk(chunk, response_cb)`): if none
    /// arrives within the response timeout, 408 is generated when Failure-Report is
    /// `yes` or absent, 200 when it is `partial` or `no`.
    pub fn send_chunk(&mut self, chunk: Chunk, now: Instant) -> TransactionId {
        let tid = chunk.transaction_id.clone();
        let failure_report = chunk.failure_report().unwrap_or(ReportRequest::Yes);
        if chunk.is_request() && chunk.method() != Some(&Method::REPORT) {
            self.pending.insert(
                tid.clone(),
                PendingTx {
                    message_id: None,
                    deadline: now + self.cfg.response_timeout,
                    failure_report,
                    report_response: true,
                },
            );
        }
        self.transmits.push_back(chunk);
        tid
    }

    /// Sends what is queued, then reports [`MsrpEvent::Closed`] once every message has
    /// its outcome (msrplib's `shutdown`: "send the messages already in queue").
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        self.check_closed();
    }

    /// The connection is gone: every message without an outcome fails now.
    pub fn handle_connection_lost(&mut self) {
        self.queue.clear();
        let ids: Vec<MessageId> = self.out.keys().cloned().collect();
        for id in ids {
            self.finish(
                &id,
                MessageOutcome::Failed {
                    code: StatusCode::REQUEST_TIMEOUT,
                    reason: "connection lost".into(),
                },
            );
        }
        let tids: Vec<TransactionId> = self.pending.keys().cloned().collect();
        for tid in tids {
            if let Some(p) = self.pending.remove(&tid)
                && p.report_response
            {
                self.events.push_back(MsrpEvent::Response {
                    transaction_id: tid,
                    code: StatusCode::REQUEST_TIMEOUT,
                    local: true,
                });
            }
        }
        self.shutting_down = true;
        self.check_closed();
    }

    fn finish(&mut self, id: &str, outcome: MessageOutcome) {
        if self.out.remove(id).is_some() {
            // Its remaining chunks are pointless now.
            self.queue.retain(|m| m.message_id() != id);
            self.pending
                .retain(|_, p| p.message_id.as_deref() != Some(id));
            self.events.push_back(MsrpEvent::Outcome {
                message_id: id.to_owned(),
                outcome,
            });
        }
    }

    fn check_closed(&mut self) {
        if self.shutting_down
            && !self.closed
            && self.queue.is_empty()
            && self.out.is_empty()
            && self.pending.is_empty()
        {
            self.closed = true;
            self.events.push_back(MsrpEvent::Closed);
        }
    }

    /// The next chunk to write. Chunks of queued messages are cut here, one at a time,
    /// so a large message never starves a small one queued later for long.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Chunk> {
        if let Some(c) = self.transmits.pop_front() {
            return Some(c);
        }
        let mut msg = self.queue.pop_front()?;
        let chunk = match msg.next_chunk(self.cfg.max_chunk_size) {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => {
                // An OutgoingMessage we built never fails to build a chunk; treat a
                // failure as a failed message rather than losing it.
                let id = msg.message_id().to_owned();
                self.finish(
                    &id,
                    MessageOutcome::Failed {
                        code: StatusCode::BAD_REQUEST,
                        reason: "could not build chunk".into(),
                    },
                );
                return self.poll_transmit(now);
            }
        };
        let id = msg.message_id().to_owned();
        let finished = msg.is_finished();
        self.events.push_back(MsrpEvent::SendProgress {
            message_id: id.clone(),
            sent: msg.sent(),
            total: msg.total(),
        });
        if !finished {
            // Round robin between messages.
            self.queue.push_back(msg);
        }
        let st = self.out.get_mut(&id).expect("queued messages have state");
        let fr = st.options.failure_report;
        // RFC 4975 §7.1.1: with Failure-Report `no` or `partial`, no 200 comes back, so
        // only `yes` expects a response to every chunk. msrplib still arms the timer
        // (generating 200 for partial/no); for message outcomes only `yes` waits.
        if fr == ReportRequest::Yes {
            st.outstanding += 1;
            self.pending.insert(
                chunk.transaction_id.clone(),
                PendingTx {
                    message_id: Some(id.clone()),
                    deadline: now + self.cfg.response_timeout,
                    failure_report: fr,
                    report_response: false,
                },
            );
        }
        if finished {
            st.all_sent = true;
            if st.options.success_report == ReportRequest::Yes {
                st.report_deadline = Some(now + self.cfg.report_timeout);
            }
            self.maybe_delivered(&id);
        }
        Some(chunk)
    }

    /// Decides a message whose chunks are all sent and answered.
    fn maybe_delivered(&mut self, id: &str) {
        let Some(st) = self.out.get(id) else { return };
        if !st.all_sent || st.outstanding > 0 || st.options.success_report == ReportRequest::Yes {
            return;
        }
        let confirmation = if st.options.failure_report == ReportRequest::Yes {
            Confirmation::Responses
        } else {
            Confirmation::Unconfirmed
        };
        self.finish(id, MessageOutcome::Delivered { confirmation });
        self.check_closed();
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<MsrpEvent> {
        self.events.pop_front()
    }

    /// When [`MsrpSession::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.pending.values().map(|p| p.deadline).min();
        let rep = self.out.values().filter_map(|s| s.report_deadline).min();
        // Once the session is closed its driver is gone: no more refreshes.
        let relay = self
            .relay
            .as_ref()
            .filter(|_| !self.closed)
            .and_then(RelayAuth::poll_timeout);
        [tx, rep, relay].into_iter().flatten().min()
    }

    /// Fires expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(relay) = self.relay.as_mut()
            && !self.closed
        {
            // RFC 4976 §5.1: re-AUTH before the grant runs out (RelayAuth picks the time).
            match relay.handle_timeout(now) {
                Ok(Some(req)) => self.transmits.push_back(req),
                Ok(None) => {}
                Err(error) => self.events.push_back(MsrpEvent::RelayAuthFailed { error }),
            }
        }
        let expired: Vec<TransactionId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| t.clone())
            .collect();
        for tid in expired {
            // An earlier failure of the same message may have dropped this one already.
            let Some(p) = self.pending.remove(&tid) else {
                continue;
            };
            // Seed 003 (msrplib send_chunk): 408 if Failure-Report was `yes` or absent,
            // 200 if it was `partial` or `no`.
            let code = if p.failure_report == ReportRequest::Yes {
                StatusCode::REQUEST_TIMEOUT
            } else {
                StatusCode::OK
            };
            self.on_response(&tid, p, code, None, true);
        }
        let late: Vec<MessageId> = self
            .out
            .iter()
            .filter(|(_, s)| s.report_deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            self.finish(
                &id,
                MessageOutcome::Failed {
                    code: StatusCode::REQUEST_TIMEOUT,
                    reason: "no success report".into(),
                },
            );
        }
        self.check_closed();
    }

    fn on_response(
        &mut self,
        tid: &TransactionId,
        p: PendingTx,
        code: StatusCode,
        comment: Option<&str>,
        local: bool,
    ) {
        if p.report_response {
            self.events.push_back(MsrpEvent::Response {
                transaction_id: tid.clone(),
                code,
                local,
            });
        }
        if let Some(id) = p.message_id {
            if code.is_success() {
                if let Some(st) = self.out.get_mut(&id) {
                    st.outstanding = st.outstanding.saturating_sub(1);
                }
                self.maybe_delivered(&id);
            } else {
                let reason = comment
                    .map(str::to_owned)
                    .or_else(|| code.canonical_reason().map(str::to_owned))
                    .unwrap_or_default();
                self.finish(&id, MessageOutcome::Failed { code, reason });
            }
        }
        self.check_closed();
    }

    /// A non-fatal decode error: answer the bad request (RFC 4975 §7.2).
    pub fn handle_decode_error(&mut self, err: &DecodeError) {
        if let Some(resp) = err.response() {
            self.transmits.push_back(resp);
        }
        self.events.push_back(MsrpEvent::Refused {
            code: err.status(),
            reason: err.to_string(),
        });
    }

    fn refuse(&mut self, chunk: &Chunk, code: StatusCode, reason: &str) {
        if let Some(resp) = chunk.response(code, code.canonical_reason()) {
            self.transmits.push_back(resp);
        }
        self.events.push_back(MsrpEvent::Refused {
            code,
            reason: reason.to_owned(),
        });
    }

    /// Checks an incoming request's paths against this session (msrplib's
    /// `check_incoming_SEND_chunk`). RFC 4975 §7.3: the To-Path's URI must be ours
    /// (compared per §6.1), and the From-Path must be the peer's path as it reaches us.
    fn check_paths(&self, chunk: &Chunk) -> Result<(), String> {
        let to = chunk.to_path().map_err(|e| e.to_string())?;
        let from = chunk.from_path().map_err(|e| e.to_string())?;
        let Some(local) = self.cfg.local_path.last() else {
            return Err("no local path".into());
        };
        if to.len() != 1 || &to[0] != local {
            return Err("To-Path is not this session".into());
        }
        // The peer's own URI is the last of its path and of the From-Path.
        match (from.last(), self.cfg.remote_path.last()) {
            (Some(a), Some(b)) if a == b => Ok(()),
            _ => Err("From-Path is not this session's peer".into()),
        }
    }

    /// Takes one decoded frame.
    pub fn handle_chunk(&mut self, chunk: Chunk, now: Instant) {
        // RFC 4976 §5.1: responses to our refresh AUTHs come back on this connection.
        if let Some(step) = self
            .relay
            .as_mut()
            .and_then(|r| r.handle_response(&chunk, now))
        {
            self.on_relay_step(step);
            return;
        }
        if let Some(code) = chunk.status_code() {
            if let Some(p) = self.pending.remove(&chunk.transaction_id) {
                let comment = chunk.comment().map(str::to_owned);
                self.on_response(&chunk.transaction_id, p, code, comment.as_deref(), false);
            }
            // A response to nothing we sent (late, after a timeout) is dropped:
            // RFC 4975 §7.2 gives no way to answer a response.
            return;
        }
        if let Err(e) = chunk.validate() {
            let code = e.status();
            let reason = e.to_string();
            if chunk.method() != Some(&Method::REPORT) {
                self.refuse(&chunk, code, &reason);
            } else {
                self.events.push_back(MsrpEvent::Refused { code, reason });
            }
            return;
        }
        if let Err(reason) = self.check_paths(&chunk) {
            // RFC 4975 §7.3: a request for a session we do not have → 481.
            if chunk.method() == Some(&Method::REPORT) {
                self.events.push_back(MsrpEvent::Refused {
                    code: StatusCode::SESSION_DOES_NOT_EXIST,
                    reason,
                });
            } else {
                self.refuse(&chunk, StatusCode::SESSION_DOES_NOT_EXIST, &reason);
            }
            return;
        }
        match chunk.method() {
            Some(m) if *m == Method::SEND => self.on_send(chunk, now),
            Some(m) if *m == Method::REPORT => self.on_report(&chunk),
            // AUTH is for relays (RFC 4976); an endpoint does not implement it.
            _ => self.refuse(
                &chunk,
                StatusCode::NOT_IMPLEMENTED,
                "method not implemented by an endpoint",
            ),
        }
    }

    fn accepts(&self, content_type: &str) -> bool {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        self.cfg.accept_types.iter().any(|a| {
            a == "*"
                || a.eq_ignore_ascii_case(ct)
                || a.strip_suffix("/*").is_some_and(|major| {
                    ct.split('/')
                        .next()
                        .is_some_and(|m| m.eq_ignore_ascii_case(major))
                })
        })
    }

    fn on_send(&mut self, chunk: Chunk, _now: Instant) {
        let fr = chunk.failure_report().unwrap_or(ReportRequest::Yes);
        let sr = chunk.success_report().unwrap_or(ReportRequest::No);
        let respond = |s: &mut Self, code: StatusCode| {
            // RFC 4975 §7.2: no response at all with Failure-Report `no`; only negative
            // responses with `partial`.
            let send = match fr {
                ReportRequest::No => false,
                ReportRequest::Partial => !code.is_success(),
                ReportRequest::Yes => true,
            };
            if send && let Some(r) = chunk.response(code, code.canonical_reason()) {
                s.transmits.push_back(r);
            }
        };
        // An empty bodiless SEND binds the session (msrplib's bind exchange, RFC 4975
        // §5.4 "SEND with no body"): answer it and report nothing.
        let Some(body) = chunk.body() else {
            respond(self, StatusCode::OK);
            return;
        };
        let _ = body;
        if let Some(ct) = chunk.content_type()
            && !self.accepts(ct)
        {
            // RFC 4975 §7.3.1: a media type not in accept-types → 415.
            respond(self, StatusCode::UNSUPPORTED_MEDIA_TYPE);
            self.events.push_back(MsrpEvent::Refused {
                code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                reason: format!("{ct} not accepted"),
            });
            return;
        }
        let id = chunk.message_id().unwrap_or_default().to_owned();
        match self.reassembler.feed(&chunk) {
            // The reassembler hands the sink back with every Complete.
            Ok((Progress::Complete { .. }, None)) => respond(self, StatusCode::OK),
            Ok((Progress::Complete { total }, Some(sink))) => {
                respond(self, StatusCode::OK);
                let first = self
                    .first_chunks
                    .remove(&id)
                    .unwrap_or_else(|| Box::new(chunk.clone()));
                let content_type = first.content_type().unwrap_or("text/plain").to_owned();
                if sr == ReportRequest::Yes
                    && let Some(report) = chunk.report(
                        StatusCode::OK,
                        None,
                        ByteRange {
                            start: 1,
                            end: Some(total),
                            total: Some(total),
                        },
                    )
                {
                    // RFC 4975 §7.1.2: the success REPORT covers the whole message.
                    self.transmits.push_back(report);
                }
                self.events.push_back(MsrpEvent::Message {
                    message_id: id,
                    content_type,
                    body: sink.into_body(),
                    first_chunk: first,
                });
            }
            Ok((Progress::Aborted { .. }, _)) => {
                respond(self, StatusCode::OK);
                self.first_chunks.remove(&id);
                self.events
                    .push_back(MsrpEvent::MessageAborted { message_id: id });
            }
            Ok((Progress::Partial { received, total }, _)) => {
                respond(self, StatusCode::OK);
                self.events.push_back(MsrpEvent::ReceiveProgress {
                    message_id: id.clone(),
                    received,
                    total,
                });
                self.first_chunks.entry(id).or_insert_with(|| {
                    let mut c = chunk.clone();
                    c.set_body(None);
                    Box::new(c)
                });
            }
            Err(e) => {
                let code = e.status();
                respond(self, code);
                // RFC 4975 §7.1.2: a failure REPORT when Failure-Report is yes/partial and
                // the error is ours to report (413: stop sending).
                if fr != ReportRequest::No
                    && let Ok(Some(r)) = chunk.byte_range()
                    && let Some(report) = chunk.report(code, None, r)
                {
                    self.transmits.push_back(report);
                }
                self.reassembler.discard(&id);
                self.first_chunks.remove(&id);
                self.events.push_back(MsrpEvent::Refused {
                    code,
                    reason: e.to_string(),
                });
            }
        }
    }

    fn on_report(&mut self, chunk: &Chunk) {
        let Some(id) = chunk.message_id() else { return };
        let Ok(Some(status)) = chunk.status_header() else {
            return;
        };
        let id = id.to_owned();
        if !self.out.contains_key(&id) {
            return;
        }
        if status.code.is_success() {
            // A success REPORT covering the whole message delivers it.
            let total = self.out[&id].total;
            let covers = chunk
                .byte_range()
                .ok()
                .flatten()
                .is_none_or(|r| r.start == 1 && r.end.is_none_or(|e| e >= total));
            if covers {
                self.finish(
                    &id,
                    MessageOutcome::Delivered {
                        confirmation: Confirmation::Report,
                    },
                );
            }
        } else {
            let reason = status
                .reason
                .clone()
                .or_else(|| status.code.canonical_reason().map(str::to_owned))
                .unwrap_or_default();
            self.finish(
                &id,
                MessageOutcome::Failed {
                    code: status.code,
                    reason,
                },
            );
        }
        self.check_closed();
    }

    /// Whether chunks are waiting to be written.
    pub fn has_pending_output(&self) -> bool {
        !self.transmits.is_empty() || !self.queue.is_empty()
    }
}
