//! MSRP status codes (RFC 4975 §10, RFC 4976, RFC 7701): an open set.
//!
//! The registered codes are generated constants on [`StatusCode`] (see
//! `docs/spec/msrp/status.toml`); any other three-digit code survives decoding and
//! encoding unchanged.

use core::fmt;

/// A three-digit MSRP status code, as carried in a response start line or a REPORT's
/// `Status` header. Unknown codes are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u16);

impl StatusCode {
    /// The code as a number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// RFC 4975 §9: `status-code = 3DIGIT`. Returns `None` outside 000..=999.
    pub const fn new(code: u16) -> Option<Self> {
        if code <= 999 {
            Some(StatusCode(code))
        } else {
            None
        }
    }

    /// 2xx: the transaction succeeded.
    pub const fn is_success(self) -> bool {
        self.0 >= 200 && self.0 < 300
    }

    /// Any code outside 2xx is a failure (RFC 4975 §7.2).
    pub const fn is_failure(self) -> bool {
        !self.is_success()
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

impl From<StatusCode> for u16 {
    fn from(code: StatusCode) -> u16 {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_codes_have_reasons_and_unknown_ones_survive() {
        assert_eq!(StatusCode::OK.canonical_reason(), Some("OK"));
        assert_eq!(StatusCode::SESSION_DOES_NOT_EXIST.as_u16(), 481);
        assert_eq!(StatusCode(299).canonical_reason(), None);
        assert_eq!(StatusCode(299).to_string(), "299");
        assert_eq!(StatusCode(7).to_string(), "007");
        assert!(StatusCode::REGISTERED.contains(&StatusCode::UNAUTHORIZED));
        assert!(StatusCode::new(1000).is_none());
    }
}
