//! The relay client (RFC 4976 §5): AUTH with HTTP Digest, Use-Path, Expires and
//! re-authentication before the grant expires.
//!
//! [`RelayAuth`] is a sans-IO state machine: it builds AUTH requests, consumes their
//! responses ([`RelayAuth::handle_response`]) and says when it next needs the clock
//! ([`RelayAuth::poll_timeout`], [`RelayAuth::handle_timeout`]); time is passed in. The
//! tokio side is [`crate::msrp::MsrpTransport::relay_authenticate`] (and
//! [`connect_relay`]), which only moves its chunks and fires its timer: once attached to
//! a transport, the grant is refreshed while the caller reads from it.

use std::time::{Duration, Instant};

use huddle_msrp::chunk::ChunkBuilder;
use huddle_msrp::header::HeaderError;
use huddle_msrp::{Chunk, KnownHeader, Method, MsrpUri, StatusCode, TransactionId};

use crate::digest::{Challenge, DigestError, new_cnonce};
use crate::msrp::{ConnectError, MsrpStream, MsrpTransport, TransportOptions};

/// What the client asks of the relay.
#[derive(Clone)]
pub struct RelayAuthConfig {
    /// The relay's URI (the To-Path of AUTH and the digest `uri`).
    pub relay_uri: MsrpUri,
    /// This client's URI on the connection to the relay (the From-Path of AUTH).
    pub local_uri: MsrpUri,
    /// Digest user name.
    pub username: String,
    /// Digest password.
    pub password: String,
    /// The lifetime to ask for (RFC 4976 §5.1 Expires), `None` to let the relay choose.
    pub expires: Option<u32>,
    /// The lifetimes this client accepts when the relay answers 423 with Min-Expires or
    /// Max-Expires (inclusive). Default: any.
    pub acceptable_expires: (u32, u32),
    /// AUTH requests one authentication round may take (challenges, 423 retries).
    pub max_attempts: u32,
    /// How long to wait for each AUTH response.
    pub response_timeout: Duration,
}

impl std::fmt::Debug for RelayAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("RelayAuthConfig")
            .field("relay_uri", &self.relay_uri.to_string())
            .field("local_uri", &self.local_uri.to_string())
            .field("username", &self.username)
            .field("expires", &self.expires)
            .field("acceptable_expires", &self.acceptable_expires)
            .field("max_attempts", &self.max_attempts)
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl RelayAuthConfig {
    /// A configuration with defaults: no Expires requested, any lifetime acceptable, 6
    /// attempts per round, 30 s per response (msrplib's response timeout).
    pub fn new(relay_uri: MsrpUri, local_uri: MsrpUri, username: &str, password: &str) -> Self {
        RelayAuthConfig {
            relay_uri,
            local_uri,
            username: username.to_owned(),
            password: password.to_owned(),
            expires: None,
            acceptable_expires: (1, u32::MAX),
            max_attempts: 6,
            response_timeout: Duration::from_secs(30),
        }
    }

    /// Asks for this lifetime.
    pub fn with_expires(mut self, seconds: u32) -> Self {
        self.expires = Some(seconds);
        self
    }
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The relay refused the credentials (a 401 answering our Authorization).
    #[error("the relay rejected the credentials for {username:?}")]
    WrongCredentials {
        /// The user name that was refused.
        username: String,
    },
    /// The relay answered with a failure status other than 401/423.
    #[error("the relay answered AUTH with {status} {comment:?}")]
    Rejected {
        /// The status.
        status: StatusCode,
        /// Its comment.
        comment: Option<String>,
    },
    /// A 423 whose bounds cannot be met within the acceptable lifetimes.
    #[error("no acceptable Expires: relay bounds {min:?}..{max:?}, acceptable {acceptable:?}")]
    IntervalOutOfBounds {
        /// Min-Expires of the relay, if given.
        min: Option<u32>,
        /// Max-Expires of the relay, if given.
        max: Option<u32>,
        /// What the client accepts.
        acceptable: (u32, u32),
    },
    /// A 200 without Use-Path (RFC 4976 §5.1 requires it) or with an unusable one.
    #[error("the relay's 200 has no usable Use-Path: {0}")]
    BadUsePath(HeaderError),
    /// A header of the relay's response did not parse.
    #[error("bad header in the relay's response: {0}")]
    BadHeader(HeaderError),
    /// The challenge cannot be answered (not Digest, not qop=auth, not MD5...).
    #[error("unusable challenge: {0}")]
    Digest(#[from] DigestError),
    /// A 401 without WWW-Authenticate.
    #[error("401 without a WWW-Authenticate challenge")]
    MissingChallenge,
    /// The round took more AUTH requests than allowed.
    #[error("authentication took more than {0} AUTH requests")]
    TooManyAttempts(u32),
    /// No response within the response timeout.
    #[error("no response to AUTH in time")]
    Timeout,
    /// Building the request failed (an invalid configured value).
    #[error("cannot build AUTH: {0}")]
    Build(HeaderError),
}

/// A relay's grant: where to route through it, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Use-Path: the relay URIs to put before our URI in SDP `a=path` (RFC 4976 §5.1).
    pub use_path: Vec<MsrpUri>,
    /// The lifetime the relay granted (its Expires; the requested one if it sent none).
    pub expires: Option<Duration>,
    /// When the grant was received.
    pub granted_at: Instant,
}

