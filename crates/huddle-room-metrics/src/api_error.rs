//! loop-server's error contract: a JSON body `{"code", "errno", "error"}` with loop's errno
//! numbers (loop-server `loop/errno.json`), and JavaScript `parseInt` as loop-server applies
//! it to numeric fields.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// loop-server's errno numbers (`loop/errno.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub u16);

impl Errno {
    /// 105: room (or URL) token not found.
    pub const INVALID_TOKEN: Errno = Errno(105);
    /// 106: the body is not JSON.
    pub const BADJSON: Errno = Errno(106);
    /// 107: a parameter has an invalid value.
    pub const INVALID_PARAMETERS: Errno = Errno(107);
    /// 108: a required parameter is missing.
    pub const MISSING_PARAMETERS: Errno = Errno(108);
    /// 110: authentication failed or is missing.
    pub const INVALID_AUTH_TOKEN: Errno = Errno(110);
    /// 111: the participation expired.
    pub const EXPIRED: Errno = Errno(111);
    /// 113: the request body is too large.
    pub const REQUEST_TOO_LARGE: Errno = Errno(113);
    /// 121: the client cannot handle that many participants.
    pub const CLIENT_REACHED_CAPACITY: Errno = Errno(121);
    /// 201: storage failure.
    pub const BACKEND: Errno = Errno(201);
    /// 202: the room is full.
    pub const ROOM_FULL: Errno = Errno(202);
    /// 203: the caller is not a participant of the room.
    pub const NOT_ROOM_PARTICIPANT: Errno = Errno(203);
    /// 999: anything else.
    pub const UNDEFINED: Errno = Errno(999);
}

/// An HTTP error answer in loop-server's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} errno {} {message}", errno.0)]
pub struct ApiError {
    /// HTTP status.
    pub code: StatusCode,
    /// loop errno.
    pub errno: Errno,
    /// The `error` text.
    pub message: String,
    /// `WWW-Authenticate` value for 401 answers.
    pub www_authenticate: Option<String>,
}

impl ApiError {
    /// An error with the given status, errno and message.
    pub fn new(code: u16, errno: Errno, message: impl Into<String>) -> ApiError {
        ApiError {
            code: StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            errno,
            message: message.into(),
            www_authenticate: None,
        }
    }

    /// loop-server `auth.unauthorized`: 401/110 with `WWW-Authenticate: <schemes>[ error="..."]`.
    pub fn unauthorized(schemes: &str, message: Option<&str>) -> ApiError {
        let mut header = schemes.to_owned();
        if let Some(m) = message {
            header.push_str(&format!(" error=\"{}\"", m.replace('"', "'")));
        }
        ApiError {
            www_authenticate: Some(header),
            ..ApiError::new(
                401,
                Errno::INVALID_AUTH_TOKEN,
                message.unwrap_or("Unauthorized"),
            )
        }
    }

    /// loop-server `res.serverError`: 503/201 "Service Unavailable" with `Retry-After`.
    pub fn backend() -> ApiError {
        ApiError::new(503, Errno::BACKEND, "Service Unavailable")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        serde_json::json!({"code": self.code.as_u16(), "errno": self.errno.0, "error": self.message})
    }
}

/// Seconds a client is told to wait after a 503 (loop-server's `retryAfter` default).
pub const RETRY_AFTER_SECS: u32 = 30;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.code, self.body().to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(w) = self
            .www_authenticate
            .and_then(|w| HeaderValue::from_str(&w).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, w);
        }
        if self.code == StatusCode::SERVICE_UNAVAILABLE
            || self.code == StatusCode::TOO_MANY_REQUESTS
        {
            h.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp.extensions_mut().insert(self.errno);
        resp
    }
}

/// The outcome of JavaScript's `parseInt(value, 10)` on a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsInt {
    /// `NaN`.
    NaN,
    /// A negative integer (never `-0`, which JavaScript treats as not `< 0`).
    Negative,
    /// A non-negative integer, saturated at `u64::MAX`.
    NonNegative(u64),
}

/// `parseInt(ToString(value), 10)` (ECMA-262 §19.2.5 and §7.1.17), as loop-server applies
/// it to `connections`, `sendStreams`, `recvStreams`, `clientMaxSize`, `maxSize`, `expiresIn`.
pub fn js_parse_int(value: &Value) -> JsInt {
    let s = js_to_string(value, 0);
    // §19.2.5 step 2: strip leading white space (StrWhiteSpaceChar, which includes BOM).
    let s = s.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits: &str = &digits[..digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len())];
    if digits.is_empty() {
        return JsInt::NaN;
    }
    let mut n: u64 = 0;
    for d in digits.bytes() {
        n = n.saturating_mul(10).saturating_add(u64::from(d - b'0'));
    }
    match (negative, n) {
        (true, 0) | (false, _) => JsInt::NonNegative(n),
        (true, _) => JsInt::Negative,
    }
}

/// JavaScript `ToString` of a JSON value, depth-bounded (arrays join their elements).
fn js_to_string(value: &Value, depth: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                js_number_to_string(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        // Array.prototype.toString: elements joined by ",", null as "".
        Value::Array(items) if depth < 8 => items
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => js_to_string(v, depth + 1),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Array(_) => String::new(),
        Value::Object(_) => "[object Object]".into(),
    }
}

/// Number::toString for the cases parseInt can tell apart: exponent notation for
/// |x| >= 1e21 or 0 < |x| < 1e-6, else the plain decimal form.
fn js_number_to_string(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = x.abs();
    if a >= 1e21 || (a != 0.0 && a < 1e-6) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_int_follows_javascript() {
        let cases = [
            (json!(2), JsInt::NonNegative(2)),
            (json!("abc"), JsInt::NaN),
            (json!(-1), JsInt::Negative),
            (json!("-1"), JsInt::Negative),
            (json!("-0"), JsInt::NonNegative(0)),
            (json!(-0.5), JsInt::NonNegative(0)),
            (json!(2.9), JsInt::NonNegative(2)),
            (json!(" 42abc"), JsInt::NonNegative(42)),
            (json!("+7"), JsInt::NonNegative(7)),
            (json!(1e21), JsInt::NonNegative(1)),
            (json!(1e-7), JsInt::NonNegative(1)),
            (json!(true), JsInt::NaN),
            (json!(null), JsInt::NaN),
            (json!([]), JsInt::NaN),
            (json!([3, 4]), JsInt::NonNegative(3)),
            (json!({}), JsInt::NaN),
            (
                json!("99999999999999999999999999"),
                JsInt::NonNegative(u64::MAX),
            ),
        ];
        for (v, want) in cases {
            assert_eq!(js_parse_int(&v), want, "parseInt({v})");
        }
    }
}
