//! Small helpers shared by the xtask commands: running programs, finding tools, CI mode.

// Without the `crates` feature (codegen-only builds) the suites that use some of these
// helpers are compiled out.
#![cfg_attr(not(feature = "crates"), allow(dead_code))]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `true` when running under CI (`CI=true` or `CI=1`): what cannot run is then a failure.
pub(crate) fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `cargo` command (the one that runs xtask, when known).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Whether `program` is on `PATH` (and runs with `--version`).
pub(crate) fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a cargo subcommand (`cargo NAME --version`) is installed.
pub(crate) fn have_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd`, inheriting stdio; fails with the command line when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// The command line of `cmd`, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut parts = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            parts.push(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// The shared conformance material: `$HUDDLE_SHARED`, else `../shared` beside the workspace.
pub(crate) fn shared_dir(root: &Path) -> PathBuf {
    match std::env::var_os("HUDDLE_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => root.parent().unwrap_or(root).join("shared"),
    }
}

/// Whether this process runs as root (so `apt-get install` can work).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages with apt-get (root only), non-interactively.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!("installing {} needs root (apt-get)", packages.join(" "));
    }
    // wireshark-common asks whether non-root users may capture; answer "no" up front.
    let mut sel = Command::new("debconf-set-selections");
    sel.stdin(std::process::Stdio::piped());
    if let Ok(mut child) = sel.spawn() {
        if let Some(stdin) = child.stdin.as_mut() {
            use std::io::Write as _;
            let _ = stdin
                .write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n");
        }
        let _ = child.wait();
    }
    run(Command::new("apt-get").args(["update", "-q"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages))
}
