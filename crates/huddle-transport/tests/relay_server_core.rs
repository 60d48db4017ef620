//! The relay's sans-IO core driven deterministically: frames in from connection ids,
//! outputs collected, time simulated.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use huddle_msrp::{Chunk, Decoder, Flag, KnownHeader, Limits, StatusCode};
use huddle_transport::digest::Challenge;
use huddle_transport::relay::server::{
    CloseReason, ConnId, CredentialStore, Output, RelayConfig, RelayCore,
};

const RELAY: &str = "msrp://127.0.0.1:2855;tcp";
const ALICE: &str = "msrp://127.0.0.1:40001/alicesess;tcp";
const BOB: &str = "msrp://127.0.0.1:40002/bobsess;tcp";
const A: ConnId = ConnId(1);
const B: ConnId = ConnId(2);

struct Sim {
    core: RelayCore,
    now: Instant,
}

/// Every frame (or segment) of `bytes`, with its end-of-frame flag, as the driver sees them.
fn decode_all(bytes: &[u8], limits: Limits) -> Vec<(Chunk, bool)> {
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(c) = d.decode(&mut buf).expect("test frames decode") {
        out.push((c, d.is_idle()));
    }
    assert!(buf.is_empty(), "whole input decoded");
    out
}

fn header(c: &Chunk, h: KnownHeader) -> &str {
    c.headers()
        .get(h)
        .unwrap_or_else(|| panic!("{h:?} missing in {c:?}"))
}

fn status(c: &Chunk) -> u16 {
    c.status_code().expect("a response").as_u16()
}

impl Sim {
    fn new(config: RelayConfig) -> Self {
        let mut creds = CredentialStore::new();
        creds.insert("alice", "secret");
        creds.insert("bob", "hunter2");
        let now = Instant::now();
        let core = RelayCore::new(config, creds, vec![RELAY.parse().unwrap()], now);
        Sim { core, now }
    }

    fn config() -> RelayConfig {
        let mut c = RelayConfig::default();
        c.realm = "relay.test".into();
        c
    }

    fn accept(&mut self, conn: ConnId) {
        assert!(self.core.handle_accept(conn, 0, self.now));
    }

    fn feed(&mut self, conn: ConnId, text: &str) {
        self.feed_limits(conn, text.as_bytes(), Limits::default());
    }

    fn feed_limits(&mut self, conn: ConnId, bytes: &[u8], limits: Limits) {
        for (c, end) in decode_all(bytes, limits) {
            self.core.handle_chunk(conn, c, end, self.now);
        }
    }

    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    /// Drains outputs, reports every transmit as written, returns the chunks per conn.
    fn sent(&mut self) -> Vec<(ConnId, Chunk)> {
        let mut v = Vec::new();
        for o in self.outputs() {
            if let Output::Transmit { conn, chunk } = o {
                self.core
                    .handle_written(conn, chunk.encoded_len(), self.now);
                v.push((conn, chunk));
            }
        }
        v
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.core.handle_timeout(self.now);
    }

    fn auth_request(tid: &str, from: &str, extra: &str) -> String {
        format!(
            "MSRP {tid} AUTH\r\nTo-Path: {RELAY}\r\nFrom-Path: {from}\r\n{extra}-------{tid}$\r\n"
        )
    }

    /// AUTH without credentials; returns the challenge.
    fn challenge(&mut self, conn: ConnId, from: &str) -> Challenge {
        self.feed(conn, &Self::auth_request("auth0001", from, ""));
        let sent = self.sent();
        assert_eq!(sent.len(), 1);
        let (to, r) = &sent[0];
        assert_eq!(*to, conn);
        assert_eq!(status(r), 401);
        Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap()
    }

