//! `huddle demo`: on loopback, with no set-up, start a relay and a rooms server, then
//! peers that use them; print what each step verified; exit 3 if a check failed.
//!
//! Steps: the relay (huddle-transport) with its Prometheus endpoint; the rooms server
//! (huddle-room-metrics, embedded store in a temporary directory); a CPIM chat through
//! the relay (both peers behind it, RFC 4976), once with the one-line rendezvous of
//! `huddle chat` and once negotiated over Jingle on the in-memory signaling hub; a file transfer through the relay with a
//! progress bar and a verified SHA-1 (RFC 5547); a Message-mode custom session (AIMCC)
//! with three invited participants, one ejected, negotiated over Jingle on the in-memory
//! signaling hub; a Carrier session with two streams (plain and multiplexed) and two
//! channels; room status reported by the tracker and read back from `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use bytes::Bytes;
use clap::Args;
use huddle_jingle::Jid;
use huddle_room_metrics::reporter::{
    ClientAuth, Reporter, ReporterConfig, ReporterEvent, RoomClient,
};
use huddle_room_metrics::server::{self, AppState, ServerConfig, SystemClock};
use huddle_room_metrics::store::EmbeddedStore;
use huddle_room_metrics::tracker::{Origin, RoomEvent, RoomState, Tracker};
use huddle_session::custom::{
    CapabilityUuid, CustomEndpoint, CustomId, CustomState, EndpointConfig, Event, Mode,
};
use huddle_session::msrp::driver::spawn;
use huddle_session::msrp::file::FileOffer;
use huddle_session::msrp::{MessageOutcome, MsrpEvent, SendOptions};
use huddle_session::signaling::{ChannelSignaling, HubEndpoint, SignalingHub};
use huddle_transport::relay::server::{CredentialStore, RelayMetrics};
use indicatif::ProgressBar;
use sha1::Digest as _;
use tokio::sync::mpsc;

use crate::endpoint::{self, Established, LinkArgs, Received, Role};
use crate::relay::{RelayArgs, RunningRelay};

/// `huddle demo` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Size of the file sent in the file-transfer step, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub(crate) file_size: usize,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// One step's outcome.
struct Step {
    name: &'static str,
    result: Result<String>,
    took: Duration,
}

/// How long any one step may take.
const STEP_DEADLINE: Duration = Duration::from_secs(15);

async fn step<F>(name: &'static str, f: F) -> Step
where
    F: std::future::Future<Output = Result<String>>,
{
    let start = Instant::now();
    let result = match tokio::time::timeout(STEP_DEADLINE, f).await {
        Ok(r) => r,
        Err(_) => Err(anyhow!("did not finish within {STEP_DEADLINE:?}")),
    };
    let s = Step {
        name,
        result,
        took: start.elapsed(),
    };
    match &s.result {
        Ok(what) => println!("[ ok ] {:<14} {what} ({:.0?})", s.name, s.took),
        Err(e) => println!("[FAIL] {:<14} {e:#} ({:.0?})", s.name, s.took),
    }
    s
}

struct Fixture {
    relay: RunningRelay,
    relay_uri: String,
    rooms_url: String,
    rooms_stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: PathBuf,
}

pub(crate) async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = std::env::temp_dir().join(format!("huddle-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!(
        "huddle demo: everything on 127.0.0.1, scratch files in {}",
        dir.display()
    );
    let started = Instant::now();
    let mut steps = Vec::new();

    let mut fixture = None;
    steps.push(
        step("relay+rooms", async {
            let f = start_servers(&dir).await?;
            let what = format!(
                "relay at {} (metrics http://{}/metrics), rooms server at {}",
                f.relay_uri,
                f.relay
                    .metrics_addr
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                f.rooms_url
            );
            fixture = Some(f);
            Ok(what)
        })
        .await,
    );
    if let Some(f) = &fixture {
        steps.push(step("chat", chat_through_relay(f)).await);
        steps.push(step("jingle chat", jingle_chat_through_relay(f)).await);
        steps.push(step("file", file_through_relay(f, args.file_size, args.quiet)).await);
        steps.push(step("relay metrics", relay_metrics(f)).await);
        steps.push(step("custom session", custom_message_session()).await);
        steps.push(step("carrier", carrier_session()).await);
        steps.push(step("room metrics", room_metrics(f)).await);
    }
    if let Some(mut f) = fixture {
        if let Some(stop) = f.rooms_stop.take() {
            let _ = stop.send(());
        }
        f.relay.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let failed = steps.iter().filter(|s| s.result.is_err()).count();
    println!(
        "huddle demo: {} of {} steps verified in {:.1?}",
        steps.len() - failed,
        steps.len(),
        started.elapsed()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        for s in steps.iter().filter(|s| s.result.is_err()) {
            eprintln!("huddle demo: step `{}` failed after {:.1?}", s.name, s.took);
        }
        ExitCode::from(crate::EXIT_VERIFY)
    })
}

const DEMO_PASSWORD: &str = "demo-password";

async fn start_servers(dir: &Path) -> Result<Fixture> {
    let mut credentials = CredentialStore::new();
    credentials.insert("*", DEMO_PASSWORD);
    let args = RelayArgs {
        listen: Some("127.0.0.1:0".parse()?),
        metrics_listen: Some("127.0.0.1:0".parse()?),
        realm: Some("huddle-demo".into()),
        ..RelayArgs::default()
    };
    let relay = RunningRelay::start(&args, credentials).await?;
    let relay_uri = relay.server.uri().to_string();

    let data = dir.join("rooms-data");
    std::fs::create_dir_all(&data)?;
    let store = Arc::new(EmbeddedStore::open(&data).context("embedded store")?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let rooms_url = format!("http://{}", listener.local_addr()?);
    let state = AppState::new(store, ServerConfig::default(), Arc::new(SystemClock));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, state, async {
        let _ = rx.await;
    }));
    Ok(Fixture {
        relay,
        relay_uri,
        rooms_url,
        rooms_stop: Some(tx),
        dir: dir.to_path_buf(),
    })
}

