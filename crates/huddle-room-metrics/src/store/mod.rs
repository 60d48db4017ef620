//! Storage behind one trait, with two backends: [`EmbeddedStore`] (memory + a redb file,
//! no set-up, survives restarts) and [`RedisStore`] (several server instances share rooms,
//! loop-server's own choice).
//!
//! Time is always passed in (`now_ms`, Unix milliseconds): stores never read a clock, so
//! expiry is testable without sleeping.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::metrics::{MetricsEvent, RoomMetrics};

mod embedded;
mod redis_store;

pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRecord {
    /// The room token (URL-safe base64 of random bytes).
    pub room_token: String,
    /// Deprecated plain room name.
    pub room_name: Option<String>,
    /// Encrypted context (`{value, alg, wrappedKey}`), kept verbatim.
    pub context: Option<serde_json::Value>,
    /// Owner's display name.
    pub room_owner: Option<String>,
    /// Owner's Hawk user (hawkIdHmac).
    pub room_owner_hmac: String,
    /// Maximum participants.
    pub max_size: u64,
    /// Lifetime in hours.
    pub expires_in: u64,
    /// Creation (Unix s).
    pub creation_time: u64,
    /// Last update (Unix s).
    pub update_time: u64,
    /// Expiry (Unix s).
    pub expires_at: u64,
    /// The media session id handed to joiners.
    pub session_id: String,
    /// The channel (loop-server's TokBox channel).
    pub channel: String,
}

/// A participant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// `roomConnectionId`.
    pub id: String,
    /// Display name given at join.
    pub display_name: String,
    /// The most participants the client can handle.
    pub client_max_size: u64,
    /// The Hawk user, when the participant joined with Hawk.
    pub user_mac: Option<String>,
    /// hawkIdHmac (Hawk) or the HMAC of the session token (Basic).
    pub participant_hmac: String,
    /// Join time (Unix ms).
    pub joined_at_ms: u64,
    /// Expiry (Unix ms); refreshed by `refresh`.
    pub expires_at_ms: u64,
}

/// Storage failures. Every one maps to loop-server's 503/201.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded database failed.
    #[error("embedded store: {0}")]
    Embedded(String),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Stored data did not decode.
    #[error("corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A bounded structure is full (too many nonces in the window, ...).
    #[error("store overloaded: {0}")]
    Overloaded(&'static str),
    /// An optimistic transaction kept conflicting.
    #[error("too much contention on {0}")]
    Contention(String),
}

/// Everything the rooms server keeps.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores a Hawk session: `hawkIdHmac -> key (hex)`.
    async fn set_hawk_session(&self, id_hmac: &str, key_hex: &str) -> Result<(), StoreError>;
    /// The Hawk key for `hawkIdHmac`.
    async fn hawk_session(&self, id_hmac: &str) -> Result<Option<String>, StoreError>;
    /// Records a nonce for `ttl_ms`; `false` if it was already recorded (a replay).
    async fn remember_nonce(
        &self,
        id_hmac: &str,
        nonce: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Creates or replaces a room (and indexes it under its owner).
    async fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError>;
    /// A room by token.
    async fn room(&self, token: &str) -> Result<Option<RoomRecord>, StoreError>;
    /// Deletes a room with its participants and access tokens; `false` if absent.
    /// Its metrics are kept.
    async fn delete_room(&self, token: &str) -> Result<bool, StoreError>;
    /// The rooms of an owner.
    async fn owner_rooms(&self, owner_hmac: &str) -> Result<Vec<RoomRecord>, StoreError>;

    /// Adds or replaces a participant (keyed by `participant_hmac`).
    async fn put_participant(&self, token: &str, p: &Participant) -> Result<(), StoreError>;
    /// Live participants (`expires_at_ms > now_ms`).
    async fn participants(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError>;
    /// Removes and returns participants whose participation expired at `now_ms`.
    async fn reap_expired(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError>;
    /// Extends a live participant (and its access token); `false` if absent or expired.
    async fn touch_participant(
        &self,
        token: &str,
        participant_hmac: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError>;
    /// Removes a participant and its access token; returns it if it was there.
    async fn remove_participant(
        &self,
        token: &str,
        participant_hmac: &str,
    ) -> Result<Option<Participant>, StoreError>;

    /// Stores the HMAC of a Basic session token for a room until `expires_at_ms`.
    async fn set_access_token(
        &self,
        token: &str,
        token_hmac: &str,
        expires_at_ms: u64,
    ) -> Result<(), StoreError>;
    /// Whether that access token is valid at `now_ms`.
    async fn access_token_valid(
        &self,
        token: &str,
        token_hmac: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Folds `event` into the room's metrics atomically (creating them on first use).
    async fn apply_metrics(
        &self,
        token: &str,
        event: &MetricsEvent,
        now_ms: u64,
    ) -> Result<(), StoreError>;
    /// One room's metrics.
    async fn room_metrics(&self, token: &str) -> Result<Option<RoomMetrics>, StoreError>;
    /// Every room's metrics.
    async fn all_room_metrics(&self) -> Result<Vec<RoomMetrics>, StoreError>;
}