    fn answer(
        &mut self,
        conn: ConnId,
        from: &str,
        ch: &Challenge,
        (user, pw): (&str, &str),
        nc: u32,
        extra: &str,
    ) -> Chunk {
        let creds = ch.respond(user, pw, RELAY, nc, "c0ffee00");
        let hdr = format!("Authorization: {}\r\n{extra}", creds.to_params());
        self.feed(conn, &Self::auth_request("auth0002", from, &hdr));
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1, "one answer to AUTH");
        sent.pop().unwrap().1
    }

    /// The full AUTH dance; returns the Use-Path.
    fn auth(&mut self, conn: ConnId, from: &str, user: &str, pw: &str) -> String {
        let ch = self.challenge(conn, from);
        let r = self.answer(conn, from, &ch, (user, pw), 1, "");
        assert_eq!(status(&r), 200, "{r:?}");
        header(&r, KnownHeader::UsePath).to_owned()
    }

    fn pair(&mut self) -> (String, String) {
        self.accept(A);
        self.accept(B);
        let a = self.auth(A, ALICE, "alice", "secret");
        let b = self.auth(B, BOB, "bob", "hunter2");
        (a, b)
    }
}

fn send(tid: &str, to: &str, from: &str, extra: &str, body: &str) -> String {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: m-{tid}\r\n\
         Byte-Range: 1-{n}/{n}\r\n{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        n = body.len()
    )
}

fn ok(tid: &str, to: &str, from: &str) -> String {
    format!("MSRP {tid} 200 OK\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\n-------{tid}$\r\n")
}

#[test]
fn auth_issues_unguessable_use_paths_with_expires() {
    let mut s = Sim::new(Sim::config());
    s.accept(A);
    let ch = s.challenge(A, ALICE);
    assert_eq!(ch.realm, "relay.test");
    assert!(ch.nonce.len() >= 32);
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 1, "");
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, KnownHeader::ToPath), ALICE);
    assert_eq!(header(&r, KnownHeader::FromPath), RELAY);
    assert_eq!(header(&r, KnownHeader::Expires), "3600");
    let up = r.use_path().unwrap();
    assert_eq!(up.len(), 1);
    let sid = up[0].session_id().unwrap();
    // ≥ 80 bits of session-id: alphanumeric characters carry log2(62) bits each.
    assert!(sid.len() as f64 * 62f64.log2() >= 80.0, "{sid}");
    // Two grants never share a session-id.
    s.accept(B);
    let other = s.auth(B, BOB, "bob", "hunter2");
    assert_ne!(other, header(&r, KnownHeader::UsePath));
    let m = s.core.metrics();
    assert_eq!(
        (m.sessions_active, m.sessions_created, m.auth_challenges),
        (2, 2, 2)
    );
}

#[test]
fn wrong_password_unknown_user_and_foreign_realm_get_a_new_challenge() {
    let mut s = Sim::new(Sim::config());
    s.accept(A);
    let ch = s.challenge(A, ALICE);
    let r = s.answer(A, ALICE, &ch, ("alice", "wrong"), 1, "");
    assert_eq!(status(&r), 401);
    let ch2 = Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap();
    assert_ne!(ch2.nonce, ch.nonce);
    let r = s.answer(A, ALICE, &ch2, ("mallory", "secret"), 1, "");
    assert_eq!(status(&r), 401);
    let mut other_realm = s.challenge(A, ALICE);
    other_realm.realm = "elsewhere".into();
    let r = s.answer(A, ALICE, &other_realm, ("alice", "secret"), 1, "");
    assert_eq!(status(&r), 401);
    assert_eq!(s.core.metrics().auth_failures, 3);
    assert_eq!(s.core.metrics().sessions_active, 0);
}

#[test]
fn nonces_cannot_be_replayed_moved_or_used_after_expiry() {
    let mut s = Sim::new(Sim::config());
    s.accept(A);
    s.accept(B);
    let ch = s.challenge(A, ALICE);
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 1, "");
    assert_eq!(status(&r), 200);
    // The same credentials again (same nonce count): a replay.
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 1, "");
    assert_eq!(status(&r), 401);
    assert_eq!(s.core.metrics().nonce_replays, 1);
    // A higher nonce count is a legitimate reuse (RFC 2617 §3.2.2).
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 2, "");
    assert_eq!(status(&r), 200);
    // The nonce belongs to connection A: B cannot answer it.
    let r = s.answer(B, BOB, &ch, ("alice", "secret"), 3, "");
    assert_eq!(status(&r), 401);
    // An expired nonce with the right password: 401 stale=true.
    let ch = s.challenge(A, ALICE);
    s.advance(s.core.config().nonce_lifetime + Duration::from_secs(1));
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 1, "");
    assert_eq!(status(&r), 401);
    let fresh = Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap();
    assert!(fresh.stale);
    assert_ne!(fresh.nonce, ch.nonce);
}

