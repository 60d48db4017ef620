//! The sans-IO MSRP session and chat, two endpoints back to back with a simulated
//! clock and a network that can drop chunks. Invariant checked everywhere: every
//! message sent ends in exactly one outcome.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use huddle_msrp::cpim::NameAddr;
use huddle_msrp::{Chunk, Decoder, MsrpUri, ReportRequest, StatusCode};
use huddle_session::msrp::chat::{ChatEvent, RemoteCapabilities};
use huddle_session::msrp::{
    Confirmation, MessageOutcome, MsrpChat, MsrpConfig, MsrpEvent, MsrpSession, SendOptions,
};

fn uri(s: &str) -> MsrpUri {
    s.parse().unwrap()
}

/// alice and bob, and what each learns of the other: CPIM and plain text accepted, any
/// wrapped type, no private messages.
fn cpim_chat_parties() -> (NameAddr, NameAddr, RemoteCapabilities) {
    let alice = NameAddr::new("im:alice@example.com").unwrap();
    let bob = NameAddr::new("im:bob@example.com").unwrap();
    let caps = RemoteCapabilities {
        accept_types: vec!["message/cpim".into(), "text/plain".into()],
        accept_wrapped_types: vec!["*".into()],
        private_messages: false,
    };
    (alice, bob, caps)
}

fn pair(max_chunk: usize) -> (MsrpSession, MsrpSession) {
    let a = uri("msrp://127.0.0.1:7001/alice1;tcp");
    let b = uri("msrp://127.0.0.1:7002/bob22;tcp");
    let mut ca = MsrpConfig::new(vec![a.clone()], vec![b.clone()]);
    let mut cb = MsrpConfig::new(vec![b], vec![a]);
    ca.max_chunk_size = max_chunk;
    cb.max_chunk_size = max_chunk;
    (MsrpSession::new(ca), MsrpSession::new(cb))
}

fn wire(c: &Chunk) -> Chunk {
    let mut w = BytesMut::from(&c.to_bytes()[..]);
    Decoder::default().decode(&mut w).unwrap().unwrap()
}

/// Moves chunks both ways through encode/decode until quiet. `drop` decides per chunk
/// (from a to b) whether the network loses it.
fn pump(
    a: &mut MsrpSession,
    b: &mut MsrpSession,
    now: Instant,
    drop: &mut dyn FnMut(&Chunk) -> bool,
) {
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(c) = a.poll_transmit(now) {
            moved = true;
            if !drop(&c) {
                b.handle_chunk(wire(&c), now);
            }
        }
        while let Some(c) = b.poll_transmit(now) {
            moved = true;
            a.handle_chunk(wire(&c), now);
        }
        if !moved {
            return;
        }
    }
    panic!("livelock");
}

fn drain(s: &mut MsrpSession) -> Vec<MsrpEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn outcomes(events: &[MsrpEvent]) -> HashMap<String, Vec<MessageOutcome>> {
    let mut m: HashMap<String, Vec<MessageOutcome>> = HashMap::new();
    for e in events {
        if let MsrpEvent::Outcome {
            message_id,
            outcome,
        } = e
        {
            m.entry(message_id.clone())
                .or_default()
                .push(outcome.clone());
        }
    }
    m
}

const E2E: SendOptions = SendOptions {
    success_report: ReportRequest::Yes,
    failure_report: ReportRequest::Partial,
};

