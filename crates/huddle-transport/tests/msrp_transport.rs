//! MSRP connections on real loopback sockets: direct connectors and acceptors (TCP and
//! TLS), binding, the 481 session check, bounded reads, bad frames, traffic logging, and
//! one-use connectors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_msrp::{Chunk, Flag, Method, MsrpUri, StatusCode, TransactionId};
use huddle_transport::msrp::connect::ConnectError;
use huddle_transport::msrp::trafficlog::{ConnectionInfo, Direction};
use huddle_transport::msrp::{
    AcceptorDirect, ConnectorDirect, MsrpConnector, MsrpTransport, SessionMismatch, TlsSettings,
    TrafficLogger, TransportError, TransportOptions,
};

fn options() -> TransportOptions {
    TransportOptions {
        bind_timeout: Duration::from_secs(10),
        ..TransportOptions::default()
    }
}

async fn pair(opts: TransportOptions, secure: bool) -> (MsrpTransport, MsrpTransport) {
    let mut acceptor = AcceptorDirect::new(opts.clone());
    if secure {
        acceptor = acceptor.with_local_uri("msrps://127.0.0.1;tcp".parse().unwrap());
    }
    let mut connector = ConnectorDirect::new(opts);
    let a_path = acceptor.prepare().await.unwrap();
    let c_path = connector.prepare().await.unwrap();
    assert_eq!(a_path.len(), 1);
    assert_ne!(a_path[0].port(), Some(0), "prepare reports the real port");
    assert_eq!(a_path[0].secure(), secure);
    let (a, c) = tokio::join!(acceptor.complete(&c_path), connector.complete(&a_path));
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(a.remote_path(), &c_path[..]);
    assert_eq!(c.remote_path(), &a_path[..]);
    assert_eq!(a.full_local_path(), a_path);
    (c, a)
}

/// Sends a SEND from `from` and has `to` check and answer it.
async fn exchange(from: &mut MsrpTransport, to: &mut MsrpTransport, body: &'static [u8]) {
    let chunk = from.make_chunk().data("text/plain", body).build().unwrap();
    from.write_chunk(&chunk).await.unwrap();
    let got = to.read_chunk().await.unwrap();
    assert_eq!(got.method(), Some(&Method::SEND));
    assert_eq!(got.body(), Some(body));
    to.accept_incoming_send(&got).await.unwrap();
    to.respond(&got, StatusCode::OK, None).await.unwrap();
    let resp = from.read_chunk().await.unwrap();
    assert_eq!(resp.status_code(), Some(StatusCode::OK));
    assert_eq!(resp.transaction_id, chunk.transaction_id);
}

#[tokio::test]
async fn direct_connector_and_acceptor_bind_and_exchange() {
    let (mut c, mut a) = pair(options(), false).await;
    exchange(&mut c, &mut a, b"hello").await;
    exchange(&mut a, &mut c, b"hello back").await;
    c.shutdown().await.unwrap();
    assert!(matches!(a.read_chunk().await, Err(TransportError::Closed)));
}

fn tls_settings() -> TlsSettings {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsSettings::both(Arc::new(client), Arc::new(server))
}

#[tokio::test]
async fn msrps_over_tls() {
    let opts = TransportOptions {
        tls: tls_settings(),
        ..options()
    };
    let (mut c, mut a) = pair(opts, true).await;
    assert!(c.connection_info().secure && a.connection_info().secure);
    exchange(&mut c, &mut a, b"over TLS").await;
}

#[tokio::test]
async fn msrps_without_tls_settings_is_a_typed_error() {
    let mut acceptor =
        AcceptorDirect::new(options()).with_local_uri("msrps://127.0.0.1;tcp".parse().unwrap());
    let path = acceptor.prepare().await.unwrap();
    let mut connector = ConnectorDirect::new(options());
    connector.prepare().await.unwrap();
    let err = connector.complete(&path).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Stream(huddle_transport::msrp::StreamError::TlsNotConfigured)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_send_for_another_session_gets_481_and_a_typed_error() {
    let (mut c, mut a) = pair(options(), false).await;
    // To-Path names a session the acceptor does not have.
    let other: MsrpUri = a
        .local_uri()
        .clone()
        .with_session_id("someoneelse")
        .unwrap();
    let chunk = huddle_msrp::ChunkBuilder::send(&[other], &c.from_path())
        .data("text/plain", &b"x"[..])
        .build()
        .unwrap();
    c.write_chunk(&chunk).await.unwrap();
    let got = a.read_chunk().await.unwrap();
    let err = a.accept_incoming_send(&got).await.unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::WrongSession(SessionMismatch::ToPath { .. })
        ),
        "{err:?}"
    );
    let resp = c.read_chunk().await.unwrap();
    assert_eq!(resp.status_code(), Some(StatusCode::SESSION_DOES_NOT_EXIST));
    // The right To-Path from the wrong sender: From-Path does not end with the peer.
    let stranger: MsrpUri = "msrp://127.0.0.1:9/stranger;tcp".parse().unwrap();
    let chunk = huddle_msrp::ChunkBuilder::send(&[a.local_uri().clone()], &[stranger])
        .build()
        .unwrap();
    assert!(matches!(
        a.check_incoming_send(&chunk),
        Err(SessionMismatch::FromPath { .. })
    ));
    // The session still works.
    exchange(&mut c, &mut a, b"still here").await;
}

