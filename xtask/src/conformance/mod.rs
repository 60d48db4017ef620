//! `cargo xtask conformance [SUITE...]`: every vector suite and every real-peer check,
//! summed up in one table (suite | cases | passed | failed | status).
//!
//! A suite is a function `fn(&Ctx) -> SuiteResult`; adding one is one line in [`SUITES`].
//! A suite that could not run (a missing tool, missing material) says why in its notes;
//! under CI (`CI=true`) that is a failure, never a silent skip.

use std::path::PathBuf;

use anyhow::{Result, bail};

mod huddle_relay;
mod jingle_oracle;
mod kamailio;
mod kamailio_relay_client;
mod msrp_vectors;
pub(crate) mod pcap;
mod relay_comparison;
mod tshark;

/// What every suite gets: where the workspace and the shared material are.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The workspace root.
    pub(crate) root: PathBuf,
    /// The shared conformance material (`$HUDDLE_SHARED` or `../shared`).
    pub(crate) shared: PathBuf,
    /// Running under CI: suites may install what they miss (apt-get as root).
    pub(crate) ci: bool,
}

/// The outcome of one suite.
#[derive(Debug)]
pub(crate) struct SuiteResult {
    /// The suite's name, as in the table.
    pub(crate) name: &'static str,
    /// Cases checked.
    pub(crate) cases: usize,
    /// Cases that passed.
    pub(crate) passed: usize,
    /// Cases that failed.
    pub(crate) failed: usize,
    /// Why the suite could not run, if it could not.
    pub(crate) not_run: Option<String>,
    /// Details: one line per failed case, and anything worth knowing.
    pub(crate) notes: Vec<String>,
}

impl SuiteResult {
    /// An empty result for `name`.
    pub(crate) fn new(name: &'static str) -> Self {
        SuiteResult {
            name,
            cases: 0,
            passed: 0,
            failed: 0,
            not_run: None,
            notes: Vec::new(),
        }
    }

    /// Records one case: `Ok(())` passes, `Err(why)` fails with a note naming `case`.
    pub(crate) fn case(&mut self, case: impl std::fmt::Display, outcome: Result<(), String>) {
        self.cases += 1;
        match outcome {
            Ok(()) => self.passed += 1,
            Err(why) => {
                self.failed += 1;
                self.notes.push(format!("FAIL {case}: {why}"));
            }
        }
    }

    /// Marks the suite as not run, with the reason.
    pub(crate) fn could_not_run(mut self, why: impl Into<String>) -> Self {
        self.not_run = Some(why.into());
        self
    }

    /// Adds an informational note.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    fn status(&self, ci: bool) -> (&'static str, bool) {
        match (&self.not_run, self.failed, self.cases) {
            (Some(_), _, _) if ci => ("NOT RUN", false),
            (Some(_), _, _) => ("NOT RUN", true),
            (None, 0, 0) => ("EMPTY", false),
            (None, 0, _) => ("ok", true),
            (None, _, _) => ("FAILED", false),
        }
    }
}

/// A conformance suite.
pub(crate) type Suite = fn(&Ctx) -> SuiteResult;

/// Every suite, in the order they run. Add a suite with one line here.
pub(crate) const SUITES: &[(&str, Suite)] = &[
    ("msrp-rfc-vectors", msrp_vectors::run),
    ("kamailio-transcript", kamailio::run),
    ("kamailio-relay-client", kamailio_relay_client::run),
    ("huddle-relay", huddle_relay::run),
    ("relay-comparison", relay_comparison::run),
    ("tshark-msrp", tshark::run),
    ("jingle-xep-vectors", crate::jingle::xep_vectors_suite),
    ("jingle-stanza-vectors", crate::jingle::stanza_vectors_suite),
    ("jingle-oracle", jingle_oracle::run),
    (
        "loop-client-sequences",
        crate::room_metrics::client_sequences_suite,
    ),
    (
        "loop-status-contract",
        crate::room_metrics::status_contract_suite,
    ),
    ("loop-hawk-vectors", crate::room_metrics::hawk_vectors_suite),
];

/// Runs the suites named in `only` (all when empty), prints the table, fails if any
/// suite failed (or, under CI, could not run).
pub(crate) fn run(root: PathBuf, only: &[String]) -> Result<()> {
    for name in only {
        if !SUITES.iter().any(|(n, _)| n == name) {
            let names: Vec<_> = SUITES.iter().map(|(n, _)| *n).collect();
            bail!("unknown suite {name:?}; suites: {}", names.join(", "));
        }
    }
    let ctx = Ctx {
        shared: crate::util::shared_dir(&root),
        root,
        ci: crate::util::is_ci(),
    };
    let mut results = Vec::new();
    for (name, suite) in SUITES {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        println!("--- conformance suite {name}");
        let mut r = suite(&ctx);
        r.name = name;
        debug_assert_eq!(r.cases, r.passed + r.failed);
        results.push(r);
    }
    print_table(&results, ctx.ci);
    let bad: Vec<_> = results
        .iter()
        .filter(|r| !r.status(ctx.ci).1)
        .map(|r| r.name)
        .collect();
    if !bad.is_empty() {
        bail!("conformance failed: {}", bad.join(", "));
    }
    Ok(())
}

fn print_table(results: &[SuiteResult], ci: bool) {
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!();
    for r in results {
        if !r.notes.is_empty() || r.not_run.is_some() {
            println!("{}:", r.name);
            if let Some(why) = &r.not_run {
                let consequence = if ci {
                    "a failure under CI"
                } else {
                    "not a failure outside CI"
                };
                println!("  NOT RUN ({consequence}): {why}");
            }
            const SHOWN: usize = 30;
            for n in r.notes.iter().take(SHOWN) {
                println!("  {n}");
            }
            if r.notes.len() > SHOWN {
                println!("  ... and {} more", r.notes.len() - SHOWN);
            }
        }
    }
    println!();
    println!(
        "| {:w$} | {:>5} | {:>6} | {:>6} | status  |",
        "suite", "cases", "passed", "failed"
    );
    println!(
        "|{}|-------|--------|--------|---------|",
        "-".repeat(w + 2)
    );
    let (mut passed, mut failed) = (0, 0);
    for r in results {
        let (status, _) = r.status(ci);
        println!(
            "| {:w$} | {:>5} | {:>6} | {:>6} | {status:7} |",
            r.name, r.cases, r.passed, r.failed
        );
        passed += r.passed;
        failed += r.failed;
    }
    println!();
    println!("conformance: {passed} passed, {failed} failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suite_that_could_not_run_fails_only_under_ci() {
        let r = SuiteResult::new("x").could_not_run("no tool");
        assert_eq!(r.status(true), ("NOT RUN", false));
        assert_eq!(r.status(false), ("NOT RUN", true));
    }

    #[test]
    fn an_empty_suite_fails_and_a_failed_case_fails_the_suite() {
        assert!(!SuiteResult::new("x").status(false).1);
        let mut r = SuiteResult::new("x");
        r.case("a", Ok(()));
        assert_eq!(r.status(true), ("ok", true));
        r.case("b", Err("bad".into()));
        assert_eq!((r.cases, r.passed, r.failed), (2, 1, 1));
        assert_eq!(r.status(false), ("FAILED", false));
        assert!(r.notes[0].contains("FAIL b: bad"));
    }

    #[test]
    fn suite_names_are_unique() {
        let mut names: Vec<_> = SUITES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SUITES.len());
    }
}
