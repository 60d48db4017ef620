//! Suite `kamailio-transcript`: every frame Kamailio 5.6 (a real RFC 4976 relay) and its
//! clients exchanged, from `shared/conformance/kamailio/relay-transcript.txt`, decodes to
//! exactly one frame with the start line's tid, method or status, no bytes left over, and
//! re-encodes byte-identical; the frames also decode as one pipelined stream.
//!
//! The transcript holds each frame as a Python bytes literal `b'...'` on the line after
//! `--- WHO SENDS|RECEIVES ... (N bytes):`.

use bytes::BytesMut;
use huddle_msrp::{Decoder, Limits};

use super::{Ctx, SuiteResult};
use crate::msrp::{Line, decode_all};

/// The transcript, relative to the shared directory.
pub(crate) const TRANSCRIPT: &str = "conformance/kamailio/relay-transcript.txt";

/// One frame of the transcript.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The `--- ...` line that announces it.
    pub(crate) label: String,
    /// The frame's bytes.
    pub(crate) bytes: Vec<u8>,
}

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let r = SuiteResult::new("kamailio-transcript");
    let path = ctx.shared.join(TRANSCRIPT);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            return r.could_not_run(format!(
                "cannot read {} ({e}); set HUDDLE_SHARED to the shared/ directory",
                path.display()
            ));
        }
    };
    let frames = match parse_transcript(&text) {
        Ok(f) => f,
        Err(e) => return r.could_not_run(format!("cannot parse {}: {e}", path.display())),
    };
    check_frames(r, &frames)
}

fn check_frames(mut r: SuiteResult, frames: &[Frame]) -> SuiteResult {
    if frames.is_empty() {
        r.note("the transcript holds no frames");
        return r;
    }
    for f in frames {
        r.case(&f.label, check_one(&f.bytes));
    }
    // All frames back to back, fed in 7-byte reads: the same chunks, in order.
    let stream: Vec<u8> = frames
        .iter()
        .flat_map(|f| f.bytes.iter().copied())
        .collect();
    let lines = decode_all(&stream, Limits::default(), 7);
    let outcome = (|| {
        if lines.len() != frames.len() {
            return Err(format!("{} lines for {} frames", lines.len(), frames.len()));
        }
        for (l, f) in lines.iter().zip(frames) {
            match l {
                Line::Frame(c) if c.to_bytes()[..] == f.bytes[..] => {}
                Line::Frame(c) => {
                    return Err(format!(
                        "{}: tid {} re-encodes differently",
                        f.label, c.transaction_id
                    ));
                }
                Line::Error { .. } => return Err(format!("{}: {}", f.label, l.to_json())),
            }
        }
        Ok(())
    })();
    r.case("all frames as one pipelined stream", outcome);
    r
}

/// Decodes one frame on its own and checks it against its own start line.
fn check_one(bytes: &[u8]) -> Result<(), String> {
    let first = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| String::from_utf8_lossy(&bytes[..i]).into_owned())
        .ok_or("no start line")?;
    let parts: Vec<&str> = first.splitn(4, ' ').collect();
    if parts.len() < 3 || parts[0] != "MSRP" {
        return Err(format!("not an MSRP start line: {first:?}"));
    }
    let (tid, what) = (parts[1], parts[2]);

    let mut dec = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(bytes);
    let chunk = match dec.decode(&mut buf) {
        Ok(Some(c)) => c,
        Ok(None) => return Err("incomplete: the decoder wants more bytes".into()),
        Err(e) => {
            return Err(format!(
                "decode error {} (status {})",
                crate::msrp::kind_name(&e),
                e.status().0
            ));
        }
    };
    if !buf.is_empty() {
        return Err(format!("{} bytes left over after the frame", buf.len()));
    }
    match dec.decode_eof(&mut buf) {
        Ok(None) => {}
        other => return Err(format!("decode_eof after the frame: {other:?}")),
    }
    if chunk.transaction_id.as_str() != tid {
        return Err(format!("tid {} != {tid}", chunk.transaction_id));
    }
    match (chunk.method(), chunk.status_code()) {
        (Some(m), None) if m.as_str() == what => {}
        (None, Some(s)) if s.to_string() == what => {}
        (m, s) => {
            return Err(format!(
                "start line {first:?} decoded as method {m:?} status {s:?}"
            ));
        }
    }
    if chunk.to_bytes()[..] != bytes[..] {
        return Err("re-encodes differently".into());
    }
    Ok(())
}

