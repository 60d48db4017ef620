//! MSRP chunk decoding: huddle-msrp's `Decoder` side by side with rust-rcs-core 0.3.1's
//! `msrp::msrp_parser::MsrpParser`, and a `memchr::memmem` scan of the same bytes for the
//! end-line as the physical reference.
//!
//! The input is the one shape rust-rcs-core handles: a complete SEND chunk whose
//! Byte-Range is `1-*/T` with a body shorter than `T` (so flag `+`), fed to it with one
//! `feed` and one `produce` per chunk. It rejects other shapes (the RFC 4975 example
//! itself) and loops forever on partial input, so it is never called any other way.
//!
//! Each side is measured the way it is used: rust-rcs-core copies every chunk into its
//! own buffer (`feed`) and out again (`produce`); huddle decodes in place from the read
//! buffer a socket fills (pipelined chunks already in a `BytesMut`), its bodies being
//! zero-copy slices, and drops each chunk in the timed loop. The memmem scan only finds
//! the end-line in each chunk.
//!
//! Accuracy on a shared machine: the table's three sides run their batches in turns
//! (huddle, rust-rcs-core, memmem, again), so a change of load weighs on all of them
//! alike, and each side's figure is the median of its batches' ns per chunk, so a batch
//! another process interrupted does not count. (Earlier versions ran each side for a
//! second after the other and took the mean.)

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput};
use huddle_bench::{MIN_MEASURE, Table, fmt_ns, timed};
use huddle_msrp::uri::parse_path;
use huddle_msrp::{ByteRange, ChunkBuilder, Decoder, Flag, Limits, TransactionId};
use memchr::memmem;
use rust_rcs_core::msrp::msrp_parser::MsrpParser;

/// Body sizes compared.
const CASES: &[(&str, usize)] = &[("1 B", 1), ("64 B", 64), ("2 KiB", 2048), ("64 KiB", 65536)];

/// About this many bytes of pipelined chunks per measured batch: small enough to stay in
/// the CPU caches (as criterion's single-chunk runs do), so every side is measured on
/// hot data and the comparison is about parsing, not memory bandwidth.
const BATCH_BYTES: usize = 1 << 20;

const TID: &str = "a786hjs2Xq";

/// One encoded chunk of the benchmarked shape, with its end-line.
struct Input {
    name: &'static str,
    body_len: usize,
    chunk: Bytes,
    end_line: Vec<u8>,
}

fn input(name: &'static str, body_len: usize) -> Input {
    // Printable text, no CR or LF: a chat message or a text file's chunk.
    let text = b"Hey Bob, are you there? The quick brown fox jumps over the lazy dog. ";
    let body: Vec<u8> = text.iter().copied().cycle().take(body_len).collect();
    let to = parse_path("msrp://bob.example.com:8888/9di4eae923wzd;tcp").expect("path");
    let from = parse_path("msrp://alice.example.com:7777/iau39soe2843z;tcp").expect("path");
    let chunk = ChunkBuilder::send(&to, &from)
        .transaction_id(TransactionId::new(TID).expect("tid"))
        .message_id("87652491")
        // `N-*/T` with T past the end of this chunk: the only Byte-Range shape the peer
        // parser takes.
        .byte_range(ByteRange {
            start: 1,
            end: None,
            total: Some(body_len as u64 + 1),
        })
        .data("text/plain", body)
        .flag(Flag::More)
        .build()
        .expect("chunk");
    let bytes = chunk.to_bytes();
    Input {
        name,
        body_len,
        chunk: bytes,
        end_line: format!("\r\n-------{TID}+\r\n").into_bytes(),
    }
}

/// `k` copies of the chunk back to back, as a read buffer would hold them.
fn pipelined(inp: &Input, k: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(inp.chunk.len() * k);
    for _ in 0..k {
        b.extend_from_slice(&inp.chunk);
    }
    b
}

fn copies_per_batch(inp: &Input) -> usize {
    (BATCH_BYTES / inp.chunk.len()).max(16)
}

/// Checks that both parsers read the chunk as the same body before anything is timed.
fn verify(inp: &Input) {
    let mut dec = Decoder::new(Limits::default());
    let mut buf = BytesMut::from(&inp.chunk[..]);
    let c = dec
        .decode(&mut buf)
        .expect("huddle decodes")
        .expect("one chunk");
    assert_eq!(c.body_len(), Some(inp.body_len));
    assert!(buf.is_empty());

    let mut p = MsrpParser::new();
    p.feed(&inp.chunk);
    let c = p
        .produce()
        .expect("rust-rcs-core parses")
        .expect("one chunk");
    assert_eq!(
        c.get_body().map(Vec::len),
        Some(inp.body_len),
        "rust-rcs-core body"
    );
    // Nothing buffered is left: the next produce would need a new feed (never called).

    let at = memmem::find(&inp.chunk, &inp.end_line).expect("end-line");
    assert_eq!(at + inp.end_line.len(), inp.chunk.len());
}