#[test]
fn expires_out_of_bounds_gets_423_with_the_bound_and_nothing_secret() {
    let mut cfg = Sim::config();
    cfg.idle_timeout = Duration::from_secs(3600);
    let mut s = Sim::new(cfg);
    s.accept(A);
    let ch = s.challenge(A, ALICE);
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 1, "Expires: 10\r\n");
    assert_eq!(status(&r), 423);
    assert_eq!(r.min_expires().unwrap(), Some(60));
    let r = s.answer(
        A,
        ALICE,
        &ch,
        ("alice", "secret"),
        2,
        "Expires: 99999999\r\n",
    );
    assert_eq!(status(&r), 423);
    assert_eq!(r.max_expires().unwrap(), Some(3600));
    let text = String::from_utf8_lossy(&r.to_bytes()).into_owned();
    assert!(
        !text.contains("secret") && !text.contains(&ch.nonce),
        "{text}"
    );
    let r = s.answer(A, ALICE, &ch, ("alice", "secret"), 3, "Expires: 120\r\n");
    assert_eq!(status(&r), 200);
    assert_eq!(header(&r, KnownHeader::Expires), "120");
    assert_eq!(s.core.metrics().sessions_active, 1);
    // The grant ends with its Expires: the session is gone, the Use-Path answers 481.
    let up = header(&r, KnownHeader::UsePath).to_owned();
    s.advance(Duration::from_secs(121));
    assert_eq!(s.core.metrics().sessions_expired, 1);
    s.feed(
        A,
        &send("late0001", &format!("{up} {BOB}"), ALICE, "", "hi"),
    );
    let sent = s.sent();
    assert_eq!(status(&sent[0].1), 481);
}

#[test]
fn send_and_report_are_relayed_with_paths_rewritten_and_hop_by_hop_responses() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    s.feed(
        A,
        &send("tx000001", &format!("{a} {b} {BOB}"), ALICE, "", "Hey Bob"),
    );
    let sent = s.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (to_b, fwd) = sent
        .iter()
        .find(|(c, _)| *c == B)
        .expect("forwarded to bob");
    assert_eq!(*to_b, B);
    assert_eq!(header(fwd, KnownHeader::ToPath), BOB);
    // RFC 4976 §6.4: each hop leaves To-Path and goes to the front of From-Path.
    assert_eq!(
        header(fwd, KnownHeader::FromPath),
        format!("{b} {a} {ALICE}")
    );
    assert_eq!(fwd.body(), Some(&b"Hey Bob"[..]));
    assert_eq!(fwd.transaction_id.as_str(), "tx000001");
    let (_, resp) = sent.iter().find(|(c, _)| *c == A).expect("200 to alice");
    assert_eq!(status(resp), 200);
    assert_eq!(header(resp, KnownHeader::ToPath), ALICE);
    assert_eq!(header(resp, KnownHeader::FromPath), a);
    // Bob's 200 is for the relay; nothing goes on.
    s.feed(B, &ok("tx000001", &b, BOB));
    assert!(s.sent().is_empty());
    // Bob's REPORT goes back along the reverse path, unanswered.
    s.feed(
        B,
        &format!(
            "MSRP rp000001 REPORT\r\nTo-Path: {b} {a} {ALICE}\r\nFrom-Path: {BOB}\r\n\
             Message-ID: m-tx000001\r\nByte-Range: 1-7/7\r\nStatus: 000 200 OK\r\n-------rp000001$\r\n"
        ),
    );
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, A);
    assert_eq!(header(&sent[0].1, KnownHeader::ToPath), ALICE);
    assert_eq!(
        header(&sent[0].1, KnownHeader::FromPath),
        format!("{a} {b} {BOB}")
    );
    let m = s.core.metrics();
    assert_eq!((m.sends_forwarded, m.reports_forwarded), (1, 1));
    assert_eq!(m.internal_hops, 2, "both second hops taken in memory");
}

