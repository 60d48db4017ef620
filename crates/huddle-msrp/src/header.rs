//! MSRP header fields: the ordered header list of a chunk and typed values for every
//! header of RFC 4975 §9 and RFC 4976 §8.
//!
//! Headers keep the spelling and order they had on the wire so a decoded chunk
//! re-encodes byte-identically; typed accessors parse values on demand.

use core::fmt;
use core::str::FromStr;

use bytes::Bytes;

use crate::generated::headers::KnownHeader;
use crate::status::StatusCode;
use crate::uri::{MsrpUri, UriError, parse_path};

/// A header value or name that is not what the spec allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A header the operation needs is absent.
    #[error("missing {0} header")]
    Missing(KnownHeader),
    /// RFC 4975 §9 `Byte-Range = range-start "-" range-end "/" total`.
    #[error("invalid Byte-Range {0:?}")]
    InvalidByteRange(String),
    /// RFC 4975 §9 `Status = namespace SP status-code [SP text-reason]`.
    #[error("invalid Status {0:?}")]
    InvalidStatus(String),
    /// Success-Report must be `yes`/`no`, Failure-Report `yes`/`no`/`partial` (RFC 4975 §9).
    #[error("invalid report request {0:?}")]
    InvalidReportRequest(String),
    /// Expires, Min-Expires and Max-Expires are `1*DIGIT` (RFC 4976 §8).
    #[error("invalid number {0:?}")]
    InvalidNumber(String),
    /// A path header did not parse as MSRP URIs.
    #[error("invalid path: {0}")]
    InvalidPath(#[from] UriError),
    /// Header names are tokens; values may not contain CR or LF.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// RFC 4975 §9 `transact-id = ident` (ALPHANUM then 3 to 31 of ALPHANUM . - + % =).
    #[error("invalid transaction id {0:?}")]
    InvalidTransactionId(String),
    /// An authentication header did not parse as `scheme param=value, ...`.
    #[error("invalid authentication parameters {0:?}")]
    InvalidAuthParams(String),
}

/// A header name: one of the [`KnownHeader`]s (matched case-insensitively) or an
/// extension header, with the spelling it had on the wire.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderName {
    raw: Bytes,
    known: Option<KnownHeader>,
}

impl HeaderName {
    /// The canonical spelling of a known header.
    pub fn known(h: KnownHeader) -> Self {
        HeaderName {
            raw: Bytes::from_static(h.as_str().as_bytes()),
            known: Some(h),
        }
    }

    /// Any header name; it is matched against the known headers ignoring case.
    pub fn new(name: &str) -> Result<Self, HeaderError> {
        if !is_token(name.as_bytes()) {
            return Err(HeaderError::InvalidHeader(name.to_owned()));
        }
        Ok(Self::from_wire(Bytes::copy_from_slice(name.as_bytes())))
    }

    /// From bytes already checked to be a token.
    pub(crate) fn from_wire(raw: Bytes) -> Self {
        let known = KnownHeader::from_wire(&raw);
        HeaderName { raw, known }
    }

    /// From bytes already checked to be a token, `known` being
    /// `KnownHeader::from_wire(&raw)` (the decoder has computed it already).
    pub(crate) fn from_wire_known(raw: Bytes, known: Option<KnownHeader>) -> Self {
        HeaderName { raw, known }
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        // Invariant: constructed only from tokens (ASCII).
        core::str::from_utf8(&self.raw).expect("header names are ASCII tokens")
    }

    /// Which known header this is, if any.
    pub fn known_header(&self) -> Option<KnownHeader> {
        self.known
    }

    /// Case-insensitive comparison with another name.
    pub fn matches(&self, name: &str) -> bool {
        self.raw.eq_ignore_ascii_case(name.as_bytes())
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<KnownHeader> for HeaderName {
    fn from(h: KnownHeader) -> Self {
        HeaderName::known(h)
    }
}

/// RFC 4975 §9: `hname = ALPHA *token-char` where token chars are those of RFC 3261's
/// `token`. We accept any RFC 3261 token so extension headers from real peers survive.
pub(crate) fn is_token(name: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                )
        })
}