impl Grant {
    /// When the grant ends, if it does.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires.map(|e| self.granted_at + e)
    }

    /// When to re-authenticate: after 3/4 of the lifetime, so a refresh that needs a
    /// challenge round and a 423 retry still lands in time.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.expires.map(|e| self.granted_at + e.mul_f64(0.75))
    }
}

/// What to do after a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStep {
    /// Send this AUTH (the challenge answered, or a new Expires after 423).
    Send(Chunk),
    /// Authenticated.
    Granted(Grant),
}

#[derive(Debug, Clone)]
enum State {
    /// Nothing in flight; `start` or a refresh sends the next AUTH.
    Idle,
    /// An AUTH is in flight.
    Waiting {
        tid: TransactionId,
        deadline: Instant,
        /// It carried credentials for this nonce.
        with_nonce: Option<String>,
    },
    /// A final error happened.
    Failed,
}

/// The AUTH state machine (sans-IO). See the module documentation.
#[derive(Debug)]
pub struct RelayAuth {
    cfg: RelayAuthConfig,
    state: State,
    challenge: Option<Challenge>,
    nc: u32,
    expires: Option<u32>,
    attempts: u32,
    credential_rejections: u32,
    grant: Option<Grant>,
    /// The relay's URI for the session of the first grant (its Use-Path's first URI).
    session_uri: Option<String>,
}

