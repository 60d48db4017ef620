//! MSRP URIs (RFC 4975 §6, §9) and MSRP paths (To-Path, From-Path, Use-Path, `a=path`).
//!
//! ```text
//! MSRP-URI      = msrp-scheme "://" authority
//!                 ["/" session-id] ";" transport *( ";" URI-parameter)
//! msrp-scheme   = "msrp" / "msrps"
//! session-id    = 1*( unreserved / "+" / "=" / "/" )
//! transport     = "tcp" / 1*ALPHANUM
//! URI-parameter = token ["=" token]
//! ```
//!
//! The authority is RFC 3986's (`[userinfo "@"] host [":" port]`). Parsing is bounded:
//! input longer than [`MAX_URI_LEN`] (or [`MAX_PATH_LEN`] for a path) is refused before
//! any work is done, so a hostile peer cannot make the parser allocate or scan much.
//!
//! Equality and hashing follow the comparison rules of RFC 4975 §6.1, not string
//! equality; see [`MsrpUri`]'s `PartialEq` implementation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use nom::IResult;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::char as nom_char;

/// Longest MSRP URI [`MsrpUri::from_str`] accepts, in bytes.
pub const MAX_URI_LEN: usize = 2048;
/// Longest path value (space-separated URIs) [`parse_path`] accepts, in bytes.
pub const MAX_PATH_LEN: usize = 16 * 1024;
/// Most URIs [`parse_path`] accepts in one path.
pub const MAX_PATH_URIS: usize = 64;
/// Most URI parameters (after the transport) one URI may carry.
pub const MAX_URI_PARAMS: usize = 32;

/// The default MSRP port for both `msrp` and `msrps` (RFC 4975 §6, §15.6).
pub const DEFAULT_PORT: u16 = 2855;

/// Why a string is not an MSRP URI or an MSRP path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The input is longer than the configured bound.
    #[error("input is {len} bytes long, more than the {max} accepted")]
    TooLong {
        /// Length of the input.
        len: usize,
        /// The bound that was exceeded.
        max: usize,
    },
    /// The input does not start with `msrp://` or `msrps://`.
    #[error("scheme is not msrp:// or msrps://")]
    BadScheme,
    /// The userinfo part (before `@`) holds a character RFC 3986 does not allow.
    #[error("invalid userinfo")]
    BadUserinfo,
    /// The host is missing, or is not a reg-name, an IPv4 address or a bracketed IPv6 address.
    #[error("invalid or missing host")]
    BadHost,
    /// The port is not a decimal number between 0 and 65535.
    #[error("invalid port")]
    BadPort,
    /// A `/` was not followed by a valid session-id.
    #[error("invalid session-id")]
    BadSessionId,
    /// The mandatory `;transport` part is missing.
    #[error("missing ;transport")]
    MissingTransport,
    /// The transport is empty or not alphanumeric.
    #[error("invalid transport")]
    BadTransport,
    /// A URI parameter is not `token ["=" token]`.
    #[error("invalid URI parameter")]
    BadParameter,
    /// More than [`MAX_URI_PARAMS`] URI parameters.
    #[error("more than {max} URI parameters")]
    TooManyParameters {
        /// The bound that was exceeded.
        max: usize,
    },
    /// Characters follow a complete URI.
    #[error("unexpected character at byte {at}")]
    TrailingData {
        /// Byte offset of the first unexpected character.
        at: usize,
    },
    /// A path holds no URI.
    #[error("empty path")]
    EmptyPath,
    /// A path holds more than [`MAX_PATH_URIS`] URIs.
    #[error("more than {max} URIs in a path")]
    TooManyUris {
        /// The bound that was exceeded.
        max: usize,
    },
}

