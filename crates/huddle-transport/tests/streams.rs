//! Streams mode: the HMAC challenge-response handshake, sans-IO and over loopback TCP.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use huddle_transport::streams::{AuthError, Handshake, StreamConfig, StreamRole, accept, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const DEADLINE: Duration = Duration::from_secs(30);

fn hs(role: StreamRole, secret: &[u8], nonce: u8) -> Handshake {
    Handshake::new(
        role,
        secret,
        [nonce; 32],
        Instant::now(),
        Duration::from_secs(5),
    )
    .expect("secret")
}

/// Runs two handshakes against each other; returns each side's first error.
fn exchange(
    a: &mut Handshake,
    b: &mut Handshake,
) -> (Result<(), AuthError>, Result<(), AuthError>) {
    let (mut ab, mut ba) = (BytesMut::new(), BytesMut::new());
    let (mut ra, mut rb) = (Ok(()), Ok(()));
    for _ in 0..10 {
        while let Some(x) = a.poll_transmit() {
            ab.extend_from_slice(&x);
        }
        while let Some(x) = b.poll_transmit() {
            ba.extend_from_slice(&x);
        }
        if rb.is_ok() {
            rb = b.handle_input(&mut ab);
        }
        if ra.is_ok() {
            ra = a.handle_input(&mut ba);
        }
    }
    (ra, rb)
}

#[test]
fn the_same_secret_establishes_both_sides() {
    let (mut a, mut b) = (
        hs(StreamRole::Initiator, SECRET, 1),
        hs(StreamRole::Responder, SECRET, 2),
    );
    assert!(!a.is_established());
    assert_eq!(exchange(&mut a, &mut b), (Ok(()), Ok(())));
    assert!(a.is_established() && b.is_established());
    assert_eq!(a.poll_timeout(), None);
}

#[test]
fn a_wrong_secret_fails_on_both_sides_with_bad_proof() {
    let other = b"fedcba9876543210fedcba9876543210";
    let (mut a, mut b) = (
        hs(StreamRole::Initiator, SECRET, 1),
        hs(StreamRole::Responder, other, 2),
    );
    assert_eq!(
        exchange(&mut a, &mut b),
        (Err(AuthError::BadProof), Err(AuthError::BadProof))
    );
    assert!(!a.is_established() && !b.is_established());
}

#[test]
fn a_peer_that_rejects_our_proof_is_reported() {
    let mut a = hs(StreamRole::Initiator, SECRET, 1);
    let mut b = hs(StreamRole::Responder, SECRET, 2);
    let mut to_a = BytesMut::new();
    let mut to_b = BytesMut::from(&a.poll_transmit().expect("hello")[..]);
    b.handle_input(&mut to_b).expect("hello");
    to_a.extend_from_slice(&b.poll_transmit().expect("hello+proof"));
    a.handle_input(&mut to_a).expect("b's proof is good");
    // B says no.
    let mut verdict = BytesMut::from(&b"V\x01"[..]);
    assert_eq!(a.handle_input(&mut verdict), Err(AuthError::RejectedByPeer));
}

#[test]
fn a_reflected_handshake_is_a_role_conflict() {
    // An attacker echoes the initiator's own HELLO back.
    let mut a = hs(StreamRole::Initiator, SECRET, 1);
    let mut echo = BytesMut::from(&a.poll_transmit().expect("hello")[..]);
    assert_eq!(a.handle_input(&mut echo), Err(AuthError::RoleConflict));
}

#[test]
fn a_replayed_proof_from_another_session_fails() {
    // Record a proof made for nonces (1, 2), replay it in a session with nonces (1, 3).
    let mut a = hs(StreamRole::Initiator, SECRET, 1);
    let mut b = hs(StreamRole::Responder, SECRET, 2);
    let mut to_b = BytesMut::from(&a.poll_transmit().expect("hello")[..]);
    b.handle_input(&mut to_b).expect("hello");
    let recorded = b.poll_transmit().expect("b hello + proof");
    let proof = recorded[39..].to_vec();
    let mut a2 = hs(StreamRole::Initiator, SECRET, 1);
    let mut fake = BytesMut::from(&b"HSTRM1\x01"[..]);
    fake.extend_from_slice(&[3u8; 32]);
    fake.extend_from_slice(&proof);
    assert_eq!(a2.handle_input(&mut fake), Err(AuthError::BadProof));
    // The failing side still tells the peer why.
    let out = a2.poll_transmit().expect("hello, proof, verdict");
    assert_eq!(&out[out.len() - 2..], b"V\x01");
}

#[test]
fn garbage_and_short_secrets_are_typed_errors() {
    let mut a = hs(StreamRole::Responder, SECRET, 1);
    let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert_eq!(a.handle_input(&mut http), Err(AuthError::NotAStreamsPeer));
    assert_eq!(
        Handshake::new(
            StreamRole::Initiator,
            b"short",
            [0; 32],
            Instant::now(),
            Duration::from_secs(1)
        )
        .err(),
        Some(AuthError::SecretTooShort)
    );
    let t0 = Instant::now();
    let mut b = Handshake::new(
        StreamRole::Initiator,
        SECRET,
        [0; 32],
        t0,
        Duration::from_secs(1),
    )
    .expect("new");
    assert_eq!(b.handle_timeout(t0 + Duration::from_millis(999)), Ok(()));
    assert_eq!(
        b.handle_timeout(t0 + Duration::from_secs(1)),
        Err(AuthError::Timeout)
    );
}

