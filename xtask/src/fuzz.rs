//! `cargo xtask fuzz [--smoke] [TARGET] [--seconds N]`: libFuzzer through cargo-fuzz.
//!
//! Installs cargo-fuzz when it is missing (`cargo install cargo-fuzz --locked`) and runs
//! it with `RUSTC_BOOTSTRAP=1` (cargo-fuzz needs nightly flags; the stable toolchain is
//! all we have). Every target is built once, then each runs for its time with an RSS
//! and a per-allocation limit so unbounded allocation is a crash, not a slow test.
//! `--smoke` runs every target in `fuzz/fuzz_targets/` for at least 30 seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cargo, have_cargo_subcommand, run};

/// The shortest run of one target under `--smoke`.
pub(crate) const SMOKE_SECONDS: u64 = 30;

/// Seed directories (the vector files) for targets that read MSRP byte streams.
const MSRP_SEEDS: &str = "crates/huddle-msrp/tests/vectors";

/// The fuzz targets: every `fuzz/fuzz_targets/*.rs`, sorted.
pub(crate) fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz/fuzz_targets");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs")
            && let Some(stem) = p.file_stem()
        {
            out.push(stem.to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

fn cargo_fuzz(root: &Path) -> Command {
    let mut c = cargo();
    c.current_dir(root).env("RUSTC_BOOTSTRAP", "1").arg("fuzz");
    c
}

/// Makes sure `cargo fuzz` is there.
fn ensure_cargo_fuzz() -> Result<()> {
    if have_cargo_subcommand("fuzz") {
        return Ok(());
    }
    println!("cargo-fuzz is missing: cargo install cargo-fuzz --locked");
    run(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

/// Every directory under `dir` (itself included) that holds files.
fn seed_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut has_files = false;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            seed_dirs(&p, out);
        } else {
            has_files = true;
        }
    }
    if has_files {
        out.push(dir.to_path_buf());
    }
}

/// Runs `target` (or every target when `None`) for `seconds` each.
pub(crate) fn run_fuzz(root: &Path, target: Option<&str>, seconds: u64) -> Result<()> {
    let all = targets(root)?;
    if all.is_empty() {
        bail!("no fuzz targets in fuzz/fuzz_targets/");
    }
    let chosen: Vec<String> = match target {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("unknown fuzz target {t:?}; targets: {}", all.join(", ")),
        None => all,
    };
    ensure_cargo_fuzz()?;
    // Build every target once (release with debug assertions, AddressSanitizer).
    run(cargo_fuzz(root).args(["build", "--debug-assertions"]))?;
    let mut failed = Vec::new();
    for t in &chosen {
        println!("--- fuzz {t}: {seconds} s");
        // The corpus directory cargo-fuzz keeps; seeds are read, never written.
        let corpus = root.join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        let mut cmd = cargo_fuzz(root);
        cmd.args(["run", "--debug-assertions", t]).arg(&corpus);
        if t.starts_with("msrp_") && t != "msrp_uri" {
            let mut seeds = Vec::new();
            seed_dirs(&root.join(MSRP_SEEDS), &mut seeds);
            cmd.args(seeds);
        }
        cmd.args([
            "--",
            &format!("-max_total_time={seconds}"),
            "-rss_limit_mb=2048",
            "-malloc_limit_mb=512",
            "-print_final_stats=1",
        ]);
        if let Err(e) = run(&mut cmd) {
            eprintln!("fuzz target {t} failed: {e:#}");
            failed.push(t.clone());
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz targets failed: {} (crash inputs are in fuzz/artifacts/)",
            failed.join(", ")
        );
    }
    println!(
        "fuzz: {} target(s) ran {seconds} s each without a crash: {}",
        chosen.len(),
        chosen.join(", ")
    );
    Ok(())
}
