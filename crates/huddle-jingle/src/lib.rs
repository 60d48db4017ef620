//! # huddle-jingle: the Jingle wire codec
//!
//! Bytes in, typed values out and back, for Jingle (XEP-0166) signalling carried in
//! XMPP IQs, in two encodings:
//!
//! - **XML**, as on the XMPP wire (any prefixes, default namespaces, attribute order and
//!   insignificant whitespace), written canonically (see [`Iq::to_xml`]). Two readers give
//!   one answer: a fast reader decodes valid stanzas straight from its own lexer, without
//!   an element tree for the iq, jingle and content levels, and gives up on anything else;
//!   the tree reader (quick-xml tokens, an owned [`Element`] tree, then the model's
//!   decoders) then reads the document and decides. Acceptance and errors are the tree
//!   reader's; where the fast reader returns a value, it is the tree reader's value.
//! - **JSON** in the shape jingle.js and stanza applications use (`contents[].application
//!   .applicationType`, `transport.transportType`, `reason.condition`,
//!   `error.jingleError`, ...), through serde ([`Iq`], [`Jingle`] implement
//!   `Serialize`/`Deserialize`). `docs/jingle.md` lists where huddle differs from stanza.
//!
//! Typed payloads: XEP-0234 file transfer (with XEP-0300 hashes), XEP-0261 IBB,
//! XEP-0260 SOCKS5, XEP-0176 ICE-UDP, XEP-0167 RTP (with its session-info messages).
//! Anything else is kept as a raw [`Element`] and survives a round trip; later crates can
//! type their own namespaces through a [`Registry`] (see [`ext`]).
//!
//! What this crate deliberately does **not** do: sockets, timers, tokio, session state.
//! It decides nothing about a session (tie-breaks, ordering, unknown sids belong to the
//! session manager); it only turns peer input into values or typed errors, and values
//! into bytes.
//!
//! Invariants:
//! - Peer input never makes this crate panic, and never makes it hold more than the
//!   configured [`Limits`] allow (DOCTYPEs, entity declarations, comments and processing
//!   instructions are refused, as RFC 6120 §11.1 requires).
//! - `parse(serialize(x)) == x` for every value, and parse → serialize → parse is stable.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod de;
mod direct;
mod error;
pub mod ext;
pub mod ft;
mod generated;
pub mod ibb;
pub mod ice;
mod jid;
pub mod json;
mod model;
pub mod ns;
pub mod rtp;
pub mod s5b;
mod sid;
mod xml;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use error::{JsonError, ParseError, XmlError};
pub use ext::{Extension, ExtensionPayload, Registry, Slot};
pub use jid::{Jid, JidError};
pub use model::{
    Action, Content, Creator, DEFAULT_DISPOSITION, Description, ErrorType, Iq, IqType, Jingle,
    JingleErrorCondition, Reason, ReasonCondition, Senders, SessionInfo, StanzaError,
    StanzaErrorCondition, Transport,
};
pub use sid::Sid;
pub use xml::{Attribute, Element, Limits, Node, XML_NS};

/// Values a reader may reuse instead of building them again (see
/// [`Codec::parse_iq_reusing`]): cloning one costs a reference count, reading it from the
/// input an allocation (and, for a JID, its validation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// Addresses (`from`, `to`, `initiator`, `responder`) likely to recur.
    pub jids: &'a [&'a Jid],
    /// A session id likely to recur (the last request's: a session's actions often
    /// come in a row).
    pub sid: Option<&'a Sid>,
}

/// What a document held: a whole IQ, or a bare `<jingle/>` element.
// One document is parsed and handled at a time; boxing the larger variant would only add
// an allocation to every parse.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// An `<iq/>`.
    Iq(Iq),
    /// A `<jingle/>` on its own.
    Jingle(Jingle),
}

impl Document {
    /// Canonical XML.
    pub fn to_xml(&self) -> String {
        match self {
            Document::Iq(iq) => iq.to_xml(),
            Document::Jingle(j) => j.to_xml(),
        }
    }

    /// The stanza-shaped JSON.
    pub fn to_json(&self) -> Value {
        match self {
            Document::Iq(iq) => iq.to_json(),
            Document::Jingle(j) => j.to_json(),
        }
    }
}

/// A configured codec: limits for hostile input and the registry of extension
/// namespaces. `Codec::default()` has the default [`Limits`] and no registrations.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    /// Bounds applied to XML input.
    pub limits: Limits,
    /// Decoders for extension namespaces.
    pub registry: Registry,
}

impl Codec {
    /// A codec with default limits and no registrations.
    pub fn new() -> Self {
        Codec::default()
    }

    /// Parses one `<iq/>` carrying Jingle (or a Jingle result/error).
    ///
    /// Well-formed stanzas are decoded straight from the tokenizer's events (no element
    /// tree for the iq, jingle and content levels); anything else is read again as an
    /// element tree, which gives the precise error. Both ways apply the same limits and
    /// checks and return the same value.
    pub fn parse_iq(&self, input: &[u8]) -> Result<Iq, ParseError> {
        self.parse_iq_reusing(input, Known::default())
    }

