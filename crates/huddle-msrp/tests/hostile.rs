//! Hostile input: each case gives its typed error, and the decoder's memory stays
//! within its limits (asserted through what the decoder lets the buffer hold and what
//! it hands out).

use bytes::BytesMut;
use huddle_msrp::{DecodeErrorKind, Decoder, KnownHeader, Limits, StatusCode};

const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_headers: 32,
    max_body_in_memory: 8192,
};

/// Feeds `input` in 64 KiB reads (as a socket would), stopping at the first error.
/// Returns the error and the largest number of bytes the buffer held between reads.
fn feed(input: impl Iterator<Item = u8>) -> (Option<huddle_msrp::DecodeError>, usize, usize) {
    let mut d = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut peak = 0;
    let mut chunks = 0;
    let mut input = input.peekable();
    while input.peek().is_some() {
        buf.extend(input.by_ref().take(65536));
        loop {
            match d.decode(&mut buf) {
                Ok(Some(c)) => {
                    chunks += 1;
                    assert!(c.body_len().is_none_or(|b| b <= LIMITS.max_body_in_memory));
                }
                Ok(None) => break,
                Err(e) => return (Some(e), peak, chunks),
            }
        }
        peak = peak.max(buf.len());
    }
    (None, peak, chunks)
}

#[test]
fn ten_mib_start_line() {
    let input = b"MSRP abcd "
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b'A', 10 << 20));
    let (e, peak, _) = feed(input);
    let e = e.expect("an error");
    assert_eq!(e.kind(), &DecodeErrorKind::HeadTooLarge { limit: 4096 });
    assert!(e.is_fatal());
    assert_eq!(e.status(), StatusCode::STOP_SENDING);
    // The decoder gave up on the first read past the limit.
    assert!(peak <= 65536, "held {peak} bytes");
}

