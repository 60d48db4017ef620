//! Feeds the [`Tracker`] from huddle-session's events, so a huddle application reports
//! room metrics without wiring events by hand.
//!
//! The mapping (Loop's events are named after TokBox's):
//!
//! | huddle-session | room event |
//! |---|---|
//! | the first of our sessions comes up (a Jingle session turns active, a Carrier stream connects) | `Session.connectionCreated` (local) |
//! | that session's peer: once per session | `Session.connectionCreated` (peer) |
//! | a Carrier stream connected | `Publisher.streamCreated` (we send on it) then `Session.streamCreated` (we receive on it) |
//! | that stream closed or failed | `Publisher.streamDestroyed`, `Session.streamDestroyed` |
//! | the session ended (Jingle terminated, Carrier closed) | `Session.connectionDestroyed` (peer) |
//! | the last of our sessions ended | `Session.connectionDestroyed` (local) |
//!
//! Carrier streams carry data both ways, so each counts as one sent and one received
//! stream. Every destroy follows its create (a stream that never connected, a session that
//! never came up produce nothing), so the tracker's counters stay exact. Each method returns
//! the status updates the tracker produced, in order, ready for
//! [`ReporterHandle::status`](crate::reporter::ReporterHandle::status).

use std::collections::{HashMap, HashSet};

use huddle_session::carrier::{CarrierEvent, SessionId, StreamId, StreamState};
use huddle_session::jingle::{self, SessionState};

use crate::tracker::{Origin, RoomEvent, StatusUpdate, Tracker};

/// Which session a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Jingle(String),
    Carrier(SessionId),
}

/// Maps huddle-session events to [`RoomEvent`]s and runs them through a [`Tracker`].
#[derive(Debug, Clone)]
pub struct SessionAdapter {
    tracker: Tracker,
    /// Sessions whose peer connection was reported.
    up: HashSet<Key>,
    /// Carrier streams reported as created, per session.
    streams: HashMap<SessionId, HashSet<StreamId>>,
    /// Whether our own connection was reported.
    local: bool,
}

impl SessionAdapter {
    /// An adapter over `tracker`.
    pub fn new(tracker: Tracker) -> SessionAdapter {
        SessionAdapter {
            tracker,
            up: HashSet::new(),
            streams: HashMap::new(),
            local: false,
        }
    }

    /// The tracker (its state and counters).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// A Jingle session manager event. Jingle sessions count as connections only (their
    /// media, if any, is the application's to report).
    pub fn handle_jingle(&mut self, event: &jingle::Event) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        match event {
            jingle::Event::StateChanged {
                sid,
                new: SessionState::Active,
                ..
            } => self.connection_up(Key::Jingle(sid.to_string()), &mut out),
            jingle::Event::Terminated { sid, .. } => {
                self.connection_down(&Key::Jingle(sid.to_string()), &mut out);
            }
            _ => {}
        }
        out
    }

    /// A Carrier session manager event.
    pub fn handle_carrier(&mut self, event: &CarrierEvent) -> Vec<StatusUpdate> {
        let mut out = Vec::new();
        match event {
            CarrierEvent::StreamState {
                session,
                stream,
                state: StreamState::Connected,
            } => {
                self.connection_up(Key::Carrier(*session), &mut out);
                if self.streams.entry(*session).or_default().insert(*stream) {
                    self.feed(RoomEvent::PublisherStreamCreated, &mut out);
                    self.feed(RoomEvent::StreamCreated, &mut out);
                }
            }
            CarrierEvent::StreamState {
                session,
                stream,
                state,
            } if state.is_final() => {
                self.stream_down(*session, *stream, &mut out);
            }
            CarrierEvent::SessionClosed { session, .. } => {
                let open: Vec<StreamId> = self
                    .streams
                    .get(session)
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                for stream in open {
                    self.stream_down(*session, stream, &mut out);
                }
                self.streams.remove(session);
                self.connection_down(&Key::Carrier(*session), &mut out);
            }
            _ => {}
        }
        out
    }

    fn stream_down(&mut self, session: SessionId, stream: StreamId, out: &mut Vec<StatusUpdate>) {
        if self
            .streams
            .get_mut(&session)
            .is_some_and(|s| s.remove(&stream))
        {
            self.feed(RoomEvent::PublisherStreamDestroyed, out);
            self.feed(RoomEvent::StreamDestroyed, out);
        }
    }

    fn connection_up(&mut self, key: Key, out: &mut Vec<StatusUpdate>) {
        if self.up.contains(&key) {
            return;
        }
        if !self.local {
            self.local = true;
            self.feed(RoomEvent::ConnectionCreated(Origin::Local), out);
        }
        self.up.insert(key);
        self.feed(RoomEvent::ConnectionCreated(Origin::Peer), out);
    }

    fn connection_down(&mut self, key: &Key, out: &mut Vec<StatusUpdate>) {
        if !self.up.remove(key) {
            return;
        }
        self.feed(RoomEvent::ConnectionDestroyed(Origin::Peer), out);
        if self.up.is_empty() && self.local {
            self.local = false;
            self.feed(RoomEvent::ConnectionDestroyed(Origin::Local), out);
        }
    }

    fn feed(&mut self, event: RoomEvent, out: &mut Vec<StatusUpdate>) {
        out.extend(self.tracker.handle(event));
    }
}