/// A header value: UTF-8 text without CR or LF (RFC 4975 §9 `hval = utf8text`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderValue(Bytes);

impl HeaderValue {
    /// A value from text; fails on CR or LF (header injection).
    pub fn new(value: &str) -> Result<Self, HeaderError> {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(HeaderError::InvalidHeader(value.to_owned()));
        }
        Ok(HeaderValue(Bytes::copy_from_slice(value.as_bytes())))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        // Invariant: constructed only from validated UTF-8.
        core::str::from_utf8(&self.0).expect("header values are validated UTF-8")
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The ordered header list of a chunk (start-line headers and MIME headers together).
///
/// A decoded list keeps the frame's head block once and refers to its values by
/// offset. The usual case (up to eight headers, each spelled as the spec
/// spells it, in the first 64 KiB of the block) is a small table inside the list: no
/// allocation at all. Other spellings, extension headers, longer lists and values set
/// later live in a vector and own their bytes.
#[derive(Clone, Default)]
pub struct Headers {
    /// The head block that wire offsets point into (empty for built lists).
    head: Bytes,
    list: List,
}

/// How many canonical headers a decoded list holds without allocating: the usual SEND
/// carries up to seven (To-Path, From-Path, Message-ID, Byte-Range, Success-Report,
/// Failure-Report, Content-Type).
pub(crate) const INLINE_FIELDS: usize = 8;

#[derive(Clone)]
enum List {
    /// `fields[..len]`: known headers spelled canonically, values in `head`.
    Inline {
        len: u8,
        fields: [InlineField; INLINE_FIELDS],
    },
    /// Anything else.
    Vec(Vec<Field>),
}

impl Default for List {
    fn default() -> Self {
        List::Vec(Vec::new())
    }
}

/// A known header spelled canonically whose value is `head[start..end]`, validated
/// UTF-8 text without CR or LF.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InlineField {
    pub(crate) name: KnownHeader,
    pub(crate) start: u16,
    pub(crate) end: u16,
}

pub(crate) const EMPTY_FIELD: InlineField = InlineField {
    name: KnownHeader::ToPath,
    start: 0,
    end: 0,
};

#[derive(Clone)]
enum Field {
    /// A known header spelled canonically; its value is `head[start..end]`, validated
    /// UTF-8 text without CR or LF.
    Wire {
        name: KnownHeader,
        start: u32,
        end: u32,
    },
    /// Any other name or value.
    Owned(Box<(HeaderName, HeaderValue)>),
}

/// A [`HeaderName`] for every known header in its canonical spelling, indexed by the
/// enum's discriminant, so a wire field can lend one out.
static KNOWN_NAMES: [HeaderName; KnownHeader::ALL.len()] = {
    const EMPTY: HeaderName = HeaderName {
        raw: Bytes::new(),
        known: None,
    };
    let mut names = [EMPTY; KnownHeader::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        let h = KnownHeader::ALL[i];
        let name = HeaderName {
            raw: Bytes::from_static(h.as_str().as_bytes()),
            known: Some(h),
        };
        // A static `Bytes` has nothing to drop; `forget` only satisfies const evaluation.
        core::mem::forget(core::mem::replace(&mut names[h as usize], name));
        i += 1;
    }
    names
};

/// One header of a list, however it is stored.
#[derive(Clone, Copy)]
struct FieldRef<'a> {
    known: Option<KnownHeader>,
    name: &'a HeaderName,
    value: &'a [u8],
}

