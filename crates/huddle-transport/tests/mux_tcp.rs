//! The multiplexer's tokio driver over real loopback TCP.

use std::time::Duration;

use huddle_transport::mux::{
    ChannelError, CloseReason, Config, Connection, ConnectionEnd, ConnectionError, GoAwayCode,
    RefuseReason, Role,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Every wait in these tests ends by this deadline (a hang fails instead of blocking CI).
const DEADLINE: Duration = Duration::from_secs(60);

async fn pair(client: Config, server: Config) -> (Connection, Connection) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    let c = c.expect("connect");
    let (s, _) = s.expect("accept");
    c.set_nodelay(true).expect("nodelay");
    s.set_nodelay(true).expect("nodelay");
    (
        Connection::new(c, Role::Client, client),
        Connection::new(s, Role::Server, server),
    )
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_both_sides_write_big_data_concurrently_without_deadlock() {
    // Small windows force backpressure on every channel; both sides write 4 MiB per
    // channel before reading anything back on that task, so every socket buffer fills.
    let cfg = Config {
        initial_window: 32 * 1024,
        ..Config::default()
    };
    let (a, b) = pair(cfg.clone(), cfg).await;
    let n = 16usize;
    let len = 4 << 20;
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let inc = b.accept().await.expect("incoming");
            let k: u8 = inc.service().parse().expect("index");
            let ch = inc.accept().expect("accept");
            tasks.push(tokio::spawn(async move {
                let (mut r, mut w) = tokio::io::split(ch);
                let writer = async {
                    w.write_all(&pattern(k.wrapping_add(100), len))
                        .await
                        .expect("server write");
                    w.shutdown().await.expect("fin");
                };
                let reader = async {
                    let mut got = Vec::new();
                    r.read_to_end(&mut got).await.expect("server read");
                    got
                };
                let ((), got) = tokio::join!(writer, reader);
                assert!(got == pattern(k, len), "server channel {k} got wrong data");
            }));
        }
        for t in tasks {
            t.await.expect("server task");
        }
        b
    });
    let mut tasks = Vec::new();
    for k in 0..n as u8 {
        let ch = a.open(&k.to_string()).await.expect("open");
        tasks.push(tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(ch);
            let writer = async {
                w.write_all(&pattern(k, len)).await.expect("client write");
                w.shutdown().await.expect("fin");
            };
            let reader = async {
                let mut got = Vec::new();
                r.read_to_end(&mut got).await.expect("client read");
                got
            };
            let ((), got) = tokio::join!(writer, reader);
            assert!(
                got == pattern(k.wrapping_add(100), len),
                "client channel {k} got wrong data"
            );
        }));
    }
    timeout(DEADLINE, async {
        for t in tasks {
            t.await.expect("client task");
        }
        server.await.expect("server")
    })
    .await
    .expect("no deadlock");
}

#[tokio::test]
async fn a_thousand_channels_on_one_connection() {
    let cfg = Config {
        initial_window: 4096,
        max_pending_accepts: 2000,
        ..Config::default()
    };
    let (a, b) = pair(cfg.clone(), cfg).await;
    let server = tokio::spawn(async move {
        let mut tasks = Vec::new();
        while let Some(inc) = b.accept().await {
            let mut ch = inc.accept().expect("accept");
            tasks.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                ch.read_to_end(&mut buf).await.expect("read");
                ch.write_all(&buf).await.expect("echo");
                ch.shutdown().await.expect("fin");
            }));
            if tasks.len() == 1000 {
                break;
            }
        }
        for t in tasks {
            t.await.expect("echo task");
        }
        b
    });
    timeout(DEADLINE, async {
        let mut tasks = Vec::new();
        for i in 0..1000u32 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let mut ch = a.open("echo").await.expect("open");
                let msg = format!("message {i}");
                ch.write_all(msg.as_bytes()).await.expect("write");
                ch.shutdown().await.expect("fin");
                let mut back = String::new();
                ch.read_to_string(&mut back).await.expect("read");
                assert_eq!(back, msg);
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        server.await.expect("server");
    })
    .await
    .expect("in time");
}

