//! The rooms server: loop-server's participation API (`/registration`, `/rooms`,
//! `/rooms/{token}`) with its errno contract, plus per-room metrics at `/metrics`
//! (Prometheus text) and `/metrics/rooms[/{token}]` (JSON).
//!
//! Validation order for `POST /rooms/{token}` (loop-server `routes/rooms.js` and
//! `routes/validators.js`, recorded in `status_contract_from_tests.json`): body size and
//! JSON, room token exists (404/105), Authorization scheme is Basic or Hawk (401/110
//! "Unsupported") and verifies, `action` is one of the list (400/108 absent, 400/107 other),
//! non-join actions require auth (401/110, `WWW-Authenticate: Token,Hawk`), then the
//! action's own checks.
//!
//! Differences from loop-server, on purpose: Hawk nonces cannot be replayed and a payload
//! hash that does not match the body is refused (both switchable off with
//! [`HawkPolicy::loop_server_compatible`]); bodies over [`ServerConfig::max_body_bytes`] get
//! 413/113; `maxSize` and `expiresIn` that are not positive numbers are refused with
//! 400/107 (loop-server stores `NaN`); a left participant's Basic token stops working.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{Map, Value, json};

use crate::api_error::{ApiError, Errno, JsInt, js_parse_int};
use crate::hawk_auth::{self, HawkCredentials, HawkError, ParsedHeader, RequestTarget, Secret};
use crate::metrics::{MetricsEvent, RoomMetrics};
use crate::store::{Participant, RoomRecord, Store, StoreError};

/// Where the server gets the time (Unix milliseconds). Tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn new(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
    /// Sets the clock.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How strictly Hawk requests are checked beyond the MAC and the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HawkPolicy {
    /// Refuse a nonce already seen for the same id within the skew window.
    pub reject_replayed_nonces: bool,
    /// Refuse a request whose `hash=` does not match its body.
    pub verify_payload_hash: bool,
}

impl HawkPolicy {
    /// Both checks on (the default).
    pub const STRICT: HawkPolicy = HawkPolicy {
        reject_replayed_nonces: true,
        verify_payload_hash: true,
    };

    /// What loop-server (express-hawkauth 0.3) does: neither check.
    pub fn loop_server_compatible() -> HawkPolicy {
        HawkPolicy {
            reject_replayed_nonces: false,
            verify_payload_hash: false,
        }
    }
}

impl Default for HawkPolicy {
    fn default() -> Self {
        HawkPolicy::STRICT
    }
}

/// Documented local-use default for `hawkIdSecret` (never use it in production).
pub const DEV_HAWK_ID_SECRET: &str = "6b4a7eec5406fcb3d394e7f64b2a72a2";
/// Documented local-use default for `userMacSecret` (never use it in production).
pub const DEV_USER_MAC_SECRET: &str = "5a25ad4feadd45fdcbb05402658272da";

/// Server settings; [`ServerConfig::default`] matches loop-server's defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HMAC key for Hawk ids at rest (loop-server `hawkIdSecret`).
    pub hawk_id_secret: Secret,
    /// HMAC key for participant session tokens (loop-server `userMacSecret`).
    pub user_mac_secret: Secret,
    /// Participant lifetime without refresh (loop-server `rooms.participantTTL`, 300 s).
    pub participant_ttl: Duration,
    /// Allowed Hawk clock skew (±60 s).
    pub hawk_skew: Duration,
    /// Nonce and payload-hash checks.
    pub hawk_policy: HawkPolicy,
    /// Port Hawk MACs are computed with when the `Host` header has none (80; 443 behind TLS).
    pub hawk_default_port: u16,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest room (loop-server `rooms.maxSize`, 5).
    pub room_max_size: u64,
    /// Default room lifetime in hours (8 weeks).
    pub default_room_ttl_hours: u64,
    /// Longest room lifetime in hours (8 weeks).
    pub max_room_ttl_hours: u64,
    /// Longest `roomName` (100).
    pub max_room_name: usize,
    /// Longest `roomOwner` (255).
    pub max_room_owner: usize,
    /// Most rooms one user may own.
    pub max_rooms_per_owner: usize,
    /// Room token size in bytes (8).
    pub room_token_bytes: usize,
    /// Room URL template (`{token}` is replaced).
    pub web_app_url: String,
    /// The `apiKey` join answers carry.
    pub api_key: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hawk_id_secret: Secret::from_hex(DEV_HAWK_ID_SECRET).expect("valid"),
            user_mac_secret: Secret::from_hex(DEV_USER_MAC_SECRET).expect("valid"),
            participant_ttl: Duration::from_secs(300),
            hawk_skew: Duration::from_secs(60),
            hawk_policy: HawkPolicy::default(),
            hawk_default_port: 80,
            max_body_bytes: 16 * 1024,
            room_max_size: 5,
            default_room_ttl_hours: 8 * 7 * 24,
            max_room_ttl_hours: 8 * 7 * 24,
            max_room_name: 100,
            max_room_owner: 255,
            max_rooms_per_owner: 1000,
            room_token_bytes: 8,
            web_app_url: "http://localhost:3000/{token}".into(),
            api_key: "huddle".into(),
        }
    }
}

type ReqLabels = Vec<(String, String)>;

/// Shared server state.
#[derive(Debug)]
pub struct AppState {
    store: Arc<dyn Store>,
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    requests: Family<ReqLabels, Counter>,
}