impl<'a> FieldRef<'a> {
    fn str(self) -> &'a str {
        // Invariant: wire values were validated as UTF-8 by the decoder, owned ones
        // come from `&str`.
        core::str::from_utf8(self.value).expect("header values are validated UTF-8")
    }
}

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers::default()
    }

    /// An empty list with room for `n` headers.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            head: Bytes::new(),
            list: List::Vec(Vec::with_capacity(n)),
        }
    }

    /// A decoded list from the decoder's fast path: `fields[..len]` refer to `head` by
    /// offset (known headers spelled canonically, values validated UTF-8 text without
    /// CR or LF).
    #[inline(always)]
    pub(crate) fn decoded_inline(
        head: Bytes,
        fields: [InlineField; INLINE_FIELDS],
        len: usize,
    ) -> Self {
        debug_assert!(len <= INLINE_FIELDS);
        Headers {
            head,
            list: List::Inline {
                len: len as u8,
                fields,
            },
        }
    }

    /// A decoded list: `fields` refer to `head` by offset.
    pub(crate) fn decoded(head: Bytes, fields: WireFields) -> Self {
        Headers {
            head,
            list: fields.0,
        }
    }

    /// The block wire offsets point into: a decoded frame's bytes (empty for built
    /// lists).
    pub(crate) fn block(&self) -> &Bytes {
        &self.head
    }

    /// Every header, in order.
    fn fields(&self) -> impl Iterator<Item = FieldRef<'_>> + '_ {
        let (inline, vec): (&[InlineField], &[Field]) = match &self.list {
            List::Inline { len, fields } => (&fields[..usize::from(*len)], &[]),
            List::Vec(v) => (&[], v),
        };
        let head = &self.head;
        let inline = inline.iter().map(move |f| FieldRef {
            known: Some(f.name),
            name: &KNOWN_NAMES[f.name as usize],
            value: &head[usize::from(f.start)..usize::from(f.end)],
        });
        let vec = vec.iter().map(move |f| match f {
            Field::Wire { name, start, end } => FieldRef {
                known: Some(*name),
                name: &KNOWN_NAMES[*name as usize],
                value: &head[*start as usize..*end as usize],
            },
            Field::Owned(f) => FieldRef {
                known: f.0.known,
                name: &f.0,
                value: f.1.as_bytes(),
            },
        });
        inline.chain(vec)
    }

    /// The list as a vector of fields (made one when it was an inline table), for the
    /// operations that change it.
    fn vec_mut(&mut self) -> &mut Vec<Field> {
        if let List::Inline { len, fields } = &self.list {
            let v = fields[..usize::from(*len)]
                .iter()
                .map(|f| Field::Wire {
                    name: f.name,
                    start: u32::from(f.start),
                    end: u32::from(f.end),
                })
                .collect();
            self.list = List::Vec(v);
        }
        match &mut self.list {
            List::Vec(v) => v,
            List::Inline { .. } => unreachable!("made a vector above"),
        }
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        match &self.list {
            List::Inline { len, .. } => usize::from(*len),
            List::Vec(v) => v.len(),
        }
    }

    /// No headers at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Headers in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> + '_ {
        self.fields().map(|f| (f.name, f.str()))
    }

    /// The first value of a known header.
    pub fn get(&self, h: KnownHeader) -> Option<&str> {
        if let List::Inline { len, fields } = &self.list {
            // The common case, without the general iterator.
            let f = fields[..usize::from(*len)].iter().find(|f| f.name == h)?;
            let value = &self.head[usize::from(f.start)..usize::from(f.end)];
            return Some(core::str::from_utf8(value).expect("header values are validated UTF-8"));
        }
        self.fields().find(|f| f.known == Some(h)).map(|f| f.str())
    }

    /// The first value of a header by name (case-insensitive), known or not.
    pub fn get_by_name(&self, name: &str) -> Option<&str> {
        self.fields()
            .find(|f| f.name.matches(name))
            .map(|f| f.str())
    }

    /// Every value of a header by name, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields()
            .filter(move |f| f.name.matches(name))
            .map(|f| f.str())
    }

    /// Appends a header.
    pub fn push(&mut self, name: impl Into<HeaderName>, value: HeaderValue) {
        self.vec_mut()
            .push(Field::Owned(Box::new((name.into(), value))));
    }

    /// Appends a known header with a text value.
    pub fn append(&mut self, h: KnownHeader, value: &str) -> Result<(), HeaderError> {
        self.push(h, HeaderValue::new(value)?);
        Ok(())
    }

    /// Replaces the first occurrence of a known header (keeping its position and
    /// spelling) or appends it.
    pub fn set(&mut self, h: KnownHeader, value: &str) -> Result<(), HeaderError> {
        let value = HeaderValue::new(value)?;
        let list = self.vec_mut();
        let known = |f: &Field| match f {
            Field::Wire { name, .. } => Some(*name),
            Field::Owned(f) => f.0.known,
        };
        match list.iter_mut().find(|f| known(f) == Some(h)) {
            Some(f) => {
                let name = match f {
                    Field::Wire { name, .. } => HeaderName::known(*name),
                    Field::Owned(o) => o.0.clone(),
                };
                *f = Field::Owned(Box::new((name, value)));
            }
            None => list.push(Field::Owned(Box::new((HeaderName::known(h), value)))),
        }
        Ok(())
    }

    /// Removes every occurrence of a known header.
    pub fn remove(&mut self, h: KnownHeader) {
        self.vec_mut().retain(|f| match f {
            Field::Wire { name, .. } => *name != h,
            Field::Owned(f) => f.0.known != Some(h),
        });
    }

    pub(crate) fn raw_iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields().map(|f| (&f.name.raw[..], f.value))
    }

    /// Parses a path header (To-Path, From-Path, Use-Path).
    pub fn path(&self, h: KnownHeader) -> Result<Vec<MsrpUri>, HeaderError> {
        let v = self.get(h).ok_or(HeaderError::Missing(h))?;
        Ok(parse_path(v)?)
    }
}

