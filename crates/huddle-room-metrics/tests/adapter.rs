//! The session adapter over a real Carrier session pair on loopback: each side's events go
//! through a `SessionAdapter`, and the status updates its tracker posts are checked event
//! by event (connections, sent and received streams, a rejected stream that counts for
//! nothing, the session's end).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use huddle_jingle::{Iq, Jid};
use huddle_room_metrics::adapter::SessionAdapter;
use huddle_room_metrics::tracker::{RoomState, StatusUpdate, Tracker, Variant};
use huddle_session::carrier::driver::{AppEvent, CarrierEndpoint};
use huddle_session::carrier::{
    CarrierEvent, CarrierManager, SessionId, StreamId, StreamOptions, StreamState, StreamType,
};
use huddle_session::jingle::{self, Config, SessionState};
use huddle_session::signaling::ChannelSignaling;
use tokio::sync::mpsc;

const ALICE: &str = "alice@example.com/a";
const BOB: &str = "bob@example.com/b";
const DEADLINE: Duration = Duration::from_secs(10);

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("jid")
}

/// An endpoint whose Carrier events all go through an adapter.
struct Side {
    ep: CarrierEndpoint,
    adapter: SessionAdapter,
    posted: Vec<StatusUpdate>,
    log: Vec<CarrierEvent>,
}