    /// [`parse_iq`](Self::parse_iq), reusing `known` values: a `from`, `to`,
    /// `initiator` or `responder` equal to one of `known.jids` (JIDs are equal when
    /// their strings are), or a sid equal to `known.sid`, is a clone of it, a reference
    /// count, instead of a newly validated and allocated value. A session manager passes
    /// its own JID (the `to` of everything it receives), the sender it heard from last
    /// and the sid of the last request. The value is the same either way.
    pub fn parse_iq_reusing(&self, input: &[u8], known: Known<'_>) -> Result<Iq, ParseError> {
        if let Some(iq) = direct::iq(input, &self.limits, &self.registry, known) {
            return Ok(iq);
        }
        let el = xml::read_document(input, &self.limits)?;
        Iq::decode(el, &self.registry)
    }

    /// Parses one bare `<jingle/>` element (like [`parse_iq`](Self::parse_iq): valid
    /// input without an element tree for the jingle and content levels).
    pub fn parse_jingle(&self, input: &[u8]) -> Result<Jingle, ParseError> {
        if let Some(Document::Jingle(j)) =
            direct::document(input, &self.limits, &self.registry, Known::default())
        {
            return Ok(j);
        }
        let el = xml::read_document(input, &self.limits)?;
        Jingle::decode(el, &self.registry)
    }

    /// Parses an `<iq/>` or a bare `<jingle/>`, whichever the document holds (like
    /// [`parse_iq`](Self::parse_iq): valid input without an element tree for the iq,
    /// jingle and content levels; [`Element::parse`] with
    /// [`decode_element`](Self::decode_element) is the element-tree way).
    pub fn parse(&self, input: &[u8]) -> Result<Document, ParseError> {
        if let Some(doc) = direct::document(input, &self.limits, &self.registry, Known::default()) {
            return Ok(doc);
        }
        let el = xml::read_document(input, &self.limits)?;
        self.decode_element(el)
    }

    /// Turns an already-parsed element (an `<iq/>` or a `<jingle/>`) into the model.
    pub fn decode_element(&self, el: Element) -> Result<Document, ParseError> {
        if el.name == "jingle" {
            Jingle::decode(el, &self.registry).map(Document::Jingle)
        } else {
            Iq::decode(el, &self.registry).map(Document::Iq)
        }
    }

    /// Reads stanza-shaped JSON: an IQ object (with `type`) or a jingle object (with
    /// `action`).
    pub fn from_json(&self, v: &Value) -> Result<Document, JsonError> {
        if v.get("action").is_some() && v.get("type").is_none() {
            Jingle::from_json(v, &self.registry).map(Document::Jingle)
        } else {
            Iq::from_json(v, &self.registry).map(Document::Iq)
        }
    }
}

/// Parses one `<iq/>` with the default [`Codec`].
pub fn parse_iq(input: &[u8]) -> Result<Iq, ParseError> {
    Codec::default().parse_iq(input)
}

/// Parses one bare `<jingle/>` with the default [`Codec`].
pub fn parse_jingle(input: &[u8]) -> Result<Jingle, ParseError> {
    Codec::default().parse_jingle(input)
}

/// Parses an `<iq/>` or a bare `<jingle/>` with the default [`Codec`].
pub fn parse(input: &[u8]) -> Result<Document, ParseError> {
    Codec::default().parse(input)
}

impl Iq {
    /// Canonical XML: `jabber:client` namespace, double-quoted attributes, the XEP's
    /// element forms (e.g. `<alternative-session><sid/></alternative-session>`).
    pub fn to_xml(&self) -> String {
        if self.jingle.is_none() && self.error.is_none() {
            // An empty IQ (the usual result): sized up front, one allocation.
            let addresses = [&self.from, &self.to]
                .iter()
                .filter_map(|j| j.as_ref().map(|j| j.as_str().len()))
                .sum::<usize>();
            let mut out = String::with_capacity(80 + self.id.len() + addresses);
            self.write_xml(&mut out);
            return out;
        }
        let mut w = xml::Writer::new();
        self.write(&mut w);
        w.finish()
    }

    /// Appends the canonical XML of [`to_xml`](Self::to_xml) to `out` (a reused output
    /// buffer: an empty IQ, the usual reply, is written without any allocation once the
    /// buffer has grown).
    pub fn write_xml(&self, out: &mut String) {
        if self.jingle.is_none() && self.error.is_none() {
            xml::write_empty_iq(out, self);
            return;
        }
        let mut w = xml::Writer::with_buffer(std::mem::take(out));
        self.write(&mut w);
        *out = w.finish();
    }
}

impl Jingle {
    /// Canonical XML of the bare `<jingle/>` element.
    pub fn to_xml(&self) -> String {
        let mut w = xml::Writer::new();
        self.write(&mut w);
        w.finish()
    }
}

impl Serialize for Iq {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Iq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Iq::from_json(&v, &Registry::default()).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Jingle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Jingle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Jingle::from_json(&v, &Registry::default()).map_err(serde::de::Error::custom)
    }
}
