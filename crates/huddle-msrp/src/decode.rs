//! The streaming, sans-IO chunk decoder.
//!
//! Contract (tokio-util's `Decoder`): [`Decoder::decode`] takes bytes from the front of
//! the caller's buffer. `Ok(None)`: more bytes are needed (nothing is rescanned when
//! they arrive: the decoder keeps a resume offset, so feeding a body one byte at a time
//! stays linear). `Ok(Some(chunk))`: one frame, or one segment of a large frame.
//! `Err(e)`: when [`DecodeError::is_fatal`] is false the bad frame has been consumed
//! whole and decoding can continue with the next; when it is true the stream is out of
//! sync and must be closed (the decoder refuses further input).
//!
//! Memory: the decoder holds at most [`Limits::max_head_bytes`] of a start line and
//! headers and at most [`Limits::max_body_in_memory`] of a body; a larger body is
//! delivered as numbered segments ("virtual chunks", msrplib's `read_chunk(size)`).

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem;

use crate::chunk::{Chunk, Flag, MAX_TID, Method, StartLine, TransactionId, is_transaction_id};
use crate::generated::headers::KnownHeader;
use crate::header::{
    ByteRange, EMPTY_FIELD, HeaderError, Headers, INLINE_FIELDS, InlineField, WireFields, is_token,
};
use crate::status::StatusCode;

/// Configurable bounds on what one frame may make the decoder hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start line plus headers, in bytes (default 32 KiB).
    pub max_head_bytes: usize,
    /// Number of header lines (default 64).
    pub max_headers: usize,
    /// Body bytes held before a segment is delivered (default 256 KiB, at least 1).
    pub max_body_in_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 32 * 1024,
            max_headers: 64,
            max_body_in_memory: 256 * 1024,
        }
    }
}

/// What was wrong with the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// RFC 4975 §9 `req-start` / `resp-start` did not match.
    #[error("malformed start line")]
    BadStartLine,
    /// RFC 4975 §9: lines end with CRLF.
    #[error("line not terminated by CRLF")]
    BadLineEnding,
    /// A line starting with `-------` did not carry this frame's transaction id
    /// (RFC 4975 §7.1: the end-line repeats the start line's transaction id).
    #[error("end-line does not match the transaction id")]
    EndLineMismatch,
    /// The start line and headers exceed [`Limits::max_head_bytes`].
    #[error("start line and headers exceed {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header lines than [`Limits::max_headers`].
    #[error("more than {limit} headers")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// A header line that is not `name: value` with a token name and UTF-8 text value.
    #[error("malformed header line")]
    MalformedHeader,
    /// A header value that does not parse (Byte-Range, Status, paths...).
    #[error("bad header: {0}")]
    BadHeader(HeaderError),
    /// A header the frame must carry is absent (RFC 4975 §7.1: To-Path and From-Path).
    #[error("missing {0} header")]
    MissingHeader(KnownHeader),
    /// RFC 4975 §9: `msrp-response = resp-start headers end-line` (no body).
    #[error("response with a body")]
    ResponseWithBody,
    /// The request method is not one this receiver understands (RFC 4975 §12 → 501).
    #[error("unknown method {0}")]
    UnknownMethod(String),
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    UnexpectedEof,
}

/// A decode failure: its kind, whether the stream is still usable, and what is known of
/// the frame (so a receiver can answer it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    transaction_id: Option<TransactionId>,
    fatal: bool,
    frame: Option<Box<Chunk>>,
}

impl DecodeError {
    pub(crate) fn new(
        kind: DecodeErrorKind,
        transaction_id: Option<TransactionId>,
        fatal: bool,
    ) -> Self {
        DecodeError {
            kind,
            transaction_id,
            fatal,
            frame: None,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// True when the stream is out of sync and must be closed.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// The transaction id of the bad frame, when its start line was readable.
    pub fn transaction_id(&self) -> Option<&TransactionId> {
        self.transaction_id.as_ref()
    }

    /// The bad frame's start line and headers (body dropped), for non-fatal errors.
    pub fn frame(&self) -> Option<&Chunk> {
        self.frame.as_deref()
    }

    /// The status a receiver answers with (RFC 4975 §7.2, §10): 400 for malformed
    /// input, 413 for input over the limits, 501 for an unknown method.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            DecodeErrorKind::HeadTooLarge { .. } | DecodeErrorKind::TooManyHeaders { .. } => {
                StatusCode::STOP_SENDING
            }
            DecodeErrorKind::UnknownMethod(_) => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The response to send for this error, when the bad frame is a request whose
    /// paths are known (RFC 4975 §7.2; REPORTs and responses are never answered).
    pub fn response(&self) -> Option<Chunk> {
        let frame = self.frame.as_deref()?;
        frame.response(self.status(), self.status().canonical_reason())
    }
}

/// `\r\n-------`: what precedes the transaction id of every end-line after a body.
const BODY_END: &[u8] = b"\r\n-------";
const DASHES: &[u8] = b"-------";

/// RFC 4975 §9 `ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="`, by byte.
static IDENT_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'=');
        b += 1;
    }
    t
};

/// To-Path and From-Path, as bits of the fast path's set of seen headers.
const PATHS: u32 = 1 << KnownHeader::ToPath as u32 | 1 << KnownHeader::FromPath as u32;

/// A known header's canonical spelling followed by `": "`, as three little-endian
/// words and the masks of the bytes that belong to it (at most 21 bytes).
#[derive(Clone, Copy)]
struct NameKey {
    words: [u64; 3],
    masks: [u64; 3],
    /// Name, colon and space.
    len: usize,
    /// The header (any one in an empty slot, whose key matches nothing).
    header: KnownHeader,
    /// Other names share this slot (the `Content-` ones): see [`NAME_TABLE`].
    more: bool,
}

/// The multiplier of [`name_slot`]: it sends the 16 distinct six-byte prefixes of the
/// known names (the four `Content-` names share one) to distinct slots.
const NAME_HASH: u64 = 0x9b3e_446c_2cc2_e2ab;

/// The slot of a line's first word among 32, from its first six bytes (every known
/// name has at least six, `Status` being the shortest).
#[inline(always)]
const fn name_slot(first_word: u64) -> usize {
    ((first_word & 0xffff_ffff_ffff).wrapping_mul(NAME_HASH) >> 59) as usize
}

const fn name_key(h: KnownHeader) -> NameKey {
    let name = h.as_str().as_bytes();
    assert!(name.len() >= 6 && name.len() + 2 <= 24);
    let mut words = [0u64; 3];
    let mut masks = [0u64; 3];
    let mut i = 0;
    while i < name.len() + 2 {
        let byte = if i == name.len() {
            b':'
        } else if i == name.len() + 1 {
            b' '
        } else {
            name[i]
        };
        words[i / 8] |= (byte as u64) << (8 * (i % 8));
        masks[i / 8] |= 0xff << (8 * (i % 8));
        i += 1;
    }
    NameKey {
        words,
        masks,
        len: name.len() + 2,
        header: h,
        more: false,
    }
}

/// Every known header's [`NameKey`] grouped by slot, and where each slot's group
/// starts and ends in it (in the order of `KnownHeader::ALL`, so Content-Type comes
/// first among the `Content-`s).
static NAME_TABLE: ([NameKey; KnownHeader::ALL.len()], [(u8, u8); 32]) = {
    let all = KnownHeader::ALL;
    let mut keys = [name_key(KnownHeader::ToPath); KnownHeader::ALL.len()];
    let mut slots = [(0u8, 0u8); 32];
    let mut n = 0;
    let mut slot = 0;
    while slot < 32 {
        let begin = n;
        let mut i = 0;
        while i < all.len() {
            let k = name_key(all[i]);
            if name_slot(k.words[0]) == slot {
                keys[n] = k;
                n += 1;
            }
            i += 1;
        }
        slots[slot] = (begin as u8, n as u8);
        slot += 1;
    }
    (keys, slots)
};

/// The first [`NameKey`] of each slot, marked when others follow it.
static FIRST_NAMES: [NameKey; 32] = {
    let (keys, slots) = &NAME_TABLE;
    // No line matches it: its first word has a bit outside its (empty) mask.
    let empty = NameKey {
        words: [1, 0, 0],
        masks: [0; 3],
        len: 0,
        header: KnownHeader::ToPath,
        more: false,
    };
    let mut first = [empty; 32];
    let mut slot = 0;
    while slot < 32 {
        let (begin, end) = slots[slot];
        if begin < end {
            first[slot] = keys[begin as usize];
            first[slot].more = end - begin > 1;
        }
        slot += 1;
    }
    first
};

/// The known header whose canonical name, colon and one space start the line at
/// `h[pos]`, and where its value starts; `None` for any other line (another spelling,
/// no space or a second one, an extension header), and when fewer than 24 bytes are
/// left to look at.
#[inline(always)]
fn known_name_at(h: &[u8], pos: usize) -> Option<(KnownHeader, usize)> {
    let c: &[u8; 24] = h.get(pos..pos + 24)?.try_into().expect("24 bytes");
    let w = words(c);
    let slot = name_slot(w.0);
    let first = &FIRST_NAMES[slot];
    let k = if name_is(first, w) {
        first
    } else if first.more {
        other_name(slot, c)?
    } else {
        return None;
    };
    // A second blank before the value: the general path skips it.
    if c[k.len] == b' ' {
        return None;
    }
    Some((k.header, pos + k.len))
}

