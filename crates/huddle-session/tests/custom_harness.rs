//! Custom sessions (AIMCC Technote 8) in the deterministic harness: several endpoints,
//! simulated clock and network. The Message-mode transport is simulated by feeding the
//! sans-IO layer's `TransportAction`s back as member reports.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use huddle_jingle::{Iq, Jid, ReasonCondition};
use huddle_session::custom::{
    CapabilityUuid, CustomError, CustomId, CustomSessions, CustomState, Event, InviteFailure, Mode,
    SendFailure, SendId, TransportAction, TransportInfo,
};
use huddle_session::harness::{NetConfig, Node, Sim};
use huddle_session::jingle::{Config, RequestFailure};

const UUID: &str = "09461349-4c7f-11d1-8222-444553540000";
const OTHER: &str = "748f2c00-1c5e-4a3b-9c1d-2f6a1b0e9d11";

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

fn uuid(s: &str) -> CapabilityUuid {
    s.parse().expect("uuid")
}

/// One party: the sans-IO custom sessions plus everything they reported.
struct CustomNode {
    addr: String,
    core: CustomSessions,
    events: Vec<Event>,
    actions: Vec<TransportAction>,
}

impl CustomNode {
    fn new(addr: &str, seed: u64, caps: &[&str]) -> CustomNode {
        let mut config = Config::new(jid(addr));
        config.seed = Some(seed);
        let mut core = CustomSessions::new(config);
        for c in caps {
            core.add_capability(uuid(c));
        }
        CustomNode {
            addr: addr.to_owned(),
            core,
            events: Vec::new(),
            actions: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.core.poll_event() {
            self.events.push(e);
        }
        while let Some(a) = self.core.poll_action() {
            self.actions.push(a);
        }
    }

    fn incoming(&self) -> Vec<(CustomId, CapabilityUuid, Mode, Option<String>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::NewSession {
                    id,
                    uuid,
                    mode,
                    name,
                    ..
                } => Some((*id, *uuid, *mode, name.clone())),
                _ => None,
            })
            .collect()
    }

    fn states(&self, want: CustomId) -> Vec<CustomState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { id, state } if *id == want => Some(*state),
                _ => None,
            })
            .collect()
    }

    fn received(&self) -> Vec<(String, Bytes)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::DataReceived { from, data, .. } => Some((from.to_string(), data.clone())),
                _ => None,
            })
            .collect()
    }

    /// Sends `payload(i)` for each `i` of `range` on session `id`; the send ids in order.
    fn send_each(
        &mut self,
        id: CustomId,
        range: std::ops::Range<u8>,
        payload: impl Fn(u8) -> Vec<u8>,
    ) -> Vec<SendId> {
        range
            .map(|i| {
                self.core
                    .send_data(id, None, Bytes::from(payload(i)))
                    .expect("send")
            })
            .collect()
    }

    /// Every queued IQ at `now`, in order.
    fn transmits(&mut self, now: Instant) -> Vec<Iq> {
        std::iter::from_fn(|| self.core.poll_transmit(now)).collect()
    }

    /// Send results in the order they were reported.
    fn results_in_order(&self) -> Vec<(SendId, Result<(), SendFailure>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::SendResult { send, result, .. } => Some((*send, result.clone())),
                _ => None,
            })
            .collect()
    }

    /// Send results by send id: each must appear exactly once.
    fn send_results(&self) -> HashMap<SendId, Vec<Result<(), SendFailure>>> {
        let mut m: HashMap<SendId, Vec<_>> = HashMap::new();
        for e in &self.events {
            if let Event::SendResult { send, result, .. } = e {
                m.entry(*send).or_default().push(result.clone());
            }
        }
        m
    }
}

impl Node for CustomNode {
    type Msg = Iq;

    fn addr(&self) -> &str {
        &self.addr
    }

