//! Carrier multi-stream sessions between two sans-IO managers over the deterministic
//! harness (simulated clock, latency, jitter, disconnects). The stream transports are
//! simulated by the node: a `Bind` is answered with a made-up loopback candidate, a
//! `Connect`/`Expect` with `stream_connected`, as the tokio layer would report them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use huddle_jingle::{Iq, IqType, Jid};
use huddle_session::carrier::{
    Candidate, CarrierError, CarrierEvent, CarrierManager, RemoteDescription, SessionId, StreamId,
    StreamOptions, StreamState, StreamType,
};
use huddle_session::harness::{NetConfig, Node, Sim};
use huddle_session::jingle::Config;

const ALICE: &str = "alice@example.com/a";
const BOB: &str = "bob@example.com/b";

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

/// What the node's application does with a session request.
#[derive(Debug, Clone)]
enum Answer {
    /// Adds these streams, replies 0 and starts.
    Accept(Vec<(StreamType, StreamOptions)>),
    /// Replies with this status and reason.
    Decline(i32, String),
}

#[derive(Debug)]
struct CarrierNode {
    m: CarrierManager,
    addr: String,
    answer: Answer,
    /// Whether a `Bind` is answered at once (else the test does it).
    auto_bind: bool,
    events: Vec<CarrierEvent>,
    iqs_in: u32,
    iqs_replied: u32,
    port: u16,
    pending: Option<(SessionId, RemoteDescription)>,
}

impl CarrierNode {
    fn new(me: &str, answer: Answer) -> CarrierNode {
        let mut c = Config::new(jid(me));
        c.seed = Some(me.len() as u64);
        c.reply_timeout = Duration::from_secs(5);
        CarrierNode {
            m: CarrierManager::new(c),
            addr: me.to_owned(),
            answer,
            auto_bind: true,
            events: Vec::new(),
            iqs_in: 0,
            iqs_replied: 0,
            port: 40000,
            pending: None,
        }
    }

    /// Opens a session to bob with `streams` and sends the request.
    fn request_bob(
        &mut self,
        streams: impl IntoIterator<Item = (StreamType, StreamOptions)>,
    ) -> SessionId {
        let s = self.m.new_session(jid(BOB));
        for (ty, opts) in streams {
            self.m.add_stream(s, ty, opts).expect("add");
        }
        self.m.request(s).expect("request");
        s
    }

    /// Runs the application: simulated I/O and the request/answer logic.
    fn drain(&mut self) {
        while let Some(ev) = self.m.poll_event() {
            self.events.push(ev.clone());
            match ev {
                CarrierEvent::Bind { session, stream } if self.auto_bind => {
                    self.port += 1;
                    let c = Candidate {
                        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
                        token: format!("t{}", self.port),
                    };
                    self.m
                        .set_local_candidate(session, stream, c)
                        .expect("candidate");
                }
                CarrierEvent::Connect {
                    session, stream, ..
                }
                | CarrierEvent::Expect {
                    session, stream, ..
                } => {
                    self.m.stream_connected(session, stream).expect("connected");
                }
                CarrierEvent::SessionRequest { session, offer, .. } => match self.answer.clone() {
                    Answer::Accept(streams) => {
                        for (k, o) in streams {
                            self.m.add_stream(session, k, o).expect("add_stream");
                        }
                        // Carrier: reply only once every stream is transport-ready.
                        self.pending = Some((session, offer));
                        self.try_reply();
                    }
                    Answer::Decline(code, text) => {
                        self.m
                            .reply_request(session, code, Some(&text))
                            .expect("decline");
                    }
                },
                CarrierEvent::StreamState {
                    state: TransportReady,
                    ..
                } => self.try_reply(),
                CarrierEvent::RequestCompleted {
                    session,
                    status: 0,
                    answer: Some(a),
                    ..
                } => self.m.start(session, &a).expect("start"),
                _ => {}
            }
        }
    }

    fn try_reply(&mut self) {
        let Some((session, offer)) = self.pending.clone() else {
            return;
        };
        let n = match &self.answer {
            Answer::Accept(v) => v.len() as u32,
            Answer::Decline(..) => return,
        };
        let ready = (0..n).all(|i| {
            self.m.stream_state(session, StreamId(i)) == Some(StreamState::TransportReady)
        });
        if ready {
            self.pending = None;
            self.m.reply_request(session, 0, None).expect("reply");
            self.m.start(session, &offer).expect("start");
        }
    }

