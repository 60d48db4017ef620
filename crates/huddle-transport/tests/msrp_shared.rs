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
        assert_eq!(got.body.as_deref(), Some(format!("hello {i}").as_bytes()));
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
