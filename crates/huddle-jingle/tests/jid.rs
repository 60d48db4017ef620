//! JID validation (RFC 7622).

use huddle_jingle::{Jid, JidError};

#[test]
fn bare_and_full_jids() {
    let full = Jid::new("romeo@montague.lit/orchard").unwrap();
    assert!(full.is_full() && !full.is_bare());
    assert_eq!(full.local(), Some("romeo"));
    assert_eq!(full.domain(), "montague.lit");
    assert_eq!(full.resource(), Some("orchard"));
    assert_eq!(full.to_bare().as_str(), "romeo@montague.lit");
    let bare = Jid::new("montague.lit").unwrap();
    assert!(bare.is_bare());
    assert_eq!(bare.local(), None);
    // RFC 7622 §3.1: the resource starts at the first '/', and may contain '@' and '/'.
    let odd = Jid::new("a@b/c@d/e").unwrap();
    assert_eq!(odd.domain(), "b");
    assert_eq!(odd.resource(), Some("c@d/e"));
}

#[test]
fn malformed_jids_are_refused() {
    assert_eq!(Jid::new(""), Err(JidError::Empty));
    assert_eq!(Jid::new("@d"), Err(JidError::EmptyLocal));
    assert_eq!(Jid::new("l@"), Err(JidError::EmptyDomain));
    assert_eq!(Jid::new("l@d/"), Err(JidError::EmptyResource));
    assert_eq!(Jid::new("a b@d"), Err(JidError::ForbiddenChar(' ')));
    assert_eq!(Jid::new("a\"b@d"), Err(JidError::ForbiddenChar('"')));
    assert_eq!(Jid::new("l@d@e"), Err(JidError::ForbiddenChar('@')));
    assert_eq!(
        Jid::new(format!("{}@d", "x".repeat(1024))),
        Err(JidError::TooLong)
    );
}