impl AppState {
    /// State over `store` with `config`, reading time from `clock`.
    pub fn new(
        store: Arc<dyn Store>,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Arc<AppState> {
        Arc::new(AppState {
            store,
            config,
            clock,
            requests: Family::default(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// The axum router for `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/registration", post(registration))
        .route("/rooms", post(create_room).get(list_rooms))
        .route(
            "/rooms/{token}",
            get(get_room)
                .patch(patch_room)
                .delete(delete_room)
                .post(room_action),
        )
        .route("/metrics", get(prometheus))
        .route("/metrics/rooms", get(all_metrics_json))
        .route("/metrics/rooms/{token}", get(room_metrics_json))
        .fallback(not_found)
        .with_state(state)
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, waits for open requests, and returns once the server is gone.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

/// Serves `state` on `listener` in a task; see [`ServerHandle::shutdown`].
pub fn spawn(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        addr,
        stop: Some(stop),
        task,
    })
}

/// Serves `state` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

// ---------------------------------------------------------------------------------------
// Request plumbing

fn store_err(e: StoreError) -> ApiError {
    // loop-server `res.serverError`: any storage error is 503/201 with Retry-After.
    let _ = e;
    ApiError::backend()
}

/// Who made the request.
#[derive(Debug, Clone)]
enum Caller {
    Anonymous,
    Hawk {
        id_hmac: String,
        key_hex: String,
        parsed: Box<ParsedHeader>,
    },
    Basic {
        token_hmac: String,
    },
}

impl Caller {
    /// The participant key (loop-server `req.hawkIdHmac || req.participantTokenHmac`).
    fn participant_hmac(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Hawk { id_hmac, .. } => Some(id_hmac),
            Caller::Basic { token_hmac } => Some(token_hmac),
        }
    }

    /// The Hawk user (loop-server `req.user`).
    fn user(&self) -> Option<&str> {
        match self {
            Caller::Hawk { id_hmac, .. } => Some(id_hmac),
            _ => None,
        }
    }
}

struct Ctx {
    state: Arc<AppState>,
    method: Method,
    resource: String,
    headers: HeaderMap,
    body: Bytes,
    now_ms: u64,
    caller: Caller,
    route: &'static str,
}

/// How much of a refused request body the server still reads, and drops, before it
/// answers. Hyper closes a connection whose request body was left unread, and a client
/// still sending it then sees the connection reset instead of the 413 (a test sending
/// 64 KiB saw that under load); like a web server's lingering close, reading on lets
/// the client finish and read the answer. Past this much the connection is closed: an
/// upload that large is not read for nothing.
const DRAIN_LIMIT: usize = 1 << 20;

/// The request body when it is at most `limit` bytes; `None` (the rest read and
/// dropped, see [`DRAIN_LIMIT`]) when it is longer or broken off.
async fn read_body(mut body: Body, limit: usize) -> Option<Bytes> {
    use http_body_util::BodyExt;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.ok()?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                drain(body, out.len() + data.len()).await;
                return None;
            }
            out.extend_from_slice(data);
        }
    }
    Some(out.freeze())
}

/// Reads and drops what is left of a refused body, `read` bytes of it already read,
/// up to [`DRAIN_LIMIT`] in all.
async fn drain(mut body: Body, mut read: usize) {
    use http_body_util::BodyExt;
    while read <= DRAIN_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            _ => return,
        }
    }
}