impl Side {
    /// Drives the endpoint until `f` accepts an event (events before it are adapted too).
    async fn until<T>(&mut self, what: &str, mut f: impl FnMut(&CarrierEvent) -> Option<T>) -> T {
        let fut = async {
            loop {
                let ev = self.ep.next_event().await.expect("driver running");
                if let AppEvent::Carrier(ev) = ev {
                    self.posted.extend(self.adapter.handle_carrier(&ev));
                    self.log.push(ev.clone());
                    if let Some(t) = f(&ev) {
                        return t;
                    }
                }
            }
        };
        tokio::time::timeout(DEADLINE, fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:#?}", self.log))
    }

    fn state_seen(&self, s: SessionId, st: StreamId, state: StreamState) -> bool {
        self.log.iter().any(|e| {
            *e == CarrierEvent::StreamState {
                session: s,
                stream: st,
                state,
            }
        })
    }

    async fn until_state(&mut self, s: SessionId, st: StreamId, state: StreamState) {
        if self.state_seen(s, st, state) {
            return;
        }
        self.until(&format!("{st:?} {state:?}"), |e| {
            (*e == CarrierEvent::StreamState {
                session: s,
                stream: st,
                state,
            })
            .then_some(())
        })
        .await;
    }
}

fn pair() -> (Side, Side) {
    let (a_out, mut a_out_rx) = mpsc::unbounded_channel::<Iq>();
    let (b_out, mut b_out_rx) = mpsc::unbounded_channel::<Iq>();
    let (a_in, a_in_rx) = mpsc::unbounded_channel::<Iq>();
    let (b_in, b_in_rx) = mpsc::unbounded_channel::<Iq>();
    tokio::spawn(async move {
        while let Some(mut iq) = a_out_rx.recv().await {
            iq.from = Some(jid(ALICE));
            let _ = b_in.send(iq);
        }
    });
    tokio::spawn(async move {
        while let Some(mut iq) = b_out_rx.recv().await {
            iq.from = Some(jid(BOB));
            let _ = a_in.send(iq);
        }
    });
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let side = |me: &str, out, rx| Side {
        ep: CarrierEndpoint::spawn(
            CarrierManager::new(Config::new(jid(me))),
            ChannelSignaling::new(jid(me), out, rx),
            lo,
        ),
        adapter: SessionAdapter::new(Tracker::new(Variant::WithCleanup)),
        posted: Vec::new(),
        log: Vec::new(),
    };
    (side(ALICE, a_out, a_in_rx), side(BOB, b_out, b_in_rx))
}

fn up(event: &'static str, state: RoomState, c: u32, s: u32, r: u32) -> StatusUpdate {
    StatusUpdate {
        event,
        state,
        connections: c,
        send_streams: s,
        recv_streams: r,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_session_pair_reports_connections_and_streams() {
    let (mut a, mut b) = pair();
    let s = a.ep.with(|m| {
        let s = m.new_session(jid(BOB));
        m.add_stream(s, StreamType::Audio, StreamOptions::default())
            .expect("add");
        m.add_stream(s, StreamType::Application, StreamOptions::full())
            .expect("add");
        m.add_stream(s, StreamType::Video, StreamOptions::default())
            .expect("add");
        m.request(s).expect("request");
        s
    });
    let (bs, offer) = b
        .until("request", |e| match e {
            CarrierEvent::SessionRequest { session, offer, .. } => Some((*session, offer.clone())),
            _ => None,
        })
        .await;
    // Bob takes audio and application; the video stream is refused.
    b.ep.with(|m| {
        m.add_stream(bs, StreamType::Audio, StreamOptions::default())
            .expect("add");
        m.add_stream(bs, StreamType::Application, StreamOptions::full())
            .expect("add");
    });
    b.until_state(bs, StreamId(0), StreamState::TransportReady)
        .await;
    b.until_state(bs, StreamId(1), StreamState::TransportReady)
        .await;
    b.ep.with(|m| {
        m.reply_request(bs, 0, None).expect("reply");
        m.start(bs, &offer).expect("start");
    });
    let answer = a
        .until("answer", |e| match e {
            CarrierEvent::RequestCompleted {
                answer: Some(x), ..
            } => Some(x.clone()),
            _ => None,
        })
        .await;
    a.ep.with(|m| m.start(s, &answer)).expect("start");
    for st in [StreamId(0), StreamId(1)] {
        a.until_state(s, st, StreamState::Connected).await;
        b.until_state(bs, st, StreamState::Connected).await;
    }
    a.until_state(s, StreamId(2), StreamState::Deactivated)
        .await;

    // Both sides posted the same story: our connection, the peer's, then two streams
    // sent and received. The deactivated stream counts for nothing.
    let expected_up = [
        up("Session.connectionCreated", RoomState::Waiting, 1, 0, 0),
        up("Session.connectionCreated", RoomState::Starting, 2, 0, 0),
        up("Publisher.streamCreated", RoomState::Sending, 2, 1, 0),
        up("Session.streamCreated", RoomState::SendRecv, 2, 1, 1),
        up("Publisher.streamCreated", RoomState::SendRecv, 2, 2, 1),
        up("Session.streamCreated", RoomState::SendRecv, 2, 2, 2),
    ];
    assert_eq!(a.posted, expected_up);
    assert_eq!(b.posted, expected_up);

    // Alice ends the session: streams, the peer's connection, then ours go away.
    a.ep.with(|m| m.close_session(s)).expect("close");
    a.until("closed", |e| {
        matches!(e, CarrierEvent::SessionClosed { .. }).then_some(())
    })
    .await;
    b.until("closed", |e| {
        matches!(e, CarrierEvent::SessionClosed { .. }).then_some(())
    })
    .await;
    let expected_down = [
        up("Publisher.streamDestroyed", RoomState::SendRecv, 2, 1, 2),
        up("Session.streamDestroyed", RoomState::SendRecv, 2, 1, 1),
        up("Publisher.streamDestroyed", RoomState::Receiving, 2, 0, 1),
        up("Session.streamDestroyed", RoomState::Starting, 2, 0, 0),
        up("Session.connectionDestroyed", RoomState::Starting, 1, 0, 0),
        up("Session.connectionDestroyed", RoomState::Cleanup, 0, 0, 0),
    ];
    assert_eq!(&a.posted[expected_up.len()..], &expected_down);
    assert_eq!(&b.posted[expected_up.len()..], &expected_down);
    assert_eq!(a.adapter.tracker().spurious_destroys(), 0);
}

#[test]
fn jingle_sessions_count_as_connections_once() {
    let mut ad = SessionAdapter::new(Tracker::new(Variant::Shipped));
    let active = |sid: &str| jingle::Event::StateChanged {
        sid: sid.into(),
        old: SessionState::Pending,
        new: SessionState::Active,
    };
    let ended = |sid: &str| jingle::Event::Terminated {
        sid: sid.into(),
        peer: jid(BOB),
        initiator: true,
        reason: None,
        by_peer: true,
    };
    let mut posted = Vec::new();
    posted.extend(ad.handle_jingle(&active("s1")));
    posted.extend(ad.handle_jingle(&active("s2")));
    // A session that never came up ends without a destroy.
    posted.extend(ad.handle_jingle(&ended("never-up")));
    posted.extend(ad.handle_jingle(&ended("s1")));
    posted.extend(ad.handle_jingle(&ended("s2")));
    let names: Vec<(&str, u32)> = posted.iter().map(|u| (u.event, u.connections)).collect();
    assert_eq!(
        names,
        [
            ("Session.connectionCreated", 1),
            ("Session.connectionCreated", 2),
            ("Session.connectionCreated", 3),
            ("Session.connectionDestroyed", 2),
            ("Session.connectionDestroyed", 1),
            // The shipped client posts nothing for its own connection going away.
        ]
    );
    assert_eq!(ad.tracker().counters().connections, 0);
    assert_eq!(ad.tracker().spurious_destroys(), 0);
}
