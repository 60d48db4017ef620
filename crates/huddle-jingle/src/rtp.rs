//! XEP-0167 Jingle RTP sessions (`urn:xmpp:jingle:apps:rtp:1`) and its session-info
//! payloads (`urn:xmpp:jingle:apps:rtp:info:1`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::json::{self, Obj};
use crate::model::Creator;
use crate::ns;
use crate::xml::{Element, Writer};

/// A `<payload-type/>` (XEP-0167 §4): one codec offer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadType {
    /// The RTP payload type number (REQUIRED).
    pub id: u8,
    /// The encoding name (e.g. `opus`); optional for static payload types.
    pub name: Option<String>,
    /// Sampling frequency in Hz.
    pub clockrate: Option<u32>,
    /// Number of channels (1 when absent).
    pub channels: Option<u8>,
    /// Maximum packet time in ms.
    pub maxptime: Option<u32>,
    /// Packet time in ms.
    pub ptime: Option<u32>,
    /// `<parameter name value/>` children (format parameters). A map, as in stanza's
    /// JSON: written sorted by name, a repeated name is refused.
    pub parameters: BTreeMap<String, String>,
    /// Other children (e.g. XEP-0293 rtcp-fb), kept as they came.
    pub extensions: Vec<Element>,
}

/// The RTP `<description/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtpDescription {
    /// The media type, e.g. `audio` or `video` (REQUIRED).
    pub media: String,
    /// The synchronization source, if given.
    pub ssrc: Option<u32>,
    /// Offered codecs in preference order.
    pub payload_types: Vec<PayloadType>,
    /// Other children (encryption, bandwidth, header extensions, ...), kept as they came.
    pub extensions: Vec<Element>,
}

impl RtpDescription {
    pub(crate) fn decode(mut el: Element) -> Result<RtpDescription, ParseError> {
        // XEP-0167 §4: the description MUST possess a 'media' attribute.
        let media = de::req(&mut el, "description", "media")?;
        let ssrc = de::num(&mut el, "description", "ssrc")?;
        let mut d = RtpDescription {
            media,
            ssrc,
            ..Default::default()
        };
        for mut c in de::child_elements(&mut el) {
            if !c.is("payload-type", ns::RTP) {
                d.extensions.push(c);
                continue;
            }
            // XEP-0167 schema: 'id' is required, the rest optional.
            let e = "payload-type";
            let mut p = PayloadType {
                id: de::req_num(&mut c, e, "id")?,
                name: c.take_attr("name"),
                clockrate: de::num(&mut c, e, "clockrate")?,
                channels: de::num(&mut c, e, "channels")?,
                maxptime: de::num(&mut c, e, "maxptime")?,
                ptime: de::num(&mut c, e, "ptime")?,
                ..Default::default()
            };
            for mut pc in de::child_elements(&mut c) {
                if pc.is("parameter", ns::RTP) {
                    // XEP-0167 schema: a parameter's 'name' and 'value' are required.
                    let name = de::req(&mut pc, "parameter", "name")?;
                    let value = de::req(&mut pc, "parameter", "value")?;
                    if p.parameters.contains_key(&name) {
                        return Err(ParseError::InvalidAttribute {
                            element: "parameter",
                            attribute: "name",
                            value: name,
                        });
                    }
                    p.parameters.insert(name, value);
                } else {
                    p.extensions.push(pc);
                }
            }
            d.payload_types.push(p);
        }
        Ok(d)
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("description", ns::RTP);
        w.attr("media", &self.media);
        w.attr_num("ssrc", self.ssrc);
        for p in &self.payload_types {
            w.start("payload-type", ns::RTP);
            w.attr_num("id", Some(p.id));
            w.attr_opt("name", p.name.as_deref());
            w.attr_num("clockrate", p.clockrate);
            w.attr_num("channels", p.channels);
            w.attr_num("maxptime", p.maxptime);
            w.attr_num("ptime", p.ptime);
            for (n, v) in &p.parameters {
                w.start("parameter", ns::RTP);
                w.attr("name", n);
                w.attr("value", v);
                w.end();
            }
            for e in &p.extensions {
                w.element(e);
            }
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "applicationType", ns::RTP);
        json::put_str(&mut o, "media", &self.media);
        if let Some(s) = self.ssrc {
            // stanza keeps the ssrc as a string.
            json::put_str(&mut o, "ssrc", &s.to_string());
        }
        if !self.payload_types.is_empty() {
            let codecs = self
                .payload_types
                .iter()
                .map(|p| {
                    let mut co = Obj::new();
                    // stanza keeps the payload id as a string.
                    json::put_str(&mut co, "id", &p.id.to_string());
                    json::put_opt_str(&mut co, "name", p.name.as_deref());
                    json::put_opt_num(&mut co, "clockRate", p.clockrate);
                    json::put_opt_num(&mut co, "channels", p.channels);
                    json::put_opt_num(&mut co, "maxptime", p.maxptime);
                    json::put_opt_num(&mut co, "ptime", p.ptime);
                    if !p.parameters.is_empty() {
                        let mut params = Obj::new();
                        for (n, v) in &p.parameters {
                            params.insert(n.clone(), Value::String(v.clone()));
                        }
                        co.insert("parameters".into(), Value::Object(params));
                    }
                    json::put_extensions(&mut co, &p.extensions);
                    Value::Object(co)
                })
                .collect();
            o.insert("codecs".into(), Value::Array(codecs));
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    pub(crate) fn from_json(o: &Obj) -> Result<RtpDescription, JsonError> {
        let mut d = RtpDescription {
            media: json::req_str(o, "application", "media")?.to_owned(),
            ssrc: json::opt_num(o, "application", "ssrc")?,
            extensions: json::get_extensions(o, "application")?,
            payload_types: Vec::new(),
        };
        for c in json::arr(o, "application", "codecs")? {
            let co = json::as_obj(c, "application", "codecs")?;
            let e = "codec";
            let mut p = PayloadType {
                id: json::req_num(co, e, "id")?,
                name: json::opt_str(co, e, "name")?.map(str::to_owned),
                clockrate: json::opt_num(co, e, "clockRate")?,
                channels: json::opt_num(co, e, "channels")?,
                maxptime: json::opt_num(co, e, "maxptime")?,
                ptime: json::opt_num(co, e, "ptime")?,
                extensions: json::get_extensions(co, e)?,
                parameters: BTreeMap::new(),
            };
            if let Some(params) = co.get("parameters").filter(|p| !p.is_null()) {
                for (k, v) in json::as_obj(params, e, "parameters")? {
                    let v = v
                        .as_str()
                        .ok_or_else(|| json::invalid(e, "parameters", v))?;
                    p.parameters.insert(k.clone(), v.to_owned());
                }
            }
            d.payload_types.push(p);
        }
        Ok(d)
    }
}

/// XEP-0167 §7 informational messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpInfo {
    /// `<active/>`: the principal is again actively participating.
    Active,
    /// `<hold/>`: the principal is temporarily not listening.
    Hold,
    /// `<unhold/>`: the hold ended.
    Unhold,
    /// `<mute/>`: the principal stopped sending (one content when `name` is given).
    Mute {
        /// The content's creator.
        creator: Option<Creator>,
        /// The content's name (all contents when absent).
        name: Option<String>,
    },
    /// `<unmute/>`: the mute ended.
    Unmute {
        /// The content's creator.
        creator: Option<Creator>,
        /// The content's name (all contents when absent).
        name: Option<String>,
    },
    /// `<ringing/>`: the device is ringing but the user has not yet answered.
    Ringing,
}

impl RtpInfo {
    fn wire_name(&self) -> &'static str {
        match self {
            RtpInfo::Active => "active",
            RtpInfo::Hold => "hold",
            RtpInfo::Unhold => "unhold",
            RtpInfo::Mute { .. } => "mute",
            RtpInfo::Unmute { .. } => "unmute",
            RtpInfo::Ringing => "ringing",
        }
    }