    fn handle(&mut self, from: &str, mut msg: Iq, now: Instant) {
        msg.from = Jid::new(from).ok();
        self.core.handle_iq(msg, now);
        self.drain();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<(String, Iq)> {
        self.drain();
        let iq = self.core.poll_transmit(now)?;
        let to = iq.to.as_ref().map(|j| j.to_string()).unwrap_or_default();
        Some((to, iq))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.drain();
    }
}

/// Lets the network deliver everything in flight (5 s of simulated time) without
/// running into the 60 s proposal timeout, as `run_until_idle` would.
fn settle(sim: &mut Sim<CustomNode>) {
    sim.run_for(Duration::from_secs(5)).expect("run");
}

fn net(seed: u64) -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(40),
        loss: 0.0,
        seed,
        max_steps: 100_000,
    }
}

/// alice (seeded `seed_a`) creates an Offer-Answer session and invites bob (seeded
/// `seed_b`) on a network with `config`; nothing has been delivered yet. Returns the sim,
/// both node indices and alice's session id.
fn alice_invites_bob(
    config: NetConfig,
    seed_a: u64,
    seed_b: u64,
) -> (Sim<CustomNode>, usize, usize, CustomId) {
    let mut sim: Sim<CustomNode> = Sim::new(config);
    let a = sim.add(CustomNode::new("alice@x/1", seed_a, &[UUID]));
    let b = sim.add(CustomNode::new("bob@x/1", seed_b, &[UUID]));
    let id = sim.node_mut(a).core.create(uuid(UUID)).expect("create");
    sim.node_mut(a)
        .core
        .invite(id, jid("bob@x/1"))
        .expect("invite");
    (sim, a, b, id)
}

fn assert_one_result_per_send(node: &CustomNode, sends: &[SendId]) {
    let results = node.send_results();
    for s in sends {
        assert_eq!(
            results.get(s).map(Vec::len),
            Some(1),
            "send {s:?} must end in exactly one send result: {results:?}"
        );
    }
    assert_eq!(results.len(), sends.len(), "no result without a send");
}

#[test]
fn offer_answer_data_both_ways_with_reordering_network() {
    for seed in 1..=5 {
        let (mut sim, a, b, id) = alice_invites_bob(net(seed), seed, seed + 100);
        settle(&mut sim);

        // The invitee checks the UUID, then accepts.
        let inc = sim.node(b).incoming();
        assert_eq!(inc.len(), 1);
        let (bid, got_uuid, mode, name) = inc[0].clone();
        assert_eq!(
            (got_uuid, mode, name),
            (uuid(UUID), Mode::OfferAnswer, None)
        );
        assert_eq!(sim.node(b).states(bid), vec![CustomState::ReceivedProposal]);
        sim.node_mut(b).core.accept(bid).expect("accept");
        settle(&mut sim);
        assert_eq!(
            sim.node(a).states(id),
            vec![CustomState::Inviting, CustomState::Online]
        );
        assert_eq!(
            sim.node(b).states(bid),
            vec![CustomState::ReceivedProposal, CustomState::Online]
        );
        assert!(sim.node(a).events.iter().any(|e| matches!(e,
            Event::InviteResult { peer, result: Ok(()), .. } if *peer == jid("bob@x/1"))));

        let mut a_sends = Vec::new();
        for i in 0..10u8 {
            let s = sim
                .node_mut(a)
                .core
                .send_data(id, None, Bytes::from(vec![i; usize::from(i) + 1]))
                .expect("send");
            a_sends.push(s);
        }
        let b_send = sim
            .node_mut(b)
            .core
            .send_data(bid, None, Bytes::from_static(b"pong \x00\xff"))
            .expect("send");
        settle(&mut sim);

        assert_one_result_per_send(sim.node(a), &a_sends);
        assert_one_result_per_send(sim.node(b), &[b_send]);
        assert!(sim.node(a).send_results().values().all(|r| r[0].is_ok()));
        assert_eq!(sim.node(a).core.pending_sends(id), Ok(0));
        // The sends were all in flight at once, so a reordering network may deliver
        // them in any order: every one arrives exactly once.
        let mut got: Vec<Bytes> = sim.node(b).received().into_iter().map(|(_, d)| d).collect();
        got.sort();
        let want: Vec<Bytes> = (0..10u8)
            .map(|i| Bytes::from(vec![i; usize::from(i) + 1]))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            sim.node(a).received(),
            vec![("bob@x/1".to_owned(), Bytes::from_static(b"pong \x00\xff"))]
        );

        sim.node_mut(b).core.end(bid).expect("end");
        settle(&mut sim);
        assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Ended));
        assert!(
            sim.node(a)
                .events
                .iter()
                .any(|e| matches!(e, Event::ParticipantLeft { ejected: false, .. }))
        );
    }
}

