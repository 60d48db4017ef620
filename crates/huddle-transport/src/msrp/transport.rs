//! [`MsrpTransport`]: one MSRP connection with its session paths (msrplib's
//! `MSRPTransport`).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use huddle_msrp::chunk::ChunkBuilder;
use huddle_msrp::header::{ByteRange, HeaderError};
use huddle_msrp::split::OutgoingMessage;
use huddle_msrp::{
    Chunk, DecodeError, Flag, KnownHeader, Method, MsrpUri, StatusCode, TransactionId,
};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::stream::MsrpStream;
use super::trafficlog::{ConnectionEvent, ConnectionInfo, Direction, SharedLogger};
use super::{SessionMismatch, TransportOptions};
use crate::codec::{CodecError, MsrpCodec};
use crate::relay::client::{AuthError, AuthStep, Grant, RelayAuth};

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer's bytes broke the framing; the connection is closed.
    #[error("unrecoverable framing error: {0}")]
    Framing(DecodeError),
    /// The peer sent a bad frame; it was answered (400/413/501 for requests) and the
    /// connection is still usable.
    #[error("bad frame from the peer: {0}")]
    BadFrame(DecodeError),
    /// The peer closed the connection.
    #[error("connection closed by the peer")]
    Closed,
    /// An incoming SEND does not belong to this session; it was answered with 481.
    #[error("request for another session: {0}")]
    WrongSession(SessionMismatch),
    /// Nothing arrived in time.
    #[error("timed out")]
    Timeout,
    /// The relay refused (re-)authentication.
    #[error("relay authentication failed: {0}")]
    RelayAuth(#[from] AuthError),
    /// A relay operation on a transport that is not a relay connection.
    #[error("not a relay connection")]
    NoRelay,
    /// A chunk could not be built from the given values.
    #[error("cannot build chunk: {0}")]
    Build(#[from] HeaderError),
    /// A request failed with this response.
    #[error("transaction failed with {status} {comment:?}")]
    Failed {
        /// The status of the response.
        status: StatusCode,
        /// Its comment.
        comment: Option<String>,
    },
}

impl From<CodecError> for TransportError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Decode(d) => TransportError::Framing(d),
            CodecError::Io(e) => TransportError::Io(e),
            // CodecError is non_exhaustive for other crates, not for this one.
        }
    }
}

/// A transport taken apart by [`MsrpTransport::into_parts`].
#[derive(Debug)]
#[non_exhaustive]
pub struct TransportParts {
    /// The connection.
    pub stream: MsrpStream,
    /// Bytes already read from `stream` that its next reader must see first.
    pub read_prefix: bytes::BytesMut,
    /// The relay's AUTH state machine on a relay connection (`None` for direct ones).
    pub relay: Option<RelayAuth>,
}

/// A virtual chunk in progress for bounded reads.
#[derive(Debug)]
struct Partial {
    chunk: Chunk,
    /// Body bytes of `chunk` already handed out.
    offset: usize,
}

/// One MSRP connection bound to a session: its local URI, the relay path in front of
/// it (RFC 4976 Use-Path, empty for direct connections) and the remote full path
/// (RFC 4975 §8.1 `a=path`). Chunks are made with these paths, written, read whole or
/// as bounded segments, and incoming SENDs are checked against them.
///
/// A transport on a relay connection also carries the relay's [`RelayAuth`]: responses
/// to its AUTH requests are consumed by [`MsrpTransport::read_chunk`], which also sends
/// the refresh AUTH when the grant is due, so a reader keeps the grant alive.
#[derive(Debug)]
pub struct MsrpTransport {
    framed: Framed<MsrpStream, MsrpCodec>,
    info: ConnectionInfo,
    local_uri: MsrpUri,
    relay_path: Vec<MsrpUri>,
    remote_path: Vec<MsrpUri>,
    logger: LoggerHandle,
    pending: VecDeque<Chunk>,
    partial: Option<Partial>,
    relay: Option<RelayAuth>,
    relay_events: VecDeque<Grant>,
    segments: Option<(TransactionId, u32)>,
}

