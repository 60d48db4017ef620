//! The XML layer: a small owned element tree, a hardened reader on top of quick-xml's
//! namespace-resolving reader, and a canonical writer.
//!
//! [`Element`] is also the raw extension point of the crate: every payload huddle does
//! not type (an unknown application format, transport, session-info payload or child) is
//! kept as an [`Element`] and written back unchanged in meaning.

use std::fmt;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

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
    /// The local name.
    pub name: String,
    /// The namespace URI, empty when the element is in no namespace.
    pub namespace: String,
    /// Attributes in document order (namespace declarations are not attributes).
    pub attributes: Vec<Attribute>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// A new element without attributes or children.
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
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

/// Reads one document: an optional XML declaration, one root element, optional
/// whitespace.
pub(crate) fn read_document(input: &[u8], limits: &Limits) -> Result<Element, XmlError> {
    if input.len() > limits.max_input {
        return Err(XmlError::InputTooLarge {
            len: input.len(),
            max: limits.max_input,
        });
    }
    let text = std::str::from_utf8(input).map_err(|e| XmlError::InvalidUtf8 {
        position: e.valid_up_to(),
    })?;
    // XML 1.0 §2.2 (Char production): C0 controls other than TAB, LF and CR are never
    // allowed, not even escaped; checked once over the raw input.
    if let Some(pos) = text
        .bytes()
        .position(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
    {
        return Err(XmlError::ForbiddenChar {
            code: u32::from(input[pos]),
            position: pos,
        });
    }
    let mut reader = NsReader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.expand_empty_elements = false;
        cfg.check_comments = true;
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut seen_decl_or_root = false;
    loop {
        let pos = reader.buffer_position();
        let (ns, event) = reader.read_resolved_event().map_err(|e| XmlError::Syntax {
            position: pos,
            message: e.to_string(),
        })?;
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                if root.is_some() {
                    return Err(XmlError::TrailingContent);
                }
                seen_decl_or_root = true;
                if stack.len() + 1 > limits.max_depth {
                    return Err(XmlError::TooDeep {
                        max: limits.max_depth,
                    });
                }
                elements += 1;
                if elements > limits.max_elements {
                    return Err(XmlError::TooManyElements {
                        max: limits.max_elements,
                    });
                }
                let local = start.local_name();
                let name = utf8(local.as_ref())?;
                if name.len() > limits.max_name {
                    return Err(XmlError::NameTooLong {
                        max: limits.max_name,
                    });
                }
                let namespace = resolve(ns, start.name().as_ref())?;
                let mut el = Element {
                    name: name.to_owned(),
                    namespace,
                    attributes: Vec::new(),
                    children: Vec::new(),
                };
                let mut count = 0usize;
                for attr in start.attributes().with_checks(true) {
                    let attr = attr.map_err(|e| XmlError::Syntax {
                        position: pos,
                        message: e.to_string(),
                    })?;
                    count += 1;
                    if count > limits.max_attributes {
                        return Err(XmlError::TooManyAttributes {
                            max: limits.max_attributes,
                        });
                    }
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ans, alocal) = reader.resolve_attribute(attr.key);
                    let aname = utf8(alocal.as_ref())?;
                    if aname.len() > limits.max_name {
                        return Err(XmlError::NameTooLong {
                            max: limits.max_name,
                        });
                    }
                    let anamespace = match ans {
                        ResolveResult::Unbound => String::new(),
                        other => resolve(other, attr.key.as_ref())?,
                    };
                    if attr.value.len() > limits.max_attribute_value {
                        return Err(XmlError::AttributeTooLong {
                            max: limits.max_attribute_value,
                        });
                    }
                    // XML 1.0 §3.1 (AttValue production): '<' is not allowed in a value.
                    if attr.value.contains(&b'<') {
                        return Err(XmlError::Syntax {
                            position: pos,
                            message: "'<' in attribute value".into(),
                        });
                    }
                    let value = unescape_attr(&attr.value)?;
                    el.attributes.push(Attribute {
                        namespace: anamespace,
                        name: aname.to_owned(),
                        value,
                    });
                }
                if matches!(event, Event::Empty(_)) {
                    attach(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or(XmlError::Syntax {
                    position: pos,
                    message: "unexpected end tag".into(),
                })?;
                finish_element(&mut el);
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(|e| XmlError::Syntax {
                    position: pos,
                    message: e.to_string(),
                })?;
                push_text(&mut stack, &s, limits)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| XmlError::Syntax {
                    position: pos,
                    message: e.to_string(),
                })?;
                if stack.is_empty() {
                    return Err(XmlError::TrailingContent);
                }
                push_text(&mut stack, &s, limits)?;
            }
            Event::GeneralRef(r) => {
                // XML 1.0 §4.6 and RFC 6120 §11.1: only the five predefined entities and
                // character references; any other entity reference is refused.
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
                push_text(&mut stack, c.encode_utf8(&mut buf), limits)?;
            }
            // RFC 6120 §11.1: an XML stanza MUST NOT contain comments, processing
            // instructions, or internal or external DTD subsets.
            Event::Comment(_) => return Err(XmlError::Comment),
            Event::PI(_) => return Err(XmlError::ProcessingInstruction),
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) => {
                if seen_decl_or_root {
                    return Err(XmlError::Syntax {
                        position: pos,
                        message: "misplaced XML declaration".into(),
                    });
                }
                seen_decl_or_root = true;
            }
            Event::Eof => {
                if !stack.is_empty() {
                    return Err(XmlError::UnexpectedEof);
                }
                return root.ok_or(XmlError::NoRootElement);
            }
        }
    }
}

fn utf8(b: &[u8]) -> Result<&str, XmlError> {
    std::str::from_utf8(b).map_err(|e| XmlError::InvalidUtf8 {
        position: e.valid_up_to(),
    })
}

fn resolve(ns: ResolveResult<'_>, qname: &[u8]) -> Result<String, XmlError> {
    match ns {
        ResolveResult::Bound(n) => Ok(utf8(n.as_ref())?.to_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(_) => Err(XmlError::UnboundPrefix {
            name: String::from_utf8_lossy(qname).into_owned(),
        }),
    }
}

fn is_xml_char(c: char) -> bool {
    // XML 1.0 §2.2, production [2] Char.
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

fn unescape_attr(raw: &[u8]) -> Result<String, XmlError> {
    let s = utf8(raw)?;
    if !s.contains('&') {
        return Ok(s.to_owned());
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
    Ok(out)
}

fn push_text(stack: &mut [Element], s: &str, limits: &Limits) -> Result<(), XmlError> {
    let Some(top) = stack.last_mut() else {
        // Outside the root only whitespace may appear.
        if s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(());
        }
        return Err(XmlError::TrailingContent);
    };
    if let Some(Node::Text(t)) = top.children.last_mut() {
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
        top.children.push(Node::Text(s.to_owned()));
    }
    Ok(())
}

fn finish_element(el: &mut Element) {
    if el.children.iter().any(|n| matches!(n, Node::Element(_))) {
        el.children.retain(|n| match n {
            Node::Text(t) => !t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
            Node::Element(_) => true,
        });
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => *root = Some(el),
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

/// Escapes `s` for XML text (`&`, `<`, `>`, and CR so it survives end-of-line
/// normalization) or for a double-quoted attribute value (also `"`, TAB and LF, which
/// attribute-value normalization would otherwise turn into spaces).
pub(crate) fn escape_into(out: &mut String, s: &str, attr: bool) {
    let bytes = s.as_bytes();
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
