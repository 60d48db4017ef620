//! The Jingle data model (XEP-0166) and the IQ envelope (RFC 6120 §8), with their XML
//! decoders and encoders and their jingle.js/stanza JSON mapping.

use std::borrow::Cow;

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::ext::{ExtensionPayload, Registry, Slot};
use crate::ft::{FileInfo, FileTransfer};
use crate::ibb::IbbTransport;
use crate::ice::IceUdpTransport;
use crate::jid::Jid;
use crate::json::{self, Obj};
use crate::ns;
use crate::rtp::{RtpDescription, RtpInfo};
use crate::s5b::Socks5Transport;
use crate::sid::Sid;
use crate::xml::{Element, Writer, XML_NS};

pub use crate::generated::actions::Action;
pub use crate::generated::error_types::ErrorType;
pub use crate::generated::errors::JingleErrorCondition;
pub use crate::generated::reasons::ReasonCondition;
pub use crate::generated::stanza_errors::StanzaErrorCondition;

pub(crate) fn token<T>(lookup: fn(&[u8]) -> Option<T>) -> impl Fn(&str) -> Option<T> {
    move |s| lookup(s.as_bytes())
}

/// The `type` of an IQ (RFC 6120 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IqType {
    /// A request for information.
    Get,
    /// A request that provides data (every Jingle action is an IQ-set).
    Set,
    /// A successful response.
    Result,
    /// An error response.
    Error,
}

impl IqType {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            IqType::Get => "get",
            IqType::Set => "set",
            IqType::Result => "result",
            IqType::Error => "error",
        }
    }

    /// Looks a wire token up.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        })
    }
}

/// An IQ stanza carrying Jingle: a request (`set` with `<jingle/>`), its
/// acknowledgement (`result`) or an error (`error` with `<error/>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Iq {
    /// The IQ type.
    pub kind: IqType,
    /// The stanza id (RFC 6120 §8.2.3: REQUIRED on IQs).
    pub id: String,
    /// The sender.
    pub from: Option<Jid>,
    /// The addressee.
    pub to: Option<Jid>,
    /// `xml:lang` of the stanza.
    pub lang: Option<String>,
    /// The Jingle payload (required for get/set, optional in result and error). Boxed:
    /// an IQ is moved a few times on its way through a session manager, its payload
    /// stays put.
    pub jingle: Option<Box<Jingle>>,
    /// The error (required for and only in `type='error'`), boxed like `jingle`.
    pub error: Option<Box<StanzaError>>,
}

impl Iq {
    /// An IQ-set carrying `jingle`.
    pub fn set(id: impl Into<String>, jingle: Jingle) -> Iq {
        Iq {
            kind: IqType::Set,
            id: id.into(),
            from: None,
            to: None,
            lang: None,
            jingle: Some(Box::new(jingle)),
            error: None,
        }
    }

    /// The empty IQ-result acknowledging `request` (addresses swapped, same id).
    pub fn result_for(request: &Iq) -> Iq {
        Iq {
            kind: IqType::Result,
            id: request.id.clone(),
            from: request.to.clone(),
            to: request.from.clone(),
            lang: None,
            jingle: None,
            error: None,
        }
    }

    /// The IQ-error answering `request` with `error` (addresses swapped, same id).
    pub fn error_for(request: &Iq, error: StanzaError) -> Iq {
        Iq {
            kind: IqType::Error,
            id: request.id.clone(),
            from: request.to.clone(),
            to: request.from.clone(),
            lang: None,
            jingle: None,
            error: Some(Box::new(error)),
        }
    }

    pub(crate) fn decode(mut el: Element, reg: &Registry) -> Result<Iq, ParseError> {
        // RFC 6120 §4.8.3: stanzas are qualified by the stream's content namespace; a
        // stanza read on its own (a file, a test vector) may carry none.
        if el.name != "iq"
            || !matches!(&*el.namespace, "" | ns::CLIENT | ns::SERVER | ns::COMPONENT)
        {
            return Err(unexpected("iq", el));
        }
        // RFC 6120 §8.1.3: 'type' is REQUIRED; §8.2.3: IQs MUST have an 'id'.
        let kind = de::token(&mut el, "iq", "type", IqType::from_wire)?.ok_or(
            ParseError::MissingAttribute {
                element: "iq",
                attribute: "type",
            },
        )?;
        let id = de::req(&mut el, "iq", "id")?;
        let from = de::jid(&mut el, "iq", "from")?;
        let to = de::jid(&mut el, "iq", "to")?;
        let lang = el.attr_ns(XML_NS, "lang").map(str::to_owned);
        let mut jingle = None;
        let mut error = None;
        let client_ns = el.namespace.clone();
        for child in de::child_elements(&mut el) {
            if child.is("jingle", ns::JINGLE) {
                de::once(
                    &mut jingle,
                    Box::new(Jingle::decode(child, reg)?),
                    "iq",
                    "jingle",
                )?;
            } else if child.name == "error" && child.namespace == client_ns {
                de::once(
                    &mut error,
                    Box::new(StanzaError::decode(child)?),
                    "iq",
                    "error",
                )?;
            } else {
                return Err(unexpected("jingle", child));
            }
        }
        match kind {
            // RFC 6120 §8.2.3: get and set MUST contain exactly one payload child.
            IqType::Get | IqType::Set if jingle.is_none() || error.is_some() => {
                return Err(ParseError::MissingChild {
                    element: "iq",
                    child: "jingle",
                });
            }
            // RFC 6120 §8.2.3: an error IQ MUST contain an <error/> child.
            IqType::Error if error.is_none() => {
                return Err(ParseError::MissingChild {
                    element: "iq",
                    child: "error",
                });
            }
            IqType::Result if error.is_some() => {
                return Err(ParseError::UnexpectedElement {
                    expected: "jingle",
                    name: "error".into(),
                    namespace: client_ns.into_owned(),
                });
            }
            _ => {}
        }
        Ok(Iq {
            kind,
            id,
            from,
            to,
            lang,
            jingle,
            error,
        })
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("iq", ns::CLIENT);
        w.attr("type", self.kind.as_str());
        w.attr("id", &self.id);
        w.attr_opt("from", self.from.as_ref().map(Jid::as_str));
        w.attr_opt("to", self.to.as_ref().map(Jid::as_str));
        if let Some(l) = &self.lang {
            w.attr_ns(XML_NS, "lang", l);
        }
        if let Some(j) = &self.jingle {
            j.write(w);
        }
        if let Some(e) = &self.error {
            e.write(w);
        }
        w.end();
    }

