//! MSRP end to end over real loopback sockets: offer/answer (as SDP lines or over
//! Jingle through the in-memory signaling hub), then CPIM chat directly and through
//! huddle's relay, file transfer with hash verification, and an interrupted transfer
//! resumed with `a=file-range`. Every message sent ends delivered or failed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use huddle_jingle::{Action, Creator, Jid};
use huddle_msrp::cpim::NameAddr;
use huddle_session::jingle::{Config, Event, SessionManager};
use huddle_session::msrp::chat::{ChatError, ChatEvent};
use huddle_session::msrp::driver::{DriverError, MsrpSessionHandle};
use huddle_session::msrp::file::{FileOffer, FileOutcome, FileReceiver, send_file};
use huddle_session::msrp::jingle::{MsrpJingle, content, descriptions, register_codec};
use huddle_session::msrp::negotiate::{
    MsrpDescription, MsrpMedia, MsrpNegotiation, NegotiateError, Negotiated, Role,
};
use huddle_session::msrp::{MessageOutcome, MsrpEvent, SendOptions};
use huddle_session::signaling::{HubEndpoint, Signaling, SignalingHub};
use huddle_transport::msrp::connect::RelaySettings;
use huddle_transport::msrp::{
    AcceptorDirect, AcceptorRelay, ConnectError, ConnectionPool, ConnectorActpass, ConnectorDirect,
    ConnectorRelay, MsrpConnector, TransportOptions,
};
use huddle_transport::relay::server::{CredentialStore, ListenerConfig, RelayServer, ServerConfig};

/// Generous: the machine is shared; a healthy run takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("deadline passed")
}

/// A relay configuration with one TCP listener on a loopback port.
fn loopback_config() -> ServerConfig {
    ServerConfig::new(vec![ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())])
}

/// huddle's relay with `config`, knowing alice (`secret`) and bob (`hunter2`).
async fn start_relay(config: ServerConfig) -> RelayServer {
    let mut creds = CredentialStore::new();
    creds.insert("alice", "secret");
    creds.insert("bob", "hunter2");
    RelayServer::start(config, creds).await.unwrap()
}

/// How `user` reaches `relay`, asking for a grant of `expires` seconds.
fn relay_settings(relay: &RelayServer, user: &str, pw: &str, expires: u32) -> RelaySettings {
    RelaySettings {
        relay_uri: relay.uri().clone(),
        username: user.to_owned(),
        password: pw.to_owned(),
        expires: Some(expires),
    }
}

fn name_addr(uri: &str) -> NameAddr {
    NameAddr::new(uri).unwrap()
}

/// Reads chat events until `DidEnd`; returns them all.
async fn drain_chat(h: &mut huddle_session::msrp::negotiate::MsrpChatHandle) -> Vec<ChatEvent> {
    let mut out = Vec::new();
    while let Some(ev) = within(h.next_event()).await {
        let end = ev == ChatEvent::DidEnd;
        out.push(ev);
        if end {
            break;
        }
    }
    out
}

/// Each id in `sent` has exactly one delivered-or-not event in `events`, and it is a
/// delivery.
fn assert_all_delivered(sent: &[String], events: &[ChatEvent]) {
    let mut outcomes: HashMap<&str, Vec<bool>> = HashMap::new();
    for ev in events {
        match ev {
            ChatEvent::DidDeliverMessage { message_id, .. } => {
                outcomes.entry(message_id).or_default().push(true)
            }
            ChatEvent::DidNotDeliverMessage { message_id, .. } => {
                outcomes.entry(message_id).or_default().push(false)
            }
            _ => {}
        }
    }
    for id in sent {
        assert_eq!(
            outcomes.get(id.as_str()).map(Vec::as_slice),
            Some(&[true][..]),
            "{id}: {events:#?}"
        );
    }
    assert_eq!(outcomes.len(), sent.len(), "outcomes for unknown messages");
}

/// The next incoming message; the events before it go to `seen`.
async fn next_message(
    h: &mut huddle_session::msrp::negotiate::MsrpChatHandle,
    seen: &mut Vec<ChatEvent>,
) -> ChatEvent {
    loop {
        let ev = within(h.next_event()).await.expect("chat ended");
        if matches!(ev, ChatEvent::GotMessage(_)) {
            return ev;
        }
        seen.push(ev);
    }
}