/// The fields of a head block being decoded, before the block is handed to
/// [`Headers::decoded`].
pub(crate) struct WireFields(List);

impl WireFields {
    pub(crate) fn new() -> Self {
        WireFields(List::Inline {
            len: 0,
            fields: [EMPTY_FIELD; INLINE_FIELDS],
        })
    }

    /// Appends the canonically spelled known header `name` whose value is
    /// `head[start..end]`, validated UTF-8 text without CR or LF, `end` being below
    /// 64 KiB. The decoder's fast path.
    #[inline(always)]
    pub(crate) fn push_inline(&mut self, name: KnownHeader, start: u16, end: u16) -> bool {
        match &mut self.0 {
            List::Inline { len, fields } if usize::from(*len) < INLINE_FIELDS => {
                fields[usize::from(*len)] = InlineField { name, start, end };
                *len += 1;
                true
            }
            _ => false,
        }
    }

    /// Appends a header named `head[name.0..name.1]` (a token; `known` is what it
    /// names, `canonical` whether it is spelled as the spec spells it) whose value is
    /// `head[value.0..value.1]`, validated UTF-8 text without CR or LF. `head` is
    /// shorter than 4 GiB (the decoder's head limit).
    pub(crate) fn push(
        &mut self,
        head: &[u8],
        known: Option<KnownHeader>,
        canonical: bool,
        name: (usize, usize),
        value: (usize, usize),
    ) {
        debug_assert!(value.0 <= value.1 && value.1 <= head.len());
        if let Some(h) = known
            && canonical
            && let (Ok(start), Ok(end)) = (u16::try_from(value.0), u16::try_from(value.1))
            && self.push_inline(h, start, end)
        {
            return;
        }
        let field = match known {
            Some(name) if canonical => Field::Wire {
                name,
                start: value.0 as u32,
                end: value.1 as u32,
            },
            // Rare (another spelling, an extension header): copied.
            _ => Field::Owned(Box::new((
                HeaderName::from_wire_known(Bytes::copy_from_slice(&head[name.0..name.1]), known),
                HeaderValue(Bytes::copy_from_slice(&head[value.0..value.1])),
            ))),
        };
        if let List::Inline { len, fields } = &self.0 {
            let mut v = Vec::with_capacity(usize::from(*len) * 2 + 1);
            v.extend(fields[..usize::from(*len)].iter().map(|f| Field::Wire {
                name: f.name,
                start: u32::from(f.start),
                end: u32::from(f.end),
            }));
            self.0 = List::Vec(v);
        }
        match &mut self.0 {
            List::Vec(v) => v.push(field),
            List::Inline { .. } => unreachable!("made a vector above"),
        }
    }
}

