//! A stable JSON description of a decoded frame (feature `summary`): what
//! `cargo xtask msrp decode` prints and what the vector files store as the expected
//! parse, and the loop that turns a byte stream into those lines ([`StreamSummarizer`],
//! [`summarize`], [`write_lines`]), shared by `cargo xtask msrp decode` and
//! `huddle msrp decode`.

use std::io::{self, Read, Write};

use bytes::BytesMut;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chunk::{Chunk, StartLine};
use crate::{DecodeError, Decoder, Limits};

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
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_owned()))
                .collect(),
            body_len: c.body_len(),
            body_sha256: c.body().map(|b| {
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

/// One line of `msrp decode` output: a frame or an error.
#[derive(Debug)]
pub enum SummaryLine {
    /// A decoded frame (or one segment of a large one).
    Frame(Chunk),
    /// Where the stream is bad.
    Error {
        /// The error kind's variant name (see [`kind_name`]).
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

impl SummaryLine {
    /// The line `msrp decode` prints: a frame's [`FrameSummary`], or
    /// `{"error": kind, "status": code, "fatal": bool, "offset": N}` (fields in that order).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("summaries serialize")
    }

    /// The JSON value of the line, as stored in vector `.json` files (compared as values,
    /// so key order and spacing do not matter).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("summaries serialize")
    }
}

/// The error line's fields, in printed order.
#[derive(Serialize)]
struct ErrorLine<'a> {
    error: &'a str,
    status: u16,
    fatal: bool,
    offset: u64,
}

impl Serialize for SummaryLine {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SummaryLine::Frame(c) => FrameSummary::of(c).serialize(s),
            SummaryLine::Error {
                kind,
                status,
                fatal,
                offset,
            } => ErrorLine {
                error: kind,
                status: *status,
                fatal: *fatal,
                offset: *offset,
            }
            .serialize(s),
        }
    }
}

/// The variant name of an error kind (`BadHeader(..)` -> `BadHeader`), stable across
/// the payloads it carries.
pub fn kind_name(e: &DecodeError) -> String {
    let debug = format!("{:?}", e.kind());
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}

/// Feeds a byte stream piece by piece into the [`Decoder`], collecting [`SummaryLine`]s.
/// After a non-fatal error decoding goes on; after a fatal one it stops.
#[derive(Debug)]
pub struct StreamSummarizer {
    decoder: Decoder,
    buf: BytesMut,
    consumed: u64,
    stopped: bool,
}

impl StreamSummarizer {
    /// A summarizer whose decoder has `limits`.
    pub fn new(limits: Limits) -> Self {
        StreamSummarizer {
            decoder: Decoder::new(limits),
            buf: BytesMut::new(),
            consumed: 0,
            stopped: false,
        }
    }

    /// Whether a fatal error stopped decoding.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Appends `data` and decodes every complete frame.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<SummaryLine>) {
        if self.stopped {
            return;
        }
        self.buf.extend_from_slice(data);
        self.drain(false, out);
    }

    /// Signals the end of the stream (tokio-util's `decode_eof`).
    pub fn finish(&mut self, out: &mut Vec<SummaryLine>) {
        if !self.stopped {
            self.drain(true, out);
        }
    }

    fn drain(&mut self, eof: bool, out: &mut Vec<SummaryLine>) {
        // A non-fatal error must consume the bad frame; two in a row without progress
        // would loop forever, so that is reported as fatal.
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
                    out.push(SummaryLine::Frame(chunk));
                }
                Ok(None) => return,
                Err(e) => {
                    let fatal = e.is_fatal() || (used == 0 && stalled);
                    out.push(SummaryLine::Error {
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

/// Decodes a whole byte stream fed in `piece`-sized reads (as from a socket).
pub fn summarize(bytes: &[u8], limits: Limits, piece: usize) -> Vec<SummaryLine> {
    let mut d = StreamSummarizer::new(limits);
    let mut out = Vec::new();
    for p in bytes.chunks(piece.max(1)) {
        d.push(p, &mut out);
    }
    d.finish(&mut out);
    out
}

/// Reads `input` to its end (or to a fatal error), writing one line per frame or error to
/// `out`, as `msrp decode` prints it. Returns whether the stream decoded without error.
///
/// # Errors
/// What reading `input` or writing `out` fails with.
pub fn write_lines(input: &mut dyn Read, out: &mut dyn Write) -> io::Result<bool> {
    let mut d = StreamSummarizer::new(Limits::default());
    let mut lines = Vec::new();
    let mut clean = true;
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            d.finish(&mut lines);
        } else {
            d.push(&buf[..n], &mut lines);
        }
        for l in lines.drain(..) {
            clean &= matches!(l, SummaryLine::Frame(_));
            writeln!(out, "{}", l.to_line())?;
        }
        if n == 0 || d.stopped() {
            return Ok(clean);
        }
    }
}

/// How much [`write_lines`] reads at a time (the stream is decoded as it arrives).
const READ_SIZE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const SEND: &[u8] = b"MSRP abcd SEND\r\nTo-Path: msrp://a.example.com:1/x;tcp\r\nFrom-Path: msrp://b.example.com:2/y;tcp\r\nMessage-ID: m1\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd$\r\n";

    #[test]
    fn frames_then_a_fatal_error_with_its_offset() {
        let mut stream = SEND.to_vec();
        stream.extend_from_slice(SEND);
        stream.extend_from_slice(b"garbage\r\n");
        for piece in [1, 7, stream.len()] {
            let lines = summarize(&stream, Limits::default(), piece);
            assert_eq!(lines.len(), 3, "{lines:?}");
            assert!(matches!(&lines[0], SummaryLine::Frame(c) if c.to_bytes()[..] == *SEND));
            assert!(matches!(&lines[1], SummaryLine::Frame(_)));
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
        let lines = summarize(SEND, Limits::default(), SEND.len());
        let printed: Value = serde_json::from_str(&lines[0].to_line()).unwrap();
        assert_eq!(printed, lines[0].to_json());
        assert_eq!(printed["tid"], "abcd");
        assert_eq!(printed["body_len"], 2);
        let e = SummaryLine::Error {
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
        let lines = summarize(&SEND[..SEND.len() - 3], Limits::default(), 5);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].to_json()["fatal"], true);
    }

    #[test]
    fn write_lines_prints_every_line_and_says_whether_the_stream_was_clean() {
        let mut out = Vec::new();
        assert!(write_lines(&mut &SEND[..], &mut out).unwrap());
        let expected = format!("{}\n", summarize(SEND, Limits::default(), 1)[0].to_line());
        assert_eq!(String::from_utf8(out).unwrap(), expected);

        let mut stream = SEND.to_vec();
        stream.extend_from_slice(b"garbage\r\n");
        stream.extend_from_slice(SEND);
        let mut out = Vec::new();
        assert!(!write_lines(&mut &stream[..], &mut out).unwrap());
        let expected: String = summarize(&stream, Limits::default(), stream.len())
            .iter()
            .map(|l| format!("{}\n", l.to_line()))
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        // The fatal error stops decoding: the SEND after it is not printed.
        assert_eq!(expected.lines().count(), 2);
    }
}