impl Ctx {
    async fn new(
        state: Arc<AppState>,
        route: &'static str,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Body,
    ) -> Result<Ctx, (Arc<AppState>, ApiError)> {
        let limit = state.config.max_body_bytes;
        let too_large = || {
            ApiError::new(
                413,
                Errno::REQUEST_TOO_LARGE,
                format!("Request body should be at most {limit} bytes."),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            drain(body, 0).await;
            return Err((state, too_large()));
        }
        let body = match read_body(body, limit).await {
            Some(b) => b,
            None => return Err((state, too_large())),
        };
        let now_ms = state.now_ms();
        Ok(Ctx {
            state,
            method,
            resource: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers,
            body,
            now_ms,
            caller: Caller::Anonymous,
            route,
        })
    }

    fn cfg(&self) -> &ServerConfig {
        &self.state.config
    }

    fn store(&self) -> &dyn Store {
        self.state.store.as_ref()
    }

    /// The JSON body as an object (an empty body is `{}`; a JSON non-object is `{}`, as
    /// Express's `req.body[field]` sees arrays and scalars).
    fn json(&self) -> Result<Map<String, Value>, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Ok(Map::new()),
            Err(_) => Err(ApiError::new(400, Errno::BADJSON, "Invalid JSON body.")),
        }
    }

    fn target(&self) -> (String, u16) {
        let host = self
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        match host.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => {
                (h.to_owned(), p.parse().unwrap_or(80))
            }
            _ => (host.to_owned(), self.cfg().hawk_default_port),
        }
    }

    fn authorization(&self) -> Option<&str> {
        self.headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    }

    /// loop-server `requireHawkSession`.
    async fn require_hawk(&mut self) -> Result<(), ApiError> {
        let Some(auth) = self.authorization() else {
            return Err(ApiError::unauthorized("Hawk", None));
        };
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if !scheme.eq_ignore_ascii_case("hawk") {
            return Err(ApiError::unauthorized("Hawk", Some("Unsupported")));
        }
        let rest = rest.to_owned();
        self.verify_hawk(&rest).await
    }

    async fn verify_hawk(&mut self, value: &str) -> Result<(), ApiError> {
        let hawk_err = |e: HawkError| ApiError::unauthorized("Hawk", Some(&e.to_string()));
        let parsed = ParsedHeader::parse(value).map_err(hawk_err)?;
        let id_hmac = self.cfg().hawk_id_secret.hmac_hex(&parsed.id);
        let key_hex = self
            .store()
            .hawk_session(&id_hmac)
            .await
            .map_err(store_err)?
            .ok_or_else(|| hawk_err(HawkError::UnknownCredentials))?;
        let (host, port) = self.target();
        let target = RequestTarget {
            method: self.method.as_str(),
            host: &host,
            port,
            resource: &self.resource,
        };
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let policy = self.cfg().hawk_policy;
        let body = policy
            .verify_payload_hash
            .then_some((content_type, &self.body[..]));
        // Hawk 1.1 "Replay Protection": timestamp within the skew, then the nonce is
        // remembered for the id so the same request cannot be replayed inside the window.
        parsed
            .verify(
                &key_hex,
                target,
                body,
                self.now_ms / 1000,
                self.cfg().hawk_skew,
            )
            .map_err(hawk_err)?;
        if policy.reject_replayed_nonces {
            let window = self.cfg().hawk_skew.as_millis() as u64 * 2 + 1000;
            let fresh = self
                .store()
                .remember_nonce(&id_hmac, &parsed.nonce, self.now_ms, window)
                .await
                .map_err(store_err)?;
            if !fresh {
                return Err(hawk_err(HawkError::ReplayedNonce));
            }
        }
        self.caller = Caller::Hawk {
            id_hmac,
            key_hex,
            parsed: Box::new(parsed),
        };
        Ok(())
    }

    /// loop-server `authenticateWithHawkOrToken` for room `token`.
    async fn hawk_or_token(&mut self, token: &str) -> Result<(), ApiError> {
        let Some(auth) = self.authorization() else {
            return Ok(());
        };
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        let rest = rest.to_owned();
        if scheme.eq_ignore_ascii_case("hawk") {
            return self.verify_hawk(&rest).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(ApiError::unauthorized("Basic,Hawk", Some("Unsupported")));
        }
        let invalid =
            || ApiError::unauthorized("Basic", Some("Invalid token; it may have expired."));
        let session_token = basic_token(auth).ok_or_else(invalid)?;
        let token_hmac = self.cfg().user_mac_secret.hmac_hex(&session_token);
        let valid = self
            .store()
            .access_token_valid(token, &token_hmac, self.now_ms)
            .await
            .map_err(store_err)?;
        if !valid {
            return Err(invalid());
        }
        self.caller = Caller::Basic { token_hmac };
        Ok(())
    }

    /// The room, or 404/105 (rooms past `expiresAt` are gone, as their Redis key would be).
    async fn room(&self, token: &str) -> Result<RoomRecord, ApiError> {
        match self.store().room(token).await.map_err(store_err)? {
            Some(r) if r.expires_at * 1000 > self.now_ms => Ok(r),
            _ => Err(ApiError::new(404, Errno::INVALID_TOKEN, "Token not found.")),
        }
    }

    /// Drops expired participants, recording their end in the room's metrics.
    async fn reap(&self, token: &str) -> Result<(), ApiError> {
        let gone = self
            .store()
            .reap_expired(token, self.now_ms)
            .await
            .map_err(store_err)?;
        for p in gone {
            self.metrics(
                token,
                MetricsEvent::Left {
                    connection_id: p.id,
                    expired: true,
                },
            )
            .await?;
        }
        Ok(())
    }

    async fn metrics(&self, token: &str, event: MetricsEvent) -> Result<(), ApiError> {
        self.store()
            .apply_metrics(token, &event, self.now_ms)
            .await
            .map_err(store_err)
    }

    /// Records the request and signs the answer for Hawk callers (loop-server signs every
    /// Hawk-authenticated response with `Server-Authorization`).
    fn finish(self, result: Result<Response, ApiError>) -> Response {
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        if let Caller::Hawk {
            key_hex, parsed, ..
        } = &self.caller
        {
            let (host, port) = self.target();
            let target = RequestTarget {
                method: self.method.as_str(),
                host: &host,
                port,
                resource: &self.resource,
            };
            if let Ok(v) = parsed.server_authorization(key_hex, target)
                && let Ok(v) = HeaderValue::from_str(&v)
            {
                resp.headers_mut().insert("server-authorization", v);
            }
        }
        record(&self.state, self.route, &resp);
        resp
    }
}

fn record(state: &AppState, route: &str, resp: &Response) {
    let errno = resp
        .extensions()
        .get::<Errno>()
        .map_or_else(String::new, |e| e.0.to_string());
    state
        .requests
        .get_or_create(&vec![
            ("route".into(), route.into()),
            ("code".into(), resp.status().as_u16().to_string()),
            ("errno".into(), errno),
        ])
        .inc();
}

fn early(state: &AppState, route: &str, e: ApiError) -> Response {
    let resp = e.into_response();
    record(state, route, &resp);
    resp
}

