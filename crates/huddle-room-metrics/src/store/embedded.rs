//! The embedded store: every record lives in memory (reads never touch the disk) and is
//! written through to one redb table by a writer thread that commits in groups, so a
//! flood of small writes costs one fsync per group, not per request. A write returns only
//! after its group is durable. Opening the store loads the file back: rooms, participants,
//! Hawk sessions and metrics survive a restart. Hawk nonces are kept in memory only (they
//! matter for the skew window, ±60 s).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, mpsc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::{Participant, RoomRecord, Store, StoreError};
use crate::metrics::{MetricsEvent, RoomMetrics};

const KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
/// Nonces remembered at once; beyond this (all inside their window) new ones are refused.
const MAX_NONCES: usize = 1 << 20;
/// Hawk sessions kept at most (a registration flood gets 503s beyond this).
const MAX_HAWK_SESSIONS: usize = 1 << 20;
/// Batches merged into one redb transaction at most.
const MAX_GROUP: usize = 4096;

enum Op {
    Put(String, Vec<u8>),
    Del(String),
}

struct Batch {
    ops: Vec<Op>,
    done: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct State {
    hawk: HashMap<String, String>,
    rooms: HashMap<String, RoomRecord>,
    owners: HashMap<String, BTreeSet<String>>,
    participants: HashMap<String, BTreeMap<String, Participant>>,
    access: HashMap<String, HashMap<String, u64>>,
    metrics: HashMap<String, RoomMetrics>,
    nonces: HashMap<String, u64>,
    nonce_purge_at: usize,
}

fn k_hawk(id: &str) -> String {
    format!("hawk\n{id}")
}
fn k_room(t: &str) -> String {
    format!("room\n{t}")
}
fn k_part(t: &str, h: &str) -> String {
    format!("part\n{t}\n{h}")
}
fn k_access(t: &str, h: &str) -> String {
    format!("access\n{t}\n{h}")
}
fn k_metrics(t: &str) -> String {
    format!("metrics\n{t}")
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("records serialize")
}

/// Memory + redb file store (the default backend).
pub struct EmbeddedStore {
    state: Mutex<State>,
    tx: Mutex<Option<mpsc::Sender<Batch>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

fn emb(e: impl std::fmt::Display) -> StoreError {
    StoreError::Embedded(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) `dir/rooms.redb` and loads it.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(emb)?;
        let db = Database::create(dir.join("rooms.redb")).map_err(emb)?;
        let mut state = State::default();
        {
            let w = db.begin_write().map_err(emb)?;
            w.open_table(KV).map_err(emb)?;
            w.commit().map_err(emb)?;
            let r = db.begin_read().map_err(emb)?;
            let table = r.open_table(KV).map_err(emb)?;
            for item in table.iter().map_err(emb)? {
                let (k, v) = item.map_err(emb)?;
                load(&mut state, k.value(), v.value())?;
            }
        }
        let (tx, rx) = mpsc::channel::<Batch>();
        let writer = std::thread::Builder::new()
            .name("rooms-redb-writer".into())
            .spawn(move || write_loop(db, rx))
            .map_err(emb)?;
        Ok(EmbeddedStore {
            state: Mutex::new(state),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Runs `f` on the state; the ops it pushes are committed before this returns.
    async fn mutate<R>(
        &self,
        f: impl FnOnce(&mut State, &mut Vec<Op>) -> R,
    ) -> Result<R, StoreError> {
        let (r, rx) = {
            let mut st = self.state.lock().expect("store lock");
            let mut ops = Vec::new();
            let r = f(&mut st, &mut ops);
            if ops.is_empty() {
                return Ok(r);
            }
            let (done, rx) = oneshot::channel();
            // Sent under the state lock: the writer sees ops in mutation order.
            let tx = self.tx.lock().expect("tx lock");
            tx.as_ref()
                .ok_or_else(|| emb("store closed"))?
                .send(Batch { ops, done })
                .map_err(|_| emb("writer thread gone"))?;
            (r, rx)
        };
        rx.await
            .map_err(|_| emb("writer thread gone"))?
            .map_err(emb)?;
        Ok(r)
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("store lock"))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer after its last group; joining it releases
        // the database file so the store can be opened again.
        self.tx.lock().map(|mut t| t.take()).ok();
        if let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

fn load(st: &mut State, key: &str, v: &[u8]) -> Result<(), StoreError> {
    let mut parts = key.split('\n');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("hawk"), Some(id), None) => {
            st.hawk.insert(id.into(), serde_json::from_slice(v)?);
        }
        (Some("room"), Some(t), None) => {
            let room: RoomRecord = serde_json::from_slice(v)?;
            st.owners
                .entry(room.room_owner_hmac.clone())
                .or_default()
                .insert(t.into());
            st.rooms.insert(t.into(), room);
        }
        (Some("part"), Some(t), Some(h)) => {
            st.participants
                .entry(t.into())
                .or_default()
                .insert(h.into(), serde_json::from_slice(v)?);
        }
        (Some("access"), Some(t), Some(h)) => {
            st.access
                .entry(t.into())
                .or_default()
                .insert(h.into(), serde_json::from_slice(v)?);
        }
        (Some("metrics"), Some(t), None) => {
            st.metrics.insert(t.into(), serde_json::from_slice(v)?);
        }
        _ => return Err(emb(format!("unknown key {key:?}"))),
    }
    Ok(())
}

fn write_loop(db: Database, rx: mpsc::Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let result = commit(&db, &group).map_err(|e| e.to_string());
        for b in group {
            let _ = b.done.send(result.clone());
        }
    }
}

fn commit(db: &Database, group: &[Batch]) -> Result<(), StoreError> {
    let w = db.begin_write().map_err(emb)?;
    {
        let mut t = w.open_table(KV).map_err(emb)?;
        for op in group.iter().flat_map(|b| &b.ops) {
            match op {
                Op::Put(k, v) => {
                    t.insert(k.as_str(), v.as_slice()).map_err(emb)?;
                }
                Op::Del(k) => {
                    t.remove(k.as_str()).map_err(emb)?;
                }
            }
        }
    }
    w.commit().map_err(emb)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn set_hawk_session(&self, id_hmac: &str, key_hex: &str) -> Result<(), StoreError> {
        self.mutate(|st, ops| {
            if st.hawk.len() >= MAX_HAWK_SESSIONS && !st.hawk.contains_key(id_hmac) {
                return Err(StoreError::Overloaded("hawk sessions"));
            }
            st.hawk.insert(id_hmac.into(), key_hex.into());
            ops.push(Op::Put(k_hawk(id_hmac), json(&key_hex)));
            Ok(())
        })
        .await?
    }

    async fn hawk_session(&self, id_hmac: &str) -> Result<Option<String>, StoreError> {
        Ok(self.read(|st| st.hawk.get(id_hmac).cloned()))
    }

    async fn remember_nonce(
        &self,
        id_hmac: &str,
        nonce: &str,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<bool, StoreError> {
        let mut st = self.state.lock().expect("store lock");
        if st.nonces.len() >= st.nonce_purge_at.max(1024) {
            st.nonces.retain(|_, exp| *exp > now_ms);
            st.nonce_purge_at = st.nonces.len() * 2;
            if st.nonces.len() >= MAX_NONCES {
                return Err(StoreError::Overloaded("hawk nonces"));
            }
        }
        let key = format!("{id_hmac}\n{nonce}");
        match st.nonces.get(&key) {
            Some(exp) if *exp > now_ms => Ok(false),
            _ => {
                st.nonces.insert(key, now_ms + ttl_ms);
                Ok(true)
            }
        }
    }

    async fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        self.mutate(|st, ops| {
            st.owners
                .entry(room.room_owner_hmac.clone())
                .or_default()
                .insert(room.room_token.clone());
            st.rooms.insert(room.room_token.clone(), room.clone());
            ops.push(Op::Put(k_room(&room.room_token), json(room)));
        })
        .await
    }

    async fn room(&self, token: &str) -> Result<Option<RoomRecord>, StoreError> {
        Ok(self.read(|st| st.rooms.get(token).cloned()))
    }

    async fn delete_room(&self, token: &str) -> Result<bool, StoreError> {
        self.mutate(|st, ops| {
            let Some(room) = st.rooms.remove(token) else {
                return false;
            };
            if let Some(set) = st.owners.get_mut(&room.room_owner_hmac) {
                set.remove(token);
            }
            ops.push(Op::Del(k_room(token)));
            for h in st.participants.remove(token).unwrap_or_default().keys() {
                ops.push(Op::Del(k_part(token, h)));
            }
            for h in st.access.remove(token).unwrap_or_default().keys() {
                ops.push(Op::Del(k_access(token, h)));
            }
            true
        })
        .await
    }

    async fn owner_rooms(&self, owner_hmac: &str) -> Result<Vec<RoomRecord>, StoreError> {
        Ok(self.read(|st| {
            st.owners
                .get(owner_hmac)
                .into_iter()
                .flatten()
                .filter_map(|t| st.rooms.get(t).cloned())
                .collect()
        }))
    }

    async fn put_participant(&self, token: &str, p: &Participant) -> Result<(), StoreError> {
        self.mutate(|st, ops| {
            st.participants
                .entry(token.into())
                .or_default()
                .insert(p.participant_hmac.clone(), p.clone());
            ops.push(Op::Put(k_part(token, &p.participant_hmac), json(p)));
        })
        .await
    }

    async fn participants(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError> {
        Ok(self.read(|st| {
            st.participants
                .get(token)
                .into_iter()
                .flat_map(|m| m.values())
                .filter(|p| p.expires_at_ms > now_ms)
                .cloned()
                .collect()
        }))
    }

    async fn reap_expired(&self, token: &str, now_ms: u64) -> Result<Vec<Participant>, StoreError> {
        let any = self.read(|st| {
            st.participants
                .get(token)
                .is_some_and(|m| m.values().any(|p| p.expires_at_ms <= now_ms))
        });
        if !any {
            return Ok(Vec::new());
        }
        self.mutate(|st, ops| {
            let Some(m) = st.participants.get_mut(token) else {
                return Vec::new();
            };
            let gone: Vec<String> = m
                .iter()
                .filter(|(_, p)| p.expires_at_ms <= now_ms)
                .map(|(h, _)| h.clone())
                .collect();
            let mut out = Vec::new();
            for h in gone {
                if let Some(p) = m.remove(&h) {
                    ops.push(Op::Del(k_part(token, &h)));
                    out.push(p);
                }
            }
            out
        })
        .await
    }

    async fn touch_participant(
        &self,
        token: &str,
        participant_hmac: &str,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        self.mutate(|st, ops| {
            let Some(p) = st
                .participants
                .get_mut(token)
                .and_then(|m| m.get_mut(participant_hmac))
                .filter(|p| p.expires_at_ms > now_ms)
            else {
                return false;
            };
            p.expires_at_ms = expires_at_ms;
            ops.push(Op::Put(k_part(token, participant_hmac), json(p)));
            if let Some(exp) = st
                .access
                .get_mut(token)
                .and_then(|m| m.get_mut(participant_hmac))
            {
                *exp = expires_at_ms;
                ops.push(Op::Put(k_access(token, participant_hmac), json(exp)));
            }
            true
        })
        .await
    }

    async fn remove_participant(
        &self,
        token: &str,
        participant_hmac: &str,
    ) -> Result<Option<Participant>, StoreError> {
        self.mutate(|st, ops| {
            let p = st
                .participants
                .get_mut(token)
                .and_then(|m| m.remove(participant_hmac));
            if p.is_some() {
                ops.push(Op::Del(k_part(token, participant_hmac)));
            }
            if st
                .access
                .get_mut(token)
                .and_then(|m| m.remove(participant_hmac))
                .is_some()
            {
                ops.push(Op::Del(k_access(token, participant_hmac)));
            }
            p
        })
        .await
    }

    async fn set_access_token(
        &self,
        token: &str,
        token_hmac: &str,
        expires_at_ms: u64,
    ) -> Result<(), StoreError> {
        self.mutate(|st, ops| {
            st.access
                .entry(token.into())
                .or_default()
                .insert(token_hmac.into(), expires_at_ms);
            ops.push(Op::Put(k_access(token, token_hmac), json(&expires_at_ms)));
        })
        .await
    }

    async fn access_token_valid(
        &self,
        token: &str,
        token_hmac: &str,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.read(|st| {
            st.access
                .get(token)
                .and_then(|m| m.get(token_hmac))
                .is_some_and(|exp| *exp > now_ms)
        }))
    }

    async fn apply_metrics(
        &self,
        token: &str,
        event: &MetricsEvent,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.mutate(|st, ops| {
            let m = st
                .metrics
                .entry(token.into())
                .or_insert_with(|| RoomMetrics::new(token));
            m.apply(event, now_ms);
            ops.push(Op::Put(k_metrics(token), json(m)));
        })
        .await
    }

    async fn room_metrics(&self, token: &str) -> Result<Option<RoomMetrics>, StoreError> {
        Ok(self.read(|st| st.metrics.get(token).cloned()))
    }

    async fn all_room_metrics(&self) -> Result<Vec<RoomMetrics>, StoreError> {
        Ok(self.read(|st| st.metrics.values().cloned().collect()))
    }
}
