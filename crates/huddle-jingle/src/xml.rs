//! The XML layer: a small owned element tree, a hardened reader on top of quick-xml's
//! namespace-resolving reader, and a canonical writer.
//!
//! [`Element`] is also the raw extension point of the crate: every payload huddle does
//! not type (an unknown application format, transport, session-info payload or child) is
//! kept as an [`Element`] and written back unchanged in meaning.

use std::borrow::Cow;
use std::fmt;

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::error::XmlError;

/// The `xml:` namespace (bound to the `xml` prefix by the Namespaces in XML recommendation).
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Bounds on what the reader accepts, so a hostile peer cannot make it use unbounded
/// memory or stack. Everything is checked before the offending data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one document.
    pub max_elements: usize,
    /// Most attributes on one element (namespace declarations included).
    pub max_attributes: usize,
    /// Longest element or attribute name, in bytes.
    pub max_name: usize,
    /// Longest attribute value, in bytes (after unescaping).
    pub max_attribute_value: usize,
    /// Longest text content of one element, in bytes (after unescaping).
    pub max_text: usize,
}

impl Default for Limits {
    /// Safe defaults for signalling traffic: 256 KiB per stanza (XMPP servers commonly
    /// cap stanzas well below that), depth 32, 4096 elements, 64 attributes per element,
    /// 256-byte names, 16 KiB attribute values and 64 KiB texts.
    fn default() -> Self {
        Limits {
            max_input: 256 * 1024,
            max_depth: 32,
            max_elements: 4096,
            max_attributes: 64,
            max_name: 256,
            max_attribute_value: 16 * 1024,
            max_text: 64 * 1024,
        }
    }
}

/// An attribute of an [`Element`]. `namespace` is empty for unqualified attributes
/// (the usual case: unprefixed attributes are in no namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The attribute's namespace URI, empty when unqualified.
    pub namespace: String,
    /// The local name.
    pub name: String,
    /// The unescaped value.
    pub value: String,
}

/// A child of an [`Element`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (unescaped; CDATA sections are merged into text).
    Text(String),
}

/// An XML element with its resolved namespace, kept in document order.
///
/// Whitespace-only text between child elements is not kept (XMPP treats it as
/// insignificant); all other text is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Element {
    /// The local name (borrowed when it is a constant: an element built with a
    /// `&'static str` name, or a name the readers know, costs no allocation).
    pub name: Cow<'static, str>,
    /// The namespace URI, empty when the element is in no namespace (borrowed like
    /// `name`).
    pub namespace: Cow<'static, str>,
    /// Attributes in document order (namespace declarations are not attributes).
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new element without attributes or children. A `&'static str` name or
    /// namespace is kept borrowed (no allocation); a `String` is moved in.
    pub fn new(
        name: impl Into<Cow<'static, str>>,
        namespace: impl Into<Cow<'static, str>>,
    ) -> Self {
        Element {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    /// Builder: adds an unqualified attribute.
    #[must_use]
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: appends a child element.
    #[must_use]
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder: appends text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Whether this element has the given local name and namespace.
    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name == name && self.namespace == namespace
    }

    /// The value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The value of a namespaced attribute (for example `xml:lang` with [`XML_NS`]).
    pub fn attr_ns(&self, namespace: &str, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.namespace == namespace && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Sets (or replaces) an unqualified attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if let Some(a) = self
            .attributes
            .iter_mut()
            .find(|a| a.namespace.is_empty() && a.name == name)
        {
            a.value = value;
        } else {
            self.attributes.push(Attribute {
                namespace: String::new(),
                name,
                value,
            });
        }
    }

    /// Removes an unqualified attribute and returns its value.
    pub fn take_attr(&mut self, name: &str) -> Option<String> {
        let i = self
            .attributes
            .iter()
            .position(|a| a.namespace.is_empty() && a.name == name)?;
        Some(self.attributes.swap_remove(i).value)
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this name and namespace.
    pub fn child(&self, name: &str, namespace: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(name, namespace))
    }

    /// The concatenated text children (not descendants).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// Parses one element (the document's root) with the given limits.
    pub fn parse(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
        read_document(input, limits)
    }

    /// Writes this element as canonical XML: double-quoted attributes, a namespace
    /// declaration wherever the namespace changes, `/>` for empty elements.
    pub fn to_xml(&self) -> String {
        let mut w = Writer::new();
        w.element(self);
        w.finish()
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_xml())
    }
}

