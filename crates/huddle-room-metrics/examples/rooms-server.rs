//! The rooms server as a process:
//!
//! ```text
//! cargo run --release -p huddle-room-metrics --example rooms-server -- \
//!     --listen 127.0.0.1:5000 [--data DIR | --redis redis://127.0.0.1:6379/0]
//! ```
//!
//! Flags (environment variable in brackets, local-use default after `=`):
//! - `--listen ADDR` [`ROOMS_LISTEN`] = `127.0.0.1:5000`
//! - `--data DIR` [`ROOMS_DATA`] = `./rooms-data` (embedded store; ignored with `--redis`)
//! - `--redis URL` [`ROOMS_REDIS`], `--redis-prefix P` [`ROOMS_REDIS_PREFIX`] = `""`
//! - `--hawk-id-secret HEX` [`LOOP_HAWK_ID_SECRET`], `--user-mac-secret HEX`
//!   [`LOOP_USER_MAC_SECRET`] = the documented development secrets (never in production)
//! - `--hawk-compat` [`ROOMS_HAWK_COMPAT=1`]: accept replayed nonces and wrong payload
//!   hashes, as loop-server does
//! - `--participant-ttl SECS` = 300, `--web-app-url URL` = `http://localhost:3000/{token}`,
//!   `--hawk-port PORT` = 80 (the port Hawk MACs use when `Host` has none)

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use huddle_room_metrics::hawk_auth::Secret;
use huddle_room_metrics::server::{
    self, AppState, DEV_HAWK_ID_SECRET, DEV_USER_MAC_SECRET, HawkPolicy, ServerConfig, SystemClock,
};
use huddle_room_metrics::store::{EmbeddedStore, RedisStore, Store};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let env = |k: &str| std::env::var(k).ok();
    let mut listen = env("ROOMS_LISTEN").unwrap_or_else(|| "127.0.0.1:5000".into());
    let mut data = env("ROOMS_DATA").unwrap_or_else(|| "rooms-data".into());
    let mut redis = env("ROOMS_REDIS");
    let mut prefix = env("ROOMS_REDIS_PREFIX").unwrap_or_default();
    let mut hawk_secret = env("LOOP_HAWK_ID_SECRET");
    let mut mac_secret = env("LOOP_USER_MAC_SECRET");
    let mut config = ServerConfig::default();
    if env("ROOMS_HAWK_COMPAT").as_deref() == Some("1") {
        config.hawk_policy = HawkPolicy::loop_server_compatible();
    }
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = value()?,
            "--data" => data = value()?,
            "--redis" => redis = Some(value()?),
            "--redis-prefix" => prefix = value()?,
            "--hawk-id-secret" => hawk_secret = Some(value()?),
            "--user-mac-secret" => mac_secret = Some(value()?),
            "--hawk-compat" => config.hawk_policy = HawkPolicy::loop_server_compatible(),
            "--participant-ttl" => {
                config.participant_ttl =
                    Duration::from_secs(value()?.parse().context("--participant-ttl")?)
            }
            "--web-app-url" => config.web_app_url = value()?,
            "--hawk-port" => config.hawk_default_port = value()?.parse().context("--hawk-port")?,
            "-h" | "--help" => {
                println!(
                    "rooms-server --listen ADDR [--data DIR | --redis URL] (see the example's docs)"
                );
                return Ok(());
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if hawk_secret.is_none() || mac_secret.is_none() {
        eprintln!(
            "rooms-server: using the development secrets; set LOOP_HAWK_ID_SECRET and LOOP_USER_MAC_SECRET for real use"
        );
    }
    config.hawk_id_secret = Secret::from_hex(hawk_secret.as_deref().unwrap_or(DEV_HAWK_ID_SECRET))
        .context("hawk id secret")?;
    config.user_mac_secret = Secret::from_hex(mac_secret.as_deref().unwrap_or(DEV_USER_MAC_SECRET))
        .context("user mac secret")?;

    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let store: Arc<dyn Store> = match &redis {
            Some(url) => Arc::new(RedisStore::connect(url, &prefix).await.context("redis")?),
            None => Arc::new(EmbeddedStore::open(data.as_ref()).context("embedded store")?),
        };
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("bind {listen}"))?;
        eprintln!(
            "rooms-server: listening on http://{} ({})",
            listener.local_addr()?,
            redis.as_deref().map_or_else(
                || format!("embedded store in {data}"),
                |u| format!("redis {u}")
            )
        );
        let state = AppState::new(store, config, Arc::new(SystemClock));
        server::serve(listener, state, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        Ok(())
    })
}
