//! Inbound Jingle actions through the sans-IO `SessionManager` of huddle-session, side by
//! side with jingle.js (jingle@3.0.3 `SessionManager` + jingle-session@2.0.3) in node on
//! the same action mix, and the memory of an idle session at 100k sessions.
//!
//! The mix, per session: session-initiate, 2 × transport-info, session-info (a ping),
//! content-modify, session-terminate: 6 inbound actions, each acknowledged by a handler
//! that accepts everything (jingle.js: a session subclass that calls back at once). Both
//! sides build their inputs before the clock starts and drain every output inside the
//! timed work (huddle: `poll_transmit` and `poll_event`, dropping what they return;
//! jingle.js: its `send` events, and it runs until every reply has been sent).
//!
//! Three comparisons, each with the same work and the same input shape on both sides:
//! - **Parse excluded, batch built up front**: huddle gets typed `Iq` values and returns
//!   typed `Iq`s; jingle.js gets the JSON objects it works on and emits JSON objects. The
//!   whole batch (2000 sessions, 12,000 requests) is built before the clock starts, so
//!   the requests are cold in the cache when handled.
//! - **Parse excluded, built just before**: the same, but both sides build the requests
//!   16 sessions at a time just before handling them, outside the clock (node waits for
//!   each chunk's replies before stopping its clock), the way a server handles a stanza
//!   right after reading it. Both sides run about twice as fast this way.
//! - **Parse included**: both get every IQ as XML text and write every reply as XML text.
//!   huddle: `handle_xml` (the full hardened codec, all limits and checks: valid stanzas
//!   are decoded by huddle-jingle's fast reader, without an element tree, see
//!   `Codec::parse_iq`; the manager's own JID and the last sender are reused rather than
//!   parsed again) and `poll_transmit_xml`, which writes each reply into an output buffer
//!   that is cleared once the reply is complete (as a server writes into its connection's
//!   buffer; ltx builds a new string per reply). jingle.js does not read XML itself
//!   (stanza does that for it), so the node script parses with ltx (xmpp.js's XML
//!   library), maps the element to jingle.js's JSON with a hand-written mapping that knows
//!   only this mix, and serializes each reply with ltx: lighter than a real client's
//!   generic translation, so this ratio favours node.
//!
//! The machine is shared: huddle and node are measured in five interleaved rounds and
//! each figure is the median of its rounds (all rounds are printed; five rather than three
//! since this session: single rounds of either side swing by a third on a busy machine).
//! For instruction counts, `HUDDLE_SESSION_PROFILE=typed|hot|xml|codec|memory` runs only
//! one case (see [`profile`]).
//!
//! jingle.js and ltx are installed with npm into `target/huddle-bench/node-scratch` on
//! first use; without node or npm their column says why.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion};
use huddle_bench::{MIN_MEASURE, Table, measure, timed};
use huddle_jingle::{
    Action, Content, Creator, Description, Element, Iq, IqType, Jid, Jingle, Reason,
    ReasonCondition, Senders, Sid, Transport,
};
use huddle_session::jingle::{ApplicationHandler, Config, Session, SessionManager, Verdict};

const ME: &str = "me@example.com/res";
const PEER: &str = "peer@example.com/res";
/// Sessions per measured batch (6 actions each).
const SESSIONS: usize = 2000;
/// Interleaved measuring rounds (huddle typed, huddle XML, node JSON, node XML in
/// each): the machine is shared, so each figure is the median of its rounds (five: on
/// a busy machine a single round of either side can be off by a third, and a median of
/// three still moved the ratios by several points from run to run).
const ROUNDS: usize = 5;
/// Minimum measured time of each node run, in milliseconds.
const NODE_MIN_MS: &str = "1500";
/// Sessions for the memory measurement.
const IDLE: usize = 100_000;

#[derive(Debug)]
struct AcceptAll;

impl ApplicationHandler for AcceptAll {
    fn on_action(&mut self, _: &Session, _: &Jingle) -> Verdict {
        Verdict::Ack
    }
}

fn manager() -> SessionManager {
    let mut c = Config::new(Jid::new(ME).expect("jid"));
    c.seed = Some(1);
    let mut m = SessionManager::new(c);
    m.register("test", |_| Box::new(AcceptAll));
    m
}

fn content() -> Content {
    let mut c = Content::new(Creator::Initiator, "c1");
    c.description = Some(Description::Raw(Element::new("description", "test")));
    c.transport = Some(Transport::Raw(Element::new("transport", "test")));
    c
}

