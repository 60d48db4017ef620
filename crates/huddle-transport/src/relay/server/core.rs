//! The relay's sans-IO core: the session table, authentication, routing, flow control
//! and failure reporting of an RFC 4976 relay.
//!
//! Inputs are events from connections the driver names with [`ConnId`]s (a chunk, a
//! malformed frame, bytes written, a connection closed) plus `now`; outputs are
//! [`Output`]s (send this chunk on that connection, open a connection, pause or resume
//! reading one, close one) drained with [`RelayCore::poll_output`]. Time is an input:
//! [`RelayCore::poll_timeout`] says when [`RelayCore::handle_timeout`] is due.
//!
//! Flow control: every chunk the relay queues for a connection counts as *unwritten*
//! until the driver reports it written, and a forwarded SEND that expects a hop-by-hop
//! response counts as *unanswered* until that response arrives. When a chunk read from
//! connection S makes a next hop exceed either bound, reading S pauses until that hop
//! drains (a full next hop slows the sender; nothing acknowledged is dropped). A next hop
//! whose own reading is paused is bounded by unwritten bytes only, so two endpoints
//! sending to each other through the relay cannot deadlock on each other's responses.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_msrp::chunk::body_contains_end_line;
use huddle_msrp::uri::parse_path;
use huddle_msrp::{
    ByteRange, Chunk, ChunkBuilder, DecodeError, Flag, Headers, KnownHeader, Method, MsrpUri,
    ReportRequest, StartLine, StatusCode, StatusHeader, TransactionId,
};

use super::credentials::CredentialStore;
use super::metrics::RelayMetrics;
use crate::digest::{AUTH_METHOD, Challenge, Credentials, constant_time_eq};

/// A connection, as named by the driver. Never reused while the core knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Policy and limits of a relay. Durations are wall-clock intervals measured with the
/// `now` the driver passes in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The Digest realm of the 401 challenges (RFC 4976 §6.3).
    pub realm: String,
    /// The shortest Expires granted; a shorter request gets 423 with Min-Expires.
    pub min_expires: u32,
    /// The longest Expires granted; a longer request gets 423 with Max-Expires.
    pub max_expires: u32,
    /// The Expires granted to an AUTH without one.
    pub default_expires: u32,
    /// How long a nonce may be answered after its 401.
    pub nonce_lifetime: Duration,
    /// Nonces remembered per connection (the oldest is forgotten first).
    pub nonces_per_connection: usize,
    /// Failed AUTH attempts tolerated on one connection before it is closed.
    pub max_auth_failures: u32,
    /// How long a forwarded transaction waits for its response (RFC 4975 §7.1.1 suggests
    /// 30 seconds) before it fails with 408.
    pub transaction_timeout: Duration,
    /// How long a frame may take to arrive, from its first byte to its end (or between
    /// two segments of a large chunk). Slower connections are closed (slowloris).
    pub frame_timeout: Duration,
    /// How long a connection that holds no session may stay without sending a frame.
    pub idle_timeout: Duration,
    /// How long queued bytes may wait without any progress in writing them before the
    /// connection is closed (a peer that stopped reading).
    pub write_timeout: Duration,
    /// Most connections open at once (inbound and outbound).
    pub max_connections: usize,
    /// Most sessions at once.
    pub max_sessions: usize,
    /// Most sessions one connection may hold.
    pub max_sessions_per_connection: usize,
    /// Unwritten bytes queued for a connection above which its senders pause.
    pub max_unwritten_bytes: usize,
    /// Bytes of forwarded SENDs awaiting a response from a connection above which its
    /// senders pause.
    pub max_unanswered_bytes: usize,
    /// Interval of the housekeeping tick (timeouts, expiries).
    pub tick: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            realm: "huddle".to_owned(),
            // The bounds Kamailio's reference configuration uses.
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: Duration::from_secs(30),
            nonces_per_connection: 4,
            max_auth_failures: 5,
            transaction_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_sessions: 100_000,
            max_sessions_per_connection: 32,
            max_unwritten_bytes: 256 * 1024,
            max_unanswered_bytes: 64 * 1024,
            tick: Duration::from_millis(500),
        }
    }
}

/// Why the core closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The connection limit was reached when it was accepted.
    Refused,
    /// The peer closed it or the socket failed (reported by the driver).
    Gone,
    /// A frame took longer than [`RelayConfig::frame_timeout`].
    SlowFrame,
    /// No frame for [`RelayConfig::idle_timeout`] while holding no session.
    Idle,
    /// Queued bytes made no progress for [`RelayConfig::write_timeout`].
    WriteStalled,
    /// Too many failed AUTH attempts.
    AuthFailures,
    /// The relay is shutting down.
    Shutdown,
}

/// What the core asks the driver to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Write this chunk on `conn` (after what was queued before).
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The chunk.
        chunk: Chunk,
    },
    /// Open a connection to the authority of `target` (`msrps` = TLS) and name it
    /// `conn`; chunks may be transmitted on it before it is up. Report the outcome with
    /// [`RelayCore::handle_connected`] or [`RelayCore::handle_closed`].
    Connect {
        /// The new connection's id.
        conn: ConnId,
        /// The next hop.
        target: MsrpUri,
    },
    /// Stop reading from `conn` (flow control).
    PauseRead(ConnId),
    /// Read from `conn` again.
    ResumeRead(ConnId),
    /// Flush what is queued for `conn`, then close it. The core has forgotten it.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why.
        reason: CloseReason,
    },
}

/// Which listener a connection arrived on, or that the relay opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnKind {
    Inbound { local: usize },
    Outbound,
}

#[derive(Debug)]
struct Nonce {
    value: String,
    issued: Instant,
    /// The highest nonce count accepted with it (RFC 2617 §3.2.2: nc increases with
    /// every request that reuses the nonce; a repeated value is a replay).
    last_nc: u32,
}

/// Where a relay-generated response to a request goes.
#[derive(Debug, Clone)]
struct Reply {
    conn: ConnId,
    tid: TransactionId,
    /// RFC 4975 §7.2: the response's To-Path is the first URI of the request's From-Path,
    to: String,
    /// and its From-Path the responder's URI, the first of the request's To-Path.
    from: String,
}

