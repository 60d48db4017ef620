//! Common Presence and Instant Messaging message format, `message/cpim` (RFC 3862).
//!
//! A CPIM message, as carried in the body of an MSRP SEND whose Content-Type is
//! `message/cpim`, is three parts (RFC 3862 §2):
//!
//! ```text
//! From: MR SANDERS <im:piglet@100akerwood.com>      <- message headers (§3, §4)
//! To: Depressed Donkey <im:eeyore@100akerwood.com>
//! DateTime: 2000-12-13T13:40:00-08:00
//!                                                    <- blank line
//! Content-type: text/plain                           <- encapsulated MIME headers
//!                                                    <- blank line
//! Here is the text of my message.                    <- body
//! ```
//!
//! [`CpimMessage::parse`] reads all three, [`CpimMessage::to_bytes`] writes them back in a
//! canonical form (CRLF line ends, known headers first) such that parse → encode → parse
//! gives the same value. Unknown and prefixed extension headers (`MyFeatures.Option`,
//! `imdn.Message-ID`) are kept in order. Parsing is bounded by [`MAX_HEADER_BYTES`] and
//! [`MAX_HEADERS`]; the body is never copied when the input is already a [`Bytes`].

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

/// Most bytes the two header blocks (message headers and MIME headers) may take together.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most header lines the two header blocks may hold together.
pub const MAX_HEADERS: usize = 256;

/// Why a header value or one of its parts is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A header name is empty or holds characters outside the allowed set.
    #[error("invalid header name")]
    BadName,
    /// A value holds a control character (other than HTAB) or a line break.
    #[error("control character in header value")]
    BadValue,
    /// A From, To or cc value is not `[Formal-name] "<" URI ">"`.
    #[error("invalid name-address")]
    BadNameAddr,
    /// A quoted string is unterminated or holds an invalid escape.
    #[error("invalid quoted string")]
    BadQuotedString,
    /// A DateTime value is not an RFC 3339 date-time.
    #[error("invalid RFC 3339 date-time")]
    BadDateTime,
    /// A header parameter is malformed, or not allowed on this header.
    #[error("invalid or unexpected header parameter")]
    BadParameter,
    /// A `lang` parameter is not a language tag.
    #[error("invalid language tag")]
    BadLanguageTag,
    /// An NS value is not `[Name-prefix] "<" URI ">"`.
    #[error("invalid NS value")]
    BadNamespace,
    /// A Require value is not a comma-separated list of header names.
    #[error("invalid Require value")]
    BadRequire,
    /// A header that may appear only once appeared again.
    #[error("duplicate {0} header")]
    Duplicate(&'static str),
}

/// Why bytes are not a CPIM message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpimError {
    /// The input ended before the blank line that closes a header block.
    #[error("header block not terminated by an empty line")]
    Unterminated,
    /// The header blocks are larger than [`MAX_HEADER_BYTES`].
    #[error("header blocks exceed {max} bytes")]
    HeadersTooLarge {
        /// The bound that was exceeded.
        max: usize,
    },
    /// The header blocks hold more than [`MAX_HEADERS`] lines.
    #[error("more than {max} header lines")]
    TooManyHeaders {
        /// The bound that was exceeded.
        max: usize,
    },
    /// A header line is not UTF-8.
    #[error("header line {line} is not UTF-8")]
    NotUtf8 {
        /// 1-based line number.
        line: usize,
    },
    /// A header line has no `:` or starts with white space where no header precedes it.
    #[error("malformed header line {line}")]
    Malformed {
        /// 1-based line number.
        line: usize,
    },
    /// A header line is well-formed but its name or value is invalid.
    #[error("header line {line}: {kind}")]
    Field {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        #[source]
        kind: FieldError,
    },
}

// ---------------------------------------------------------------------------------------
// Character classes (RFC 3862 §3.6, collected message header syntax).

// NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT
fn is_namechar(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c as u32, 0x21 | 0x23..=0x27 | 0x2a..=0x2b | 0x2d | 0x5e..=0x60 | 0x7c | 0x7e)
}

// TOKENCHAR = NAMECHAR / "."
fn is_tokenchar(c: char) -> bool {
    is_namechar(c) || c == '.'
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_namechar)
}

// Header-name = [ Name-prefix "." ] Name
fn is_header_name(s: &str) -> bool {
    match s.split_once('.') {
        Some((prefix, name)) => is_name(prefix) && is_name(name),
        None => is_name(s),
    }
}

// HEADERCHAR = UCS-no-CTL / Escape: no control characters in a value. HTAB is tolerated
// because MIME headers (RFC 5322 §2.2) allow it.
fn check_value(s: &str) -> Result<(), FieldError> {
    if s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(FieldError::BadValue);
    }
    Ok(())
}

// A value given to a constructor: as [`check_value`], and no leading white space (the
// parser drops it, so it could not survive a round trip).
fn check_new_value(s: &str) -> Result<(), FieldError> {
    if s.starts_with([' ', '\t']) {
        return Err(FieldError::BadValue);
    }
    check_value(s)
}

// RFC 5322 §3.6.8: field-name = 1*ftext, ftext = %d33-57 / %d59-126
fn is_mime_field_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

// Language-tag (RFC 3066 / RFC 5646): 1*8ALPHA *("-" 1*8alphanum); checked loosely as
// dash-separated alphanumeric subtags of 1 to 8 characters.
fn is_language_tag(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').enumerate().all(|(i, sub)| {
            (1..=8).contains(&sub.len())
                && if i == 0 {
                    sub.bytes().all(|b| b.is_ascii_alphabetic())
                } else {
                    sub.bytes().all(|b| b.is_ascii_alphanumeric())
                }
        })
}

