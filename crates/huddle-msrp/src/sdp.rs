//! SDP media-level attributes used by MSRP sessions.
//!
//! - RFC 4975 §8: `a=path`, `a=accept-types`, `a=accept-wrapped-types`, `a=max-size`.
//! - RFC 4145 §4 and §5: `a=setup` and `a=connection` (connection-oriented media, which
//!   RFC 6135 applies to MSRP), and RFC 6714's `a=msrp-cema`.
//! - RFC 5547 §6 and §10 (file transfer): `a=file-selector`, `a=file-transfer-id`,
//!   `a=file-disposition`, `a=file-date`, `a=file-icon`, `a=file-range`.
//!
//! [`Attribute::parse`] reads one line, with or without its leading `a=`; `Display` writes
//! the canonical line (with `a=`). [`MsrpAttributes::collect`] gathers the attributes of
//! one media description and keeps the ones it does not know, in order.

use std::fmt;
use std::str::FromStr;

use crate::uri::{MsrpUri, UriError, format_path, parse_path};

/// Longest attribute line [`Attribute::parse`] accepts, in bytes.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Why an attribute line is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The line is longer than [`MAX_LINE_LEN`].
    #[error("attribute line longer than {max} bytes")]
    TooLong {
        /// The bound that was exceeded.
        max: usize,
    },
    /// The line is not `a=<name>[:<value>]` (or `<name>[:<value>]`).
    #[error("not an attribute line")]
    NotAnAttribute,
    /// A known attribute that needs a value has none.
    #[error("a={0} needs a value")]
    MissingValue(&'static str),
    /// `a=path` holds an invalid MSRP URI.
    #[error("invalid path: {0}")]
    Path(#[from] UriError),
    /// A media type in accept-types or a file-selector `type:` is malformed.
    #[error("invalid media type")]
    BadMediaType,
    /// A number is malformed or out of range.
    #[error("invalid number")]
    BadNumber,
    /// `a=setup` is not active, passive, actpass or holdconn.
    #[error("invalid setup role")]
    BadSetup,
    /// `a=connection` is not new or existing.
    #[error("invalid connection value")]
    BadConnection,
    /// A value that must be a token is not one.
    #[error("invalid token")]
    BadToken,
    /// A file-selector selector is malformed, unknown or repeated.
    #[error("invalid file-selector")]
    BadSelector,
    /// A file name is malformed (bad percent-encoding, or not UTF-8 once decoded).
    #[error("invalid file name")]
    BadFilename,
    /// A hash selector is malformed.
    #[error("invalid hash")]
    BadHash,
    /// A file-date parameter is malformed or repeated.
    #[error("invalid file-date")]
    BadDate,
    /// A file-icon value is not a `cid:` URL.
    #[error("invalid file-icon")]
    BadIcon,
    /// A file-range is malformed or empty.
    #[error("invalid file-range")]
    BadRange,
    /// A known attribute appears twice in one media description.
    #[error("duplicate a={0}")]
    Duplicate(&'static str),
}

// RFC 4566 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
fn is_token_char(c: char) -> bool {
    matches!(c as u32,
        0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn parse_u64(s: &str) -> Result<u64, SdpError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SdpError::BadNumber);
    }
    s.parse().map_err(|_| SdpError::BadNumber)
}

// RFC 4975 §9: format-entry = "*" / (m-type "/" m-subtype) / (m-type "/" "*"). Entries
// carrying MIME parameters (`text/plain;charset=utf-8`) are tolerated as seen in the wild.
fn check_format_entry(s: &str) -> Result<(), SdpError> {
    if s == "*" {
        return Ok(());
    }
    let (ty, rest) = s.split_once('/').ok_or(SdpError::BadMediaType)?;
    let subtype = rest.split(';').next().unwrap_or_default();
    if !is_token(ty) || !is_token(subtype) || s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(SdpError::BadMediaType);
    }
    Ok(())
}

fn parse_format_list(v: &str) -> Result<Vec<String>, SdpError> {
    // format-list = format-entry *( SP format-entry)
    let list: Vec<String> = v
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if list.is_empty() {
        return Err(SdpError::BadMediaType);
    }
    for e in &list {
        check_format_entry(e)?;
    }
    Ok(list)
}

/// The `a=setup` role (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// The endpoint opens the connection.
    Active,
    /// The endpoint accepts the connection.
    Passive,
    /// The endpoint is willing to do either.
    ActPass,
    /// The endpoint does not want a connection for now.
    HoldConn,
}

impl Setup {
    fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }
}

/// The `a=connection` value (RFC 4145 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Connection {
    /// A new connection is to be established.
    New,
    /// The existing connection is to be reused.
    Existing,
}

