//! Suite `huddle-relay`: the same two-endpoint scenario as `kamailio-relay-client`
//! (AUTH, binding, SEND/200/REPORT both ways, a message in ≤ 4 KiB chunks, wrong
//! password, 423 at both bounds, refresh, 481), run against huddle's own relay
//! (`cargo run -p huddle-transport --example msrp-relay`, configured like
//! `shared/conformance/kamailio/msrp-relay.cfg`: any user with password `secret`,
//! Expires 60..3600). Equal case lists passing on both relays is the "equivalent
//! outcomes" check of RFC 4976 interop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use super::{Ctx, SuiteResult};

/// Kills the relay when the suite ends, however it ends.
struct RelayProcess(Child);

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let r = SuiteResult::new("huddle-relay");
    let dir = ctx.root.join("target/xtask/conformance");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return r.could_not_run(format!("cannot create {}: {e}", dir.display()));
    }
    let creds = dir.join("huddle-relay-credentials");
    if let Err(e) = std::fs::write(&creds, "*:secret\n") {
        return r.could_not_run(format!("cannot write {}: {e}", creds.display()));
    }
    let mut cmd = crate::util::cargo();
    cmd.current_dir(&ctx.root)
        .args([
            "run",
            "-q",
            "-p",
            "huddle-transport",
            "--example",
            "msrp-relay",
            "--",
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--realm",
            "127.0.0.1",
            "--credentials",
        ])
        .arg(&creds)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let line = crate::util::describe(&cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => RelayProcess(c),
        Err(e) => return r.could_not_run(format!("cannot start `{line}`: {e}")),
    };
    // The relay says where it listens once it does: "msrp-relay: listening on A as URI".
    let stderr = child.0.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let uri = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some((_, uri)) = l.split_once(" as ")
                    && l.contains("listening on")
                {
                    break uri.trim().to_owned();
                }
            }
            _ => return r.could_not_run(format!("`{line}` ended before listening")),
        }
    };
    // Keep draining the relay's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    let mut r = super::kamailio_relay_client::interop(ctx, r, &["--relay", &uri]);
    r.note(format!("huddle relay at {uri}"));
    drop(child);
    r
}
