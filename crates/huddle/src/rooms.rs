//! `huddle rooms serve`: the rooms server of huddle-room-metrics (the same set-up as its
//! `rooms-server` example), with the embedded store in a data directory by default or
//! a shared Redis with `--redis`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use huddle_room_metrics::hawk_auth::Secret;
use huddle_room_metrics::server::{
    self, AppState, DEV_HAWK_ID_SECRET, DEV_USER_MAC_SECRET, HawkPolicy, ServerConfig, SystemClock,
};
use huddle_room_metrics::store::{EmbeddedStore, RedisStore, Store};

#[derive(Debug, Subcommand)]
pub(crate) enum RoomsCommand {
    /// Serve the Loop rooms API with per-room metrics at /metrics.
    Serve(ServeArgs),
}

/// `huddle rooms serve` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Listening address.
    #[arg(long, env = "ROOMS_LISTEN", default_value = "127.0.0.1:5000")]
    pub(crate) listen: SocketAddr,
    /// Data directory of the embedded store (ignored with --redis).
    #[arg(long, env = "ROOMS_DATA", default_value = "rooms-data")]
    pub(crate) data: PathBuf,
    /// Redis URL: rooms servers sharing one Redis serve the same rooms.
    #[arg(long, env = "ROOMS_REDIS")]
    pub(crate) redis: Option<String>,
    /// Key prefix in Redis.
    #[arg(long, env = "ROOMS_REDIS_PREFIX", default_value = "")]
    pub(crate) redis_prefix: String,
    /// Hawk id secret (hex); the development secret when absent.
    #[arg(long, env = "LOOP_HAWK_ID_SECRET")]
    pub(crate) hawk_id_secret: Option<String>,
    /// User MAC secret (hex); the development secret when absent.
    #[arg(long, env = "LOOP_USER_MAC_SECRET")]
    pub(crate) user_mac_secret: Option<String>,
    /// Accept replayed nonces and wrong payload hashes, as loop-server does.
    #[arg(long)]
    pub(crate) hawk_compat: bool,
    /// Seconds a participant stays without a refresh.
    #[arg(long, default_value_t = 300)]
    pub(crate) participant_ttl: u64,
    /// Room URL template.
    #[arg(long, default_value = "http://localhost:3000/{token}")]
    pub(crate) web_app_url: String,
    /// The port Hawk MACs use when `Host` has none.
    #[arg(long, default_value_t = 80)]
    pub(crate) hawk_port: u16,
}

/// The server configuration for these flags.
pub(crate) fn config(args: &ServeArgs) -> Result<ServerConfig> {
    let mut config = ServerConfig::default();
    if args.hawk_compat {
        config.hawk_policy = HawkPolicy::loop_server_compatible();
    }
    config.participant_ttl = Duration::from_secs(args.participant_ttl);
    config.web_app_url = args.web_app_url.clone();
    config.hawk_default_port = args.hawk_port;
    config.hawk_id_secret =
        Secret::from_hex(args.hawk_id_secret.as_deref().unwrap_or(DEV_HAWK_ID_SECRET))
            .context("hawk id secret")?;
    config.user_mac_secret = Secret::from_hex(
        args.user_mac_secret
            .as_deref()
            .unwrap_or(DEV_USER_MAC_SECRET),
    )
    .context("user mac secret")?;
    Ok(config)
}

/// Opens the store the flags name.
pub(crate) async fn store(args: &ServeArgs) -> Result<Arc<dyn Store>> {
    Ok(match &args.redis {
        Some(url) => Arc::new(
            RedisStore::connect(url, &args.redis_prefix)
                .await
                .with_context(|| format!("connecting to redis {url}"))?,
        ),
        None => {
            std::fs::create_dir_all(&args.data)
                .with_context(|| format!("creating {}", args.data.display()))?;
            Arc::new(EmbeddedStore::open(&args.data).context("opening the embedded store")?)
        }
    })
}

pub(crate) async fn run(command: RoomsCommand) -> Result<ExitCode> {
    let RoomsCommand::Serve(args) = command;
    if args.hawk_id_secret.is_none() || args.user_mac_secret.is_none() {
        eprintln!(
            "rooms: using the development secrets; set LOOP_HAWK_ID_SECRET and LOOP_USER_MAC_SECRET for real use"
        );
    }
    let config = config(&args)?;
    let store = store(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    // Before "listening on": whoever reads that line may signal us at once.
    let shutdown = crate::shutdown_signal();
    println!(
        "rooms: listening on http://{} ({})",
        listener.local_addr()?,
        args.redis.as_deref().map_or_else(
            || format!("embedded store in {}", args.data.display()),
            |u| format!("redis {u}")
        )
    );
    let state = AppState::new(store, config, Arc::new(SystemClock));
    server::serve(listener, state, shutdown)
        .await
        .context("serving")?;
    println!("rooms: stopped");
    Ok(ExitCode::SUCCESS)
}