/// The host part of an MSRP URI's authority (RFC 3986 §3.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A registered name (usually a DNS name). Percent-encoded unreserved characters are
    /// decoded and the remaining percent-encodings use upper-case hex digits. Kept in the
    /// case it was written; [`MsrpUri`] compares it case-insensitively.
    Name(String),
    /// An IPv4 address in dotted-decimal form.
    V4(Ipv4Addr),
    /// An IPv6 address, written in brackets in a URI.
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

impl From<Ipv4Addr> for Host {
    fn from(a: Ipv4Addr) -> Self {
        Host::V4(a)
    }
}

impl From<Ipv6Addr> for Host {
    fn from(a: Ipv6Addr) -> Self {
        Host::V6(a)
    }
}

impl From<std::net::IpAddr> for Host {
    fn from(a: std::net::IpAddr) -> Self {
        match a {
            std::net::IpAddr::V4(a) => Host::V4(a),
            std::net::IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl FromStr for Host {
    type Err = UriError;

    /// Parses a host as it appears in a URI: a reg-name, a dotted IPv4 address or a
    /// bracketed IPv6 address.
    fn from_str(s: &str) -> Result<Self, UriError> {
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong {
                len: s.len(),
                max: MAX_URI_LEN,
            });
        }
        let (rest, host) = parse_host(s)?;
        if rest.is_empty() {
            Ok(host)
        } else {
            Err(UriError::BadHost)
        }
    }
}

/// An MSRP URI (RFC 4975 §6, §9).
///
/// Equality and [`Hash`] follow RFC 4975 §6.1: the scheme, the host (case-insensitively),
/// the port (an explicit port never equals an absent one), the session-id
/// (case-sensitively) and the transport (case-insensitively) are compared; the userinfo
/// and the URI parameters are not.
#[derive(Debug, Clone)]
pub struct MsrpUri {
    secure: bool,
    user: Option<String>,
    host: Host,
    port: Option<u16>,
    session_id: Option<String>,
    transport: String,
    params: Vec<(String, Option<String>)>,
}

impl MsrpUri {
    /// Builds a URI from its parts, checking each against the RFC 4975 §9 grammar.
    ///
    /// A [`Host::Name`] that spells an IPv4 address becomes [`Host::V4`]; a name is
    /// normalized like a parsed one.
    pub fn new(
        secure: bool,
        host: Host,
        port: Option<u16>,
        session_id: Option<&str>,
        transport: &str,
    ) -> Result<Self, UriError> {
        let host = match host {
            Host::Name(n) => n.parse::<Host>()?,
            other => other,
        };
        if let Some(sid) = session_id {
            check_session_id(sid)?;
        }
        check_transport(transport)?;
        Ok(MsrpUri {
            secure,
            user: None,
            host,
            port,
            session_id: session_id.map(str::to_owned),
            transport: transport.to_owned(),
            params: Vec::new(),
        })
    }

    /// `true` for the `msrps` scheme (TLS), `false` for `msrp`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The userinfo part (before `@`), as written. Not part of URI comparison.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port to connect to: the explicit port, or [`DEFAULT_PORT`] (2855) for both
    /// schemes (RFC 4975 §6: "If the port is not specified, the default port 2855 is used").
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// The session-id, if any.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// The transport (`tcp`, `ws`, ...), in the case it was written.
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The URI parameters after the transport, in order.
    pub fn params(&self) -> &[(String, Option<String>)] {
        &self.params
    }

    /// The value of the first parameter named `name` (compared case-insensitively, as
    /// RFC 4975 §9 says of tokens). `Some(None)` for a parameter without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// This URI with another session-id.
    pub fn with_session_id(mut self, session_id: &str) -> Result<Self, UriError> {
        check_session_id(session_id)?;
        self.session_id = Some(session_id.to_owned());
        Ok(self)
    }

    /// This URI without a session-id.
    pub fn without_session_id(mut self) -> Self {
        self.session_id = None;
        self
    }

    /// This URI with another (or no) explicit port.
    pub fn with_port(mut self, port: Option<u16>) -> Self {
        self.port = port;
        self
    }