#[test]
fn failure_report_no_and_partial_suppress_the_200() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    for (tid, fr) in [("frno0001", "no"), ("frpa0001", "partial")] {
        let extra = format!("Failure-Report: {fr}\r\n");
        s.feed(A, &send(tid, &format!("{a} {b} {BOB}"), ALICE, &extra, "x"));
        let sent = s.sent();
        assert_eq!(sent.len(), 1, "{fr}: forwarded only");
        assert_eq!(sent[0].0, B);
    }
    // partial still gets failures; no gets nothing at all.
    let bogus = RELAY.replace(";tcp", "/nosuchsession;tcp");
    s.feed(
        A,
        &send(
            "frpa0002",
            &format!("{bogus} {BOB}"),
            ALICE,
            "Failure-Report: partial\r\n",
            "x",
        ),
    );
    assert_eq!(status(&s.sent()[0].1), 481);
    s.feed(
        A,
        &send(
            "frno0002",
            &format!("{bogus} {BOB}"),
            ALICE,
            "Failure-Report: no\r\n",
            "x",
        ),
    );
    assert!(s.sent().is_empty());
}

#[test]
fn unknown_sessions_get_481_and_strangers_get_403() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    let bogus = RELAY.replace(";tcp", "/AAAAAAAAAAAAAAAAAAAA;tcp");
    s.feed(
        A,
        &send("u0000001", &format!("{bogus} {BOB}"), ALICE, "", "x"),
    );
    assert_eq!(status(&s.sent()[0].1), 481);
    // A request whose first hop is not this relay at all.
    s.feed(A, &send("u0000002", BOB, ALICE, "", "x"));
    assert_eq!(status(&s.sent()[0].1), 481);
    // An unauthenticated connection using Alice's Use-Path towards someone else than Alice.
    let m = ConnId(9);
    s.accept(m);
    s.feed(
        m,
        &send(
            "u0000003",
            &format!("{a} msrp://10.0.0.9:9/x;tcp"),
            "msrp://127.0.0.1:9/m;tcp",
            "",
            "x",
        ),
    );
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0, status(&sent[0].1)), (m, 403));
    // Even through an internal hop: Alice's Use-Path to Bob's session but not to Bob.
    s.feed(
        A,
        &send(
            "u0000004",
            &format!("{a} {b} msrp://10.0.0.9:9/x;tcp"),
            ALICE,
            "",
            "x",
        ),
    );
    assert_eq!(status(&s.sent()[0].1), 403);
    // Delivering to a session's own client is what Use-Paths are for, from anyone.
    s.feed(
        m,
        &send(
            "u0000005",
            &format!("{b} {BOB}"),
            "msrp://127.0.0.1:9/m;tcp",
            "",
            "x",
        ),
    );
    let sent = s.sent();
    assert!(sent.iter().any(|(c, f)| *c == B && f.is_request()));
    assert!(sent.iter().any(|(c, f)| *c == m && status(f) == 200));
}

