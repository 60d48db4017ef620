//! The relay-client interop scenario against a real RFC 4976 relay (Kamailio), as named
//! cases: two huddle endpoints authenticate, bind through the relay and exchange SEND,
//! 200 and REPORT, including a message split into several ≤ 4 KiB chunks; plus wrong
//! credentials, Expires bounds (423), a refresh, and an unknown relay session.
//!
//! Shared by `tests/kamailio_relay.rs` and `examples/kamailio-interop.rs` (which the
//! xtask conformance suite `kamailio-relay-client` runs).

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use huddle_msrp::header::ByteRange;
use huddle_msrp::split::{Progress, Reassembler};
use huddle_msrp::{Chunk, Method, MsrpUri, ReportRequest, StatusCode};
use huddle_transport::msrp::connect::RelaySettings;
use huddle_transport::msrp::{
    AcceptorRelay, ConnectError, ConnectorRelay, MsrpConnector, MsrpTransport, TransportError,
    TransportOptions,
};
use huddle_transport::relay::client::AuthError;

/// Largest chunk body sent through Kamailio (it fails frames over ~11 KB).
pub const MAX_CHUNK: usize = 4096;

/// One named outcome.
pub type Case = (&'static str, Result<(), String>);

fn settings(relay: &MsrpUri, user: &str, password: &str, expires: Option<u32>) -> RelaySettings {
    RelaySettings {
        relay_uri: relay.clone(),
        username: user.to_owned(),
        password: password.to_owned(),
        expires,
    }
}

fn options() -> TransportOptions {
    TransportOptions {
        bind_timeout: Duration::from_secs(10),
        ..TransportOptions::default()
    }
}

async fn within<T>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .map_err(|_| format!("{what}: no outcome within 20 s"))?
}

/// Reads until a chunk that is not a response arrives (responses are recorded).
async fn read_request(t: &mut MsrpTransport) -> Result<Chunk, String> {
    loop {
        let c = t.read_chunk().await.map_err(|e| format!("read: {e}"))?;
        if c.is_request() {
            return Ok(c);
        }
    }
}

/// Runs every case against the relay at `relay_uri`.
pub async fn run(relay_uri: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let relay: MsrpUri = match relay_uri.parse() {
        Ok(u) => u,
        Err(e) => return vec![("relay URI", Err(format!("{relay_uri}: {e}")))],
    };
    let pair = within("authenticate and bind", bind_pair(&relay)).await;
    let (mut alice, mut bob) = match pair {
        Ok(p) => {
            cases.push((
                "alice and bob authenticate and bind through the relay",
                Ok(()),
            ));
            p
        }
        Err(e) => {
            cases.push((
                "alice and bob authenticate and bind through the relay",
                Err(e),
            ));
            return cases;
        }
    };
    cases.push((
        "SEND, 200 and REPORT through the relay",
        within(
            "send",
            send_and_report(&mut alice, &mut bob, b"Hey Bob, are you there?"),
        )
        .await,
    ));
    let big: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    cases.push((
        "a 10000-byte message in <= 4 KiB chunks, reassembled and reported",
        within("big", send_and_report(&mut alice, &mut bob, &big)).await,
    ));
    cases.push((
        "bob answers alice the other way",
        within(
            "reverse",
            send_and_report(&mut bob, &mut alice, b"Yes, Alice."),
        )
        .await,
    ));
    cases.push((
        "re-AUTH refreshes the grant",
        within("refresh", refresh(&mut alice)).await,
    ));
    cases.push((
        "wrong password is WrongCredentials",
        within("wrong password", wrong_password(&relay)).await,
    ));
    cases.push((
        "Expires below the minimum: 423, retried at Min-Expires",
        within("423 min", expires_retry(&relay, 10, 60)).await,
    ));
    cases.push((
        "Expires above the maximum: 423, retried at Max-Expires",
        within("423 max", expires_retry(&relay, 100_000, 3600)).await,
    ));
    cases.push((
        "Expires within bounds is granted as asked",
        within("expires", expires_retry(&relay, 120, 120)).await,
    ));
    cases.push((
        "SEND to an unknown relay session gets 481",
        within("481", unknown_session(&mut alice, &relay)).await,
    ));
    cases
}

async fn bind_pair(relay: &MsrpUri) -> Result<(MsrpTransport, MsrpTransport), String> {
    let mut alice = ConnectorRelay::new(settings(relay, "alice", "secret", None), options());
    let mut bob = AcceptorRelay::new(settings(relay, "bob", "secret", None), options());
    let alice_path = alice
        .prepare()
        .await
        .map_err(|e| format!("alice prepare: {e}"))?;
    let bob_path = bob
        .prepare()
        .await
        .map_err(|e| format!("bob prepare: {e}"))?;
    for (who, path) in [("alice", &alice_path), ("bob", &bob_path)] {
        // RFC 4976 §5.1: the Use-Path names the relay; our URI comes last.
        if path.len() != 2
            || path[0].host() != relay.host()
            || path[0].port() != relay.port()
            || path[0].session_id().is_none()
        {
            return Err(format!(
                "{who}'s path {path:?} is not relay Use-Path + own URI"
            ));
        }
    }
    let (b, a) = tokio::join!(bob.complete(&alice_path), alice.complete(&bob_path));
    let bob_t = b.map_err(|e| format!("bob complete: {e}"))?;
    let alice_t = a.map_err(|e| format!("alice complete: {e}"))?;
    Ok((alice_t, bob_t))
}