/// The addresses of every request. Shared, like the constant strings the node side puts
/// in every request object: a JID is a reference-counted string, cloning it is cheap.
fn jids() -> (Jid, Jid) {
    (Jid::new(PEER).expect("jid"), Jid::new(ME).expect("jid"))
}

fn iq(sid: &str, n: usize, j: Jingle, (peer, me): &(Jid, Jid)) -> Iq {
    let mut iq = Iq::set(format!("{sid}-{n}"), j);
    iq.from = Some(peer.clone());
    iq.to = Some(me.clone());
    iq
}

/// One batch of the mix: `SESSIONS` sessions × 6 actions, sids unique per `round`.
fn mix(round: u64) -> Vec<Iq> {
    mix_sessions(round, 0..SESSIONS, &jids())
}

/// The mix for sessions `range` of `round`.
fn mix_sessions(round: u64, range: std::ops::Range<usize>, jids: &(Jid, Jid)) -> Vec<Iq> {
    let mut out = Vec::with_capacity(range.len() * 6);
    for i in range {
        // One shared sid per session, like the one string the node side puts in each of
        // the session's request objects.
        let sid = Sid::from(format!("r{round}s{i}"));
        let with = |action, contents: Vec<Content>| {
            let mut j = Jingle::new(action, sid.clone());
            j.contents = contents;
            j
        };
        let mut modify = Content::new(Creator::Initiator, "c1");
        modify.senders = Senders::Initiator;
        let mut term = Jingle::new(Action::SessionTerminate, sid.clone());
        term.reason = Some(Box::new(Reason::new(ReasonCondition::Success)));
        out.push(iq(
            &sid,
            0,
            with(Action::SessionInitiate, vec![content()]),
            jids,
        ));
        out.push(iq(
            &sid,
            1,
            with(Action::TransportInfo, vec![content()]),
            jids,
        ));
        out.push(iq(
            &sid,
            2,
            with(Action::TransportInfo, vec![content()]),
            jids,
        ));
        out.push(iq(&sid, 3, with(Action::SessionInfo, vec![]), jids));
        out.push(iq(&sid, 4, with(Action::ContentModify, vec![modify]), jids));
        out.push(iq(&sid, 5, term, jids));
    }
    out
}

fn drain(m: &mut SessionManager, now: Instant) -> u64 {
    let mut replies = 0;
    while let Some(t) = m.poll_transmit(now) {
        replies += u64::from(t.jingle.is_none());
        black_box(t);
    }
    while let Some(e) = m.poll_event() {
        black_box(e);
    }
    replies
}

/// Like [`drain`], with every transmit written as XML text into `out`, the way a
/// server writes into its connection's output buffer: the text of each IQ is complete
/// there, then handed on (here: to `black_box`) and the buffer cleared for the next one.
fn drain_xml(m: &mut SessionManager, now: Instant, out: &mut String) -> u64 {
    let mut replies = 0;
    while let Some(kind) = m.poll_transmit_xml(now, out) {
        replies += u64::from(kind != IqType::Set);
        black_box(out.as_str());
        out.clear();
    }
    while let Some(e) = m.poll_event() {
        black_box(e);
    }
    replies
}

fn typed_batch(m: &mut SessionManager, round: &mut u64) -> (Duration, u64) {
    *round += 1;
    let batch = mix(*round);
    let n = batch.len() as u64;
    let now = Instant::now();
    let (t, replies) = timed(|| {
        let mut replies = 0;
        for iq in batch {
            m.handle_iq(iq, now);
            replies += drain(m, now);
        }
        replies
    });
    assert_eq!(replies, n, "every action answered");
    (t, n)
}

/// Sessions built per chunk in [`typed_chunked_batch`].
const CHUNK: usize = 16;

/// Like [`typed_batch`], but the requests are built `CHUNK` sessions at a time just
/// before they are handled (outside the clock), the way a server handles each stanza
/// right after reading it: the inputs are warm in the cache and their memory goes back
/// to the allocator's per-thread cache, instead of 12,000 requests built cold up front.
fn typed_chunked_batch(m: &mut SessionManager, round: &mut u64) -> (Duration, u64) {
    *round += 1;
    let jids = jids();
    let now = Instant::now();
    let (mut total, mut n, mut replies) = (Duration::ZERO, 0, 0);
    for start in (0..SESSIONS).step_by(CHUNK) {
        let chunk = mix_sessions(*round, start..(start + CHUNK).min(SESSIONS), &jids);
        n += chunk.len() as u64;
        let (t, r) = timed(|| {
            let mut replies = 0;
            for iq in chunk {
                m.handle_iq(iq, now);
                replies += drain(m, now);
            }
            replies
        });
        total += t;
        replies += r;
    }
    assert_eq!(replies, n, "every action answered");
    (total, n)
}