#[test]
fn reject_and_unannounced_capability_end_the_invitation() {
    let mut sim: Sim<CustomNode> = Sim::new(net(3));
    let a = sim.add(CustomNode::new("alice@x/1", 1, &[UUID, OTHER]));
    let b = sim.add(CustomNode::new("bob@x/1", 2, &[UUID]));
    // Bob announced UUID only: a proposal for OTHER never reaches his application.
    let other = sim.node_mut(a).core.create(uuid(OTHER)).expect("create");
    sim.node_mut(a)
        .core
        .invite(other, jid("bob@x/1"))
        .expect("invite");
    let mine = sim.node_mut(a).core.create(uuid(UUID)).expect("create");
    sim.node_mut(a)
        .core
        .invite(mine, jid("bob@x/1"))
        .expect("invite");
    settle(&mut sim);
    let inc = sim.node(b).incoming();
    assert_eq!(inc.len(), 1, "only the announced capability is offered");
    assert_eq!(inc[0].1, uuid(UUID));
    sim.node_mut(b).core.reject(inc[0].0).expect("reject");
    settle(&mut sim);

    let results: Vec<(CustomId, Result<(), InviteFailure>)> = sim
        .node(a)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::InviteResult { id, result, .. } => Some((*id, result.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2);
    for (id, r) in results {
        if id == mine {
            assert_eq!(r, Err(InviteFailure::Rejected));
        } else {
            match r {
                Err(InviteFailure::Failed(Some(reason))) => {
                    assert_eq!(reason.condition, ReasonCondition::UnsupportedApplications);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(sim.node(a).core.state(mine), Ok(CustomState::Ended));
    assert_eq!(sim.node(a).core.state(other), Ok(CustomState::Ended));
    assert_eq!(sim.node(b).core.state(inc[0].0), Ok(CustomState::Ended));
    // The owner cannot create a session for a capability it did not announce.
    assert_eq!(
        sim.node_mut(b).core.create(uuid(OTHER)),
        Err(CustomError::UnknownCapability(uuid(OTHER)))
    );
}

#[test]
fn calls_that_do_not_apply_to_the_mode_are_typed_errors() {
    let mut n = CustomNode::new("alice@x/1", 1, &[UUID]);
    let oa = n.core.create(uuid(UUID)).expect("create");
    // AIMCC Technote 8: Name is a Message-mode property; CancelProposal and Eject are
    // Message-mode methods; GetStream is Streams-only; SendData is Offer-Answer and
    // Message.
    let na = |r: Result<_, CustomError>, call: &str, mode: Mode| match r {
        Err(CustomError::NotApplicable { call: c, mode: m }) => {
            assert_eq!((c, m), (call, mode));
        }
        other => panic!("{call}: expected NotApplicable, got {other:?}"),
    };
    na(
        n.core.set_name(oa, "x").map(|_| ()),
        "set_name",
        Mode::OfferAnswer,
    );
    na(n.core.name(oa).map(|_| ()), "name", Mode::OfferAnswer);
    na(
        n.core.cancel_proposal(oa, &jid("b@x/1")),
        "cancel_proposal",
        Mode::OfferAnswer,
    );
    na(n.core.eject(oa, &jid("b@x/1")), "eject", Mode::OfferAnswer);
    na(
        n.core.stream_params(oa).map(|_| ()),
        "stream",
        Mode::OfferAnswer,
    );

    let st = n.core.create(uuid(UUID)).expect("create");
    n.core.set_mode(st, Mode::Streams).expect("mode");
    na(
        n.core.send_data(st, None, Bytes::new()).map(|_| ()),
        "send_data",
        Mode::Streams,
    );
    na(n.core.eject(st, &jid("b@x/1")), "eject", Mode::Streams);
    assert_eq!(
        n.core.invite(st, jid("b@x/1")),
        Err(CustomError::MissingTransport)
    );

    let msg = n.core.create(uuid(UUID)).expect("create");
    n.core.set_mode(msg, Mode::Message).expect("mode");
    n.core.set_name(msg, "room").expect("name");
    assert_eq!(n.core.name(msg), Ok(Some("room")));
    na(
        n.core.stream_params(msg).map(|_| ()),
        "stream",
        Mode::Message,
    );
    // Sending before anyone accepted is a state error, not a silent drop.
    assert!(matches!(
        n.core.send_data(msg, None, Bytes::new()),
        Err(CustomError::InvalidState { .. })
    ));

    // Offer-Answer is between two participants.
    n.core.invite(oa, jid("b@x/1")).expect("invite");
    assert_eq!(
        n.core.invite(oa, jid("c@x/1")),
        Err(CustomError::TooManyParticipants(Mode::OfferAnswer))
    );
    // The mode is fixed once invitations went out.
    assert!(matches!(
        n.core.set_mode(oa, Mode::Message),
        Err(CustomError::InvalidState { .. })
    ));
}

#[test]
fn message_mode_invite_cancel_eject_and_limits() {
    let mut sim: Sim<CustomNode> = Sim::new(net(9));
    let o = sim.add(CustomNode::new("owner@x/1", 1, &[UUID]));
    let p1 = sim.add(CustomNode::new("p1@x/1", 2, &[UUID]));
    let p2 = sim.add(CustomNode::new("p2@x/1", 3, &[UUID]));
    let p3 = sim.add(CustomNode::new("p3@x/1", 4, &[UUID]));
    let id = sim.node_mut(o).core.create(uuid(UUID)).expect("create");
    let core = &mut sim.node_mut(o).core;
    core.set_mode(id, Mode::Message).expect("mode");
    core.set_name(id, "war room").expect("name");
    core.set_transport(
        id,
        TransportInfo {
            addr: "127.0.0.1:4000".parse().expect("addr"),
            secret: Vec::new(),
        },
    )
    .expect("transport");
    for p in ["p1@x/1", "p2@x/1", "p3@x/1"] {
        sim.node_mut(o).core.invite(id, jid(p)).expect("invite");
    }
    settle(&mut sim);
    // The proposal carries the name and the host's address.
    for p in [p1, p2, p3] {
        let inc = sim.node(p).incoming();
        assert_eq!(inc.len(), 1);
        assert_eq!(inc[0].2, Mode::Message);
        assert_eq!(inc[0].3.as_deref(), Some("war room"));
    }
    // p3's proposal is withdrawn before it answers.
    sim.node_mut(o)
        .core
        .cancel_proposal(id, &jid("p3@x/1"))
        .expect("cancel");
    let ids: Vec<CustomId> = [p1, p2]
        .iter()
        .map(|p| sim.node(*p).incoming()[0].0)
        .collect();
    sim.node_mut(p1).core.accept(ids[0]).expect("accept");
    sim.node_mut(p2).core.accept(ids[1]).expect("accept");
    settle(&mut sim);
    let p3_id = sim.node(p3).incoming()[0].0;
    assert_eq!(sim.node(p3).core.state(p3_id), Ok(CustomState::Ended));
    assert!(sim.node(o).events.iter().any(|e| matches!(e,
        Event::InviteResult { peer, result: Err(InviteFailure::Cancelled), .. } if *peer == jid("p3@x/1"))));

    // Host-side transport actions: invite all three, withdraw p3.
    let host_actions: Vec<_> = sim.node(o).actions.clone();
    assert!(host_actions.contains(&TransportAction::HostInvite {
        id,
        name: "p1@x/1".into()
    }));
    assert!(host_actions.contains(&TransportAction::HostCancelInvite {
        id,
        name: "p3@x/1".into()
    }));
    // Invitees join the host at the advertised address once accepted.
    for (p, pid) in [(p1, ids[0]), (p2, ids[1])] {
        assert!(sim.node(p).actions.iter().any(|a| matches!(a,
            TransportAction::Join { id, addr, .. } if *id == pid && addr.port() == 4000)));
        assert_eq!(sim.node(p).core.state(pid), Ok(CustomState::Online));
    }
    // The (simulated) host admits them: participants joined.
    sim.node_mut(o).core.handle_member(id, "p1@x/1", true);
    sim.node_mut(o).core.handle_member(id, "p2@x/1", true);
    sim.node_mut(o).drain();
    assert_eq!(
        sim.node(o).core.participants(id).expect("participants"),
        vec![jid("p1@x/1"), jid("p2@x/1")]
    );

    // Messages: to one and to all; over 64 KiB refused up front.
    let one = sim
        .node_mut(o)
        .core
        .send_data(id, Some(&jid("p1@x/1")), Bytes::from_static(b"hi p1"))
        .expect("send");
    let all = sim
        .node_mut(o)
        .core
        .send_data(id, None, Bytes::from_static(b"hi all"))
        .expect("send");
    assert_eq!(
        sim.node_mut(o)
            .core
            .send_data(id, None, Bytes::from(vec![0; 64 * 1024 + 1])),
        Err(CustomError::TooLarge { len: 64 * 1024 + 1 })
    );
    sim.node_mut(o).drain();
    let sends: Vec<_> = sim
        .node(o)
        .actions
        .iter()
        .filter_map(|a| match a {
            TransportAction::Send { send, to, .. } => Some((*send, to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sends, vec![(one, Some("p1@x/1".into())), (all, None)]);
    sim.node_mut(o).core.handle_send_result(id, one, Ok(()));
    // A duplicate report does not produce a second result.
    sim.node_mut(o).core.handle_send_result(id, one, Ok(()));

    // Eject p2 (Message mode only).
    sim.node_mut(o)
        .core
        .eject(id, &jid("p2@x/1"))
        .expect("eject");
    settle(&mut sim);
    assert!(sim.node(o).actions.contains(&TransportAction::HostEject {
        id,
        name: "p2@x/1".into()
    }));
    assert!(sim.node(o).events.iter().any(|e| matches!(e,
        Event::ParticipantLeft { peer, ejected: true, .. } if *peer == jid("p2@x/1"))));
    assert_eq!(sim.node(p2).core.state(ids[1]), Ok(CustomState::Ended));
    assert_eq!(sim.node(o).core.state(id), Ok(CustomState::Online));

    // Ending the session fails the send still with the transport.
    sim.node_mut(o).core.end(id).expect("end");
    settle(&mut sim);
    assert_one_result_per_send(sim.node(o), &[one, all]);
    assert_eq!(
        sim.node(o).send_results()[&all],
        vec![Err(SendFailure::SessionEnded)]
    );
    assert_eq!(sim.node(p1).core.state(ids[0]), Ok(CustomState::Ended));
    assert!(sim.node(o).actions.contains(&TransportAction::Close { id }));
}

#[test]
fn a_vanished_peer_fails_every_pending_send_once() {
    let (mut sim, a, b, id) = alice_invites_bob(net(4), 1, 2);
    settle(&mut sim);
    let bid = sim.node(b).incoming()[0].0;
    sim.node_mut(b).core.accept(bid).expect("accept");
    settle(&mut sim);

    sim.disconnect("bob@x/1");
    // Two sends now, one 10 s later: all three are in flight together.
    let mut sends = sim.node_mut(a).send_each(id, 0..2, |i| vec![i]);
    sim.run_for(Duration::from_secs(10)).expect("run");
    sends.extend(sim.node_mut(a).send_each(id, 2..3, |i| vec![i]));
    assert_eq!(sim.node(a).core.pending_sends(id), Ok(3));
    // The first two data IQs time out together (30 s of simulated time): the session
    // ends with `timeout`, and the third, whose own timer had not run out, fails
    // because the session ended.
    sim.run_for(Duration::from_secs(40)).expect("run");
    settle(&mut sim);
    assert_one_result_per_send(sim.node(a), &sends);
    let results = sim.node(a).send_results();
    for s in &sends[..2] {
        assert_eq!(
            results[s],
            vec![Err(SendFailure::Signaling(RequestFailure::Timeout))]
        );
    }
    assert_eq!(results[&sends[2]], vec![Err(SendFailure::SessionEnded)]);
    assert_eq!(sim.node(a).core.pending_sends(id), Ok(0));
    assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Ended));
    assert!(sim.elapsed() >= Duration::from_secs(30));
}

#[test]
fn lossy_network_every_invite_and_every_send_resolves_exactly_once() {
    let mut online_runs = 0;
    for seed in 1..=20 {
        let mut config = net(seed);
        config.loss = 0.15;
        let (mut sim, a, b, id) = alice_invites_bob(config, seed, seed + 50);
        sim.run_for(Duration::from_secs(1)).expect("run");
        if let Some((bid, ..)) = sim.node(b).incoming().first().cloned() {
            sim.node_mut(b).core.accept(bid).expect("accept");
        }
        sim.run_for(Duration::from_secs(1)).expect("run");
        let mut sends = Vec::new();
        if sim.node(a).core.state(id) == Ok(CustomState::Online) {
            online_runs += 1;
            sends = sim.node_mut(a).send_each(id, 0..5, |i| vec![i]);
        }
        // Long enough for every lost request to time out.
        sim.run_for(Duration::from_secs(200)).expect("run");
        sim.run_until_idle().expect("idle");
        assert_one_result_per_send(sim.node(a), &sends);
        // A send acknowledged by the peer was delivered to it (a lost acknowledgement
        // fails the send although the data arrived: the sender cannot know).
        let received: Vec<Bytes> = sim.node(b).received().into_iter().map(|(_, d)| d).collect();
        let results = sim.node(a).send_results();
        for (i, s) in sends.iter().enumerate() {
            if results[s][0].is_ok() {
                let data = Bytes::from(vec![i as u8]);
                assert_eq!(
                    received.iter().filter(|d| **d == data).count(),
                    1,
                    "seed {seed}: send {i} acknowledged but not delivered exactly once"
                );
            }
        }
        let invite_results = sim
            .node(a)
            .events
            .iter()
            .filter(|e| matches!(e, Event::InviteResult { .. }))
            .count();
        // Unanswered (lost) proposals end in a failed invite result; answered ones in
        // exactly one result either way.
        assert_eq!(invite_results, 1, "seed {seed}: {:?}", sim.node(a).events);
    }
    assert!(online_runs > 0, "some runs must get online");
}

#[test]
fn an_unanswered_proposal_times_out() {
    let (mut sim, a, b, id) = alice_invites_bob(net(5), 1, 2);
    settle(&mut sim);
    let bid = sim.node(b).incoming()[0].0;
    assert_eq!(
        sim.node(b).core.state(bid),
        Ok(CustomState::ReceivedProposal)
    );
    // Bob never answers: after the proposal timeout (60 s) the invitation fails with
    // `timeout` and both ends are over.
    sim.run_until_idle().expect("idle");
    assert!(sim.elapsed() >= Duration::from_secs(60));
    let results: Vec<_> = sim
        .node(a)
        .events
        .iter()
        .filter_map(|e| match e {
            Event::InviteResult { result, .. } => Some(result.clone()),
            _ => None,
        })
        .collect();
    match results.as_slice() {
        [Err(InviteFailure::Failed(Some(r)))] => assert_eq!(r.condition, ReasonCondition::Timeout),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Ended));
    assert_eq!(sim.node(b).core.state(bid), Ok(CustomState::Ended));
}

/// Brings an Offer-Answer session between alice and bob online; returns the sim and
/// both sides' ids.
fn online_pair(seed: u64) -> (Sim<CustomNode>, usize, usize, CustomId, CustomId) {
    let (mut sim, a, b, id) = alice_invites_bob(net(seed), seed, seed + 1);
    settle(&mut sim);
    let bid = sim.node(b).incoming()[0].0;
    sim.node_mut(b).core.accept(bid).expect("accept");
    settle(&mut sim);
    assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Online));
    (sim, a, b, id, bid)
}

#[test]
fn offer_answer_sends_are_in_flight_together_and_each_reply_settles_its_own_send() {
    let (mut sim, a, b, id, bid) = online_pair(11);
    let now = sim.now();
    let sends = sim.node_mut(a).send_each(id, 0..5, |i| vec![i; 3]);
    // All five data IQs go out at once, before any reply.
    let out = sim.node_mut(a).transmits(now);
    assert_eq!(out.len(), 5);
    assert_eq!(sim.node(a).core.pending_sends(id), Ok(5));
    let ids: Vec<String> = out.iter().map(|iq| iq.id.clone()).collect();
    assert_eq!(
        ids.iter().collect::<std::collections::HashSet<_>>().len(),
        5,
        "each data IQ has its own id"
    );

    // Bob gets them; the fourth carries data he cannot decode (bad-request).
    for (i, mut iq) in out.into_iter().enumerate() {
        if i == 3
            && let Some(j) = iq.jingle.as_mut()
        {
            j.info = Some(Box::new(huddle_jingle::SessionInfo::Raw(
                huddle_jingle::Element::new("data", huddle_session::custom::NS).with_text("zz"),
            )));
        }
        sim.node_mut(b).handle("alice@x/1", iq, now);
    }
    let mut replies = sim.node_mut(b).transmits(now);
    assert_eq!(replies.len(), 5);
    assert_eq!(sim.node(b).received().len(), 4);
    let _ = bid;

    // The replies come back in reverse order; a forged copy from another sender and a
    // duplicate settle nothing.
    replies.reverse();
    let mut forged = replies[0].clone();
    forged.from = Some(jid("mallory@x/1"));
    sim.node_mut(a).core.handle_iq(forged, now);
    sim.node_mut(a).drain();
    assert!(sim.node(a).send_results().is_empty());
    let mut order = Vec::new();
    for r in &replies {
        let idx = ids
            .iter()
            .position(|i| *i == r.id)
            .expect("reply to a data IQ");
        order.push(sends[idx]);
        sim.node_mut(a).handle("bob@x/1", r.clone(), now);
    }
    sim.node_mut(a).handle("bob@x/1", replies[1].clone(), now);

    assert_one_result_per_send(sim.node(a), &sends);
    let settled: Vec<(SendId, bool)> = sim
        .node(a)
        .results_in_order()
        .into_iter()
        .map(|(send, result)| (send, result.is_ok()))
        .collect();
    // Results in the order the replies came, each for its own IQ.
    assert_eq!(
        settled.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        order,
        "results follow the replies' order"
    );
    for (s, ok) in settled {
        assert_eq!(ok, s != sends[3], "send {s:?}");
    }
    match &sim.node(a).send_results()[&sends[3]][0] {
        Err(SendFailure::Signaling(RequestFailure::Error(e))) => {
            assert_eq!(e.condition, huddle_jingle::StanzaErrorCondition::BadRequest);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sim.node(a).core.pending_sends(id), Ok(0));
    // A failed data IQ does not end the session.
    assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Online));
}

#[test]
fn offer_answer_sends_in_flight_when_the_session_ends_fail_once_each() {
    let (mut sim, a, b, id, bid) = online_pair(12);
    let sends = sim.node_mut(a).send_each(id, 0..4, |i| vec![i]);
    // The peer ends the session while the data is on the wire.
    sim.node_mut(b).core.end(bid).expect("end");
    settle(&mut sim);
    assert_one_result_per_send(sim.node(a), &sends);
    assert_eq!(sim.node(a).core.state(id), Ok(CustomState::Ended));
    assert_eq!(sim.node(a).core.pending_sends(id), Ok(0));
    // Ending it ourselves with sends in flight: each fails with SessionEnded, in order.
    let (mut sim, a, _b, id, _) = online_pair(13);
    let sends = sim.node_mut(a).send_each(id, 0..3, |i| vec![i]);
    sim.node_mut(a).core.end(id).expect("end");
    sim.node_mut(a).drain();
    let results = sim.node(a).results_in_order();
    assert_eq!(
        results,
        sends
            .iter()
            .map(|s| (*s, Err(SendFailure::SessionEnded)))
            .collect::<Vec<_>>()
    );
    settle(&mut sim);
    assert_one_result_per_send(sim.node(a), &sends);
}
