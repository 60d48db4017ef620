//! Properties: decode(encode(x)) == x, split invariance, builder/splitter consistency.

use bytes::{Bytes, BytesMut};
use huddle_msrp::split::{OutgoingMessage, Progress, Reassembler};
use huddle_msrp::{
    Chunk, ChunkBuilder, Decoder, Flag, KnownHeader, Limits, Method, MsrpUri, StartLine,
    StatusCode, TransactionId,
};
use proptest::prelude::*;

fn tid() -> impl Strategy<Value = TransactionId> {
    "[a-zA-Z0-9][a-zA-Z0-9.+%=-]{3,31}".prop_map(|s| TransactionId::new(&s).unwrap())
}

/// Bodies full of fake end-lines and binary bytes.
fn body(tid: String) -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(b"\r\n-------".to_vec()),
        Just(format!("\r\n-------{tid}").into_bytes()),
        Just(format!("-------{tid}$\r\n").into_bytes()),
        Just(format!("\r\n-------{tid}x\r\n").into_bytes()),
        Just(format!("\r\n-------{tid}0$\r\n").into_bytes()),
        Just(b"\r\n\r\n".to_vec()),
    ];
    proptest::collection::vec(pieces, 0..8).prop_map(|v| v.concat())
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (tid(), any::<bool>(), 0u8..3, any::<bool>(), 0usize..4)
        .prop_flat_map(|(tid, is_req, flag, has_body, extra)| {
            (
                Just((tid.clone(), is_req, flag, has_body, extra)),
                body(tid.as_str().to_owned()),
                100u16..700,
                "[ -~]{0,20}",
            )
        })
        .prop_map(
            |((tid, is_req, flag, has_body, extra), body, code, comment)| {
                let flag = [Flag::End, Flag::More, Flag::Abort][flag as usize];
                let to = "msrp://b.example.com:1234/s1;tcp"
                    .parse::<MsrpUri>()
                    .unwrap();
                let from = "msrp://a.example.com/t2;tcp".parse::<MsrpUri>().unwrap();
                let tid_bytes = tid.clone();
                if is_req {
                    let mut b = ChunkBuilder::request(Method::SEND)
                        .paths(&[to], &[from])
                        .transaction_id(tid)
                        .message_id("m1")
                        .flag(flag);
                    for i in 0..extra {
                        b = b.extension_header(&format!("X-Ext{i}"), &format!("value {i}"));
                    }
                    if has_body {
                        // A body holding this tid's real end-line is illegal (RFC 4975 §7.1)
                        // and the builder refuses it; keep the look-alikes only.
                        let body = if huddle_msrp::chunk::body_contains_end_line(
                            tid_bytes.as_bytes(),
                            &body,
                        ) {
                            Vec::new()
                        } else {
                            body
                        };
                        b = b.data("application/octet-stream", body.clone()).byte_range(
                            huddle_msrp::ByteRange {
                                start: 1,
                                end: (flag == Flag::End).then_some(body.len() as u64),
                                total: None,
                            },
                        );
                    } else {
                        b = b.byte_range(huddle_msrp::ByteRange {
                            start: 1,
                            end: Some(0),
                            total: Some(0),
                        });
                    }
                    b.build().unwrap()
                } else {
                    let comment = comment.trim().to_owned();
                    let mut c = ChunkBuilder::response(
                        StatusCode(code),
                        (!comment.is_empty()).then_some(comment.as_str()),
                    )
                    .paths(&[from], &[to])
                    .transaction_id(tid)
                    .build()
                    .unwrap();
                    c.flag = flag;
                    c
                }
            },
        )
}

fn decode_stream(input: &[u8], cuts: &[usize]) -> Vec<Chunk> {
    let mut d = Decoder::new(Limits {
        max_body_in_memory: 1 << 20,
        ..Limits::default()
    });
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort();
    cuts.push(input.len());
    for c in cuts {
        buf.extend_from_slice(&input[last..c.max(last)]);
        last = c.max(last);
        while let Some(ch) = d.decode(&mut buf).expect("valid stream") {
            out.push(ch);
        }
    }
    assert!(d.decode_eof(&mut buf).unwrap().is_none());
    out
}

