//! The tokio driver: one task per connection moves bytes between the stream and the
//! [`Mux`] and fires its timer; channel handles are `AsyncRead + AsyncWrite`.
//!
//! The task never blocks reading on writing: in each turn it reads everything the
//! stream has, then writes what the multiplexer produced, so credit keeps flowing while
//! a write is stuck (yamux #227). It holds the lock only around state-machine calls,
//! never across a system call.

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::core::{ChannelError, ChannelId, Config, ConnectionEnd, Event, Mux, OpenError, Role};
use super::frame::{CloseReason, RefuseReason};

/// Bytes reserved for each read from the stream.
const READ_CHUNK: usize = 256 * 1024;
/// Reads per turn before the task yields (fairness with other tasks).
const READS_PER_TURN: usize = 16;

/// An error opening a channel or using the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The multiplexer could not open the channel.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The peer refused the channel.
    #[error("the peer refused the channel ({0:?})")]
    Refused(RefuseReason),
    /// The channel was closed before it opened (the open timed out, or the peer closed it).
    #[error("the channel closed before it opened ({0:?})")]
    Closed(CloseReason),
    /// The connection ended.
    #[error("the connection ended ({0:?})")]
    Ended(ConnectionEnd),
}

#[derive(Debug)]
struct Shared {
    mux: Mux,
    read_wakers: HashMap<ChannelId, Waker>,
    write_wakers: HashMap<ChannelId, Waker>,
    opens: HashMap<ChannelId, OpenSlot>,
    incoming: VecDeque<(ChannelId, String)>,
    accept_waker: Option<Waker>,
    end_wakers: Vec<Waker>,
    driver: Option<Waker>,
    /// Connection, Channel and Incoming handles alive; at 0 the connection goes away.
    handles: usize,
}

#[derive(Debug, Default)]
struct OpenSlot {
    result: Option<Result<(), ConnectionError>>,
    waker: Option<Waker>,
}

impl Shared {
    fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    fn dispatch(&mut self) {
        while let Some(ev) = self.mux.poll_event() {
            match ev {
                Event::Incoming { id, service } => {
                    self.incoming.push_back((id, service));
                    if let Some(w) = self.accept_waker.take() {
                        w.wake();
                    }
                }
                Event::Opened(id) => self.resolve(id, Ok(())),
                Event::Refused { id, reason } => {
                    self.resolve(id, Err(ConnectionError::Refused(reason)))
                }
                Event::Readable(id) | Event::Finished(id) => {
                    if let Some(w) = self.read_wakers.remove(&id) {
                        w.wake();
                    }
                }
                Event::Writable(id) => {
                    if let Some(w) = self.write_wakers.remove(&id) {
                        w.wake();
                    }
                }
                Event::Closed { id, reason } => {
                    self.resolve(id, Err(ConnectionError::Closed(reason)));
                    for w in [self.read_wakers.remove(&id), self.write_wakers.remove(&id)]
                        .into_iter()
                        .flatten()
                    {
                        w.wake();
                    }
                }
                Event::ConnectionClosed(end) => {
                    let ids: Vec<ChannelId> = self.opens.keys().copied().collect();
                    for id in ids {
                        self.resolve(id, Err(ConnectionError::Ended(end.clone())));
                    }
                    for (_, w) in self.read_wakers.drain().chain(self.write_wakers.drain()) {
                        w.wake();
                    }
                    for w in self.end_wakers.drain(..).chain(self.accept_waker.take()) {
                        w.wake();
                    }
                }
            }
        }
    }