impl RelayAuth {
    /// A client that has not sent anything yet.
    pub fn new(cfg: RelayAuthConfig) -> Self {
        RelayAuth {
            expires: cfg.expires,
            cfg,
            state: State::Idle,
            challenge: None,
            nc: 0,
            attempts: 0,
            credential_rejections: 0,
            grant: None,
            session_uri: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RelayAuthConfig {
        &self.cfg
    }

    /// The current grant, if authenticated.
    pub fn grant(&self) -> Option<&Grant> {
        self.grant.as_ref()
    }

    /// True while an AUTH is in flight.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, State::Waiting { .. })
    }

    /// The Expires the next AUTH asks for (after 423 adjustments).
    pub fn requested_expires(&self) -> Option<u32> {
        self.expires
    }

    /// Starts an authentication round: the first AUTH (RFC 4976 §5.1: the first one
    /// carries no credentials unless a challenge is already known, e.g. on a refresh).
    pub fn start(&mut self, now: Instant) -> Result<Chunk, AuthError> {
        self.attempts = 0;
        self.credential_rejections = 0;
        self.next_request(now)
    }

    /// Is `chunk` the response to the AUTH in flight?
    pub fn is_response_to_pending(&self, chunk: &Chunk) -> bool {
        matches!(&self.state, State::Waiting { tid, .. }
            if chunk.status_code().is_some() && chunk.transaction_id == *tid)
    }

    fn next_request(&mut self, now: Instant) -> Result<Chunk, AuthError> {
        self.attempts += 1;
        if self.attempts > self.cfg.max_attempts {
            self.state = State::Failed;
            return Err(AuthError::TooManyAttempts(self.cfg.max_attempts));
        }
        // RFC 4976 §5.1: AUTH is addressed to the relay (To-Path) from the client's URI
        // (From-Path); Expires asks for a lifetime; Authorization answers a challenge with
        // `uri` set to the relay's URI.
        let relay = self.cfg.relay_uri.to_string();
        // A refresh names the session it extends: its To-Path is the relay's URI for it
        // (the first URI of the Use-Path granted first, the one in SDP), so a relay that
        // keys sessions by that URI (huddle's) extends it in place; a relay that issues
        // a new Use-Path per AUTH answers with a new one, seen in the new grant. The
        // digest `uri` stays the relay's configured URI.
        let to = self.session_uri.as_deref().unwrap_or(&relay);
        let mut b = ChunkBuilder::request(Method::AUTH)
            .header(KnownHeader::ToPath, to)
            .header(KnownHeader::FromPath, &self.cfg.local_uri.to_string());
        let mut with_nonce = None;
        if let Some(ch) = &self.challenge {
            self.nc += 1;
            let creds = ch.respond(
                &self.cfg.username,
                &self.cfg.password,
                &relay,
                self.nc,
                &new_cnonce(),
            );
            b = b.header(KnownHeader::Authorization, &creds.to_params().to_string());
            with_nonce = Some(ch.nonce.clone());
        }
        if let Some(e) = self.expires {
            b = b.header(KnownHeader::Expires, &e.to_string());
        }
        let chunk = b.build().map_err(AuthError::Build)?;
        self.state = State::Waiting {
            tid: chunk.transaction_id.clone(),
            deadline: now + self.cfg.response_timeout,
            with_nonce,
        };
        Ok(chunk)
    }

    fn fail(&mut self, e: AuthError) -> Result<AuthStep, AuthError> {
        self.state = State::Failed;
        Err(e)
    }

    /// Consumes the response to the AUTH in flight (check with
    /// [`RelayAuth::is_response_to_pending`] first; anything else is ignored with `None`).
    pub fn handle_response(
        &mut self,
        resp: &Chunk,
        now: Instant,
    ) -> Option<Result<AuthStep, AuthError>> {
        if !self.is_response_to_pending(resp) {
            return None;
        }
        let State::Waiting { with_nonce, .. } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return None;
        };
        let status = resp.status_code()?;
        Some(self.on_response(resp, status, with_nonce, now))
    }

