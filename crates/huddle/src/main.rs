//! `huddle`: the command a person runs.
//!
//! - `huddle relay`: the RFC 4976 MSRP relay of huddle-transport, with a Prometheus
//!   metrics endpoint and graceful shutdown on SIGINT/SIGTERM.
//! - `huddle rooms serve`: the Loop rooms server of huddle-room-metrics (embedded store
//!   or Redis).
//! - `huddle chat`, `huddle send-file`, `huddle receive-file`: an MSRP endpoint, direct
//!   or through a relay, with a one-line offer/answer rendezvous (see [`endpoint`]).
//! - `huddle msrp decode`, `huddle jingle parse`: the wire decoders on a file.
//! - `huddle demo`: everything above on loopback, with checks.
//!
//! Exit codes: 0 success, 1 error (I/O, network, bad input), 2 usage (clap),
//! 3 a verification failed (hash mismatch, a demo check), 4 a transfer was interrupted
//! (the partial file is kept; run again to resume).

mod demo;
mod endpoint;
mod relay;
mod rooms;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code: a verification failed.
pub(crate) const EXIT_VERIFY: u8 = 3;
/// Exit code: a transfer was interrupted (resumable).
pub(crate) const EXIT_INTERRUPTED: u8 = 4;

#[derive(Debug, Parser)]
#[command(
    name = "huddle",
    version,
    about = "MSRP relay, rooms server, chat and file transfer, and an end-to-end demo"
)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an MSRP relay (RFC 4976).
    Relay(relay::RelayArgs),
    /// The rooms metrics server.
    Rooms {
        #[command(subcommand)]
        command: rooms::RoomsCommand,
    },
    /// Chat over MSRP: lines from stdin are sent, received messages printed.
    Chat(endpoint::ChatArgs),
    /// Send a file over MSRP (RFC 5547).
    SendFile(endpoint::SendFileArgs),
    /// Receive a file over MSRP (RFC 5547), verify its hash, resume a partial one.
    ReceiveFile(endpoint::ReceiveFileArgs),
    /// MSRP wire tools.
    Msrp {
        #[command(subcommand)]
        command: tools::MsrpCommand,
    },
    /// Jingle wire tools.
    Jingle {
        #[command(subcommand)]
        command: tools::JingleCommand,
    },
    /// Start a relay, a rooms server and peers on loopback, and check what they do.
    Demo(demo::DemoArgs),
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Msrp { command } => tools::run_msrp(command),
        Command::Jingle { command } => tools::run_jingle(command),
        command => match tokio::runtime::Runtime::new() {
            Ok(rt) => {
                let r = rt.block_on(async move {
                    match command {
                        Command::Relay(a) => relay::run(a).await,
                        Command::Rooms { command } => rooms::run(command).await,
                        Command::Chat(a) => endpoint::chat(a).await,
                        Command::SendFile(a) => endpoint::send_file(a).await,
                        Command::ReceiveFile(a) => endpoint::receive_file(a).await,
                        Command::Demo(a) => demo::run(a).await,
                        Command::Msrp { .. } | Command::Jingle { .. } => Ok(ExitCode::SUCCESS),
                    }
                });
                // Do not wait for the blocking stdin reader: it only ends when stdin does.
                rt.shutdown_background();
                r
            }
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("huddle: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves at
/// the first of them.
///
/// Call it before announcing readiness ("listening on ..."): a supervisor (or a test) may
/// send SIGTERM the moment it reads that line, and a signal that arrives before the
/// handler exists takes the default action (death by signal, not a clean stop).
#[cfg(unix)]
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn first(s: Option<Signal>) {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let term = signal(SignalKind::terminate()).ok();
    let int = signal(SignalKind::interrupt()).ok();
    async move {
        if term.is_none() && int.is_none() {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
        tokio::select! {
            _ = first(term) => {}
            _ = first(int) => {}
        }
    }
}

/// Returns a future that resolves at Ctrl-C.
#[cfg(not(unix))]
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
