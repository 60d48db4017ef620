//! `huddle demo`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

/// `huddle demo` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {}

pub(crate) async fn run(_args: DemoArgs) -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