/// An element name read from a document, borrowed when it is one of the names Jingle
/// payloads use most (no allocation for them), owned otherwise.
pub(crate) fn known_name(name: &str) -> Cow<'static, str> {
    const NAMES: [&str; 14] = [
        "description",
        "transport",
        "security",
        "content",
        "reason",
        "candidate",
        "payload-type",
        "parameter",
        "file",
        "hash",
        "text",
        "jingle",
        "iq",
        "error",
    ];
    if let Some(n) = NAMES.iter().find(|n| **n == name) {
        return Cow::Borrowed(n);
    }
    // The children of <reason/> (XEP-0166 §7.4) and of a stanza <error/> (RFC 6120
    // §8.3.3), spelled as the generated tables spell them.
    if let Some(c) = crate::ReasonCondition::from_wire(name.as_bytes()) {
        return Cow::Borrowed(c.as_str());
    }
    if let Some(c) = crate::StanzaErrorCondition::from_wire(name.as_bytes()) {
        return Cow::Borrowed(c.as_str());
    }
    Cow::Owned(name.to_owned())
}

/// A namespace URI read from a document, borrowed when it is empty or one of the
/// namespaces of [`crate::ns`] (no allocation), owned otherwise.
pub(crate) fn known_namespace(uri: &str) -> Cow<'static, str> {
    use crate::ns;
    const URIS: [&str; 15] = [
        "",
        ns::JINGLE,
        ns::JINGLE_ERRORS,
        ns::CLIENT,
        ns::SERVER,
        ns::COMPONENT,
        ns::STANZAS,
        ns::FILE_TRANSFER,
        ns::HASHES,
        ns::IBB,
        ns::S5B,
        ns::ICE_UDP,
        ns::RTP,
        ns::RTP_INFO,
        XML_NS,
    ];
    match URIS.iter().find(|u| **u == uri) {
        Some(u) => Cow::Borrowed(u),
        None => Cow::Owned(uri.to_owned()),
    }
}

/// Reads one document: an optional XML declaration, one root element, optional
/// whitespace.
pub(crate) fn read_document(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    let mut tokens = Tokens::new(input, limits)?;
    let root = match tokens.next()? {
        Token::Start { name, ns, empty } => tokens.element(name, ns, empty)?,
        Token::Eof => return Err(XmlError::NoRootElement),
        // Tokens never yields text or end tags outside the root.
        Token::Text(_) | Token::End => return Err(XmlError::NoRootElement),
    };
    match tokens.next()? {
        Token::Eof => Ok(root),
        _ => Err(XmlError::TrailingContent),
    }
}

/// An attribute of the start tag [`Tokens`] just read: namespace resolved, value
/// unescaped (borrowed from the input unless it held references).
#[derive(Debug)]
pub(crate) struct Attr<'a> {
    /// The namespace URI, empty when unqualified.
    pub(crate) ns: &'a str,
    /// The local name.
    pub(crate) name: &'a str,
    /// The unescaped value.
    pub(crate) value: Cow<'a, str>,
}

/// What [`Tokens::next`] read.
#[derive(Debug)]
pub(crate) enum Token<'a> {
    /// A start tag (or an empty-element tag when `empty`), its attributes in
    /// [`Tokens::attrs`] until the next call.
    Start {
        /// The local name.
        name: &'a str,
        /// The resolved namespace URI (empty: none).
        ns: &'a str,
        /// `<name/>`: no content and no end tag follow.
        empty: bool,
    },
    /// The end tag of the innermost open element.
    End,
    /// A piece of character data inside the root (text, CDATA, a reference), unescaped;
    /// consecutive pieces belong to the same run of text.
    Text(Cow<'a, str>),
    /// The end of the input, after the root element closed.
    Eof,
}

/// The hardened tokenizer every XML reader of this crate runs on: quick-xml's plain
/// reader, plus the checks XMPP needs (RFC 6120 §11.1: no DTDs, comments, processing
/// instructions; XML 1.0 characters; namespaces resolved and checked) and the
/// [`Limits`] (input size, depth, element count, attributes, names, values). Text length
/// is bounded by its consumers (the tree builder per element, see `push_text`).
pub(crate) struct Tokens<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    limits: Limits,
    /// Open elements.
    depth: usize,
    elements: usize,
    seen_decl_or_root: bool,
    /// The root element has ended: only whitespace may follow.
    root_done: bool,
    /// Namespace bindings in scope (Namespaces in XML 1.0 §6), innermost last, each
    /// with the depth of the element that declared it; names and URIs are slices of the
    /// input (URIs as written, like quick-xml's resolver).
    bindings: Vec<Binding<'a>>,
    /// The raw attributes of the start tag being read, reused from tag to tag.
    raw: Vec<(&'a str, &'a str)>,
    /// The resolved attributes of the last start tag.
    attrs: Vec<Attr<'a>>,
}

