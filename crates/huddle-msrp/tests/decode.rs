//! Decoder behaviour: framing, splits, pipelining, end-line look-alikes, segments.

use bytes::{Bytes, BytesMut};
use huddle_msrp::{
    Chunk, ChunkBuilder, DecodeErrorKind, Decoder, Flag, Headers, KnownHeader, Limits, Method,
    StartLine, StatusCode, parse_path,
};

const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\n\
To-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
From-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
Message-ID: 87652491\r\n\
Byte-Range: 1-25/25\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hey Bob, are you there?\r\n\
-------a786hjs2$\r\n";

const OK: &[u8] = b"MSRP a786hjs2 200 OK\r\n\
To-Path: msrp://atlanta.example.com:7654/jshA7weztas;tcp\r\n\
From-Path: msrp://biloxi.example.com:12763/kjhd37s2s20w2a;tcp\r\n\
-------a786hjs2$\r\n";

/// Decodes everything, feeding the input in the given pieces.
fn decode_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Result<Chunk, DecodeErrorKind>> {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(c)) => out.push(Ok(c)),
                Ok(None) => break,
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e.kind().clone()));
                    if fatal {
                        return out;
                    }
                }
            }
        }
    }
    if let Err(e) = d.decode_eof(&mut buf) {
        out.push(Err(e.kind().clone()));
    }
    out
}

fn decode_all(input: &[u8]) -> Vec<Result<Chunk, DecodeErrorKind>> {
    decode_pieces(&[input], Limits::default())
}

#[test]
fn decodes_a_send_and_its_response() {
    let mut input = SEND.to_vec();
    input.extend_from_slice(OK);
    let out = decode_all(&input);
    assert_eq!(out.len(), 2);
    let send = out[0].as_ref().unwrap();
    assert_eq!(send.method(), Some(&Method::SEND));
    assert_eq!(send.transaction_id.as_str(), "a786hjs2");
    assert_eq!(send.body(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(send.message_id(), Some("87652491"));
    assert_eq!(send.flag, Flag::End);
    assert_eq!(send.to_bytes(), Bytes::from_static(SEND));
    let ok = out[1].as_ref().unwrap();
    assert_eq!(ok.status_code(), Some(StatusCode::OK));
    assert_eq!(ok.comment(), Some("OK"));
    assert_eq!(ok.to_bytes(), Bytes::from_static(OK));
}

#[test]
fn any_split_gives_the_same_chunks() {
    let mut input = SEND.to_vec();
    input.extend_from_slice(OK);
    input.extend_from_slice(SEND);
    let whole = decode_all(&input);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_pieces(&bytes, Limits::default()), whole);
    for cut in 0..input.len() {
        let (a, b) = input.split_at(cut);
        assert_eq!(
            decode_pieces(&[a, b], Limits::default()),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn body_with_end_line_look_alikes() {
    // Other tids, the same tid without the preceding CRLF, the same tid followed by a
    // non-flag, a longer tid sharing the prefix.
    let body = b"x\r\n-------other$\r\nab-------a786hjs2$\r\nzz\r\n-------a786hjs2X\r\n\r\n-------a786hjs22$\r\n\r\n-------a786hjs2$x";
    let frame = format!(
        "MSRP a786hjs2 SEND\r\nTo-Path: msrp://b.example.com/s;tcp\r\nFrom-Path: msrp://a.example.com/t;tcp\r\nMessage-ID: m\r\nByte-Range: 1-{n}/{n}\r\nContent-Type: application/octet-stream\r\n\r\n",
        n = body.len()
    );
    let mut input = frame.into_bytes();
    input.extend_from_slice(body);
    input.extend_from_slice(b"\r\n-------a786hjs2$\r\n");
    let out = decode_all(&input);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].as_ref().unwrap().body(), Some(&body[..]));
    // A real end-line early in the body ends the chunk there (its length comes from the
    // payload, RFC 4975 §7.3.1), and what follows is garbage (fatal).
    let mut early = input.clone();
    let at = early.len() - body.len() - 20;
    early.splice(at..at, b"\r\n-------a786hjs2$\r\n".iter().copied());
    let bad = decode_all(&early);
    assert_eq!(bad[0].as_ref().unwrap().body(), Some(&b""[..]), "{bad:?}");
    assert_eq!(bad[1], Err(DecodeErrorKind::BadStartLine));
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_pieces(&bytes, Limits::default()), out);
}

#[test]
fn large_body_is_delivered_in_segments() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let frame = format!(
        "MSRP tid1 SEND\r\nTo-Path: msrp://b.example.com/s;tcp\r\nFrom-Path: msrp://a.example.com/t;tcp\r\nMessage-ID: m\r\nByte-Range: 1-*/{n}\r\nContent-Type: application/octet-stream\r\n\r\n",
        n = body.len()
    );
    let mut input = frame.into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"\r\n-------tid1$\r\n");
    let limits = Limits {
        max_body_in_memory: 4096,
        ..Limits::default()
    };
    for piece in [1usize, 1000, 5000, input.len()] {
        let pieces: Vec<&[u8]> = input.chunks(piece).collect();
        let out = decode_pieces(&pieces, limits);
        let mut got = Vec::new();
        let mut pos = 1u64;
        for (i, c) in out.iter().enumerate() {
            let c = c.as_ref().unwrap();
            let b = c.body().unwrap();
            assert!(b.len() <= 4096);
            assert_eq!(c.segment, Some(i as u32 + 1));
            let r = c.byte_range().unwrap().unwrap();
            assert_eq!(
                (r.start, r.end, r.total),
                (pos, Some(pos + b.len() as u64 - 1), Some(100_000))
            );
            pos += b.len() as u64;
            let last = i == out.len() - 1;
            assert_eq!(c.flag, if last { Flag::End } else { Flag::More });
            got.extend_from_slice(b);
        }
        assert_eq!(got, body, "piece size {piece}");
    }
}

