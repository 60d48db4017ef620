//! Tie-breaking of crossed actions (XEP-0166 §7.2.16).

use std::cmp::Ordering;

use huddle_jingle::Jid;

/// Which party's session-initiate survives when both send one at the same time.
///
/// XEP-0166 §7.2.16 ("No existing session"): "the action with the lower of the two
/// session IDs MUST overrule the other action, where by 'lower' is meant the session ID
/// that is sorted first using 'i;octet' collation [...] (in the unlikely event that the
/// random session IDs are the same, the action sent by the lower of the JabberIDs MUST
/// overrule the other action)".
///
/// jingle.js 3 and stanza 12 implement the opposite (the higher sid, and with equal sids
/// the higher JID, wins). Two peers must use the same rule or both sessions die (or both
/// survive): [`TieBreakRule::InvertedCompat`] is for talking to such peers. The rule
/// for crossed actions inside an existing session (the initiator's action wins) is the
/// same under both settings: jingle.js gets that one right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TieBreakRule {
    /// The XEP's rule: lower sid wins, then lower JID (the default).
    #[default]
    Xep0166,
    /// jingle.js/stanza compatibility: higher sid wins, then higher JID.
    InvertedCompat,
}

impl TieBreakRule {
    /// Whether our session-initiate (`our_sid`, sent by `our_jid`) overrules the peer's
    /// (`their_sid`, sent by `their_jid`). Never true for both sides of a crossing, so
    /// equal sids cannot leave both parties waiting.
    pub fn local_wins(
        self,
        our_sid: &str,
        our_jid: &Jid,
        their_sid: &str,
        their_jid: &Jid,
    ) -> bool {
        // RFC 4790 §9.3 i;octet: compare the octet strings, a shorter prefix first.
        let ord = match our_sid.as_bytes().cmp(their_sid.as_bytes()) {
            Ordering::Equal => our_jid
                .as_str()
                .as_bytes()
                .cmp(their_jid.as_str().as_bytes()),
            o => o,
        };
        match self {
            TieBreakRule::Xep0166 => ord == Ordering::Less,
            TieBreakRule::InvertedCompat => ord == Ordering::Greater,
        }
    }
}

/// Whether two session-initiates are "functionally equivalent" for tie-breaking
/// (XEP-0166 §7.2.16: "a content-type that is functionally equivalent"): they share an
/// application format.
pub fn functionally_equivalent(ours: &[String], theirs: &[String]) -> bool {
    ours.iter().any(|a| theirs.contains(a))
}
