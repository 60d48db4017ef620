//! `cargo xtask msrp decode FILE|-`: a debugging aid for captured MSRP byte streams.
//!
//! Prints one JSON line per decoded frame (huddle-msrp's `FrameSummary`) and one typed
//! error line (`{"error": kind, "status": code, "fatal": bool, "offset": N}`) where the
//! stream is bad; after a non-fatal error decoding goes on, after a fatal one it stops.
//! The same lines are the expected parse of the vector files (`<name>.json` beside
//! `<name>.msrp`), so what this prints is what the conformance suite compares.

use std::io::{Read, Write};

use anyhow::{Context, Result};

pub(crate) use huddle_msrp::summary::{SummaryLine as Line, kind_name, summarize as decode_all};

/// `cargo xtask msrp decode FILE|-`. Returns whether the stream decoded without error.
pub(crate) fn decode_command(path: &str) -> Result<bool> {
    let mut input: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?)
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let clean = huddle_msrp::summary::write_lines(&mut input, &mut w)
        .with_context(|| format!("decoding {path}"))?;
    w.flush()?;
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_msrp::Limits;
    use serde_json::Value;

    const SEND: &[u8] = b"MSRP abcd SEND\r\nTo-Path: msrp://a.example.com:1/x;tcp\r\nFrom-Path: msrp://b.example.com:2/y;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd$\r\n";

    #[test]
    fn frames_then_a_fatal_error_with_its_offset() {
        let mut stream = SEND.to_vec();
        stream.extend_from_slice(SEND);
        stream.extend_from_slice(b"garbage\r\n");
        for piece in [1, 7, stream.len()] {
            let lines = decode_all(&stream, Limits::default(), piece);
            assert_eq!(lines.len(), 3, "{lines:?}");
            assert!(matches!(&lines[0], Line::Frame(c) if c.to_bytes()[..] == *SEND));
            assert!(matches!(&lines[1], Line::Frame(_)));
            let err = lines[2].to_json();
            assert_eq!(err["fatal"], true);
            assert_eq!(err["status"], 400);
            assert_eq!(err["offset"], 2 * SEND.len());
            assert!(
                err["error"]
                    .as_str()
                    .is_some_and(|k| !k.is_empty() && !k.contains('('))
            );
        }
    }

    #[test]
    fn the_printed_line_and_the_json_value_agree() {
        let lines = decode_all(SEND, Limits::default(), SEND.len());
        let printed: Value = serde_json::from_str(&lines[0].to_line()).unwrap();
        assert_eq!(printed, lines[0].to_json());
        assert_eq!(printed["tid"], "abcd");
        assert_eq!(printed["body_len"], 2);
        let e = Line::Error {
            kind: "BadStartLine".into(),
            status: 400,
            fatal: true,
            offset: 9,
        };
        let printed: Value = serde_json::from_str(&e.to_line()).unwrap();
        assert_eq!(printed, e.to_json());
    }

    #[test]
    fn a_truncated_stream_ends_in_an_error() {
        let lines = decode_all(&SEND[..SEND.len() - 3], Limits::default(), 5);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].to_json()["fatal"], true);
    }
}
