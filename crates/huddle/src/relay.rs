//! `huddle relay`: huddle-transport's [`RelayServer`] as a process (the same set-up as
//! the `msrp-relay` example), configured by flags or a TOML file, with a Prometheus
//! endpoint exposing [`RelayMetrics`] and graceful shutdown on SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use clap::Args;
use huddle_msrp::MsrpUri;
use huddle_transport::relay::server::{
    CredentialStore, ListenerConfig, RelayHandle, RelayMetrics, RelayServer, ServerConfig,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `huddle relay` flags; each may also come from the `--config` TOML file (same names
/// with underscores); a flag wins over the file.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RelayArgs {
    /// TOML file with any of these settings.
    #[arg(long)]
    #[serde(skip)]
    pub(crate) config: Option<PathBuf>,
    /// Plain TCP (msrp://) listening address.
    #[arg(long)]
    pub(crate) listen: Option<SocketAddr>,
    /// TLS (msrps://) listening address; needs --cert and --key.
    #[arg(long)]
    pub(crate) tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    pub(crate) cert: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// File of `user:password` lines (`*:password` accepts any user name).
    #[arg(long)]
    pub(crate) credentials: Option<PathBuf>,
    /// The relay URI announced on the TCP listener (default: msrp://LISTEN;tcp).
    #[arg(long)]
    pub(crate) uri: Option<String>,
    /// The URI announced on the TLS listener (default: msrps://TLS-LISTEN;tcp).
    #[arg(long)]
    pub(crate) tls_uri: Option<String>,
    /// Digest realm (default: the host of the first listener).
    #[arg(long)]
    pub(crate) realm: Option<String>,
    /// Shortest Expires granted [default: 60].
    #[arg(long)]
    pub(crate) min_expires: Option<u32>,
    /// Longest Expires granted, also the default [default: 3600].
    #[arg(long)]
    pub(crate) max_expires: Option<u32>,
    /// Most connections at once [default: 10000].
    #[arg(long)]
    pub(crate) max_connections: Option<usize>,
    /// Most sessions (grants) at once [default: the relay's].
    #[arg(long)]
    pub(crate) max_sessions: Option<usize>,
    /// Largest piece of a chunk body held in memory; bigger chunks are streamed
    /// [default: 65536].
    #[arg(long)]
    pub(crate) max_body_in_memory: Option<usize>,
    /// Prometheus endpoint address (serves GET /metrics).
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
}

impl RelayArgs {
    /// Flags over the file's settings.
    fn merged(self) -> Result<RelayArgs> {
        let Some(path) = &self.config else {
            return Ok(self);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: RelayArgs =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        Ok(RelayArgs {
            config: self.config.clone(),
            listen: self.listen.or(file.listen),
            tls_listen: self.tls_listen.or(file.tls_listen),
            cert: self.cert.or(file.cert),
            key: self.key.or(file.key),
            credentials: self.credentials.or(file.credentials),
            uri: self.uri.or(file.uri),
            tls_uri: self.tls_uri.or(file.tls_uri),
            realm: self.realm.or(file.realm),
            min_expires: self.min_expires.or(file.min_expires),
            max_expires: self.max_expires.or(file.max_expires),
            max_connections: self.max_connections.or(file.max_connections),
            max_sessions: self.max_sessions.or(file.max_sessions),
            max_body_in_memory: self.max_body_in_memory.or(file.max_body_in_memory),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
        })
    }
}

fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
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

/// Builds the relay's configuration from (merged) settings.
pub(crate) fn server_config(args: &RelayArgs) -> Result<ServerConfig> {
    let mut listeners = Vec::new();
    if let Some(addr) = args.listen {
        let mut l = ListenerConfig::tcp(addr);
        if let Some(u) = &args.uri {
            l = l.with_uri(u.parse::<MsrpUri>().context("--uri")?);
        }
        listeners.push(l);
    }
    if let Some(addr) = args.tls_listen {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            bail!("--tls-listen needs --cert and --key");
        };
        let mut l = ListenerConfig::tls(addr, tls_config(cert, key)?);
        if let Some(u) = &args.tls_uri {
            l = l.with_uri(u.parse::<MsrpUri>().context("--tls-uri")?);
        }
        listeners.push(l);
    }
    if listeners.is_empty() {
        bail!("give --listen and/or --tls-listen (or set them in --config)");
    }
    let mut config = ServerConfig::new(listeners);
    config.relay.realm = args
        .realm
        .clone()
        .or_else(|| args.listen.or(args.tls_listen).map(|a| a.ip().to_string()))
        .unwrap_or_else(|| "huddle".to_owned());
    let min = args.min_expires.unwrap_or(60);
    let max = args.max_expires.unwrap_or(3600);
    if min > max {
        bail!("min-expires ({min}) is above max-expires ({max})");
    }
    config.relay.min_expires = min;
    config.relay.max_expires = max;
    config.relay.default_expires = max;
    config.relay.max_connections = args.max_connections.unwrap_or(10_000);
    if let Some(n) = args.max_sessions {
        config.relay.max_sessions = n;
    }
    config.limits.max_body_in_memory = args.max_body_in_memory.unwrap_or(64 * 1024);
    Ok(config)
}

/// The Prometheus text for one snapshot of the relay's counters.
pub(crate) fn prometheus_text(m: &RelayMetrics) -> String {
    let mut registry = Registry::with_prefix("huddle_relay");
    let gauges: [(&str, &str, u64); 2] = [
        (
            "connections_open",
            "Connections currently open",
            m.connections_open,
        ),
        (
            "sessions_active",
            "Sessions (Use-Path grants) currently valid",
            m.sessions_active,
        ),
    ];
    for (name, help, v) in gauges {
        let g: Gauge = Gauge::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        registry.register(name, help, g);
    }
    let counters: [(&str, &str, u64); 19] = [
        (
            "connections_accepted",
            "Connections accepted",
            m.connections_accepted,
        ),
        (
            "connections_refused",
            "Connections refused by the limit",
            m.connections_refused,
        ),
        (
            "connections_dropped",
            "Connections closed for misbehaviour",
            m.connections_dropped,
        ),
        ("sessions_created", "Sessions granted", m.sessions_created),
        (
            "sessions_expired",
            "Sessions whose Expires ran out",
            m.sessions_expired,
        ),
        ("auth_challenges", "401 challenges sent", m.auth_challenges),
        (
            "auth_failures",
            "AUTH requests with wrong, stale or replayed credentials",
            m.auth_failures,
        ),
        ("nonce_replays", "Nonce counts seen twice", m.nonce_replays),
        ("frames_in", "Frames received", m.frames_in),
        ("frames_out", "Frames sent", m.frames_out),
        ("bytes_in", "Bytes received", m.bytes_in),
        ("bytes_out", "Bytes sent", m.bytes_out),
        (
            "sends_forwarded",
            "SEND chunks forwarded",
            m.sends_forwarded,
        ),
        (
            "reports_forwarded",
            "REPORT requests forwarded",
            m.reports_forwarded,
        ),
        (
            "internal_hops",
            "Frames forwarded in memory",
            m.internal_hops,
        ),
        (
            "error_responses",
            "Non-2xx responses generated",
            m.error_responses,
        ),
        (
            "failure_reports",
            "Failure REPORTs generated",
            m.failure_reports,
        ),
        (
            "decode_errors",
            "Malformed frames received",
            m.decode_errors,
        ),
        (
            "transaction_failures",
            "Forwarded transactions that failed",
            m.transaction_failures,
        ),
    ];
    for (name, help, v) in counters {
        let c: Counter = Counter::default();
        c.inc_by(v);
        registry.register(name, help, c);
    }
    let aborted: Counter = Counter::default();
    aborted.inc_by(m.aborted_chunks);
    registry.register("aborted_chunks", "Large chunks cut mid-way", aborted);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

async fn metrics_handler(State(handle): State<RelayHandle>) -> (axum::http::StatusCode, String) {
    match handle.metrics().await {
        Some(m) => (axum::http::StatusCode::OK, prometheus_text(&m)),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the relay has stopped\n".into(),
        ),
    }
}

/// A relay with its metrics endpoint, running in this process.
#[derive(Debug)]
pub(crate) struct RunningRelay {
    pub(crate) server: RelayServer,
    pub(crate) metrics_addr: Option<SocketAddr>,
    metrics_stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningRelay {
    /// Starts the relay (and the metrics endpoint when asked for).
    pub(crate) async fn start(
        args: &RelayArgs,
        credentials: CredentialStore,
    ) -> Result<RunningRelay> {
        let config = server_config(args)?;
        let server = RelayServer::start(config, credentials)
            .await
            .context("starting the relay")?;
        let (metrics_addr, metrics_stop) = match args.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics endpoint {addr}"))?;
                let local = listener.local_addr()?;
                let app = Router::new()
                    .route("/metrics", get(metrics_handler))
                    .with_state(server.handle());
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                tokio::spawn(async move {
                    let r = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = rx.await;
                        })
                        .await;
                    if let Err(e) = r {
                        tracing::warn!("metrics endpoint: {e}");
                    }
                });
                (Some(local), Some(tx))
            }
            None => (None, None),
        };
        Ok(RunningRelay {
            server,
            metrics_addr,
            metrics_stop,
        })
    }

    /// Stops accepting, lets in-flight chunks finish (or fail with REPORTs), stops the
    /// metrics endpoint; returns the last counters.
    pub(crate) async fn shutdown(mut self) -> Option<RelayMetrics> {
        let last = self.server.metrics().await;
        if let Some(stop) = self.metrics_stop.take() {
            let _ = stop.send(());
        }
        self.server.shutdown().await;
        last
    }
}

pub(crate) async fn run(args: RelayArgs) -> Result<ExitCode> {
    let args = args.merged()?;
    let Some(cred_path) = &args.credentials else {
        bail!("give --credentials FILE (lines of user:password)");
    };
    let credentials = CredentialStore::from_file(cred_path)
        .with_context(|| format!("reading {}", cred_path.display()))?;
    if credentials.is_empty() {
        bail!("{}: no users", cred_path.display());
    }
    let relay = RunningRelay::start(&args, credentials).await?;
    // Before "listening on": whoever reads that line may signal us at once.
    let shutdown = crate::shutdown_signal();
    for (addr, uri) in relay.server.local_addrs().iter().zip(relay.server.uris()) {
        println!("relay: listening on {addr} as {uri}");
    }
    if let Some(m) = relay.metrics_addr {
        println!("relay: metrics on http://{m}/metrics");
    }
    tracing::info!("relay started");
    shutdown.await;
    println!("relay: shutting down");
    if let Some(m) = relay.shutdown().await {
        println!(
            "relay: served {} sessions, forwarded {} SENDs, {} bytes in",
            m.sessions_created, m.sends_forwarded, m.bytes_in
        );
    }
    Ok(ExitCode::SUCCESS)
}
