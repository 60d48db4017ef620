//! The rooms API over real HTTP on loopback; every scenario runs against both backends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, Backing, start, wall_ms};
use huddle_room_metrics::reporter::{Answer, ClientAuth, ReportError, RoomClient};
use huddle_room_metrics::server::{HawkPolicy, ManualClock, ServerConfig, ServerHandle};
use huddle_room_metrics::tracker::{Origin, RoomEvent, Tracker, Variant};
use serde_json::{Value, json};

struct World {
    _backing: Backing,
    server: ServerHandle,
    clock: Arc<ManualClock>,
}

impl World {
    async fn new(backend: Backend) -> World {
        World::with_config(backend, ServerConfig::default()).await
    }

    async fn with_config(backend: Backend, config: ServerConfig) -> World {
        let backing = Backing::new(backend);
        let clock = Arc::new(ManualClock::new(wall_ms()));
        let server = start(backing.store().await, clock.clone(), config).await;
        World {
            _backing: backing,
            server,
            clock,
        }
    }

    fn client(&self, auth: ClientAuth) -> RoomClient {
        RoomClient::new(&self.server.base_url(), auth).expect("client")
    }

    async fn hawk_user(&self) -> RoomClient {
        let creds = self
            .client(ClientAuth::None)
            .register()
            .await
            .expect("register");
        self.client(ClientAuth::Hawk(creds))
    }

    /// Creates a room; `roomOwner` and `maxSize` are required (loop-server `requireParams`).
    async fn room(&self, owner: &RoomClient, mut body: Value) -> String {
        for (k, v) in [("roomOwner", json!("owner")), ("maxSize", json!(5))] {
            if body.get(k).is_none() {
                body[k] = v;
            }
        }
        let a = ok(owner.send("POST", "/rooms", Some(&body)).await);
        assert_eq!(a.status, 201);
        json_of(&a)["roomToken"]
            .as_str()
            .expect("roomToken")
            .to_owned()
    }
}

fn ok(r: Result<Answer, ReportError>) -> Answer {
    r.expect("an HTTP answer")
}

fn json_of(a: &Answer) -> Value {
    serde_json::from_slice(&a.body).unwrap_or(Value::Null)
}

#[track_caller]
fn assert_error(a: &Answer, status: u16, errno: u64) {
    let body = json_of(a);
    assert_eq!(
        (a.status, body["errno"].as_u64()),
        (status, Some(errno)),
        "body {body}"
    );
    assert_eq!(body["code"].as_u64(), Some(u64::from(status)));
    assert!(body["error"].is_string());
}

fn status_body(state: &str, c: u64, s: u64, r: u64) -> Value {
    json!({"action": "status", "event": "Session.streamCreated", "state": state,
           "connections": c, "sendStreams": s, "recvStreams": r})
}

async fn metrics(w: &World, room: &str) -> Value {
    let a = ok(w
        .client(ClientAuth::None)
        .send("GET", &format!("/metrics/rooms/{room}"), None)
        .await);
    assert_eq!(a.status, 200);
    json_of(&a)
}

