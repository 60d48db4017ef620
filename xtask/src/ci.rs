//! `cargo xtask ci`: everything `.ci/run` checks, in order, stopping at the first failure.
//!
//! fmt, clippy (`-D warnings`, all targets), tests, rustdoc (`-Dwarnings`), codegen
//! freshness, layering, conformance, and a fuzz smoke run of every target. The bench crate
//! (`huddle-bench`) is left out of clippy, tests and docs so peer implementations are
//! never built in CI; `cargo xtask bench` builds it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::util::{cargo, run};

/// The bench crate, excluded from the CI build.
const BENCH_CRATE: &str = "huddle-bench";

type Step<'a> = (&'static str, String, Box<dyn Fn() -> Result<()> + 'a>);

/// Runs every step; fails with the first step that fails.
pub(crate) fn run_ci(root: &Path) -> Result<()> {
    let steps: Vec<Step<'_>> = vec![
        (
            "fmt",
            "cargo fmt --all -- --check".into(),
            Box::new(|| {
                run(cargo()
                    .current_dir(root)
                    .args(["fmt", "--all", "--", "--check"]))
            }),
        ),
        (
            "clippy",
            format!(
                "cargo clippy --workspace --exclude {BENCH_CRATE} --all-targets -- -D warnings"
            ),
            Box::new(|| {
                run(cargo().current_dir(root).args([
                    "clippy",
                    "--workspace",
                    "--exclude",
                    BENCH_CRATE,
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        (
            "test",
            format!("cargo test --workspace --exclude {BENCH_CRATE}"),
            Box::new(|| {
                run(cargo().current_dir(root).args([
                    "test",
                    "--workspace",
                    "--exclude",
                    BENCH_CRATE,
                ]))
            }),
        ),
        (
            "doc",
            format!(
                "RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --workspace --exclude {BENCH_CRATE}"
            ),
            Box::new(|| {
                run(cargo()
                    .current_dir(root)
                    .env("RUSTDOCFLAGS", "-Dwarnings")
                    .args(["doc", "--no-deps", "--workspace", "--exclude", BENCH_CRATE]))
            }),
        ),
        (
            "codegen",
            "cargo xtask codegen --check".into(),
            Box::new(|| {
                crate::codegen::run(root, true)?;
                println!("generated code is up to date");
                Ok(())
            }),
        ),
        (
            "layering",
            "cargo metadata: layer table in xtask/src/layering.rs".into(),
            Box::new(|| crate::layering::run(root)),
        ),
        (
            "conformance",
            "cargo xtask conformance".into(),
            Box::new(|| crate::conformance::run(root.to_path_buf(), &[])),
        ),
        (
            "fuzz",
            format!(
                "cargo xtask fuzz --smoke ({} s per target)",
                crate::fuzz::SMOKE_SECONDS
            ),
            Box::new(|| crate::fuzz::run_fuzz(root, None, crate::fuzz::SMOKE_SECONDS)),
        ),
        (
            "demo",
            "cargo run -p huddle -- demo".into(),
            Box::new(|| {
                run(cargo()
                    .current_dir(root)
                    .args(["run", "-p", "huddle", "--", "demo", "--quiet"]))
            }),
        ),
    ];

    let n = steps.len();
    let mut done: Vec<(&str, Duration)> = Vec::new();
    let started = Instant::now();
    for (i, (name, what, step)) in steps.iter().enumerate() {
        println!();
        println!("==> ci [{}/{n}] {name}: {what}", i + 1);
        let t = Instant::now();
        let outcome = step();
        let took = t.elapsed();
        if let Err(e) = outcome {
            println!();
            println!("==> ci step `{name}` FAILED after {:.0?}: {e:#}", took);
            summary(&done, started.elapsed());
            println!("ci: {} passed, 1 failed", done.len());
            bail!("ci failed at step `{name}`");
        }
        println!("==> ci step `{name}` ok ({:.1?})", took);
        done.push((name, took));
    }
    summary(&done, started.elapsed());
    println!("ci: {} passed, 0 failed", done.len());
    Ok(())
}

fn summary(done: &[(&str, Duration)], total: Duration) {
    println!();
    println!("ci steps:");
    for (name, took) in done {
        println!("  {name:12} ok  {:>8.1?}", took);
    }
    println!("  {:12}     {:>8.1?}", "total", total);
}