#[tokio::test]
async fn refuse_and_close_reasons_reach_the_other_side() {
    let (a, b) = pair(Config::default(), Config::default()).await;
    let server = tokio::spawn(async move {
        let inc = b.accept().await.expect("first");
        assert_eq!(inc.service(), "unknown");
        inc.refuse(RefuseReason::UnknownService);
        for reason in [
            CloseReason::Normal,
            CloseReason::Timeout,
            CloseReason::Error,
        ] {
            let inc = b.accept().await.expect("next");
            let mut ch = inc.accept().expect("accept");
            ch.write_all(b"hello").await.expect("write");
            // Wait until the client read it, then close with the reason.
            let mut ack = [0u8; 1];
            ch.read_exact(&mut ack).await.expect("ack");
            ch.close(reason);
        }
        b
    });
    assert_eq!(
        a.open("unknown").await.err(),
        Some(ConnectionError::Refused(RefuseReason::UnknownService))
    );
    for reason in [
        CloseReason::Normal,
        CloseReason::Timeout,
        CloseReason::Error,
    ] {
        let mut ch = a.open("svc").await.expect("open");
        let mut buf = [0u8; 5];
        ch.read_exact(&mut buf).await.expect("read");
        ch.write_all(b"k").await.expect("ack");
        let mut rest = Vec::new();
        let r = timeout(DEADLINE, ch.read_to_end(&mut rest))
            .await
            .expect("in time");
        match reason {
            CloseReason::Normal => assert_eq!(r.expect("normal close is EOF"), 0),
            other => {
                let e = r.expect_err("an error close");
                let inner = e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<ChannelError>())
                    .copied();
                assert_eq!(inner, Some(ChannelError::Closed(other)));
                let want = if other == CloseReason::Timeout {
                    std::io::ErrorKind::TimedOut
                } else {
                    std::io::ErrorKind::ConnectionReset
                };
                assert_eq!(e.kind(), want);
            }
        }
    }
    drop(server.await.expect("server"));
}

#[tokio::test]
async fn the_keepalive_timeout_detects_a_silent_peer() {
    // The peer is a plain TCP socket that reads and never answers: the multiplexer's
    // PINGs go unanswered and the connection ends after the timeout.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
        sink
    });
    let c = TcpStream::connect(addr).await.expect("connect");
    let cfg = Config {
        keepalive_interval: Duration::from_millis(50),
        keepalive_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let conn = Connection::new(c, Role::Client, cfg);
    let started = tokio::time::Instant::now();
    let end = timeout(DEADLINE, conn.closed()).await.expect("detected");
    assert_eq!(end, ConnectionEnd::KeepAliveTimeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(matches!(
        conn.open("late").await,
        Err(ConnectionError::Open(_))
    ));
    drop(conn);
    // The silent side saw the preface, PINGs and a GOAWAY(timeout), then EOF.
    let sink = timeout(DEADLINE, silent)
        .await
        .expect("in time")
        .expect("task");
    assert!(sink.starts_with(huddle_transport::mux::frame::PREFACE));
    let ping = [7, 0, 0, 0, 0, 0, 0, 0, 8];
    assert!(
        sink.windows(9).any(|w| w == ping),
        "a PING was sent before giving up"
    );
    assert_eq!(
        sink[sink.len() - 10..sink.len() - 1],
        [9, 0, 0, 0, 0, 0, 0, 0, 1]
    );
    assert_eq!(sink[sink.len() - 1], GoAwayCode::Timeout.code());
}

#[tokio::test]
async fn dropping_every_handle_sends_goaway_and_the_peer_sees_it() {
    let (a, b) = pair(Config::default(), Config::default()).await;
    drop(a);
    let end = timeout(DEADLINE, b.closed()).await.expect("in time");
    assert_eq!(end, ConnectionEnd::Peer(GoAwayCode::Normal));
    assert!(b.accept().await.is_none());
}
