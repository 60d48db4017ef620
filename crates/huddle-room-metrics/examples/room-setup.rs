//! Prepares a room for load tests against a running rooms server: registers an owner,
//! creates a room, joins it anonymously, and prints shell assignments for the room path and
//! the guest's Basic `Authorization` value.
//!
//! ```text
//! eval "$(cargo run --release -p huddle-room-metrics --example room-setup -- http://127.0.0.1:5000)"
//! AUTH="$AUTH" wrk -t2 -c64 -d10s --latency -s crates/huddle-room-metrics/bench/status.lua "http://127.0.0.1:5000$ROOM_PATH"
//! ```

use anyhow::{Context, Result};
use base64::Engine;
use huddle_room_metrics::reporter::{ClientAuth, RoomClient};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:5000".into());
    let anon = RoomClient::new(&base, ClientAuth::None)?;
    let owner = RoomClient::new(&base, ClientAuth::Hawk(anon.register().await?))?;
    let a = RoomClient::expect(
        owner
            .send(
                "POST",
                "/rooms",
                Some(&json!({"roomName": "load", "roomOwner": "bench", "maxSize": 5})),
            )
            .await?,
    )?;
    let v: Value = serde_json::from_slice(&a.body)?;
    let room = v["roomToken"].as_str().context("roomToken")?.to_owned();
    let joined = anon.join(&room, "load", 5).await?;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", joined.session_token))
    );
    println!("ROOM_PATH='/rooms/{room}'");
    println!("AUTH='{auth}'");
    Ok(())
}
