//! Message splitting and reassembly (RFC 4975 §5.1, §7.1.1, §7.1).
//!
//! [`OutgoingMessage`] cuts a message into chunks of at most a given body size with
//! exact Byte-Ranges, either whole ([`OutgoingMessage::next_chunk`]) or streamed so the
//! sender can interrupt a chunk in the middle and resume the message later
//! ([`OutgoingMessage::stream_chunk`], RFC 4975 §7.1: "a chunk ... interrupted ... the
//! end-line's continuation flag is `+`").
//!
//! [`Reassembler`] puts incoming chunks back together by Message-ID: out of order,
//! overlapping, with unknown totals (`*`), aborts (`#`), and either into memory
//! (bounded) or into any [`Sink`] (a file for file transfer).

use std::collections::{BTreeMap, HashMap};

use bytes::{BufMut, Bytes, BytesMut};

use crate::chunk::{Chunk, ChunkBuilder, Flag, Method, TransactionId};
use crate::generated::headers::KnownHeader;
use crate::header::{ByteRange, HeaderError, ReportRequest};
use crate::status::StatusCode;
use crate::uri::{MsrpUri, format_path};

/// Where an outgoing message's bytes come from when they are not in memory (a file
/// being transferred): read at an offset as each chunk is cut, so a message of any size
/// goes out in bounded memory.
pub trait BodySource: Send + std::fmt::Debug {
    /// The message size.
    fn len(&self) -> u64;
    /// True for an empty message.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `offset` (0-based); returns the bytes read, short only at the end.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// A file as a [`BodySource`].
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    /// Reads from `file`; its current size is the message size.
    pub fn new(file: std::fs::File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl BodySource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        let mut n = 0;
        while n < buf.len() {
            match self.file.read(&mut buf[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(n)
    }
}

#[derive(Debug)]
enum Body {
    Memory(Bytes),
    Source(Box<dyn BodySource>),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Memory(b) => b.len() as u64,
            Body::Source(s) => s.len(),
        }
    }

    fn slice(&mut self, start: u64, len: u64) -> Result<Bytes, SplitError> {
        match self {
            Body::Memory(b) => Ok(b.slice(start as usize..(start + len) as usize)),
            Body::Source(s) => {
                let mut buf = vec![0; len as usize];
                let n = s.read_at(start, &mut buf)?;
                if n as u64 != len {
                    return Err(SplitError::Io(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body source shorter than announced",
                    )));
                }
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// Why the next chunk could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// A header value was refused (e.g. a Content-Type with CR/LF).
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The body source failed.
    #[error("reading the body: {0}")]
    Io(#[from] std::io::Error),
}

/// A message to send, cut into chunks on demand.
#[derive(Debug)]
pub struct OutgoingMessage {
    to_path: String,
    from_path: String,
    message_id: String,
    content_type: String,
    body: Body,
    /// Bytes sent so far (the next chunk starts at `sent + 1`).
    sent: u64,
    reports: Option<(ReportRequest, ReportRequest)>,
    extra: Vec<(KnownHeader, String)>,
}

impl OutgoingMessage {
    /// A message with a fresh random Message-ID.
    pub fn new(
        to_path: &[MsrpUri],
        from_path: &[MsrpUri],
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Self {
        OutgoingMessage {
            to_path: format_path(to_path),
            from_path: format_path(from_path),
            message_id: crate::ids::new_message_id(),
            content_type: content_type.to_owned(),
            body: Body::Memory(body.into()),
            sent: 0,
            reports: None,
            extra: Vec::new(),
        }
    }

    /// A message read from `source` as it is sent (file transfer).
    pub fn from_source(
        to_path: &[MsrpUri],
        from_path: &[MsrpUri],
        content_type: &str,
        source: Box<dyn BodySource>,
    ) -> Self {
        let mut m = OutgoingMessage::new(to_path, from_path, content_type, Bytes::new());
        m.body = Body::Source(source);
        m
    }

    /// Uses this Message-ID.
    pub fn with_message_id(mut self, id: &str) -> Self {
        self.message_id = id.to_owned();
        self
    }

    /// Sets Success-Report and Failure-Report on every chunk.
    pub fn with_reports(mut self, success: ReportRequest, failure: ReportRequest) -> Self {
        self.reports = Some((success, failure));
        self
    }

    /// Adds a header to every chunk (e.g. Content-Disposition for a file).
    pub fn with_header(mut self, h: KnownHeader, value: &str) -> Self {
        self.extra.push((h, value.to_owned()));
        self
    }

    /// Resumes sending at this byte offset (0-based), e.g. after an interruption or for
    /// a transfer resumed with RFC 5547 `file-range`.
    pub fn resume_at(&mut self, offset: u64) {
        self.sent = offset.min(self.body.len());
    }

    /// The Message-ID.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    /// Bytes already handed out in chunks.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The total size.
    pub fn total(&self) -> u64 {
        self.body.len()
    }

    /// Everything has been handed out (an empty message is finished after one chunk).
    pub fn is_finished(&self) -> bool {
        self.sent >= self.total() && (self.total() > 0 || self.sent > 0)
    }

    fn builder(&self, range: ByteRange) -> ChunkBuilder {
        let mut b = ChunkBuilder::request(Method::SEND)
            .header(KnownHeader::ToPath, &self.to_path)
            .header(KnownHeader::FromPath, &self.from_path)
            .message_id(&self.message_id)
            .byte_range(range);
        if let Some((s, f)) = self.reports {
            b = b.reports(s, f);
        }
        for (h, v) in &self.extra {
            b = b.header(*h, v);
        }
        b
    }

    /// The next chunk, with at most `max_body` body bytes; `None` when finished.
    /// The last chunk has flag `$`, the others `+`.
    pub fn next_chunk(&mut self, max_body: usize) -> Result<Option<Chunk>, SplitError> {
        if self.is_finished() {
            return Ok(None);
        }
        let start = self.sent;
        let len = (self.total() - start).min(max_body.max(1) as u64);
        let data = self.body.slice(start, len)?;
        self.sent = if self.total() == 0 { 1 } else { start + len };
        let flag = if start + len >= self.total() {
            Flag::End
        } else {
            Flag::More
        };
        let range = ByteRange::new(start + 1, len, Some(self.total()));
        Ok(Some(
            self.builder(range)
                .data(&self.content_type, data)
                .flag(flag)
                .build()?,
        ))
    }

    /// Starts a streamed chunk of at most `max_body` bytes whose end is announced as
    /// `*` (RFC 4975 §7.1.1), so it can be cut short with [`ChunkStream::interrupt`].
    pub fn stream_chunk(
        &mut self,
        max_body: usize,
    ) -> Result<Option<ChunkStream<'_>>, HeaderError> {
        if self.is_finished() {
            return Ok(None);
        }
        let start = self.sent;
        let limit = (self.total() - start).min(max_body.max(1) as u64);
        let range = ByteRange {
            start: start + 1,
            end: None,
            total: Some(self.total()),
        };
        let chunk = self
            .builder(range)
            .data(&self.content_type, Bytes::new())
            .build()?;
        Ok(Some(ChunkStream {
            msg: self,
            tid: chunk.transaction_id.clone(),
            head: Some(chunk),
            pos: start,
            limit: start + limit,
        }))
    }

    /// A `#` chunk that aborts the message (RFC 4975 §7.1: the sender "aborted").
    pub fn abort_chunk(&mut self) -> Result<Chunk, HeaderError> {
        let range = ByteRange {
            start: self.sent + 1,
            end: Some(self.sent),
            total: Some(self.total()),
        };
        let c = self
            .builder(range)
            .data(&self.content_type, Bytes::new())
            .flag(Flag::Abort)
            .build()?;
        self.sent = self.total().max(1);
        Ok(c)
    }
}

/// A chunk being written piece by piece. Dropping it without [`finish`](Self::finish)
/// or [`interrupt`](Self::interrupt) leaves the message where the last piece ended, and
/// the caller must not reuse the connection (the frame is incomplete).
#[derive(Debug)]
pub struct ChunkStream<'a> {
    msg: &'a mut OutgoingMessage,
    tid: TransactionId,
    head: Option<Chunk>,
    pos: u64,
    limit: u64,
}

impl ChunkStream<'_> {
    /// The transaction id of this chunk.
    pub fn transaction_id(&self) -> &TransactionId {
        &self.tid
    }

    /// The start line, headers and blank line (first call only; empty afterwards).
    pub fn head(&mut self) -> Bytes {
        let Some(c) = self.head.take() else {
            return Bytes::new();
        };
        let mut full = BytesMut::with_capacity(c.encoded_len());
        c.encode(&mut full);
        // Drop the empty body's CRLF and the end-line: keep up to the blank line.
        let keep = full.len() - (2 + 7 + self.tid.as_bytes().len() + 3);
        full.truncate(keep);
        full.freeze()
    }

    /// The next at most `n` body bytes (empty when this chunk has reached its limit).
    pub fn next_piece(&mut self, n: usize) -> Result<Bytes, SplitError> {
        let len = (self.limit - self.pos).min(n as u64);
        let piece = self.msg.body.slice(self.pos, len)?;
        self.pos += len;
        self.msg.sent = self.pos;
        Ok(piece)
    }

    /// Bytes of this chunk still to write before its limit.
    pub fn remaining(&self) -> u64 {
        self.limit - self.pos
    }

    fn end_line(&self, flag: Flag) -> Bytes {
        let mut b = BytesMut::with_capacity(12 + self.tid.as_bytes().len());
        b.put_slice(b"\r\n-------");
        b.put_slice(self.tid.as_bytes());
        b.put_u8(flag.as_byte());
        b.put_slice(b"\r\n");
        b.freeze()
    }

    /// Ends the chunk after the bytes written so far: `$` when that completes the
    /// message, `+` otherwise (the rest goes in later chunks).
    pub fn finish(self) -> Bytes {
        let flag = if self.pos >= self.msg.total() {
            Flag::End
        } else {
            Flag::More
        };
        if self.msg.total() == 0 {
            self.msg.sent = 1;
        }
        self.end_line(flag)
    }

    /// Interrupts the chunk now with `+` (RFC 4975 §7.1) even if its limit is not
    /// reached; the message resumes at the next unsent byte.
    pub fn interrupt(self) -> Bytes {
        if self.pos >= self.msg.total() {
            return self.finish();
        }
        self.end_line(Flag::More)
    }
}

/// Where reassembled bytes go.
pub trait Sink {
    /// Writes `data` at the 0-based `offset` of the message.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
}

/// An in-memory sink with a size bound.
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    buf: Vec<u8>,
    max: u64,
}

impl MemorySink {
    /// A sink that refuses to grow past `max` bytes.
    pub fn new(max: u64) -> Self {
        MemorySink {
            buf: Vec::new(),
            max,
        }
    }