fn relay_link(f: &Fixture, user: &str) -> LinkArgs {
    LinkArgs {
        offer: None,
        offer_file: None,
        listen: "127.0.0.1:0".parse().expect("an address"),
        relay: Some(f.relay_uri.clone()),
        user: user.to_owned(),
        password: DEMO_PASSWORD.to_owned(),
        timeout: 10,
    }
}

/// Both peers through the relay: the offer/answer lines go over in-memory channels.
async fn pair(
    f: &Fixture,
    offerer_attrs: Vec<huddle_msrp::sdp::Attribute>,
    answerer_attrs: Vec<huddle_msrp::sdp::Attribute>,
) -> Result<(Established, Established)> {
    let (offer_tx, mut offer_rx) = mpsc::channel::<String>(1);
    let (answer_tx, mut answer_rx) = mpsc::channel::<String>(1);
    let alice_link = relay_link(f, "alice");
    let bob_link = relay_link(f, "bob");
    let alice = async {
        let mut publish = move |l: String| {
            let _ = offer_tx.try_send(l);
        };
        endpoint::establish(
            &alice_link,
            Role::Offer(&mut answer_rx),
            offerer_attrs,
            &mut publish,
        )
        .await
    };
    let bob = async {
        let offer = offer_rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("no offer line"))?;
        let mut publish = move |l: String| {
            let _ = answer_tx.try_send(l);
        };
        endpoint::establish(&bob_link, Role::Answer(offer), answerer_attrs, &mut publish).await
    };
    let (a, b) = tokio::join!(alice, bob);
    Ok((a?, b?))
}

async fn next_message(
    h: &mut huddle_session::msrp::driver::MsrpSessionHandle,
) -> Result<(String, Bytes)> {
    loop {
        match h.next_event().await {
            Some(MsrpEvent::Message {
                content_type, body, ..
            }) => return Ok((content_type, body)),
            Some(MsrpEvent::Closed) | None => bail!("the session closed"),
            Some(_) => {}
        }
    }
}