/// Two lists are equal when they hold the same names (as spelled) and values in the
/// same order, however they were made.
impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .fields()
                .zip(other.fields())
                .all(|(a, b)| a.name == b.name && a.value == b.value)
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<'a>(&'a Headers);
        impl fmt::Debug for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.iter()).finish()
            }
        }
        f.debug_struct("Headers")
            .field("list", &List(self))
            .finish()
    }
}

/// RFC 4975 §9: `Byte-Range = "Byte-Range:" SP range-start "-" range-end "/" total`,
/// `range-end = 1*DIGIT / "*"`, `total = 1*DIGIT / "*"`. Positions count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// The position of the chunk's first byte in the message (≥ 1).
    pub start: u64,
    /// The position of its last byte, `None` for `*` (not known when the chunk was sent).
    pub end: Option<u64>,
    /// The message's total size, `None` for `*`.
    pub total: Option<u64>,
}

impl ByteRange {
    /// A range covering `len` bytes at `start` in a message of `total` bytes.
    pub fn new(start: u64, len: u64, total: Option<u64>) -> Self {
        // `start >= 1`, so an empty chunk gets `end = start - 1` (RFC 4975 §7.1.1).
        ByteRange {
            start,
            end: Some(start + len - 1),
            total,
        }
    }

    /// The number of bytes the range announces, when `end` is known.
    pub fn len(&self) -> Option<u64> {
        self.end.map(|e| (e + 1).saturating_sub(self.start))
    }

    /// An empty range (`end == start - 1`).
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Leading digits of `b`: 1 to 20 of them (u64::MAX has 20), the value not past
/// u64::MAX (an error, not a wrap), and what follows them.
#[inline(always)]
fn parse_digits(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v: u64 = 0;
    let mut n = 0;
    while let Some(&c) = b.get(n) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = match n {
            // Nineteen digits stay below 10^19 < u64::MAX.
            0..19 => v * 10 + u64::from(d),
            19 => v.checked_mul(10)?.checked_add(u64::from(d))?,
            _ => return None,
        };
        n += 1;
    }
    (n > 0).then(|| (v, &b[n..]))
}

/// `*` (→ `None`) or digits, and what follows.
#[inline(always)]
fn parse_star_or_digits(b: &[u8]) -> Option<(Option<u64>, &[u8])> {
    match b.strip_prefix(b"*") {
        Some(rest) => Some((None, rest)),
        None => parse_digits(b).map(|(v, rest)| (Some(v), rest)),
    }
}

impl ByteRange {
    /// Parses a Byte-Range value from its bytes; `None` when it is not one.
    #[inline]
    pub(crate) fn parse_bytes(b: &[u8]) -> Option<ByteRange> {
        let (start, rest) = parse_digits(b)?;
        let (end, rest) = parse_star_or_digits(rest.strip_prefix(b"-")?)?;
        let (total, rest) = parse_star_or_digits(rest.strip_prefix(b"/")?)?;
        if !rest.is_empty() {
            return None;
        }
        // RFC 4975 §7.1.1: "The first octet of the message has a position of one";
        // an empty chunk has range-end = range-start - 1.
        if start == 0 {
            return None;
        }
        if let Some(e) = end
            && (e < start - 1 || total.is_some_and(|t| e > t))
        {
            return None;
        }
        if total.is_some_and(|t| start > t.saturating_add(1)) {
            return None;
        }
        Some(ByteRange { start, end, total })
    }
}

impl FromStr for ByteRange {
    type Err = HeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ByteRange::parse_bytes(s.as_bytes())
            .ok_or_else(|| HeaderError::InvalidByteRange(s.chars().take(80).collect()))
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.start)?;
        match self.end {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("*")?,
        }
        match self.total {
            Some(t) => write!(f, "/{t}"),
            None => f.write_str("/*"),
        }
    }
}