async fn full_rooms_api(backend: Backend) {
    let w = World::new(backend).await;
    let owner = w.hawk_user().await;
    let stranger = w.hawk_user().await;
    let room = w
        .room(
            &owner,
            json!({"roomName": "UX Discussion", "roomOwner": "Alexis", "maxSize": 3}),
        )
        .await;
    let path = format!("/rooms/{room}");

    // The owner's rooms.
    let list = ok(owner.send("GET", "/rooms", None).await);
    assert_eq!(list.status, 200);
    assert_eq!(json_of(&list)[0]["roomToken"], room.as_str());
    assert_eq!(
        json_of(&ok(stranger.send("GET", "/rooms", None).await)),
        json!([])
    );

    // PATCH is owner only.
    let a = ok(owner
        .send("PATCH", &path, Some(&json!({"roomName": "renamed"})))
        .await);
    assert_eq!(a.status, 200);
    assert!(json_of(&a)["expiresAt"].is_u64());
    assert_error(
        &ok(stranger
            .send("PATCH", &path, Some(&json!({"roomName": "x"})))
            .await),
        403,
        999,
    );

    // Anonymous GET shows public information only.
    let public = json_of(&ok(w
        .client(ClientAuth::None)
        .send("GET", &path, None)
        .await));
    assert_eq!(public["roomName"], "renamed");
    assert!(public.get("participants").is_none());

    // A standalone guest joins anonymously and then uses Basic with its sessionToken.
    let joined = w
        .client(ClientAuth::None)
        .join(&room, "guest", 5)
        .await
        .expect("join");
    assert_eq!(joined.expires, 300);
    let guest = w.client(ClientAuth::Basic(joined.session_token.clone()));
    let mut tracker = Tracker::new(Variant::Shipped);
    for e in [
        RoomEvent::ConnectionCreated(Origin::Local),
        RoomEvent::ConnectionCreated(Origin::Peer),
        RoomEvent::PublisherStreamCreated,
        RoomEvent::StreamCreated,
    ] {
        let u = tracker.handle(e).expect("an update");
        guest.status(&room, &u).await.expect("status accepted");
    }
    let info = json_of(&ok(guest.send("GET", &path, None).await));
    assert_eq!(info["participants"].as_array().map(Vec::len), Some(1));
    assert_eq!(info["participants"][0]["displayName"], "guest");
    assert_eq!(guest.refresh(&room).await, Ok(300));

    // A desktop participant with Hawk.
    let desk = w.hawk_user().await;
    desk.join(&room, "desk", 5).await.expect("hawk join");
    desk.status(
        &room,
        &tracker.handle(RoomEvent::StreamDestroyed).expect("update"),
    )
    .await
    .expect("hawk status");
    // The owner is not a participant: status is refused with 203.
    assert_error(
        &ok(owner
            .send("POST", &path, Some(&status_body("init", 1, 0, 0)))
            .await),
        400,
        203,
    );
    // A stranger may not read the room.
    assert_error(&ok(stranger.send("GET", &path, None).await), 403, 999);

    let m = metrics(&w, &room).await;
    assert_eq!(m["statusUpdates"], 5);
    assert_eq!(m["joins"], 2);
    assert_eq!(m["reachedSendrecv"], true);
    assert_eq!(m["state"], "sending");
    assert_eq!(m["transitions"]["sending->sendrecv"], 1);

    // Leave; the Basic token stops working.
    guest.leave(&room).await.expect("leave");
    assert_error(
        &ok(guest
            .send("POST", &path, Some(&status_body("init", 0, 0, 0)))
            .await),
        401,
        110,
    );
    desk.leave(&room).await.expect("leave");
    assert!(matches!(
        desk.leave(&room).await,
        Err(ReportError::Api {
            status: 400,
            errno: Some(203),
            ..
        })
    ));

    // /metrics in Prometheus text.
    let prom = ok(w
        .client(ClientAuth::None)
        .send("GET", "/metrics", None)
        .await);
    let text = String::from_utf8_lossy(&prom.body).into_owned();
    assert!(
        text.contains(&format!("loop_room_status_updates{{room=\"{room}\"}} 5")),
        "{text}"
    );
    assert!(
        text.contains("loop_room_join_to_sendrecv_seconds"),
        "{text}"
    );
    assert!(text.contains("loop_http_requests_total"), "{text}");

    // DELETE is owner only; then the room is gone.
    assert_error(&ok(stranger.send("DELETE", &path, None).await), 403, 999);
    assert_eq!(ok(owner.send("DELETE", &path, None).await).status, 204);
    assert_error(&ok(owner.send("GET", &path, None).await), 404, 105);
    w.server.shutdown().await.expect("shutdown");
}

