//! Message mode over real loopback TCP: a host and participants with the tokio drivers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use huddle_transport::message::frame::{self, Frame, MAX_PAYLOAD};
use huddle_transport::message::{
    Config, HostEvent, LeaveReason, MessageClient, MessageHost, ParticipantEvent, ParticipantId,
    Recipient, SendError, SessionEnd,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(30);

/// Counts the writes a stream sees (to show batching).
struct Counting {
    inner: TcpStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, b);
        if r.is_ready() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A host listening on loopback that serves every connection.
async fn host(config: Config, invite: &[&str]) -> (MessageHost, std::net::SocketAddr) {
    let host = MessageHost::new("owner", config).expect("host");
    for n in invite {
        host.invite(n);
    }
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let h = host.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            s.set_nodelay(true).expect("nodelay");
            h.add_connection(s);
        }
    });
    (host, addr)
}

async fn join(addr: std::net::SocketAddr, name: &str, config: Config) -> MessageClient {
    let s = TcpStream::connect(addr).await.expect("connect");
    s.set_nodelay(true).expect("nodelay");
    timeout(DEADLINE, MessageClient::join(s, name, config))
        .await
        .expect("in time")
        .expect("join")
}

/// The next event matching `f`, skipping others.
async fn next_matching(
    c: &MessageClient,
    mut f: impl FnMut(&ParticipantEvent) -> bool,
) -> ParticipantEvent {
    timeout(DEADLINE, async {
        loop {
            let e = c.recv().await.expect("session alive");
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("in time")
}

async fn host_matching(h: &MessageHost, mut f: impl FnMut(&HostEvent) -> bool) -> HostEvent {
    timeout(DEADLINE, async {
        loop {
            let e = h.recv().await;
            if f(&e) {
                return e;
            }
        }
    })
    .await
    .expect("in time")
}

#[tokio::test]
async fn a_session_of_four_exchanges_messages_and_tracks_its_members() {
    let (host, addr) = host(Config::default(), &["alice", "bob", "carol"]).await;
    let alice = join(addr, "alice", Config::default()).await;
    let bob = join(addr, "bob", Config::default()).await;
    let carol = join(addr, "carol", Config::default()).await;
    let (a, b, c) = (alice.me(), bob.me(), carol.me());
    assert_eq!(carol.participants().len(), 4, "the welcome lists everyone");
    next_matching(
        &alice,
        |e| matches!(e, ParticipantEvent::Joined(id, n) if *id == c && n == "carol"),
    )
    .await;

    alice
        .send(Recipient::One(b), b"psst bob")
        .await
        .expect("send");
    alice
        .send(Recipient::All, b"hello all")
        .await
        .expect("send");
    let got = next_matching(&bob, |e| matches!(e, ParticipantEvent::Message { .. })).await;
    assert_eq!(
        got,
        ParticipantEvent::Message {
            from: a,
            to_all: false,
            payload: Bytes::from_static(b"psst bob")
        }
    );
    let got = next_matching(&bob, |e| matches!(e, ParticipantEvent::Message { .. })).await;
    assert_eq!(
        got,
        ParticipantEvent::Message {
            from: a,
            to_all: true,
            payload: Bytes::from_static(b"hello all")
        }
    );
    let got = next_matching(&carol, |e| matches!(e, ParticipantEvent::Message { .. })).await;
    assert_eq!(
        got,
        ParticipantEvent::Message {
            from: a,
            to_all: true,
            payload: Bytes::from_static(b"hello all")
        }
    );
    let got = host_matching(&host, |e| matches!(e, HostEvent::Message { .. })).await;
    assert_eq!(
        got,
        HostEvent::Message {
            from: a,
            to_all: true,
            payload: Bytes::from_static(b"hello all")
        }
    );
    host.send(Recipient::One(c), b"from the owner")
        .expect("host send");
    let got = next_matching(&carol, |e| matches!(e, ParticipantEvent::Message { .. })).await;
    assert_eq!(
        got,
        ParticipantEvent::Message {
            from: ParticipantId::HOST,
            to_all: false,
            payload: Bytes::from_static(b"from the owner")
        }
    );

    bob.leave();
    next_matching(&alice, |e| {
        *e == ParticipantEvent::Left(b, LeaveReason::Left)
    })
    .await;
    host.eject(c).expect("eject");
    next_matching(&alice, |e| *e == ParticipantEvent::Ejected(c)).await;
    let end = next_matching(&carol, |e| matches!(e, ParticipantEvent::Ended(_))).await;
    assert_eq!(end, ParticipantEvent::Ended(SessionEnd::Ejected));
    assert!(carol.recv().await.is_none());
    assert_eq!(
        carol.send(Recipient::All, b"x").await,
        Err(SendError::Ended)
    );
    let names: Vec<String> = host.participants().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["owner", "alice"]);
}

#[tokio::test]
async fn an_uninvited_participant_is_rejected() {
    let (_host, addr) = host(Config::default(), &["alice"]).await;
    let s = TcpStream::connect(addr).await.expect("connect");
    let r = timeout(
        DEADLINE,
        MessageClient::join(s, "mallory", Config::default()),
    )
    .await
    .expect("in time");
    assert_eq!(
        r.err(),
        Some(huddle_transport::message::JoinError::Ended(
            SessionEnd::Rejected(huddle_transport::message::RejectReason::NotInvited)
        ))
    );
}

#[tokio::test]
async fn a_send_over_64_kib_is_refused_before_a_byte_is_written() {
    let (host, addr) = host(Config::default(), &["alice"]).await;
    let writes = Arc::new(AtomicUsize::new(0));
    let s = TcpStream::connect(addr).await.expect("connect");
    let io = Counting {
        inner: s,
        writes: writes.clone(),
    };
    let alice = timeout(
        DEADLINE,
        MessageClient::join(io, "alice", Config::default()),
    )
    .await
    .expect("t")
    .expect("join");
    let before = writes.load(Ordering::Relaxed);
    let big = vec![1u8; MAX_PAYLOAD + 1];
    assert_eq!(
        alice.send(Recipient::All, &big).await,
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    // The next message is the first thing the host gets after the join.
    alice
        .send(Recipient::All, &big[..MAX_PAYLOAD])
        .await
        .expect("64 KiB is allowed");
    let got = host_matching(&host, |e| matches!(e, HostEvent::Message { .. })).await;
    let HostEvent::Message { payload, .. } = got else {
        unreachable!("matched")
    };
    assert_eq!(payload.len(), MAX_PAYLOAD);
    assert!(writes.load(Ordering::Relaxed) > before);
}

#[tokio::test]
async fn many_small_messages_are_batched_into_few_writes() {
    let (host, addr) = host(Config::default(), &["alice"]).await;
    let writes = Arc::new(AtomicUsize::new(0));
    let s = TcpStream::connect(addr).await.expect("connect");
    let io = Counting {
        inner: s,
        writes: writes.clone(),
    };
    let alice = timeout(
        DEADLINE,
        MessageClient::join(io, "alice", Config::default()),
    )
    .await
    .expect("t")
    .expect("join");
    let before = writes.load(Ordering::Relaxed);
    let n = 100_000u32;
    let sender = tokio::spawn(async move {
        for i in 0..n {
            alice
                .send(Recipient::One(ParticipantId::HOST), &i.to_be_bytes())
                .await
                .expect("send");
        }
        alice
    });
    let mut next = 0u32;
    let mut buf = Vec::new();
    timeout(DEADLINE, async {
        while next < n {
            buf.clear();
            host.recv_many(&mut buf, 1024).await;
            for e in &buf {
                if let HostEvent::Message { payload, .. } = e {
                    assert_eq!(
                        u32::from_be_bytes(payload[..].try_into().expect("4 bytes")),
                        next,
                        "in order"
                    );
                    next += 1;
                }
            }
        }
    })
    .await
    .expect("in time");
    let _alice = sender.await.expect("sender");
    let w = writes.load(Ordering::Relaxed) - before;
    assert!(w < n as usize / 10, "{n} messages took {w} writes");
}

#[tokio::test]
async fn the_host_drops_a_silent_participant_after_the_keepalive_timeout() {
    // Twenty keep-alive intervals before a timeout: alice, who answers them, must stay
    // in even when the machine stalls the test for a moment.
    let cfg = Config {
        keepalive_interval: Duration::from_millis(50),
        keepalive_timeout: Duration::from_millis(1000),
        ..Config::default()
    };
    let (host, addr) = host(cfg.clone(), &["alice", "zombie"]).await;
    let alice = join(addr, "alice", cfg.clone()).await;
    // A participant that says HELLO and then never speaks again (but keeps the socket).
    let mut zombie = TcpStream::connect(addr).await.expect("connect");
    let mut hello = BytesMut::new();
    frame::encode(
        &Frame::Hello {
            version: 1,
            name: "zombie".into(),
        },
        &mut hello,
    );
    zombie.write_all(&hello).await.expect("hello");
    let joined = host_matching(
        &host,
        |e| matches!(e, HostEvent::Joined(_, n) if n == "zombie"),
    )
    .await;
    let HostEvent::Joined(z, _) = joined else {
        unreachable!("matched")
    };
    let left = host_matching(&host, |e| matches!(e, HostEvent::Left(..))).await;
    assert_eq!(left, HostEvent::Left(z, LeaveReason::Timeout));
    next_matching(&alice, |e| {
        *e == ParticipantEvent::Left(z, LeaveReason::Timeout)
    })
    .await;
    // Alice, who answers keep-alives, is still in.
    assert_eq!(host.participants().len(), 2);
    // The zombie's socket was closed by the host.
    let mut rest = Vec::new();
    timeout(DEADLINE, zombie.read_to_end(&mut rest))
        .await
        .expect("in time")
        .expect("eof");
}

#[tokio::test]
async fn a_participant_detects_a_silent_host() {
    let cfg = Config {
        keepalive_interval: Duration::from_millis(50),
        keepalive_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    // A "host" that welcomes and then goes silent.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let fake = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut w = BytesMut::new();
        frame::encode(
            &Frame::Welcome {
                you: ParticipantId(1),
                participants: vec![],
            },
            &mut w,
        );
        s.write_all(&w).await.expect("welcome");
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let alice = join(addr, "alice", cfg).await;
    let end = next_matching(&alice, |e| matches!(e, ParticipantEvent::Ended(_))).await;
    assert_eq!(end, ParticipantEvent::Ended(SessionEnd::KeepAliveTimeout));
    timeout(DEADLINE, fake)
        .await
        .expect("in time")
        .expect("fake host");
}

#[tokio::test]
async fn send_many_delivers_a_batch_in_order_across_backpressure() {
    // A queue mark far below the batch: the call must wait for the driver to drain the
    // queue several times and continue where it stopped.
    let config = Config {
        max_queued: 4096,
        ..Config::default()
    };
    let (host, addr) = host(Config::default(), &["alice"]).await;
    let alice = join(addr, "alice", config).await;
    let n = 20_000u32;
    let payloads: Vec<[u8; 4]> = (0..n).map(u32::to_be_bytes).collect();
    let sender = tokio::spawn(async move {
        alice
            .send_many(Recipient::One(ParticipantId::HOST), &payloads)
            .await
            .expect("send_many");
        alice
    });
    let mut next = 0u32;
    let mut buf = Vec::new();
    timeout(DEADLINE, async {
        while next < n {
            buf.clear();
            host.recv_many(&mut buf, 1024).await;
            for e in &buf {
                if let HostEvent::Message { payload, .. } = e {
                    assert_eq!(
                        u32::from_be_bytes(payload[..].try_into().expect("4 bytes")),
                        next,
                        "in order"
                    );
                    next += 1;
                }
            }
        }
    })
    .await
    .expect("in time");
    let _alice = timeout(DEADLINE, sender)
        .await
        .expect("sender in time")
        .expect("sender");
}

#[tokio::test]
async fn send_many_with_one_oversized_payload_queues_nothing() {
    let (host, addr) = host(Config::default(), &["alice"]).await;
    let alice = join(addr, "alice", Config::default()).await;
    let small = vec![7u8; 10];
    let big = vec![1u8; MAX_PAYLOAD + 1];
    assert_eq!(
        alice
            .send_many(Recipient::All, &[small.clone(), big, small.clone()])
            .await,
        Err(SendError::TooLarge {
            len: MAX_PAYLOAD + 1
        })
    );
    // The first thing the host gets is the marker sent after the refused batch.
    alice
        .send_many(Recipient::All, &[b"marker".to_vec()])
        .await
        .expect("send_many");
    let got = timeout(
        DEADLINE,
        host_matching(&host, |e| matches!(e, HostEvent::Message { .. })),
    )
    .await
    .expect("in time");
    let HostEvent::Message { payload, .. } = got else {
        unreachable!("matched")
    };
    assert_eq!(&payload[..], b"marker");
}