/// The value of Success-Report (`yes`/`no`) or Failure-Report (`yes`/`no`/`partial`),
/// RFC 4975 §7.1.1 and §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportRequest {
    /// `yes`
    Yes,
    /// `no`
    No,
    /// `partial` (Failure-Report only): failures are reported, but no 200 responses.
    Partial,
}

impl ReportRequest {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReportRequest::Yes => "yes",
            ReportRequest::No => "no",
            ReportRequest::Partial => "partial",
        }
    }
}

impl FromStr for ReportRequest {
    type Err = HeaderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // ABNF quoted strings are case-insensitive.
        if s.eq_ignore_ascii_case("yes") {
            Ok(ReportRequest::Yes)
        } else if s.eq_ignore_ascii_case("no") {
            Ok(ReportRequest::No)
        } else if s.eq_ignore_ascii_case("partial") {
            Ok(ReportRequest::Partial)
        } else {
            Err(HeaderError::InvalidReportRequest(
                s.chars().take(80).collect(),
            ))
        }
    }
}

impl fmt::Display for ReportRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 4975 §9: `Status = "Status:" SP namespace SP status-code [SP text-reason]`,
/// `namespace = 3DIGIT` (000 is MSRP's own namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusHeader {
    /// The namespace (000 for MSRP status codes).
    pub namespace: u16,
    /// The status code.
    pub code: StatusCode,
    /// The optional reason text.
    pub reason: Option<String>,
}

impl StatusHeader {
    /// A Status in the MSRP namespace with the code's canonical reason.
    pub fn msrp(code: StatusCode) -> Self {
        StatusHeader {
            namespace: 0,
            code,
            reason: code.canonical_reason().map(str::to_owned),
        }
    }
}

fn three_digits(s: &str) -> Option<u16> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl FromStr for StatusHeader {
    type Err = HeaderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || HeaderError::InvalidStatus(s.chars().take(80).collect());
        let mut parts = s.splitn(3, ' ');
        let namespace = parts.next().and_then(three_digits).ok_or_else(bad)?;
        let code = parts.next().and_then(three_digits).ok_or_else(bad)?;
        let reason = parts.next().map(str::to_owned);
        Ok(StatusHeader {
            namespace,
            code: StatusCode(code),
            reason,
        })
    }
}

impl fmt::Display for StatusHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {}", self.namespace, self.code)?;
        if let Some(r) = &self.reason {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// Parses Expires, Min-Expires or Max-Expires (RFC 4976 §8: `1*DIGIT` seconds).
pub fn parse_seconds(s: &str) -> Result<u32, HeaderError> {
    parse_digits(s.as_bytes())
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(v, _)| u32::try_from(v).ok())
        .ok_or_else(|| HeaderError::InvalidNumber(s.chars().take(80).collect()))
}

/// HTTP authentication parameters as used by RFC 4976 §5.1 (WWW-Authenticate,
/// Authorization, Authentication-Info; RFC 2617 syntax):
/// `[scheme SP] name=value *("," name=value)` where values are tokens or quoted strings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthParams {
    /// The scheme (`Digest`), absent in Authentication-Info.
    pub scheme: Option<String>,
    /// Parameters in order, values unquoted.
    pub params: Vec<(String, String)>,
}

impl AuthParams {
    /// The value of a parameter (name compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Parses a challenge or credentials value.
    pub fn parse(s: &str, with_scheme: bool) -> Result<Self, HeaderError> {
        let bad = || HeaderError::InvalidAuthParams(s.chars().take(120).collect());
        let mut rest = s.trim();
        let mut out = AuthParams::default();
        if with_scheme {
            let (scheme, r) = rest.split_once(' ').ok_or_else(bad)?;
            if !is_token(scheme.as_bytes()) {
                return Err(bad());
            }
            out.scheme = Some(scheme.to_owned());
            rest = r.trim_start();
        }
        while !rest.is_empty() {
            let (name, r) = rest.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            if !is_token(name.as_bytes()) {
                return Err(bad());
            }
            let r = r.trim_start();
            let (value, r) = if let Some(q) = r.strip_prefix('"') {
                // quoted-string with quoted-pair escapes (RFC 2616 §2.2).
                let mut value = String::new();
                let mut chars = q.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next().ok_or_else(bad)?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &q[end.ok_or_else(bad)?..])
            } else {
                let end = r.find(',').unwrap_or(r.len());
                (r[..end].trim().to_owned(), &r[end..])
            };
            out.params.push((name.to_owned(), value));
            let r = r.trim_start();
            rest = match r.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if r.is_empty() => r,
                None => return Err(bad()),
            };
        }
        Ok(out)
    }
}

