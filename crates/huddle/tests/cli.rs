//! The `huddle` binary end to end on loopback: real processes, real sockets.
//!
//! Every wait has a deadline (a reader thread feeds lines into a channel read with
//! `recv_timeout`), so a hang fails the test instead of stalling CI.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

fn huddle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huddle"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("huddle-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `huddle` process with its stdout as a line channel.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    stdin: Option<ChildStdin>,
}

impl Proc {
    fn start(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn huddle");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Proc {
            child,
            lines: rx,
            stdin,
        }
    }

    /// The next stdout line matching `f`.
    fn line_where(&self, f: impl Fn(&str) -> bool) -> String {
        loop {
            let l = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("an expected output line within the deadline");
            if f(&l) {
                return l;
            }
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn wait(self) -> ExitStatus {
        let (tx, rx) = channel();
        let pid = self.child.id();
        let mut me = self;
        std::thread::spawn(move || {
            let _ = tx.send(me.child.wait());
        });
        match rx.recv_timeout(DEADLINE) {
            Ok(r) => r.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!("huddle (pid {pid}) did not exit within the deadline");
            }
        }
    }

    fn terminate(&self) {
        signal(self.child.id(), "-TERM");
    }
}

/// A test that fails half-way must not leave servers behind.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// A one-shot HTTP/1.1 request on loopback; returns (status, body).
fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