/// The session token a `Basic` Authorization header carries: the user part of
/// `base64(user:)` (RFC 7617 §2; Loop puts the sessionToken as user, blank password).
pub fn basic_token(authorization: &str) -> Option<String> {
    let (scheme, b64) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let user = s.trim_end_matches(':');
    (!user.is_empty()).then(|| user.to_owned())
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).expect("OS randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hawk_auth::hex_encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// loop-server `validators.requireParams`: 400/108 `Missing: a, b` (alternatives joined by
/// `,` as JavaScript prints an array).
fn require_params(body: &Map<String, Value>, params: &[&[&str]]) -> Result<(), ApiError> {
    let missing: Vec<String> = params
        .iter()
        .filter(|alts| !alts.iter().any(|p| body.contains_key(*p)))
        .map(|alts| alts.join(","))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            Errno::MISSING_PARAMETERS,
            format!("Missing: {}", missing.join(", ")),
        ))
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, Errno::INVALID_PARAMETERS, msg)
}

/// Room parameters after `validateRoomParams`.
struct RoomParams {
    room_name: Option<Option<String>>,
    context: Option<Value>,
    room_owner: Option<Option<String>>,
    expires_in: Option<u64>,
    max_size: Option<u64>,
}

fn opt_string(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.chars().count() > max => Err(invalid(format!(
            "{field} should be shorter than {max} characters"
        ))),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(_) => Err(invalid(format!("{field} should be a string"))),
    }
}

/// loop-server `validators.validateRoomParams`.
fn validate_room_params(
    cfg: &ServerConfig,
    body: &Map<String, Value>,
) -> Result<RoomParams, ApiError> {
    let room_name = opt_string(body, "roomName", cfg.max_room_name)?;
    let mut context = None;
    if let Some(c) = body.get("context") {
        if room_name.is_some() {
            return Err(invalid(
                "roomName has been deprecated, please store it encrypted inside the context.",
            ));
        }
        let ok = c.as_object().is_some_and(|o| {
            ["value", "alg", "wrappedKey"]
                .iter()
                .all(|k| o.contains_key(*k))
        });
        if !ok {
            return Err(invalid(
                "context should be an object containing `value`, `alg` and `wrappedKey` properties.",
            ));
        }
        context = Some(c.clone());
    }
    let room_owner = opt_string(body, "roomOwner", cfg.max_room_owner)?;
    let expires_in = match body.get("expiresIn").map(js_parse_int) {
        None => None,
        Some(JsInt::NonNegative(n)) if n > cfg.max_room_ttl_hours => {
            return Err(invalid(format!(
                "expiresIn cannot be greater than {}",
                cfg.max_room_ttl_hours
            )));
        }
        Some(JsInt::NonNegative(n)) if n > 0 => Some(n),
        Some(_) => return Err(invalid("expiresIn should be a valid number")),
    };
    let max_size = match body.get("maxSize").map(js_parse_int) {
        None => None,
        Some(JsInt::NonNegative(n)) if n > cfg.room_max_size => {
            return Err(invalid(format!(
                "maxSize cannot be greater than {}",
                cfg.room_max_size
            )));
        }
        Some(JsInt::NonNegative(n)) if n > 0 => Some(n),
        Some(_) => return Err(invalid("maxSize should be a valid number")),
    };
    Ok(RoomParams {
        room_name,
        context,
        room_owner,
        expires_in,
        max_size,
    })
}

fn room_url(cfg: &ServerConfig, token: &str) -> String {
    cfg.web_app_url.replace("{token}", token)
}

/// loop-server `getRoomInfo`.
fn room_info(cfg: &ServerConfig, room: &RoomRecord, participants: &[Participant]) -> Value {
    let client_max = participants
        .iter()
        .map(|p| p.client_max_size)
        .min()
        .unwrap_or(u64::MAX)
        .min(room.max_size);
    let people: Vec<Value> = participants
        .iter()
        .map(|p| {
            json!({
                "roomConnectionId": p.id,
                "displayName": p.display_name,
                "owner": p.user_mac.as_deref() == Some(room.room_owner_hmac.as_str()),
            })
        })
        .collect();
    json!({
        "roomUrl": room_url(cfg, &room.room_token),
        "roomName": room.room_name,
        "context": room.context,
        "roomOwner": room.room_owner,
        "maxSize": room.max_size,
        "clientMaxSize": client_max,
        "creationTime": room.creation_time,
        "expiresAt": room.expires_at,
        "ctime": room.update_time,
        "participants": people,
        "roomToken": room.room_token,
    })
}

// ---------------------------------------------------------------------------------------
// Handlers

macro_rules! ctx {
    ($state:expr, $route:expr, $method:expr, $uri:expr, $headers:expr, $body:expr) => {
        match Ctx::new($state, $route, $method, &$uri, $headers, $body).await {
            Ok(c) => c,
            Err((state, e)) => return early(&state, $route, e),
        }
    };
}

async fn not_found(State(state): State<Arc<AppState>>) -> Response {
    early(
        &state,
        "other",
        ApiError::new(404, Errno::UNDEFINED, "Not found."),
    )
}

async fn registration(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "registration", method, uri, headers, body);
    let r = registration_inner(&mut c).await;
    c.finish(r)
}

async fn registration_inner(c: &mut Ctx) -> Result<Response, ApiError> {
    c.json()?;
    if c.authorization().is_some() {
        // loop-server `authenticate`: BrowserID or Hawk; only Hawk is served here.
        c.require_hawk().await?;
        return Ok(StatusCode::OK.into_response());
    }
    // loop-server `attachOrCreateHawkSession`: a new session token, returned in
    // `Hawk-Session-Token`; the server keeps HMAC(id) -> key.
    let token = hawk_auth::random_hex(32);
    let creds = HawkCredentials::from_session_token_hex(&token).expect("hex");
    let id_hmac = c.cfg().hawk_id_secret.hmac_hex(&creds.id);
    c.store()
        .set_hawk_session(&id_hmac, &creds.key_hex)
        .await
        .map_err(store_err)?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut().insert(
        "hawk-session-token",
        HeaderValue::from_str(&token).expect("hex is a header value"),
    );
    resp.headers_mut().insert(
        "access-control-expose-headers",
        HeaderValue::from_static("Hawk-Session-Token"),
    );
    Ok(resp)
}