#[test]
fn malformed_requests_are_answered_and_reports_never() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    // No Message-ID (RFC 4975 §7.1.1).
    s.feed(
        A,
        &format!("MSRP nomsgid1 SEND\r\nTo-Path: {a} {b} {BOB}\r\nFrom-Path: {ALICE}\r\n-------nomsgid1$\r\n"),
    );
    assert_eq!(status(&s.sent()[0].1), 400);
    // Failure-Report with a bad value.
    s.feed(
        A,
        &send(
            "badfr001",
            &format!("{a} {b} {BOB}"),
            ALICE,
            "Failure-Report: maybe\r\n",
            "x",
        ),
    );
    assert_eq!(status(&s.sent()[0].1), 400);
    // Unknown method: 501.
    s.feed(A, &format!("MSRP ext00001 FROB\r\nTo-Path: {a} {b} {BOB}\r\nFrom-Path: {ALICE}\r\n-------ext00001$\r\n"));
    assert_eq!(status(&s.sent()[0].1), 501);
    // A REPORT without Status is dropped silently.
    s.feed(
        A,
        &format!("MSRP rep00001 REPORT\r\nTo-Path: {a} {b} {BOB}\r\nFrom-Path: {ALICE}\r\nMessage-ID: x\r\n-------rep00001$\r\n"),
    );
    assert!(s.sent().is_empty());
    // Nothing of that disturbed the session.
    s.feed(
        A,
        &send("fine0001", &format!("{a} {b} {BOB}"), ALICE, "", "ok"),
    );
    assert_eq!(s.sent().len(), 2);
}

#[test]
fn a_failure_response_from_the_next_hop_becomes_a_report() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    s.feed(
        A,
        &send("tx000002", &format!("{a} {b} {BOB}"), ALICE, "", "Hey"),
    );
    s.sent();
    s.feed(B, &format!("MSRP tx000002 415 Unsupported\r\nTo-Path: {b}\r\nFrom-Path: {BOB}\r\n-------tx000002$\r\n"));
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    let (to, rep) = &sent[0];
    assert_eq!(*to, A);
    assert_eq!(rep.method().unwrap().as_str(), "REPORT");
    assert_eq!(rep.status_header().unwrap().unwrap().code, StatusCode(415));
    assert_eq!(rep.message_id(), Some("m-tx000002"));
    assert_eq!(header(rep, KnownHeader::ByteRange), "1-3/3");
    assert_eq!(header(rep, KnownHeader::ToPath), ALICE);
    assert_eq!(header(rep, KnownHeader::FromPath), format!("{a} {b}"));
}

#[test]
fn silence_and_lost_connections_become_408_reports() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    s.feed(
        A,
        &send("tx000003", &format!("{a} {b} {BOB}"), ALICE, "", "one"),
    );
    s.sent();
    s.advance(s.core.config().transaction_timeout + Duration::from_secs(1));
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, A);
    assert_eq!(
        sent[0].1.status_header().unwrap().unwrap().code,
        StatusCode::REQUEST_TIMEOUT
    );
    // Bob's 200 after the timeout is ignored.
    s.feed(B, &ok("tx000003", &b, BOB));
    assert!(s.sent().is_empty());
    // Bob goes away with a transaction open: Alice hears about it.
    s.feed(
        A,
        &send("tx000004", &format!("{a} {b} {BOB}"), ALICE, "", "two"),
    );
    s.sent();
    s.core.handle_closed(B, s.now);
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.message_id(), Some("m-tx000004"));
    assert_eq!(
        sent[0].1.status_header().unwrap().unwrap().code,
        StatusCode::REQUEST_TIMEOUT
    );
    // Bob's session died with his connection.
    s.feed(
        A,
        &send("tx000005", &format!("{a} {b} {BOB}"), ALICE, "", "three"),
    );
    assert_eq!(status(&s.sent()[0].1), 481);
    assert!(s.core.metrics().transaction_failures >= 2);
}