fn start_relay(dir: &Path) -> (Proc, String, String) {
    let creds = dir.join("users.txt");
    std::fs::write(&creds, "alice:secret\nbob:hunter2\n").unwrap();
    let relay = Proc::start(
        huddle()
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .arg("--credentials")
            .arg(&creds),
    );
    let uri = relay.line_where(|l| l.contains("listening on"));
    let uri = uri.rsplit(" as ").next().unwrap().to_owned();
    let metrics = relay.line_where(|l| l.contains("metrics on"));
    let metrics = metrics
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches("/metrics")
        .to_owned();
    (relay, uri, metrics)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

#[test]
fn relay_carries_a_chat_between_two_processes_and_shuts_down_on_sigterm() {
    let dir = scratch("relay-chat");
    let (relay, uri, metrics) = start_relay(&dir);
    let mut alice = Proc::start(huddle().args([
        "chat",
        "--relay",
        &uri,
        "--user",
        "alice",
        "--password",
        "secret",
        "--name",
        "alice",
    ]));
    let offer = alice.line_where(|l| l.starts_with('['));
    let mut bob = Proc::start(huddle().args([
        "chat",
        "--offer",
        &offer,
        "--relay",
        &uri,
        "--user",
        "bob",
        "--password",
        "hunter2",
        "--name",
        "bob",
    ]));
    let answer = bob.line_where(|l| l.starts_with('['));
    assert!(
        answer.contains(&uri[..uri.len() - 4]),
        "bob's path starts at the relay: {answer}"
    );
    alice.send(&answer);
    alice.send("hello from alice");
    bob.send("hello from bob");
    alice.line_where(|l| l == "< bob: hello from bob");
    bob.line_where(|l| l == "< alice: hello from alice");

    let (status, text) = http(&metrics, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(metric(&text, "huddle_relay_sessions_created_total"), 2);
    assert!(metric(&text, "huddle_relay_sends_forwarded_total") >= 2);

    alice.close_stdin();
    bob.close_stdin();
    assert!(alice.wait().success());
    assert!(bob.wait().success());
    relay.terminate();
    relay.line_where(|l| l.contains("shutting down"));
    assert!(relay.wait().success());
}

#[test]
fn relay_refuses_a_wrong_password() {
    let dir = scratch("relay-auth");
    let (relay, uri, _) = start_relay(&dir);
    let chat = Proc::start(huddle().args([
        "chat",
        "--relay",
        &uri,
        "--user",
        "alice",
        "--password",
        "wrong",
        "--timeout",
        "5",
    ]));
    let status = chat.wait();
    assert_eq!(status.code(), Some(1), "a refused AUTH is an error exit");
    relay.terminate();
    assert!(relay.wait().success());
}

#[test]
fn relay_reads_a_toml_config() {
    let dir = scratch("relay-toml");
    std::fs::write(dir.join("users.txt"), "alice:secret\n").unwrap();
    let cfg = dir.join("relay.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ncredentials = {:?}\nmin_expires = 30\nmax_expires = 600\n",
            dir.join("users.txt")
        ),
    )
    .unwrap();
    let relay = Proc::start(huddle().arg("relay").arg("--config").arg(&cfg));
    relay.line_where(|l| l.contains("listening on"));
    relay.terminate();
    assert!(relay.wait().success());

    // A bad setting is a usage error, not a crash.
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\nmin_expires = 900\nmax_expires = 60\n",
    )
    .unwrap();
    let out = huddle()
        .arg("relay")
        .arg("--config")
        .arg(&cfg)
        .arg("--credentials")
        .arg(dir.join("users.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("min-expires"));
}

#[test]
fn rooms_server_answers_over_http_and_stops_on_sigterm() {
    let dir = scratch("rooms");
    let server = Proc::start(
        huddle()
            .args(["rooms", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(dir.join("data")),
    );
    let line = server.line_where(|l| l.contains("listening on"));
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (status, body) = http(&addr, "POST", "/registration", Some("{}"));
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&addr, "GET", "/rooms/nosuchroom", None);
    assert_eq!(status, 404, "{body}");
    let (status, _) = http(&addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    server.terminate();
    assert!(server.wait().success());
    assert!(
        dir.join("data").read_dir().unwrap().next().is_some(),
        "the embedded store is on disk"
    );
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Runs receive-file (offerer) and send-file (answerer); returns their exit statuses.
fn transfer(src: &Path, out: &Path, sender_extra: &[&str]) -> (ExitStatus, ExitStatus, String) {
    let mut rx = Proc::start(huddle().arg("receive-file").arg("-o").arg(out));
    let offer = rx.line_where(|l| l.starts_with('['));
    let tx = Proc::start(
        huddle()
            .arg("send-file")
            .arg(src)
            .args(["--offer", &offer])
            .args(sender_extra),
    );
    let answer = tx.line_where(|l| l.starts_with('['));
    rx.send(&answer);
    let s = tx.wait();
    let r = rx.wait();
    (s, r, offer)
}

#[test]
fn file_transfer_between_two_processes_verifies_the_hash() {
    let dir = scratch("file");
    let src = dir.join("src.bin");
    let data = pseudo_random(1_500_000);
    std::fs::write(&src, &data).unwrap();
    let out = dir.join("out.bin");
    let (s, r, _) = transfer(&src, &out, &[]);
    assert!(s.success(), "sender {s:?}");
    assert!(r.success(), "receiver {r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    let dir = scratch("resume");
    let src = dir.join("src.bin");
    let data = pseudo_random(3_000_000);
    std::fs::write(&src, &data).unwrap();
    let out = dir.join("out.bin");
    // The sender's connection is cut after ~1 MB: the receiver keeps what it has.
    let (s, r, _) = transfer(&src, &out, &["--stop-after", "1000000"]);
    assert_eq!(s.code(), Some(4), "sender cut");
    assert_eq!(r.code(), Some(4), "receiver interrupted");
    let have = std::fs::metadata(&out).unwrap().len();
    assert!(have > 0 && have < data.len() as u64, "partial file: {have}");
    assert_eq!(std::fs::read(&out).unwrap()[..], data[..have as usize]);
    // Again: the receiver asks for the rest (RFC 5547 a=file-range), the hash checks out.
    let (s, r, offer) = transfer(&src, &out, &[]);
    assert!(
        offer.contains(&format!("a=file-range:{}-*", have + 1)),
        "{offer}"
    );
    assert!(s.success() && r.success(), "{s:?} {r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn a_corrupt_partial_file_fails_the_hash_check() {
    let dir = scratch("corrupt");
    let src = dir.join("src.bin");
    let data = pseudo_random(200_000);
    std::fs::write(&src, &data).unwrap();
    let out = dir.join("out.bin");
    // A "partial" file whose bytes are not the source's: resuming keeps them, so the
    // SHA-1 of the result cannot match and the receiver says so (exit 3).
    std::fs::write(&out, vec![0u8; 1000]).unwrap();
    let (s, r, _) = transfer(&src, &out, &[]);
    assert!(s.success(), "{s:?}");
    assert_eq!(r.code(), Some(3));
}

#[test]
fn msrp_decode_and_jingle_parse_print_the_vectors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = huddle()
        .args(["msrp", "decode"])
        .arg(root.join("crates/huddle-msrp/tests/vectors/rfc4975/001-s4-send.msrp"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(line["method"], "SEND");
    assert_eq!(line["body_len"], 23);

    let bad = huddle()
        .args(["msrp", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"MSRP x SEND\r\nnot a header\r\n-------x$\r\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("\"error\""));

    let base = root.join(
        "crates/huddle-jingle/tests/vectors/xep-0166/001-initiator-sends-session-initiate-stub",
    );
    let out = huddle()
        .args(["jingle", "parse"])
        .arg(base.with_extension("xml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["jingle"]["action"], "session-initiate");
    let bad = huddle()
        .args(["jingle", "parse"])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let out = huddle().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = huddle().args(["relay", "--help"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--metrics-listen"));
}

#[test]
fn the_demo_passes() {
    let out = huddle().args(["demo", "--quiet"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("[FAIL]"), "{stdout}");
    for step in [
        "chat",
        "file",
        "relay metrics",
        "custom session",
        "carrier",
        "room metrics",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("[ ok ]") && l.contains(step)),
            "step {step} missing:\n{stdout}"
        );
    }
}