#[test]
fn hundred_thousand_headers() {
    let mut input =
        b"MSRP abcd SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/t;tcp\r\n".to_vec();
    for i in 0..100_000 {
        input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    let (e, peak, _) = feed(input.into_iter());
    let e = e.expect("an error");
    assert!(
        matches!(
            e.kind(),
            DecodeErrorKind::TooManyHeaders { limit: 32 } | DecodeErrorKind::HeadTooLarge { .. }
        ),
        "{e:?}"
    );
    assert!(e.is_fatal());
    assert_eq!(e.status(), StatusCode::STOP_SENDING);
    assert!(peak <= 65536);
}

fn frame(headers: &str, body: Option<&str>, end: &str) -> Vec<u8> {
    let mut f = format!("MSRP abcd SEND\r\n{headers}");
    if let Some(b) = body {
        f.push_str("Content-Type: text/plain\r\n\r\n");
        f.push_str(b);
        f.push_str("\r\n");
    }
    f.push_str(end);
    f.into_bytes()
}

const PATHS: &str = "To-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/t;tcp\r\n";

#[test]
fn byte_range_at_and_past_u64_max() {
    let max = u64::MAX;
    // At u64::MAX: a huge but legal number; the chunk decodes and the reassembler,
    // which places bytes by range, refuses it (413: larger than it will hold).
    let at = frame(
        &format!("{PATHS}Message-ID: m\r\nByte-Range: {max}-{max}/{max}\r\n"),
        Some("hi"),
        "-------abcd$\r\n",
    );
    let mut buf = bytes::BytesMut::from(&at[..]);
    let c = Decoder::new(LIMITS).decode(&mut buf).unwrap().unwrap();
    assert_eq!(c.byte_range().unwrap().unwrap().start, max);
    let e = huddle_msrp::split::Reassembler::in_memory(1 << 20)
        .feed(&c)
        .unwrap_err();
    assert!(
        e.status() == StatusCode::STOP_SENDING || e.status() == StatusCode::BAD_REQUEST,
        "{e:?}"
    );
    // Past u64::MAX: a typed header error, not a wrap.
    for past in [
        "18446744073709551616-*/*",
        "1-18446744073709551616/*",
        "1-2/99999999999999999999999",
    ] {
        let f = frame(
            &format!("{PATHS}Message-ID: m\r\nByte-Range: {past}\r\n"),
            Some("hi"),
            "-------abcd$\r\n",
        );
        let (e, _, _) = feed(f.into_iter());
        let e = e.expect("an error");
        assert!(
            matches!(e.kind(), DecodeErrorKind::BadHeader(_)),
            "{past}: {e:?}"
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(!e.is_fatal());
        // The error carries the frame, so the receiver can answer 400.
        let resp = e.response().expect("a response");
        assert_eq!(resp.status_code(), Some(StatusCode::BAD_REQUEST));
    }
}

#[test]
fn missing_to_path_is_a_recoverable_400() {
    let mut input = frame(
        "From-Path: msrp://a/t;tcp\r\nMessage-ID: m\r\n",
        Some("x"),
        "-------abcd$\r\n",
    );
    input.extend(frame(PATHS, None, "-------abcd$\r\n"));
    let mut d = Decoder::new(LIMITS);
    let mut buf = BytesMut::from(&input[..]);
    let e = d.decode(&mut buf).unwrap_err();
    assert_eq!(
        e.kind(),
        &DecodeErrorKind::MissingHeader(KnownHeader::ToPath)
    );
    assert!(!e.is_fatal());
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    // The next frame decodes.
    assert!(d.decode(&mut buf).unwrap().is_some());
    assert!(buf.is_empty());
}

#[test]
fn wrong_tid_on_the_end_line() {
    let input = frame(PATHS, None, "-------wxyz$\r\n");
    let (e, _, _) = feed(input.into_iter());
    let e = e.expect("an error");
    assert_eq!(e.kind(), &DecodeErrorKind::EndLineMismatch);
    assert!(e.is_fatal());
    assert_eq!(e.transaction_id().map(|t| t.as_str()), Some("abcd"));
}

#[test]
fn garbage_after_a_frame() {
    let mut input = frame(PATHS, None, "-------abcd$\r\n");
    input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (e, _, chunks) = feed(input.into_iter());
    assert_eq!(chunks, 1);
    let e = e.expect("an error");
    assert_eq!(e.kind(), &DecodeErrorKind::BadStartLine);
    assert!(e.is_fatal());
    // Garbage is refused at once, before any line end arrives.
    let mut d = Decoder::default();
    let mut buf = BytesMut::from(&b"HELO"[..]);
    assert_eq!(
        d.decode(&mut buf).unwrap_err().kind(),
        &DecodeErrorKind::BadStartLine
    );
    // And the decoder stays failed.
    let mut buf = BytesMut::from(&frame(PATHS, None, "-------abcd$\r\n")[..]);
    assert!(d.decode(&mut buf).unwrap_err().is_fatal());
}

#[test]
fn slow_partial_frame_holds_only_what_was_sent() {
    // A peer that sends a frame's head and then a body one byte at a time, forever:
    // the decoder never errors, never buffers more than the body limit, and delivers
    // segments as the limit is reached.
    let mut d = Decoder::new(LIMITS);
    let mut buf = BytesMut::from(&frame(&format!("{PATHS}Message-ID: m\r\n"), None, "")[..]);
    buf.truncate(buf.len()); // head without end-line
    buf.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
    let mut segments = 0;
    for _ in 0..100_000 {
        buf.extend_from_slice(b"z");
        if let Some(c) = d.decode(&mut buf).unwrap() {
            segments += 1;
            assert_eq!(c.segment, Some(segments));
        }
        assert!(buf.len() <= LIMITS.max_body_in_memory + 16);
    }
    assert!(segments >= 100_000 / LIMITS.max_body_in_memory as u32 - 1);
    // At end of stream the partial frame is an error.
    assert_eq!(
        d.decode_eof(&mut buf).unwrap_err().kind(),
        &DecodeErrorKind::UnexpectedEof
    );
}

#[test]
fn bare_lf_and_bad_header_lines() {
    let (e, _, _) = feed(b"MSRP abcd SEND\nTo-Path: x\n".iter().copied());
    assert_eq!(e.unwrap().kind(), &DecodeErrorKind::BadLineEnding);
    let f = frame(
        &format!("{PATHS}no colon here\r\n"),
        None,
        "-------abcd$\r\n",
    );
    let (e, _, _) = feed(f.into_iter());
    let e = e.unwrap();
    assert_eq!(e.kind(), &DecodeErrorKind::MalformedHeader);
    assert!(!e.is_fatal());
    let f = frame(
        &format!("{PATHS}X-Bad: a\u{1}b\r\n"),
        None,
        "-------abcd$\r\n",
    );
    let (e, _, _) = feed(f.into_iter());
    assert_eq!(e.unwrap().kind(), &DecodeErrorKind::MalformedHeader);
    // Invalid UTF-8 in a value.
    let mut f = frame(PATHS, None, "").to_vec();
    f.extend_from_slice(b"X-Bad: \xff\xfe\r\n-------abcd$\r\n");
    let (e, _, _) = feed(f.into_iter());
    assert_eq!(e.unwrap().kind(), &DecodeErrorKind::MalformedHeader);
}

#[test]
fn bad_frame_body_is_skipped_in_bounded_memory() {
    // A frame with a bad header and a 1 MiB body: the body is dropped as it arrives,
    // the error comes once the frame ends, and the next frame decodes.
    let mut input = frame(&format!("{PATHS}Byte-Range: x\r\n"), None, "");
    input.extend_from_slice(b"Content-Type: text/plain\r\n\r\n");
    input.extend(std::iter::repeat_n(b'q', 1 << 20));
    input.extend_from_slice(b"\r\n-------abcd$\r\n");
    input.extend(frame(PATHS, None, "-------abcd$\r\n"));
    let mut d = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut results = Vec::new();
    for piece in input.chunks(4096) {
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(c)) => results.push(Ok(c.body_len())),
                Ok(None) => break,
                Err(e) => results.push(Err(e.kind().clone())),
            }
        }
        assert!(buf.len() <= 4096 + 32);
    }
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(matches!(results[0], Err(DecodeErrorKind::BadHeader(_))));
    assert_eq!(results[1], Ok(None));
}