    fn states(&self, session: SessionId, stream: StreamId) -> Vec<StreamState> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CarrierEvent::StreamState {
                    session: s,
                    stream: st,
                    state,
                } if *s == session && *st == stream => Some(*state),
                _ => None,
            })
            .collect()
    }

    fn request(&self) -> Option<(SessionId, RemoteDescription)> {
        self.events.iter().find_map(|e| match e {
            CarrierEvent::SessionRequest { session, offer, .. } => Some((*session, offer.clone())),
            _ => None,
        })
    }
}

impl Node for CarrierNode {
    type Msg = Iq;

    fn addr(&self) -> &str {
        &self.addr
    }

    fn handle(&mut self, from: &str, mut msg: Iq, now: Instant) {
        msg.from = Jid::new(from).ok();
        if msg.kind == IqType::Set {
            self.iqs_in += 1;
        }
        self.m.handle_iq(msg, now);
        self.drain();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<(String, Iq)> {
        self.drain();
        let iq = self.m.poll_transmit(now)?;
        if matches!(iq.kind, IqType::Result | IqType::Error) {
            self.iqs_replied += 1;
        }
        let to = iq
            .to
            .as_ref()
            .map(|j| j.as_str().to_owned())
            .unwrap_or_default();
        Some((to, iq))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.m.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.m.handle_timeout(now);
        self.drain();
    }
}

fn net(seed: u64) -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(30),
        loss: 0.0,
        seed,
        max_steps: 50_000,
    }
}

fn opts(reliable: bool, multiplexing: bool, port_forwarding: bool) -> StreamOptions {
    StreamOptions {
        reliable,
        multiplexing,
        port_forwarding,
    }
}

use StreamState::*;

#[test]
fn two_streams_the_answer_takes_one_and_the_other_is_deactivated() {
    for seed in 0..8 {
        let mut sim = Sim::new(net(seed));
        let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
        let b = sim.add(CarrierNode::new(
            BOB,
            Answer::Accept(vec![(StreamType::Application, StreamOptions::full())]),
        ));
        let s = sim.node_mut(a).request_bob([
            (StreamType::Application, StreamOptions::full()),
            (StreamType::Text, opts(false, false, false)),
        ]);
        sim.run_until_idle().expect("idle");

        let alice = sim.node(a);
        assert_eq!(
            alice.states(s, StreamId(0)),
            vec![Initialized, TransportReady, Connecting, Connected],
            "seed {seed}"
        );
        assert_eq!(
            alice.states(s, StreamId(1)),
            vec![Initialized, TransportReady, Deactivated]
        );
        assert_eq!(
            alice.m.stream_options(s, StreamId(0)),
            Some(StreamOptions::full())
        );

        let bob = sim.node(b);
        let (bs, offer) = bob.request().expect("bob got the request");
        assert_eq!(offer.streams.len(), 2);
        assert_eq!(offer.streams[1].kind, StreamType::Text);
        assert!(!offer.streams[1].options.reliable);
        assert_eq!(
            bob.states(bs, StreamId(0)),
            vec![Initialized, TransportReady, Connecting, Connected]
        );
        assert_eq!(bob.iqs_in, bob.iqs_replied, "every IQ answered once");
        assert_eq!(alice.iqs_in, alice.iqs_replied);

        // Alice closes: both sides end with every stream closed.
        sim.node_mut(a).m.close_session(s).expect("close");
        sim.run_until_idle().expect("idle");
        assert_eq!(sim.node(a).states(s, StreamId(0)).last(), Some(&Closed));
        assert_eq!(sim.node(b).states(bs, StreamId(0)).last(), Some(&Closed));
        assert!(sim.node(b).events.iter().any(|e| matches!(
            e,
            CarrierEvent::SessionClosed { session, .. } if *session == bs
        )));
    }
}

#[test]
fn a_declined_request_completes_with_the_status_and_reason() {
    let mut sim = Sim::new(net(3));
    let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
    sim.add(CarrierNode::new(
        BOB,
        Answer::Decline(486, "busy here".into()),
    ));
    let s = sim
        .node_mut(a)
        .request_bob([(StreamType::Audio, StreamOptions::default())]);
    sim.run_until_idle().expect("idle");
    let alice = sim.node(a);
    assert!(alice.events.iter().any(|e| *e
        == CarrierEvent::RequestCompleted {
            session: s,
            status: 486,
            reason: Some("busy here".into()),
            answer: None,
        }));
    assert_eq!(alice.states(s, StreamId(0)).last(), Some(&Closed));
}

