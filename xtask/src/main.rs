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
mod codegen;

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
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn workspace_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    dir.parent().expect("xtask lives in the workspace").to_path_buf()
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
    }
    Ok(())
}