async fn participants_expire_after_300_s(backend: Backend) {
    // A skew wide enough that Hawk accepts wall-clock timestamps 10 minutes off lets the
    // server clock move past participant expiry: refresh answers 410/111, status 400/203,
    // and the metrics count an expired, failed session.
    let config = ServerConfig {
        hawk_skew: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let w = World::with_config(backend, config).await;
    let owner = w.hawk_user().await;
    let room = w.room(&owner, json!({"roomName": "r"})).await;
    let desk = w.hawk_user().await;
    desk.join(&room, "desk", 5).await.expect("join");
    let joined = w
        .client(ClientAuth::None)
        .join(&room, "guest", 5)
        .await
        .expect("join");
    let guest = w.client(ClientAuth::Basic(joined.session_token));
    w.clock.advance(Duration::from_secs(299));
    assert_eq!(desk.refresh(&room).await, Ok(300));
    w.clock.advance(Duration::from_secs(2));
    // The guest did not refresh: 301 s after its join it is gone, and so is its token.
    assert_error(
        &ok(guest
            .send(
                "POST",
                &format!("/rooms/{room}"),
                Some(&status_body("waiting", 1, 0, 0)),
            )
            .await),
        401,
        110,
    );
    desk.status(
        &room,
        &Tracker::default()
            .handle(RoomEvent::ConnectionCreated(Origin::Local))
            .expect("u"),
    )
    .await
    .expect("the refreshed participant is still in");
    w.clock.advance(Duration::from_secs(300));
    assert!(matches!(
        desk.refresh(&room).await,
        Err(ReportError::Api {
            status: 410,
            errno: Some(111),
            ..
        })
    ));
    assert_error(
        &ok(desk
            .send(
                "POST",
                &format!("/rooms/{room}"),
                Some(&status_body("waiting", 1, 0, 0)),
            )
            .await),
        400,
        203,
    );
    let m = metrics(&w, &room).await;
    assert_eq!(m["expirations"], 2);
    assert_eq!(m["failedSessions"], 2);
    assert_eq!(m["failed"], true);
    w.server.shutdown().await.expect("shutdown");
}

async fn capacity_rules(backend: Backend) {
    let w = World::new(backend).await;
    let owner = w.hawk_user().await;
    let room = w.room(&owner, json!({"roomName": "r", "maxSize": 2})).await;
    // One spot is kept for the owner: with maxSize 2 one guest fits, a second does not.
    w.client(ClientAuth::None)
        .join(&room, "a", 5)
        .await
        .expect("first guest");
    assert!(matches!(
        w.client(ClientAuth::None).join(&room, "b", 5).await,
        Err(ReportError::Api {
            status: 400,
            errno: Some(202),
            ..
        })
    ));
    // The owner still fits, but not with clientMaxSize 1 (one other participant).
    assert!(matches!(
        owner.join(&room, "owner", 1).await,
        Err(ReportError::Api {
            status: 400,
            errno: Some(121),
            ..
        })
    ));
    owner.join(&room, "owner", 2).await.expect("owner joins");
    // Rejoining does not count against yourself.
    owner
        .join(&room, "owner again", 2)
        .await
        .expect("owner rejoins");
    let path = format!("/rooms/{room}");
    assert_error(
        &ok(owner
            .send(
                "POST",
                &path,
                Some(&json!({"action": "join", "displayName": "x"})),
            )
            .await),
        400,
        108,
    );
    assert_error(
        &ok(owner
            .send(
                "POST",
                &path,
                Some(&json!({"action": "join", "displayName": "x", "clientMaxSize": "lots"})),
            )
            .await),
        400,
        107,
    );
    w.server.shutdown().await.expect("shutdown");
}

async fn hawk_replay_and_payload_hash(backend: Backend) {
    let w = World::new(backend).await;
    let creds = w
        .client(ClientAuth::None)
        .register()
        .await
        .expect("register");
    let owner = w.client(ClientAuth::Hawk(creds.clone()));
    let room = w.room(&owner, json!({"roomName": "r"})).await;
    let path = format!("/rooms/{room}");
    let body = json!({"action": "join", "displayName": "o", "clientMaxSize": 2}).to_string();
    let port = w.server.addr.port();
    let target = huddle_room_metrics::hawk_auth::RequestTarget {
        method: "POST",
        host: "127.0.0.1",
        port,
        resource: &path,
    };
    let hash = huddle_room_metrics::hawk_auth::payload_hash("application/json", body.as_bytes());
    // The server's own clock (set from the wall clock when the world was made): a
    // wall-clock reading taken now may be a second or more ahead of it, and then
    // `ts - 61` below is not yet stale to the server.
    let ts = huddle_room_metrics::server::Clock::now_ms(w.clock.as_ref()) / 1000;
    let header = huddle_room_metrics::hawk_auth::sign_request(
        &creds,
        target,
        ts,
        "n0nce1",
        Some(&hash),
        None,
    )
    .expect("sign");
    let raw = |body: String, header: String| {
        let w = &w;
        let path = path.clone();
        async move {
            let http = w.client(ClientAuth::None);
            http.send_raw_with_authorization(
                "POST",
                &path,
                "application/json",
                Bytes::from(body),
                &header,
            )
            .await
            .expect("answer")
        }
    };
    let first = raw(body.clone(), header.clone()).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert!(first.headers.contains_key("server-authorization"));
    let replay = raw(body.clone(), header.clone()).await;
    assert_error(&replay, 401, 110);
    assert_eq!(json_of(&replay)["error"], "Replayed nonce");
    let header2 = huddle_room_metrics::hawk_auth::sign_request(
        &creds,
        target,
        ts,
        "n0nce2",
        Some(&hash),
        None,
    )
    .expect("sign");
    let tampered = raw(body.replace("\"o\"", "\"x\""), header2).await;
    assert_error(&tampered, 401, 110);
    assert_eq!(json_of(&tampered)["error"], "Bad payload hash");
    let stale_header = huddle_room_metrics::hawk_auth::sign_request(
        &creds,
        target,
        ts - 61,
        "n0nce3",
        Some(&hash),
        None,
    )
    .expect("sign");
    let stale = raw(body.clone(), stale_header).await;
    assert_eq!(json_of(&stale)["error"], "Stale timestamp");
    let unknown = huddle_room_metrics::hawk_auth::HawkCredentials::from_session_token(b"nobody");
    let h = huddle_room_metrics::hawk_auth::sign_request(&unknown, target, ts, "n", None, None)
        .expect("sign");
    assert_eq!(
        json_of(&raw(body.clone(), h).await)["error"],
        "Unknown credentials"
    );
    let basic_wrong = raw(body.clone(), "Bearer abc".into()).await;
    assert_error(&basic_wrong, 401, 110);
    assert_eq!(json_of(&basic_wrong)["error"], "Unsupported");
    w.server.shutdown().await.expect("shutdown");

    // loop-server compatibility: replays and wrong hashes pass.
    let compat = ServerConfig {
        hawk_policy: HawkPolicy::loop_server_compatible(),
        ..ServerConfig::default()
    };
    let w = World::with_config(backend, compat).await;
    let creds = w
        .client(ClientAuth::None)
        .register()
        .await
        .expect("register");
    let owner = w.client(ClientAuth::Hawk(creds.clone()));
    let room = w.room(&owner, json!({"roomName": "r"})).await;
    let path = format!("/rooms/{room}");
    let target = huddle_room_metrics::hawk_auth::RequestTarget {
        method: "POST",
        host: "127.0.0.1",
        port: w.server.addr.port(),
        resource: &path,
    };
    let header =
        huddle_room_metrics::hawk_auth::sign_request(&creds, target, ts, "same", Some(&hash), None)
            .expect("sign");
    let http = w.client(ClientAuth::None);
    for body in [body.clone(), body.clone(), body.replace("\"o\"", "\"x\"")] {
        let a = http
            .send_raw_with_authorization(
                "POST",
                &path,
                "application/json",
                Bytes::from(body),
                &header,
            )
            .await
            .expect("answer");
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    }
    w.server.shutdown().await.expect("shutdown");
}

async fn hostile_input(backend: Backend) {
    let w = World::new(backend).await;
    let owner = w.hawk_user().await;
    let room = w.room(&owner, json!({"roomName": "r"})).await;
    let joined = w
        .client(ClientAuth::None)
        .join(&room, "guest", 2)
        .await
        .expect("join");
    let guest = w.client(ClientAuth::Basic(joined.session_token));
    let path = format!("/rooms/{room}");
    let raw = |body: Vec<u8>| {
        let guest = guest.clone();
        let path = path.clone();
        async move {
            let auth = guest.auth.clone();
            guest
                .send_raw("POST", &path, "application/json", Bytes::from(body), &auth)
                .await
                .expect("answer")
        }
    };
    // Too large: the answer reaches a client still sending (the server reads on, and
    // drops, up to 1 MiB of a refused body, so the connection is not reset under it).
    for size in [64 * 1024, 768 * 1024] {
        let big = format!(
            "{{\"action\":\"status\",\"event\":\"{}\"}}",
            "x".repeat(size)
        );
        assert_error(&raw(big.into_bytes()).await, 413, 113);
    }
    // Not JSON, truncated JSON, a number out of range.
    assert_error(&raw(b"{not json".to_vec()).await, 400, 106);
    assert_error(&raw(b"{\"action\":\"status\"".to_vec()).await, 400, 106);
    assert_error(
        &raw(b"{\"action\":\"status\",\"connections\":1e400}".to_vec()).await,
        400,
        106,
    );
    // Wrong types and huge values.
    let mut b = status_body("sendrecv", 1, 1, 1);
    b["connections"] = json!(true);
    assert_error(&ok(guest.send("POST", &path, Some(&b)).await), 400, 107);
    b["connections"] = json!({"a": 1});
    assert_error(&ok(guest.send("POST", &path, Some(&b)).await), 400, 107);
    b["connections"] = json!("99999999999999999999999999999");
    assert_eq!(ok(guest.send("POST", &path, Some(&b)).await).status, 204);
    b["connections"] = json!(1e300);
    assert_eq!(ok(guest.send("POST", &path, Some(&b)).await).status, 204);
    b["state"] = json!(["not", "text"]);
    assert_eq!(ok(guest.send("POST", &path, Some(&b)).await).status, 204);
    // Unknown and missing actions; a JSON array body.
    assert_error(
        &ok(guest.send("POST", &path, Some(&json!({"action": 7}))).await),
        400,
        107,
    );
    assert_error(&raw(b"[1,2,3]".to_vec()).await, 400, 108);
    // Unsupported scheme, garbage Basic.
    let bad = w.client(ClientAuth::Basic("nope".into()));
    assert_error(
        &ok(bad
            .send("POST", &path, Some(&status_body("init", 0, 0, 0)))
            .await),
        401,
        110,
    );
    // A flood of status posts: all answered, memory per room bounded.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let guest = guest.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..100 {
                let a = guest
                    .send(
                        "POST",
                        &path,
                        Some(&status_body(&format!("junk {i} {j}"), 1, 0, 0)),
                    )
                    .await
                    .expect("answer");
                assert_eq!(a.status, 204);
            }
        }));
    }
    for t in tasks {
        t.await.expect("flood task");
    }
    let m = metrics(&w, &room).await;
    assert_eq!(m["statusUpdates"], 803);
    assert_eq!(m["history"].as_array().map(Vec::len), Some(64));
    assert!(m["timeInStateMs"].as_object().is_some_and(|o| o.len() <= 8));
    // Other rooms are unaffected.
    let other = w.room(&owner, json!({"roomName": "other"})).await;
    w.client(ClientAuth::None)
        .join(&other, "x", 2)
        .await
        .expect("join other");
    w.server.shutdown().await.expect("shutdown");
}