    /// This URI with the given userinfo (RFC 3986 §3.2.1 characters only).
    pub fn with_user(mut self, user: &str) -> Result<Self, UriError> {
        if !is_valid_userinfo(user) {
            return Err(UriError::BadUserinfo);
        }
        self.user = Some(user.to_owned());
        Ok(self)
    }

    /// This URI with one more URI parameter (`token ["=" token]`, RFC 4975 §9).
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Result<Self, UriError> {
        if !is_token(name) || value.is_some_and(|v| !is_token(v)) {
            return Err(UriError::BadParameter);
        }
        if self.params.len() >= MAX_URI_PARAMS {
            return Err(UriError::TooManyParameters {
                max: MAX_URI_PARAMS,
            });
        }
        self.params
            .push((name.to_owned(), value.map(str::to_owned)));
        Ok(self)
    }
}

impl FromStr for MsrpUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        if s.len() > MAX_URI_LEN {
            return Err(UriError::TooLong {
                len: s.len(),
                max: MAX_URI_LEN,
            });
        }
        let (rest, uri) = parse_uri(s)?;
        if rest.is_empty() {
            Ok(uri)
        } else {
            Err(UriError::TrailingData {
                at: s.len() - rest.len(),
            })
        }
    }
}

impl fmt::Display for MsrpUri {
    /// The canonical form: lower-case scheme, the host as normalized by the parser (IPv6
    /// compressed), the port without leading zeros, then session-id, transport and
    /// parameters as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "msrps://" } else { "msrp://" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(sid) = &self.session_id {
            write!(f, "/{sid}")?;
        }
        write!(f, ";{}", self.transport)?;
        for (name, value) in &self.params {
            match value {
                Some(v) => write!(f, ";{name}={v}")?,
                None => write!(f, ";{name}")?,
            }
        }
        Ok(())
    }
}

// RFC 4975 §6.1, rule 2: the authority is compared for address equivalence if it is an IP
// address, otherwise as a case-insensitive string.
fn host_eq(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Name(x), Host::Name(y)) => x.eq_ignore_ascii_case(y),
        (Host::V4(x), Host::V4(y)) => x == y,
        (Host::V6(x), Host::V6(y)) => x == y,
        _ => false,
    }
}

impl PartialEq for MsrpUri {
    fn eq(&self, other: &Self) -> bool {
        // RFC 4975 §6.1:
        // 1. The scheme must match (case-insensitive; normalized to a bool at parse time).
        // 2. Userinfo parts are not considered; the host is compared as an address or as a
        //    case-insensitive string.
        // 3. If the port exists explicitly in either URI it must match exactly: a URI with
        //    an explicit port is never equivalent to one with no port.
        // 4. The session-id is compared case-sensitively; a URI without one never equals
        //    one with one.
        // 5. URIs with different transports never match; the transport is case-insensitive.
        // URI parameters other than the transport take no part in the comparison.
        self.secure == other.secure
            && host_eq(&self.host, &other.host)
            && self.port == other.port
            && self.session_id == other.session_id
            && self.transport.eq_ignore_ascii_case(&other.transport)
    }
}

impl Eq for MsrpUri {}

impl Hash for MsrpUri {
    // Hashes exactly what `eq` compares, folding case where `eq` ignores it.
    fn hash<H: Hasher>(&self, state: &mut H) {
        fn hash_folded<H: Hasher>(s: &str, state: &mut H) {
            for b in s.bytes() {
                state.write_u8(b.to_ascii_lowercase());
            }
            state.write_u8(0xff);
        }
        self.secure.hash(state);
        match &self.host {
            Host::Name(n) => {
                state.write_u8(0);
                hash_folded(n, state);
            }
            Host::V4(a) => {
                state.write_u8(1);
                a.hash(state);
            }
            Host::V6(a) => {
                state.write_u8(2);
                a.hash(state);
            }
        }
        self.port.hash(state);
        self.session_id.hash(state);
        hash_folded(&self.transport, state);
    }
}