#[test]
fn one_byte_at_a_time_is_linear() {
    // 1 MiB body fed one byte at a time: the decoder must not rescan (this finishes in
    // well under a second in debug builds only if the work per byte is constant).
    let body = vec![b'a'; 1 << 20];
    let mut input = b"MSRP t123 SEND\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/t;tcp\r\nMessage-ID: m\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"\r\n-------t123$\r\n");
    let mut d = Decoder::new(Limits {
        max_body_in_memory: 2 << 20,
        ..Limits::default()
    });
    let mut buf = BytesMut::with_capacity(input.len());
    let mut out = None;
    let mut calls = 0u64;
    for b in &input {
        buf.extend_from_slice(std::slice::from_ref(b));
        calls += 1;
        if let Some(c) = d.decode(&mut buf).unwrap() {
            out = Some(c);
        }
    }
    assert_eq!(calls as usize, input.len());
    assert_eq!(out.unwrap().body_bytes().unwrap().len(), 1 << 20);
}

#[test]
fn request_without_body_and_extension_method_and_unknown_status() {
    let input = b"MSRP abcd FOO\r\nTo-Path: msrp://b/s;tcp\r\nFrom-Path: msrp://a/t;tcp\r\nX-Thing: yes\r\n-------abcd+\r\n\
MSRP abcd 299\r\nTo-Path: msrp://a/t;tcp\r\nFrom-Path: msrp://b/s;tcp\r\n-------abcd$\r\n";
    let out = decode_all(input);
    let foo = out[0].as_ref().unwrap();
    assert_eq!(foo.method(), Some(&Method::Extension("FOO".into())));
    assert_eq!(
        foo.validate().unwrap_err().status(),
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(foo.headers().get_by_name("x-thing"), Some("yes"));
    assert_eq!(foo.flag, Flag::More);
    assert_eq!(foo.body(), None);
    let r = out[1].as_ref().unwrap();
    assert_eq!(
        r.start,
        StartLine::Response {
            status: StatusCode(299),
            comment: None
        }
    );
    let mut again = foo.to_bytes().to_vec();
    again.extend_from_slice(&r.to_bytes());
    assert_eq!(&again[..], &input[..]);
}

#[test]
fn response_builder_follows_rfc_paths() {
    let out = decode_all(SEND);
    let send = out[0].as_ref().unwrap();
    let resp = send.response(StatusCode::OK, Some("OK")).unwrap();
    assert_eq!(resp.to_bytes(), Bytes::from_static(OK));
    let report = send
        .report(StatusCode::OK, None, send.byte_range().unwrap().unwrap())
        .unwrap();
    assert_eq!(
        report.headers().get(KnownHeader::Status),
        Some("000 200 OK")
    );
    assert_eq!(
        report.headers().get(KnownHeader::ToPath),
        send.headers().get(KnownHeader::FromPath)
    );
    assert!(report.validate().is_ok());
    assert!(
        report.response(StatusCode::OK, None).is_none(),
        "REPORTs are never answered"
    );
}

#[test]
fn typed_access_to_relay_headers() {
    // The Kamailio 401 and 200 from the real transcript.
    let input = b"MSRP 201516889142 401 Unauthorized\r\nTo-Path: msrp://127.0.0.1:49488/alicesess;tcp\r\nFrom-Path: msrp://127.0.0.1:2855;tcp\r\nWWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"awJVcmsCVEaHKatYSqVqfLV88bMVVkjQZ3pq2YA=\", qop=\"auth\"\r\n-------201516889142$\r\n\
MSRP afd06a554b3f 200 OK\r\nTo-Path: msrp://127.0.0.1:49488/alicesess;tcp\r\nFrom-Path: msrp://127.0.0.1:2855;tcp\r\nUse-Path: msrp://127.0.0.1:2855/s25117x1795314758x78199;tcp\r\nExpires: 3600\r\n-------afd06a554b3f$\r\n\
MSRP abcd 423 Interval Out-of-Bounds\r\nTo-Path: msrp://a/t;tcp\r\nFrom-Path: msrp://b;tcp\r\nMin-Expires: 60\r\nMax-Expires: 3600\r\n-------abcd$\r\n";
    let out = decode_all(input);
    let c401 = out[0].as_ref().unwrap();
    let ch = c401.www_authenticate().unwrap().unwrap();
    assert_eq!(ch.get("realm"), Some("127.0.0.1"));
    assert_eq!(ch.get("qop"), Some("auth"));
    let c200 = out[1].as_ref().unwrap();
    assert_eq!(
        c200.use_path().unwrap()[0].session_id(),
        Some("s25117x1795314758x78199")
    );
    assert_eq!(c200.expires().unwrap(), Some(3600));
    let c423 = out[2].as_ref().unwrap();
    assert_eq!(
        (c423.min_expires().unwrap(), c423.max_expires().unwrap()),
        (Some(60), Some(3600))
    );
    assert_eq!(c423.status_code(), Some(StatusCode::INTERVAL_OUT_OF_BOUNDS));
}

/// Found by the `msrp_split` fuzz target: a body without its end-line, larger than the
/// in-memory limit, whose last bytes hold CRs. Where its first segment ends must not
/// depend on how the bytes arrived.
#[test]
fn segment_boundary_does_not_depend_on_arrival() {
    let stream: &[u8] = b"MSRP 49fh AUTH\r\nTo-Path: msrps:/ple.com;tcp\r\nFrom-Path: /intra.exaAUTH\r\nTo-Pt:haa.examp$\r\n\r\n-a\xffMsrps\x00\x00\x00\x01P 4yea.ple.com;tcpps://\xed-Path: msrpt://iOSfhice.example.com.:9892\x00\x00\x00\x00js;tcp\r\n--\x00\x00\r--49fh$\r\nexample.$!\x02\x00\x00\x00\x00\x00\x00\r\n$!\x02\x00\x00\x00\x00\x00\x00\r\n";
    let limits = Limits {
        max_head_bytes: 1024,
        max_headers: 16,
        max_body_in_memory: 128,
    };
    let run = |sizes: &[usize]| {
        let mut d = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        for (i, &n) in sizes.iter().enumerate() {
            buf.extend_from_slice(&stream[at..at + n]);
            at += n;
            loop {
                let r = if i + 1 == sizes.len() {
                    d.decode_eof(&mut buf)
                } else {
                    d.decode(&mut buf)
                };
                match r {
                    Ok(Some(c)) => out.push(Ok(c)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(format!("{:?}", e.kind())));
                        if e.is_fatal() {
                            return out;
                        }
                    }
                }
            }
        }
        out
    };
    let whole = run(&[stream.len()]);
    assert_eq!(run(&[53, 105, 67]), whole);
    assert!(
        matches!(whole[0], Ok(ref c) if c.segment == Some(1)),
        "{whole:?}"
    );
}