fn xml_batch(m: &mut SessionManager, round: &mut u64) -> (Duration, u64) {
    *round += 1;
    let batch: Vec<String> = mix(*round).iter().map(Iq::to_xml).collect();
    let n = batch.len() as u64;
    let now = Instant::now();
    let mut out = String::new();
    let (t, replies) = timed(|| {
        let mut replies = 0;
        for x in &batch {
            m.handle_xml(x.as_bytes(), now).expect("valid");
            replies += drain_xml(m, now, &mut out);
        }
        replies
    });
    assert_eq!(replies, n, "every action answered");
    (t, n)
}

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Bytes per idle (pending, acknowledged) session with `IDLE` sessions live.
fn idle_memory() -> Option<f64> {
    let now = Instant::now();
    let mut m = manager();
    let before = rss_bytes()?;
    // Each request is built and consumed in turn: no batch whose freed memory the
    // sessions could reuse (which would hide their growth).
    for i in 0..IDLE {
        let mut j = Jingle::new(Action::SessionInitiate, format!("idle{i}"));
        j.contents = vec![content()];
        // Fresh JIDs per request, as parsed from the wire: each session holds its own.
        m.handle_iq(iq(&format!("idle{i}"), 0, j, &jids()), now);
        drain(&mut m, now);
    }
    let after = rss_bytes()?;
    assert_eq!(m.len(), IDLE);
    let per = (after.saturating_sub(before)) as f64 / IDLE as f64;
    black_box(&m);
    Some(per)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// Runs the node side in `mode` (`json`: parsed objects in; `json-chunked`: the same,
/// built a few sessions at a time; `xml`: XML text in and out); `Err` says why it could
/// not.
fn jinglejs(mode: &str) -> Result<f64, String> {
    let scratch = target_dir().join("huddle-bench/node-scratch");
    let modules = scratch.join("node_modules");
    if !modules.join("jingle/package.json").is_file() || !modules.join("ltx/package.json").is_file()
    {
        std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
        let st = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&scratch)
            .args(["jingle@3.0.3", "jingle-session@2.0.3", "ltx@3.1.2"])
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !st.success() {
            return Err(format!("npm install failed ({st})"));
        }
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/session-bench.js");
    let out = Command::new("node")
        .arg(&script)
        .arg(SESSIONS.to_string())
        .arg(NODE_MIN_MS)
        .arg(mode)
        .env("NODE_MODULES_DIR", &modules)
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("actions_per_sec "))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "node printed no result ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Under `HUDDLE_SESSION_PROFILE=typed|hot|xml|codec|memory` (for callgrind with
/// `--toggle-collect='*profile_work*'`): runs a few batches of one case and exits, nothing else.
fn profile(case: &str) {
    if case == "memory" {
        return println!("{:?} bytes per idle session", idle_memory());
    }
    #[inline(never)]
    fn profile_work(m: &mut SessionManager, case: &str, typed: Vec<Iq>, xml: &[String]) -> u64 {
        let now = Instant::now();
        let mut n = 0;
        match case {
            "typed" => {
                for iq in typed {
                    m.handle_iq(iq, now);
                    n += drain(m, now);
                }
            }
            "xml" => {
                let mut out = String::new();
                for x in xml {
                    m.handle_xml(x.as_bytes(), now).expect("valid");
                    n += drain_xml(m, now, &mut out);
                }
            }
            _ => {
                for x in xml {
                    let iq = huddle_jingle::parse_iq(x.as_bytes()).expect("valid");
                    n += iq.to_xml().len() as u64;
                }
            }
        }
        n
    }
    let rounds: u64 = std::env::var("HUDDLE_SESSION_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut m = manager();
    if case == "hot" {
        let jids = jids();
        for round in 0..rounds {
            for start in (0..SESSIONS).step_by(CHUNK) {
                let chunk = mix_sessions(round, start..start + CHUNK, &jids);
                black_box(profile_work(&mut m, "typed", chunk, &[]));
            }
        }
        return println!("{} actions", rounds as usize * SESSIONS * 6);
    }
    for round in 0..rounds {
        let typed = mix(round);
        let xml: Vec<String> = if case == "typed" {
            Vec::new()
        } else {
            typed.iter().map(Iq::to_xml).collect()
        };
        black_box(profile_work(&mut m, case, typed, &xml));
    }
    println!("{} actions", rounds as usize * SESSIONS * 6);
}

fn main() {
    if let Ok(case) = std::env::var("HUDDLE_SESSION_PROFILE") {
        return profile(&case);
    }
    // First, on a fresh heap: later batches leave freed memory the allocator reuses.
    let memory = idle_memory();
    let mut c = Criterion::default().configure_from_args();
    {
        let mut g = c.benchmark_group("session");
        g.bench_function("huddle typed mix batch", |b| {
            let mut m = manager();
            let mut round = 1_000_000;
            b.iter_batched(
                || {
                    round += 1;
                    mix(round)
                },
                |batch| {
                    let now = Instant::now();
                    for iq in batch {
                        m.handle_iq(iq, now);
                        drain(&mut m, now);
                    }
                },
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
    c.final_summary();

    let mut m = manager();
    let mut round = 0;
    let (mut typed, mut hot, mut xml) = (vec![], vec![], vec![]);
    let (mut js, mut js_hot, mut js_xml) = (vec![], vec![], vec![]);
    let mut js_err = None;
    for _ in 0..ROUNDS {
        typed.push(1e9 / measure(MIN_MEASURE, || typed_batch(&mut m, &mut round)));
        hot.push(1e9 / measure(MIN_MEASURE, || typed_chunked_batch(&mut m, &mut round)));
        xml.push(1e9 / measure(MIN_MEASURE, || xml_batch(&mut m, &mut round)));
        for (mode, out) in [
            ("json", &mut js),
            ("json-chunked", &mut js_hot),
            ("xml", &mut js_xml),
        ] {
            match jinglejs(mode) {
                Ok(v) => out.push(v),
                Err(e) => js_err = Some(e),
            }
        }
    }
    let median = |v: &mut Vec<f64>| -> Option<f64> {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let (typed_m, hot_m, xml_m) = (median(&mut typed), median(&mut hot), median(&mut xml));
    let (js_m, js_hot_m, js_xml_m) = (median(&mut js), median(&mut js_hot), median(&mut js_xml));

    let mut t = Table::new(
        "session",
        &["case", "huddle actions/s", "jingle.js actions/s", "ratio"],
    );
    let fmt = |x: Option<f64>| x.map_or("n/a".into(), |x| format!("{x:.0}"));
    let ratio = |h: Option<f64>, j: Option<f64>| match (h, j) {
        (Some(h), Some(j)) => format!("{:.1}x", h / j),
        _ => "n/a".into(),
    };
    for (case, h, j) in [
        (
            "typed IQs (parse excluded), batch built up front",
            typed_m,
            js_m,
        ),
        (
            "typed IQs (parse excluded), built just before",
            hot_m,
            js_hot_m,
        ),
        ("XML in, XML out (parse included)", xml_m, js_xml_m),
    ] {
        t.row(vec![case.into(), fmt(h), fmt(j), ratio(h, j)]);
    }
    if let Some(why) = &js_err {
        t.notes.push(format!("jingle.js not measured: {why}"));
    }
    t.notes.push(match memory {
        Some(b) => format!(
            "idle session memory: {b:.0} bytes/session (RSS growth with {IDLE} pending sessions)"
        ),
        None => "idle session memory: /proc/self/statm unavailable".into(),
    });
    t.notes.push(
        "mix per session: session-initiate, 2 x transport-info, session-info ping, content-modify, \
         session-terminate; every action acknowledged. ratio = huddle / jingle.js. Parse excluded: \
         huddle gets typed IQs, jingle.js the parsed JSON objects it works on. Parse included: both \
         get XML text and write every reply as XML text (jingle.js through ltx and a mapping for \
         this mix). Goal: >= 20x."
            .into(),
    );
    t.notes.push(format!(
        "medians of {ROUNDS} interleaved rounds; all rounds, actions/s: huddle typed {typed:.0?}, \
         huddle typed built just before {hot:.0?}, huddle XML {xml:.0?}, jingle.js JSON {js:.0?}, jingle.js JSON built just before \
         {js_hot:.0?}, jingle.js XML {js_xml:.0?}"
    ));
    t.publish();
}
