//! A participant's end of a Message-mode session (sans-IO).

use std::collections::{BTreeMap, VecDeque};
use std::mem;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::frame::{
    self, Frame, FrameError, LeaveReason, MAX_NAME_LEN, MAX_PAYLOAD, ParticipantId, Recipient,
    RejectReason, VERSION,
};
use super::{Config, Liveness, SendError};

/// Why a participant's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// This side left ([`Participant::leave`]).
    Left,
    /// The host refused the join.
    Rejected(RejectReason),
    /// The host ejected this participant.
    Ejected,
    /// The host ended the session.
    HostEnded,
    /// Nothing heard from the host within the keep-alive timeout.
    KeepAliveTimeout,
    /// The host sent something invalid.
    Protocol(FrameError),
    /// The connection closed without a goodbye.
    TransportClosed,
}

/// What happened in the session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParticipantEvent {
    /// The host admitted this participant: its id and everyone present.
    Welcome {
        /// This participant's id.
        me: ParticipantId,
        /// Everyone in the session (this participant and the host included).
        participants: Vec<(ParticipantId, String)>,
    },
    /// Someone joined.
    Joined(ParticipantId, String),
    /// Someone left.
    Left(ParticipantId, LeaveReason),
    /// The host ejected someone else.
    Ejected(ParticipantId),
    /// A message arrived.
    Message {
        /// Its sender.
        from: ParticipantId,
        /// Whether it was sent to everyone (else only to this participant).
        to_all: bool,
        /// The payload.
        payload: Bytes,
    },
    /// A message this side sent could not be delivered: its recipient is gone.
    Undeliverable(ParticipantId),
    /// The session ended for this participant.
    Ended(SessionEnd),
}

/// Bytes per output block. Frames are appended to the current block; one that does not
/// fit seals it and starts a fresh block, so a growing queue is never copied.
const BLOCK: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Joining,
    Joined(ParticipantId),
    Ended,
}

/// One participant connected to the session's host (see the [module docs](super) for
/// the topology). Queue messages with [`send`](Self::send); what is queued goes out in
/// blocks of up to 256 KiB through [`poll_transmit`](Self::poll_transmit), so many small
/// messages share a write.
#[derive(Debug)]
pub struct Participant {
    state: State,
    roster: BTreeMap<ParticipantId, String>,
    /// The block frames are appended to.
    out: BytesMut,
    /// Sealed blocks waiting for `poll_transmit`, oldest first, and their total length.
    sealed: VecDeque<Bytes>,
    sealed_len: usize,
    events: VecDeque<ParticipantEvent>,
    live: Liveness,
    end: Option<SessionEnd>,
}

impl Participant {
    /// Starts joining as `name` (queues the HELLO). Names longer than
    /// [`MAX_NAME_LEN`] are refused.
    pub fn new(name: &str, config: &Config, now: Instant) -> Result<Self, SendError> {
        if name.len() > MAX_NAME_LEN {
            return Err(SendError::NameTooLong);
        }
        let mut out = BytesMut::with_capacity(BLOCK);
        frame::encode(
            &Frame::Hello {
                version: VERSION,
                name: name.to_owned(),
            },
            &mut out,
        );
        Ok(Participant {
            state: State::Joining,
            roster: BTreeMap::new(),
            out,
            sealed: VecDeque::new(),
            sealed_len: 0,
            events: VecDeque::new(),
            live: Liveness::new(config, now),
            end: None,
        })
    }

    /// This participant's id, once admitted.
    pub fn me(&self) -> Option<ParticipantId> {
        match self.state {
            State::Joined(id) => Some(id),
            _ => None,
        }
    }

    /// Everyone in the session (known after the welcome).
    pub fn participants(&self) -> impl Iterator<Item = (ParticipantId, &str)> {
        self.roster.iter().map(|(id, n)| (*id, n.as_str()))
    }

    /// Why the session ended, once it has.
    pub fn ended(&self) -> Option<&SessionEnd> {
        self.end.as_ref()
    }

    /// Bytes queued and not yet handed to [`poll_transmit`](Self::poll_transmit): a
    /// driver stops accepting sends above its high-water mark.
    pub fn queued(&self) -> usize {
        self.sealed_len + self.out.len()
    }

    /// The current block with room for `n` more bytes: when it has too little, it is
    /// sealed and a fresh one started (nothing queued is copied).
    #[inline]
    fn room(&mut self, n: usize) -> &mut BytesMut {
        if self.out.capacity() - self.out.len() < n {
            self.seal(n);
        }
        &mut self.out
    }

    /// Seals the current block and starts one with room for `n` bytes.
    #[cold]
    fn seal(&mut self, n: usize) {
        let full = mem::replace(&mut self.out, BytesMut::with_capacity(BLOCK.max(n)));
        if !full.is_empty() {
            self.sealed_len += full.len();
            self.sealed.push_back(full.freeze());
        }
    }

