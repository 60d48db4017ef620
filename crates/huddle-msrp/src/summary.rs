//! A stable JSON description of a decoded frame (feature `summary`): what
//! `cargo xtask msrp decode` prints and what the vector files store as the expected
//! parse.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chunk::{Chunk, StartLine};

/// One frame, described field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameSummary {
    /// `"request"` or `"response"`.
    pub kind: &'static str,
    /// The method of a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The status code of a response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The comment of a response (`null` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<Option<String>>,
    /// The transaction id.
    pub tid: String,
    /// Every header as `[name, value]`, in wire order.
    pub headers: Vec<(String, String)>,
    /// The body length, `null` when the frame has no body.
    pub body_len: Option<usize>,
    /// The SHA-256 of the body in lower-case hex, `null` when the frame has no body.
    pub body_sha256: Option<String>,
    /// The continuation flag: `"$"`, `"+"` or `"#"`.
    pub flag: String,
    /// The segment number of a virtual chunk, `null` otherwise.
    pub segment: Option<u32>,
}

impl FrameSummary {
    /// Describes a chunk.
    pub fn of(c: &Chunk) -> Self {
        let (kind, method, status, comment) = match &c.start {
            StartLine::Request(m) => ("request", Some(m.to_string()), None, None),
            StartLine::Response { status, comment } => (
                "response",
                None,
                Some(status.as_u16()),
                Some(comment.clone()),
            ),
        };
        FrameSummary {
            kind,
            method,
            status,
            comment,
            tid: c.transaction_id.to_string(),
            headers: c
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_owned()))
                .collect(),
            body_len: c.body.as_ref().map(|b| b.len()),
            body_sha256: c.body.as_ref().map(|b| {
                Sha256::digest(b)
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect()
            }),
            flag: (c.flag.as_byte() as char).to_string(),
            segment: c.segment,
        }
    }
}
