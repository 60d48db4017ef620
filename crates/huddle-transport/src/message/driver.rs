//! tokio drivers for Message mode: one task per connection moves bytes and fires timers;
//! every decision is in [`Participant`] and [`Host`].

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::frame::{MAX_PAYLOAD, ParticipantId, Recipient};
use super::host::{Host, HostEvent, LinkId, Queued};
use super::participant::{Participant, ParticipantEvent, SessionEnd};
use super::{Config, SendError};

const READ_CHUNK: usize = 256 * 1024;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    // A panic under the lock broke an invariant; the session cannot continue either way.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection's view of a sans-IO core, for [`pump`].
trait Link: Send + 'static {
    /// Whether the application keeps up (else stop reading: backpressure to the peer).
    fn can_read(&self, driver: &Waker) -> bool;
    fn input(&self, buf: &mut BytesMut, now: Instant);
    fn eof(&self);
    /// Registers the driver's waker, fires due timers, and returns the next bytes to
    /// write, the next deadline, and whether the connection is finished.
    fn transmit(&self, driver: &Waker, now: Instant) -> (Option<Bytes>, Option<Instant>, bool);
}

/// Moves bytes between `io` and `link` until the link is finished or the stream ends.
async fn pump<T, L>(mut io: T, link: L)
where
    T: AsyncRead + AsyncWrite + Unpin,
    L: Link,
{
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut pending = Bytes::new();
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed = None;
    let mut read_open = true;
    poll_fn(|cx| {
        for _ in 0..64 {
            let mut progress = false;
            if read_open && link.can_read(cx.waker()) {
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut rbuf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        read_open = false;
                        link.eof();
                        progress = true;
                    }
                    Poll::Ready(Ok(_)) => {
                        link.input(&mut rbuf, now());
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            let (next, deadline, finished) = if pending.is_empty() {
                let (p, d, f) = link.transmit(cx.waker(), now());
                pending = p.unwrap_or_default();
                (true, d, f)
            } else {
                (false, None, false)
            };
            while !pending.is_empty() {
                match Pin::new(&mut io).poll_write(cx, &pending) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        link.eof();
                        return Poll::Ready(());
                    }
                    Poll::Ready(Ok(n)) => {
                        pending.advance(n);
                        progress = true;
                    }
                    Poll::Pending => break,
                }
            }
            let _ = Pin::new(&mut io).poll_flush(cx);
            if next && finished && pending.is_empty() {
                let _ = Pin::new(&mut io).poll_shutdown(cx);
                return Poll::Ready(());
            }
            if !read_open && pending.is_empty() && next && !progress {
                return Poll::Ready(());
            }
            if let Some(d) = deadline {
                if armed != Some(d) {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(d));
                    armed = Some(d);
                }
                if sleep.as_mut().poll(cx).is_ready() {
                    armed = None;
                    continue;
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

// ---- participant ---------------------------------------------------------------------

#[derive(Debug)]
struct ClientShared {
    core: Participant,
    config: Config,
    driver: Option<Waker>,
    recv: Option<Waker>,
    send: Option<Waker>,
    events_seen_end: bool,
    /// The driver's last reading of the clock: sends are stamped with it (no clock read
    /// per message) and the driver stamps the write itself ([`Participant::handle_sent`]).
    last_now: Instant,
}

impl ClientShared {
    fn wake_app(&mut self) {
        for w in [self.recv.take(), self.send.take()].into_iter().flatten() {
            w.wake();
        }
    }
}

struct ClientLink(Arc<Mutex<ClientShared>>);

impl Link for ClientLink {
    fn can_read(&self, driver: &Waker) -> bool {
        let mut s = lock(&self.0);
        let ok = s.core.pending_events() < s.config.max_pending_events;
        if !ok {
            s.driver = Some(driver.clone());
        }
        ok
    }

    fn input(&self, buf: &mut BytesMut, now: Instant) {
        let mut s = lock(&self.0);
        // A protocol error ends the session and is reported as its end.
        let _ = s.core.handle_input(buf, now);
        s.wake_app();
    }

    fn eof(&self) {
        let mut s = lock(&self.0);
        s.core.handle_transport_closed();
        s.wake_app();
    }

    fn transmit(&self, driver: &Waker, now: Instant) -> (Option<Bytes>, Option<Instant>, bool) {
        let mut s = lock(&self.0);
        if s.driver.as_ref().is_none_or(|w| !w.will_wake(driver)) {
            s.driver = Some(driver.clone());
        }
        if s.core.poll_timeout().is_some_and(|d| d <= now) {
            s.core.handle_timeout(now);
            s.wake_app();
        }
        s.last_now = now;
        let p = s.core.poll_transmit();
        if p.is_some() {
            s.core.handle_sent(now);
            // Room in the queue again.
            if let Some(w) = s.send.take() {
                w.wake();
            }
        }
        let finished = s.core.ended().is_some();
        (p, s.core.poll_timeout(), finished)
    }
}

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The join could not even be attempted.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The session ended before the welcome (rejected, closed, timed out).
    #[error("the join failed: {0:?}")]
    Ended(SessionEnd),
}

/// A participant's connection to the host.
#[derive(Debug, Clone)]
pub struct MessageClient {
    shared: Arc<Mutex<ClientShared>>,
}

impl MessageClient {
    /// Joins the session behind `io` as `name` and waits for the host's welcome.
    pub async fn join<T>(io: T, name: &str, config: Config) -> Result<MessageClient, JoinError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let core = Participant::new(name, &config, now())?;
        let shared = Arc::new(Mutex::new(ClientShared {
            core,
            config,
            driver: None,
            recv: None,
            send: None,
            events_seen_end: false,
            last_now: now(),
        }));
        tokio::spawn(pump(io, ClientLink(shared.clone())));
        let client = MessageClient { shared };
        match client.recv().await {
            Some(ParticipantEvent::Welcome { .. }) => Ok(client),
            Some(ParticipantEvent::Ended(e)) => Err(JoinError::Ended(e)),
            _ => Err(JoinError::Ended(SessionEnd::TransportClosed)),
        }
    }

    /// This participant's id.
    pub fn me(&self) -> ParticipantId {
        lock(&self.shared).core.me().unwrap_or(ParticipantId::HOST)
    }

    /// Everyone in the session as this participant knows it.
    pub fn participants(&self) -> Vec<(ParticipantId, String)> {
        lock(&self.shared)
            .core
            .participants()
            .map(|(i, n)| (i, n.to_owned()))
            .collect()
    }

    /// Queues a message, waiting while this connection's queue is above
    /// [`Config::max_queued`]. A payload over 64 KiB is refused at once.
    pub async fn send(&self, to: Recipient, payload: &[u8]) -> Result<(), SendError> {
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            if s.core.queued() >= s.config.max_queued && s.core.ended().is_none() {
                s.send = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let was_empty = s.core.queued() == 0;
            let at = s.last_now;
            let r = s.core.send(to, payload, at);
            if was_empty && let Some(w) = &s.driver {
                w.wake_by_ref();
            }
            Poll::Ready(r)
        })
        .await
    }

    /// Queues every payload in `payloads`, in order, to `to`: the batch path. One lock
    /// and one driver wake-up cover as many messages as fit below
    /// [`Config::max_queued`]; when the queue is full the call waits for the driver to
    /// drain it and continues where it stopped, so a long batch never holds more than
    /// the high-water mark (plus one message). Everything queued in between goes out in
    /// one write (see the [module docs](super)).
    ///
    /// A payload over 64 KiB refuses the whole batch before anything is queued. If the
    /// session ends midway, the error is returned and the rest is not queued.
    pub async fn send_many<P: AsRef<[u8]>>(
        &self,
        to: Recipient,
        payloads: &[P],
    ) -> Result<(), SendError> {
        if let Some(p) = payloads.iter().find(|p| p.as_ref().len() > MAX_PAYLOAD) {
            return Err(SendError::TooLarge {
                len: p.as_ref().len(),
            });
        }
        let mut next = 0;
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            let was_empty = s.core.queued() == 0;
            let now = now();
            let limit = s.config.max_queued;
            let result = s
                .core
                .queue_many(to, &payloads[next..], limit, now)
                .map(|n| next += n);
            if result.is_ok() && next < payloads.len() {
                // The queue is full: the driver wakes this task when it takes bytes.
                s.send = Some(cx.waker().clone());
            }
            if was_empty
                && s.core.queued() > 0
                && let Some(w) = &s.driver
            {
                w.wake_by_ref();
            }
            if result.is_err() || next == payloads.len() {
                Poll::Ready(result)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// The next event; `None` after the session's [`ParticipantEvent::Ended`] was returned.
    pub async fn recv(&self) -> Option<ParticipantEvent> {
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            match s.core.poll_event() {
                Some(e) => {
                    if matches!(e, ParticipantEvent::Ended(_)) {
                        s.events_seen_end = true;
                    }
                    if let Some(w) = &s.driver {
                        // The driver may have paused reading for us.
                        w.wake_by_ref();
                    }
                    Poll::Ready(Some(e))
                }
                None if s.events_seen_end => Poll::Ready(None),
                None => {
                    s.recv = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Moves up to `max` waiting events into `out` (at least one, waiting if there is
    /// none); returns how many. 0 means the session ended and every event was returned.
    pub async fn recv_many(&self, out: &mut Vec<ParticipantEvent>, max: usize) -> usize {
        poll_fn(|cx| {
            let mut s = lock(&self.shared);
            let mut n = 0;
            while n < max {
                let Some(e) = s.core.poll_event() else { break };
                if matches!(e, ParticipantEvent::Ended(_)) {
                    s.events_seen_end = true;
                }
                out.push(e);
                n += 1;
            }
            if n > 0 {
                if let Some(w) = &s.driver {
                    w.wake_by_ref();
                }
                return Poll::Ready(n);
            }
            if s.events_seen_end {
                return Poll::Ready(0);
            }
            s.recv = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Leaves the session (a BYE is sent, then the connection closes).
    pub fn leave(&self) {
        let mut s = lock(&self.shared);
        s.core.leave();
        if let Some(w) = &s.driver {
            w.wake_by_ref();
        }
    }
}

// ---- host ----------------------------------------------------------------------------

#[derive(Debug)]
struct HostShared {
    core: Host,
    config: Config,
    links: HashMap<LinkId, Waker>,
    recv: Option<Waker>,
    /// Events moved to the application's side ([`MessageHost::recv_many`]) and not
    /// returned yet: they count against [`Config::max_pending_events`] too.
    taken: Arc<AtomicUsize>,
}

impl HostShared {
    /// After any call into the core: wake links with output (or closed), and the
    /// application when events wait. Events stay in the core's queue until taken.
    fn after(&mut self) {
        while let Some(l) = self.core.poll_dirty() {
            if let Some(w) = self.links.get(&l) {
                w.wake_by_ref();
            }
        }
        if self.core.pending_events() > 0
            && let Some(w) = self.recv.take()
        {
            w.wake();
        }
    }

    fn pending(&self) -> usize {
        self.core.pending_events() + self.taken.load(Ordering::Acquire)
    }

    /// Wakes every link: reading may resume below the pending-events mark.
    fn wake_links(&self) {
        for w in self.links.values() {
            w.wake_by_ref();
        }
    }
}

struct HostLink {
    shared: Arc<Mutex<HostShared>>,
    id: LinkId,
}

impl Link for HostLink {
    fn can_read(&self, driver: &Waker) -> bool {
        let mut s = lock(&self.shared);
        let ok = s.pending() < s.config.max_pending_events;
        if !ok {
            s.links.insert(self.id, driver.clone());
        }
        ok
    }

    fn input(&self, buf: &mut BytesMut, now: Instant) {
        let mut s = lock(&self.shared);
        // A protocol error drops the link; it is reported as the participant leaving.
        let _ = s.core.handle_input(self.id, buf, now);
        s.after();
    }

    fn eof(&self) {
        let mut s = lock(&self.shared);
        s.core.handle_link_closed(self.id);
        s.links.remove(&self.id);
        s.after();
    }

    fn transmit(&self, driver: &Waker, now: Instant) -> (Option<Bytes>, Option<Instant>, bool) {
        let mut s = lock(&self.shared);
        if s.links.get(&self.id).is_none_or(|w| !w.will_wake(driver)) {
            s.links.insert(self.id, driver.clone());
        }
        if s.core.poll_timeout(self.id).is_some_and(|d| d <= now) {
            s.core.handle_timeout(self.id, now);
        }
        let p = s.core.poll_transmit(self.id);
        if p.is_some() {
            s.core.handle_sent(self.id, now);
        }
        let done = s.core.link_done(self.id);
        let deadline = s.core.poll_timeout(self.id);
        s.after();
        if done && p.is_none() {
            s.core.handle_link_closed(self.id);
            s.links.remove(&self.id);
            s.after();
        }
        (p, deadline, done)
    }
}

/// The session owner's side: accepts participants' connections and runs the session.
#[derive(Debug, Clone)]
pub struct MessageHost {
    shared: Arc<Mutex<HostShared>>,
    /// Events taken from the core in one swap, handed out without holding the core's
    /// lock (so the connections' drivers keep decoding meanwhile): message runs are
    /// split into messages here, in the application's task. Locked before `shared`,
    /// never the other way round.
    taken: Arc<Mutex<Taken>>,
    /// The events in `taken` (a run counts each of its messages), for
    /// [`HostShared::pending`].
    taken_len: Arc<AtomicUsize>,
}

/// The host's events on the application's side.
#[derive(Debug, Default)]
struct Taken {
    queue: VecDeque<Queued>,
    /// Events in `queue`.
    len: usize,
}

impl MessageHost {
    /// A session owned by `name`.
    pub fn new(name: &str, config: Config) -> Result<MessageHost, SendError> {
        let core = Host::new(name, config.clone())?;
        let taken_len = Arc::new(AtomicUsize::new(0));
        Ok(MessageHost {
            shared: Arc::new(Mutex::new(HostShared {
                core,
                config,
                links: HashMap::new(),
                recv: None,
                taken: taken_len.clone(),
            })),
            taken: Arc::new(Mutex::new(Taken::default())),
            taken_len,
        })
    }

    /// Invites `name` (a participant with that name may join).
    pub fn invite(&self, name: &str) {
        lock(&self.shared).core.invite(name);
    }

    /// Withdraws an invitation.
    pub fn cancel_invite(&self, name: &str) {
        lock(&self.shared).core.cancel_invite(name);
    }

    /// Serves a participant's connection (spawns its driver task).
    pub fn add_connection<T>(&self, io: T)
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let id = lock(&self.shared).core.add_link(now());
        tokio::spawn(pump(
            io,
            HostLink {
                shared: self.shared.clone(),
                id,
            },
        ));
    }

    /// Everyone in the session, the host first.
    pub fn participants(&self) -> Vec<(ParticipantId, String)> {
        lock(&self.shared).core.participants()
    }

    /// Sends a message from the host (never waits: a participant that cannot keep up
    /// is dropped instead).
    pub fn send(&self, to: Recipient, payload: &[u8]) -> Result<(), SendError> {
        let mut s = lock(&self.shared);
        let r = s.core.send(to, payload);
        s.after();
        r
    }

    /// Ejects a participant.
    pub fn eject(&self, id: ParticipantId) -> Result<(), SendError> {
        let mut s = lock(&self.shared);
        let r = s.core.eject(id);
        s.after();
        r
    }

    /// Ends the session for everyone.
    pub fn end(&self) {
        let mut s = lock(&self.shared);
        s.core.end();
        s.after();
    }

    /// The next event (joins, departures, messages for the host).
    pub async fn recv(&self) -> HostEvent {
        let mut one = Vec::with_capacity(1);
        self.recv_many(&mut one, 1).await;
        one.pop().expect("recv_many returns at least one event")
    }

    /// Moves up to `max` (at least 1) waiting events into `out`, waiting for at least
    /// one; returns how many.
    pub async fn recv_many(&self, out: &mut Vec<HostEvent>, max: usize) -> usize {
        let max = max.max(1);
        poll_fn(|cx| {
            let mut guard = lock(&self.taken);
            let t = &mut *guard;
            let mut n = 0;
            loop {
                if t.queue.is_empty() {
                    let mut s = lock(&self.shared);
                    t.len = s.core.take_queued(&mut t.queue);
                    if t.queue.is_empty() {
                        if n > 0 {
                            break;
                        }
                        s.recv = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                    self.taken_len.store(t.len, Ordering::Release);
                }
                let before = t.len;
                out.reserve((max - n).min(t.len));
                while n < max {
                    match t.queue.front_mut() {
                        Some(Queued::Messages(run)) => {
                            let before = run.len();
                            while n < max
                                && let Some(e) = run.next_event()
                            {
                                out.push(e);
                                n += 1;
                            }
                            t.len -= before - run.len();
                            if run.len() == 0 {
                                t.queue.pop_front();
                            }
                        }
                        Some(Queued::Event(_)) => {
                            t.len -= 1;
                            match t.queue.pop_front() {
                                // The connections' drivers handle closed links (woken
                                // through the core's dirty list).
                                Some(Queued::Event(HostEvent::LinkClosed(_))) => {}
                                Some(Queued::Event(e)) => {
                                    out.push(e);
                                    n += 1;
                                }
                                _ => {}
                            }
                        }
                        None => break,
                    }
                }
                self.taken_len.store(t.len, Ordering::Release);
                let s = lock(&self.shared);
                if s.core.pending_events() + before >= s.config.max_pending_events
                    && s.pending() < s.config.max_pending_events
                {
                    // Reading was paused for us and may resume.
                    s.wake_links();
                }
                drop(s);
                if n >= max || !t.queue.is_empty() {
                    break;
                }
            }
            Poll::Ready(n)
        })
        .await
    }
}