    /// Queues a message. A payload over 64 KiB is refused before anything is queued.
    pub fn send(&mut self, to: Recipient, payload: &[u8], now: Instant) -> Result<(), SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge { len: payload.len() });
        }
        let me = match self.state {
            State::Joined(me) => me,
            State::Joining => return Err(SendError::NotJoined),
            State::Ended => return Err(SendError::Ended),
        };
        frame::put_data(
            self.room(frame::DATA_HEADER + payload.len()),
            me,
            to,
            payload,
        );
        self.live.sent(now);
        Ok(())
    }

    /// Queues `payloads` in order, all to `to`, while fewer than `limit` bytes are
    /// queued (the batch path: one state check, the frame header built once); returns
    /// how many were queued, so a caller can wait for [`poll_transmit`](Self::poll_transmit)
    /// to make room and continue with the rest. A payload over 64 KiB refuses the whole
    /// call before anything is queued.
    pub fn send_many<P: AsRef<[u8]>>(
        &mut self,
        to: Recipient,
        payloads: &[P],
        limit: usize,
        now: Instant,
    ) -> Result<usize, SendError> {
        if let Some(p) = payloads.iter().find(|p| p.as_ref().len() > MAX_PAYLOAD) {
            return Err(SendError::TooLarge {
                len: p.as_ref().len(),
            });
        }
        self.queue_many(to, payloads, limit, now)
    }

    /// [`send_many`](Self::send_many) for payloads the caller has checked already.
    pub(super) fn queue_many<P: AsRef<[u8]>>(
        &mut self,
        to: Recipient,
        payloads: &[P],
        limit: usize,
        now: Instant,
    ) -> Result<usize, SendError> {
        let me = match self.state {
            State::Joined(me) => me,
            State::Joining => return Err(SendError::NotJoined),
            State::Ended => return Err(SendError::Ended),
        };
        let mut head = frame::data_header(me, to, 0);
        let mut n = 0;
        for p in payloads {
            let p = p.as_ref();
            if self.sealed_len + self.out.len() >= limit {
                break;
            }
            if p.len() > MAX_PAYLOAD {
                // Checked by the caller; refused here all the same, never written.
                return Err(SendError::TooLarge { len: p.len() });
            }
            let out = self.room(frame::DATA_HEADER + p.len());
            frame::set_data_len(&mut head, p.len());
            out.extend_from_slice(&head);
            out.extend_from_slice(p);
            n += 1;
        }
        if n > 0 {
            self.live.sent(now);
        }
        Ok(n)
    }

    /// Leaves the session (queues a BYE).
    pub fn leave(&mut self) {
        if self.state != State::Ended {
            frame::encode(&Frame::Bye, self.room(frame::CONTROL_ROOM));
            self.finish(SessionEnd::Left);
        }
    }

    fn finish(&mut self, why: SessionEnd) {
        self.state = State::Ended;
        self.events.push_back(ParticipantEvent::Ended(why.clone()));
        self.end = Some(why);
    }

    /// Consumes frames from `buf`. A frame that breaks the format ends the session with
    /// [`SessionEnd::Protocol`] and is returned as the error.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), FrameError> {
        if !buf.is_empty() {
            self.live.received(now);
        }
        while self.state != State::Ended {
            let f = match frame::decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.finish(SessionEnd::Protocol(e.clone()));
                    return Err(e);
                }
            };
            if let Err(e) = self.frame(f) {
                self.finish(SessionEnd::Protocol(e.clone()));
                return Err(e);
            }
        }
        buf.clear();
        Ok(())
    }

    fn frame(&mut self, f: Frame) -> Result<(), FrameError> {
        let joined = matches!(self.state, State::Joined(_));
        match f {
            Frame::Welcome { you, participants } if !joined => {
                self.state = State::Joined(you);
                self.roster = participants.iter().cloned().collect();
                self.events.push_back(ParticipantEvent::Welcome {
                    me: you,
                    participants,
                });
            }
            Frame::Reject(r) if !joined => self.finish(SessionEnd::Rejected(r)),
            Frame::Joined(id, name) if joined => {
                self.roster.insert(id, name.clone());
                self.events.push_back(ParticipantEvent::Joined(id, name));
            }
            Frame::Left(id, r) if joined => {
                self.roster.remove(&id);
                self.events.push_back(ParticipantEvent::Left(id, r));
            }
            Frame::Ejected(id) if joined => {
                if Some(id) == self.me() {
                    self.finish(SessionEnd::Ejected);
                } else {
                    self.roster.remove(&id);
                    self.events.push_back(ParticipantEvent::Ejected(id));
                }
            }
            Frame::Data { from, to, payload } if joined => {
                self.events.push_back(ParticipantEvent::Message {
                    from,
                    to_all: to == Recipient::All,
                    payload,
                });
            }
            Frame::Undeliverable(id) if joined => {
                self.events.push_back(ParticipantEvent::Undeliverable(id))
            }
            Frame::KeepAlive => {}
            Frame::Bye => self.finish(SessionEnd::HostEnded),
            _ => return Err(FrameError::Malformed("frame not allowed in this state")),
        }
        Ok(())
    }

    /// Tells the participant the connection closed.
    pub fn handle_transport_closed(&mut self) {
        if self.state != State::Ended {
            self.finish(SessionEnd::TransportClosed);
        }
    }

    /// The next bytes to write, oldest first: a block of up to 256 KiB holding every
    /// frame queued in it (one write for many messages).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(b) = self.sealed.pop_front() {
            self.sealed_len -= b.len();
            return Some(b);
        }
        if self.out.is_empty() {
            return None;
        }
        // The rest of the block stays with `out` for the next frames.
        Some(self.out.split().freeze())
    }

    /// Marks that bytes were written (keep-alives are only sent when quiet): a driver
    /// that passes [`send`](Self::send) a cached time calls this with the time of the
    /// write.
    pub fn handle_sent(&mut self, now: Instant) {
        self.live.sent(now);
    }

    /// Events waiting for [`poll_event`](Self::poll_event).
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ParticipantEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.state != State::Ended).then(|| self.live.next())
    }

    /// Sends a keep-alive when quiet, ends the session when the host went silent.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Ended {
            return;
        }
        if self.live.dead(now) {
            self.finish(SessionEnd::KeepAliveTimeout);
        } else if self.live.keepalive_due(now) {
            frame::encode(&Frame::KeepAlive, self.room(frame::CONTROL_ROOM));
            self.live.sent(now);
        }
    }
}