/// The three little-endian words of `c`.
#[inline(always)]
fn words(c: &[u8; 24]) -> (u64, u64, u64) {
    let x = u128::from_le_bytes(c[..16].try_into().expect("16 bytes"));
    (
        x as u64,
        (x >> 64) as u64,
        u64::from_le_bytes(c[16..].try_into().expect("8 bytes")),
    )
}

/// Do the line's first three words `w` start with `k`'s name, colon and space? (Never
/// for an empty slot's key, whose words have bits outside its masks.)
#[inline(always)]
fn name_is(k: &NameKey, w: (u64, u64, u64)) -> bool {
    ((w.0 & k.masks[0]) ^ k.words[0])
        | ((w.1 & k.masks[1]) ^ k.words[1])
        | ((w.2 & k.masks[2]) ^ k.words[2])
        == 0
}

/// The names after the first of `slot` (the `Content-` ones but Content-Type).
fn other_name(slot: usize, c: &[u8; 24]) -> Option<&'static NameKey> {
    let w = words(c);
    let (keys, slots) = &NAME_TABLE;
    let (begin, end) = slots[slot];
    keys[usize::from(begin) + 1..usize::from(end)]
        .iter()
        .find(|k| name_is(k, w))
}

/// A whole frame the fast path read: its parts, and where it ends in the buffer.
struct PlainFrame {
    /// The transaction id is `buf[5..5 + tid_len]`.
    tid_len: usize,
    /// `None` for SEND (the usual case, built where the chunk is).
    start: Option<StartLine>,
    n: usize,
    /// Where the body starts and ends (`None`: no content-stuff).
    body: Option<(usize, usize)>,
    flag: Flag,
    end: usize,
}

/// A parsed start line and header block.
#[derive(Debug)]
struct Head {
    tid: TransactionId,
    start: StartLine,
    headers: Headers,
    range: Option<ByteRange>,
    error: Option<DecodeErrorKind>,
}

#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per decoder; boxing the body state costs an allocation per frame"
)]
enum State {
    /// Scanning a start line and headers. `scan` is where the search for the next LF
    /// resumes; `line` where the current line starts.
    Head {
        scan: usize,
        line: usize,
        tid: Option<(usize, usize)>,
        lines: usize,
    },
    /// Scanning a body (which starts at the front of the buffer) for its end-line.
    /// Not boxed: a box would cost an allocation per frame.
    Body(BodyScan),
    /// A fatal error happened.
    Failed,
}

#[derive(Debug)]
struct BodyScan {
    head: Head,
    /// Where the search for `\r\n-------` resumes.
    search: usize,
    /// Body bytes already delivered (segments) or dropped (discarding a bad frame).
    delivered: u64,
    /// Segments delivered so far.
    segments: u32,
}

/// The chunk decoder. See the module documentation for its contract.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    state: State,
    finder: memmem::Finder<'static>,
    /// Where each header line of the frame being scanned starts (offsets from the
    /// start line), recorded by the line scanner so the header parser does not
    /// search for line ends again. Reused from frame to frame.
    line_starts: Vec<usize>,
    /// The header lines the fast path read last, to know them again.
    lines: LineCache,
    /// The fast path's table of the frame it reads, copied into the chunk; its first
    /// `lines.len` entries are also the remembered lines' fields (a line taken from a
    /// run is already in place). Kept here rather than on the stack: by the time the
    /// chunk is built (after the buffer's reference count changed, which waits for
    /// every store) the table is in memory, and the copy does not wait for the narrow
    /// stores that filled it.
    fields: [InlineField; INLINE_FIELDS],
}

/// The header lines of the frames the fast path read last, by line number: where each
/// started and ended in its frame and its bytes (what it was, its field, is the
/// decoder's table entry of the same number). A session's frames repeat
/// their To-Path and From-Path lines, and the chunks of a message most of the others,
/// at the same places: lines whose bytes equal the remembered ones at the same places
/// are those same fields, and are taken after one compare instead of being classified
/// and scanned again. Only what the bytes themselves decide is remembered (the name,
/// where the value starts and ends, that it is plain text, that a Byte-Range parses);
/// what depends on the rest of the frame (To-Path and From-Path present, the header
/// count) is checked on every frame.
struct LineCache {
    /// `bytes[i]` is byte `i` of the frame that wrote the line covering offset `i`.
    bytes: Box<[u8; LINE_CACHE_BYTES]>,
    lines: [CachedLine; INLINE_FIELDS],
    /// `lines[..len]` are remembered: in order, each starting where the one before
    /// ends, their bytes intact.
    len: usize,
}

/// How far into a frame header lines are remembered.
const LINE_CACHE_BYTES: usize = 1024;

/// A remembered header line: where it starts and ends (after its CRLF) in its frame.
/// Its field is the decoder's table entry of the same number.
#[derive(Clone, Copy)]
struct CachedLine {
    start: u16,
    end: u16,
}

impl LineCache {
    fn new() -> Self {
        LineCache {
            bytes: Box::new([0; LINE_CACHE_BYTES]),
            lines: [CachedLine { start: 0, end: 0 }; INLINE_FIELDS],
            len: 0,
        }
    }

    /// The remembered lines, and how far the frame `h` repeats their bytes from
    /// `h[pos]`, where line `n` starts as remembered line `n` did (`None` when it does
    /// not): the lines from `n` on that end by then are the frame's next lines.
    #[inline(always)]
    fn repeated(&self, n: usize, pos: usize, h: &[u8]) -> Option<(&[CachedLine], usize)> {
        let lines = &self.lines[..self.len];
        if usize::from(lines.get(n)?.start) != pos {
            return None;
        }
        let last = usize::from(lines[lines.len() - 1].end).min(h.len());
        let reach = pos + same_prefix(&h[pos..last], &self.bytes[pos..last]);
        Some((lines, reach))
    }

    /// Remembers line `n` of a frame, `h[pos..end]` (its field is already in the
    /// decoder's table).
    #[inline(always)]
    fn remember(&mut self, n: usize, pos: usize, end: usize, h: &[u8]) {
        // Only in order and next to the line before (the lines a run covers must tile
        // the bytes it compares), and within the remembered bytes.
        let follows = match n.checked_sub(1) {
            None => true,
            Some(before) => n <= self.len && usize::from(self.lines[before].end) == pos,
        };
        if !follows || n >= INLINE_FIELDS || end > LINE_CACHE_BYTES {
            self.len = self.len.min(n);
            return;
        }
        copy_line(&mut self.bytes[pos..end], &h[pos..end]);
        self.lines[n] = CachedLine {
            start: pos as u16,
            end: end as u16,
        };
        // The lines after this one stay when the next starts where this one ends
        // (then their bytes are intact); otherwise they are forgotten.
        if n + 1 < self.len && usize::from(self.lines[n + 1].start) != end {
            self.len = n + 1;
        }
        self.len = self.len.max(n + 1);
    }

    /// Does remembered line `n` end at `end`?
    #[inline(always)]
    fn ends_at(&self, n: usize, end: usize) -> bool {
        n < self.len && usize::from(self.lines[n].end) == end
    }

    /// Forgets line `n` and the lines after it (the decoder's table entry `n` now
    /// holds another line's field).
    #[inline(always)]
    fn forget_from(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
}

impl std::fmt::Debug for LineCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineCache").field("len", &self.len).finish()
    }
}

/// `dst.copy_from_slice(src)` for a header line, sixteen bytes at a time (the last
/// sixteen overlapping the ones before): lines are short, and this stays inline where
/// a call to `memcpy` would not.
#[inline(always)]
fn copy_line(dst: &mut [u8], src: &[u8]) {
    let n = dst.len();
    if n < 16 {
        dst.copy_from_slice(src);
        return;
    }
    let mut i = 0;
    while i + 16 < n {
        let d: &mut [u8; 16] = (&mut dst[i..i + 16]).try_into().expect("16 bytes");
        *d = src[i..i + 16].try_into().expect("16 bytes");
        i += 16;
    }
    let d: &mut [u8; 16] = (&mut dst[n - 16..n]).try_into().expect("16 bytes");
    *d = src[n - 16..n].try_into().expect("16 bytes");
}