/// Two chat handles talk: each sends, each receives the other's CPIM message, both
/// end, every message is delivered.
async fn converse(
    mut a: huddle_session::msrp::negotiate::MsrpChatHandle,
    mut b: huddle_session::msrp::negotiate::MsrpChatHandle,
    a_uri: &str,
    b_uri: &str,
) {
    let id_a = a
        .send_message("hello bob", "text/plain", None, None)
        .await
        .unwrap();
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let got = next_message(&mut b, &mut seen_b).await;
    let ChatEvent::GotMessage(m) = got else {
        unreachable!()
    };
    assert_eq!(&m.content[..], b"hello bob");
    assert_eq!(m.content_type, "text/plain");
    assert_eq!(m.sender.as_deref(), Some(a_uri), "unwrapped CPIM From");
    assert!(!m.cpim_headers.is_empty(), "sent wrapped in CPIM");
    let id_b = b
        .send_message("hi alice", "text/plain", None, None)
        .await
        .unwrap();
    let ChatEvent::GotMessage(m) = next_message(&mut a, &mut seen_a).await else {
        unreachable!()
    };
    assert_eq!(&m.content[..], b"hi alice");
    assert_eq!(m.sender.as_deref(), Some(b_uri));
    a.end().await.unwrap();
    // Alice's end may close the connection first (direct): Bob's chat then ends by
    // itself (DidFail, DidEnd) and has nothing left to end.
    match b.end().await {
        Ok(()) | Err(ChatError::Ended) => {}
        Err(e) => panic!("{e}"),
    }
    let (rest_a, rest_b) = tokio::join!(drain_chat(&mut a), drain_chat(&mut b));
    seen_a.extend(rest_a);
    seen_b.extend(rest_b);
    let (ev_a, ev_b) = (seen_a, seen_b);
    assert_all_delivered(&[id_a], &ev_a);
    assert_all_delivered(&[id_b], &ev_b);
    assert_eq!(ev_a.last(), Some(&ChatEvent::DidEnd));
    assert_eq!(ev_b.last(), Some(&ChatEvent::DidEnd));
}

// ------------------------------------------------------------------ Jingle signaling

struct Party {
    manager: SessionManager,
    endpoint: HubEndpoint,
    msrp: MsrpJingle,
    events: Vec<Event>,
}

impl Party {
    fn new(hub: &SignalingHub, jid: &str) -> Party {
        let jid = Jid::new(jid).unwrap();
        let mut cfg = Config::new(jid.clone());
        register_codec(&mut cfg.codec.registry);
        let mut manager = SessionManager::new(cfg);
        let msrp = MsrpJingle::new();
        msrp.register(&mut manager);
        Party {
            manager,
            endpoint: hub.connect(jid),
            msrp,
            events: Vec::new(),
        }
    }
}