    /// The stanza-shaped JSON of this IQ.
    pub fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "type", self.kind.as_str());
        json::put_str(&mut o, "id", &self.id);
        json::put_opt_str(&mut o, "from", self.from.as_ref().map(Jid::as_str));
        json::put_opt_str(&mut o, "to", self.to.as_ref().map(Jid::as_str));
        // stanza always reports the stanza language, "" when there is none.
        json::put_str(&mut o, "lang", self.lang.as_deref().unwrap_or(""));
        if let Some(j) = &self.jingle {
            o.insert("jingle".into(), j.to_json());
            json::put_str(&mut o, "payloadType", "jingle");
        }
        if let Some(e) = &self.error {
            o.insert("error".into(), e.to_json());
        }
        Value::Object(o)
    }

    /// Reads the stanza-shaped JSON of an IQ.
    pub fn from_json(v: &Value, reg: &Registry) -> Result<Iq, JsonError> {
        let o = json::as_obj(v, "iq", "iq")?;
        let kind = json::opt_token(o, "iq", "type", IqType::from_wire)?.ok_or(
            JsonError::MissingField {
                object: "iq",
                field: "type",
            },
        )?;
        let id = json::req_str(o, "iq", "id")?.to_owned();
        let from = json_jid(o, "iq", "from")?;
        let to = json_jid(o, "iq", "to")?;
        let lang = json::opt_str(o, "iq", "lang")?
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        let jingle = match o.get("jingle") {
            None | Some(Value::Null) => None,
            Some(j) => Some(Box::new(Jingle::from_json(j, reg)?)),
        };
        let error = match o.get("error") {
            None | Some(Value::Null) => None,
            Some(e) => Some(Box::new(StanzaError::from_json(e)?)),
        };
        match kind {
            IqType::Get | IqType::Set if jingle.is_none() => {
                return Err(JsonError::MissingField {
                    object: "iq",
                    field: "jingle",
                });
            }
            IqType::Error if error.is_none() => {
                return Err(JsonError::MissingField {
                    object: "iq",
                    field: "error",
                });
            }
            IqType::Get | IqType::Set | IqType::Result if error.is_some() => {
                return Err(json::invalid(
                    "iq",
                    "error",
                    &Value::String("error outside type=error".into()),
                ));
            }
            _ => {}
        }
        Ok(Iq {
            kind,
            id,
            from,
            to,
            lang,
            jingle,
            error,
        })
    }
}

pub(crate) fn json_jid(
    o: &Obj,
    object: &'static str,
    field: &'static str,
) -> Result<Option<Jid>, JsonError> {
    match json::opt_str(o, object, field)? {
        None => Ok(None),
        Some(s) => Jid::new(s).map(Some).map_err(|source| {
            JsonError::Model(ParseError::InvalidJid {
                element: object,
                attribute: field,
                source,
            })
        }),
    }
}

pub(crate) fn unexpected(expected: &'static str, el: Element) -> ParseError {
    ParseError::UnexpectedElement {
        expected,
        name: el.name.into_owned(),
        namespace: el.namespace.into_owned(),
    }
}

/// The `<jingle/>` element (XEP-0166 §7.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Jingle {
    /// The action (REQUIRED).
    pub action: Action,
    /// The session id (REQUIRED), shared: a session manager keeps the same string.
    pub sid: Sid,
    /// The full JID of the session initiator.
    pub initiator: Option<Jid>,
    /// The full JID of the responder.
    pub responder: Option<Jid>,
    /// The content definitions.
    pub contents: Vec<Content>,
    /// Why the action happens (mostly with session-terminate). Boxed, like `info`:
    /// most actions carry neither, and a `Jingle` without them stays small.
    pub reason: Option<Box<Reason>>,
    /// The informational payload of a session-info action.
    pub info: Option<Box<SessionInfo>>,
    /// Other children, kept as they came.
    pub extensions: Vec<Element>,
}

