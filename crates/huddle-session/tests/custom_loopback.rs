//! Custom sessions end to end: the in-memory signaling hub carries the Jingle IQs,
//! real loopback sockets carry Message and Streams modes.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use huddle_jingle::Jid;
use huddle_session::custom::{
    CapabilityUuid, CustomEndpoint, CustomId, CustomState, EndpointConfig, EndpointError, Event,
    Mode, SendFailure, SendId,
};
use huddle_session::jingle::RequestFailure;
use huddle_session::signaling::{HubEndpoint, SignalingHub};
use huddle_transport::streams::{self, AuthError, StreamConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const UUID: &str = "09461349-4c7f-11d1-8222-444553540000";

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

fn uuid() -> CapabilityUuid {
    UUID.parse().expect("uuid")
}

struct Party {
    ep: CustomEndpoint<HubEndpoint>,
    log: Vec<Event>,
}

impl Party {
    fn new(hub: &SignalingHub, name: &str) -> Party {
        let mut config = EndpointConfig::default();
        // Short keep-alives so the transport's liveness runs during the test.
        config.message.keepalive_interval = Duration::from_millis(50);
        config.message.keepalive_timeout = Duration::from_secs(5);
        let mut ep = CustomEndpoint::new(hub.connect(jid(name)), config);
        ep.sessions().add_capability(uuid());
        Party {
            ep,
            log: Vec::new(),
        }
    }

    /// A party whose Jingle requests time out after `reply_timeout`.
    fn with_reply_timeout(hub: &SignalingHub, name: &str, reply_timeout: Duration) -> Party {
        let mut jingle = huddle_session::jingle::Config::new(jid(name));
        jingle.reply_timeout = reply_timeout;
        let config = EndpointConfig {
            jingle: Some(jingle),
            ..EndpointConfig::default()
        };
        let mut ep = CustomEndpoint::new(hub.connect(jid(name)), config);
        ep.sessions().add_capability(uuid());
        Party {
            ep,
            log: Vec::new(),
        }
    }

    fn proposal(&self) -> Option<CustomId> {
        self.log.iter().find_map(|e| match e {
            Event::NewSession { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn has(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.log.iter().any(f)
    }

    fn received(&self) -> Vec<(String, Bytes)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::DataReceived { from, data, .. } => Some((from.to_string(), data.clone())),
                _ => None,
            })
            .collect()
    }

    /// Every send result, in the order it was reported.
    fn results_in_order(&self) -> Vec<(SendId, Result<(), SendFailure>)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::SendResult { send, result, .. } => Some((*send, result.clone())),
                _ => None,
            })
            .collect()
    }

    fn results(&self) -> HashMap<SendId, usize> {
        let mut m = HashMap::new();
        for e in &self.log {
            if let Event::SendResult { send, result, .. } = e {
                assert!(result.is_ok(), "send failed: {e:?}");
                *m.entry(*send).or_default() += 1;
            }
        }
        m
    }
}

/// Drives every party until `done` holds (10 s deadline: a hang fails the test).
async fn drive(parties: &mut [&mut Party], mut done: impl FnMut(&[&mut Party]) -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(parties) {
            let (ev, i) = {
                let futs = parties.iter_mut().map(|p| Box::pin(p.ep.next_event()));
                let (ev, i, _rest) = select_all(futs).await;
                (ev, i)
            };
            parties[i].log.push(ev);
        }
    })
    .await
    .expect("the condition did not hold within 10 s");
}

/// alice invites bob to her session `id`; returns bob's id for it once the proposal
/// reached him.
async fn invite_bob(alice: &mut Party, bob: &mut Party, id: CustomId) -> CustomId {
    alice.ep.invite(id, jid("bob@x/1")).await.expect("invite");
    drive(&mut [&mut *alice, &mut *bob], |p| p[1].proposal().is_some()).await;
    bob.proposal().expect("proposal")
}

/// Drives alice and bob until both sides of the session (`id`, `bid`) are online.
async fn both_online(alice: &mut Party, bob: &mut Party, id: CustomId, bid: CustomId) {
    drive(&mut [alice, bob], |p| {
        p[0].ep.core().state(id) == Ok(CustomState::Online)
            && p[1].ep.core().state(bid) == Ok(CustomState::Online)
    })
    .await;
}

