//! The MSRP chunk model (RFC 4975 §7, §9) and builders in the spirit of msrplib's
//! `make_chunk`.

use core::fmt;

use bytes::{Bytes, BytesMut};

use crate::decode::{DecodeError, DecodeErrorKind};
use crate::generated::headers::KnownHeader;
use crate::generated::methods::KnownMethod;
use crate::header::{
    AuthParams, ByteRange, HeaderError, HeaderValue, Headers, ReportRequest, StatusHeader,
};
use crate::ids;
use crate::status::StatusCode;
use crate::uri::{MsrpUri, format_path};

/// A transaction id (RFC 4975 §9 `transact-id = ident`,
/// `ident = ALPHANUM 3*31ident-char`, `ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="`).
///
/// At most 32 ASCII bytes, kept inline: cloning one never allocates.
#[derive(Clone)]
pub struct TransactionId {
    len: u8,
    /// The id is `bytes[..len]`; what follows is unspecified and never read (equality,
    /// hashing and ordering look at [`TransactionId::as_bytes`] only).
    bytes: [u8; MAX_TID],
}

/// RFC 4975 §9: `ident` is at most 32 characters.
pub(crate) const MAX_TID: usize = 32;

impl TransactionId {
    /// Validates and wraps an id.
    pub fn new(id: &str) -> Result<Self, HeaderError> {
        if is_transaction_id(id.as_bytes()) {
            Ok(Self::from_checked(id.as_bytes()))
        } else {
            Err(HeaderError::InvalidTransactionId(
                id.chars().take(64).collect(),
            ))
        }
    }

    /// A fresh random id with ≥ 64 bits of randomness (RFC 4975 §7.1).
    pub fn random() -> Self {
        Self::from_checked(ids::new_transaction_id().as_bytes())
    }

    /// From bytes checked with [`is_transaction_id`].
    pub(crate) fn from_checked(b: &[u8]) -> Self {
        debug_assert!(is_transaction_id(b));
        let mut bytes = [0; MAX_TID];
        bytes[..b.len()].copy_from_slice(b);
        TransactionId {
            len: b.len() as u8,
            bytes,
        }
    }