impl Jingle {
    /// A `<jingle/>` with only action and sid.
    pub fn new(action: Action, sid: impl Into<Sid>) -> Jingle {
        Jingle {
            action,
            sid: sid.into(),
            initiator: None,
            responder: None,
            contents: Vec::new(),
            reason: None,
            info: None,
            extensions: Vec::new(),
        }
    }

    pub(crate) fn decode(mut el: Element, reg: &Registry) -> Result<Jingle, ParseError> {
        if !el.is("jingle", ns::JINGLE) {
            return Err(unexpected("jingle", el));
        }
        // XEP-0166 §7.1: 'action' and 'sid' are REQUIRED.
        let action = de::token(&mut el, "jingle", "action", token(Action::from_wire))?.ok_or(
            ParseError::MissingAttribute {
                element: "jingle",
                attribute: "action",
            },
        )?;
        let sid = Sid::from(de::req(&mut el, "jingle", "sid")?);
        let initiator = de::jid(&mut el, "jingle", "initiator")?;
        let responder = de::jid(&mut el, "jingle", "responder")?;
        let mut j = Jingle::new(action, sid);
        j.initiator = initiator;
        j.responder = responder;
        for child in de::child_elements(&mut el) {
            j.push_child(child, reg)?;
        }
        Ok(j)
    }

    /// Takes one child element other than a `<content/>` (both XML readers share this).
    pub(crate) fn push_child(&mut self, child: Element, reg: &Registry) -> Result<(), ParseError> {
        if child.namespace == ns::JINGLE {
            match &*child.name {
                "content" => {
                    // Most actions carry one content (see `direct::content`).
                    if self.contents.capacity() == 0 {
                        self.contents.reserve_exact(1);
                    }
                    self.contents.push(Content::decode(child, reg)?);
                }
                "reason" => de::once(
                    &mut self.reason,
                    Box::new(Reason::decode(child)?),
                    "jingle",
                    "reason",
                )?,
                _ => self.extensions.push(child),
            }
        } else if self.action == Action::SessionInfo && self.info.is_none() {
            // XEP-0166 §7.2.11: a session-info carries (at most) one payload element
            // specific to the application format or transport.
            self.info = Some(Box::new(SessionInfo::decode(child, reg)?));
        } else {
            self.extensions.push(child);
        }
        Ok(())
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("jingle", ns::JINGLE);
        w.attr("action", self.action.as_str());
        w.attr("sid", &self.sid);
        w.attr_opt("initiator", self.initiator.as_ref().map(Jid::as_str));
        w.attr_opt("responder", self.responder.as_ref().map(Jid::as_str));
        for c in &self.contents {
            c.write(w);
        }
        if let Some(r) = &self.reason {
            r.write(w);
        }
        if let Some(i) = &self.info {
            i.write(w);
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    /// The jingle.js/stanza JSON of this element.
    pub fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "action", self.action.as_str());
        json::put_str(&mut o, "sid", &self.sid);
        json::put_opt_str(
            &mut o,
            "initiator",
            self.initiator.as_ref().map(Jid::as_str),
        );
        json::put_opt_str(
            &mut o,
            "responder",
            self.responder.as_ref().map(Jid::as_str),
        );
        if !self.contents.is_empty() {
            o.insert(
                "contents".into(),
                Value::Array(self.contents.iter().map(Content::to_json).collect()),
            );
        }
        if let Some(r) = &self.reason {
            o.insert("reason".into(), r.to_json());
        }
        if let Some(i) = &self.info {
            o.insert("info".into(), i.to_json());
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    /// Reads the jingle.js/stanza JSON of a `<jingle/>`.
    pub fn from_json(v: &Value, reg: &Registry) -> Result<Jingle, JsonError> {
        let o = json::as_obj(v, "jingle", "jingle")?;
        let action = json::opt_token(o, "jingle", "action", token(Action::from_wire))?.ok_or(
            JsonError::MissingField {
                object: "jingle",
                field: "action",
            },
        )?;
        let mut j = Jingle::new(action, json::req_str(o, "jingle", "sid")?);
        j.initiator = json_jid(o, "jingle", "initiator")?;
        j.responder = json_jid(o, "jingle", "responder")?;
        for c in json::arr(o, "jingle", "contents")? {
            j.contents.push(Content::from_json(c, reg)?);
        }
        if let Some(r) = o.get("reason").filter(|r| !r.is_null()) {
            j.reason = Some(Box::new(Reason::from_json(r)?));
        }
        if let Some(i) = o.get("info").filter(|i| !i.is_null()) {
            j.info = Some(Box::new(SessionInfo::from_json(i, reg)?));
        }
        j.extensions = json::get_extensions(o, "jingle")?;
        Ok(j)
    }
}

/// Which party created a content (XEP-0166 §7.3 'creator').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Creator {
    /// The session initiator.
    Initiator,
    /// The session responder.
    Responder,
}

impl Creator {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Creator::Initiator => "initiator",
            Creator::Responder => "responder",
        }
    }

    /// Looks a wire token up.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "initiator" => Some(Creator::Initiator),
            "responder" => Some(Creator::Responder),
            _ => None,
        }
    }
}

/// Which parties send media for a content (XEP-0166 §7.3 'senders', default `both`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Senders {
    /// Both parties.
    #[default]
    Both,
    /// Only the initiator.
    Initiator,
    /// Only the responder.
    Responder,
    /// Nobody (e.g. on hold).
    None,
}