/// Extracts the frames of a transcript.
pub(crate) fn parse_transcript(text: &str) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(label) = line.strip_prefix("--- ") else {
            continue;
        };
        let label = label.trim_end_matches(':').to_owned();
        let want = label
            .rsplit_once('(')
            .and_then(|(_, rest)| rest.split_once(" bytes)"))
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .ok_or_else(|| format!("line {}: no byte count in {line:?}", n + 1))?;
        let (n2, lit) = lines
            .next()
            .ok_or_else(|| format!("line {}: no frame after it", n + 1))?;
        let bytes = unescape_bytes_literal(lit).map_err(|e| format!("line {}: {e}", n2 + 1))?;
        if bytes.len() != want {
            return Err(format!(
                "line {}: {} bytes, announced {want}",
                n2 + 1,
                bytes.len()
            ));
        }
        frames.push(Frame { label, bytes });
    }
    Ok(frames)
}

/// Unescapes a Python bytes literal `b'...'` (escapes `\r \n \t \\ \' \" \xNN`).
pub(crate) fn unescape_bytes_literal(lit: &str) -> Result<Vec<u8>, String> {
    let lit = lit.trim();
    let inner = lit
        .strip_prefix("b'")
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| lit.strip_prefix("b\"").and_then(|s| s.strip_suffix('"')))
        .ok_or("not a bytes literal b'...'")?;
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let esc = *b.get(i + 1).ok_or("dangling backslash")?;
        i += 2;
        match esc {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'0' => out.push(0),
            b'\\' | b'\'' | b'"' => out.push(esc),
            b'x' => {
                let hex = b.get(i..i + 2).ok_or("short \\x escape")?;
                let hex = std::str::from_utf8(hex).map_err(|_| "bad \\x escape")?;
                out.push(
                    u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x escape {hex:?}"))?,
                );
                i += 2;
            }
            other => return Err(format!("unknown escape \\{}", other as char)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_python_bytes_literals() {
        assert_eq!(
            unescape_bytes_literal(r"b'a\r\n\\\'\x00\xffz'").unwrap(),
            b"a\r\n\\'\x00\xffz".to_vec()
        );
        assert!(unescape_bytes_literal(r"b'\q'").is_err());
        assert!(unescape_bytes_literal(r"'abc'").is_err());
    }

    #[test]
    fn parses_frames_and_checks_their_byte_counts() {
        let text = "===== x\n--- a SENDS (4 bytes):\nb'ab\\r\\n'\nnoise\n--- b RECEIVES (1 bytes):\nb'\\x41'\n";
        let f = parse_transcript(text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0],
            Frame {
                label: "a SENDS (4 bytes)".into(),
                bytes: b"ab\r\n".to_vec()
            }
        );
        assert_eq!(f[1].bytes, b"A");
        assert!(parse_transcript("--- a SENDS (5 bytes):\nb'ab'\n").is_err());
    }

    #[test]
    fn the_real_transcript_parses() {
        // shared/ sits beside the repository (CI clones it there) or at $HUDDLE_SHARED.
        let path = crate::util::shared_dir(&crate::workspace_root()).join(TRANSCRIPT);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let frames = parse_transcript(&text).unwrap();
        assert_eq!(frames.len(), 14);
        assert!(frames.iter().all(|f| f.bytes.starts_with(b"MSRP ")));
    }
}
