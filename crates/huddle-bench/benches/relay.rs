//! Relay comparison: huddle's RFC 4976 relay against Kamailio 5.6 (the reference
//! `msrp-relay.cfg`), the same load generator (`relay-load`, shared/conformance) in the
//! same run: 4 KiB chunks, 100 and 10 concurrent sessions (a sender and a receiver each,
//! both Use-Paths on the relay), window 8. Reported: delivered messages/s, end-to-end p99,
//! loss (sent − delivered), acknowledged messages/s, relay CPU.
//!
//! Needs the `relay-load` binary (built on its own, outside the workspace:
//! `cd $HUDDLE_SHARED/conformance/relay-load && CARGO_TARGET_DIR=<workspace>/target/relay-load
//! cargo build --release`) and `kamailio` on PATH (Debian `kamailio`); whatever is missing
//! is skipped with a note. Environment: `RELAY_LOAD` (binary), `HUDDLE_SHARED`,
//! `RELAY_BENCH_DURATION` (seconds, default 20), `RELAY_BENCH_SESSIONS` (default "100,10").
//!
//! huddle's relay runs in this process on its own 2-thread tokio runtime; relay-load gets
//! this process's pid for the CPU column. Kamailio runs as its own process tree, started
//! fresh for every run and stopped by pid.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use huddle_bench::Table;
use huddle_transport::relay::server::{CredentialStore, ListenerConfig, RelayServer, ServerConfig};

const BODY: usize = 4096;
const WINDOW: usize = 8;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared_dir() -> PathBuf {
    std::env::var_os("HUDDLE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
}

#[derive(Debug, Default, Clone)]
struct Run {
    sent: u64,
    delivered: u64,
    msgs_per_s: f64,
    acked_per_s: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    relay_cpu_pct: f64,
}

impl Run {
    fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return f64::NAN;
        }
        100.0 * (self.sent.saturating_sub(self.delivered)) as f64 / self.sent as f64
    }
}

fn relay_load(
    bin: &Path,
    addr: &str,
    sessions: usize,
    secs: u64,
    pid: u32,
    label: &str,
) -> Option<Run> {
    let out = Command::new(bin)
        .args(["--relay", addr, "--password", "secret"])
        .args(["--sessions", &sessions.to_string()])
        .args(["--body", &BODY.to_string(), "--window", &WINDOW.to_string()])
        .args(["--duration", &secs.to_string()])
        .args(["--cpu-pid", &pid.to_string(), "--label", label])
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.lines().last()?.trim()).ok()?;
    let f = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    let u = |p: &str| {
        v.pointer(p)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    Some(Run {
        sent: u("/sent"),
        delivered: u("/delivered"),
        msgs_per_s: f("/msgs_per_s"),
        acked_per_s: f("/acked_per_s"),
        p50: f("/lat_ms/p50"),
        p99: f("/lat_ms/p99"),
        errors: u("/errors/total"),
        relay_cpu_pct: f("/cpu/relay_pct"),
    })
}

fn run_huddle(bin: &Path, sessions: usize, secs: u64) -> Option<Run> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .ok()?;
    let mut creds = CredentialStore::new();
    creds.insert("*", "secret");
    let mut cfg = ServerConfig::new(vec![ListenerConfig::tcp("127.0.0.1:0".parse().ok()?)]);
    cfg.relay.realm = "127.0.0.1".into();
    let relay = rt.block_on(RelayServer::start(cfg, creds)).ok()?;
    let addr = relay.local_addr().to_string();
    let run = relay_load(
        bin,
        &addr,
        sessions,
        secs,
        std::process::id(),
        &format!("huddle-s{sessions}"),
    );
    if let Some(m) = rt.block_on(relay.metrics()) {
        eprintln!("huddle relay: {m:?}");
    }
    rt.block_on(relay.shutdown());
    run
}

