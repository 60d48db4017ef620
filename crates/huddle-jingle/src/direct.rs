//! The fast reader of `<iq/>` stanzas and bare `<jingle/>`s: decodes the iq, jingle and
//! content levels straight from the tokenizer's events, borrowing names and values from
//! the input, and builds owned [`Element`]s only for what is kept or decoded as an element
//! (payloads, reasons, errors, extensions).
//!
//! Its tokenizer ([`Lexer`]) knows only the XML that stanzas are made of (tags with
//! quoted attributes, text with references, namespaces) and applies the same checks and
//! [`Limits`] as the tree reader's; it decodes every payload with the same functions as
//! the tree reader. It needs no error paths of its own: whenever anything is not exactly
//! as expected (an error, or just something it does not read itself: CDATA, an XML
//! declaration, a CR, references in attribute values, odd spacing, non-ASCII names, more
//! than a few levels of nesting) it gives up
//! (`None`) and the [`Codec`](crate::Codec) reads the document again the tree way, which
//! produces the value or the precise error. The property tests below check that the two
//! readers agree on every input: where this one accepts, it returns what the tree reader
//! returns.

use std::borrow::Cow;

use crate::error::XmlError;
use crate::ext::Registry;
use crate::jid::Jid;
use crate::model::{
    Action, Content, Creator, DEFAULT_DISPOSITION, Iq, IqType, Jingle, Senders, StanzaError,
};
use crate::ns;
use crate::sid::Sid;
use crate::xml::{
    Attribute, Binding, Element, Limits, TreeStep, XML_NS, build_subtree, declaration, is_xml_char,
    lookup,
};
use crate::{Document, Known};

/// Decodes one `<iq/>` document, or `None` when the tree reader must decide (malformed
/// or unusual input: the tree reader then gives the error, or the value).
///
/// An address equal to one of `known.jids`, or a sid equal to `known.sid`, is a clone of
/// it (JID and sid equality are string equality, and a known JID is valid), not a new
/// allocation.
pub(crate) fn iq(input: &[u8], limits: &Limits, reg: &Registry, known: Known<'_>) -> Option<Iq> {
    match root(input, limits, reg, known)? {
        Root::Iq(iq) => Some(iq),
        Root::Jingle(_) => None,
    }
}

/// Decodes one document, an `<iq/>` or a bare `<jingle/>` (as `Codec::parse`), or `None`
/// when the tree reader must decide.
pub(crate) fn document(
    input: &[u8],
    limits: &Limits,
    reg: &Registry,
    known: Known<'_>,
) -> Option<Document> {
    Some(match root(input, limits, reg, known)? {
        Root::Iq(iq) => Document::Iq(iq),
        Root::Jingle(j) => Document::Jingle(*j),
    })
}

/// What a document held, small to move (a `Jingle` is large: it stays in its box).
enum Root {
    Iq(Iq),
    Jingle(Box<Jingle>),
}

fn root(input: &[u8], limits: &Limits, reg: &Registry, known: Known<'_>) -> Option<Root> {
    let mut t = Lexer::new(input, limits)?;
    let root = match t.next()? {
        Tok::Start {
            name: "iq",
            ns,
            empty,
        } => Root::Iq(iq_body(&mut t, ns, empty, reg, known)?),
        Tok::Start {
            name: "jingle",
            ns: ns::JINGLE,
            empty,
        } => Root::Jingle(jingle(&mut t, empty, reg, known)?),
        _ => return None,
    };
    matches!(t.next()?, Tok::Eof).then_some(root)
}

/// The `<iq/>` (in `client_ns`) whose start tag was just read.
fn iq_body(
    t: &mut Lexer<'_>,
    client_ns: &str,
    empty: bool,
    reg: &Registry,
    known: Known<'_>,
) -> Option<Iq> {
    // RFC 6120 §4.8.3 (as in `Iq::decode`): the stanza's namespace, or none.
    if !matches!(client_ns, "" | ns::CLIENT | ns::SERVER | ns::COMPONENT) {
        return None;
    }
    // RFC 6120 §8.1.3, §8.2.3: 'type' and 'id' are REQUIRED.
    let kind = IqType::from_wire(t.attr("type")?)?;
    let id = t.attr("id")?.to_owned();
    let from = jid(t.attr("from"), known.jids)?;
    let to = jid(t.attr("to"), known.jids)?;
    let lang = t.attr_ns(XML_NS, "lang").map(str::to_owned);
    let mut jingle: Option<Box<Jingle>> = None;
    let mut error: Option<Box<StanzaError>> = None;
    if !empty {
        let mut run = TextRun::default();
        loop {
            match t.next()? {
                Tok::Start { name, ns, empty } => {
                    run.reset();
                    if name == "jingle" && ns == ns::JINGLE && jingle.is_none() {
                        jingle = Some(self::jingle(t, empty, reg, known)?);
                    } else if name == "error" && ns == client_ns && error.is_none() {
                        let el = t.element(name, ns, empty)?;
                        error = Some(Box::new(StanzaError::decode(el).ok()?));
                    } else {
                        return None;
                    }
                }
                Tok::Text(s) => run.add(&s, t.limits())?,
                Tok::End => break,
                Tok::Eof => return None,
            }
        }
    }
    // RFC 6120 §8.2.3 (as in `Iq::decode`): get and set carry exactly one payload, an
    // error carries an <error/>, a result no error.
    let ok = match kind {
        IqType::Get | IqType::Set => jingle.is_some() && error.is_none(),
        IqType::Error => error.is_some(),
        IqType::Result => error.is_none(),
    };
    ok.then_some(Iq {
        kind,
        id,
        from,
        to,
        lang,
        jingle,
        error,
    })
}