impl Senders {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            Senders::Both => "both",
            Senders::Initiator => "initiator",
            Senders::Responder => "responder",
            Senders::None => "none",
        }
    }

    /// Looks a wire token up.
    pub fn from_wire(s: &str) -> Option<Self> {
        match s {
            "both" => Some(Senders::Both),
            "initiator" => Some(Senders::Initiator),
            "responder" => Some(Senders::Responder),
            "none" => Some(Senders::None),
            _ => None,
        }
    }
}

/// The default content disposition (XEP-0166 §7.3).
pub const DEFAULT_DISPOSITION: &str = "session";

/// A `<content/>` (XEP-0166 §7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// Who created the content (REQUIRED).
    pub creator: Creator,
    /// The content's name, unique within the session together with `creator` (REQUIRED).
    /// Borrowed when built from a `&'static str` (no allocation), owned when read.
    pub name: Cow<'static, str>,
    /// How the content is handled (default `session`, borrowed: the default costs no
    /// allocation).
    pub disposition: Cow<'static, str>,
    /// Who sends (default `both`).
    pub senders: Senders,
    /// The application format.
    pub description: Option<Description>,
    /// The transport method.
    pub transport: Option<Transport>,
    /// The security precondition, kept raw (no typed security method is defined here).
    pub security: Option<Element>,
    /// Other children, kept as they came.
    pub extensions: Vec<Element>,
}

impl Content {
    /// A content with defaults and no payloads.
    pub fn new(creator: Creator, name: impl Into<Cow<'static, str>>) -> Content {
        Content {
            creator,
            name: name.into(),
            disposition: Cow::Borrowed(DEFAULT_DISPOSITION),
            senders: Senders::Both,
            description: None,
            transport: None,
            security: None,
            extensions: Vec::new(),
        }
    }

    fn decode(mut el: Element, reg: &Registry) -> Result<Content, ParseError> {
        // XEP-0166 §7.3: 'creator' and 'name' are REQUIRED; 'disposition' defaults to
        // "session" and 'senders' to "both".
        let creator = de::token(&mut el, "content", "creator", Creator::from_wire)?.ok_or(
            ParseError::MissingAttribute {
                element: "content",
                attribute: "creator",
            },
        )?;
        let name = de::req(&mut el, "content", "name")?;
        let disposition = el
            .take_attr("disposition")
            .map_or(Cow::Borrowed(DEFAULT_DISPOSITION), Cow::Owned);
        let senders =
            de::token(&mut el, "content", "senders", Senders::from_wire)?.unwrap_or_default();
        let mut c = Content {
            creator,
            name: Cow::Owned(name),
            disposition,
            senders,
            ..Content::new(creator, "")
        };
        for child in de::child_elements(&mut el) {
            c.push_child(child, reg)?;
        }
        Ok(c)
    }

    /// Takes one child element (both XML readers share this).
    pub(crate) fn push_child(&mut self, child: Element, reg: &Registry) -> Result<(), ParseError> {
        match &*child.name {
            "description" if child.namespace != ns::JINGLE => {
                let d = Description::decode(child, reg)?;
                de::once(&mut self.description, d, "content", "description")?;
            }
            "transport" if child.namespace != ns::JINGLE => {
                let t = Transport::decode(child, reg)?;
                de::once(&mut self.transport, t, "content", "transport")?;
            }
            "security" if child.namespace != ns::JINGLE => {
                de::once(&mut self.security, child, "content", "security")?
            }
            _ => self.extensions.push(child),
        }
        Ok(())
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("content", ns::JINGLE);
        w.attr("creator", self.creator.as_str());
        w.attr("name", &self.name);
        if self.disposition != DEFAULT_DISPOSITION {
            w.attr("disposition", &self.disposition);
        }
        if self.senders != Senders::Both {
            w.attr("senders", self.senders.as_str());
        }
        if let Some(d) = &self.description {
            d.write(w);
        }
        if let Some(t) = &self.transport {
            t.write(w);
        }
        if let Some(s) = &self.security {
            w.element(s);
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "creator", self.creator.as_str());
        json::put_str(&mut o, "name", &self.name);
        json::put_str(&mut o, "disposition", &self.disposition);
        json::put_str(&mut o, "senders", self.senders.as_str());
        if let Some(d) = &self.description {
            o.insert("application".into(), d.to_json());
        }
        if let Some(t) = &self.transport {
            o.insert("transport".into(), t.to_json());
        }
        if let Some(s) = &self.security {
            let mut so = Obj::new();
            json::put_str(&mut so, "securityType", &s.namespace);
            so.insert("raw".into(), json::element_to_json(s));
            o.insert("security".into(), Value::Object(so));
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    fn from_json(v: &Value, reg: &Registry) -> Result<Content, JsonError> {
        let o = json::as_obj(v, "content", "content")?;
        let creator = json::opt_token(o, "content", "creator", Creator::from_wire)?.ok_or(
            JsonError::MissingField {
                object: "content",
                field: "creator",
            },
        )?;
        let mut c = Content::new(creator, json::req_str(o, "content", "name")?.to_owned());
        if let Some(d) = json::opt_str(o, "content", "disposition")? {
            c.disposition = Cow::Owned(d.to_owned());
        }
        c.senders =
            json::opt_token(o, "content", "senders", Senders::from_wire)?.unwrap_or_default();
        if let Some(a) = o.get("application").filter(|a| !a.is_null()) {
            c.description = Some(Description::from_json(a, reg)?);
        }
        if let Some(t) = o.get("transport").filter(|t| !t.is_null()) {
            c.transport = Some(Transport::from_json(t, reg)?);
        }
        if let Some(s) = o.get("security").filter(|s| !s.is_null()) {
            let so = json::as_obj(s, "content", "security")?;
            let raw = so.get("raw").ok_or(JsonError::MissingField {
                object: "security",
                field: "raw",
            })?;
            c.security = Some(json::element_from_json(raw)?);
        }
        c.extensions = json::get_extensions(o, "content")?;
        Ok(c)
    }
}

fn raw_json(type_key: &str, type_value: &str, el: &Element) -> Value {
    let mut o = Obj::new();
    json::put_str(&mut o, type_key, type_value);
    o.insert("raw".into(), json::element_to_json(el));
    Value::Object(o)
}

fn raw_from_json(o: &Obj, object: &'static str) -> Result<Element, JsonError> {
    let raw = o.get("raw").ok_or(JsonError::MissingField {
        object,
        field: "raw",
    })?;
    json::element_from_json(raw)
}

fn write_extension<'w>(w: &mut Writer<'w>, e: &ExtensionPayload) {
    let el = e.to_element();
    let mut inner = Writer::new();
    inner.element(&el);
    w.raw(&inner.finish());
}

/// An application format (`<description/>`, XEP-0166 §7.3).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Description {
    /// XEP-0234 file transfer.
    FileTransfer(Box<FileTransfer>),
    /// XEP-0167 RTP.
    Rtp(RtpDescription),
    /// A namespace decoded by a [`Registry`] entry.
    Extension(ExtensionPayload),
    /// Any other application format, kept as it came.
    Raw(Element),
}

