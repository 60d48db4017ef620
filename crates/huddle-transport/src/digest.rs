//! HTTP Digest authentication for MSRP relays (RFC 4976 §5.1, which uses RFC 2617 Digest
//! with MD5 and `qop=auth`): challenges, credentials, response computation and checking.
//!
//! Sans-IO and clock-free: the client side ([`Challenge::respond`]) and the relay side
//! ([`Credentials::verify`]) are pure functions over [`AuthParams`], the header model of
//! huddle-msrp. Nonce issuance, expiry and replay tracking belong to the relay server.

use core::fmt::Write as _;

use huddle_msrp::header::AuthParams;
use md5::{Digest as _, Md5};

/// The only method digest responses are computed for here (RFC 4976 §5.1: the relay
/// authenticates AUTH requests; `A2 = Method ":" digest-uri-value` uses `AUTH`).
pub const AUTH_METHOD: &str = "AUTH";

/// Why a challenge or credentials cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    /// A parameter the computation needs is absent.
    #[error("missing digest parameter {0}")]
    MissingParam(&'static str),
    /// `algorithm` other than MD5 (RFC 4976 §5.1 uses MD5, RFC 2617's default).
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The challenge does not offer `qop=auth` (RFC 4976 §5.1 requires it).
    #[error("challenge does not offer qop=auth (offered {0:?})")]
    UnsupportedQop(String),
    /// `nc` is not 8 hex digits (RFC 2617 §3.2.2 `nc-value = 8LHEX`).
    #[error("bad nonce count {0:?}")]
    BadNonceCount(String),
}

/// A Digest challenge (the `WWW-Authenticate` of a 401 to AUTH, RFC 4976 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The protection space, usually the relay's host.
    pub realm: String,
    /// The server nonce.
    pub nonce: String,
    /// Opaque data the client must echo.
    pub opaque: Option<String>,
    /// `stale=true`: the nonce expired but the credentials were right; retry with the
    /// new nonce without asking the user again (RFC 2617 §3.2.1).
    pub stale: bool,
}