// ---------------------------------------------------------------------------------------
// Quoted strings (RFC 3862 §2.3 escape mechanism, §3.6 syntax:
//   String = DQUOTE *( Str-char / Escape ) DQUOTE
//   Escape = "\" ( "u" 4(HEXDIG) / "b" / "t" / "n" / "f" / "r" / DQUOTE / "'" / "\" )).

/// Reads a quoted string at the start of `s`; returns the decoded text and what follows.
fn read_quoted(s: &str) -> Result<(String, &str), FieldError> {
    let mut chars = s.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err(FieldError::BadQuotedString);
    }
    let mut out = String::new();
    let mut pending_high: Option<u16> = None;
    while let Some((i, c)) = chars.next() {
        let decoded = match c {
            '"' => {
                if pending_high.is_some() {
                    return Err(FieldError::BadQuotedString);
                }
                return Ok((out, &s[i + 1..]));
            }
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('u') => {
                    let mut v: u16 = 0;
                    for _ in 0..4 {
                        let d = chars
                            .next()
                            .and_then(|(_, c)| c.to_digit(16))
                            .ok_or(FieldError::BadQuotedString)?;
                        v = v * 16 + d as u16;
                    }
                    match (pending_high.take(), v) {
                        (None, 0xD800..=0xDBFF) => {
                            pending_high = Some(v);
                            continue;
                        }
                        (Some(hi), 0xDC00..=0xDFFF) => {
                            let cp = 0x10000
                                + ((u32::from(hi) - 0xD800) << 10)
                                + (u32::from(v) - 0xDC00);
                            char::from_u32(cp).ok_or(FieldError::BadQuotedString)?
                        }
                        (None, _) => {
                            char::from_u32(u32::from(v)).ok_or(FieldError::BadQuotedString)?
                        }
                        (Some(_), _) => return Err(FieldError::BadQuotedString),
                    }
                }
                Some('b') => '\u{8}',
                Some('t') => '\t',
                Some('n') => '\n',
                Some('f') => '\u{c}',
                Some('r') => '\r',
                Some('"') => '"',
                Some('\'') => '\'',
                Some('\\') => '\\',
                _ => return Err(FieldError::BadQuotedString),
            },
            c if c.is_control() => return Err(FieldError::BadQuotedString),
            c => c,
        };
        if pending_high.is_some() {
            return Err(FieldError::BadQuotedString);
        }
        out.push(decoded);
    }
    Err(FieldError::BadQuotedString)
}

fn write_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------
// Values.

/// A From, To or cc value: an optional display name and a URI (RFC 3862 §4.1-§4.3, §3.6:
/// `[ Formal-name ] "<" URI ">"`, `Formal-name = 1*( Token SP ) / String`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameAddr {
    display_name: Option<String>,
    uri: String,
}

fn check_uri(uri: &str) -> bool {
    !uri.is_empty()
        && !uri
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
}

impl NameAddr {
    /// A name-address with no display name. The URI must be non-empty and free of white
    /// space, control characters and angle brackets.
    pub fn new(uri: &str) -> Result<Self, FieldError> {
        if !check_uri(uri) {
            return Err(FieldError::BadNameAddr);
        }
        Ok(NameAddr {
            display_name: None,
            uri: uri.to_owned(),
        })
    }

    /// This name-address with a display name (any text: it is quoted and escaped on
    /// output when it is not a plain sequence of tokens).
    pub fn with_display_name(mut self, name: &str) -> Self {
        self.display_name = Some(name.to_owned());
        self
    }

    /// The display name, unescaped.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The URI between the angle brackets.
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

fn is_token_phrase(s: &str) -> bool {
    !s.is_empty()
        && s.split(' ')
            .all(|t| !t.is_empty() && t.chars().all(is_tokenchar))
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            if is_token_phrase(name) {
                write!(f, "{name} ")?;
            } else {
                let mut q = String::new();
                write_quoted(&mut q, name);
                write!(f, "{q} ")?;
            }
        }
        write!(f, "<{}>", self.uri)
    }
}

impl FromStr for NameAddr {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, FieldError> {
        let s = s.trim_matches([' ', '\t']);
        let (display_name, rest) = if s.starts_with('"') {
            let (name, rest) = read_quoted(s)?;
            (Some(name), rest.trim_start_matches([' ', '\t']))
        } else {
            let lt = s.find('<').ok_or(FieldError::BadNameAddr)?;
            let name = s[..lt].trim_end_matches([' ', '\t']);
            // Formal-name = 1*( Token SP ): tokens are accepted leniently as any text
            // without quotes (peers send UTF-8 names unquoted).
            if name.contains('"') {
                return Err(FieldError::BadNameAddr);
            }
            check_value(name)?;
            ((!name.is_empty()).then(|| name.to_owned()), &s[lt..])
        };
        let inner = rest
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .ok_or(FieldError::BadNameAddr)?;
        let mut na = NameAddr::new(inner)?;
        na.display_name = display_name;
        Ok(na)
    }
}

/// A DateTime value: an RFC 3339 `date-time`, validated and kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime(String);

fn digits(s: &[u8], n: usize) -> Option<u32> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