async fn chat_through_relay(f: &Fixture) -> Result<String> {
    let (a, b) = pair(f, Vec::new(), Vec::new()).await?;
    let relayed = a.local_path.len() == 2 && b.local_path.len() == 2;
    ensure!(relayed, "both paths should start at the relay");
    let mut ha = spawn(a.io, endpoint_session(&a.local_path, &a.remote_path));
    let mut hb = spawn(b.io, endpoint_session(&b.local_path, &b.remote_path));
    let (_, outcome) = ha
        .deliver(
            "message/cpim",
            endpoint::cpim_text("alice", "bob", "hello bob, via the relay")?,
            SendOptions::default(),
        )
        .await?;
    ensure!(
        matches!(outcome, MessageOutcome::Delivered { .. }),
        "alice's message: {outcome:?}"
    );
    let (ct, body) = next_message(&mut hb).await?;
    let (from, text) = endpoint::chat_text(&ct, &body);
    ensure!(
        ct == "message/cpim" && from == "alice" && text == "hello bob, via the relay",
        "bob got {ct} from {from:?}: {text:?}"
    );
    hb.deliver(
        "message/cpim",
        endpoint::cpim_text("bob", "alice", "hi alice")?,
        SendOptions::default(),
    )
    .await?;
    let (ct, body) = next_message(&mut ha).await?;
    let (from, text) = endpoint::chat_text(&ct, &body);
    ensure!(
        from == "bob" && text == "hi alice",
        "alice got {from:?}: {text:?}"
    );
    let _ = ha.shutdown().await;
    let _ = hb.shutdown().await;
    Ok("alice and bob both behind the relay (a=path relay+peer), CPIM From/body checked both ways, 200s received".into())
}

fn endpoint_session(
    local: &[huddle_msrp::MsrpUri],
    remote: &[huddle_msrp::MsrpUri],
) -> huddle_session::msrp::MsrpSession {
    huddle_session::msrp::MsrpSession::new(huddle_session::msrp::MsrpConfig::new(
        local.to_vec(),
        remote.to_vec(),
    ))
}

/// Deterministic pseudo-random bytes (xorshift), so the file is not trivially compressible.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

async fn file_through_relay(f: &Fixture, size: usize, quiet: bool) -> Result<String> {
    let src = f.dir.join("demo-source.bin");
    let dst = f.dir.join("demo-received.bin");
    let data = pseudo_random(size, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(&src, &data)?;
    let _ = std::fs::remove_file(&dst);
    let offer = FileOffer::for_file(&src, "application/octet-stream")
        .map_err(|e| anyhow!("describing the file: {e}"))?;
    let (a, b) = pair(f, offer.to_attributes(), Vec::new()).await?;
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        crate::endpoint::progress_bar_for(size as u64)
    };
    let hidden = ProgressBar::hidden();
    let (sent, received) = tokio::join!(
        endpoint::send_over(a, &offer, &src, None, &bar),
        endpoint::receive_over(b, &dst, 0, &hidden)
    );
    let sent = sent?;
    let received = received?;
    let Received::Complete {
        size: got,
        verified: true,
        ..
    } = received
    else {
        bail!("the receiver reports {received:?}");
    };
    ensure!(
        got == size as u64 && sent.size == size as u64,
        "sizes {got} / {}",
        sent.size
    );
    let on_disk = std::fs::read(&dst)?;
    ensure!(on_disk == data, "the received bytes differ");
    let digest = sha1::Sha1::digest(&on_disk);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{} bytes through the relay, SHA-1 {} verified against a=file-selector",
        size,
        &hex[..12]
    ))
}

async fn relay_metrics(f: &Fixture) -> Result<String> {
    let Some(addr) = f.relay.metrics_addr else {
        bail!("no metrics endpoint");
    };
    let text = http_get(&format!("http://{addr}/metrics")).await?;
    let value = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    let sessions = value("huddle_relay_sessions_created_total").unwrap_or(0);
    let sends = value("huddle_relay_sends_forwarded_total").unwrap_or(0);
    ensure!(sessions >= 4, "sessions_created {sessions}, want >= 4");
    ensure!(sends >= 4, "sends_forwarded {sends}");
    let direct: Option<RelayMetrics> = f.relay.server.metrics().await;
    ensure!(
        direct.is_some_and(|m| m.sessions_created == sessions),
        "the endpoint and the relay disagree"
    );
    Ok(format!(
        "GET /metrics: {sessions} sessions granted, {sends} SEND chunks forwarded"
    ))
}