#[test]
fn a_decoded_body_survives_changes_to_the_headers() {
    let to = parse_path("msrp://b.example:1/s;tcp").unwrap();
    let from = parse_path("msrp://a.example:1/s;tcp").unwrap();
    let built = ChunkBuilder::send(&to, &from)
        .message_id("m1")
        .data("text/plain", &b"hello"[..])
        .build()
        .unwrap();
    let mut buf = BytesMut::from(&built.to_bytes()[..]);
    let mut c = Decoder::default().decode(&mut buf).unwrap().unwrap();
    // Equal however the bytes are held (the decoded body shares the frame's bytes).
    assert_eq!(c, built);
    assert_eq!(c.body_bytes().as_deref(), Some(&b"hello"[..]));
    *c.headers_mut() = Headers::new();
    assert!(c.headers().is_empty());
    assert_eq!(c.body(), Some(&b"hello"[..]));
    assert_eq!(c.take_body().as_deref(), Some(&b"hello"[..]));
    assert_eq!((c.body(), c.body_len()), (None, None));
    c.set_body(Some(Bytes::from_static(b"")));
    assert_eq!((c.body(), c.body_len()), (Some(&b""[..]), Some(0)));
}

/// A frame of header lines without a body, tid `t1234567`.
fn frame_of(lines: &[&str]) -> Vec<u8> {
    let mut f = b"MSRP t1234567 SEND\r\n".to_vec();
    for l in lines {
        f.extend_from_slice(l.as_bytes());
        f.extend_from_slice(b"\r\n");
    }
    f.extend_from_slice(b"-------t1234567$\r\n");
    f
}