/// `a=file-selector` (RFC 5547 §6): the selectors that identify the file. All are
/// optional; the attribute may even have no value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FileSelector {
    /// `name:"..."`, percent-decoded.
    pub name: Option<String>,
    /// `size:N`, in octets.
    pub size: Option<u64>,
    /// `type:type/subtype;param="value"`.
    pub media_type: Option<FileType>,
    /// `hash:algorithm:XX:XX...`, in the order given.
    pub hashes: Vec<FileHash>,
}

/// The `type:` selector of a file-selector (RFC 5547 §10:
/// `"type:" type "/" subtype *(";" ft-parameter)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileType {
    /// The MIME type, e.g. `image`.
    pub ty: String,
    /// The MIME subtype, e.g. `jpeg`.
    pub subtype: String,
    /// Parameters, values unquoted.
    pub params: Vec<(String, String)>,
}

/// The `hash:` selector of a file-selector (RFC 5547 §10:
/// `"hash:" hash-algorithm ":" hash-value`, `hash-value = 2HEX *(":" 2HEX)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHash {
    /// The algorithm's textual name (`sha-1`), as written.
    pub algorithm: String,
    /// The digest.
    pub value: Vec<u8>,
}

/// `a=file-date` (RFC 5547 §10): RFC 5322 date-times, kept as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FileDate {
    /// `creation:"..."`.
    pub creation: Option<String>,
    /// `modification:"..."`.
    pub modification: Option<String>,
    /// `read:"..."`.
    pub read: Option<String>,
}

/// `a=file-range` (RFC 5547 §10): octets `start` to `stop`, both counted from 1 and
/// inclusive; `stop` is `None` for `*` (up to the end of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRange {
    /// First octet, counted from 1.
    pub start: u64,
    /// Last octet, or `None` for `*`.
    pub stop: Option<u64>,
}

/// One SDP attribute relevant to MSRP, or any other attribute kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attribute {
    /// `a=path` (RFC 4975 §8.1 and §9).
    Path(Vec<MsrpUri>),
    /// `a=accept-types` (RFC 4975 §8.6 and §9).
    AcceptTypes(Vec<String>),
    /// `a=accept-wrapped-types` (RFC 4975 §8.6 and §9).
    AcceptWrappedTypes(Vec<String>),
    /// `a=max-size` (RFC 4975 §8.6 and §9), in octets.
    MaxSize(u64),
    /// `a=setup` (RFC 4145 §4).
    Setup(Setup),
    /// `a=connection` (RFC 4145 §5).
    Connection(Connection),
    /// `a=msrp-cema` (RFC 6714).
    MsrpCema,
    /// `a=file-selector` (RFC 5547 §6).
    FileSelector(FileSelector),
    /// `a=file-transfer-id` (RFC 5547 §6).
    FileTransferId(String),
    /// `a=file-disposition` (RFC 5547 §6).
    FileDisposition(String),
    /// `a=file-date` (RFC 5547 §6).
    FileDate(FileDate),
    /// `a=file-icon` (RFC 5547 §6): a `cid:` URL.
    FileIcon(String),
    /// `a=file-range` (RFC 5547 §6).
    FileRange(FileRange),
    /// Any other attribute, kept as written.
    Other {
        /// The attribute name.
        name: String,
        /// The value after the first `:`, if any.
        value: Option<String>,
    },
}

