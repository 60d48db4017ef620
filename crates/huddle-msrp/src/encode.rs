//! Exact serialization of chunks (RFC 4975 §9):
//!
//! ```text
//! msrp-req-or-resp = msrp-request / msrp-response
//! msrp-request  = req-start headers [content-stuff] end-line
//! msrp-response = resp-start headers end-line
//! req-start  = pMSRP SP transact-id SP method CRLF
//! resp-start = pMSRP SP transact-id SP status-code [SP comment] CRLF
//! content-stuff = *(Other-Mime-header CRLF) Content-Type 2CRLF data CRLF
//! end-line = "-------" transact-id continuation-flag CRLF
//! ```

use bytes::{BufMut, BytesMut};

use crate::chunk::{Chunk, StartLine};

const END_DASHES: &[u8] = b"-------";

pub(crate) fn encoded_len(c: &Chunk) -> usize {
    let tid = c.transaction_id.as_bytes().len();
    let start = match &c.start {
        StartLine::Request(m) => 5 + tid + 1 + m.as_str().len() + 2,
        StartLine::Response { comment, .. } => {
            5 + tid + 4 + comment.as_ref().map_or(0, |s| s.len() + 1) + 2
        }
    };
    let headers: usize = c
        .headers()
        .raw_iter()
        .map(|(n, v)| n.len() + 2 + v.len() + 2)
        .sum();
    let body = c.body_len().map_or(0, |b| 2 + b + 2);
    start + headers + body + END_DASHES.len() + tid + 1 + 2
}

pub(crate) fn encode(c: &Chunk, dst: &mut BytesMut) {
    dst.reserve(encoded_len(c));
    let tid = c.transaction_id.as_bytes();
    dst.put_slice(b"MSRP ");
    dst.put_slice(tid);
    dst.put_u8(b' ');
    match &c.start {
        StartLine::Request(m) => dst.put_slice(m.as_str().as_bytes()),
        StartLine::Response { status, comment } => {
            let code = status.as_u16().min(999);
            dst.put_slice(&[
                b'0' + (code / 100) as u8,
                b'0' + (code / 10 % 10) as u8,
                b'0' + (code % 10) as u8,
            ]);
            if let Some(comment) = comment {
                dst.put_u8(b' ');
                dst.put_slice(comment.as_bytes());
            }
        }
    }
    dst.put_slice(b"\r\n");
    for (name, value) in c.headers().raw_iter() {
        dst.put_slice(name);
        dst.put_slice(b": ");
        dst.put_slice(value);
        dst.put_slice(b"\r\n");
    }
    if let Some(body) = c.body() {
        dst.put_slice(b"\r\n");
        dst.put_slice(body);
        dst.put_slice(b"\r\n");
    }
    dst.put_slice(END_DASHES);
    dst.put_slice(tid);
    dst.put_u8(c.flag.as_byte());
    dst.put_slice(b"\r\n");
}
