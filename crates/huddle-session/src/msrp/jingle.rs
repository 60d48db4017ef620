//! MSRP media negotiated over Jingle: huddle's application format
//! `urn:huddle:msrp:0`.
//!
//! ```xml
//! <content creator='initiator' name='chat'>
//!   <description xmlns='urn:huddle:msrp:0' media='chat'>
//!     <attribute name='accept-types'>message/cpim text/*</attribute>
//!     <attribute name='path'>msrp://127.0.0.1:40123/abc;tcp</attribute>
//!     <attribute name='setup'>passive</attribute>
//!   </description>
//!   <transport xmlns='urn:huddle:msrp:0'/>
//! </content>
//! ```
//!
//! The description carries one `<attribute/>` per SDP attribute line of the media
//! description (RFC 4975 §8, RFC 5547 §6): `name` is the attribute name, the text its
//! value (absent for flags such as `msrp-cema`). `media` is `chat` or `file`. The empty
//! `<transport/>` in the same namespace says the content runs over MSRP's own
//! connections (XEP-0166 §7.3 gives every content a transport method); paths travel
//! in the description, as they do in SDP.
//!
//! The session-initiate carries the offer and the session-accept the answer
//! ([`super::negotiate`] does the rest). [`MsrpJingle`] registers the format with a
//! [`SessionManager`] and hands offers and answers between the manager's handler and
//! the application.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use huddle_jingle::ext::{Extension, ExtensionPayload, Registry, Slot};
use huddle_jingle::{
    Action, Content, Creator, Description, Element, Jingle, Reason, ReasonCondition, Transport,
};
use huddle_msrp::sdp::{Attribute, MsrpAttributes};

use super::negotiate::{MsrpDescription, MsrpMedia};
use crate::jingle::{ApplicationHandler, Session, SessionManager, Verdict, base_verdict};

/// The namespace of huddle's MSRP application format (and of its empty transport).
pub const NS_MSRP: &str = "urn:huddle:msrp:0";

/// The typed `<description xmlns='urn:huddle:msrp:0'/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrpJingleDescription(pub MsrpDescription);

impl Extension for MsrpJingleDescription {
    fn namespace(&self) -> &str {
        NS_MSRP
    }