fn is_leap(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

impl DateTime {
    /// Validates an RFC 3339 §5.6 `date-time`:
    /// `full-date ("T" / "t") partial-time time-offset`, with the §5.7 range checks
    /// (month 1-12, day within the month, hour 0-23, minute 0-59, second 0-60).
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let b = s.as_bytes();
        let bad = FieldError::BadDateTime;
        let year = digits(b, 4).ok_or(bad.clone())?;
        if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return Err(bad);
        }
        let month = digits(&b[5..], 2).ok_or(bad.clone())?;
        let day = digits(b.get(8..).ok_or(bad.clone())?, 2).ok_or(bad.clone())?;
        let max_day = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if is_leap(year) => 29,
            2 => 28,
            _ => return Err(bad),
        };
        if day == 0 || day > max_day {
            return Err(bad);
        }
        if !matches!(b.get(10), Some(b'T' | b't')) {
            return Err(bad);
        }
        let t = &b[11..];
        let hour = digits(t, 2).ok_or(bad.clone())?;
        let minute = digits(t.get(3..).ok_or(bad.clone())?, 2).ok_or(bad.clone())?;
        let second = digits(t.get(6..).ok_or(bad.clone())?, 2).ok_or(bad.clone())?;
        if t.get(2) != Some(&b':') || t.get(5) != Some(&b':') {
            return Err(bad);
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(bad);
        }
        let mut rest = &t[8..];
        // time-secfrac = "." 1*DIGIT
        if let Some(frac) = rest.strip_prefix(b".") {
            let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(bad);
            }
            rest = &frac[n..];
        }
        // time-offset = "Z" / time-numoffset; time-numoffset = ("+" / "-") time-hour ":" time-minute
        match rest {
            [b'Z' | b'z'] => {}
            [b'+' | b'-', off @ ..] if off.len() == 5 => {
                let oh = digits(off, 2).ok_or(bad.clone())?;
                let om = digits(&off[3..], 2).ok_or(bad.clone())?;
                if off[2] != b':' || oh > 23 || om > 59 {
                    return Err(bad);
                }
            }
            _ => return Err(bad),
        }
        Ok(DateTime(s.to_owned()))
    }

    /// The UTC date-time `secs` seconds after the Unix epoch, as `YYYY-MM-DDThh:mm:ssZ`.
    /// `None` outside years 0000 to 9999. (This crate reads no clock: the caller passes
    /// the time in.)
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(86_400);
        let tod = secs.rem_euclid(86_400);
        // Civil date from a day count (proleptic Gregorian, 400-year eras of 146097 days).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return None;
        }
        Some(DateTime(format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            tod / 3600,
            tod / 60 % 60,
            tod % 60
        )))
    }

    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DateTime {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Self, FieldError> {
        DateTime::parse(s)
    }
}

/// A Subject header: text with an optional language (RFC 3862 §4.5:
/// `"Subject" ":" [ ";" Lang-param ] SP *HEADERCHAR`). The text is kept as written
/// (escapes are not decoded).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    lang: Option<String>,
    text: String,
}

impl Subject {
    /// A subject; `lang` must be a language tag and `text` free of control characters.
    pub fn new(text: &str, lang: Option<&str>) -> Result<Self, FieldError> {
        check_new_value(text)?;
        if lang.is_some_and(|l| !is_language_tag(l)) {
            return Err(FieldError::BadLanguageTag);
        }
        Ok(Subject {
            lang: lang.map(str::to_owned),
            text: text.to_owned(),
        })
    }

    /// The subject text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The `lang` parameter.
    pub fn lang(&self) -> Option<&str> {
        self.lang.as_deref()
    }
}

/// An NS header: a name prefix bound to a namespace URI (RFC 3862 §4.6:
/// `"NS" ": " [ Name-prefix SP ] "<" URI ">"`); no prefix declares the default namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    prefix: Option<String>,
    uri: String,
}

impl Namespace {
    /// A namespace declaration; the prefix must be a Name and the URI as for [`NameAddr`].
    pub fn new(prefix: Option<&str>, uri: &str) -> Result<Self, FieldError> {
        if prefix.is_some_and(|p| !is_name(p)) || !check_uri(uri) {
            return Err(FieldError::BadNamespace);
        }
        Ok(Namespace {
            prefix: prefix.map(str::to_owned),
            uri: uri.to_owned(),
        })
    }

    /// The prefix (`MyFeatures` in `NS: MyFeatures <mid:...>`).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The namespace URI.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn parse(s: &str) -> Result<Self, FieldError> {
        let s = s.trim_matches([' ', '\t']);
        let lt = s.find('<').ok_or(FieldError::BadNamespace)?;
        let prefix = s[..lt].trim_end_matches([' ', '\t']);
        let uri = s[lt..]
            .strip_prefix('<')
            .and_then(|r| r.strip_suffix('>'))
            .ok_or(FieldError::BadNamespace)?;
        Namespace::new((!prefix.is_empty()).then_some(prefix), uri)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.prefix {
            write!(f, "{p} ")?;
        }
        write!(f, "<{}>", self.uri)
    }
}

/// Any other message header, including prefixed extension headers such as
/// `MyFeatures.VitalMessageOption` or `imdn.Message-ID` (RFC 3862 §3.4, §3.6:
/// `Header-name ":" Header-parameters SP Header-value`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl Header {
    /// A header; the name must be `[Name-prefix "."] Name` and the value free of control
    /// characters.
    pub fn new(name: &str, value: &str) -> Result<Self, FieldError> {
        if !is_header_name(name) {
            return Err(FieldError::BadName);
        }
        check_new_value(value)?;
        Ok(Header {
            name: name.to_owned(),
            params: Vec::new(),
            value: value.to_owned(),
        })
    }

    /// This header with one more parameter (`;name=value`; the value is a Token, a
    /// Number or a quoted String, kept as written).
    pub fn with_param(mut self, name: &str, value: &str) -> Result<Self, FieldError> {
        if !is_name(name) || !is_param_value(value) {
            return Err(FieldError::BadParameter);
        }
        self.params.push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// The header name, prefix included.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The header parameters, values as written.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The header value as written.
    pub fn value(&self) -> &str {
        &self.value
    }
}