proptest! {
    #[test]
    fn decode_encode_roundtrip(chunks in proptest::collection::vec(chunk(), 1..4), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let mut wire = BytesMut::new();
        for c in &chunks {
            c.encode(&mut wire);
            prop_assert_eq!(c.encoded_len(), c.to_bytes().len());
        }
        let whole = decode_stream(&wire, &[]);
        prop_assert_eq!(&whole, &chunks);
        let split = decode_stream(&wire, &cuts);
        prop_assert_eq!(&split, &chunks);
    }

    #[test]
    fn split_then_reassemble(len in 0usize..5000, max in 1usize..700, order_seed in any::<u64>()) {
        let body: Bytes = (0..len).map(|i| (i * 7 % 256) as u8).collect::<Vec<_>>().into();
        let to = "msrp://b/s;tcp".parse::<MsrpUri>().unwrap();
        let from = "msrp://a/t;tcp".parse::<MsrpUri>().unwrap();
        let mut msg = OutgoingMessage::new(&[to], &[from], "application/octet-stream", body.clone());
        let mut chunks = Vec::new();
        while let Some(c) = msg.next_chunk(max).unwrap() {
            prop_assert!(c.body().unwrap().len() <= max);
            // Every chunk decodes as written.
            let mut b = BytesMut::from(&c.to_bytes()[..]);
            prop_assert_eq!(Decoder::default().decode(&mut b).unwrap().unwrap(), c.clone());
            chunks.push(c);
        }
        prop_assert_eq!(chunks.last().unwrap().flag, Flag::End);
        // Deliver in a shuffled order, with one chunk duplicated.
        let mut order: Vec<usize> = (0..chunks.len()).collect();
        let mut s = order_seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        order.insert(0, order[order.len() / 2]);
        let mut r = Reassembler::in_memory(1 << 20);
        let mut done = None;
        for i in order {
            let (p, sink) = r.feed(&chunks[i]).unwrap();
            if let Progress::Complete { total } = p {
                prop_assert_eq!(total, len as u64);
                done = sink;
                break;
            }
        }
        prop_assert_eq!(done.expect("complete").into_bytes(), body);
    }
}

#[test]
fn interrupted_chunk_resumes() {
    let to = "msrp://b/s;tcp".parse::<MsrpUri>().unwrap();
    let from = "msrp://a/t;tcp".parse::<MsrpUri>().unwrap();
    let body = Bytes::from(vec![b'x'; 10_000]);
    let mut msg = OutgoingMessage::new(&[to], &[from], "text/plain", body.clone());
    let mut wire = BytesMut::new();
    {
        let mut s = msg.stream_chunk(8000).unwrap().unwrap();
        wire.extend_from_slice(&s.head());
        wire.extend_from_slice(&s.next_piece(3000).unwrap());
        wire.extend_from_slice(&s.interrupt());
    }
    assert_eq!(msg.sent(), 3000);
    while let Some(c) = msg.next_chunk(4096).unwrap() {
        c.encode(&mut wire);
    }
    let mut d = Decoder::default();
    let mut r = Reassembler::in_memory(1 << 20);
    let mut complete = None;
    let mut n = 0;
    while let Some(c) = d.decode(&mut wire).unwrap() {
        n += 1;
        if n == 1 {
            assert_eq!(c.flag, Flag::More);
            assert_eq!(c.headers().get(KnownHeader::ByteRange), Some("1-*/10000"));
        }
        if let (Progress::Complete { .. }, Some(sink)) = r.feed(&c).unwrap() {
            complete = Some(sink.into_bytes());
        }
    }
    assert_eq!(n, 3);
    assert_eq!(complete.unwrap(), body);
}

#[test]
fn abort_and_gaps() {
    let to = "msrp://b/s;tcp".parse::<MsrpUri>().unwrap();
    let from = "msrp://a/t;tcp".parse::<MsrpUri>().unwrap();
    let mut msg = OutgoingMessage::new(&[to], &[from], "text/plain", Bytes::from(vec![1u8; 300]));
    let c1 = msg.next_chunk(100).unwrap().unwrap();
    let _c2 = msg.next_chunk(100).unwrap().unwrap();
    let c3 = msg.next_chunk(100).unwrap().unwrap();
    let mut r = Reassembler::in_memory(1 << 20);
    r.feed(&c1).unwrap();
    assert!(matches!(
        r.feed(&c3).unwrap().0,
        Progress::Partial {
            received: 200,
            total: Some(300)
        }
    ));
    assert_eq!(r.get(msg.message_id()).unwrap().gaps(), vec![(100, 200)]);
    let abort = msg.abort_chunk().unwrap();
    assert_eq!(abort.flag, Flag::Abort);
    assert!(matches!(
        r.feed(&abort).unwrap().0,
        Progress::Aborted { received: 200 }
    ));
    assert_eq!(r.in_progress(), 0);
    // The in-memory bound is enforced (→ 413).
    let mut small = Reassembler::in_memory(50);
    let e = small.feed(&c1).unwrap_err();
    assert_eq!(e.status(), StatusCode::STOP_SENDING);
    let _ = StartLine::Request(Method::SEND);
}