impl Challenge {
    /// A challenge with `qop="auth"` and MD5 (what a relay sends, RFC 4976 §5.1).
    pub fn new(realm: &str, nonce: &str) -> Self {
        Challenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: None,
            stale: false,
        }
    }

    /// Reads a challenge. RFC 4976 §5.1: the relay's challenge uses qop `auth` and
    /// algorithm MD5; anything else is refused rather than guessed.
    pub fn from_params(p: &AuthParams) -> Result<Self, DigestError> {
        check_scheme(p)?;
        if let Some(a) = p.get("algorithm")
            && !a.eq_ignore_ascii_case("MD5")
        {
            return Err(DigestError::UnsupportedAlgorithm(a.to_owned()));
        }
        // RFC 2617 §3.2.1: `qop-options = "qop" "=" <"> 1#qop-value <">`.
        match p.get("qop") {
            Some(q) if q.split(',').any(|v| v.trim().eq_ignore_ascii_case("auth")) => {}
            Some(q) => return Err(DigestError::UnsupportedQop(q.to_owned())),
            None => return Err(DigestError::UnsupportedQop(String::new())),
        }
        Ok(Challenge {
            realm: need(p, "realm")?.to_owned(),
            nonce: need(p, "nonce")?.to_owned(),
            opaque: p.get("opaque").map(str::to_owned),
            stale: p
                .get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The challenge as header parameters (for `WWW-Authenticate`).
    pub fn to_params(&self) -> AuthParams {
        let mut params = vec![
            ("realm".to_owned(), self.realm.clone()),
            ("nonce".to_owned(), self.nonce.clone()),
        ];
        if let Some(o) = &self.opaque {
            params.push(("opaque".to_owned(), o.clone()));
        }
        if self.stale {
            params.push(("stale".to_owned(), "true".to_owned()));
        }
        params.push(("qop".to_owned(), "auth".to_owned()));
        AuthParams {
            scheme: Some("Digest".to_owned()),
            params,
        }
    }

    /// The credentials answering this challenge (RFC 2617 §3.2.2 with `qop=auth`).
    /// `uri` is the relay URI the AUTH is addressed to, as written in its To-Path
    /// (RFC 4976 §5.1), `nc` the number of requests sent with this nonce (from 1) and
    /// `cnonce` a fresh client nonce ([`new_cnonce`]).
    pub fn respond(
        &self,
        username: &str,
        password: &str,
        uri: &str,
        nc: u32,
        cnonce: &str,
    ) -> Credentials {
        let ha1 = ha1(username, &self.realm, password);
        let response = response(&ha1, &self.nonce, nc, cnonce, AUTH_METHOD, uri);
        Credentials {
            username: username.to_owned(),
            realm: self.realm.clone(),
            nonce: self.nonce.clone(),
            uri: uri.to_owned(),
            response,
            nc,
            cnonce: cnonce.to_owned(),
            opaque: self.opaque.clone(),
        }
    }
}

/// Digest credentials (the `Authorization` of an AUTH, RFC 4976 §5.1), always with
/// `qop=auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The realm of the challenge.
    pub realm: String,
    /// The nonce of the challenge.
    pub nonce: String,
    /// The digest-uri: the relay's URI.
    pub uri: String,
    /// 32 lower-case hex digits.
    pub response: String,
    /// The nonce count.
    pub nc: u32,
    /// The client nonce.
    pub cnonce: String,
    /// Echoed opaque data.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Reads credentials; RFC 4976 §5.1 credentials carry `qop=auth`, `nc` and `cnonce`.
    pub fn from_params(p: &AuthParams) -> Result<Self, DigestError> {
        check_scheme(p)?;
        if let Some(a) = p.get("algorithm")
            && !a.eq_ignore_ascii_case("MD5")
        {
            return Err(DigestError::UnsupportedAlgorithm(a.to_owned()));
        }
        let qop = need(p, "qop")?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(DigestError::UnsupportedQop(qop.to_owned()));
        }
        let nc_s = need(p, "nc")?;
        // RFC 2617 §3.2.2: `nc-value = 8LHEX`.
        let nc = (nc_s.len() == 8)
            .then(|| u32::from_str_radix(nc_s, 16).ok())
            .flatten()
            .ok_or_else(|| DigestError::BadNonceCount(nc_s.chars().take(16).collect()))?;
        Ok(Credentials {
            username: need(p, "username")?.to_owned(),
            realm: need(p, "realm")?.to_owned(),
            nonce: need(p, "nonce")?.to_owned(),
            uri: need(p, "uri")?.to_owned(),
            response: need(p, "response")?.to_owned(),
            nc,
            cnonce: need(p, "cnonce")?.to_owned(),
            opaque: p.get("opaque").map(str::to_owned),
        })
    }

    /// The credentials as header parameters (for `Authorization`), in the order real
    /// clients write them.
    pub fn to_params(&self) -> AuthParams {
        let mut params = vec![
            ("username".to_owned(), self.username.clone()),
            ("realm".to_owned(), self.realm.clone()),
            ("nonce".to_owned(), self.nonce.clone()),
            ("uri".to_owned(), self.uri.clone()),
            ("response".to_owned(), self.response.clone()),
            ("qop".to_owned(), "auth".to_owned()),
            ("nc".to_owned(), format!("{:08x}", self.nc)),
            ("cnonce".to_owned(), self.cnonce.clone()),
        ];
        if let Some(o) = &self.opaque {
            params.push(("opaque".to_owned(), o.clone()));
        }
        AuthParams {
            scheme: Some("Digest".to_owned()),
            params,
        }
    }

    /// Checks the response against the user's password (RFC 2617 §3.2.2.1), for
    /// `method` (normally [`AUTH_METHOD`]). The nonce, realm, uri and nc must be checked
    /// against what the relay issued and expects by the caller.
    pub fn verify(&self, method: &str, password: &str) -> bool {
        self.verify_ha1(method, &ha1(&self.username, &self.realm, password))
    }

    /// Like [`Credentials::verify`] with a stored `HA1 = MD5(user:realm:password)` in hex.
    pub fn verify_ha1(&self, method: &str, ha1_hex: &str) -> bool {
        let expected = response(
            ha1_hex,
            &self.nonce,
            self.nc,
            &self.cnonce,
            method,
            &self.uri,
        );
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

fn check_scheme(p: &AuthParams) -> Result<(), DigestError> {
    match p.scheme.as_deref() {
        Some(s) if s.eq_ignore_ascii_case("Digest") => Ok(()),
        other => Err(DigestError::NotDigest(other.unwrap_or("").to_owned())),
    }
}

fn need<'a>(p: &'a AuthParams, name: &'static str) -> Result<&'a str, DigestError> {
    p.get(name).ok_or(DigestError::MissingParam(name))
}

fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(part.as_bytes());
    }
    let mut out = String::with_capacity(32);
    for b in h.finalize() {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// RFC 2617 §3.2.2.2: `A1 = unq(username-value) ":" unq(realm-value) ":" passwd`,
/// returned as `H(A1)` in lower-case hex (what a credential store may keep instead of
/// the password).
pub fn ha1(username: &str, realm: &str, password: &str) -> String {
    md5_hex(&[username, realm, password])
}

/// RFC 2617 §3.2.2.1 with `qop=auth`:
/// `KD(H(A1), nonce ":" nc ":" cnonce ":" "auth" ":" H(A2))`, `A2 = Method ":" uri`.
pub fn response(
    ha1_hex: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = md5_hex(&[method, uri]);
    let nc = format!("{nc:08x}");
    md5_hex(&[ha1_hex, nonce, &nc, cnonce, "auth", &ha2])
}

/// A fresh client nonce: 16 random alphanumeric characters (≈ 95 bits).
pub fn new_cnonce() -> String {
    huddle_msrp::ids::random_token()
}

/// Compares without an early exit, so timing does not tell how much of a guess matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alice's AUTH through Kamailio 5.6 (shared/conformance/kamailio/relay-transcript.txt),
    /// password `secret`.
    const KAMAILIO_401: &str =
        r#"Digest realm="127.0.0.1", nonce="awJVcmsCVEaHKatYSqVqfLV88bMVVkjQZ3pq2YA=", qop="auth""#;
    const ALICE_AUTH: &str = r#"Digest username="alice", realm="127.0.0.1", nonce="awJVcmsCVEaHKatYSqVqfLV88bMVVkjQZ3pq2YA=", uri="msrp://127.0.0.1:2855;tcp", response="67dc7f4c459f2f09c93937f8b1af502c", qop=auth, nc=00000001, cnonce="557696b1""#;

    #[test]
    fn reproduces_the_response_kamailio_accepted() {
        let ch = Challenge::from_params(&AuthParams::parse(KAMAILIO_401, true).unwrap()).unwrap();
        let creds = ch.respond(
            "alice",
            "secret",
            "msrp://127.0.0.1:2855;tcp",
            1,
            "557696b1",
        );
        assert_eq!(creds.response, "67dc7f4c459f2f09c93937f8b1af502c");
        assert_eq!(creds.to_params().to_string(), ALICE_AUTH);
    }

    #[test]
    fn verifies_real_credentials_and_refuses_wrong_ones() {
        let creds =
            Credentials::from_params(&AuthParams::parse(ALICE_AUTH, true).unwrap()).unwrap();
        assert!(creds.verify(AUTH_METHOD, "secret"));
        assert!(creds.verify_ha1(AUTH_METHOD, &ha1("alice", "127.0.0.1", "secret")));
        assert!(!creds.verify(AUTH_METHOD, "Secret"));
        assert!(!creds.verify("SEND", "secret"));
        let mut other_nc = creds.clone();
        other_nc.nc = 2;
        assert!(!other_nc.verify(AUTH_METHOD, "secret"));
    }

    #[test]
    fn bob_too() {
        // The transcript's second client.
        let bob = r#"Digest username="bob", realm="127.0.0.1", nonce="awJVcmsCVEYkoFPveXPeGSU3RbjUa7SiZ3pr2oA=", uri="msrp://127.0.0.1:2855;tcp", response="4d5ce0ae6f402db5c2b696d7f702f395", qop=auth, nc=00000001, cnonce="b5e355b5""#;
        let creds = Credentials::from_params(&AuthParams::parse(bob, true).unwrap()).unwrap();
        assert!(creds.verify(AUTH_METHOD, "secret"));
    }

    #[test]
    fn refuses_what_rfc_4976_does_not_use() {
        let p = |s: &str| AuthParams::parse(s, true).unwrap();
        assert_eq!(
            Challenge::from_params(&p(r#"Basic realm="x""#)),
            Err(DigestError::NotDigest("Basic".into()))
        );
        assert!(matches!(
            Challenge::from_params(&p(r#"Digest realm="x", nonce="n", qop="auth-int""#)),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert!(matches!(
            Challenge::from_params(&p(r#"Digest realm="x", nonce="n""#)),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert!(matches!(
            Challenge::from_params(&p(
                r#"Digest realm="x", nonce="n", qop="auth", algorithm=SHA-256"#
            )),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            Challenge::from_params(&p(r#"Digest nonce="n", qop="auth""#)),
            Err(DigestError::MissingParam("realm"))
        );
        let c = Challenge::from_params(&p(
            r#"Digest realm="x", nonce="n", qop="auth-int,auth", opaque="o", stale=TRUE"#,
        ))
        .unwrap();
        assert!(c.stale);
        assert_eq!(c.opaque.as_deref(), Some("o"));
        assert!(matches!(
            Credentials::from_params(&p(
                r#"Digest username="a", realm="x", nonce="n", uri="u", response="r", qop=auth, nc=1, cnonce="c""#
            )),
            Err(DigestError::BadNonceCount(_))
        ));
    }

    #[test]
    fn challenge_round_trips() {
        let mut c = Challenge::new("relay.example", "abc");
        c.opaque = Some("xyz".into());
        let again =
            Challenge::from_params(&AuthParams::parse(&c.to_params().to_string(), true).unwrap())
                .unwrap();
        assert_eq!(again, c);
        let creds = c.respond("u", "p", "msrps://relay.example;tcp", 7, &new_cnonce());
        let again = Credentials::from_params(
            &AuthParams::parse(&creds.to_params().to_string(), true).unwrap(),
        )
        .unwrap();
        assert_eq!(again, creds);
        assert!(again.verify(AUTH_METHOD, "p"));
    }
}
