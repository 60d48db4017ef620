//! The session owner's end of a Message-mode session (sans-IO): admits invited
//! participants, keeps the participant list, and fans messages out.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{
    self, Frame, FrameError, LeaveReason, MAX_NAME_LEN, MAX_PARTICIPANTS, MAX_PAYLOAD,
    ParticipantId, Recipient, RejectReason, VERSION,
};
use super::{Config, Liveness, SendError};

/// A transport connection to the host (one per participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// What happened in the session, seen from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostEvent {
    /// A participant joined.
    Joined(ParticipantId, String),
    /// A participant left (or was dropped).
    Left(ParticipantId, LeaveReason),
    /// A message for the host (sent to it, or to everyone).
    Message {
        /// The sender.
        from: ParticipantId,
        /// Whether it was sent to everyone.
        to_all: bool,
        /// The payload.
        payload: Bytes,
    },
    /// A link is finished: send what [`Host::poll_transmit`] still has, then close it.
    LinkClosed(LinkId),
}

/// `count` DATA frames for the host from one sender, back to back as received and
/// already checked: queued as one entry, sliced into [`HostEvent::Message`]s only when
/// the events are taken (by a driver, outside its lock).
#[derive(Debug)]
pub(super) struct MessageRun {
    from: ParticipantId,
    frames: Bytes,
    count: usize,
}

impl MessageRun {
    /// Messages left in the run.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    /// The next message (`None` once the run is empty: [`len`](Self::len) is then 0).
    pub(super) fn next_event(&mut self) -> Option<HostEvent> {
        // The run was checked when it was queued: only the length is read again.
        let frame_len = match self.frames.get(..4) {
            Some(&[a, b, c, d]) if self.count > 0 => 4 + u32::from_be_bytes([a, b, c, d]) as usize,
            _ => 0,
        };
        if frame_len < frame::DATA_HEADER || frame_len > self.frames.len() {
            // Cannot happen (the run was checked); the run ends rather than loops.
            self.count = 0;
            return None;
        }
        self.count -= 1;
        let mut payload = if self.count == 0 {
            // The last frame: the run's own handle, no new reference.
            std::mem::take(&mut self.frames)
        } else {
            self.frames.split_to(frame_len)
        };
        payload.advance(frame::DATA_HEADER);
        Some(HostEvent::Message {
            from: self.from,
            to_all: false,
            payload,
        })
    }
}

/// An entry of the host's event queue.
#[derive(Debug)]
pub(super) enum Queued {
    /// One event.
    Event(HostEvent),
    /// A run of messages for the host.
    Messages(MessageRun),
}

#[derive(Debug)]
struct Link {
    member: Option<ParticipantId>,
    out: BytesMut,
    live: Liveness,
    closing: bool,
}

/// The host: the session owner (AIMCC's session owner, who invites, cancels and ejects),
/// itself participant [`ParticipantId::HOST`].
#[derive(Debug)]
pub struct Host {
    config: Config,
    name: String,
    invited: HashSet<String>,
    links: HashMap<LinkId, Link>,
    members: BTreeMap<ParticipantId, (String, LinkId)>,
    next_link: u64,
    next_id: u32,
    events: VecDeque<Queued>,
    /// Events in `events` (a run counts each of its messages).
    pending: usize,
    dirty: VecDeque<LinkId>,
}

impl Host {
    /// A session owned by `name`.
    pub fn new(name: &str, config: Config) -> Result<Self, SendError> {
        if name.len() > MAX_NAME_LEN {
            return Err(SendError::NameTooLong);
        }
        Ok(Host {
            config,
            name: name.to_owned(),
            invited: HashSet::new(),
            links: HashMap::new(),
            members: BTreeMap::new(),
            next_link: 0,
            next_id: 1,
            events: VecDeque::new(),
            pending: 0,
            dirty: VecDeque::new(),
        })
    }

    fn push_event(&mut self, e: HostEvent) {
        self.events.push_back(Queued::Event(e));
        self.pending += 1;
    }

    /// Invites `name`: a participant with this name may join.
    pub fn invite(&mut self, name: &str) {
        self.invited.insert(name.to_owned());
    }

    /// Cancels an invitation (AIMCC's `CancelProposal`); someone already in stays.
    pub fn cancel_invite(&mut self, name: &str) {
        self.invited.remove(name);
    }