#[test]
fn bytes_after_the_verdict_stay_for_the_application() {
    let (mut a, mut b) = (
        hs(StreamRole::Initiator, SECRET, 1),
        hs(StreamRole::Responder, SECRET, 2),
    );
    let mut to_b = BytesMut::from(&a.poll_transmit().expect("hello")[..]);
    b.handle_input(&mut to_b).expect("hello");
    let mut to_a = BytesMut::from(&b.poll_transmit().expect("hello+proof")[..]);
    a.handle_input(&mut to_a).expect("proof");
    to_b.extend_from_slice(&a.poll_transmit().expect("proof+verdict"));
    b.handle_input(&mut to_b).expect("proof");
    let mut to_a = BytesMut::from(&b.poll_transmit().expect("verdict")[..]);
    to_a.extend_from_slice(b"app data");
    a.handle_input(&mut to_a).expect("verdict");
    assert!(a.is_established());
    assert_eq!(&to_a[..], b"app data");
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    (c.expect("connect"), s.expect("accept").0)
}

#[tokio::test]
async fn tcp_right_secret_gives_a_byte_stream_both_ways() {
    let (c, s) = tcp_pair().await;
    let cfg = StreamConfig::default();
    let server = tokio::spawn(async move {
        let mut s = accept(s, SECRET, &StreamConfig::default())
            .await
            .expect("server auth");
        // Write at once: these bytes may ride with the handshake's last message.
        s.write_all(b"welcome").await.expect("write");
        let mut buf = vec![0u8; 1 << 20];
        s.read_exact(&mut buf).await.expect("read");
        assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
        s.write_all(b"done").await.expect("write");
    });
    let mut c = timeout(DEADLINE, connect(c, SECRET, &cfg))
        .await
        .expect("in time")
        .expect("client auth");
    let mut w = [0u8; 7];
    c.read_exact(&mut w).await.expect("read");
    assert_eq!(&w, b"welcome");
    let big: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
    c.write_all(&big).await.expect("write");
    let mut d = [0u8; 4];
    c.read_exact(&mut d).await.expect("read");
    assert_eq!(&d, b"done");
    server.await.expect("server");
}

#[tokio::test]
async fn tcp_wrong_secret_closes_the_connection_with_a_typed_error() {
    let (c, s) = tcp_pair().await;
    let server =
        tokio::spawn(async move { accept(s, SECRET, &StreamConfig::default()).await.err() });
    let wrong = b"this is not the session secret!!";
    let r = timeout(DEADLINE, connect(c, wrong, &StreamConfig::default()))
        .await
        .expect("in time");
    assert_eq!(r.err(), Some(AuthError::BadProof));
    assert_eq!(server.await.expect("server"), Some(AuthError::BadProof));
}

#[tokio::test]
async fn tcp_an_impostor_gets_no_data_and_is_disconnected() {
    // A raw client that sends a well-formed HELLO, a bogus proof and then data.
    let (mut c, s) = tcp_pair().await;
    let server =
        tokio::spawn(async move { accept(s, SECRET, &StreamConfig::default()).await.err() });
    let mut msg = b"HSTRM1\x00".to_vec();
    msg.extend_from_slice(&[7u8; 32]);
    msg.push(b'P');
    msg.extend_from_slice(&[0u8; 32]);
    msg.extend_from_slice(b"let me in");
    c.write_all(&msg).await.expect("write");
    assert_eq!(
        timeout(DEADLINE, server)
            .await
            .expect("in time")
            .expect("task"),
        Some(AuthError::BadProof)
    );
    // The server sent its HELLO, its proof, a failing verdict, then closed.
    let mut got = Vec::new();
    timeout(DEADLINE, c.read_to_end(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got.len(), 39 + 33 + 2);
    assert_eq!(&got[got.len() - 2..], b"V\x01");
}

#[tokio::test]
async fn tcp_a_silent_peer_times_out_and_a_stranger_is_refused() {
    let (_silent, s) = tcp_pair().await;
    let cfg = StreamConfig {
        handshake_timeout: Duration::from_millis(200),
    };
    let r = timeout(DEADLINE, accept(s, SECRET, &cfg))
        .await
        .expect("in time");
    assert_eq!(r.err(), Some(AuthError::Timeout));

    let (mut c, s) = tcp_pair().await;
    c.write_all(b"SSH-2.0-OpenSSH_9.6\r\n")
        .await
        .expect("write");
    let r = timeout(DEADLINE, accept(s, SECRET, &StreamConfig::default()))
        .await
        .expect("in time");
    assert_eq!(r.err(), Some(AuthError::NotAStreamsPeer));

    let (c, s) = tcp_pair().await;
    drop(c);
    let r = timeout(DEADLINE, accept(s, SECRET, &StreamConfig::default()))
        .await
        .expect("in time");
    assert!(matches!(
        r.err(),
        Some(AuthError::PeerClosed | AuthError::Io(_))
    ));
}