    fn to_element(&self) -> Element {
        let mut el = Element::new("description", NS_MSRP).with_attr("media", self.0.media.as_str());
        for line in self.0.to_lines() {
            let line = line.strip_prefix("a=").unwrap_or(&line);
            let child = match line.split_once(':') {
                Some((name, value)) => Element::new("attribute", NS_MSRP)
                    .with_attr("name", name)
                    .with_text(value),
                None => Element::new("attribute", NS_MSRP).with_attr("name", line),
            };
            el = el.with_child(child);
        }
        el
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads a `<description xmlns='urn:huddle:msrp:0'/>` element.
pub fn decode_description(el: &Element) -> Result<MsrpDescription, String> {
    let media = el
        .attr("media")
        .and_then(MsrpMedia::parse)
        .ok_or("media must be 'chat' or 'file'")?;
    let mut attributes = MsrpAttributes::default();
    for child in el.elements() {
        if !child.is("attribute", NS_MSRP) {
            // Unknown children are extensions of a later version: ignored.
            continue;
        }
        let name = child.attr("name").ok_or("<attribute/> without a name")?;
        let value = child.text();
        let line = if value.is_empty() {
            name.to_owned()
        } else {
            format!("{name}:{value}")
        };
        let attr = Attribute::parse(&line).map_err(|e| format!("a={name}: {e}"))?;
        attributes.push(attr).map_err(|e| e.to_string())?;
    }
    Ok(MsrpDescription { media, attributes })
}

fn decode_payload(el: &Element) -> Result<ExtensionPayload, String> {
    decode_description(el).map(|d| ExtensionPayload::new(MsrpJingleDescription(d)))
}

/// Registers the format's decoder, so parsed Jingle carries typed
/// [`MsrpJingleDescription`]s (and malformed ones are refused with `bad-request`).
pub fn register_codec(registry: &mut Registry) {
    registry.register(Slot::Description, NS_MSRP, decode_payload);
}

/// A Jingle content carrying `description`.
pub fn content(creator: Creator, name: &str, description: &MsrpDescription) -> Content {
    let mut c = Content::new(creator, name.to_owned());
    c.description = Some(Description::Extension(ExtensionPayload::new(
        MsrpJingleDescription(description.clone()),
    )));
    c.transport = Some(Transport::Raw(Element::new("transport", NS_MSRP)));
    c
}

/// The MSRP description of a content, typed or raw (a codec without
/// [`register_codec`]); `None` for other formats, `Some(Err)` when malformed.
pub fn description_of(content: &Content) -> Option<Result<MsrpDescription, String>> {
    match content.description.as_ref()? {
        Description::Extension(e) => match e.downcast_ref::<MsrpJingleDescription>() {
            Some(d) => Some(Ok(d.0.clone())),
            None if e.namespace() == NS_MSRP => Some(decode_description(&e.to_element())),
            None => None,
        },
        Description::Raw(el) if el.namespace == NS_MSRP => Some(decode_description(el)),
        _ => None,
    }
}

/// The MSRP contents of a Jingle action, by content name.
pub fn descriptions(jingle: &Jingle) -> Result<Vec<(String, MsrpDescription)>, String> {
    jingle
        .contents
        .iter()
        .filter_map(|c| description_of(c).map(|d| d.map(|d| (c.name.to_string(), d))))
        .collect()
}

#[derive(Debug, Default)]
struct Shared {
    offers: HashMap<String, Vec<(String, MsrpDescription)>>,
    answers: HashMap<String, Vec<Content>>,
}

/// Connects huddle's MSRP format to a [`SessionManager`]: the handler it registers
/// keeps each incoming offer for the application ([`MsrpJingle::take_offer`]) and
/// sends the answer the application left ([`MsrpJingle::set_answer`]) when the session
/// is accepted. The peer's answer arrives as the manager's
/// [`Event::Received`](crate::jingle::Event::Received) session-accept (read it with
/// [`descriptions`]).
#[derive(Debug, Clone, Default)]
pub struct MsrpJingle {
    shared: Arc<Mutex<Shared>>,
}

impl MsrpJingle {
    /// A fresh exchange point.
    pub fn new() -> Self {
        MsrpJingle::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the handler for [`NS_MSRP`] on `manager` (register the decoder on the
    /// codec that parses incoming XML with [`register_codec`]).
    pub fn register(&self, manager: &mut SessionManager) {
        let this = self.clone();
        manager.register(NS_MSRP, move |_session: &Session| {
            Box::new(MsrpHandler {
                shared: this.clone(),
            }) as Box<dyn ApplicationHandler>
        });
    }

    /// The offer of incoming session `sid` (once its session-initiate was accepted for
    /// processing), by content name.
    pub fn take_offer(&self, sid: &str) -> Option<Vec<(String, MsrpDescription)>> {
        self.lock().offers.remove(sid)
    }

    /// The answer to send when [`SessionManager::accept`] is called for `sid`:
    /// `(content name, description)` pairs (the contents keep the initiator as creator).
    pub fn set_answer(&self, sid: &str, answer: Vec<(String, MsrpDescription)>) {
        let contents = answer
            .iter()
            .map(|(name, d)| content(Creator::Initiator, name, d))
            .collect();
        self.lock().answers.insert(sid.to_owned(), contents);
    }
}

#[derive(Debug)]
struct MsrpHandler {
    shared: MsrpJingle,
}

impl ApplicationHandler for MsrpHandler {
    fn start(&mut self, _session: &Session) -> Result<(), Reason> {
        Ok(())
    }

    fn accept(&mut self, session: &Session) -> Result<Vec<Content>, Reason> {
        match self.shared.lock().answers.remove(session.sid()) {
            Some(contents) if !contents.is_empty() => Ok(contents),
            // XEP-0166 §7.2.8: nothing we can run → failed-application.
            _ => {
                let mut r = Reason::new(ReasonCondition::FailedApplication);
                r.text = Some("no MSRP answer was prepared".into());
                Err(r)
            }
        }
    }

    fn on_action(&mut self, session: &Session, jingle: &Jingle) -> Verdict {
        match jingle.action {
            Action::SessionInitiate => match descriptions(jingle) {
                Ok(offers) if !offers.is_empty() => {
                    let mut shared = self.shared.lock();
                    shared.offers.insert(session.sid().to_owned(), offers);
                    Verdict::Ack
                }
                // XEP-0166 §6.3.2: a session-initiate that cannot be understood is
                // answered with bad-request.
                _ => Verdict::bad_request(),
            },
            Action::SessionAccept => match descriptions(jingle) {
                Ok(answers) if !answers.is_empty() => Verdict::Ack,
                _ => Verdict::bad_request(),
            },
            _ => base_verdict(session, jingle),
        }
    }
}