/// The `<jingle/>` whose start tag was just read.
fn jingle(t: &mut Lexer<'_>, empty: bool, reg: &Registry, known: Known<'_>) -> Option<Box<Jingle>> {
    // XEP-0166 §7.1: 'action' and 'sid' are REQUIRED.
    let action = Action::from_wire(t.attr("action")?.as_bytes())?;
    let sid = t.attr("sid")?;
    let sid = match known.sid {
        Some(k) if k.as_str() == sid => k.clone(),
        _ => Sid::new(sid),
    };
    let mut j = Box::new(Jingle::new(action, sid));
    j.initiator = jid(t.attr("initiator"), known.jids)?;
    j.responder = jid(t.attr("responder"), known.jids)?;
    if empty {
        return Some(j);
    }
    let mut run = TextRun::default();
    loop {
        match t.next()? {
            Tok::Start { name, ns, empty } => {
                run.reset();
                if name == "content" && ns == ns::JINGLE {
                    content(t, empty, reg, &mut j.contents)?;
                } else {
                    let el = t.element(name, ns, empty)?;
                    j.push_child(el, reg).ok()?;
                }
            }
            Tok::Text(s) => run.add(&s, t.limits())?,
            Tok::End => return Some(j),
            Tok::Eof => return None,
        }
    }
}

/// The `<content/>` whose start tag was just read.
/// The `<content/>` whose start tag was just read, decoded in place at the end of
/// `contents` (a `Content` is large: built where it stays). On `None` the caller gives up
/// the whole document.
fn content(
    t: &mut Lexer<'_>,
    empty: bool,
    reg: &Registry,
    contents: &mut Vec<Content>,
) -> Option<()> {
    // XEP-0166 §7.3: 'creator' and 'name' are REQUIRED; 'disposition' defaults to
    // "session" and 'senders' to "both".
    let creator = Creator::from_wire(t.attr("creator")?)?;
    // Most actions carry one content: room for exactly one at first (a first push would
    // make room for four, 1.5 KiB).
    if contents.capacity() == 0 {
        contents.reserve_exact(1);
    }
    contents.push(Content::new(creator, t.attr("name")?.to_owned()));
    let c = contents.last_mut()?;
    if let Some(d) = t.attr("disposition") {
        c.disposition = if d == DEFAULT_DISPOSITION {
            Cow::Borrowed(DEFAULT_DISPOSITION)
        } else {
            Cow::Owned(d.to_owned())
        };
    }
    if let Some(s) = t.attr("senders") {
        c.senders = Senders::from_wire(s)?;
    }
    if empty {
        return Some(());
    }
    let mut run = TextRun::default();
    loop {
        match t.next()? {
            Tok::Start { name, ns, empty } => {
                run.reset();
                let el = t.element(name, ns, empty)?;
                c.push_child(el, reg).ok()?;
            }
            Tok::Text(s) => run.add(&s, t.limits())?,
            Tok::End => return Some(()),
            Tok::Eof => return None,
        }
    }
}

/// An optional JID attribute: `Some(None)` when absent, `None` when invalid.
fn jid(value: Option<&str>, known: &[&Jid]) -> Option<Option<Jid>> {
    match value {
        None => Some(None),
        Some(v) => match known.iter().find(|j| j.as_str() == v) {
            Some(j) => Some(Some((*j).clone())),
            None => Jid::new(v).ok().map(Some),
        },
    }
}

/// The length of the current run of text directly inside an element, bounded like the
/// tree reader bounds a text node (`Limits::max_text`; a child element ends the run).
#[derive(Default)]
struct TextRun(usize);

impl TextRun {
    fn reset(&mut self) {
        self.0 = 0;
    }

    fn add(&mut self, s: &str, limits: &Limits) -> Option<()> {
        self.0 += s.len();
        (self.0 <= limits.max_text).then_some(())
    }
}

