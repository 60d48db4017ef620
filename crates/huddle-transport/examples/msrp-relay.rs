//! An MSRP relay (RFC 4976) as a process: huddle's relay server behind a command line.
//!
//! ```text
//! cargo run --release -p huddle-transport --example msrp-relay -- \
//!     --listen 127.0.0.1:2855 --credentials users.txt
//! ```
//!
//! `users.txt` holds `user:password` lines (`*:password` accepts any user name). Add
//! `--tls-listen ADDR --cert cert.pem --key key.pem` for `msrps`. Ctrl-C shuts down
//! gracefully and prints the counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use huddle_msrp::MsrpUri;
use huddle_transport::relay::server::{CredentialStore, ListenerConfig, RelayServer, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, Parser)]
#[command(about = "An MSRP relay (RFC 4976)")]
struct Args {
    /// Plain TCP (msrp://) listening address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// TLS (msrps://) listening address; needs --cert and --key.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    key: Option<PathBuf>,
    /// File of `user:password` lines.
    #[arg(long)]
    credentials: PathBuf,
    /// The relay URI announced on the TCP listener (default: msrp://<listen>;tcp).
    #[arg(long)]
    uri: Option<MsrpUri>,
    /// The URI announced on the TLS listener (default: msrps://<tls-listen>;tcp).
    #[arg(long)]
    tls_uri: Option<MsrpUri>,
    /// Digest realm (default: the host of the first listener).
    #[arg(long)]
    realm: Option<String>,
    /// Shortest Expires granted.
    #[arg(long, default_value_t = 60)]
    min_expires: u32,
    /// Longest Expires granted (also the default).
    #[arg(long, default_value_t = 3600)]
    max_expires: u32,
    /// Most connections at once.
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// Largest piece of a chunk body held in memory (bigger chunks are streamed).
    #[arg(long, default_value_t = 64 * 1024)]
    max_body_in_memory: usize,
    /// Print the counters every N seconds (0: only at exit).
    #[arg(long, default_value_t = 0)]
    metrics_interval: u64,
}

fn tls_config(cert: &PathBuf, key: &PathBuf) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let certs = CertificateDer::pem_slice_iter(&certs)
        .collect::<Result<Vec<_>, _>>()
        .context("parsing the certificate PEM")?;
    let key = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key).context("parsing the key PEM")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let credentials = CredentialStore::from_file(&args.credentials)?;
    if credentials.is_empty() {
        anyhow::bail!("{}: no users", args.credentials.display());
    }
    let mut listeners = Vec::new();
    if let Some(addr) = args.listen {
        let mut l = ListenerConfig::tcp(addr);
        if let Some(u) = &args.uri {
            l = l.with_uri(u.clone());
        }
        listeners.push(l);
    }
    if let Some(addr) = args.tls_listen {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            anyhow::bail!("--tls-listen needs --cert and --key");
        };
        let mut l = ListenerConfig::tls(addr, tls_config(cert, key)?);
        if let Some(u) = &args.tls_uri {
            l = l.with_uri(u.clone());
        }
        listeners.push(l);
    }
    if listeners.is_empty() {
        anyhow::bail!("give --listen and/or --tls-listen");
    }
    let mut config = ServerConfig::new(listeners);
    config.relay.realm = args
        .realm
        .clone()
        .or_else(|| args.listen.or(args.tls_listen).map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "huddle".to_owned());
    config.relay.min_expires = args.min_expires;
    config.relay.max_expires = args.max_expires;
    config.relay.default_expires = args.max_expires;
    config.relay.max_connections = args.max_connections;
    config.limits.max_body_in_memory = args.max_body_in_memory;
    let relay = RelayServer::start(config, credentials).await?;
    for (addr, uri) in relay.local_addrs().iter().zip(relay.uris()) {
        eprintln!("msrp-relay: listening on {addr} as {uri}");
    }
    let handle = relay.handle();
    if args.metrics_interval > 0 {
        let h = handle.clone();
        let every = Duration::from_secs(args.metrics_interval);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                match h.metrics().await {
                    Some(m) => eprintln!("msrp-relay: {m:?}"),
                    None => return,
                }
            }
        });
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("msrp-relay: shutting down");
    let last = handle.metrics().await;
    relay.shutdown().await;
    if let Some(m) = last {
        eprintln!("msrp-relay: {m:?}");
    }
    Ok(())
}