impl<'a> Tokens<'a> {
    /// Checks the input as a whole (size, UTF-8, forbidden characters) and starts
    /// reading it.
    pub(crate) fn new(input: &'a [u8], limits: &Limits) -> Result<Tokens<'a>, XmlError> {
        if input.len() > limits.max_input {
            return Err(XmlError::InputTooLarge {
                len: input.len(),
                max: limits.max_input,
            });
        }
        let text = std::str::from_utf8(input).map_err(|e| XmlError::InvalidUtf8 {
            position: e.valid_up_to(),
        })?;
        // XML 1.0 §2.2 (Char production): C0 controls other than TAB, LF and CR are
        // never allowed, not even escaped; checked once over the raw input.
        if let Some(pos) = forbidden_control(input) {
            return Err(XmlError::ForbiddenChar {
                code: u32::from(input[pos]),
                position: pos,
            });
        }
        let mut reader = Reader::from_str(text);
        {
            let cfg = reader.config_mut();
            cfg.check_end_names = true;
            cfg.expand_empty_elements = false;
            cfg.check_comments = true;
        }
        Ok(Tokens {
            text,
            reader,
            limits: *limits,
            depth: 0,
            elements: 0,
            seen_decl_or_root: false,
            root_done: false,
            // Sized for a typical stanza: no regrowth on the way down.
            bindings: Vec::with_capacity(8),
            raw: Vec::with_capacity(16),
            attrs: Vec::with_capacity(16),
        })
    }

    /// The next token. Errors are final: the document is unusable.
    pub(crate) fn next(&mut self) -> Result<Token<'a>, XmlError> {
        loop {
            let pos = self.reader.buffer_position();
            let event = self.reader.read_event().map_err(|e| XmlError::Syntax {
                position: pos,
                message: e.to_string(),
            })?;
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let empty = matches!(event, Event::Empty(_));
                    let (name, ns) = self.start(start, pos)?;
                    if empty {
                        // The names are resolved: the element's own declarations go.
                        unbind(&mut self.bindings, self.depth + 1);
                        if self.depth == 0 {
                            self.root_done = true;
                        }
                    } else {
                        self.depth += 1;
                    }
                    return Ok(Token::Start { name, ns, empty });
                }
                Event::End(_) => {
                    if self.depth == 0 {
                        return Err(XmlError::Syntax {
                            position: pos,
                            message: "unexpected end tag".into(),
                        });
                    }
                    unbind(&mut self.bindings, self.depth);
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.root_done = true;
                    }
                    return Ok(Token::End);
                }
                Event::Text(t) => {
                    let s = t.xml10_content().map_err(|e| XmlError::Syntax {
                        position: pos,
                        message: e.to_string(),
                    })?;
                    if let Some(s) = self.text_piece(s)? {
                        return Ok(Token::Text(s));
                    }
                }
                Event::CData(t) => {
                    let s = t.decode().map_err(|e| XmlError::Syntax {
                        position: pos,
                        message: e.to_string(),
                    })?;
                    if self.depth == 0 {
                        return Err(XmlError::TrailingContent);
                    }
                    return Ok(Token::Text(s));
                }
                Event::GeneralRef(r) => {
                    // XML 1.0 §4.6 and RFC 6120 §11.1: only the five predefined entities
                    // and character references; any other entity reference is refused.
                    let c = if r.is_char_ref() {
                        match r.resolve_char_ref() {
                            Ok(Some(c)) if is_xml_char(c) => c,
                            _ => return Err(XmlError::InvalidCharRef { position: pos }),
                        }
                    } else {
                        match r.as_ref() {
                            b"lt" => '<',
                            b"gt" => '>',
                            b"amp" => '&',
                            b"apos" => '\'',
                            b"quot" => '"',
                            other => {
                                return Err(XmlError::EntityReference {
                                    name: String::from_utf8_lossy(other).into_owned(),
                                });
                            }
                        }
                    };
                    let mut buf = [0u8; 4];
                    let s = Cow::Owned(c.encode_utf8(&mut buf).to_owned());
                    if let Some(s) = self.text_piece(s)? {
                        return Ok(Token::Text(s));
                    }
                }
                // RFC 6120 §11.1: an XML stanza MUST NOT contain comments, processing
                // instructions, or internal or external DTD subsets.
                Event::Comment(_) => return Err(XmlError::Comment),
                Event::PI(_) => return Err(XmlError::ProcessingInstruction),
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Decl(_) => {
                    if self.seen_decl_or_root {
                        return Err(XmlError::Syntax {
                            position: pos,
                            message: "misplaced XML declaration".into(),
                        });
                    }
                    self.seen_decl_or_root = true;
                }
                Event::Eof => {
                    if self.depth != 0 {
                        return Err(XmlError::UnexpectedEof);
                    }
                    return Ok(Token::Eof);
                }
            }
        }
    }

    /// Text inside the root is a token; outside it only whitespace may appear, and is
    /// dropped.
    fn text_piece(&self, s: Cow<'a, str>) -> Result<Option<Cow<'a, str>>, XmlError> {
        if self.depth > 0 {
            return Ok(Some(s));
        }
        if s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(None);
        }
        Err(XmlError::TrailingContent)
    }

    /// Checks and resolves a start tag: (local name, namespace); the attributes go to
    /// `self.attrs`.
    fn start(
        &mut self,
        start: &quick_xml::events::BytesStart<'a>,
        pos: u64,
    ) -> Result<(&'a str, &'a str), XmlError> {
        let (text, limits) = (self.text, &self.limits);
        if self.root_done {
            return Err(XmlError::TrailingContent);
        }
        self.seen_decl_or_root = true;
        if self.depth + 1 > limits.max_depth {
            return Err(XmlError::TooDeep {
                max: limits.max_depth,
            });
        }
        self.elements += 1;
        if self.elements > limits.max_elements {
            return Err(XmlError::TooManyElements {
                max: limits.max_elements,
            });
        }
        let depth = self.depth + 1;
        let qname = slice_of(text, start.name().into_inner())?;
        let (prefix, local) = split_qname(qname);
        if local.len() > limits.max_name {
            return Err(XmlError::NameTooLong {
                max: limits.max_name,
            });
        }
        self.raw.clear();
        self.attrs.clear();
        // Duplicates are checked below on the raw names (quick-xml's own check
        // allocates per tag).
        for attr in start.attributes().with_checks(false) {
            let attr = attr.map_err(|e| XmlError::Syntax {
                position: pos,
                message: e.to_string(),
            })?;
            if self.raw.len() == limits.max_attributes {
                return Err(XmlError::TooManyAttributes {
                    max: limits.max_attributes,
                });
            }
            let key = slice_of(text, attr.key.into_inner())?;
            // XML 1.0 §3.1 (WFC: Unique Att Spec): no attribute name may appear more
            // than once in the same start-tag.
            if self.raw.iter().any(|&(k, _)| k == key) {
                return Err(XmlError::Syntax {
                    position: pos,
                    message: format!("duplicate attribute {key:?}"),
                });
            }
            let value = match &attr.value {
                Cow::Borrowed(v) => slice_of(text, v)?,
                Cow::Owned(_) => {
                    return Err(XmlError::Syntax {
                        position: pos,
                        message: "attribute value not in the input".into(),
                    });
                }
            };
            if let Some(prefix) = namespace_binding(key) {
                bind(&mut self.bindings, prefix, value, depth).map_err(|message| {
                    XmlError::Syntax {
                        position: pos,
                        message,
                    }
                })?;
            }
            self.raw.push((key, value));
        }
        let namespace =
            lookup(&self.bindings, prefix, true).ok_or_else(|| XmlError::UnboundPrefix {
                name: qname.to_owned(),
            })?;
        for &(key, value) in &self.raw {
            if namespace_binding(key).is_some() {
                continue;
            }
            let (aprefix, aname) = split_qname(key);
            if aname.len() > limits.max_name {
                return Err(XmlError::NameTooLong {
                    max: limits.max_name,
                });
            }
            let anamespace = match aprefix {
                // Namespaces in XML 1.0 §6.2: unprefixed attributes are in no namespace.
                None => "",
                Some(_) => lookup(&self.bindings, aprefix, false).ok_or_else(|| {
                    XmlError::UnboundPrefix {
                        name: key.to_owned(),
                    }
                })?,
            };
            if value.len() > limits.max_attribute_value {
                return Err(XmlError::AttributeTooLong {
                    max: limits.max_attribute_value,
                });
            }
            // XML 1.0 §3.1 (AttValue production): '<' is not allowed in a value.
            if value.contains('<') {
                return Err(XmlError::Syntax {
                    position: pos,
                    message: "'<' in attribute value".into(),
                });
            }
            self.attrs.push(Attr {
                ns: anamespace,
                name: aname,
                value: unescape_attr(value)?,
            });
        }
        Ok((local, namespace))
    }

    /// A new owned element for the start tag just read, with its attributes.
    fn new_element(&self, name: &str, ns: &str) -> Element {
        Element {
            name: known_name(name),
            namespace: known_namespace(ns),
            attributes: self
                .attrs
                .iter()
                .map(|a| Attribute {
                    namespace: a.ns.to_owned(),
                    name: a.name.to_owned(),
                    value: a.value.clone().into_owned(),
                })
                .collect(),
            children: Vec::new(),
        }
    }

    /// Builds the whole element whose start tag [`next`](Self::next) just returned
    /// (`name`, `ns`, `empty` as it said), reading up to and including its end tag.
    pub(crate) fn element(
        &mut self,
        name: &str,
        ns: &str,
        empty: bool,
    ) -> Result<Element, XmlError> {
        let current = self.new_element(name, ns);
        if empty {
            return Ok(current);
        }
        let limits = self.limits;
        build_subtree(current, &limits, || {
            Ok(match self.next()? {
                Token::Start { name, ns, empty } => {
                    TreeStep::Open(self.new_element(name, ns), empty)
                }
                Token::End => TreeStep::Close,
                Token::Text(s) => TreeStep::Text(s),
                // `next` reports an unclosed element itself.
                Token::Eof => return Err(XmlError::UnexpectedEof),
            })
        })
    }
}

