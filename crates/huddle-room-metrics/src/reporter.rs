//! The reporter: the client half of the rooms participation API.
//!
//! [`RoomClient`] sends one request per call (`/registration`, join, refresh, status,
//! leave) with Hawk (desktop clients) or Basic (standalone clients: the sessionToken as
//! user, blank password) and answers with typed errors. [`Reporter`] drives a room
//! participation in a task: it joins, refreshes every 0.9 × `expires`, posts the status
//! updates queued with [`ReporterHandle::status`] (which never blocks: a full queue is
//! reported, not waited on), retries what is safe to retry with exponential backoff, and
//! reports every failure as a [`ReporterEvent`].
//!
//! Retry rules: status, refresh and leave are retried on transport errors and 5xx answers
//! (they are idempotent for the server: a repeated status is one more sample, a repeated
//! refresh extends again, a repeated leave answers 400/203); join is never retried (a lost
//! answer would leave a participation the client does not know about). 4xx answers are
//! never retried.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::hawk_auth::{self, HawkCredentials, ParsedHeader, RequestTarget};
use crate::tracker::StatusUpdate;

/// Largest response body read.
const MAX_RESPONSE: usize = 256 * 1024;

/// How a client authenticates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No Authorization header (an anonymous join).
    None,
    /// Hawk with Loop session credentials (desktop clients).
    Hawk(HawkCredentials),
    /// Basic with the room sessionToken as user and a blank password (standalone clients).
    Basic(String),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The request never got an HTTP answer (connection refused, reset, timeout).
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered with an error body `{code, errno, error}`.
    #[error("HTTP {status} errno {errno:?}: {error}")]
    Api {
        /// HTTP status.
        status: u16,
        /// loop errno, when the body had one.
        errno: Option<u16>,
        /// The `error` text.
        error: String,
    },
    /// A 2xx answer that is not what the API promises.
    #[error("unexpected answer: {0}")]
    BadResponse(String),
    /// The Hawk `Server-Authorization` of the answer does not verify.
    #[error("the answer's Server-Authorization does not verify")]
    ServerSignature,
    /// The status queue was full; the update was dropped.
    #[error("status queue full; update dropped")]
    QueueFull,
    /// The reporter task has stopped.
    #[error("reporter stopped")]
    Closed,
    /// Bad configuration (URL, ...).
    #[error("configuration: {0}")]
    Config(String),
}

impl ReportError {
    /// Whether repeating the same idempotent request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            ReportError::Transport(_) => true,
            ReportError::Api { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// A join's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The media API key.
    pub api_key: String,
    /// The media session id.
    pub session_id: String,
    /// The participant's session token (the Basic user for standalone clients).
    pub session_token: String,
    /// Seconds before the participation expires without a refresh.
    pub expires: u64,
}

/// A raw answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// One request at a time to a rooms server.
#[derive(Debug, Clone)]
pub struct RoomClient {
    http: Client<HttpConnector, Full<Bytes>>,
    base: hyper::Uri,
    host: String,
    port: u16,
    /// Authentication used for each request.
    pub auth: ClientAuth,
    /// Desktop clients also put the sessionToken in status bodies.
    pub session_token_in_body: Option<String>,
    timeout: Duration,
}

impl RoomClient {
    /// A client for `base_url` (`http://127.0.0.1:5000`).
    pub fn new(base_url: &str, auth: ClientAuth) -> Result<RoomClient, ReportError> {
        let base: hyper::Uri = base_url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| ReportError::Config(format!("{base_url}: {e}")))?;
        if base.scheme_str() != Some("http") {
            return Err(ReportError::Config(
                "only http:// URLs are supported (put TLS in front)".into(),
            ));
        }
        let host = base
            .host()
            .ok_or_else(|| ReportError::Config("URL without host".into()))?
            .to_owned();
        let port = base.port_u16().unwrap_or(80);
        let http = Client::builder(TokioExecutor::new()).build_http();
        Ok(RoomClient {
            http,
            base,
            host,
            port,
            auth,
            session_token_in_body: None,
            timeout: Duration::from_secs(10),
        })
    }

