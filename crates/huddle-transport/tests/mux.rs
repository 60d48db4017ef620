//! The channel multiplexer's state machine through a deterministic harness: two
//! endpoints, a simulated clock, and a simulated stream transport (in-order delivery
//! after a latency, a bounded number of bytes in flight so the transport itself pushes
//! back), with a bound on steps so a livelock or deadlock fails the test.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use huddle_transport::mux::frame::{self, Kind, PREFACE};
use huddle_transport::mux::{
    ChannelError, ChannelId, CloseReason, Config, ConnectionEnd, Event, GoAwayCode, Mux, MuxError,
    OpenError, RefuseReason, Role,
};
use proptest::prelude::*;

struct Side {
    mux: Mux,
    /// Bytes from `poll_transmit` the transport did not take yet.
    pending: Bytes,
    /// Bytes in flight to the other side, with their arrival time.
    wire: VecDeque<(Instant, Bytes)>,
    in_flight: usize,
    rbuf: BytesMut,
    events: Vec<Event>,
    /// Stop sending (a silent peer: its process hangs, the socket stays open).
    mute: bool,
    error: Option<MuxError>,
}

impl Side {
    fn new(role: Role, config: Config, now: Instant) -> Self {
        Side {
            mux: Mux::new(role, config, now),
            pending: Bytes::new(),
            wire: VecDeque::new(),
            in_flight: 0,
            rbuf: BytesMut::new(),
            events: Vec::new(),
            mute: false,
            error: None,
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

struct Sim {
    now: Instant,
    a: Side,
    b: Side,
    latency: Duration,
    /// Most bytes in flight per direction (the transport's buffers).
    pipe: usize,
    steps: usize,
}

impl Sim {
    fn new(config: Config) -> Self {
        Self::with(config.clone(), config)
    }

    fn with(ca: Config, cb: Config) -> Self {
        let now = Instant::now();
        Sim {
            now,
            a: Side::new(Role::Client, ca, now),
            b: Side::new(Role::Server, cb, now),
            latency: Duration::from_millis(5),
            pipe: 64 * 1024,
            steps: 0,
        }
    }

    /// Moves bytes into the wire as room allows.
    fn send(side: &mut Side, now: Instant, latency: Duration, pipe: usize) {
        if side.mute {
            return;
        }
        loop {
            if side.pending.is_empty() {
                match side.mux.poll_transmit() {
                    Some(b) => side.pending = b,
                    None => return,
                }
            }
            let room = pipe - side.in_flight;
            if room == 0 {
                return;
            }
            let n = room.min(side.pending.len());
            let piece = side.pending.split_to(n);
            side.in_flight += n;
            side.wire.push_back((now + latency, piece));
        }
    }

    fn deliver(from: &mut Side, to: &mut Side, now: Instant) {
        while let Some((t, _)) = from.wire.front() {
            if *t > now {
                break;
            }
            let (_, b) = from.wire.pop_front().expect("front");
            from.in_flight -= b.len();
            to.rbuf.extend_from_slice(&b);
            if let Err(e) = to.mux.handle_input(&mut to.rbuf, now) {
                to.error.get_or_insert(e);
            }
        }
    }

    fn events(side: &mut Side) {
        while let Some(e) = side.mux.poll_event() {
            side.events.push(e);
        }
    }

    /// One step: send, advance the clock to the next thing that happens (at most `tick`),
    /// deliver, fire timers.
    fn step(&mut self) {
        self.steps += 1;
        assert!(
            self.steps < 2_000_000,
            "step bound exceeded: livelock or deadlock"
        );
        Self::send(&mut self.a, self.now, self.latency, self.pipe);
        Self::send(&mut self.b, self.now, self.latency, self.pipe);
        let mut next = self.now + Duration::from_secs(1);
        for s in [&mut self.a, &mut self.b] {
            if let Some((t, _)) = s.wire.front() {
                next = next.min(*t);
            }
            if let Some(t) = s.mux.poll_timeout() {
                next = next.min(t);
            }
        }
        self.now = next.max(self.now);
        Self::deliver(&mut self.a, &mut self.b, self.now);
        Self::deliver(&mut self.b, &mut self.a, self.now);
        for s in [&mut self.a, &mut self.b] {
            if s.mux.poll_timeout().is_some_and(|t| t <= self.now) {
                s.mux.handle_timeout(self.now);
            }
            Self::events(s);
        }
    }

    /// Steps until `done` holds.
    fn run_until(&mut self, mut done: impl FnMut(&mut Sim) -> bool) {
        let start = self.steps;
        while !done(self) {
            assert!(
                self.steps - start < 200_000,
                "condition not reached within the step bound"
            );
            self.step();
        }
    }

    /// Opens a channel from A and accepts it on B.
    fn open_pair(&mut self, service: &str) -> ChannelId {
        let id = self.a.mux.open(service, self.now).expect("open");
        self.run_until(|s| {
            s.b.events
                .iter()
                .any(|e| matches!(e, Event::Incoming { id: i, .. } if *i == id))
        });
        let evs = self.b.take_events();
        assert!(
            evs.contains(&Event::Incoming {
                id,
                service: service.to_owned()
            }),
            "{evs:?}"
        );
        self.b.mux.accept(id).expect("accept");
        self.run_until(|s| s.a.events.contains(&Event::Opened(id)));
        self.a.take_events();
        id
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn small_window() -> Config {
    Config {
        initial_window: 16 * 1024,
        ..Config::default()
    }
}

#[test]
fn open_accept_write_finish_and_read_to_the_end() {
    let mut sim = Sim::new(small_window());
    let id = sim.open_pair("file-transfer");
    let data = pattern(7, 1_000_000);
    let (mut written, mut got) = (0, Vec::new());
    let mut eof = false;
    let mut buf = vec![0u8; 5000];
    sim.run_until(|s| {
        if written < data.len() {
            written += s.a.mux.write(id, &data[written..]).expect("write");
            if written == data.len() {
                s.a.mux.finish(id).expect("finish");
            }
        }
        // The receiver never holds more than the credit it granted.
        assert!(s.b.mux.buffered(id) <= 16 * 1024);
        assert!(s.a.mux.send_credit(id) <= 16 * 1024);
        while let Some(n) = s.b.mux.read(id, &mut buf).expect("read") {
            if n == 0 {
                eof = true;
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        eof
    });
    assert_eq!(got, data);
    assert!(sim.b.events.contains(&Event::Finished(id)));
    assert!(sim.a.error.is_none() && sim.b.error.is_none());
}

#[test]
fn a_sender_without_credit_cannot_queue_a_byte_until_the_reader_reads() {
    let mut sim = Sim::new(small_window());
    let id = sim.open_pair("x");
    let data = vec![1u8; 100_000];
    let mut written = sim.a.mux.write(id, &data).expect("write");
    assert_eq!(written, 16 * 1024, "exactly the peer's window");
    assert_eq!(
        sim.a.mux.write(id, &data).expect("write"),
        0,
        "no credit, nothing queued"
    );
    for _ in 0..1000 {
        sim.step();
    }
    assert_eq!(
        sim.a.mux.write(id, &data).expect("write"),
        0,
        "a reader that does not read grants nothing"
    );
    assert_eq!(sim.b.mux.buffered(id), 16 * 1024);
    // Reading a quarter of the window returns credit.
    let mut buf = vec![0u8; 4096];
    assert_eq!(sim.b.mux.read(id, &mut buf).expect("read"), Some(4096));
    sim.a.take_events();
    sim.run_until(|s| s.a.events.contains(&Event::Writable(id)));
    written += sim.a.mux.write(id, &data).expect("write");
    assert_eq!(written, 16 * 1024 + 4096);
}

#[test]
fn writes_before_the_peer_accepts_wait_for_credit() {
    let mut sim = Sim::new(small_window());
    let id = sim.a.mux.open("svc", sim.now).expect("open");
    assert_eq!(sim.a.mux.write(id, b"early").expect("write"), 0);
    sim.run_until(|s| !s.b.events.is_empty());
    assert_eq!(sim.b.mux.write(id, b"x"), Err(ChannelError::NotAccepted));
    sim.b.mux.accept(id).expect("accept");
    sim.run_until(|s| s.a.events.contains(&Event::Opened(id)));
    assert_eq!(sim.a.mux.write(id, b"now").expect("write"), 3);
}

#[test]
fn refuse_reaches_the_opener_and_releases_the_channel() {
    let mut sim = Sim::new(Config::default());
    let id = sim.a.mux.open("nobody-home", sim.now).expect("open");
    sim.run_until(|s| !s.b.events.is_empty());
    sim.b
        .mux
        .refuse(id, RefuseReason::UnknownService)
        .expect("refuse");
    sim.run_until(|s| !s.a.events.is_empty());
    assert_eq!(
        sim.a.take_events(),
        vec![Event::Refused {
            id,
            reason: RefuseReason::UnknownService
        }]
    );
    assert_eq!(sim.a.mux.channel_count(), 0);
    assert_eq!(sim.b.mux.channel_count(), 0);
    assert_eq!(sim.a.mux.write(id, b"x"), Err(ChannelError::Unknown(id)));
}

#[test]
fn close_reasons_reach_the_peer_after_the_data() {
    for reason in [
        CloseReason::Normal,
        CloseReason::Timeout,
        CloseReason::Error,
    ] {
        let mut sim = Sim::new(Config::default());
        let id = sim.open_pair("x");
        assert_eq!(sim.a.mux.write(id, b"last words").expect("write"), 10);
        sim.a.mux.close(id, reason).expect("close");
        assert_eq!(sim.a.mux.channel_count(), 0, "close releases at once");
        sim.run_until(|s| s.b.events.iter().any(|e| matches!(e, Event::Closed { .. })));
        assert!(sim.b.events.contains(&Event::Closed { id, reason }));
        let mut buf = [0u8; 64];
        assert_eq!(
            sim.b.mux.read(id, &mut buf).expect("buffered data first"),
            Some(10)
        );
        let end = sim.b.mux.read(id, &mut buf);
        match reason {
            CloseReason::Normal => assert_eq!(end, Ok(Some(0))),
            r => assert_eq!(end, Err(ChannelError::Closed(r))),
        }
        assert_eq!(sim.b.mux.write(id, b"x"), Err(ChannelError::Closed(reason)));
        sim.b.mux.close(id, CloseReason::Normal).expect("release");
        for _ in 0..50 {
            sim.step();
        }
        assert!(sim.a.error.is_none() && sim.b.error.is_none());
        assert_eq!(sim.b.mux.channel_count(), 0);
    }
}

#[test]
fn frames_in_flight_for_a_closed_channel_are_dropped_quietly() {
    let mut sim = Sim::new(Config::default());
    let id = sim.open_pair("x");
    // B writes while A closes: B's data and A's CLOSE cross on the wire.
    assert!(sim.b.mux.write(id, &[9u8; 50_000]).expect("write") > 0);
    sim.b.mux.finish(id).expect("finish");
    sim.a.mux.close(id, CloseReason::Normal).expect("close");
    for _ in 0..100 {
        sim.step();
    }
    assert!(sim.a.error.is_none(), "{:?}", sim.a.error);
    assert!(sim.b.error.is_none(), "{:?}", sim.b.error);
}

#[test]
fn both_sides_writing_under_backpressure_do_not_deadlock() {
    // Tiny windows and a tiny transport, 8 channels, both directions at once: credit
    // must keep flowing while each side's data waits for the transport.
    let cfg = Config {
        initial_window: 4096,
        max_transmit: 8192,
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    sim.pipe = 2048;
    let ids: Vec<ChannelId> = (0..8).map(|i| sim.open_pair(&format!("c{i}"))).collect();
    let len = 200_000;
    let mut sent: HashMap<(bool, ChannelId), usize> = HashMap::new();
    let mut recv: HashMap<(bool, ChannelId), Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 3000];
    let datas: Vec<Vec<Vec<u8>>> = (0..2u8)
        .map(|a| (0..8u8).map(|k| pattern(k + a * 100, len)).collect())
        .collect();
    sim.run_until(|s| {
        for (k, &id) in ids.iter().enumerate() {
            for (is_a, side) in [(true, &mut s.a), (false, &mut s.b)] {
                let data = &datas[usize::from(is_a)][k];
                let w = sent.entry((is_a, id)).or_default();
                if *w < len {
                    *w += side.mux.write(id, &data[*w..]).expect("write");
                    if *w == len {
                        side.mux.finish(id).expect("finish");
                    }
                }
                let r = recv.entry((!is_a, id)).or_default();
                while let Some(n) = side.mux.read(id, &mut buf).expect("read") {
                    if n == 0 {
                        break;
                    }
                    r.extend_from_slice(&buf[..n]);
                }
            }
        }
        recv.values().all(|v| v.len() == len) && recv.len() == 16
    });
    for (&(from_a, id), v) in &recv {
        let k = ids.iter().position(|&i| i == id).expect("known");
        assert_eq!(*v, pattern(k as u8 + u8::from(from_a) * 100, len));
    }
}

#[test]
fn a_peer_opening_and_filling_many_channels_cannot_exceed_the_receive_budget() {
    // B can hold 8 windows; A (the pushy peer) opens 20 channels and fills every one it
    // gets, while B's application never reads.
    let window = 16 * 1024u32;
    let budget = 8 * u64::from(window);
    let b_cfg = Config {
        initial_window: window,
        max_receive_buffer: budget,
        max_pending_accepts: 100,
        ..Config::default()
    };
    let a_cfg = Config {
        initial_window: window,
        ..Config::default()
    };
    let mut sim = Sim::with(a_cfg, b_cfg);
    sim.pipe = 1 << 20;
    let ids: Vec<ChannelId> = (0..20)
        .map(|i| sim.a.mux.open(&format!("c{i}"), sim.now).expect("open"))
        .collect();
    let mut incoming = Vec::new();
    let mut refused = Vec::new();
    let junk = vec![0x5a; 64 * 1024];
    let expected = budget as usize;
    sim.run_until(|s| {
        for e in s.b.take_events() {
            if let Event::Incoming { id, .. } = e {
                s.b.mux.accept(id).expect("accept");
                incoming.push(id);
            }
        }
        for e in s.a.take_events() {
            if let Event::Refused { id, reason } = e {
                assert_eq!(reason, RefuseReason::Busy);
                refused.push(id);
            }
        }
        for &id in &ids {
            if !refused.contains(&id) {
                s.a.mux.write(id, &junk).expect("write");
            }
        }
        // The bound holds at every step, not only at the end.
        assert!(s.b.mux.buffered_total() as u64 <= budget);
        assert!(s.b.mux.receive_reserved() <= budget);
        s.b.mux.buffered_total() == expected && refused.len() == 12
    });
    assert_eq!(incoming.len(), 8);
    assert_eq!(incoming, ids[..8].to_vec());
    assert!(sim.a.error.is_none() && sim.b.error.is_none());
    // B's own opens count against the same budget.
    assert_eq!(
        sim.b.mux.open("mine", sim.now),
        Err(OpenError::ReceiveBudget)
    );

    // No deadlock: with every window full, reading one channel still returns credit to
    // A, and A's next bytes arrive.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while let Some(n) = sim.b.mux.read(ids[0], &mut buf).expect("read") {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert_eq!(got, window as usize);
    sim.run_until(|s| s.a.mux.send_credit(ids[0]) > 0);
    assert_eq!(sim.a.mux.write(ids[0], b"more").expect("write"), 4);
    sim.run_until(|s| s.b.mux.buffered(ids[0]) == 4);
    assert!(sim.b.mux.buffered_total() as u64 <= budget);

    // Releasing a channel frees its reservation: A's next open is accepted.
    sim.b.mux.close(ids[1], CloseReason::Normal).expect("close");
    sim.run_until(|s| {
        s.a.events
            .iter()
            .any(|e| matches!(e, Event::Closed { id, .. } if *id == ids[1]))
    });
    sim.a
        .mux
        .close(ids[1], CloseReason::Normal)
        .expect("release");
    sim.a.take_events();
    let again = sim.a.mux.open("again", sim.now).expect("open");
    sim.run_until(|s| {
        s.b.events
            .iter()
            .any(|e| matches!(e, Event::Incoming { id, .. } if *id == again))
    });
    sim.b.mux.accept(again).expect("accept");
    sim.run_until(|s| s.a.events.contains(&Event::Opened(again)));
}

#[test]
fn thousands_of_channels_share_one_stream() {
    let cfg = Config {
        initial_window: 1024,
        max_pending_accepts: 10_000,
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    sim.pipe = 1 << 20;
    let n = 5000;
    let ids: Vec<ChannelId> = (0..n)
        .map(|i| sim.a.mux.open(&format!("svc-{i}"), sim.now).expect("open"))
        .collect();
    sim.run_until(|s| s.b.events.len() >= n);
    for e in sim.b.take_events() {
        let Event::Incoming { id, service } = e else {
            panic!("{e:?}")
        };
        assert_eq!(service, format!("svc-{}", (id.0 - 1) / 2));
        sim.b.mux.accept(id).expect("accept");
    }
    sim.run_until(|s| s.a.events.len() >= n);
    for &id in &ids {
        assert_eq!(sim.a.mux.write(id, &id.0.to_be_bytes()).expect("write"), 4);
    }
    let mut seen = 0;
    sim.run_until(|s| {
        for &id in &ids {
            let mut buf = [0u8; 8];
            if let Some(4) = s.b.mux.read(id, &mut buf).expect("read") {
                assert_eq!(buf[..4], id.0.to_be_bytes());
                seen += 1;
            }
        }
        seen == n
    });
    assert_eq!(sim.a.mux.channel_count(), n);
}

#[test]
fn keepalive_keeps_an_idle_connection_and_detects_a_silent_peer() {
    let cfg = Config {
        keepalive_interval: Duration::from_secs(2),
        keepalive_timeout: Duration::from_secs(6),
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    let id = sim.open_pair("x");
    let start = sim.now;
    // Idle for a minute: PINGs and PONGs keep both ends alive.
    sim.run_until(|s| s.now >= start + Duration::from_secs(60));
    assert!(sim.a.mux.ended().is_none() && sim.b.mux.ended().is_none());
    // B goes silent (a hung process: the socket stays open, nothing comes).
    sim.b.mute = true;
    let silent = sim.now;
    sim.run_until(|s| s.a.mux.ended().is_some());
    assert_eq!(sim.a.mux.ended(), Some(&ConnectionEnd::KeepAliveTimeout));
    let waited = sim.now - silent;
    assert!(
        waited <= Duration::from_secs(6) + sim.latency * 2,
        "{waited:?}"
    );
    assert!(sim.a.events.contains(&Event::Closed {
        id,
        reason: CloseReason::Timeout
    }));
    assert!(
        sim.a
            .events
            .contains(&Event::ConnectionClosed(ConnectionEnd::KeepAliveTimeout))
    );
    let mut buf = [0u8; 4];
    assert_eq!(
        sim.a.mux.read(id, &mut buf),
        Err(ChannelError::Closed(CloseReason::Timeout))
    );
}

#[test]
fn an_unanswered_open_times_out_on_both_sides() {
    let cfg = Config {
        open_timeout: Duration::from_secs(3),
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    let id = sim.a.mux.open("slow", sim.now).expect("open");
    let t0 = sim.now;
    sim.run_until(|s| s.a.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    assert_eq!(
        sim.a.events,
        vec![Event::Closed {
            id,
            reason: CloseReason::Timeout
        }]
    );
    assert!(sim.now - t0 >= Duration::from_secs(3));
    assert_eq!(sim.a.mux.channel_count(), 0);
    sim.run_until(|s| s.b.events.iter().any(|e| matches!(e, Event::Closed { .. })));
    assert!(sim.b.events.contains(&Event::Closed {
        id,
        reason: CloseReason::Timeout
    }));
    // B answers late: nothing is sent, A never hears of it.
    sim.b.mux.accept(id).expect("late accept is harmless");
    for _ in 0..20 {
        sim.step();
    }
    assert!(sim.a.error.is_none() && sim.b.error.is_none());
}

#[test]
fn opens_beyond_the_backlog_are_refused_as_busy() {
    let cfg = Config {
        max_pending_accepts: 3,
        ..Config::default()
    };
    let mut sim = Sim::new(cfg);
    let ids: Vec<ChannelId> = (0..5)
        .map(|_| sim.a.mux.open("x", sim.now).expect("open"))
        .collect();
    sim.run_until(|s| s.a.events.len() == 2);
    assert_eq!(
        sim.a.take_events(),
        vec![
            Event::Refused {
                id: ids[3],
                reason: RefuseReason::Busy
            },
            Event::Refused {
                id: ids[4],
                reason: RefuseReason::Busy
            },
        ]
    );
    assert_eq!(sim.b.mux.channel_count(), 3);
}

#[test]
fn open_rejects_long_service_names_and_respects_the_channel_limit() {
    let cfg = Config {
        max_channels: 2,
        ..Config::default()
    };
    let mut m = Mux::new(Role::Client, cfg, Instant::now());
    assert_eq!(
        m.open(&"x".repeat(256), Instant::now()),
        Err(OpenError::ServiceNameTooLong)
    );
    m.open("a", Instant::now()).expect("first");
    m.open("b", Instant::now()).expect("second");
    assert_eq!(m.open("c", Instant::now()), Err(OpenError::TooManyChannels));
}

#[test]
fn go_away_closes_every_channel_on_both_sides_after_the_data() {
    let mut sim = Sim::new(Config::default());
    let id = sim.open_pair("x");
    sim.a.mux.write(id, b"bye").expect("write");
    sim.a.mux.go_away();
    assert_eq!(sim.a.mux.ended(), Some(&ConnectionEnd::Local));
    sim.run_until(|s| s.b.mux.ended().is_some());
    assert_eq!(
        sim.b.mux.ended(),
        Some(&ConnectionEnd::Peer(GoAwayCode::Normal))
    );
    let mut buf = [0u8; 8];
    assert_eq!(sim.b.mux.read(id, &mut buf), Ok(Some(3)));
    assert_eq!(sim.b.mux.read(id, &mut buf), Ok(Some(0)));
}

// ---- hostile input ---------------------------------------------------------------

fn header(kind: u8, ch: u32, len: u32) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&ch.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v
}

/// A server-side multiplexer fed `frames` after a correct preface; returns the error and
/// what it transmitted last.
fn feed(frames: &[u8]) -> (Result<(), MuxError>, Mux) {
    let mut m = Mux::new(
        Role::Server,
        Config {
            initial_window: 1000,
            ..Config::default()
        },
        Instant::now(),
    );
    while m.poll_transmit().is_some() {}
    let mut buf = BytesMut::from(&PREFACE[..]);
    buf.extend_from_slice(frames);
    let r = m.handle_input(&mut buf, Instant::now());
    (r, m)
}

fn open_frame(ch: u32, window: u32, service: &[u8]) -> Vec<u8> {
    let mut v = header(Kind::Open as u8, ch, 4 + service.len() as u32);
    v.extend_from_slice(&window.to_be_bytes());
    v.extend_from_slice(service);
    v
}

fn accepted(ch: u32) -> Vec<u8> {
    open_frame(ch, 1000, b"svc")
}

#[test]
fn hostile_frames_end_the_connection_with_a_typed_error_and_a_goaway() {
    let data_on = |ch: u32, len: u32| {
        let mut v = header(0, ch, len);
        v.resize(v.len() + len as usize, 0);
        v
    };
    let cases: Vec<(&str, Vec<u8>, MuxError)> = vec![
        (
            "unknown kind",
            header(42, 1, 0),
            MuxError::UnknownFrameKind(42),
        ),
        (
            "data on a channel never opened",
            data_on(5, 1),
            MuxError::UnexpectedFrame {
                kind: Kind::Data,
                channel: 5,
            },
        ),
        (
            "data on channel 0",
            data_on(0, 1),
            MuxError::UnexpectedFrame {
                kind: Kind::Data,
                channel: 0,
            },
        ),
        (
            "data before accept",
            [accepted(1), data_on(1, 1)].concat(),
            MuxError::FlowControl { channel: 1 },
        ),
        (
            "open with the wrong parity",
            open_frame(2, 10, b"x"),
            MuxError::UnexpectedFrame {
                kind: Kind::Open,
                channel: 2,
            },
        ),
        (
            "open reusing an id",
            [accepted(3), accepted(3)].concat(),
            MuxError::UnexpectedFrame {
                kind: Kind::Open,
                channel: 3,
            },
        ),
        (
            "open with a bad service name",
            open_frame(1, 10, &[0xff, 0xfe]),
            MuxError::BadServiceName,
        ),
        (
            "oversized control frame",
            header(Kind::Open as u8, 1, 100_000),
            MuxError::BadLength {
                kind: Kind::Open,
                len: 100_000,
            },
        ),
        (
            "short credit",
            [accepted(1), header(Kind::Credit as u8, 1, 2), vec![0, 0]].concat(),
            MuxError::BadLength {
                kind: Kind::Credit,
                len: 2,
            },
        ),
        (
            "ping on a channel",
            [header(Kind::Ping as u8, 1, 8), vec![0; 8]].concat(),
            MuxError::UnexpectedFrame {
                kind: Kind::Ping,
                channel: 1,
            },
        ),
        (
            "accept for a channel never opened",
            [header(Kind::Accept as u8, 2, 4), vec![0; 4]].concat(),
            MuxError::UnexpectedFrame {
                kind: Kind::Accept,
                channel: 2,
            },
        ),
        (
            "fin on a pending channel",
            [accepted(1), header(Kind::Fin as u8, 1, 0)].concat(),
            MuxError::UnexpectedFrame {
                kind: Kind::Fin,
                channel: 1,
            },
        ),
        (
            "credit overflow",
            [
                accepted(1),
                header(Kind::Credit as u8, 1, 4),
                u32::MAX.to_be_bytes().to_vec(),
            ]
            .concat(),
            MuxError::FlowControl { channel: 1 },
        ),
    ];
    for (what, bytes, want) in cases {
        let (r, mut m) = feed(&bytes);
        assert_eq!(r, Err(want.clone()), "{what}");
        assert_eq!(m.ended(), Some(&ConnectionEnd::Error(want)), "{what}");
        let goaway = m.poll_transmit().expect("a GOAWAY");
        assert_eq!(goaway[0], Kind::GoAway as u8, "{what}");
        assert_eq!(m.poll_transmit(), None, "{what}: nothing after the GOAWAY");
        // Later input is discarded, not an error.
        let mut more = BytesMut::from(&b"garbage"[..]);
        assert_eq!(m.handle_input(&mut more, Instant::now()), Ok(()));
    }
}

#[test]
fn a_bad_preface_is_rejected_at_the_first_wrong_byte() {
    let mut m = Mux::new(Role::Server, Config::default(), Instant::now());
    let mut buf = BytesMut::from(&b"HM"[..]);
    assert_eq!(m.handle_input(&mut buf, Instant::now()), Ok(()));
    let mut buf = BytesMut::from(&b"UX/1.1"[..]);
    assert_eq!(
        m.handle_input(&mut buf, Instant::now()),
        Err(MuxError::BadPreface)
    );
}

#[test]
fn data_beyond_credit_is_refused_before_it_is_buffered() {
    // An accepted channel with a 1000-byte window; the peer announces 1 GiB of data.
    let mut m = Mux::new(
        Role::Server,
        Config {
            initial_window: 1000,
            ..Config::default()
        },
        Instant::now(),
    );
    let mut buf = BytesMut::from(&PREFACE[..]);
    buf.extend_from_slice(&accepted(1));
    m.handle_input(&mut buf, Instant::now()).expect("open");
    m.accept(ChannelId(1)).expect("accept");
    let mut buf = BytesMut::from(&header(0, 1, 1 << 30)[..]);
    buf.extend_from_slice(&[0u8; 4096]);
    assert_eq!(
        m.handle_input(&mut buf, Instant::now()),
        Err(MuxError::FlowControl { channel: 1 })
    );
    assert_eq!(m.buffered(ChannelId(1)), 0);
}

#[test]
fn the_peer_goaway_code_and_close_reasons_survive_unknown_values() {
    let (r, m) = feed(&[accepted(1), header(Kind::GoAway as u8, 0, 1), vec![77]].concat());
    assert_eq!(r, Ok(()));
    assert_eq!(m.ended(), Some(&ConnectionEnd::Peer(GoAwayCode::Other(77))));
    assert_eq!(CloseReason::from_code(200), CloseReason::Other(200));
    assert_eq!(CloseReason::Other(200).code(), 200);
    assert_eq!(RefuseReason::from_code(9).code(), 9);
}

#[test]
fn credit_and_pong_overtake_queued_data() {
    let mut m = Mux::new(
        Role::Server,
        Config {
            initial_window: 1000,
            max_transmit: 100,
            ..Config::default()
        },
        Instant::now(),
    );
    while m.poll_transmit().is_some() {}
    let mut buf = BytesMut::from(&PREFACE[..]);
    buf.extend_from_slice(&open_frame(1, 100_000, b"svc"));
    m.handle_input(&mut buf, Instant::now()).expect("open");
    m.accept(ChannelId(1)).expect("accept");
    assert_eq!(
        m.write(ChannelId(1), &[0u8; 50_000]).expect("write"),
        50_000
    );
    let first = m.poll_transmit().expect("accept");
    assert_eq!(first[0], Kind::Accept as u8);
    let mut buf =
        BytesMut::from(&[header(Kind::Ping as u8, 0, 8), 5u64.to_be_bytes().to_vec()].concat()[..]);
    m.handle_input(&mut buf, Instant::now()).expect("ping");
    let next = m.poll_transmit().expect("pong");
    assert_eq!(
        &next[..],
        &[header(Kind::Pong as u8, 0, 8), 5u64.to_be_bytes().to_vec()].concat()[..]
    );
}

// ---- properties ------------------------------------------------------------------

/// What a receiver saw, for comparing runs.
fn summarize(m: &mut Mux) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(e) = m.poll_event() {
        v.push(format!("{e:?}"));
        if let Event::Incoming { id, .. } = e {
            m.accept(id).expect("accept");
        }
    }
    v
}

/// A stream from a client: its opens, then data, FIN, a close, keep-alives.
fn client_stream(writes: &[(u8, usize)]) -> (Vec<u8>, Vec<u8>) {
    let now = Instant::now();
    let mut c = Mux::new(Role::Client, Config::default(), now);
    let ids: Vec<ChannelId> = (0..4)
        .map(|i| c.open(&format!("s{i}"), now).expect("open"))
        .collect();
    let mut opens = Vec::new();
    while let Some(b) = c.poll_transmit() {
        opens.extend_from_slice(&b);
    }
    // Pretend the server accepted every channel with a big window.
    let mut accept = BytesMut::from(&PREFACE[..]);
    for id in &ids {
        frame::put_u32_frame(&mut accept, Kind::Accept, id.0, 1 << 20);
    }
    c.handle_input(&mut accept, now).expect("accepts");
    for &(ch, len) in writes {
        let id = ids[ch as usize % 4];
        c.write(id, &pattern(ch, len)).expect("write");
    }
    c.finish(ids[0]).expect("finish");
    c.close(ids[1], CloseReason::Error).expect("close");
    c.handle_timeout(now + Duration::from_secs(11));
    let mut out = Vec::new();
    while let Some(b) = c.poll_transmit() {
        out.extend_from_slice(&b);
    }
    (opens, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_of_the_stream_gives_the_same_events_and_data(
        writes in proptest::collection::vec((0u8..4, 0usize..3000), 0..20),
        cuts in proptest::collection::vec(1usize..500, 1..50),
    ) {
        let (opens, stream) = client_stream(&writes);
        let run = |pieces: &[&[u8]]| {
            let mut s = Mux::new(Role::Server, Config::default(), Instant::now());
            let mut buf = BytesMut::from(&opens[..]);
            s.handle_input(&mut buf, Instant::now()).expect("opens");
            let mut evs = summarize(&mut s);
            let mut data: HashMap<u32, Vec<u8>> = HashMap::new();
            for p in pieces {
                buf.extend_from_slice(p);
                s.handle_input(&mut buf, Instant::now()).expect("valid stream");
                evs.extend(summarize(&mut s));
                for ch in [1u32, 3, 5, 7] {
                    let mut b = [0u8; 1024];
                    while let Ok(Some(n)) = s.read(ChannelId(ch), &mut b) {
                        if n == 0 { break; }
                        data.entry(ch).or_default().extend_from_slice(&b[..n]);
                    }
                }
            }
            (evs.into_iter().filter(|e| !e.starts_with("Readable")).collect::<Vec<_>>(), data)
        };
        let whole = run(&[&stream]);
        let mut pieces = Vec::new();
        let mut rest = &stream[..];
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let k = (*c).min(rest.len());
            pieces.push(&rest[..k]);
            rest = &rest[k..];
        }
        prop_assert_eq!(run(&pieces), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_memory_stays_bounded(
        frames in proptest::collection::vec((0u8..12, 0u32..8, proptest::collection::vec(any::<u8>(), 0..64)), 0..40),
    ) {
        let mut bytes = Vec::new();
        for (kind, ch, payload) in &frames {
            bytes.extend_from_slice(&header(*kind, *ch, payload.len() as u32));
            bytes.extend_from_slice(payload);
        }
        let (_, mut m) = feed(&bytes);
        let mut held = 0;
        for ch in 0..8 {
            held += m.buffered(ChannelId(ch));
        }
        prop_assert!(held <= 8 * 1000);
        let mut out = 0;
        while let Some(b) = m.poll_transmit() { out += b.len(); }
        prop_assert!(out < 64 * 1024);
    }

    #[test]
    fn random_traffic_delivers_every_byte_in_order_within_credit(
        ops in proptest::collection::vec((0u8..3, 0u8..3, 1usize..20_000), 1..60),
        window in 1024u32..65536,
        pipe in 512usize..100_000,
    ) {
        let mut sim = Sim::new(Config { initial_window: window, ..Config::default() });
        sim.pipe = pipe;
        let ids: Vec<ChannelId> = (0..3).map(|i| sim.open_pair(&format!("p{i}"))).collect();
        let mut sent: HashMap<u8, Vec<u8>> = HashMap::new();
        let mut got: HashMap<u8, Vec<u8>> = HashMap::new();
        let mut buf = vec![0u8; 7000];
        for (op, ch, n) in ops {
            let id = ids[ch as usize];
            match op {
                0 => {
                    let data = pattern(ch.wrapping_add(sent.get(&ch).map_or(0, |v| v.len() as u8)), n);
                    let w = sim.a.mux.write(id, &data).expect("write");
                    sent.entry(ch).or_default().extend_from_slice(&data[..w]);
                }
                1 => {
                    let k = n.min(buf.len());
                    if let Some(r) = sim.b.mux.read(id, &mut buf[..k]).expect("read") {
                        got.entry(ch).or_default().extend_from_slice(&buf[..r]);
                    }
                }
                _ => for _ in 0..(n % 50) { sim.step(); },
            }
            for &id in &ids {
                prop_assert!(sim.b.mux.buffered(id) <= window as usize);
            }
        }
        // Drain: everything written arrives, in order.
        sim.run_until(|s| {
            for (i, &id) in ids.iter().enumerate() {
                while let Ok(Some(r)) = s.b.mux.read(id, &mut buf) {
                    if r == 0 { break; }
                    got.entry(i as u8).or_default().extend_from_slice(&buf[..r]);
                }
            }
            (0..3u8).all(|c| got.get(&c).map_or(0, Vec::len) == sent.get(&c).map_or(0, Vec::len))
        });
        prop_assert_eq!(got, sent.into_iter().filter(|(_, v)| !v.is_empty()).collect::<HashMap<_, _>>());
        prop_assert!(sim.a.error.is_none() && sim.b.error.is_none());
    }
}