fn one_result_each(p: &Party, sends: &[SendId]) {
    let r = p.results();
    for s in sends {
        assert_eq!(r.get(s), Some(&1), "send {s:?}: {r:?}");
    }
    assert_eq!(r.len(), sends.len());
}

#[tokio::test]
async fn offer_answer_data_goes_through_the_signaling_hub() {
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@x/1");
    let mut bob = Party::new(&hub, "bob@x/1");
    let id = alice.ep.sessions().create(uuid()).expect("create");
    let bid = invite_bob(&mut alice, &mut bob, id).await;
    assert_eq!(bob.ep.sessions().uuid(bid), Ok(uuid()));
    bob.ep.accept(bid).expect("accept");
    both_online(&mut alice, &mut bob, id, bid).await;

    let mut sends = Vec::new();
    for i in 0..5u8 {
        sends.push(alice.ep.send_data(id, None, vec![i; 100]).expect("send"));
    }
    let back = bob.ep.send_data(bid, None, &b"thanks"[..]).expect("send");
    drive(&mut [&mut alice, &mut bob], |p| {
        p[0].results().len() == 5 && p[1].results().len() == 1 && p[1].received().len() == 5
    })
    .await;
    one_result_each(&alice, &sends);
    one_result_each(&bob, &[back]);
    let got: Vec<Bytes> = bob.received().into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        got,
        (0..5u8)
            .map(|i| Bytes::from(vec![i; 100]))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        alice.received(),
        vec![("bob@x/1".to_owned(), Bytes::from_static(b"thanks"))]
    );
    // Streams-only and Message-only calls are typed errors here.
    assert!(matches!(
        alice.ep.stream(id).await,
        Err(EndpointError::Custom(_))
    ));
    alice.ep.end(id).expect("end");
    drive(&mut [&mut alice, &mut bob], |p| {
        p[1].ep.core().state(bid) == Ok(CustomState::Ended)
    })
    .await;
}

#[tokio::test]
async fn offer_answer_sends_are_in_flight_together_over_the_hub() {
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@x/1");
    let mut bob = Party::new(&hub, "bob@x/1");
    let id = alice.ep.sessions().create(uuid()).expect("create");
    let bid = invite_bob(&mut alice, &mut bob, id).await;
    bob.ep.accept(bid).expect("accept");
    both_online(&mut alice, &mut bob, id, bid).await;

    // Twenty sends from both sides without waiting: every data IQ is handed to the
    // hub at once (no send waits for the previous one's reply).
    let (delivered, _) = hub.stats();
    let mut a_sends = Vec::new();
    let mut b_sends = Vec::new();
    for i in 0..20u8 {
        a_sends.push(alice.ep.send_data(id, None, vec![i; 10]).expect("send"));
        b_sends.push(
            bob.ep
                .send_data(bid, None, vec![100 + i; 10])
                .expect("send"),
        );
    }
    assert_eq!(
        hub.stats().0 - delivered,
        40,
        "all data IQs are on their way"
    );
    assert_eq!(alice.ep.core().pending_sends(id), Ok(20));
    assert_eq!(bob.ep.core().pending_sends(bid), Ok(20));
    drive(&mut [&mut alice, &mut bob], |p| {
        p[0].results().len() == 20 && p[1].results().len() == 20
    })
    .await;
    one_result_each(&alice, &a_sends);
    one_result_each(&bob, &b_sends);
    // The hub keeps order (as an XMPP stream does between two JIDs): the data arrives
    // in the order it was sent, and the results come in that order too.
    drive(&mut [&mut alice, &mut bob], |p| {
        p[0].received().len() == 20 && p[1].received().len() == 20
    })
    .await;
    let got: Vec<Bytes> = bob.received().into_iter().map(|(_, d)| d).collect();
    assert_eq!(
        got,
        (0..20u8)
            .map(|i| Bytes::from(vec![i; 10]))
            .collect::<Vec<_>>()
    );
    let order: Vec<SendId> = alice
        .results_in_order()
        .into_iter()
        .map(|(send, _)| send)
        .collect();
    assert_eq!(order, a_sends);
    alice.ep.end(id).expect("end");
    drive(&mut [&mut alice, &mut bob], |p| {
        p[1].ep.core().state(bid) == Ok(CustomState::Ended)
    })
    .await;
}