async fn create_room(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "rooms.create", method, uri, headers, body);
    let r = create_room_inner(&mut c).await;
    c.finish(r)
}

async fn create_room_inner(c: &mut Ctx) -> Result<Response, ApiError> {
    let body = c.json()?;
    c.require_hawk().await?;
    let owner = c.caller.user().unwrap_or_default().to_owned();
    require_params(
        &body,
        &[&["context", "roomName"], &["roomOwner"], &["maxSize"]],
    )?;
    let p = validate_room_params(c.cfg(), &body)?;
    let existing = c.store().owner_rooms(&owner).await.map_err(store_err)?;
    if existing.len() >= c.cfg().max_rooms_per_owner {
        return Err(invalid(format!(
            "A user may own at most {} rooms.",
            c.cfg().max_rooms_per_owner
        )));
    }
    let now = c.now_ms / 1000;
    let expires_in = p.expires_in.unwrap_or(c.cfg().default_room_ttl_hours);
    let token = random_token(c.cfg().room_token_bytes);
    let room = RoomRecord {
        room_token: token.clone(),
        room_name: p.room_name.flatten(),
        context: p.context,
        room_owner: p.room_owner.flatten(),
        room_owner_hmac: owner,
        max_size: p.max_size.unwrap_or(c.cfg().room_max_size),
        expires_in,
        creation_time: now,
        update_time: now,
        expires_at: now + expires_in * 3600,
        session_id: random_token(16),
        channel: body
            .get("channel")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .chars()
            .take(64)
            .collect(),
    };
    c.store().put_room(&room).await.map_err(store_err)?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"roomToken": token, "roomUrl": room_url(c.cfg(), &token), "expiresAt": room.expires_at}),
    ))
}

async fn list_rooms(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "rooms.list", method, uri, headers, body);
    let version = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("version="))
        .map(|v| js_parse_int(&Value::String(v.to_owned())));
    let r = list_rooms_inner(&mut c, version).await;
    c.finish(r)
}

async fn list_rooms_inner(c: &mut Ctx, version: Option<JsInt>) -> Result<Response, ApiError> {
    c.require_hawk().await?;
    let owner = c.caller.user().unwrap_or_default().to_owned();
    let mut out = Vec::new();
    for room in c.store().owner_rooms(&owner).await.map_err(store_err)? {
        if room.expires_at * 1000 <= c.now_ms {
            continue;
        }
        if let Some(JsInt::NonNegative(v)) = version
            && v > 0
            && room.update_time < v
        {
            continue;
        }
        c.reap(&room.room_token).await?;
        let ps = c
            .store()
            .participants(&room.room_token, c.now_ms)
            .await
            .map_err(store_err)?;
        out.push(room_info(c.cfg(), &room, &ps));
    }
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

async fn get_room(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "room.get", method, uri, headers, body);
    let r = get_room_inner(&mut c, &token).await;
    c.finish(r)
}

async fn get_room_inner(c: &mut Ctx, token: &str) -> Result<Response, ApiError> {
    let room = c.room(token).await?;
    c.hawk_or_token(token).await?;
    let Some(me) = c.caller.participant_hmac().map(str::to_owned) else {
        return Ok(json_response(
            StatusCode::OK,
            &json!({
                "roomToken": room.room_token,
                "roomName": room.room_name,
                "context": room.context,
                "roomOwner": room.room_owner,
                "roomUrl": room_url(c.cfg(), token),
            }),
        ));
    };
    c.reap(token).await?;
    let ps = c
        .store()
        .participants(token, c.now_ms)
        .await
        .map_err(store_err)?;
    let is_participant = ps.iter().any(|p| p.participant_hmac == me);
    let is_owner = c.caller.user() == Some(room.room_owner_hmac.as_str());
    if !is_participant && !is_owner {
        return Err(ApiError::new(
            403,
            Errno::UNDEFINED,
            "Authenticated user is neither a participant of the room nor the room owner.",
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &room_info(c.cfg(), &room, &ps),
    ))
}

fn require_owner(c: &Ctx, room: &RoomRecord) -> Result<(), ApiError> {
    if c.caller.user() == Some(room.room_owner_hmac.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            Errno::UNDEFINED,
            "Authenticated user is not the owner of this room.",
        ))
    }
}

async fn patch_room(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "room.patch", method, uri, headers, body);
    let r = patch_room_inner(&mut c, &token).await;
    c.finish(r)
}

async fn patch_room_inner(c: &mut Ctx, token: &str) -> Result<Response, ApiError> {
    let body = c.json()?;
    c.require_hawk().await?;
    let mut room = c.room(token).await?;
    let p = validate_room_params(c.cfg(), &body)?;
    require_owner(c, &room)?;
    let now = c.now_ms / 1000;
    if let Some(n) = p.room_name {
        room.room_name = n;
    }
    if let Some(ctx) = p.context {
        room.context = Some(ctx);
    }
    if let Some(o) = p.room_owner {
        room.room_owner = o;
    }
    if let Some(e) = p.expires_in {
        room.expires_in = e;
    }
    if let Some(m) = p.max_size {
        room.max_size = m;
    }
    room.update_time = now;
    room.expires_at = now + room.expires_in * 3600;
    c.store().put_room(&room).await.map_err(store_err)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"expiresAt": room.expires_at}),
    ))
}

