//! The Redis store: several server instances on one Redis share rooms, participants,
//! sessions and metrics. Key names follow loop-server's where it has them (`hawk.<id>`,
//! `userRooms.<owner>`, `roomparticipants.<token>`), under a configurable prefix.
//!
//! Metrics are folded with optimistic transactions (`WATCH` / `MULTI` / `EXEC`) on a
//! connection taken from a small pool, so two instances never lose each other's updates;
//! inside one instance, updates of one room are queued and folded in groups, one
//! transaction per group, so they neither conflict nor wait for each other's round trips.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::{Participant, RoomRecord, Store, StoreError};
use crate::metrics::{MetricsEvent, RoomMetrics};

/// Hawk sessions live this long without use (loop-server's `hawkSessionDuration`, 30 days).
const HAWK_SESSION_SECS: u64 = 30 * 24 * 3600;
const POOL_MAX: usize = 16;
const LOCK_SHARDS: usize = 64;
const WATCH_RETRIES: usize = 64;

/// Redis-backed store.
pub struct RedisStore {
    client: redis::Client,
    con: MultiplexedConnection,
    pool: Mutex<Vec<MultiplexedConnection>>,
    shards: Vec<tokio::sync::Mutex<()>>,
    pending: Mutex<HashMap<String, Vec<PendingEvent>>>,
    prefix: String,
}

type PendingEvent = (
    MetricsEvent,
    u64,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://127.0.0.1:6379/0`); every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url)?;
        let con = client.get_multiplexed_async_connection().await?;
        Ok(RedisStore {
            client,
            con,
            pool: Mutex::new(Vec::new()),
            shards: (0..LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            pending: Mutex::new(HashMap::new()),
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        k.push_str(&parts.join("."));
        k
    }

    fn con(&self) -> MultiplexedConnection {
        self.con.clone()
    }

    async fn take_dedicated(&self) -> Result<MultiplexedConnection, StoreError> {
        let pooled = self.pool.lock().expect("pool lock").pop();
        match pooled {
            Some(c) => Ok(c),
            None => Ok(self.client.get_multiplexed_async_connection().await?),
        }
    }

    fn give_back(&self, c: MultiplexedConnection) {
        let mut pool = self.pool.lock().expect("pool lock");
        if pool.len() < POOL_MAX {
            pool.push(c);
        }
    }

    /// Folds `events` into the room's metrics in one WATCH/MULTI/EXEC transaction,
    /// retried while another client changes the key in between.
    async fn fold_metrics(
        &self,
        token: &str,
        events: &[(&MetricsEvent, u64)],
    ) -> Result<(), StoreError> {
        let key = self.key(&["roommetrics", token]);
        let index = self.key(&["roommetrics"]);
        let mut con = self.take_dedicated().await?;
        for _ in 0..WATCH_RETRIES {
            let () = redis::cmd("WATCH").arg(&key).query_async(&mut con).await?;
            let cur: Option<String> = con.get(&key).await?;
            let mut m = decode::<RoomMetrics>(cur)?.unwrap_or_else(|| RoomMetrics::new(token));
            for (event, now_ms) in events {
                m.apply(event, *now_ms);
            }
            // EXEC answers nil when another client changed the key since WATCH.
            let done: Option<(String, u64)> = redis::pipe()
                .atomic()
                .set(&key, serde_json::to_string(&m)?)
                .sadd(&index, token)
                .query_async(&mut con)
                .await?;
            if done.is_some() {
                self.give_back(con);
                return Ok(());
            }
        }
        Err(StoreError::Contention(key))
    }

    fn shard(&self, token: &str) -> &tokio::sync::Mutex<()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut h);
        &self.shards[(h.finish() as usize) % LOCK_SHARDS]
    }
}

fn decode<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>, StoreError> {
    s.map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(Into::into)
}

#[async_trait]
impl Store for RedisStore {
    async fn set_hawk_session(&self, id_hmac: &str, key_hex: &str) -> Result<(), StoreError> {
        let () = self
            .con()
            .set_ex(self.key(&["hawk", id_hmac]), key_hex, HAWK_SESSION_SECS)
            .await?;
        Ok(())
    }

    async fn hawk_session(&self, id_hmac: &str) -> Result<Option<String>, StoreError> {
        Ok(self.con().get(self.key(&["hawk", id_hmac])).await?)
    }