impl Description {
    /// The namespace of the application format.
    pub fn namespace(&self) -> &str {
        match self {
            Description::FileTransfer(_) => ns::FILE_TRANSFER,
            Description::Rtp(_) => ns::RTP,
            Description::Extension(e) => e.namespace(),
            Description::Raw(el) => &el.namespace,
        }
    }

    fn decode(el: Element, reg: &Registry) -> Result<Description, ParseError> {
        if let Some(r) = reg.decode(Slot::Description, &el) {
            return r.map(Description::Extension);
        }
        Ok(match &*el.namespace {
            ns::FILE_TRANSFER => Description::FileTransfer(Box::new(FileTransfer::decode(el)?)),
            ns::RTP => Description::Rtp(RtpDescription::decode(el)?),
            _ => Description::Raw(el),
        })
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        match self {
            Description::FileTransfer(f) => f.write(w),
            Description::Rtp(r) => r.write(w),
            Description::Extension(e) => write_extension(w, e),
            Description::Raw(el) => w.element(el),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Description::FileTransfer(f) => f.to_json(),
            Description::Rtp(r) => r.to_json(),
            Description::Extension(e) => {
                raw_json("applicationType", e.namespace(), &e.to_element())
            }
            Description::Raw(el) => raw_json("applicationType", &el.namespace, el),
        }
    }

    fn from_json(v: &Value, reg: &Registry) -> Result<Description, JsonError> {
        let o = json::as_obj(v, "content", "application")?;
        let ty = json::req_str(o, "application", "applicationType")?;
        if !o.contains_key("raw") {
            match ty {
                ns::FILE_TRANSFER => {
                    return Ok(Description::FileTransfer(Box::new(
                        FileTransfer::from_json(o)?,
                    )));
                }
                ns::RTP => return Ok(Description::Rtp(RtpDescription::from_json(o)?)),
                _ => {}
            }
        }
        let el = raw_from_json(o, "application")?;
        Ok(Description::decode(el, reg)?)
    }
}

/// A transport method (`<transport/>`, XEP-0166 §7.3).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Transport {
    /// XEP-0261 in-band bytestreams.
    Ibb(IbbTransport),
    /// XEP-0260 SOCKS5 bytestreams.
    Socks5(Box<Socks5Transport>),
    /// XEP-0176 ICE-UDP.
    IceUdp(Box<IceUdpTransport>),
    /// A namespace decoded by a [`Registry`] entry.
    Extension(ExtensionPayload),
    /// Any other transport method, kept as it came.
    Raw(Element),
}

impl Transport {
    /// The namespace of the transport method.
    pub fn namespace(&self) -> &str {
        match self {
            Transport::Ibb(_) => ns::IBB,
            Transport::Socks5(_) => ns::S5B,
            Transport::IceUdp(_) => ns::ICE_UDP,
            Transport::Extension(e) => e.namespace(),
            Transport::Raw(el) => &el.namespace,
        }
    }