/// `from` sends `body` (in ≤ 4 KiB chunks) with Success-Report: yes; `to` checks each
/// SEND belongs to the session, answers 200, reassembles, and sends one REPORT for the
/// whole message; `from` must see a 200 for every chunk and the REPORT.
async fn send_and_report(
    from: &mut MsrpTransport,
    to: &mut MsrpTransport,
    body: &[u8],
) -> Result<(), String> {
    let mut msg = from
        .make_message("text/plain", body.to_vec())
        .with_reports(ReportRequest::Yes, ReportRequest::Yes);
    let message_id = msg.message_id().to_owned();
    let mut tids = Vec::new();
    while let Some(chunk) = msg.next_chunk(MAX_CHUNK).map_err(|e| e.to_string())? {
        tids.push(chunk.transaction_id.clone());
        from.write_chunk(&chunk).await.map_err(|e| e.to_string())?;
    }
    if body.len() > MAX_CHUNK && tids.len() < 2 {
        return Err("the message was not split".into());
    }
    let mut reassembler = Reassembler::in_memory(1 << 20);
    let mut got = None;
    let mut last_send = None;
    while got.is_none() {
        let c = read_request(to).await?;
        if c.method() != Some(&Method::SEND) {
            return Err(format!("expected SEND, got {:?}", c.method()));
        }
        to.accept_incoming_send(&c)
            .await
            .map_err(|e| format!("receiver refused the SEND: {e}"))?;
        to.respond(&c, StatusCode::OK, None)
            .await
            .map_err(|e| e.to_string())?;
        let (progress, sink) = reassembler.feed(&c).map_err(|e| e.to_string())?;
        if matches!(progress, Progress::Complete { .. })
            && let Some(sink) = sink
        {
            got = Some(sink.into_bytes());
        }
        last_send = Some(c);
    }
    let got = got.expect("loop ends with a message");
    if got[..] != body[..] {
        return Err(format!("body differs: {} bytes received", got.len()));
    }
    let last = last_send.expect("at least one SEND");
    if last.message_id() != Some(message_id.as_str()) {
        return Err("Message-ID changed on the way".into());
    }
    // RFC 4975 §7.1.2: the REPORT goes back along the From-Path of the SEND.
    let report = last
        .report(
            StatusCode::OK,
            None,
            ByteRange::new(1, body.len() as u64, Some(body.len() as u64)),
        )
        .ok_or("cannot build REPORT")?;
    to.write_chunk(&report).await.map_err(|e| e.to_string())?;

    // The sender sees one 200 per chunk (hop-by-hop from the relay) and the REPORT.
    let mut oks = 0;
    loop {
        let c = from
            .read_chunk()
            .await
            .map_err(|e| format!("sender read: {e}"))?;
        match (c.status_code(), c.method()) {
            (Some(s), _) if tids.contains(&c.transaction_id) => {
                if s != StatusCode::OK {
                    return Err(format!("chunk answered {s}"));
                }
                oks += 1;
            }
            (None, Some(m)) if *m == Method::REPORT => {
                let status = c
                    .status_header()
                    .map_err(|e| e.to_string())?
                    .ok_or("REPORT without Status")?;
                if status.code != StatusCode::OK || c.message_id() != Some(message_id.as_str()) {
                    return Err(format!("unexpected REPORT {status:?}"));
                }
                let range = c.byte_range().map_err(|e| e.to_string())?;
                if range.and_then(|r| r.total) != Some(body.len() as u64) {
                    return Err(format!("REPORT range {range:?}"));
                }
                if oks != tids.len() {
                    // Responses are hop-by-hop and come first on this connection.
                    return Err(format!(
                        "{oks} of {} chunks answered before the REPORT",
                        tids.len()
                    ));
                }
                return Ok(());
            }
            other => return Err(format!("unexpected frame {other:?}")),
        }
    }
}

async fn refresh(t: &mut MsrpTransport) -> Result<(), String> {
    let before = t.relay_grant().cloned().ok_or("no grant")?;
    let g = t
        .relay_refresh()
        .await
        .map_err(|e| format!("refresh: {e}"))?;
    if g.granted_at <= before.granted_at || g.use_path.is_empty() || g.expires.is_none() {
        return Err(format!("refresh grant {g:?}"));
    }
    Ok(())
}

async fn wrong_password(relay: &MsrpUri) -> Result<(), String> {
    let mut c = ConnectorRelay::new(
        settings(relay, "mallory", "not-the-secret", None),
        options(),
    );
    match c.prepare().await {
        Err(ConnectError::Relay(AuthError::WrongCredentials { username }))
            if username == "mallory" =>
        {
            Ok(())
        }
        other => Err(format!("expected WrongCredentials, got {other:?}")),
    }
}

async fn expires_retry(relay: &MsrpUri, asked: u32, expected: u32) -> Result<(), String> {
    let mut c = ConnectorRelay::new(settings(relay, "carol", "secret", Some(asked)), options());
    c.prepare().await.map_err(|e| format!("prepare: {e}"))?;
    let g = c.grant().ok_or("no grant")?;
    if g.expires != Some(Duration::from_secs(u64::from(expected))) {
        return Err(format!("granted {:?}, expected {expected} s", g.expires));
    }
    c.cleanup();
    Ok(())
}

async fn unknown_session(t: &mut MsrpTransport, relay: &MsrpUri) -> Result<(), String> {
    let bogus = relay
        .clone()
        .with_session_id("doesnotexist")
        .map_err(|e| e.to_string())?;
    let chunk = huddle_msrp::ChunkBuilder::send(&[bogus], &t.from_path())
        .data("text/plain", &b"lost"[..])
        .build()
        .map_err(|e| e.to_string())?;
    match t.transaction(&chunk, Duration::from_secs(10)).await {
        Err(TransportError::Failed { status, .. })
            if status == StatusCode::SESSION_DOES_NOT_EXIST =>
        {
            Ok(())
        }
        other => Err(format!("expected 481, got {other:?}")),
    }
}
