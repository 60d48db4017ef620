//! Message mode (AIMCC custom sessions): "two or more participants ... messages sent
//! peer-to-peer to a specific participant or to all participants. The participant list,
//! message framing, and keep-alives are handled by AIMCC."
//!
//! # Topology
//!
//! A star around the session owner. The owner runs a [`Host`] (its own participant,
//! [`ParticipantId::HOST`]); every other participant runs a [`Participant`] with one
//! connection to the host. The host admits invited names (AIMCC's `Invite`,
//! `CancelProposal`), numbers participants, keeps the one authoritative participant
//! list, announces joins, departures and ejections (`Eject`), and forwards each message
//! to its one recipient or fans it out to everyone else, stamping the sender's id so no
//! one can speak for another. A full mesh would need n·(n-1)/2 connections and agreement
//! on the list without an owner; the star needs n-1 connections and the list has a
//! single writer. The price is one extra hop for participant-to-participant messages and
//! the host's upload fan-out.
//!
//! A participant that does not read fast enough is dropped when its queue at the host
//! passes [`Config::max_queued`] ([`LeaveReason::TooSlow`]): one slow reader never
//! stalls the session. A participant's own sends wait (in the driver) while its queue is
//! above the same mark.
//!
//! # Limits and liveness
//!
//! - Payloads are at most 64 KiB ([`frame::MAX_PAYLOAD`]); a larger send is refused with
//!   [`SendError::TooLarge`] before anything is queued, and a larger incoming frame is a
//!   protocol error detected from its length prefix, before it is buffered.
//! - Every side sends a KEEPALIVE after [`Config::keepalive_interval`] without sending
//!   anything, and declares the other side dead after [`Config::keepalive_timeout`]
//!   without receiving anything.
//! - Batching: frames queued since the last write go out together (`poll_transmit`
//!   returns them in blocks of up to 256 KiB, filled in place: a long queue is never
//!   copied to grow), so many small messages share one write.
//!   [`MessageClient::send_many`] queues a whole batch under one lock with one driver
//!   wake-up ([`Participant::send_many`]: one state check, one header built), and
//!   [`MessageHost::recv_many`] takes every waiting event in one swap. Messages for the
//!   host that arrive back to back are checked where they lie in the read buffer and
//!   queued as one run; the run is sliced into messages by `recv_many`, in the
//!   application's task, outside the lock the connections' drivers need.
//!
//! [`Participant`] and [`Host`] are sans-IO; [`MessageClient`] and [`MessageHost`] drive
//! them over any `AsyncRead + AsyncWrite`.

mod driver;
pub mod frame;
mod host;
mod participant;

use std::time::{Duration, Instant};

pub use self::driver::{JoinError, MessageClient, MessageHost};
pub use self::frame::{LeaveReason, ParticipantId, Recipient, RejectReason};
pub use self::host::{Host, HostEvent, LinkId};
pub use self::participant::{Participant, ParticipantEvent, SessionEnd};

/// Timers and limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Send a KEEPALIVE after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Declare the other side dead after this long without receiving anything.
    pub keepalive_timeout: Duration,
    /// Most bytes queued for one connection (see the module docs).
    pub max_queued: usize,
    /// Most received events waiting for the application before a driver stops reading.
    pub max_pending_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(15),
            max_queued: 8 << 20,
            max_pending_events: 1 << 16,
        }
    }
}

/// A send (or join) refused before anything was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// AIMCC's Message mode carries at most 64 KiB per message.
    #[error("message of {len} bytes exceeds the 64 KiB Message-mode limit")]
    TooLarge {
        /// The refused payload's length.
        len: usize,
    },
    /// The host has not admitted this participant yet.
    #[error("not joined yet")]
    NotJoined,
    /// The session ended.
    #[error("the session ended")]
    Ended,
    /// No such participant in the session.
    #[error("participant {0:?} is not in the session")]
    UnknownRecipient(ParticipantId),
    /// A name longer than 255 bytes.
    #[error("name longer than 255 bytes")]
    NameTooLong,
}

/// Keep-alive bookkeeping for one connection.
#[derive(Debug, Clone)]
struct Liveness {
    interval: Duration,
    timeout: Duration,
    last_recv: Instant,
    last_send: Instant,
}

impl Liveness {
    fn new(c: &Config, now: Instant) -> Self {
        Liveness {
            interval: c.keepalive_interval,
            timeout: c.keepalive_timeout,
            last_recv: now,
            last_send: now,
        }
    }

    fn received(&mut self, now: Instant) {
        self.last_recv = self.last_recv.max(now);
    }

    fn sent(&mut self, now: Instant) {
        self.last_send = self.last_send.max(now);
    }

    fn next(&self) -> Instant {
        (self.last_send + self.interval).min(self.last_recv + self.timeout)
    }

    fn dead(&self, now: Instant) -> bool {
        now >= self.last_recv + self.timeout
    }

    fn keepalive_due(&self, now: Instant) -> bool {
        now >= self.last_send + self.interval
    }
}
