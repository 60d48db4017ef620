//! Starts and stops a real Kamailio MSRP relay for interop tests and the xtask
//! conformance suite (shared by `tests/kamailio_relay.rs` and
//! `examples/kamailio-interop.rs` through `#[path]`).
//!
//! The configuration is `shared/conformance/kamailio/msrp-relay.cfg` (the shared
//! directory is `$HUDDLE_SHARED`, else `../shared` from the workspace root). Its fixed
//! port 2855 is rewritten to a free port in a copy inside a temporary run directory, so
//! several runs (and the relay-server comparison) do not collide. Kamailio runs in the
//! foreground (`-DD -E`), is stopped by its pid with SIGTERM (its children follow), and
//! a guard stops it on drop, also when a test panics.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The configuration, relative to the shared directory.
pub const CONFIG: &str = "conformance/kamailio/msrp-relay.cfg";
/// The port the shared configuration listens on.
pub const CONFIG_PORT: u16 = 2855;
/// The digest password the configuration accepts for any user.
pub const PASSWORD: &str = "secret";
/// Startup time allowed.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The shared directory: `$HUDDLE_SHARED`, else `<workspace>/../shared`.
pub fn shared_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HUDDLE_SHARED") {
        return PathBuf::from(d);
    }
    // CARGO_MANIFEST_DIR is crates/huddle-transport; the workspace root is two up.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("../shared")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn kamailio_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/kamailio",
        "/usr/local/sbin/kamailio",
        "/usr/bin/kamailio",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Finds Kamailio, installing the Debian package when missing and running as root.
pub fn ensure_installed() -> Result<PathBuf, String> {
    if let Some(p) = kamailio_binary() {
        return Ok(p);
    }
    if !running_as_root() {
        return Err("kamailio is not installed and this is not root: \
                    run `apt-get install kamailio` (Debian) first"
            .into());
    }
    let update = Command::new("apt-get")
        .arg("update")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("apt-get update: {e}"))?;
    if !update.success() {
        return Err(format!("apt-get update failed: {update}"));
    }
    let install = Command::new("apt-get")
        .args(["install", "-y", "kamailio"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("apt-get install kamailio: {e}"))?;
    if !install.success() {
        return Err(format!("apt-get install kamailio failed: {install}"));
    }
    kamailio_binary().ok_or_else(|| "kamailio still not found after installing it".into())
}

/// A free loopback TCP port (bound then released; Kamailio takes it right after).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A running Kamailio; stopped on drop.
pub struct Kamailio {
    child: Option<Child>,
    pid: u32,
    port: u16,
    run_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Kamailio {
    /// Installs (if needed) and starts Kamailio with the shared configuration on a free
    /// port, and waits until it listens.
    pub fn start() -> Result<Kamailio, String> {
        let bin = ensure_installed()?;
        let cfg_path = shared_dir().join(CONFIG);
        let cfg = std::fs::read_to_string(&cfg_path).map_err(|e| {
            format!(
                "cannot read {} ({e}); set HUDDLE_SHARED to the shared/ directory",
                cfg_path.display()
            )
        })?;
        let needle = format!("127.0.0.1:{CONFIG_PORT}");
        if !cfg.contains(&format!("listen=tcp:{needle}")) {
            return Err(format!(
                "{} no longer listens on tcp:{needle}; update the harness",
                cfg_path.display()
            ));
        }
        let port = free_port()?;
        let cfg = cfg.replace(&needle, &format!("127.0.0.1:{port}"));
        let run_dir =
            std::env::temp_dir().join(format!("huddle-kamailio-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
        let run_cfg = run_dir.join("msrp-relay.cfg");
        std::fs::write(&run_cfg, cfg).map_err(|e| e.to_string())?;
        let pid_file = run_dir.join("kamailio.pid");
        let mut child = Command::new(&bin)
            .arg("-f")
            .arg(&run_cfg)
            .arg("-P")
            .arg(&pid_file)
            .arg("-Y")
            .arg(&run_dir)
            .args(["-DD", "-E"])
            .current_dir(&run_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let pid = child.id();
        // Drain stderr for Kamailio's whole life (a full pipe would block it), keep it
        // for diagnostics, and report lines so startup can be awaited as an event.
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = log2.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        let mut k = Kamailio {
            child: Some(child),
            pid,
            port,
            run_dir,
            log,
        };
        // Kamailio announces its process count once configured, but its TCP main
        // process calls listen() a little later and says nothing then. So: wait for that
        // line, then try to connect after each further log line or, when it is quiet,
        // every 50 ms, until the deadline (there is no event for "another process
        // listens" to block on).
        let deadline = Instant::now() + START_TIMEOUT;
        let mut configured = false;
        loop {
            if configured && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "kamailio did not listen on 127.0.0.1:{port} in time:\n{}",
                    k.log()
                ));
            }
            let wait = if configured {
                left.min(Duration::from_millis(50))
            } else {
                left
            };
            match rx.recv_timeout(wait) {
                Ok(line) if line.contains("processes (at least)") => configured = true,
                Ok(line) if line.contains("ERROR") && line.contains("bind") => {
                    return Err(format!("kamailio could not bind: {line}\n{}", k.log()));
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = k.child.as_mut().and_then(|c| c.wait().ok());
                    return Err(format!("kamailio exited ({status:?}):\n{}", k.log()));
                }
            }
        }
        Ok(k)
    }

    /// The TCP port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its pid (the main process).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `msrp://127.0.0.1:PORT;tcp`.
    pub fn relay_uri(&self) -> String {
        format!("msrp://127.0.0.1:{};tcp", self.port)
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stops it: SIGTERM to the pid (Kamailio stops its workers), then SIGKILL if it
    /// has not exited within 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    // Waiting on another process has no event to block on portably
                    // without blocking forever; poll its exit at a short interval.
                    std::thread::park_timeout(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}