impl Attribute {
    /// Parses one attribute line, with or without the leading `a=`; a trailing CRLF or LF
    /// is ignored.
    pub fn parse(line: &str) -> Result<Self, SdpError> {
        if line.len() > MAX_LINE_LEN {
            return Err(SdpError::TooLong { max: MAX_LINE_LEN });
        }
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.strip_prefix("a=").unwrap_or(line);
        // RFC 4566 §5.13: attribute = (att-field ":" att-value) / att-field
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        if !is_token(name) || value.is_some_and(|v| v.contains(['\r', '\n', '\0'])) {
            return Err(SdpError::NotAnAttribute);
        }
        let need = |label: &'static str| value.ok_or(SdpError::MissingValue(label));
        Ok(match name {
            // RFC 4975 §9: path = path-label ":" path-list
            "path" => Attribute::Path(parse_path(need("path")?)?),
            "accept-types" => Attribute::AcceptTypes(parse_format_list(need("accept-types")?)?),
            "accept-wrapped-types" => {
                Attribute::AcceptWrappedTypes(parse_format_list(need("accept-wrapped-types")?)?)
            }
            // RFC 4975 §9: max-size = max-size-label ":" 1*DIGIT
            "max-size" => Attribute::MaxSize(parse_u64(need("max-size")?)?),
            // RFC 4145 §4: role = "active" / "passive" / "actpass" / "holdconn"
            "setup" => Attribute::Setup(match need("setup")? {
                "active" => Setup::Active,
                "passive" => Setup::Passive,
                "actpass" => Setup::ActPass,
                "holdconn" => Setup::HoldConn,
                _ => return Err(SdpError::BadSetup),
            }),
            // RFC 4145 §5: conn-value = "new" / "existing"
            "connection" => Attribute::Connection(match need("connection")? {
                "new" => Connection::New,
                "existing" => Connection::Existing,
                _ => return Err(SdpError::BadConnection),
            }),
            // RFC 6714: a property attribute without a value.
            "msrp-cema" if value.is_none() => Attribute::MsrpCema,
            // RFC 5547 §10: file-selector-attr = "file-selector" [":" selector *(SP selector)]
            "file-selector" => Attribute::FileSelector(parse_file_selector(value.unwrap_or(""))?),
            // RFC 5547 §10: file-tr-id-value = token; file-disp-value = token
            "file-transfer-id" => {
                Attribute::FileTransferId(checked_token(need("file-transfer-id")?)?)
            }
            "file-disposition" => {
                Attribute::FileDisposition(checked_token(need("file-disposition")?)?)
            }
            "file-date" => Attribute::FileDate(parse_file_date(need("file-date")?)?),
            // RFC 5547 §10: file-icon-value = cid-url (RFC 2392)
            "file-icon" => {
                let v = need("file-icon")?;
                let is_cid = v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("cid:"));
                if !is_cid || v.len() == 4 || v.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(SdpError::BadIcon);
                }
                Attribute::FileIcon(v.to_owned())
            }
            "file-range" => Attribute::FileRange(parse_file_range(need("file-range")?)?),
            _ => Attribute::Other {
                name: name.to_owned(),
                value: value.map(str::to_owned),
            },
        })
    }

    /// The attribute name (`path`, `file-selector`, ...).
    pub fn name(&self) -> &str {
        match self {
            Attribute::Path(_) => "path",
            Attribute::AcceptTypes(_) => "accept-types",
            Attribute::AcceptWrappedTypes(_) => "accept-wrapped-types",
            Attribute::MaxSize(_) => "max-size",
            Attribute::Setup(_) => "setup",
            Attribute::Connection(_) => "connection",
            Attribute::MsrpCema => "msrp-cema",
            Attribute::FileSelector(_) => "file-selector",
            Attribute::FileTransferId(_) => "file-transfer-id",
            Attribute::FileDisposition(_) => "file-disposition",
            Attribute::FileDate(_) => "file-date",
            Attribute::FileIcon(_) => "file-icon",
            Attribute::FileRange(_) => "file-range",
            Attribute::Other { name, .. } => name,
        }
    }
}

fn checked_token(v: &str) -> Result<String, SdpError> {
    if is_token(v) {
        Ok(v.to_owned())
    } else {
        Err(SdpError::BadToken)
    }
}

impl FromStr for Attribute {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, SdpError> {
        Attribute::parse(s)
    }
}