/// Parses an MSRP path: one or more MSRP URIs separated by one or more spaces (the value
/// of To-Path, From-Path and Use-Path, RFC 4975 §9 and RFC 4976 §6.1, and of SDP `a=path`,
/// RFC 4975 §8.1). Leading and trailing spaces are tolerated.
pub fn parse_path(s: &str) -> Result<Vec<MsrpUri>, UriError> {
    if s.len() > MAX_PATH_LEN {
        return Err(UriError::TooLong {
            len: s.len(),
            max: MAX_PATH_LEN,
        });
    }
    let mut uris = Vec::new();
    let mut rest = s.trim_start_matches(' ');
    while !rest.is_empty() {
        if uris.len() == MAX_PATH_URIS {
            return Err(UriError::TooManyUris { max: MAX_PATH_URIS });
        }
        let start = s.len() - rest.len();
        let end = rest.find(' ').unwrap_or(rest.len());
        if end > MAX_URI_LEN {
            return Err(UriError::TooLong {
                len: end,
                max: MAX_URI_LEN,
            });
        }
        let (after, uri) = parse_uri(rest)?;
        if !(after.is_empty() || after.starts_with(' ')) {
            return Err(UriError::TrailingData {
                at: start + (rest.len() - after.len()),
            });
        }
        uris.push(uri);
        rest = after.trim_start_matches(' ');
    }
    if uris.is_empty() {
        return Err(UriError::EmptyPath);
    }
    Ok(uris)
}

/// Formats an MSRP path: the URIs separated by single spaces (RFC 4975 §9).
pub fn format_path(uris: &[MsrpUri]) -> String {
    let mut out = String::new();
    for (i, u) in uris.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&u.to_string());
    }
    out
}

// ---------------------------------------------------------------------------------------
// Character classes.

// RFC 3986 §2.3: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

// RFC 3986 §2.2: sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="
fn is_sub_delim(c: char) -> bool {
    matches!(
        c,
        '!' | '$' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | ';' | '='
    )
}

// RFC 3986 §3.2.1: userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
fn is_userinfo_char(c: char) -> bool {
    is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '%'
}

// RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ). The ";" sub-delim
// is left out: in an MSRP URI it always starts the transport (RFC 4975 §9), and a host
// holding one could not be told apart from it.
fn is_reg_name_char(c: char) -> bool {
    (is_unreserved(c) || is_sub_delim(c) || c == '%') && c != ';'
}

// RFC 4975 §9: session-id = 1*( unreserved / "+" / "=" / "/" )
fn is_session_id_char(c: char) -> bool {
    is_unreserved(c) || matches!(c, '+' | '=' | '/')
}