async fn delete_room(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "room.delete", method, uri, headers, body);
    let r = delete_room_inner(&mut c, &token).await;
    c.finish(r)
}

async fn delete_room_inner(c: &mut Ctx, token: &str) -> Result<Response, ApiError> {
    c.require_hawk().await?;
    let room = c.room(token).await?;
    require_owner(c, &room)?;
    // Sessions still open end with the room.
    let live = c
        .store()
        .participants(token, c.now_ms)
        .await
        .map_err(store_err)?;
    c.store().delete_room(token).await.map_err(store_err)?;
    for p in live {
        c.metrics(
            token,
            MetricsEvent::Left {
                connection_id: p.id,
                expired: false,
            },
        )
        .await?;
    }
    Ok(no_content())
}

async fn room_action(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut c = ctx!(state, "room.action", method, uri, headers, body);
    let r = room_action_inner(&mut c, &token).await;
    c.finish(r)
}

const ROOM_ACTIONS: [&str; 5] = ["join", "refresh", "status", "leave", "logDomain"];

async fn room_action_inner(c: &mut Ctx, token: &str) -> Result<Response, ApiError> {
    let body = c.json()?;
    let room = c.room(token).await?;
    c.hawk_or_token(token).await?;
    let action = body.get("action");
    let Some(action) = action
        .and_then(Value::as_str)
        .filter(|a| ROOM_ACTIONS.contains(a))
    else {
        let errno = if action.is_some() {
            Errno::INVALID_PARAMETERS
        } else {
            Errno::MISSING_PARAMETERS
        };
        return Err(ApiError::new(
            400,
            errno,
            format!("action should be one of {}", ROOM_ACTIONS.join(", ")),
        ));
    };
    let me = c.caller.participant_hmac().map(str::to_owned);
    let me = match (me, action) {
        (Some(me), _) => Some(me),
        (None, "join") => None,
        (None, _) => return Err(ApiError::unauthorized("Token,Hawk", None)),
    };
    match action {
        "join" => join(c, &room, &body, me).await,
        "refresh" => refresh(c, token, &me.unwrap_or_default()).await,
        "status" => status(c, token, &body, &me.unwrap_or_default()).await,
        "leave" => leave(c, token, &me.unwrap_or_default()).await,
        _ => log_domain(c, token, &body, &me.unwrap_or_default()).await,
    }
}

/// loop-server `canJoinRoom`: a spot is always kept free for the owner.
fn can_join(others: &[Participant], room: &RoomRecord, caller_user: Option<&str>) -> bool {
    let max = others
        .iter()
        .map(|p| p.client_max_size)
        .min()
        .unwrap_or(u64::MAX)
        .min(room.max_size);
    let mut spare = max as i128 - others.len() as i128;
    let owner_connected = others
        .iter()
        .any(|p| p.user_mac.as_deref() == Some(room.room_owner_hmac.as_str()));
    if !owner_connected && caller_user != Some(room.room_owner_hmac.as_str()) {
        spare -= 1;
    }
    spare > 0
}

async fn join(
    c: &mut Ctx,
    room: &RoomRecord,
    body: &Map<String, Value>,
    me: Option<String>,
) -> Result<Response, ApiError> {
    let token = room.room_token.as_str();
    require_params(body, &[&["displayName"], &["clientMaxSize"]])?;
    let client_max = match js_parse_int(&body["clientMaxSize"]) {
        JsInt::NaN => return Err(invalid("clientMaxSize should be a number.")),
        JsInt::Negative => 0,
        JsInt::NonNegative(n) => n,
    };
    let display_name = match &body["displayName"] {
        Value::String(s) => s.chars().take(255).collect(),
        other => other.to_string().chars().take(255).collect(),
    };
    c.reap(token).await?;
    let participants = c
        .store()
        .participants(token, c.now_ms)
        .await
        .map_err(store_err)?;
    let user = c.caller.user().map(str::to_owned);
    // A device rejoining is not counted against itself.
    let others: Vec<Participant> = participants
        .iter()
        .filter(|p| user.is_none() || p.user_mac != user)
        .cloned()
        .collect();
    if !can_join(&others, room, user.as_deref()) {
        return Err(ApiError::new(400, Errno::ROOM_FULL, "The room is full."));
    }
    if client_max <= others.len() as u64 {
        return Err(ApiError::new(
            400,
            Errno::CLIENT_REACHED_CAPACITY,
            "Too many participants in the room for you to handle.",
        ));
    }
    let ttl_ms = c.cfg().participant_ttl.as_millis() as u64;
    let session_token = format!("T1=={}", random_token(24));
    let participant_hmac = match me {
        Some(me) => me,
        None => {
            let h = c.cfg().user_mac_secret.hmac_hex(&session_token);
            c.store()
                .set_access_token(token, &h, c.now_ms + ttl_ms)
                .await
                .map_err(store_err)?;
            h
        }
    };
    if let Some(prev) = participants
        .iter()
        .find(|p| p.participant_hmac == participant_hmac)
    {
        c.metrics(
            token,
            MetricsEvent::Left {
                connection_id: prev.id.clone(),
                expired: false,
            },
        )
        .await?;
    }
    let p = Participant {
        id: uuid_v4(),
        display_name,
        client_max_size: client_max,
        user_mac: user,
        participant_hmac,
        joined_at_ms: c.now_ms,
        expires_at_ms: c.now_ms + ttl_ms,
    };
    c.store()
        .put_participant(token, &p)
        .await
        .map_err(store_err)?;
    c.metrics(
        token,
        MetricsEvent::Joined {
            connection_id: p.id.clone(),
        },
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "apiKey": c.cfg().api_key,
            "sessionId": room.session_id,
            "sessionToken": session_token,
            "expires": c.cfg().participant_ttl.as_secs(),
        }),
    ))
}

