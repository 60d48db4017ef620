//! Jingle sessions between several managers over the deterministic harness: simulated
//! clock, latency, jitter (reordering), loss and disconnects, with the fault invariants
//! checked in every scenario: every IQ-set received is answered exactly once, and every
//! request sent ends in exactly one acknowledged-or-failed event.

mod support;

use std::time::{Duration, Instant};

use huddle_jingle::{Action, ReasonCondition};
use huddle_session::harness::{HarnessError, JingleNode, NetConfig, Node, Sim};
use huddle_session::jingle::{Config, Event, SessionManager, SessionState, TieBreakRule};
use support::{TEST_NS, TestSession, content, jid};

const ALICE: &str = "alice@example.com/a";
const BOB: &str = "bob@example.com/b";

fn node(me: &str, rule: TieBreakRule, seed: u64) -> JingleNode {
    let mut c = Config::new(jid(me));
    c.seed = Some(seed);
    c.tie_break = rule;
    c.reply_timeout = Duration::from_secs(5);
    let mut m = SessionManager::new(c);
    m.register(TEST_NS, |_| Box::new(TestSession::default()));
    JingleNode::new(m)
}

fn invariants(sim: &Sim<JingleNode>, nodes: &[usize]) {
    for &i in nodes {
        let n = sim.node(i);
        assert_eq!(
            n.ledger.misanswered(),
            vec![],
            "{}: IQs not answered exactly once",
            n.addr()
        );
        assert_eq!(
            n.ledger.unresolved(),
            vec![],
            "{}: requests without exactly one outcome",
            n.addr()
        );
    }
}

/// Steps the simulation, accepting every incoming session at `acceptor`, until idle.
fn run_accepting(sim: &mut Sim<JingleNode>, acceptor: usize) -> Result<(), HarnessError> {
    let mut seen = 0;
    loop {
        let more = sim.step()?;
        let n = sim.node_mut(acceptor);
        let incoming: Vec<String> = n.events[seen..]
            .iter()
            .filter_map(|e| match e {
                Event::Incoming { sid, .. } => Some(sid.to_string()),
                _ => None,
            })
            .collect();
        seen = n.events.len();
        let accepted = !incoming.is_empty();
        for sid in incoming {
            // A session may already be gone (terminated behind its initiate).
            let _ = n.manager.accept(&sid);
        }
        if !more && !accepted {
            return Ok(());
        }
    }
}

