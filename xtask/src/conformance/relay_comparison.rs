//! Suite `relay-comparison`: huddle's relay and Kamailio 5.6 under the same load, in the
//! same run (issue 4's relay goals, measured in CI).
//!
//! The load generator is `shared/conformance/relay-load` (built in release into
//! `<target>/relay-load`, so the shared source and the workspace lock stay untouched):
//! 100 and then 10 sender/receiver pairs (issue 4's two loads), 4 KiB bodies, window 8,
//! 4 s of sending and up to 3 s of drain. Huddle's relay is the release build of the `msrp-relay` example on
//! `127.0.0.1:0`; Kamailio runs `shared/conformance/kamailio/msrp-relay.cfg` on a free
//! loopback port, started and stopped by pid the way the `kamailio-relay-client`
//! suite's harness does, except that its log (a line per frame) goes to a file as in
//! relay-load's README, so that no pipe reader paces it. The two relays take turns for
//! [`ROUNDS`] rounds, each relay started fresh for every round, so both see the same
//! machine load; the comparisons use each relay's median over its rounds.
//!
//! Cases:
//! - every run completed (the relay started, every session authenticated, a result came back);
//! - huddle delivers everything it acknowledged, in every round: no errors, nothing
//!   undelivered, delivered == acknowledged == sent, no duplicates, equal body checksums
//!   (RFC 4976 §6.4.1: the 200 to a SEND is hop by hop, so once a relay has answered it,
//!   the relay alone carries the chunk on; Kamailio answers 200 and then drops most
//!   chunks, see `relay-load/results-kamailio.txt`);
//! - huddle's delivered messages/s ≥ 3× Kamailio's at 100 sessions; at 10 sessions the
//!   ratio is printed against the 3× goal and gated at 2× (see [`LOADS`]);
//! - huddle's p99 end-to-end latency is lower than Kamailio's.
//!
//! Each load's cases are prefixed with its session count.
//!
//! The measured figures of every round and the medians are printed and kept as notes.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Ctx, SuiteResult};

/// Sender/receiver pairs per run, the two loads of issue 4's relay goal, with the least
/// ratio of delivered messages/s each must show. At 100 sessions Kamailio delivers well
/// under 5% of what it acknowledges, so the goal's 3x is checked as is; at 10 sessions
/// it delivers 8-10k msgs/s on a quiet 2-core machine (relay-load's
/// results-kamailio.txt) against huddle's 30-45k, so the check there keeps the
/// goal's 3x only as a reported figure and gates at 2x, enough to catch a regression
/// without failing CI on a noisy machine.
const LOADS: [(u64, f64); 2] = [(100, 3.0), (10, 2.0)];
/// Body size of every SEND (Kamailio fails frames over ~11 KB; 4 KiB is the issue's size).
const BODY: u64 = 4096;
/// SEND transactions in flight per sender.
const WINDOW: u64 = 8;
/// Length of the sending phase of one run, in seconds.
const SECONDS: u64 = 4;
/// Longest wait for outstanding deliveries after sending stops, in seconds.
const DRAIN_SECONDS: u64 = 3;
/// Runs per relay, alternating huddle and Kamailio.
const ROUNDS: usize = 3;
/// The password both relays accept for any user (the shared Kamailio configuration's).
const PASSWORD: &str = "secret";
/// Issue 4's goal: huddle delivers at least this many times Kamailio's messages/s.
const GOAL_RATIO: f64 = 3.0;
/// How long a relay may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one relay-load run may take (setup, sending, drain) before it is killed.
const LOAD_TIMEOUT: Duration = Duration::from_secs(90);
/// The shared Kamailio configuration, relative to the shared directory.
const KAMAILIO_CONFIG: &str = "conformance/kamailio/msrp-relay.cfg";
/// The listen address written in that configuration (rewritten to a free port).
const KAMAILIO_CONFIG_LISTEN: &str = "127.0.0.1:2855";
/// Lines of huddle's relay's log kept for diagnostics.
const LOG_LINES_KEPT: usize = 200;

/// Which relay a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Huddle,
    Kamailio,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Huddle => "huddle",
            Which::Kamailio => "kamailio",
        }
    }
}