    fn decode(el: Element, reg: &Registry) -> Result<Transport, ParseError> {
        if let Some(r) = reg.decode(Slot::Transport, &el) {
            return r.map(Transport::Extension);
        }
        Ok(match &*el.namespace {
            ns::IBB => Transport::Ibb(IbbTransport::decode(el)?),
            ns::S5B => Transport::Socks5(Box::new(Socks5Transport::decode(el)?)),
            ns::ICE_UDP => Transport::IceUdp(Box::new(IceUdpTransport::decode(el)?)),
            _ => Transport::Raw(el),
        })
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        match self {
            Transport::Ibb(t) => t.write(w),
            Transport::Socks5(t) => t.write(w),
            Transport::IceUdp(t) => t.write(w),
            Transport::Extension(e) => write_extension(w, e),
            Transport::Raw(el) => w.element(el),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Transport::Ibb(t) => t.to_json(),
            Transport::Socks5(t) => t.to_json(),
            Transport::IceUdp(t) => t.to_json(),
            Transport::Extension(e) => raw_json("transportType", e.namespace(), &e.to_element()),
            Transport::Raw(el) => raw_json("transportType", &el.namespace, el),
        }
    }

    fn from_json(v: &Value, reg: &Registry) -> Result<Transport, JsonError> {
        let o = json::as_obj(v, "content", "transport")?;
        let ty = json::req_str(o, "transport", "transportType")?;
        if !o.contains_key("raw") {
            match ty {
                ns::IBB => return Ok(Transport::Ibb(IbbTransport::from_json(o)?)),
                ns::S5B => return Ok(Transport::Socks5(Box::new(Socks5Transport::from_json(o)?))),
                ns::ICE_UDP => {
                    return Ok(Transport::IceUdp(Box::new(IceUdpTransport::from_json(o)?)));
                }
                _ => {}
            }
        }
        let el = raw_from_json(o, "transport")?;
        Ok(Transport::decode(el, reg)?)
    }
}

/// The payload of a session-info action (XEP-0166 §7.2.11).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SessionInfo {
    /// XEP-0167 §7 RTP informational messages.
    Rtp(RtpInfo),
    /// XEP-0234 §7 and §8 file transfer informational messages.
    FileTransfer(Box<FileInfo>),
    /// A namespace decoded by a [`Registry`] entry.
    Extension(ExtensionPayload),
    /// Any other payload, kept as it came.
    Raw(Element),
}

impl SessionInfo {
    fn decode(el: Element, reg: &Registry) -> Result<SessionInfo, ParseError> {
        if let Some(r) = reg.decode(Slot::SessionInfo, &el) {
            return r.map(SessionInfo::Extension);
        }
        Ok(match &*el.namespace {
            ns::RTP_INFO => match RtpInfo::decode(&el)? {
                Some(i) => SessionInfo::Rtp(i),
                None => SessionInfo::Raw(el),
            },
            ns::FILE_TRANSFER if matches!(&*el.name, "checksum" | "received") => {
                SessionInfo::FileTransfer(Box::new(FileInfo::decode(el)?))
            }
            _ => SessionInfo::Raw(el),
        })
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        match self {
            SessionInfo::Rtp(i) => i.write(w),
            SessionInfo::FileTransfer(i) => i.write(w),
            SessionInfo::Extension(e) => write_extension(w, e),
            SessionInfo::Raw(el) => w.element(el),
        }
    }

    fn to_json(&self) -> Value {
        match self {
            SessionInfo::Rtp(i) => i.to_json(),
            SessionInfo::FileTransfer(i) => i.to_json(),
            SessionInfo::Extension(e) => {
                let el = e.to_element();
                raw_json("infoType", &format!("{{{}}}{}", el.namespace, el.name), &el)
            }
            SessionInfo::Raw(el) => {
                raw_json("infoType", &format!("{{{}}}{}", el.namespace, el.name), el)
            }
        }
    }

    fn from_json(v: &Value, reg: &Registry) -> Result<SessionInfo, JsonError> {
        let o = json::as_obj(v, "jingle", "info")?;
        let ty = json::req_str(o, "info", "infoType")?;
        if !o.contains_key("raw") {
            let (namespace, name) = ty
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .ok_or_else(|| json::invalid("info", "infoType", &Value::String(ty.to_owned())))?;
            match namespace {
                ns::RTP_INFO => return Ok(SessionInfo::Rtp(RtpInfo::from_json(name, o)?)),
                ns::FILE_TRANSFER => {
                    return Ok(SessionInfo::FileTransfer(Box::new(FileInfo::from_json(
                        name, o,
                    )?)));
                }
                _ => {}
            }
        }
        let el = raw_from_json(o, "info")?;
        Ok(SessionInfo::decode(el, reg)?)
    }
}

/// Why an action happens (`<reason/>`, XEP-0166 §7.4).
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// The condition (REQUIRED).
    pub condition: ReasonCondition,
    /// For `alternative-session`: the sid of the session to use instead.
    pub alternative_session: Option<String>,
    /// Human-readable text.
    pub text: Option<String>,
    /// `xml:lang` of the text.
    pub lang: Option<String>,
    /// Other children (e.g. XEP-0167 error conditions), kept as they came.
    pub extensions: Vec<Element>,
}

impl Reason {
    /// A reason with only a condition.
    pub fn new(condition: ReasonCondition) -> Reason {
        Reason {
            condition,
            alternative_session: None,
            text: None,
            lang: None,
            extensions: Vec::new(),
        }
    }