#[test]
fn response_with_a_body_is_refused() {
    let input = b"MSRP abcd 200 OK\r\nTo-Path: msrp://a/t;tcp\r\nFrom-Path: msrp://b/s;tcp\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------abcd$\r\n";
    let (e, _, _) = feed(input.iter().copied());
    assert_eq!(e.unwrap().kind(), &DecodeErrorKind::ResponseWithBody);
}

#[test]
fn lone_cr_inside_a_header_is_not_a_line_break() {
    // Found by the msrp_decode fuzz target: a CR without LF split header lines, let
    // headers slip past max_headers, and ate a byte.
    let input = b"MSRP abcd SEND\r\nTo-Path: msrp://b.example.com:1/x;tcp\r\nFrom-Path: msrp://a.example.com:2/y;tcp\rZX-A: 1\rZX-B: 2\r\nMessage-ID: m\r\n-------abcd$\r\n";
    let mut d = Decoder::new(Limits {
        max_headers: 3,
        ..LIMITS
    });
    let mut buf = BytesMut::from(&input[..]);
    let e = d.decode(&mut buf).unwrap_err();
    assert_eq!(e.kind(), &DecodeErrorKind::MalformedHeader);
    assert!(!e.is_fatal());
    assert!(e.frame().unwrap().headers().len() <= 3);
    assert!(buf.is_empty());
}
