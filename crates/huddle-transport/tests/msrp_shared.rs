//! Several sessions over one loopback connection (RFC 4975 §5.4), routed by To-Path.

use std::time::Duration;

use huddle_msrp::{ChunkBuilder, MsrpUri, StatusCode};
use huddle_transport::msrp::{MsrpStream, SharedConnection, TlsSettings, TransportOptions};
use tokio::net::TcpListener;
use tokio::time::timeout;

async fn connected_pair() -> (MsrpStream, MsrpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let uri: MsrpUri = format!("msrp://{addr}/x;tcp").parse().unwrap();
    let tls = TlsSettings::default();
    let (client, server) = tokio::join!(MsrpStream::connect(&uri, &tls), async {
        let (tcp, _) = listener.accept().await.unwrap();
        MsrpStream::accept(tcp, false, &tls).await
    });
    (client.unwrap(), server.unwrap())
}

fn uri(s: &str) -> MsrpUri {
    s.parse().unwrap()
}

#[tokio::test]
async fn three_sessions_share_one_connection_and_strangers_get_481() {
    let (a, b) = connected_pair().await;
    let opts = TransportOptions::default();
    let left = SharedConnection::new(a, &opts);
    let right = SharedConnection::new(b, &opts);
    let mut pairs = Vec::new();
    for i in 0..3 {
        let l = left
            .attach(uri(&format!("msrp://127.0.0.1:1000/left{i};tcp")))
            .unwrap();
        let r = right
            .attach(uri(&format!("msrp://127.0.0.1:2000/right{i};tcp")))
            .unwrap();
        pairs.push((l, r));
    }
    assert_eq!(left.sessions(), 3);
    assert!(
        left.attach(uri("msrp://127.0.0.1:1000/left0;tcp")).is_err(),
        "duplicate URI refused"
    );
    // Each session sends to its peer; interleaved on the wire.
    for (i, (l, r)) in pairs.iter().enumerate() {
        let c = ChunkBuilder::send(&[r.local_uri().clone()], &[l.local_uri().clone()])
            .data("text/plain", format!("hello {i}"))
            .build()
            .unwrap();
        l.send(c).await.unwrap();
    }
    for (i, (l, r)) in pairs.iter_mut().enumerate() {
        let got = timeout(Duration::from_secs(5), r.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.body(), Some(format!("hello {i}").as_bytes()));
        // The response goes back on the same connection to the right session.
        r.send(got.response(StatusCode::OK, Some("OK")).unwrap())
            .await
            .unwrap();
        let resp = timeout(Duration::from_secs(5), l.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status_code(), Some(StatusCode::OK));
        assert_eq!(resp.to_path().unwrap(), vec![l.local_uri().clone()]);
    }
    // A SEND for a session the far side does not have: 481 comes back to the sender.
    let (l0, _r0) = &mut pairs[0];
    let c = ChunkBuilder::send(
        &[uri("msrp://127.0.0.1:2000/nobody;tcp")],
        &[l0.local_uri().clone()],
    )
    .data("text/plain", "anyone?")
    .build()
    .unwrap();
    l0.send(c).await.unwrap();
    let resp = timeout(Duration::from_secs(5), l0.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status_code(), Some(StatusCode::SESSION_DOES_NOT_EXIST));
    // A detached session is a stranger too.
    let (l2, r2) = pairs.pop().unwrap();
    drop(r2);
    let c = ChunkBuilder::send(
        &[uri("msrp://127.0.0.1:2000/right2;tcp")],
        &[l2.local_uri().clone()],
    )
    .data("text/plain", "gone?")
    .build()
    .unwrap();
    l2.send(c).await.unwrap();
    let mut l2 = l2;
    let resp = timeout(Duration::from_secs(5), l2.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status_code(), Some(StatusCode::SESSION_DOES_NOT_EXIST));
    // Closing one side ends every session's queue on the other.
    drop(right);
    drop(pairs);
    let mut l = left.attach(uri("msrp://127.0.0.1:1000/late;tcp")).unwrap();
    assert!(
        timeout(Duration::from_secs(5), l.recv())
            .await
            .unwrap()
            .is_none()
    );
}

// ------------------------------------------------------------------ connection reuse

mod reuse {
    use super::*;
    use huddle_msrp::Method;
    use huddle_transport::msrp::connect::RelaySettings;
    use huddle_transport::msrp::{
        AcceptorRelay, ConnectError, ConnectionPool, ConnectorDirect, ConnectorRelay,
        MsrpConnector, MsrpServer, MsrpTransport,
    };
    use huddle_transport::relay::server::{
        CredentialStore, ListenerConfig, RelayServer, ServerConfig,
    };

    const DEADLINE: Duration = Duration::from_secs(10);

