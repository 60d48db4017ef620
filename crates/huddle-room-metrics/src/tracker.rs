//! The client-side room-state tracker: a sans-IO state machine that turns session events
//! into the status updates a Loop client posts to `POST /rooms/{token}`.
//!
//! Reference: Loop/Architecture/Rooms, "Updating Session State" (2015-02-25), and what the
//! real Loop client (`shared/js/otSdkDriver.js`, `_notifyMetricsEvent`, April 2015) posts,
//! recorded in `conformance/loop/client_state_sequences_2015*.json`.
//!
//! The tracker has no clock and does no I/O: feed it [`RoomEvent`]s with
//! [`Tracker::handle`], post each returned [`StatusUpdate`] (for example through
//! [`crate::reporter::ReporterHandle::status`]).
//!
//! # Adapting another event source
//! The input is deliberately the smallest thing a session layer knows: "a connection
//! (ours or a peer's) appeared or went away", "a stream we receive appeared or went away",
//! "a stream we send appeared or went away". An adapter from any session library (such as
//! huddle-session's connection and stream events) is a one-to-one `match` onto
//! [`RoomEvent`], with [`Origin`] telling whether the connection is the local one.

use serde::Serialize;

/// The room states of the Loop rooms state machine.
///
/// Loop/Architecture/Rooms, "Updating Session State": `init`, `waiting`, `starting`,
/// `sending`, `receiving`, `sendrecv`, `cleanup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoomState {
    /// Initial and terminal state.
    Init,
    /// In the room, waiting for another user to show up.
    Waiting,
    /// Another user has joined; media is being established.
    Starting,
    /// Outbound media streams are set up, inbound are not.
    Sending,
    /// Inbound media streams are set up, outbound are not.
    Receiving,
    /// Sending and receiving media: the session is set up.
    SendRecv,
    /// No streams; the session connection is about to be torn down.
    Cleanup,
}

impl RoomState {
    /// Every state, in the order of the specification.
    pub const ALL: [RoomState; 7] = [
        RoomState::Init,
        RoomState::Waiting,
        RoomState::Starting,
        RoomState::Sending,
        RoomState::Receiving,
        RoomState::SendRecv,
        RoomState::Cleanup,
    ];

    /// The wire name (`"sendrecv"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RoomState::Init => "init",
            RoomState::Waiting => "waiting",
            RoomState::Starting => "starting",
            RoomState::Sending => "sending",
            RoomState::Receiving => "receiving",
            RoomState::SendRecv => "sendrecv",
            RoomState::Cleanup => "cleanup",
        }
    }

    /// Parses a wire name; `None` for anything else (the server accepts free text).
    pub fn from_name(name: &str) -> Option<RoomState> {
        RoomState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for RoomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RoomState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whose connection a connection event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This client's own connection to the session.
    Local,
    /// Another participant's connection.
    Peer,
}

/// A session event, as the Loop rooms document names them after TokBox's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// `Session.connectionCreated`: a connection (ours or a peer's) joined the session.
    ConnectionCreated(Origin),
    /// `Session.connectionDestroyed`: a connection left the session.
    ConnectionDestroyed(Origin),
    /// `Session.streamCreated`: a stream we receive appeared.
    StreamCreated,
    /// `Session.streamDestroyed`: a stream we receive went away.
    StreamDestroyed,
    /// `Publisher.streamCreated`: a stream we send appeared.
    PublisherStreamCreated,
    /// `Publisher.streamDestroyed`: a stream we send went away.
    PublisherStreamDestroyed,
}

impl RoomEvent {
    /// The wire name posted in the status update's `event` field.
    pub fn name(self) -> &'static str {
        match self {
            RoomEvent::ConnectionCreated(_) => "Session.connectionCreated",
            RoomEvent::ConnectionDestroyed(_) => "Session.connectionDestroyed",
            RoomEvent::StreamCreated => "Session.streamCreated",
            RoomEvent::StreamDestroyed => "Session.streamDestroyed",
            RoomEvent::PublisherStreamCreated => "Publisher.streamCreated",
            RoomEvent::PublisherStreamDestroyed => "Publisher.streamDestroyed",
        }
    }

    /// Parses a TokBox event name; `origin` only matters for connection events.
    /// Unknown names (and the empty name) give `None`: the real client posts nothing for them.
    pub fn from_name(name: &str, origin: Origin) -> Option<RoomEvent> {
        Some(match name {
            "Session.connectionCreated" => RoomEvent::ConnectionCreated(origin),
            "Session.connectionDestroyed" => RoomEvent::ConnectionDestroyed(origin),
            "Session.streamCreated" => RoomEvent::StreamCreated,
            "Session.streamDestroyed" => RoomEvent::StreamDestroyed,
            "Publisher.streamCreated" => RoomEvent::PublisherStreamCreated,
            "Publisher.streamDestroyed" => RoomEvent::PublisherStreamDestroyed,
            _ => return None,
        })
    }
}

/// Which revision of the Loop client's state machine to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// Loop 6178f8c1 (Bug 1137813 part 4, what shipped): the local connection going away
    /// posts nothing (the server no longer accepts status updates once the room is left).
    #[default]
    Shipped,
    /// Loop 1bbd880b (Bug 1137813 part 3): the local connection going away posts one last
    /// update in the `cleanup` state.
    WithCleanup,
}

/// The three counters the Loop rooms document asks a client to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// Connections in the session (ours included).
    pub connections: u32,
    /// Streams we send.
    pub send_streams: u32,
    /// Streams we receive.
    pub recv_streams: u32,
}