    fn resolve(&mut self, id: ChannelId, r: Result<(), ConnectionError>) {
        if let Some(slot) = self.opens.get_mut(&id)
            && slot.result.is_none()
        {
            slot.result = Some(r);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    fn release_handle(&mut self) {
        self.handles -= 1;
        if self.handles == 0 {
            self.mux.go_away();
            self.dispatch();
        }
        self.wake_driver();
    }
}

fn lock(s: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock broke an invariant of the state machine; the
    // connection cannot continue either way, so carry on with whatever state is there.
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A multiplexed connection. Cloning gives another handle to the same connection; the
/// connection ends with a GOAWAY when every handle (connections, channels, unanswered
/// incoming opens) is dropped, or at [`close`](Self::close).
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Mutex<Shared>>,
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        lock(&self.shared).handles += 1;
        Connection {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        lock(&self.shared).release_handle();
    }
}

impl Connection {
    /// Starts a multiplexer over `io` and spawns its driver task on the current tokio
    /// runtime. `role` is [`Role::Client`] on the side that dialed.
    pub fn new<T>(io: T, role: Role, config: Config) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let shared = Arc::new(Mutex::new(Shared {
            mux: Mux::new(role, config, now()),
            read_wakers: HashMap::new(),
            write_wakers: HashMap::new(),
            opens: HashMap::new(),
            incoming: VecDeque::new(),
            accept_waker: None,
            end_wakers: Vec::new(),
            driver: None,
            handles: 1,
        }));
        tokio::spawn(drive(io, shared.clone()));
        Connection { shared }
    }

    /// Opens a channel for `service` and waits for the peer to accept it.
    pub async fn open(&self, service: &str) -> Result<Channel, ConnectionError> {
        let id = {
            let mut sh = lock(&self.shared);
            let id = sh.mux.open(service, now())?;
            sh.opens.insert(id, OpenSlot::default());
            sh.handles += 1;
            sh.wake_driver();
            id
        };
        // Until it resolves, dropping this future abandons the channel.
        let mut guard = Some(Channel {
            shared: self.shared.clone(),
            id,
        });
        let r = poll_fn(|cx| {
            let mut sh = lock(&self.shared);
            let slot = sh.opens.get_mut(&id).expect("registered above");
            match slot.result.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await;
        lock(&self.shared).opens.remove(&id);
        let ch = guard.take().expect("set above");
        match r {
            Ok(()) => Ok(ch),
            Err(e) => {
                // Dropping `ch` releases whatever is left of the channel.
                drop(ch);
                Err(e)
            }
        }
    }

    /// The next channel the peer opens, or `None` once the connection ended.
    pub async fn accept(&self) -> Option<Incoming> {
        poll_fn(|cx| {
            let mut sh = lock(&self.shared);
            if let Some((id, service)) = sh.incoming.pop_front() {
                sh.handles += 1;
                return Poll::Ready(Some(Incoming {
                    shared: self.shared.clone(),
                    id,
                    service,
                    answered: false,
                }));
            }
            if sh.mux.ended().is_some() {
                return Poll::Ready(None);
            }
            sh.accept_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Waits until the connection ends and says why.
    pub async fn closed(&self) -> ConnectionEnd {
        poll_fn(|cx| {
            let mut sh = lock(&self.shared);
            if let Some(e) = sh.mux.ended() {
                return Poll::Ready(e.clone());
            }
            sh.end_wakers.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Ends the connection: data already written is sent, then a GOAWAY; every channel
    /// closes normally.
    pub fn close(&self) {
        let mut sh = lock(&self.shared);
        sh.mux.go_away();
        sh.dispatch();
        sh.wake_driver();
    }

    /// Channels currently held by the multiplexer.
    pub fn channel_count(&self) -> usize {
        lock(&self.shared).mux.channel_count()
    }
}

/// A channel the peer opened, waiting for [`accept`](Self::accept) or
/// [`refuse`](Self::refuse). Dropping it refuses it.
#[derive(Debug)]
pub struct Incoming {
    shared: Arc<Mutex<Shared>>,
    id: ChannelId,
    service: String,
    answered: bool,
}

impl Incoming {
    /// The service name the peer asked for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The channel's id.
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// Accepts the channel.
    pub fn accept(mut self) -> Result<Channel, ChannelError> {
        self.answered = true;
        let mut sh = lock(&self.shared);
        let r = sh.mux.accept(self.id);
        sh.wake_driver();
        match r {
            Ok(()) => {
                // The Incoming's handle passes to the Channel.
                sh.handles += 1;
                Ok(Channel {
                    shared: self.shared.clone(),
                    id: self.id,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses the channel.
    pub fn refuse(mut self, reason: RefuseReason) {
        self.answered = true;
        let mut sh = lock(&self.shared);
        let _ = sh.mux.refuse(self.id, reason);
        sh.wake_driver();
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        let mut sh = lock(&self.shared);
        if !self.answered {
            let _ = sh.mux.refuse(self.id, RefuseReason::Refused);
        }
        sh.release_handle();
    }
}

/// One channel: `AsyncRead + AsyncWrite`. Writes wait for credit (backpressure);
/// `shutdown` half-closes (the peer reads to the end); dropping closes it normally.
#[derive(Debug)]
pub struct Channel {
    shared: Arc<Mutex<Shared>>,
    id: ChannelId,
}

impl Channel {
    /// The channel's id.
    pub fn id(&self) -> ChannelId {
        self.id
    }

    /// Closes the channel with `reason` (the peer sees it).
    pub fn close(self, reason: CloseReason) {
        let mut sh = lock(&self.shared);
        let _ = sh.mux.close(self.id, reason);
        sh.wake_driver();
        // Drop then finds the channel released and only gives back the handle.
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut sh = lock(&self.shared);
        let _ = sh.mux.close(self.id, CloseReason::Normal);
        sh.opens.remove(&self.id);
        sh.read_wakers.remove(&self.id);
        sh.write_wakers.remove(&self.id);
        sh.release_handle();
    }
}

fn io_error(e: ChannelError) -> io::Error {
    let kind = match e {
        ChannelError::Closed(CloseReason::Timeout) => io::ErrorKind::TimedOut,
        ChannelError::Closed(_) => io::ErrorKind::ConnectionReset,
        ChannelError::ConnectionClosed => io::ErrorKind::ConnectionAborted,
        ChannelError::Finished => io::ErrorKind::BrokenPipe,
        _ => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, e)
}

impl AsyncRead for Channel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut sh = lock(&self.shared);
        match sh.mux.read(self.id, buf.initialize_unfilled()) {
            Ok(Some(n)) => {
                buf.advance(n);
                if n > 0 && sh.mux.wants_transmit() {
                    sh.wake_driver();
                }
                Poll::Ready(Ok(()))
            }
            Ok(None) => {
                sh.read_wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

impl AsyncWrite for Channel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut sh = lock(&self.shared);
        match sh.mux.write(self.id, data) {
            Ok(0) if !data.is_empty() => {
                sh.write_wakers.insert(self.id, cx.waker().clone());
                Poll::Pending
            }
            Ok(n) => {
                sh.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written data is queued in the connection, which the driver writes as soon as
        // the stream takes it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sh = lock(&self.shared);
        let r = match sh.mux.finish(self.id) {
            Ok(()) | Err(ChannelError::Finished) => Ok(()),
            Err(e) => Err(io_error(e)),
        };
        sh.wake_driver();
        Poll::Ready(r)
    }
}

/// The driver task.
async fn drive<T>(mut io: T, shared: Arc<Mutex<Shared>>)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut pending = Bytes::new();
    let mut read_open = true;
    let mut sleep = Box::pin(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed: Option<std::time::Instant> = None;
    poll_fn(|cx| {
        let mut turns = 0;
        loop {
            turns += 1;
            if turns > 64 {
                // Let other tasks (the channels' readers and writers) run.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // 1. Read everything the stream has (never gated on writing).
            let mut got = false;
            let mut eof = false;
            let mut reads = 0;
            while read_open && reads < READS_PER_TURN {
                if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                    rbuf.reserve(READ_CHUNK);
                }
                match tokio_util::io::poll_read_buf(Pin::new(&mut io), cx, &mut rbuf) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        read_open = false;
                        eof = true;
                    }
                    Poll::Ready(Ok(_)) => {
                        got = true;
                        reads += 1;
                    }
                    Poll::Pending => break,
                }
            }
            let busy = reads == READS_PER_TURN;
            let t = now();
            let mut sh = lock(&shared);
            if sh.driver.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                sh.driver = Some(cx.waker().clone());
            }
            if got {
                // A protocol error is reported through the connection's events.
                let _ = sh.mux.handle_input(&mut rbuf, t);
            }
            if eof {
                sh.mux.handle_transport_closed();
            }
            if sh.mux.poll_timeout().is_some_and(|d| d <= t) {
                sh.mux.handle_timeout(t);
            }
            sh.dispatch();
            // 2. Collect what to write.
            let mut wrote_any = false;
            let mut write_err = false;
            if pending.is_empty() {
                pending = sh.mux.poll_transmit().unwrap_or_default();
            }
            let deadline = sh.mux.poll_timeout();
            let ended = sh.mux.ended().is_some();
            drop(sh);
            // 3. Write without the lock.
            while !pending.is_empty() {
                match Pin::new(&mut io).poll_write(cx, &pending) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                        write_err = true;
                        pending.clear();
                    }
                    Poll::Ready(Ok(n)) => {
                        pending.advance(n);
                        wrote_any = true;
                    }
                    Poll::Pending => break,
                }
            }
            if write_err {
                let mut sh = lock(&shared);
                sh.mux.handle_transport_closed();
                sh.dispatch();
                return Poll::Ready(());
            }
            let _ = Pin::new(&mut io).poll_flush(cx);
            if ended && pending.is_empty() {
                let more = lock(&shared).mux.poll_transmit();
                match more {
                    Some(b) => {
                        pending = b;
                        continue;
                    }
                    None => {
                        let _ = Pin::new(&mut io).poll_shutdown(cx);
                        return Poll::Ready(());
                    }
                }
            }
            // 4. Timer.
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
            if busy {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Loop while writing made progress and more may be queued, or input arrived.
            if (wrote_any && pending.is_empty()) || got {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
}
