//! Message mode: the frame codec and the host/participant state machines through a
//! deterministic harness (simulated clock, in-order links with latency, a step bound).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use huddle_transport::message::frame::{self, Frame, FrameError, MAX_PAYLOAD};
use huddle_transport::message::{
    Config, Host, HostEvent, LeaveReason, LinkId, Participant, ParticipantEvent, ParticipantId,
    Recipient, RejectReason, SendError, SessionEnd,
};
use proptest::prelude::*;

struct Peer {
    p: Participant,
    link: LinkId,
    /// Bytes in flight: participant to host, host to participant.
    up: VecDeque<(Instant, Bytes)>,
    down: VecDeque<(Instant, Bytes)>,
    up_buf: BytesMut,
    down_buf: BytesMut,
    events: Vec<ParticipantEvent>,
    /// A hung participant: sends nothing, reads nothing.
    frozen: bool,
    /// Writes its transport saw (to show batching).
    writes: usize,
}

struct Sim {
    now: Instant,
    host: Host,
    host_events: Vec<HostEvent>,
    peers: Vec<Peer>,
    latency: Duration,
    steps: usize,
}

impl Sim {
    fn new(config: Config, names: &[&str]) -> Self {
        let now = Instant::now();
        let mut host = Host::new("owner", config.clone()).expect("host");
        let mut peers = Vec::new();
        for n in names {
            host.invite(n);
            let link = host.add_link(now);
            peers.push(Peer {
                p: Participant::new(n, &config, now).expect("participant"),
                link,
                up: VecDeque::new(),
                down: VecDeque::new(),
                up_buf: BytesMut::new(),
                down_buf: BytesMut::new(),
                events: Vec::new(),
                frozen: false,
                writes: 0,
            });
        }
        Sim {
            now,
            host,
            host_events: Vec::new(),
            peers,
            latency: Duration::from_millis(10),
            steps: 0,
        }
    }

    fn step(&mut self) {
        self.steps += 1;
        assert!(self.steps < 100_000, "step bound exceeded");
        let (now, lat) = (self.now, self.latency);
        for peer in &mut self.peers {
            if !peer.frozen
                && let Some(b) = peer.p.poll_transmit()
            {
                peer.writes += 1;
                peer.up.push_back((now + lat, b));
            }
            if let Some(b) = self.host.poll_transmit(peer.link) {
                peer.down.push_back((now + lat, b));
            }
        }
        let mut next = now + Duration::from_secs(1);
        for peer in &self.peers {
            // A frozen participant's incoming bytes wait forever: not an event.
            let down = (!peer.frozen).then_some(&peer.down);
            for q in [Some(&peer.up), down].into_iter().flatten() {
                if let Some((t, _)) = q.front() {
                    next = next.min(*t);
                }
            }
            if let Some(t) = peer.p.poll_timeout().filter(|_| !peer.frozen) {
                next = next.min(t);
            }
            if let Some(t) = self.host.poll_timeout(peer.link) {
                next = next.min(t);
            }
        }
        self.now = next.max(now);
        let now = self.now;
        for peer in &mut self.peers {
            while peer.up.front().is_some_and(|(t, _)| *t <= now) {
                let (_, b) = peer.up.pop_front().expect("front");
                peer.up_buf.extend_from_slice(&b);
                let _ = self.host.handle_input(peer.link, &mut peer.up_buf, now);
            }
            while !peer.frozen && peer.down.front().is_some_and(|(t, _)| *t <= now) {
                let (_, b) = peer.down.pop_front().expect("front");
                peer.down_buf.extend_from_slice(&b);
                let _ = peer.p.handle_input(&mut peer.down_buf, now);
            }
            if !peer.frozen && peer.p.poll_timeout().is_some_and(|t| t <= now) {
                peer.p.handle_timeout(now);
            }
            if self.host.poll_timeout(peer.link).is_some_and(|t| t <= now) {
                self.host.handle_timeout(peer.link, now);
            }
            while let Some(e) = peer.p.poll_event() {
                peer.events.push(e);
            }
        }
        while self.host.poll_dirty().is_some() {}
        while let Some(e) = self.host.poll_event() {
            self.host_events.push(e);
        }
    }