/// How many leading bytes `a` and `b` (of the same length) have in common, sixteen
/// at a time.
#[inline(always)]
fn same_prefix(a: &[u8], b: &[u8]) -> usize {
    debug_assert_eq!(a.len(), b.len());
    let (a16, _) = a.as_chunks::<16>();
    let (b16, _) = b.as_chunks::<16>();
    let whole = a16.len().min(b16.len());
    let (a16, b16) = (&a16[..whole], &b16[..whole]);
    let mut k = 0;
    while k < whole {
        if a16[k] != b16[k] {
            let diff = u128::from_le_bytes(a16[k]) ^ u128::from_le_bytes(b16[k]);
            return 16 * k + diff.trailing_zeros() as usize / 8;
        }
        k += 1;
    }
    let i = 16 * whole;
    let n = a.len().min(b.len());
    if i == n {
        return n;
    }
    if n >= 16 {
        // The last sixteen bytes, overlapping ones already found equal: a difference
        // among them is at or after `i`.
        let x: [u8; 16] = a[n - 16..n].try_into().expect("16 bytes");
        let y: [u8; 16] = b[n - 16..n].try_into().expect("16 bytes");
        let diff = u128::from_le_bytes(x) ^ u128::from_le_bytes(y);
        return if diff == 0 {
            n
        } else {
            n - 16 + diff.trailing_zeros() as usize / 8
        };
    }
    i + a[i..n]
        .iter()
        .zip(&b[i..n])
        .take_while(|(x, y)| x == y)
        .count()
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> Self {
        let limits = Limits {
            max_body_in_memory: limits.max_body_in_memory.max(1),
            ..limits
        };
        Decoder {
            limits,
            state: Self::fresh(),
            finder: memmem::Finder::new(BODY_END),
            line_starts: Vec::new(),
            lines: LineCache::new(),
            fields: [EMPTY_FIELD; INLINE_FIELDS],
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True between frames (nothing of a frame has been consumed or parsed).
    pub fn is_idle(&self) -> bool {
        matches!(
            self.state,
            State::Head {
                line: 0,
                scan: 0,
                ..
            }
        )
    }

    fn fresh() -> State {
        State::Head {
            scan: 0,
            line: 0,
            tid: None,
            lines: 0,
        }
    }

    /// Decodes the next frame or segment from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, DecodeError> {
        if self.is_idle()
            && let Some(p) = self.decode_plain(buf)
        {
            let tid = TransactionId::from_window(
                buf[5..5 + MAX_TID].try_into().expect("32 bytes"),
                p.tid_len,
            );
            let start = p.start.unwrap_or(StartLine::Request(Method::SEND));
            // One split per frame; the headers and the body are ranges of it.
            let frame = buf.split_to(p.end).freeze();
            let headers = Headers::decoded_inline(frame, self.fields, p.n);
            return Ok(Some(Chunk::decoded(tid, start, headers, p.body, p.flag)));
        }
        loop {
            match &mut self.state {
                State::Failed => {
                    return Err(DecodeError::new(DecodeErrorKind::BadStartLine, None, true));
                }
                State::Head { .. } => match self.decode_head(buf) {
                    Ok(Some(HeadDone::Chunk(c))) => return Ok(Some(c)),
                    Ok(Some(HeadDone::Error(e))) => return Err(e),
                    Ok(Some(HeadDone::Body)) => continue,
                    Ok(None) => return Ok(None),
                    Err(e) => {
                        self.state = State::Failed;
                        return Err(e);
                    }
                },
                State::Body(_) => return self.decode_body(buf),
            }
        }
    }

    /// Like [`Decoder::decode`] at the end of the stream: bytes left inside a frame
    /// are an [`DecodeErrorKind::UnexpectedEof`] error.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, DecodeError> {
        match self.decode(buf)? {
            Some(c) => Ok(Some(c)),
            None if buf.is_empty() && self.is_idle() => Ok(None),
            None => {
                self.state = State::Failed;
                Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, None, true))
            }
        }
    }

    /// The fast path: a whole, well-formed frame of plain-text lines at the front of
    /// `buf`, its headers spelled as the spec spells them, decoded in one pass. `None`
    /// leaves `buf` untouched for the general path, which handles everything else
    /// (partial input, other spellings, extension headers, every error) and gives the
    /// same result for what this path accepts; the split-invariance tests hold the two
    /// to that. Tried once per frame, so input that arrives in pieces is still scanned
    /// in linear time.
    #[inline(always)]
    fn decode_plain(&mut self, buf: &BytesMut) -> Option<PlainFrame> {
        let b: &[u8] = buf;
        let limits = &self.limits;
        let cache = &mut self.lines;
        // The head: every line of it must end within the head limit, and its offsets
        // fit the headers' inline table.
        let h = &b[..b
            .len()
            .min(limits.max_head_bytes)
            .min(usize::from(u16::MAX))];
        // RFC 4975 §9 req-start / resp-start: `MSRP SP transact-id SP ...`. A frame
        // with To-Path and From-Path is longer than 64 bytes.
        if h.len() < 64 || h[..5] != *b"MSRP " {
            return None;
        }
        // RFC 4975 §9 `ident = ALPHANUM 3*31ident-char`, then SP; ids are short: a
        // table loop checks and delimits them at once.
        let mut sp = 5;
        while sp < 6 + MAX_TID && IDENT_CHAR[usize::from(h[sp])] {
            sp += 1;
        }
        let tid = &h[5..sp];
        if h[sp] != b' ' || !(4..=MAX_TID).contains(&tid.len()) || !h[5].is_ascii_alphanumeric() {
            return None;
        }
        debug_assert!(is_transaction_id(tid));
        let (start, mut pos) = if h[sp + 1..sp + 7] == *b"SEND\r\n" {
            (None, sp + 7)
        } else {
            let eol = plain_line_end(h, sp + 1)?;
            let rest = &h[sp + 1..eol];
            let start = if rest.len() >= 3
                && rest[..3].iter().all(u8::is_ascii_digit)
                && (rest.len() == 3 || rest[3] == b' ')
            {
                let code = (rest[0] - b'0') as u16 * 100
                    + (rest[1] - b'0') as u16 * 10
                    + (rest[2] - b'0') as u16;
                // The line is plain ASCII text (checked by `plain_line_end`).
                let comment = (rest.len() > 3)
                    .then(|| String::from_utf8(rest[4..].to_vec()).expect("plain lines are ASCII"));
                StartLine::Response {
                    status: StatusCode(code),
                    comment,
                }
            } else {
                StartLine::Request(Method::parse(rest)?)
            };
            (Some(start), eol + 2)
        };
        // The headers' inline table, filled up to `n`.
        let fields = &mut self.fields;
        let mut n = 0;
        // Which known headers were seen, one bit each.
        let mut seen = 0u32;
        // The name and value start of the line at a place, when a run of remembered
        // lines ended there on a line that repeats its remembered name.
        let mut hint: Option<(usize, KnownHeader, usize)> = None;
        loop {
            let first = *h.get(pos)?;
            if first == b'\r' || first == b'-' {
                // RFC 4975 §7.1: "The To-Path and From-Path header fields MUST be present
                // in all requests and responses".
                if seen & PATHS != PATHS || n > limits.max_headers {
                    return None;
                }
                if first == b'\r' {
                    // The blank line after the headers: content-stuff follows.
                    if h.get(pos + 1) != Some(&b'\n')
                        || matches!(start, Some(StartLine::Response { .. }))
                    {
                        return None;
                    }
                    let body_start = pos + 2;
                    let EndLine::Found { at, end, flag } =
                        find_end_line(&self.finder, b, body_start, tid)
                    else {
                        return None;
                    };
                    if at - body_start > limits.max_body_in_memory {
                        return None;
                    }
                    return Some(PlainFrame {
                        tid_len: tid.len(),
                        start,
                        n,
                        body: Some((body_start, at)),
                        flag,
                        end,
                    });
                }
                // RFC 4975 §9 end-line = "-------" transact-id continuation-flag CRLF
                let end = pos + DASHES.len() + tid.len() + 3;
                let line = h.get(pos..end)?;
                let flag = Flag::from_byte(line[end - pos - 3])?;
                if line[..DASHES.len()] != *DASHES
                    || &line[DASHES.len()..end - pos - 3] != tid
                    || line[end - pos - 2..] != *b"\r\n"
                {
                    return None;
                }
                return Some(PlainFrame {
                    tid_len: tid.len(),
                    start,
                    n,
                    body: None,
                    flag,
                    end,
                });
            }
            let (name, v, hinted) = match hint.take() {
                Some((at, name, v)) if at == pos => (name, v, true),
                _ => {
                    // Lines read before, at the same places with the same bytes: the
                    // same fields (a Byte-Range among them parses).
                    if let Some((lines, reach)) = cache.repeated(n, pos, h) {
                        let from = n;
                        // Their fields are in the table already.
                        while let Some(line) = lines.get(n)
                            && usize::from(line.end) <= reach
                        {
                            seen |= 1 << fields[n].name as u32;
                            pos = usize::from(line.end);
                            n += 1;
                        }
                        // The next line differs, but when it starts with the same name,
                        // colon, space and first value byte, it is the same header
                        // (what `known_name_at` looks at), its value starting at the
                        // same place.
                        if n < lines.len() && reach > usize::from(fields[n].start) {
                            hint = Some((pos, fields[n].name, usize::from(fields[n].start)));
                        }
                        if n > from {
                            continue;
                        }
                    }
                    match hint.take() {
                        Some((_, name, v)) => (name, v, true),
                        // RFC 4975 §9 `header = hname ":" SP hval CRLF`. Other blanks
                        // before the value (tolerated: real peers write `Name:value`)
                        // take the general path.
                        None => {
                            let (name, v) = known_name_at(h, pos)?;
                            (name, v, false)
                        }
                    }
                }
            };
            // The name, colon and space are plain text: the scan starts at the value.
            let eol = plain_line_end(h, v)?;
            let bit = 1 << name as u32;
            // The first Byte-Range must parse (the general path reports it otherwise);
            // a later one that does not is let through but not remembered (it may be
            // the first in another frame).
            let remembered = name != KnownHeader::ByteRange || byte_range_ok(&h[v..eol]) || {
                if seen & bit == 0 {
                    return None;
                }
                false
            };
            seen |= bit;
            // A longer list takes the general path. `h` is shorter than 64 KiB.
            *fields.get_mut(n)? = InlineField {
                name,
                start: v as u16,
                end: eol as u16,
            };
            // A line with a remembered line's name, at its place and as long as it, is
            // the same field: the remembered line stays as it is (a chat's messages
            // and a message's chunks change their Message-ID that way).
            if !remembered {
                cache.forget_from(n);
            } else if !(hinted && cache.ends_at(n, eol + 2)) {
                cache.remember(n, pos, eol + 2, h);
            }
            n += 1;
            pos = eol + 2;
        }
    }

    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<HeadDone>, DecodeError> {
        let State::Head {
            scan,
            line,
            tid,
            lines,
        } = &mut self.state
        else {
            unreachable!()
        };
        let fatal = |kind, tid: Option<TransactionId>| Err(DecodeError::new(kind, tid, true));
        // RFC 4975 §9: every frame starts with `MSRP SP`; refuse garbage at once rather
        // than waiting for a line end that may never come.
        let n = buf.len().min(5);
        if buf[..n] != b"MSRP "[..n] {
            return fatal(DecodeErrorKind::BadStartLine, None);
        }
        loop {
            let Some(lf) = find_lf(&buf[*scan..]) else {
                *scan = buf.len();
                if buf.len() > self.limits.max_head_bytes {
                    return fatal(
                        DecodeErrorKind::HeadTooLarge {
                            limit: self.limits.max_head_bytes,
                        },
                        None,
                    );
                }
                return Ok(None);
            };
            let end = *scan + lf; // index of LF
            *scan = end + 1;
            if end + 1 > self.limits.max_head_bytes {
                return fatal(
                    DecodeErrorKind::HeadTooLarge {
                        limit: self.limits.max_head_bytes,
                    },
                    None,
                );
            }
            if end == *line || buf[end - 1] != b'\r' {
                return fatal(DecodeErrorKind::BadLineEnding, None);
            }
            let text = &buf[*line..end - 1];
            match *tid {
                None => {
                    // RFC 4975 §9 req-start / resp-start: `MSRP SP transact-id SP ...`.
                    let rest = &text[5..];
                    let Some(sp) = memchr::memchr(b' ', rest) else {
                        return fatal(DecodeErrorKind::BadStartLine, None);
                    };
                    if !is_transaction_id(&rest[..sp]) {
                        return fatal(DecodeErrorKind::BadStartLine, None);
                    }
                    *tid = Some((5, 5 + sp));
                    self.line_starts.clear();
                }
                Some((ts, te)) => {
                    let tid_bytes = &buf[ts..te];
                    if text.starts_with(DASHES) {
                        // RFC 4975 §9 end-line = "-------" transact-id continuation-flag CRLF
                        let t = &text[DASHES.len()..];
                        let ok = t.len() == tid_bytes.len() + 1
                            && &t[..tid_bytes.len()] == tid_bytes
                            && Flag::from_byte(t[tid_bytes.len()]).is_some();
                        if !ok {
                            let tid = TransactionId::from_checked(tid_bytes);
                            return fatal(DecodeErrorKind::EndLineMismatch, Some(tid));
                        }
                        let flag = Flag::from_byte(t[tid_bytes.len()]).expect("checked above");
                        let head_len = *line;
                        let frame = buf.split_to(end + 1).freeze();
                        self.state = Self::fresh();
                        let head = parse_head(frame, (ts, te), head_len, &self.line_starts);
                        return Ok(Some(finish(head, None, flag, None)));
                    }
                    if text.is_empty() {
                        // The blank line after the headers: content-stuff follows.
                        let head_len = *line;
                        let body_start = end + 1;
                        let found = find_end_line(&self.finder, buf, body_start, tid_bytes);
                        self.state = Self::fresh();
                        if let EndLine::Found { at, end, flag } = found
                            && at - body_start <= self.limits.max_body_in_memory
                        {
                            // The whole frame is in the buffer: one split, and the body
                            // is a slice of it.
                            let frame = buf.split_to(end).freeze();
                            let body = frame.slice(body_start..at);
                            let head = parse_head(frame, (ts, te), head_len, &self.line_starts);
                            let len = body.len() as u64;
                            return Ok(Some(finish_body(head, body, flag, 0, len)));
                        }
                        // The body streams in: scan it from where this search stopped.
                        let search = match found {
                            EndLine::Found { at, .. } => at,
                            EndLine::Resume(at) => at,
                        } - body_start;
                        let head_bytes = buf.split_to(body_start).freeze();
                        let head = parse_head(head_bytes, (ts, te), head_len, &self.line_starts);
                        self.state = State::Body(BodyScan {
                            head,
                            search,
                            delivered: 0,
                            segments: 0,
                        });
                        return Ok(Some(HeadDone::Body));
                    }
                    *lines += 1;
                    self.line_starts.push(*line);
                    if *lines > self.limits.max_headers {
                        let tid = TransactionId::from_checked(tid_bytes);
                        return fatal(
                            DecodeErrorKind::TooManyHeaders {
                                limit: self.limits.max_headers,
                            },
                            Some(tid),
                        );
                    }
                }
            }
            *line = end + 1;
        }
    }

    fn decode_body(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, DecodeError> {
        let State::Body(scan) = &mut self.state else {
            unreachable!()
        };
        let discard = scan.head.error.is_some();
        let max = self.limits.max_body_in_memory;
        // Find the end-line: CRLF "-------" tid flag CRLF. Every byte is searched once:
        // `search` only moves forward, and parks on a candidate that needs more bytes.
        let found = match find_end_line(&self.finder, buf, scan.search, scan.head.tid.as_bytes()) {
            EndLine::Found { at, end, flag } => {
                // Park on the end-line: if the body must first go out in segments, the
                // next call finds it again without rescanning the body.
                scan.search = at;
                Some((at, end, flag))
            }
            EndLine::Resume(at) => {
                scan.search = at;
                None
            }
        };
        match found {
            Some((p, end, flag)) if discard || p <= max => {
                let frame = buf.split_to(end).freeze();
                let body = frame.slice(..p);
                let State::Body(scan) = std::mem::replace(&mut self.state, Self::fresh()) else {
                    unreachable!()
                };
                let BodyScan {
                    head,
                    delivered,
                    segments,
                    ..
                } = scan;
                let total = delivered + body.len() as u64;
                if discard {
                    return Err(head_error(head));
                }
                match finish_body(head, body, flag, segments, total) {
                    HeadDone::Chunk(c) => Ok(Some(c)),
                    HeadDone::Error(e) => Err(e),
                    HeadDone::Body => unreachable!(),
                }
            }
            Some(_) => Ok(Some(self.segment(buf, max))),
            None => {
                let safe = scan.search;
                if discard && safe > 0 {
                    buf.advance(safe);
                    scan.delivered += safe as u64;
                    scan.search = 0;
                    return Ok(None);
                }
                // A segment goes out once a byte past it is known to be body: with
                // exactly `max` bytes before a possible end-line, the end-line may start
                // right there, and then those bytes are the last chunk (flag and all),
                // as they are when everything arrives at once.
                if safe > max {
                    Ok(Some(self.segment(buf, max)))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Delivers the first `len` body bytes as a virtual chunk (flag `+`, Byte-Range
    /// adjusted, numbered).
    fn segment(&mut self, buf: &mut BytesMut, len: usize) -> Chunk {
        let State::Body(scan) = &mut self.state else {
            unreachable!()
        };
        let body = buf.split_to(len).freeze();
        scan.search -= len.min(scan.search);
        scan.segments += 1;
        let start = scan
            .head
            .range
            .map_or(1, |r| r.start)
            .saturating_add(scan.delivered);
        scan.delivered += len as u64;
        let mut headers = scan.head.headers.clone();
        let range = ByteRange {
            start,
            end: Some(start.saturating_add(len as u64 - 1)),
            total: scan.head.range.and_then(|r| r.total),
        };
        headers
            .set(KnownHeader::ByteRange, &range.to_string())
            .expect("a Byte-Range is a valid value");
        let mut chunk = Chunk::new(
            scan.head.tid.clone(),
            scan.head.start.clone(),
            headers,
            Some(body),
            Flag::More,
        );
        chunk.segment = Some(scan.segments);
        chunk
    }
}

/// Where a body's end-line search got to.
enum EndLine {
    /// The end-line `\r\n-------tid flag\r\n` starts at `at` and ends before `end`.
    Found { at: usize, end: usize, flag: Flag },
    /// Not found yet: the search resumes at this offset when more bytes arrive (a
    /// candidate that needs more bytes to be told apart, or the last bytes that could
    /// begin one). Nothing before it is searched again.
    Resume(usize),
}

/// Searches `buf[from..]` for the end-line of the frame with transaction id `tid`
/// (RFC 4975 §7.1: CRLF, seven dashes, the transaction id, the flag, CRLF). Look-alikes
/// (other ids, a missing flag) are body bytes.
#[inline(always)]
fn find_end_line(finder: &memmem::Finder<'_>, buf: &[u8], from: usize, tid: &[u8]) -> EndLine {
    // Most bodies hold few CRs (text without line breaks, a small chunk): look at
    // each CR directly, which costs less than setting up the substring search, and
    // leave bodies with many CRs to the substring search.
    // A small body: its first sixteen bytes at once, before any vectorised search.
    let near = buf.len().min(from + 16);
    let cr = match buf.get(from..from + 16) {
        Some(c) => {
            // A zero byte of `w ^ CR`: the lowest flagged byte is exact (borrows only
            // propagate upwards from a real zero).
            let x =
                u128::from_le_bytes(c.try_into().expect("16 bytes")) ^ (CRS * u128::from(b'\r'));
            let zero = x.wrapping_sub(CRS) & !x & (CRS * 0x80);
            (zero != 0).then(|| zero.trailing_zeros() as usize / 8)
        }
        None => buf[from..near].iter().position(|&c| c == b'\r'),
    };
    match cr {
        Some(off) => {
            let at = from + off;
            match end_line_at(buf, at, tid) {
                Some(Some((end, flag))) => EndLine::Found { at, end, flag },
                Some(None) => find_end_line_after(finder, buf, at + 1, tid),
                None => EndLine::Resume(at),
            }
        }
        None => {
            // A short body: its next bytes sixteen at a time (a fold the compiler makes
            // one vector compare; the word below only locates the CR), before the setup
            // cost of a vectorised search.
            let mut i = near;
            let near = buf.len().min(from + 128);
            while i + 16 <= near {
                let c: &[u8; 16] = buf[i..i + 16].try_into().expect("16 bytes");
                if c.iter().fold(false, |any, &x| any | (x == b'\r')) {
                    // The lowest zero byte of `w ^ CR` (borrows only propagate upwards).
                    let x = u128::from_le_bytes(*c) ^ (CRS * u128::from(b'\r'));
                    let zero = x.wrapping_sub(CRS) & !x & (CRS * 0x80);
                    let at = i + zero.trailing_zeros() as usize / 8;
                    return match end_line_at(buf, at, tid) {
                        Some(Some((end, flag))) => EndLine::Found { at, end, flag },
                        Some(None) => find_end_line_after(finder, buf, at + 1, tid),
                        None => EndLine::Resume(at),
                    };
                }
                i += 16;
            }
            find_end_line_after(finder, buf, i, tid)
        }
    }
}

/// [`find_end_line`] past the first bytes of the body.
fn find_end_line_after(
    finder: &memmem::Finder<'_>,
    buf: &[u8],
    mut from: usize,
    tid: &[u8],
) -> EndLine {
    for _ in 0..4 {
        let Some(off) = memchr::memchr(b'\r', &buf[from..]) else {
            return EndLine::Resume(buf.len());
        };
        let at = from + off;
        match end_line_at(buf, at, tid) {
            Some(Some((end, flag))) => return EndLine::Found { at, end, flag },
            Some(None) => from = at + 1,
            None => return EndLine::Resume(at),
        }
    }
    loop {
        let Some(off) = finder.find(&buf[from..]) else {
            // What is left is a candidate only if it starts like `BODY_END` (the first
            // such position, or none): the same answer whatever `from` was, so where
            // segments end does not depend on how the bytes arrived.
            let tail = from.max(buf.len().saturating_sub(BODY_END.len() - 1));
            let at = (tail..buf.len())
                .find(|&p| BODY_END.starts_with(&buf[p..]))
                .unwrap_or(buf.len());
            return EndLine::Resume(at);
        };
        let at = from + off;
        match end_line_at(buf, at, tid) {
            Some(Some((end, flag))) => return EndLine::Found { at, end, flag },
            Some(None) => from = at + 1,
            // Cannot tell yet: resume at this candidate.
            None => return EndLine::Resume(at),
        }
    }
}

/// Is there an end-line at `buf[at]` (a CR)? `Some(Some((end, flag)))`: yes, ending
/// before `end`; `Some(None)`: no; `None`: not enough bytes to tell.
#[inline(always)]
fn end_line_at(buf: &[u8], at: usize, tid: &[u8]) -> Option<Option<(usize, Flag)>> {
    let n = tid.len();
    let end = at + BODY_END.len() + n + 3;
    let Some(t) = buf.get(at..end) else {
        // Too short to tell, unless what is there already differs.
        let have = &buf[at..];
        let n = have.len().min(BODY_END.len());
        return (have[..n] != BODY_END[..n]).then_some(None);
    };
    let is_end_line = u64::from_le_bytes(t[..8].try_into().expect("8 bytes"))
        == u64::from_le_bytes(BODY_END[..8].try_into().expect("8 bytes"))
        && t[8] == b'-'
        && eq_id(&t[9..9 + n], tid)
        && t[10 + n..] == *b"\r\n";
    Some(
        is_end_line
            .then(|| Flag::from_byte(t[9 + n]).map(|f| (end, f)))
            .flatten(),
    )
}

/// `a == b` for two transaction ids of the same length (4 to 32 bytes), compared a
/// word at a time.
#[inline(always)]
fn eq_id(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    debug_assert!(n == b.len() && (4..=MAX_TID).contains(&n));
    if n < 8 {
        let w = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
        return w(a, 0) == w(b, 0) && w(a, n - 4) == w(b, n - 4);
    }
    let w = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    let mut at = 0;
    while at + 8 < n {
        if w(a, at) != w(b, at) {
            return false;
        }
        at += 8;
    }
    w(a, n - 8) == w(b, n - 8)
}

#[allow(
    clippy::large_enum_variant,
    reason = "returned once per frame; boxing the chunk would cost an allocation"
)]
enum HeadDone {
    Chunk(Chunk),
    Error(DecodeError),
    Body,
}

fn head_error(head: Head) -> DecodeError {
    let kind = head.error.clone().expect("called for errored heads");
    let tid = head.tid.clone();
    let frame = Chunk::new(head.tid, head.start, head.headers, None, Flag::End);
    DecodeError {
        kind,
        transaction_id: Some(tid),
        fatal: false,
        frame: Some(Box::new(frame)),
    }
}

/// A frame without body is complete.
fn finish(head: Head, _body: Option<Bytes>, flag: Flag, _seg: Option<u32>) -> HeadDone {
    if head.error.is_some() {
        return HeadDone::Error(head_error(head));
    }
    HeadDone::Chunk(Chunk::new(head.tid, head.start, head.headers, None, flag))
}

fn finish_body(mut head: Head, body: Bytes, flag: Flag, segments: u32, total: u64) -> HeadDone {
    if head.error.is_none() && matches!(head.start, StartLine::Response { .. }) {
        head.error = Some(DecodeErrorKind::ResponseWithBody);
    }
    // RFC 4975 §7.3.1: the receiver takes a chunk's length from its payload, not from
    // Byte-Range (the RFC's own examples disagree with their ranges), so a length that
    // differs from the range is not an error here; the reassembler places the bytes.
    if head.error.is_some() {
        return HeadDone::Error(head_error(head));
    }
    let mut chunk = Chunk::new(head.tid, head.start, head.headers, Some(body), flag);
    if segments > 0 {
        // The last segment of a large chunk: its own range, the real flag.
        let len = chunk.body_len().unwrap_or(0) as u64;
        let start = head
            .range
            .map_or(1, |r| r.start)
            .saturating_add(total - len);
        let range = ByteRange {
            start,
            end: Some(start.saturating_add(len).saturating_sub(1)),
            total: head.range.and_then(|r| r.total),
        };
        chunk
            .headers_mut()
            .set(KnownHeader::ByteRange, &range.to_string())
            .expect("a Byte-Range is a valid value");
        chunk.segment = Some(segments + 1);
    }
    HeadDone::Chunk(chunk)
}

/// Parses a complete head: the start line and the header lines that start at
/// `line_starts`, `head_len` being where the blank line or end-line starts. Framing
/// errors were caught while scanning (every line ends with CRLF); what is found here
/// is a non-fatal error of this frame.
fn parse_head(
    frame: Bytes,
    (ts, te): (usize, usize),
    head_len: usize,
    line_starts: &[usize],
) -> Head {
    let tid = TransactionId::from_checked(&frame[ts..te]);
    // Line `i` ends (before its CRLF) where the next line starts, minus 2.
    let line_end = |i: usize| line_starts.get(i).copied().unwrap_or(head_len) - 2;
    let first_end = line_end(0);
    let rest = &frame[te + 1..first_end];
    let mut error = None;
    let start = if rest.len() >= 3
        && rest[..3].iter().all(u8::is_ascii_digit)
        && (rest.len() == 3 || rest[3] == b' ')
    {
        // resp-start: status-code [SP comment]
        let code =
            (rest[0] - b'0') as u16 * 100 + (rest[1] - b'0') as u16 * 10 + (rest[2] - b'0') as u16;
        let comment = if rest.len() > 3 {
            match std::str::from_utf8(&rest[4..]) {
                Ok(s) if is_utf8text(s.as_bytes()) => Some(s.to_owned()),
                _ => {
                    error.get_or_insert(DecodeErrorKind::BadStartLine);
                    None
                }
            }
        } else {
            None
        };
        StartLine::Response {
            status: StatusCode(code),
            comment,
        }
    } else {
        match Method::parse(rest) {
            Some(m) => StartLine::Request(m),
            None => {
                error.get_or_insert(DecodeErrorKind::BadStartLine);
                StartLine::Request(Method::Extension(
                    String::from_utf8_lossy(rest).into_owned(),
                ))
            }
        }
    };
    let mut fields = WireFields::new();
    let (mut to_path, mut from_path) = (false, false);
    let mut byte_range = None;
    // When the whole header block is plain text the lines need not be checked one by
    // one (see `block_is_plain_text`).
    let plain = match line_starts.first() {
        Some(&first) => block_is_plain_text(&frame[first..head_len - 2], line_starts.len() - 1),
        None => true,
    };
    for (i, &pos) in line_starts.iter().enumerate() {
        let eol = line_end(i + 1);
        match parse_header_line(&frame, pos, eol, plain) {
            Some(line) => {
                match line.known {
                    Some(KnownHeader::ToPath) => to_path = true,
                    Some(KnownHeader::FromPath) => from_path = true,
                    Some(KnownHeader::ByteRange) if byte_range.is_none() => {
                        byte_range = Some((line.value, eol));
                    }
                    _ => {}
                }
                fields.push(
                    &frame,
                    line.known,
                    line.canonical,
                    (pos, line.name_end),
                    (line.value, eol),
                );
            }
            None => {
                error.get_or_insert(DecodeErrorKind::MalformedHeader);
            }
        }
    }
    // RFC 4975 §7.1: "The To-Path and From-Path header fields MUST be present in all
    // requests and responses" (they are the first two headers, but real peers reorder).
    if !to_path {
        error.get_or_insert(DecodeErrorKind::MissingHeader(KnownHeader::ToPath));
    }
    if !from_path {
        error.get_or_insert(DecodeErrorKind::MissingHeader(KnownHeader::FromPath));
    }
    let range = match byte_range.map(|(s, e)| {
        std::str::from_utf8(&frame[s..e])
            .expect("header values are validated UTF-8")
            .parse::<ByteRange>()
    }) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            error.get_or_insert(DecodeErrorKind::BadHeader(e));
            None
        }
        None => None,
    };
    Head {
        tid,
        start,
        headers: Headers::decoded(frame, fields),
        range,
        error,
    }
}

/// A header line's parts, as offsets into the head block.
struct HeaderLine {
    /// What the name names.
    known: Option<KnownHeader>,
    /// Spelled exactly as the spec spells it.
    canonical: bool,
    /// Where the name ends (at the colon).
    name_end: usize,
    /// Where the value starts.
    value: usize,
}

/// Parses the header line `frame[pos..eol]` (CRLF excluded):
/// `hname ":" SP hval`. Returns the name and where the value starts. Leading blanks of
/// the value are tolerated (real peers write `Name:value`).
///
/// `plain`: the line is known to be ASCII without control characters (HTAB included)
/// or DEL, so only its colon is looked for.
#[inline(always)]
fn parse_header_line(frame: &[u8], pos: usize, eol: usize, plain: bool) -> Option<HeaderLine> {
    let line = &frame[pos..eol];
    // RFC 4975 §9 `hval = utf8text`, `utf8text = *(HTAB / %x20-7E / UTF8-NONASCII)`:
    // no control character (a lone CR included) and valid UTF-8. The name is checked
    // to be a token below, so the whole line can be checked at once.
    let colon = if plain {
        find_colon(line)?
    } else {
        text_line_colon(line)??
    };
    let raw = &line[..colon];
    let (known, canonical) = match known_exact(raw) {
        // Spelled as the spec spells it: a token by construction.
        Some(h) => (Some(h), true),
        None => {
            // RFC 4975 §9 `hname = ALPHA *token-char`.
            if !is_token(raw) || !raw[0].is_ascii_alphabetic() {
                return None;
            }
            (KnownHeader::from_wire(raw), false)
        }
    };
    // Usually exactly one SP (RFC 4975 §9 `hname ":" SP hval`).
    let mut v = colon + 1;
    if line.get(v) == Some(&b' ') {
        v += 1;
    }
    while v < line.len() && (line[v] == b' ' || line[v] == b'\t') {
        v += 1;
    }
    Some(HeaderLine {
        known,
        canonical,
        name_end: pos + colon,
        value: pos + v,
    })
}

/// RFC 4975 §9 `utf8text = *(HTAB / %x20-7E / UTF8-NONASCII)`: no control characters.
fn is_utf8text(b: &[u8]) -> bool {
    b.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

const ONES: u64 = 0x0101_0101_0101_0101;
/// [`ONES`] sixteen bytes wide.
const CRS: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
const HIGH: u64 = ONES * 0x80;

/// True when `block` (the header lines, with the `crlfs` CRLFs between them) is ASCII
/// and holds no control character or DEL besides those CRLFs: then every line is
/// RFC 4975 §9 utf8text without HTAB (and no CR is a lone one). Eight bytes at a time:
/// the count of bytes below 0x20 must be exactly `2 * crlfs` (the scanner checked that
/// every line ends with CRLF, so those bytes are among them).
fn block_is_plain_text(block: &[u8], crlfs: usize) -> bool {
    let mut high = 0u64; // bit 7 of non-ASCII bytes and of DEL (b + 1)
    let mut controls = 0usize;
    let mut account = |w: u64| {
        high |= w | w.wrapping_add(ONES);
        // In ASCII bytes nothing carries: bit 7 of `b + 0x60` is clear iff b < 0x20.
        // Summing the flag bits (moved to bit 0 of each byte) counts such bytes.
        let low = (!w.wrapping_add(ONES * 0x60) & HIGH) >> 7;
        controls += (low.wrapping_mul(ONES) >> 56) as usize;
    };
    let mut words = block.chunks_exact(8);
    for c in &mut words {
        account(u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let rest = words.remainder();
    let mut last = [b' '; 8];
    last[..rest.len()].copy_from_slice(rest);
    account(u64::from_le_bytes(last));
    // A non-ASCII byte makes the counts meaningless (carries), but it also fails the
    // `high` test.
    high & HIGH == 0 && controls == 2 * crlfs
}

/// Where the line starting at `b[from]` ends: the index of its CR, when the line is
/// plain text (ASCII, no control character or DEL) ended by CRLF. `None` for anything
/// else, and when fewer than eight bytes are left to look at.
#[inline(always)]
fn plain_line_end(b: &[u8], mut i: usize) -> Option<usize> {
    // Bit 7 is set in `b + 1` for 0x7f..=0xfe and in `b - 0x20` for bytes below 0x20
    // (it wraps) and for 0xa0..=0xff, so in one of them for every byte that is not
    // printable ASCII, and in neither for 0x20..=0x7e. Only flagged bytes (below 0x20,
    // 0xff) carry or borrow into the byte above, so the lowest flagged byte is exact.
    let flags = |w: u64| (w.wrapping_add(ONES) | w.wrapping_sub(ONES * 0x20)) & HIGH;
    let found = |at: usize| (b.get(at..at + 2) == Some(b"\r\n")).then_some(at);
    // Sixteen bytes a step while they last (header lines are 20 to 60 bytes long).
    while let Some(c) = b.get(i..i + 16) {
        let c: &[u8; 16] = c.try_into().expect("16 bytes");
        // Any byte outside 0x20..=0x7e? Written as a fold so that the compiler makes
        // it one vector compare (SSE2 on x86-64); the words below only locate it.
        if c.iter()
            .fold(false, |any, &x| any | (x.wrapping_sub(0x20) > 0x5e))
        {
            let x = u128::from_le_bytes(*c);
            let lo = flags(x as u64);
            let bit = if lo != 0 {
                lo.trailing_zeros()
            } else {
                64 + flags((x >> 64) as u64).trailing_zeros()
            };
            return found(i + bit as usize / 8);
        }
        i += 16;
    }
    let c = b.get(i..i + 8)?;
    let f = flags(u64::from_le_bytes(c.try_into().expect("8 bytes")));
    if f != 0 {
        return found(i + f.trailing_zeros() as usize / 8);
    }
    None
}

/// `ByteRange::parse_bytes(v).is_some()`, with the shape of every first chunk whose
/// sender does not yet know where it ends (`1-*/` and the total: one to nineteen
/// digits, which cannot overflow, or `*`) told by a four-byte compare and a digit test.
#[inline(always)]
fn byte_range_ok(v: &[u8]) -> bool {
    if let Some(total) = v.strip_prefix(b"1-*/")
        && (total == b"*"
            || (1..=19).contains(&total.len()) && total.iter().all(u8::is_ascii_digit))
    {
        return true;
    }
    ByteRange::parse_bytes(v).is_some()
}

/// The index of the first colon of an ASCII `line`.
#[inline(always)]
fn find_colon(line: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= line.len() {
        let w = u64::from_le_bytes(line[i..i + 8].try_into().expect("8 bytes"));
        let x = w ^ (ONES * u64::from(b':'));
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(i + zero.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    line[i..].iter().position(|&b| b == b':').map(|p| i + p)
}

/// The index of the first LF in `h`. Header lines are short: for their first bytes a
/// word-at-a-time loop beats the setup cost of a vectorised search, which takes over
/// for longer runs (so a long line is still searched quickly).
fn find_lf(h: &[u8]) -> Option<usize> {
    const SHORT: usize = 128;
    let mut i = 0;
    while i + 8 <= h.len() {
        if i >= SHORT {
            return memchr::memchr(b'\n', &h[i..]).map(|p| i + p);
        }
        let w = u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
        // The lowest zero byte of `w ^ LF` is exact (borrows only propagate upwards).
        let x = w ^ (ONES * u64::from(b'\n'));
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(i + zero.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    h[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// One word of a line: is it ASCII text, and where is its first colon?
enum Word {
    /// ASCII text; the index of the first `:` in the word, if any.
    Text(Option<usize>),
    /// An ASCII control character or DEL.
    NotText,
    /// A non-ASCII byte: the line needs the UTF-8 path.
    NonAscii,
}

fn word(c: &[u8]) -> Word {
    let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
    if w & HIGH != 0 {
        return Word::NonAscii;
    }
    // In a word of ASCII bytes nothing carries between bytes: bit 7 of `b + 0x60` is
    // clear iff b < 0x20, bit 7 of `b + 1` is set iff b == 0x7F. A flagged word is
    // looked at byte by byte (HTAB is allowed).
    if (!w.wrapping_add(ONES * 0x60) | w.wrapping_add(ONES)) & HIGH != 0 && !is_utf8text(c) {
        return Word::NotText;
    }
    // A zero byte of `w ^ ':'`: the lowest flagged byte is exact (borrows only
    // propagate upwards from a real zero).
    let x = w ^ (ONES * u64::from(b':'));
    let zero = x.wrapping_sub(ONES) & !x & HIGH;
    Word::Text((zero != 0).then(|| zero.trailing_zeros() as usize / 8))
}

/// `None` when `line` is not valid UTF-8 [`is_utf8text`], else the index of its first
/// colon. ASCII lines (nearly all) are checked eight bytes at a time, the colon being
/// found in the same pass; others take the byte-by-byte path.
fn text_line_colon(line: &[u8]) -> Option<Option<usize>> {
    let slow = || {
        (is_utf8text(line) && std::str::from_utf8(line).is_ok()).then(|| memchr::memchr(b':', line))
    };
    if line.len() < 8 {
        return if line.is_ascii() && is_utf8text(line) {
            Some(memchr::memchr(b':', line))
        } else {
            slow()
        };
    }
    let mut colon = None;
    let mut words = line.chunks_exact(8);
    let mut at = 0;
    for c in &mut words {
        match word(c) {
            Word::Text(Some(i)) if colon.is_none() => colon = Some(at + i),
            Word::Text(_) => {}
            Word::NotText => return None,
            Word::NonAscii => return slow(),
        }
        at += 8;
    }
    if words.remainder().is_empty() {
        return Some(colon);
    }
    // The last eight bytes, overlapping the words already checked (a colon among
    // those would have been found already).
    let tail = line.len() - 8;
    match word(&line[tail..]) {
        Word::Text(Some(i)) if colon.is_none() => Some(Some(tail + i)),
        Word::Text(_) => Some(colon),
        Word::NotText => None,
        Word::NonAscii => slow(),
    }
}

/// The longest known header name [`KnownHeader`] spellings may have for
/// [`known_exact`] (checked at compile time).
const MAX_KNOWN_LEN: usize = 24;

/// A name as up to three little-endian words that cover every byte of names of 4 to
/// [`MAX_KNOWN_LEN`] bytes: `(first 4, last 4, 0)` below 8 bytes, else the first,
/// middle and last 8.
const fn name_words(b: &[u8]) -> (u64, u64, u64) {
    const fn le(b: &[u8], at: usize, n: usize) -> u64 {
        let mut v = 0u64;
        let mut i = 0;
        while i < n {
            v |= (b[at + i] as u64) << (8 * i);
            i += 1;
        }
        v
    }
    let n = b.len();
    if n < 8 {
        (le(b, 0, 4), le(b, n - 4, 4), 0)
    } else {
        (le(b, 0, 8), le(b, n / 2 - 4, 8), le(b, n - 8, 8))
    }
}

type ExactEntry = Option<((u64, u64, u64), KnownHeader)>;

/// The known headers' canonical spellings by length (at most 3 of one length).
static EXACT: [[ExactEntry; 3]; MAX_KNOWN_LEN + 1] = {
    let mut t: [[ExactEntry; 3]; MAX_KNOWN_LEN + 1] = [[None; 3]; MAX_KNOWN_LEN + 1];
    let mut i = 0;
    while i < KnownHeader::ALL.len() {
        let h = KnownHeader::ALL[i];
        let b = h.as_str().as_bytes();
        assert!(b.len() >= 4 && b.len() <= MAX_KNOWN_LEN);
        let mut j = 0;
        while t[b.len()][j].is_some() {
            j += 1;
        }
        t[b.len()][j] = Some((name_words(b), h));
        i += 1;
    }
    t
};

/// The known header spelled exactly as `raw` (the usual case on the wire), found
/// without the case-insensitive comparison of [`KnownHeader::from_wire`].
#[inline(always)]
fn known_exact(raw: &[u8]) -> Option<KnownHeader> {
    if raw.len() < 4 {
        return None;
    }
    let row = EXACT.get(raw.len())?;
    row[0]?;
    let n = raw.len();
    let w = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let key = if n < 8 {
        let w4 = |at: usize| {
            u64::from(u32::from_le_bytes(
                raw[at..at + 4].try_into().expect("4 bytes"),
            ))
        };
        (w4(0), w4(n - 4), 0)
    } else {
        (w(0), w(n / 2 - 4), w(n - 8))
    };
    for &(k, h) in row.iter().map_while(Option::as_ref) {
        if k == key {
            return Some(h);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: RFC 4975 §9 utf8text, valid UTF-8, first colon.
    fn reference(line: &[u8]) -> Option<Option<usize>> {
        (is_utf8text(line) && std::str::from_utf8(line).is_ok())
            .then(|| line.iter().position(|&b| b == b':'))
    }

    #[test]
    fn word_at_a_time_line_check_matches_the_byte_by_byte_one() {
        let base = b"Message-ID: 87652491 and some more text here".to_vec();
        for len in 0..base.len() {
            let line = &base[..len];
            assert_eq!(text_line_colon(line), reference(line), "{line:?}");
            for at in 0..len {
                // Every byte value at every position (controls, CR, DEL, colons,
                // lone non-ASCII bytes) and valid two- and three-byte sequences.
                for b in 0..=255u8 {
                    let mut l = line.to_vec();
                    l[at] = b;
                    assert_eq!(text_line_colon(&l), reference(&l), "{l:?}");
                }
                for seq in ["é", "€", "\u{1F600}"] {
                    let mut l = line.to_vec();
                    l.splice(at..at, seq.bytes());
                    assert_eq!(text_line_colon(&l), reference(&l), "{l:?}");
                }
            }
        }
    }

    /// The reference: the first byte from `i` on that is not printable ASCII, looked
    /// for only in whole eight-byte words; a line end if it is CR followed by LF.
    fn plain_line_end_reference(b: &[u8], i: usize) -> Option<usize> {
        let limit = i + (b.len().saturating_sub(i) / 8) * 8;
        let at = (i..limit).find(|&j| !(0x20..0x7f).contains(&b[j]))?;
        (b[at] == b'\r' && b.get(at + 1) == Some(&b'\n')).then_some(at)
    }

    #[test]
    fn plain_line_end_matches_its_reference() {
        for len in 0..72 {
            for from in 0..len.min(9) {
                for at in 0..len {
                    for (first, second) in [
                        (b'\r', b'\n'),
                        (b'\r', b'a'),
                        (b'\n', b'a'),
                        (b'\t', b'a'),
                        (0x7f, b'a'),
                        (0xc3, 0xa9),
                        (0x80, b'a'),
                        (0x9f, 0xa0),
                        (0x1f, b'a'),
                        (0xff, b'\r'),
                    ] {
                        let mut b = vec![b'a'; len];
                        b[at] = first;
                        if at + 1 < len {
                            b[at + 1] = second;
                        }
                        assert_eq!(
                            plain_line_end(&b, from),
                            plain_line_end_reference(&b, from),
                            "len {len} from {from} at {at} bytes {first:#x} {second:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn find_lf_finds_the_first_line_feed() {
        for len in 0..300 {
            let mut h = vec![b'a'; len];
            assert_eq!(find_lf(&h), None);
            for at in 0..len {
                h[at] = b'\n';
                assert_eq!(find_lf(&h), Some(at), "len {len} at {at}");
                // A second LF (and bytes that differ from LF by one bit) after it
                // changes nothing.
                if at + 1 < len {
                    h[at + 1] = b'\n';
                    assert_eq!(find_lf(&h), Some(at));
                    h[at + 1] = b'a';
                }
                h[at] = b'\x0b';
                assert_eq!(find_lf(&h), None);
                h[at] = b'a';
            }
        }
    }

    #[test]
    fn plain_block_check_matches_the_line_by_line_one() {
        let lines: [&[u8]; 3] = [
            b"To-Path: msrp://a.example:1/s;tcp",
            b"X: y",
            b"Byte-Range: 1-*/9",
        ];
        let block = lines.join(&b"\r\n"[..]);
        assert!(block_is_plain_text(&block, 2));
        assert!(block_is_plain_text(b"", 0));
        // The scanner guarantees the CRLFs between the lines; any byte elsewhere (a
        // lone CR, HTAB, DEL, other controls, non-ASCII) makes the block not plain.
        let separators: Vec<usize> = block
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\r\n")
            .flat_map(|(i, _)| [i, i + 1])
            .collect();
        for at in (0..block.len()).filter(|at| !separators.contains(at)) {
            for b in 0..=255u8 {
                let mut l = block.clone();
                l[at] = b;
                let expect = (0x20..0x7f).contains(&b);
                assert_eq!(block_is_plain_text(&l, 2), expect, "{l:?}");
            }
        }
    }

    fn decode_one(extra: &[u8]) -> Result<Option<Chunk>, DecodeError> {
        let mut frame = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example:1/s;tcp\r\n\
            From-Path: msrp://a.example:1/s;tcp\r\n"
            .to_vec();
        frame.extend_from_slice(extra);
        frame.extend_from_slice(b"-------a786hjs2$\r\n");
        Decoder::default().decode(&mut BytesMut::from(&frame[..]))
    }

    #[test]
    fn header_blocks_off_the_plain_path_keep_their_meaning() {
        // HTAB and UTF-8 are utf8text (RFC 4975 §9): the line-by-line path takes them.
        let c = decode_one("X-A: a\tb\r\nX-B: h\u{e9}llo\r\n".as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(c.headers().get_by_name("x-a"), Some("a\tb"));
        assert_eq!(c.headers().get_by_name("X-B"), Some("h\u{e9}llo"));
        // DEL, a lone CR, other controls and invalid UTF-8 are not.
        for bad in [
            &b"X-C: a\x7fb"[..],
            b"X-C: a\rb",
            b"X-C: a\x01b",
            b"X-C: a\xffb",
        ] {
            let mut extra = bad.to_vec();
            extra.extend_from_slice(b"\r\n");
            let e = decode_one(&extra).unwrap_err();
            assert_eq!(e.kind(), &DecodeErrorKind::MalformedHeader, "{bad:?}");
            assert!(!e.is_fatal());
        }
        // Names as spelled on the wire survive, known or not.
        let c = decode_one(b"message-id: 1\r\nX-Thing: 2\r\n")
            .unwrap()
            .unwrap();
        let names: Vec<_> = c.headers().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["To-Path", "From-Path", "message-id", "X-Thing"]);
        assert_eq!(c.message_id(), Some("1"));
    }

    #[test]
    fn quick_byte_range_check_matches_the_parser() {
        let nineteen = "9".repeat(19);
        let twenty = "9".repeat(20);
        let mut values = vec![
            "1-*/*".to_string(),
            "1-*/0".into(),
            "1-*/1".into(),
            "1-*/25".into(),
            format!("1-*/{nineteen}"),
            format!("1-*/{twenty}"),
            "1-*/".into(),
            "1-*/2a".into(),
            "1-*/ 2".into(),
            "1-*/**".into(),
            "1-25/25".into(),
            "0-*/5".into(),
            "2-*/0".into(),
            "1-*".into(),
            "1-*/-1".into(),
        ];
        for b in 0..=255u8 {
            values.push(format!("1-*/1{}", b as char));
        }
        for v in &values {
            assert_eq!(
                byte_range_ok(v.as_bytes()),
                ByteRange::parse_bytes(v.as_bytes()).is_some(),
                "{v:?}"
            );
        }
        assert!(!byte_range_ok(b"1-*/\xff"));
    }

    #[test]
    fn find_colon_finds_the_first_colon() {
        for len in 0..40 {
            let mut l = vec![b'a'; len];
            assert_eq!(find_colon(&l), None);
            for at in 0..len {
                l[at] = b':';
                assert_eq!(find_colon(&l), Some(at));
                if at + 1 < len {
                    l[at + 1] = b':';
                    assert_eq!(find_colon(&l), Some(at));
                    l[at + 1] = b'a';
                }
                l[at] = b';';
                assert_eq!(find_colon(&l), None);
                l[at] = b'a';
            }
        }
    }

    #[test]
    fn copy_line_copies_every_byte() {
        let src: Vec<u8> = (0..70u8).collect();
        for len in 0..src.len() {
            let mut dst = vec![0xff; len];
            copy_line(&mut dst, &src[..len]);
            assert_eq!(dst, src[..len]);
        }
    }

    #[test]
    fn same_prefix_counts_the_leading_equal_bytes() {
        let reference = |a: &[u8], b: &[u8]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        let a: Vec<u8> = (0..70u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..a.len() {
            for at in 0..=len {
                let mut b = a[..len].to_vec();
                if at < len {
                    b[at] ^= 0x20;
                }
                assert_eq!(
                    same_prefix(&a[..len], &b),
                    reference(&a[..len], &b),
                    "{len} {at}"
                );
            }
        }
    }

    #[test]
    fn word_compares_of_ids_match_slice_equality() {
        let base: Vec<u8> = (0..MAX_TID as u8).map(|i| b'a' + i % 26).collect();
        for n in 4..=MAX_TID {
            let a = &base[..n];
            assert!(eq_id(a, a));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x01;
                assert!(!eq_id(a, &b), "{n} {at}");
            }
        }
    }

    #[test]
    fn ids_taken_from_a_window_equal_checked_ones() {
        let window: [u8; MAX_TID] =
            core::array::from_fn(|i| b"0123456789abcdefghijklmnopqrstuv"[i]);
        for n in 4..=MAX_TID {
            let id = TransactionId::from_window(&window, n);
            assert_eq!(id, TransactionId::from_checked(&window[..n]));
            assert_eq!(id.as_bytes(), &window[..n]);
        }
    }

    #[test]
    fn names_at_line_starts_are_found_only_when_canonical_with_colon_and_space() {
        let pad = |b: &[u8]| {
            let mut l = b.to_vec();
            l.extend_from_slice(b" value that is long enough\r\n");
            l
        };
        for &h in KnownHeader::ALL {
            let name = h.as_str().as_bytes();
            let mut line = name.to_vec();
            line.push(b':');
            let colon_end = line.len();
            assert_eq!(
                known_name_at(&pad(&line), 0),
                Some((h, colon_end + 1)),
                "{h:?}"
            );
            // At an offset, as in a head.
            let mut head = b"MSRP abcd SEND\r\n".to_vec();
            head.extend_from_slice(&pad(&line));
            assert_eq!(known_name_at(&head, 16), Some((h, 16 + colon_end + 1)));
            // Without the space after the colon, or with a second one: the general path.
            let mut tight = line.clone();
            tight.extend_from_slice(b"value that is long enough\r\n");
            assert_eq!(known_name_at(&tight, 0), None, "{h:?}");
            let mut wide = line.clone();
            wide.push(b' ');
            assert_eq!(known_name_at(&pad(&wide), 0), None, "{h:?}");
            // Without its colon, in another case, or with any one byte changed (the
            // colon included), it is not this header; the general path decides.
            assert_eq!(known_name_at(&pad(name), 0), None, "{h:?}");
            let lower = line.to_ascii_lowercase();
            assert_eq!(known_name_at(&pad(&lower), 0), None, "{h:?}");
            for at in 0..line.len() {
                for flip in [0x01, 0x20, 0x80] {
                    let mut l = line.clone();
                    l[at] ^= flip;
                    assert_eq!(known_name_at(&pad(&l), 0), None, "{l:?}");
                }
            }
            // Fewer than 24 bytes to look at.
            assert_eq!(known_name_at(&line, 0), None);
        }
        assert_eq!(known_name_at(&pad(b"X-Foo:"), 0), None);
        assert_eq!(known_name_at(&pad(b"Content-:"), 0), None);
    }

    #[test]
    fn exact_known_names_match_only_their_canonical_spelling() {
        for &h in KnownHeader::ALL {
            let name = h.as_str();
            assert_eq!(known_exact(name.as_bytes()), Some(h));
            assert_eq!(known_exact(name.to_ascii_lowercase().as_bytes()), None);
            // Any one byte changed is not this header.
            for at in 0..name.len() {
                let mut b = name.as_bytes().to_vec();
                b[at] ^= 0x01;
                assert_ne!(known_exact(&b), Some(h), "{b:?}");
            }
        }
        assert_eq!(known_exact(b"X-Foo"), None);
        assert_eq!(known_exact(b""), None);
        assert_eq!(known_exact(b"To-Pat"), None);
    }
}