/// Moves IQs until both sides are quiet. Every IQ crosses as XML and is parsed with
/// the receiver's codec, as over a real XMPP connection.
fn exchange(a: &mut Party, b: &mut Party) {
    loop {
        let now = Instant::now();
        let mut moved = false;
        for p in [&mut *a, &mut *b] {
            while let Some(iq) = p.manager.poll_transmit(now) {
                p.endpoint.send(iq).unwrap();
            }
        }
        for p in [&mut *a, &mut *b] {
            while let Some(iq) = p.endpoint.try_recv() {
                moved = true;
                // A malformed request is answered (bad-request) by the manager itself.
                let _ = p.manager.handle_xml(iq.to_xml().as_bytes(), now);
            }
            while let Some(ev) = p.manager.poll_event() {
                p.events.push(ev);
            }
        }
        if !moved {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpim_chat_negotiated_over_jingle_runs_over_loopback() {
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@example.com/a");
    let mut bob = Party::new(&hub, "bob@example.com/b");

    // Alice offers a chat in a session-initiate.
    let mut neg_a = MsrpNegotiation::new(
        ConnectorDirect::new(TransportOptions::default()),
        Role::Active,
    );
    let offer = neg_a.offer(MsrpDescription::chat()).await.unwrap();
    let sid = alice
        .manager
        .start(
            bob.manager.jid().clone(),
            vec![content(Creator::Initiator, "chat", &offer)],
        )
        .unwrap();
    exchange(&mut alice, &mut bob);
    assert!(
        bob.events
            .iter()
            .any(|e| matches!(e, Event::Incoming { sid: s, .. } if *s == sid))
    );

    // Bob reads the offer his handler kept, answers it and accepts the session.
    let offers = bob.msrp.take_offer(&sid).expect("offer kept");
    assert_eq!(offers.len(), 1);
    let (name, their_offer) = offers.into_iter().next().unwrap();
    assert_eq!(name, "chat");
    assert_eq!(their_offer, offer, "the description survives XML");
    let mut neg_b = MsrpNegotiation::new(
        AcceptorDirect::new(TransportOptions::default()),
        Role::Passive,
    );
    let answer = neg_b
        .answer(&their_offer, MsrpDescription::chat())
        .await
        .unwrap();
    bob.msrp.set_answer(&sid, vec![(name, answer.clone())]);
    bob.manager.accept(&sid).unwrap();
    exchange(&mut alice, &mut bob);

    // Alice finds the answer in the session-accept.
    let accept = alice
        .events
        .iter()
        .find_map(|e| match e {
            Event::Received { jingle, .. } if jingle.action == Action::SessionAccept => {
                Some(jingle.clone())
            }
            _ => None,
        })
        .expect("session-accept received");
    let answers = descriptions(&accept).unwrap();
    assert_eq!(answers, vec![("chat".to_owned(), answer)]);

    let (na, nb) = tokio::join!(neg_a.complete(&answers[0].1), neg_b.complete(&their_offer));
    let (na, nb) = (na.unwrap(), nb.unwrap());
    let a_uri = "sip:alice@example.com";
    let b_uri = "sip:bob@example.com";
    let ha = na.spawn_chat(name_addr(a_uri), name_addr(b_uri));
    let hb = nb.spawn_chat(name_addr(b_uri), name_addr(a_uri));
    converse(ha, hb, a_uri, b_uri).await;

    alice.manager.end(&sid, None, false).unwrap();
    exchange(&mut alice, &mut bob);
    assert!(
        bob.events
            .iter()
            .any(|e| matches!(e, Event::Terminated { by_peer: true, .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jingle_offer_that_is_not_msrp_enough_is_refused() {
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@example.com/a");
    let mut bob = Party::new(&hub, "bob@example.com/b");
    // An MSRP description with a malformed attribute: Bob's codec refuses the
    // session-initiate (bad-request) and Alice's request fails.
    let mut bad = MsrpDescription::chat();
    bad.attributes
        .other
        .push(huddle_msrp::sdp::Attribute::Other {
            name: "max-size".into(),
            value: Some("lots".into()),
        });
    let sid = alice
        .manager
        .start(
            bob.manager.jid().clone(),
            vec![content(Creator::Initiator, "chat", &bad)],
        )
        .unwrap();
    exchange(&mut alice, &mut bob);
    assert!(bob.msrp.take_offer(&sid).is_none());
    assert!(
        alice.events.iter().any(|e| matches!(
            e,
            Event::RequestFailed {
                action: Action::SessionInitiate,
                ..
            }
        )),
        "{:#?}",
        alice.events
    );
}

// ------------------------------------------------------------------ SDP-style, relay

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpim_chat_through_huddles_relay_with_sdp_lines() {
    let relay = start_relay(loopback_config()).await;
    let settings = |user: &str, pw: &str| relay_settings(&relay, user, pw, 600);
    let mut neg_a = MsrpNegotiation::new(
        ConnectorRelay::new(settings("alice", "secret"), TransportOptions::default()),
        Role::Active,
    );
    let mut neg_b = MsrpNegotiation::new(
        AcceptorRelay::new(settings("bob", "hunter2"), TransportOptions::default()),
        Role::Passive,
    );
    // The descriptions cross as SDP attribute lines.
    let offer_lines = neg_a
        .offer(MsrpDescription::chat())
        .await
        .unwrap()
        .to_lines();
    assert!(offer_lines.iter().any(|l| l == "a=setup:active"));
    let offer =
        MsrpDescription::from_lines(MsrpMedia::Chat, offer_lines.iter().map(String::as_str))
            .unwrap();
    assert_eq!(
        offer.attributes.path.as_ref().unwrap().len(),
        2,
        "relay + alice"
    );
    let answer_lines = neg_b
        .answer(&offer, MsrpDescription::chat())
        .await
        .unwrap()
        .to_lines();
    let answer =
        MsrpDescription::from_lines(MsrpMedia::Chat, answer_lines.iter().map(String::as_str))
            .unwrap();
    let (na, nb) = tokio::join!(neg_a.complete(&answer), neg_b.complete(&offer));
    let (na, nb) = (na.unwrap(), nb.unwrap());
    let a_uri = "sip:alice@example.com";
    let b_uri = "sip:bob@example.com";
    converse(
        na.spawn_chat(name_addr(a_uri), name_addr(b_uri)),
        nb.spawn_chat(name_addr(b_uri), name_addr(a_uri)),
        a_uri,
        b_uri,
    )
    .await;
    relay.shutdown().await;
}

/// Waits until `n` relay refreshes were reported on `h` (other events are kept).
async fn refreshes(h: &mut MsrpSessionHandle, n: usize, seen: &mut Vec<MsrpEvent>) {
    let mut got = 0;
    while got < n {
        let ev = within(h.next_event()).await.expect("session ended");
        match ev {
            MsrpEvent::RelayRefreshed { .. } => got += 1,
            MsrpEvent::RelayAuthFailed { error } => panic!("refresh failed: {error}"),
            other => seen.push(other),
        }
    }
}

/// The body of the next incoming message (from `seen` first, then from `h`).
async fn body(h: &mut MsrpSessionHandle, seen: &mut Vec<MsrpEvent>) -> bytes::Bytes {
    if let Some(p) = seen
        .iter()
        .position(|e| matches!(e, MsrpEvent::Message { .. }))
        && let MsrpEvent::Message { body, .. } = seen.remove(p)
    {
        return body;
    }
    loop {
        match within(h.next_event()).await.expect("session ended") {
            MsrpEvent::Message { body, .. } => return body,
            MsrpEvent::RelayAuthFailed { error } => panic!("refresh failed: {error}"),
            _ => {}
        }
    }
}

/// RFC 4976 §5.1: grants handed to the session driver are refreshed before they expire,
/// on the session's own connection, for as long as the session lives. huddle's relay
/// grants 2 s (the 1 s asked for is refused with 423 first), forgets nonces after
/// 500 ms (each refresh meets a 401 stale challenge first), tolerates two failed AUTHs
/// per connection, and drops sessions whose grant ran out: messages sent after three refreshes, long after the first grant
/// ended, still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_driver_refreshes_the_relay_grant() {
    let mut config = loopback_config();
    config.relay.min_expires = 2;
    config.relay.nonce_lifetime = Duration::from_millis(500);
    config.relay.tick = Duration::from_millis(50);
    // Each refresh meets a stale nonce: a relay that counted those as failures would
    // close the connection at the third.
    config.relay.max_auth_failures = 2;
    let relay = start_relay(config).await;
    let settings = |user: &str, pw: &str| relay_settings(&relay, user, pw, 1);
    let neg_a = MsrpNegotiation::new(
        ConnectorRelay::new(settings("alice", "secret"), TransportOptions::default()),
        Role::Active,
    );
    let neg_b = MsrpNegotiation::new(
        AcceptorRelay::new(settings("bob", "hunter2"), TransportOptions::default()),
        Role::Passive,
    );
    let (na, nb) = negotiate_chat(neg_a, neg_b).await;
    let first = na.relay_grant().expect("bound through a relay").clone();
    assert_eq!(first.expires, Some(Duration::from_secs(2)), "423 honoured");
    let first_end = first.expires_at().unwrap();
    let (mut a, mut b) = (na.spawn(), nb.spawn());
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    tokio::join!(
        refreshes(&mut a, 3, &mut seen_a),
        refreshes(&mut b, 3, &mut seen_b)
    );
    assert!(
        Instant::now() > first_end,
        "three refreshes outlast the first grant"
    );
    // The relay still carries the session both ways.
    let (ra, rb) = tokio::join!(
        a.deliver("text/plain", "still here", SendOptions::default()),
        b.deliver("text/plain", "me too", SendOptions::default()),
    );
    let delivered = MessageOutcome::Delivered {
        confirmation: huddle_session::msrp::Confirmation::Responses,
    };
    assert_eq!(ra.unwrap().1, delivered);
    assert_eq!(rb.unwrap().1, delivered);
    assert_eq!(&body(&mut b, &mut seen_b).await[..], b"still here");
    assert_eq!(&body(&mut a, &mut seen_a).await[..], b"me too");
    let metrics = relay.metrics().await.unwrap();
    assert_eq!(metrics.sessions_expired, 0, "{metrics:?}");
    assert_eq!(
        metrics.sessions_created, 2,
        "refreshed in place: {metrics:?}"
    );
    assert!(
        metrics.auth_challenges >= 4,
        "stale nonces re-challenged: {metrics:?}"
    );
    let (sa, sb) = within(async { tokio::join!(a.shutdown(), b.shutdown()) }).await;
    for r in [sa, sb] {
        assert!(matches!(r, Ok(()) | Err(DriverError::Ended)), "{r:?}");
    }
    relay.shutdown().await;
}

// ------------------------------------------------------------------ a=setup:actpass

/// Offers chat from `off`, answers it on `ans` and completes both sides.
async fn negotiate_chat<A: MsrpConnector, B: MsrpConnector>(
    mut off: MsrpNegotiation<A>,
    ans: MsrpNegotiation<B>,
) -> (Negotiated, Negotiated) {
    let offer = off.offer(MsrpDescription::chat()).await.unwrap();
    answer_and_complete(off, ans, &offer).await
}

/// Answers `offer` (made by `off`) with chat on `ans`, then completes both sides.
async fn answer_and_complete<A: MsrpConnector, B: MsrpConnector>(
    off: MsrpNegotiation<A>,
    mut ans: MsrpNegotiation<B>,
    offer: &MsrpDescription,
) -> (Negotiated, Negotiated) {
    let answer = ans.answer(offer, MsrpDescription::chat()).await.unwrap();
    complete_both(off, ans, offer, &answer).await
}

/// Completes the offerer with `answer` and the answerer with `offer`, concurrently.
async fn complete_both<A: MsrpConnector, B: MsrpConnector>(
    off: MsrpNegotiation<A>,
    ans: MsrpNegotiation<B>,
    offer: &MsrpDescription,
    answer: &MsrpDescription,
) -> (Negotiated, Negotiated) {
    let (na, nb) = tokio::join!(off.complete(answer), ans.complete(offer));
    (na.unwrap(), nb.unwrap())
}

/// Spawns both sides, delivers one message each way and checks both arrive.
async fn both_ways(na: Negotiated, nb: Negotiated) {
    let (mut a, mut b) = (na.spawn(), nb.spawn());
    let (ra, rb) = tokio::join!(
        within(a.deliver("text/plain", "from the offerer", SendOptions::default())),
        within(b.deliver("text/plain", "from the answerer", SendOptions::default())),
    );
    assert!(matches!(ra.unwrap().1, MessageOutcome::Delivered { .. }));
    assert!(matches!(rb.unwrap().1, MessageOutcome::Delivered { .. }));
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    assert_eq!(&body(&mut b, &mut seen_b).await[..], b"from the offerer");
    assert_eq!(&body(&mut a, &mut seen_a).await[..], b"from the answerer");
    // Whichever side closes first ends the other's session (connection lost): both end.
    let (sa, sb) = within(async { tokio::join!(a.shutdown(), b.shutdown()) }).await;
    for r in [sa, sb] {
        assert!(matches!(r, Ok(()) | Err(DriverError::Ended)), "{r:?}");
    }
}

/// An offerer that can play either role offers `a=setup:actpass` (RFC 4145 §4.1,
/// RFC 6135 §4) and does what the answer leaves to it: it accepts when the answerer is
/// active and connects when the answerer is passive; an actpass answerer chooses active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actpass_offerer_connects_or_accepts_as_the_answer_says() {
    let opts = TransportOptions::default;
    // 1. The answerer connects: the offerer accepts on the port in its a=path.
    let mut off = MsrpNegotiation::actpass(ConnectorActpass::direct(opts())).unwrap();
    let mut ans = MsrpNegotiation::new(ConnectorDirect::new(opts()), Role::Active);
    let offer = off.offer(MsrpDescription::chat()).await.unwrap();
    assert!(offer.to_lines().iter().any(|l| l == "a=setup:actpass"));
    assert!(off.role_open());
    let answer = ans.answer(&offer, MsrpDescription::chat()).await.unwrap();
    assert!(answer.to_lines().iter().any(|l| l == "a=setup:active"));
    let (na, nb) = complete_both(off, ans, &offer, &answer).await;
    assert_eq!((na.role(), nb.role()), (Role::Passive, Role::Active));
    both_ways(na, nb).await;

    // 2. The answerer listens: the offerer connects to it, from the URI it offered.
    let mut off = MsrpNegotiation::actpass(ConnectorActpass::direct(opts())).unwrap();
    let mut ans = MsrpNegotiation::new(AcceptorDirect::new(opts()), Role::Passive);
    let offer = off.offer(MsrpDescription::chat()).await.unwrap();
    let answer = ans.answer(&offer, MsrpDescription::chat()).await.unwrap();
    assert!(answer.to_lines().iter().any(|l| l == "a=setup:passive"));
    let (na, nb) = complete_both(off, ans, &offer, &answer).await;
    assert_eq!((na.role(), nb.role()), (Role::Active, Role::Passive));
    both_ways(na, nb).await;

    // 3. Both can do either: the answerer picks active.
    let mut off = MsrpNegotiation::actpass(ConnectorActpass::direct(opts())).unwrap();
    let mut ans = MsrpNegotiation::actpass(ConnectorActpass::direct(opts())).unwrap();
    let offer = off.offer(MsrpDescription::chat()).await.unwrap();
    let answer = ans.answer(&offer, MsrpDescription::chat()).await.unwrap();
    assert_eq!(ans.role(), Role::Active);
    assert!(answer.to_lines().iter().any(|l| l == "a=setup:active"));
    let (na, nb) = complete_both(off, ans, &offer, &answer).await;
    assert_eq!((na.role(), nb.role()), (Role::Passive, Role::Active));
    both_ways(na, nb).await;

    // 4. An answer must choose: actpass in an answer is refused, typed.
    let mut off = MsrpNegotiation::actpass(ConnectorActpass::direct(opts())).unwrap();
    let offer = off.offer(MsrpDescription::chat()).await.unwrap();
    let mut bad = offer.clone();
    bad.attributes.setup = Some(huddle_msrp::sdp::Setup::ActPass);
    assert!(matches!(
        off.complete(&bad).await,
        Err(NegotiateError::Mismatch(_))
    ));
    // A connector with a fixed role cannot offer actpass.
    assert!(matches!(
        MsrpNegotiation::actpass(ConnectorDirect::new(opts())),
        Err(NegotiateError::Connect(ConnectError::RoleFixed))
    ));
}

/// The same through huddle's relay: the actpass offerer sends the binding SEND on its
/// relay connection when the answerer is passive, and waits for it when it is active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actpass_offerer_through_a_relay_takes_either_role() {
    let relay = start_relay(loopback_config()).await;
    let settings = |user: &str, pw: &str| relay_settings(&relay, user, pw, 600);
    let opts = TransportOptions::default;
    for answerer_active in [false, true] {
        let mut off =
            MsrpNegotiation::actpass(ConnectorActpass::relay(settings("alice", "secret"), opts()))
                .unwrap();
        let offer = off.offer(MsrpDescription::chat()).await.unwrap();
        assert_eq!(offer.attributes.path.as_ref().unwrap().len(), 2);
        let bob = settings("bob", "hunter2");
        let (na, nb) = if answerer_active {
            let ans = MsrpNegotiation::new(ConnectorRelay::new(bob, opts()), Role::Active);
            answer_and_complete(off, ans, &offer).await
        } else {
            let ans = MsrpNegotiation::new(AcceptorRelay::new(bob, opts()), Role::Passive);
            answer_and_complete(off, ans, &offer).await
        };
        let expected = if answerer_active {
            Role::Passive
        } else {
            Role::Active
        };
        assert_eq!(na.role(), expected);
        both_ways(na, nb).await;
    }
    relay.shutdown().await;
}

// ------------------------------------------------------------------ shared connections

/// Two MSRP sessions from alice through huddle's relay over one TCP connection
/// (RFC 4975 §5.4): her connectors share a `ConnectionPool`; each session is negotiated,
/// driven and delivers both ways as usual, and the relay sees one connection from her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_share_alices_relay_connection() {
    let relay = start_relay(loopback_config()).await;
    let settings = |user: &str, pw: &str| relay_settings(&relay, user, pw, 600);
    let pool = ConnectionPool::new();
    let mut negotiated = Vec::new();
    for _ in 0..2 {
        let neg_a = MsrpNegotiation::new(
            ConnectorRelay::new(settings("alice", "secret"), TransportOptions::default())
                .with_pool(pool.clone()),
            Role::Active,
        );
        let neg_b = MsrpNegotiation::new(
            AcceptorRelay::new(settings("bob", "hunter2"), TransportOptions::default()),
            Role::Passive,
        );
        negotiated.push(negotiate_chat(neg_a, neg_b).await);
    }
    assert_eq!(pool.connections().await, 1);
    let (first, second) = (negotiated.remove(0), negotiated.remove(0));
    tokio::join!(both_ways(first.0, first.1), both_ways(second.0, second.1));
    let m = relay.metrics().await.unwrap();
    assert_eq!(m.connections_accepted, 3, "alice 1, bob 2: {m:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_answer_checks_the_peer_description() {
    let mut neg = MsrpNegotiation::new(
        AcceptorDirect::new(TransportOptions::default()),
        Role::Passive,
    );
    // RFC 4975 §8.1: no path.
    let no_path = MsrpDescription::chat();
    assert!(matches!(
        neg.answer(&no_path, MsrpDescription::chat()).await,
        Err(NegotiateError::MissingPath)
    ));
    // Both passive.
    let mut other = MsrpNegotiation::new(
        AcceptorDirect::new(TransportOptions::default()),
        Role::Passive,
    );
    let passive_offer = other.offer(MsrpDescription::chat()).await.unwrap();
    assert!(matches!(
        neg.answer(&passive_offer, MsrpDescription::chat()).await,
        Err(NegotiateError::SetupConflict(Role::Passive))
    ));
    // Chat against file.
    let mut file_desc = passive_offer.clone();
    file_desc.media = MsrpMedia::File;
    let mut active = MsrpNegotiation::new(
        ConnectorDirect::new(TransportOptions::default()),
        Role::Active,
    );
    assert!(matches!(
        active.answer(&file_desc, MsrpDescription::chat()).await,
        Err(NegotiateError::Mismatch(_))
    ));
    other.cleanup();
}

// ------------------------------------------------------------------ file transfer

fn temp_file(tag: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("huddle-msrp-e2e-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A deterministic pseudo-random body (xorshift), so no two chunks look alike.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = dir.join("payload.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

/// Negotiates a file transfer directly (Alice sends, active; Bob receives, passive).
async fn negotiate_file(
    offer: &FileOffer,
) -> (
    huddle_session::msrp::negotiate::Negotiated,
    huddle_session::msrp::negotiate::Negotiated,
) {
    let mut neg_a = MsrpNegotiation::new(
        ConnectorDirect::new(TransportOptions::default()),
        Role::Active,
    );
    let mut neg_b = MsrpNegotiation::new(
        AcceptorDirect::new(TransportOptions::default()),
        Role::Passive,
    );
    let sdp_offer = neg_a.offer(MsrpDescription::file(offer)).await.unwrap();
    let receive = MsrpDescription {
        media: MsrpMedia::File,
        attributes: huddle_msrp::sdp::MsrpAttributes {
            accept_types: Some(vec!["*".into()]),
            ..Default::default()
        },
    };
    let sdp_answer = neg_b.answer(&sdp_offer, receive).await.unwrap();
    // RFC 5547 §8: the answer echoes the file description.
    assert_eq!(
        sdp_answer.attributes.file_selector,
        sdp_offer.attributes.file_selector
    );
    let (na, nb) = tokio::join!(neg_a.complete(&sdp_answer), neg_b.complete(&sdp_offer));
    (na.unwrap(), nb.unwrap())
}

async fn outcome_of(h: &mut MsrpSessionHandle, id: &str) -> MessageOutcome {
    loop {
        match within(h.next_event()).await.expect("session ended first") {
            MsrpEvent::Outcome {
                message_id,
                outcome,
            } if message_id == id => return outcome,
            _ => {}
        }
    }
}

/// The outcome of `id` and how many chunks of it were written.
async fn outcome_counting(h: &mut MsrpSessionHandle, id: &str) -> (MessageOutcome, u64) {
    let mut chunks = 0;
    loop {
        match within(h.next_event()).await.expect("session ended first") {
            MsrpEvent::SendProgress { message_id, .. } if message_id == id => chunks += 1,
            MsrpEvent::Outcome {
                message_id,
                outcome,
            } if message_id == id => return (outcome, chunks),
            _ => {}
        }
    }
}

async fn wait_message(h: &mut MsrpSessionHandle) {
    loop {
        if let MsrpEvent::Message { .. } = within(h.next_event()).await.expect("ended first") {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_arrives_with_its_hash_verified() {
    let (src, data) = temp_file("whole", 300 * 1024 + 17);
    let dest = src.with_file_name("received.bin");
    let offer = FileOffer::for_file(&src, "application/octet-stream").unwrap();
    let (na, nb) = negotiate_file(&offer).await;
    let their_offer = nb.remote().file_offer().expect("file offer");
    let receiver = FileReceiver::new(their_offer, &dest);
    let mut hb = nb.spawn_with(|s| receiver.attach(s).unwrap());
    let mut id = None;
    let mut ha = na.spawn_with(|s| {
        id = Some(send_file(s, &offer, &src, SendOptions::default()).unwrap());
    });
    let id = id.unwrap();
    wait_message(&mut hb).await;
    assert_eq!(
        receiver.complete().unwrap(),
        FileOutcome::Complete {
            size: data.len() as u64,
            verified: true
        }
    );
    assert!(matches!(
        outcome_of(&mut ha, &id).await,
        MessageOutcome::Delivered { .. }
    ));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    within(ha.shutdown()).await.unwrap();
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_reported_by_the_hash() {
    let (src, _) = temp_file("corrupt", 20 * 1024);
    let dest = src.with_file_name("received.bin");
    let mut offer = FileOffer::for_file(&src, "application/octet-stream").unwrap();
    // The announced hash is not the file's.
    offer.selector.hashes[0].value[0] ^= 0xff;
    let (na, nb) = negotiate_file(&offer).await;
    let receiver = FileReceiver::new(nb.remote().file_offer().unwrap(), &dest);
    let mut hb = nb.spawn_with(|s| receiver.attach(s).unwrap());
    let mut id = None;
    let mut ha = na.spawn_with(|s| {
        id = Some(send_file(s, &offer, &src, SendOptions::default()).unwrap());
    });
    wait_message(&mut hb).await;
    assert_eq!(receiver.complete().unwrap(), FileOutcome::Corrupt);
    let _ = outcome_of(&mut ha, &id.unwrap()).await;
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_transfer_fails_visibly_then_resumes_with_file_range() {
    let len = 4 * 1024 * 1024;
    let (src, data) = temp_file("resume", len);
    let dest = src.with_file_name("received.bin");
    let offer = FileOffer::for_file(&src, "application/octet-stream").unwrap();

    // First attempt: the receiver goes away after a quarter of the file.
    let (na, nb) = negotiate_file(&offer).await;
    let receiver = FileReceiver::new(nb.remote().file_offer().unwrap(), &dest);
    let mut hb = nb.spawn_with(|s| receiver.attach(s).unwrap());
    let mut id = None;
    let mut ha = na.spawn_with(|s| {
        id = Some(send_file(s, &offer, &src, SendOptions::default()).unwrap());
    });
    loop {
        match within(hb.next_event()).await.expect("ended early") {
            MsrpEvent::ReceiveProgress { received, .. } if received >= (len / 4) as u64 => break,
            MsrpEvent::Message { .. } => panic!("the whole file arrived before the cut"),
            _ => {}
        }
    }
    drop(hb);
    // The sender sees the failure: the message ends, not delivered.
    assert!(matches!(
        outcome_of(&mut ha, &id.unwrap()).await,
        MessageOutcome::Failed { .. }
    ));
    let have = receiver.received_prefix();
    assert!(have >= (len / 4) as u64 && have < len as u64, "{have}");

    // Second attempt: RFC 5547 §8, the rest of the file from file-range.
    let resume = receiver.resume_offer();
    assert_eq!(resume.range.map(|r| r.start), Some(have + 1));
    let resumed_offer = offer.resumed_from(have + 1);
    let (na, nb) = negotiate_file(&resumed_offer).await;
    let their = nb.remote().file_offer().unwrap();
    assert_eq!(their.range, resumed_offer.range, "file-range crossed");
    let receiver = FileReceiver::new(their, &dest);
    let mut hb = nb.spawn_with(|s| receiver.attach(s).unwrap());
    let mut id = None;
    let mut ha = na.spawn_with(|s| {
        id = Some(send_file(s, &resumed_offer, &src, SendOptions::default()).unwrap());
    });
    // Both sides are read at once: a receiver whose events are not taken stops
    // reading its socket (backpressure).
    let id = id.unwrap();
    let ((outcome, chunks), ()) =
        tokio::join!(outcome_counting(&mut ha, &id), wait_message(&mut hb));
    assert!(
        matches!(outcome, MessageOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    // Only the missing range travelled: one progress event per chunk of at most
    // 2048 bytes (MsrpConfig's default).
    let missing = len as u64 - have;
    assert!(
        chunks > 0 && chunks <= missing.div_ceil(2048),
        "{chunks} chunks"
    );
    assert_eq!(
        receiver.complete().unwrap(),
        FileOutcome::Complete {
            size: len as u64,
            verified: true
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_transfer_negotiated_over_jingle_arrives_verified() {
    let (src, data) = temp_file("jingle", 64 * 1024 + 5);
    let dest = src.with_file_name("received.bin");
    let hub = SignalingHub::new();
    let mut alice = Party::new(&hub, "alice@example.com/a");
    let mut bob = Party::new(&hub, "bob@example.com/b");
    let file = FileOffer::for_file(&src, "image/png").unwrap();
    let mut neg_a = MsrpNegotiation::new(
        ConnectorDirect::new(TransportOptions::default()),
        Role::Active,
    );
    let offer = neg_a.offer(MsrpDescription::file(&file)).await.unwrap();
    let sid = alice
        .manager
        .start(
            bob.manager.jid().clone(),
            vec![content(Creator::Initiator, "file", &offer)],
        )
        .unwrap();
    exchange(&mut alice, &mut bob);
    let (name, their_offer) = bob.msrp.take_offer(&sid).unwrap().remove(0);
    assert_eq!(their_offer.media, MsrpMedia::File);
    assert_eq!(
        their_offer.file_offer().as_ref(),
        Some(&file),
        "RFC 5547 attributes survive XML"
    );
    let mut neg_b = MsrpNegotiation::new(
        AcceptorDirect::new(TransportOptions::default()),
        Role::Passive,
    );
    let receive = MsrpDescription {
        media: MsrpMedia::File,
        attributes: huddle_msrp::sdp::MsrpAttributes {
            accept_types: Some(vec!["image/*".into()]),
            ..Default::default()
        },
    };
    let answer = neg_b.answer(&their_offer, receive).await.unwrap();
    bob.msrp.set_answer(&sid, vec![(name, answer)]);
    bob.manager.accept(&sid).unwrap();
    exchange(&mut alice, &mut bob);
    let answer = alice
        .events
        .iter()
        .find_map(|e| match e {
            Event::Received { jingle, .. } if jingle.action == Action::SessionAccept => {
                Some(descriptions(jingle).unwrap().remove(0).1)
            }
            _ => None,
        })
        .expect("session-accept");
    let (na, nb) = tokio::join!(neg_a.complete(&answer), neg_b.complete(&their_offer));
    let (na, nb) = (na.unwrap(), nb.unwrap());
    let receiver = FileReceiver::new(their_offer.file_offer().unwrap(), &dest);
    let mut hb = nb.spawn_with(|s| receiver.attach(s).unwrap());
    let mut id = None;
    let mut ha = na.spawn_with(|s| {
        id = Some(send_file(s, &file, &src, SendOptions::default()).unwrap());
    });
    let id = id.unwrap();
    let (outcome, ()) = tokio::join!(outcome_of(&mut ha, &id), wait_message(&mut hb));
    assert!(
        matches!(outcome, MessageOutcome::Delivered { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        receiver.complete().unwrap(),
        FileOutcome::Complete {
            size: data.len() as u64,
            verified: true
        }
    );
    alice.manager.end(&sid, None, false).unwrap();
    exchange(&mut alice, &mut bob);
    let _ = std::fs::remove_dir_all(src.parent().unwrap());
}
