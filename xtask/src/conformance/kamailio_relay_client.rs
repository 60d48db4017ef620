//! Suite `kamailio-relay-client`: huddle's relay client and connectors against a real
//! Kamailio 5.6 MSRP relay (`shared/conformance/kamailio/msrp-relay.cfg`). Runs
//! `cargo run -p huddle-transport --example kamailio-interop`, which installs Kamailio
//! when missing (root), starts it on a free port, runs the two-endpoint scenario (AUTH,
//! binding, SEND/200/REPORT, a message in ≤ 4 KiB chunks, wrong password, 423 bounds,
//! refresh, 481) and stops it by pid; each `ok NAME` / `FAIL NAME: why` line it prints is
//! one case here.

use std::process::Stdio;

use super::{Ctx, SuiteResult};

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    interop(ctx, SuiteResult::new("kamailio-relay-client"), &[])
}

/// Runs the interop example (against Kamailio, or the relay named by `extra` =
/// `["--relay", URI]`) and turns its lines into cases of `r`.
pub(super) fn interop(ctx: &Ctx, mut r: SuiteResult, extra: &[&str]) -> SuiteResult {
    let mut cmd = crate::util::cargo();
    cmd.current_dir(&ctx.root)
        .args([
            "run",
            "-q",
            "-p",
            "huddle-transport",
            "--example",
            "kamailio-interop",
        ])
        .args(if extra.is_empty() {
            &[][..]
        } else {
            &["--"][..]
        })
        .args(extra)
        .env("HUDDLE_SHARED", &ctx.shared)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let line = crate::util::describe(&cmd);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return r.could_not_run(format!("cannot start `{line}`: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    for l in stdout.lines() {
        if let Some(why) = l.strip_prefix("NOT RUN: ") {
            return r.could_not_run(format!("the relay could not be used: {why}"));
        } else if let Some(name) = l.strip_prefix("ok ") {
            r.case(name, Ok(()));
        } else if let Some(rest) = l.strip_prefix("FAIL ") {
            let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
            r.case(name, Err(why.to_owned()));
        } else if !l.is_empty() {
            r.note(l);
        }
    }
    if !out.status.success() && r.failed == 0 {
        // It failed before reporting any case (a build error, a crash).
        r.case(
            "kamailio-interop example",
            Err(format!("`{line}` exited with {}", out.status)),
        );
    }
    r
}