#[test]
fn message_in_chunks_is_delivered_with_responses_and_with_reports() {
    let (mut a, mut b) = pair(100);
    let now = Instant::now();
    let body: Vec<u8> = (0..1000).map(|i| (i % 200) as u8).collect();
    let m1 = a
        .send_message(
            "application/octet-stream",
            body.clone(),
            SendOptions::default(),
        )
        .unwrap();
    let m2 = a.send_message("text/plain", "hi", E2E).unwrap();
    pump(&mut a, &mut b, now, &mut |_| false);
    let got: Vec<_> = drain(&mut b)
        .into_iter()
        .filter_map(|e| match e {
            MsrpEvent::Message {
                message_id, body, ..
            } => Some((message_id, body.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.contains(&(m1.clone(), body)));
    let o = outcomes(&drain(&mut a));
    assert_eq!(
        o[&m1],
        vec![MessageOutcome::Delivered {
            confirmation: Confirmation::Responses
        }]
    );
    assert_eq!(
        o[&m2],
        vec![MessageOutcome::Delivered {
            confirmation: Confirmation::Report
        }]
    );
}

#[test]
fn silent_peer_times_out_with_408_or_report_timeout() {
    let (mut a, mut b) = pair(2048);
    let t0 = Instant::now();
    let m1 = a
        .send_message("text/plain", "lost", SendOptions::default())
        .unwrap();
    let m2 = a.send_message("text/plain", "lost too", E2E).unwrap();
    pump(&mut a, &mut b, t0, &mut |_| true);
    assert!(outcomes(&drain(&mut a)).is_empty());
    let deadline = a.poll_timeout().expect("a timer is armed");
    assert!(deadline <= t0 + Duration::from_secs(30));
    a.handle_timeout(t0 + Duration::from_secs(31));
    let o = outcomes(&drain(&mut a));
    assert!(matches!(
        &o[&m1][..],
        [MessageOutcome::Failed {
            code: StatusCode::REQUEST_TIMEOUT,
            ..
        }]
    ));
    assert!(matches!(
        &o[&m2][..],
        [MessageOutcome::Failed {
            code: StatusCode::REQUEST_TIMEOUT,
            ..
        }]
    ));
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn send_chunk_timeout_generates_408_or_200_per_failure_report() {
    let (mut a, _b) = pair(2048);
    let t0 = Instant::now();
    let to = vec![uri("msrp://127.0.0.1:7002/bob22;tcp")];
    let from = vec![uri("msrp://127.0.0.1:7001/alice1;tcp")];
    let build = |fr: Option<ReportRequest>| {
        let mut b = huddle_msrp::ChunkBuilder::send(&to, &from);
        if let Some(fr) = fr {
            b = b.reports(ReportRequest::No, fr);
        }
        b.data("text/plain", "x").build().unwrap()
    };
    let t_absent = a.send_chunk(build(None), t0);
    let t_no = a.send_chunk(build(Some(ReportRequest::No)), t0);
    let t_partial = a.send_chunk(build(Some(ReportRequest::Partial)), t0);
    a.handle_timeout(t0 + Duration::from_secs(30));
    let ev = drain(&mut a);
    let code = |t: &huddle_msrp::TransactionId| {
        ev.iter().find_map(|e| match e {
            MsrpEvent::Response {
                transaction_id,
                code,
                local: true,
            } if transaction_id == t => Some(*code),
            _ => None,
        })
    };
    assert_eq!(code(&t_absent), Some(StatusCode::REQUEST_TIMEOUT));
    assert_eq!(code(&t_no), Some(StatusCode::OK));
    assert_eq!(code(&t_partial), Some(StatusCode::OK));
}

#[test]
fn wrong_session_gets_481_and_unknown_method_501() {
    let (_a, mut b) = pair(2048);
    let now = Instant::now();
    let stranger = vec![uri("msrp://127.0.0.1:9999/zzz;tcp")];
    let to_b = vec![uri("msrp://127.0.0.1:7002/bob22;tcp")];
    let c = huddle_msrp::ChunkBuilder::send(&to_b, &stranger)
        .data("text/plain", "x")
        .build()
        .unwrap();
    b.handle_chunk(c, now);
    assert_eq!(
        b.poll_transmit(now).unwrap().status_code(),
        Some(StatusCode::SESSION_DOES_NOT_EXIST)
    );
    let from_a = vec![uri("msrp://127.0.0.1:7001/alice1;tcp")];
    let c = huddle_msrp::ChunkBuilder::request(huddle_msrp::Method::Extension("FROB".into()))
        .paths(&to_b, &from_a)
        .build()
        .unwrap();
    b.handle_chunk(c, now);
    assert_eq!(
        b.poll_transmit(now).unwrap().status_code(),
        Some(StatusCode::NOT_IMPLEMENTED)
    );
}

#[test]
fn unaccepted_media_type_fails_the_message_with_415() {
    let (mut a, b) = pair(2048);
    let now = Instant::now();
    let mut cfg = b.config().clone();
    cfg.accept_types = vec!["text/plain".into()];
    let mut b = MsrpSession::new(cfg);
    let m = a
        .send_message("image/png", vec![1u8, 2, 3], SendOptions::default())
        .unwrap();
    pump(&mut a, &mut b, now, &mut |_| false);
    let o = outcomes(&drain(&mut a));
    assert!(matches!(
        &o[&m][..],
        [MessageOutcome::Failed {
            code: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ..
        }]
    ));
}

#[test]
fn shutdown_flushes_then_closes_and_connection_loss_fails_everything() {
    let (mut a, mut b) = pair(10);
    let now = Instant::now();
    let m1 = a
        .send_message("text/plain", "0123456789abcdefghij", SendOptions::default())
        .unwrap();
    a.shutdown();
    assert!(
        a.send_message("text/plain", "late", SendOptions::default())
            .is_none()
    );
    pump(&mut a, &mut b, now, &mut |_| false);
    let ev = drain(&mut a);
    assert_eq!(outcomes(&ev)[&m1].len(), 1);
    assert_eq!(ev.last(), Some(&MsrpEvent::Closed));

    let (mut a, _) = pair(10);
    let m = a
        .send_message("text/plain", "never sent", SendOptions::default())
        .unwrap();
    a.handle_connection_lost();
    let ev = drain(&mut a);
    assert!(matches!(
        &outcomes(&ev)[&m][..],
        [MessageOutcome::Failed { .. }]
    ));
    assert_eq!(ev.last(), Some(&MsrpEvent::Closed));
}

#[test]
fn random_loss_never_loses_an_outcome() {
    for seed in 0..50u64 {
        let (mut a, mut b) = pair(64);
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for i in 0..10 {
            let opts = match i % 3 {
                0 => SendOptions::default(),
                1 => E2E,
                _ => SendOptions {
                    success_report: ReportRequest::Yes,
                    failure_report: ReportRequest::Yes,
                },
            };
            ids.push(
                a.send_message("text/plain", vec![b'x'; 50 + i * 37], opts)
                    .unwrap(),
            );
        }
        let mut s = seed;
        pump(&mut a, &mut b, t0, &mut |_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 60) < 3
        });
        let mut events = drain(&mut a);
        a.handle_timeout(t0 + Duration::from_secs(60));
        events.extend(drain(&mut a));
        let o = outcomes(&events);
        for id in &ids {
            assert_eq!(
                o.get(id).map(Vec::len),
                Some(1),
                "seed {seed}: message {id} has {:?}",
                o.get(id)
            );
        }
    }
}

#[test]
fn chat_wraps_in_cpim_queues_before_start_and_refuses_private_messages() {
    let (a, b) = pair(2048);
    let (alice, bob, caps) = cpim_chat_parties();
    let mut chat_a = MsrpChat::new(alice.clone(), bob.clone(), caps.clone());
    let mut chat_b = MsrpChat::new(bob, alice, caps);
    let id = chat_a
        .send_message("Hello, Bob", "text/plain", None, None)
        .unwrap();
    assert_eq!(
        chat_a.send_message(
            "psst",
            "text/plain",
            Some(NameAddr::new("im:carol@example.com").unwrap()),
            None
        ),
        Err(huddle_session::msrp::chat::ChatError::PrivateMessagesNotSupported)
    );
    chat_a.start(a);
    chat_b.start(b);
    let now = Instant::now();
    for _ in 0..10 {
        while let Some(c) = chat_a.session_mut().unwrap().poll_transmit(now) {
            assert_eq!(c.content_type(), Some("message/cpim"));
            chat_b.handle_chunk(wire(&c), now);
        }
        while let Some(c) = chat_b.session_mut().unwrap().poll_transmit(now) {
            chat_a.handle_chunk(wire(&c), now);
        }
    }
    let ev_b: Vec<_> = std::iter::from_fn(|| chat_b.poll_event()).collect();
    let got = ev_b
        .iter()
        .find_map(|e| match e {
            ChatEvent::GotMessage(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(&got.content[..], b"Hello, Bob");
    assert_eq!(got.content_type, "text/plain");
    assert_eq!(got.sender.as_deref(), Some("im:alice@example.com"));
    let ev_a: Vec<_> = std::iter::from_fn(|| chat_a.poll_event()).collect();
    assert!(ev_a.contains(&ChatEvent::DidStart));
    assert!(ev_a.iter().any(|e| matches!(e, ChatEvent::DidDeliverMessage { message_id, code: 200, .. } if *message_id == id)));
    chat_a.end();
    let ev_a: Vec<_> = std::iter::from_fn(|| chat_a.poll_event()).collect();
    assert_eq!(ev_a, vec![ChatEvent::WillEnd, ChatEvent::DidEnd]);
}

mod file_transfer {
    use super::*;
    use huddle_session::msrp::file::{FileOffer, FileOutcome, FileReceiver, send_file};

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("huddle-ft-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn file_is_sent_from_disk_verified_and_resumed_after_a_cut() {
        let dir = temp_dir("resume");
        let src = dir.join("photo.bin");
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        std::fs::write(&src, &data).unwrap();
        let offer = FileOffer::for_file(&src, "image/jpeg").unwrap();
        assert_eq!(offer.selector.size, Some(200_000));
        // The offer survives the SDP round trip.
        let lines: Vec<String> = offer
            .to_attributes()
            .iter()
            .map(|a| a.to_string())
            .collect();
        let attrs =
            huddle_msrp::sdp::MsrpAttributes::collect(lines.iter().map(String::as_str)).unwrap();
        let offer_rx = FileOffer::from_attributes(&attrs).unwrap();
        assert_eq!(offer_rx, offer);

        // First attempt: the connection is cut after 30 chunks.
        let dst = dir.join("received.bin");
        let (mut a, mut b) = pair(4096);
        let rx = FileReceiver::new(offer_rx.clone(), &dst);
        rx.attach(&mut b).unwrap();
        let id = send_file(&mut a, &offer, &src, SendOptions::default()).unwrap();
        let now = Instant::now();
        let mut n = 0;
        pump(&mut a, &mut b, now, &mut |_| {
            n += 1;
            n > 30
        });
        a.handle_connection_lost();
        b.handle_connection_lost();
        let ev = drain(&mut a);
        assert!(ev.iter().any(
            |e| matches!(e, MsrpEvent::SendProgress { sent, total: 200_000, .. } if *sent > 0)
        ));
        assert!(
            matches!(&outcomes(&ev)[&id][..], [MessageOutcome::Failed { .. }]),
            "the cut is visible to the sender"
        );
        let prefix = rx.received_prefix();
        assert_eq!(prefix, 30 * 4096);

        // Second attempt resumes with a=file-range from the missing byte.
        let resume = rx.resume_offer();
        assert_eq!(resume.range.unwrap().start, prefix + 1);
        let (mut a, mut b) = pair(4096);
        let rx2 = FileReceiver::new(resume.clone(), &dst);
        rx2.attach(&mut b).unwrap();
        let id = send_file(&mut a, &resume, &src, SendOptions::default()).unwrap();
        pump(&mut a, &mut b, now, &mut |_| false);
        let ev_b = drain(&mut b);
        assert!(
            ev_b.iter().any(FileReceiver::is_completion),
            "{:?}",
            ev_b.iter().rev().take(3).collect::<Vec<_>>()
        );
        assert_eq!(
            rx2.complete().unwrap(),
            FileOutcome::Complete {
                size: 200_000,
                verified: true
            }
        );
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        assert!(matches!(
            &outcomes(&drain(&mut a))[&id][..],
            [MessageOutcome::Delivered { .. }]
        ));

        // A corrupted copy is detected.
        let mut bad = data.clone();
        bad[1000] ^= 1;
        std::fs::write(&dst, &bad).unwrap();
        assert_eq!(rx2.complete().unwrap(), FileOutcome::Corrupt);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ------------------------------------------------------------------ relay refresh

mod relay_refresh {
    use super::*;
    use huddle_msrp::Method;
    use huddle_transport::relay::client::{AuthError, AuthStep, RelayAuth, RelayAuthConfig};

    const RELAY: &str = "msrp://127.0.0.1:2855;tcp";

    fn relay_response(req: &Chunk, status: u16, extra: &str) -> Chunk {
        let text = format!(
            "MSRP {tid} {status} X\r\nTo-Path: msrp://127.0.0.1:7001/alice1;tcp\r\nFrom-Path: {RELAY}\r\n{extra}-------{tid}$\r\n",
            tid = req.transaction_id
        );
        Decoder::default()
            .decode(&mut BytesMut::from(text.as_bytes()))
            .unwrap()
            .unwrap()
    }

    fn challenge(nonce: &str, stale: bool) -> String {
        let stale = if stale { ", stale=true" } else { "" };
        format!("WWW-Authenticate: Digest realm=\"r\", nonce=\"{nonce}\", qop=\"auth\"{stale}\r\n")
    }

    const GRANT_40: &str = "Use-Path: msrp://127.0.0.1:2855/g1;tcp\r\nExpires: 40\r\n";

    /// A relay client authenticated at `t0` (challenge, then a 40 s grant), as the
    /// connectors leave it when they hand the connection over.
    fn granted(t0: Instant) -> RelayAuth {
        let cfg = RelayAuthConfig::new(
            uri(RELAY),
            uri("msrp://127.0.0.1:7001/alice1;tcp"),
            "alice",
            "secret",
        )
        .with_expires(40);
        let mut auth = RelayAuth::new(cfg);
        let r1 = auth.start(t0).unwrap();
        let Some(Ok(AuthStep::Send(r2))) =
            auth.handle_response(&relay_response(&r1, 401, &challenge("n1", false)), t0)
        else {
            panic!("expected the challenge to be answered")
        };
        let Some(Ok(AuthStep::Granted(_))) =
            auth.handle_response(&relay_response(&r2, 200, GRANT_40), t0)
        else {
            panic!("expected a grant")
        };
        auth
    }

    /// The session's next transmit, which must be a refresh AUTH to the relay, naming
    /// the session of the first grant (its Use-Path, g1, even after the relay handed out
    /// another).
    fn next_auth(s: &mut MsrpSession, now: Instant) -> Chunk {
        let c = s.poll_transmit(now).expect("an AUTH to send");
        assert_eq!(c.method(), Some(&Method::AUTH));
        assert_eq!(
            c.to_path().unwrap(),
            vec![uri("msrp://127.0.0.1:2855/g1;tcp")]
        );
        c
    }

    #[test]
    fn session_refreshes_its_grant_through_challenge_and_423() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(2048);
        a.set_relay(granted(t0));
        // RFC 4976 §5.1: the refresh is due before the 40 s grant ends (at 3/4 of it).
        let due = t0 + Duration::from_secs(30);
        assert_eq!(a.poll_timeout(), Some(due));
        a.handle_timeout(due - Duration::from_millis(1));
        assert!(a.poll_transmit(due).is_none(), "nothing before it is due");
        // A message goes out at the same time; relay traffic does not disturb it.
        let id = a
            .send_message("text/plain", "hi", SendOptions::default())
            .unwrap();
        a.handle_timeout(due);
        let r1 = next_auth(&mut a, due);
        let creds = r1
            .authorization()
            .unwrap()
            .expect("the known challenge answered");
        assert_eq!(creds.get("nc"), Some("00000002"));
        pump(&mut a, &mut b, due, &mut |_| false);
        // 401 with a fresh (stale) nonce: answered again with the new nonce.
        a.handle_chunk(relay_response(&r1, 401, &challenge("n2", true)), due);
        let r2 = next_auth(&mut a, due);
        assert_eq!(
            r2.authorization().unwrap().unwrap().get("nonce"),
            Some("n2")
        );
        // 423: the relay wants at least 60 s; asked again within its bounds.
        a.handle_chunk(relay_response(&r2, 423, "Min-Expires: 60\r\n"), due);
        let r3 = next_auth(&mut a, due);
        assert_eq!(r3.expires().unwrap(), Some(60));
        let later = due + Duration::from_secs(1);
        a.handle_chunk(
            relay_response(
                &r3,
                200,
                "Use-Path: msrp://127.0.0.1:2855/g2;tcp\r\nExpires: 60\r\n",
            ),
            later,
        );
        let events = drain(&mut a);
        let refreshed: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                MsrpEvent::RelayRefreshed { grant } => Some(grant),
                _ => None,
            })
            .collect();
        assert_eq!(refreshed.len(), 1, "{events:#?}");
        assert_eq!(refreshed[0].expires, Some(Duration::from_secs(60)));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, MsrpEvent::Refused { .. })),
            "relay responses are not the session's business: {events:#?}"
        );
        assert_eq!(
            outcomes(&events).get(&id),
            Some(&vec![MessageOutcome::Delivered {
                confirmation: Confirmation::Responses
            }])
        );
        // The next refresh follows the new grant: 3/4 of 60 s after it.
        assert_eq!(a.poll_timeout(), Some(later + Duration::from_secs(45)));
        // A relay that now refuses the credentials: typed failure, no more refreshes.
        let next = later + Duration::from_secs(45);
        a.handle_timeout(next);
        let r4 = next_auth(&mut a, next);
        a.handle_chunk(relay_response(&r4, 401, &challenge("n2", false)), next);
        assert!(a.poll_transmit(next).is_none());
        let events = drain(&mut a);
        assert!(
            events.iter().any(|e| matches!(
                e,
                MsrpEvent::RelayAuthFailed {
                    error: AuthError::WrongCredentials { .. }
                }
            )),
            "{events:#?}"
        );
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn unanswered_refresh_fails_typed_and_a_chat_fails_visibly() {
        let t0 = Instant::now();
        let (a, _b) = pair(2048);
        let (alice, bob, caps) = cpim_chat_parties();
        let mut chat = MsrpChat::new(alice, bob, caps);
        let mut session = a;
        session.set_relay(granted(t0));
        chat.start(session);
        let s = chat.session_mut().unwrap();
        let due = s.poll_timeout().unwrap();
        s.handle_timeout(due);
        let _auth = next_auth(s, due);
        // No response: the AUTH's response timeout (30 s) fails the refresh.
        let late = s.poll_timeout().unwrap();
        assert_eq!(late, due + Duration::from_secs(30));
        s.handle_timeout(late);
        chat.pump();
        let events: Vec<ChatEvent> = std::iter::from_fn(|| chat.poll_event()).collect();
        assert!(
            events.iter().any(|e| matches!(
                e,
                ChatEvent::DidFail { context, .. } if context == "relay"
            )),
            "{events:#?}"
        );
        assert_eq!(events.last(), Some(&ChatEvent::DidEnd), "{events:#?}");
    }
}