async fn refresh(c: &mut Ctx, token: &str, me: &str) -> Result<Response, ApiError> {
    let ttl = c.cfg().participant_ttl;
    let touched = c
        .store()
        .touch_participant(token, me, c.now_ms + ttl.as_millis() as u64, c.now_ms)
        .await
        .map_err(store_err)?;
    if !touched {
        c.reap(token).await?;
        return Err(ApiError::new(
            410,
            Errno::EXPIRED,
            "Participation has expired.",
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"expires": ttl.as_secs()}),
    ))
}

async fn live_participant(c: &Ctx, token: &str, me: &str) -> Result<Option<Participant>, ApiError> {
    c.reap(token).await?;
    Ok(c.store()
        .participants(token, c.now_ms)
        .await
        .map_err(store_err)?
        .into_iter()
        .find(|p| p.participant_hmac == me))
}

/// loop-server `validateRoomStatusUpdate`, then the participant check.
async fn status(
    c: &mut Ctx,
    token: &str,
    body: &Map<String, Value>,
    me: &str,
) -> Result<Response, ApiError> {
    // Fields must be present, in this order (400/107 "'<f>' field is missing in body.").
    for f in [
        "event",
        "state",
        "connections",
        "sendStreams",
        "recvStreams",
    ] {
        if !body.contains_key(f) {
            return Err(invalid(format!("'{f}' field is missing in body.")));
        }
    }
    // parseInt(v, 10) must not be NaN nor negative (400/107 "Invalid <f> number.").
    let mut n = [0u64; 3];
    for (i, f) in ["connections", "sendStreams", "recvStreams"]
        .iter()
        .enumerate()
    {
        match js_parse_int(&body[*f]) {
            JsInt::NonNegative(v) => n[i] = v,
            _ => return Err(invalid(format!("Invalid {f} number."))),
        }
    }
    let Some(p) = live_participant(c, token, me).await? else {
        return Err(ApiError::new(
            400,
            Errno::NOT_ROOM_PARTICIPANT,
            "Can't update status for a room you aren't in.",
        ));
    };
    // `state` and `event` are free text (loop-server removed their validation on
    // 2015-03-23): non-strings are kept as their JSON text.
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    c.metrics(
        token,
        MetricsEvent::Status {
            connection_id: p.id,
            event: text(&body["event"]),
            state: text(&body["state"]),
            connections: n[0],
            send_streams: n[1],
            recv_streams: n[2],
        },
    )
    .await?;
    Ok(no_content())
}

async fn leave(c: &mut Ctx, token: &str, me: &str) -> Result<Response, ApiError> {
    if live_participant(c, token, me).await?.is_none() {
        return Err(ApiError::new(
            400,
            Errno::NOT_ROOM_PARTICIPANT,
            "Unable to leave a room you have not joined.",
        ));
    }
    if let Some(p) = c
        .store()
        .remove_participant(token, me)
        .await
        .map_err(store_err)?
    {
        c.metrics(
            token,
            MetricsEvent::Left {
                connection_id: p.id,
                expired: false,
            },
        )
        .await?;
    }
    Ok(no_content())
}