#[test]
fn start_and_reply_are_refused_until_every_stream_is_transport_ready() {
    let mut sim = Sim::new(net(5));
    let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
    let mut bob = CarrierNode::new(
        BOB,
        Answer::Accept(vec![
            (StreamType::Application, StreamOptions::default()),
            (StreamType::Video, StreamOptions::default()),
        ]),
    );
    bob.auto_bind = false;
    let b = sim.add(bob);
    let s = {
        let m = &mut sim.node_mut(a).m;
        let s = m.new_session(jid(BOB));
        // request needs streams.
        assert_eq!(m.request(s), Err(CarrierError::NoStreams));
        m.add_stream(s, StreamType::Application, StreamOptions::default())
            .expect("add");
        m.add_stream(s, StreamType::Video, StreamOptions::default())
            .expect("add");
        m.request(s).expect("request");
        s
    };
    sim.run_until_idle().expect("idle");
    let (bs, offer) = sim.node(b).request().expect("request arrived");
    // Bob's streams were added but their transports are not ready.
    let m = &mut sim.node_mut(b).m;
    assert_eq!(
        m.reply_request(bs, 0, None),
        Err(CarrierError::NotTransportReady(StreamId(0)))
    );
    m.set_local_candidate(
        bs,
        StreamId(0),
        Candidate {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 9)),
            token: "x".into(),
        },
    )
    .expect("candidate");
    assert_eq!(
        m.reply_request(bs, 0, None),
        Err(CarrierError::NotTransportReady(StreamId(1)))
    );
    // A third stream has no offered counterpart.
    assert_eq!(
        m.add_stream(bs, StreamType::Video, StreamOptions::default()),
        Err(CarrierError::NoMatchingOffer(StreamType::Video))
    );
    m.set_local_candidate(
        bs,
        StreamId(1),
        Candidate {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 10)),
            token: "y".into(),
        },
    )
    .expect("candidate");
    assert!(matches!(
        m.start(bs, &offer),
        Err(CarrierError::InvalidState { op: "start", .. })
    ));
    m.reply_request(bs, 0, None).expect("reply");
    m.start(bs, &offer).expect("start");
    sim.run_until_idle().expect("idle");
    assert_eq!(
        sim.node(a).states(s, StreamId(1)),
        vec![Initialized, TransportReady, Connecting, Connected]
    );
    assert!(sim.node(a).events.iter().any(|e| matches!(
        e,
        CarrierEvent::RequestCompleted { status: 0, answer: Some(a), .. } if a.streams.len() == 2
    )));
}

#[test]
fn a_peer_that_vanishes_before_answering_fails_the_request_and_the_streams() {
    let mut sim = Sim::new(net(9));
    let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
    sim.add(CarrierNode::new(BOB, Answer::Accept(vec![])));
    sim.disconnect(BOB);
    let s = sim
        .node_mut(a)
        .request_bob([(StreamType::Application, StreamOptions::default())]);
    sim.run_for(Duration::from_secs(30)).expect("run");
    let alice = sim.node(a);
    assert!(alice.events.iter().any(|e| matches!(
        e,
        CarrierEvent::RequestCompleted { session, status, answer: None, .. }
            if *session == s && *status != 0
    )));
    assert_eq!(
        alice.states(s, StreamId(0)),
        vec![Initialized, TransportReady, Failed]
    );
}