impl fmt::Display for AuthParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s} ")?;
        }
        for (i, (n, v)) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            // RFC 2617: qop (in credentials), nc and algorithm are tokens; the rest quoted.
            let token =
                matches!(
                    n.to_ascii_lowercase().as_str(),
                    "nc" | "algorithm" | "stale"
                ) || (n.eq_ignore_ascii_case("qop") && self.scheme.is_some() && !v.contains(','));
            if token && is_token(v.as_bytes()) {
                write!(f, "{n}={v}")?;
            } else {
                write!(
                    f,
                    "{n}=\"{}\"",
                    v.replace('\\', "\\\\").replace('"', "\\\"")
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_range_parses_and_prints() {
        let r: ByteRange = "1-25/25".parse().unwrap();
        assert_eq!(
            r,
            ByteRange {
                start: 1,
                end: Some(25),
                total: Some(25)
            }
        );
        assert_eq!(r.len(), Some(25));
        let r: ByteRange = "1-*/*".parse().unwrap();
        assert_eq!(r.to_string(), "1-*/*");
        assert_eq!("1-0/0".parse::<ByteRange>().unwrap().len(), Some(0));
        for bad in [
            "0-1/1",
            "3-1/5",
            "1-6/5",
            "18446744073709551616-*/*",
            "1-18446744073709551616/*",
            "1-2",
            "a-2/3",
            "",
            "1--2/3",
        ] {
            assert!(bad.parse::<ByteRange>().is_err(), "{bad}");
        }
        let max = format!("{}-*/*", u64::MAX);
        assert_eq!(max.parse::<ByteRange>().unwrap().start, u64::MAX);
    }

    #[test]
    fn status_header() {
        let s: StatusHeader = "000 200 OK".parse().unwrap();
        assert_eq!(s.code, StatusCode::OK);
        assert_eq!(s.to_string(), "000 200 OK");
        let s: StatusHeader = "000 413".parse().unwrap();
        assert_eq!(s.reason, None);
        assert!("00 200".parse::<StatusHeader>().is_err());
        assert!("000 2000".parse::<StatusHeader>().is_err());
    }

    #[test]
    fn digest_params() {
        let v = r#"Digest realm="127.0.0.1", nonce="awJV=", qop="auth""#;
        let p = AuthParams::parse(v, true).unwrap();
        assert_eq!(p.scheme.as_deref(), Some("Digest"));
        assert_eq!(p.get("nonce"), Some("awJV="));
        assert_eq!(p.get("QOP"), Some("auth"));
        let c = r#"Digest username="alice", realm="r", nonce="n", uri="msrp://127.0.0.1:2855;tcp", response="67dc", qop=auth, nc=00000001, cnonce="557696b1""#;
        let p = AuthParams::parse(c, true).unwrap();
        assert_eq!(p.get("nc"), Some("00000001"));
        assert_eq!(p.to_string(), c);
        assert!(AuthParams::parse("Digest realm=\"x", true).is_err());
    }
}

#[cfg(test)]
mod known_names_tests {
    use super::*;

    #[test]
    fn known_names_are_indexed_by_discriminant() {
        for &h in KnownHeader::ALL {
            let name = &KNOWN_NAMES[h as usize];
            assert_eq!(name.known_header(), Some(h));
            assert_eq!(name.as_str(), h.as_str());
        }
    }
}
