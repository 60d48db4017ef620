//! Per-room metrics: a pure fold of join, status and leave events into one aggregate per
//! room. Stores persist the aggregate; this module decides what it means.
//!
//! Loop/Architecture/Rooms says the status updates exist "to track room state for metric
//! purposes"; loop-server only logs them. Here each room keeps: the current state and
//! counters (of the last update), time spent in each state (summed over participants),
//! state transitions, join -> `sendrecv` times, and failures (participant sessions that
//! ended without ever reaching `sendrecv`; a room that had sessions and never reached
//! `sendrecv` is a failed room).
//!
//! Memory is bounded whatever clients send: free-text states and events outside the
//! specification are aggregated as `"other"`, the history keeps the last
//! [`HISTORY_LEN`] updates, and at most [`MAX_TRACKED_PARTICIPANTS`] live sessions.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::tracker::{RoomEvent, RoomState};

/// Status updates kept per room (oldest dropped first).
pub const HISTORY_LEN: usize = 64;
/// Join -> sendrecv samples kept per room (oldest dropped first; sum and count keep all).
pub const SAMPLES_LEN: usize = 64;
/// Live participant sessions tracked per room.
pub const MAX_TRACKED_PARTICIPANTS: usize = 64;
/// Longest free text kept from a status update's `state` or `event`.
pub const MAX_TEXT: usize = 64;

/// The aggregation key for a posted state: its name when it is one of the specification's
/// states, `"other"` otherwise.
pub fn state_key(state: &str) -> &'static str {
    RoomState::from_name(state).map_or("other", RoomState::as_str)
}

/// The aggregation key for a posted event name.
pub fn event_key(event: &str) -> &'static str {
    RoomEvent::from_name(event, crate::tracker::Origin::Peer).map_or("other", RoomEvent::name)
}

fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One event the aggregate folds in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MetricsEvent {
    /// A participant joined (`roomConnectionId`).
    Joined {
        /// The participant's `roomConnectionId`.
        connection_id: String,
    },
    /// A participant posted a status update.
    Status {
        /// The participant's `roomConnectionId`.
        connection_id: String,
        /// `event` as posted (free text).
        event: String,
        /// `state` as posted (free text).
        state: String,
        /// `connections` (parseInt value).
        connections: u64,
        /// `sendStreams`.
        send_streams: u64,
        /// `recvStreams`.
        recv_streams: u64,
    },
    /// A participant left, or its participation expired.
    Left {
        /// The participant's `roomConnectionId`.
        connection_id: String,
        /// Expired (no refresh within the participant TTL) rather than left.
        expired: bool,
    },
}

/// One kept status update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    /// When it was received (Unix ms).
    pub at_ms: u64,
    /// The poster's `roomConnectionId`.
    pub connection_id: String,
    /// `event` (clipped to [`MAX_TEXT`] bytes).
    pub event: String,
    /// `state` (clipped).
    pub state: String,
    /// `connections`.
    pub connections: u64,
    /// `sendStreams`.
    pub send_streams: u64,
    /// `recvStreams`.
    pub recv_streams: u64,
}

/// A live participant session as the aggregate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionMetrics {
    /// When it joined (Unix ms).
    pub joined_at_ms: u64,
    /// Its current state key.
    pub state: String,
    /// Since when it is in that state (Unix ms).
    pub state_since_ms: u64,
    /// When it first reached `sendrecv`.
    pub sendrecv_at_ms: Option<u64>,
}

/// Everything known about one room's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RoomMetrics {
    /// The room token.
    pub room_token: String,
    /// State of the last status update (`init` before any).
    pub state: String,
    /// Event of the last status update.
    pub last_event: Option<String>,
    /// `connections` of the last status update.
    pub connections: u64,
    /// `sendStreams` of the last status update.
    pub send_streams: u64,
    /// `recvStreams` of the last status update.
    pub recv_streams: u64,
    /// Status updates received.
    pub status_updates: u64,
    /// Status updates by event key.
    pub events: BTreeMap<String, u64>,
    /// Milliseconds spent in each state, summed over participant sessions (closed spans
    /// only; see [`RoomMetrics::time_in_state_at`] for the live view).
    pub time_in_state_ms: BTreeMap<String, u64>,
    /// Transitions `"from->to"` of participant sessions.
    pub transitions: BTreeMap<String, u64>,
    /// Joins.
    pub joins: u64,
    /// Leaves.
    pub leaves: u64,
    /// Expired participations.
    pub expirations: u64,
    /// Whether any session reached `sendrecv`.
    pub reached_sendrecv: bool,
    /// Join -> sendrecv times (ms), the most recent [`SAMPLES_LEN`].
    pub join_to_sendrecv_ms: VecDeque<u64>,
    /// Number of join -> sendrecv samples ever.
    pub join_to_sendrecv_count: u64,
    /// Sum of all join -> sendrecv samples (ms).
    pub join_to_sendrecv_sum_ms: u64,
    /// Sessions that ended without reaching `sendrecv`.
    pub failed_sessions: u64,
    /// Live sessions by `roomConnectionId`.
    pub sessions: BTreeMap<String, SessionMetrics>,
    /// The last [`HISTORY_LEN`] status updates.
    pub history: VecDeque<StatusRecord>,
    /// Last update (Unix ms).
    pub updated_at_ms: u64,
}

impl RoomMetrics {
    /// An empty aggregate for `room_token`.
    pub fn new(room_token: &str) -> RoomMetrics {
        RoomMetrics {
            room_token: room_token.to_owned(),
            state: RoomState::Init.as_str().to_owned(),
            ..RoomMetrics::default()
        }
    }