/// A small HTTP/1.1 GET on loopback (no client library needed for the demo).
pub(crate) async fn http_get(url: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not an http URL: {url}"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP header"))?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {url}: {}",
        head.lines().next().unwrap_or("")
    );
    // Chunked bodies: the Prometheus text never contains a line that is only hex, so
    // dropping the chunk-size lines is enough for the demo's checks.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(body
            .split("\r\n")
            .filter(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_hexdigit()))
            .collect::<Vec<_>>()
            .join("\n"));
    }
    Ok(body.to_owned())
}

const DEMO_UUID: &str = "09461349-4c7f-11d1-8222-444553540000";

struct Party {
    ep: CustomEndpoint<HubEndpoint>,
    log: Vec<Event>,
}

impl Party {
    fn new(hub: &SignalingHub, name: &str) -> Result<Party> {
        let mut ep = CustomEndpoint::new(hub.connect(Jid::new(name)?), EndpointConfig::default());
        ep.sessions()
            .add_capability(DEMO_UUID.parse::<CapabilityUuid>()?);
        Ok(Party {
            ep,
            log: Vec::new(),
        })
    }

    fn proposal(&self) -> Option<CustomId> {
        self.log.iter().find_map(|e| match e {
            Event::NewSession { id, .. } => Some(*id),
            _ => None,
        })
    }

    fn received(&self) -> Vec<(String, Bytes)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::DataReceived { from, data, .. } => Some((from.to_string(), data.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Drives every party until `done` holds.
async fn drive(parties: &mut [&mut Party], mut done: impl FnMut(&[&mut Party]) -> bool) {
    while !done(parties) {
        let (ev, i) = {
            let futs = parties.iter_mut().map(|p| Box::pin(p.ep.next_event()));
            let (ev, i, _rest) = futures_util::future::select_all(futs).await;
            (ev, i)
        };
        parties[i].log.push(ev);
    }
}

async fn custom_message_session() -> Result<String> {
    let hub = SignalingHub::new();
    let mut owner = Party::new(&hub, "owner@huddle.invalid/demo")?;
    let mut p1 = Party::new(&hub, "p1@huddle.invalid/demo")?;
    let mut p2 = Party::new(&hub, "p2@huddle.invalid/demo")?;
    let mut p3 = Party::new(&hub, "p3@huddle.invalid/demo")?;
    let uuid: CapabilityUuid = DEMO_UUID.parse()?;
    let id = owner.ep.sessions().create(uuid)?;
    owner.ep.sessions().set_mode(id, Mode::Message)?;
    owner.ep.sessions().set_name(id, "demo")?;
    for p in ["p1", "p2", "p3"] {
        owner
            .ep
            .invite(id, Jid::new(format!("{p}@huddle.invalid/demo"))?)
            .await?;
    }
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1..].iter().all(|x| x.proposal().is_some())
    })
    .await;
    let ids: Vec<CustomId> = [&p1, &p2, &p3]
        .iter()
        .map(|p| p.proposal().ok_or_else(|| anyhow!("no proposal")))
        .collect::<Result<_>>()?;
    for (p, pid) in [(&mut p1, ids[0]), (&mut p2, ids[1]), (&mut p3, ids[2])] {
        p.ep.accept(pid)?;
    }
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[0].ep.core().participants(id).map(|v| v.len()) == Ok(3)
            && p[1].ep.core().participants(ids[0]).map(|v| v.len()) == Ok(3)
            && p[2].ep.core().participants(ids[1]).map(|v| v.len()) == Ok(3)
            && p[3].ep.core().participants(ids[2]).map(|v| v.len()) == Ok(3)
    })
    .await;
    owner.ep.send_data(id, None, &b"hello all"[..])?;
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1..].iter().all(|x| !x.received().is_empty())
    })
    .await;
    let p3_jid = Jid::new("p3@huddle.invalid/demo")?;
    owner.ep.eject(id, &p3_jid)?;
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[3].ep.core().state(ids[2]) == Ok(CustomState::Ended)
            && p[0].ep.core().participants(id).map(|v| v.len()) == Ok(2)
    })
    .await;
    owner.ep.send_data(id, None, &b"without p3"[..])?;
    drive(&mut [&mut owner, &mut p1, &mut p2, &mut p3], |p| {
        p[1].received().len() == 2 && p[2].received().len() == 2
    })
    .await;
    ensure!(p3.received().len() == 1, "the ejected participant got more");
    let counts: BTreeMap<&str, usize> = [
        ("p1", p1.received().len()),
        ("p2", p2.received().len()),
        ("p3", p3.received().len()),
    ]
    .into_iter()
    .collect();
    Ok(format!(
        "Jingle proposal on the signaling hub, owner hosting 3 participants; p3 ejected; messages received {counts:?} (p3 nothing after ejection)"
    ))
}

