//! XEP-0261 Jingle in-band bytestreams transport (`urn:xmpp:jingle:transports:ibb:1`).

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::json::{self, Obj};
use crate::ns;
use crate::xml::{Element, Writer};

/// Which stanza carries the IBB data (XEP-0047 §2.1 'stanza', default `iq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IbbStanza {
    /// IQ-set data packets, each acknowledged.
    #[default]
    Iq,
    /// Message stanzas, unacknowledged.
    Message,
}

/// The IBB `<transport/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IbbTransport {
    /// Maximum size of a data chunk before base64 (REQUIRED).
    pub block_size: u16,
    /// The IBB session id (REQUIRED).
    pub sid: String,
    /// The data stanza kind.
    pub stanza: IbbStanza,
}

impl IbbTransport {
    pub(crate) fn decode(mut el: Element) -> Result<IbbTransport, ParseError> {
        // XEP-0261 §2 and schema: 'block-size' and 'sid' are REQUIRED, 'stanza' defaults
        // to "iq".
        let block_size = de::req_num(&mut el, "transport", "block-size")?;
        let sid = de::req(&mut el, "transport", "sid")?;
        let stanza = de::token(&mut el, "transport", "stanza", |s| match s {
            "iq" => Some(IbbStanza::Iq),
            "message" => Some(IbbStanza::Message),
            _ => None,
        })?
        .unwrap_or_default();
        Ok(IbbTransport {
            block_size,
            sid,
            stanza,
        })
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("transport", ns::IBB);
        w.attr("sid", &self.sid);
        w.attr_num("block-size", Some(self.block_size));
        if self.stanza == IbbStanza::Message {
            w.attr("stanza", "message");
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "transportType", ns::IBB);
        json::put_str(&mut o, "sid", &self.sid);
        o.insert("blockSize".into(), Value::from(self.block_size));
        // stanza maps 'stanza' to a boolean: acknowledged (iq) or not (message).
        o.insert("ack".into(), Value::Bool(self.stanza == IbbStanza::Iq));
        Value::Object(o)
    }

    pub(crate) fn from_json(o: &Obj) -> Result<IbbTransport, JsonError> {
        Ok(IbbTransport {
            block_size: json::req_num(o, "transport", "blockSize")?,
            sid: json::req_str(o, "transport", "sid")?.to_owned(),
            stanza: match json::opt_bool(o, "transport", "ack")? {
                Some(false) => IbbStanza::Message,
                _ => IbbStanza::Iq,
            },
        })
    }
}
