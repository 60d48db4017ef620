//! The relay client (RFC 4976 §5) on a real loopback socket against a scripted relay
//! written here with the crate's codec and digest: challenge and retry, wrong
//! credentials, Use-Path, the granted Expires honoured, 423 retried within bounds, and
//! the re-AUTH sent by reads before the grant expires.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use huddle_msrp::{Chunk, ChunkBuilder, KnownHeader, Method, MsrpUri, StatusCode};
use huddle_transport::codec::MsrpCodec;
use huddle_transport::digest::{AUTH_METHOD, Challenge, Credentials};
use huddle_transport::msrp::connect::ConnectError;
use huddle_transport::msrp::{MsrpTransport, TransportOptions};
use huddle_transport::relay::client::{AuthError, RelayAuthConfig, connect_relay};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

#[derive(Clone, Copy)]
struct Script {
    min: u32,
    max: u32,
    /// Grant this instead of what was asked.
    grant: Option<u32>,
    /// After a refresh (second grant on a connection), send a SEND as a marker.
    marker_after_refresh: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            min: 60,
            max: 3600,
            grant: None,
            marker_after_refresh: false,
        }
    }
}

/// What the relay saw in each AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    nonce: Option<String>,
    nc: Option<u32>,
    expires: Option<u32>,
}

const PASSWORD: &str = "pw";
const REALM: &str = "relay.test";

async fn relay(script: Script) -> (MsrpUri, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let me: MsrpUri = format!("msrp://127.0.0.1:{port};tcp").parse().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let me2 = me.clone();
    tokio::spawn(async move {
        let mut nonces = 0u32;
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut f = Framed::new(tcp, MsrpCodec::default());
            let mut grants = 0;
            while let Some(Ok(Ok(req))) = f.next().await {
                if req.method() != Some(&Method::AUTH) {
                    continue;
                }
                let creds = req
                    .authorization()
                    .unwrap()
                    .map(|p| Credentials::from_params(&p).unwrap());
                let expires = req.expires().unwrap();
                // The test may not be listening.
                let _ = tx.send(Seen {
                    nonce: creds.as_ref().map(|c| c.nonce.clone()),
                    nc: creds.as_ref().map(|c| c.nc),
                    expires,
                });
                let resp = match creds {
                    Some(c) if c.verify(AUTH_METHOD, PASSWORD) && c.uri == me2.to_string() => {
                        match expires {
                            Some(e) if e < script.min => response(
                                &req,
                                423,
                                &[(KnownHeader::MinExpires, script.min.to_string())],
                            ),
                            Some(e) if e > script.max => response(
                                &req,
                                423,
                                &[(KnownHeader::MaxExpires, script.max.to_string())],
                            ),
                            e => {
                                grants += 1;
                                let granted = script.grant.or(e).unwrap_or(script.max);
                                response(
                                    &req,
                                    200,
                                    &[
                                        (
                                            KnownHeader::UsePath,
                                            format!("msrp://127.0.0.1:{port}/grant{grants};tcp"),
                                        ),
                                        (KnownHeader::Expires, granted.to_string()),
                                    ],
                                )
                            }
                        }
                    }
                    _ => {
                        nonces += 1;
                        let ch = Challenge::new(REALM, &format!("nonce{nonces}"));
                        response(
                            &req,
                            401,
                            &[(KnownHeader::WwwAuthenticate, ch.to_params().to_string())],
                        )
                    }
                };
                f.send(&resp).await.unwrap();
                if script.marker_after_refresh
                    && grants == 2
                    && resp.status_code() == Some(StatusCode::OK)
                {
                    let client = req.from_path().unwrap();
                    let marker = ChunkBuilder::send(&client, std::slice::from_ref(&me2))
                        .data("text/plain", &b"refreshed"[..])
                        .build()
                        .unwrap();
                    f.send(&marker).await.unwrap();
                }
            }
        }
    });
    (me, rx)
}

fn response(req: &Chunk, status: u16, headers: &[(KnownHeader, String)]) -> Chunk {
    let mut r = req.response(StatusCode(status), None).unwrap();
    for (h, v) in headers {
        r.headers_mut().append(*h, v).unwrap();
    }
    r
}

