//! The custom-session application format carried in Jingle: the `<description/>` of
//! namespace [`NS`], the data element of Offer-Answer mode, and the Jingle
//! [`ApplicationHandler`] registered for them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use bytes::Bytes;
use huddle_jingle::{Action, Content, Creator, Description, Element, Jingle, Reason, SessionInfo};
use thiserror::Error;

use crate::jingle::{ApplicationHandler, Session, Verdict, base_verdict};

/// huddle's application namespace for AIMCC-style custom sessions (version 0).
pub const NS: &str = "urn:huddle:custom:0";

/// The Jingle content name a custom session uses.
pub const CONTENT_NAME: &str = "custom";

/// A capability UUID (AIMCC Technote 8: "The custom session's UUID is of your own
/// choosing"), written in the usual 8-4-4-4-12 hex form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapabilityUuid(pub [u8; 16]);

/// Why a string is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UuidError {
    /// Not 32 hex digits in 8-4-4-4-12 groups.
    #[error("not a UUID: {0:?}")]
    Malformed(String),
}

impl FromStr for CapabilityUuid {
    type Err = UuidError;

    fn from_str(s: &str) -> Result<Self, UuidError> {
        let bad = || UuidError::Malformed(s.to_owned());
        let groups: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let raw = decode_hex(&hex).ok_or_else(bad)?;
        let mut out = [0u8; 16];
        out.copy_from_slice(&raw);
        Ok(CapabilityUuid(out))
    }
}

impl fmt::Display for CapabilityUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A custom session's mode (AIMCC Technote 8: Offer-Answer, Streams, Message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Two participants exchange data through the signaling channel.
    OfferAnswer,
    /// Two participants get an authenticated, direct TCP stream.
    Streams,
    /// Two or more participants exchange messages (≤ 64 KiB) peer-to-peer.
    Message,
}

impl Mode {
    /// The wire token (`offer-answer`, `streams`, `message`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::OfferAnswer => "offer-answer",
            Mode::Streams => "streams",
            Mode::Message => "message",
        }
    }

    /// Parses a wire token.
    pub fn from_wire(s: &str) -> Option<Mode> {
        match s {
            "offer-answer" => Some(Mode::OfferAnswer),
            "streams" => Some(Mode::Streams),
            "message" => Some(Mode::Message),
            _ => None,
        }
    }
}

/// Where the owner's transport listens and, in Streams mode, the per-session secret
/// both sides prove knowledge of.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportInfo {
    /// The owner's listening address.
    pub addr: SocketAddr,
    /// The Streams-mode secret (empty in Message mode).
    pub secret: Vec<u8>,
}

impl fmt::Debug for TransportInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportInfo")
            .field("addr", &self.addr)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

/// The `<description xmlns="urn:huddle:custom:0"/>` of a custom session:
///
/// ```xml
/// <description xmlns="urn:huddle:custom:0" uuid="…" mode="message" name="…"
///              address="127.0.0.1:4000" secret="hex"/>
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomDescription {
    /// The capability the session belongs to.
    pub uuid: CapabilityUuid,
    /// The mode.
    pub mode: Mode,
    /// The session's name (Message mode only).
    pub name: Option<String>,
    /// The owner's transport (Streams and Message modes).
    pub transport: Option<TransportInfo>,
}

/// Why a description element is not a valid custom description.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DescriptionError {
    /// Not a `description` in [`NS`].
    #[error("not a custom-session description")]
    WrongElement,
    /// A required attribute is missing.
    #[error("missing attribute {0:?}")]
    Missing(&'static str),
    /// An attribute has a value that does not parse.
    #[error("invalid value for attribute {0:?}")]
    Invalid(&'static str),
}

impl CustomDescription {
    /// The element.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("description", NS)
            .with_attr("uuid", self.uuid.to_string())
            .with_attr("mode", self.mode.as_str());
        if let Some(n) = &self.name {
            el.set_attr("name", n.clone());
        }
        if let Some(t) = &self.transport {
            el.set_attr("address", t.addr.to_string());
            if !t.secret.is_empty() {
                el.set_attr("secret", encode_hex(&t.secret));
            }
        }
        el
    }

    /// Parses the element.
    pub fn from_element(el: &Element) -> Result<CustomDescription, DescriptionError> {
        if !el.is("description", NS) {
            return Err(DescriptionError::WrongElement);
        }
        let uuid = el
            .attr("uuid")
            .ok_or(DescriptionError::Missing("uuid"))?
            .parse()
            .map_err(|_| DescriptionError::Invalid("uuid"))?;
        let mode = Mode::from_wire(el.attr("mode").ok_or(DescriptionError::Missing("mode"))?)
            .ok_or(DescriptionError::Invalid("mode"))?;
        let transport = match el.attr("address") {
            None => None,
            Some(a) => Some(TransportInfo {
                addr: a
                    .parse()
                    .map_err(|_| DescriptionError::Invalid("address"))?,
                secret: match el.attr("secret") {
                    None => Vec::new(),
                    Some(s) => decode_hex(s).ok_or(DescriptionError::Invalid("secret"))?,
                },
            }),
        };
        // A transport address is what Streams and Message modes connect to.
        if mode != Mode::OfferAnswer && transport.is_none() {
            return Err(DescriptionError::Missing("address"));
        }
        Ok(CustomDescription {
            uuid,
            mode,
            name: el.attr("name").map(str::to_owned),
            transport,
        })
    }

    /// The Jingle content carrying this description.
    pub fn to_content(&self, creator: Creator) -> Content {
        let mut c = Content::new(creator, CONTENT_NAME);
        c.description = Some(Description::Raw(self.to_element()));
        c
    }

    /// The custom description of the first content that has one.
    pub fn from_contents(
        contents: &[Content],
    ) -> Option<Result<CustomDescription, DescriptionError>> {
        contents.iter().find_map(|c| match &c.description {
            Some(Description::Raw(el)) if el.namespace == NS => {
                Some(CustomDescription::from_element(el))
            }
            _ => None,
        })
    }
}

