//! XEP-0176 Jingle ICE-UDP transport (`urn:xmpp:jingle:transports:ice-udp:1`).

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::json::{self, Obj};
use crate::ns;
use crate::xml::{Element, Writer};

/// The ICE candidate type (XEP-0176 §5.1 'type', RFC 8445 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IceCandidateType {
    /// A host candidate.
    Host,
    /// A peer-reflexive candidate.
    Prflx,
    /// A relayed candidate.
    Relay,
    /// A server-reflexive candidate.
    Srflx,
}

impl IceCandidateType {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            IceCandidateType::Host => "host",
            IceCandidateType::Prflx => "prflx",
            IceCandidateType::Relay => "relay",
            IceCandidateType::Srflx => "srflx",
        }
    }

    /// Looks a wire token up.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "host" => IceCandidateType::Host,
            "prflx" => IceCandidateType::Prflx,
            "relay" => IceCandidateType::Relay,
            "srflx" => IceCandidateType::Srflx,
            _ => return None,
        })
    }
}

/// An ICE `<candidate/>` (XEP-0176 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCandidate {
    /// Component id (1 = RTP, 2 = RTCP).
    pub component: u8,
    /// Foundation.
    pub foundation: String,
    /// Candidate generation.
    pub generation: u32,
    /// Unique id of the candidate.
    pub id: String,
    /// IP address.
    pub ip: String,
    /// Network interface index, if given.
    pub network: Option<u32>,
    /// Port.
    pub port: u16,
    /// ICE priority. RFC 8445 §5.1.2 bounds it to 31 bits, but the XEP-0176 schema says
    /// `xs:positiveInteger` and its own example 5 uses 21149780477, so up to `u64` is read.
    pub priority: u64,
    /// Transport protocol, normally `udp`.
    pub protocol: String,
    /// Related address (reflexive and relayed candidates).
    pub rel_addr: Option<String>,
    /// Related port.
    pub rel_port: Option<u16>,
    /// Candidate type.
    pub kind: IceCandidateType,
}

/// `<remote-candidate/>` (XEP-0176 §6): the candidate the controlling agent nominated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// Component id.
    pub component: u8,
    /// IP address.
    pub ip: String,
    /// Port.
    pub port: u16,
}

/// The ICE-UDP `<transport/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceUdpTransport {
    /// ICE username fragment.
    pub ufrag: Option<String>,
    /// ICE password.
    pub pwd: Option<String>,
    /// Candidates.
    pub candidates: Vec<IceCandidate>,
    /// The nominated remote candidate.
    pub remote_candidate: Option<RemoteCandidate>,
    /// Other children (e.g. XEP-0320 DTLS fingerprints), kept as they came.
    pub extensions: Vec<Element>,
}