    /// Everyone in the session, the host first.
    pub fn participants(&self) -> Vec<(ParticipantId, String)> {
        let mut v = vec![(ParticipantId::HOST, self.name.clone())];
        v.extend(self.members.iter().map(|(id, (n, _))| (*id, n.clone())));
        v
    }

    /// A new connection arrived; its first frame must be a HELLO.
    pub fn add_link(&mut self, now: Instant) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let link = Link {
            member: None,
            out: BytesMut::new(),
            live: Liveness::new(&self.config, now),
            closing: false,
        };
        self.links.insert(id, link);
        id
    }

    fn queue(&mut self, link: LinkId, f: impl FnOnce(&mut BytesMut)) {
        if let Some(l) = self.links.get_mut(&link)
            && !l.closing
        {
            let was_empty = l.out.is_empty();
            f(&mut l.out);
            if was_empty {
                self.dirty.push_back(link);
            }
        }
    }

    /// Queues `f` for every member but `except`, dropping members whose queue overflows.
    fn fan_out(&mut self, except: Option<ParticipantId>, f: &Frame) {
        let mut tmp = BytesMut::new();
        frame::encode(f, &mut tmp);
        self.fan_out_bytes(except, &tmp);
    }

    fn fan_out_bytes(&mut self, except: Option<ParticipantId>, bytes: &[u8]) {
        let targets: Vec<(ParticipantId, LinkId)> = self
            .members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .map(|(id, (_, l))| (*id, *l))
            .collect();
        let mut slow = Vec::new();
        for (id, link) in targets {
            self.queue(link, |o| o.extend_from_slice(bytes));
            if self
                .links
                .get(&link)
                .is_some_and(|l| l.out.len() > self.config.max_queued)
            {
                slow.push(id);
            }
        }
        for id in slow {
            self.drop_member(id, LeaveReason::TooSlow);
        }
    }

    /// Removes a member, tells the others, closes its link.
    fn drop_member(&mut self, id: ParticipantId, reason: LeaveReason) {
        let Some((_, link)) = self.members.remove(&id) else {
            return;
        };
        self.close_link(link, true);
        self.push_event(HostEvent::Left(id, reason));
        self.fan_out(None, &Frame::Left(id, reason));
    }

    fn close_link(&mut self, link: LinkId, discard_queue: bool) {
        if let Some(l) = self.links.get_mut(&link)
            && !l.closing
        {
            l.closing = true;
            if discard_queue {
                l.out.clear();
            }
            self.push_event(HostEvent::LinkClosed(link));
            // Its driver must look at it: what is left goes out, then it closes.
            self.dirty.push_back(link);
        }
    }

    /// Sends a message from the host. A payload over 64 KiB is refused before anything is
    /// queued; a recipient not in the session is [`SendError::UnknownRecipient`].
    pub fn send(&mut self, to: Recipient, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SendError::TooLarge { len: payload.len() });
        }
        match to {
            Recipient::All => {
                let mut tmp = BytesMut::new();
                frame::put_data(&mut tmp, ParticipantId::HOST, to, payload);
                self.fan_out_bytes(None, &tmp);
            }
            Recipient::One(p) => {
                let (_, link) = *self.members.get(&p).ok_or(SendError::UnknownRecipient(p))?;
                self.queue(link, |o| {
                    frame::put_data(o, ParticipantId::HOST, to, payload)
                });
                if self
                    .links
                    .get(&link)
                    .is_some_and(|l| l.out.len() > self.config.max_queued)
                {
                    self.drop_member(p, LeaveReason::TooSlow);
                }
            }
        }
        Ok(())
    }

    /// Ejects a participant (AIMCC's `Eject`): everyone, the ejected one included, is
    /// told, its invitation is withdrawn, and its link is closed.
    pub fn eject(&mut self, id: ParticipantId) -> Result<(), SendError> {
        let (name, link) = self
            .members
            .remove(&id)
            .ok_or(SendError::UnknownRecipient(id))?;
        self.invited.remove(&name);
        self.queue(link, |o| frame::encode(&Frame::Ejected(id), o));
        self.close_link(link, false);
        self.fan_out(None, &Frame::Ejected(id));
        Ok(())
    }

    /// Ends the session: every participant gets a BYE.
    pub fn end(&mut self) {
        self.fan_out(None, &Frame::Bye);
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for l in links {
            self.close_link(l, false);
        }
        self.members.clear();
    }

    /// Consumes frames a link received. A frame that breaks the format drops the link
    /// (its participant leaves with [`LeaveReason::Error`]) and is returned.
    pub fn handle_input(
        &mut self,
        link: LinkId,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<(), FrameError> {
        let Some(l) = self.links.get_mut(&link) else {
            buf.clear();
            return Ok(());
        };
        if l.closing {
            buf.clear();
            return Ok(());
        }
        if !buf.is_empty() {
            l.live.received(now);
        }
        // Looked up again only after a frame that may change the link's state.
        let mut member = l.member;
        loop {
            if let Some(from) = member {
                // The hot path: DATA frames for the host change no state. A run of them
                // is checked here and queued as one entry, split into messages when the
                // events are taken.
                let (len, count) = frame::data_run(buf, ParticipantId::HOST);
                if count > 0 {
                    self.events.push_back(Queued::Messages(MessageRun {
                        from,
                        frames: buf.split_to(len).freeze(),
                        count,
                    }));
                    self.pending += count;
                }
            }
            let f = match frame::decode(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.fail(link);
                    buf.clear();
                    return Err(e);
                }
            };
            let r = match (member, f) {
                (None, Frame::Hello { version, name }) => {
                    self.hello(link, version, name);
                    Ok(())
                }
                (Some(from), Frame::Data { to, payload, .. }) => {
                    self.data(from, to, payload);
                    Ok(())
                }
                (Some(_), Frame::KeepAlive) => Ok(()),
                (Some(from), Frame::Bye) => {
                    self.members.remove(&from);
                    self.close_link(link, false);
                    self.push_event(HostEvent::Left(from, LeaveReason::Left));
                    self.fan_out(None, &Frame::Left(from, LeaveReason::Left));
                    Ok(())
                }
                _ => Err(FrameError::Malformed(
                    "frame not allowed from a participant in this state",
                )),
            };
            if let Err(e) = r {
                self.fail(link);
                buf.clear();
                return Err(e);
            }
            match self.links.get(&link) {
                Some(l) if !l.closing => member = l.member,
                _ => {
                    buf.clear();
                    return Ok(());
                }
            }
        }
    }

    fn fail(&mut self, link: LinkId) {
        match self.links.get(&link).and_then(|l| l.member) {
            Some(id) => self.drop_member(id, LeaveReason::Error),
            None => self.close_link(link, true),
        }
    }

    fn hello(&mut self, link: LinkId, version: u8, name: String) {
        let reject = if version != VERSION {
            Some(RejectReason::BadVersion)
        } else if !self.invited.contains(&name) {
            Some(RejectReason::NotInvited)
        } else if name == self.name || self.members.values().any(|(n, _)| *n == name) {
            Some(RejectReason::NameTaken)
        } else if self.members.len() + 1 >= MAX_PARTICIPANTS {
            Some(RejectReason::Full)
        } else {
            None
        };
        if let Some(r) = reject {
            self.queue(link, |o| frame::encode(&Frame::Reject(r), o));
            self.close_link(link, false);
            return;
        }
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        self.fan_out(None, &Frame::Joined(id, name.clone()));
        self.members.insert(id, (name.clone(), link));
        if let Some(l) = self.links.get_mut(&link) {
            l.member = Some(id);
        }
        let participants = self.participants();
        self.queue(link, |o| {
            frame::encode(
                &Frame::Welcome {
                    you: id,
                    participants,
                },
                o,
            )
        });
        self.push_event(HostEvent::Joined(id, name));
    }

    fn data(&mut self, from: ParticipantId, to: Recipient, payload: Bytes) {
        match to {
            Recipient::All => {
                self.push_event(HostEvent::Message {
                    from,
                    to_all: true,
                    payload: payload.clone(),
                });
                let mut tmp = BytesMut::with_capacity(13 + payload.len());
                // The host stamps the sender: a participant cannot speak for another.
                frame::put_data(&mut tmp, from, to, &payload);
                self.fan_out_bytes(Some(from), &tmp);
            }
            Recipient::One(ParticipantId::HOST) => {
                self.push_event(HostEvent::Message {
                    from,
                    to_all: false,
                    payload,
                });
            }
            Recipient::One(p) => match self.members.get(&p) {
                Some(&(_, link)) => {
                    self.queue(link, |o| frame::put_data(o, from, to, &payload));
                    if self
                        .links
                        .get(&link)
                        .is_some_and(|l| l.out.len() > self.config.max_queued)
                    {
                        self.drop_member(p, LeaveReason::TooSlow);
                    }
                }
                None => {
                    let (_, back) = self.members[&from];
                    self.queue(back, |o| frame::encode(&Frame::Undeliverable(p), o));
                }
            },
        }
    }

    /// The link's connection closed.
    pub fn handle_link_closed(&mut self, link: LinkId) {
        let member = self.links.get(&link).and_then(|l| l.member);
        let closing = self.links.get(&link).is_some_and(|l| l.closing);
        if let Some(id) = member
            && !closing
            && self.members.contains_key(&id)
        {
            self.drop_member(id, LeaveReason::Error);
        }
        self.links.remove(&link);
    }

    /// Whether `link` is finished (closing or gone) and has nothing left to send.
    pub fn link_done(&self, link: LinkId) -> bool {
        self.links
            .get(&link)
            .is_none_or(|l| l.closing && l.out.is_empty())
    }

    /// Bytes to write on `link` (everything queued, one write for many frames).
    pub fn poll_transmit(&mut self, link: LinkId) -> Option<Bytes> {
        let l = self.links.get_mut(&link)?;
        (!l.out.is_empty()).then(|| l.out.split().freeze())
    }

    /// A link that got something to send, or was closed, since the last call (for a
    /// driver to wake it).
    pub fn poll_dirty(&mut self) -> Option<LinkId> {
        self.dirty.pop_front()
    }

    /// Events waiting for [`poll_event`](Self::poll_event).
    pub fn pending_events(&self) -> usize {
        self.pending
    }

    /// Moves every waiting event to the back of `into`.
    pub fn take_events(&mut self, into: &mut VecDeque<HostEvent>) {
        into.reserve(self.pending);
        while let Some(e) = self.poll_event() {
            into.push_back(e);
        }
    }

    /// Moves the whole event queue to the back of `into` (in O(1) when `into` is empty)
    /// and returns how many events it holds: a driver takes everything in one short
    /// critical section and splits message runs outside it.
    pub(super) fn take_queued(&mut self, into: &mut VecDeque<Queued>) -> usize {
        if into.is_empty() {
            std::mem::swap(into, &mut self.events);
        } else {
            into.append(&mut self.events);
        }
        std::mem::take(&mut self.pending)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        loop {
            match self.events.front_mut()? {
                Queued::Messages(run) => {
                    let before = run.len();
                    let e = run.next_event();
                    let after = run.len();
                    self.pending -= before - after;
                    if after == 0 {
                        self.events.pop_front();
                    }
                    if e.is_some() {
                        return e;
                    }
                }
                Queued::Event(_) => {
                    self.pending -= 1;
                    if let Some(Queued::Event(e)) = self.events.pop_front() {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due for `link`.
    pub fn poll_timeout(&self, link: LinkId) -> Option<Instant> {
        self.links
            .get(&link)
            .filter(|l| !l.closing)
            .map(|l| l.live.next())
    }

    /// Keep-alives and the keep-alive timeout for `link` (a link that never said HELLO
    /// is dropped at the same timeout).
    pub fn handle_timeout(&mut self, link: LinkId, now: Instant) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.closing {
            return;
        }
        if l.live.dead(now) {
            match l.member {
                Some(id) => self.drop_member(id, LeaveReason::Timeout),
                None => self.close_link(link, true),
            }
        } else if l.live.keepalive_due(now) {
            l.live.sent(now);
            self.queue(link, |o| frame::encode(&Frame::KeepAlive, o));
        }
    }

    /// Marks that bytes were written on `link` (keep-alives are only sent when quiet).
    pub fn handle_sent(&mut self, link: LinkId, now: Instant) {
        if let Some(l) = self.links.get_mut(&link) {
            l.live.sent(now);
        }
    }
}