    /// From the first `len` bytes of `window`, checked with [`is_transaction_id`]
    /// (the decoder's fast path: one fixed-size copy instead of a variable one; the
    /// bytes past `len` come along and are never read).
    #[inline(always)]
    pub(crate) fn from_window(window: &[u8; MAX_TID], len: usize) -> Self {
        debug_assert!(is_transaction_id(&window[..len]));
        TransactionId {
            len: len as u8,
            bytes: *window,
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).expect("transaction ids are ASCII")
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for TransactionId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for TransactionId {}

impl core::hash::Hash for TransactionId {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for TransactionId {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TransactionId {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// RFC 4975 §9 `ident`.
pub(crate) fn is_transaction_id(b: &[u8]) -> bool {
    (4..=32).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'+' | b'%' | b'='))
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The continuation flag of the end-line (RFC 4975 §7.1: `continuation-flag = "+" / "$" / "#"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// `$`: the last chunk of the message.
    End,
    /// `+`: more chunks of this message follow.
    More,
    /// `#`: the sender aborted the message.
    Abort,
}

impl Flag {
    /// The flag byte.
    pub const fn as_byte(self) -> u8 {
        match self {
            Flag::End => b'$',
            Flag::More => b'+',
            Flag::Abort => b'#',
        }
    }

    /// Parses a flag byte.
    pub const fn from_byte(b: u8) -> Option<Flag> {
        match b {
            b'$' => Some(Flag::End),
            b'+' => Some(Flag::More),
            b'#' => Some(Flag::Abort),
            _ => None,
        }
    }
}

/// A request method: registered, or an extension method kept as written
/// (RFC 4975 §9 `method = 1*UPALPHA`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// A registered method.
    Known(KnownMethod),
    /// Any other method; a receiver that does not understand it answers 501 (RFC 4975 §12).
    Extension(String),
}

impl Method {
    /// `SEND`
    pub const SEND: Method = Method::Known(KnownMethod::Send);
    /// `REPORT`
    pub const REPORT: Method = Method::Known(KnownMethod::Report);
    /// `AUTH`
    pub const AUTH: Method = Method::Known(KnownMethod::Auth);

    /// Parses a method token.
    pub fn parse(token: &[u8]) -> Option<Method> {
        if let Some(k) = KnownMethod::from_wire(token) {
            return Some(Method::Known(k));
        }
        if !token.is_empty() && token.iter().all(u8::is_ascii_uppercase) {
            // Checked ASCII above.
            return Some(Method::Extension(
                String::from_utf8_lossy(token).into_owned(),
            ));
        }
        None
    }

    /// The method as written.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Known(k) => k.as_str(),
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The start line: a request with its method, or a response with its status.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StartLine {
    /// `MSRP tid METHOD`
    Request(Method),
    /// `MSRP tid CODE [comment]`
    Response {
        /// The status code.
        status: StatusCode,
        /// The optional comment (RFC 4975 §9 `comment = utf8text`).
        comment: Option<String>,
    },
}

/// One MSRP frame: a request chunk or a response.
///
/// The headers and the body are reached through accessors: a decoded chunk holds its
/// frame's bytes once, the body being a range of them (no second reference count).
#[derive(Clone)]
pub struct Chunk {
    /// The transaction id of the start line and end-line.
    pub transaction_id: TransactionId,
    /// Request method or response status.
    pub start: StartLine,
    /// Every header in wire order, the MIME headers of the body included.
    headers: Headers,
    body: Body,
    /// The continuation flag.
    pub flag: Flag,
    /// Set only on the "virtual chunks" the decoder makes of a body larger than
    /// [`crate::Limits::max_body_in_memory`] (msrplib's `read_chunk(size)`): segments are
    /// numbered from 1, carry a Byte-Range adjusted to the bytes they hold and flag `+`,
    /// except the last, which carries the real flag. Never encoded.
    pub segment: Option<u32>,
}

/// Where a chunk's body is.
#[derive(Clone)]
enum Body {
    /// No content-stuff (RFC 4975 §9).
    None,
    /// Bytes of its own (possibly empty).
    Bytes(Bytes),
    /// `headers.block()[start..end]`: a decoded frame's body, sharing the frame's bytes
    /// with the headers.
    InFrame { start: u32, end: u32 },
}

impl Chunk {
    /// A chunk from its parts (not a segment).
    pub fn new(
        transaction_id: TransactionId,
        start: StartLine,
        headers: Headers,
        body: Option<Bytes>,
        flag: Flag,
    ) -> Chunk {
        Chunk {
            transaction_id,
            start,
            headers,
            body: body.map_or(Body::None, Body::Bytes),
            flag,
            segment: None,
        }
    }

    /// A decoded frame whose body is `headers.block()[body.0..body.1]` (`None`: no
    /// content-stuff).
    #[inline(always)]
    pub(crate) fn decoded(
        transaction_id: TransactionId,
        start: StartLine,
        headers: Headers,
        body: Option<(usize, usize)>,
        flag: Flag,
    ) -> Chunk {
        let body = match body {
            None => Body::None,
            Some(body) => {
                debug_assert!(body.0 <= body.1 && body.1 <= headers.block().len());
                match (u32::try_from(body.0), u32::try_from(body.1)) {
                    (Ok(start), Ok(end)) => Body::InFrame { start, end },
                    _ => Body::Bytes(headers.block().slice(body.0..body.1)),
                }
            }
        };
        Chunk {
            transaction_id,
            start,
            headers,
            body,
            flag,
            segment: None,
        }
    }

    /// Every header in wire order, the MIME headers of the body included.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change them.
    pub fn headers_mut(&mut self) -> &mut Headers {
        // The body may share the headers' bytes: give it its own handle first, so
        // whatever is done to the headers leaves it intact.
        if let Body::InFrame { start, end } = self.body {
            self.body = Body::Bytes(self.headers.block().slice(start as usize..end as usize));
        }
        &mut self.headers
    }

    /// The body; `Some` when the frame has content-stuff (RFC 4975 §9), even if empty.
    pub fn body(&self) -> Option<&[u8]> {
        match &self.body {
            Body::None => None,
            Body::Bytes(b) => Some(b),
            Body::InFrame { start, end } => {
                Some(&self.headers.block()[*start as usize..*end as usize])
            }
        }
    }

    /// The body as shared bytes (a zero-copy slice of the frame for decoded chunks).
    pub fn body_bytes(&self) -> Option<Bytes> {
        match &self.body {
            Body::None => None,
            Body::Bytes(b) => Some(b.clone()),
            Body::InFrame { start, end } => {
                Some(self.headers.block().slice(*start as usize..*end as usize))
            }
        }
    }

    /// Replaces the body (`None`: no content-stuff).
    pub fn set_body(&mut self, body: Option<Bytes>) {
        self.body = body.map_or(Body::None, Body::Bytes);
    }

    /// Takes the body out, leaving none.
    pub fn take_body(&mut self) -> Option<Bytes> {
        let body = self.body_bytes();
        self.body = Body::None;
        body
    }

    /// The body's length; `None` without content-stuff.
    pub fn body_len(&self) -> Option<usize> {
        match &self.body {
            Body::None => None,
            Body::Bytes(b) => Some(b.len()),
            Body::InFrame { start, end } => Some((end - start) as usize),
        }
    }
}

/// Two chunks are equal when every part is, however their bytes are held.
impl PartialEq for Chunk {
    fn eq(&self, other: &Self) -> bool {
        self.transaction_id == other.transaction_id
            && self.start == other.start
            && self.headers == other.headers
            && self.body() == other.body()
            && self.flag == other.flag
            && self.segment == other.segment
    }
}

impl Eq for Chunk {}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("transaction_id", &self.transaction_id)
            .field("start", &self.start)
            .field("headers", &self.headers)
            .field("body", &self.body_bytes())
            .field("flag", &self.flag)
            .field("segment", &self.segment)
            .finish()
    }
}

impl Chunk {
    /// Is this a request?
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request(_))
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request(m) => Some(m),
            StartLine::Response { .. } => None,
        }
    }

    /// The status of a response.
    pub fn status_code(&self) -> Option<StatusCode> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request(_) => None,
        }
    }

    /// The comment of a response.
    pub fn comment(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { comment, .. } => comment.as_deref(),
            StartLine::Request(_) => None,
        }
    }

    /// To-Path (RFC 4975 §7.1: present in every request and response).
    pub fn to_path(&self) -> Result<Vec<MsrpUri>, HeaderError> {
        self.headers.path(KnownHeader::ToPath)
    }

    /// From-Path (RFC 4975 §7.1).
    pub fn from_path(&self) -> Result<Vec<MsrpUri>, HeaderError> {
        self.headers.path(KnownHeader::FromPath)
    }

    /// Use-Path of a 200 response to AUTH (RFC 4976 §5.1).
    pub fn use_path(&self) -> Result<Vec<MsrpUri>, HeaderError> {
        self.headers.path(KnownHeader::UsePath)
    }

    /// Message-ID.
    pub fn message_id(&self) -> Option<&str> {
        self.headers.get(KnownHeader::MessageId)
    }

    /// Byte-Range; `None` when absent (RFC 4975 §7.1.1: then the chunk is the whole
    /// message, as if `1-*/*`... its length being the body's).
    pub fn byte_range(&self) -> Result<Option<ByteRange>, HeaderError> {
        self.headers
            .get(KnownHeader::ByteRange)
            .map(str::parse)
            .transpose()
    }

    /// Success-Report; RFC 4975 §7.1.1: absent means `no`.
    pub fn success_report(&self) -> Result<ReportRequest, HeaderError> {
        self.headers
            .get(KnownHeader::SuccessReport)
            .map_or(Ok(ReportRequest::No), str::parse)
    }

    /// Failure-Report; RFC 4975 §7.1.1: absent means `yes`.
    pub fn failure_report(&self) -> Result<ReportRequest, HeaderError> {
        self.headers
            .get(KnownHeader::FailureReport)
            .map_or(Ok(ReportRequest::Yes), str::parse)
    }

    /// The Status header of a REPORT.
    pub fn status_header(&self) -> Result<Option<StatusHeader>, HeaderError> {
        self.headers
            .get(KnownHeader::Status)
            .map(str::parse)
            .transpose()
    }

    /// Content-Type.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get(KnownHeader::ContentType)
    }

    /// Expires (RFC 4976).
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.headers
            .get(KnownHeader::Expires)
            .map(crate::header::parse_seconds)
            .transpose()
    }

    /// Min-Expires of a 423 (RFC 4976 §5.1).
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.headers
            .get(KnownHeader::MinExpires)
            .map(crate::header::parse_seconds)
            .transpose()
    }

    /// Max-Expires of a 423 (RFC 4976 §5.1).
    pub fn max_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.headers
            .get(KnownHeader::MaxExpires)
            .map(crate::header::parse_seconds)
            .transpose()
    }

    /// The Digest challenge of a 401 (RFC 4976 §5.1, WWW-Authenticate).
    pub fn www_authenticate(&self) -> Result<Option<AuthParams>, HeaderError> {
        self.headers
            .get(KnownHeader::WwwAuthenticate)
            .map(|v| AuthParams::parse(v, true))
            .transpose()
    }

    /// The Digest credentials of an AUTH (RFC 4976 §5.1, Authorization).
    pub fn authorization(&self) -> Result<Option<AuthParams>, HeaderError> {
        self.headers
            .get(KnownHeader::Authorization)
            .map(|v| AuthParams::parse(v, true))
            .transpose()
    }

    /// Authentication-Info of a 200 to AUTH (RFC 4976 §5.1; no scheme).
    pub fn authentication_info(&self) -> Result<Option<AuthParams>, HeaderError> {
        self.headers
            .get(KnownHeader::AuthenticationInfo)
            .map(|v| AuthParams::parse(v, false))
            .transpose()
    }

    /// Content-ID (RFC 2045), an Other-Mime-header of RFC 4975 §9.
    pub fn content_id(&self) -> Option<&str> {
        self.headers.get(KnownHeader::ContentId)
    }

    /// Content-Description (RFC 2045).
    pub fn content_description(&self) -> Option<&str> {
        self.headers.get(KnownHeader::ContentDescription)
    }

    /// Content-Disposition (RFC 2183), e.g. `attachment; filename="a.txt"` or `render`.
    pub fn content_disposition(&self) -> Option<&str> {
        self.headers.get(KnownHeader::ContentDisposition)
    }

    /// Encodes the chunk into `dst` (RFC 4975 §9 ABNF, byte-exact).
    pub fn encode(&self, dst: &mut BytesMut) {
        crate::encode::encode(self, dst)
    }

    /// The encoded frame.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut b);
        b.freeze()
    }

    /// The exact size of the encoded frame.
    pub fn encoded_len(&self) -> usize {
        crate::encode::encoded_len(self)
    }

    /// Checks what RFC 4975 requires of a request beyond framing, so a receiver can
    /// answer with the right status (the error's [`DecodeError::status`]):
    /// an unknown method → 501 (§12), a SEND or REPORT without Message-ID → 400 (§7.1.1,
    /// §7.1.2), a REPORT without Status → 400 (§7.1.2), unparsable paths → 400.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let err = |kind| {
            Err(DecodeError::new(
                kind,
                Some(self.transaction_id.clone()),
                false,
            ))
        };
        if let Err(e) = self.to_path() {
            return err(DecodeErrorKind::BadHeader(e));
        }
        if let Err(e) = self.from_path() {
            return err(DecodeErrorKind::BadHeader(e));
        }
        match &self.start {
            StartLine::Request(Method::Extension(m)) => {
                err(DecodeErrorKind::UnknownMethod(m.clone()))
            }
            StartLine::Request(Method::Known(KnownMethod::Send)) => {
                // RFC 4975 §7.1.1: "The SEND request MUST contain a Message-ID header field."
                if self.message_id().is_none() {
                    return err(DecodeErrorKind::MissingHeader(KnownHeader::MessageId));
                }
                if let Err(e) = self.byte_range() {
                    return err(DecodeErrorKind::BadHeader(e));
                }
                Ok(())
            }
            StartLine::Request(Method::Known(KnownMethod::Report)) => {
                // RFC 4975 §7.1.2: REPORT requests MUST contain Message-ID, Byte-Range
                // (the range being reported) and Status.
                if self.message_id().is_none() {
                    return err(DecodeErrorKind::MissingHeader(KnownHeader::MessageId));
                }
                match self.status_header() {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => err(DecodeErrorKind::MissingHeader(KnownHeader::Status)),
                    Err(e) => err(DecodeErrorKind::BadHeader(e)),
                }
            }
            _ => Ok(()),
        }
    }

    /// The response to this request, with paths per RFC 4975 §7.2: the To-Path is the
    /// first URI of the request's From-Path, and the From-Path is the responder's own
    /// URI, the first of the request's To-Path.
    /// `None` for responses and for REPORTs (§7.1.2: REPORT requests are never answered).
    pub fn response(&self, status: StatusCode, comment: Option<&str>) -> Option<Chunk> {
        let method = self.method()?;
        if *method == Method::REPORT {
            return None;
        }
        let first = |h: KnownHeader| -> Option<String> {
            self.headers
                .get(h)
                .and_then(|v| v.split(' ').find(|s| !s.is_empty()))
                .map(str::to_owned)
        };
        let to = first(KnownHeader::FromPath)?;
        let from = first(KnownHeader::ToPath)?;
        let mut headers = Headers::with_capacity(2);
        headers.push(KnownHeader::ToPath, HeaderValue::new(&to).ok()?);
        headers.push(KnownHeader::FromPath, HeaderValue::new(&from).ok()?);
        let comment = comment.map(|c| c.replace(['\r', '\n'], " "));
        Some(Chunk {
            transaction_id: self.transaction_id.clone(),
            start: StartLine::Response { status, comment },
            headers,
            body: Body::None,
            flag: Flag::End,
            segment: None,
        })
    }

    /// A REPORT about this SEND chunk (RFC 4975 §7.1.2): To-Path is the SEND's From-Path,
    /// From-Path the reporter's `local` URI (the first To-Path URI when `None`), with the
    /// SEND's Message-ID, the Byte-Range being reported and a Status in namespace 000.
    pub fn report(
        &self,
        status: StatusCode,
        reason: Option<&str>,
        range: ByteRange,
    ) -> Option<Chunk> {
        if self.method()? != &Method::SEND {
            return None;
        }
        let to = self.headers.get(KnownHeader::FromPath)?.to_owned();
        let from = self
            .headers
            .get(KnownHeader::ToPath)?
            .split(' ')
            .find(|s| !s.is_empty())?
            .to_owned();
        let status = StatusHeader {
            namespace: 0,
            code: status,
            reason: reason
                .map(str::to_owned)
                .or_else(|| status.canonical_reason().map(str::to_owned)),
        };
        ChunkBuilder::request(Method::REPORT)
            .raw_header(KnownHeader::ToPath, &to)
            .raw_header(KnownHeader::FromPath, &from)
            .message_id(self.message_id()?)
            .byte_range(range)
            .header(KnownHeader::Status, &status.to_string())
            .build()
            .ok()
    }
}