    fn run_until(&mut self, mut done: impl FnMut(&Sim) -> bool) {
        let start = self.steps;
        while !done(self) {
            assert!(
                self.steps - start < 20_000,
                "condition not reached within the step bound"
            );
            self.step();
        }
    }

    fn join_all(&mut self) {
        self.run_until(|s| s.peers.iter().all(|p| p.p.me().is_some()));
        // Let the JOINED announcements land too.
        for _ in 0..10 {
            self.step();
        }
    }
}

fn messages(events: &[ParticipantEvent]) -> Vec<(ParticipantId, bool, Bytes)> {
    events
        .iter()
        .filter_map(|e| match e {
            ParticipantEvent::Message {
                from,
                to_all,
                payload,
            } => Some((*from, *to_all, payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn participants_join_and_see_the_list_and_its_changes() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob", "carol"]);
    sim.join_all();
    let names: Vec<String> = sim
        .host
        .participants()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, ["owner", "alice", "bob", "carol"]);
    for peer in &sim.peers {
        let mut seen: Vec<&str> = peer.p.participants().map(|(_, n)| n).collect();
        seen.sort_unstable();
        assert_eq!(
            seen,
            ["alice", "bob", "carol", "owner"],
            "everyone knows everyone"
        );
    }
    // Bob leaves; Carol is ejected.
    let bob = sim.peers[1].p.me().expect("bob");
    let carol = sim.peers[2].p.me().expect("carol");
    sim.peers[1].p.leave();
    sim.run_until(|s| {
        s.peers[0]
            .events
            .contains(&ParticipantEvent::Left(bob, LeaveReason::Left))
    });
    sim.host.eject(carol).expect("eject");
    sim.run_until(|s| {
        s.peers[0]
            .events
            .contains(&ParticipantEvent::Ejected(carol))
    });
    sim.run_until(|s| s.peers[2].p.ended().is_some());
    assert_eq!(sim.peers[2].p.ended(), Some(&SessionEnd::Ejected));
    assert!(
        sim.host_events
            .contains(&HostEvent::Left(bob, LeaveReason::Left))
    );
    let left: Vec<&str> = sim.peers[0].p.participants().map(|(_, n)| n).collect();
    assert_eq!(left, ["owner", "alice"]);
    assert!(
        sim.peers[0]
            .events
            .iter()
            .any(|e| matches!(e, ParticipantEvent::Joined(_, n) if n == "carol"))
    );
    // An ejected name cannot come back.
    let link = sim.host.add_link(sim.now);
    let mut again = Participant::new("carol", &Config::default(), sim.now).expect("p");
    let mut b = BytesMut::from(&again.poll_transmit().expect("hello")[..]);
    sim.host.handle_input(link, &mut b, sim.now).expect("hello");
    let mut back = BytesMut::from(&sim.host.poll_transmit(link).expect("reject")[..]);
    again.handle_input(&mut back, sim.now).expect("reject");
    assert_eq!(
        again.ended(),
        Some(&SessionEnd::Rejected(RejectReason::NotInvited))
    );
}

#[test]
fn messages_reach_one_participant_or_everyone_with_the_true_sender() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob", "carol"]);
    sim.join_all();
    let ids: Vec<ParticipantId> = sim.peers.iter().map(|p| p.p.me().expect("id")).collect();
    sim.peers[0]
        .p
        .send(Recipient::One(ids[1]), b"for bob", sim.now)
        .expect("send");
    sim.peers[0]
        .p
        .send(Recipient::All, b"for all", sim.now)
        .expect("send");
    sim.peers[2]
        .p
        .send(
            Recipient::One(ParticipantId::HOST),
            b"for the owner",
            sim.now,
        )
        .expect("send");
    sim.host
        .send(Recipient::One(ids[2]), b"owner to carol")
        .expect("send");
    for _ in 0..20 {
        sim.step();
    }
    let all = Bytes::from_static(b"for all");
    assert_eq!(
        messages(&sim.peers[1].events),
        vec![
            (ids[0], false, Bytes::from_static(b"for bob")),
            (ids[0], true, all.clone())
        ]
    );
    assert_eq!(
        messages(&sim.peers[2].events),
        // The owner's message was queued before Alice's reached the host.
        vec![
            (
                ParticipantId::HOST,
                false,
                Bytes::from_static(b"owner to carol")
            ),
            (ids[0], true, all.clone()),
        ]
    );
    assert_eq!(
        messages(&sim.peers[0].events),
        vec![],
        "no echo to the sender"
    );
    let host_msgs: Vec<&HostEvent> = sim
        .host_events
        .iter()
        .filter(|e| matches!(e, HostEvent::Message { .. }))
        .collect();
    assert_eq!(
        host_msgs,
        [
            &HostEvent::Message {
                from: ids[0],
                to_all: true,
                payload: all
            },
            &HostEvent::Message {
                from: ids[2],
                to_all: false,
                payload: Bytes::from_static(b"for the owner")
            },
        ]
    );
}

#[test]
fn a_forged_sender_is_overwritten_and_unknown_recipients_are_reported() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob"]);
    sim.join_all();
    let (alice, bob) = (
        sim.peers[0].p.me().expect("a"),
        sim.peers[1].p.me().expect("b"),
    );
    // Alice claims to be Bob.
    let mut forged = BytesMut::new();
    frame::encode(
        &Frame::Data {
            from: bob,
            to: Recipient::All,
            payload: Bytes::from_static(b"hi"),
        },
        &mut forged,
    );
    sim.host
        .handle_input(sim.peers[0].link, &mut forged, sim.now)
        .expect("data");
    sim.peers[0]
        .p
        .send(Recipient::One(ParticipantId(999)), b"?", sim.now)
        .expect("send");
    for _ in 0..20 {
        sim.step();
    }
    assert_eq!(
        messages(&sim.peers[1].events),
        vec![(alice, true, Bytes::from_static(b"hi"))]
    );
    assert!(
        sim.peers[0]
            .events
            .contains(&ParticipantEvent::Undeliverable(ParticipantId(999)))
    );
}

#[test]
fn a_payload_over_64_kib_is_refused_before_anything_is_queued() {
    let mut sim = Sim::new(Config::default(), &["alice"]);
    sim.join_all();
    assert_eq!(sim.peers[0].p.queued(), 0);
    let big = vec![0u8; MAX_PAYLOAD + 1];
    assert_eq!(
        sim.peers[0].p.send(Recipient::All, &big, sim.now),
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    assert_eq!(sim.peers[0].p.queued(), 0, "nothing written");
    assert_eq!(
        sim.host.send(Recipient::All, &big),
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    assert_eq!(sim.host.poll_transmit(sim.peers[0].link), None);
    // Exactly 64 KiB is fine and arrives whole.
    let max = vec![7u8; MAX_PAYLOAD];
    sim.peers[0]
        .p
        .send(Recipient::All, &max, sim.now)
        .expect("64 KiB");
    sim.run_until(|s| {
        s.host_events
            .iter()
            .any(|e| matches!(e, HostEvent::Message { .. }))
    });
    assert!(
        sim.host_events.iter().any(
            |e| matches!(e, HostEvent::Message { payload, .. } if payload.len() == MAX_PAYLOAD)
        )
    );
}

#[test]
fn many_small_messages_share_one_write() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob"]);
    sim.join_all();
    let before = sim.peers[0].writes;
    for i in 0..1000u32 {
        sim.peers[0]
            .p
            .send(Recipient::All, &i.to_be_bytes(), sim.now)
            .expect("send");
    }
    sim.run_until(|s| messages(&s.peers[1].events).len() == 1000);
    assert_eq!(sim.peers[0].writes - before, 1, "1000 messages, one write");
    let got: Vec<u32> = messages(&sim.peers[1].events)
        .iter()
        .map(|(_, _, p)| u32::from_be_bytes(p[..].try_into().expect("4")))
        .collect();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
}

#[test]
fn a_queue_larger_than_one_write_goes_out_whole_and_in_order() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob"]);
    sim.join_all();
    let bob = sim.peers[1].p.me().expect("bob");
    // 40 messages of 60,000 bytes: 2.4 MB queued, more than one write carries.
    let n = 40u8;
    for i in 0..n {
        sim.peers[0]
            .p
            .send(Recipient::One(bob), &vec![i; 60_000], sim.now)
            .expect("send");
    }
    assert_eq!(
        sim.peers[0].p.queued(),
        usize::from(n) * (frame::DATA_HEADER + 60_000)
    );
    let mut writes = Vec::new();
    while let Some(b) = sim.peers[0].p.poll_transmit() {
        writes.push(b);
    }
    assert_eq!(sim.peers[0].p.queued(), 0);
    assert!(writes.len() > 1, "{} writes", writes.len());
    assert!(
        writes.iter().all(|w| w.len() <= 256 * 1024),
        "writes of at most 256 KiB"
    );
    // The writes, back to back, are the frames in order, none split or lost.
    let mut all = BytesMut::new();
    for w in &writes {
        all.extend_from_slice(w);
    }
    for i in 0..n {
        match frame::decode(&mut all) {
            Ok(Some(Frame::Data { to, payload, .. })) => {
                assert_eq!(to, Recipient::One(bob));
                assert!(payload.len() == 60_000 && payload.iter().all(|b| *b == i));
            }
            other => panic!("frame {i}: {other:?}"),
        }
    }
    assert!(all.is_empty());
    // Through the host, Bob gets them all, in order.
    for w in writes {
        sim.peers[0].up.push_back((sim.now, w));
    }
    sim.run_until(|s| messages(&s.peers[1].events).len() == usize::from(n));
    let got: Vec<u8> = messages(&sim.peers[1].events)
        .iter()
        .map(|(_, _, p)| p[0])
        .collect();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

/// A host with Alice joined over one link, driven by hand: (host, link, alice's id).
fn host_with_alice() -> (Host, LinkId, ParticipantId) {
    let now = Instant::now();
    let mut host = Host::new("owner", Config::default()).expect("host");
    host.invite("alice");
    let link = host.add_link(now);
    let mut b = BytesMut::new();
    frame::encode(
        &Frame::Hello {
            version: frame::VERSION,
            name: "alice".into(),
        },
        &mut b,
    );
    host.handle_input(link, &mut b, now).expect("hello");
    let Some(HostEvent::Joined(alice, _)) = host.poll_event() else {
        panic!("alice joins")
    };
    let _ = host.poll_transmit(link);
    (host, link, alice)
}

fn data(to: Recipient, payload: &[u8]) -> Frame {
    Frame::Data {
        // A forged sender: the host stamps the real one.
        from: ParticipantId(77),
        to,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn host_message(from: ParticipantId, to_all: bool, payload: &[u8]) -> HostEvent {
    HostEvent::Message {
        from,
        to_all,
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn runs_of_messages_for_the_host_keep_their_order_among_other_frames() {
    let (mut host, link, alice) = host_with_alice();
    let now = Instant::now();
    let mut b = BytesMut::new();
    let host_id = Recipient::One(ParticipantId::HOST);
    for f in [
        data(host_id, b"a"),
        data(host_id, b""),
        data(host_id, b"c"),
        data(Recipient::All, b"d"),
        data(host_id, b"e"),
        Frame::KeepAlive,
        data(host_id, &[b'f'; MAX_PAYLOAD]),
        data(Recipient::One(ParticipantId(999)), b"g"),
        data(host_id, b"h"),
    ] {
        frame::encode(&f, &mut b);
    }
    // Fed in two pieces, cut inside a frame: the cut frame waits for the rest.
    let mut rest = b.split_off(b.len() - 1);
    host.handle_input(link, &mut b, now).expect("first part");
    assert_eq!(host.pending_events(), 6, "everything before the cut frame");
    b.unsplit(rest.split());
    host.handle_input(link, &mut b, now).expect("second part");
    assert!(b.is_empty());
    assert_eq!(host.pending_events(), 7);
    let want = vec![
        host_message(alice, false, b"a"),
        host_message(alice, false, b""),
        host_message(alice, false, b"c"),
        host_message(alice, true, b"d"),
        host_message(alice, false, b"e"),
        host_message(alice, false, &[b'f'; MAX_PAYLOAD]),
        host_message(alice, false, b"h"),
    ];
    // One at a time and all at once give the same events.
    let mut one_by_one = Vec::new();
    while let Some(e) = host.poll_event() {
        one_by_one.push(e);
        if one_by_one.len() == 2 {
            let mut rest = VecDeque::new();
            host.take_events(&mut rest);
            assert_eq!(host.pending_events(), 0);
            one_by_one.extend(rest);
        }
    }
    assert_eq!(one_by_one, want);
    // The unknown recipient was reported back to Alice.
    let mut out = BytesMut::from(&host.poll_transmit(link).expect("undeliverable")[..]);
    assert_eq!(
        frame::decode(&mut out),
        Ok(Some(Frame::Undeliverable(ParticipantId(999))))
    );
}

#[test]
fn a_bad_frame_after_a_run_drops_the_sender_but_keeps_what_came_before() {
    let (mut host, link, alice) = host_with_alice();
    let now = Instant::now();
    let mut b = BytesMut::new();
    let to_host = Recipient::One(ParticipantId::HOST);
    frame::encode(&data(to_host, b"ok 1"), &mut b);
    frame::encode(&data(to_host, b"ok 2"), &mut b);
    // A DATA frame one byte over the payload limit (within the frame limit).
    let over = (1 + 8 + MAX_PAYLOAD + 1) as u32;
    b.extend_from_slice(&over.to_be_bytes());
    b.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(&vec![0; MAX_PAYLOAD + 1]);
    frame::encode(&data(to_host, b"never"), &mut b);
    assert_eq!(
        host.handle_input(link, &mut b, now),
        Err(FrameError::PayloadTooLarge(MAX_PAYLOAD + 1))
    );
    let mut events = Vec::new();
    while let Some(e) = host.poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        [
            host_message(alice, false, b"ok 1"),
            host_message(alice, false, b"ok 2"),
            HostEvent::LinkClosed(link),
            HostEvent::Left(alice, LeaveReason::Error),
        ]
    );
}

#[test]
fn send_many_queues_up_to_the_limit_and_refuses_an_oversized_batch_whole() {
    let mut sim = Sim::new(Config::default(), &["alice"]);
    sim.join_all();
    let now = sim.now;
    let p = &mut sim.peers[0].p;
    let to = Recipient::One(ParticipantId::HOST);
    let payloads: Vec<[u8; 100]> = (0..50u8).map(|i| [i; 100]).collect();
    let frame_len = frame::DATA_HEADER + 100;
    // Stops once the limit is reached (the last message may cross it).
    assert_eq!(p.send_many(to, &payloads, 10 * frame_len - 1, now), Ok(10));
    assert_eq!(p.queued(), 10 * frame_len);
    assert_eq!(p.send_many(to, &payloads[10..], 10 * frame_len, now), Ok(0));
    assert_eq!(p.send_many(to, &payloads[10..], usize::MAX, now), Ok(40));
    let big = [vec![1u8; 10], vec![2u8; MAX_PAYLOAD + 1]];
    assert_eq!(
        p.send_many(to, &big, usize::MAX, now),
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    assert_eq!(p.queued(), 50 * frame_len, "nothing of the refused batch");
    sim.run_until(|s| {
        s.host_events
            .iter()
            .filter(|e| matches!(e, HostEvent::Message { .. }))
            .count()
            == 50
    });
    let got: Vec<u8> = sim
        .host_events
        .iter()
        .filter_map(|e| match e {
            HostEvent::Message { payload, .. } => {
                assert_eq!(payload.len(), 100);
                Some(payload[0])
            }
            _ => None,
        })
        .collect();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn keepalives_hold_a_quiet_session_and_a_silent_participant_is_dropped() {
    let cfg = Config {
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut sim = Sim::new(cfg, &["alice", "bob"]);
    sim.join_all();
    let t0 = sim.now;
    sim.run_until(|s| s.now >= t0 + Duration::from_secs(30));
    assert!(
        sim.peers.iter().all(|p| p.p.ended().is_none()),
        "quiet but alive"
    );
    assert!(
        !sim.host_events
            .iter()
            .any(|e| matches!(e, HostEvent::Left(..)))
    );
    // Bob hangs.
    let bob = sim.peers[1].p.me().expect("bob");
    sim.peers[1].frozen = true;
    let t1 = sim.now;
    sim.run_until(|s| {
        s.host_events
            .contains(&HostEvent::Left(bob, LeaveReason::Timeout))
    });
    assert!(sim.now - t1 <= Duration::from_secs(3) + sim.latency * 2);
    sim.run_until(|s| {
        s.peers[0]
            .events
            .contains(&ParticipantEvent::Left(bob, LeaveReason::Timeout))
    });
}

#[test]
fn a_participant_detects_a_silent_host() {
    let cfg = Config {
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let now = Instant::now();
    let mut p = Participant::new("alice", &cfg, now).expect("p");
    let _ = p.poll_transmit();
    let mut t = now;
    while p.ended().is_none() {
        t = p.poll_timeout().expect("a timer while alive");
        p.handle_timeout(t);
    }
    assert_eq!(p.ended(), Some(&SessionEnd::KeepAliveTimeout));
    assert_eq!(t - now, Duration::from_secs(3));
}

#[test]
fn a_write_marked_by_the_driver_postpones_the_keepalive() {
    let cfg = Config {
        keepalive_interval: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let now = Instant::now();
    let mut p = Participant::new("alice", &cfg, now).expect("p");
    let _ = p.poll_transmit();
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_secs(1)));
    p.handle_sent(now + Duration::from_millis(500));
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(1500)));
    // An older stamp never moves it back.
    p.handle_sent(now);
    assert_eq!(p.poll_timeout(), Some(now + Duration::from_millis(1500)));
}

#[test]
fn uninvited_duplicate_and_wrong_version_joins_are_rejected() {
    let now = Instant::now();
    let mut host = Host::new("owner", Config::default()).expect("host");
    host.invite("alice");
    let try_join = |host: &mut Host, hello: Frame| {
        let link = host.add_link(now);
        let mut b = BytesMut::new();
        frame::encode(&hello, &mut b);
        host.handle_input(link, &mut b, now).expect("hello");
        let mut out = BytesMut::from(&host.poll_transmit(link).expect("answer")[..]);
        frame::decode(&mut out).expect("frame").expect("whole")
    };
    let hello = |n: &str, v| Frame::Hello {
        version: v,
        name: n.to_owned(),
    };
    assert_eq!(
        try_join(&mut host, hello("mallory", 1)),
        Frame::Reject(RejectReason::NotInvited)
    );
    assert_eq!(
        try_join(&mut host, hello("alice", 9)),
        Frame::Reject(RejectReason::BadVersion)
    );
    assert!(matches!(
        try_join(&mut host, hello("alice", 1)),
        Frame::Welcome { .. }
    ));
    assert_eq!(
        try_join(&mut host, hello("alice", 1)),
        Frame::Reject(RejectReason::NameTaken)
    );
}

#[test]
fn hostile_frames_drop_only_the_sender() {
    let mut sim = Sim::new(Config::default(), &["alice", "bob"]);
    sim.join_all();
    let alice = sim.peers[0].p.me().expect("alice");
    // A length prefix far over the limit: refused from the prefix alone.
    let mut evil = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 7][..]);
    let r = sim.host.handle_input(sim.peers[0].link, &mut evil, sim.now);
    assert_eq!(r, Err(FrameError::TooLong(u32::MAX)));
    sim.run_until(|s| {
        s.peers[1]
            .events
            .contains(&ParticipantEvent::Left(alice, LeaveReason::Error))
    });
    assert!(sim.peers[1].p.ended().is_none());
    for (bytes, want) in [
        (vec![0, 0, 0, 1, 99], FrameError::UnknownKind(99)),
        (vec![0, 0, 0, 0], FrameError::Malformed("empty")),
        (vec![0, 0, 0, 3, 5, 0, 0], FrameError::Malformed("LEFT")),
        (
            [
                &((1 + 8 + MAX_PAYLOAD + 1) as u32).to_be_bytes()[..],
                &[7],
                &[0; 8],
                &vec![0; MAX_PAYLOAD + 1],
            ]
            .concat(),
            FrameError::PayloadTooLarge(MAX_PAYLOAD + 1),
        ),
    ] {
        let mut b = BytesMut::from(&bytes[..]);
        assert_eq!(frame::decode(&mut b), Err(want));
    }
    // A HELLO after joining is a protocol error too.
    let bob = sim.peers[1].p.me().expect("bob");
    let mut again = BytesMut::new();
    frame::encode(
        &Frame::Hello {
            version: 1,
            name: "bob".into(),
        },
        &mut again,
    );
    assert!(
        sim.host
            .handle_input(sim.peers[1].link, &mut again, sim.now)
            .is_err()
    );
    assert!(
        sim.host_events
            .iter()
            .any(|e| *e == HostEvent::Left(bob, LeaveReason::Error))
            || {
                sim.step();
                sim.host_events
                    .contains(&HostEvent::Left(bob, LeaveReason::Error))
            }
    );
}

#[test]
fn a_participant_that_does_not_read_is_dropped_not_waited_for() {
    let cfg = Config {
        max_queued: 64 * 1024,
        ..Config::default()
    };
    let mut sim = Sim::new(cfg, &["alice", "bob"]);
    sim.join_all();
    let bob = sim.peers[1].p.me().expect("bob");
    // Bob's transport stops taking bytes: the host's queue for him grows.
    sim.peers[1].frozen = true;
    let link = sim.peers[1].link;
    let chunk = vec![1u8; 1000];
    for _ in 0..100 {
        sim.peers[0]
            .p
            .send(Recipient::All, &chunk, sim.now)
            .expect("send");
    }
    // Deliver Alice's messages to the host without draining Bob's queue.
    let out = sim.peers[0].p.poll_transmit().expect("batch");
    let mut b = BytesMut::from(&out[..]);
    sim.host
        .handle_input(sim.peers[0].link, &mut b, sim.now)
        .expect("data");
    while let Some(e) = sim.host.poll_event() {
        sim.host_events.push(e);
    }
    assert!(
        sim.host_events
            .contains(&HostEvent::Left(bob, LeaveReason::TooSlow))
    );
    assert!(sim.host.link_done(link) || sim.host.poll_transmit(link).is_none());
    let names: Vec<String> = sim
        .host
        .participants()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, ["owner", "alice"]);
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let name = "[a-z]{0,20}";
    let id = any::<u32>().prop_map(ParticipantId);
    prop_oneof![
        (any::<u8>(), name).prop_map(|(version, name)| Frame::Hello { version, name }),
        (
            id.clone(),
            proptest::collection::vec((id.clone(), name), 0..5)
        )
            .prop_map(|(you, participants)| Frame::Welcome { you, participants }),
        (0u8..4).prop_map(|c| Frame::Reject(
            [
                RejectReason::NotInvited,
                RejectReason::NameTaken,
                RejectReason::Full,
                RejectReason::BadVersion
            ][c as usize]
        )),
        (id.clone(), name).prop_map(|(i, n)| Frame::Joined(i, n)),
        (id.clone(), 0u8..4).prop_map(|(i, r)| Frame::Left(
            i,
            [
                LeaveReason::Left,
                LeaveReason::Timeout,
                LeaveReason::Error,
                LeaveReason::TooSlow
            ][r as usize]
        )),
        id.clone().prop_map(Frame::Ejected),
        (
            id.clone(),
            any::<Option<u32>>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(from, to, p)| Frame::Data {
                from,
                to: match to {
                    Some(t) if t != u32::MAX => Recipient::One(ParticipantId(t)),
                    _ => Recipient::All,
                },
                payload: Bytes::from(p),
            }),
        Just(Frame::KeepAlive),
        Just(Frame::Bye),
        id.prop_map(Frame::Undeliverable),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_under_any_split(frames in proptest::collection::vec(arb_frame(), 0..20), cut in 1usize..64) {
        let mut wire = BytesMut::new();
        for f in &frames {
            frame::encode(f, &mut wire);
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(cut) {
            buf.extend_from_slice(piece);
            while let Some(f) = frame::decode(&mut buf).expect("valid") {
                got.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn messages_from_a_member_give_the_same_events_under_any_split(
        msgs in proptest::collection::vec(
            (0u8..4, proptest::collection::vec(any::<u8>(), 0..40)),
            0..40,
        ),
        cut in 1usize..64,
        take_every in 1usize..8,
    ) {
        let (mut host, link, alice) = host_with_alice();
        let now = Instant::now();
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for (kind, payload) in &msgs {
            let to = match kind {
                0 | 1 => Recipient::One(ParticipantId::HOST),
                2 => Recipient::All,
                _ => Recipient::One(ParticipantId(999)),
            };
            frame::encode(&data(to, payload), &mut wire);
            if *kind < 3 {
                want.push(host_message(alice, to == Recipient::All, payload));
            }
        }
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, piece) in wire.chunks(cut).enumerate() {
            buf.extend_from_slice(piece);
            host.handle_input(link, &mut buf, now).expect("valid");
            // Events taken now and then, one at a time or all at once.
            if i % take_every == 0 {
                match host.poll_event() {
                    Some(e) => got.push(e),
                    None => prop_assert_eq!(host.pending_events(), 0),
                }
            } else {
                let mut q = VecDeque::new();
                host.take_events(&mut q);
                got.extend(q);
            }
        }
        while let Some(e) = host.poll_event() {
            got.push(e);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(host.pending_events(), 0);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_from_a_member_never_panic_the_host(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cut in 1usize..64,
    ) {
        let (mut host, link, _) = host_with_alice();
        let now = Instant::now();
        // A valid message first, so a run is under way when the noise starts.
        let mut b = BytesMut::new();
        frame::encode(&data(Recipient::One(ParticipantId::HOST), b"ok"), &mut b);
        for piece in bytes.chunks(cut) {
            b.extend_from_slice(piece);
            if host.handle_input(link, &mut b, now).is_err() {
                break;
            }
        }
        let _ = host.poll_transmit(link);
        let n = host.pending_events();
        let mut seen = 0;
        while host.poll_event().is_some() {
            seen += 1;
        }
        prop_assert_eq!(seen, n);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_host(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let now = Instant::now();
        let mut host = Host::new("owner", Config::default()).expect("host");
        host.invite("a");
        let link = host.add_link(now);
        let mut b = BytesMut::from(&bytes[..]);
        let _ = host.handle_input(link, &mut b, now);
        let _ = host.poll_transmit(link);
        while host.poll_event().is_some() {}
    }
}