fn config(relay: &MsrpUri, password: &str) -> RelayAuthConfig {
    RelayAuthConfig::new(
        relay.clone(),
        "msrp://127.0.0.1:9/client;tcp".parse().unwrap(),
        "user",
        password,
    )
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Vec<Seen> {
    let mut v = Vec::new();
    while let Ok(s) = rx.try_recv() {
        v.push(s);
    }
    v
}

#[tokio::test]
async fn authenticates_with_digest_and_honours_the_granted_expires() {
    let (uri, mut seen) = relay(Script {
        grant: Some(300),
        ..Script::default()
    })
    .await;
    let (t, grant) = connect_relay(
        config(&uri, PASSWORD).with_expires(600),
        &TransportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        grant.expires,
        Some(Duration::from_secs(300)),
        "the relay's value, not ours"
    );
    assert_eq!(grant.use_path[0].session_id(), Some("grant1"));
    // RFC 4976 §6.1: a=path is the Use-Path then our URI, whose host and port are the
    // connection's.
    let path = t.full_local_path();
    assert_eq!(path.len(), 2);
    assert_eq!(path[0], grant.use_path[0]);
    assert_eq!(path[1].port(), Some(t.connection_info().local.port()));
    assert_eq!(path[1].session_id(), Some("client"));
    assert_eq!(
        drain(&mut seen),
        [
            Seen {
                nonce: None,
                nc: None,
                expires: Some(600)
            },
            Seen {
                nonce: Some("nonce1".into()),
                nc: Some(1),
                expires: Some(600)
            },
        ]
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_typed_error() {
    let (uri, _seen) = relay(Script::default()).await;
    let err = connect_relay(config(&uri, "wrong"), &TransportOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Relay(AuthError::WrongCredentials { ref username }) if username == "user"),
        "{err:?}"
    );
}

#[tokio::test]
async fn interval_out_of_bounds_is_retried_within_the_bounds() {
    let (uri, mut seen) = relay(Script::default()).await;
    let (_t, grant) = connect_relay(
        config(&uri, PASSWORD).with_expires(10),
        &TransportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(grant.expires, Some(Duration::from_secs(60)));
    let expires: Vec<Option<u32>> = drain(&mut seen).iter().map(|s| s.expires).collect();
    assert_eq!(expires, [Some(10), Some(10), Some(60)]);

    let (uri, _) = relay(Script::default()).await;
    let (_t, grant) = connect_relay(
        config(&uri, PASSWORD).with_expires(86_400),
        &TransportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(grant.expires, Some(Duration::from_secs(3600)));

    // Bounds the caller does not accept end in a typed error.
    let (uri, _) = relay(Script::default()).await;
    let mut cfg = config(&uri, PASSWORD).with_expires(10);
    cfg.acceptable_expires = (1, 30);
    let err = connect_relay(cfg, &TransportOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Relay(AuthError::IntervalOutOfBounds { min: Some(60), .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn reads_re_authenticate_before_the_grant_expires() {
    let (uri, mut seen) = relay(Script {
        min: 1,
        marker_after_refresh: true,
        ..Script::default()
    })
    .await;
    let (mut t, grant): (MsrpTransport, _) = connect_relay(
        config(&uri, PASSWORD).with_expires(2),
        &TransportOptions::default(),
    )
    .await
    .unwrap();
    let granted = Instant::now();
    assert_eq!(grant.expires, Some(Duration::from_secs(2)));
    // Nothing else happens on the connection: the read sends the refresh at 3/4 of the
    // lifetime, the relay grants it and then sends a SEND, which the read returns.
    let marker = tokio::time::timeout(Duration::from_secs(5), t.read_chunk())
        .await
        .expect("the refresh happens within the lifetime")
        .unwrap();
    assert_eq!(marker.body(), Some(&b"refreshed"[..]));
    assert!(
        granted.elapsed() < Duration::from_secs(2),
        "refreshed before expiry"
    );
    let refreshes = t.take_relay_refreshes();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].use_path[0].session_id(), Some("grant2"));
    // The session keeps the Use-Path it was bound with.
    assert_eq!(t.relay_path()[0].session_id(), Some("grant1"));
    // The refresh reused the nonce with the next nonce count: no new challenge round.
    let auths = drain(&mut seen);
    assert_eq!(auths.len(), 3, "{auths:?}");
    assert_eq!(auths[2].nonce.as_deref(), Some("nonce1"));
    assert_eq!(auths[2].nc, Some(2));
    // The caller-driven form.
    let g = t.relay_refresh().await.unwrap();
    assert_eq!(g.use_path[0].session_id(), Some("grant3"));
}