/// Wraps the logger so the transport can derive `Debug`.
#[derive(Clone)]
struct LoggerHandle(SharedLogger);

impl std::fmt::Debug for LoggerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrafficLogger")
    }
}

impl MsrpTransport {
    /// A transport over `stream` whose own URI is `local_uri`. The remote path is set by
    /// binding (the connectors) or with [`MsrpTransport::set_remote_path`].
    pub fn new(
        stream: MsrpStream,
        local_uri: MsrpUri,
        options: &TransportOptions,
    ) -> io::Result<Self> {
        let info = ConnectionInfo {
            local: stream.local_addr()?,
            peer: stream.peer_addr()?,
            secure: stream.is_secure(),
        };
        let logger = LoggerHandle(options.logger.clone());
        logger.0.event(&info, ConnectionEvent::Opened);
        Ok(MsrpTransport {
            framed: Framed::new(stream, MsrpCodec::new(options.limits)),
            info,
            local_uri,
            relay_path: Vec::new(),
            remote_path: Vec::new(),
            logger,
            pending: VecDeque::new(),
            partial: None,
            relay: None,
            relay_events: VecDeque::new(),
            segments: None,
        })
    }

    /// Hands the connection over to another driver (such as huddle-session's MSRP
    /// session driver): the stream, and the bytes read from it but not yet handed out
    /// (chunks read ahead are re-encoded in front), which the new reader must see first.
    /// The relay state machine is dropped, so nobody refreshes the grant any more: use
    /// [`MsrpTransport::into_parts`] to hand it over too.
    pub fn into_stream(self) -> Result<(MsrpStream, bytes::BytesMut), CodecError> {
        let parts = self.into_parts()?;
        Ok((parts.stream, parts.read_prefix))
    }

    /// Hands the connection over to another driver with everything it needs to go on:
    /// the stream, the bytes read ahead (see [`MsrpTransport::into_stream`]) and, on a
    /// relay connection, the [`RelayAuth`] whose grant the new driver must keep
    /// refreshing on this connection (RFC 4976 §5.1: the client re-authenticates before
    /// the Expires of its grant runs out). An AUTH in flight at the handover is answered
    /// to the new driver, which feeds the response to the state machine.
    pub fn into_parts(self) -> Result<TransportParts, CodecError> {
        use tokio_util::codec::Encoder as _;
        let parts = self.framed.into_parts();
        let mut codec = parts.codec;
        let mut prefix = bytes::BytesMut::new();
        for chunk in self.pending {
            codec.encode(chunk, &mut prefix)?;
        }
        prefix.extend_from_slice(&parts.read_buf);
        Ok(TransportParts {
            stream: parts.io,
            read_prefix: prefix,
            relay: self.relay,
        })
    }

    /// Our own URI on this connection.
    pub fn local_uri(&self) -> &MsrpUri {
        &self.local_uri
    }

    /// The relays in front of us (our relay's Use-Path), empty without a relay.
    pub fn relay_path(&self) -> &[MsrpUri] {
        &self.relay_path
    }

    /// Our full path for SDP `a=path` (RFC 4976 §6.1: the Use-Path, then our URI).
    pub fn full_local_path(&self) -> Vec<MsrpUri> {
        let mut p = self.relay_path.clone();
        p.push(self.local_uri.clone());
        p
    }

    /// The remote party's full path (its `a=path`).
    pub fn remote_path(&self) -> &[MsrpUri] {
        &self.remote_path
    }

    /// Sets the remote party's full path.
    pub fn set_remote_path(&mut self, path: Vec<MsrpUri>) {
        self.remote_path = path;
    }

    pub(crate) fn set_local_uri(&mut self, uri: MsrpUri) {
        self.local_uri = uri;
    }

    /// The To-Path of our requests: RFC 4976 §6.1, our relays' Use-Path followed by the
    /// remote full path.
    pub fn to_path(&self) -> Vec<MsrpUri> {
        let mut p = self.relay_path.clone();
        p.extend(self.remote_path.iter().cloned());
        p
    }