/// A namespace declaration in scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binding<'a> {
    /// `None` for the default namespace (`xmlns`, or quick-xml's reading of `xmlns:`).
    pub(crate) prefix: Option<&'a str>,
    /// The URI as written; empty undeclares.
    pub(crate) uri: &'a str,
    /// Depth of the declaring element (the root is 1).
    pub(crate) depth: usize,
}

/// The namespace URI bound to `xmlns`-prefixed names (Namespaces in XML 1.0 §3).
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// `Some(prefix)` when the attribute `key` declares a namespace: `Some("")` for
/// `xmlns`, `Some(p)` for `xmlns:p`.
pub(crate) fn namespace_binding(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("xmlns")?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix(':')
    }
}

/// Records a declaration of `prefix` (`""`: the default namespace) made at `depth`.
fn bind<'a>(
    bindings: &mut Vec<Binding<'a>>,
    prefix: &'a str,
    uri: &'a str,
    depth: usize,
) -> Result<(), String> {
    if let Some(b) = declaration(prefix, uri, depth)? {
        bindings.push(b);
    }
    Ok(())
}

/// Checks a declaration of `prefix` (`""`: the default namespace) made at `depth`: the
/// binding to record, if any.
pub(crate) fn declaration<'a>(
    prefix: &'a str,
    uri: &'a str,
    depth: usize,
) -> Result<Option<Binding<'a>>, String> {
    match prefix {
        "" => {}
        // Namespaces in XML 1.0 §3: "xml" may only be bound to its own URI (and need
        // not be declared), "xmlns" must not be declared, and neither URI may be bound
        // to another prefix.
        "xml" if uri == XML_NS => return Ok(None),
        "xml" => return Err(format!("the xml prefix bound to {uri:?}")),
        "xmlns" => return Err("the xmlns prefix declared".into()),
        _ if uri == XML_NS || uri == XMLNS_NS => {
            return Err(format!("prefix {prefix:?} bound to a reserved namespace"));
        }
        _ => {}
    }
    Ok(Some(Binding {
        prefix: (!prefix.is_empty()).then_some(prefix),
        uri,
        depth,
    }))
}

