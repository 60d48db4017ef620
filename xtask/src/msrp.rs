//! `cargo xtask msrp decode FILE|-`: a debugging aid for captured MSRP byte streams.
//!
//! Prints one JSON line per decoded frame (huddle-msrp's `FrameSummary`) and one typed
//! error line (`{"error": kind, "status": code, "fatal": bool, "offset": N}`) where the
//! stream is bad; after a non-fatal error decoding goes on, after a fatal one it stops.
//! The same lines are the expected parse of the vector files (`<name>.json` beside
//! `<name>.msrp`), so what this prints is what the conformance suite compares.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use bytes::BytesMut;
use huddle_msrp::summary::FrameSummary;
use huddle_msrp::{Chunk, DecodeError, Decoder, Limits};
use serde_json::{Value, json};

/// How much is read from the input at a time (the stream is decoded as it arrives).
const READ_SIZE: usize = 64 * 1024;

/// One line of output: a frame or an error.
#[derive(Debug)]
pub(crate) enum Line {
    /// A decoded frame (or one segment of a large one).
    Frame(Chunk),
    /// Where the stream is bad.
    Error {
        /// The error kind's variant name.
        kind: String,
        /// The status a receiver answers with (400, 413, 501, ...).
        status: u16,
        /// Whether the stream is unusable after it.
        fatal: bool,
        /// Stream offset of the first byte the decoder had not consumed when it reported
        /// the error.
        offset: u64,
    },
}

impl Line {
    /// The line `msrp decode` prints (fields in declaration order).
    pub(crate) fn to_line(&self) -> String {
        match self {
            Line::Frame(c) => {
                serde_json::to_string(&FrameSummary::of(c)).expect("summaries serialize")
            }
            Line::Error {
                kind,
                status,
                fatal,
                offset,
            } => {
                format!(
                    r#"{{"error":{},"status":{status},"fatal":{fatal},"offset":{offset}}}"#,
                    json!(kind)
                )
            }
        }
    }

    /// The JSON value of the line, as stored in vector `.json` files (compared as values,
    /// so key order and spacing do not matter).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Line::Frame(c) => {
                serde_json::to_value(FrameSummary::of(c)).expect("summaries serialize")
            }
            Line::Error {
                kind,
                status,
                fatal,
                offset,
            } => {
                json!({ "error": kind, "status": status, "fatal": fatal, "offset": offset })
            }
        }
    }
}

/// The variant name of an error kind (`BadHeader(..)` -> `BadHeader`), stable across
/// the payloads it carries.
pub(crate) fn kind_name(e: &DecodeError) -> String {
    let debug = format!("{:?}", e.kind());
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}

/// Feeds a byte stream piece by piece into huddle's decoder, collecting [`Line`]s.
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    decoder: Decoder,
    buf: BytesMut,
    consumed: u64,
    stopped: bool,
}

impl StreamDecoder {
    /// A decoder with `limits`.
    pub(crate) fn new(limits: Limits) -> Self {
        StreamDecoder {
            decoder: Decoder::new(limits),
            buf: BytesMut::new(),
            consumed: 0,
            stopped: false,
        }
    }

    /// Whether a fatal error stopped decoding.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped
    }

    /// Appends `data` and decodes every complete frame.
    pub(crate) fn push(&mut self, data: &[u8], out: &mut Vec<Line>) {
        if self.stopped {
            return;
        }
        self.buf.extend_from_slice(data);
        self.drain(false, out);
    }

    /// Signals the end of the stream (tokio-util's `decode_eof`).
    pub(crate) fn finish(&mut self, out: &mut Vec<Line>) {
        if !self.stopped {
            self.drain(true, out);
        }
    }

    fn drain(&mut self, eof: bool, out: &mut Vec<Line>) {
        // A non-fatal error must consume the bad frame; two in a row without progress
        // would loop forever, so that is reported as a broken decoder contract.
        let mut stalled = false;
        loop {
            let before = self.buf.len();
            let offset = self.consumed;
            let r = if eof {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            let used = before - self.buf.len();
            self.consumed += used as u64;
            match r {
                Ok(Some(chunk)) => {
                    stalled = false;
                    out.push(Line::Frame(chunk));
                }
                Ok(None) => return,
                Err(e) => {
                    let fatal = e.is_fatal() || (used == 0 && stalled);
                    out.push(Line::Error {
                        kind: kind_name(&e),
                        status: e.status().0,
                        fatal,
                        offset,
                    });
                    if fatal {
                        self.stopped = true;
                        return;
                    }
                    stalled = used == 0;
                }
            }
        }
    }
}

/// Decodes a whole byte stream (fed in `piece`-sized reads, as from a socket).
pub(crate) fn decode_all(bytes: &[u8], limits: Limits, piece: usize) -> Vec<Line> {
    let mut d = StreamDecoder::new(limits);
    let mut out = Vec::new();
    for p in bytes.chunks(piece.max(1)) {
        d.push(p, &mut out);
    }
    d.finish(&mut out);
    out
}

/// `cargo xtask msrp decode FILE|-`. Returns whether the stream decoded without error.
pub(crate) fn decode_command(path: &str) -> Result<bool> {
    let mut input: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?)
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut d = StreamDecoder::new(Limits::default());
    let mut lines = Vec::new();
    let mut clean = true;
    let mut buf = vec![0u8; READ_SIZE];
    let mut print = |lines: &mut Vec<Line>, w: &mut dyn Write| -> Result<()> {
        for l in lines.drain(..) {
            clean &= matches!(l, Line::Frame(_));
            writeln!(w, "{}", l.to_line())?;
        }
        Ok(())
    };
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("reading {path}"))?;
        if n == 0 {
            d.finish(&mut lines);
            print(&mut lines, &mut w)?;
            break;
        }
        d.push(&buf[..n], &mut lines);
        print(&mut lines, &mut w)?;
        if d.stopped() {
            break;
        }
    }
    w.flush()?;
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

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