    /// The bytes written (gaps are zero-filled).
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

impl Sink for MemorySink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.max)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::OutOfMemory,
                    "message larger than the in-memory limit",
                )
            })?;
        if self.buf.len() < end as usize {
            self.buf.resize(end as usize, 0);
        }
        self.buf[offset as usize..end as usize].copy_from_slice(data);
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        (**self).write_at(offset, data)
    }
}

impl Sink for std::fs::File {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        self.seek(SeekFrom::Start(offset))?;
        self.write_all(data)
    }
}

/// Why a chunk could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// Not a SEND, or no Message-ID (RFC 4975 §7.1.1).
    #[error("not a SEND chunk with a Message-ID")]
    NotASend,
    /// A Byte-Range that does not parse, or a body that disagrees with it.
    #[error("bad Byte-Range: {0}")]
    BadRange(#[from] HeaderError),
    /// The total changed between chunks, or data lies past the total.
    #[error("inconsistent Byte-Range total")]
    InconsistentTotal,
    /// More messages in progress than allowed.
    #[error("too many messages in progress")]
    TooManyMessages,
    /// The sink failed (e.g. the in-memory bound was hit: answer 413).
    #[error("sink: {0}")]
    Sink(#[from] std::io::Error),
}

impl ReassemblyError {
    /// The status to answer the chunk with (RFC 4975 §10).
    pub fn status(&self) -> StatusCode {
        match self {
            ReassemblyError::Sink(_) | ReassemblyError::TooManyMessages => StatusCode::STOP_SENDING,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// What feeding a chunk achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are expected. `received` counts distinct bytes so far.
    Partial {
        /// Distinct bytes received.
        received: u64,
        /// The total, when known.
        total: Option<u64>,
    },
    /// Every byte arrived; the message is removed from the reassembler.
    Complete {
        /// The message size.
        total: u64,
    },
    /// The sender aborted the message (`#`); it is removed.
    Aborted {
        /// Distinct bytes received before the abort.
        received: u64,
    },
}

/// The state of one message being reassembled.
#[derive(Debug)]
pub struct Incoming<S> {
    sink: S,
    /// Received ranges, 0-based half-open `[start, end)`, merged.
    ranges: BTreeMap<u64, u64>,
    total: Option<u64>,
    /// The end (exclusive) of the `$` chunk, when seen.
    last_end: Option<u64>,
    content_type: Option<String>,
}

impl<S: Sink> Incoming<S> {
    fn new(sink: S) -> Self {
        Incoming {
            sink,
            ranges: BTreeMap::new(),
            total: None,
            last_end: None,
            content_type: None,
        }
    }

    /// Distinct bytes received.
    pub fn received(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Missing 0-based half-open ranges below the known end (total, or the furthest
    /// byte seen).
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let end = self
            .total
            .or(self.last_end)
            .unwrap_or_else(|| self.ranges.values().copied().max().unwrap_or(0));
        let mut gaps = Vec::new();
        let mut pos = 0;
        for (&s, &e) in &self.ranges {
            if s > pos {
                gaps.push((pos, s.min(end)));
            }
            pos = pos.max(e);
        }
        if pos < end {
            gaps.push((pos, end));
        }
        gaps
    }

    fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        // Merge with every overlapping or adjacent range.
        let overlapping: Vec<u64> = self
            .ranges
            .range(..=e)
            .filter(|(_, re)| **re >= s)
            .map(|(rs, _)| *rs)
            .collect();
        for rs in overlapping {
            let re = self.ranges.remove(&rs).expect("key from the map");
            s = s.min(rs);
            e = e.max(re);
        }
        self.ranges.insert(s, e);
    }

    fn is_complete(&self) -> bool {
        let Some(end) = self.total.or(self.last_end) else {
            return false;
        };
        self.last_end.is_some()
            && self
                .ranges
                .first_key_value()
                .map_or(end == 0, |(s, e)| *s == 0 && *e >= end)
    }
}

/// Makes the sink for a new message from its Message-ID and first chunk.
/// It also returns the 0-based half-open ranges the sink already holds (a resumed file
/// transfer, RFC 5547 §8), so completion counts them.
type SinkFactory<S> = Box<dyn FnMut(&str, &Chunk) -> (S, Vec<(u64, u64)>) + Send>;

/// Reassembles messages from their chunks, keyed by Message-ID.
pub struct Reassembler<S = MemorySink> {
    messages: HashMap<String, Incoming<S>>,
    new_sink: SinkFactory<S>,
    max_messages: usize,
}

impl<S> std::fmt::Debug for Reassembler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reassembler")
            .field("in_progress", &self.messages.len())
            .finish()
    }
}

impl Reassembler<MemorySink> {
    /// Reassembles into memory, refusing messages larger than `max_message_size`.
    pub fn in_memory(max_message_size: u64) -> Self {
        Reassembler::with_sink(move |_, _| MemorySink::new(max_message_size))
    }
}

impl<S: Sink> Reassembler<S> {
    /// Reassembles into sinks made by `new_sink(message_id, first_chunk)`.
    pub fn with_sink(mut new_sink: impl FnMut(&str, &Chunk) -> S + Send + 'static) -> Self {
        Self::with_resumable_sink(move |id, c| (new_sink(id, c), Vec::new()))
    }

    /// Like [`Reassembler::with_sink`], for sinks that may already hold parts of the
    /// message (returned as 0-based half-open ranges).
    pub fn with_resumable_sink(
        new_sink: impl FnMut(&str, &Chunk) -> (S, Vec<(u64, u64)>) + Send + 'static,
    ) -> Self {
        Reassembler {
            messages: HashMap::new(),
            new_sink: Box::new(new_sink),
            max_messages: 1024,
        }
    }

    /// Bounds the number of messages in progress at once (default 1024).
    pub fn max_messages(mut self, n: usize) -> Self {
        self.max_messages = n;
        self
    }

    /// The message in progress with this id.
    pub fn get(&self, message_id: &str) -> Option<&Incoming<S>> {
        self.messages.get(message_id)
    }

    /// Number of messages in progress.
    pub fn in_progress(&self) -> usize {
        self.messages.len()
    }

    /// Takes one chunk (or decoder segment). On `Complete` or `Aborted` the message's
    /// sink is returned with it.
    pub fn feed(&mut self, chunk: &Chunk) -> Result<(Progress, Option<S>), ReassemblyError> {
        let (Some(m), Some(id)) = (chunk.method(), chunk.message_id()) else {
            return Err(ReassemblyError::NotASend);
        };
        if *m != Method::SEND {
            return Err(ReassemblyError::NotASend);
        }
        let body = chunk.body().unwrap_or(&[]);
        // RFC 4975 §7.1.1: without Byte-Range the chunk is the whole message.
        let range = chunk.byte_range()?.unwrap_or(ByteRange {
            start: 1,
            end: Some(body.len() as u64),
            total: Some(body.len() as u64),
        });
        if !self.messages.contains_key(id) {
            if self.messages.len() >= self.max_messages {
                return Err(ReassemblyError::TooManyMessages);
            }
            let (sink, have) = (self.new_sink)(id, chunk);
            let mut incoming = Incoming::new(sink);
            for (s, e) in have {
                incoming.insert(s, e);
            }
            self.messages.insert(id.to_owned(), incoming);
        }
        let msg = self.messages.get_mut(id).expect("inserted above");
        if msg.content_type.is_none() {
            msg.content_type = chunk.content_type().map(str::to_owned);
        }
        let start = range.start - 1;
        let end = start
            .checked_add(body.len() as u64)
            .ok_or(ReassemblyError::InconsistentTotal)?;
        if let Some(t) = range.total {
            if msg.total.is_some_and(|old| old != t) || end > t {
                return Err(ReassemblyError::InconsistentTotal);
            }
            msg.total = Some(t);
        }
        if !body.is_empty() {
            msg.sink.write_at(start, body)?;
            msg.insert(start, end);
        }
        match chunk.flag {
            Flag::Abort => {
                let msg = self.messages.remove(id).expect("present");
                return Ok((
                    Progress::Aborted {
                        received: msg.received(),
                    },
                    Some(msg.sink),
                ));
            }
            Flag::End => msg.last_end = Some(end),
            Flag::More => {}
        }
        if msg.is_complete() {
            let msg = self.messages.remove(id).expect("present");
            let total = msg.total.or(msg.last_end).unwrap_or(0);
            return Ok((Progress::Complete { total }, Some(msg.sink)));
        }
        Ok((
            Progress::Partial {
                received: msg.received(),
                total: msg.total,
            },
            None,
        ))
    }

    /// Forgets a message (e.g. after answering 413 to it), returning its sink.
    pub fn discard(&mut self, message_id: &str) -> Option<S> {
        self.messages.remove(message_id).map(|m| m.sink)
    }
}