async fn room_metrics(f: &Fixture) -> Result<String> {
    let anon = RoomClient::new(&f.rooms_url, ClientAuth::None)?;
    let creds = anon.register().await?;
    let owner = RoomClient::new(&f.rooms_url, ClientAuth::Hawk(creds.clone()))?;
    let answer = RoomClient::expect(
        owner
            .send(
                "POST",
                "/rooms",
                Some(&serde_json::json!({"roomName": "demo", "roomOwner": "huddle", "maxSize": 5})),
            )
            .await?,
    )?;
    let v: serde_json::Value = serde_json::from_slice(&answer.body)?;
    let room = v["roomToken"]
        .as_str()
        .ok_or_else(|| anyhow!("no roomToken in {v}"))?
        .to_owned();
    let mut last = RoomState::Init;
    let mut posted = 0;
    // The room owner (Hawk) and a guest (anonymous, then Basic with its sessionToken):
    // a room keeps a place for its owner (loop-server's rule).
    for (name, auth) in [
        ("alice", ClientAuth::Hawk(creds)),
        ("bob", ClientAuth::None),
    ] {
        let client = RoomClient::new(&f.rooms_url, auth)?;
        let (handle, mut events) = Reporter::spawn(client, ReporterConfig::new(&room, name));
        let mut tracker = Tracker::default();
        let mut want = 0;
        for ev in [
            RoomEvent::ConnectionCreated(Origin::Local),
            RoomEvent::ConnectionCreated(Origin::Peer),
            RoomEvent::PublisherStreamCreated,
            RoomEvent::StreamCreated,
        ] {
            if let Some(update) = tracker.handle(ev) {
                handle.status(update)?;
                want += 1;
            }
        }
        last = tracker.state();
        let mut got = 0;
        while got < want {
            match events.recv().await {
                Some(ReporterEvent::StatusPosted(_)) => got += 1,
                Some(ReporterEvent::Failed { action, error }) => bail!("{name}: {action}: {error}"),
                Some(_) => {}
                None => bail!("{name}: the reporter stopped"),
            }
        }
        posted += got;
    }
    let text = http_get(&format!("{}/metrics", f.rooms_url)).await?;
    let label = format!("room=\"{room}\"");
    let lines = text.lines().filter(|l| l.contains(&label)).count();
    ensure!(lines > 0, "/metrics has no line for room {room}");
    ensure!(
        text.lines()
            .any(|l| l.contains(&label) && l.contains(last.as_str())),
        "/metrics does not show room {room} in state {}",
        last.as_str()
    );
    Ok(format!(
        "owner and guest joined, the tracker posted {posted} status updates (state {}), /metrics shows {lines} lines for the room",
        last.as_str()
    ))
}

/// A Jingle party: session manager with huddle's MSRP description registered, on the hub.
struct JingleParty {
    manager: huddle_session::jingle::SessionManager,
    endpoint: HubEndpoint,
    msrp: huddle_session::msrp::jingle::MsrpJingle,
    events: Vec<huddle_session::jingle::Event>,
}

impl JingleParty {
    fn new(hub: &SignalingHub, jid: &str) -> Result<JingleParty> {
        let jid = Jid::new(jid)?;
        let mut cfg = huddle_session::jingle::Config::new(jid.clone());
        huddle_session::msrp::jingle::register_codec(&mut cfg.codec.registry);
        let mut manager = huddle_session::jingle::SessionManager::new(cfg);
        let msrp = huddle_session::msrp::jingle::MsrpJingle::new();
        msrp.register(&mut manager);
        Ok(JingleParty {
            manager,
            endpoint: hub.connect(jid),
            msrp,
            events: Vec::new(),
        })
    }
}