    /// A SEND from `a` reaches `b`, which answers 200; `a`'s transaction sees it.
    async fn send_through(a: &mut MsrpTransport, b: &mut MsrpTransport, text: &str) {
        let chunk = a
            .make_chunk()
            .data("text/plain", text.to_owned())
            .build()
            .unwrap();
        let (resp, ()) = tokio::join!(a.transaction(&chunk, DEADLINE), async {
            let got = timeout(DEADLINE, b.read_chunk()).await.unwrap().unwrap();
            assert_eq!(got.body(), Some(text.as_bytes()));
            b.accept_incoming_send(&got).await.unwrap();
            b.respond(&got, StatusCode::OK, None).await.unwrap();
        });
        assert_eq!(resp.unwrap().status_code(), Some(StatusCode::OK));
    }

    /// Two sessions from one endpoint through huddle's relay: with a pool, the second
    /// AUTH and all its traffic use the first session's TCP connection (RFC 4975 §5.4);
    /// the relay sees one connection from alice and one per session from bob.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_relay_sessions_share_one_tcp_connection() {
        let mut creds = CredentialStore::new();
        creds.insert("alice", "secret");
        creds.insert("bob", "hunter2");
        let relay = RelayServer::start(
            ServerConfig::new(vec![ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())]),
            creds,
        )
        .await
        .unwrap();
        let settings = |user: &str, pw: &str| RelaySettings {
            relay_uri: relay.uri().clone(),
            username: user.to_owned(),
            password: pw.to_owned(),
            expires: Some(600),
        };
        let pool = ConnectionPool::new();
        let mut pairs = Vec::new();
        for _ in 0..2 {
            let mut a =
                ConnectorRelay::new(settings("alice", "secret"), TransportOptions::default())
                    .with_pool(pool.clone());
            let mut b = AcceptorRelay::new(settings("bob", "hunter2"), TransportOptions::default());
            let pa = timeout(DEADLINE, a.prepare()).await.unwrap().unwrap();
            let pb = timeout(DEADLINE, b.prepare()).await.unwrap().unwrap();
            let (ta, tb) = tokio::join!(a.complete(&pb), b.complete(&pa));
            pairs.push((ta.unwrap(), tb.unwrap()));
        }
        assert_eq!(pool.connections().await, 1);
        let (a0, a1) = (&pairs[0].0, &pairs[1].0);
        assert_eq!(
            a0.connection_info().local,
            a1.connection_info().local,
            "one socket"
        );
        assert_ne!(a0.local_uri(), a1.local_uri(), "two sessions");
        assert_ne!(a0.relay_path(), a1.relay_path(), "two grants");
        for (i, (a, b)) in pairs.iter_mut().enumerate() {
            send_through(a, b, &format!("alice to bob, session {i}")).await;
            send_through(b, a, &format!("bob to alice, session {i}")).await;
        }
        let m = relay.metrics().await.unwrap();
        assert_eq!(m.connections_accepted, 3, "{m:?}");
        assert_eq!(m.sessions_created, 4, "{m:?}");
        // Once every session let go of it, the pool holds no connection.
        drop(pairs);
        let gone = async {
            while pool.connections().await > 0 {
                tokio::task::yield_now().await;
            }
        };
        timeout(DEADLINE, gone).await.unwrap();
        relay.shutdown().await;
    }

    /// Two direct sessions to the same peer authority (one port, two session URIs) ride
    /// one TCP connection: the peer accepts a single connection and binds both sessions
    /// on it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_direct_sessions_to_one_peer_share_one_tcp_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer_uri = |sid: &str| uri(&format!("msrp://127.0.0.1:{port}/{sid};tcp"));
        let peer = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = MsrpStream::accept(tcp, false, &TlsSettings::default())
                .await
                .unwrap();
            let conn = SharedConnection::new(stream, &TransportOptions::default());
            let sessions = vec![
                conn.attach(uri(&format!("msrp://127.0.0.1:{port}/bob0;tcp")))
                    .unwrap(),
                conn.attach(uri(&format!("msrp://127.0.0.1:{port}/bob1;tcp")))
                    .unwrap(),
            ];
            // Each session gets its binding SEND and one message on this connection.
            let served: Vec<_> = sessions
                .into_iter()
                .map(|mut s| {
                    tokio::spawn(async move {
                        for _ in 0..2 {
                            let c = s.recv().await.unwrap();
                            assert_eq!(c.method(), Some(&Method::SEND));
                            s.send(c.response(StatusCode::OK, Some("OK")).unwrap())
                                .await
                                .unwrap();
                        }
                        s
                    })
                })
                .collect();
            let mut kept = Vec::new();
            for t in served {
                kept.push(t.await.unwrap());
            }
            assert_eq!(conn.sessions(), 2);
            drop(kept);
            // No second connection arrives while the sessions run.
            (conn, listener)
        });
        let pool = ConnectionPool::new();
        let mut transports = Vec::new();
        for i in 0..2 {
            let mut c = ConnectorDirect::new(TransportOptions::default()).with_pool(pool.clone());
            c.prepare().await.unwrap();
            let t = timeout(DEADLINE, c.complete(&[peer_uri(&format!("bob{i}"))]))
                .await
                .unwrap()
                .unwrap();
            transports.push(t);
        }
        for (i, t) in transports.iter_mut().enumerate() {
            let chunk = t
                .make_chunk()
                .data("text/plain", format!("hello {i}"))
                .build()
                .unwrap();
            let resp = t.transaction(&chunk, DEADLINE).await.unwrap();
            assert_eq!(resp.status_code(), Some(StatusCode::OK));
        }
        let (_conn, listener) = timeout(DEADLINE, peer).await.unwrap().unwrap();
        assert_eq!(pool.connections().await, 1);
        assert_eq!(
            transports[0].connection_info().local,
            transports[1].connection_info().local
        );
        // Nothing else connected.
        assert!(
            timeout(Duration::from_millis(50), listener.accept())
                .await
                .is_err()
        );
    }

    /// Both ends from huddle: connectors with a pool on one side, an `MsrpServer` that
    /// shares inbound connections on the other. Two sessions bind over one TCP
    /// connection; a binding for an unknown session on it gets 481 while the others go
    /// on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_server_binds_two_sessions_on_one_inbound_connection() {
        let opts = TransportOptions::default;
        let server = MsrpServer::bind_shared("127.0.0.1:0".parse().unwrap(), false, opts())
            .await
            .unwrap();
        let pool = ConnectionPool::new();
        let mut pairs = Vec::new();
        for _ in 0..2 {
            let mut s = server.prepare().unwrap();
            let mut c = ConnectorDirect::new(opts()).with_pool(pool.clone());
            let local = c.prepare().await.unwrap();
            let server_path = s.full_local_path();
            let (tc, ts) = tokio::join!(
                timeout(DEADLINE, c.complete(&server_path)),
                timeout(DEADLINE, s.complete(&local)),
            );
            pairs.push((tc.unwrap().unwrap(), ts.unwrap().unwrap()));
        }
        assert_eq!(pool.connections().await, 1);
        let peers: Vec<_> = pairs
            .iter()
            .map(|(_, s)| s.connection_info().peer)
            .collect();
        assert_eq!(peers[0], peers[1], "one inbound connection");
        // A binding for a session the server does not have: 481, typed.
        let mut stranger = ConnectorDirect::new(opts()).with_pool(pool.clone());
        stranger.prepare().await.unwrap();
        let mut nobody = pairs[0].1.local_uri().clone();
        nobody = nobody.with_session_id("nobody").unwrap();
        let refused = timeout(DEADLINE, stranger.complete(&[nobody]))
            .await
            .unwrap();
        assert!(
            matches!(
                refused,
                Err(ConnectError::BindRejected {
                    status: StatusCode::SESSION_DOES_NOT_EXIST,
                    ..
                })
            ),
            "{refused:?}"
        );
        for (i, (c, s)) in pairs.iter_mut().enumerate() {
            send_through(c, s, &format!("to the server, session {i}")).await;
            send_through(s, c, &format!("from the server, session {i}")).await;
        }
        assert_eq!(pool.connections().await, 1);
    }

    /// A chunk above the default segment size (256 KiB) written by a session on a
    /// shared stream leaves as one frame with one transaction id.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_chunk_leaves_a_shared_stream_as_one_frame() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let big = TransportOptions {
            limits: huddle_msrp::Limits {
                max_body_in_memory: 1 << 20,
                ..huddle_msrp::Limits::default()
            },
            ..TransportOptions::default()
        };
        let peer_opts = big.clone();
        let peer = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = MsrpStream::accept(tcp, false, &TlsSettings::default())
                .await
                .unwrap();
            let conn = SharedConnection::new(stream, &peer_opts);
            let mut s = conn
                .attach(uri(&format!("msrp://127.0.0.1:{port}/bob;tcp")))
                .unwrap();
            let mut frames = Vec::new();
            for _ in 0..2 {
                let c = s.recv().await.unwrap();
                s.send(c.response(StatusCode::OK, Some("OK")).unwrap())
                    .await
                    .unwrap();
                frames.push(c);
            }
            // The connection stays open until the test has read the responses.
            (frames, conn, s)
        });
        let pool = ConnectionPool::new();
        let mut c = ConnectorDirect::new(TransportOptions::default()).with_pool(pool);
        c.prepare().await.unwrap();
        let target = uri(&format!("msrp://127.0.0.1:{port}/bob;tcp"));
        let mut t = timeout(DEADLINE, c.complete(&[target]))
            .await
            .unwrap()
            .unwrap();
        let body = vec![b'x'; 300 * 1024];
        let chunk = t
            .make_chunk()
            .data("application/octet-stream", body.clone())
            .build()
            .unwrap();
        let (resp, served) = tokio::join!(t.transaction(&chunk, DEADLINE), async {
            timeout(DEADLINE, peer).await.unwrap().unwrap()
        });
        assert_eq!(resp.unwrap().status_code(), Some(StatusCode::OK));
        let (frames, _conn, _session) = served;
        let got = &frames[1];
        assert_eq!(got.segment, None, "one frame");
        assert_eq!(got.transaction_id, chunk.transaction_id);
        assert_eq!(got.body_len(), Some(body.len()));
        assert!(got.body() == Some(&body[..]), "the bytes sent");
    }
}
