//! XMPP addresses (RFC 7622), validated for structure: `[local@]domain[/resource]`.
//!
//! huddle checks what a signalling codec needs (non-empty parts, the 1023-byte part
//! limit of RFC 7622 §3.1, characters the localpart forbids, no whitespace or controls in
//! the domain) but does not apply PRECIS/IDNA normalization: two JIDs are equal when
//! their strings are.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

/// Why a string is not a JID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JidError {
    /// The string is empty.
    #[error("empty JID")]
    Empty,
    /// `@` with nothing before it.
    #[error("empty localpart")]
    EmptyLocal,
    /// No domain.
    #[error("empty domainpart")]
    EmptyDomain,
    /// `/` with nothing after it.
    #[error("empty resourcepart")]
    EmptyResource,
    /// A part over 1023 bytes (RFC 7622 §3.1).
    #[error("a part is longer than 1023 bytes")]
    TooLong,
    /// A character the part may not contain.
    #[error("forbidden character {0:?}")]
    ForbiddenChar(char),
}

/// A validated JID, bare (`local@domain`) or full (`local@domain/resource`).
///
/// The string is shared: cloning a JID (every reply a session manager sends carries its
/// own) only bumps a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    s: Arc<str>,
    /// Byte index of `@` (the end of the localpart), if any.
    at: Option<u16>,
    /// Byte index of the `/` before the resource, if any.
    slash: Option<u16>,
}

const MAX_PART: usize = 1023;

impl Jid {
    /// Parses and validates a JID.
    pub fn new(s: impl AsRef<str>) -> Result<Jid, JidError> {
        let s = s.as_ref();
        if s.is_empty() {
            return Err(JidError::Empty);
        }
        // RFC 7622 §3.1: the resourcepart begins after the first '/', the localpart ends
        // at the first '@' before it.
        // Byte loops: JIDs are short, a searcher costs more to set up than it saves.
        let slash = s.bytes().position(|b| b == b'/');
        let head = &s[..slash.unwrap_or(s.len())];
        let at = head.bytes().position(|b| b == b'@');
        let (local, domain) = match at {
            Some(i) => (Some(&head[..i]), &head[i + 1..]),
            None => (None, head),
        };
        if let Some(local) = local {
            if local.is_empty() {
                return Err(JidError::EmptyLocal);
            }
            if local.len() > MAX_PART {
                return Err(JidError::TooLong);
            }
            // RFC 7622 §3.3.1: these characters are disallowed in a localpart.
            if let Some(c) = find_char(local, |c| {
                matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
                    || c.is_whitespace()
                    || c.is_control()
            }) {
                return Err(JidError::ForbiddenChar(c));
            }
        }
        if domain.is_empty() {
            return Err(JidError::EmptyDomain);
        }
        if domain.len() > MAX_PART {
            return Err(JidError::TooLong);
        }
        // RFC 7622 §3.2: a domainpart is a hostname or IP literal; '@' cannot appear
        // after the localpart separator and whitespace/controls never belong there.
        if let Some(c) = find_char(domain, |c| c == '@' || c.is_whitespace() || c.is_control()) {
            return Err(JidError::ForbiddenChar(c));
        }
        if let Some(i) = slash {
            let res = &s[i + 1..];
            if res.is_empty() {
                return Err(JidError::EmptyResource);
            }
            if res.len() > MAX_PART {
                return Err(JidError::TooLong);
            }
            if let Some(c) = find_char(res, char::is_control) {
                return Err(JidError::ForbiddenChar(c));
            }
        }
        // Both indexes are below 2 * MAX_PART + 2: they fit in u16.
        Ok(Jid {
            at: at.map(|i| i as u16),
            slash: slash.map(|i| i as u16),
            s: Arc::from(s),
        })
    }

    /// The whole JID as a string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// The localpart, if any.
    pub fn local(&self) -> Option<&str> {
        self.at.map(|i| &self.s[..usize::from(i)])
    }

    /// The domainpart.
    pub fn domain(&self) -> &str {
        let start = self.at.map_or(0, |i| usize::from(i) + 1);
        &self.s[start..self.slash.map_or(self.s.len(), usize::from)]
    }

    /// The resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.slash.map(|i| &self.s[usize::from(i) + 1..])
    }

    /// Whether the JID has a resource.
    pub fn is_full(&self) -> bool {
        self.slash.is_some()
    }

    /// Whether the JID has no resource.
    pub fn is_bare(&self) -> bool {
        self.slash.is_none()
    }

    /// The JID without its resource.
    pub fn to_bare(&self) -> Jid {
        match self.slash {
            Some(i) => Jid {
                s: Arc::from(&self.s[..usize::from(i)]),
                at: self.at,
                slash: None,
            },
            None => self.clone(),
        }
    }
}

/// The first character of `s` that `bad` refuses: ASCII bytes are checked one by one
/// (JIDs are nearly always ASCII), the rest as `char`s.
fn find_char(s: &str, bad: impl Fn(char) -> bool) -> Option<char> {
    // Printable ASCII (0x21..=0x7E) is neither whitespace nor a control character, so
    // only those bytes and the listed punctuation need the full test.
    let b = s.as_bytes();
    if s.is_ascii()
        && !b
            .iter()
            .any(|&c| c <= 0x20 || c == 0x7F || SPECIAL[usize::from(c)])
    {
        return None;
    }
    s.chars().find(|&c| bad(c))
}

/// ASCII punctuation some JID part forbids (RFC 7622 §3.3.1, §3.2): a superset of
/// what any one part refuses, used only to skip the exact check.
const SPECIAL: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    let list = b"\"&'/:<>@";
    while i < list.len() {
        t[list[i] as usize] = true;
        i += 1;
    }
    t
};

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Jid::new(s)
    }
}

impl AsRef<str> for Jid {
    fn as_ref(&self) -> &str {
        &self.s
    }
}