async fn log_domain(
    c: &mut Ctx,
    token: &str,
    body: &Map<String, Value>,
    me: &str,
) -> Result<Response, ApiError> {
    require_params(body, &[&["domains"]])?;
    let ok = body["domains"].as_array().is_some_and(|a| {
        a.iter().all(|d| {
            d.as_object()
                .is_some_and(|o| o.contains_key("domain") && o.contains_key("count"))
        })
    });
    if !ok {
        return Err(invalid(
            "Domains must be a list of objects with both a ``domain`` and ``count`` property.",
        ));
    }
    if live_participant(c, token, me).await?.is_none() {
        return Err(ApiError::new(
            400,
            Errno::NOT_ROOM_PARTICIPANT,
            "Can't update status for a room you aren't in.",
        ));
    }
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------
// Metrics export

/// The JSON view of a room's metrics at `now_ms` (adds `failed`, live `timeInStateMs`).
pub fn metrics_json(m: &RoomMetrics, now_ms: u64) -> Value {
    let mut v = serde_json::to_value(m).expect("serializes");
    v["timeInStateMs"] = serde_json::to_value(m.time_in_state_at(now_ms)).expect("serializes");
    v["failed"] = Value::Bool(m.failed());
    v["liveSessions"] = json!(m.sessions.len());
    v
}

async fn all_metrics_json(State(state): State<Arc<AppState>>) -> Response {
    let now = state.now_ms();
    let r = match state.store.all_room_metrics().await {
        Ok(all) => Ok(json_response(
            StatusCode::OK,
            &Value::Array(all.iter().map(|m| metrics_json(m, now)).collect()),
        )),
        Err(e) => Err(store_err(e)),
    };
    let resp = r.unwrap_or_else(IntoResponse::into_response);
    record(&state, "metrics.json", &resp);
    resp
}

async fn room_metrics_json(
    State(state): State<Arc<AppState>>,
    Path(token): Path<String>,
) -> Response {
    let now = state.now_ms();
    let resp = match state.store.room_metrics(&token).await {
        Ok(Some(m)) => json_response(StatusCode::OK, &metrics_json(&m, now)),
        Ok(None) => ApiError::new(404, Errno::INVALID_TOKEN, "Token not found.").into_response(),
        Err(e) => store_err(e).into_response(),
    };
    record(&state, "metrics.json", &resp);
    resp
}

fn gauge_family() -> Family<ReqLabels, Gauge<f64, AtomicU64>> {
    Family::default()
}

fn labels(pairs: &[(&str, &str)]) -> ReqLabels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Encodes every room's metrics (and this instance's request counters) in the Prometheus
/// text exposition format.
pub fn prometheus_text(
    all: &[RoomMetrics],
    requests: &Family<ReqLabels, Counter>,
    now_ms: u64,
) -> String {
    let mut reg = Registry::with_prefix("loop");
    let state = gauge_family();
    let conns = gauge_family();
    let send = gauge_family();
    let recv = gauge_family();
    let live = gauge_family();
    let updates = gauge_family();
    let time_in = gauge_family();
    let transitions = gauge_family();
    let joins = gauge_family();
    let failed_sessions = gauge_family();
    let j2s = gauge_family();
    let reached = gauge_family();
    let failed_rooms: Gauge<f64, AtomicU64> = Gauge::default();
    let rooms: Gauge<f64, AtomicU64> = Gauge::default();
    rooms.set(all.len() as f64);
    for m in all {
        let room = m.room_token.as_str();
        for s in crate::tracker::RoomState::ALL
            .iter()
            .map(|s| s.as_str())
            .chain(["other"])
        {
            state
                .get_or_create(&labels(&[("room", room), ("state", s)]))
                .set(f64::from(u8::from(m.state == s)));
        }
        conns
            .get_or_create(&labels(&[("room", room)]))
            .set(m.connections as f64);
        send.get_or_create(&labels(&[("room", room)]))
            .set(m.send_streams as f64);
        recv.get_or_create(&labels(&[("room", room)]))
            .set(m.recv_streams as f64);
        live.get_or_create(&labels(&[("room", room)]))
            .set(m.sessions.len() as f64);
        updates
            .get_or_create(&labels(&[("room", room)]))
            .set(m.status_updates as f64);
        for (s, ms) in m.time_in_state_at(now_ms) {
            time_in
                .get_or_create(&labels(&[("room", room), ("state", &s)]))
                .set(ms as f64 / 1000.0);
        }
        for (t, n) in &m.transitions {
            let (from, to) = t.split_once("->").unwrap_or((t, ""));
            transitions
                .get_or_create(&labels(&[("room", room), ("from", from), ("to", to)]))
                .set(*n as f64);
        }
        joins
            .get_or_create(&labels(&[("room", room)]))
            .set(m.joins as f64);
        failed_sessions
            .get_or_create(&labels(&[("room", room)]))
            .set(m.failed_sessions as f64);
        reached
            .get_or_create(&labels(&[("room", room)]))
            .set(f64::from(u8::from(m.reached_sendrecv)));
        if m.join_to_sendrecv_count > 0 {
            let mean = m.join_to_sendrecv_sum_ms as f64 / m.join_to_sendrecv_count as f64;
            j2s.get_or_create(&labels(&[("room", room), ("stat", "mean")]))
                .set(mean / 1000.0);
            if let Some(last) = m.join_to_sendrecv_ms.back() {
                j2s.get_or_create(&labels(&[("room", room), ("stat", "last")]))
                    .set(*last as f64 / 1000.0);
            }
        }
        if m.failed() {
            failed_rooms.inc();
        }
    }
    reg.register("rooms", "Rooms with metrics", rooms);
    reg.register(
        "room_state",
        "1 for the room's current state (last status update)",
        state,
    );
    reg.register(
        "room_connections",
        "connections in the last status update",
        conns,
    );
    reg.register(
        "room_send_streams",
        "sendStreams in the last status update",
        send,
    );
    reg.register(
        "room_recv_streams",
        "recvStreams in the last status update",
        recv,
    );
    reg.register(
        "room_live_sessions",
        "participant sessions currently joined",
        live,
    );
    reg.register("room_status_updates", "status updates received", updates);
    reg.register(
        "room_time_in_state_seconds",
        "time spent in each state, summed over sessions",
        time_in,
    );
    reg.register(
        "room_transitions",
        "state transitions of participant sessions",
        transitions,
    );
    reg.register("room_joins", "joins", joins);
    reg.register(
        "room_failed_sessions",
        "sessions that ended without reaching sendrecv",
        failed_sessions,
    );
    reg.register(
        "room_reached_sendrecv",
        "1 once any session reached sendrecv",
        reached,
    );
    reg.register(
        "room_join_to_sendrecv_seconds",
        "time from join to sendrecv",
        j2s,
    );
    reg.register(
        "rooms_failed",
        "rooms whose sessions all ended without reaching sendrecv",
        failed_rooms,
    );
    reg.register(
        "http_requests",
        "requests answered by this instance",
        requests.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String");
    out
}

async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    let now = state.now_ms();
    let resp = match state.store.all_room_metrics().await {
        Ok(all) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            prometheus_text(&all, &state.requests, now),
        )
            .into_response(),
        Err(e) => store_err(e).into_response(),
    };
    record(&state, "metrics", &resp);
    resp
}