    /// `None` for an element of the namespace this crate does not know.
    pub(crate) fn decode(el: &Element) -> Result<Option<RtpInfo>, ParseError> {
        let creator = || match el.attr("creator") {
            None => Ok(None),
            Some(c) => Creator::from_wire(c)
                .map(Some)
                .ok_or(ParseError::InvalidAttribute {
                    element: "mute",
                    attribute: "creator",
                    value: c.to_owned(),
                }),
        };
        Ok(Some(match &*el.name {
            "active" => RtpInfo::Active,
            "hold" => RtpInfo::Hold,
            "unhold" => RtpInfo::Unhold,
            "ringing" => RtpInfo::Ringing,
            "mute" => RtpInfo::Mute {
                creator: creator()?,
                name: el.attr("name").map(str::to_owned),
            },
            "unmute" => RtpInfo::Unmute {
                creator: creator()?,
                name: el.attr("name").map(str::to_owned),
            },
            _ => return Ok(None),
        }))
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start(self.wire_name(), ns::RTP_INFO);
        if let RtpInfo::Mute { creator, name } | RtpInfo::Unmute { creator, name } = self {
            w.attr_opt("creator", creator.map(Creator::as_str));
            w.attr_opt("name", name.as_deref());
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(
            &mut o,
            "infoType",
            &format!("{{{}}}{}", ns::RTP_INFO, self.wire_name()),
        );
        if let RtpInfo::Mute { creator, name } | RtpInfo::Unmute { creator, name } = self {
            json::put_opt_str(&mut o, "creator", creator.map(Creator::as_str));
            json::put_opt_str(&mut o, "name", name.as_deref());
        }
        Value::Object(o)
    }

    pub(crate) fn from_json(name: &str, o: &Obj) -> Result<RtpInfo, JsonError> {
        let creator = json::opt_token(o, "info", "creator", Creator::from_wire)?;
        let content = json::opt_str(o, "info", "name")?.map(str::to_owned);
        Ok(match name {
            "active" => RtpInfo::Active,
            "hold" => RtpInfo::Hold,
            "unhold" => RtpInfo::Unhold,
            "ringing" => RtpInfo::Ringing,
            "mute" => RtpInfo::Mute {
                creator,
                name: content,
            },
            "unmute" => RtpInfo::Unmute {
                creator,
                name: content,
            },
            other => {
                return Err(json::invalid(
                    "info",
                    "infoType",
                    &Value::String(other.to_owned()),
                ));
            }
        })
    }
}