/// The session-info payload that carries one Offer-Answer data item:
/// `<data xmlns="urn:huddle:custom:0">hex</data>`.
pub fn data_info(data: &[u8]) -> SessionInfo {
    SessionInfo::Raw(Element::new("data", NS).with_text(encode_hex(data)))
}

/// The data of a session-info built by [`data_info`]: `None` when it is not one,
/// `Some(Err(()))` when its text is not hex.
pub fn parse_data_info(info: &SessionInfo) -> Option<Result<Bytes, ()>> {
    match info {
        SessionInfo::Raw(el) if el.is("data", NS) => {
            Some(decode_hex(el.text().trim()).map(Bytes::from).ok_or(()))
        }
        _ => None,
    }
}

fn encode_hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(D[usize::from(x >> 4)]));
        s.push(char::from(D[usize::from(x & 15)]));
    }
    s
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let hi = char::from(p[0]).to_digit(16)?;
            let lo = char::from(p[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// The Jingle application handler of custom sessions: accepts what the custom-session
/// layer sends (initiate, accept, data in session-info) and answers the accept with the
/// offered description.
#[derive(Debug, Default)]
pub struct CustomHandler {
    offered: Vec<Content>,
}

impl ApplicationHandler for CustomHandler {
    fn start(&mut self, _session: &Session) -> Result<(), Reason> {
        Ok(())
    }

    fn accept(&mut self, _session: &Session) -> Result<Vec<Content>, Reason> {
        // XEP-0166 §6.5: the session-accept names the contents the responder accepts;
        // a custom session has exactly the one it was offered.
        Ok(self.offered.clone())
    }

    fn on_action(&mut self, session: &Session, jingle: &Jingle) -> Verdict {
        match jingle.action {
            Action::SessionInitiate => {
                self.offered.clone_from(&jingle.contents);
                Verdict::Ack
            }
            Action::SessionAccept => Verdict::Ack,
            Action::SessionInfo => match &jingle.info {
                Some(info) => match parse_data_info(info) {
                    Some(Ok(_)) => Verdict::Ack,
                    // RFC 6120 §8.3.3.1: a payload we understand but cannot decode.
                    Some(Err(())) => Verdict::bad_request(),
                    None => base_verdict(session, jingle),
                },
                None => base_verdict(session, jingle),
            },
            _ => base_verdict(session, jingle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trips_and_rejects_garbage() {
        let s = "09461349-4c7f-11d1-8222-444553540000";
        let u: CapabilityUuid = s.parse().expect("uuid");
        assert_eq!(u.to_string(), s);
        assert!(
            "09461349-4c7f-11d1-8222-44455354000"
                .parse::<CapabilityUuid>()
                .is_err()
        );
        assert!(
            "0946134g-4c7f-11d1-8222-444553540000"
                .parse::<CapabilityUuid>()
                .is_err()
        );
    }

    #[test]
    fn description_round_trips() {
        let d = CustomDescription {
            uuid: "09461349-4c7f-11d1-8222-444553540000"
                .parse()
                .expect("uuid"),
            mode: Mode::Streams,
            name: None,
            transport: Some(TransportInfo {
                addr: "127.0.0.1:4000".parse().expect("addr"),
                secret: vec![1, 2, 0xfe, 0xff],
            }),
        };
        assert_eq!(CustomDescription::from_element(&d.to_element()), Ok(d));
        let no_addr = Element::new("description", NS)
            .with_attr("uuid", "09461349-4c7f-11d1-8222-444553540000")
            .with_attr("mode", "message");
        assert_eq!(
            CustomDescription::from_element(&no_addr),
            Err(DescriptionError::Missing("address"))
        );
    }

    #[test]
    fn the_initiate_and_the_data_survive_xml() {
        let d = CustomDescription {
            uuid: "09461349-4c7f-11d1-8222-444553540000"
                .parse()
                .expect("uuid"),
            mode: Mode::Message,
            name: Some("ops & <friends>".into()),
            transport: Some(TransportInfo {
                addr: "[::1]:5000".parse().expect("addr"),
                secret: Vec::new(),
            }),
        };
        let mut j = Jingle::new(Action::SessionInitiate, "s1");
        j.contents = vec![d.to_content(Creator::Initiator)];
        let xml = huddle_jingle::Iq::set("1", j).to_xml();
        let back = huddle_jingle::parse_iq(xml.as_bytes()).expect("parse");
        let contents = back.jingle.expect("jingle").contents;
        assert_eq!(CustomDescription::from_contents(&contents), Some(Ok(d)));

        let mut info = Jingle::new(Action::SessionInfo, "s1");
        info.info = Some(Box::new(data_info(b"\x00bin\xff")));
        let xml = huddle_jingle::Iq::set("2", info).to_xml();
        let back = huddle_jingle::parse_iq(xml.as_bytes()).expect("parse");
        let got = back.jingle.and_then(|j| j.info).expect("info");
        assert_eq!(
            parse_data_info(&got),
            Some(Ok(Bytes::from_static(b"\x00bin\xff")))
        );
    }

    #[test]
    fn data_info_round_trips() {
        let info = data_info(&[0, 1, 255]);
        assert_eq!(
            parse_data_info(&info),
            Some(Ok(Bytes::from_static(&[0, 1, 255])))
        );
        let bad = SessionInfo::Raw(Element::new("data", NS).with_text("zz"));
        assert_eq!(parse_data_info(&bad), Some(Err(())));
    }
}
