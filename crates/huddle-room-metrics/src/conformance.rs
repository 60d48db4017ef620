//! Checks against recorded behaviour of independent implementations (the shared
//! `conformance/loop/` material): the real Loop client's status posts, loop-server's status
//! contract, and Hawk vectors cross-checked against loop-server. Each check returns one
//! [`CaseResult`] per case so tests and `cargo xtask conformance` can count them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::metrics::{MetricsEvent, RoomMetrics};
use crate::reporter::{Answer, ClientAuth, ReportError, RoomClient};
use crate::server::{AppState, ServerConfig, SystemClock};
use crate::store::{Participant, RoomRecord, Store, StoreError};

use crate::hawk_auth::{self, HawkCredentials, ParsedHeader, RequestTarget, Secret};
use crate::tracker::{Origin, Tracker, Variant};

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// What was checked.
    pub name: String,
    /// `Err(why)` when it failed.
    pub outcome: Result<(), String>,
}

impl CaseResult {
    fn check(name: impl Into<String>, outcome: Result<(), String>) -> CaseResult {
        CaseResult {
            name: name.into(),
            outcome,
        }
    }
}

/// The material could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected JSON.
    #[error("{path}: {why}")]
    Shape {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

pub(crate) fn read_json(path: &Path) -> Result<Value, ConformanceError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConformanceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| ConformanceError::Shape {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}

fn shape(path: &Path, why: &str) -> ConformanceError {
    ConformanceError::Shape {
        path: path.display().to_string(),
        why: why.to_owned(),
    }
}

/// Replays `client_state_sequences_2015*.json` through a [`Tracker`] of `variant`: one case
/// per step, comparing what the tracker would post with what the real client posted.
pub fn client_sequences(
    path: &Path,
    variant: Variant,
) -> Result<Vec<CaseResult>, ConformanceError> {
    let doc = read_json(path)?;
    let seqs = doc["sequences"]
        .as_object()
        .ok_or_else(|| shape(path, "no `sequences` object"))?;
    let mut out = Vec::new();
    for (name, steps) in seqs {
        let steps = steps
            .as_array()
            .ok_or_else(|| shape(path, "a sequence is not an array"))?;
        let mut tracker = Tracker::new(variant);
        for (i, step) in steps.iter().enumerate() {
            let input = step["input"]
                .as_array()
                .ok_or_else(|| shape(path, "a step has no `input`"))?;
            let event = input.first().and_then(Value::as_str).unwrap_or("");
            let origin = match input.get(1).and_then(Value::as_str) {
                Some("local") => Origin::Local,
                _ => Origin::Peer,
            };
            let got = if event == "RESET" {
                tracker.reset();
                Value::Null
            } else {
                tracker
                    .handle_named(event, origin)
                    .map(|u| serde_json::to_value(u).expect("serializes"))
                    .unwrap_or(Value::Null)
            };
            let want = &step["posted"];
            let outcome = if &got == want {
                Ok(())
            } else {
                Err(format!("posted {got}, the real client posted {want}"))
            };
            out.push(CaseResult::check(
                format!("{name} #{} {event}", i + 1),
                outcome,
            ));
        }
    }
    Ok(out)
}

fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Checks `hawk_vectors.json` both ways: signing (credentials, payload hash, request headers,
/// the response `Server-Authorization`) and verifying (each vector header accepted at its
/// timestamp; a wrong payload hash and a stale timestamp refused), plus loop-server's id and
/// token HMACs and the Basic headers.
pub fn hawk_vectors(path: &Path) -> Result<Vec<CaseResult>, ConformanceError> {
    let v = read_json(path)?;
    let mut out = Vec::new();
    let d = &v["derivation"];
    let creds = HawkCredentials::from_session_token_hex(s(d, "sessionTokenHex"))
        .map_err(|e| shape(path, &e.to_string()))?;
    out.push(CaseResult::check(
        "derive id",
        eq(creds.id.as_str(), s(d, "id")),
    ));
    out.push(CaseResult::check(
        "derive key",
        eq(creds.key_hex.as_str(), s(d, "key")),
    ));

    let r = &v["request_with_payload_hash"];
    let port = u16::try_from(r["port"].as_u64().unwrap_or(0)).unwrap_or(0);
    let target = RequestTarget {
        method: s(r, "method"),
        host: s(r, "host"),
        port,
        resource: s(r, "resource"),
    };
    let ts = r["ts"].as_u64().unwrap_or(0);
    let hash = hawk_auth::payload_hash(s(r, "contentType"), s(r, "payload").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD;
    out.push(CaseResult::check(
        "payload hash",
        eq(b64.encode(&hash), s(r, "hash").to_owned()),
    ));

    let mut sign = |name: &str, vec: &Value, hash: Option<&[u8]>, ext: Option<&str>| {
        let got = hawk_auth::sign_request(&creds, target, ts, s(vec, "nonce"), hash, ext)
            .map_err(|e| e.to_string());
        out.push(CaseResult::check(
            format!("client signs {name}"),
            got.and_then(|h| eq(h.as_str(), s(vec, "header"))),
        ));
    };
    sign("request with payload hash", r, Some(&hash), None);
    sign(
        "request without payload hash",
        &v["request_without_payload_hash"],
        None,
        None,
    );
    let rx = &v["request_with_ext"];
    sign("request with ext", rx, Some(&hash), Some(s(rx, "ext")));

    let body = s(r, "payload").as_bytes();
    let skew = Duration::from_secs(60);
    let verify = |header: &str, body: &[u8], now: u64| -> Result<ParsedHeader, String> {
        let p = ParsedHeader::parse(header.strip_prefix("Hawk ").unwrap_or(header))
            .map_err(|e| e.to_string())?;
        p.verify(
            &creds.key_hex,
            target,
            Some(("application/json", body)),
            now,
            skew,
        )
        .map_err(|e| e.to_string())?;
        Ok(p)
    };
    for (name, vec) in [
        ("with payload hash", r),
        ("without payload hash", &v["request_without_payload_hash"]),
        ("with ext", rx),
    ] {
        out.push(CaseResult::check(
            format!("server accepts request {name}"),
            verify(s(vec, "header"), body, ts).map(drop),
        ));
    }
    out.push(CaseResult::check(
        "server refuses a body that does not match the payload hash",
        match verify(s(r, "header"), b"{\"action\":\"leave\"}", ts) {
            Err(e) if e == hawk_auth::HawkError::BadPayloadHash.to_string() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    ));
    out.push(CaseResult::check(
        "server refuses a timestamp 61 s old",
        match verify(s(r, "header"), body, ts + 61) {
            Err(e) if e == hawk_auth::HawkError::StaleTimestamp.to_string() => Ok(()),
            other => Err(format!("{other:?}")),
        },
    ));
    out.push(CaseResult::check(
        "server accepts a timestamp 60 s old",
        verify(s(r, "header"), body, ts + 60).map(drop),
    ));

    // Response direction: loop-server signs its answer without a payload hash.
    let sa = &v["server_authorization_for_that_request"];
    let parsed = ParsedHeader::parse(s(r, "header").trim_start_matches("Hawk "));
    out.push(CaseResult::check(
        "server signs its response",
        parsed
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|p| {
                p.server_authorization(&creds.key_hex, target)
                    .map_err(|e| e.to_string())
            })
            .and_then(|h| eq(h.as_str(), s(sa, "header"))),
    ));
    out.push(CaseResult::check(
        "client verifies the response signature",
        parsed.map_err(|e| e.to_string()).and_then(|p| {
            p.verify_server_authorization(&creds.key_hex, target, s(sa, "header"))
                .map_err(|e| e.to_string())
        }),
    ));
    let key = hawk_auth::key_from_hex(&creds.key_hex);
    for (name, normalized, mac) in [
        ("request", s(&v, "normalized_string_example"), s(r, "mac")),
        ("response", s(sa, "normalized"), s(sa, "mac")),
    ] {
        out.push(CaseResult::check(
            format!("normalized {name} string MAC"),
            key.sign(normalized.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|m| eq(b64.encode(m), mac.to_owned())),
        ));
    }

    let ids = &v["server_ids"];
    let id_secret =
        Secret::from_hex(s(ids, "hawkIdSecret")).map_err(|e| shape(path, &e.to_string()))?;
    let user_secret =
        Secret::from_hex(s(ids, "userMacSecret")).map_err(|e| shape(path, &e.to_string()))?;
    let id_hmac = id_secret.hmac_hex(&creds.id);
    out.push(CaseResult::check(
        "hawkIdHmac",
        eq(id_hmac.as_str(), s(ids, "hawkIdHmac_of_id")),
    ));
    out.push(CaseResult::check(
        "redis key of the Hawk session",
        eq(format!("hawk.{id_hmac}").as_str(), s(ids, "redis_key")),
    ));
    let guest = s(ids, "guestSessionToken");
    out.push(CaseResult::check(
        "participant token HMAC",
        eq(
            user_secret.hmac_hex(guest).as_str(),
            s(ids, "participantTokenHmac"),
        ),
    ));
    for key in ["basic_header_standalone", "basic_header_with_colon"] {
        out.push(CaseResult::check(
            format!("{key} names the guest token"),
            eq(
                crate::server::basic_token(s(ids, key)).as_deref(),
                Some(guest),
            ),
        ));
    }
    Ok(out)
}

/// A store that can be told to fail participant look-ups (loop-server's
/// "storage.getRoomParticipant fails" case).
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    fail: AtomicBool,
}

impl FaultyStore {
    /// Wraps `inner`; nothing fails until [`FaultyStore::set_failing`].
    pub fn new(inner: Arc<dyn Store>) -> FaultyStore {
        FaultyStore {
            inner,
            fail: AtomicBool::new(false),
        }
    }

    /// Makes participant look-ups fail (or work again).
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            Err(StoreError::Embedded("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn set_hawk_session(&self, id_hmac: &str, key_hex: &str) -> Result<(), StoreError> {
        self.inner.set_hawk_session(id_hmac, key_hex).await
    }
    async fn hawk_session(&self, id_hmac: &str) -> Result<Option<String>, StoreError> {
        self.inner.hawk_session(id_hmac).await
    }
    async fn remember_nonce(
        &self,
        id: &str,
        nonce: &str,
        now: u64,
        ttl: u64,
    ) -> Result<bool, StoreError> {
        self.inner.remember_nonce(id, nonce, now, ttl).await
    }
    async fn put_room(&self, room: &RoomRecord) -> Result<(), StoreError> {
        self.inner.put_room(room).await
    }
    async fn room(&self, token: &str) -> Result<Option<RoomRecord>, StoreError> {
        self.inner.room(token).await
    }
    async fn delete_room(&self, token: &str) -> Result<bool, StoreError> {
        self.inner.delete_room(token).await
    }
    async fn owner_rooms(&self, owner: &str) -> Result<Vec<RoomRecord>, StoreError> {
        self.inner.owner_rooms(owner).await
    }
    async fn put_participant(&self, token: &str, p: &Participant) -> Result<(), StoreError> {
        self.inner.put_participant(token, p).await
    }
    async fn participants(&self, token: &str, now: u64) -> Result<Vec<Participant>, StoreError> {
        self.check()?;
        self.inner.participants(token, now).await
    }
    async fn reap_expired(&self, token: &str, now: u64) -> Result<Vec<Participant>, StoreError> {
        self.check()?;
        self.inner.reap_expired(token, now).await
    }
    async fn touch_participant(
        &self,
        token: &str,
        h: &str,
        exp: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.inner.touch_participant(token, h, exp, now).await
    }
    async fn remove_participant(
        &self,
        token: &str,
        h: &str,
    ) -> Result<Option<Participant>, StoreError> {
        self.inner.remove_participant(token, h).await
    }
    async fn set_access_token(&self, token: &str, h: &str, exp: u64) -> Result<(), StoreError> {
        self.inner.set_access_token(token, h, exp).await
    }
    async fn access_token_valid(&self, token: &str, h: &str, now: u64) -> Result<bool, StoreError> {
        self.inner.access_token_valid(token, h, now).await
    }
    async fn apply_metrics(
        &self,
        token: &str,
        e: &MetricsEvent,
        now: u64,
    ) -> Result<(), StoreError> {
        self.inner.apply_metrics(token, e, now).await
    }
    async fn room_metrics(&self, token: &str) -> Result<Option<RoomMetrics>, StoreError> {
        self.inner.room_metrics(token).await
    }
    async fn all_room_metrics(&self) -> Result<Vec<RoomMetrics>, StoreError> {
        self.inner.all_room_metrics().await
    }
}

fn expect_answer(a: &Answer, want: &Value) -> Result<(), String> {
    let status = want["status"].as_u64().unwrap_or(0);
    if u64::from(a.status) != status {
        return Err(format!(
            "status {} (body {}), want {status}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ));
    }
    if status == 204 {
        return if a.body.is_empty() {
            Ok(())
        } else {
            Err("204 with a body".into())
        };
    }
    let body: Value = serde_json::from_slice(&a.body).map_err(|e| format!("body not JSON: {e}"))?;
    let shape = json!({"code": status, "errno": want["errno"], "error": want["error"]});
    if body != shape {
        return Err(format!("body {body}, want {shape}"));
    }
    if want.get("header").is_some_and(|h| h == "Retry-After")
        && !a.headers.contains_key("retry-after")
    {
        return Err("no Retry-After header".into());
    }
    Ok(())
}

/// Runs every case of `status_contract_from_tests.json` against a server on loopback over
/// `store` (real HTTP, Hawk-signed requests), plus the cases its `validation_order` implies.
pub async fn status_contract(
    path: &Path,
    store: Arc<dyn Store>,
) -> Result<Vec<CaseResult>, ConformanceError> {
    let doc = read_json(path)?;
    let io = |e: std::io::Error| ConformanceError::Read {
        path: "127.0.0.1:0".into(),
        source: e,
    };
    let faulty = Arc::new(FaultyStore::new(store));
    let state = AppState::new(
        faulty.clone(),
        ServerConfig::default(),
        Arc::new(SystemClock),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io)?;
    let server = crate::server::spawn(listener, state).map_err(io)?;
    let mut out = Vec::new();
    let result = run_contract(&doc, &server.base_url(), &faulty, &mut out).await;
    let _ = server.shutdown().await;
    if let Err(why) = result {
        out.push(CaseResult::check("set-up", Err(why)));
    }
    Ok(out)
}

async fn run_contract(
    doc: &Value,
    base: &str,
    faulty: &FaultyStore,
    out: &mut Vec<CaseResult>,
) -> Result<(), String> {
    let e = |e: ReportError| e.to_string();
    let anon = RoomClient::new(base, ClientAuth::None).map_err(e)?;
    let owner =
        RoomClient::new(base, ClientAuth::Hawk(anon.register().await.map_err(e)?)).map_err(e)?;
    let guest =
        RoomClient::new(base, ClientAuth::Hawk(anon.register().await.map_err(e)?)).map_err(e)?;
    let created = RoomClient::expect(
        owner
            .send(
                "POST",
                "/rooms",
                Some(&json!({"roomName": "contract", "roomOwner": "o", "maxSize": 2})),
            )
            .await
            .map_err(e)?,
    )
    .map_err(e)?;
    let created: Value = serde_json::from_slice(&created.body).map_err(|e| e.to_string())?;
    let room = created["roomToken"]
        .as_str()
        .ok_or("no roomToken")?
        .to_owned();
    guest.join(&room, "guest", 2).await.map_err(e)?;
    let path = format!("/rooms/{room}");
    let fixture = doc["fixture"].clone();
    let metrics = |room: String| async move {
        let m = RoomClient::new(base, ClientAuth::None)
            .map_err(e)?
            .send("GET", &format!("/metrics/rooms/{room}"), None)
            .await
            .map_err(e)?;
        serde_json::from_slice::<Value>(&m.body).map_err(|e| e.to_string())
    };
    for case in doc["cases"].as_array().ok_or("no cases")? {
        let name = case["test"].as_str().unwrap_or("?").to_owned();
        let mut body = match &case["body"] {
            Value::String(s) if s == "fixture" => fixture.clone(),
            Value::Null => fixture.clone(),
            other => other.clone(),
        };
        if let Some(patch) = case["body_patch"].as_object() {
            for (k, v) in patch {
                body[k] = v.clone();
            }
        }
        let given = case["given"].as_str().unwrap_or("");
        let client = if given.starts_with("room owner") {
            &owner
        } else {
            &guest
        };
        let failing = given.contains("fails");
        faulty.set_failing(failing);
        let answer = client.send("POST", &path, Some(&body)).await;
        faulty.set_failing(false);
        let want = &case["expect"];
        let outcome = match answer {
            Err(err) => Err(err.to_string()),
            Ok(a) => match &want["status"] {
                Value::String(s) if s == "not rejected" => {
                    if a.status == 204 {
                        Ok(())
                    } else {
                        Err(format!("status {}", a.status))
                    }
                }
                Value::Null => {
                    if a.status == 204 {
                        Ok(())
                    } else {
                        Err(format!("status {}", a.status))
                    }
                }
                _ => expect_answer(&a, want),
            },
        };
        // loop-server logs; this server keeps the update: check what was kept.
        let outcome = match outcome {
            Ok(()) if want.get("log").is_some() || want.get("log_fields").is_some() => {
                let m = metrics(room.clone()).await?;
                let last = m["history"]
                    .as_array()
                    .and_then(|h| h.last())
                    .cloned()
                    .unwrap_or(Value::Null);
                let mut r = Ok(());
                if let Some(state) = want["log"]["state"].as_str()
                    && last["state"] != state
                {
                    r = Err(format!("kept state {}, want {state}", last["state"]));
                }
                if want["log"]
                    .as_str()
                    .is_some_and(|l| l.contains("roomConnectionId"))
                    && last["connectionId"].as_str().is_none_or(str::is_empty)
                {
                    r = Err("no roomConnectionId kept".into());
                }
                for f in want["log_fields"].as_array().into_iter().flatten() {
                    let key = f.as_str().unwrap_or("");
                    if last.get(key).is_none() {
                        r = Err(format!("field {key} not kept"));
                    }
                }
                r
            }
            other => other,
        };
        out.push(CaseResult::check(name, outcome));
    }

    // The validation order, case by case.
    let unknown_room = anon
        .send("POST", "/rooms/doesnotexist", Some(&fixture))
        .await
        .map_err(e)?;
    out.push(CaseResult::check(
        "unknown room token is 404/105",
        expect_answer(
            &unknown_room,
            &json!({"status": 404, "errno": 105, "error": "Token not found."}),
        ),
    ));
    let odd = anon
        .send_raw(
            "POST",
            &path,
            "application/json",
            Bytes::from(fixture.to_string()),
            &ClientAuth::None,
        )
        .await
        .map_err(e)?;
    out.push(CaseResult::check(
        "status without auth is 401/110 with WWW-Authenticate: Token,Hawk",
        expect_answer(
            &odd,
            &json!({"status": 401, "errno": 110, "error": "Unauthorized"}),
        )
        .and_then(|()| {
            eq(
                odd.headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Token,Hawk"),
            )
        }),
    ));
    let unknown_action = guest
        .send("POST", &path, Some(&json!({"action": "dance"})))
        .await
        .map_err(e)?;
    out.push(CaseResult::check(
        "unknown action is 400/107",
        expect_answer(
            &unknown_action,
            &json!({"status": 400, "errno": 107, "error": "action should be one of join, refresh, status, leave, logDomain"}),
        ),
    ));
    let mut req_body = fixture.clone();
    req_body["connections"] = json!("abc");
    req_body.as_object_mut().map(|o| o.remove("recvStreams"));
    let order = guest
        .send("POST", &path, Some(&req_body))
        .await
        .map_err(e)?;
    out.push(CaseResult::check(
        "missing fields are reported before invalid numbers",
        expect_answer(&order, &json!({"status": 400, "errno": 107, "error": "'recvStreams' field is missing in body."})),
    ));
    Ok(())
}

/// [`status_contract`] on its own runtime over a fresh embedded store in a temporary
/// directory (for callers without tokio, such as `cargo xtask conformance`).
pub fn status_contract_embedded(path: &Path) -> Result<Vec<CaseResult>, ConformanceError> {
    let io = |source: std::io::Error| ConformanceError::Read {
        path: "runtime".into(),
        source,
    };
    let dir = std::env::temp_dir().join(format!("huddle-rooms-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io)?;
    let result = rt.block_on(async {
        let store =
            crate::store::EmbeddedStore::open(&dir).map_err(|e| ConformanceError::Shape {
                path: dir.display().to_string(),
                why: e.to_string(),
            })?;
        status_contract(path, Arc::new(store)).await
    });
    drop(rt);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