const TO: &str = "To-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp";
const FROM: &str = "From-Path: msrp://alice.example.com:7777/iau39soe2843z;tcp";

/// A frame of To-Path, From-Path, `third`, `fourth` and a Content-Type line.
fn frame_with(third: &str, fourth: &str) -> Vec<u8> {
    frame_of(&[TO, FROM, third, fourth, "Content-Type: text/plain"])
}

/// Decoding `frames` one after the other with one decoder (whole frames: the fast
/// path, which remembers header lines from frame to frame) reads each as a fresh
/// decoder fed one byte at a time does (the line-by-line path).
fn reads_like_fresh_frames(frames: &[Vec<u8>]) {
    let expected: Vec<_> = frames
        .iter()
        .flat_map(|f| {
            let bytes: Vec<&[u8]> = f.chunks(1).collect();
            decode_pieces(&bytes, Limits::default())
        })
        .collect();
    assert_eq!(decode_all(&frames.concat()), expected);
}

/// A line that comes back shorter must make the decoder forget the remembered lines
/// after it: the byte the longer line left behind must not let a later frame skip a
/// line of its own.
#[test]
fn remembered_lines_after_a_line_that_shrank_are_forgotten() {
    let long = frame_with("Message-ID: 12345678", "Byte-Range: 1-*/9");
    // Its Message-ID line one byte shorter, then an extension header: the fast path
    // reads (and remembers) the first three lines only.
    let short = frame_with("Message-ID: 1234567", "X-Foo: bar");
    // The short Message-ID line, then the byte the long one ended with, a bare LF line
    // (which the spec does not allow), then the long frame's last two lines.
    let mut tricky = frame_with("Message-ID: 1234567", "Byte-Range: 1-*/9");
    let at = tricky
        .windows(21)
        .position(|w| w == b"Message-ID: 1234567\r\n")
        .expect("line")
        + 21;
    tricky.insert(at, b'\n');
    reads_like_fresh_frames(&[long, short, tricky]);
}

/// A header line the decoder does not remember (a second Byte-Range that does not
/// parse) must not let it remember the next line at another place than where the
/// remembered line before it ends.
#[test]
fn lines_are_remembered_only_next_to_the_line_before() {
    let first = frame_with("Byte-Range: 1-*/9", "Byte-Range: 1-*/7");
    let second = frame_with("Byte-Range: 1-*/9", "Byte-Range: 1-*/7xyz");
    // The first frame's lines up to its second Byte-Range, then the bytes of its
    // Content-Type line that the second frame's longer Byte-Range covered, then the
    // second frame's Content-Type line.
    let mut tricky = frame_of(&[
        TO,
        FROM,
        "Byte-Range: 1-*/9",
        "Byte-Range: 1-*/7",
        "Con",
        "Content-Type: text/plain",
    ]);
    // `Con\r\n` is 5 bytes; the second frame's Byte-Range is 3 bytes longer: keep the
    // three bytes `Con` and drop its CRLF so the bytes line up with what was written.
    let at = tricky
        .windows(5)
        .position(|w| w == b"Con\r\n")
        .expect("line")
        + 3;
    tricky.drain(at..at + 2);
    reads_like_fresh_frames(&[first, second, tricky]);
}