#[tokio::test]
async fn message_mode_three_participants_one_ejected() {
    let hub = SignalingHub::new();
    let mut owner = Party::new(&hub, "owner@x/1");
    let mut p1 = Party::new(&hub, "p1@x/1");
    let mut p2 = Party::new(&hub, "p2@x/1");
    let mut p3 = Party::new(&hub, "p3@x/1");
    let id = owner.ep.sessions().create(uuid()).expect("create");
    owner
        .ep
        .sessions()
        .set_mode(id, Mode::Message)
        .expect("mode");
    owner.ep.sessions().set_name(id, "ops").expect("name");
    for p in ["p1@x/1", "p2@x/1", "p3@x/1"] {
        owner.ep.invite(id, jid(p)).await.expect("invite");
    }
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1..].iter().all(|x| x.proposal().is_some())
    })
    .await;
    let ids: Vec<CustomId> = [&p1, &p2, &p3]
        .iter()
        .map(|p| p.proposal().expect("proposal"))
        .collect();
    for (p, pid) in [(&mut p1, ids[0]), (&mut p2, ids[1]), (&mut p3, ids[2])] {
        assert_eq!(p.ep.sessions().name(pid), Ok(Some("ops")));
        p.ep.accept(pid).expect("accept");
    }
    // Everyone is in the message session: each sees the three others.
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[0].ep.core().participants(id).map(|v| v.len()) == Ok(3)
            && p[1].ep.core().participants(ids[0]).map(|v| v.len()) == Ok(3)
            && p[2].ep.core().participants(ids[1]).map(|v| v.len()) == Ok(3)
            && p[3].ep.core().participants(ids[2]).map(|v| v.len()) == Ok(3)
    })
    .await;

    let to_all = owner
        .ep
        .send_data(id, None, &b"hello all"[..])
        .expect("send");
    let private = p1
        .ep
        .send_data(ids[0], Some(&jid("p2@x/1")), &b"psst p2"[..])
        .expect("send");
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1].received().len() == 1 && p[2].received().len() == 2 && p[3].received().len() == 1
    })
    .await;
    // Two senders: the arrival order between them is not fixed.
    let mut got = p2.received();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("owner@x/1".to_owned(), Bytes::from_static(b"hello all")),
            ("p1@x/1".to_owned(), Bytes::from_static(b"psst p2")),
        ]
    );
    assert_eq!(
        p1.received(),
        vec![("owner@x/1".to_owned(), Bytes::from_static(b"hello all"))]
    );
    assert_eq!(
        p3.received(),
        vec![("owner@x/1".to_owned(), Bytes::from_static(b"hello all"))]
    );

    // Over 64 KiB is refused before anything is sent.
    assert!(matches!(
        owner.ep.send_data(id, None, vec![0u8; 64 * 1024 + 1]),
        Err(EndpointError::Custom(_))
    ));

    owner.ep.eject(id, &jid("p3@x/1")).expect("eject");
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[3].ep.core().state(ids[2]) == Ok(CustomState::Ended)
            && p[1]
                .has(|e| matches!(e, Event::ParticipantLeft { peer, .. } if *peer == jid("p3@x/1")))
            && p[2]
                .has(|e| matches!(e, Event::ParticipantLeft { peer, .. } if *peer == jid("p3@x/1")))
    })
    .await;
    assert!(owner.has(|e| matches!(e,
        Event::ParticipantLeft { peer, ejected: true, .. } if *peer == jid("p3@x/1"))));

    let after = owner
        .ep
        .send_data(id, None, &b"without p3"[..])
        .expect("send");
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1].received().len() == 2 && p[2].received().len() == 3
    })
    .await;
    assert_eq!(
        p3.received().len(),
        1,
        "an ejected participant gets nothing more"
    );
    one_result_each(&owner, &[to_all, after]);
    one_result_each(&p1, &[private]);
    assert_eq!(owner.ep.sessions().state(id), Ok(CustomState::Online));

    // p1 leaves on its own: everyone else sees it go, not as an ejection.
    p1.ep.end(ids[0]).expect("leave");
    let left = |p: &Party| {
        p.has(|e| matches!(e, Event::ParticipantLeft { peer, ejected: false, .. } if *peer == jid("p1@x/1")))
    };
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        left(&*p[0]) && left(&*p[2])
    })
    .await;
    assert_eq!(
        owner.ep.core().participants(id).expect("participants"),
        vec![jid("p2@x/1")]
    );

    owner.ep.end(id).expect("end");
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[2].ep.core().state(ids[1]) == Ok(CustomState::Ended)
    })
    .await;
    assert_eq!(p1.ep.core().state(ids[0]), Ok(CustomState::Ended));
}