impl fmt::Display for Attribute {
    /// The canonical line, `a=name[:value]`, without a line end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a={}", self.name())?;
        match self {
            Attribute::Path(p) => write!(f, ":{}", format_path(p)),
            Attribute::AcceptTypes(l) | Attribute::AcceptWrappedTypes(l) => {
                write!(f, ":{}", l.join(" "))
            }
            Attribute::MaxSize(n) => write!(f, ":{n}"),
            Attribute::Setup(s) => write!(f, ":{}", s.as_str()),
            Attribute::Connection(Connection::New) => f.write_str(":new"),
            Attribute::Connection(Connection::Existing) => f.write_str(":existing"),
            Attribute::MsrpCema => Ok(()),
            Attribute::FileSelector(sel) => write_file_selector(f, sel),
            Attribute::FileTransferId(v)
            | Attribute::FileDisposition(v)
            | Attribute::FileIcon(v) => {
                write!(f, ":{v}")
            }
            Attribute::FileDate(d) => {
                let mut sep = ':';
                for (label, v) in [
                    ("creation", &d.creation),
                    ("modification", &d.modification),
                    ("read", &d.read),
                ] {
                    if let Some(v) = v {
                        write!(f, "{sep}{label}:\"{v}\"")?;
                        sep = ' ';
                    }
                }
                Ok(())
            }
            Attribute::FileRange(r) => match r.stop {
                Some(stop) => write!(f, ":{}-{stop}", r.start),
                None => write!(f, ":{}-*", r.start),
            },
            Attribute::Other { value, .. } => match value {
                Some(v) => write!(f, ":{v}"),
                None => Ok(()),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// RFC 5547 file transfer.

/// Reads `"..."` at the start of `s` (no escapes: the content ends at the next DQUOTE).
fn read_dquoted(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('"')?;
    let end = inner.find('"')?;
    Some((&inner[..end], &inner[end + 1..]))
}

// RFC 5547 §10: filename-string = 1*( filename-char / percent-encoded );
// filename-char is any byte but NUL, CR, LF, DQUOTE and "%".
fn decode_filename(s: &str) -> Result<String, SdpError> {
    if s.is_empty() {
        return Err(SdpError::BadFilename);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or(SdpError::BadFilename)?;
                let hex = std::str::from_utf8(hex).map_err(|_| SdpError::BadFilename)?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(SdpError::BadFilename);
                }
                out.push(u8::from_str_radix(hex, 16).map_err(|_| SdpError::BadFilename)?);
                i += 3;
            }
            0 | b'\r' | b'\n' | b'"' => return Err(SdpError::BadFilename),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| SdpError::BadFilename)
}

fn encode_filename(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    for c in name.chars() {
        match c {
            '\0' | '\r' | '\n' | '"' | '%' => write!(f, "%{:02X}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

fn parse_file_selector(v: &str) -> Result<FileSelector, SdpError> {
    let mut sel = FileSelector::default();
    let mut rest = v.trim_start_matches(' ');
    while !rest.is_empty() {
        let after;
        if let Some(r) = rest.strip_prefix("name:") {
            // filename-selector = "name:" DQUOTE filename-string DQUOTE
            let (name, tail) = read_dquoted(r).ok_or(SdpError::BadFilename)?;
            if sel.name.is_some() {
                return Err(SdpError::BadSelector);
            }
            sel.name = Some(decode_filename(name)?);
            after = tail;
        } else if let Some(r) = rest.strip_prefix("size:") {
            // filesize-selector = "size:" filesize-value
            let end = r.find(' ').unwrap_or(r.len());
            if sel.size.is_some() {
                return Err(SdpError::BadSelector);
            }
            sel.size = Some(parse_u64(&r[..end])?);
            after = &r[end..];
        } else if let Some(r) = rest.strip_prefix("type:") {
            if sel.media_type.is_some() {
                return Err(SdpError::BadSelector);
            }
            let (ft, tail) = parse_file_type(r)?;
            sel.media_type = Some(ft);
            after = tail;
        } else if let Some(r) = rest.strip_prefix("hash:") {
            // hash-selector = "hash:" hash-algorithm ":" hash-value
            let end = r.find(' ').unwrap_or(r.len());
            let (alg, hex) = r[..end].split_once(':').ok_or(SdpError::BadHash)?;
            if !is_token(alg) {
                return Err(SdpError::BadHash);
            }
            let value = hex
                .split(':')
                .map(|h| {
                    if h.len() == 2 && h.bytes().all(|c| c.is_ascii_hexdigit()) {
                        u8::from_str_radix(h, 16).map_err(|_| SdpError::BadHash)
                    } else {
                        Err(SdpError::BadHash)
                    }
                })
                .collect::<Result<Vec<u8>, _>>()?;
            sel.hashes.push(FileHash {
                algorithm: alg.to_owned(),
                value,
            });
            after = &r[end..];
        } else {
            return Err(SdpError::BadSelector);
        }
        // selector *(SP selector)
        if !(after.is_empty() || after.starts_with(' ')) {
            return Err(SdpError::BadSelector);
        }
        rest = after.trim_start_matches(' ');
    }
    Ok(sel)
}

// filetype-selector = "type:" type "/" subtype *(";" ft-parameter)
// ft-parameter = attribute "=" DQUOTE value DQUOTE (unquoted token values are accepted too)
fn parse_file_type(r: &str) -> Result<(FileType, &str), SdpError> {
    let token_end = |s: &str| {
        s.find(|c: char| !is_token_char(c) || c == '/')
            .unwrap_or(s.len())
    };
    let n = token_end(r);
    let ty = &r[..n];
    let r = r[n..].strip_prefix('/').ok_or(SdpError::BadMediaType)?;
    let n = token_end(r);
    let subtype = &r[..n];
    if ty.is_empty() || subtype.is_empty() {
        return Err(SdpError::BadMediaType);
    }
    let mut rest = &r[n..];
    let mut params = Vec::new();
    while let Some(p) = rest.strip_prefix(';') {
        let n = p
            .find(|c: char| !is_token_char(c) || c == '=')
            .unwrap_or(p.len());
        let name = &p[..n];
        let v = p[n..].strip_prefix('=').ok_or(SdpError::BadMediaType)?;
        if name.is_empty() {
            return Err(SdpError::BadMediaType);
        }
        let (value, tail) = if v.starts_with('"') {
            read_dquoted(v).ok_or(SdpError::BadMediaType)?
        } else {
            let n = v
                .find(|c: char| !is_token_char(c) || c == ';')
                .unwrap_or(v.len());
            if n == 0 {
                return Err(SdpError::BadMediaType);
            }
            (&v[..n], &v[n..])
        };
        if value.contains(['\r', '\n', '\0']) {
            return Err(SdpError::BadMediaType);
        }
        params.push((name.to_owned(), value.to_owned()));
        rest = tail;
    }
    Ok((
        FileType {
            ty: ty.to_owned(),
            subtype: subtype.to_owned(),
            params,
        },
        rest,
    ))
}

fn write_file_selector(f: &mut fmt::Formatter<'_>, sel: &FileSelector) -> fmt::Result {
    let mut sep = ':';
    if let Some(name) = &sel.name {
        write!(f, "{sep}name:\"")?;
        encode_filename(f, name)?;
        f.write_str("\"")?;
        sep = ' ';
    }
    if let Some(t) = &sel.media_type {
        write!(f, "{sep}type:{}/{}", t.ty, t.subtype)?;
        for (k, v) in &t.params {
            write!(f, ";{k}=\"{v}\"")?;
        }
        sep = ' ';
    }
    if let Some(size) = sel.size {
        write!(f, "{sep}size:{size}")?;
        sep = ' ';
    }
    for h in &sel.hashes {
        write!(f, "{sep}hash:{}:", h.algorithm)?;
        for (i, b) in h.value.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        sep = ' ';
    }
    Ok(())
}

// file-date-attr = "file-date:" date-param *(SP date-param)
// date-param = c-date-param / m-date-param / r-date-param
// c-date-param = "creation:" DQUOTE date-time DQUOTE  (date-time per RFC 5322)
fn parse_file_date(v: &str) -> Result<FileDate, SdpError> {
    let mut d = FileDate::default();
    let mut rest = v.trim_start_matches(' ');
    if rest.is_empty() {
        return Err(SdpError::BadDate);
    }
    while !rest.is_empty() {
        let (label, r) = rest.split_once(':').ok_or(SdpError::BadDate)?;
        let slot = match label {
            "creation" => &mut d.creation,
            "modification" => &mut d.modification,
            "read" => &mut d.read,
            _ => return Err(SdpError::BadDate),
        };
        let (date, tail) = read_dquoted(r).ok_or(SdpError::BadDate)?;
        if slot.is_some() || date.is_empty() || date.chars().any(char::is_control) {
            return Err(SdpError::BadDate);
        }
        *slot = Some(date.to_owned());
        if !(tail.is_empty() || tail.starts_with(' ')) {
            return Err(SdpError::BadDate);
        }
        rest = tail.trim_start_matches(' ');
    }
    Ok(d)
}

// file-range-attr = "file-range:" start-offset "-" stop-offset
// start-offset = integer (from 1); stop-offset = integer / "*"
fn parse_file_range(v: &str) -> Result<FileRange, SdpError> {
    let (start, stop) = v.split_once('-').ok_or(SdpError::BadRange)?;
    let start = parse_u64(start).map_err(|_| SdpError::BadRange)?;
    let stop = match stop {
        "*" => None,
        s => Some(parse_u64(s).map_err(|_| SdpError::BadRange)?),
    };
    if start == 0 || stop.is_some_and(|s| s < start) {
        return Err(SdpError::BadRange);
    }
    Ok(FileRange { start, stop })
}

// ---------------------------------------------------------------------------------------
// Collecting a media description's attributes.

/// The MSRP-related attributes of one SDP media description, as gathered by
/// [`MsrpAttributes::collect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsrpAttributes {
    /// `a=path`.
    pub path: Option<Vec<MsrpUri>>,
    /// `a=accept-types`.
    pub accept_types: Option<Vec<String>>,
    /// `a=accept-wrapped-types`.
    pub accept_wrapped_types: Option<Vec<String>>,
    /// `a=max-size`.
    pub max_size: Option<u64>,
    /// `a=setup`.
    pub setup: Option<Setup>,
    /// `a=connection`.
    pub connection: Option<Connection>,
    /// `a=msrp-cema` present.
    pub msrp_cema: bool,
    /// `a=file-selector`.
    pub file_selector: Option<FileSelector>,
    /// `a=file-transfer-id`.
    pub file_transfer_id: Option<String>,
    /// `a=file-disposition`.
    pub file_disposition: Option<String>,
    /// `a=file-date`.
    pub file_date: Option<FileDate>,
    /// `a=file-icon`.
    pub file_icon: Option<String>,
    /// `a=file-range`.
    pub file_range: Option<FileRange>,
    /// Every other attribute, in order (direction attributes such as `a=sendrecv`,
    /// `a=file-description`, extensions ...).
    pub other: Vec<Attribute>,
}

fn set_once<T>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), SdpError> {
    if slot.is_some() {
        return Err(SdpError::Duplicate(name));
    }
    *slot = Some(v);
    Ok(())
}

impl MsrpAttributes {
    /// Gathers attributes from SDP attribute lines (with or without `a=`). Lines that are
    /// not attributes (`m=`, `c=` ...) are an error; filter them out first. A known
    /// attribute that appears twice is an error ([`SdpError::Duplicate`]).
    pub fn collect<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<Self, SdpError> {
        let mut out = MsrpAttributes::default();
        for line in lines {
            out.push(Attribute::parse(line)?)?;
        }
        Ok(out)
    }

    /// Adds one attribute.
    pub fn push(&mut self, attr: Attribute) -> Result<(), SdpError> {
        match attr {
            Attribute::Path(p) => set_once(&mut self.path, p, "path"),
            Attribute::AcceptTypes(l) => set_once(&mut self.accept_types, l, "accept-types"),
            Attribute::AcceptWrappedTypes(l) => {
                set_once(&mut self.accept_wrapped_types, l, "accept-wrapped-types")
            }
            Attribute::MaxSize(n) => set_once(&mut self.max_size, n, "max-size"),
            Attribute::Setup(s) => set_once(&mut self.setup, s, "setup"),
            Attribute::Connection(c) => set_once(&mut self.connection, c, "connection"),
            Attribute::MsrpCema => {
                if self.msrp_cema {
                    return Err(SdpError::Duplicate("msrp-cema"));
                }
                self.msrp_cema = true;
                Ok(())
            }
            Attribute::FileSelector(s) => set_once(&mut self.file_selector, s, "file-selector"),
            Attribute::FileTransferId(v) => {
                set_once(&mut self.file_transfer_id, v, "file-transfer-id")
            }
            Attribute::FileDisposition(v) => {
                set_once(&mut self.file_disposition, v, "file-disposition")
            }
            Attribute::FileDate(d) => set_once(&mut self.file_date, d, "file-date"),
            Attribute::FileIcon(v) => set_once(&mut self.file_icon, v, "file-icon"),
            Attribute::FileRange(r) => set_once(&mut self.file_range, r, "file-range"),
            other @ Attribute::Other { .. } => {
                self.other.push(other);
                Ok(())
            }
        }
    }

    /// The attributes back as canonical lines (`a=...`, no line ends): the known ones in
    /// a fixed order, then the others in the order collected.
    pub fn to_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |a: Attribute| out.push(a.to_string());
        if let Some(v) = &self.accept_types {
            add(Attribute::AcceptTypes(v.clone()));
        }
        if let Some(v) = &self.accept_wrapped_types {
            add(Attribute::AcceptWrappedTypes(v.clone()));
        }
        if let Some(v) = self.max_size {
            add(Attribute::MaxSize(v));
        }
        if let Some(v) = &self.path {
            add(Attribute::Path(v.clone()));
        }
        if let Some(v) = self.setup {
            add(Attribute::Setup(v));
        }
        if let Some(v) = self.connection {
            add(Attribute::Connection(v));
        }
        if self.msrp_cema {
            add(Attribute::MsrpCema);
        }
        if let Some(v) = &self.file_selector {
            add(Attribute::FileSelector(v.clone()));
        }
        if let Some(v) = &self.file_transfer_id {
            add(Attribute::FileTransferId(v.clone()));
        }
        if let Some(v) = &self.file_disposition {
            add(Attribute::FileDisposition(v.clone()));
        }
        if let Some(v) = &self.file_date {
            add(Attribute::FileDate(v.clone()));
        }
        if let Some(v) = &self.file_icon {
            add(Attribute::FileIcon(v.clone()));
        }
        if let Some(v) = self.file_range {
            add(Attribute::FileRange(v));
        }
        for a in &self.other {
            add(a.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Attribute {
        Attribute::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rfc4975_attributes() {
        let a = p("a=path:msrp://atlanta.example.com:7654/jshA7weztas;tcp");
        let Attribute::Path(path) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(path[0].session_id(), Some("jshA7weztas"));
        assert_eq!(
            a.to_string(),
            "a=path:msrp://atlanta.example.com:7654/jshA7weztas;tcp"
        );
        assert_eq!(
            p("accept-types:message/cpim text/plain text/html"),
            Attribute::AcceptTypes(vec![
                "message/cpim".into(),
                "text/plain".into(),
                "text/html".into()
            ])
        );
        assert_eq!(
            p("a=accept-wrapped-types:*").to_string(),
            "a=accept-wrapped-types:*"
        );
        assert_eq!(p("a=max-size:131072\r\n"), Attribute::MaxSize(131_072));
        assert_eq!(p("a=setup:actpass"), Attribute::Setup(Setup::ActPass));
        assert_eq!(
            p("a=connection:new"),
            Attribute::Connection(Connection::New)
        );
        assert_eq!(p("a=msrp-cema"), Attribute::MsrpCema);
    }

    #[test]
    fn rfc5547_attributes() {
        let line = "a=file-selector:name:\"My cool picture.jpg\" type:image/jpeg size:32349 \
                    hash:sha-1:72:24:5F:E8:65:3D:DA:F3:71:36:2F:86:D4:71:91:3E:E4:A2:CE:2E";
        let a = p(line);
        let Attribute::FileSelector(sel) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(sel.name.as_deref(), Some("My cool picture.jpg"));
        assert_eq!(sel.size, Some(32349));
        let ft = sel.media_type.as_ref().unwrap();
        assert_eq!((ft.ty.as_str(), ft.subtype.as_str()), ("image", "jpeg"));
        assert_eq!(sel.hashes[0].algorithm, "sha-1");
        assert_eq!(sel.hashes[0].value.len(), 20);
        assert_eq!(sel.hashes[0].value[0], 0x72);
        assert_eq!(a.to_string(), line);

        assert_eq!(
            p("a=file-transfer-id:vBnG916bdberum2fFEABR1FR3ExZMUrd"),
            Attribute::FileTransferId("vBnG916bdberum2fFEABR1FR3ExZMUrd".into())
        );
        assert_eq!(
            p("a=file-disposition:render"),
            Attribute::FileDisposition("render".into())
        );
        let d = p(
            "a=file-date:modification:\"Mon, 15 May 2006 15:01:31 +0300\" creation:\"Sun, 14 May 2006 10:00:00 +0300\"",
        );
        assert_eq!(
            d,
            Attribute::FileDate(FileDate {
                creation: Some("Sun, 14 May 2006 10:00:00 +0300".into()),
                modification: Some("Mon, 15 May 2006 15:01:31 +0300".into()),
                read: None,
            })
        );
        assert_eq!(
            d.to_string(),
            "a=file-date:creation:\"Sun, 14 May 2006 10:00:00 +0300\" modification:\"Mon, 15 May 2006 15:01:31 +0300\""
        );
        assert_eq!(
            p("a=file-icon:cid:id2@alicepc.example.com"),
            Attribute::FileIcon("cid:id2@alicepc.example.com".into())
        );
        assert_eq!(
            p("a=file-range:1-32349"),
            Attribute::FileRange(FileRange {
                start: 1,
                stop: Some(32349)
            })
        );
        assert_eq!(
            p("a=file-range:10-*"),
            Attribute::FileRange(FileRange {
                start: 10,
                stop: None
            })
        );
        assert_eq!(p("a=file-range:10-*").to_string(), "a=file-range:10-*");
    }

    #[test]
    fn file_selector_details() {
        // Percent-encoded name, type parameters quoted or not, no value at all.
        let a = p(
            "a=file-selector:name:\"a%22b%25c%0D.txt\" type:text/plain;charset=UTF-8;format=\"flowed x\"",
        );
        let Attribute::FileSelector(sel) = &a else {
            panic!()
        };
        assert_eq!(sel.name.as_deref(), Some("a\"b%c\r.txt"));
        assert_eq!(
            sel.media_type.as_ref().unwrap().params,
            [
                ("charset".to_owned(), "UTF-8".to_owned()),
                ("format".to_owned(), "flowed x".to_owned())
            ]
        );
        assert_eq!(
            a.to_string(),
            "a=file-selector:name:\"a%22b%25c%0D.txt\" type:text/plain;charset=\"UTF-8\";format=\"flowed x\""
        );
        assert_eq!(
            p("a=file-selector"),
            Attribute::FileSelector(FileSelector::default())
        );
        assert_eq!(p("a=file-selector").to_string(), "a=file-selector");
        // UTF-8 names pass through unencoded.
        let a = p("a=file-selector:name:\"résumé.pdf\"");
        assert_eq!(a.to_string(), "a=file-selector:name:\"résumé.pdf\"");
    }

    #[test]
    fn errors_are_typed() {
        let cases: &[(&str, SdpError)] = &[
            ("a=", SdpError::NotAnAttribute),
            ("a=bad name:x", SdpError::NotAnAttribute),
            ("a=path", SdpError::MissingValue("path")),
            ("a=path:http://x;tcp", SdpError::Path(UriError::BadScheme)),
            ("a=path:", SdpError::Path(UriError::EmptyPath)),
            ("a=accept-types:", SdpError::BadMediaType),
            ("a=accept-types:text", SdpError::BadMediaType),
            ("a=accept-types:text/", SdpError::BadMediaType),
            ("a=max-size:-1", SdpError::BadNumber),
            ("a=max-size:99999999999999999999999", SdpError::BadNumber),
            ("a=setup:both", SdpError::BadSetup),
            ("a=connection:old", SdpError::BadConnection),
            ("a=file-transfer-id:a b", SdpError::BadToken),
            ("a=file-selector:name:\"x\"size:1", SdpError::BadSelector),
            ("a=file-selector:colour:red", SdpError::BadSelector),
            ("a=file-selector:size:1 size:2", SdpError::BadSelector),
            ("a=file-selector:name:\"\"", SdpError::BadFilename),
            ("a=file-selector:name:\"a%4\"", SdpError::BadFilename),
            ("a=file-selector:name:\"%FF\"", SdpError::BadFilename),
            ("a=file-selector:name:\"x", SdpError::BadFilename),
            ("a=file-selector:hash:sha-1:7", SdpError::BadHash),
            ("a=file-selector:hash:sha-1:72:", SdpError::BadHash),
            ("a=file-selector:hash:72", SdpError::BadHash),
            ("a=file-selector:type:image", SdpError::BadMediaType),
            ("a=file-selector:type:image/jpeg;x", SdpError::BadMediaType),
            ("a=file-date:", SdpError::BadDate),
            ("a=file-date:creation:x", SdpError::BadDate),
            ("a=file-date:birth:\"x\"", SdpError::BadDate),
            ("a=file-date:read:\"x\" read:\"y\"", SdpError::BadDate),
            ("a=file-icon:http://x", SdpError::BadIcon),
            ("a=file-icon:cid:", SdpError::BadIcon),
            ("a=file-range:0-5", SdpError::BadRange),
            ("a=file-range:5-4", SdpError::BadRange),
            ("a=file-range:5", SdpError::BadRange),
            ("a=file-range:*-5", SdpError::BadRange),
        ];
        for (line, e) in cases {
            assert_eq!(Attribute::parse(line).unwrap_err(), *e, "{line}");
        }
        let long = format!("a=x:{}", "y".repeat(MAX_LINE_LEN));
        assert_eq!(
            Attribute::parse(&long),
            Err(SdpError::TooLong { max: MAX_LINE_LEN })
        );
    }

    #[test]
    fn unknown_attributes_are_kept() {
        assert_eq!(
            p("a=sendonly"),
            Attribute::Other {
                name: "sendonly".into(),
                value: None
            }
        );
        let a = p("a=file-description:a:b c");
        assert_eq!(a.to_string(), "a=file-description:a:b c");
        // msrp-cema with a value is not RFC 6714's: kept as is.
        assert!(matches!(p("a=msrp-cema:x"), Attribute::Other { .. }));
    }

    #[test]
    fn collect_media_attributes() {
        let lines = [
            "a=accept-types:message/cpim",
            "a=accept-wrapped-types:text/plain image/*",
            "a=path:msrps://alice.example.com:9000/s1;tcp",
            "a=sendonly",
            "a=file-selector:name:\"f.bin\" size:10",
            "a=file-transfer-id:abc",
            "a=file-range:1-*",
            "a=setup:active",
            "a=x-extension:1",
        ];
        let m = MsrpAttributes::collect(lines).unwrap();
        assert_eq!(
            m.accept_types.as_deref(),
            Some(&["message/cpim".to_owned()][..])
        );
        assert_eq!(m.path.as_ref().unwrap()[0].effective_port(), 9000);
        assert_eq!(m.setup, Some(Setup::Active));
        assert_eq!(m.file_selector.as_ref().unwrap().size, Some(10));
        assert_eq!(m.other.len(), 2);
        assert_eq!(m.other[1].name(), "x-extension");
        let lines = m.to_lines();
        let again = MsrpAttributes::collect(lines.iter().map(String::as_str)).unwrap();
        assert_eq!(again, m);
        assert_eq!(
            MsrpAttributes::collect(["a=max-size:1", "max-size:2"]),
            Err(SdpError::Duplicate("max-size"))
        );
        assert_eq!(
            MsrpAttributes::collect(["a=msrp-cema", "a=msrp-cema"]),
            Err(SdpError::Duplicate("msrp-cema"))
        );
    }
}