/// Builds chunks the way msrplib's `make_chunk` does: paths, a fresh transaction id and
/// Message-ID unless given, Byte-Range from start/length/total, and flag `$` unless the
/// chunk is a partial SEND.
#[derive(Debug, Clone)]
pub struct ChunkBuilder {
    transaction_id: Option<TransactionId>,
    start: StartLine,
    headers: Vec<(KnownHeaderOrName, String)>,
    body: Option<(String, Bytes)>,
    flag: Option<Flag>,
    error: Option<HeaderError>,
}

#[derive(Debug, Clone)]
enum KnownHeaderOrName {
    Known(KnownHeader),
    Name(crate::header::HeaderName),
}

impl ChunkBuilder {
    /// A request with `method`.
    pub fn request(method: Method) -> Self {
        ChunkBuilder {
            transaction_id: None,
            start: StartLine::Request(method),
            headers: Vec::new(),
            body: None,
            flag: None,
            error: None,
        }
    }

    /// A SEND from `from_path` to `to_path` (msrplib's `make_chunk` with method SEND).
    pub fn send(to_path: &[MsrpUri], from_path: &[MsrpUri]) -> Self {
        Self::request(Method::SEND).paths(to_path, from_path)
    }

    /// A response (rarely needed directly: see [`Chunk::response`]).
    pub fn response(status: StatusCode, comment: Option<&str>) -> Self {
        let mut b = Self::request(Method::SEND);
        b.start = StartLine::Response {
            status,
            comment: comment.map(str::to_owned),
        };
        b
    }