    /// The From-Path of our requests: our URI (RFC 4975 §7.1; relays add themselves).
    pub fn from_path(&self) -> Vec<MsrpUri> {
        vec![self.local_uri.clone()]
    }

    /// The socket addresses.
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The relay grant in force, on a relay connection.
    pub fn relay_grant(&self) -> Option<&Grant> {
        self.relay.as_ref().and_then(RelayAuth::grant)
    }

    /// Grants received by refreshes since the last call (the Use-Path may change).
    pub fn take_relay_refreshes(&mut self) -> Vec<Grant> {
        self.relay_events.drain(..).collect()
    }

    /// msrplib's `make_chunk`: a SEND builder with this connection's To-Path and
    /// From-Path; set the body, Message-ID, Byte-Range and flag on it, then `build()`.
    /// A fresh transaction id and Message-ID are generated unless set.
    pub fn make_chunk(&self) -> ChunkBuilder {
        ChunkBuilder::send(&self.to_path(), &self.from_path())
    }

    /// A request builder for `method` with this connection's paths.
    pub fn make_request(&self, method: Method) -> ChunkBuilder {
        ChunkBuilder::request(method).paths(&self.to_path(), &self.from_path())
    }

    /// A whole message to send in chunks ([`OutgoingMessage::next_chunk`]) with this
    /// connection's paths.
    pub fn make_message(&self, content_type: &str, body: impl Into<Bytes>) -> OutgoingMessage {
        OutgoingMessage::new(&self.to_path(), &self.from_path(), content_type, body)
    }

    fn log_frame(&self, dir: Direction, chunk: &Chunk) {
        self.logger.0.frame(&self.info, dir, chunk);
    }

    /// Writes one chunk and flushes it.
    pub async fn write_chunk(&mut self, chunk: &Chunk) -> Result<(), TransportError> {
        self.log_frame(Direction::Out, chunk);
        self.framed.send(chunk).await?;
        Ok(())
    }

    /// Queues one chunk without flushing (several chunks then share one write); call
    /// [`MsrpTransport::flush`] after the last.
    pub async fn feed_chunk(&mut self, chunk: &Chunk) -> Result<(), TransportError> {
        self.log_frame(Direction::Out, chunk);
        self.framed.feed(chunk).await?;
        Ok(())
    }

    /// Flushes queued chunks.
    pub async fn flush(&mut self) -> Result<(), TransportError> {
        SinkExt::<&Chunk>::flush(&mut self.framed).await?;
        Ok(())
    }