#[test]
fn a_peer_that_vanishes_mid_session_fails_the_streams_and_ends_the_session() {
    let mut sim = Sim::new(net(11));
    let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
    sim.add(CarrierNode::new(
        BOB,
        Answer::Accept(vec![(StreamType::Application, StreamOptions::default())]),
    ));
    let s = sim
        .node_mut(a)
        .request_bob([(StreamType::Application, StreamOptions::default())]);
    sim.run_until_idle().expect("idle");
    assert_eq!(sim.node(a).states(s, StreamId(0)).last(), Some(&Connected));
    sim.disconnect(BOB);
    // The transport notices the peer is gone (the tokio layer reports an end without
    // the graceful marker).
    sim.node_mut(a)
        .m
        .stream_ended(s, StreamId(0), false)
        .expect("ended");
    sim.run_for(Duration::from_secs(30)).expect("run");
    let alice = sim.node(a);
    assert_eq!(alice.states(s, StreamId(0)).last(), Some(&Failed));
    let closed: Vec<_> = alice
        .events
        .iter()
        .filter_map(|e| match e {
            CarrierEvent::SessionClosed { session, reason } if *session == s => {
                Some(reason.as_ref().map(|r| r.condition))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        vec![Some(huddle_jingle::ReasonCondition::ConnectivityError)]
    );
    assert!(alice.m.jingle().is_empty(), "the Jingle session is gone");
}

#[test]
fn closed_sessions_are_forgotten_and_the_counts_go_back_to_zero() {
    for seed in 0..4 {
        let mut sim = Sim::new(net(seed));
        let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
        let b = sim.add(CarrierNode::new(
            BOB,
            Answer::Accept(vec![(StreamType::Application, StreamOptions::full())]),
        ));
        // Many sessions, opened and closed by either side in turn.
        let mut sessions = Vec::new();
        for _ in 0..10 {
            let s = sim
                .node_mut(a)
                .request_bob([(StreamType::Application, StreamOptions::full())]);
            sessions.push(s);
        }
        sim.run_until_idle().expect("idle");
        assert_eq!(sim.node(a).m.session_count(), 10);
        assert_eq!(sim.node(b).m.session_count(), 10);
        // Bob's side of each session, found by its Jingle sid (requests may arrive in
        // any order).
        let bob_sessions: Vec<SessionId> = sim
            .node(b)
            .events
            .iter()
            .filter_map(|e| match e {
                CarrierEvent::SessionRequest { session, .. } => Some(*session),
                _ => None,
            })
            .collect();
        for (i, s) in sessions.iter().enumerate() {
            if i % 2 == 0 {
                sim.node_mut(a).m.close_session(*s).expect("close");
            } else {
                let sid = sim.node(a).m.sid(*s).expect("sid").to_owned();
                let bs = *bob_sessions
                    .iter()
                    .find(|bs| sim.node(b).m.sid(**bs) == Some(sid.as_str()))
                    .expect("bob's side");
                sim.node_mut(b).m.close_session(bs).expect("close");
            }
        }
        sim.run_until_idle().expect("idle");
        for n in [a, b] {
            let node = sim.node(n);
            let closed = node
                .events
                .iter()
                .filter(|e| matches!(e, CarrierEvent::SessionClosed { .. }))
                .count();
            assert_eq!(closed, 10, "seed {seed}: one SessionClosed per session");
            assert_eq!(
                node.m.session_count(),
                0,
                "seed {seed}: no closed session kept"
            );
            assert!(
                node.m.jingle().is_empty(),
                "seed {seed}: no Jingle session kept"
            );
        }
        // A forgotten session is unknown to every command.
        assert_eq!(
            sim.node_mut(a).m.close_session(sessions[0]),
            Err(CarrierError::UnknownSession(sessions[0]))
        );
        assert_eq!(sim.node(a).m.stream_state(sessions[0], StreamId(0)), None);
    }
}

#[test]
fn declined_and_unanswered_requests_are_forgotten_on_both_sides() {
    let mut sim = Sim::new(net(7));
    let a = sim.add(CarrierNode::new(ALICE, Answer::Accept(vec![])));
    let b = sim.add(CarrierNode::new(
        BOB,
        Answer::Decline(603, "decline".into()),
    ));
    let s = sim
        .node_mut(a)
        .request_bob([(StreamType::Audio, StreamOptions::default())]);
    sim.run_until_idle().expect("idle");
    // The decliner reports its side's end too.
    let (bs, _) = sim.node(b).request().expect("request arrived");
    assert!(sim.node(b).events.iter().any(|e| matches!(
        e,
        CarrierEvent::SessionClosed { session, reason: Some(r) }
            if *session == bs && r.condition == huddle_jingle::ReasonCondition::Decline
    )));
    for n in [a, b] {
        assert_eq!(sim.node(n).m.session_count(), 0);
        assert!(sim.node(n).m.jingle().is_empty());
    }
    assert!(sim.node(a).events.iter().any(|e| matches!(
        e,
        CarrierEvent::SessionClosed { session, .. } if *session == s
    )));

    // A request to a vanished peer: it times out and is forgotten as well.
    sim.disconnect(BOB);
    sim.node_mut(a)
        .request_bob([(StreamType::Audio, StreamOptions::default())]);
    sim.run_for(Duration::from_secs(30)).expect("run");
    assert_eq!(sim.node(a).m.session_count(), 0);
    assert!(sim.node(a).m.jingle().is_empty());

    // A session created and never requested is closed by the application.
    let m = &mut sim.node_mut(a).m;
    let s = m.new_session(jid(BOB));
    assert_eq!(m.session_count(), 1);
    m.close_session(s).expect("close");
    sim.node_mut(a).drain();
    assert_eq!(sim.node(a).m.session_count(), 0);
}