    /// A room fails when sessions came and went and none ever reached `sendrecv`.
    pub fn failed(&self) -> bool {
        !self.reached_sendrecv && self.joins > 0 && self.sessions.is_empty()
    }

    /// Time in each state including the open spans of live sessions up to `now_ms`.
    pub fn time_in_state_at(&self, now_ms: u64) -> BTreeMap<String, u64> {
        let mut t = self.time_in_state_ms.clone();
        for s in self.sessions.values() {
            *t.entry(s.state.clone()).or_default() += now_ms.saturating_sub(s.state_since_ms);
        }
        t
    }

    /// Folds one event in, received at `now_ms`.
    pub fn apply(&mut self, event: &MetricsEvent, now_ms: u64) {
        self.updated_at_ms = now_ms;
        match event {
            MetricsEvent::Joined { connection_id } => {
                self.joins += 1;
                if self.sessions.len() >= MAX_TRACKED_PARTICIPANTS
                    && !self.sessions.contains_key(connection_id)
                {
                    return;
                }
                self.sessions.insert(
                    connection_id.clone(),
                    SessionMetrics {
                        joined_at_ms: now_ms,
                        state: RoomState::Init.as_str().to_owned(),
                        state_since_ms: now_ms,
                        sendrecv_at_ms: None,
                    },
                );
            }
            MetricsEvent::Status {
                connection_id,
                event,
                state,
                connections,
                send_streams,
                recv_streams,
            } => {
                self.status_updates += 1;
                let key = state_key(state);
                *self.events.entry(event_key(event).to_owned()).or_default() += 1;
                self.state = key.to_owned();
                self.last_event = Some(clip(event));
                (self.connections, self.send_streams, self.recv_streams) =
                    (*connections, *send_streams, *recv_streams);
                if self.history.len() >= HISTORY_LEN {
                    self.history.pop_front();
                }
                self.history.push_back(StatusRecord {
                    at_ms: now_ms,
                    connection_id: clip(connection_id),
                    event: clip(event),
                    state: clip(state),
                    connections: *connections,
                    send_streams: *send_streams,
                    recv_streams: *recv_streams,
                });
                if key == RoomState::SendRecv.as_str() {
                    self.reached_sendrecv = true;
                }
                let Some(session) = self.sessions.get_mut(connection_id) else {
                    return;
                };
                if session.state != key {
                    *self
                        .time_in_state_ms
                        .entry(session.state.clone())
                        .or_default() += now_ms.saturating_sub(session.state_since_ms);
                    *self
                        .transitions
                        .entry(format!("{}->{key}", session.state))
                        .or_default() += 1;
                    session.state = key.to_owned();
                    session.state_since_ms = now_ms;
                }
                if key == RoomState::SendRecv.as_str() && session.sendrecv_at_ms.is_none() {
                    session.sendrecv_at_ms = Some(now_ms);
                    let took = now_ms.saturating_sub(session.joined_at_ms);
                    if self.join_to_sendrecv_ms.len() >= SAMPLES_LEN {
                        self.join_to_sendrecv_ms.pop_front();
                    }
                    self.join_to_sendrecv_ms.push_back(took);
                    self.join_to_sendrecv_count += 1;
                    self.join_to_sendrecv_sum_ms =
                        self.join_to_sendrecv_sum_ms.saturating_add(took);
                }
            }
            MetricsEvent::Left {
                connection_id,
                expired,
            } => {
                if *expired {
                    self.expirations += 1;
                } else {
                    self.leaves += 1;
                }
                if let Some(session) = self.sessions.remove(connection_id) {
                    *self.time_in_state_ms.entry(session.state).or_default() +=
                        now_ms.saturating_sub(session.state_since_ms);
                    if session.sendrecv_at_ms.is_none() {
                        self.failed_sessions += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: &str) -> MetricsEvent {
        MetricsEvent::Status {
            connection_id: id.into(),
            event: "Session.streamCreated".into(),
            state: state.into(),
            connections: 2,
            send_streams: 1,
            recv_streams: 1,
        }
    }

    #[test]
    fn folds_time_transitions_and_join_to_sendrecv() {
        let mut m = RoomMetrics::new("r");
        m.apply(
            &MetricsEvent::Joined {
                connection_id: "a".into(),
            },
            1_000,
        );
        m.apply(&status("a", "waiting"), 1_500);
        m.apply(&status("a", "sendrecv"), 4_000);
        m.apply(
            &MetricsEvent::Left {
                connection_id: "a".into(),
                expired: false,
            },
            10_000,
        );
        assert_eq!(m.time_in_state_ms["init"], 500);
        assert_eq!(m.time_in_state_ms["waiting"], 2_500);
        assert_eq!(m.time_in_state_ms["sendrecv"], 6_000);
        assert_eq!(m.transitions["waiting->sendrecv"], 1);
        assert_eq!(m.join_to_sendrecv_ms, [3_000]);
        assert_eq!(m.failed_sessions, 0);
        assert!(!m.failed());
    }

    #[test]
    fn a_session_that_never_reaches_sendrecv_is_a_failure_and_free_text_is_bounded() {
        let mut m = RoomMetrics::new("r");
        m.apply(
            &MetricsEvent::Joined {
                connection_id: "a".into(),
            },
            0,
        );
        for i in 0..1_000 {
            m.apply(&status("a", &format!("hello world {i}")), i);
        }
        assert_eq!(m.history.len(), HISTORY_LEN);
        assert_eq!(m.state, "other");
        assert!(m.time_in_state_ms.len() <= RoomState::ALL.len() + 1);
        m.apply(
            &MetricsEvent::Left {
                connection_id: "a".into(),
                expired: true,
            },
            2_000,
        );
        assert_eq!((m.failed_sessions, m.expirations), (1, 1));
        assert!(m.failed());
    }
}