/// What a failure REPORT about a forwarded SEND needs (RFC 4975 §7.1.2).
#[derive(Debug, Clone)]
struct ReportCtx {
    /// The From-Path the last relay hop received (the REPORT's To-Path).
    to: String,
    /// That hop's own URI (the REPORT's From-Path).
    from: String,
    message_id: String,
    range: String,
    /// The connection the SEND came from, for a REPORT whose first To-Path URI is not
    /// this relay's.
    prev: Option<ConnId>,
}

#[derive(Debug)]
enum PendingKind {
    /// A forwarded SEND with Failure-Report `yes`: a failure becomes a REPORT.
    Send(Box<ReportCtx>),
    /// A forwarded request other than SEND or REPORT: its response is relayed back
    /// (RFC 4976 §6.4.2).
    RelayBack(Box<Reply>),
}

#[derive(Debug)]
struct Pending {
    tid: TransactionId,
    deadline: Instant,
    bytes: usize,
    kind: PendingKind,
}

/// A large chunk being forwarded segment by segment (re-chunked, RFC 4976 §6.4.1).
#[derive(Debug)]
struct StreamFwd {
    dest: ConnId,
    to: String,
    from: String,
    reply: Reply,
    failure_report: ReportRequest,
    report: Option<ReportCtx>,
    template: Headers,
    next_start: u64,
    total: Option<u64>,
}

#[derive(Debug)]
enum Stream {
    Forward(Box<StreamFwd>),
    /// The rest of a refused or failed large chunk is read and dropped.
    Discard,
}

#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    nonces: VecDeque<Nonce>,
    auth_failures: u32,
    sessions: Vec<String>,
    unwritten: usize,
    unanswered: usize,
    write_progress: Instant,
    pending: VecDeque<Pending>,
    paused: bool,
    /// Connections paused because of this one, resumed when it drains.
    waiters: Vec<ConnId>,
    stream: Option<Stream>,
    partial_since: Option<Instant>,
    last_frame: Instant,
    target: Option<(bool, String, u16)>,
}

impl Conn {
    fn new(kind: ConnKind, now: Instant) -> Self {
        Conn {
            kind,
            nonces: VecDeque::new(),
            auth_failures: 0,
            sessions: Vec::new(),
            unwritten: 0,
            unanswered: 0,
            write_progress: now,
            pending: VecDeque::new(),
            paused: false,
            waiters: Vec::new(),
            stream: None,
            partial_since: None,
            last_frame: now,
            target: None,
        }
    }
}

#[derive(Debug)]
struct Session {
    owner: ConnId,
    /// The From-Path URI of the AUTH: the client the session delivers to.
    client: MsrpUri,
    expires: Instant,
}

/// Where a request being routed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Conn(ConnId),
    /// The previous hop was this relay (a session of its own).
    Internal,
}

#[derive(Debug)]
struct Routed {
    dest: ConnId,
    chunk: Chunk,
    /// The From-Path as the last hop received it.
    report_to: String,
    /// The last hop's own URI.
    hop: String,
}

/// The relay state machine. See the module documentation.
#[derive(Debug)]
pub struct RelayCore {
    config: RelayConfig,
    credentials: CredentialStore,
    locals: Vec<MsrpUri>,
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<String, Session>,
    outbound: HashMap<(bool, String, u16), ConnId>,
    next_outbound: u64,
    out: VecDeque<Output>,
    touched: Vec<ConnId>,
    metrics: RelayMetrics,
    now: Instant,
    next_tick: Instant,
    shutting_down: bool,
}

/// Ids the core gives the connections it opens start here, far above what a driver
/// counting from zero reaches.
const OUTBOUND_IDS: u64 = 1 << 62;

fn first_token(path: &str) -> Option<(&str, &str)> {
    let s = path.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    match s.find(' ') {
        Some(i) => Some((&s[..i], s[i..].trim_start_matches(' '))),
        None => Some((s, "")),
    }
}

fn make_response(reply: &Reply, status: StatusCode, extra: &[(KnownHeader, String)]) -> Chunk {
    let mut headers = Headers::with_capacity(2 + extra.len());
    for (h, v) in [
        (KnownHeader::ToPath, &reply.to),
        (KnownHeader::FromPath, &reply.from),
    ]
    .into_iter()
    .chain(extra.iter().map(|(h, v)| (*h, v)))
    {
        // Values come from decoded headers or from our own formatting: never CR or LF.
        headers
            .append(h, v)
            .expect("header values never contain CR or LF");
    }
    Chunk::new(
        reply.tid.clone(),
        StartLine::Response {
            status,
            comment: status.canonical_reason().map(str::to_owned),
        },
        headers,
        None,
        Flag::End,
    )
}

/// A transaction id whose end-line does not occur in `body` (RFC 4975 §7.1).
fn fresh_tid(body: Option<&[u8]>) -> TransactionId {
    loop {
        let tid = TransactionId::random();
        if !body.is_some_and(|b| body_contains_end_line(tid.as_bytes(), b)) {
            return tid;
        }
    }
}

fn range_of(chunk: &Chunk) -> String {
    match chunk.byte_range() {
        Ok(Some(r)) => r.to_string(),
        // RFC 4975 §7.1.1: without Byte-Range the chunk is the whole message.
        _ => {
            let len = chunk.body_len().unwrap_or(0) as u64;
            ByteRange::new(1, len, (chunk.flag == Flag::End).then_some(len)).to_string()
        }
    }
}