/// Drops the declarations made at `depth` (the element there has ended).
fn unbind(bindings: &mut Vec<Binding<'_>>, depth: usize) {
    while bindings.last().is_some_and(|b| b.depth >= depth) {
        bindings.pop();
    }
}

/// The namespace URI of a name with `prefix` (`""` when in no namespace); `None` for
/// an unbound prefix. `element` names without a prefix take the default namespace.
pub(crate) fn lookup<'a>(
    bindings: &[Binding<'a>],
    prefix: Option<&str>,
    element: bool,
) -> Option<&'a str> {
    match prefix {
        None if !element => Some(""),
        None => Some(
            bindings
                .iter()
                .rev()
                .find(|b| b.prefix.is_none())
                .map_or("", |b| b.uri),
        ),
        Some(p) => match bindings.iter().rev().find(|b| b.prefix == Some(p)) {
            Some(b) if !b.uri.is_empty() => Some(b.uri),
            Some(_) => None,
            None => match p {
                "xml" => Some(XML_NS),
                "xmlns" => Some(XMLNS_NS),
                _ => None,
            },
        },
    }
}

/// Splits a qualified name at its first colon: (prefix, local name).
pub(crate) fn split_qname(qname: &str) -> (Option<&str>, &str) {
    // A byte loop: names are short, a searcher costs more to set up than it saves.
    match qname.bytes().position(|b| b == b':') {
        Some(i) => (Some(&qname[..i]), &qname[i + 1..]),
        None => (None, qname),
    }
}

/// `part` (a slice quick-xml returned from `text`) as a `&str` of `text`, without
/// validating the UTF-8 again: the reader only splits at ASCII delimiters.
fn slice_of<'a>(text: &'a str, part: &[u8]) -> Result<&'a str, XmlError> {
    let start = (part.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    match start
        .checked_add(part.len())
        .and_then(|end| text.get(start..end))
    {
        Some(s) => Ok(s),
        None => utf8(part).map(|_| "").and(Err(XmlError::Syntax {
            position: 0,
            message: "name outside the input".into(),
        })),
    }
}

fn utf8(b: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(b).map_err(|e| XmlError::InvalidUtf8 {
        position: e.valid_up_to(),
    })
}