// Param-value = Token / Number / String
fn is_param_value(v: &str) -> bool {
    if v.starts_with('"') {
        matches!(read_quoted(v), Ok((_, rest)) if rest.is_empty())
    } else {
        !v.is_empty() && v.chars().all(is_tokenchar)
    }
}

// ---------------------------------------------------------------------------------------
// The message.

/// A `message/cpim` message (RFC 3862).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpimMessage {
    from: Option<NameAddr>,
    to: Vec<NameAddr>,
    cc: Vec<NameAddr>,
    date_time: Option<DateTime>,
    subjects: Vec<Subject>,
    namespaces: Vec<Namespace>,
    require: Vec<String>,
    headers: Vec<Header>,
    content_headers: Vec<(String, String)>,
    body: Bytes,
}

impl CpimMessage {
    /// Wraps `body` of type `content_type` from `from` to `to`, the way sipsimple and most
    /// MSRP chat clients do; add more with the `with_*` methods. No DateTime is set: use
    /// [`CpimMessage::with_date_time`] and [`DateTime::from_unix_seconds`].
    pub fn new(
        from: NameAddr,
        to: NameAddr,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<Self, FieldError> {
        check_new_value(content_type)?;
        Ok(CpimMessage {
            from: Some(from),
            to: vec![to],
            cc: Vec::new(),
            date_time: None,
            subjects: Vec::new(),
            namespaces: Vec::new(),
            require: Vec::new(),
            headers: Vec::new(),
            content_headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
            body: body.into(),
        })
    }

    /// Adds a recipient (To).
    pub fn with_to(mut self, to: NameAddr) -> Self {
        self.to.push(to);
        self
    }

    /// Adds a courtesy-copy recipient (cc).
    pub fn with_cc(mut self, cc: NameAddr) -> Self {
        self.cc.push(cc);
        self
    }

    /// Sets or clears the DateTime.
    pub fn with_date_time(mut self, date_time: Option<DateTime>) -> Self {
        self.date_time = date_time;
        self
    }

    /// Adds a Subject.
    pub fn with_subject(mut self, subject: Subject) -> Self {
        self.subjects.push(subject);
        self
    }

    /// Adds an NS declaration.
    pub fn with_namespace(mut self, ns: Namespace) -> Self {
        self.namespaces.push(ns);
        self
    }

    /// Adds a header name to Require.
    pub fn with_require(mut self, header_name: &str) -> Result<Self, FieldError> {
        if !is_header_name(header_name) {
            return Err(FieldError::BadRequire);
        }
        self.require.push(header_name.to_owned());
        Ok(self)
    }

    /// Adds an extension header (written after the known ones, in the order added).
    pub fn with_header(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    /// Adds a MIME header of the encapsulated object (Content-ID, Content-Disposition ...).
    pub fn with_content_header(mut self, name: &str, value: &str) -> Result<Self, FieldError> {
        if !is_mime_field_name(name) {
            return Err(FieldError::BadName);
        }
        check_new_value(value)?;
        self.content_headers
            .push((name.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The sender (From). Always present when built with [`CpimMessage::new`]; a parsed
    /// message may lack it.
    pub fn from(&self) -> Option<&NameAddr> {
        self.from.as_ref()
    }

    /// The recipients (To), in order.
    pub fn to(&self) -> &[NameAddr] {
        &self.to
    }

    /// The courtesy-copy recipients (cc), in order.
    pub fn cc(&self) -> &[NameAddr] {
        &self.cc
    }

    /// The DateTime.
    pub fn date_time(&self) -> Option<&DateTime> {
        self.date_time.as_ref()
    }

    /// The Subjects, in order.
    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    /// The NS declarations, in order.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// The header names listed in Require headers, in order.
    pub fn require(&self) -> &[String] {
        &self.require
    }

    /// The other message headers, in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The first extension header named exactly `name` (prefix included).
    pub fn header(&self, name: &str) -> Option<&Header> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// The MIME headers of the encapsulated object, in order, values unfolded.
    pub fn content_headers(&self) -> &[(String, String)] {
        &self.content_headers
    }

    /// The encapsulated Content-Type (MIME header names are case-insensitive).
    pub fn content_type(&self) -> Option<&str> {
        self.content_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    /// The encapsulated body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Parses a CPIM message (the bytes after the outer `Content-Type: message/cpim`
    /// header block). The body is copied once into a [`Bytes`]; use
    /// [`CpimMessage::parse_bytes`] to avoid that.
    pub fn parse(input: &[u8]) -> Result<Self, CpimError> {
        Self::parse_bytes(Bytes::copy_from_slice(input))
    }

    /// Parses a CPIM message; the body is a slice of `input` (no copy).
    pub fn parse_bytes(input: Bytes) -> Result<Self, CpimError> {
        let mut msg = CpimMessage {
            from: None,
            to: Vec::new(),
            cc: Vec::new(),
            date_time: None,
            subjects: Vec::new(),
            namespaces: Vec::new(),
            require: Vec::new(),
            headers: Vec::new(),
            content_headers: Vec::new(),
            body: Bytes::new(),
        };
        let mut lines = Lines {
            input: &input,
            pos: 0,
            line: 0,
        };
        // RFC 3862 §2: message headers, a blank line, then the encapsulated MIME object.
        while let Some((n, line)) = lines.next_line()? {
            let field = |kind| CpimError::Field { line: n, kind };
            msg.parse_message_header(line).map_err(field)?;
        }
        // The MIME headers of the encapsulated object (RFC 2045 §3), then a blank line.
        while let Some((n, line)) = lines.next_line()? {
            if line.starts_with([' ', '\t']) {
                // RFC 5322 §2.2.3: unfolding removes the CRLF before white space.
                let last = msg
                    .content_headers
                    .last_mut()
                    .ok_or(CpimError::Malformed { line: n })?;
                check_value(line).map_err(|kind| CpimError::Field { line: n, kind })?;
                last.1.push_str(line);
                if last.1.starts_with([' ', '\t']) {
                    last.1 = last.1.trim_start_matches([' ', '\t']).to_owned();
                }
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or(CpimError::Malformed { line: n })?;
            if !is_mime_field_name(name) {
                return Err(CpimError::Field {
                    line: n,
                    kind: FieldError::BadName,
                });
            }
            let value = value.trim_start_matches([' ', '\t']);
            check_value(value).map_err(|kind| CpimError::Field { line: n, kind })?;
            msg.content_headers
                .push((name.to_owned(), value.to_owned()));
        }
        msg.body = input.slice(lines.pos..);
        Ok(msg)
    }

    fn parse_message_header(&mut self, line: &str) -> Result<(), FieldError> {
        // Header = Header-name ":" Header-parameters SP Header-value CRLF
        let (name, rest) = line.split_once(':').ok_or(FieldError::BadName)?;
        if !is_header_name(name) {
            return Err(FieldError::BadName);
        }
        let (params, value) = split_params(rest)?;
        check_value(value)?;
        let no_params = || {
            if params.is_empty() {
                Ok(())
            } else {
                Err(FieldError::BadParameter)
            }
        };
        // The header names of RFC 3862 §4 are matched case-insensitively: a peer writing
        // "from:" can only mean From.
        match name.to_ascii_lowercase().as_str() {
            // RFC 3862 §4.1 (From), §4.2 (To), §4.3 (cc):
            //   [ Formal-name ] "<" URI ">"
            "from" => {
                no_params()?;
                if self.from.is_some() {
                    return Err(FieldError::Duplicate("From"));
                }
                self.from = Some(value.parse()?);
            }
            "to" => {
                no_params()?;
                self.to.push(value.parse()?);
            }
            "cc" => {
                no_params()?;
                self.cc.push(value.parse()?);
            }
            // RFC 3862 §4.4: DateTime = date-time (RFC 3339), at most one.
            "datetime" => {
                no_params()?;
                if self.date_time.is_some() {
                    return Err(FieldError::Duplicate("DateTime"));
                }
                self.date_time = Some(DateTime::parse(value.trim_end_matches([' ', '\t']))?);
            }
            // RFC 3862 §4.5: Subject ":" [ ";" Lang-param ] SP *HEADERCHAR
            "subject" => {
                let mut lang = None;
                for (k, v) in &params {
                    if k != "lang" || lang.is_some() {
                        return Err(FieldError::BadParameter);
                    }
                    lang = Some(v.as_str());
                }
                self.subjects.push(Subject::new(value, lang)?);
            }
            // RFC 3862 §4.6: NS ": " [ Name-prefix SP ] "<" URI ">"
            "ns" => {
                no_params()?;
                self.namespaces.push(Namespace::parse(value)?);
            }
            // RFC 3862 §4.7: Require ": " Header-name *( "," Header-name )
            "require" => {
                no_params()?;
                for item in value.split(',') {
                    let item = item.trim_matches([' ', '\t']);
                    if !is_header_name(item) {
                        return Err(FieldError::BadRequire);
                    }
                    self.require.push(item.to_owned());
                }
            }
            _ => self.headers.push(Header {
                name: name.to_owned(),
                params,
                value: value.to_owned(),
            }),
        }
        Ok(())
    }

    /// Writes the message: known headers first (From, To, cc, DateTime, Subject, NS,
    /// Require), then the extension headers in order, a blank line, the MIME headers, a
    /// blank line and the body. All line ends are CRLF.
    pub fn encode(&self, out: &mut BytesMut) {
        use fmt::Write as _;
        let mut head = String::new();
        // Writing into a String cannot fail.
        let mut line = |args: fmt::Arguments<'_>| {
            let _ = head.write_fmt(args);
            head.push_str("\r\n");
        };
        if let Some(from) = &self.from {
            line(format_args!("From: {from}"));
        }
        for to in &self.to {
            line(format_args!("To: {to}"));
        }
        for cc in &self.cc {
            line(format_args!("cc: {cc}"));
        }
        if let Some(dt) = &self.date_time {
            line(format_args!("DateTime: {dt}"));
        }
        for s in &self.subjects {
            match &s.lang {
                Some(lang) => line(format_args!("Subject:;lang={lang} {}", s.text)),
                None => line(format_args!("Subject: {}", s.text)),
            }
        }
        // RFC 3862 §3.4: NS declarations come before the headers that use their prefix.
        for ns in &self.namespaces {
            line(format_args!("NS: {ns}"));
        }
        if !self.require.is_empty() {
            line(format_args!("Require: {}", self.require.join(",")));
        }
        for h in &self.headers {
            let mut params = String::new();
            for (k, v) in &h.params {
                let _ = write!(params, ";{k}={v}");
            }
            line(format_args!("{}:{params} {}", h.name, h.value));
        }
        line(format_args!(""));
        for (name, value) in &self.content_headers {
            line(format_args!("{name}: {value}"));
        }
        line(format_args!(""));
        out.reserve(head.len() + self.body.len());
        out.put_slice(head.as_bytes());
        out.put_slice(&self.body);
    }

    /// The encoded message (see [`CpimMessage::encode`]).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// Splits `Header-parameters SP Header-value` (what follows the colon).
type Params = Vec<(String, String)>;

fn split_params(mut rest: &str) -> Result<(Params, &str), FieldError> {
    let mut params = Vec::new();
    while let Some(p) = rest.strip_prefix(';') {
        // Parameter = Lang-param / Ext-param; Ext-param = Param-name "=" Param-value
        let eq = p.find('=').ok_or(FieldError::BadParameter)?;
        let name = &p[..eq];
        if !is_name(name) {
            return Err(FieldError::BadParameter);
        }
        let after = &p[eq + 1..];
        let (value, tail) = if after.starts_with('"') {
            let (_, tail) = read_quoted(after)?;
            (&after[..after.len() - tail.len()], tail)
        } else {
            let n = after
                .find(|c: char| !is_tokenchar(c))
                .unwrap_or(after.len());
            (&after[..n], &after[n..])
        };
        if value.is_empty() {
            return Err(FieldError::BadParameter);
        }
        if name == "lang" && !is_language_tag(value) {
            return Err(FieldError::BadLanguageTag);
        }
        params.push((name.to_owned(), value.to_owned()));
        rest = tail;
    }
    // The SP before the value; tolerate several, or a tab, or none at all when there are no
    // parameters (the value then cannot start with ';', or it would be a parameter).
    let value = rest.trim_start_matches([' ', '\t']);
    if !params.is_empty() && value.len() == rest.len() && !rest.is_empty() {
        return Err(FieldError::BadParameter);
    }
    Ok((params, value))
}

/// Header-line reader over the raw input, enforcing the bounds.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    /// The next line (without its CRLF or LF) and its 1-based number; `None` at the blank
    /// line that ends a header block.
    fn next_line(&mut self) -> Result<Option<(usize, &'a str)>, CpimError> {
        let window_end = self.input.len().min(MAX_HEADER_BYTES);
        let window = &self.input[self.pos.min(window_end)..window_end];
        let Some(nl) = memchr::memchr(b'\n', window) else {
            return Err(if self.input.len() > MAX_HEADER_BYTES {
                CpimError::HeadersTooLarge {
                    max: MAX_HEADER_BYTES,
                }
            } else {
                CpimError::Unterminated
            });
        };
        let raw = &window[..nl];
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        self.pos += nl + 1;
        self.line += 1;
        if raw.is_empty() {
            return Ok(None);
        }
        if self.line > MAX_HEADERS {
            return Err(CpimError::TooManyHeaders { max: MAX_HEADERS });
        }
        let text = std::str::from_utf8(raw).map_err(|_| CpimError::NotUtf8 { line: self.line })?;
        Ok(Some((self.line, text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3862's example message, without the outer `Content-type: message/cpim` block
    /// (which MSRP carries as its own Content-Type header).
    const RFC3862_EXAMPLE: &str = "From: MR SANDERS <im:piglet@100akerwood.com>\r\n\
        To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n\
        DateTime: 2000-12-13T13:40:00-08:00\r\n\
        Subject: the weather will be fine today\r\n\
        Subject:;lang=fr beau temps prevu pour aujourd'hui\r\n\
        NS: MyFeatures <mid:MessageFeatures@id.foo.com>\r\n\
        Require: MyFeatures.VitalMessageOption\r\n\
        MyFeatures.VitalMessageOption: Confirmation-requested\r\n\
        MyFeatures.WackyMessageOption: Use-silly-font\r\n\
        \r\n\
        Content-type: text/xml; charset=utf-8\r\n\
        Content-ID: <1234567890@foo.com>\r\n\
        \r\n\
        <body>\r\n\
        Here is the text of my message.\r\n\
        </body>\r\n";

    #[test]
    fn rfc3862_example_parses() {
        let m = CpimMessage::parse(RFC3862_EXAMPLE.as_bytes()).unwrap();
        let from = m.from().unwrap();
        assert_eq!(from.display_name(), Some("MR SANDERS"));
        assert_eq!(from.uri(), "im:piglet@100akerwood.com");
        assert_eq!(m.to().len(), 1);
        assert_eq!(m.to()[0].display_name(), Some("Depressed Donkey"));
        assert_eq!(
            m.date_time().map(DateTime::as_str),
            Some("2000-12-13T13:40:00-08:00")
        );
        assert_eq!(m.subjects().len(), 2);
        assert_eq!(m.subjects()[0].lang(), None);
        assert_eq!(m.subjects()[1].lang(), Some("fr"));
        assert_eq!(m.subjects()[1].text(), "beau temps prevu pour aujourd'hui");
        assert_eq!(m.namespaces()[0].prefix(), Some("MyFeatures"));
        assert_eq!(m.namespaces()[0].uri(), "mid:MessageFeatures@id.foo.com");
        assert_eq!(m.require(), ["MyFeatures.VitalMessageOption"]);
        assert_eq!(m.headers().len(), 2);
        assert_eq!(
            m.header("MyFeatures.WackyMessageOption").map(Header::value),
            Some("Use-silly-font")
        );
        assert_eq!(m.content_type(), Some("text/xml; charset=utf-8"));
        assert_eq!(m.content_headers()[1].1, "<1234567890@foo.com>");
        assert_eq!(
            &m.body()[..],
            b"<body>\r\nHere is the text of my message.\r\n</body>\r\n"
        );
        // Canonical output is the input here (the example is already canonical apart
        // from the MIME header case, which is kept).
        assert_eq!(m.to_bytes(), RFC3862_EXAMPLE.as_bytes());
        assert_eq!(CpimMessage::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn builder_wraps_like_sipsimple() {
        let m = CpimMessage::new(
            NameAddr::new("sip:alice@example.com")
                .unwrap()
                .with_display_name("Alice \"A\" Liddell"),
            NameAddr::new("sip:bob@example.com").unwrap(),
            "text/plain",
            &b"hello"[..],
        )
        .unwrap()
        .with_date_time(DateTime::from_unix_seconds(0))
        .with_namespace(Namespace::new(Some("imdn"), "urn:ietf:params:imdn").unwrap())
        .with_header(Header::new("imdn.Message-ID", "34jk324j").unwrap())
        .with_header(Header::new("imdn.Disposition-Notification", "positive-delivery").unwrap());
        let bytes = m.to_bytes();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "From: \"Alice \\\"A\\\" Liddell\" <sip:alice@example.com>\r\n\
             To: <sip:bob@example.com>\r\n\
             DateTime: 1970-01-01T00:00:00Z\r\n\
             NS: imdn <urn:ietf:params:imdn>\r\n\
             imdn.Message-ID: 34jk324j\r\n\
             imdn.Disposition-Notification: positive-delivery\r\n\
             \r\n\
             Content-Type: text/plain\r\n\
             \r\n\
             hello"
        );
        let back = CpimMessage::parse(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.from().unwrap().display_name(),
            Some("Alice \"A\" Liddell")
        );
    }

    #[test]
    fn quoted_strings_and_escapes() {
        let na: NameAddr = r#""A\u00e9\tB\\\"" <im:x@y>"#.parse().unwrap();
        assert_eq!(na.display_name(), Some("A\u{e9}\tB\\\""));
        let na: NameAddr = r#""\uD83D\uDE00" <im:x@y>"#.parse().unwrap();
        assert_eq!(na.display_name(), Some("\u{1F600}"));
        for bad in [
            r#""\uD83D" <im:x>"#,
            r#""\uDE00" <im:x>"#,
            r#""\q" <im:x>"#,
            r#""unterminated <im:x>"#,
            r#""\u12" <im:x>"#,
        ] {
            assert_eq!(
                bad.parse::<NameAddr>(),
                Err(FieldError::BadQuotedString),
                "{bad}"
            );
        }
        // Control characters in a display name are escaped on output.
        let na = NameAddr::new("im:x")
            .unwrap()
            .with_display_name("a\u{1}\nb");
        assert_eq!(na.to_string(), r#""a\u0001\nb" <im:x>"#);
        assert_eq!(na.to_string().parse::<NameAddr>().unwrap(), na);
        // Unquoted non-token names are accepted and quoted on output.
        let na: NameAddr = "José  Ñ <im:j@x>".parse().unwrap();
        assert_eq!(na.display_name(), Some("José  Ñ"));
        assert_eq!(na.to_string(), "\"José  Ñ\" <im:j@x>");
        let na: NameAddr = "<im:j@x>".parse().unwrap();
        assert_eq!(na.display_name(), None);
        for bad in ["im:x", "<>", "<a b>", "a <x> junk", "\"a\" b <x>"] {
            assert_eq!(
                bad.parse::<NameAddr>(),
                Err(FieldError::BadNameAddr),
                "{bad}"
            );
        }
    }

    #[test]
    fn date_time_validation() {
        for good in [
            "2000-12-13T13:40:00-08:00",
            "1985-04-12T23:20:50.52Z",
            "1996-12-19t16:39:57z",
            "1990-12-31T23:59:60Z",
            "2000-02-29T00:00:00+00:00",
        ] {
            assert_eq!(DateTime::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "2000-12-13",
            "2000-13-01T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2001-04-31T00:00:00Z",
            "2000-12-13T24:00:00Z",
            "2000-12-13T13:60:00Z",
            "2000-12-13T13:40:61Z",
            "2000-12-13T13:40:00",
            "2000-12-13T13:40:00.Z",
            "2000-12-13T13:40:00+8:00",
            "2000-12-13T13:40:00+24:00",
            "2000-12-13 13:40:00Z",
            "2000-12-13T13:40:00Zjunk",
            "２000-12-13T13:40:00Z",
        ] {
            assert_eq!(DateTime::parse(bad), Err(FieldError::BadDateTime), "{bad}");
        }
        assert_eq!(
            DateTime::from_unix_seconds(951_782_400).unwrap().as_str(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            DateTime::from_unix_seconds(-1).unwrap().as_str(),
            "1969-12-31T23:59:59Z"
        );
        assert_eq!(
            DateTime::from_unix_seconds(253_402_300_799)
                .unwrap()
                .as_str(),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(DateTime::from_unix_seconds(253_402_300_800), None);
    }

    #[test]
    fn errors_are_typed() {
        let field = |line, kind| Err(CpimError::Field { line, kind });
        let cases: &[(&[u8], Result<(), CpimError>)] = &[
            (b"From: <im:a>\r\n", Err(CpimError::Unterminated)),
            (
                b"From: <im:a>\r\n\r\nContent-Type: x\r\n",
                Err(CpimError::Unterminated),
            ),
            (b"From <im:a>\r\n\r\n\r\n", field(1, FieldError::BadName)),
            (
                b"From: <im:a>\r\nFrom: <im:b>\r\n\r\n\r\n",
                field(2, FieldError::Duplicate("From")),
            ),
            (
                b"DateTime: yesterday\r\n\r\n\r\n",
                field(1, FieldError::BadDateTime),
            ),
            (b"To: bob\r\n\r\n\r\n", field(1, FieldError::BadNameAddr)),
            (
                b"Subject:;lang=f_r x\r\n\r\n\r\n",
                field(1, FieldError::BadLanguageTag),
            ),
            (
                b"Subject:;x=y x\r\n\r\n\r\n",
                field(1, FieldError::BadParameter),
            ),
            (
                b"From:;x=y <im:a>\r\n\r\n\r\n",
                field(1, FieldError::BadParameter),
            ),
            (
                b"NS: my prefix <urn:x>\r\n\r\n\r\n",
                field(1, FieldError::BadNamespace),
            ),
            (
                b"Require: a,,b\r\n\r\n\r\n",
                field(1, FieldError::BadRequire),
            ),
            (b"X: a\rb\r\n\r\n\r\n", field(1, FieldError::BadValue)),
            (b"X: \xff\r\n\r\n\r\n", Err(CpimError::NotUtf8 { line: 1 })),
            (b"\r\n foo\r\n\r\n", Err(CpimError::Malformed { line: 2 })),
            (
                b"\r\nNoColon\r\n\r\n",
                Err(CpimError::Malformed { line: 2 }),
            ),
            (b"\r\nBad Name: x\r\n\r\n", field(2, FieldError::BadName)),
        ];
        for (input, expected) in cases {
            assert_eq!(
                &CpimMessage::parse(input).map(|_| ()),
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn bounds() {
        let mut big = b"X: ".to_vec();
        big.resize(MAX_HEADER_BYTES + 10, b'a');
        assert_eq!(
            CpimMessage::parse(&big),
            Err(CpimError::HeadersTooLarge {
                max: MAX_HEADER_BYTES
            })
        );
        let many = "X: y\r\n".repeat(MAX_HEADERS + 1);
        assert_eq!(
            CpimMessage::parse(many.as_bytes()),
            Err(CpimError::TooManyHeaders { max: MAX_HEADERS })
        );
        // A large body is fine: only the headers are bounded.
        let mut ok = b"From: <im:a>\r\n\r\nContent-Type: x\r\n\r\n".to_vec();
        ok.resize(ok.len() + 10 * MAX_HEADER_BYTES, b'z');
        let m = CpimMessage::parse(&ok).unwrap();
        assert_eq!(m.body().len(), 10 * MAX_HEADER_BYTES);
    }

    #[test]
    fn lenient_forms_normalize() {
        let input =
            b"from:<im:a@b>\nTo:  Bob <im:b@c>\ncc: <im:c@d>\nX-Thing:;p=\"q r\";n=1   v \n\
            Require: a.b , c\n\ncontent-type: text/plain;\n\tcharset=utf-8\nX-Empty:\n\n\nbody";
        let m = CpimMessage::parse(input).unwrap();
        assert_eq!(m.from().unwrap().uri(), "im:a@b");
        assert_eq!(m.to()[0].display_name(), Some("Bob"));
        assert_eq!(m.cc()[0].uri(), "im:c@d");
        let x = m.header("X-Thing").unwrap();
        assert_eq!(
            x.params(),
            [
                ("p".to_owned(), "\"q r\"".to_owned()),
                ("n".to_owned(), "1".to_owned())
            ]
        );
        assert_eq!(x.value(), "v ");
        assert_eq!(m.require(), ["a.b", "c"]);
        assert_eq!(m.content_type(), Some("text/plain;\tcharset=utf-8"));
        assert_eq!(
            m.content_headers()[1],
            ("X-Empty".to_owned(), String::new())
        );
        assert_eq!(&m.body()[..], b"\nbody");
        let again = CpimMessage::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(
            Subject::new("x", Some("not a tag")),
            Err(FieldError::BadLanguageTag)
        );
        assert_eq!(Subject::new("a\nb", None), Err(FieldError::BadValue));
        assert_eq!(Subject::new(" lead", None), Err(FieldError::BadValue));
        assert_eq!(Header::new("a.b.c", "v"), Err(FieldError::BadName));
        assert_eq!(Header::new("a:b", "v"), Err(FieldError::BadName));
        assert_eq!(
            Header::new("a", "v").unwrap().with_param("p", "a b"),
            Err(FieldError::BadParameter)
        );
        assert!(
            Header::new("a", "v")
                .unwrap()
                .with_param("p", "\"a b\"")
                .is_ok()
        );
        assert_eq!(
            Namespace::new(Some("a.b"), "urn:x"),
            Err(FieldError::BadNamespace)
        );
        assert_eq!(NameAddr::new("a>b"), Err(FieldError::BadNameAddr));
        let m = CpimMessage::new(
            NameAddr::new("im:a").unwrap(),
            NameAddr::new("im:b").unwrap(),
            "text/plain",
            Bytes::new(),
        )
        .unwrap();
        assert_eq!(
            m.clone().with_require("x y").unwrap_err(),
            FieldError::BadRequire
        );
        assert_eq!(
            m.clone().with_content_header("Bad Name", "x").unwrap_err(),
            FieldError::BadName
        );
        assert_eq!(
            CpimMessage::new(
                NameAddr::new("im:a").unwrap(),
                NameAddr::new("im:b").unwrap(),
                "text/plain\r\nX: injected",
                Bytes::new()
            )
            .unwrap_err(),
            FieldError::BadValue
        );
    }

    #[test]
    fn parse_bytes_does_not_copy_the_body() {
        let input = Bytes::from_static(b"From: <im:a>\r\n\r\nContent-Type: x\r\n\r\npayload");
        let m = CpimMessage::parse_bytes(input.clone()).unwrap();
        assert_eq!(m.body().as_ptr(), input[input.len() - 7..].as_ptr());
    }
}
