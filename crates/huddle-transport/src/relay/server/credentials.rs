//! The credential store a relay checks Digest AUTH against (RFC 4976 §6.3 leaves the
//! store to the relay): a file of `user:password` lines.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// Why a credentials file could not be read. Never carries a password or a line's text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credentials file: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not `user:password` with a non-empty user name.
    #[error("credentials line {line}: expected user:password")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// The same user appears twice.
    #[error("credentials line {line}: duplicate user")]
    Duplicate {
        /// 1-based line number.
        line: usize,
    },
}

/// User names and passwords. `Debug` shows only how many users there are.
#[derive(Clone, Default)]
pub struct CredentialStore {
    users: HashMap<String, String>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("users", &self.users.len())
            .finish()
    }
}

impl CredentialStore {
    /// An empty store (every AUTH fails).
    pub fn new() -> Self {
        CredentialStore::default()
    }

    /// Adds or replaces a user.
    pub fn insert(&mut self, user: &str, password: &str) {
        self.users.insert(user.to_owned(), password.to_owned());
    }

    /// Parses `user:password` lines. The user name ends at the first `:`; the password is
    /// the rest of the line (it may contain `:`). Blank lines and lines starting with `#`
    /// are skipped; a trailing CR is ignored.
    pub fn parse(text: &str) -> Result<Self, CredentialsError> {
        let mut store = CredentialStore::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, password)) = line.split_once(':') else {
                return Err(CredentialsError::Syntax { line: i + 1 });
            };
            // RFC 2617 §3.2.2 `username = username-value` is a quoted string: refuse what
            // cannot be quoted back (a double quote or a control character).
            if user.is_empty() || user.chars().any(|c| c == '"' || c.is_control()) {
                return Err(CredentialsError::Syntax { line: i + 1 });
            }
            if store.users.contains_key(user) {
                return Err(CredentialsError::Duplicate { line: i + 1 });
            }
            store.insert(user, password);
        }
        Ok(store)
    }

    /// Reads and parses a credentials file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, CredentialsError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    /// The password of `user`. A `*` entry is the password of every user not listed
    /// (the "any user name, one password" setup of Kamailio's reference relay).
    pub fn password(&self, user: &str) -> Option<&str> {
        self.users
            .get(user)
            .or_else(|| self.users.get("*"))
            .map(String::as_str)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_hides_passwords() {
        let s = CredentialStore::parse("# users\nalice:secret\r\n\nbob:a:b\n").unwrap();
        assert_eq!(s.password("alice"), Some("secret"));
        assert_eq!(s.password("bob"), Some("a:b"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.password("carol"), None);
        let any = CredentialStore::parse("*:shared\nalice:own\n").unwrap();
        assert_eq!(any.password("carol"), Some("shared"));
        assert_eq!(any.password("alice"), Some("own"));
        assert!(!format!("{s:?}").contains("secret"));
        assert!(matches!(
            CredentialStore::parse("alice\n"),
            Err(CredentialsError::Syntax { line: 1 })
        ));
        assert!(matches!(
            CredentialStore::parse(":pw\n"),
            Err(CredentialsError::Syntax { line: 1 })
        ));
        let err = CredentialStore::parse("a:1\na:hunter2\n").unwrap_err();
        assert!(matches!(err, CredentialsError::Duplicate { line: 2 }));
        assert!(!err.to_string().contains("hunter2"));
    }
}