/// Open elements, namespace declarations in scope and attributes per tag the [`Lexer`]
/// holds (in arrays: reading allocates nothing); a document with more goes to the tree
/// reader.
const MAX_OPEN: usize = 16;
const MAX_BINDINGS: usize = 16;
const MAX_ATTRS: usize = 16;

/// An attribute of the tag the lexer just read, its value as written (it holds no
/// references).
#[derive(Debug, Clone, Copy, Default)]
struct RawAttr<'a> {
    prefix: Option<&'a str>,
    /// The resolved namespace.
    ns: &'a str,
    name: &'a str,
    value: &'a str,
}

/// A qualified name and its parts.
#[derive(Debug, Clone, Copy)]
struct Name<'a> {
    qname: &'a str,
    prefix: Option<&'a str>,
    local: &'a str,
}

/// Byte classes for the lexer's loops.
const OTHER: u8 = 0;
const NAME_START: u8 = 1;
const NAME: u8 = 2;
const COLON: u8 = 3;
const LT: u8 = 4;
/// In text: a reference, a CR to normalize, a possible `]]>`.
const TEXT_SPECIAL: u8 = 5;
/// A reference (`&`): special in text and in attribute values.
const VALUE_SPECIAL: u8 = 6;
/// A C0 control XML forbids everywhere (XML 1.0 §2.2).
const CONTROL: u8 = 7;

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_alphabetic() || b == b'_' {
            NAME_START
        } else if b.is_ascii_digit() || b == b'-' || b == b'.' {
            NAME
        } else if b == b':' {
            COLON
        } else if b == b'<' {
            LT
        } else if b == b'&' {
            VALUE_SPECIAL
        } else if b == b'\r' || b == b']' {
            TEXT_SPECIAL
        } else if b < 0x20 && b != b'\t' && b != b'\n' {
            // XML 1.0 §2.2 (Char): C0 controls other than TAB, LF and CR.
            CONTROL
        } else {
            OTHER
        };
        c += 1;
    }
    t
};

/// What [`Lexer::next`] read (as the tree reader's `Token`).
#[derive(Debug)]
enum Tok<'a> {
    Start {
        name: &'a str,
        ns: &'a str,
        empty: bool,
    },
    End,
    Text(Cow<'a, str>),
    Eof,
}

