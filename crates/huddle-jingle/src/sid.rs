//! [`Sid`]: a Jingle session id, shared rather than copied.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// A session id (XEP-0166 §7.1 `sid`), shared: a [`Jingle`](crate::Jingle) holds one,
/// and a session manager's table, its session and every event about it hold the same
/// string; cloning one only bumps a reference count. It reads like a `&str` (`Deref`, `AsRef<str>`,
/// `Borrow<str>`, comparisons with `str` and `String`) and turns into a `String` with
/// `String::from`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sid(Arc<str>);

impl Sid {
    /// A sid with this text.
    pub fn new(sid: &str) -> Sid {
        Sid(Arc::from(sid))
    }

    /// The sid as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Hash for Sid {
    // As `str` hashes, so that a table keyed by `Sid` is searched with a `&str`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for Sid {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Sid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Sid {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Sid {
    fn from(sid: &str) -> Sid {
        Sid::new(sid)
    }
}

impl From<String> for Sid {
    fn from(sid: String) -> Sid {
        Sid(Arc::from(sid))
    }
}

impl From<&String> for Sid {
    fn from(sid: &String) -> Sid {
        Sid::new(sid)
    }
}

impl From<Sid> for String {
    fn from(sid: Sid) -> String {
        sid.as_str().to_owned()
    }
}

impl From<&Sid> for String {
    fn from(sid: &Sid) -> String {
        sid.as_str().to_owned()
    }
}

impl PartialEq<str> for Sid {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sid {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Sid {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Sid> for str {
    fn eq(&self, other: &Sid) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Sid> for &str {
    fn eq(&self, other: &Sid) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Sid> for String {
    fn eq(&self, other: &Sid) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::Sid;

    #[test]
    fn a_sid_compares_hashes_and_converts_like_its_text() {
        let sid = Sid::from("abc");
        let copy = sid.clone();
        assert!(
            std::ptr::eq(sid.as_str(), copy.as_str()),
            "a clone shares the text"
        );
        assert_eq!(sid, "abc");
        assert_eq!("abc", sid);
        assert_eq!(sid, String::from("abc"));
        assert_ne!(sid, "abd");
        assert_eq!(String::from(sid.clone()), "abc");
        assert_eq!(format!("{sid} {sid:?}"), "abc \"abc\"");
        let mut table = HashMap::new();
        table.insert(sid, 1);
        assert_eq!(table.get("abc"), Some(&1));
        assert_eq!(table.get("ab"), None);
    }
}
