//! Jingle parse and serialize: huddle-jingle side by side with xmpp-parsers 0.23 on
//! `session-initiate-1290.xml` (a session-initiate with two file-transfer contents, one
//! over IBB and one over SOCKS5).
//!
//! Both sides go from a `String` to a fully typed value and back, with the file
//! descriptions decoded: huddle parses straight into its model; xmpp-parsers parses a
//! `minidom::Element`, converts it with `Jingle::try_from`, and (since it keeps XEP-0234
//! descriptions as raw elements) converts each description with
//! `jingle_ft::Description::try_from`. Serializing goes the other way: huddle writes its
//! model to a `String`; xmpp-parsers converts the typed descriptions and the `Jingle` back
//! to an `Element` and writes it out.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use huddle_bench::{MIN_MEASURE, Table, fmt_ns, measure, timed};
use xmpp_parsers::jingle::{Description as XDescription, Jingle as XJingle};
use xmpp_parsers::jingle_ft::Description as XFileDescription;
use xmpp_parsers::minidom::Element;

const INPUT: &str = include_str!("../../huddle-jingle/tests/vectors/session-initiate-1290.xml");
const FT_NS: &str = "urn:xmpp:jingle:apps:file-transfer:5";

/// Parses per measured batch.
const BATCH: usize = 2000;

/// xmpp-parsers' fully typed result: the `Jingle` without the file descriptions, and the
/// decoded file description of each content.
#[derive(Clone)]
struct XTyped {
    jingle: XJingle,
    files: Vec<Option<XFileDescription>>,
}

fn xmpp_parse(s: &str) -> XTyped {
    let el: Element = s.parse().expect("minidom parses");
    let mut jingle = XJingle::try_from(el).expect("xmpp-parsers Jingle");
    let mut files = Vec::with_capacity(jingle.contents.len());
    for c in &mut jingle.contents {
        let file = match c.description.take() {
            Some(XDescription::Unknown(el)) if el.is("description", FT_NS) => {
                Some(XFileDescription::try_from(el).expect("xmpp-parsers file description"))
            }
            other => {
                c.description = other;
                None
            }
        };
        files.push(file);
    }
    XTyped { jingle, files }
}

/// Serializes an `XTyped` (consumed, as minidom's conversion takes the value).
fn xmpp_serialize(mut x: XTyped, out: &mut Vec<u8>) {
    for (c, f) in x.jingle.contents.iter_mut().zip(&x.files) {
        if let Some(f) = f {
            c.description = Some(XDescription::Unknown(Element::from(f)));
        }
    }
    Element::from(x.jingle)
        .write_to(out)
        .expect("minidom writes");
}

fn huddle_parse(s: &str) -> huddle_jingle::Jingle {
    huddle_jingle::parse_jingle(s.as_bytes()).expect("huddle parses")
}

/// Checks both sides decode the input fully and agree on what they read.
fn verify() {
    let h = huddle_parse(INPUT);
    let x = xmpp_parse(INPUT);
    assert_eq!(h.contents.len(), 2);
    assert_eq!(x.jingle.contents.len(), 2);
    for (hc, xf) in h.contents.iter().zip(&x.files) {
        let Some(huddle_jingle::Description::FileTransfer(ft)) = &hc.description else {
            panic!("huddle did not type the file description")
        };
        let xf = xf
            .as_ref()
            .expect("xmpp-parsers typed the file description");
        assert_eq!(ft.file.name, xf.file.name);
        assert_eq!(ft.file.size, xf.file.size);
        assert_eq!(ft.file.hashes.len(), xf.file.hashes.len());
    }
    // Each side's output parses back on the same side.
    assert_eq!(huddle_parse(&h.to_xml()), h);
    let mut out = Vec::new();
    xmpp_serialize(x, &mut out);
    let again = xmpp_parse(std::str::from_utf8(&out).expect("utf-8"));
    assert_eq!(again.jingle.contents.len(), 2);
}

fn criterion_report(c: &mut Criterion) {
    let mut g = c.benchmark_group("jingle_parse");
    g.throughput(Throughput::Bytes(INPUT.len() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("huddle", |b| {
        b.iter(|| black_box(huddle_parse(black_box(INPUT))))
    });
    g.bench_function("xmpp-parsers", |b| {
        b.iter(|| black_box(xmpp_parse(black_box(INPUT)).files.len()))
    });
    g.finish();

    let h = huddle_parse(INPUT);
    let x = xmpp_parse(INPUT);
    let mut g = c.benchmark_group("jingle_serialize");
    g.throughput(Throughput::Bytes(INPUT.len() as u64));
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("huddle", |b| b.iter(|| black_box(black_box(&h).to_xml())));
    g.bench_function("xmpp-parsers", |b| {
        b.iter_batched(
            || x.clone(),
            |x| {
                let mut out = Vec::with_capacity(2048);
                xmpp_serialize(x, &mut out);
                out
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn parse_batch(f: impl Fn(&str) -> usize) -> (Duration, u64) {
    timed(|| {
        let mut n = 0;
        for _ in 0..BATCH {
            n += black_box(f(black_box(INPUT)));
        }
        black_box(n);
        BATCH as u64
    })
}

fn main() {
    verify();

    let mut c = Criterion::default().configure_from_args();
    criterion_report(&mut c);
    c.final_summary();

    let h = huddle_parse(INPUT);
    let x = xmpp_parse(INPUT);
    let huddle_parse_ns = measure(MIN_MEASURE, || {
        parse_batch(|s| huddle_parse(s).contents.len())
    });
    let xmpp_parse_ns = measure(MIN_MEASURE, || parse_batch(|s| xmpp_parse(s).files.len()));
    let huddle_ser_ns = measure(MIN_MEASURE, || {
        timed(|| {
            for _ in 0..BATCH {
                black_box(black_box(&h).to_xml());
            }
            BATCH as u64
        })
    });
    let xmpp_ser_ns = measure(MIN_MEASURE, || {
        // The clones minidom's by-value conversion needs are made outside the timing.
        let values: Vec<XTyped> = (0..BATCH).map(|_| x.clone()).collect();
        let start = Instant::now();
        for v in values {
            let mut out = Vec::with_capacity(2048);
            xmpp_serialize(v, &mut out);
            black_box(out);
        }
        (start.elapsed(), BATCH as u64)
    });

    let per_sec = |ns: f64| format!("{:.0}", 1e9 / ns);
    let mut t = Table::new(
        "jingle",
        &[
            "operation",
            "huddle ns",
            "xmpp-parsers ns",
            "huddle ops/s",
            "xmpp-parsers ops/s",
            "ratio",
        ],
    );
    t.row(vec![
        "parse (String -> typed Jingle)".into(),
        fmt_ns(huddle_parse_ns),
        fmt_ns(xmpp_parse_ns),
        per_sec(huddle_parse_ns),
        per_sec(xmpp_parse_ns),
        format!("{:.1}x", xmpp_parse_ns / huddle_parse_ns),
    ]);
    t.row(vec![
        "serialize (typed Jingle -> String)".into(),
        fmt_ns(huddle_ser_ns),
        fmt_ns(xmpp_ser_ns),
        per_sec(huddle_ser_ns),
        per_sec(xmpp_ser_ns),
        format!("{:.1}x", xmpp_ser_ns / huddle_ser_ns),
    ]);
    t.notes.push(format!(
        "input: session-initiate-1290.xml ({} bytes), file descriptions decoded on both sides. \
         ratio = xmpp-parsers ns / huddle ns (higher is better for huddle). Goals: >= 5x for parse and for serialize.",
        INPUT.len()
    ));
    t.publish();
}