/// The fast reader's tokenizer. Every method returns `None` both for errors and for
/// input it leaves to the tree reader.
///
/// The checks are the tree reader's (`xml::Tokens`), in the same terms: input size,
/// UTF-8, forbidden C0 controls (XML 1.0 §2.2); depth, element count, attributes per tag
/// (namespace declarations included), name lengths, attribute value lengths (as
/// written); duplicate attributes (XML 1.0 §3.1 WFC: Unique Att Spec); no '<' in
/// attribute values (§3.1 AttValue); namespace declarations and prefixes (Namespaces in
/// XML 1.0 §3, §6, with the tree reader's own functions); end tags matching their start
/// tags; only the predefined entities and character references to XML characters (XML
/// 1.0 §4.6, RFC 6120 §11.1); nothing but whitespace outside the root. Comments,
/// processing instructions, DOCTYPEs (RFC 6120 §11.1) and everything else starting
/// with `<!` or `<?` are left to the tree reader, which refuses or reads them.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    limits: Limits,
    /// Qualified names of the open elements, outermost first.
    open: [&'a str; MAX_OPEN],
    depth: usize,
    elements: usize,
    root_done: bool,
    bindings: [Binding<'a>; MAX_BINDINGS],
    bound: usize,
    attrs: [RawAttr<'a>; MAX_ATTRS],
    attr_count: usize,
}

/// XML 1.0 §2.3 S production.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Lexer<'a> {
    fn new(input: &'a [u8], limits: &Limits) -> Option<Lexer<'a>> {
        // No separate scan for forbidden C0 controls: the lexer looks at every byte, and
        // only text and attribute values accept more than a fixed set, both refusing them.
        if input.len() > limits.max_input {
            return None;
        }
        let s = std::str::from_utf8(input).ok()?;
        Some(Lexer {
            s,
            pos: 0,
            limits: *limits,
            open: [""; MAX_OPEN],
            depth: 0,
            elements: 0,
            root_done: false,
            bindings: [Binding {
                prefix: None,
                uri: "",
                depth: 0,
            }; MAX_BINDINGS],
            bound: 0,
            attrs: [RawAttr::default(); MAX_ATTRS],
            attr_count: 0,
        })
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The value of an unqualified attribute of the last start tag (as written: it holds
    /// no references, the lexer leaves those to the tree reader).
    fn attr(&self, name: &str) -> Option<&'a str> {
        self.attr_ns("", name)
    }

    /// The value of a namespaced attribute of the last start tag.
    fn attr_ns(&self, ns: &str, name: &str) -> Option<&'a str> {
        self.attrs[..self.attr_count]
            .iter()
            .find(|a| a.ns == ns && a.name == name)
            .map(|a| a.value)
    }

    fn next(&mut self) -> Option<Tok<'a>> {
        let b = self.s.as_bytes();
        loop {
            let Some(&c) = b.get(self.pos) else {
                // The end: only after a complete root (the tree reader reports the rest).
                return (self.root_done && self.depth == 0).then_some(Tok::Eof);
            };
            if c == b'<' {
                return match *b.get(self.pos + 1)? {
                    b'/' => self.end_tag(),
                    b'!' | b'?' => None,
                    _ => self.start_tag(),
                };
            }
            let start = self.pos;
            // Up to the next '<', noting whether anything needs a closer look.
            let mut end = start;
            let mut special = false;
            while let Some(&c) = b.get(end) {
                match CLASS[usize::from(c)] {
                    LT => break,
                    TEXT_SPECIAL | VALUE_SPECIAL => special = true,
                    CONTROL => return None,
                    _ => {}
                }
                end += 1;
            }
            self.pos = end;
            let raw = &self.s[start..end];
            if self.depth == 0 {
                // Outside the root only whitespace (XML 1.0 §2.1 Misc).
                if raw.bytes().all(is_space) {
                    continue;
                }
                return None;
            }
            if !special {
                return Some(Tok::Text(Cow::Borrowed(raw)));
            }
            return text(raw).map(Tok::Text);
        }
    }

    /// A qualified name at `*i`: ASCII letters, digits, `_`, `-`, `.`, at most one
    /// inner colon (anything else goes to the tree reader). Returns the name and its
    /// prefix and local part.
    #[inline(always)]
    fn name(&self, i: &mut usize) -> Option<Name<'a>> {
        let b = self.s.as_bytes();
        let start = *i;
        if CLASS[usize::from(*b.get(start)?)] != NAME_START {
            return None;
        }
        let mut end = start + 1;
        let mut colon = None;
        loop {
            // Eight lowercase ASCII letters at a time (most names are lowercase words)...
            while let Some(chunk) = b.get(end..end + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let k = lowercase_run(u64::from_le_bytes(word));
                end += k;
                if k < 8 {
                    break;
                }
            }
            // ... then one byte of anything else a name may hold, or its end.
            match b.get(end).map(|&c| CLASS[usize::from(c)]) {
                Some(NAME_START | NAME) => {}
                Some(COLON) if colon.is_none() => colon = Some(end),
                _ => break,
            }
            end += 1;
        }
        *i = end;
        let qname = &self.s[start..end];
        Some(match colon {
            None => Name {
                qname,
                prefix: None,
                local: qname,
            },
            Some(c) => {
                // The local part starts like a name.
                if CLASS[usize::from(*b.get(c + 1)?)] != NAME_START {
                    return None;
                }
                Name {
                    qname,
                    prefix: Some(&self.s[start..c]),
                    local: &self.s[c + 1..end],
                }
            }
        })
    }

    fn start_tag(&mut self) -> Option<Tok<'a>> {
        if self.root_done {
            return None;
        }
        let b = self.s.as_bytes();
        let depth = self.depth + 1;
        if depth > self.limits.max_depth || depth > MAX_OPEN {
            return None;
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return None;
        }
        let mut i = self.pos + 1;
        let tag = self.name(&mut i)?;
        if tag.local.len() > self.limits.max_name {
            return None;
        }
        // The attributes; namespace declarations are recorded as they come (they apply
        // to the whole tag: prefixed names are resolved after the loop).
        let first_binding = self.bound;
        let (mut n, mut total, mut prefixed) = (0, 0, false);
        let empty = loop {
            let before = i;
            while b.get(i).copied().is_some_and(is_space) {
                i += 1;
            }
            match *b.get(i)? {
                b'>' => {
                    i += 1;
                    break false;
                }
                b'/' => {
                    if *b.get(i + 1)? != b'>' {
                        return None;
                    }
                    i += 2;
                    break true;
                }
                _ if i == before => return None,
                _ => {}
            }
            let key = self.name(&mut i)?;
            if *b.get(i)? != b'=' {
                return None;
            }
            let quote = *b.get(i + 1)?;
            if quote != b'"' && quote != b'\'' {
                return None;
            }
            let start = i + 2;
            // XML 1.0 §3.1 (AttValue): no '<'; references are left to the tree reader.
            let end = value_end(b, start, quote)?;
            let value = &self.s[start..end];
            i = end + 1;
            // The limit counts namespace declarations too.
            total += 1;
            if total > self.limits.max_attributes {
                return None;
            }
            match key.prefix {
                None if key.local == "xmlns" => self.declare("", value, depth, first_binding)?,
                Some("xmlns") => self.declare(key.local, value, depth, first_binding)?,
                _ => {
                    if n == MAX_ATTRS
                        || key.local.len() > self.limits.max_name
                        || value.len() > self.limits.max_attribute_value
                    {
                        return None;
                    }
                    // XML 1.0 §3.1 (WFC: Unique Att Spec), on the names as written.
                    if self.attrs[..n]
                        .iter()
                        .any(|a| a.name == key.local && a.prefix == key.prefix)
                    {
                        return None;
                    }
                    prefixed |= key.prefix.is_some();
                    self.attrs[n] = RawAttr {
                        prefix: key.prefix,
                        ns: "",
                        name: key.local,
                        value,
                    };
                    n += 1;
                }
            }
        };
        let bindings = &self.bindings[..self.bound];
        let ns = lookup(bindings, tag.prefix, true)?;
        if prefixed {
            // Namespaces in XML 1.0 §6.2: unprefixed attributes are in no namespace.
            for a in &mut self.attrs[..n] {
                if a.prefix.is_some() {
                    a.ns = lookup(bindings, a.prefix, false)?;
                }
            }
        }
        self.attr_count = n;
        self.pos = i;
        if empty {
            self.unbind(depth);
            if depth == 1 {
                self.root_done = true;
            }
        } else {
            self.open[self.depth] = tag.qname;
            self.depth = depth;
        }
        Some(Tok::Start {
            name: tag.local,
            ns,
            empty,
        })
    }

    fn end_tag(&mut self) -> Option<Tok<'a>> {
        // `</`, the open element's name as written, `>` (XML 1.0 §3 WFC: Element Type
        // Match); anything else (even spaces before the `>`) goes to the tree reader.
        let open = self.open[self.depth.checked_sub(1)?];
        let at = self.pos + 2;
        let rest = self.s.as_bytes().get(at..)?;
        if !rest.starts_with(open.as_bytes()) || rest.get(open.len()) != Some(&b'>') {
            return None;
        }
        self.pos = at + open.len() + 1;
        self.unbind(self.depth);
        self.depth -= 1;
        if self.depth == 0 {
            self.root_done = true;
        }
        Some(Tok::End)
    }

    /// Records a declaration of `prefix` (`""`: the default namespace) on the tag at
    /// `depth`, whose declarations start at `self.bindings[first]`.
    fn declare(&mut self, prefix: &'a str, uri: &'a str, depth: usize, first: usize) -> Option<()> {
        // XML 1.0 §3.1 (WFC: Unique Att Spec): one declaration per prefix and tag.
        if self.bindings[first..self.bound]
            .iter()
            .any(|b| b.prefix.unwrap_or("") == prefix)
        {
            return None;
        }
        // Namespaces in XML 1.0 §3, with the tree reader's rules; a declaration that
        // binds nothing (`xml` to its own URI) is left to the tree reader, which then
        // sees any repetition of it.
        let binding = declaration(prefix, uri, depth).ok()??;
        if self.bound == MAX_BINDINGS {
            return None;
        }
        self.bindings[self.bound] = binding;
        self.bound += 1;
        Some(())
    }

    /// Drops the declarations made at `depth` (its element has ended).
    fn unbind(&mut self, depth: usize) {
        while self.bound > 0 && self.bindings[self.bound - 1].depth >= depth {
            self.bound -= 1;
        }
    }

    /// A new owned element for the start tag just read, with its attributes.
    fn new_element(&self, name: &str, ns: &str) -> Element {
        Element {
            name: crate::xml::known_name(name),
            namespace: crate::xml::known_namespace(ns),
            attributes: self.attrs[..self.attr_count]
                .iter()
                .map(|a| Attribute {
                    namespace: a.ns.to_owned(),
                    name: a.name.to_owned(),
                    value: a.value.to_owned(),
                })
                .collect(),
            children: Vec::new(),
        }
    }

    /// The whole element whose start tag was just read, up to and including its end tag
    /// (as the tree reader builds it).
    fn element(&mut self, name: &str, ns: &str, empty: bool) -> Option<Element> {
        let current = self.new_element(name, ns);
        if empty {
            return Some(current);
        }
        let limits = self.limits;
        // Giving up needs no error of its own: any `Err` here becomes `None`.
        build_subtree(current, &limits, || {
            Ok(match self.next() {
                Some(Tok::Start { name, ns, empty }) => {
                    TreeStep::Open(self.new_element(name, ns), empty)
                }
                Some(Tok::End) => TreeStep::Close,
                Some(Tok::Text(s)) => TreeStep::Text(s),
                Some(Tok::Eof) | None => return Err(XmlError::UnexpectedEof),
            })
        })
        .ok()
    }
}