    /// Sets the per-request timeout (10 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> RoomClient {
        self.timeout = timeout;
        self
    }

    /// Sends one request; `path` includes any query. Error answers are returned as
    /// [`Answer`]s, not errors: see [`RoomClient::expect`].
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, ReportError> {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        self.send_raw(
            method,
            path,
            "application/json; charset=utf-8",
            body,
            &self.auth,
        )
        .await
    }

    /// Sends one request with an exact body, content type and auth.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        auth: &ClientAuth,
    ) -> Result<Answer, ReportError> {
        let uri = format!("{}{path}", self.base.to_string().trim_end_matches('/'));
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(CONTENT_TYPE, content_type)
            .header("accept", "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| ReportError::Config(e.to_string()))?;
        let target = RequestTarget {
            method,
            host: &self.host,
            port: self.port,
            resource: path,
        };
        let mut signed = None;
        match auth {
            ClientAuth::None => {}
            ClientAuth::Basic(token) => {
                let v = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{token}:"))
                );
                req.headers_mut().insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&v).map_err(|e| ReportError::Config(e.to_string()))?,
                );
            }
            ClientAuth::Hawk(creds) => {
                let hash = (!body.is_empty()).then(|| hawk_auth::payload_hash(content_type, &body));
                let mut nonce = [0u8; 6];
                getrandom::fill(&mut nonce).expect("OS randomness");
                let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
                let v = hawk_auth::sign_request(
                    creds,
                    target,
                    hawk_auth::unix_now(),
                    &nonce,
                    hash.as_deref(),
                    None,
                )
                .map_err(|e| ReportError::Config(e.to_string()))?;
                signed = Some(
                    ParsedHeader::parse(v.trim_start_matches("Hawk "))
                        .map_err(|e| ReportError::Config(e.to_string()))?,
                );
                req.headers_mut().insert(
                    AUTHORIZATION,
                    HeaderValue::from_str(&v).map_err(|e| ReportError::Config(e.to_string()))?,
                );
            }
        }
        let answer = self.dispatch(req).await?;
        // Hawk: the server signs its answer; a forged or altered answer is refused.
        if let (Some(p), ClientAuth::Hawk(creds)) = (&signed, auth)
            && let Some(sa) = answer.headers.get("server-authorization")
        {
            let sa = sa.to_str().map_err(|_| ReportError::ServerSignature)?;
            p.verify_server_authorization(&creds.key_hex, target, sa)
                .map_err(|_| ReportError::ServerSignature)?;
        }
        Ok(answer)
    }

    /// Sends one request with an exact body and a ready-made `Authorization` value
    /// (for replaying or forging requests in tests and conformance runs).
    pub async fn send_raw_with_authorization(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Bytes,
        authorization: &str,
    ) -> Result<Answer, ReportError> {
        let uri = format!("{}{path}", self.base.to_string().trim_end_matches('/'));
        let req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(CONTENT_TYPE, content_type)
            .header(AUTHORIZATION, authorization)
            .body(Full::new(body))
            .map_err(|e| ReportError::Config(e.to_string()))?;
        self.dispatch(req).await
    }

    async fn dispatch(&self, req: Request<Full<Bytes>>) -> Result<Answer, ReportError> {
        let resp = tokio::time::timeout(self.timeout, self.http.request(req))
            .await
            .map_err(|_| ReportError::Transport("timed out".into()))?
            .map_err(|e| ReportError::Transport(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(self.timeout, Limited::new(body, MAX_RESPONSE).collect())
            .await
            .map_err(|_| ReportError::Transport("timed out reading the body".into()))?
            .map_err(|e| ReportError::Transport(e.to_string()))?
            .to_bytes();
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Turns a non-2xx answer into [`ReportError::Api`].
    pub fn expect(answer: Answer) -> Result<Answer, ReportError> {
        if (200..300).contains(&answer.status) {
            return Ok(answer);
        }
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Err(ReportError::Api {
            status: answer.status,
            errno: v["errno"].as_u64().and_then(|e| u16::try_from(e).ok()),
            error: v["error"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// `POST /registration` without credentials: a new Hawk session.
    pub async fn register(&self) -> Result<HawkCredentials, ReportError> {
        let a = Self::expect(
            self.send_raw(
                "POST",
                "/registration",
                "application/json",
                Bytes::new(),
                &ClientAuth::None,
            )
            .await?,
        )?;
        let token = a
            .headers
            .get("hawk-session-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ReportError::BadResponse("no Hawk-Session-Token".into()))?;
        HawkCredentials::from_session_token_hex(token)
            .map_err(|e| ReportError::BadResponse(e.to_string()))
    }

    /// `POST /rooms/{token}` `{"action":"join", displayName, clientMaxSize}`.
    pub async fn join(
        &self,
        room: &str,
        display_name: &str,
        client_max_size: u32,
    ) -> Result<Joined, ReportError> {
        let body = json!({"action": "join", "displayName": display_name, "clientMaxSize": client_max_size});
        let a = Self::expect(
            self.send("POST", &format!("/rooms/{room}"), Some(&body))
                .await?,
        )?;
        let v: Value =
            serde_json::from_slice(&a.body).map_err(|e| ReportError::BadResponse(e.to_string()))?;
        let field = |k: &str| {
            v[k].as_str()
                .map(str::to_owned)
                .ok_or_else(|| ReportError::BadResponse(format!("join answer without {k}")))
        };
        Ok(Joined {
            api_key: field("apiKey")?,
            session_id: field("sessionId")?,
            session_token: field("sessionToken")?,
            expires: v["expires"]
                .as_u64()
                .ok_or_else(|| ReportError::BadResponse("join answer without expires".into()))?,
        })
    }

    /// `{"action":"refresh"}`; returns the new `expires`.
    pub async fn refresh(&self, room: &str) -> Result<u64, ReportError> {
        let a = Self::expect(
            self.send(
                "POST",
                &format!("/rooms/{room}"),
                Some(&json!({"action": "refresh"})),
            )
            .await?,
        )?;
        let v: Value =
            serde_json::from_slice(&a.body).map_err(|e| ReportError::BadResponse(e.to_string()))?;
        v["expires"]
            .as_u64()
            .ok_or_else(|| ReportError::BadResponse("refresh answer without expires".into()))
    }

    /// `{"action":"status", event, state, connections, sendStreams, recvStreams}`.
    pub async fn status(&self, room: &str, update: &StatusUpdate) -> Result<(), ReportError> {
        let mut body = serde_json::to_value(update).expect("serializes");
        body["action"] = json!("status");
        if let Some(t) = &self.session_token_in_body {
            body["sessionToken"] = json!(t);
        }
        Self::expect(
            self.send("POST", &format!("/rooms/{room}"), Some(&body))
                .await?,
        )?;
        Ok(())
    }

    /// `{"action":"leave"}`.
    pub async fn leave(&self, room: &str) -> Result<(), ReportError> {
        let mut body = json!({"action": "leave"});
        if let Some(t) = &self.session_token_in_body {
            body["sessionToken"] = json!(t);
        }
        Self::expect(
            self.send("POST", &format!("/rooms/{room}"), Some(&body))
                .await?,
        )?;
        Ok(())
    }
}

/// Exponential backoff for retryable failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the first retry.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based): initial × 2^(retry-1), capped.
    pub fn delay(&self, retry: u32) -> Duration {
        self.initial
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max)
    }
}

/// When to refresh a participation that expires after `expires` seconds (0.9 × expires,
/// as the Loop client does).
pub fn refresh_interval(expires: u64) -> Duration {
    Duration::from_millis(expires.saturating_mul(900))
}

/// What the reporter tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReporterEvent {
    /// Joined the room.
    Joined(Joined),
    /// The participation was refreshed.
    Refreshed,
    /// A status update was accepted.
    StatusPosted(StatusUpdate),
    /// A request failed for good (after retries where they apply).
    Failed {
        /// `"join"`, `"refresh"`, `"status"` or `"leave"`.
        action: &'static str,
        /// Why.
        error: ReportError,
    },
    /// The participation expired (refresh answered 410/111); refreshing stops.
    Expired,
    /// Left the room; the reporter has stopped.
    Left,
}

/// How the reporter joins.
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// The room token.
    pub room: String,
    /// Display name sent at join.
    pub display_name: String,
    /// Most participants this client handles.
    pub client_max_size: u32,
    /// Status updates waiting to be posted, at most.
    pub queue: usize,
    /// Backoff for retryable failures.
    pub retry: RetryPolicy,
    /// Desktop clients put the sessionToken in status and leave bodies.
    pub session_token_in_body: bool,
}

impl ReporterConfig {
    /// Defaults for `room`: client max size 2, queue 64, default retries.
    pub fn new(room: &str, display_name: &str) -> ReporterConfig {
        ReporterConfig {
            room: room.to_owned(),
            display_name: display_name.to_owned(),
            client_max_size: 2,
            queue: 64,
            retry: RetryPolicy::default(),
            session_token_in_body: false,
        }
    }
}

enum Command {
    Status(StatusUpdate),
    Leave,
}

/// The sending side of a running reporter.
#[derive(Debug, Clone)]
pub struct ReporterHandle {
    tx: mpsc::Sender<Command>,
    events: mpsc::Sender<ReporterEvent>,
}

impl ReporterHandle {
    /// Queues a status update; never waits. A full queue drops the update and reports
    /// [`ReportError::QueueFull`] (also as an event).
    pub fn status(&self, update: StatusUpdate) -> Result<(), ReportError> {
        self.tx.try_send(Command::Status(update)).map_err(|e| {
            let err = match e {
                mpsc::error::TrySendError::Full(_) => ReportError::QueueFull,
                mpsc::error::TrySendError::Closed(_) => ReportError::Closed,
            };
            let _ = self.events.try_send(ReporterEvent::Failed {
                action: "status",
                error: err.clone(),
            });
            err
        })
    }

    /// Asks the reporter to leave the room after the queued updates; never waits.
    pub fn leave(&self) -> Result<(), ReportError> {
        self.tx
            .try_send(Command::Leave)
            .map_err(|_| ReportError::Closed)
    }
}

/// A room participation driven in a task.
#[derive(Debug)]
pub struct Reporter;

impl Reporter {
    /// Spawns the reporter: it joins with `client` (switching to Basic with the returned
    /// sessionToken when `client` has no auth), then serves the handle. Events arrive on
    /// the returned receiver (bounded; the oldest are not kept when nobody reads).
    pub fn spawn(
        mut client: RoomClient,
        config: ReporterConfig,
    ) -> (ReporterHandle, mpsc::Receiver<ReporterEvent>) {
        let (tx, mut rx) = mpsc::channel::<Command>(config.queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel::<ReporterEvent>(256);
        let handle = ReporterHandle {
            tx,
            events: ev_tx.clone(),
        };
        let emit = move |e: ReporterEvent| {
            let _ = ev_tx.try_send(e);
        };
        tokio::spawn(async move {
            let room = config.room.clone();
            let joined = match client
                .join(&room, &config.display_name, config.client_max_size)
                .await
            {
                Ok(j) => j,
                Err(error) => {
                    emit(ReporterEvent::Failed {
                        action: "join",
                        error,
                    });
                    return;
                }
            };
            if matches!(client.auth, ClientAuth::None) {
                client.auth = ClientAuth::Basic(joined.session_token.clone());
            }
            if config.session_token_in_body {
                client.session_token_in_body = Some(joined.session_token.clone());
            }
            let mut every = refresh_interval(joined.expires);
            emit(ReporterEvent::Joined(joined));
            let mut next_refresh = Some(tokio::time::Instant::now() + every);
            loop {
                let refresh_at = next_refresh;
                tokio::select! {
                    cmd = rx.recv() => match cmd {
                        Some(Command::Status(u)) => {
                            let r = retry(config.retry, || client.status(&room, &u)).await;
                            emit(match r {
                                Ok(()) => ReporterEvent::StatusPosted(u),
                                Err(error) => ReporterEvent::Failed { action: "status", error },
                            });
                        }
                        Some(Command::Leave) | None => {
                            match retry(config.retry, || client.leave(&room)).await {
                                Ok(()) => emit(ReporterEvent::Left),
                                Err(error) => emit(ReporterEvent::Failed { action: "leave", error }),
                            }
                            return;
                        }
                    },
                    () = sleep_until(refresh_at) => {
                        match retry(config.retry, || client.refresh(&room)).await {
                            Ok(expires) => {
                                every = refresh_interval(expires);
                                next_refresh = Some(tokio::time::Instant::now() + every);
                                emit(ReporterEvent::Refreshed);
                            }
                            Err(ReportError::Api { status: 410, .. }) => {
                                next_refresh = None;
                                emit(ReporterEvent::Expired);
                            }
                            Err(error) => {
                                next_refresh = Some(tokio::time::Instant::now() + every);
                                emit(ReporterEvent::Failed { action: "refresh", error });
                            }
                        }
                    }
                }
            }
        });
        (handle, ev_rx)
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs `f` until it succeeds, fails with a non-retryable error, or runs out of attempts.
async fn retry<T, F, Fut>(policy: RetryPolicy, mut f: F) -> Result<T, ReportError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ReportError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if e.is_retryable() && attempt < policy.attempts => {
                tokio::time::sleep(policy.delay(attempt)).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(p.delay(1), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(200));
        assert_eq!(p.delay(4), Duration::from_millis(800));
        assert_eq!(p.delay(5), Duration::from_secs(1));
        assert_eq!(p.delay(40), Duration::from_secs(1));
        assert_eq!(refresh_interval(300), Duration::from_secs(270));
    }

    #[test]
    fn only_transport_and_5xx_are_retried() {
        assert!(ReportError::Transport("x".into()).is_retryable());
        let api = |status| ReportError::Api {
            status,
            errno: None,
            error: String::new(),
        };
        assert!(api(503).is_retryable());
        assert!(!api(400).is_retryable());
        assert!(!ReportError::QueueFull.is_retryable());
    }
}
