//! huddle's project automation (`cargo xtask ...`, aliased in `.cargo/config.toml`).
//!
//! Every command a developer or CI runs lives here, so `.ci/run` stays one line:
//! `cargo xtask ci`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

// RULE for this file: every module or subcommand that uses a huddle crate is gated with
// `#[cfg(feature = "crates")]`, so `cargo run -p xtask --no-default-features -- codegen`
// works even when generated code is stale or missing (see xtask/Cargo.toml).
mod bench;
#[cfg(feature = "crates")]
mod ci;
mod codegen;
#[cfg(feature = "crates")]
mod conformance;
mod fuzz;
#[cfg(feature = "crates")]
mod jingle;
mod layering;
#[cfg(feature = "crates")]
mod msrp;
#[cfg(feature = "crates")]
mod room_metrics;
mod util;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "huddle project automation")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate `crates/*/src/generated/*.rs` from `docs/spec/**/*.toml`.
    Codegen {
        /// Fail instead of writing when the checked-in output is stale.
        #[arg(long)]
        check: bool,
    },
    /// Everything `.ci/run` checks: fmt, clippy, tests, docs, codegen, layering,
    /// conformance, fuzz smoke run. Stops at the first failure.
    #[cfg(feature = "crates")]
    Ci,
    /// Run every conformance suite (or the named ones) and print one table.
    #[cfg(feature = "crates")]
    Conformance {
        /// Suites to run (all when none).
        suites: Vec<String>,
    },
    /// Check the layering rule (wire crates free of tokio and of higher layers).
    Layering,
    /// MSRP debugging aids.
    #[cfg(feature = "crates")]
    Msrp {
        #[command(subcommand)]
        cmd: MsrpCmd,
    },
    /// Jingle debugging aids and vector extraction.
    #[cfg(feature = "crates")]
    Jingle {
        #[command(subcommand)]
        cmd: JingleCmd,
    },
    /// Run the fuzz targets with cargo-fuzz (installed when missing).
    Fuzz {
        /// Run every target for at least 30 s (the CI smoke run).
        #[arg(long)]
        smoke: bool,
        /// One target (all when none).
        target: Option<String>,
        /// Seconds per target.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Run the side-by-side benchmarks of huddle-bench and print their ratio tables.
    Bench {
        /// One bench (all when none).
        name: Option<String>,
    },
}

#[cfg(feature = "crates")]
#[derive(Debug, Subcommand)]
enum MsrpCmd {
    /// Decode an MSRP byte stream (a file, or `-` for stdin): one JSON line per frame,
    /// a typed error line where the stream is bad. Exits 1 if there was an error.
    Decode {
        /// The file to read, `-` for stdin.
        file: String,
    },
}

#[cfg(feature = "crates")]
#[derive(Debug, Subcommand)]
enum JingleCmd {
    /// Parse one `<iq/>` or bare `<jingle/>` (a file, or `-` for stdin) and print the
    /// jingle.js/stanza-shaped JSON; with `--to-xml`, read that JSON and print huddle's
    /// XML. Prints a typed error and exits 1 on bad input.
    Parse {
        /// The file to read, `-` for stdin.
        file: String,
        /// Read JSON, write XML.
        #[arg(long)]
        to_xml: bool,
    },
    /// Re-extract the Jingle IQ examples of the XEP texts in `shared/specs` into
    /// `crates/huddle-jingle/tests/vectors/xep-*/` with their expected parse.
    ExtractVectors,
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.cmd {
        Cmd::Codegen { check } => {
            let stale = codegen::run(&root, check)?;
            if stale.is_empty() {
                println!("generated code is up to date");
            }
        }
        #[cfg(feature = "crates")]
        Cmd::Ci => ci::run_ci(&root)?,
        #[cfg(feature = "crates")]
        Cmd::Conformance { suites } => conformance::run(root, &suites)?,
        Cmd::Layering => layering::run(&root)?,
        #[cfg(feature = "crates")]
        Cmd::Msrp {
            cmd: MsrpCmd::Decode { file },
        } => {
            if !msrp::decode_command(&file)? {
                std::process::exit(1);
            }
        }
        #[cfg(feature = "crates")]
        Cmd::Jingle {
            cmd: JingleCmd::Parse { file, to_xml },
        } => {
            if !jingle::parse_command(&file, to_xml)? {
                std::process::exit(1);
            }
        }
        #[cfg(feature = "crates")]
        Cmd::Jingle {
            cmd: JingleCmd::ExtractVectors,
        } => jingle::extract_vectors(&root)?,
        Cmd::Fuzz {
            smoke,
            target,
            seconds,
        } => {
            let seconds = match (smoke, seconds) {
                (_, Some(s)) if smoke && s < fuzz::SMOKE_SECONDS => {
                    anyhow::bail!(
                        "--smoke runs each target for at least {} s",
                        fuzz::SMOKE_SECONDS
                    )
                }
                (_, Some(s)) => s,
                (true, None) => fuzz::SMOKE_SECONDS,
                (false, None) => 300,
            };
            fuzz::run_fuzz(&root, target.as_deref(), seconds)?;
        }
        Cmd::Bench { name } => bench::run_bench(&root, name.as_deref())?,
    }
    Ok(())
}
