//! XML namespaces huddle-jingle knows.

/// XEP-0166 §7: the Jingle element and its children.
pub const JINGLE: &str = "urn:xmpp:jingle:1";
/// XEP-0166 §10: Jingle-specific error conditions.
pub const JINGLE_ERRORS: &str = "urn:xmpp:jingle:errors:1";
/// RFC 6120 §4.8.3: the client stream's content namespace.
pub const CLIENT: &str = "jabber:client";
/// RFC 6120 §4.8.3: the server-to-server stream's content namespace.
pub const SERVER: &str = "jabber:server";
/// XEP-0114: the component stream's content namespace.
pub const COMPONENT: &str = "jabber:component:accept";
/// RFC 6120 §8.3.3: stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// XEP-0234: Jingle file transfer, version 5.
pub const FILE_TRANSFER: &str = "urn:xmpp:jingle:apps:file-transfer:5";
/// XEP-0300: hashes, version 2.
pub const HASHES: &str = "urn:xmpp:hashes:2";
/// XEP-0261: Jingle in-band bytestreams.
pub const IBB: &str = "urn:xmpp:jingle:transports:ibb:1";
/// XEP-0260: Jingle SOCKS5 bytestreams.
pub const S5B: &str = "urn:xmpp:jingle:transports:s5b:1";
/// XEP-0176: Jingle ICE-UDP.
pub const ICE_UDP: &str = "urn:xmpp:jingle:transports:ice-udp:1";
/// XEP-0167: Jingle RTP sessions.
pub const RTP: &str = "urn:xmpp:jingle:apps:rtp:1";
/// XEP-0167 §7: RTP session-info payloads.
pub const RTP_INFO: &str = "urn:xmpp:jingle:apps:rtp:info:1";
