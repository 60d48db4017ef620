//! XEP-0260 Jingle SOCKS5 bytestreams transport (`urn:xmpp:jingle:transports:s5b:1`).

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::jid::Jid;
use crate::json::{self, Obj};
use crate::model::json_jid;
use crate::ns;
use crate::xml::{Element, Writer};

/// The SOCKS5 mode (XEP-0260 §2.2 'mode', default `tcp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum S5bMode {
    /// A TCP bytestream.
    #[default]
    Tcp,
    /// A UDP bytestream (XEP-0065 §8).
    Udp,
}

impl S5bMode {
    fn as_str(self) -> &'static str {
        match self {
            S5bMode::Tcp => "tcp",
            S5bMode::Udp => "udp",
        }
    }

    fn from_wire(s: &str) -> Option<Self> {
        match s {
            "tcp" => Some(S5bMode::Tcp),
            "udp" => Some(S5bMode::Udp),
            _ => None,
        }
    }
}

/// The kind of a candidate (XEP-0260 §2.2 'type', default `direct`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// Through NAT assistance (e.g. NAT-PMP).
    Assisted,
    /// A direct connection to the party.
    #[default]
    Direct,
    /// Through a SOCKS5 proxy.
    Proxy,
    /// Through a tunnel (e.g. Teredo).
    Tunnel,
}

impl CandidateType {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            CandidateType::Assisted => "assisted",
            CandidateType::Direct => "direct",
            CandidateType::Proxy => "proxy",
            CandidateType::Tunnel => "tunnel",
        }
    }

    /// Looks a wire token up.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "assisted" => CandidateType::Assisted,
            "direct" => CandidateType::Direct,
            "proxy" => CandidateType::Proxy,
            "tunnel" => CandidateType::Tunnel,
            _ => return None,
        })
    }
}

/// A SOCKS5 `<candidate/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S5bCandidate {
    /// Candidate id (REQUIRED).
    pub cid: String,
    /// Host name or IP address (REQUIRED).
    pub host: String,
    /// The JID of the party or proxy offering it (REQUIRED).
    pub jid: Jid,
    /// The port (optional; SOCKS5's 1080 when absent).
    pub port: Option<u16>,
    /// The priority (REQUIRED).
    pub priority: u32,
    /// The kind.
    pub kind: CandidateType,
}

/// The SOCKS5 `<transport/>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Socks5Transport {
    /// The bytestream session id (REQUIRED).
    pub sid: String,
    /// The SOCKS5 destination address (SHA-1 of sid + JIDs), if given.
    pub dstaddr: Option<String>,
    /// TCP or UDP.
    pub mode: S5bMode,
    /// Offered candidates.
    pub candidates: Vec<S5bCandidate>,
    /// `<candidate-used cid/>`: the candidate the sender connected to.
    pub candidate_used: Option<String>,
    /// `<candidate-error/>`: the sender could connect to none.
    pub candidate_error: bool,
    /// `<activated cid/>`: the proxy candidate was activated.
    pub activated: Option<String>,
    /// `<proxy-error/>`: activating the proxy failed.
    pub proxy_error: bool,
    /// Other children, kept as they came.
    pub extensions: Vec<Element>,
}