    async fn remember_nonce(
        &self,
        id_hmac: &str,
        nonce: &str,
        _now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(&["hawknonce", id_hmac, nonce]))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1))
            .query_async(&mut self.con())
            .await?;
        Ok(set.is_some())
    }

    async fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        let () = redis::pipe()
            .atomic()
            .set(
                self.key(&["room", &room.room_token]),
                serde_json::to_string(room)?,
            )
            .ignore()
            .sadd(
                self.key(&["userRooms", &room.room_owner_hmac]),
                &room.room_token,
            )
            .ignore()
            .query_async(&mut self.con())
            .await?;
        Ok(())
    }

    async fn room(&self, token: &str) -> Result<Option<RoomRecord>, StoreError> {
        decode(self.con().get(self.key(&["room", token])).await?)
    }

    async fn delete_room(&self, token: &str) -> Result<bool, StoreError> {
        let Some(room) = self.room(token).await? else {
            return Ok(false);
        };
        let (deleted,): (u64,) = redis::pipe()
            .atomic()
            .del(self.key(&["room", token]))
            .del(self.key(&["roomparticipants", token]))
            .ignore()
            .del(self.key(&["roomaccess", token]))
            .ignore()
            .srem(self.key(&["userRooms", &room.room_owner_hmac]), token)
            .ignore()
            .query_async(&mut self.con())
            .await?;
        Ok(deleted > 0)
    }

    async fn owner_rooms(&self, owner_hmac: &str) -> Result<Vec<RoomRecord>, StoreError> {
        let mut con = self.con();
        let tokens: Vec<String> = con.smembers(self.key(&["userRooms", owner_hmac])).await?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = tokens.iter().map(|t| self.key(&["room", t])).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
        let mut rooms = Vec::new();
        for v in values {
            if let Some(r) = decode(v)? {
                rooms.push(r);
            }
        }
        Ok(rooms)
    }

    async fn put_participant(&self, token: &str, p: &Participant) -> Result<(), StoreError> {
        let () = self
            .con()
            .hset(
                self.key(&["roomparticipants", token]),
                &p.participant_hmac,
                serde_json::to_string(p)?,
            )
            .await?;
        Ok(())
    }

    async fn participants(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError> {
        let all: Vec<(String, String)> = self
            .con()
            .hgetall(self.key(&["roomparticipants", token]))
            .await?;
        let mut out = Vec::new();
        for (_, v) in all {
            let p: Participant = serde_json::from_str(&v)?;
            if p.expires_at_ms > now_ms {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn reap_expired(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError> {
        let key = self.key(&["roomparticipants", token]);
        let mut con = self.con();
        let all: Vec<(String, String)> = con.hgetall(&key).await?;
        let mut out = Vec::new();
        for (h, v) in all {
            let p: Participant = serde_json::from_str(&v)?;
            if p.expires_at_ms <= now_ms {
                // Only the instance whose HDEL removed it reports it.
                let removed: u64 = con.hdel(&key, &h).await?;
                if removed == 1 {
                    let _: u64 = con.hdel(self.key(&["roomaccess", token]), &h).await?;
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    async fn touch_participant(
        &self,
        token: &str,
        participant_hmac: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let key = self.key(&["roomparticipants", token]);
        let mut con = self.con();
        let cur: Option<String> = con.hget(&key, participant_hmac).await?;
        let Some(mut p) = decode::<Participant>(cur)? else {
            return Ok(false);
        };
        if p.expires_at_ms <= now_ms {
            return Ok(false);
        }
        p.expires_at_ms = expires_at_ms;
        let () = con
            .hset(&key, participant_hmac, serde_json::to_string(&p)?)
            .await?;
        let access = self.key(&["roomaccess", token]);
        if con.hexists(&access, participant_hmac).await? {
            let () = con.hset(&access, participant_hmac, expires_at_ms).await?;
        }
        Ok(true)
    }

    async fn remove_participant(
        &self,
        token: &str,
        participant_hmac: &str,
    ) -> Result<Option<Participant>, StoreError> {
        let key = self.key(&["roomparticipants", token]);
        let mut con = self.con();
        let (cur, _, _): (Option<String>, u64, u64) = redis::pipe()
            .atomic()
            .hget(&key, participant_hmac)
            .hdel(&key, participant_hmac)
            .hdel(self.key(&["roomaccess", token]), participant_hmac)
            .query_async(&mut con)
            .await?;
        decode(cur)
    }

    async fn set_access_token(
        &self,
        token: &str,
        token_hmac: &str,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        let () = self
            .con()
            .hset(self.key(&["roomaccess", token]), token_hmac, expires_at_ms)
            .await?;
        Ok(())
    }

    async fn access_token_valid(
        &self,
        token: &str,
        token_hmac: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let exp: Option<u64> = self
            .con()
            .hget(self.key(&["roomaccess", token]), token_hmac)
            .await?;
        Ok(exp.is_some_and(|e| e > now_ms))
    }

    async fn apply_metrics(
        &self,
        token: &str,
        event: &MetricsEvent,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        // Group commit per room: queue the event, then whoever holds the room's lock folds
        // every queued event of that room in one optimistic transaction.
        let (done, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .expect("pending lock")
            .entry(token.to_owned())
            .or_default()
            .push((event.clone(), now_ms, done));
        {
            let _serial = self.shard(token).lock().await;
            let batch = self
                .pending
                .lock()
                .expect("pending lock")
                .remove(token)
                .unwrap_or_default();
            if !batch.is_empty() {
                let events: Vec<(&MetricsEvent, u64)> =
                    batch.iter().map(|(e, t, _)| (e, *t)).collect();
                let result = self
                    .fold_metrics(token, &events)
                    .await
                    .map_err(|e| e.to_string());
                for (_, _, done) in batch {
                    let _ = done.send(result.clone());
                }
            }
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Contention(e)),
            Err(_) => Err(StoreError::Contention("metrics batch dropped".into())),
        }
    }

    async fn room_metrics(&self, token: &str) -> Result<Option<RoomMetrics>, StoreError> {
        decode(self.con().get(self.key(&["roommetrics", token])).await?)
    }

    async fn all_room_metrics(&self) -> Result<Vec<RoomMetrics>, StoreError> {
        let mut con = self.con();
        let tokens: Vec<String> = con.smembers(self.key(&["roommetrics"])).await?;
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = tokens
            .iter()
            .map(|t| self.key(&["roommetrics", t]))
            .collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
        let mut out = Vec::new();
        for v in values {
            if let Some(m) = decode(v)? {
                out.push(m);
            }
        }
        Ok(out)
    }
}