    /// msrplib's `write`: raw bytes to the socket after the queued chunks (for callers
    /// that encode or stream frames themselves, e.g. [`OutgoingMessage::stream_chunk`]).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.flush().await?;
        self.logger.0.raw(&self.info, Direction::Out, bytes);
        let s = self.framed.get_mut();
        s.write_all(bytes).await?;
        s.flush().await?;
        Ok(())
    }

    /// Answers `request` with `status` (RFC 4975 §7.2 paths); REPORTs and responses are
    /// never answered.
    pub async fn respond(
        &mut self,
        request: &Chunk,
        status: StatusCode,
        comment: Option<&str>,
    ) -> Result<(), TransportError> {
        let comment = comment.or(status.canonical_reason());
        if let Some(resp) = request.response(status, comment) {
            self.write_chunk(&resp).await?;
        }
        Ok(())
    }

    /// Reads the next chunk (or segment of a chunk larger than the decoder's
    /// [`huddle_msrp::Limits::max_body_in_memory`]). Bad frames are answered and returned
    /// as [`TransportError::BadFrame`]; the connection stays usable. Responses to the
    /// relay AUTHs of this transport are consumed here, and due refreshes are sent.
    pub async fn read_chunk(&mut self) -> Result<Chunk, TransportError> {
        if let Some(p) = self.partial.take() {
            // A bounded read left the rest of a chunk: hand it out whole.
            let len = p.chunk.body_len().unwrap_or(0) - p.offset;
            let seg = self.next_segment(&p.chunk);
            return Ok(slice_chunk(&p.chunk, p.offset, len, true, seg));
        }
        let mut c = self.next_chunk().await?;
        if c.segment.is_some() {
            c.segment = Some(self.next_segment(&c));
        }
        Ok(c)
    }

    /// msrplib's `read_chunk(size)`: like [`MsrpTransport::read_chunk`], but a body larger
    /// than `size` bytes is handed out in pieces of at most `size` (at least 1) bytes,
    /// "virtual chunks" with Byte-Range adjusted, flag `+` except on the piece that ends
    /// the frame, and [`Chunk::segment`] numbered from 1 across the frame.
    pub async fn read_chunk_bounded(&mut self, size: usize) -> Result<Chunk, TransportError> {
        let size = size.max(1);
        let (chunk, offset) = match self.partial.take() {
            Some(p) => (p.chunk, p.offset),
            None => (self.next_chunk().await?, 0),
        };
        let remaining = chunk.body_len().unwrap_or(0) - offset;
        if offset == 0 && remaining <= size && chunk.segment.is_none() {
            return Ok(chunk);
        }
        let take = remaining.min(size);
        let last = take == remaining;
        let seg = self.next_segment(&chunk);
        let piece = slice_chunk(&chunk, offset, take, last, seg);
        if !last {
            self.partial = Some(Partial {
                chunk,
                offset: offset + take,
            });
        }
        Ok(piece)
    }

    async fn next_chunk(&mut self) -> Result<Chunk, TransportError> {
        match self.pending.pop_front() {
            Some(c) => Ok(c),
            None => self.read_from_socket().await,
        }
    }

    /// The next segment number of `chunk`'s frame (frames are told apart by their
    /// transaction ids, which RFC 4975 §7.1 makes unique).
    fn next_segment(&mut self, chunk: &Chunk) -> u32 {
        match &mut self.segments {
            Some((tid, n)) if *tid == chunk.transaction_id => {
                *n += 1;
                *n
            }
            slot => {
                *slot = Some((chunk.transaction_id.clone(), 1));
                1
            }
        }
    }

    async fn read_from_socket(&mut self) -> Result<Chunk, TransportError> {
        loop {
            if let Some(c) = self.read_or_grant().await? {
                return Ok(c);
            }
        }
    }

    /// The next chunk from the socket, or `None` when an AUTH response produced a grant.
    async fn read_or_grant(&mut self) -> Result<Option<Chunk>, TransportError> {
        loop {
            let timer = self.relay.as_ref().and_then(RelayAuth::poll_timeout);
            let item = tokio::select! {
                item = self.framed.next() => item,
                () = sleep_until_opt(timer) => {
                    self.relay_timeout().await?;
                    continue;
                }
            };
            match item {
                None => {
                    self.logger.0.event(&self.info, ConnectionEvent::PeerClosed);
                    return Err(TransportError::Closed);
                }
                Some(Err(e)) => {
                    let text = e.to_string();
                    self.logger
                        .0
                        .event(&self.info, ConnectionEvent::Garbage(&text));
                    return Err(e.into());
                }
                Some(Ok(Err(bad))) => {
                    if let Some(frame) = bad.frame() {
                        self.log_frame(Direction::In, frame);
                    }
                    // RFC 4975 §7.2 / §12: a malformed request is answered (400, 413,
                    // 501) and the session goes on.
                    if let Some(resp) = bad.response() {
                        self.write_chunk(&resp).await?;
                    }
                    return Err(TransportError::BadFrame(bad));
                }
                Some(Ok(Ok(chunk))) => {
                    self.log_frame(Direction::In, &chunk);
                    return match self.relay_consumes(&chunk).await? {
                        RelayOutcome::NotOurs => Ok(Some(chunk)),
                        RelayOutcome::Consumed => continue,
                        RelayOutcome::Granted => Ok(None),
                    };
                }
            }
        }
    }

    /// Feeds an AUTH response to the relay state machine.
    async fn relay_consumes(&mut self, chunk: &Chunk) -> Result<RelayOutcome, TransportError> {
        let Some(relay) = self.relay.as_mut() else {
            return Ok(RelayOutcome::NotOurs);
        };
        let Some(step) = relay.handle_response(chunk, Instant::now().into_std()) else {
            return Ok(RelayOutcome::NotOurs);
        };
        match step? {
            AuthStep::Send(req) => {
                self.write_chunk(&req).await?;
                Ok(RelayOutcome::Consumed)
            }
            // A refresh may bring another Use-Path (Kamailio's sample configuration
            // issues a new one per AUTH); the path already in SDP stays in use, the caller
            // sees the new grant through `take_relay_refreshes`.
            AuthStep::Granted(g) => {
                self.relay_events.push_back(g);
                Ok(RelayOutcome::Granted)
            }
        }
    }

    async fn relay_timeout(&mut self) -> Result<(), TransportError> {
        let Some(relay) = self.relay.as_mut() else {
            return Ok(());
        };
        if let Some(req) = relay.handle_timeout(Instant::now().into_std())? {
            self.write_chunk(&req).await?;
        }
        Ok(())
    }

    /// Authenticates at the relay this transport is connected to (RFC 4976 §5) and keeps
    /// `auth` attached so later reads refresh the grant. Chunks other than AUTH
    /// responses that arrive meanwhile are kept for [`MsrpTransport::read_chunk`].
    pub async fn relay_authenticate(&mut self, auth: RelayAuth) -> Result<Grant, TransportError> {
        self.relay = Some(auth);
        let g = self.relay_refresh().await?;
        // RFC 4976 §6.1: requests go through our relay first: its Use-Path leads our
        // To-Path and our `a=path`.
        self.relay_path = g.use_path.clone();
        Ok(g)
    }

    /// Re-authenticates now (the caller-driven form of the refresh that reads do when
    /// the grant is due) and waits for the new grant. The session keeps the Use-Path it
    /// was bound with; the new grant is returned (and not queued for
    /// [`MsrpTransport::take_relay_refreshes`]).
    pub async fn relay_refresh(&mut self) -> Result<Grant, TransportError> {
        let relay = self.relay.as_mut().ok_or(TransportError::NoRelay)?;
        let first = relay.start(Instant::now().into_std())?;
        self.write_chunk(&first).await?;
        let before = self.relay_events.len();
        let mut early = VecDeque::new();
        let result = loop {
            if self.relay_events.len() > before {
                break Ok(self.relay_events.pop_back().expect("checked the length"));
            }
            match self.read_or_grant().await {
                Ok(Some(c)) => early.push_back(c),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
        };
        self.pending.extend(early);
        result
    }

    /// Writes `request` and waits for its response (other chunks that arrive meanwhile
    /// are kept for [`MsrpTransport::read_chunk`]). A failure status is returned as
    /// [`TransportError::Failed`].
    pub async fn transaction(
        &mut self,
        request: &Chunk,
        timeout: Duration,
    ) -> Result<Chunk, TransportError> {
        self.write_chunk(request).await?;
        let deadline = Instant::now() + timeout;
        let mut early = VecDeque::new();
        // The response may already have been read while waiting for something else.
        let queued = self
            .pending
            .iter()
            .position(|c| c.status_code().is_some() && c.transaction_id == request.transaction_id);
        let mut queued = queued.and_then(|i| self.pending.remove(i));
        let result = loop {
            let next = match queued.take() {
                Some(c) => Ok(Ok(c)),
                None => tokio::time::timeout_at(deadline, self.read_from_socket()).await,
            };
            match next {
                Err(_) => break Err(TransportError::Timeout),
                Ok(Err(e)) => break Err(e),
                Ok(Ok(c))
                    if c.status_code().is_some() && c.transaction_id == request.transaction_id =>
                {
                    let status = c.status_code().expect("a response");
                    if status.is_success() {
                        break Ok(c);
                    }
                    break Err(TransportError::Failed {
                        status,
                        comment: c.comment().map(str::to_owned),
                    });
                }
                Ok(Ok(c)) => early.push_back(c),
            }
        };
        self.pending.extend(early);
        result
    }

    /// msrplib's `check_incoming_SEND_chunk`, without side effects: does this SEND
    /// belong to this session?
    ///
    /// RFC 4975 §7.3: the receiver of a request checks that the first (for an endpoint:
    /// the only remaining) To-Path URI is its own, compared per §6.1, and that the
    /// request comes from the session's peer: the last From-Path URI must be the last
    /// URI of the remote path it learned from SDP (relays prepend themselves to
    /// From-Path, RFC 4976 §7.1.1).
    pub fn check_incoming_send(&self, chunk: &Chunk) -> Result<(), SessionMismatch> {
        check_paths(chunk, &self.local_uri, &self.remote_path)
    }

    /// Checks an incoming SEND (as [`MsrpTransport::check_incoming_send`]) and, when it
    /// belongs to another session, answers 481 (RFC 4975 §7.3) and returns
    /// [`TransportError::WrongSession`].
    pub async fn accept_incoming_send(&mut self, chunk: &Chunk) -> Result<(), TransportError> {
        match self.check_incoming_send(chunk) {
            Ok(()) => Ok(()),
            Err(m) => {
                self.respond(chunk, StatusCode::SESSION_DOES_NOT_EXIST, None)
                    .await?;
                Err(TransportError::WrongSession(m))
            }
        }
    }

    /// A REPORT about `send` for `range` with `status` (RFC 4975 §7.1.2).
    pub fn make_report(&self, send: &Chunk, status: StatusCode, range: ByteRange) -> Option<Chunk> {
        send.report(status, None, range)
    }

    /// Flushes and closes the connection (TLS close_notify included).
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.flush().await?;
        self.framed.get_mut().shutdown().await?;
        Ok(())
    }
}