fn terminated(n: &JingleNode) -> Vec<(String, Option<ReasonCondition>)> {
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::Terminated { sid, reason, .. } => {
                Some((sid.to_string(), reason.as_ref().map(|r| r.condition)))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_runs_start_to_end_between_two_managers() {
    let mut sim = Sim::new(NetConfig::default());
    let a = sim.add(node(ALICE, TieBreakRule::Xep0166, 1));
    let b = sim.add(node(BOB, TieBreakRule::Xep0166, 2));
    let sid = sim
        .node_mut(a)
        .manager
        .start(jid(BOB), vec![content(TEST_NS)])
        .expect("start");
    run_accepting(&mut sim, b).expect("quiescent");
    assert_eq!(
        sim.node(a).manager.session(&sid).map(|s| s.state()),
        Some(SessionState::Active)
    );
    assert_eq!(
        sim.node(b).manager.session(&sid).map(|s| s.state()),
        Some(SessionState::Active)
    );
    sim.node_mut(a).manager.send_info(&sid, None).expect("ping");
    sim.node_mut(b).manager.end(&sid, None, false).expect("end");
    sim.run_until_idle().expect("quiescent");
    assert!(sim.node(a).manager.is_empty() && sim.node(b).manager.is_empty());
    assert_eq!(
        terminated(sim.node(a)),
        vec![(sid.clone(), Some(ReasonCondition::Success))]
    );
    invariants(&sim, &[a, b]);
    assert_eq!(sim.stats().lost + sim.stats().cut, 0);
}

#[test]
fn a_vanished_peer_ends_the_session_with_timeout() {
    let mut sim = Sim::new(NetConfig::default());
    let a = sim.add(node(ALICE, TieBreakRule::Xep0166, 1));
    let b = sim.add(node(BOB, TieBreakRule::Xep0166, 2));
    let sid = sim
        .node_mut(a)
        .manager
        .start(jid(BOB), vec![content(TEST_NS)])
        .expect("start");
    run_accepting(&mut sim, b).expect("quiescent");
    sim.disconnect(BOB);
    let t0 = sim.elapsed();
    sim.node_mut(a).manager.send_info(&sid, None).expect("ping");
    sim.run_until_idle().expect("quiescent");
    assert!(sim.node(a).manager.is_empty());
    assert_eq!(
        terminated(sim.node(a)),
        vec![(sid.clone(), Some(ReasonCondition::Timeout))]
    );
    assert!(
        sim.elapsed() - t0 >= Duration::from_secs(5),
        "the timeout fired at its time"
    );
    assert!(
        sim.stats().cut >= 2,
        "ping and terminate were cut: {:?}",
        sim.stats()
    );
    invariants(&sim, &[a, b]);
}

#[test]
fn many_sessions_over_a_lossy_reordering_network_never_hang_or_lose_an_answer() {
    for seed in 1..=8 {
        let mut sim = Sim::new(NetConfig {
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(40),
            loss: 0.1,
            seed,
            max_steps: 200_000,
        });
        let a = sim.add(node(ALICE, TieBreakRule::Xep0166, seed));
        let b = sim.add(node(BOB, TieBreakRule::Xep0166, seed + 100));
        let mut sids = Vec::new();
        for _ in 0..20 {
            sids.push(
                sim.node_mut(a)
                    .manager
                    .start(jid(BOB), vec![content(TEST_NS)])
                    .expect("start"),
            );
        }
        run_accepting(&mut sim, b).expect("no livelock");
        // Some traffic in the live sessions, then both sides hang up.
        for sid in &sids {
            let _ = sim.node_mut(a).manager.send_info(sid, None);
        }
        run_accepting(&mut sim, b).expect("no livelock");
        sim.node_mut(a).manager.end_all(None, false);
        sim.node_mut(b).manager.end_all(None, false);
        run_accepting(&mut sim, b).expect("no livelock");
        assert!(
            sim.stats().lost > 0,
            "seed {seed}: the network lost something"
        );
        assert!(sim.node(a).manager.is_empty() && sim.node(b).manager.is_empty());
        invariants(&sim, &[a, b]);
        // Every session ended on alice's side exactly once.
        let ended = terminated(sim.node(a));
        for sid in &sids {
            assert_eq!(
                ended.iter().filter(|(s, _)| s == sid).count(),
                1,
                "seed {seed} {sid}"
            );
        }
    }
}

fn crossing(
    rule_a: TieBreakRule,
    rule_b: TieBreakRule,
    sid_a: &str,
    sid_b: &str,
) -> (Sim<JingleNode>, usize, usize) {
    let mut sim = Sim::new(NetConfig {
        latency: Duration::from_millis(50),
        ..NetConfig::default()
    });
    let a = sim.add(node(ALICE, rule_a, 1));
    let b = sim.add(node(BOB, rule_b, 2));
    sim.node_mut(a)
        .manager
        .start_with_sid(sid_a.into(), jid(BOB), vec![content(TEST_NS)])
        .expect("start");
    sim.node_mut(b)
        .manager
        .start_with_sid(sid_b.into(), jid(ALICE), vec![content(TEST_NS)])
        .expect("start");
    sim.run_until_idle().expect("quiescent");
    invariants(&sim, &[a, b]);
    (sim, a, b)
}

fn live(n: &JingleNode) -> Vec<(String, bool)> {
    let mut v: Vec<_> = n
        .manager
        .sessions()
        .map(|s| (s.sid().to_owned(), s.is_initiator()))
        .collect();
    v.sort();
    v
}

#[test]
fn crossed_initiates_converge_on_one_session() {
    // XEP-0166: sid-aaa (alice's, lower) survives on both sides.
    let (sim, a, b) = crossing(
        TieBreakRule::Xep0166,
        TieBreakRule::Xep0166,
        "sid-aaa",
        "sid-bbb",
    );
    assert_eq!(live(sim.node(a)), vec![("sid-aaa".into(), true)]);
    assert_eq!(live(sim.node(b)), vec![("sid-aaa".into(), false)]);
    assert_eq!(
        terminated(sim.node(b)),
        vec![("sid-bbb".into(), Some(ReasonCondition::AlternativeSession))]
    );
    // Equal sids: alice (lower JID) wins, nobody hangs.
    let (sim, a, b) = crossing(TieBreakRule::Xep0166, TieBreakRule::Xep0166, "same", "same");
    assert_eq!(live(sim.node(a)), vec![("same".into(), true)]);
    assert_eq!(live(sim.node(b)), vec![("same".into(), false)]);
    // Both on the jingle.js rule: the higher sid wins, still one session.
    let (sim, a, b) = crossing(
        TieBreakRule::InvertedCompat,
        TieBreakRule::InvertedCompat,
        "sid-aaa",
        "sid-bbb",
    );
    assert_eq!(live(sim.node(a)), vec![("sid-bbb".into(), false)]);
    assert_eq!(live(sim.node(b)), vec![("sid-bbb".into(), true)]);
    // Mismatched rules: each side thinks it won, refuses the other, and both sessions
    // die (why the option exists): nothing hangs.
    let (sim, a, b) = crossing(
        TieBreakRule::Xep0166,
        TieBreakRule::InvertedCompat,
        "sid-aaa",
        "sid-bbb",
    );
    assert_eq!(live(sim.node(a)), vec![]);
    assert_eq!(live(sim.node(b)), vec![]);
}

#[test]
fn three_parties_keep_their_sessions_apart() {
    let mut sim = Sim::new(NetConfig {
        jitter: Duration::from_millis(30),
        ..NetConfig::default()
    });
    let a = sim.add(node(ALICE, TieBreakRule::Xep0166, 1));
    let b = sim.add(node(BOB, TieBreakRule::Xep0166, 2));
    let c = sim.add(node("carol@example.com/c", TieBreakRule::Xep0166, 3));
    let s1 = sim
        .node_mut(a)
        .manager
        .start(jid(BOB), vec![content(TEST_NS)])
        .expect("start");
    let s2 = sim
        .node_mut(c)
        .manager
        .start(jid(BOB), vec![content(TEST_NS)])
        .expect("start");
    run_accepting(&mut sim, b).expect("quiescent");
    assert_eq!(sim.node(b).manager.len(), 2);
    assert_eq!(
        sim.node_mut(b)
            .manager
            .end_peer_sessions(&jid(ALICE), None, false),
        1
    );
    sim.run_until_idle().expect("quiescent");
    assert!(sim.node(a).manager.session(&s1).is_none());
    assert_eq!(
        sim.node(c).manager.session(&s2).map(|s| s.state()),
        Some(SessionState::Active)
    );
    invariants(&sim, &[a, b, c]);
    let acks = sim.node(c).events_where(|e| {
        matches!(
            e,
            Event::RequestAcknowledged {
                action: Action::SessionInitiate,
                ..
            }
        )
    });
    assert_eq!(acks.len(), 1);
}

/// Two nodes that answer every message with another: the step bound must stop them.
#[derive(Debug)]
struct PingPong {
    addr: String,
    peer: String,
    out: u32,
}

impl Node for PingPong {
    type Msg = u32;
    fn addr(&self) -> &str {
        &self.addr
    }
    fn handle(&mut self, _from: &str, msg: u32, _now: Instant) {
        self.out = msg + 1;
    }
    fn poll_transmit(&mut self, _now: Instant) -> Option<(String, u32)> {
        (self.out > 0).then(|| {
            let m = self.out;
            self.out = 0;
            (self.peer.clone(), m)
        })
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
}

#[test]
fn the_step_bound_catches_a_livelock() {
    let mut sim = Sim::new(NetConfig {
        max_steps: 1000,
        ..NetConfig::default()
    });
    sim.add(PingPong {
        addr: "x".into(),
        peer: "y".into(),
        out: 1,
    });
    sim.add(PingPong {
        addr: "y".into(),
        peer: "x".into(),
        out: 0,
    });
    assert_eq!(sim.run_until_idle(), Err(HarnessError::StepBound(1001)));
}