    /// Sets To-Path and From-Path.
    pub fn paths(self, to_path: &[MsrpUri], from_path: &[MsrpUri]) -> Self {
        self.raw_header(KnownHeader::ToPath, &format_path(to_path))
            .raw_header(KnownHeader::FromPath, &format_path(from_path))
    }

    /// Uses this transaction id instead of a random one.
    pub fn transaction_id(mut self, tid: TransactionId) -> Self {
        self.transaction_id = Some(tid);
        self
    }

    /// Sets the Message-ID (a random one is generated for SEND otherwise).
    pub fn message_id(self, id: &str) -> Self {
        self.header(KnownHeader::MessageId, id)
    }

    /// Sets the Byte-Range.
    pub fn byte_range(self, r: ByteRange) -> Self {
        self.header(KnownHeader::ByteRange, &r.to_string())
    }

    /// Sets the Success-Report and Failure-Report headers.
    pub fn reports(self, success: ReportRequest, failure: ReportRequest) -> Self {
        self.header(KnownHeader::SuccessReport, success.as_str())
            .header(KnownHeader::FailureReport, failure.as_str())
    }

    /// Sets a known header (replacing an earlier value given to this builder).
    pub fn header(mut self, h: KnownHeader, value: &str) -> Self {
        self.headers
            .retain(|(k, _)| !matches!(k, KnownHeaderOrName::Known(x) if *x == h));
        self.headers
            .push((KnownHeaderOrName::Known(h), value.to_owned()));
        self
    }