fn huddle_batch(inp: &Input, k: usize) -> (Duration, u64) {
    let mut buf = pipelined(inp, k);
    let mut dec = Decoder::new(Limits::default());
    timed(|| {
        let mut n = 0;
        while let Ok(Some(c)) = dec.decode(&mut buf) {
            black_box(&c);
            n += 1;
        }
        assert_eq!(n, k as u64);
        n
    })
}

fn rcs_batch(inp: &Input, k: usize, parser: &mut MsrpParser) -> (Duration, u64) {
    timed(|| {
        for _ in 0..k {
            // One feed, one produce, one complete chunk: the only safe way to call it.
            parser.feed(&inp.chunk);
            let c = parser.produce();
            assert!(matches!(c, Ok(Some(_))));
            black_box(c.ok());
        }
        k as u64
    })
}

fn memmem_batch(inp: &Input, k: usize, finder: &memmem::Finder<'_>) -> (Duration, u64) {
    let buf = pipelined(inp, k);
    let len = inp.chunk.len();
    timed(|| {
        let mut at = 0;
        for _ in 0..k {
            let end = finder.find(&buf[at..at + len]).expect("end-line");
            black_box(end);
            at += len;
        }
        k as u64
    })
}

/// Runs one batch of each side in turns (after one warm-up batch each, not counted)
/// until one side has had `min` of measured time and every side at least 20 batches,
/// and returns each side's median nanoseconds per operation over its batches.
fn measure_in_turns(min: Duration, sides: &mut [&mut dyn FnMut() -> (Duration, u64)]) -> Vec<f64> {
    for side in sides.iter_mut() {
        let _ = side();
    }
    let mut spent = vec![Duration::ZERO; sides.len()];
    let mut per_op: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    while spent.iter().all(|s| *s < min) || per_op[0].len() < 20 {
        for (i, side) in sides.iter_mut().enumerate() {
            let (t, n) = side();
            spent[i] += t;
            per_op[i].push(t.as_nanos() as f64 / n.max(1) as f64);
        }
    }
    per_op
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn criterion_report(c: &mut Criterion, inputs: &[Input]) {
    for inp in inputs {
        let mut g = c.benchmark_group(format!("msrp_decode/{}", inp.name));
        g.throughput(Throughput::Bytes(inp.chunk.len() as u64));
        g.warm_up_time(Duration::from_millis(500));
        g.measurement_time(Duration::from_secs(2));
        g.bench_function("huddle", |b| {
            let mut dec = Decoder::new(Limits::default());
            b.iter_batched_ref(
                || BytesMut::from(&inp.chunk[..]),
                |buf| black_box(dec.decode(buf).expect("decodes")),
                BatchSize::SmallInput,
            )
        });
        g.bench_function("rust-rcs-core", |b| {
            let mut p = MsrpParser::new();
            b.iter(|| {
                p.feed(black_box(&inp.chunk));
                black_box(p.produce().ok().flatten().is_some())
            })
        });
        g.bench_function("memmem", |b| {
            let f = memmem::Finder::new(&inp.end_line);
            b.iter(|| black_box(f.find(black_box(&inp.chunk))))
        });
        g.finish();
    }
}

fn main() {
    let inputs: Vec<Input> = CASES.iter().map(|(n, l)| input(n, *l)).collect();
    for inp in &inputs {
        verify(inp);
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_report(&mut c, &inputs);
    c.final_summary();

    let mut t = Table::new(
        "msrp",
        &[
            "case",
            "chunk bytes",
            "huddle ns/chunk",
            "rcs ns/chunk",
            "ratio",
            "huddle GB/s",
            "memmem GB/s",
        ],
    );
    for inp in &inputs {
        let k = copies_per_batch(inp);
        let mut parser = MsrpParser::new();
        let finder = memmem::Finder::new(&inp.end_line);
        let ns = measure_in_turns(
            MIN_MEASURE,
            &mut [
                &mut || huddle_batch(inp, k),
                &mut || rcs_batch(inp, k, &mut parser),
                &mut || memmem_batch(inp, k, &finder),
            ],
        );
        let (huddle, rcs, mm) = (ns[0], ns[1], ns[2]);
        let len = inp.chunk.len() as f64;
        t.row(vec![
            format!("{} body", inp.name),
            inp.chunk.len().to_string(),
            fmt_ns(huddle),
            fmt_ns(rcs),
            format!("{:.1}x", rcs / huddle),
            format!("{:.2}", len / huddle),
            format!("{:.2}", len / mm),
        ]);
    }
    t.notes.push(
        "ratio = rcs ns / huddle ns (higher is better for huddle). GB/s = chunk bytes per ns. \
         Goals: ratio >= 10x for bodies <= 2 KiB; huddle within 2x of memmem at 64 KiB."
            .into(),
    );
    t.publish();
}