/// One status update to post: the body of `POST /rooms/{token}` without `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    /// The event that caused the update (`"Session.streamCreated"`, ...).
    pub event: &'static str,
    /// The room state after the event.
    pub state: RoomState,
    /// Connections in the session.
    pub connections: u32,
    /// Streams sent.
    pub send_streams: u32,
    /// Streams received.
    pub recv_streams: u32,
}

/// The client-side room-state machine.
#[derive(Debug, Clone)]
pub struct Tracker {
    variant: Variant,
    counters: Counters,
    state: RoomState,
    spurious_destroys: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new(Variant::default())
    }
}

impl Tracker {
    /// A tracker in the `init` state with all counters at zero.
    pub fn new(variant: Variant) -> Tracker {
        Tracker {
            variant,
            counters: Counters::default(),
            state: RoomState::Init,
            spurious_destroys: 0,
        }
    }

    /// The variant this tracker reproduces.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The state of the last update produced (`init` before any).
    pub fn state(&self) -> RoomState {
        self.state
    }

    /// The current counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// How many destroy events arrived with their counter already at zero.
    ///
    /// The real client decrements without a bounds check and would post a negative count;
    /// this tracker keeps the counter at zero instead and counts the anomaly here.
    pub fn spurious_destroys(&self) -> u64 {
        self.spurious_destroys
    }

    /// Forgets everything, as the client's `disconnectSession()` does.
    pub fn reset(&mut self) {
        self.counters = Counters::default();
        self.state = RoomState::Init;
    }

    /// Feeds a TokBox event by name; unknown names give `None` and change nothing.
    pub fn handle_named(&mut self, name: &str, origin: Origin) -> Option<StatusUpdate> {
        RoomEvent::from_name(name, origin).and_then(|e| self.handle(e))
    }

    /// Feeds one event; returns the status update to post, if any.
    pub fn handle(&mut self, event: RoomEvent) -> Option<StatusUpdate> {
        let mut forced = None;
        match event {
            // Loop rooms: "Total connection count: increased when Session.connectionCreated
            // occurs". The client reports `waiting` while it is alone, and the
            // stream-derived state otherwise.
            RoomEvent::ConnectionCreated(_) => {
                self.counters.connections = self.counters.connections.saturating_add(1);
                if self.counters.connections == 1 {
                    forced = Some(RoomState::Waiting);
                }
            }
            // "... decreased when Session.connectionDestroyed occurs". The local connection
            // going away ends the room session: the shipped client posts nothing, the
            // part-3 client posts `cleanup`.
            RoomEvent::ConnectionDestroyed(origin) => {
                self.counters.connections = self.decrement(self.counters.connections);
                if origin == Origin::Local {
                    match self.variant {
                        Variant::Shipped => return None,
                        Variant::WithCleanup => forced = Some(RoomState::Cleanup),
                    }
                }
            }
            // "Count of streams currently being received: Session.streamCreated /
            // Session.streamDestroyed".
            RoomEvent::StreamCreated => {
                self.counters.recv_streams = self.counters.recv_streams.saturating_add(1);
            }
            RoomEvent::StreamDestroyed => {
                self.counters.recv_streams = self.decrement(self.counters.recv_streams);
            }
            // "Count of streams currently being sent: Publisher.streamCreated /
            // Publisher.streamDestroyed".
            RoomEvent::PublisherStreamCreated => {
                self.counters.send_streams = self.counters.send_streams.saturating_add(1);
            }
            RoomEvent::PublisherStreamDestroyed => {
                self.counters.send_streams = self.decrement(self.counters.send_streams);
            }
        }
        self.state = forced.unwrap_or_else(|| self.derived_state());
        Some(StatusUpdate {
            event: event.name(),
            state: self.state,
            connections: self.counters.connections,
            send_streams: self.counters.send_streams,
            recv_streams: self.counters.recv_streams,
        })
    }

    fn decrement(&mut self, n: u32) -> u32 {
        if n == 0 {
            self.spurious_destroys += 1;
        }
        n.saturating_sub(1)
    }

    /// The state the stream counters imply (the client's `_getState`): both directions is
    /// `sendrecv`, one direction is `sending`/`receiving`, none is `starting`.
    fn derived_state(&self) -> RoomState {
        match (
            self.counters.send_streams > 0,
            self.counters.recv_streams > 0,
        ) {
            (true, true) => RoomState::SendRecv,
            (true, false) => RoomState::Sending,
            (false, true) => RoomState::Receiving,
            (false, false) => RoomState::Starting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spurious_destroys_never_go_negative() {
        let mut t = Tracker::default();
        let u = t.handle(RoomEvent::StreamDestroyed).unwrap();
        assert_eq!((u.recv_streams, u.state), (0, RoomState::Starting));
        let u = t.handle(RoomEvent::PublisherStreamDestroyed).unwrap();
        assert_eq!(u.send_streams, 0);
        let u = t
            .handle(RoomEvent::ConnectionDestroyed(Origin::Peer))
            .unwrap();
        assert_eq!(u.connections, 0);
        assert_eq!(t.spurious_destroys(), 3);
    }

    #[test]
    fn state_names_round_trip() {
        for s in RoomState::ALL {
            assert_eq!(RoomState::from_name(s.as_str()), Some(s));
        }
        assert_eq!(RoomState::from_name("hello world"), None);
    }

    #[test]
    fn reset_returns_to_init() {
        let mut t = Tracker::new(Variant::WithCleanup);
        t.handle(RoomEvent::ConnectionCreated(Origin::Local));
        t.handle(RoomEvent::PublisherStreamCreated);
        t.reset();
        assert_eq!(t.state(), RoomState::Init);
        assert_eq!(t.counters(), Counters::default());
    }
}