#[test]
fn a_full_next_hop_pauses_the_sender_until_it_answers() {
    let mut cfg = Sim::config();
    cfg.max_unanswered_bytes = 4096;
    let mut s = Sim::new(cfg);
    let (a, b) = s.pair();
    let body = "x".repeat(1000);
    let mut tids = Vec::new();
    let mut paused = false;
    for i in 0..20 {
        let tid = format!("bp{i:06}");
        s.feed(A, &send(&tid, &format!("{a} {b} {BOB}"), ALICE, "", &body));
        tids.push(tid);
        for o in s.outputs() {
            match o {
                Output::PauseRead(c) => {
                    assert_eq!(c, A);
                    paused = true;
                }
                Output::Transmit { conn, chunk } => {
                    s.core.handle_written(conn, chunk.encoded_len(), s.now);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        if paused {
            break;
        }
    }
    assert!(paused, "the sender is paused once Bob holds too much");
    assert!(tids.len() <= 6, "paused after {} chunks", tids.len());
    // Bob answers: Alice may send again.
    for t in &tids {
        s.feed(B, &ok(t, &b, BOB));
    }
    let resumed = s
        .outputs()
        .into_iter()
        .any(|o| matches!(o, Output::ResumeRead(c) if c == A));
    assert!(resumed);
}

#[test]
fn a_paused_next_hop_is_not_waited_on_for_answers() {
    // Alice and Bob send to each other and stop reading their answers: with a paused
    // peer only unwritten bytes count, so both keep flowing (no deadlock).
    let mut cfg = Sim::config();
    cfg.max_unanswered_bytes = 2048;
    let mut s = Sim::new(cfg);
    let (a, b) = s.pair();
    let body = "y".repeat(1000);
    let mut paused_a = false;
    let mut paused_b = false;
    for i in 0..10 {
        s.feed(
            A,
            &send(
                &format!("ab{i:06}"),
                &format!("{a} {b} {BOB}"),
                ALICE,
                "",
                &body,
            ),
        );
        s.feed(
            B,
            &send(
                &format!("ba{i:06}"),
                &format!("{b} {a} {ALICE}"),
                BOB,
                "",
                &body,
            ),
        );
        for o in s.outputs() {
            match o {
                Output::PauseRead(c) if c == A => paused_a = true,
                Output::PauseRead(c) if c == B => paused_b = true,
                Output::ResumeRead(c) if c == A => paused_a = false,
                Output::ResumeRead(c) if c == B => paused_b = false,
                Output::Transmit { conn, chunk } => {
                    s.core.handle_written(conn, chunk.encoded_len(), s.now)
                }
                _ => {}
            }
        }
    }
    assert!(!(paused_a && paused_b), "both directions stuck");
}

#[test]
fn large_chunks_are_streamed_in_pieces_with_correct_byte_ranges() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    let body: String = (0..10_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let frame = send("big00001", &format!("{a} {b} {BOB}"), ALICE, "", &body);
    let limits = Limits {
        max_body_in_memory: 4096,
        ..Limits::default()
    };
    s.feed_limits(A, frame.as_bytes(), limits);
    let sent = s.sent();
    let pieces: Vec<&Chunk> = sent
        .iter()
        .filter(|(c, _)| *c == B)
        .map(|(_, f)| f)
        .collect();
    assert!(pieces.len() >= 3, "{}", pieces.len());
    let mut joined = Vec::new();
    let mut tids = std::collections::HashSet::new();
    for (i, p) in pieces.iter().enumerate() {
        let r = p.byte_range().unwrap().unwrap();
        assert_eq!(r.start as usize, joined.len() + 1);
        assert_eq!(r.total, Some(10_000));
        let data = p.body().unwrap();
        assert_eq!(r.len(), Some(data.len() as u64));
        joined.extend_from_slice(data);
        let last = i == pieces.len() - 1;
        assert_eq!(p.flag, if last { Flag::End } else { Flag::More });
        assert_eq!(header(p, KnownHeader::ToPath), BOB);
        assert!(tids.insert(p.transaction_id.clone()), "fresh id per piece");
    }
    assert_eq!(joined, body.as_bytes());
    // One 200 to Alice, for her transaction, once the whole chunk is in.
    let to_a: Vec<&Chunk> = sent
        .iter()
        .filter(|(c, _)| *c == A)
        .map(|(_, f)| f)
        .collect();
    assert_eq!(to_a.len(), 1);
    assert_eq!(
        (status(to_a[0]), to_a[0].transaction_id.as_str()),
        (200, "big00001")
    );
}

#[test]
fn a_sender_cut_mid_chunk_aborts_the_message_downstream() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    let body = "z".repeat(10_000);
    let frame = send("cut00001", &format!("{a} {b} {BOB}"), ALICE, "", &body);
    let limits = Limits {
        max_body_in_memory: 4096,
        ..Limits::default()
    };
    // Only the first part arrives, then Alice's connection dies.
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(&frame.as_bytes()[..6000]);
    while let Some(c) = d.decode(&mut buf).unwrap() {
        s.core.handle_chunk(A, c, d.is_idle(), s.now);
    }
    s.core.handle_partial(A, s.now);
    s.sent();
    s.core.handle_closed(A, s.now);
    let sent = s.sent();
    assert_eq!(sent.len(), 1);
    let (to, abort) = &sent[0];
    assert_eq!(*to, B);
    assert_eq!(abort.flag, Flag::Abort);
    assert_eq!(abort.byte_range().unwrap().unwrap().start, 4097);
    assert_eq!(s.core.metrics().aborted_chunks, 1);
}

#[test]
fn a_receiver_cut_mid_chunk_fails_the_senders_transaction() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    let body = "w".repeat(10_000);
    let frame = send("cut00002", &format!("{a} {b} {BOB}"), ALICE, "", &body);
    let limits = Limits {
        max_body_in_memory: 4096,
        ..Limits::default()
    };
    let mut d = Decoder::new(limits);
    let mut buf = BytesMut::from(&frame.as_bytes()[..6000]);
    while let Some(c) = d.decode(&mut buf).unwrap() {
        s.core.handle_chunk(A, c, d.is_idle(), s.now);
    }
    s.sent();
    s.core.handle_closed(B, s.now);
    let sent = s.sent();
    // The sender hears twice: an error for the chunk still arriving, a REPORT for the
    // piece that was forwarded.
    assert!(sent.iter().all(|(c, _)| *c == A));
    assert!(
        sent.iter()
            .any(|(_, f)| f.status_code() == Some(StatusCode::REQUEST_TIMEOUT))
    );
    assert!(
        sent.iter()
            .any(|(_, f)| f.status_header().ok().flatten().is_some())
    );
    // The rest of the chunk is read and dropped; nothing else happens.
    buf.extend_from_slice(&frame.as_bytes()[6000..]);
    while let Some(c) = d.decode(&mut buf).unwrap() {
        s.core.handle_chunk(A, c, d.is_idle(), s.now);
    }
    assert!(s.sent().is_empty());
    // And the connection is still usable.
    s.feed(
        A,
        &send("after001", &format!("{a} {a} {ALICE}"), ALICE, "", "me"),
    );
    assert!(
        s.sent()
            .iter()
            .any(|(_, f)| f.status_code() == Some(StatusCode::OK))
    );
}

#[test]
fn slow_idle_and_stalled_connections_are_closed() {
    let mut s = Sim::new(Sim::config());
    s.accept(A);
    s.accept(B);
    s.accept(ConnId(3));
    let _ = s.auth(B, BOB, "bob", "hunter2");
    // A starts a frame and never finishes it.
    s.core.handle_partial(A, s.now);
    let frame_timeout = s.core.config().frame_timeout;
    s.advance(frame_timeout + Duration::from_secs(1));
    let closes: Vec<(ConnId, CloseReason)> = s
        .outputs()
        .into_iter()
        .filter_map(|o| match o {
            Output::Close { conn, reason } => Some((conn, reason)),
            _ => None,
        })
        .collect();
    assert!(closes.contains(&(A, CloseReason::SlowFrame)), "{closes:?}");
    assert!(!closes.iter().any(|(c, _)| *c == B), "B holds a session");
    // Conn 3 never said anything: idle.
    s.advance(s.core.config().idle_timeout);
    let closed_idle = s.outputs().into_iter().any(|o| {
        matches!(
            o,
            Output::Close {
                conn: ConnId(3),
                reason: CloseReason::Idle
            }
        )
    });
    assert!(closed_idle);
    assert!(s.core.metrics().connections_dropped >= 2);
    assert_eq!(s.core.metrics().connections_open, 1);
}

#[test]
fn connection_limit_refuses_extra_connections() {
    let mut cfg = Sim::config();
    cfg.max_connections = 2;
    let mut s = Sim::new(cfg);
    s.accept(A);
    s.accept(B);
    assert!(!s.core.handle_accept(ConnId(3), 0, s.now));
    assert!(matches!(
        s.outputs().as_slice(),
        [Output::Close {
            conn: ConnId(3),
            reason: CloseReason::Refused
        }]
    ));
    assert_eq!(s.core.metrics().connections_refused, 1);
}

#[test]
fn repeated_auth_failures_close_the_connection() {
    let mut cfg = Sim::config();
    cfg.max_auth_failures = 2;
    let mut s = Sim::new(cfg);
    s.accept(A);
    let mut ch = s.challenge(A, ALICE);
    for _ in 0..2 {
        let r = s.answer(A, ALICE, &ch, ("alice", "guess"), 1, "");
        assert_eq!(status(&r), 401);
        ch = Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap();
    }
    let creds = ch.respond("alice", "guess", RELAY, 1, "c0ffee00");
    let hdr = format!("Authorization: {}\r\n", creds.to_params());
    s.feed(A, &Sim::auth_request("auth0003", ALICE, &hdr));
    let outs = s.outputs();
    assert!(
        outs.iter()
            .any(|o| matches!(o, Output::Transmit { chunk, .. } if status(chunk) == 403))
    );
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Close {
            conn: A,
            reason: CloseReason::AuthFailures
        }
    )));
}

