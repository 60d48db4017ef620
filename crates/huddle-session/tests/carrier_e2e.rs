//! Carrier sessions end to end over loopback TCP: two endpoints whose Jingle IQs go
//! through an in-process router, streams on real sockets. Two accepted streams (a plain
//! one and a multiplexed one), a stream the answer rejects, channels (open, accept,
//! refuse, data, close with a reason), port forwarding of a TCP echo service, a file, and
//! a peer whose process vanishes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use huddle_jingle::Jid;
use huddle_session::carrier::driver::{
    AppEvent, CarrierEndpoint, StreamIo, forward_port, receive_file, send_file, serve_services,
};
use huddle_session::carrier::{
    CarrierEvent, CarrierManager, RemoteDescription, SessionId, StreamId, StreamOptions,
    StreamState, StreamType,
};
use huddle_session::jingle::Config;
use huddle_session::signaling::SignalingHub;
use huddle_transport::mux::{
    ChannelError, CloseReason, Connection, ConnectionError, Incoming, RefuseReason,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.com/a";
const BOB: &str = "bob@example.com/b";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const DEADLINE: Duration = Duration::from_secs(10);

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

/// An endpoint and every event it reported so far.
struct Ep {
    ep: CarrierEndpoint,
    log: Vec<AppEvent>,
    seen: usize,
}

impl Ep {
    /// Waits (with a deadline) for the first event not yet consumed that `f` accepts.
    async fn wait<T>(&mut self, what: &str, mut f: impl FnMut(&AppEvent) -> Option<T>) -> T {
        let fut = async {
            loop {
                while self.seen < self.log.len() {
                    let i = self.seen;
                    self.seen += 1;
                    if let Some(t) = f(&self.log[i]) {
                        return t;
                    }
                }
                let ev = self.ep.next_event().await.expect("driver running");
                self.log.push(ev);
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; log: {:#?}", self.log))
    }

    /// Waits for a stream to reach `state`, scanning from the start of the log.
    async fn wait_state(&mut self, s: SessionId, st: StreamId, state: StreamState) {
        self.seen = 0;
        self.wait(&format!("{st:?} {state:?}"), |e| match e {
            AppEvent::Carrier(CarrierEvent::StreamState {
                session,
                stream,
                state: x,
            }) if *session == s && *stream == st && *x == state => Some(()),
            _ => None,
        })
        .await;
    }

    fn states(&self, s: SessionId, st: StreamId) -> Vec<StreamState> {
        self.log
            .iter()
            .filter_map(|e| match e {
                AppEvent::Carrier(CarrierEvent::StreamState {
                    session,
                    stream,
                    state,
                }) if *session == s && *stream == st => Some(*state),
                _ => None,
            })
            .collect()
    }

    /// Waits for the session's `SessionClosed`; returns its reason.
    async fn closed(&mut self, s: SessionId) -> Option<huddle_jingle::Reason> {
        self.seen = 0;
        self.wait("session closed", |e| match e {
            AppEvent::Carrier(CarrierEvent::SessionClosed { session, reason }) if *session == s => {
                Some(reason.clone())
            }
            _ => None,
        })
        .await
    }

    async fn io(&mut self, s: SessionId, st: StreamId) -> StreamIo {
        self.seen = 0;
        self.wait("stream io", |e| match e {
            AppEvent::Stream {
                session,
                stream,
                io,
            } if *session == s && *stream == st => Some(io.clone()),
            _ => None,
        })
        .await
    }
}

/// Two endpoints on an in-memory signaling hub (it stamps `from`, as an XMPP server
/// does). `rt_b` runs Bob's endpoint (and so every task it spawns) when given.
fn pair(rt_b: Option<&tokio::runtime::Handle>) -> (Ep, Ep) {
    let hub = SignalingHub::new();
    let a = CarrierEndpoint::spawn(
        CarrierManager::new(Config::new(jid(ALICE))),
        hub.connect(jid(ALICE)),
        LOOPBACK,
    );
    let b = {
        let _guard = rt_b.map(|rt| rt.enter());
        CarrierEndpoint::spawn(
            CarrierManager::new(Config::new(jid(BOB))),
            hub.connect(jid(BOB)),
            LOOPBACK,
        )
    };
    let ep = |ep| Ep {
        ep,
        log: Vec::new(),
        seen: 0,
    };
    (ep(a), ep(b))
}

/// Runs the handshake: Alice offers `offered`, Bob answers with `answered`; both start.
async fn connect(
    a: &mut Ep,
    b: &mut Ep,
    offered: &[(StreamType, StreamOptions)],
    answered: &[(StreamType, StreamOptions)],
) -> (SessionId, SessionId) {
    let s = a.ep.with(|m| {
        let s = m.new_session(jid(BOB));
        for (k, o) in offered {
            m.add_stream(s, *k, *o).expect("add_stream");
        }
        m.request(s).expect("request");
        s
    });
    let (bs, offer): (SessionId, RemoteDescription) = b
        .wait("session request", |e| match e {
            AppEvent::Carrier(CarrierEvent::SessionRequest { session, offer, .. }) => {
                Some((*session, offer.clone()))
            }
            _ => None,
        })
        .await;
    assert_eq!(offer.streams.len(), offered.len());
    b.ep.with(|m| {
        for (k, o) in answered {
            m.add_stream(bs, *k, *o).expect("add_stream");
        }
    });
    // Carrier: reply once every stream is transport-ready.
    for i in 0..answered.len() {
        b.wait_state(bs, StreamId(i as u32), StreamState::TransportReady)
            .await;
    }
    b.ep.with(|m| {
        m.reply_request(bs, 0, None).expect("reply");
        m.start(bs, &offer).expect("start");
    });
    let answer = a
        .wait("completion", |e| match e {
            AppEvent::Carrier(CarrierEvent::RequestCompleted {
                session,
                status: 0,
                answer: Some(answer),
                ..
            }) if *session == s => Some(answer.clone()),
            _ => None,
        })
        .await;
    a.ep.with(|m| m.start(s, &answer)).expect("start");
    (s, bs)
}

fn plain(reliable: bool) -> StreamOptions {
    StreamOptions {
        reliable,
        multiplexing: false,
        port_forwarding: false,
    }
}

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind((LOOPBACK, 0)).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

fn mux(io: StreamIo) -> Connection {
    match io {
        StreamIo::Mux(c) => c,
        other => panic!("expected a multiplexed stream, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_streams_channels_port_forwarding_files_and_a_rejected_stream() {
    let (mut a, mut b) = pair(None);
    let offered = [
        (StreamType::Text, plain(true)),
        (StreamType::Application, StreamOptions::full()),
        (StreamType::Video, plain(false)),
    ];
    let answered = [
        (StreamType::Text, plain(true)),
        (StreamType::Application, StreamOptions::full()),
    ];
    let (s, bs) = connect(&mut a, &mut b, &offered, &answered).await;

    for st in [StreamId(0), StreamId(1)] {
        a.wait_state(s, st, StreamState::Connected).await;
        b.wait_state(bs, st, StreamState::Connected).await;
        assert_eq!(
            a.states(s, st),
            [
                StreamState::Initialized,
                StreamState::TransportReady,
                StreamState::Connecting,
                StreamState::Connected
            ]
        );
    }
    a.wait_state(s, StreamId(2), StreamState::Deactivated).await;
    assert_eq!(
        a.states(s, StreamId(2)),
        [
            StreamState::Initialized,
            StreamState::TransportReady,
            StreamState::Deactivated
        ]
    );

    // The plain stream: messages both ways, boundaries kept.
    let StreamIo::Plain(pa) = a.io(s, StreamId(0)).await else {
        panic!("plain stream expected");
    };
    let StreamIo::Plain(pb) = b.io(bs, StreamId(0)).await else {
        panic!("plain stream expected");
    };
    assert_eq!(pa.write(&b"hello "[..]).expect("write"), 6);
    pa.write(&b"bob"[..]).expect("write");
    pb.write(&b"hi alice"[..]).expect("write");
    let mut got = Vec::new();
    b.seen = 0;
    while got.len() < 2 {
        let d = b
            .wait("data", |e| match e {
                AppEvent::Data { session, data, .. } if *session == bs => Some(data.clone()),
                _ => None,
            })
            .await;
        got.push(d);
    }
    assert_eq!(got, [&b"hello "[..], &b"bob"[..]]);
    a.seen = 0;
    let d = a
        .wait("data", |e| match e {
            AppEvent::Data { data, .. } => Some(data.clone()),
            _ => None,
        })
        .await;
    assert_eq!(&d[..], b"hi alice");

    // The multiplexed stream: Bob serves "echo" (a TCP echo server) and hands other
    // opens to the test.
    let ca = mux(a.io(s, StreamId(1)).await);
    let cb = mux(b.io(bs, StreamId(1)).await);
    let echo = echo_server().await;
    let (other_tx, mut other_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(serve_services(
        cb.clone(),
        HashMap::from([("echo".to_owned(), echo)]),
        Some(other_tx),
    ));

    // Port forwarding: a local listener on Alice's side reaches Bob's echo service.
    let fwd = TcpListener::bind((LOOPBACK, 0)).await.expect("bind");
    let fwd_addr = fwd.local_addr().expect("addr");
    tokio::spawn(forward_port(ca.clone(), fwd, "echo".to_owned()));
    for round in 0..2 {
        let mut t = TcpStream::connect(fwd_addr).await.expect("connect");
        let msg = format!("ping {round} through the tunnel");
        t.write_all(msg.as_bytes()).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(DEADLINE, t.read_exact(&mut back))
            .await
            .expect("echo in time")
            .expect("read");
        assert_eq!(back, msg.as_bytes());
    }

    // A channel: accepted, data, closed with a reason the reader sees.
    let opener = {
        let ca = ca.clone();
        tokio::spawn(async move { ca.open("chat").await })
    };
    let inc = tokio::time::timeout(DEADLINE, other_rx.recv())
        .await
        .expect("open in time")
        .expect("incoming");
    assert_eq!(inc.service(), "chat");
    let mut chb = inc.accept().expect("accept");
    let mut cha = opener.await.expect("join").expect("opened");
    cha.write_all(b"channel data").await.expect("write");
    let mut buf = [0u8; 12];
    chb.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"channel data");
    cha.close(CloseReason::Other(42));
    let mut rest = [0u8; 1];
    let err = tokio::time::timeout(DEADLINE, chb.read(&mut rest))
        .await
        .expect("close in time")
        .expect_err("closed with a reason");
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<ChannelError>())
        .cloned();
    assert_eq!(inner, Some(ChannelError::Closed(CloseReason::Other(42))));

    // A channel refused by the application.
    let opener = {
        let ca = ca.clone();
        tokio::spawn(async move { ca.open("nobody-home").await })
    };
    let inc = tokio::time::timeout(DEADLINE, other_rx.recv())
        .await
        .expect("open in time")
        .expect("incoming");
    inc.refuse(RefuseReason::Busy);
    assert_eq!(
        opener.await.expect("join").err(),
        Some(ConnectionError::Refused(RefuseReason::Busy))
    );

    // A file on its own channel.
    let file: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sender = {
        let ca = ca.clone();
        let file = file.clone();
        tokio::spawn(async move { send_file(&ca, "notes.bin", &file[..]).await })
    };
    let inc = tokio::time::timeout(DEADLINE, other_rx.recv())
        .await
        .expect("file in time")
        .expect("incoming");
    let mut sink = Vec::new();
    let (name, size) = receive_file(inc, &mut sink).await.expect("receive");
    assert_eq!((name.as_str(), size), ("notes.bin", file.len() as u64));
    assert_eq!(sink, file);
    assert_eq!(
        sender.await.expect("join").expect("sent"),
        file.len() as u64
    );

    // Alice closes: both ends see every stream closed, gracefully.
    assert_eq!(a.ep.with(|m| m.session_count()), 1);
    a.ep.with(|m| m.close_session(s)).expect("close");
    for st in [StreamId(0), StreamId(1)] {
        a.wait_state(s, st, StreamState::Closed).await;
        b.wait_state(bs, st, StreamState::Closed).await;
        assert!(!b.states(bs, st).contains(&StreamState::Failed));
    }
    // Once SessionClosed is out, neither manager keeps the session.
    a.closed(s).await;
    b.closed(bs).await;
    assert_eq!(a.ep.with(|m| m.session_count()), 0);
    assert_eq!(b.ep.with(|m| m.session_count()), 0);
    assert!(b.ep.with(|m| m.jingle().is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_fails_the_streams_and_ends_the_session() {
    // Bob lives in his own single-threaded runtime on his own thread: dropping it drops
    // every task he has without polling any of them again, as a crash would.
    let rt_b = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle_b = rt_b.handle().clone();
    let (stop_b, stopped) = tokio::sync::oneshot::channel::<()>();
    let bob_thread = std::thread::spawn(move || {
        let _ = rt_b.block_on(stopped);
        drop(rt_b);
    });
    let (mut a, mut b) = pair(Some(&handle_b));
    let streams = [
        (StreamType::Text, plain(true)),
        (StreamType::Application, StreamOptions::full()),
    ];
    let (s, bs) = connect(&mut a, &mut b, &streams, &streams).await;
    for st in [StreamId(0), StreamId(1)] {
        a.wait_state(s, st, StreamState::Connected).await;
        b.wait_state(bs, st, StreamState::Connected).await;
    }
    // Bob's process vanishes: every task and socket of his runtime is dropped, with no
    // graceful end on any stream (the runtime goes first, so no task of his runs again
    // to say goodbye; then the handles the test held).
    stop_b.send(()).expect("bob running");
    tokio::task::spawn_blocking(move || bob_thread.join())
        .await
        .expect("join")
        .expect("bob's thread");
    drop(b);
    for st in [StreamId(0), StreamId(1)] {
        a.wait_state(s, st, StreamState::Failed).await;
    }
    let reason = a.closed(s).await;
    assert_eq!(
        reason.map(|r| r.condition),
        Some(huddle_jingle::ReasonCondition::ConnectivityError)
    );
    assert_eq!(a.ep.with(|m| m.session_count()), 0);
}