/// A refused body (413) does not cost the client its connection: the server reads the
/// rest of it, so the next request on the same keep-alive connection is answered
/// (before, the server closed it, and an HTTP client that reused the pooled connection
/// got a send error instead of an answer: `hostile_input` failed that way under load).
async fn a_refused_body_keeps_the_connection(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new(backend).await;
    let mut tcp = tokio::net::TcpStream::connect(w.server.addr)
        .await
        .expect("connect");
    let body = vec![b'x'; 200 * 1024];
    let head = format!(
        "POST /rooms/abc HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        w.server.addr,
        body.len()
    );
    let ask = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", w.server.addr);
    // Both requests written at once, as a pipelining client would; the server answers
    // them in order on the one connection.
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out.extend_from_slice(ask.as_bytes());
    let (mut rd, mut wr) = tcp.split();
    let write = async {
        wr.write_all(&out).await.expect("write");
    };
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.windows(12).filter(|w| *w == b"HTTP/1.1 413").count() == 0
            || got
                .windows(9)
                .filter(|w| w.starts_with(b"HTTP/1.1 "))
                .count()
                < 2
        {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), rd.read(&mut buf))
                .await
                .expect("an answer within 10 s")
                .expect("read");
            assert!(
                n > 0,
                "connection closed after: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        got
    };
    let ((), got) = tokio::join!(write, read);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    drop(tcp);
    w.server.shutdown().await.expect("shutdown");
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Embedded).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Redis).await;
                }
            )*
        }
    };
}

both_backends!(
    a_refused_body_keeps_the_connection,
    full_rooms_api,
    participants_expire_after_300_s,
    capacity_rules,
    hawk_replay_and_payload_hash,
    hostile_input,
);
