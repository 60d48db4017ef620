//! `MsrpServer` on a real loopback socket: many sessions share one port, each binds to
//! the right session, strangers are refused with 481, and a session nobody binds times
//! out.

use std::time::Duration;

use huddle_msrp::{Method, StatusCode};
use huddle_transport::msrp::connect::ConnectError;
use huddle_transport::msrp::{ConnectorDirect, MsrpConnector, MsrpServer, TransportOptions};

fn options(bind_timeout: Duration) -> TransportOptions {
    TransportOptions {
        bind_timeout,
        ..TransportOptions::default()
    }
}

#[tokio::test]
async fn sessions_share_one_port_and_each_binds_to_its_own() {
    let server = MsrpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        false,
        options(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(server.prepare().unwrap());
    }
    assert_eq!(server.pending_sessions(), 5);
    let port = server.local_addr().port();
    let mut tasks = Vec::new();
    let mut owns = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let path = s.full_local_path();
        assert_eq!(path[0].port(), Some(port), "one port for every session");
        let mut c = ConnectorDirect::new(options(Duration::from_secs(10)));
        owns.push(c.prepare().await.unwrap());
        tasks.push(tokio::spawn(async move {
            let mut t = c.complete(&path).await.unwrap();
            let body = format!("from connector {i}");
            let chunk = t
                .make_chunk()
                .data("text/plain", body.clone().into_bytes())
                .build()
                .unwrap();
            t.write_chunk(&chunk).await.unwrap();
            (t, body)
        }));
    }
    // Complete in reverse order: bindings that arrived early wait for their session.
    let mut bound = Vec::new();
    for (s, own) in sessions.iter_mut().zip(&owns).rev() {
        let t = s.complete(own).await.unwrap();
        assert_eq!(t.local_uri(), s.local_uri());
        bound.push(t);
    }
    bound.reverse();
    for (i, (task, mut t)) in tasks.into_iter().zip(bound).enumerate() {
        let (_client, body) = task.await.unwrap();
        assert_eq!(body, format!("from connector {i}"));
        let c = t.read_chunk().await.unwrap();
        assert_eq!(c.method(), Some(&Method::SEND));
        assert_eq!(c.body(), Some(body.as_bytes()));
        t.accept_incoming_send(&c).await.unwrap();
    }
    assert_eq!(server.pending_sessions(), 0);
}

#[tokio::test]
async fn unknown_sessions_are_refused_and_unbound_sessions_time_out() {
    let server = MsrpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        false,
        options(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let mut session = server.prepare_with_session_id("known").unwrap();
    assert!(matches!(
        server.prepare_with_session_id("known"),
        Err(ConnectError::Duplicate)
    ));
    // A connection for a session the server does not have: 481, cleanly.
    let stranger = vec![
        session
            .local_uri()
            .clone()
            .with_session_id("unknown")
            .unwrap(),
    ];
    let mut c = ConnectorDirect::new(options(Duration::from_secs(10)));
    c.prepare().await.unwrap();
    let err = c.complete(&stranger).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::BindRejected {
                status: StatusCode::SESSION_DOES_NOT_EXIST,
                ..
            }
        ),
        "{err:?}"
    );
    // Nobody binds the known session.
    let remote = vec!["msrp://127.0.0.1:9/peer;tcp".parse().unwrap()];
    assert!(matches!(
        session.complete(&remote).await,
        Err(ConnectError::BindTimeout)
    ));
    assert!(matches!(
        session.complete(&remote).await,
        Err(ConnectError::AlreadyUsed)
    ));
    // Its URI is free again, and cleanup on drop unregisters.
    let again = server.prepare_with_session_id("known").unwrap();
    assert_eq!(server.pending_sessions(), 1);
    drop(again);
    assert_eq!(server.pending_sessions(), 0);
}

#[tokio::test]
async fn a_binding_from_the_wrong_peer_is_refused_and_the_right_one_still_binds() {
    let server = MsrpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        false,
        options(Duration::from_secs(10)),
    )
    .await
    .unwrap();
    let mut session = server.prepare().unwrap();
    let path = session.full_local_path();
    let expected_peer = vec!["msrp://127.0.0.1:9/rightpeer;tcp".parse().unwrap()];
    let p2 = path.clone();
    let wrong = tokio::spawn(async move {
        let mut c = ConnectorDirect::new(options(Duration::from_secs(10)))
            .with_local_uri("msrp://127.0.0.1:9/wrongpeer;tcp".parse().unwrap());
        c.prepare().await.unwrap();
        c.complete(&p2).await
    });
    let p3 = path.clone();
    let right = async move {
        // Only after the wrong one was refused, so the order is fixed.
        let w = wrong.await.unwrap();
        let mut c = ConnectorDirect::new(options(Duration::from_secs(10)))
            .with_local_uri("msrp://127.0.0.1:9/rightpeer;tcp".parse().unwrap());
        c.prepare().await.unwrap();
        (w, c.complete(&p3).await)
    };
    let (bound, (w, r)) = tokio::join!(session.complete(&expected_peer), right);
    assert!(
        matches!(
            w,
            Err(ConnectError::BindRejected {
                status: StatusCode::SESSION_DOES_NOT_EXIST,
                ..
            })
        ),
        "{w:?}"
    );
    r.unwrap();
    assert_eq!(bound.unwrap().remote_path(), &expected_peer[..]);
}
