//! Suite `jingle-oracle`: the 53 scenarios jingle.js (jingle@3.0.3 + jingle-session@2.0.3)
//! was recorded in (`shared/conformance/jingle/oracle/`), run against huddle's Jingle
//! session manager by `crates/huddle-session/tests/oracle.rs`. Each scenario matches,
//! differs by design (a named difference where XEP-0166 or RFC 6120 says otherwise, see
//! docs/jingle.md), or fails.

use std::process::Stdio;

use super::{Ctx, SuiteResult};
use crate::util::cargo;

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("jingle-oracle");
    let recording = ctx
        .shared
        .join("conformance/jingle/oracle/oracle-jinglejs.json");
    if !recording.is_file() {
        return r.could_not_run(format!("no oracle recording at {}", recording.display()));
    }
    let out = match cargo()
        .current_dir(&ctx.root)
        .args([
            "test",
            "-q",
            "-p",
            "huddle-session",
            "--test",
            "oracle",
            "--",
            "--nocapture",
        ])
        .env("HUDDLE_ORACLE_REPORT", "1")
        .env("HUDDLE_SHARED", &ctx.shared)
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(o) => o,
        Err(e) => return r.could_not_run(format!("cannot run cargo test: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut matched, mut differs) = (0, 0);
    let mut per_scenario = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ORACLE ") {
            let (name, status) = rest.split_once(' ').unwrap_or((rest, ""));
            if status == "match" {
                matched += 1;
                r.case(name, Ok(()));
            } else if let Some(ids) = status.strip_prefix("differs-by-design ") {
                differs += 1;
                per_scenario.push(format!("differs by design: {name} ({ids})"));
                r.case(name, Ok(()));
            } else {
                r.case(name, Err(status.to_owned()));
            }
        } else if let Some(diff) = line.strip_prefix("ORACLE-DIFF ") {
            r.note(format!("  difference {diff}"));
        }
    }
    r.notes.insert(
        0,
        format!(
            "jingle.js oracle: {matched} match, {differs} differ by design, {} fail",
            r.failed
        ),
    );
    r.notes.extend(per_scenario);
    if r.cases == 0 || !out.status.success() {
        r.case(
            "cargo test --test oracle",
            Err(format!(
                "exited with {} ({} scenarios reported)",
                out.status, r.cases
            )),
        );
    }
    r
}