/// A Byte-Range that does not parse is let through when an earlier one did (only the
/// first counts), but the decoder must not remember it as a line that needs no check:
/// in the next frame it may be the first.
#[test]
fn a_byte_range_that_does_not_parse_is_checked_again() {
    let checked = frame_with("Byte-Range: 1-*/9", "Byte-Range: 1-x/9");
    // Same places: a Message-ID line as long as the first Byte-Range line.
    let first = frame_with("Message-ID: 12345", "Byte-Range: 1-x/9");
    reads_like_fresh_frames(&[checked, first]);
}

/// A line that repeats a remembered line's name, colon and space is that header, but
/// only when its value does not start with another blank (which the line-by-line path
/// skips).
#[test]
fn a_repeated_name_followed_by_a_second_blank_is_read_as_new() {
    let one = frame_of(&[TO, FROM, "Message-ID: 12345", "Byte-Range: 1-*/9"]);
    let two = frame_of(&[TO, FROM, "Message-ID:  2345", "Byte-Range: 1-*/9"]);
    let three = frame_of(&[TO, FROM, "Message-ID: 1x345", "Byte-Range: 1-*/9"]);
    reads_like_fresh_frames(&[one.clone(), two, one, three]);
}

/// A line the decoder reads but does not remember (a later Byte-Range that does not
/// parse) takes the table entry of the remembered line with its number, so that line
/// must be forgotten: a frame repeating the remembered bytes must not get the other
/// line's field.
#[test]
fn a_line_read_but_not_remembered_makes_the_decoder_forget_its_place() {
    let valid = frame_with("Byte-Range: 1-*/9", "Byte-Range: 1-*/7");
    let longer = frame_with("Byte-Range: 1-*/9", "Byte-Range: 1-x/99");
    reads_like_fresh_frames(&[valid.clone(), longer, valid]);
}

/// A line as long as the remembered one at its place but with another name replaces
/// it (only a line with the remembered name keeps the remembered bytes).
#[test]
fn a_line_of_the_same_length_with_another_name_replaces_the_remembered_one() {
    let a = frame_of(&[TO, FROM, "Message-ID: 12345", "Byte-Range: 1-*/9"]);
    let b = frame_of(&[TO, FROM, "Content-ID: 12345", "Byte-Range: 1-*/9"]);
    reads_like_fresh_frames(&[a.clone(), b.clone(), a, b]);
}

/// A body of exactly twice the in-memory limit: the second half is the last chunk
/// (flag `$`), not a `+` segment followed by an empty last one, however the bytes
/// arrive (found by the `msrp_split` fuzz target: the decoder sent a segment as soon
/// as it held the limit, before it could see whether the end-line came next).
#[test]
fn a_body_of_a_multiple_of_the_limit_ends_with_a_full_last_chunk() {
    let limits = Limits {
        max_head_bytes: 1024,
        max_headers: 16,
        max_body_in_memory: 16,
    };
    let mut frame = b"MSRP t1234567 SEND\r\n".to_vec();
    frame.extend_from_slice(format!("{TO}\r\n{FROM}\r\nByte-Range: 1-32/32\r\n\r\n").as_bytes());
    frame.extend_from_slice(&[b'x'; 32]);
    frame.extend_from_slice(b"\r\n-------t1234567$\r\n");
    let whole = decode_pieces(&[&frame], limits);
    let bytes: Vec<&[u8]> = frame.chunks(1).collect();
    assert_eq!(decode_pieces(&bytes, limits), whole);
    // Up to the end of the body, then the end-line.
    let body_end = frame.len() - 20;
    assert_eq!(
        decode_pieces(&[&frame[..body_end], &frame[body_end..]], limits),
        whole
    );
    let chunks: Vec<(Option<u32>, Flag, usize)> = whole
        .iter()
        .map(|c| {
            let c = c.as_ref().expect("chunk");
            (c.segment, c.flag, c.body_len().unwrap_or(0))
        })
        .collect();
    assert_eq!(
        chunks,
        [(Some(1), Flag::More, 16), (Some(2), Flag::End, 16)]
    );
}
