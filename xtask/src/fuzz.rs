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

/// The fuzz targets: the `[[bin]]`s of `fuzz/Cargo.toml`, sorted. Every bin must have its
/// file and every `fuzz/fuzz_targets/*.rs` its bin, so a target is never silently left out.
pub(crate) fn targets(root: &Path) -> Result<Vec<String>> {
    let manifest = root.join("fuzz/Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let doc: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let mut bins = Vec::new();
    for bin in doc
        .get("bin")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = bin
            .get("name")
            .and_then(toml::Value::as_str)
            .context("a [[bin]] without a name")?;
        let path = bin
            .get("path")
            .and_then(toml::Value::as_str)
            .unwrap_or_default();
        if !root.join("fuzz").join(path).is_file() {
            bail!("fuzz target {name}: {path:?} does not exist (fuzz/Cargo.toml lists it)");
        }
        bins.push(name.to_owned());
    }
    let dir = root.join("fuzz/fuzz_targets");
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs")
            && let Some(stem) = p.file_stem()
            && !bins.iter().any(|b| b.as_str() == stem)
        {
            bail!("{} has no [[bin]] entry in fuzz/Cargo.toml", p.display());
        }
    }
    bins.sort();
    Ok(bins)
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

#[cfg(test)]
mod tests {
    /// Every fuzz target file has its `[[bin]]` and every bin its file.
    #[test]
    fn fuzz_targets_and_bins_agree() {
        let targets = super::targets(&crate::workspace_root()).unwrap_or_else(|e| panic!("{e:#}"));
        for t in ["msrp_decode", "msrp_split", "msrp_roundtrip"] {
            assert!(
                targets.iter().any(|x| x == t),
                "{t} missing from {targets:?}"
            );
        }
    }
}