/// What a stream decodes to: chunks, and errors as (kind, fatal).
type Outcomes = Vec<Result<Chunk, (String, bool)>>;

/// Every outcome of decoding `pieces` in order: chunks, and errors as (kind, fatal),
/// up to the first fatal error.
fn outcomes(pieces: &[&[u8]], limits: Limits) -> Outcomes {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        buf.extend_from_slice(p);
        loop {
            let r = if i + 1 == pieces.len() {
                d.decode_eof(&mut buf)
            } else {
                d.decode(&mut buf)
            };
            match r {
                Ok(Some(c)) => out.push(Ok(c)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err((format!("{:?}", e.kind()), e.is_fatal())));
                    if e.is_fatal() {
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// `wire` decoded whole and one byte at a time, with small limits or the defaults.
fn whole_and_bytewise(wire: &[u8], small: bool) -> (Outcomes, Outcomes) {
    let limits = if small {
        Limits {
            max_head_bytes: 200,
            max_headers: 4,
            max_body_in_memory: 16,
        }
    } else {
        Limits::default()
    };
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    (outcomes(&[wire], limits), outcomes(&bytes, limits))
}

/// Bytes that change how a head line reads.
fn mutation_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        Just(b'\t'),
        Just(b'\r'),
        Just(b'\n'),
        Just(b':'),
        Just(b' '),
        Just(b'-'),
        Just(b'*'),
        Just(b'0'),
        Just(b'a'),
        Just(b'T'),
        Just(0x7f),
        Just(0xc3),
        Just(0x00),
    ]
}

proptest! {
    /// The decoder reads a whole frame in one pass when it can (a fast path for
    /// plain-text heads) and line by line otherwise: both must agree on every valid
    /// and damaged stream, chunk for chunk and error for error.
    #[test]
    fn whole_and_bytewise_agree_on_damaged_streams(
        chunks in proptest::collection::vec(chunk(), 1..3),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), mutation_byte()), 0..4),
        small in any::<bool>(),
    ) {
        let mut wire = BytesMut::new();
        for c in &chunks {
            c.encode(&mut wire);
        }
        let mut wire = wire.to_vec();
        for (at, b) in edits {
            let i = at.index(wire.len());
            wire[i] = b;
        }
        let (whole, bytewise) = whole_and_bytewise(&wire, small);
        prop_assert_eq!(whole, bytewise);
    }
}

proptest! {
    /// The fast path remembers the header lines of the frames it read and takes the
    /// same bytes at the same places as the same fields. Streams of near-copies of one
    /// frame (a head byte changed, inserted or removed here and there, so that lines
    /// repeat, move, change and break) must read as the line-by-line path reads them.
    #[test]
    fn repeated_header_lines_read_like_new_ones(
        c in chunk(),
        copies in proptest::collection::vec(
            proptest::collection::vec((any::<prop::sample::Index>(), mutation_byte(), 0u8..3), 0..3),
            2..6,
        ),
        small in any::<bool>(),
    ) {
        let mut frame = BytesMut::new();
        c.encode(&mut frame);
        let head_len = frame
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(frame.len(), |p| p + 4);
        let mut wire = Vec::new();
        for edits in copies {
            let mut f = frame.to_vec();
            for (at, b, op) in edits {
                let i = at.index(head_len.min(f.len()));
                match op {
                    0 => f[i] = b,
                    1 => f.insert(i, b),
                    _ => {
                        f.remove(i);
                    }
                }
            }
            wire.extend_from_slice(&f);
        }
        let (whole, bytewise) = whole_and_bytewise(&wire, small);
        prop_assert_eq!(whole, bytewise);
    }
}