/// How many of the eight bytes of `w` (little-endian) from the first are lowercase ASCII
/// letters (`a` to `z`).
fn lowercase_run(w: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Per byte, without carries between bytes (the high bit is cleared first): y + 0x1f
    // reaches 0x80 when y >= 0x61 ('a'), y + 0x05 stays below 0x80 when y < 0x7b ('z' + 1),
    // and the byte itself must be ASCII.
    let y = w & !HIGH;
    let lower = y.wrapping_add(ONES * 0x1f) & !y.wrapping_add(ONES * 0x05) & !w & HIGH;
    ((!lower & HIGH).trailing_zeros() / 8) as usize
}

/// The offset of the `quote` closing the attribute value that starts at `start`; `None`
/// at a '<', a '&' or a byte below 0x20 (or the end of the input) first. Eight bytes at
/// a time.
fn value_end(b: &[u8], start: usize, quote: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` equal to `c` (and maybe of bytes above one: only
    // the lowest flag is exact, and only the lowest is used).
    let flags = |w: u64, c: u8| {
        let x = w ^ (ONES * u64::from(c));
        x.wrapping_sub(ONES) & !x & HIGH
    };
    let mut at = start;
    while let Some(chunk) = b.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // Bytes below 0x20 too (the same trick against 0x20 instead of a byte): XML 1.0
        // §2.2 forbids most of them, TAB, LF and CR are left to the tree reader.
        let controls = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let m = flags(w, quote) | flags(w, b'<') | flags(w, b'&') | controls;
        if m != 0 {
            let k = at + (m.trailing_zeros() / 8) as usize;
            return (b[k] == quote).then_some(k);
        }
        at += 8;
    }
    loop {
        match *b.get(at)? {
            c if c == quote => return Some(at),
            b'<' | b'&' | 0..=0x1f => return None,
            _ => at += 1,
        }
    }
}

/// Character data as written, unescaped: borrowed unless it holds references; `None`
/// for what the tree reader must judge (a bad reference, a CR to normalize, `]]>`).
fn text(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.bytes().any(|c| matches!(c, b'&' | b'\r' | b']')) {
        return Some(Cow::Borrowed(raw));
    }
    if raw.contains('\r') || raw.contains("]]>") {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';')?;
        let name = &after[..end];
        // XML 1.0 §4.6 (the predefined entities) and §4.1 (character references).
        let c = match name {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    (!hex.is_empty()
                        && hex.len() <= 6
                        && hex.bytes().all(|c| c.is_ascii_hexdigit()))
                    .then(|| u32::from_str_radix(hex, 16).ok())??
                } else {
                    let dec = name.strip_prefix('#')?;
                    (!dec.is_empty() && dec.len() <= 7 && dec.bytes().all(|c| c.is_ascii_digit()))
                        .then(|| dec.parse().ok())??
                };
                char::from_u32(code).filter(|&c| is_xml_char(c))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    //! The fast reader against the tree reader: on every input where the fast reader
    //! returns an IQ, the tree reader returns the same IQ (it never accepts what the
    //! tree reader refuses, never reads a value differently); and it does not leave
    //! ordinary stanzas to the tree reader.

    use std::path::Path;
    use std::sync::OnceLock;

    use proptest::prelude::*;

    use super::{Known, Sid, document, iq, lowercase_run};
    use crate::ext::Registry;
    use crate::jid::Jid;
    use crate::xml::{Limits, read_document};
    use crate::{Codec, Document};

    fn tree(input: &[u8], limits: &Limits) -> Option<Document> {
        let el = read_document(input, limits).ok()?;
        Codec::default().decode_element(el).ok()
    }

    #[test]
    fn lowercase_runs_match_a_byte_by_byte_count() {
        // Every byte value in every position of a word of otherwise lowercase letters.
        for c in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"abcdxyzq";
                word[at] = c;
                let want = word.iter().take_while(|b| b.is_ascii_lowercase()).count();
                assert_eq!(
                    lowercase_run(u64::from_le_bytes(word)),
                    want,
                    "{c:#x} at {at}"
                );
            }
        }
    }

    /// Both readers' results, checked to agree.
    fn agree(input: &[u8], limits: &Limits) -> (Option<Document>, Option<Document>) {
        let reg = Registry::default();
        let fast = document(input, limits, &reg, Known::default());
        let slow = tree(input, limits);
        if fast.is_some() {
            assert_eq!(
                fast,
                slow,
                "readers disagree on {:?}",
                String::from_utf8_lossy(input)
            );
        }
        // Reusing known addresses and sids changes nothing but allocations.
        let me = Jid::new("me@example.com/res").expect("jid");
        let romeo = Jid::new("romeo@montague.lit/orchard").expect("jid");
        let jids = [&me, &romeo];
        for sid in ["a73sjjvkla37jfea", "s", "x"] {
            let sid = Sid::new(sid);
            let known = Known {
                jids: &jids,
                sid: Some(&sid),
            };
            assert_eq!(document(input, limits, &reg, known), fast);
        }
        // `iq` is `document` for IQs only.
        let only_iq = match &fast {
            Some(Document::Iq(iq)) => Some(iq.clone()),
            _ => None,
        };
        assert_eq!(iq(input, limits, &reg, Known::default()), only_iq);
        (fast, slow)
    }

    /// Every XML test vector of this crate (IQs and bare `<jingle/>`s), plus stanzas written
    /// to reach the corners of the fast reader (prefixes, references, CDATA, text runs,
    /// payload children, errors).
    fn corpus() -> &'static [Vec<u8>] {
        static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
        CORPUS.get_or_init(read_corpus)
    }

    fn read_corpus() -> Vec<Vec<u8>> {
        fn walk(dir: &Path, out: &mut Vec<Vec<u8>>) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .expect("vectors")
                .map(|e| e.expect("entry").path())
                .collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "xml") {
                    let bytes = std::fs::read(&p).expect("vector");
                    let text = String::from_utf8_lossy(&bytes);
                    if text.contains("<iq") || text.contains("<jingle") {
                        out.push(bytes);
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors"),
            &mut out,
        );
        for s in [
            r#"<iq xmlns="jabber:client" type="set" id="a-1" from="peer@example.com/res" to="me@example.com/res"><jingle xmlns="urn:xmpp:jingle:1" action="session-initiate" sid="s1"><content creator="initiator" name="c1"><description xmlns="test"/><transport xmlns="test"/></content></jingle></iq>"#,
            r#"<?xml version='1.0'?><c:iq xmlns:c='jabber:client' type='set' id='x&amp;y' from='a@b/c' xml:lang='en'><j:jingle xmlns:j='urn:xmpp:jingle:1' action='session-info' sid='s&#49;'>  <ping xmlns='urn:xmpp:jingle:apps:rtp:info:1'/>text<![CDATA[more]]>&lt;</j:jingle></c:iq>"#,
            r#"<iq type="set" id="t" from="a@b/c"><jingle xmlns="urn:xmpp:jingle:1" action="session-terminate" sid="s"><reason><success/><text xml:lang="en">bye</text></reason><extra xmlns="urn:x"><y a="1">z</y></extra></jingle></iq>"#,
            r#"<iq type="error" id="e" from="a@b/c"><jingle xmlns="urn:xmpp:jingle:1" action="session-accept" sid="s"/><error type="cancel" by="a@b"><item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/><unknown-session xmlns="urn:xmpp:jingle:errors:1"/></error></iq>"#,
            r#"<iq xmlns="jabber:server" type="result" id="r"/>"#,
            r#"<iq type="set" id="m" from="a@b/c"><jingle xmlns="urn:xmpp:jingle:1" action="content-modify" sid="s" initiator="a@b/c"><content creator="responder" name="n" senders="initiator" disposition="early-session"><security xmlns="urn:s"/><other xmlns="urn:o"/><description xmlns="urn:xmpp:jingle:apps:file-transfer:5"><file><name>a.txt</name><size>3</size></file></description><transport xmlns="urn:xmpp:jingle:transports:ibb:1" sid="i" block-size="4096"/></content><content xmlns="urn:xmpp:jingle:1" creator="initiator" name="n2" disposition="session"/></jingle></iq>"#,
        ] {
            out.push(s.as_bytes().to_vec());
        }
        out
    }

    #[test]
    fn the_fast_reader_accepts_every_valid_vector_like_the_tree_reader() {
        let limits = Limits::default();
        let corpus = corpus();
        assert!(corpus.len() > 20, "{} vectors", corpus.len());
        let (mut valid, mut fast) = (0, 0);
        for x in corpus {
            let (f, s) = agree(x, &limits);
            valid += usize::from(s.is_some());
            fast += usize::from(f.is_some());
        }
        // The vectors are valid IQs, nearly all written the plain way stanzas are: the
        // fast reader reads those itself.
        eprintln!("{fast} of {valid} valid vectors read by the fast reader");
        assert!(
            valid * 10 >= corpus.len() * 9,
            "{valid} of {}",
            corpus.len()
        );
        assert!(fast * 10 >= valid * 8, "{fast} of {valid}");
    }

    #[test]
    fn the_readers_agree_under_tight_limits() {
        // Limits that the corpus hits: depth, element count, attributes, names, values
        // and text.
        for limits in [
            Limits {
                max_depth: 3,
                ..Limits::default()
            },
            Limits {
                max_elements: 4,
                ..Limits::default()
            },
            Limits {
                max_attributes: 3,
                ..Limits::default()
            },
            Limits {
                max_name: 6,
                ..Limits::default()
            },
            Limits {
                max_attribute_value: 8,
                ..Limits::default()
            },
            Limits {
                max_text: 3,
                ..Limits::default()
            },
            Limits {
                max_input: 200,
                ..Limits::default()
            },
        ] {
            for x in corpus() {
                agree(x, &limits);
            }
        }
    }

    #[test]
    fn attribute_values_end_at_their_quote_and_never_hold_lt_amp_or_controls() {
        let naive = |b: &[u8], start: usize, q: u8| {
            let k = start
                + b.get(start..)?
                    .iter()
                    .position(|&c| c == q || c == b'<' || c == b'&' || c < 0x20)?;
            (b[k] == q).then_some(k)
        };
        for len in 0..24 {
            for at in 0..len {
                for c in [
                    b'"',
                    b'\'',
                    b'<',
                    b'&',
                    b'a',
                    0x80 | b'"',
                    0xe9,
                    0,
                    b'\t',
                    0x1f,
                    b' ',
                    0x21,
                ] {
                    for other in [None, Some(at + 3)] {
                        let mut x = vec![b'v'; len];
                        x[at] = c;
                        if let Some(o) = other.filter(|&o| o < len) {
                            x[o] = b'"';
                        }
                        for start in 0..len.min(3) {
                            for q in [b'"', b'\''] {
                                assert_eq!(super::value_end(&x, start, q), naive(&x, start, q));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Pieces a damaged stanza may gain: markup, references, namespaces, text.
    const SNIPPETS: &[&str] = &[
        "<",
        ">",
        "/>",
        "</iq>",
        "</jingle>",
        "</content>",
        "<jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='x'>",
        "<content creator='initiator' name='c'>",
        "<error type='cancel'>",
        " xmlns='urn:xmpp:jingle:1'",
        " xmlns=''",
        " xmlns:p='urn:p'",
        "<p:x/>",
        " p:a='1'",
        " xml:lang='en'",
        " a='1'",
        " a=\"<\"",
        " id='dup'",
        " type='get'",
        " type='error'",
        " from='@x'",
        " sid=''",
        " action='bogus'",
        "&amp;",
        "&#0;",
        "&#x41;",
        "&#65;",
        "&#0065;",
        "&#X41;",
        "&#xD800;",
        "&#x10FFFF;",
        "&#1114111;",
        "&#xFFFE;",
        "&#;",
        "&lt",
        "xmlns:xml='http://www.w3.org/XML/1998/namespace'",
        " xmlns:xmlns='x'",
        " xmlns:q=''",
        "<q:y xmlns:q='urn:q'>",
        "</q:y>",
        " a = 'x'",
        "a='1'b='2'",
        "</iq >",
        "\u{feff}",
        "\u{1}",
        "\u{1f}",
        " a='\u{0}'",
        "&bogus;",
        "&",
        "<![CDATA[c]]>",
        "<!-- c -->",
        "<?pi x?>",
        "<!DOCTYPE x>",
        "<?xml version='1.0'?>",
        "]]>",
        "\r\n",
        "\t",
        " ",
        "text",
        "é",
        "'",
        "\"",
        "=",
        ":",
    ];

    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize, usize),
        Insert(usize, usize),
        Duplicate(usize, usize),
        Byte(usize, u8),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 1..12usize).prop_map(|(at, n)| Edit::Delete(at, n)),
            (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(at, s)| Edit::Insert(at, s)),
            (any::<usize>(), 1..40usize).prop_map(|(at, n)| Edit::Duplicate(at, n)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Byte(at, b)),
        ]
    }

    fn apply(mut x: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
        for e in edits {
            let len = x.len().max(1);
            match *e {
                Edit::Delete(at, n) => {
                    let at = at % len;
                    let end = (at + n).min(x.len());
                    if at < end {
                        x.drain(at..end);
                    }
                }
                Edit::Insert(at, s) => {
                    let at = at % (x.len() + 1);
                    x.splice(at..at, SNIPPETS[s].bytes());
                }
                Edit::Duplicate(at, n) => {
                    let at = at % len;
                    let end = (at + n).min(x.len());
                    let piece: Vec<u8> = x.get(at..end).unwrap_or_default().to_vec();
                    x.splice(end..end, piece);
                }
                Edit::Byte(at, b) => {
                    if !x.is_empty() {
                        let at = at % x.len();
                        x[at] = b;
                    }
                }
            }
        }
        x
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn the_readers_agree_on_damaged_stanzas(
            which in any::<prop::sample::Index>(),
            edits in prop::collection::vec(edit(), 1..4),
        ) {
            let corpus = corpus();
            let input = apply(corpus[which.index(corpus.len())].clone(), &edits);
            agree(&input, &Limits::default());
        }
    }
}