/// Moves IQs (as XML, parsed by the receiver's codec) until both sides are quiet.
fn exchange(a: &mut JingleParty, b: &mut JingleParty) -> Result<()> {
    use huddle_session::signaling::Signaling as _;
    loop {
        let now = std::time::Instant::now();
        let mut moved = false;
        for p in [&mut *a, &mut *b] {
            while let Some(iq) = p.manager.poll_transmit(now) {
                p.endpoint.send(iq)?;
            }
        }
        for p in [&mut *a, &mut *b] {
            while let Some(iq) = p.endpoint.try_recv() {
                moved = true;
                let _ = p.manager.handle_xml(iq.to_xml().as_bytes(), now);
            }
            while let Some(ev) = p.manager.poll_event() {
                p.events.push(ev);
            }
        }
        if !moved {
            return Ok(());
        }
    }
}

async fn jingle_chat_through_relay(f: &Fixture) -> Result<String> {
    use huddle_jingle::{Action, Creator};
    use huddle_session::jingle::Event as JEvent;
    use huddle_session::msrp::jingle::{content, descriptions};
    use huddle_session::msrp::negotiate::{MsrpDescription, MsrpNegotiation, Role as NegRole};
    use huddle_transport::msrp::connect::RelaySettings;
    use huddle_transport::msrp::{AcceptorRelay, ConnectorRelay, TransportOptions};

    let hub = SignalingHub::new();
    let mut alice = JingleParty::new(&hub, "alice@huddle.invalid/demo")?;
    let mut bob = JingleParty::new(&hub, "bob@huddle.invalid/demo")?;
    let settings = |user: &str| -> Result<RelaySettings> {
        Ok(RelaySettings {
            relay_uri: f.relay_uri.parse()?,
            username: user.to_owned(),
            password: DEMO_PASSWORD.to_owned(),
            expires: Some(600),
        })
    };
    let mut neg_a = MsrpNegotiation::new(
        ConnectorRelay::new(settings("alice")?, TransportOptions::default()),
        NegRole::Active,
    );
    let offer = neg_a.offer(MsrpDescription::chat()).await?;
    let sid = alice.manager.start(
        bob.manager.jid().clone(),
        vec![content(Creator::Initiator, "chat", &offer)],
    )?;
    exchange(&mut alice, &mut bob)?;
    let (name, their_offer) = bob
        .msrp
        .take_offer(&sid)
        .and_then(|o| o.into_iter().next())
        .ok_or_else(|| anyhow!("bob got no MSRP offer in the session-initiate"))?;
    let mut neg_b = MsrpNegotiation::new(
        AcceptorRelay::new(settings("bob")?, TransportOptions::default()),
        NegRole::Passive,
    );
    let answer = neg_b.answer(&their_offer, MsrpDescription::chat()).await?;
    bob.msrp.set_answer(&sid, vec![(name, answer)]);
    bob.manager.accept(&sid)?;
    exchange(&mut alice, &mut bob)?;
    let accept = alice
        .events
        .iter()
        .find_map(|e| match e {
            JEvent::Received { jingle, .. } if jingle.action == Action::SessionAccept => {
                Some(jingle.clone())
            }
            _ => None,
        })
        .ok_or_else(|| anyhow!("no session-accept"))?;
    let answers = descriptions(&accept).map_err(|e| anyhow!("the answer: {e}"))?;
    let their_answer = answers
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the session-accept has no MSRP description"))?
        .1;
    let (na, nb) = tokio::join!(neg_a.complete(&their_answer), neg_b.complete(&their_offer));
    let (ha, mut hb) = (na?.spawn(), nb?.spawn());
    let (_, outcome) = ha
        .deliver(
            "message/cpim",
            endpoint::cpim_text("alice", "bob", "negotiated over Jingle")?,
            SendOptions::default(),
        )
        .await?;
    ensure!(
        matches!(outcome, MessageOutcome::Delivered { .. }),
        "alice's message: {outcome:?}"
    );
    let (ct, body) = next_message(&mut hb).await?;
    let (from, text) = endpoint::chat_text(&ct, &body);
    ensure!(
        from == "alice" && text == "negotiated over Jingle",
        "bob got {from:?}: {text:?}"
    );
    let _ = ha.shutdown().await;
    let _ = hb.shutdown().await;
    alice.manager.end(&sid, None, false)?;
    exchange(&mut alice, &mut bob)?;
    ensure!(
        bob.events
            .iter()
            .any(|e| matches!(e, JEvent::Terminated { by_peer: true, .. })),
        "bob did not see the session-terminate"
    );
    Ok("session-initiate/accept on the signaling hub carrying urn:huddle:msrp:0 (a=path via the relay), CPIM delivered, session-terminate seen".into())
}