#[tokio::test]
async fn streams_mode_authenticated_stream_and_a_wrong_secret() {
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@x/1");
    let mut bob = Party::new(&hub, "bob@x/1");
    let id = alice.ep.sessions().create(uuid()).expect("create");
    alice
        .ep
        .sessions()
        .set_mode(id, Mode::Streams)
        .expect("mode");
    let bid = invite_bob(&mut alice, &mut bob, id).await;
    assert_eq!(bob.ep.sessions().mode(bid), Ok(Mode::Streams));
    bob.ep.accept(bid).expect("accept");
    both_online(&mut alice, &mut bob, id, bid).await;
    // send_data does not apply in Streams mode.
    assert!(matches!(
        bob.ep.send_data(bid, None, &b"x"[..]),
        Err(EndpointError::Custom(_))
    ));

    // Someone who knows the address but not the secret is refused.
    let addr = bob
        .ep
        .sessions()
        .transport(bid)
        .expect("transport")
        .expect("address")
        .addr;
    let intruder = async {
        let s = TcpStream::connect(addr).await.expect("connect");
        streams::connect(s, &[7u8; 32], &StreamConfig::default()).await
    };
    let (owner_side, intruder_side) = tokio::join!(alice.ep.stream(id), intruder);
    assert!(matches!(
        owner_side,
        Err(EndpointError::Auth(AuthError::BadProof))
    ));
    assert!(intruder_side.is_err());

    // The invitee, who got the secret over signaling, is let in.
    let (a, b) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(alice.ep.stream(id), bob.ep.stream(bid))
    })
    .await
    .expect("deadline");
    let mut a = a.expect("owner stream");
    let mut b = b.expect("invitee stream");
    a.write_all(b"from alice").await.expect("write");
    b.write_all(b"from bob").await.expect("write");
    let mut buf = [0u8; 10];
    b.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"from alice");
    let mut buf = [0u8; 8];
    a.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"from bob");
}

#[tokio::test]
async fn the_endpoint_wakes_for_its_timers_when_a_peer_stops_answering() {
    let hub = SignalingHub::new();
    let mut alice = Party::with_reply_timeout(&hub, "alice@x/1", Duration::from_millis(300));
    let mut bob = Party::new(&hub, "bob@x/1");
    let id = alice.ep.sessions().create(uuid()).expect("create");
    let bid = invite_bob(&mut alice, &mut bob, id).await;
    bob.ep.accept(bid).expect("accept");
    drive(&mut [&mut alice, &mut bob], |p| {
        p[0].ep.core().state(id) == Ok(CustomState::Online)
    })
    .await;

    // Bob stays connected but is no longer driven: his inbox fills, nobody answers.
    // No IQ will arrive for alice, so only her reply timer can end the wait.
    let sends: Vec<SendId> = (0..3u8)
        .map(|i| alice.ep.send_data(id, None, vec![i]).expect("send"))
        .collect();
    let settled = |p: &Party| {
        p.log
            .iter()
            .filter(|e| matches!(e, Event::SendResult { .. }))
            .count()
    };
    drive(&mut [&mut alice], |p| settled(&*p[0]) == 3).await;
    let results = alice.results_in_order();
    assert_eq!(
        results.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        sends,
        "one result per send"
    );
    // The first IQ's timer fires first; the others, sent microseconds later, time out
    // with it or fail because the session ended.
    assert_eq!(
        results[0].1,
        Err(SendFailure::Signaling(RequestFailure::Timeout))
    );
    for (_, r) in &results[1..] {
        assert!(
            matches!(
                r,
                Err(SendFailure::Signaling(RequestFailure::Timeout) | SendFailure::SessionEnded)
            ),
            "{r:?}"
        );
    }
    assert_eq!(alice.ep.core().state(id), Ok(CustomState::Ended));
    assert_eq!(alice.ep.core().pending_sends(id), Ok(0));
}
