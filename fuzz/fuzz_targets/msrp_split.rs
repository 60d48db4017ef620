//! Split invariance: decoding a stream in one piece and in the pieces the fuzzer chooses
//! yields the same sequence of chunks and errors (RFC 4975 framing does not depend on how
//! TCP segments the stream).
//!
//! Input: one byte `n`, then `n % 16` piece lengths (one byte each, 0 meaning 1), then the
//! stream; the last piece is whatever remains.
#![no_main]

use bytes::BytesMut;
use huddle_msrp::{Chunk, Decoder, Limits};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    max_head_bytes: 1024,
    max_headers: 16,
    max_body_in_memory: 128,
};

#[derive(Debug, PartialEq)]
enum Event {
    Chunk(Chunk),
    Error { kind: String, fatal: bool },
}

fn decode(pieces: &[&[u8]]) -> Vec<Event> {
    let mut dec = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut stopped = false;
    let n = pieces.len();
    for (i, p) in pieces.iter().enumerate() {
        if stopped {
            break;
        }
        buf.extend_from_slice(p);
        let last = i + 1 == n;
        let mut guard = 0usize;
        loop {
            guard += 1;
            assert!(guard < 1_000_000, "decoder loops");
            let r = if last {
                dec.decode_eof(&mut buf)
            } else {
                dec.decode(&mut buf)
            };
            match r {
                Ok(Some(c)) => out.push(Event::Chunk(c)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Event::Error {
                        kind: format!("{:?}", e.kind()),
                        fatal: e.is_fatal(),
                    });
                    if e.is_fatal() {
                        stopped = true;
                        break;
                    }
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(n % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(cuts);
    let mut pieces = Vec::new();
    let mut at = 0;
    for &s in sizes {
        let len = usize::from(s.max(1)).min(stream.len() - at);
        pieces.push(&stream[at..at + len]);
        at += len;
    }
    pieces.push(&stream[at..]);
    let whole = decode(&[stream]);
    let split = decode(&pieces);
    assert_eq!(
        whole,
        split,
        "pieces {:?}",
        pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
});