    fn on_response(
        &mut self,
        resp: &Chunk,
        status: StatusCode,
        with_nonce: Option<String>,
        now: Instant,
    ) -> Result<AuthStep, AuthError> {
        match status {
            StatusCode::OK => {
                // RFC 4976 §5.1: the 200 response to AUTH carries Use-Path and Expires.
                let use_path = match resp.use_path() {
                    Ok(p) => p,
                    Err(e) => return self.fail(AuthError::BadUsePath(e)),
                };
                let granted = match resp.expires() {
                    Ok(e) => e.or(self.expires),
                    Err(e) => return self.fail(AuthError::BadHeader(e)),
                };
                let grant = Grant {
                    use_path,
                    expires: granted.map(|s| Duration::from_secs(u64::from(s))),
                    granted_at: now,
                };
                if self.session_uri.is_none() {
                    self.session_uri = grant.use_path.first().map(MsrpUri::to_string);
                }
                self.grant = Some(grant.clone());
                Ok(AuthStep::Granted(grant))
            }
            StatusCode::UNAUTHORIZED => {
                // RFC 4976 §5.1 / RFC 2617 §3.2.1: the 401 carries a Digest challenge.
                let params = match resp.www_authenticate() {
                    Ok(Some(p)) => p,
                    Ok(None) => return self.fail(AuthError::MissingChallenge),
                    Err(e) => return self.fail(AuthError::BadHeader(e)),
                };
                let ch = match Challenge::from_params(&params) {
                    Ok(c) => c,
                    Err(e) => return self.fail(e.into()),
                };
                if let Some(used) = with_nonce {
                    // A 401 answering credentials: the password is wrong, unless the nonce
                    // went stale (RFC 2617 §3.2.1 `stale=true`), or, once, when a refresh
                    // meets a relay that forgot our nonce without saying stale.
                    let stale = ch.stale
                        || (self.grant.is_some()
                            && ch.nonce != used
                            && self.credential_rejections == 0);
                    self.credential_rejections += 1;
                    if !stale {
                        return self.fail(AuthError::WrongCredentials {
                            username: self.cfg.username.clone(),
                        });
                    }
                }
                self.challenge = Some(ch);
                self.nc = 0;
                self.next_request(now).map(AuthStep::Send)
            }
            StatusCode::INTERVAL_OUT_OF_BOUNDS => {
                // RFC 4976 §5.1: a 423 carries Min-Expires (asked too short) or
                // Max-Expires (asked too long); retry with a value within them.
                let min = resp.min_expires().map_err(AuthError::BadHeader);
                let max = resp.max_expires().map_err(AuthError::BadHeader);
                let (min, max) = match (min, max) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => return self.fail(e),
                };
                let (lo, hi) = self.cfg.acceptable_expires;
                let out_of_bounds = AuthError::IntervalOutOfBounds {
                    min,
                    max,
                    acceptable: (lo, hi),
                };
                let current = self.expires;
                let mut next = current;
                if let Some(m) = min
                    && current.is_none_or(|c| c < m)
                {
                    next = Some(m);
                }
                if let Some(m) = max
                    && next.is_none_or(|c| c > m)
                {
                    next = Some(m);
                }
                match next {
                    Some(n) if next != current && (lo..=hi).contains(&n) => {
                        self.expires = next;
                        self.next_request(now).map(AuthStep::Send)
                    }
                    _ => self.fail(out_of_bounds),
                }
            }
            other => self.fail(AuthError::Rejected {
                status: other,
                comment: resp.comment().map(str::to_owned),
            }),
        }
    }

    /// When the state machine next needs [`RelayAuth::handle_timeout`]: the response
    /// deadline while waiting, the refresh time while granted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Waiting { deadline, .. } => Some(*deadline),
            State::Idle => self.grant.as_ref().and_then(Grant::refresh_at),
            State::Failed => None,
        }
    }

    /// Fires the timer: a refresh AUTH when the grant is due (RFC 4976 §5.1: the client
    /// re-authenticates before Expires runs out), an error when a response is late.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<Option<Chunk>, AuthError> {
        match &self.state {
            State::Waiting { deadline, .. } if now >= *deadline => {
                self.state = State::Failed;
                Err(AuthError::Timeout)
            }
            State::Idle
                if self
                    .grant
                    .as_ref()
                    .and_then(Grant::refresh_at)
                    .is_some_and(|t| now >= t) =>
            {
                self.start(now).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// Connects to the relay at `cfg.relay_uri` and authenticates (RFC 4976 §5). The local
/// URI's host and port are replaced by the connection's local address (as real clients
/// do); its session id is kept, or a random one is made. The returned transport keeps
/// the grant fresh while it is read from.
pub async fn connect_relay(
    mut cfg: RelayAuthConfig,
    options: &TransportOptions,
) -> Result<(MsrpTransport, Grant), ConnectError> {
    let stream = MsrpStream::connect(&cfg.relay_uri, &options.tls).await?;
    let local = stream.local_addr().map_err(ConnectError::Io)?;
    cfg.local_uri =
        crate::msrp::uri_for(local, cfg.relay_uri.secure(), cfg.local_uri.session_id())?;
    let mut transport = MsrpTransport::new(stream, cfg.local_uri.clone(), options)?;
    match transport.relay_authenticate(RelayAuth::new(cfg)).await {
        Ok(grant) => Ok((transport, grant)),
        Err(crate::msrp::TransportError::RelayAuth(e)) => Err(ConnectError::Relay(e)),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use huddle_msrp::Decoder;

    fn cfg() -> RelayAuthConfig {
        RelayAuthConfig::new(
            "msrp://127.0.0.1:2855;tcp".parse().unwrap(),
            "msrp://127.0.0.1:49488/alicesess;tcp".parse().unwrap(),
            "alice",
            "secret",
        )
    }

    fn decode(s: &str) -> Chunk {
        Decoder::default()
            .decode(&mut BytesMut::from(s.as_bytes()))
            .unwrap()
            .unwrap()
    }

    fn response(req: &Chunk, status: u16, extra: &str) -> Chunk {
        decode(&format!(
            "MSRP {} {status} X\r\nTo-Path: msrp://127.0.0.1:49488/alicesess;tcp\r\nFrom-Path: msrp://127.0.0.1:2855;tcp\r\n{extra}-------{}$\r\n",
            req.transaction_id, req.transaction_id
        ))
    }

    const CHALLENGE: &str =
        "WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n1\", qop=\"auth\"\r\n";

    #[test]
    fn challenge_then_grant() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg().with_expires(600));
        let r1 = a.start(t0).unwrap();
        assert!(r1.authorization().unwrap().is_none());
        assert_eq!(r1.expires().unwrap(), Some(600));
        let AuthStep::Send(r2) = a
            .handle_response(&response(&r1, 401, CHALLENGE), t0)
            .unwrap()
            .unwrap()
        else {
            panic!("expected a retry")
        };
        let creds = r2.authorization().unwrap().unwrap();
        assert_eq!(creds.get("nc"), Some("00000001"));
        assert_eq!(creds.get("uri"), Some("msrp://127.0.0.1:2855;tcp"));
        // A response with another tid is not ours.
        assert!(a.handle_response(&response(&r1, 200, ""), t0).is_none());
        let ok = response(
            &r2,
            200,
            "Use-Path: msrp://127.0.0.1:2855/s1;tcp\r\nExpires: 400\r\n",
        );
        let Some(Ok(AuthStep::Granted(g))) = a.handle_response(&ok, t0) else {
            panic!("expected a grant")
        };
        assert_eq!(g.use_path[0].session_id(), Some("s1"));
        assert_eq!(g.expires, Some(Duration::from_secs(400)));
        // Refresh at 3/4 of the granted (not the requested) lifetime, with credentials.
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(300)));
        assert_eq!(a.handle_timeout(t0 + Duration::from_secs(299)), Ok(None));
        let r3 = a
            .handle_timeout(t0 + Duration::from_secs(300))
            .unwrap()
            .unwrap();
        assert_eq!(
            r3.authorization().unwrap().unwrap().get("nc"),
            Some("00000002")
        );
        // The refresh names the granted session; the digest uri stays the relay's.
        assert_eq!(r3.to_path().unwrap(), g.use_path);
        assert_eq!(
            r3.authorization().unwrap().unwrap().get("uri"),
            Some("msrp://127.0.0.1:2855;tcp")
        );
    }

    #[test]
    fn wrong_password_is_a_typed_error() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg());
        let r1 = a.start(t0).unwrap();
        let Some(Ok(AuthStep::Send(r2))) = a.handle_response(&response(&r1, 401, CHALLENGE), t0)
        else {
            panic!()
        };
        let again = CHALLENGE.replace("n1", "n2");
        assert_eq!(
            a.handle_response(&response(&r2, 401, &again), t0),
            Some(Err(AuthError::WrongCredentials {
                username: "alice".into()
            }))
        );
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn stale_nonce_is_retried() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg());
        let r1 = a.start(t0).unwrap();
        let Some(Ok(AuthStep::Send(r2))) = a.handle_response(&response(&r1, 401, CHALLENGE), t0)
        else {
            panic!()
        };
        let stale = "WWW-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n2\", qop=\"auth\", stale=true\r\n";
        let Some(Ok(AuthStep::Send(r3))) = a.handle_response(&response(&r2, 401, stale), t0) else {
            panic!()
        };
        assert_eq!(
            r3.authorization().unwrap().unwrap().get("nonce"),
            Some("n2")
        );
    }

    #[test]
    fn interval_out_of_bounds_moves_within_bounds() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg().with_expires(10));
        let r1 = a.start(t0).unwrap();
        let Some(Ok(AuthStep::Send(r2))) =
            a.handle_response(&response(&r1, 423, "Min-Expires: 60\r\n"), t0)
        else {
            panic!()
        };
        assert_eq!(r2.expires().unwrap(), Some(60));
        let mut b = RelayAuth::new(cfg().with_expires(99999));
        let r1 = b.start(t0).unwrap();
        let Some(Ok(AuthStep::Send(r2))) =
            b.handle_response(&response(&r1, 423, "Max-Expires: 3600\r\n"), t0)
        else {
            panic!()
        };
        assert_eq!(r2.expires().unwrap(), Some(3600));
        // A relay that insists on the same bound again is an error, not a loop.
        assert!(matches!(
            b.handle_response(&response(&r2, 423, "Max-Expires: 3600\r\n"), t0),
            Some(Err(AuthError::IntervalOutOfBounds { .. }))
        ));
        // Bounds the caller does not accept.
        let mut c = RelayAuth::new(RelayAuthConfig {
            acceptable_expires: (1, 30),
            ..cfg().with_expires(10)
        });
        let r1 = c.start(t0).unwrap();
        assert!(matches!(
            c.handle_response(&response(&r1, 423, "Min-Expires: 60\r\n"), t0),
            Some(Err(AuthError::IntervalOutOfBounds { min: Some(60), .. }))
        ));
    }

    #[test]
    fn other_failures_and_missing_use_path() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg());
        let r1 = a.start(t0).unwrap();
        assert!(matches!(
            a.handle_response(&response(&r1, 403, ""), t0),
            Some(Err(AuthError::Rejected {
                status: StatusCode::FORBIDDEN,
                ..
            }))
        ));
        let mut b = RelayAuth::new(cfg());
        let r1 = b.start(t0).unwrap();
        assert!(matches!(
            b.handle_response(&response(&r1, 200, ""), t0),
            Some(Err(AuthError::BadUsePath(_)))
        ));
        let mut c = RelayAuth::new(cfg());
        let r1 = c.start(t0).unwrap();
        assert!(matches!(
            c.handle_response(&response(&r1, 401, ""), t0),
            Some(Err(AuthError::MissingChallenge))
        ));
    }

    #[test]
    fn late_response_times_out_and_attempts_are_bounded() {
        let t0 = Instant::now();
        let mut a = RelayAuth::new(cfg());
        a.start(t0).unwrap();
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(
            a.handle_timeout(t0 + Duration::from_secs(30)),
            Err(AuthError::Timeout)
        );
        // A relay answering every AUTH with a fresh stale challenge.
        let mut b = RelayAuth::new(RelayAuthConfig {
            max_attempts: 3,
            ..cfg()
        });
        let mut req = b.start(t0).unwrap();
        let mut out = None;
        for i in 0..5 {
            let ch = format!(
                "WWW-Authenticate: Digest realm=\"r\", nonce=\"n{i}\", qop=\"auth\", stale=true\r\n"
            );
            match b.handle_response(&response(&req, 401, &ch), t0).unwrap() {
                Ok(AuthStep::Send(r)) => req = r,
                other => {
                    out = Some(other);
                    break;
                }
            }
        }
        assert_eq!(out, Some(Err(AuthError::TooManyAttempts(3))));
    }
}