/// RFC 4975 §7.3 path check, shared by the transport and the binding code.
pub(crate) fn check_paths(
    chunk: &Chunk,
    local_uri: &MsrpUri,
    remote_path: &[MsrpUri],
) -> Result<(), SessionMismatch> {
    if chunk.method() != Some(&Method::SEND) {
        return Err(SessionMismatch::NotSend);
    }
    let to = chunk.to_path().map_err(SessionMismatch::BadPath)?;
    if to.len() != 1 || to[0] != *local_uri {
        return Err(SessionMismatch::ToPath {
            expected: local_uri.to_string(),
            got: huddle_msrp::uri::format_path(&to),
        });
    }
    let from = chunk.from_path().map_err(SessionMismatch::BadPath)?;
    match (from.last(), remote_path.last()) {
        (Some(got), Some(want)) if got == want => Ok(()),
        _ => Err(SessionMismatch::FromPath {
            expected: remote_path
                .last()
                .map(|u| u.to_string())
                .unwrap_or_default(),
            got: huddle_msrp::uri::format_path(&from),
        }),
    }
}

async fn sleep_until_opt(t: Option<std::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

enum RelayOutcome {
    NotOurs,
    Consumed,
    Granted,
}

/// A virtual chunk: `len` body bytes of `chunk` from `offset` (a zero-copy slice), its
/// Byte-Range moved accordingly, flag `+` unless `last`, numbered `segment`.
fn slice_chunk(chunk: &Chunk, offset: usize, len: usize, last: bool, segment: u32) -> Chunk {
    let body = chunk.body_bytes().map(|b| b.slice(offset..offset + len));
    let mut headers = chunk.headers().clone();
    if let Ok(Some(r)) = chunk.byte_range() {
        let start = r.start + offset as u64;
        let range = ByteRange {
            start,
            end: Some((start + len as u64).saturating_sub(1)),
            total: r.total,
        };
        // A Byte-Range value never holds CR/LF.
        let _ = headers.set(KnownHeader::ByteRange, &range.to_string());
    }
    let mut out = Chunk::new(
        chunk.transaction_id.clone(),
        chunk.start.clone(),
        headers,
        body,
        if last { chunk.flag } else { Flag::More },
    );
    out.segment = Some(segment);
    out
}