#[tokio::test]
async fn binding_to_the_wrong_session_is_refused_with_481() {
    let mut acceptor = AcceptorDirect::new(TransportOptions {
        bind_timeout: Duration::from_millis(500),
        ..options()
    });
    let path = acceptor.prepare().await.unwrap();
    let wrong = vec![path[0].clone().with_session_id("notthisone").unwrap()];
    let mut connector = ConnectorDirect::new(options());
    let c_path = connector.prepare().await.unwrap();
    let (a, c) = tokio::join!(acceptor.complete(&c_path), connector.complete(&wrong));
    assert!(
        matches!(
            c,
            Err(ConnectError::BindRejected {
                status: StatusCode::SESSION_DOES_NOT_EXIST,
                ..
            })
        ),
        "{c:?}"
    );
    assert!(matches!(a, Err(ConnectError::BindTimeout)), "{a:?}");
}

#[tokio::test]
async fn connectors_are_one_use() {
    let mut c = ConnectorDirect::new(options());
    let err = c.complete(&[]).await.unwrap_err();
    assert!(matches!(err, ConnectError::NotPrepared));
    c.prepare().await.unwrap();
    assert!(matches!(
        c.prepare().await.unwrap_err(),
        ConnectError::AlreadyUsed
    ));
    c.cleanup();
    let path: Vec<MsrpUri> = vec!["msrp://127.0.0.1:9/x;tcp".parse().unwrap()];
    assert!(matches!(
        c.complete(&path).await.unwrap_err(),
        ConnectError::AlreadyUsed
    ));

    let mut a = AcceptorDirect::new(options());
    let p = a.prepare().await.unwrap();
    a.cleanup();
    assert!(matches!(
        a.complete(&path).await.unwrap_err(),
        ConnectError::AlreadyUsed
    ));
    // cleanup closed the port.
    let port = p[0].port().unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bounded_reads_hand_out_virtual_chunks() {
    let (mut c, mut a) = pair(options(), false).await;
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let chunk = c
        .make_chunk()
        .data("application/octet-stream", body.clone())
        .build()
        .unwrap();
    c.write_chunk(&chunk).await.unwrap();
    let mut pieces = Vec::new();
    loop {
        let p = a.read_chunk_bounded(4096).await.unwrap();
        let last = p.body_len().unwrap() < 4096 || p.flag != Flag::More;
        pieces.push(p);
        if last {
            break;
        }
    }
    assert_eq!(pieces.len(), 3);
    let sizes: Vec<usize> = pieces.iter().map(|p| p.body_len().unwrap()).collect();
    assert_eq!(sizes, [4096, 4096, 1808]);
    let ranges: Vec<String> = pieces
        .iter()
        .map(|p| p.byte_range().unwrap().unwrap().to_string())
        .collect();
    assert_eq!(
        ranges,
        ["1-4096/10000", "4097-8192/10000", "8193-10000/10000"]
    );
    let flags: Vec<Flag> = pieces.iter().map(|p| p.flag).collect();
    assert_eq!(flags, [Flag::More, Flag::More, Flag::End]);
    let segs: Vec<Option<u32>> = pieces.iter().map(|p| p.segment).collect();
    assert_eq!(segs, [Some(1), Some(2), Some(3)]);
    let joined: Vec<u8> = pieces
        .iter()
        .flat_map(|p| p.body_bytes().unwrap())
        .collect();
    assert_eq!(joined, body);
    // A small chunk comes whole, not as a segment.
    exchange(&mut c, &mut a, b"small").await;
}

#[tokio::test]
async fn a_bad_frame_is_answered_and_the_connection_survives() {
    let (mut c, mut a) = pair(options(), false).await;
    let to = a.local_uri().to_string();
    let from = c.local_uri().to_string();
    // Byte-Range 0-… is not a valid range (RFC 4975 §7.1.1 positions start at 1).
    let bad = format!(
        "MSRP badone1 SEND\r\nTo-Path: {to}\r\nFrom-Path: {from}\r\nMessage-ID: m\r\nByte-Range: 0-1/1\r\n-------badone1$\r\n"
    );
    c.write(bad.as_bytes()).await.unwrap();
    let err = a.read_chunk().await.unwrap_err();
    assert!(matches!(err, TransportError::BadFrame(_)), "{err:?}");
    let resp = c.read_chunk().await.unwrap();
    assert_eq!(resp.status_code(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(resp.transaction_id, TransactionId::new("badone1").unwrap());
    exchange(&mut c, &mut a, b"after the bad one").await;
    // Garbage breaks the stream: a typed error, the connection is done.
    c.write(b"HELLO\r\n").await.unwrap();
    assert!(matches!(
        a.read_chunk().await,
        Err(TransportError::Framing(_))
    ));
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Direction, String, Option<usize>)>>);

impl TrafficLogger for Recorder {
    fn frame(&self, _conn: &ConnectionInfo, dir: Direction, chunk: &Chunk) {
        self.0
            .lock()
            .unwrap()
            .push((dir, chunk.transaction_id.to_string(), chunk.body_len()));
    }
}

#[tokio::test]
async fn every_frame_reaches_the_traffic_logger() {
    let rec = Arc::new(Recorder::default());
    let opts = TransportOptions {
        logger: rec.clone(),
        ..options()
    };
    let (mut c, mut a) = pair(opts, false).await;
    exchange(&mut c, &mut a, b"logged").await;
    let log = rec.0.lock().unwrap().clone();
    // Binding: SEND out, SEND in, 200 out, 200 in; then the same for the exchange.
    assert_eq!(log.len(), 8, "{log:?}");
    assert_eq!(
        log.iter().filter(|(d, _, _)| *d == Direction::Out).count(),
        4
    );
    assert!(log.iter().any(|(_, _, len)| *len == Some(6)));
}
