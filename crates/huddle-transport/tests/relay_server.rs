//! huddle's RFC 4976 relay on real loopback sockets: clients written with the codec
//! directly (and, at the end, huddle's own relay client).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use huddle_msrp::{Chunk, Flag, KnownHeader, Limits, StatusCode};
use huddle_transport::codec::MsrpCodec;
use huddle_transport::digest::Challenge;
use huddle_transport::relay::server::{
    CredentialStore, ListenerConfig, RelayConfig, RelayServer, ServerConfig,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Generous: the machine is shared; a healthy run takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Client {
    io: Framed<Box<dyn Io>, MsrpCodec>,
    uri: String,
    relay: String,
    use_path: String,
}

fn credentials() -> CredentialStore {
    let mut c = CredentialStore::new();
    c.insert("alice", "secret");
    c.insert("bob", "hunter2");
    for i in 0..1000 {
        c.insert(&format!("u{i}"), "pw");
    }
    c
}

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new(vec![ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())]);
    cfg.relay = relay_config();
    cfg
}

fn relay_config() -> RelayConfig {
    let mut r = RelayConfig::default();
    r.realm = "relay.test".into();
    r
}

async fn start(cfg: ServerConfig) -> RelayServer {
    RelayServer::start(cfg, credentials()).await.unwrap()
}

impl Client {
    async fn connect(relay: &RelayServer) -> Client {
        let tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
        Self::over(
            Box::new(tcp),
            &tcp_uri_placeholder(),
            relay.uri().to_string(),
        )
        .await
    }

    async fn over(io: Box<dyn Io>, uri: &str, relay: String) -> Client {
        Client {
            io: Framed::new(io, MsrpCodec::default()),
            uri: uri.to_owned(),
            relay,
            use_path: String::new(),
        }
    }

    /// The next frame, within the deadline.
    async fn next(&mut self) -> Chunk {
        match tokio::time::timeout(DEADLINE, self.io.next()).await {
            Ok(Some(Ok(Ok(c)))) => c,
            other => panic!("{}: expected a frame, got {other:?}", self.uri),
        }
    }