    fn raw_header(self, h: KnownHeader, value: &str) -> Self {
        self.header(h, value)
    }

    /// Adds an extension header.
    pub fn extension_header(mut self, name: &str, value: &str) -> Self {
        match crate::header::HeaderName::new(name) {
            Ok(n) => self
                .headers
                .push((KnownHeaderOrName::Name(n), value.to_owned())),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Sets the body and its Content-Type (written last, as RFC 4975 §9 orders content-stuff).
    pub fn data(mut self, content_type: &str, data: impl Into<Bytes>) -> Self {
        self.body = Some((content_type.to_owned(), data.into()));
        self
    }

    /// Sets the continuation flag (default `$`).
    pub fn flag(mut self, flag: Flag) -> Self {
        self.flag = Some(flag);
        self
    }

    /// Builds the chunk. A SEND gets a random Message-ID if none was set, and a
    /// Byte-Range covering the whole body (`1-len/len`) if none was set.
    pub fn build(self) -> Result<Chunk, HeaderError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let is_send = self.start == StartLine::Request(Method::SEND);
        let has = |h: KnownHeader| {
            self.headers
                .iter()
                .any(|(k, _)| matches!(k, KnownHeaderOrName::Known(x) if *x == h))
        };
        let mut headers = Headers::with_capacity(self.headers.len() + 3);
        // RFC 4975 §7.1: To-Path first, then From-Path; the rest in the order given.
        for want in [KnownHeader::ToPath, KnownHeader::FromPath] {
            if !has(want) {
                return Err(HeaderError::Missing(want));
            }
        }
        let mut ordered: Vec<&(KnownHeaderOrName, String)> = Vec::with_capacity(self.headers.len());
        for want in [KnownHeader::ToPath, KnownHeader::FromPath] {
            ordered.extend(
                self.headers
                    .iter()
                    .filter(|(k, _)| matches!(k, KnownHeaderOrName::Known(x) if *x == want)),
            );
        }
        let mut message_id = None;
        if is_send && !has(KnownHeader::MessageId) {
            message_id = Some(ids::new_message_id());
        }
        for (k, v) in &ordered {
            let KnownHeaderOrName::Known(h) = k else {
                unreachable!()
            };
            headers.append(*h, v)?;
        }
        if let Some(id) = &message_id {
            headers.append(KnownHeader::MessageId, id)?;
        }
        if is_send && !has(KnownHeader::ByteRange) {
            let len = self.body.as_ref().map_or(0, |(_, b)| b.len() as u64);
            headers.append(
                KnownHeader::ByteRange,
                &ByteRange::new(1, len, Some(len)).to_string(),
            )?;
        }
        for (k, v) in &self.headers {
            match k {
                KnownHeaderOrName::Known(KnownHeader::ToPath | KnownHeader::FromPath) => {}
                KnownHeaderOrName::Known(h) => headers.append(*h, v)?,
                KnownHeaderOrName::Name(n) => headers.push(n.clone(), HeaderValue::new(v)?),
            }
        }
        let body = match self.body {
            Some((ct, data)) => {
                headers.remove(KnownHeader::ContentType);
                headers.append(KnownHeader::ContentType, &ct)?;
                Some(data)
            }
            None => None,
        };
        // RFC 4975 §7.1: "the sender MUST ensure that the end-line does not appear in
        // the body": pick another random id on a collision; refuse a given one.
        let transaction_id = match self.transaction_id {
            Some(tid) => {
                if body
                    .as_deref()
                    .is_some_and(|b| body_contains_end_line(tid.as_bytes(), b))
                {
                    return Err(HeaderError::InvalidTransactionId(format!(
                        "{tid} appears as an end-line in the body"
                    )));
                }
                tid
            }
            None => loop {
                let tid = TransactionId::random();
                if !body
                    .as_deref()
                    .is_some_and(|b| body_contains_end_line(tid.as_bytes(), b))
                {
                    break tid;
                }
            },
        };
        Ok(Chunk::new(
            transaction_id,
            self.start,
            headers,
            body,
            self.flag.unwrap_or(Flag::End),
        ))
    }
}

/// Whether `body`, followed by the CRLF that ends the data, contains an end-line of
/// `tid` (`CRLF "-------" tid flag CRLF`, RFC 4975 §7.1) that would end the chunk early.
pub fn body_contains_end_line(tid: &[u8], body: &[u8]) -> bool {
    let mut needle = Vec::with_capacity(9 + tid.len());
    needle.extend_from_slice(b"\r\n-------");
    needle.extend_from_slice(tid);
    let finder = memchr::memmem::Finder::new(&needle);
    // Look at the body plus the CRLF the encoder writes after it.
    let mut pos = 0;
    while let Some(off) = finder.find(&body[pos..]) {
        let after = pos + off + needle.len();
        let next = |i: usize| -> Option<u8> {
            match (after + i).cmp(&body.len()) {
                core::cmp::Ordering::Less => Some(body[after + i]),
                core::cmp::Ordering::Equal => Some(b'\r'),
                core::cmp::Ordering::Greater => (after + i == body.len() + 1).then_some(b'\n'),
            }
        };
        if next(0).and_then(Flag::from_byte).is_some()
            && next(1) == Some(b'\r')
            && next(2) == Some(b'\n')
        {
            return true;
        }
        pos += off + 1;
    }
    // Conservative: a receiver that counts the blank line's CRLF as the end-line's would
    // see an end-line right at the start of the body too.
    body.starts_with(b"-------")
        && body[7..].starts_with(tid)
        && body
            .get(7 + tid.len())
            .copied()
            .and_then(Flag::from_byte)
            .is_some()
        && {
            let rest = &body[8 + tid.len()..];
            rest.starts_with(b"\r\n") || rest.is_empty() || rest == b"\r"
        }
}