impl Socks5Transport {
    pub(crate) fn decode(mut el: Element) -> Result<Socks5Transport, ParseError> {
        // XEP-0260 schema: 'sid' is required, 'dstaddr' optional, 'mode' defaults to tcp.
        let mut t = Socks5Transport {
            sid: de::req(&mut el, "transport", "sid")?,
            dstaddr: el.take_attr("dstaddr"),
            mode: de::token(&mut el, "transport", "mode", S5bMode::from_wire)?.unwrap_or_default(),
            ..Default::default()
        };
        for mut child in de::child_elements(&mut el) {
            if child.namespace != ns::S5B {
                t.extensions.push(child);
                continue;
            }
            match &*child.name {
                "candidate" => {
                    // XEP-0260 schema: cid, host, jid and priority are required; port is
                    // optional and type defaults to direct.
                    let c = S5bCandidate {
                        cid: de::req(&mut child, "candidate", "cid")?,
                        host: de::req(&mut child, "candidate", "host")?,
                        jid: de::jid(&mut child, "candidate", "jid")?.ok_or(
                            ParseError::MissingAttribute {
                                element: "candidate",
                                attribute: "jid",
                            },
                        )?,
                        port: de::num(&mut child, "candidate", "port")?,
                        priority: de::req_num(&mut child, "candidate", "priority")?,
                        kind: de::token(&mut child, "candidate", "type", CandidateType::from_wire)?
                            .unwrap_or_default(),
                    };
                    t.candidates.push(c);
                }
                "candidate-used" => {
                    let cid = de::req(&mut child, "candidate-used", "cid")?;
                    de::once(&mut t.candidate_used, cid, "transport", "candidate-used")?;
                }
                "activated" => {
                    let cid = de::req(&mut child, "activated", "cid")?;
                    de::once(&mut t.activated, cid, "transport", "activated")?;
                }
                "candidate-error" => t.candidate_error = true,
                "proxy-error" => t.proxy_error = true,
                _ => t.extensions.push(child),
            }
        }
        Ok(t)
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("transport", ns::S5B);
        w.attr("sid", &self.sid);
        w.attr_opt("dstaddr", self.dstaddr.as_deref());
        if self.mode != S5bMode::Tcp {
            w.attr("mode", self.mode.as_str());
        }
        for c in &self.candidates {
            w.start("candidate", ns::S5B);
            w.attr("cid", &c.cid);
            w.attr("host", &c.host);
            w.attr("jid", c.jid.as_str());
            w.attr_num("port", c.port);
            w.attr_num("priority", Some(c.priority));
            w.attr("type", c.kind.as_str());
            w.end();
        }
        if let Some(cid) = &self.candidate_used {
            w.start("candidate-used", ns::S5B);
            w.attr("cid", cid);
            w.end();
        }
        if self.candidate_error {
            w.start("candidate-error", ns::S5B);
            w.end();
        }
        if let Some(cid) = &self.activated {
            w.start("activated", ns::S5B);
            w.attr("cid", cid);
            w.end();
        }
        if self.proxy_error {
            w.start("proxy-error", ns::S5B);
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "transportType", ns::S5B);
        json::put_str(&mut o, "sid", &self.sid);
        json::put_str(&mut o, "mode", self.mode.as_str());
        json::put_opt_str(&mut o, "address", self.dstaddr.as_deref());
        if !self.candidates.is_empty() {
            let cs = self
                .candidates
                .iter()
                .map(|c| {
                    let mut co = Obj::new();
                    json::put_str(&mut co, "cid", &c.cid);
                    json::put_str(&mut co, "host", &c.host);
                    json::put_str(&mut co, "jid", c.jid.as_str());
                    json::put_opt_num(&mut co, "port", c.port);
                    co.insert("priority".into(), Value::from(c.priority));
                    json::put_str(&mut co, "type", c.kind.as_str());
                    Value::Object(co)
                })
                .collect();
            o.insert("candidates".into(), Value::Array(cs));
        }
        json::put_opt_str(&mut o, "candidateUsed", self.candidate_used.as_deref());
        if self.candidate_error {
            o.insert("candidateError".into(), Value::Bool(true));
        }
        json::put_opt_str(&mut o, "activated", self.activated.as_deref());
        if self.proxy_error {
            o.insert("proxyError".into(), Value::Bool(true));
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    pub(crate) fn from_json(o: &Obj) -> Result<Socks5Transport, JsonError> {
        let mut t = Socks5Transport {
            sid: json::req_str(o, "transport", "sid")?.to_owned(),
            dstaddr: json::opt_str(o, "transport", "address")?.map(str::to_owned),
            mode: json::opt_token(o, "transport", "mode", S5bMode::from_wire)?.unwrap_or_default(),
            candidate_used: json::opt_str(o, "transport", "candidateUsed")?.map(str::to_owned),
            candidate_error: json::opt_bool(o, "transport", "candidateError")?.unwrap_or(false),
            activated: json::opt_str(o, "transport", "activated")?.map(str::to_owned),
            proxy_error: json::opt_bool(o, "transport", "proxyError")?.unwrap_or(false),
            extensions: json::get_extensions(o, "transport")?,
            candidates: Vec::new(),
        };
        for c in json::arr(o, "transport", "candidates")? {
            let co = json::as_obj(c, "transport", "candidates")?;
            t.candidates.push(S5bCandidate {
                cid: json::req_str(co, "candidate", "cid")?.to_owned(),
                host: json::req_str(co, "candidate", "host")?.to_owned(),
                jid: json_jid(co, "candidate", "jid")?.ok_or(JsonError::MissingField {
                    object: "candidate",
                    field: "jid",
                })?,
                port: json::opt_num(co, "candidate", "port")?,
                priority: json::req_num(co, "candidate", "priority")?,
                kind: json::opt_token(co, "candidate", "type", CandidateType::from_wire)?
                    .unwrap_or_default(),
            });
        }
        Ok(t)
    }
}