pub(crate) fn is_xml_char(c: char) -> bool {
    // XML 1.0 §2.2, production [2] Char.
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

pub(crate) fn unescape_attr(s: &str) -> Result<Cow<'_, str>, XmlError> {
    if !s.contains('&') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').ok_or(XmlError::Syntax {
            position: 0,
            message: "unterminated reference".into(),
        })?;
        let name = &after[..end];
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ if name.starts_with('#') => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else {
                    name[1..].parse::<u32>().ok()
                };
                match code.and_then(char::from_u32) {
                    Some(c) if is_xml_char(c) && !name[1..].starts_with(['+', '-']) => c,
                    _ => return Err(XmlError::InvalidCharRef { position: 0 }),
                }
            }
            _ => {
                return Err(XmlError::EntityReference {
                    name: name.to_owned(),
                });
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// What [`build_subtree`] reads next: an element just opened (built, with its
/// attributes, and whether it was an empty-element tag), the end of the innermost open
/// element, or a piece of text.
pub(crate) enum TreeStep<'a> {
    Open(Element, bool),
    Close,
    Text(Cow<'a, str>),
}

/// Builds `current`, whose start tag was just read, up to and including its end tag
/// from the steps `next` gives (an error, including the end of input, ends the build).
/// Both XML readers build their owned subtrees with it: the tree reader over
/// [`Tokens`], the fast reader over its own lexer.
pub(crate) fn build_subtree<'a>(
    mut current: Element,
    limits: &Limits,
    mut next: impl FnMut() -> Result<TreeStep<'a>, XmlError>,
) -> Result<Element, XmlError> {
    // The open ancestors of `current` below the element being built.
    let mut open: Vec<Element> = Vec::new();
    loop {
        match next()? {
            TreeStep::Open(el, true) => current.children.push(Node::Element(el)),
            TreeStep::Open(el, false) => open.push(std::mem::replace(&mut current, el)),
            TreeStep::Close => {
                finish_element(&mut current);
                match open.pop() {
                    Some(mut parent) => {
                        parent.children.push(Node::Element(current));
                        current = parent;
                    }
                    None => return Ok(current),
                }
            }
            TreeStep::Text(s) => push_text(&mut current, &s, limits)?,
        }
    }
}

pub(crate) fn push_text(el: &mut Element, s: &str, limits: &Limits) -> Result<(), XmlError> {
    if let Some(Node::Text(t)) = el.children.last_mut() {
        if t.len() + s.len() > limits.max_text {
            return Err(XmlError::TextTooLong {
                max: limits.max_text,
            });
        }
        t.push_str(s);
    } else {
        if s.len() > limits.max_text {
            return Err(XmlError::TextTooLong {
                max: limits.max_text,
            });
        }
        el.children.push(Node::Text(s.to_owned()));
    }
    Ok(())
}

pub(crate) fn finish_element(el: &mut Element) {
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        el.children.retain(|n| match n {
            Node::Text(t) => !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
            Node::Element(_) => true,
        });
    }
}

/// A streaming writer of canonical XML into a `String`.
#[derive(Debug)]
pub(crate) struct Writer<'w> {
    out: String,
    /// Open elements: (name, default namespace in force inside it).
    stack: Vec<(&'w str, &'w str)>,
    /// Whether the last start tag is still open (`<name attr="..."` without `>`).
    open: bool,
    prefixes: u32,
}

impl<'w> Writer<'w> {
    pub(crate) fn new() -> Self {
        Writer {
            out: String::with_capacity(1024),
            stack: Vec::with_capacity(8),
            open: false,
            prefixes: 0,
        }
    }

    /// A writer appending to `out`.
    pub(crate) fn with_buffer(out: String) -> Self {
        Writer {
            out,
            stack: Vec::with_capacity(8),
            open: false,
            prefixes: 0,
        }
    }

    pub(crate) fn finish(self) -> String {
        debug_assert!(self.stack.is_empty(), "unbalanced XML writer");
        self.out
    }

    fn close_start(&mut self) {
        if self.open {
            self.out.push('>');
            self.open = false;
        }
    }

    /// Opens `<name>` in `namespace`, declaring it when it differs from the parent's.
    pub(crate) fn start(&mut self, name: &'w str, namespace: &'w str) {
        self.close_start();
        let parent_ns = self.stack.last().map_or("", |&(_, ns)| ns);
        self.out.push('<');
        self.out.push_str(name);
        if namespace != parent_ns {
            self.out.push_str(" xmlns=\"");
            escape_into(&mut self.out, namespace, true);
            self.out.push('"');
        }
        self.stack.push((name, namespace));
        self.open = true;
        self.prefixes = 0;
    }

