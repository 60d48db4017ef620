//! Test support: a real `redis-server` on loopback, temporary directories, servers over
//! either backend with an injected clock.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use huddle_room_metrics::server::{self, AppState, ManualClock, ServerConfig, ServerHandle};
use huddle_room_metrics::store::{EmbeddedStore, RedisStore, Store};

/// The shared conformance material (`$HUDDLE_SHARED/conformance/loop` or `../shared/...`).
pub fn loop_dir() -> PathBuf {
    let shared = std::env::var_os("HUDDLE_SHARED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
        PathBuf::from,
    );
    shared.join("conformance/loop")
}

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "huddle-rm-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn redis_binary() -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join("redis-server");
        if p.exists() {
            return p;
        }
    }
    // Install it when we can (Debian, as root); otherwise fail, never skip.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let ok = Command::new("sh")
            .arg("-c")
            .arg("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server")
            .status()
            .is_ok_and(|s| s.success());
        if ok && Path::new("/usr/bin/redis-server").exists() {
            return PathBuf::from("/usr/bin/redis-server");
        }
    }
    panic!(
        "redis-server is missing and could not be installed: run \
         `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server` as root"
    );
}

/// A `redis-server` on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let bin = redis_binary();
        let dir = TempDir::new("redis");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .arg("--dir")
                .arg(&dir.0)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            // Wait for its own "Ready to accept connections" line (an event, with a deadline).
            let stdout = child.stdout.take().expect("piped");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("Ready to accept connections") {
                        let _ = tx.send(true);
                    }
                }
                let _ = tx.send(false);
            });
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(true) => {
                    return RedisServer {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("redis-server did not start on loopback");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

/// What backs a test server; kept alive as long as the test needs it.
#[derive(Debug)]
pub enum Backing {
    Embedded(TempDir),
    Redis(RedisServer),
}

impl Backing {
    pub fn new(backend: Backend) -> Backing {
        match backend {
            Backend::Embedded => Backing::Embedded(TempDir::new("data")),
            Backend::Redis => Backing::Redis(RedisServer::start()),
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        match self {
            Backing::Embedded(dir) => {
                Arc::new(EmbeddedStore::open(&dir.0).expect("open embedded store"))
            }
            Backing::Redis(r) => Arc::new(
                RedisStore::connect(&r.url(), "huddle:")
                    .await
                    .expect("connect to redis"),
            ),
        }
    }
}

/// A server over `store` with a manual clock at `start_ms`.
pub async fn start(
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    config: ServerConfig,
) -> ServerHandle {
    let state = AppState::new(store, config, clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    server::spawn(listener, state).expect("spawn server")
}

/// Wall-clock now in ms (Hawk timestamps are checked against the server clock).
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}
