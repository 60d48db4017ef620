//! Restarting the embedded server keeps rooms and metrics; two instances on one Redis see
//! the same rooms; the reporter drives a participation against a real server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{RedisServer, TempDir, start, wall_ms};
use huddle_room_metrics::reporter::{
    ClientAuth, ReportError, Reporter, ReporterConfig, ReporterEvent, RetryPolicy, RoomClient,
};
use huddle_room_metrics::server::{ManualClock, ServerConfig};
use huddle_room_metrics::store::{EmbeddedStore, RedisStore, Store};
use huddle_room_metrics::tracker::{Origin, RoomEvent, Tracker, Variant};
use serde_json::{Value, json};

async fn create_room(client: &RoomClient) -> String {
    let a = client
        .send(
            "POST",
            "/rooms",
            Some(&json!({"roomName": "r", "roomOwner": "o", "maxSize": 5})),
        )
        .await
        .expect("answer");
    assert_eq!(a.status, 201);
    let v: Value = serde_json::from_slice(&a.body).expect("json");
    v["roomToken"].as_str().expect("token").to_owned()
}

async fn get_json(base: &str, path: &str) -> Value {
    let a = RoomClient::new(base, ClientAuth::None)
        .expect("client")
        .send("GET", path, None)
        .await
        .expect("answer");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    serde_json::from_slice(&a.body).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_restart_keeps_rooms_sessions_and_metrics() {
    let dir = TempDir::new("restart");
    let clock = Arc::new(ManualClock::new(wall_ms()));
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.0).expect("open"));
    let server = start(store, clock.clone(), ServerConfig::default()).await;
    let base = server.base_url();
    let anon = RoomClient::new(&base, ClientAuth::None).expect("client");
    let creds = anon.register().await.expect("register");
    let owner = RoomClient::new(&base, ClientAuth::Hawk(creds.clone())).expect("client");
    let room = create_room(&owner).await;
    let joined = anon.join(&room, "guest", 5).await.expect("join");
    let guest =
        RoomClient::new(&base, ClientAuth::Basic(joined.session_token.clone())).expect("client");
    let mut t = Tracker::new(Variant::Shipped);
    for e in [
        RoomEvent::ConnectionCreated(Origin::Local),
        RoomEvent::PublisherStreamCreated,
    ] {
        guest
            .status(&room, &t.handle(e).expect("update"))
            .await
            .expect("status");
    }
    let before = get_json(&base, &format!("/metrics/rooms/{room}")).await;
    server.shutdown().await.expect("shutdown");

    // A new process-equivalent: a new store over the same directory, a new server.
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.0).expect("reopen"));
    let server = start(store, clock.clone(), ServerConfig::default()).await;
    let base = server.base_url();
    let after = get_json(&base, &format!("/metrics/rooms/{room}")).await;
    assert_eq!(after["statusUpdates"], before["statusUpdates"]);
    assert_eq!(after["history"], before["history"]);
    assert_eq!(after["state"], "sending");
    // The Hawk session, the room and the guest's participation survived.
    let owner = RoomClient::new(&base, ClientAuth::Hawk(creds)).expect("client");
    let rooms = owner.send("GET", "/rooms", None).await.expect("answer");
    let rooms: Value = serde_json::from_slice(&rooms.body).expect("json");
    assert_eq!(rooms[0]["roomToken"], room.as_str());
    assert_eq!(rooms[0]["participants"].as_array().map(Vec::len), Some(1));
    let guest = RoomClient::new(&base, ClientAuth::Basic(joined.session_token)).expect("client");
    guest
        .status(&room, &t.handle(RoomEvent::StreamCreated).expect("update"))
        .await
        .expect("status after restart");
    let m = get_json(&base, &format!("/metrics/rooms/{room}")).await;
    assert_eq!(m["statusUpdates"], 3);
    assert_eq!(m["reachedSendrecv"], true);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_share_rooms_and_metrics() {
    let redis = RedisServer::start();
    let clock = Arc::new(ManualClock::new(wall_ms()));
    let a_store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&redis.url(), "").await.expect("redis"));
    let b_store: Arc<dyn Store> =
        Arc::new(RedisStore::connect(&redis.url(), "").await.expect("redis"));
    let a = start(a_store, clock.clone(), ServerConfig::default()).await;
    let b = start(b_store, clock.clone(), ServerConfig::default()).await;
    let (base_a, base_b) = (a.base_url(), b.base_url());

    // Registered on A, creates on A; B knows the session and the room.
    let creds = RoomClient::new(&base_a, ClientAuth::None)
        .expect("c")
        .register()
        .await
        .expect("register");
    let owner_a = RoomClient::new(&base_a, ClientAuth::Hawk(creds.clone())).expect("c");
    let owner_b = RoomClient::new(&base_b, ClientAuth::Hawk(creds)).expect("c");
    let room = create_room(&owner_a).await;
    let listed = owner_b.send("GET", "/rooms", None).await.expect("answer");
    let listed: Value = serde_json::from_slice(&listed.body).expect("json");
    assert_eq!(listed[0]["roomToken"], room.as_str());

    // Join through B, post status through both, concurrently.
    let joined = RoomClient::new(&base_b, ClientAuth::None)
        .expect("c")
        .join(&room, "g", 5)
        .await
        .expect("join");
    let ga = RoomClient::new(&base_a, ClientAuth::Basic(joined.session_token.clone())).expect("c");
    let gb = RoomClient::new(&base_b, ClientAuth::Basic(joined.session_token)).expect("c");
    let update = Tracker::default()
        .handle(RoomEvent::ConnectionCreated(Origin::Local))
        .expect("update");
    let mut tasks = Vec::new();
    for client in [ga.clone(), gb.clone()] {
        let (room, update) = (room.clone(), update.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                client.status(&room, &update).await.expect("status");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    // No update was lost between the instances (optimistic transactions).
    for base in [&base_a, &base_b] {
        let m = get_json(base, &format!("/metrics/rooms/{room}")).await;
        assert_eq!(m["statusUpdates"], 100, "{base}");
    }
    // Leave on A; B refuses the token.
    ga.leave(&room).await.expect("leave");
    assert!(matches!(
        gb.status(&room, &update).await,
        Err(ReportError::Api {
            status: 401,
            errno: Some(110),
            ..
        })
    ));
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
}

async fn next_event(rx: &mut tokio::sync::mpsc::Receiver<ReporterEvent>) -> ReporterEvent {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an event within 20 s")
        .expect("reporter alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporter_joins_posts_and_leaves() {
    let dir = TempDir::new("reporter");
    let clock = Arc::new(ManualClock::new(wall_ms()));
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.0).expect("open"));
    let server = start(store, clock, ServerConfig::default()).await;
    let base = server.base_url();
    let anon = RoomClient::new(&base, ClientAuth::None).expect("client");
    let owner =
        RoomClient::new(&base, ClientAuth::Hawk(anon.register().await.expect("reg"))).expect("c");
    let room = create_room(&owner).await;

    // A desktop client: Hawk, sessionToken in the body.
    let desk_creds = anon.register().await.expect("reg");
    let mut cfg = ReporterConfig::new(&room, "desk");
    cfg.session_token_in_body = true;
    let (handle, mut events) = Reporter::spawn(
        RoomClient::new(&base, ClientAuth::Hawk(desk_creds)).expect("c"),
        cfg,
    );
    assert!(matches!(next_event(&mut events).await, ReporterEvent::Joined(j) if j.expires == 300));
    let mut t = Tracker::new(Variant::Shipped);
    let u = t
        .handle(RoomEvent::ConnectionCreated(Origin::Local))
        .expect("update");
    handle.status(u.clone()).expect("queued");
    assert_eq!(
        next_event(&mut events).await,
        ReporterEvent::StatusPosted(u)
    );
    handle.leave().expect("queued");
    assert_eq!(next_event(&mut events).await, ReporterEvent::Left);

    // A standalone client: anonymous join, then Basic.
    let (handle, mut events) =
        Reporter::spawn(anon.clone(), ReporterConfig::new(&room, "standalone"));
    assert!(matches!(
        next_event(&mut events).await,
        ReporterEvent::Joined(_)
    ));
    let u = t.handle(RoomEvent::StreamCreated).expect("update");
    handle.status(u.clone()).expect("queued");
    assert_eq!(
        next_event(&mut events).await,
        ReporterEvent::StatusPosted(u)
    );
    handle.leave().expect("queued");
    assert_eq!(next_event(&mut events).await, ReporterEvent::Left);
    let m = get_json(&base, &format!("/metrics/rooms/{room}")).await;
    assert_eq!(
        (m["joins"].as_u64(), m["leaves"].as_u64()),
        (Some(2), Some(2))
    );
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn reporter_reports_an_unreachable_server_without_blocking() {
    // Nothing listens on this port.
    let port = common::free_port();
    let client = RoomClient::new(&format!("http://127.0.0.1:{port}"), ClientAuth::None)
        .expect("client")
        .with_timeout(Duration::from_secs(5));
    let mut cfg = ReporterConfig::new("room", "x");
    cfg.retry = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    cfg.queue = 1;
    let (handle, mut events) = Reporter::spawn(client, cfg);
    // Queuing never waits, whatever the server does.
    let u = Tracker::default()
        .handle(RoomEvent::ConnectionCreated(Origin::Local))
        .expect("update");
    let _ = handle.status(u.clone());
    let second = handle.status(u);
    assert!(
        matches!(second, Err(ReportError::QueueFull | ReportError::Closed)),
        "{second:?}"
    );
    let mut saw_join_failure = false;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
        if let ReporterEvent::Failed {
            action: "join",
            error: ReportError::Transport(_),
        } = e
        {
            saw_join_failure = true;
            break;
        }
    }
    assert!(saw_join_failure);
}
