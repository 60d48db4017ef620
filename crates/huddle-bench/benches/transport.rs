//! Transport benches, side by side in the same run over loopback TCP:
//!
//! - 1 GiB over one huddle channel vs the same bytes over raw TCP: throughput and process
//!   CPU time per GiB (utime + stime from `/proc/self/stat`, both directions in one
//!   process).
//! - 1 GiB over 8 huddle channels vs 8 yamux 0.14 substreams (each carries 128 MiB).
//! - Message mode: 100-byte messages from a participant to the host, through the tokio
//!   drivers over TCP (goal ≥ 5 M/s with batching): one `send().await` per message, then
//!   `MessageClient::send_many` batches; and the sans-IO cores alone.
//!
//! Each case runs 3 times; the table shows medians. Loopback on a shared machine is noisy.

use std::future::poll_fn;
use std::hint::black_box;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::Criterion;
use futures_util::io::{AsyncReadExt as _, AsyncWriteExt as _};
use huddle_bench::Table;
use huddle_transport::message::{
    Config as MsgConfig, Host, HostEvent, MessageClient, MessageHost, Participant, ParticipantId,
    Recipient,
};
use huddle_transport::mux::{Config as MuxConfig, Connection, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::TokioAsyncReadCompatExt;

const GIB: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;
const RUNS: usize = 3;
/// Messages per `send_many` call in the "with batching" message-mode row.
const MSG_BATCH: usize = 1024;

/// Process CPU time (user + system) so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after comm/state.
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // CLK_TCK is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[derive(Clone, Copy, Debug)]
struct Run {
    wall: Duration,
    cpu: Duration,
    bytes: u64,
}

impl Run {
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.wall.as_secs_f64()
    }
    fn cpu_per_gib(&self) -> f64 {
        self.cpu.as_secs_f64() / (self.bytes as f64 / GIB as f64)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
    let (c, s) = (c.expect("connect"), s.expect("accept").0);
    c.set_nodelay(true).expect("nodelay");
    s.set_nodelay(true).expect("nodelay");
    (c, s)
}

async fn measure<F: Future<Output = u64>>(f: F) -> Run {
    let (t, c) = (Instant::now(), cpu_time());
    let bytes = f.await;
    Run {
        wall: t.elapsed(),
        cpu: cpu_time() - c,
        bytes,
    }
}

async fn raw_tcp(total: u64) -> Run {
    let (mut c, mut s) = tcp_pair().await;
    measure(async move {
        let w = tokio::spawn(async move {
            let buf = vec![0x5a; CHUNK];
            let mut left = total;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                c.write_all(&buf[..n]).await.expect("write");
                left -= n as u64;
            }
            c.shutdown().await.expect("shutdown");
        });
        let mut buf = vec![0; CHUNK];
        let mut got = 0u64;
        loop {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        w.await.expect("writer");
        assert_eq!(got, total);
        got
    })
    .await
}

async fn huddle(total: u64, channels: usize, cfg: MuxConfig) -> Run {
    let (c, s) = tcp_pair().await;
    let client = Connection::new(c, Role::Client, cfg.clone());
    let server = Connection::new(s, Role::Server, cfg);
    let per = total / channels as u64;
    let r = measure(async {
        let srv = tokio::spawn(async move {
            let mut readers = Vec::new();
            for _ in 0..channels {
                let mut ch = server
                    .accept()
                    .await
                    .expect("incoming")
                    .accept()
                    .expect("accept");
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0; CHUNK];
                    let mut got = 0u64;
                    loop {
                        let n = ch.read(&mut buf).await.expect("read");
                        if n == 0 {
                            break;
                        }
                        got += n as u64;
                    }
                    got
                }));
            }
            let mut got = 0;
            for r in readers {
                got += r.await.expect("reader");
            }
            (got, server)
        });
        let mut writers = Vec::new();
        for _ in 0..channels {
            let mut ch = client.open("bench").await.expect("open");
            writers.push(tokio::spawn(async move {
                let buf = vec![0x5a; CHUNK];
                let mut left = per;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    ch.write_all(&buf[..n]).await.expect("write");
                    left -= n as u64;
                }
                ch.shutdown().await.expect("fin");
                ch
            }));
        }
        let mut keep = Vec::new();
        for w in writers {
            keep.push(w.await.expect("writer"));
        }
        let (got, _server) = srv.await.expect("server");
        assert_eq!(got, per * channels as u64);
        got
    })
    .await;
    drop(client);
    r
}