/// A Carrier endpoint and every event it reported so far.
struct CarrierParty {
    ep: huddle_session::carrier::driver::CarrierEndpoint,
    log: Vec<huddle_session::carrier::driver::AppEvent>,
}

impl CarrierParty {
    /// Waits for the first logged event (from the start) that `f` accepts.
    async fn wait<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&huddle_session::carrier::driver::AppEvent) -> Option<T>,
    ) -> Result<T> {
        let mut seen = 0;
        loop {
            while seen < self.log.len() {
                seen += 1;
                if let Some(t) = f(&self.log[seen - 1]) {
                    return Ok(t);
                }
            }
            let ev = self
                .ep
                .next_event()
                .await
                .ok_or_else(|| anyhow!("the Carrier driver stopped before {what}"))?;
            self.log.push(ev);
        }
    }

    async fn wait_state(
        &mut self,
        s: huddle_session::carrier::SessionId,
        st: huddle_session::carrier::StreamId,
        state: huddle_session::carrier::StreamState,
    ) -> Result<()> {
        use huddle_session::carrier::CarrierEvent;
        use huddle_session::carrier::driver::AppEvent;
        self.wait(&format!("{st:?} {state:?}"), |e| match e {
            AppEvent::Carrier(CarrierEvent::StreamState {
                session,
                stream,
                state: x,
            }) if *session == s && *stream == st && *x == state => Some(()),
            _ => None,
        })
        .await
    }

    async fn io(
        &mut self,
        s: huddle_session::carrier::SessionId,
        st: huddle_session::carrier::StreamId,
    ) -> Result<huddle_session::carrier::driver::StreamIo> {
        use huddle_session::carrier::driver::AppEvent;
        self.wait("stream io", |e| match e {
            AppEvent::Stream {
                session,
                stream,
                io,
            } if *session == s && *stream == st => Some(io.clone()),
            _ => None,
        })
        .await
    }
}