impl IceUdpTransport {
    pub(crate) fn decode(mut el: Element) -> Result<IceUdpTransport, ParseError> {
        let mut t = IceUdpTransport {
            ufrag: el.take_attr("ufrag"),
            pwd: el.take_attr("pwd"),
            ..Default::default()
        };
        for mut c in de::child_elements(&mut el) {
            match (&*c.namespace, &*c.name) {
                (ns::ICE_UDP, "candidate") => {
                    // XEP-0176 §5.1 and schema: component, foundation, generation, id,
                    // ip, port, priority, protocol and type are required.
                    let e = "candidate";
                    t.candidates.push(IceCandidate {
                        component: de::req_num(&mut c, e, "component")?,
                        foundation: de::req(&mut c, e, "foundation")?,
                        generation: de::req_num(&mut c, e, "generation")?,
                        id: de::req(&mut c, e, "id")?,
                        ip: de::req(&mut c, e, "ip")?,
                        network: de::num(&mut c, e, "network")?,
                        port: de::req_num(&mut c, e, "port")?,
                        priority: de::req_num(&mut c, e, "priority")?,
                        protocol: de::req(&mut c, e, "protocol")?,
                        rel_addr: c.take_attr("rel-addr"),
                        rel_port: de::num(&mut c, e, "rel-port")?,
                        kind: de::token(&mut c, e, "type", IceCandidateType::from_wire)?.ok_or(
                            ParseError::MissingAttribute {
                                element: e,
                                attribute: "type",
                            },
                        )?,
                    });
                }
                (ns::ICE_UDP, "remote-candidate") => {
                    let e = "remote-candidate";
                    let r = RemoteCandidate {
                        component: de::req_num(&mut c, e, "component")?,
                        ip: de::req(&mut c, e, "ip")?,
                        port: de::req_num(&mut c, e, "port")?,
                    };
                    de::once(&mut t.remote_candidate, r, "transport", "remote-candidate")?;
                }
                _ => t.extensions.push(c),
            }
        }
        Ok(t)
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("transport", ns::ICE_UDP);
        w.attr_opt("ufrag", self.ufrag.as_deref());
        w.attr_opt("pwd", self.pwd.as_deref());
        for c in &self.candidates {
            w.start("candidate", ns::ICE_UDP);
            w.attr_num("component", Some(c.component));
            w.attr("foundation", &c.foundation);
            w.attr_num("generation", Some(c.generation));
            w.attr("id", &c.id);
            w.attr("ip", &c.ip);
            w.attr_num("network", c.network);
            w.attr_num("port", Some(c.port));
            w.attr_num("priority", Some(c.priority));
            w.attr("protocol", &c.protocol);
            w.attr_opt("rel-addr", c.rel_addr.as_deref());
            w.attr_num("rel-port", c.rel_port);
            w.attr("type", c.kind.as_str());
            w.end();
        }
        if let Some(r) = &self.remote_candidate {
            w.start("remote-candidate", ns::ICE_UDP);
            w.attr_num("component", Some(r.component));
            w.attr("ip", &r.ip);
            w.attr_num("port", Some(r.port));
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "transportType", ns::ICE_UDP);
        json::put_opt_str(&mut o, "usernameFragment", self.ufrag.as_deref());
        json::put_opt_str(&mut o, "password", self.pwd.as_deref());
        if !self.candidates.is_empty() {
            let cs = self
                .candidates
                .iter()
                .map(|c| {
                    let mut co = Obj::new();
                    co.insert("component".into(), Value::from(c.component));
                    json::put_str(&mut co, "foundation", &c.foundation);
                    co.insert("generation".into(), Value::from(c.generation));
                    json::put_str(&mut co, "id", &c.id);
                    json::put_str(&mut co, "ip", &c.ip);
                    json::put_opt_num(&mut co, "network", c.network);
                    co.insert("port".into(), Value::from(c.port));
                    co.insert("priority".into(), Value::from(c.priority));
                    json::put_str(&mut co, "protocol", &c.protocol);
                    json::put_opt_str(&mut co, "relatedAddress", c.rel_addr.as_deref());
                    json::put_opt_num(&mut co, "relatedPort", c.rel_port);
                    json::put_str(&mut co, "type", c.kind.as_str());
                    Value::Object(co)
                })
                .collect();
            o.insert("candidates".into(), Value::Array(cs));
        }
        if let Some(r) = &self.remote_candidate {
            let mut ro = Obj::new();
            ro.insert("component".into(), Value::from(r.component));
            json::put_str(&mut ro, "ip", &r.ip);
            ro.insert("port".into(), Value::from(r.port));
            o.insert("remoteCandidate".into(), Value::Object(ro));
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    pub(crate) fn from_json(o: &Obj) -> Result<IceUdpTransport, JsonError> {
        let mut t = IceUdpTransport {
            ufrag: json::opt_str(o, "transport", "usernameFragment")?.map(str::to_owned),
            pwd: json::opt_str(o, "transport", "password")?.map(str::to_owned),
            extensions: json::get_extensions(o, "transport")?,
            ..Default::default()
        };
        for c in json::arr(o, "transport", "candidates")? {
            let co = json::as_obj(c, "transport", "candidates")?;
            let e = "candidate";
            t.candidates.push(IceCandidate {
                component: json::req_num(co, e, "component")?,
                foundation: json::req_str(co, e, "foundation")?.to_owned(),
                generation: json::opt_num(co, e, "generation")?.unwrap_or(0),
                id: json::req_str(co, e, "id")?.to_owned(),
                ip: json::req_str(co, e, "ip")?.to_owned(),
                network: json::opt_num(co, e, "network")?,
                port: json::req_num(co, e, "port")?,
                priority: json::req_num(co, e, "priority")?,
                protocol: json::opt_str(co, e, "protocol")?
                    .unwrap_or("udp")
                    .to_owned(),
                rel_addr: json::opt_str(co, e, "relatedAddress")?.map(str::to_owned),
                rel_port: json::opt_num(co, e, "relatedPort")?,
                kind: json::opt_token(co, e, "type", IceCandidateType::from_wire)?.ok_or(
                    JsonError::MissingField {
                        object: e,
                        field: "type",
                    },
                )?,
            });
        }
        if let Some(r) = o.get("remoteCandidate").filter(|r| !r.is_null()) {
            let ro = json::as_obj(r, "transport", "remoteCandidate")?;
            t.remote_candidate = Some(RemoteCandidate {
                component: json::req_num(ro, "remoteCandidate", "component")?,
                ip: json::req_str(ro, "remoteCandidate", "ip")?.to_owned(),
                port: json::req_num(ro, "remoteCandidate", "port")?,
            });
        }
        Ok(t)
    }
}
