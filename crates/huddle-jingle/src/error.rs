//! Typed errors: [`XmlError`] for the XML layer, [`ParseError`] for turning elements
//! into the Jingle model, [`JsonError`] for the jingle.js/stanza JSON mapping.

use thiserror::Error;

use crate::jid::JidError;
use crate::model::{ErrorType, StanzaError, StanzaErrorCondition};

/// The input is not acceptable XML for XMPP, or it exceeds a [`crate::Limits`] bound.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The input is larger than `Limits::max_input`.
    #[error("input is {len} bytes, over the limit of {max}")]
    InputTooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not UTF-8 (RFC 6120 §11.6: XMPP is UTF-8 only).
    #[error("input is not valid UTF-8 (at byte {position})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        position: usize,
    },
    /// A character XML 1.0 does not allow (a C0 control other than TAB, LF, CR).
    #[error("forbidden character U+{code:04X} at byte {position}")]
    ForbiddenChar {
        /// The code point.
        code: u32,
        /// Its offset.
        position: usize,
    },
    /// A character reference to a character XML does not allow.
    #[error("invalid character reference near byte {position}")]
    InvalidCharRef {
        /// Approximate offset.
        position: u64,
    },
    /// A DOCTYPE declaration (RFC 6120 §11.1 forbids DTDs).
    #[error("DOCTYPE declarations are not allowed in XMPP")]
    Doctype,
    /// A reference to an entity other than the five predefined ones.
    #[error("reference to undeclared entity &{name};")]
    EntityReference {
        /// The entity name.
        name: String,
    },
    /// A processing instruction (RFC 6120 §11.1).
    #[error("processing instructions are not allowed in XMPP")]
    ProcessingInstruction,
    /// A comment (RFC 6120 §11.1).
    #[error("comments are not allowed in XMPP")]
    Comment,
    /// Nesting deeper than `Limits::max_depth`.
    #[error("elements nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More elements than `Limits::max_elements`.
    #[error("more than {max} elements")]
    TooManyElements {
        /// The limit.
        max: usize,
    },
    /// More attributes on one element than `Limits::max_attributes`.
    #[error("more than {max} attributes on one element")]
    TooManyAttributes {
        /// The limit.
        max: usize,
    },
    /// A name longer than `Limits::max_name`.
    #[error("name longer than {max} bytes")]
    NameTooLong {
        /// The limit.
        max: usize,
    },
    /// An attribute value longer than `Limits::max_attribute_value`.
    #[error("attribute value longer than {max} bytes")]
    AttributeTooLong {
        /// The limit.
        max: usize,
    },
    /// A text longer than `Limits::max_text`.
    #[error("text longer than {max} bytes")]
    TextTooLong {
        /// The limit.
        max: usize,
    },
    /// A namespace prefix that is not declared.
    #[error("undeclared namespace prefix in {name}")]
    UnboundPrefix {
        /// The qualified name.
        name: String,
    },
    /// No element at all.
    #[error("no root element")]
    NoRootElement,
    /// The input ends inside an element.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// Something other than whitespace after (or text before) the root element.
    #[error("content outside the root element")]
    TrailingContent,
    /// Any other well-formedness error reported by the tokenizer.
    #[error("malformed XML at byte {position}: {message}")]
    Syntax {
        /// Approximate offset.
        position: u64,
        /// What the tokenizer reported.
        message: String,
    },
}

/// The XML is well-formed but is not a valid Jingle IQ / element.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The XML layer refused the input.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// An element other than the expected one.
    #[error("expected <{expected}/>, found <{name}/> in namespace {namespace:?}")]
    UnexpectedElement {
        /// What was expected.
        expected: &'static str,
        /// The local name found.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// A required attribute is absent.
    #[error("<{element}/> lacks the required attribute '{attribute}'")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute value outside its allowed set or syntax.
    #[error("<{element}/> has an invalid '{attribute}': {value:?}")]
    InvalidAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// The offending value.
        value: String,
    },
    /// An attribute holds a malformed JID.
    #[error("<{element}/> has a malformed JID in '{attribute}': {source}")]
    InvalidJid {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// Why.
        source: JidError,
    },
    /// A required child element is absent.
    #[error("<{element}/> lacks the required child <{child}/>")]
    MissingChild {
        /// The element.
        element: &'static str,
        /// The missing child.
        child: &'static str,
    },
    /// A child that may appear once appears more than once.
    #[error("<{element}/> has more than one <{child}/>")]
    DuplicateChild {
        /// The element.
        element: &'static str,
        /// The repeated child.
        child: &'static str,
    },
    /// Text content that does not match its syntax.
    #[error("<{element}/> has invalid text: {value:?}")]
    InvalidText {
        /// The element.
        element: &'static str,
        /// The offending text.
        value: String,
    },
    /// A payload of a registered extension namespace was refused by its decoder.
    #[error("payload in {namespace} refused: {message}")]
    Extension {
        /// The namespace.
        namespace: String,
        /// What the extension reported.
        message: String,
    },
}

impl ParseError {
    /// The IQ error to answer a peer with when its request does not parse: XEP-0166
    /// §6.3.2 answers a malformed request with `<bad-request/>`.
    pub fn stanza_error(&self) -> StanzaError {
        let mut e = StanzaError::new(ErrorType::Cancel, StanzaErrorCondition::BadRequest);
        e.text = Some(self.to_string());
        e
    }
}

/// The JSON is not a valid jingle.js/stanza-shaped Jingle IQ or element.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JsonError {
    /// Not JSON at all, or not the expected JSON type.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// A required field is absent.
    #[error("{object} lacks the required field {field:?}")]
    MissingField {
        /// The JSON object (by its stanza name).
        object: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field with the wrong type or an unknown value.
    #[error("{object}.{field} is invalid: {value}")]
    InvalidField {
        /// The JSON object.
        object: &'static str,
        /// The field.
        field: &'static str,
        /// The offending value, as JSON.
        value: String,
    },
    /// The value is well-typed JSON but breaks an XML-level rule (a JID, a raw element).
    #[error(transparent)]
    Model(#[from] ParseError),
}
