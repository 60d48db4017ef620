//! Arbitrary bytes through huddle-msrp's decoder with small limits: it never panics,
//! never loops without progress, and never hands out more than the limits allow
//! (a body is at most `max_body_in_memory`, a header block at most `max_head_bytes`).
#![no_main]

use bytes::BytesMut;
use huddle_msrp::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_head_bytes: 512,
    max_headers: 8,
    max_body_in_memory: 64,
};

fuzz_target!(|data: &[u8]| {
    let mut dec = Decoder::new(LIMITS);
    let mut buf = BytesMut::from(data);
    let mut eof = false;
    let mut stalls = 0;
    loop {
        let before = buf.len();
        let r = if eof {
            dec.decode_eof(&mut buf)
        } else {
            dec.decode(&mut buf)
        };
        // Progress: a frame or an error without consuming anything may happen once (the
        // end of a body already delivered), never twice in a row.
        if buf.len() == before {
            stalls += 1;
        } else {
            stalls = 0;
        }
        match r {
            Ok(Some(chunk)) => {
                assert!(
                    stalls < 2,
                    "decoder produced frames without consuming input"
                );
                let body = chunk.body_len().unwrap_or(0);
                assert!(
                    body <= LIMITS.max_body_in_memory,
                    "body of {body} bytes over the limit"
                );
                // A segment ("virtual chunk") carries a Byte-Range rewritten to the bytes it
                // holds, added when the frame had none: one more header, a few more bytes.
                let seg = chunk.segment.is_some();
                let head: usize = chunk
                    .headers()
                    .iter()
                    .map(|(n, v)| n.as_str().len() + v.len())
                    .sum();
                let slack = if seg { 128 } else { 0 };
                assert!(
                    head <= LIMITS.max_head_bytes + slack,
                    "header block of {head} bytes over the limit"
                );
                assert!(chunk.headers().len() <= LIMITS.max_headers + usize::from(seg));
                // Encoding whatever was decoded must not panic either.
                assert_eq!(chunk.to_bytes().len(), chunk.encoded_len());
            }
            Ok(None) if eof => break,
            Ok(None) => eof = true,
            Err(e) => {
                let _ = e.status();
                let _ = e.response();
                if e.is_fatal() {
                    break;
                }
                assert!(stalls < 2, "non-fatal errors without consuming input");
            }
        }
    }
});