async fn carrier_session() -> Result<String> {
    use std::net::{IpAddr, Ipv4Addr};

    use huddle_jingle::Iq;
    use huddle_session::carrier::driver::{AppEvent, CarrierEndpoint, StreamIo, serve_services};
    use huddle_session::carrier::{
        CarrierEvent, CarrierManager, RemoteDescription, StreamId, StreamOptions, StreamState,
        StreamType,
    };
    use huddle_session::jingle::Config;
    use huddle_transport::mux::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const ALICE: &str = "alice@huddle.invalid/carrier";
    const BOB: &str = "bob@huddle.invalid/carrier";
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    // The signaling: an in-process router that stamps `from`, as an XMPP server does.
    let (a_out, mut a_out_rx) = mpsc::unbounded_channel::<Iq>();
    let (b_out, mut b_out_rx) = mpsc::unbounded_channel::<Iq>();
    let (a_in, a_in_rx) = mpsc::unbounded_channel::<Iq>();
    let (b_in, b_in_rx) = mpsc::unbounded_channel::<Iq>();
    let alice_jid = Jid::new(ALICE)?;
    let bob_jid = Jid::new(BOB)?;
    {
        let from = alice_jid.clone();
        tokio::spawn(async move {
            while let Some(mut iq) = a_out_rx.recv().await {
                iq.from = Some(from.clone());
                let _ = b_in.send(iq);
            }
        });
        let from = bob_jid.clone();
        tokio::spawn(async move {
            while let Some(mut iq) = b_out_rx.recv().await {
                iq.from = Some(from.clone());
                let _ = a_in.send(iq);
            }
        });
    }
    let mut a = CarrierParty {
        ep: CarrierEndpoint::spawn(
            CarrierManager::new(Config::new(alice_jid.clone())),
            ChannelSignaling::new(alice_jid, a_out, a_in_rx),
            loopback,
        ),
        log: Vec::new(),
    };
    let mut b = CarrierParty {
        ep: CarrierEndpoint::spawn(
            CarrierManager::new(Config::new(bob_jid.clone())),
            ChannelSignaling::new(bob_jid.clone(), b_out, b_in_rx),
            loopback,
        ),
        log: Vec::new(),
    };
    let plain = StreamOptions {
        reliable: true,
        multiplexing: false,
        port_forwarding: false,
    };
    let streams = [
        (StreamType::Text, plain),
        (StreamType::Application, StreamOptions::full()),
    ];
    let s = a.ep.with(|m| -> Result<_> {
        let s = m.new_session(bob_jid.clone());
        for (k, o) in streams {
            m.add_stream(s, k, o)
                .map_err(|e| anyhow!("add_stream: {e:?}"))?;
        }
        m.request(s).map_err(|e| anyhow!("request: {e:?}"))?;
        Ok(s)
    })?;
    let (bs, offer): (_, RemoteDescription) = b
        .wait("the session request", |e| match e {
            AppEvent::Carrier(CarrierEvent::SessionRequest { session, offer, .. }) => {
                Some((*session, offer.clone()))
            }
            _ => None,
        })
        .await?;
    b.ep.with(|m| -> Result<()> {
        for (k, o) in streams {
            m.add_stream(bs, k, o)
                .map_err(|e| anyhow!("add_stream: {e:?}"))?;
        }
        Ok(())
    })?;
    for i in 0..streams.len() {
        b.wait_state(bs, StreamId(i as u32), StreamState::TransportReady)
            .await?;
    }
    b.ep.with(|m| -> Result<()> {
        m.reply_request(bs, 0, None)
            .map_err(|e| anyhow!("reply: {e:?}"))?;
        m.start(bs, &offer).map_err(|e| anyhow!("start: {e:?}"))?;
        Ok(())
    })?;
    let answer = a
        .wait("the answer", |e| match e {
            AppEvent::Carrier(CarrierEvent::RequestCompleted {
                session,
                status: 0,
                answer: Some(answer),
                ..
            }) if *session == s => Some(answer.clone()),
            _ => None,
        })
        .await?;
    a.ep.with(|m| m.start(s, &answer))
        .map_err(|e| anyhow!("start: {e:?}"))?;
    for st in [StreamId(0), StreamId(1)] {
        a.wait_state(s, st, StreamState::Connected).await?;
        b.wait_state(bs, st, StreamState::Connected).await?;
    }
    // The plain stream: one message each way.
    let (StreamIo::Plain(pa), StreamIo::Plain(_pb)) =
        (a.io(s, StreamId(0)).await?, b.io(bs, StreamId(0)).await?)
    else {
        bail!("stream 0 is not a plain stream");
    };
    pa.write(&b"hello over the text stream"[..])
        .map_err(|e| anyhow!("write: {e:?}"))?;
    let got = b
        .wait("data", |e| match e {
            AppEvent::Data { session, data, .. } if *session == bs => Some(data.clone()),
            _ => None,
        })
        .await?;
    ensure!(&got[..] == b"hello over the text stream", "got {got:?}");
    // The multiplexed stream: two channels opened by Alice, accepted by Bob.
    let (StreamIo::Mux(ca), StreamIo::Mux(cb)) =
        (a.io(s, StreamId(1)).await?, b.io(bs, StreamId(1)).await?)
    else {
        bail!("stream 1 is not multiplexed");
    };
    let (other_tx, mut other_rx) = mpsc::unbounded_channel::<Incoming>();
    tokio::spawn(serve_services(cb, HashMap::new(), Some(other_tx)));
    let mut channels = 0;
    for service in ["chat", "files"] {
        let opener = {
            let ca = ca.clone();
            tokio::spawn(async move { ca.open(service).await })
        };
        let inc = other_rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("no incoming channel"))?;
        ensure!(inc.service() == service, "service {}", inc.service());
        let mut chb = inc.accept().map_err(|e| anyhow!("accept: {e:?}"))?;
        let mut cha = opener.await?.map_err(|e| anyhow!("open: {e:?}"))?;
        let msg = format!("data on the {service} channel");
        cha.write_all(msg.as_bytes()).await?;
        let mut buf = vec![0u8; msg.len()];
        chb.read_exact(&mut buf).await?;
        ensure!(buf == msg.as_bytes(), "channel {service} data differs");
        channels += 1;
    }
    a.ep.abort();
    b.ep.abort();
    Ok(format!(
        "offer/answer in Jingle contents, 2 streams connected (plain text, multiplexed), message on the plain stream, {channels} channels opened, accepted and carrying data"
    ))
}