// RFC 4975 §9: token = 1*(%x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E)
fn is_token_char(c: char) -> bool {
    matches!(c as u32,
        0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn pct_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG
            if i + 2 >= b.len() || !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

fn is_valid_userinfo(s: &str) -> bool {
    s.chars().all(is_userinfo_char) && pct_ok(s)
}

fn check_session_id(s: &str) -> Result<(), UriError> {
    if s.is_empty() || !s.chars().all(is_session_id_char) {
        return Err(UriError::BadSessionId);
    }
    Ok(())
}

fn check_transport(s: &str) -> Result<(), UriError> {
    // RFC 4975 §9: transport = "tcp" / 1*ALPHANUM
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(UriError::BadTransport);
    }
    Ok(())
}

// RFC 3986 §6.2.2.2 (applied by RFC 4975 §6.1 rule 2): percent-encoded unreserved
// characters are decoded before comparison, and hex digits are case-insensitive. The
// normalized name decodes those and upper-cases the hex digits of the others.
fn normalize_reg_name(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = &s[i + 1..i + 3];
            let v = u8::from_str_radix(hex, 16).unwrap_or(0);
            let c = char::from(v);
            if v.is_ascii() && is_unreserved(c) {
                out.push(c);
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Parsers (nom, complete input).

type NomErr<'a> = nom::error::Error<&'a str>;

fn parse_scheme(i: &str) -> Result<(&str, bool), UriError> {
    let r: IResult<&str, &str, NomErr<'_>> = tag_no_case("msrp")(i);
    let (i, _) = r.map_err(|_| UriError::BadScheme)?;
    let r: IResult<&str, &str, NomErr<'_>> = tag_no_case("s")(i);
    let (i, secure) = match r {
        Ok((i, _)) => (i, true),
        Err(_) => (i, false),
    };
    let r: IResult<&str, &str, NomErr<'_>> = tag("://")(i);
    let (i, _) = r.map_err(|_| UriError::BadScheme)?;
    Ok((i, secure))
}

fn parse_userinfo(i: &str) -> Result<(&str, Option<String>), UriError> {
    let r: IResult<&str, &str, NomErr<'_>> = take_while(is_userinfo_char)(i);
    let Ok((after, user)) = r else {
        return Ok((i, None));
    };
    let r: IResult<&str, char, NomErr<'_>> = nom_char('@')(after);
    match r {
        Ok((after_at, _)) => {
            if !pct_ok(user) {
                return Err(UriError::BadUserinfo);
            }
            Ok((after_at, Some(user.to_owned())))
        }
        Err(_) => Ok((i, None)),
    }
}

fn parse_host(i: &str) -> Result<(&str, Host), UriError> {
    if let Some(inner) = i.strip_prefix('[') {
        // RFC 3986 §3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]". IPvFuture
        // has no meaning for MSRP and is refused.
        let r: IResult<&str, &str, NomErr<'_>> =
            take_while1(|c: char| c.is_ascii_hexdigit() || c == ':' || c == '.')(inner);
        let (after, addr) = r.map_err(|_| UriError::BadHost)?;
        let r: IResult<&str, char, NomErr<'_>> = nom_char(']')(after);
        let (after, _) = r.map_err(|_| UriError::BadHost)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| UriError::BadHost)?;
        return Ok((after, Host::V6(addr)));
    }
    let r: IResult<&str, &str, NomErr<'_>> = take_while1(is_reg_name_char)(i);
    let (after, name) = r.map_err(|_| UriError::BadHost)?;
    if !pct_ok(name) {
        return Err(UriError::BadHost);
    }
    // RFC 3986 §3.2.2: a host that matches IPv4address is an IPv4 literal, not a reg-name
    // (the "first-match-wins" rule). Checked after percent-decoding so that a name and
    // its normalized form always denote the same host.
    let name = normalize_reg_name(name);
    if let Ok(a) = name.parse::<Ipv4Addr>() {
        return Ok((after, Host::V4(a)));
    }
    Ok((after, Host::Name(name)))
}

fn parse_port(i: &str) -> Result<(&str, Option<u16>), UriError> {
    let Some(after_colon) = i.strip_prefix(':') else {
        return Ok((i, None));
    };
    // RFC 3986 §3.2.3: port = *DIGIT. An empty port means no port.
    let r: IResult<&str, &str, NomErr<'_>> = take_while(|c: char| c.is_ascii_digit())(after_colon);
    let (after, digits) = r.map_err(|_| UriError::BadPort)?;
    if digits.is_empty() {
        return Ok((after, None));
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 5 {
        return Err(UriError::BadPort);
    }
    let value: u32 = if significant.is_empty() {
        0
    } else {
        significant.parse().map_err(|_| UriError::BadPort)?
    };
    let port = u16::try_from(value).map_err(|_| UriError::BadPort)?;
    Ok((after, Some(port)))
}

fn parse_session_id(i: &str) -> Result<(&str, Option<String>), UriError> {
    let Some(after_slash) = i.strip_prefix('/') else {
        return Ok((i, None));
    };
    let r: IResult<&str, &str, NomErr<'_>> = take_while1(is_session_id_char)(after_slash);
    let (after, sid) = r.map_err(|_| UriError::BadSessionId)?;
    Ok((after, Some(sid.to_owned())))
}

fn parse_transport(i: &str) -> Result<(&str, String), UriError> {
    let r: IResult<&str, char, NomErr<'_>> = nom_char(';')(i);
    let (i, _) = r.map_err(|_| UriError::MissingTransport)?;
    let r: IResult<&str, &str, NomErr<'_>> = take_while1(|c: char| c.is_ascii_alphanumeric())(i);
    let (i, t) = r.map_err(|_| UriError::BadTransport)?;
    Ok((i, t.to_owned()))
}

type Params = Vec<(String, Option<String>)>;

fn parse_params(mut i: &str) -> Result<(&str, Params), UriError> {
    let mut params = Vec::new();
    while let Some(after_semi) = i.strip_prefix(';') {
        if params.len() == MAX_URI_PARAMS {
            return Err(UriError::TooManyParameters {
                max: MAX_URI_PARAMS,
            });
        }
        let r: IResult<&str, &str, NomErr<'_>> = take_while1(is_token_char)(after_semi);
        let (after, name) = r.map_err(|_| UriError::BadParameter)?;
        let (after, value) = match after.strip_prefix('=') {
            Some(v) => {
                let r: IResult<&str, &str, NomErr<'_>> = take_while1(is_token_char)(v);
                let (after, value) = r.map_err(|_| UriError::BadParameter)?;
                (after, Some(value.to_owned()))
            }
            None => (after, None),
        };
        params.push((name.to_owned(), value));
        i = after;
    }
    Ok((i, params))
}

/// Parses one URI from the start of `i`, returning what follows it.
fn parse_uri(i: &str) -> Result<(&str, MsrpUri), UriError> {
    let (i, secure) = parse_scheme(i)?;
    let (i, user) = parse_userinfo(i)?;
    let (i, host) = parse_host(i)?;
    let (i, port) = parse_port(i)?;
    let (i, session_id) = parse_session_id(i)?;
    let (i, transport) = parse_transport(i)?;
    let (i, params) = parse_params(i)?;
    Ok((
        i,
        MsrpUri {
            secure,
            user,
            host,
            port,
            session_id,
            transport,
            params,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn p(s: &str) -> MsrpUri {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn h(u: &MsrpUri) -> u64 {
        let mut s = DefaultHasher::new();
        u.hash(&mut s);
        s.finish()
    }

    #[test]
    fn rfc4975_examples_parse() {
        // RFC 4975 §6 and §7 examples.
        let u = p("msrp://atlanta.example.com:7654/jshA7weztas;tcp");
        assert!(!u.secure());
        assert_eq!(u.host(), &Host::Name("atlanta.example.com".into()));
        assert_eq!(u.port(), Some(7654));
        assert_eq!(u.session_id(), Some("jshA7weztas"));
        assert_eq!(u.transport(), "tcp");
        assert!(u.params().is_empty());
        assert_eq!(u.user(), None);

        let u = p("msrps://bob.example.com:8888/9di4eae923wzd;tcp");
        assert!(u.secure());
        assert_eq!(u.effective_port(), 8888);

        let u = p("msrps://alice@intra.example.com;tcp");
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.session_id(), None);
        assert_eq!(u.port(), None);
        assert_eq!(u.effective_port(), DEFAULT_PORT);
    }

    #[test]
    fn ip_hosts() {
        let u = p("msrp://192.0.2.1:2855/abc;tcp");
        assert_eq!(u.host(), &Host::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let u = p("msrp://[2001:DB8::1]:2855/abc;tcp");
        assert_eq!(u.host(), &Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.to_string(), "msrp://[2001:db8::1]:2855/abc;tcp");
        let u = p("msrp://[::ffff:192.0.2.1]/abc;tcp");
        assert!(matches!(u.host(), Host::V6(_)));
        // Not a valid IPv4 address (RFC 3986 dec-octet), so a reg-name.
        let u = p("msrp://1.2.3.256;tcp");
        assert_eq!(u.host(), &Host::Name("1.2.3.256".into()));
    }

    #[test]
    fn params_and_canonical_display() {
        let u = p("MSRPS://u%41ser@Example.COM:02855/s+i=d/x;TCP;foo=bar;baz");
        assert_eq!(
            u.params(),
            &[("foo".into(), Some("bar".into())), ("baz".into(), None)]
        );
        assert_eq!(u.param("FOO"), Some(Some("bar")));
        assert_eq!(u.param("baz"), Some(None));
        assert_eq!(u.param("nope"), None);
        assert_eq!(u.port(), Some(2855));
        assert_eq!(u.user(), Some("u%41ser"));
        assert_eq!(
            u.to_string(),
            "msrps://u%41ser@Example.COM:2855/s+i=d/x;TCP;foo=bar;baz"
        );
    }

    #[test]
    fn host_percent_normalization() {
        let u = p("msrp://ex%61mple.com%2f;tcp");
        assert_eq!(u.host(), &Host::Name("example.com%2F".into()));
        assert_eq!(u, p("msrp://EXAMPLE.com%2F;tcp"));
    }

    #[test]
    fn errors_are_typed() {
        let cases: &[(&str, UriError)] = &[
            ("http://a;tcp", UriError::BadScheme),
            ("msrp:/a;tcp", UriError::BadScheme),
            ("msrp://;tcp", UriError::BadHost),
            ("msrp://[zz]/a;tcp", UriError::BadHost),
            ("msrp://[v1.x]/a;tcp", UriError::BadHost),
            ("msrp://a%zz;tcp", UriError::BadHost),
            ("msrp://u%4@a;tcp", UriError::BadUserinfo),
            ("msrp://a:99999;tcp", UriError::BadPort),
            ("msrp://a:65536;tcp", UriError::BadPort),
            ("msrp://a/;tcp", UriError::BadSessionId),
            ("msrp://a/abc", UriError::MissingTransport),
            ("msrp://a/abc;", UriError::BadTransport),
            ("msrp://a/abc;t-cp", UriError::TrailingData { at: 14 }),
            ("msrp://a/abc;tcp;", UriError::BadParameter),
            ("msrp://a/abc;tcp;x=", UriError::BadParameter),
            ("msrp://a/abc;tcp x", UriError::TrailingData { at: 16 }),
        ];
        for (s, e) in cases {
            assert_eq!(s.parse::<MsrpUri>().unwrap_err(), *e, "{s}");
        }
    }

    #[test]
    fn port_edge_cases() {
        assert_eq!(p("msrp://a:;tcp").port(), None);
        assert_eq!(p("msrp://a:0;tcp").port(), Some(0));
        assert_eq!(p("msrp://a:000000065535;tcp").port(), Some(65535));
    }

    #[test]
    fn hostile_length_fails_fast() {
        let big = format!("msrp://{};tcp", "a".repeat(10 * 1024 * 1024));
        assert!(matches!(
            big.parse::<MsrpUri>(),
            Err(UriError::TooLong {
                max: MAX_URI_LEN,
                ..
            })
        ));
        assert!(matches!(
            parse_path(&big),
            Err(UriError::TooLong {
                max: MAX_PATH_LEN,
                ..
            })
        ));
        let many = format!("msrp://a;tcp{}", ";p".repeat(MAX_URI_PARAMS + 1));
        assert_eq!(
            many.parse::<MsrpUri>(),
            Err(UriError::TooManyParameters {
                max: MAX_URI_PARAMS
            })
        );
    }

    #[test]
    fn comparison_rfc4975_6_1() {
        let a = p("msrp://alice@Example.com:2855/abc;tcp;x=1");
        let b = p("MSRP://bob@example.COM:2855/abc;TCP");
        assert_eq!(a, b);
        assert_eq!(h(&a), h(&b));
        // Explicit port never equals an absent one (rule 3).
        assert_ne!(a, p("msrp://example.com/abc;tcp"));
        // Scheme.
        assert_ne!(a, p("msrps://example.com:2855/abc;tcp"));
        // Session-id is case-sensitive, and absence differs from presence (rule 4).
        assert_ne!(a, p("msrp://example.com:2855/ABC;tcp"));
        assert_ne!(a, p("msrp://example.com:2855;tcp"));
        // Transport (rule 5).
        assert_ne!(a, p("msrp://example.com:2855/abc;ws"));
        // IPv6 compared as addresses.
        let v6a = p("msrp://[2001:db8:0:0::1]/s;tcp");
        let v6b = p("msrp://[2001:DB8::1]/s;tcp");
        assert_eq!(v6a, v6b);
        assert_eq!(h(&v6a), h(&v6b));
        assert_ne!(p("msrp://192.0.2.1/s;tcp"), p("msrp://host/s;tcp"));
    }

    #[test]
    fn builder() {
        let u = MsrpUri::new(
            false,
            Host::Name("10.0.0.1".into()),
            Some(1234),
            Some("sid"),
            "tcp",
        )
        .unwrap();
        assert_eq!(u.host(), &Host::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(u.to_string(), "msrp://10.0.0.1:1234/sid;tcp");
        let u = u.with_session_id("other").unwrap();
        assert_eq!(u.session_id(), Some("other"));
        assert_eq!(
            u.clone().with_session_id("bad id"),
            Err(UriError::BadSessionId)
        );
        let u = u
            .with_user("bob")
            .unwrap()
            .with_param("ttl", Some("3"))
            .unwrap()
            .with_port(None)
            .without_session_id();
        assert_eq!(u.to_string(), "msrp://bob@10.0.0.1;tcp;ttl=3");
        assert_eq!(
            u.clone().with_param("a b", None),
            Err(UriError::BadParameter)
        );
        assert_eq!(u.clone().with_user("a@b"), Err(UriError::BadUserinfo));
        assert_eq!(
            MsrpUri::new(true, Host::Name("h".into()), None, None, "t c p"),
            Err(UriError::BadTransport)
        );
        assert_eq!(
            MsrpUri::new(true, Host::Name("a/b".into()), None, None, "tcp"),
            Err(UriError::BadHost)
        );
        assert_eq!(
            MsrpUri::new(true, Host::Name(String::new()), None, None, "tcp"),
            Err(UriError::BadHost)
        );
    }

    #[test]
    fn paths() {
        let path = parse_path(
            "  msrp://relay.example.com:2855/a;tcp   msrps://[::1]:9/b;tcp msrp://h/c;tcp ",
        )
        .unwrap();
        assert_eq!(path.len(), 3);
        assert_eq!(path[1].host(), &Host::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            format_path(&path),
            "msrp://relay.example.com:2855/a;tcp msrps://[::1]:9/b;tcp msrp://h/c;tcp"
        );
        assert_eq!(parse_path(""), Err(UriError::EmptyPath));
        assert_eq!(parse_path("   "), Err(UriError::EmptyPath));
        assert_eq!(
            parse_path("msrp://a;tcp\tmsrp://b;tcp"),
            Err(UriError::TrailingData { at: 12 })
        );
        assert_eq!(
            parse_path("msrp://a;tcp msrp://b"),
            Err(UriError::MissingTransport)
        );
        let many = vec!["msrp://a;tcp"; MAX_PATH_URIS + 1].join(" ");
        assert_eq!(
            parse_path(&many),
            Err(UriError::TooManyUris { max: MAX_PATH_URIS })
        );
    }
}