#[test]
fn an_external_next_hop_gets_a_connection_and_its_failure_a_report() {
    let mut s = Sim::new(Sim::config());
    s.accept(A);
    let a = s.auth(A, ALICE, "alice", "secret");
    let peer = "msrp://127.0.0.1:45000/peer;tcp";
    s.feed(
        A,
        &send("ext00001", &format!("{a} {peer}"), ALICE, "", "out"),
    );
    let outs = s.outputs();
    let conn = outs
        .iter()
        .find_map(|o| match o {
            Output::Connect { conn, target } => {
                assert_eq!(target.to_string(), "msrp://127.0.0.1:45000;tcp");
                Some(*conn)
            }
            _ => None,
        })
        .expect("a connection is opened");
    assert!(outs.iter().any(|o| matches!(o, Output::Transmit { conn: c, chunk } if *c == conn && header(chunk, KnownHeader::FromPath) == format!("{a} {ALICE}"))));
    // A second SEND reuses it.
    s.feed(
        A,
        &send("ext00002", &format!("{a} {peer}"), ALICE, "", "out"),
    );
    assert!(
        !s.outputs()
            .iter()
            .any(|o| matches!(o, Output::Connect { .. }))
    );
    // The connection fails: both transactions are reported to Alice, on her connection.
    s.core.handle_closed(conn, s.now);
    let sent = s.sent();
    assert_eq!(sent.len(), 2);
    for (c, r) in &sent {
        assert_eq!(*c, A);
        assert_eq!(header(r, KnownHeader::ToPath), ALICE);
        assert_eq!(header(r, KnownHeader::FromPath), a);
    }
}

#[test]
fn shutdown_closes_connections_once_flushed() {
    let mut s = Sim::new(Sim::config());
    let (a, b) = s.pair();
    s.feed(
        A,
        &send("sd000001", &format!("{a} {b} {BOB}"), ALICE, "", "bye"),
    );
    let outs = s.outputs();
    s.core.begin_shutdown(s.now);
    assert!(!s.core.handle_accept(ConnId(7), 0, s.now));
    assert!(!s.core.is_drained());
    // Writing what was queued closes the connections; Bob's unanswered SEND is reported
    // to Alice first (the relay no longer reads Bob's answer), and that is flushed too.
    let mut outs = outs;
    let mut reports = 0;
    for _ in 0..10 {
        for o in std::mem::take(&mut outs) {
            if let Output::Transmit { conn, chunk } = o {
                reports += usize::from(chunk.status_header().ok().flatten().is_some());
                s.core.handle_written(conn, chunk.encoded_len(), s.now);
            }
        }
        outs = s.outputs();
    }
    assert!(s.core.is_drained());
    assert_eq!(reports, 1);
}