/// A relay process; stopped (and waited for) when dropped, however the suite ends.
#[derive(Debug)]
struct RelayProcess {
    child: Option<Child>,
    pid: u32,
    /// Kamailio stops its worker processes on SIGTERM; huddle's relay is simply killed.
    graceful: bool,
    /// Where its stderr goes.
    log: Log,
    /// A scratch directory removed on stop.
    run_dir: Option<PathBuf>,
}

/// A relay's stderr.
#[derive(Debug)]
enum Log {
    /// Read through a pipe; the first [`LOG_LINES_KEPT`] lines are kept.
    Lines(Arc<Mutex<Vec<String>>>),
    /// Written to a file. Kamailio logs every frame: a file, as in relay-load's README,
    /// so that no reader of ours paces it.
    File(PathBuf),
}

impl RelayProcess {
    /// Spawns `cmd`. With `log_file`, stderr goes to that file and no channel is
    /// returned; otherwise stderr is piped, drained for the process's whole life (a full
    /// pipe would block it), and every line is sent on the returned channel while anyone
    /// listens.
    fn spawn(
        mut cmd: Command,
        graceful: bool,
        log_file: Option<PathBuf>,
        run_dir: Option<PathBuf>,
    ) -> Result<(Self, Option<mpsc::Receiver<String>>), String> {
        let line = crate::util::describe(&cmd);
        let stderr = match &log_file {
            Some(path) => Stdio::from(
                std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            None => Stdio::piped(),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start `{line}`: {e}"))?;
        let pid = child.id();
        let (log, rx) = match log_file {
            Some(path) => (Log::File(path), None),
            None => {
                let stderr = child.stderr.take().expect("stderr is piped");
                let kept = Arc::new(Mutex::new(Vec::new()));
                let (tx, rx) = mpsc::channel();
                let kept2 = kept.clone();
                std::thread::spawn(move || {
                    for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                        if let Ok(mut kept) = kept2.lock()
                            && kept.len() < LOG_LINES_KEPT
                        {
                            kept.push(l.clone());
                        }
                        let _ = tx.send(l);
                    }
                });
                (Log::Lines(kept), Some(rx))
            }
        };
        let p = RelayProcess {
            child: Some(child),
            pid,
            graceful,
            log,
            run_dir,
        };
        Ok((p, rx))
    }

    /// The first lines it logged, for a failure message.
    fn log_head(&self, lines: usize) -> String {
        let all = match &self.log {
            Log::Lines(kept) => kept.lock().map(|l| l.join("\n")).unwrap_or_default(),
            Log::File(path) => std::fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        };
        all.lines().take(lines).collect::<Vec<_>>().join(" | ")
    }

    /// Whether it has exited (and how).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops it by pid: SIGTERM and up to 10 s to exit for Kamailio (then SIGKILL to it and
    /// its worker processes), SIGKILL at once for huddle's relay.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.graceful {
            let workers = children_of(self.pid);
            signal("-TERM", self.pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        // No portable event for another process's exit short of a
                        // blocking wait: poll at a short interval.
                        std::thread::park_timeout(Duration::from_millis(20));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        for w in workers {
                            signal("-KILL", w);
                        }
                        break;
                    }
                }
            }
        } else {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.run_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `sig` (`-TERM`, `-KILL`) to one process by pid.
fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The pids whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let child: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == pid).then_some(child)
    })
    .collect()
}

/// The workspace's target directory, as cargo sees it.
fn target_dir(root: &Path) -> Result<PathBuf, String> {
    let out = crate::util::cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo metadata failed ({})", out.status));
    }
    let meta: Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata: no target_directory".into())
}

/// Kamailio's binary: found, or installed with apt-get when running as root.
fn kamailio_binary() -> Result<PathBuf, String> {
    let find = || {
        [
            "/usr/sbin/kamailio",
            "/usr/local/sbin/kamailio",
            "/usr/bin/kamailio",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Ok(p);
    }
    crate::util::apt_install(&["kamailio"])
        .map_err(|e| format!("kamailio is not installed and could not be: {e:#}"))?;
    find().ok_or_else(|| "kamailio still not found after installing it".into())
}

/// Starts huddle's relay on `127.0.0.1:0`; returns it and the address it listens on.
fn start_huddle(bin: &Path, creds: &Path) -> Result<(RelayProcess, String), String> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--realm",
        "127.0.0.1",
        "--credentials",
    ])
    .arg(creds);
    let (relay, rx) = RelayProcess::spawn(cmd, false, None, None)?;
    let rx = rx.expect("stderr is piped");
    // It says where it listens once it does: "msrp-relay: listening on ADDR as URI".
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(rest) = l.split_once("listening on ").map(|(_, r)| r)
                    && let Some(addr) = rest.split_whitespace().next()
                {
                    return Ok((relay, addr.to_owned()));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "huddle's relay did not listen within {START_TIMEOUT:?}: {}",
                    relay.log_head(10)
                ));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "huddle's relay ended before listening: {}",
                    relay.log_head(10)
                ));
            }
        }
    }
}