    /// Waits until the relay closes the connection (EOF or reset), within the deadline.
    async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(DEADLINE, self.io.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    async fn send_raw(&mut self, text: &str) {
        tokio::time::timeout(DEADLINE, self.io.get_mut().write_all(text.as_bytes()))
            .await
            .expect("written in time")
            .unwrap();
    }

    async fn auth_with(&mut self, user: &str, pw: &str, extra: &str) -> Chunk {
        let (relay, uri) = (self.relay.clone(), self.uri.clone());
        self.send_raw(&format!(
            "MSRP a1{user}x AUTH\r\nTo-Path: {relay}\r\nFrom-Path: {uri}\r\n-------a1{user}x$\r\n"
        ))
        .await;
        let r = self.next().await;
        assert_eq!(r.status_code(), Some(StatusCode::UNAUTHORIZED));
        let ch = Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap();
        self.answer(&ch, user, pw, 1, extra).await
    }

    async fn answer(
        &mut self,
        ch: &Challenge,
        user: &str,
        pw: &str,
        nc: u32,
        extra: &str,
    ) -> Chunk {
        let (relay, uri) = (self.relay.clone(), self.uri.clone());
        let creds = ch.respond(user, pw, &relay, nc, "0a4f113b");
        self.send_raw(&format!(
            "MSRP a2{user}x AUTH\r\nTo-Path: {relay}\r\nFrom-Path: {uri}\r\nAuthorization: {}\r\n{extra}-------a2{user}x$\r\n",
            creds.to_params()
        ))
        .await;
        self.next().await
    }

    async fn auth(&mut self, user: &str, pw: &str) {
        let r = self.auth_with(user, pw, "").await;
        assert_eq!(r.status_code(), Some(StatusCode::OK), "{r:?}");
        self.use_path = r.headers().get(KnownHeader::UsePath).unwrap().to_owned();
    }

    async fn send(&mut self, tid: &str, to: &Client, body: &str, extra: &str) {
        let frame = send_frame(
            tid,
            &format!("{} {} {}", self.use_path, to.use_path, to.uri),
            &self.uri,
            body,
            extra,
        );
        self.send_raw(&frame).await;
    }

    async fn respond_ok(&mut self, to: &Chunk) {
        let resp = to.response(StatusCode::OK, Some("OK")).unwrap();
        self.io.send(resp).await.unwrap();
    }
}

fn send_frame(tid: &str, to: &str, from: &str, body: &str, extra: &str) -> String {
    format!(
        "MSRP {tid} SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: m-{tid}\r\n\
         Byte-Range: 1-{n}/{n}\r\n{extra}Content-Type: text/plain\r\n\r\n{body}\r\n-------{tid}$\r\n",
        n = body.len()
    )
}

/// Each client gets its own URI with a random session-id (only equality matters).
fn tcp_uri_placeholder() -> String {
    format!(
        "msrp://127.0.0.1:1/{};tcp",
        huddle_msrp::ids::random_token()
    )
}

async fn pair(relay: &RelayServer) -> (Client, Client) {
    let mut a = Client::connect(relay).await;
    let mut b = Client::connect(relay).await;
    a.auth("alice", "secret").await;
    b.auth("bob", "hunter2").await;
    (a, b)
}

/// Alice → Bob, one message, checked end to end.
async fn exchange(a: &mut Client, b: &mut Client, tid: &str) {
    a.send(tid, b, "ping", "").await;
    let ok = a.next().await;
    assert_eq!(
        (ok.status_code(), ok.transaction_id.as_str()),
        (Some(StatusCode::OK), tid)
    );
    let got = b.next().await;
    assert_eq!(got.body(), Some(&b"ping"[..]));
    b.respond_ok(&got).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_auth_send_200_and_report_through_the_relay() {
    let relay = start(config()).await;
    let (mut a, mut b) = pair(&relay).await;
    assert!(
        a.use_path
            .starts_with(&relay.uri().to_string().replace(";tcp", "/"))
    );
    a.send(
        "tx000001",
        &b,
        "Hey Bob, are you there?",
        "Success-Report: yes\r\n",
    )
    .await;
    let ok = a.next().await;
    assert_eq!(ok.status_code(), Some(StatusCode::OK));
    assert_eq!(ok.headers().get(KnownHeader::ToPath), Some(a.uri.as_str()));
    assert_eq!(
        ok.headers().get(KnownHeader::FromPath),
        Some(a.use_path.as_str())
    );
    let got = b.next().await;
    assert_eq!(got.headers().get(KnownHeader::ToPath), Some(b.uri.as_str()));
    assert_eq!(
        got.headers().get(KnownHeader::FromPath).unwrap(),
        format!("{} {} {}", b.use_path, a.use_path, a.uri)
    );
    assert_eq!(got.body(), Some(&b"Hey Bob, are you there?"[..]));
    assert_eq!(
        got.success_report().unwrap(),
        huddle_msrp::ReportRequest::Yes
    );
    b.respond_ok(&got).await;
    // Bob's REPORT goes back along the From-Path he received.
    let report = format!(
        "MSRP rp000001 REPORT\r\nTo-Path: {}\r\nFrom-Path: {}\r\nMessage-ID: m-tx000001\r\n\
         Byte-Range: 1-23/23\r\nStatus: 000 200 OK\r\n-------rp000001$\r\n",
        got.headers().get(KnownHeader::FromPath).unwrap(),
        b.uri
    );
    b.send_raw(&report).await;
    let rep = a.next().await;
    assert_eq!(rep.method().map(|m| m.as_str()), Some("REPORT"));
    assert_eq!(rep.headers().get(KnownHeader::ToPath), Some(a.uri.as_str()));
    assert_eq!(
        rep.headers().get(KnownHeader::FromPath).unwrap(),
        format!("{} {} {}", a.use_path, b.use_path, b.uri)
    );
    assert_eq!(rep.status_header().unwrap().unwrap().code, StatusCode::OK);
    let m = relay.metrics().await.unwrap();
    assert_eq!(
        (m.sessions_active, m.sends_forwarded, m.reports_forwarded),
        (2, 1, 1)
    );
    assert!(m.bytes_in > 0 && m.bytes_out > 0 && m.frames_in >= 6 && m.frames_out >= 6);
    relay.shutdown().await;
    assert!(
        a.closed().await && b.closed().await,
        "graceful shutdown closes connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_sessions_lose_nothing() {
    const SESSIONS: usize = 1000;
    const MESSAGES: usize = 3;
    let relay = Arc::new(start(config()).await);
    let setup = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let relay = relay.clone();
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            let (mut s, mut r) = {
                let _p = setup.acquire().await.unwrap();
                let mut s = Client::connect(&relay).await;
                let mut r = Client::connect(&relay).await;
                s.auth(&format!("u{i}"), "pw").await;
                r.auth(&format!("u{i}"), "pw").await;
                (s, r)
            };
            let to = format!("{} {} {}", s.use_path, r.use_path, r.uri);
            let mut frames = String::new();
            for k in 0..MESSAGES {
                frames.push_str(&send_frame(
                    &format!("s{i}m{k}"),
                    &to,
                    &s.uri,
                    &format!("{i}:{k}:{}", "x".repeat(100)),
                    "",
                ));
            }
            s.send_raw(&frames).await;
            let mut acked = 0;
            let mut delivered = Vec::new();
            while acked < MESSAGES || delivered.len() < MESSAGES {
                tokio::select! {
                    c = s.next(), if acked < MESSAGES => {
                        assert_eq!(c.status_code(), Some(StatusCode::OK));
                        acked += 1;
                    }
                    c = r.next(), if delivered.len() < MESSAGES => {
                        r.respond_ok(&c).await;
                        delivered.push(String::from_utf8(c.body_bytes().unwrap().to_vec()).unwrap());
                    }
                }
            }
            for (k, body) in delivered.iter().enumerate() {
                assert_eq!(
                    *body,
                    format!("{i}:{k}:{}", "x".repeat(100)),
                    "in order, intact"
                );
            }
            (s, r)
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let m = relay.metrics().await.unwrap();
    assert_eq!(m.sessions_active, 2 * SESSIONS as u64);
    assert_eq!(m.sends_forwarded, (SESSIONS * MESSAGES) as u64);
    assert_eq!(m.transaction_failures, 0);
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_cut_mid_chunk_turns_into_failures_for_the_sender() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_body_in_memory: 16 * 1024,
        ..Limits::default()
    };
    let relay = start(cfg).await;
    let (mut a, mut b) = pair(&relay).await;
    let body = "q".repeat(1 << 20);
    let frame = send_frame(
        "cutrecv1",
        &format!("{} {} {}", a.use_path, b.use_path, b.uri),
        &a.uri,
        &body,
        "",
    );
    // The first 60 KB go out (less than the relay lets wait for an answer); Bob reads a piece of it, then disappears.
    let (_, piece) = tokio::join!(a.send_raw(&frame[..60_000]), b.next());
    assert_eq!(piece.flag, Flag::More);
    drop(b);
    // Alice hears of it: an error for her transaction and failure REPORTs.
    let mut error_response = false;
    let mut reports = 0;
    while !(error_response && reports > 0) {
        let f = a.next().await;
        match f.status_code() {
            Some(s) => {
                assert_eq!(f.transaction_id.as_str(), "cutrecv1");
                assert!(s.is_failure());
                error_response = true;
            }
            None => {
                assert_eq!(f.method().map(|m| m.as_str()), Some("REPORT"));
                assert_eq!(f.message_id(), Some("m-cutrecv1"));
                assert!(f.status_header().unwrap().unwrap().code.is_failure());
                reports += 1;
            }
        }
    }
    // The rest of the chunk is swallowed; Alice's connection still works (after the
    // REPORTs of the other forwarded pieces).
    a.send_raw(&frame[60_000..]).await;
    let mut c = Client::connect(&relay).await;
    c.auth("bob", "hunter2").await;
    a.send("after001", &c, "ping", "").await;
    loop {
        let f = a.next().await;
        if f.status_code().is_some() {
            assert_eq!(
                (f.status_code(), f.transaction_id.as_str()),
                (Some(StatusCode::OK), "after001")
            );
            break;
        }
        assert_eq!(f.message_id(), Some("m-cutrecv1"));
    }
    assert_eq!(c.next().await.body(), Some(&b"ping"[..]));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cut_mid_chunk_is_an_abort_for_the_receiver() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_body_in_memory: 16 * 1024,
        ..Limits::default()
    };
    let relay = start(cfg).await;
    let (mut a, mut b) = pair(&relay).await;
    let body = "r".repeat(1 << 20);
    let frame = send_frame(
        "cutsend1",
        &format!("{} {} {}", a.use_path, b.use_path, b.uri),
        &a.uri,
        &body,
        "",
    );
    let mut received = 0usize;
    let (_, first) = tokio::join!(a.send_raw(&frame[..60_000]), b.next());
    received += first.body_len().unwrap();
    b.respond_ok(&first).await;
    drop(a);
    loop {
        let f = b.next().await;
        let r = f.byte_range().unwrap().unwrap();
        assert_eq!(r.start as usize, received + 1, "contiguous pieces");
        received += f.body_len().unwrap_or(0);
        b.respond_ok(&f).await;
        if f.flag == Flag::Abort {
            break;
        }
        assert_eq!(f.flag, Flag::More);
    }
    assert!(received < body.len());
    let m = relay.metrics().await.unwrap();
    assert_eq!(m.aborted_chunks, 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_cut_mid_frame_fails_small_sends_too() {
    let relay = start(config()).await;
    let (mut a, b) = pair(&relay).await;
    // Bob is reading nothing and leaves with messages in flight.
    for i in 0..5 {
        a.send(&format!("inflt{i:03}"), &b, "lost?", "").await;
    }
    for _ in 0..5 {
        assert_eq!(a.next().await.status_code(), Some(StatusCode::OK));
    }
    drop(b);
    let mut reported = std::collections::HashSet::new();
    while reported.len() < 5 {
        let f = a.next().await;
        assert_eq!(
            f.status_header().unwrap().unwrap().code,
            StatusCode::REQUEST_TIMEOUT
        );
        reported.insert(f.message_id().unwrap().to_owned());
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_is_dropped_and_others_are_unaffected() {
    let mut cfg = config();
    cfg.relay.frame_timeout = Duration::from_millis(300);
    cfg.relay.tick = Duration::from_millis(50);
    let relay = start(cfg).await;
    let (mut a, mut b) = pair(&relay).await;
    let mut slow = TcpStream::connect(relay.local_addr()).await.unwrap();
    slow.write_all(b"MSRP slow0001 SEND\r\nTo-Pa")
        .await
        .unwrap();
    let mut drip = TcpStream::connect(relay.local_addr()).await.unwrap();
    drip.write_all(b"MSRP drip0001 SEND\r\n").await.unwrap();
    let closed = async move {
        let mut buf = [0u8; 64];
        // One more byte now and then, never a whole frame: the relay still drops it.
        loop {
            tokio::select! {
                r = drip.read(&mut buf) => return matches!(r, Ok(0) | Err(_)),
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if drip.write_all(b"X").await.is_err() { return true; }
                }
            }
        }
    };
    let slow_closed = async move {
        let mut buf = [0u8; 64];
        matches!(slow.read(&mut buf).await, Ok(0) | Err(_))
    };
    let others = async {
        for i in 0..20 {
            exchange(&mut a, &mut b, &format!("fast{i:04}")).await;
        }
    };
    let (c1, c2, ()) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(closed, slow_closed, others)
    })
    .await
    .expect("in time");
    assert!(c1 && c2);
    exchange(&mut a, &mut b, "fastlast").await;
    let m = relay.metrics().await.unwrap();
    assert!(m.connections_dropped >= 2, "{m:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_never_hurt_the_relay_or_other_sessions() {
    let relay = start(config()).await;
    let (mut a, mut b) = pair(&relay).await;
    let up = a.use_path.clone();
    let many_uris = vec![up.as_str(); 100].join(" ");
    let huge_header = format!("MSRP huge0001 SEND\r\nX-Big: {}\r\n", "a".repeat(40_000));
    let many_headers = format!(
        "MSRP many0001 SEND\r\nTo-Path: {up}\r\nFrom-Path: {}\r\n{}-------many0001$\r\n",
        a.uri,
        "X-H: 1\r\n".repeat(200)
    );
    let cases: Vec<(Vec<u8>, Option<u16>)> = vec![
        (b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n".to_vec(), None),
        (huge_header.into_bytes(), None),
        (many_headers.into_bytes(), None),
        (b"MSRP t SEND\r\n-------t$\r\n".to_vec(), None),
        (b"MSRP abcd SEND\r\nTo-Path: x\r\n-------zzzz$\r\n".to_vec(), None),
        (b"\x00\xff\xfe\r\n\r\n".to_vec(), None),
        (format!("MSRP br000001 SEND\r\nTo-Path: {up}\r\nFrom-Path: {}\r\nMessage-ID: x\r\nByte-Range: 0-1/1\r\n-------br000001$\r\n", a.uri).into_bytes(), Some(400)),
        (format!("MSRP tp000001 SEND\r\nTo-Path: {many_uris}\r\nFrom-Path: {}\r\nMessage-ID: x\r\n-------tp000001$\r\n", a.uri).into_bytes(), Some(400)),
        (format!("MSRP tp000002 SEND\r\nTo-Path: msrp://[::1/x;tcp\r\nFrom-Path: {}\r\nMessage-ID: x\r\n-------tp000002$\r\n", a.uri).into_bytes(), Some(400)),
        ([format!("MSRP u8000001 SEND\r\nTo-Path: {up}\r\nFrom-Path: {}\r\nMessage-ID: x\r\nX: ", a.uri).as_bytes(), b"\xff\xfe\r\n-------u8000001$\r\n"].concat(), Some(400)),
        (format!("MSRP bn000001 SEND\r\nTo-Path: {up} {}\r\nFrom-Path: msrp://127.0.0.1:9/evil;tcp\r\nMessage-ID: x\r\nByte-Range: 1-18446744073709551615/18446744073709551615\r\nContent-Type: a/b\r\n\r\nsmall\r\n-------bn000001$\r\n", "msrp://10.9.9.9:9/x;tcp").into_bytes(), Some(403)),
        (format!("MSRP au000001 AUTH\r\nTo-Path: {}\r\nFrom-Path: {}\r\nAuthorization: Digest ,,,,=====\"\r\n-------au000001$\r\n", a.relay, a.uri).into_bytes(), Some(401)),
        (format!("MSRP au000002 AUTH\r\nTo-Path: {}\r\nFrom-Path: {}\r\nAuthorization: Digest username=\"{}\"\r\n-------au000002$\r\n", a.relay, a.uri, "u".repeat(20_000)).into_bytes(), Some(401)),
        (format!("MSRP au000003 AUTH\r\nTo-Path: {}\r\nFrom-Path: {}\r\nExpires: 99999999999999999999999\r\n-------au000003$\r\n", a.relay, a.uri).into_bytes(), Some(401)),
        (format!("MSRP rs000001 200 OK\r\nTo-Path: {up}\r\nFrom-Path: {}\r\nContent-Type: a/b\r\n\r\nbody\r\n-------rs000001$\r\n", a.uri).into_bytes(), None),
    ];
    for (i, (bytes, expect)) in cases.into_iter().enumerate() {
        let tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
        let mut h = Client::over(
            Box::new(tcp),
            &tcp_uri_placeholder(),
            relay.uri().to_string(),
        )
        .await;
        h.io.get_mut().write_all(&bytes).await.unwrap();
        match expect {
            Some(code) => {
                let r = h.next().await;
                assert_eq!(
                    r.status_code().map(|s| s.as_u16()),
                    Some(code),
                    "case {i}: {r:?}"
                );
            }
            None => {
                // Closed, or quietly ignored: either way nothing may come back but EOF.
                let r = tokio::time::timeout(Duration::from_millis(200), h.io.next()).await;
                assert!(
                    matches!(r, Err(_) | Ok(None) | Ok(Some(Err(_)))),
                    "case {i}: {r:?}"
                );
            }
        }
        // Other sessions carry on.
        exchange(&mut a, &mut b, &format!("calm{i:04}")).await;
    }
    let m = relay.metrics().await.unwrap();
    assert!(m.decode_errors >= 4, "{m:?}");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_nonces_and_out_of_bounds_expires_are_refused() {
    let relay = start(config()).await;
    let mut a = Client::connect(&relay).await;
    let (relay_uri, uri) = (a.relay.clone(), a.uri.clone());
    a.send_raw(&format!(
        "MSRP n0000001 AUTH\r\nTo-Path: {relay_uri}\r\nFrom-Path: {uri}\r\n-------n0000001$\r\n"
    ))
    .await;
    let ch = Challenge::from_params(&a.next().await.www_authenticate().unwrap().unwrap()).unwrap();
    // Expires out of bounds: 423 with the bound, and no session.
    let r = a.answer(&ch, "alice", "secret", 1, "Expires: 5\r\n").await;
    assert_eq!(r.status_code(), Some(StatusCode::INTERVAL_OUT_OF_BOUNDS));
    assert_eq!(r.min_expires().unwrap(), Some(60));
    let r = a
        .answer(&ch, "alice", "secret", 2, "Expires: 86400\r\n")
        .await;
    assert_eq!(r.status_code(), Some(StatusCode::INTERVAL_OUT_OF_BOUNDS));
    assert_eq!(r.max_expires().unwrap(), Some(3600));
    let r = a
        .answer(&ch, "alice", "secret", 3, "Expires: 600\r\n")
        .await;
    assert_eq!(r.status_code(), Some(StatusCode::OK));
    assert_eq!(r.expires().unwrap(), Some(600));
    // The exact same credentials again: a replay.
    let r = a
        .answer(&ch, "alice", "secret", 3, "Expires: 600\r\n")
        .await;
    assert_eq!(r.status_code(), Some(StatusCode::UNAUTHORIZED));
    // Captured credentials replayed on another connection.
    let mut eve = Client::connect(&relay).await;
    eve.uri = uri.clone();
    let r = eve.answer(&ch, "alice", "secret", 4, "").await;
    assert_eq!(r.status_code(), Some(StatusCode::UNAUTHORIZED));
    let m = relay.metrics().await.unwrap();
    assert_eq!((m.sessions_active, m.nonce_replays), (1, 1));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_nonces_are_stale() {
    let mut cfg = config();
    // A nonce's life ends at once; no housekeeping tick forgets it during the test.
    cfg.relay.nonce_lifetime = Duration::ZERO;
    cfg.relay.tick = Duration::from_secs(3600);
    let relay = start(cfg).await;
    let mut a = Client::connect(&relay).await;
    let (relay_uri, uri) = (a.relay.clone(), a.uri.clone());
    a.send_raw(&format!(
        "MSRP n0000002 AUTH\r\nTo-Path: {relay_uri}\r\nFrom-Path: {uri}\r\n-------n0000002$\r\n"
    ))
    .await;
    let ch = Challenge::from_params(&a.next().await.www_authenticate().unwrap().unwrap()).unwrap();
    let r = a.answer(&ch, "alice", "secret", 1, "").await;
    assert_eq!(r.status_code(), Some(StatusCode::UNAUTHORIZED));
    let fresh = Challenge::from_params(&r.www_authenticate().unwrap().unwrap()).unwrap();
    assert!(fresh.stale);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_listener_relays_between_msrps_clients() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut cfg = config();
    cfg.listeners = vec![ListenerConfig::tls(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(server),
    )];
    let relay = start(cfg).await;
    assert!(relay.uri().secure());
    let mut clients = Vec::new();
    for (user, pw) in [("alice", "secret"), ("bob", "hunter2")] {
        let tcp = TcpStream::connect(relay.local_addr()).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        let uri = tcp_uri_placeholder().replace("msrp:", "msrps:");
        let mut c = Client::over(Box::new(tls), &uri, relay.uri().to_string()).await;
        c.auth(user, pw).await;
        assert!(c.use_path.starts_with("msrps://"));
        clients.push(c);
    }
    let mut b = clients.pop().unwrap();
    let mut a = clients.pop().unwrap();
    exchange(&mut a, &mut b, "tls00001").await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_refuses_extra_connections() {
    let mut cfg = config();
    cfg.relay.max_connections = 2;
    let relay = start(cfg).await;
    let (mut a, mut b) = pair(&relay).await;
    let mut third = Client::connect(&relay).await;
    assert!(third.closed().await);
    exchange(&mut a, &mut b, "limit001").await;
    assert_eq!(relay.metrics().await.unwrap().connections_refused, 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_chunks_are_forwarded_in_bounded_pieces() {
    let mut cfg = config();
    cfg.limits = Limits {
        max_body_in_memory: 32 * 1024,
        ..Limits::default()
    };
    let relay = start(cfg).await;
    let (mut a, mut b) = pair(&relay).await;
    // 4 MiB in one chunk: far past Kamailio's 16 KB frame limit.
    let body: String = (0..4 << 20)
        .map(|i| (b'a' + (i % 23) as u8) as char)
        .collect();
    let frame = send_frame(
        "big00001",
        &format!("{} {} {}", a.use_path, b.use_path, b.uri),
        &a.uri,
        &body,
        "",
    );
    let writer = async {
        a.send_raw(&frame).await;
        let ok = a.next().await;
        assert_eq!(
            (ok.status_code(), ok.transaction_id.as_str()),
            (Some(StatusCode::OK), "big00001")
        );
    };
    let reader = async {
        let mut got = BytesMut::new();
        loop {
            let f = b.next().await;
            let r = f.byte_range().unwrap().unwrap();
            assert_eq!(r.start as usize, got.len() + 1);
            assert_eq!(r.total, Some(body.len() as u64));
            let data = f.body_bytes().unwrap();
            assert!(data.len() <= 32 * 1024);
            got.extend_from_slice(&data);
            b.respond_ok(&f).await;
            if f.flag == Flag::End {
                break;
            }
        }
        assert_eq!(&got[..], body.as_bytes());
    };
    tokio::join!(writer, reader);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huddles_relay_client_works_through_huddles_relay() {
    use huddle_transport::msrp::connect::RelaySettings;
    use huddle_transport::msrp::{AcceptorRelay, ConnectorRelay, MsrpConnector, TransportOptions};
    let relay = start(config()).await;
    let settings = |user: &str, pw: &str| RelaySettings {
        relay_uri: relay.uri().clone(),
        username: user.to_owned(),
        password: pw.to_owned(),
        expires: Some(600),
    };
    let mut alice = ConnectorRelay::new(settings("alice", "secret"), TransportOptions::default());
    let mut bob = AcceptorRelay::new(settings("bob", "hunter2"), TransportOptions::default());
    let pa = alice.prepare().await.unwrap();
    let pb = bob.prepare().await.unwrap();
    assert_eq!(
        alice.grant().unwrap().expires,
        Some(Duration::from_secs(600))
    );
    let (ta, tb) = tokio::join!(alice.complete(&pb), bob.complete(&pa));
    let (mut ta, mut tb) = (ta.unwrap(), tb.unwrap());
    let msg = ta
        .make_chunk()
        .data("text/plain", &b"through huddle's relay"[..])
        .build()
        .unwrap();
    ta.write_chunk(&msg).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, tb.read_chunk())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.body(), Some(&b"through huddle's relay"[..]));
    tb.accept_incoming_send(&got).await.unwrap();
    let ok = tokio::time::timeout(DEADLINE, ta.read_chunk())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.status_code(), Some(StatusCode::OK));
    relay.shutdown().await;
}