/// Drives a yamux connection; opens outbound streams on request.
async fn yamux_driver(
    mut conn: yamux::Connection<tokio_util::compat::Compat<TcpStream>>,
    mut opens: mpsc::Receiver<oneshot::Sender<yamux::Stream>>,
    inbound: mpsc::UnboundedSender<yamux::Stream>,
) {
    let mut waiting: Option<oneshot::Sender<yamux::Stream>> = None;
    poll_fn(|cx| {
        loop {
            if waiting.is_none() {
                match opens.poll_recv(cx) {
                    Poll::Ready(Some(tx)) => waiting = Some(tx),
                    _ => break,
                }
            }
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(s)) => {
                    let _ = waiting.take().expect("requested").send(s);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        loop {
            match conn.poll_next_inbound(cx) {
                Poll::Ready(Some(Ok(s))) => {
                    let _ = inbound.send(s);
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

async fn yamux(total: u64, channels: usize) -> Run {
    let (c, s) = tcp_pair().await;
    let cc = yamux::Connection::new(c.compat(), yamux::Config::default(), yamux::Mode::Client);
    let sc = yamux::Connection::new(s.compat(), yamux::Config::default(), yamux::Mode::Server);
    let (open_tx, open_rx) = mpsc::channel(16);
    let (_no_open, server_opens) = mpsc::channel(1);
    let (client_in, _ignored) = mpsc::unbounded_channel();
    let (server_in, mut incoming) = mpsc::unbounded_channel();
    tokio::spawn(yamux_driver(cc, open_rx, client_in));
    tokio::spawn(yamux_driver(sc, server_opens, server_in));
    let per = total / channels as u64;
    measure(async move {
        let srv = tokio::spawn(async move {
            let mut readers = Vec::new();
            for _ in 0..channels {
                let mut st = incoming.recv().await.expect("inbound");
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0; CHUNK];
                    let mut got = 0u64;
                    loop {
                        let n = st.read(&mut buf).await.expect("read");
                        if n == 0 {
                            break;
                        }
                        got += n as u64;
                    }
                    got
                }));
            }
            let mut got = 0;
            for r in readers {
                got += r.await.expect("reader");
            }
            got
        });
        let mut writers = Vec::new();
        for _ in 0..channels {
            let (tx, rx) = oneshot::channel();
            open_tx.send(tx).await.expect("driver");
            let mut st = rx.await.expect("stream");
            writers.push(tokio::spawn(async move {
                let buf = vec![0x5a; CHUNK];
                let mut left = per;
                while left > 0 {
                    let n = left.min(CHUNK as u64) as usize;
                    st.write_all(&buf[..n]).await.expect("write");
                    left -= n as u64;
                }
                st.close().await.expect("close");
                st
            }));
        }
        let mut keep = Vec::new();
        for w in writers {
            keep.push(w.await.expect("writer"));
        }
        let got = srv.await.expect("server");
        assert_eq!(got, per * channels as u64);
        got
    })
    .await
}

/// 100-byte messages from a participant to the host through the tokio drivers: one
/// `send().await` per message (`batch == 1`), else `send_many` with `batch` messages per
/// call.
/// Returns the wall time, the messages received, and the process CPU time spent.
async fn message_mode(n: u64, batch: usize) -> (Duration, u64, Duration) {
    let host = MessageHost::new("owner", MsgConfig::default()).expect("host");
    host.invite("alice");
    let (c, s) = tcp_pair().await;
    host.add_connection(s);
    let alice = MessageClient::join(c, "alice", MsgConfig::default())
        .await
        .expect("join");
    let payload = [0x42u8; 100];
    let to = Recipient::One(ParticipantId::HOST);
    let cpu0 = cpu_time();
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        if batch <= 1 {
            for _ in 0..n {
                alice.send(to, &payload).await.expect("send");
            }
        } else {
            let payloads = vec![payload; batch];
            let mut left = n;
            while left > 0 {
                let k = left.min(batch as u64) as usize;
                alice
                    .send_many(to, &payloads[..k])
                    .await
                    .expect("send_many");
                left -= k as u64;
            }
        }
        alice
    });
    let mut got = 0u64;
    let mut buf = Vec::with_capacity(8192);
    while got < n {
        buf.clear();
        host.recv_many(&mut buf, 8192).await;
        got += buf
            .iter()
            .filter(|e| matches!(e, HostEvent::Message { .. }))
            .count() as u64;
    }
    let wall = t.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    drop(sender.await.expect("sender"));
    (wall, got, cpu)
}

/// The sans-IO cores alone: encode at the participant, decode and deliver at the host.
fn message_cores(n: u64) -> (Duration, u64) {
    let now = Instant::now();
    let cfg = MsgConfig {
        max_queued: usize::MAX,
        max_pending_events: usize::MAX,
        ..MsgConfig::default()
    };
    let mut host = Host::new("owner", cfg.clone()).expect("host");
    host.invite("alice");
    let link = host.add_link(now);
    let mut p = Participant::new("alice", &cfg, now).expect("p");
    let mut up = BytesMut::from(&p.poll_transmit().expect("hello")[..]);
    host.handle_input(link, &mut up, now).expect("hello");
    let mut down = BytesMut::from(&host.poll_transmit(link).expect("welcome")[..]);
    p.handle_input(&mut down, now).expect("welcome");
    while host.poll_event().is_some() {}
    let payload = [0x42u8; 100];
    let t = Instant::now();
    let mut got = 0;
    let batch = 4096;
    let mut sent = 0;
    while sent < n {
        for _ in 0..batch {
            p.send(Recipient::One(ParticipantId::HOST), &payload, now)
                .expect("send");
        }
        sent += batch;
        // Everything queued (it comes out in blocks of up to 256 KiB).
        let mut buf = BytesMut::new();
        while let Some(b) = p.poll_transmit() {
            buf.extend_from_slice(&b);
        }
        host.handle_input(link, &mut buf, now).expect("input");
        while let Some(e) = host.poll_event() {
            black_box(&e);
            got += 1;
        }
    }
    assert_eq!(got, sent, "every message delivered");
    (t.elapsed(), got)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Criterion's record: a short run of each shape (64 MiB), for regressions.
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let small = 64u64 << 20;
    c.bench_function("raw tcp 64 MiB", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(raw_tcp(small)).wall).sum())
    });
    c.bench_function("huddle 1 channel 64 MiB", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(huddle(small, 1, MuxConfig::default())).wall)
                .sum()
        })
    });
    c.bench_function("message cores 100k x 100 B", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| message_cores(100_000).0).sum())
    });
    c.final_summary();

    let mut raw = Vec::new();
    let mut one = Vec::new();
    let mut one_big = Vec::new();
    let mut eight = Vec::new();
    let mut eight_big = Vec::new();
    let mut yam = Vec::new();
    let mut msg = Vec::new();
    let mut msg_batched = Vec::new();
    let mut msg_cpu = Vec::new();
    let mut msg_batched_cpu = Vec::new();
    let mut cores = Vec::new();
    let big_window = MuxConfig {
        initial_window: 4 << 20,
        max_transmit: 1 << 20,
        ..MuxConfig::default()
    };
    // `HUDDLE_BENCH_MESSAGE_ONLY=1`: only the message-mode rows (published as
    // `transport-message.md`, so the full table is not overwritten).
    let message_only = std::env::var_os("HUDDLE_BENCH_MESSAGE_ONLY").is_some();
    for run in 0..RUNS {
        eprintln!("run {}/{RUNS}", run + 1);
        if !message_only {
            raw.push(rt.block_on(raw_tcp(GIB)));
            one.push(rt.block_on(huddle(GIB, 1, MuxConfig::default())));
            one_big.push(rt.block_on(huddle(GIB, 1, big_window.clone())));
            yam.push(rt.block_on(yamux(GIB, 8)));
            eight.push(rt.block_on(huddle(GIB, 8, MuxConfig::default())));
            eight_big.push(rt.block_on(huddle(GIB, 8, big_window.clone())));
        }
        let (w, n, c) = rt.block_on(message_mode(5_000_000, 1));
        msg.push(n as f64 / w.as_secs_f64());
        msg_cpu.push(c.as_secs_f64() * 1e9 / n as f64);
        let (w, n, c) = rt.block_on(message_mode(5_000_000, MSG_BATCH));
        msg_batched.push(n as f64 / w.as_secs_f64());
        msg_batched_cpu.push(c.as_secs_f64() * 1e9 / n as f64);
        let (w, n) = message_cores(5_000_000);
        cores.push(n as f64 / w.as_secs_f64());
        // Each run's figures, to see the spread on a shared machine.
        eprintln!(
            "  message mode: one send each {:.2} M/s, batched {:.2} M/s, cores {:.2} M/s",
            msg[run] / 1e6,
            msg_batched[run] / 1e6,
            cores[run] / 1e6
        );
    }
    let tput = |v: &[Run]| median(v.iter().map(Run::mib_s).collect());
    let cpu = |v: &[Run]| median(v.iter().map(Run::cpu_per_gib).collect());

    let mut t = Table::new(
        if message_only {
            "transport-message"
        } else {
            "transport"
        },
        &["case", "huddle", "peer", "huddle/peer", "unit"],
    );
    if !message_only {
        let mut row = |case: &str, h: f64, p: f64, unit: &str| {
            t.row(vec![
                case.into(),
                format!("{h:.0}"),
                format!("{p:.0}"),
                format!("{:.2}x", h / p),
                unit.into(),
            ]);
        };
        row(
            "1 GiB, 1 channel (256 KiB window) vs raw TCP",
            tput(&one),
            tput(&raw),
            "MiB/s",
        );
        row(
            "1 GiB, 1 channel (4 MiB window) vs raw TCP",
            tput(&one_big),
            tput(&raw),
            "MiB/s",
        );
        let ms = |v: f64| v * 1000.0;
        row(
            "CPU per GiB, 1 channel (256 KiB) vs raw TCP",
            ms(cpu(&one)),
            ms(cpu(&raw)),
            "ms CPU/GiB",
        );
        row(
            "CPU per GiB, 1 channel (4 MiB) vs raw TCP",
            ms(cpu(&one_big)),
            ms(cpu(&raw)),
            "ms CPU/GiB",
        );
        row(
            "1 GiB, 8 channels (256 KiB) vs yamux 0.14, 8 substreams",
            tput(&eight),
            tput(&yam),
            "MiB/s",
        );
        row(
            "1 GiB, 8 channels (4 MiB) vs yamux 0.14, 8 substreams",
            tput(&eight_big),
            tput(&yam),
            "MiB/s",
        );
    }
    let m = median(msg.clone());
    let k = median(cores.clone());
    t.row(vec![
        "message mode, 100 B over TCP, one send().await each".into(),
        format!("{:.2} M/s", m / 1e6),
        "-".into(),
        format!("{:.2}x goal", m / 5e6),
        "messages/s".into(),
    ]);
    let b = median(msg_batched.clone());
    t.row(vec![
        format!("message mode, 100 B over TCP, with batching (send_many x {MSG_BATCH})"),
        format!("{:.2} M/s", b / 1e6),
        "-".into(),
        format!("{:.2}x goal", b / 5e6),
        "messages/s".into(),
    ]);
    t.row(vec![
        "message mode CPU per message: one send().await each".into(),
        format!("{:.0} ns", median(msg_cpu.clone())),
        "-".into(),
        "-".into(),
        "process CPU ns/message".into(),
    ]);
    t.row(vec![
        "message mode CPU per message: with batching".into(),
        format!("{:.0} ns", median(msg_batched_cpu.clone())),
        "-".into(),
        "-".into(),
        "process CPU ns/message".into(),
    ]);
    t.row(vec![
        "message mode, 100 B, sans-IO cores only".into(),
        format!("{:.2} M/s", k / 1e6),
        "-".into(),
        format!("{:.2}x goal", k / 5e6),
        "messages/s".into(),
    ]);
    t.notes.push(format!(
        "Medians of {RUNS} runs; loopback TCP, 2-worker tokio runtime, both ends in one process \
         (CPU = utime+stime of the process from /proc/self/stat, 10 ms resolution). Goals: \
         1 channel >= 0.9x raw throughput and <= 1.2x raw CPU/GiB; 8 channels >= 1.0x yamux; \
         message mode >= 5 M/s with batching."
    ));
    t.publish();
}