    pub(crate) fn decode(mut el: Element) -> Result<Reason, ParseError> {
        let mut condition = None;
        let mut alternative_session = None;
        let mut text = None;
        let mut lang = None;
        let mut extensions = Vec::new();
        for mut child in de::child_elements(&mut el) {
            if child.namespace != ns::JINGLE {
                extensions.push(child);
                continue;
            }
            if child.name == "text" {
                lang = child.attr_ns(XML_NS, "lang").map(str::to_owned);
                de::once(&mut text, de::text(child), "reason", "text")?;
                continue;
            }
            let Some(c) = ReasonCondition::from_wire(child.name.as_bytes()) else {
                return Err(unexpected("reason condition", child));
            };
            if c == ReasonCondition::AlternativeSession {
                // XEP-0166 §7.4: <alternative-session/> MUST contain a <sid/> naming the
                // other session. stanza writes the sid as the element's text instead;
                // that form is accepted on input only.
                let has_sid = child.elements().any(|e| e.is("sid", ns::JINGLE));
                let sid = if has_sid {
                    de::child_elements(&mut child)
                        .find(|e| e.is("sid", ns::JINGLE))
                        .map(de::text)
                        .unwrap_or_default()
                } else {
                    de::text(child)
                };
                let sid = sid.trim();
                if sid.is_empty() {
                    return Err(ParseError::MissingChild {
                        element: "alternative-session",
                        child: "sid",
                    });
                }
                alternative_session = Some(sid.to_owned());
            }
            de::once(&mut condition, c, "reason", "condition")?;
        }
        let condition = condition.ok_or(ParseError::MissingChild {
            element: "reason",
            child: "condition",
        })?;
        Ok(Reason {
            condition,
            alternative_session,
            text,
            lang,
            extensions,
        })
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("reason", ns::JINGLE);
        w.start(self.condition.as_str(), ns::JINGLE);
        if let Some(sid) = &self.alternative_session {
            w.text_element("sid", Some(sid));
        }
        w.end();
        if let Some(t) = &self.text {
            w.start("text", ns::JINGLE);
            if let Some(l) = &self.lang {
                w.attr_ns(XML_NS, "lang", l);
            }
            w.text(t);
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "condition", self.condition.as_str());
        json::put_opt_str(
            &mut o,
            "alternativeSession",
            self.alternative_session.as_deref(),
        );
        json::put_opt_str(&mut o, "text", self.text.as_deref());
        json::put_opt_str(&mut o, "lang", self.lang.as_deref());
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    fn from_json(v: &Value) -> Result<Reason, JsonError> {
        let o = json::as_obj(v, "jingle", "reason")?;
        let condition =
            json::opt_token(o, "reason", "condition", token(ReasonCondition::from_wire))?.ok_or(
                JsonError::MissingField {
                    object: "reason",
                    field: "condition",
                },
            )?;
        let mut r = Reason::new(condition);
        r.alternative_session =
            json::opt_str(o, "reason", "alternativeSession")?.map(str::to_owned);
        if condition == ReasonCondition::AlternativeSession
            && r.alternative_session.as_deref().is_none_or(str::is_empty)
        {
            return Err(JsonError::MissingField {
                object: "reason",
                field: "alternativeSession",
            });
        }
        if condition != ReasonCondition::AlternativeSession {
            r.alternative_session = None;
        }
        r.text = json::opt_str(o, "reason", "text")?.map(str::to_owned);
        r.lang = json::opt_str(o, "reason", "lang")?.map(str::to_owned);
        r.extensions = json::get_extensions(o, "reason")?;
        Ok(r)
    }
}

/// A stanza `<error/>` (RFC 6120 §8.3) with the Jingle-specific condition of XEP-0166
/// §10 when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct StanzaError {
    /// The error type (REQUIRED).
    pub kind: ErrorType,
    /// The defined condition (REQUIRED).
    pub condition: StanzaErrorCondition,
    /// The condition's character data: the alternate address of `redirect` and `gone`.
    pub condition_text: Option<String>,
    /// The Jingle-specific condition.
    pub jingle_condition: Option<JingleErrorCondition>,
    /// Human-readable text.
    pub text: Option<String>,
    /// `xml:lang` of the text.
    pub lang: Option<String>,
    /// The entity that generated the error.
    pub by: Option<Jid>,
    /// Other application-specific conditions, kept as they came.
    pub extensions: Vec<Element>,
}

impl StanzaError {
    /// An error with a type and a condition only.
    pub fn new(kind: ErrorType, condition: StanzaErrorCondition) -> StanzaError {
        StanzaError {
            kind,
            condition,
            condition_text: None,
            jingle_condition: None,
            text: None,
            lang: None,
            by: None,
            extensions: Vec::new(),
        }
    }

    /// The error XEP-0166 pairs with a Jingle-specific condition (§7.2.16, §7.2.11, §9,
    /// §10, §6.3): tie-break with conflict, unknown-session with item-not-found,
    /// out-of-order with unexpected-request, unsupported-info with
    /// feature-not-implemented, security-required with not-acceptable.
    pub fn jingle(condition: JingleErrorCondition) -> StanzaError {
        let (kind, base) = match condition {
            JingleErrorCondition::TieBreak => (ErrorType::Cancel, StanzaErrorCondition::Conflict),
            JingleErrorCondition::UnknownSession | JingleErrorCondition::UnknownContent => {
                (ErrorType::Cancel, StanzaErrorCondition::ItemNotFound)
            }
            JingleErrorCondition::OutOfOrder => {
                (ErrorType::Wait, StanzaErrorCondition::UnexpectedRequest)
            }
            JingleErrorCondition::UnsupportedInfo => (
                ErrorType::Modify,
                StanzaErrorCondition::FeatureNotImplemented,
            ),
            JingleErrorCondition::SecurityRequired => {
                (ErrorType::Cancel, StanzaErrorCondition::NotAcceptable)
            }
        };
        let mut e = StanzaError::new(kind, base);
        e.jingle_condition = Some(condition);
        e
    }