impl RelayCore {
    /// A relay answering at `locals` (its URIs without session-id, one per listener, in
    /// listener order), checking AUTH against `credentials`.
    pub fn new(
        config: RelayConfig,
        credentials: CredentialStore,
        locals: Vec<MsrpUri>,
        now: Instant,
    ) -> Self {
        let next_tick = now + config.tick;
        RelayCore {
            config,
            credentials,
            locals: locals
                .into_iter()
                .map(MsrpUri::without_session_id)
                .collect(),
            conns: HashMap::new(),
            sessions: HashMap::new(),
            outbound: HashMap::new(),
            next_outbound: OUTBOUND_IDS,
            out: VecDeque::new(),
            touched: Vec::new(),
            metrics: RelayMetrics::default(),
            now,
            next_tick,
            shutting_down: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> RelayMetrics {
        let mut m = self.metrics.clone();
        m.connections_open = self.conns.len() as u64;
        m.sessions_active = self.sessions.len() as u64;
        m
    }

    /// The next output, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`RelayCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }

    /// True once a shutdown has begun and every connection is closed.
    pub fn is_drained(&self) -> bool {
        self.shutting_down && self.conns.is_empty()
    }

    /// A connection arrived on listener `listener` (an index into the `locals` given to
    /// [`RelayCore::new`]). Returns false when it is refused (a `Close` is queued).
    pub fn handle_accept(&mut self, conn: ConnId, listener: usize, now: Instant) -> bool {
        self.now = now;
        if self.shutting_down
            || self.conns.len() >= self.config.max_connections
            || listener >= self.locals.len()
        {
            self.metrics.connections_refused += 1;
            self.out.push_back(Output::Close {
                conn,
                reason: CloseReason::Refused,
            });
            return false;
        }
        self.metrics.connections_accepted += 1;
        self.conns
            .insert(conn, Conn::new(ConnKind::Inbound { local: listener }, now));
        true
    }

    /// An outbound connection the core asked for is up.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.write_progress = now;
            c.last_frame = now;
        }
    }

    /// Bytes were read from `conn` (for the byte counters only).
    pub fn handle_bytes_read(&mut self, conn: ConnId, n: usize) {
        if self.conns.contains_key(&conn) {
            self.metrics.bytes_in += n as u64;
        }
    }