    /// Adds an unqualified attribute to the open start tag.
    pub(crate) fn attr(&mut self, name: &str, value: &str) {
        debug_assert!(self.open, "attribute after content");
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value, true);
        self.out.push('"');
    }

    /// Adds an attribute when the value is present.
    pub(crate) fn attr_opt(&mut self, name: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(name, v);
        }
    }

    /// Adds a numeric attribute when present.
    pub(crate) fn attr_num<T: itoa_like::Num>(&mut self, name: &str, value: Option<T>) {
        if let Some(v) = value {
            self.out.push(' ');
            self.out.push_str(name);
            self.out.push_str("=\"");
            v.push_to(&mut self.out);
            self.out.push('"');
        }
    }

    /// Adds a namespaced attribute (`xml:` keeps its reserved prefix, others get a
    /// generated one declared on the same element).
    pub(crate) fn attr_ns(&mut self, namespace: &str, name: &str, value: &str) {
        if namespace.is_empty() {
            return self.attr(name, value);
        }
        self.out.push(' ');
        if namespace == XML_NS {
            self.out.push_str("xml:");
        } else {
            let p = self.prefixes;
            self.prefixes += 1;
            self.out.push_str("xmlns:a");
            self.out.push_str(&p.to_string());
            self.out.push_str("=\"");
            escape_into(&mut self.out, namespace, true);
            self.out.push_str("\" a");
            self.out.push_str(&p.to_string());
            self.out.push(':');
        }
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(&mut self.out, value, true);
        self.out.push('"');
    }

    /// Writes escaped text content.
    pub(crate) fn text(&mut self, text: &str) {
        self.close_start();
        escape_into(&mut self.out, text, false);
    }

    /// Closes the innermost open element.
    pub(crate) fn end(&mut self) {
        let (name, _) = self.stack.pop().expect("end() without start()");
        if self.open {
            self.out.push_str("/>");
            self.open = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
        }
    }

    /// `<name>text</name>` in the current namespace, when present.
    pub(crate) fn text_element(&mut self, name: &'w str, text: Option<&str>) {
        if let Some(t) = text {
            let ns = self.stack.last().map_or("", |&(_, ns)| ns);
            self.start(name, ns);
            self.text(t);
            self.end();
        }
    }

    /// Writes a whole raw element.
    pub(crate) fn element(&mut self, el: &'w Element) {
        self.start(&el.name, &el.namespace);
        for a in &el.attributes {
            self.attr_ns(&a.namespace, &a.name, &a.value);
        }
        for c in &el.children {
            match c {
                Node::Element(e) => self.element(e),
                Node::Text(t) => self.text(t),
            }
        }
        self.end();
    }

    /// Appends already-serialized XML (a complete element) as a child.
    pub(crate) fn raw(&mut self, xml: &str) {
        self.close_start();
        self.out.push_str(xml);
    }

    /// The current default namespace.
    pub(crate) fn current_ns(&self) -> &'w str {
        self.stack.last().map_or("", |&(_, ns)| ns)
    }
}