/// Starts Kamailio with the shared configuration `cfg` (its listen address moved to a
/// free loopback port) in a scratch directory under `dir`; returns it and its address.
fn start_kamailio(bin: &Path, cfg: &str, dir: &Path) -> Result<(RelayProcess, String), String> {
    let needle = format!("listen=tcp:{KAMAILIO_CONFIG_LISTEN}");
    if !cfg.contains(&needle) {
        return Err(format!(
            "{KAMAILIO_CONFIG} no longer has `{needle}`; update this suite"
        ));
    }
    // Bound then released: Kamailio takes it right after.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let run_dir = dir.join(format!("kamailio-{port}"));
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let run_cfg = run_dir.join("msrp-relay.cfg");
    std::fs::write(&run_cfg, cfg.replace(KAMAILIO_CONFIG_LISTEN, &addr))
        .map_err(|e| format!("{}: {e}", run_cfg.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("-f")
        .arg(&run_cfg)
        .arg("-P")
        .arg(run_dir.join("kamailio.pid"))
        .arg("-Y")
        .arg(&run_dir)
        .args(["-DD", "-E"])
        .current_dir(&run_dir);
    let log = run_dir.join("kamailio.log");
    let (mut relay, _) = RelayProcess::spawn(cmd, true, Some(log.clone()), Some(run_dir))?;
    // Kamailio announces its process count once configured, but its TCP main process
    // listens a little later and says nothing then. Its log is a file (no event to block
    // on): every 50 ms, look for that line (or a bind error), then try to connect.
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read(&log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("ERROR") && l.contains("bind"))
        {
            return Err(format!("kamailio could not bind {addr}: {l}"));
        }
        if text.contains("processes (at least)") && TcpStream::connect(&addr).is_ok() {
            return Ok((relay, addr));
        }
        if let Some(status) = relay.exited() {
            return Err(format!(
                "kamailio exited ({status}) before listening: {}",
                relay.log_head(10)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "kamailio did not listen on {addr} within {START_TIMEOUT:?}: {}",
                relay.log_head(10)
            ));
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

/// Runs relay-load against `addr` (the relay's pid for its CPU figures) and returns the
/// JSON result line it prints on stdout.
fn load(
    bin: &Path,
    addr: &str,
    relay_pid: u32,
    sessions: u64,
    label: &str,
) -> Result<Value, String> {
    let mut cmd = Command::new(bin);
    cmd.args(["--relay", addr, "--password", PASSWORD, "--label", label])
        .args(["--sessions", &sessions.to_string()])
        .args(["--body", &BODY.to_string()])
        .args(["--window", &WINDOW.to_string()])
        .args(["--duration", &SECONDS.to_string()])
        .args(["--drain", &DRAIN_SECONDS.to_string()])
        .args(["--cpu-pid", &relay_pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = crate::util::describe(&cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start `{line}`: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(LOAD_TIMEOUT) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("`{line}`: {e}")),
        Err(_) => {
            signal("-KILL", pid);
            let _ = rx.recv();
            return Err(format!("`{line}` did not finish within {LOAD_TIMEOUT:?}"));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit status 1 only says something was lost (expected of Kamailio): read the result.
    match stdout.lines().rev().find(|l| l.starts_with('{')) {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("relay-load result: {e}")),
        None => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<_> = stderr.lines().rev().take(5).collect();
            Err(format!(
                "relay-load printed no result ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ))
        }
    }
}

/// A number from relay-load's JSON (`NaN` when absent).
fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, p| &v[*p])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// An integer from relay-load's JSON.
fn int(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().fold(v, |v, p| &v[*p]).as_u64()
}

/// Whether a run set up every session and sent something.
fn completed(v: &Value, sessions: u64) -> Result<(), String> {
    match (int(v, &["sessions_ok"]), int(v, &["sent"])) {
        (Some(ok), _) if ok != sessions => Err(format!("{ok} of {sessions} sessions set up")),
        (Some(_), Some(sent)) if sent > 0 => Ok(()),
        _ => Err("nothing was sent".into()),
    }
}

/// Whether a run delivered every message the relay acknowledged, intact and once.
fn lossless(v: &Value) -> Result<(), String> {
    let field = |name: &str| int(v, &[name]).ok_or_else(|| format!("no `{name}` in the result"));
    let (sent, acked, delivered) = (field("sent")?, field("acked")?, field("delivered")?);
    let errors = int(v, &["errors", "total"]).ok_or("no `errors.total` in the result")?;
    let (undelivered, duplicates) = (field("undelivered")?, field("duplicates")?);
    let (crc_sent, crc_recv) = (field("crc_sent")?, field("crc_recv")?);
    if errors == 0
        && undelivered == 0
        && duplicates == 0
        && acked == sent
        && delivered == acked
        && crc_sent == crc_recv
    {
        Ok(())
    } else {
        Err(format!(
            "sent {sent}, acked {acked}, delivered {delivered}, undelivered {undelivered}, \
             duplicates {duplicates}, errors {errors} ({}), body checksums {}",
            v["errors"],
            if crc_sent == crc_recv {
                "equal"
            } else {
                "differ"
            }
        ))
    }
}

/// The median of `xs` (the mean of the middle two for an even count; `None` when empty).
fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One line of figures for a run.
fn describe_run(v: &Value) -> String {
    let sent = int(v, &["sent"]).unwrap_or(0);
    let undelivered = int(v, &["undelivered"]).unwrap_or(0);
    let loss = if sent > 0 {
        100.0 * undelivered as f64 / sent as f64
    } else {
        f64::NAN
    };
    format!(
        "{:>8.0} msgs/s delivered, p50 {:.1} ms, p99 {:.1} ms, loss {} of {} sent ({loss:.1}%), \
         acked {:.0}/s, errors {}, relay CPU {:.0}%",
        num(v, &["msgs_per_s"]),
        num(v, &["lat_ms", "p50"]),
        num(v, &["lat_ms", "p99"]),
        thousands(undelivered),
        thousands(sent),
        num(v, &["acked_per_s"]),
        int(v, &["errors", "total"]).unwrap_or(0),
        num(v, &["cpu", "relay_pct"]),
    )
}

/// Builds relay-load (release, its own target directory) and huddle's relay (release).
fn build(ctx: &Ctx, target: &Path) -> Result<(PathBuf, PathBuf), SuiteResult> {
    let r = || SuiteResult::new("relay-comparison");
    let manifest = ctx.shared.join("conformance/relay-load/Cargo.toml");
    if !manifest.exists() {
        return Err(r().could_not_run(format!(
            "{} is missing; set HUDDLE_SHARED to the shared/ directory",
            manifest.display()
        )));
    }
    let mut cmd = crate::util::cargo();
    cmd.current_dir(&ctx.root)
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target.join("relay-load"));
    if let Err(e) = crate::util::run(&mut cmd) {
        return Err(r().could_not_run(format!("building relay-load: {e:#}")));
    }
    let mut cmd = crate::util::cargo();
    cmd.current_dir(&ctx.root).args([
        "build",
        "--release",
        "-p",
        "huddle-transport",
        "--example",
        "msrp-relay",
    ]);
    if let Err(e) = crate::util::run(&mut cmd) {
        let mut r = r();
        r.case("msrp-relay builds in release", Err(format!("{e:#}")));
        return Err(r);
    }
    Ok((
        target.join("relay-load/release/relay-load"),
        target.join("release/examples/msrp-relay"),
    ))
}

/// One measured run: start the relay, load it, stop it.
fn one_run(which: Which, bins: &Bins<'_>, sessions: u64, round: usize) -> Result<Value, String> {
    let (relay, addr) = match which {
        Which::Huddle => start_huddle(bins.relay, bins.creds)?,
        Which::Kamailio => start_kamailio(bins.kamailio, bins.kamailio_cfg, bins.dir)?,
    };
    let label = format!("{}-s{sessions}-b{BODY}-r{round}", which.name());
    let result = load(bins.load, &addr, relay.pid, sessions, &label);
    drop(relay);
    result
}

/// What a run needs.
#[derive(Debug)]
struct Bins<'a> {
    load: &'a Path,
    relay: &'a Path,
    creds: &'a Path,
    kamailio: &'a Path,
    kamailio_cfg: &'a str,
    dir: &'a Path,
}

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("relay-comparison");
    let target = match target_dir(&ctx.root) {
        Ok(t) => t,
        Err(e) => return r.could_not_run(e),
    };
    let (load_bin, relay_bin) = match build(ctx, &target) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let kamailio = match kamailio_binary() {
        Ok(k) => k,
        Err(e) => return r.could_not_run(e),
    };
    let cfg_path = ctx.shared.join(KAMAILIO_CONFIG);
    let cfg = match std::fs::read_to_string(&cfg_path) {
        Ok(c) => c,
        Err(e) => {
            return r.could_not_run(format!(
                "cannot read {} ({e}); set HUDDLE_SHARED to the shared/ directory",
                cfg_path.display()
            ));
        }
    };
    let dir = target.join("xtask/conformance/relay-comparison");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return r.could_not_run(format!("cannot create {}: {e}", dir.display()));
    }
    let creds = dir.join("credentials");
    if let Err(e) = std::fs::write(&creds, format!("*:{PASSWORD}\n")) {
        return r.could_not_run(format!("cannot write {}: {e}", creds.display()));
    }
    let bins = Bins {
        load: &load_bin,
        relay: &relay_bin,
        creds: &creds,
        kamailio: &kamailio,
        kamailio_cfg: &cfg,
        dir: &dir,
    };

    for (sessions, min_ratio) in LOADS {
        compare(&mut r, &bins, sessions, min_ratio);
    }
    r
}

/// Runs one load against both relays in turn and adds its cases.
fn compare(r: &mut SuiteResult, bins: &Bins<'_>, sessions: u64, min_ratio: f64) {
    println!(
        "relay-load: {sessions} sessions, {BODY}-byte bodies, window {WINDOW}, {SECONDS} s + \
         up to {DRAIN_SECONDS} s drain; {ROUNDS} rounds, huddle and Kamailio in turn"
    );
    let started = Instant::now();
    let mut runs: Vec<(Which, usize, Result<Value, String>)> = Vec::new();
    for round in 1..=ROUNDS {
        for which in [Which::Huddle, Which::Kamailio] {
            let outcome = one_run(which, bins, sessions, round)
                .and_then(|v| completed(&v, sessions).map(|()| v));
            let line = match &outcome {
                Ok(v) => format!(
                    "{sessions} sessions, round {round} {:8}: {}",
                    which.name(),
                    describe_run(v)
                ),
                Err(e) => format!(
                    "{sessions} sessions, round {round} {:8}: did not complete: {e}",
                    which.name()
                ),
            };
            println!("{line}");
            r.note(line);
            runs.push((which, round, outcome));
        }
    }
    let took = started.elapsed();

    // Every run completed.
    let incomplete: Vec<_> = runs
        .iter()
        .filter(|(_, _, o)| o.is_err())
        .map(|(w, round, _)| format!("{} round {round}", w.name()))
        .collect();
    r.case(
        format!(
            "{sessions} sessions: all {} runs completed ({ROUNDS} per relay)",
            runs.len()
        ),
        if incomplete.is_empty() {
            Ok(())
        } else {
            Err(format!("incomplete: {}", incomplete.join(", ")))
        },
    );

    let ok_runs = |which: Which| -> Vec<&Value> {
        runs.iter()
            .filter(|(w, _, _)| *w == which)
            .filter_map(|(_, _, o)| o.as_ref().ok())
            .collect()
    };
    let (huddle, kam) = (ok_runs(Which::Huddle), ok_runs(Which::Kamailio));

    // Huddle loses nothing it acknowledged, in every round.
    let losses: Vec<_> = runs
        .iter()
        .filter(|(w, _, _)| *w == Which::Huddle)
        .filter_map(|(_, round, o)| match o {
            Ok(v) => lossless(v).err().map(|e| format!("round {round}: {e}")),
            Err(_) => Some(format!("round {round}: no result")),
        })
        .collect();
    r.case(
        format!("{sessions} sessions: huddle delivers every message it acknowledged (every round)"),
        if losses.is_empty() {
            Ok(())
        } else {
            Err(losses.join("; "))
        },
    );

    let med = |runs: &[&Value], path: &[&str]| median(runs.iter().map(|v| num(v, path)).collect());
    let rates = (med(&huddle, &["msgs_per_s"]), med(&kam, &["msgs_per_s"]));
    let p99s = (
        med(&huddle, &["lat_ms", "p99"]),
        med(&kam, &["lat_ms", "p99"]),
    );
    let p50s = (
        med(&huddle, &["lat_ms", "p50"]),
        med(&kam, &["lat_ms", "p50"]),
    );
    if let ((Some(hr), Some(kr)), (Some(hp), Some(kp)), (Some(h50), Some(k50))) =
        (rates, p99s, p50s)
    {
        let ratio = hr / kr;
        let summary = format!(
            "{sessions} sessions, medians: huddle {hr:.0} msgs/s, p50 {h50:.1} ms, p99 {hp:.1} ms; \
             kamailio {kr:.0} msgs/s, p50 {k50:.1} ms, p99 {kp:.1} ms; ratio {ratio:.1}x (goal \
             {GOAL_RATIO}x: {}); {ROUNDS}+{ROUNDS} runs in {took:.0?}",
            if ratio >= GOAL_RATIO {
                "met"
            } else {
                "NOT met"
            },
        );
        println!("{summary}");
        r.note(summary);
    }
    r.case(
        format!(
            "{sessions} sessions: huddle delivers >= {min_ratio}x Kamailio's messages/s (medians)"
        ),
        match rates {
            (Some(h), Some(k)) if h >= min_ratio * k => Ok(()),
            (Some(h), Some(k)) => Err(format!("{h:.0} vs {k:.0} msgs/s ({:.2}x)", h / k)),
            _ => Err("no completed run to compare".into()),
        },
    );
    r.case(
        format!("{sessions} sessions: huddle's p99 latency is lower than Kamailio's (medians)"),
        match p99s {
            (Some(h), Some(k)) if h < k => Ok(()),
            (Some(h), Some(k)) => Err(format!("{h:.1} vs {k:.1} ms")),
            _ => Err("no completed run to compare".into()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay-load result line in the shape it prints (fields this suite reads).
    fn result(sent: u64, acked: u64, delivered: u64, errors: u64, crc_recv: u64) -> Value {
        serde_json::from_str(&format!(
            r#"{{"sessions":10,"sessions_ok":10,"sent":{sent},"acked":{acked},
                "delivered":{delivered},"msgs_per_s":30029.2,
                "lat_ms":{{"p50":2.446,"p90":5.496,"p99":10.808,"max":28.102}},
                "errors":{{"total":{errors},"non200":{{}},"timeouts":{errors}}},
                "undelivered":{},"duplicates":0,"crc_sent":777,"crc_recv":{crc_recv}}}"#,
            sent - delivered
        ))
        .unwrap()
    }

    #[test]
    fn a_run_is_lossless_only_when_everything_acknowledged_arrived_intact() {
        assert_eq!(lossless(&result(100, 100, 100, 0, 777)), Ok(()));
        assert!(lossless(&result(100, 100, 99, 0, 777)).is_err());
        assert!(lossless(&result(100, 99, 99, 1, 777)).is_err());
        assert!(lossless(&result(100, 100, 100, 0, 778)).is_err());
        assert!(lossless(&serde_json::json!({"sent": 1})).is_err());
    }

    #[test]
    fn a_run_completed_only_with_every_session_and_something_sent() {
        assert_eq!(completed(&result(100, 100, 100, 0, 777), 10), Ok(()));
        let mut v = result(100, 100, 100, 0, 777);
        v["sessions_ok"] = 9.into();
        assert!(completed(&v, 10).is_err());
        assert!(completed(&result(0, 0, 0, 0, 777), 10).is_err());
    }

    #[test]
    fn medians_and_figures() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(123456), "123,456");
        let v = result(120245, 120245, 120245, 0, 777);
        assert_eq!(num(&v, &["lat_ms", "p99"]), 10.808);
        assert!(describe_run(&v).contains("loss 0 of 120,245 sent"));
    }
}