    pub(crate) fn decode(mut el: Element) -> Result<StanzaError, ParseError> {
        // RFC 6120 §8.3.2: 'type' is REQUIRED; by is optional.
        let kind = de::token(&mut el, "error", "type", token(ErrorType::from_wire))?.ok_or(
            ParseError::MissingAttribute {
                element: "error",
                attribute: "type",
            },
        )?;
        let by = de::jid(&mut el, "error", "by")?;
        let mut e = StanzaError::new(kind, StanzaErrorCondition::UndefinedCondition);
        let mut condition = None;
        for child in de::child_elements(&mut el) {
            match &*child.namespace {
                ns::STANZAS if child.name == "text" => {
                    e.lang = child.attr_ns(XML_NS, "lang").map(str::to_owned);
                    let t = de::text(child);
                    de::once(&mut e.text, t, "error", "text")?;
                }
                ns::STANZAS => {
                    let Some(c) = StanzaErrorCondition::from_wire(child.name.as_bytes()) else {
                        return Err(unexpected("stanza error condition", child));
                    };
                    let t = de::text(child);
                    let t = t.trim();
                    if !t.is_empty() {
                        e.condition_text = Some(t.to_owned());
                    }
                    de::once(&mut condition, c, "error", "condition")?;
                }
                ns::JINGLE_ERRORS => {
                    let Some(c) = JingleErrorCondition::from_wire(child.name.as_bytes()) else {
                        return Err(unexpected("jingle error condition", child));
                    };
                    de::once(&mut e.jingle_condition, c, "error", "jingle condition")?;
                }
                _ => e.extensions.push(child),
            }
        }
        // RFC 6120 §8.3.2: the error MUST contain a defined condition element.
        e.condition = condition.ok_or(ParseError::MissingChild {
            element: "error",
            child: "condition",
        })?;
        e.by = by;
        Ok(e)
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        let ns = w.current_ns();
        w.start("error", ns);
        w.attr("type", self.kind.as_str());
        w.attr_opt("by", self.by.as_ref().map(Jid::as_str));
        w.start(self.condition.as_str(), ns::STANZAS);
        if let Some(t) = &self.condition_text {
            w.text(t);
        }
        w.end();
        if let Some(t) = &self.text {
            w.start("text", ns::STANZAS);
            if let Some(l) = &self.lang {
                w.attr_ns(XML_NS, "lang", l);
            }
            w.text(t);
            w.end();
        }
        if let Some(j) = self.jingle_condition {
            w.start(j.as_str(), ns::JINGLE_ERRORS);
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    /// The stanza-shaped JSON of this error.
    pub fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "type", self.kind.as_str());
        json::put_str(&mut o, "condition", self.condition.as_str());
        json::put_opt_str(&mut o, "text", self.text.as_deref());
        json::put_opt_str(&mut o, "lang", self.lang.as_deref());
        json::put_opt_str(&mut o, "by", self.by.as_ref().map(Jid::as_str));
        if let Some(t) = &self.condition_text {
            // stanza names the alternate address after its condition.
            let key = match self.condition {
                StanzaErrorCondition::Gone => "gone",
                StanzaErrorCondition::Redirect => "redirect",
                _ => "conditionText",
            };
            json::put_str(&mut o, key, t);
        }
        if let Some(j) = self.jingle_condition {
            json::put_str(&mut o, "jingleError", j.as_str());
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    /// Reads the stanza-shaped JSON of an error.
    pub fn from_json(v: &Value) -> Result<StanzaError, JsonError> {
        let o = json::as_obj(v, "iq", "error")?;
        let kind = json::opt_token(o, "error", "type", token(ErrorType::from_wire))?.ok_or(
            JsonError::MissingField {
                object: "error",
                field: "type",
            },
        )?;
        let condition = json::opt_token(
            o,
            "error",
            "condition",
            token(StanzaErrorCondition::from_wire),
        )?
        .ok_or(JsonError::MissingField {
            object: "error",
            field: "condition",
        })?;
        let mut e = StanzaError::new(kind, condition);
        e.text = json::opt_str(o, "error", "text")?.map(str::to_owned);
        e.lang = json::opt_str(o, "error", "lang")?.map(str::to_owned);
        e.by = json_jid(o, "error", "by")?;
        let key = match condition {
            StanzaErrorCondition::Gone => "gone",
            StanzaErrorCondition::Redirect => "redirect",
            _ => "conditionText",
        };
        e.condition_text = json::opt_str(o, "error", key)?.map(str::to_owned);
        e.jingle_condition = json::opt_token(
            o,
            "error",
            "jingleError",
            token(JingleErrorCondition::from_wire),
        )?;
        e.extensions = json::get_extensions(o, "error")?;
        Ok(e)
    }
}