fn run_kamailio(bin: &Path, cfg: &Path, sessions: usize, secs: u64) -> Option<Run> {
    let dir = std::env::temp_dir().join(format!("huddle-relay-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let pidfile = dir.join("kamailio.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut child = Command::new("kamailio")
        .arg("-f")
        .arg(cfg)
        .arg("-P")
        .arg(&pidfile)
        .arg("-Y")
        .arg(&dir)
        .args(["-DD", "-E"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Ready when it accepts connections on its port.
    let start = Instant::now();
    while std::net::TcpStream::connect("127.0.0.1:2855").is_err() {
        if start.elapsed() > Duration::from_secs(10) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = relay_load(
        bin,
        "127.0.0.1:2855",
        sessions,
        secs,
        child.id(),
        &format!("kamailio-s{sessions}"),
    );
    // Stop by pid (SIGTERM lets the main process take its children down).
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is ignored.
    let relay_load_bin = std::env::var_os("RELAY_LOAD")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/relay-load/release/relay-load"));
    let kamailio_cfg = shared_dir().join("conformance/kamailio/msrp-relay.cfg");
    let secs: u64 = std::env::var("RELAY_BENCH_DURATION")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let sessions: Vec<usize> = std::env::var("RELAY_BENCH_SESSIONS")
        .unwrap_or_else(|_| "100,10".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut table = Table::new(
        "relay",
        &[
            "sessions",
            "relay",
            "delivered msgs/s",
            "p50 ms",
            "p99 ms",
            "loss",
            "acked msgs/s",
            "errors",
            "relay CPU %",
            "huddle ÷ kamailio (msgs/s)",
        ],
    );
    if !relay_load_bin.exists() {
        table.notes.push(format!(
            "skipped: no relay-load binary at {} (see this bench's header)",
            relay_load_bin.display()
        ));
        table.publish();
        return;
    }
    let have_kamailio = Command::new("kamailio")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && kamailio_cfg.exists();
    if !have_kamailio {
        table
            .notes
            .push("Kamailio not run: `kamailio` not on PATH or msrp-relay.cfg not found".into());
    }
    let cell = |r: &Option<Run>, f: &dyn Fn(&Run) -> String| r.as_ref().map_or("failed".into(), f);
    for &s in &sessions {
        let h = run_huddle(&relay_load_bin, s, secs);
        let k = have_kamailio
            .then(|| run_kamailio(&relay_load_bin, &kamailio_cfg, s, secs))
            .flatten();
        let ratio = match (&h, &k) {
            (Some(h), Some(k)) if k.msgs_per_s > 0.0 => {
                format!("{:.1}×", h.msgs_per_s / k.msgs_per_s)
            }
            _ => "-".into(),
        };
        for (name, r) in [("huddle", &h), ("kamailio 5.6", &k)] {
            if name != "huddle" && !have_kamailio {
                continue;
            }
            table.row(vec![
                s.to_string(),
                name.into(),
                cell(r, &|r| format!("{:.0}", r.msgs_per_s)),
                cell(r, &|r| format!("{:.2}", r.p50)),
                cell(r, &|r| format!("{:.2}", r.p99)),
                cell(r, &|r| {
                    format!(
                        "{:.1}% ({} of {})",
                        r.loss_pct(),
                        r.sent - r.delivered.min(r.sent),
                        r.sent
                    )
                }),
                cell(r, &|r| format!("{:.0}", r.acked_per_s)),
                cell(r, &|r| r.errors.to_string()),
                cell(r, &|r| format!("{:.0}", r.relay_cpu_pct)),
                if name == "huddle" {
                    ratio.clone()
                } else {
                    String::new()
                },
            ]);
        }
    }
    table.notes.push(format!(
        "relay-load --body {BODY} --window {WINDOW} --duration {secs} (To-Path: sender Use-Path, receiver Use-Path, receiver; both on the relay). Goal: huddle delivers 100% and ≥ 3× Kamailio's delivered msgs/s with a lower p99."
    ));
    table.publish();
}