    /// `conn` has bytes of a frame that is not complete yet (the slowloris clock starts).
    pub fn handle_partial(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.partial_since.get_or_insert(now);
        }
    }

    /// `bytes` of what was transmitted on `conn` were written to the socket.
    pub fn handle_written(&mut self, conn: ConnId, bytes: usize, now: Instant) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.metrics.bytes_out += bytes as u64;
        c.unwritten = c.unwritten.saturating_sub(bytes);
        c.write_progress = now;
        self.maybe_wake(conn);
        self.flush_shutdown(conn);
    }

    /// `conn` is gone: the peer closed it, the socket failed, its framing broke, or an
    /// outbound connection could not be made. Its transactions fail.
    pub fn handle_closed(&mut self, conn: ConnId, now: Instant) {
        self.now = now;
        self.drop_conn(conn, CloseReason::Gone);
    }

    /// A frame that did not decode but did not break the stream either (RFC 4975 §7.2:
    /// answer 400, or 413/501 as the error says, and go on; never answer a REPORT).
    pub fn handle_decode_error(&mut self, conn: ConnId, error: &DecodeError, now: Instant) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_frame = now;
        c.partial_since = None;
        self.metrics.decode_errors += 1;
        if let Some(resp) = error.response() {
            self.metrics.error_responses += 1;
            self.transmit(conn, resp);
        }
        self.apply_backpressure(conn);
    }

    /// A frame, or a segment of a large one, from `conn`. `end_of_frame` is false for
    /// every segment but the last (the driver asks the decoder).
    pub fn handle_chunk(&mut self, conn: ConnId, chunk: Chunk, end_of_frame: bool, now: Instant) {
        self.now = now;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_frame = now;
        c.partial_since = if end_of_frame { None } else { Some(now) };
        self.metrics.frames_in += 1;
        match chunk.start {
            StartLine::Response { .. } => {
                // A response with a body is an error the decoder reports at its end;
                // its segments carry nothing to act on.
                if chunk.segment.is_none() {
                    self.on_response(conn, chunk);
                }
            }
            StartLine::Request(_) => self.on_request(conn, chunk, end_of_frame),
        }
        self.apply_backpressure(conn);
    }

    /// Housekeeping: transaction timeouts, session and nonce expiry, slow and idle
    /// connections.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.config.tick;
        // Sessions whose Expires ran out (RFC 4976 §6.3: the Use-Path is valid for the
        // granted Expires only).
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for sid in expired {
            if let Some(s) = self.sessions.remove(&sid) {
                self.metrics.sessions_expired += 1;
                if let Some(c) = self.conns.get_mut(&s.owner) {
                    c.sessions.retain(|x| *x != sid);
                }
            }
        }
        let mut to_close = Vec::new();
        let mut timed_out = Vec::new();
        for (&id, c) in &mut self.conns {
            // Expired nonces are kept one more lifetime so that a late answer can be
            // told it is stale rather than unknown.
            let keep = self.config.nonce_lifetime * 2;
            c.nonces.retain(|n| now.duration_since(n.issued) < keep);
            while c.pending.front().is_some_and(|p| p.deadline <= now) {
                let p = c.pending.pop_front().expect("checked");
                c.unanswered = c.unanswered.saturating_sub(p.bytes);
                timed_out.push((id, p));
            }
            if c.partial_since
                .is_some_and(|t| now.duration_since(t) >= self.config.frame_timeout)
            {
                to_close.push((id, CloseReason::SlowFrame));
            } else if c.unwritten > 0
                && now.duration_since(c.write_progress) >= self.config.write_timeout
            {
                to_close.push((id, CloseReason::WriteStalled));
            } else if c.sessions.is_empty()
                && c.pending.is_empty()
                && c.unwritten == 0
                && c.stream.is_none()
                && now.duration_since(c.last_frame) >= self.config.idle_timeout
            {
                to_close.push((id, CloseReason::Idle));
            }
        }
        for (id, p) in timed_out {
            // RFC 4975 §7.1.1: no response within the transaction timeout is a 408.
            self.fail_pending(p, StatusCode::REQUEST_TIMEOUT);
            self.maybe_wake(id);
        }
        for (id, reason) in to_close {
            self.metrics.connections_dropped += 1;
            self.drop_conn(id, reason);
        }
        self.touched.clear();
    }

    /// Stops accepting, stops reading, and closes each connection once what is queued
    /// for it is written. The driver closes whatever is left after its grace period.
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.now = now;
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id)
                && !c.paused
            {
                c.paused = true;
                self.out.push_back(Output::PauseRead(id));
            }
            self.flush_shutdown(id);
        }
    }

    // ---- requests ------------------------------------------------------------------

    fn on_request(&mut self, conn: ConnId, chunk: Chunk, end_of_frame: bool) {
        if chunk.segment.is_some_and(|s| s > 1) {
            self.continue_stream(conn, chunk, end_of_frame);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn)
            && c.stream.is_some()
        {
            // A new frame while a large one was open cannot come from one decoder;
            // treat the old one as cut.
            self.abort_stream_of(conn);
        }
        let streaming = chunk.segment.is_some() && !end_of_frame;
        let method = match &chunk.start {
            StartLine::Request(m) => m.clone(),
            StartLine::Response { .. } => return,
        };
        let (Some(to_raw), Some(from_raw)) = (
            chunk.headers().get(KnownHeader::ToPath),
            chunk.headers().get(KnownHeader::FromPath),
        ) else {
            // The decoder refuses frames without both paths; nothing to answer to.
            return;
        };
        let (Some((to_tok, _)), Some((from_tok, _))) = (first_token(to_raw), first_token(from_raw))
        else {
            self.metrics.decode_errors += 1;
            return;
        };
        let reply = Reply {
            conn,
            tid: chunk.transaction_id.clone(),
            to: from_tok.to_owned(),
            from: to_tok.to_owned(),
        };
        let is_send = method == Method::SEND;
        let is_report = method == Method::REPORT;
        // RFC 4975 §7.1.2: REPORT requests are never answered, whatever goes wrong.
        let answer = !is_report;
        let to = parse_path(to_raw);
        let from = parse_path(from_raw);
        let (to, _from) = match (to, from) {
            (Ok(t), Ok(f)) => (t, f),
            _ => {
                // RFC 4975 §7.2: a request that cannot be parsed gets 400.
                self.metrics.decode_errors += 1;
                self.refuse(&reply, answer, StatusCode::BAD_REQUEST, streaming);
                return;
            }
        };
        let failure_report = if is_send {
            match chunk.failure_report() {
                Ok(f) => f,
                Err(_) => {
                    self.metrics.decode_errors += 1;
                    self.refuse(&reply, true, StatusCode::BAD_REQUEST, streaming);
                    return;
                }
            }
        } else {
            ReportRequest::Yes
        };
        // RFC 4975 §7.1.1 / §7.1.2: SEND and REPORT carry a Message-ID; REPORT a Status.
        if (is_send || is_report) && chunk.message_id().is_none()
            || is_report && !matches!(chunk.status_header(), Ok(Some(_)))
            || is_send && chunk.byte_range().is_err()
        {
            self.metrics.decode_errors += 1;
            self.refuse(&reply, answer, StatusCode::BAD_REQUEST, streaming);
            return;
        }
        // RFC 4976 §6.3: an AUTH whose To-Path is this relay alone is for the relay.
        if method == Method::AUTH && to.len() == 1 && self.is_local(&to[0]) {
            if streaming {
                self.refuse(&reply, true, StatusCode::STOP_SENDING, true);
                return;
            }
            self.on_auth(conn, &chunk, &to[0], reply);
            return;
        }
        // RFC 4975 §12: an unknown method is answered 501 (a relay cannot know how to
        // handle its responses).
        if let Method::Extension(_) = method {
            self.refuse(&reply, true, StatusCode::NOT_IMPLEMENTED, streaming);
            return;
        }
        if streaming && !is_send {
            // Only SEND bodies are streamed through; other requests are small.
            self.refuse(&reply, answer, StatusCode::STOP_SENDING, true);
            return;
        }
        // RFC 4975 §7.1.1: Failure-Report `no` means no response at all, `partial` only
        // failure responses.
        let answer_failure = answer && (!is_send || failure_report != ReportRequest::No);
        let message_id = chunk.message_id().map(str::to_owned);
        let range = if is_send {
            Some(range_of(&chunk))
        } else {
            None
        };
        let routed = match self.route(chunk, Source::Conn(conn)) {
            Ok(r) => r,
            Err(status) => {
                self.refuse(&reply, answer_failure, status, streaming);
                return;
            }
        };
        let report = |routed: &Routed| ReportCtx {
            to: routed.report_to.clone(),
            from: routed.hop.clone(),
            message_id: message_id.clone().unwrap_or_default(),
            range: range.clone().unwrap_or_default(),
            prev: Some(conn),
        };
        if streaming {
            let template = routed.chunk.headers().clone();
            let start = routed
                .chunk
                .byte_range()
                .ok()
                .flatten()
                .map_or(1, |r| r.start);
            let total = routed
                .chunk
                .byte_range()
                .ok()
                .flatten()
                .and_then(|r| r.total);
            let fwd = StreamFwd {
                dest: routed.dest,
                to: template.get(KnownHeader::ToPath).unwrap_or("").to_owned(),
                from: template.get(KnownHeader::FromPath).unwrap_or("").to_owned(),
                reply,
                failure_report,
                report: (failure_report == ReportRequest::Yes).then(|| report(&routed)),
                template,
                next_start: start,
                total,
            };
            let chunk = routed.chunk;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.stream = Some(Stream::Forward(Box::new(fwd)));
            }
            self.forward_segment(conn, chunk, false);
            return;
        }
        if is_send {
            self.metrics.sends_forwarded += 1;
            let ctx = (failure_report == ReportRequest::Yes).then(|| report(&routed));
            let tid = routed.chunk.transaction_id.clone();
            let bytes = self.transmit(routed.dest, routed.chunk);
            if let Some(ctx) = ctx {
                self.push_pending(routed.dest, tid, bytes, PendingKind::Send(Box::new(ctx)));
                // RFC 4976 §6.4.1 / RFC 4975 §7.2: responses to SEND are hop by hop; the
                // relay answers 200 itself once it has taken the chunk.
                self.respond(&reply, StatusCode::OK, &[]);
            }
        } else if is_report {
            self.metrics.reports_forwarded += 1;
            self.transmit(routed.dest, routed.chunk);
        } else {
            // RFC 4976 §6.4.2: other requests are forwarded and their response relayed.
            let tid = routed.chunk.transaction_id.clone();
            let bytes = self.transmit(routed.dest, routed.chunk);
            self.push_pending(routed.dest, tid, 0, PendingKind::RelayBack(Box::new(reply)));
            let _ = bytes;
        }
    }

    /// Answers a request with an error (when `answer`), and drops the rest of its body
    /// when it is a large chunk still arriving.
    fn refuse(&mut self, reply: &Reply, answer: bool, status: StatusCode, streaming: bool) {
        if answer {
            self.respond(reply, status, &[]);
        }
        if streaming && let Some(c) = self.conns.get_mut(&reply.conn) {
            c.stream = Some(Stream::Discard);
        }
    }

    fn respond(&mut self, reply: &Reply, status: StatusCode, extra: &[(KnownHeader, String)]) {
        if !self.conns.contains_key(&reply.conn) {
            return;
        }
        if !status.is_success() {
            self.metrics.error_responses += 1;
        }
        let resp = make_response(reply, status, extra);
        self.transmit(reply.conn, resp);
    }

    fn continue_stream(&mut self, conn: ConnId, chunk: Chunk, end_of_frame: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match c.stream {
            Some(Stream::Forward(_)) => self.forward_segment(conn, chunk, end_of_frame),
            Some(Stream::Discard) | None => {
                if end_of_frame {
                    c.stream = None;
                }
            }
        }
    }

    /// Forwards one segment of a large chunk as a chunk of its own (RFC 4976 §6.4.1
    /// allows a relay to re-chunk): a fresh transaction id, the segment's Byte-Range, the
    /// rewritten paths, `+` except on the last piece, which keeps the original flag.
    fn forward_segment(&mut self, conn: ConnId, mut chunk: Chunk, end_of_frame: bool) {
        let Some(Some(Stream::Forward(fwd))) = self.conns.get_mut(&conn).map(|c| c.stream.take())
        else {
            return;
        };
        let mut fwd = fwd;
        let range = chunk.byte_range().ok().flatten();
        // Invariant: both values were taken from decoded headers.
        let _ = chunk.headers_mut().set(KnownHeader::ToPath, &fwd.to);
        let _ = chunk.headers_mut().set(KnownHeader::FromPath, &fwd.from);
        chunk.transaction_id = fresh_tid(chunk.body());
        chunk.segment = None;
        if let Some(r) = range {
            fwd.next_start = r.end.map_or(fwd.next_start, |e| e + 1);
        }
        let tid = chunk.transaction_id.clone();
        let report = fwd.report.clone().map(|mut ctx| {
            ctx.range = range_of(&chunk);
            ctx
        });
        self.metrics.sends_forwarded += 1;
        let bytes = self.transmit(fwd.dest, chunk);
        if let Some(ctx) = report {
            self.push_pending(fwd.dest, tid, bytes, PendingKind::Send(Box::new(ctx)));
        }
        if end_of_frame {
            if fwd.failure_report == ReportRequest::Yes {
                self.respond(&fwd.reply, StatusCode::OK, &[]);
            }
        } else if let Some(c) = self.conns.get_mut(&conn) {
            c.stream = Some(Stream::Forward(fwd));
        }
    }

    /// The sender of a large chunk went away mid-chunk: tell the next hop the message
    /// was aborted (RFC 4975 §7.1: flag `#`) with an empty last piece.
    fn abort_stream(&mut self, fwd: StreamFwd) {
        self.metrics.aborted_chunks += 1;
        if !self.conns.contains_key(&fwd.dest) {
            return;
        }
        let mut headers = fwd.template;
        let range = ByteRange::new(fwd.next_start.max(1), 0, fwd.total);
        let _ = headers.set(KnownHeader::ByteRange, &range.to_string());
        let _ = headers.set(KnownHeader::ToPath, &fwd.to);
        let _ = headers.set(KnownHeader::FromPath, &fwd.from);
        let body = Bytes::new();
        let chunk = Chunk::new(
            fresh_tid(Some(&body)),
            StartLine::Request(Method::SEND),
            headers,
            Some(body),
            Flag::Abort,
        );
        self.transmit(fwd.dest, chunk);
    }

    fn abort_stream_of(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn)
            && let Some(Stream::Forward(fwd)) = c.stream.take()
        {
            self.abort_stream(*fwd);
        }
    }

    // ---- AUTH ----------------------------------------------------------------------

    fn challenge(&mut self, conn: ConnId, reply: &Reply, stale: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        // A fresh, unguessable nonce per challenge, remembered by this connection only:
        // it cannot be answered on another connection, expires after nonce_lifetime, and
        // each nonce count is accepted once (RFC 2617 §3.2.1, §3.2.2).
        let value = huddle_msrp::ids::random_token() + &huddle_msrp::ids::random_token();
        while c.nonces.len() >= self.config.nonces_per_connection.max(1) {
            c.nonces.pop_front();
        }
        c.nonces.push_back(Nonce {
            value: value.clone(),
            issued: self.now,
            last_nc: 0,
        });
        let mut ch = Challenge::new(&self.config.realm, &value);
        ch.stale = stale;
        self.metrics.auth_challenges += 1;
        // RFC 4976 §6.3: an AUTH without valid credentials gets 401 with a Digest
        // challenge (qop "auth").
        self.respond(
            reply,
            StatusCode::UNAUTHORIZED,
            &[(KnownHeader::WwwAuthenticate, ch.to_params().to_string())],
        );
    }

    /// One failed attempt: a new challenge, or 403 and the connection closed when there
    /// were too many.
    fn auth_failed(&mut self, conn: ConnId, reply: &Reply, stale: bool) {
        self.metrics.auth_failures += 1;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.auth_failures += 1;
        if c.auth_failures > self.config.max_auth_failures {
            self.respond(reply, StatusCode::FORBIDDEN, &[]);
            self.metrics.connections_dropped += 1;
            self.drop_conn(conn, CloseReason::AuthFailures);
            return;
        }
        self.challenge(conn, reply, stale);
    }

    fn on_auth(&mut self, conn: ConnId, chunk: &Chunk, to: &MsrpUri, reply: Reply) {
        let params = match chunk.authorization() {
            Ok(Some(p)) => p,
            Ok(None) => return self.challenge(conn, &reply, false),
            Err(_) => return self.auth_failed(conn, &reply, false),
        };
        let Ok(creds) = Credentials::from_params(&params) else {
            return self.auth_failed(conn, &reply, false);
        };
        // RFC 2617 §3.2.2: the realm and digest-uri are those of this relay.
        let uri_ok = creds
            .uri
            .parse::<MsrpUri>()
            .is_ok_and(|u| self.is_local_authority(&u));
        if creds.realm != self.config.realm || !uri_ok {
            return self.auth_failed(conn, &reply, false);
        }
        let now = self.now;
        let lifetime = self.config.nonce_lifetime;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(idx) = c
            .nonces
            .iter()
            .position(|n| constant_time_eq(n.value.as_bytes(), creds.nonce.as_bytes()))
        else {
            return self.auth_failed(conn, &reply, false);
        };
        let password = self.credentials.password(&creds.username);
        let valid = password.is_some_and(|pw| creds.verify(AUTH_METHOD, pw));
        let nonce = &mut c.nonces[idx];
        if now.duration_since(nonce.issued) >= lifetime {
            c.nonces.remove(idx);
            // RFC 2617 §3.2.1: right credentials with an expired nonce: stale=true.
            return self.auth_failed(conn, &reply, valid);
        }
        if creds.nc <= nonce.last_nc {
            self.metrics.nonce_replays += 1;
            return self.auth_failed(conn, &reply, false);
        }
        if !valid {
            return self.auth_failed(conn, &reply, false);
        }
        nonce.last_nc = creds.nc;
        // A client that authenticates is not guessing: failures before (a stale nonce on
        // each refresh of a long session) no longer count towards closing it.
        c.auth_failures = 0;
        // RFC 4976 §6.3: Expires outside the relay's bounds gets 423 with the bound.
        let expires = match chunk.expires() {
            Ok(Some(e)) => e,
            Ok(None) => self.config.default_expires,
            Err(_) => return self.respond(&reply, StatusCode::BAD_REQUEST, &[]),
        };
        if expires < self.config.min_expires {
            let v = self.config.min_expires.to_string();
            return self.respond(
                &reply,
                StatusCode::INTERVAL_OUT_OF_BOUNDS,
                &[(KnownHeader::MinExpires, v)],
            );
        }
        if expires > self.config.max_expires {
            let v = self.config.max_expires.to_string();
            return self.respond(
                &reply,
                StatusCode::INTERVAL_OUT_OF_BOUNDS,
                &[(KnownHeader::MaxExpires, v)],
            );
        }
        let ConnKind::Inbound { local } = c.kind else {
            // Outbound connections lead to other relays, which do not AUTH with us.
            return self.respond(&reply, StatusCode::FORBIDDEN, &[]);
        };
        let deadline = now + Duration::from_secs(expires.into());
        // Re-AUTH of a session this connection holds: refresh it, same Use-Path.
        if let Some(sid) = to.session_id()
            && let Some(s) = self.sessions.get_mut(sid)
            && s.owner == conn
        {
            s.expires = deadline;
            let uri = self.locals[local].clone().with_session_id(sid);
            let use_path = uri.map(|u| u.to_string()).unwrap_or_default();
            return self.respond(
                &reply,
                StatusCode::OK,
                &[
                    (KnownHeader::UsePath, use_path),
                    (KnownHeader::Expires, expires.to_string()),
                ],
            );
        }
        let Ok(from) = chunk.from_path() else {
            return self.respond(&reply, StatusCode::BAD_REQUEST, &[]);
        };
        // RFC 4976 §5.1: the client AUTHs directly with its relay; its From-Path is the
        // client URI the session will deliver to.
        if from.len() != 1 {
            return self.respond(&reply, StatusCode::FORBIDDEN, &[]);
        }
        if c.sessions.len() >= self.config.max_sessions_per_connection
            || self.sessions.len() >= self.config.max_sessions
        {
            return self.respond(&reply, StatusCode::FORBIDDEN, &[]);
        }
        // RFC 4976 §6.3: the Use-Path URI must be hard to guess: 2 × 16 characters of
        // a 62-letter alphabet from the OS CSPRNG, about 190 bits.
        let sid = loop {
            let sid = huddle_msrp::ids::random_token() + &huddle_msrp::ids::random_token();
            if !self.sessions.contains_key(&sid) {
                break sid;
            }
        };
        let Ok(uri) = self.locals[local].clone().with_session_id(&sid) else {
            return self.respond(&reply, StatusCode::BAD_REQUEST, &[]);
        };
        c.sessions.push(sid.clone());
        self.sessions.insert(
            sid,
            Session {
                owner: conn,
                client: from.into_iter().next().expect("one URI"),
                expires: deadline,
            },
        );
        self.metrics.sessions_created += 1;
        self.respond(
            &reply,
            StatusCode::OK,
            &[
                (KnownHeader::UsePath, uri.to_string()),
                (KnownHeader::Expires, expires.to_string()),
            ],
        );
    }

    // ---- routing -------------------------------------------------------------------

    fn is_local_authority(&self, uri: &MsrpUri) -> bool {
        self.locals.iter().any(|l| {
            l.secure() == uri.secure()
                && l.host() == uri.host()
                && l.port() == uri.port()
                && l.transport().eq_ignore_ascii_case(uri.transport())
        })
    }

    fn is_local(&self, uri: &MsrpUri) -> bool {
        self.is_local_authority(uri)
    }

    /// Routes a request one relay hop at a time (RFC 4976 §6.4): the first To-Path URI
    /// must be a live session of this relay; the relay removes it from To-Path and puts
    /// it at the front of From-Path; the next hop is the session's client, another of
    /// this relay's sessions (forwarded internally, never over a socket to itself), or
    /// another host.
    fn route(&mut self, mut chunk: Chunk, mut source: Source) -> Result<Routed, StatusCode> {
        loop {
            let to_raw = chunk
                .headers()
                .get(KnownHeader::ToPath)
                .ok_or(StatusCode::BAD_REQUEST)?;
            let from_raw = chunk
                .headers()
                .get(KnownHeader::FromPath)
                .ok_or(StatusCode::BAD_REQUEST)?;
            let to = parse_path(to_raw).map_err(|_| StatusCode::BAD_REQUEST)?;
            // RFC 4975 §7.3.1 / RFC 4976 §6.4: a request whose first To-Path URI is not a
            // session of this relay gets 481.
            if !self.is_local_authority(&to[0]) {
                return Err(StatusCode::SESSION_DOES_NOT_EXIST);
            }
            let session = to[0]
                .session_id()
                .and_then(|sid| self.sessions.get(sid))
                .filter(|s| s.expires > self.now)
                .ok_or(StatusCode::SESSION_DOES_NOT_EXIST)?;
            // Nothing beyond the relay: it is not an endpoint.
            let next = to.get(1).ok_or(StatusCode::SESSION_DOES_NOT_EXIST)?;
            let to_client = *next == session.client;
            let from_owner = source == Source::Conn(session.owner);
            // RFC 4976 §6.4: a session's Use-Path carries traffic from its client, or to
            // its client; anything else is refused with 403 (no open relaying).
            if !from_owner && !to_client {
                return Err(StatusCode::FORBIDDEN);
            }
            let owner = session.owner;
            let (hop, rest) = first_token(to_raw).ok_or(StatusCode::BAD_REQUEST)?;
            let hop = hop.to_owned();
            let new_to = rest.to_owned();
            let report_to = from_raw.to_owned();
            let new_from = format!("{hop} {from_raw}");
            chunk
                .headers_mut()
                .set(KnownHeader::ToPath, &new_to)
                .map_err(|_| StatusCode::BAD_REQUEST)?;
            chunk
                .headers_mut()
                .set(KnownHeader::FromPath, &new_from)
                .map_err(|_| StatusCode::BAD_REQUEST)?;
            if to_client {
                return Ok(Routed {
                    dest: owner,
                    chunk,
                    report_to,
                    hop,
                });
            }
            if self.is_local_authority(next) {
                self.metrics.internal_hops += 1;
                source = Source::Internal;
                continue;
            }
            let dest = self.outbound_to(next);
            return Ok(Routed {
                dest,
                chunk,
                report_to,
                hop,
            });
        }
    }

    /// The connection to `next`'s authority, opened if there is none (RFC 4975 §6:
    /// connections are per authority and reused).
    fn outbound_to(&mut self, next: &MsrpUri) -> ConnId {
        let key = (
            next.secure(),
            next.host().to_string(),
            next.effective_port(),
        );
        if let Some(id) = self.outbound.get(&key)
            && self.conns.contains_key(id)
        {
            return *id;
        }
        let id = ConnId(self.next_outbound);
        self.next_outbound += 1;
        let mut c = Conn::new(ConnKind::Outbound, self.now);
        c.target = Some(key.clone());
        self.conns.insert(id, c);
        self.outbound.insert(key, id);
        self.out.push_back(Output::Connect {
            conn: id,
            target: next.clone().without_session_id(),
        });
        id
    }

    // ---- responses and failures ----------------------------------------------------

    fn on_response(&mut self, conn: ConnId, chunk: Chunk) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let tid = &chunk.transaction_id;
        // Responses come back in order almost always: look at the oldest first.
        let idx = if c.pending.front().is_some_and(|p| &p.tid == tid) {
            Some(0)
        } else {
            c.pending.iter().position(|p| &p.tid == tid)
        };
        let Some(idx) = idx else {
            // Not ours (late, after a timeout, or unsolicited): nothing to do.
            return;
        };
        let p = c.pending.remove(idx).expect("index found above");
        c.unanswered = c.unanswered.saturating_sub(p.bytes);
        let status = chunk.status_code().unwrap_or(StatusCode::BAD_REQUEST);
        match p.kind {
            PendingKind::Send(ctx) => {
                // RFC 4976 §6.4.3: a failure response to a forwarded SEND becomes a
                // REPORT to the sender when it asked for failure reports.
                if !status.is_success() {
                    self.failure_report(&ctx, status);
                }
            }
            PendingKind::RelayBack(reply) => {
                let extra: Vec<(KnownHeader, String)> = chunk
                    .headers()
                    .iter()
                    .filter_map(|(n, v)| {
                        let k = n.known_header()?;
                        (k != KnownHeader::ToPath && k != KnownHeader::FromPath)
                            .then(|| (k, v.to_owned()))
                    })
                    .collect();
                self.respond(&reply, status, &extra);
            }
        }
        self.maybe_wake(conn);
    }

    fn fail_pending(&mut self, p: Pending, status: StatusCode) {
        self.metrics.transaction_failures += 1;
        match p.kind {
            PendingKind::Send(ctx) => self.failure_report(&ctx, status),
            PendingKind::RelayBack(reply) => self.respond(&reply, status, &[]),
        }
    }

    /// Sends a REPORT with `status` about a forwarded SEND back towards its sender
    /// (RFC 4975 §7.1.2: To-Path = the SEND's From-Path as received, From-Path = the
    /// reporting hop, the SEND's Message-ID and Byte-Range, Status `000 code`).
    fn failure_report(&mut self, ctx: &ReportCtx, status: StatusCode) {
        let Ok(report) = ChunkBuilder::request(Method::REPORT)
            .header(KnownHeader::ToPath, &ctx.to)
            .header(KnownHeader::FromPath, &ctx.from)
            .message_id(&ctx.message_id)
            .header(KnownHeader::ByteRange, &ctx.range)
            .header(KnownHeader::Status, &StatusHeader::msrp(status).to_string())
            .build()
        else {
            return;
        };
        let local_first = first_token(&ctx.to)
            .and_then(|(t, _)| t.parse::<MsrpUri>().ok())
            .is_some_and(|u| self.is_local_authority(&u));
        let dest = if local_first {
            match self.route(report, Source::Internal) {
                Ok(r) => Some((r.dest, r.chunk)),
                Err(_) => None,
            }
        } else {
            ctx.prev.map(|p| (p, report))
        };
        if let Some((dest, report)) = dest
            && self.conns.contains_key(&dest)
        {
            self.metrics.failure_reports += 1;
            self.transmit(dest, report);
        }
    }

    // ---- connections and flow control ----------------------------------------------

    fn transmit(&mut self, dest: ConnId, chunk: Chunk) -> usize {
        let Some(d) = self.conns.get_mut(&dest) else {
            return 0;
        };
        let len = chunk.encoded_len();
        if d.unwritten == 0 {
            d.write_progress = self.now;
        }
        d.unwritten += len;
        self.metrics.frames_out += 1;
        self.touched.push(dest);
        self.out.push_back(Output::Transmit { conn: dest, chunk });
        len
    }

    fn push_pending(&mut self, dest: ConnId, tid: TransactionId, bytes: usize, kind: PendingKind) {
        if let Some(d) = self.conns.get_mut(&dest) {
            d.unanswered += bytes;
            d.pending.push_back(Pending {
                tid,
                deadline: self.now + self.config.transaction_timeout,
                bytes,
                kind,
            });
        }
    }

    fn over(&self, d: &Conn) -> bool {
        d.unwritten > self.config.max_unwritten_bytes
            || (!d.paused && d.unanswered > self.config.max_unanswered_bytes)
    }

    fn under(&self, d: &Conn) -> bool {
        d.unwritten <= self.config.max_unwritten_bytes / 2
            && (d.paused || d.unanswered <= self.config.max_unanswered_bytes / 2)
    }

    /// After a chunk from `source` was handled: pause `source` if it filled a next hop.
    fn apply_backpressure(&mut self, source: ConnId) {
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort_unstable();
        touched.dedup();
        for &d in &touched {
            let over = self.conns.get(&d).is_some_and(|c| self.over(c));
            if over {
                self.block(source, d);
            }
        }
        touched.clear();
        self.touched = touched;
    }

    fn block(&mut self, source: ConnId, dest: ConnId) {
        if !self.conns.contains_key(&source) {
            return;
        }
        if let Some(d) = self.conns.get_mut(&dest)
            && !d.waiters.contains(&source)
        {
            d.waiters.push(source);
        }
        let Some(s) = self.conns.get_mut(&source) else {
            return;
        };
        if !s.paused {
            s.paused = true;
            self.out.push_back(Output::PauseRead(source));
            // A paused connection's responses are not read: whoever waits for its
            // answers must not wait on them any more (see the module documentation).
            let waiters = std::mem::take(&mut s.waiters);
            self.resume(waiters);
        }
    }

    fn maybe_wake(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.waiters.is_empty() || !self.under(c) {
            return;
        }
        let waiters = std::mem::take(&mut self.conns.get_mut(&conn).expect("present").waiters);
        self.resume(waiters);
    }

    fn resume(&mut self, waiters: Vec<ConnId>) {
        if self.shutting_down {
            return;
        }
        for w in waiters {
            if let Some(c) = self.conns.get_mut(&w)
                && c.paused
            {
                c.paused = false;
                self.out.push_back(Output::ResumeRead(w));
            }
        }
    }

    fn flush_shutdown(&mut self, conn: ConnId) {
        if self.shutting_down && self.conns.get(&conn).is_some_and(|c| c.unwritten == 0) {
            self.drop_conn(conn, CloseReason::Shutdown);
        }
    }

    /// Forgets a connection: its sessions end, its transactions fail, a large chunk it
    /// was sending is aborted downstream, large chunks being sent to it are refused.
    fn drop_conn(&mut self, conn: ConnId, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        self.out.push_back(Output::Close { conn, reason });
        for sid in c.sessions.drain(..) {
            self.sessions.remove(&sid);
        }
        if let Some(key) = &c.target
            && self.outbound.get(key) == Some(&conn)
        {
            self.outbound.remove(key);
        }
        if let Some(Stream::Forward(fwd)) = c.stream.take() {
            self.abort_stream(*fwd);
        }
        // Large chunks on their way to this connection: refuse the rest.
        let feeding: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, o)| matches!(&o.stream, Some(Stream::Forward(f)) if f.dest == conn))
            .map(|(id, _)| *id)
            .collect();
        for src in feeding {
            if let Some(o) = self.conns.get_mut(&src)
                && let Some(Stream::Forward(fwd)) = o.stream.replace(Stream::Discard)
            {
                self.metrics.aborted_chunks += 1;
                if fwd.failure_report != ReportRequest::No {
                    self.respond(&fwd.reply, StatusCode::REQUEST_TIMEOUT, &[]);
                }
            }
        }
        // RFC 4975 §7.1.1: a transaction whose connection is lost gets no response; the
        // relay treats it like a timeout (408) and reports it.
        for p in c.pending.drain(..) {
            self.fail_pending(p, StatusCode::REQUEST_TIMEOUT);
        }
        let waiters = std::mem::take(&mut c.waiters);
        self.resume(waiters);
        self.touched.retain(|t| *t != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_token_splits_paths() {
        assert_eq!(first_token("  a b  c"), Some(("a", "b  c")));
        assert_eq!(first_token("a"), Some(("a", "")));
        assert_eq!(first_token("   "), None);
    }

    #[test]
    fn nonce_and_session_ids_are_long() {
        let t = huddle_msrp::ids::random_token() + &huddle_msrp::ids::random_token();
        // ≥ 80 bits: 32 characters of a 62-letter alphabet.
        assert!((t.len() as f64) * 62f64.log2() >= 80.0);
    }
}