/// The offset of the first C0 control other than TAB, LF and CR. Eight bytes at a time:
/// a word with no byte below 0x20 (the usual case) is passed with a few operations, the
/// others are looked at byte by byte.
pub(crate) fn forbidden_control(input: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bad = |b: u8| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
    let mut chunks = input.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Sets the high bit of every byte below 0x20 (and maybe of a few others next to
        // one: only a hint, checked below).
        if w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0
            && let Some(i) = chunk.iter().position(|&b| bad(b))
        {
            return Some(offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| bad(b))
        .map(|i| offset + i)
}

/// Writes an `<iq/>` without children exactly as [`Writer`] would (see `Iq::write`),
/// without the writer's element stack.
pub(crate) fn write_empty_iq(out: &mut String, iq: &crate::Iq) {
    debug_assert!(iq.jingle.is_none() && iq.error.is_none());
    // The constant start in one piece (the namespace is `ns::CLIENT`; the test below
    // compares with the general writer).
    out.push_str(match iq.kind {
        crate::IqType::Get => "<iq xmlns=\"jabber:client\" type=\"get\" id=\"",
        crate::IqType::Set => "<iq xmlns=\"jabber:client\" type=\"set\" id=\"",
        crate::IqType::Result => "<iq xmlns=\"jabber:client\" type=\"result\" id=\"",
        crate::IqType::Error => "<iq xmlns=\"jabber:client\" type=\"error\" id=\"",
    });
    escape_into(out, &iq.id, true);
    out.push('"');
    for (name, jid) in [(" from=\"", &iq.from), (" to=\"", &iq.to)] {
        if let Some(j) = jid {
            out.push_str(name);
            escape_into(out, j.as_str(), true);
            out.push('"');
        }
    }
    if let Some(l) = &iq.lang {
        out.push_str(" xml:lang=\"");
        escape_into(out, l, true);
        out.push('"');
    }
    out.push_str("/>");
}

/// Escapes `s` for XML text (`&`, `<`, `>`, and CR so it survives end-of-line
/// normalization) or for a double-quoted attribute value (also `"`, TAB and LF, which
/// attribute-value normalization would otherwise turn into spaces).
pub(crate) fn escape_into(out: &mut String, s: &str, attr: bool) {
    let bytes = s.as_bytes();
    // Most values (ids, JIDs, names, namespaces) need no escaping: one scan, one copy.
    if !needs_escape(bytes, attr) {
        out.push_str(s);
        return;
    }
    let mut last = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'\r' => "&#13;",
            b'"' if attr => "&quot;",
            b'\n' if attr => "&#10;",
            b'\t' if attr => "&#9;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Whether [`escape_into`] must replace a byte of `bytes`. Eight bytes at a time: a word
/// without a byte below 0x20 or one of `&<>` (and `"` in attributes) is passed with a few
/// operations; the others are looked up byte by byte.
fn needs_escape(bytes: &[u8], attr: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte equal to `c` (exact for "none at all": a spurious flag
    // only ever sits above a true one).
    let equal = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let table = if attr { &ESCAPE_ATTR } else { &ESCAPE_TEXT };
    let exact = |part: &[u8]| part.iter().any(|&b| table[usize::from(b)]);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let quote = if attr { equal(w, b'"') } else { 0 };
        let m = below_space | equal(w, b'&') | equal(w, b'<') | equal(w, b'>') | quote;
        if m != 0 && exact(chunk) {
            return true;
        }
    }
    exact(chunks.remainder())
}

/// Bytes [`escape_into`] replaces in attribute values.
const ESCAPE_ATTR: [bool; 256] = escape_table(b"&<>\r\"\n\t");
/// Bytes [`escape_into`] replaces in text.
const ESCAPE_TEXT: [bool; 256] = escape_table(b"&<>\r");

const fn escape_table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// Integer formatting without going through `fmt` machinery for every attribute.
pub(crate) mod itoa_like {
    /// An unsigned integer the writer can print.
    pub(crate) trait Num: Copy {
        fn push_to(self, out: &mut String);
    }
    macro_rules! num {
        ($($t:ty),*) => {$(
            impl Num for $t {
                fn push_to(self, out: &mut String) {
                    let mut buf = [0u8; 20];
                    let mut i = buf.len();
                    let mut v = self as u64;
                    loop {
                        i -= 1;
                        buf[i] = b'0' + (v % 10) as u8;
                        v /= 10;
                        if v == 0 {
                            break;
                        }
                    }
                    // Only ASCII digits were written.
                    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
                }
            }
        )*};
    }
    num!(u8, u16, u32, u64);
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_names_and_namespaces_are_borrowed_others_owned() {
        use std::borrow::Cow;
        for uri in ["", crate::ns::JINGLE, crate::ns::CLIENT, super::XML_NS] {
            assert!(matches!(super::known_namespace(uri), Cow::Borrowed(u) if u == uri));
        }
        for uri in ["test", "urn:example", "jabber:x"] {
            assert!(matches!(super::known_namespace(uri), Cow::Owned(u) if u == uri));
        }
        for name in [
            "transport",
            "success",
            "alternative-session",
            "item-not-found",
        ] {
            assert!(matches!(super::known_name(name), Cow::Borrowed(n) if n == name));
        }
        for name in ["x-thing", "Success", "item-not-found2"] {
            assert!(matches!(super::known_name(name), Cow::Owned(n) if n == name));
        }
    }

    use super::{Writer, write_empty_iq};
    use crate::{Iq, IqType, Jid};

    #[test]
    fn forbidden_controls_are_found_at_any_offset() {
        let naive = |x: &[u8]| {
            x.iter()
                .position(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
        };
        for len in 0..40 {
            for at in 0..len {
                for b in 0u8..=0x7f {
                    let mut x = vec![b'a'; len];
                    x[at] = b;
                    if at + 1 < len {
                        // A neighbour the word test can confuse with a control.
                        x[at + 1] = 0x80 | b;
                    }
                    assert_eq!(super::forbidden_control(&x), naive(&x), "{x:?}");
                }
            }
        }
    }

    #[test]
    fn the_escape_check_finds_every_byte_that_needs_escaping() {
        for attr in [false, true] {
            let table = if attr {
                &super::ESCAPE_ATTR
            } else {
                &super::ESCAPE_TEXT
            };
            for len in 0..20 {
                for at in 0..len {
                    for b in 0u8..=0xff {
                        let mut x = vec![b'a'; len];
                        x[at] = b;
                        let naive = x.iter().any(|&c| table[usize::from(c)]);
                        assert_eq!(super::needs_escape(&x, attr), naive, "{x:?} {attr}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_iq_is_written_as_the_writer_writes_it() {
        let jid = |s: &str| Some(Jid::new(s).expect("jid"));
        let mut cases = Vec::new();
        for kind in [IqType::Result, IqType::Error, IqType::Set, IqType::Get] {
            for (id, from, to, lang) in [
                ("a", None, None, None),
                (
                    "x&\"<>\t\n\r'y",
                    jid("ab@c/d&\"e"),
                    jid("c@d/<e>"),
                    Some("e\"n"),
                ),
                ("1", jid("a@b/c"), None, Some("en")),
                ("", None, jid("d"), None),
            ] {
                cases.push(Iq {
                    kind,
                    id: id.to_owned(),
                    from,
                    to,
                    lang: lang.map(str::to_owned),
                    jingle: None,
                    error: None,
                });
            }
        }
        for iq in cases {
            let mut w = Writer::new();
            iq.write(&mut w);
            let mut fast = String::new();
            write_empty_iq(&mut fast, &iq);
            assert_eq!(fast, w.finish());
        }
    }
}
