//! The sans-IO multiplexer state machine.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::frame::{
    self, CloseReason, GoAwayCode, HEADER_LEN, Kind, MAX_CONTROL_PAYLOAD, MAX_SERVICE_LEN, PREFACE,
    RefuseReason,
};

/// Largest DATA frame this side writes, so credit and keep-alive frames can slip in
/// between the frames of a large write.
const MAX_DATA_FRAME: usize = 64 * 1024;

/// Which end of the underlying stream this is; decides channel id parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that dialed: opens odd channel ids.
    Client,
    /// The side that accepted: opens even channel ids.
    Server,
}

/// A channel's id on its connection (never reused within a connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "channel {}", self.0)
    }
}

/// Limits and timers.
///
/// Memory held for received data is bounded by [`max_receive_buffer`]
/// (plus one partial control frame): every channel this side holds, whichever side opened
/// it, reserves `initial_window` bytes of that budget for as long as it exists, and a
/// channel never holds more than it reserved (bytes the peer may still send + bytes
/// received and not read + bytes read and not yet returned as credit always add up to
/// the window it was granted). So at most `max_receive_buffer / initial_window` channels
/// exist at once (fewer if [`max_channels`] says so); opens beyond that fail locally with
/// [`OpenError::ReceiveBudget`] and are refused as [`RefuseReason::Busy`] when the peer
/// asks. Without this budget the worst case was `max_channels * initial_window`
/// (8192 × 256 KiB = 2 GiB with the defaults).
///
/// [`max_receive_buffer`]: Config::max_receive_buffer
/// [`max_channels`]: Config::max_channels
#[derive(Debug, Clone)]
pub struct Config {
    /// Credit granted to the peer for each channel, in bytes: the most this side buffers
    /// for a channel the application is not reading.
    pub initial_window: u32,
    /// Most channels open at once (both directions, including unanswered opens).
    pub max_channels: usize,
    /// The connection's receive budget in bytes: the most received data this side may be
    /// made to hold across all channels (like HTTP/2's connection window or QUIC's
    /// `max_data`). Each channel reserves `initial_window` of it; see the [`Config`] docs.
    /// A budget below `initial_window` allows no channel at all.
    pub max_receive_buffer: u64,
    /// Most incoming opens waiting for accept or refuse; more are refused as busy.
    pub max_pending_accepts: usize,
    /// Send a PING after this long without hearing from the peer.
    pub keepalive_interval: Duration,
    /// Declare the peer dead after this long without hearing from it.
    pub keepalive_timeout: Duration,
    /// Give up on an open the peer has not answered after this long.
    pub open_timeout: Duration,
    /// Most bytes handed out by one [`Mux::poll_transmit`].
    pub max_transmit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_window: 256 * 1024,
            max_channels: 8192,
            max_receive_buffer: 64 << 20,
            max_pending_accepts: 1024,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(30),
            open_timeout: Duration::from_secs(30),
            max_transmit: 256 * 1024,
        }
    }
}

/// A frame the peer sent that ends the connection. The multiplexer answers it with a
/// GOAWAY and closes every channel with [`CloseReason::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MuxError {
    /// The stream did not start with [`frame::PREFACE`].
    #[error("the peer does not speak the huddle multiplexer (bad preface)")]
    BadPreface,
    /// A frame kind this version does not know.
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// A control frame longer than [`MAX_CONTROL_PAYLOAD`] or shorter than its fields.
    #[error("{kind:?} frame with a bad length {len}")]
    BadLength {
        /// The frame kind.
        kind: Kind,
        /// Its announced payload length.
        len: u32,
    },
    /// A frame not allowed on this channel in its current state.
    #[error("unexpected {kind:?} frame on channel {channel}")]
    UnexpectedFrame {
        /// The frame kind.
        kind: Kind,
        /// The channel it named.
        channel: u32,
    },
    /// The peer sent more than the credit it was given, or overflowed a window.
    #[error("flow control violated on channel {channel}")]
    FlowControl {
        /// The channel.
        channel: u32,
    },
    /// An OPEN whose service name is not UTF-8.
    #[error("service name is not UTF-8")]
    BadServiceName,
}

impl MuxError {
    fn goaway_code(&self) -> GoAwayCode {
        match self {
            MuxError::FlowControl { .. } => GoAwayCode::FlowControl,
            _ => GoAwayCode::ProtocolError,
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEnd {
    /// This side called [`Mux::go_away`].
    Local,
    /// The peer sent GOAWAY with this code.
    Peer(GoAwayCode),
    /// The peer sent a frame this side could not accept.
    Error(MuxError),
    /// Nothing was heard from the peer within the keep-alive timeout.
    KeepAliveTimeout,
    /// The underlying stream ended without a GOAWAY.
    TransportClosed,
}

/// An error from a channel command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// No such channel (never opened, or already released with [`Mux::close`]).
    #[error("unknown channel {0}")]
    Unknown(ChannelId),
    /// An incoming channel that was not accepted yet.
    #[error("channel not accepted yet")]
    NotAccepted,
    /// The command needs an incoming channel waiting for an answer.
    #[error("channel is not waiting for accept or refuse")]
    NotPending,
    /// The channel was closed by the peer or by a timer.
    #[error("channel closed ({0:?})")]
    Closed(CloseReason),
    /// This side already finished (half-closed) the channel.
    #[error("channel already finished for writing")]
    Finished,
    /// The connection is gone.
    #[error("connection closed")]
    ConnectionClosed,
}

/// An error from [`Mux::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The service name is longer than [`MAX_SERVICE_LEN`] bytes.
    #[error("service name longer than {MAX_SERVICE_LEN} bytes")]
    ServiceNameTooLong,
    /// [`Config::max_channels`] channels are open.
    #[error("too many channels")]
    TooManyChannels,
    /// Another channel's window would exceed the connection's receive budget
    /// ([`Config::max_receive_buffer`]): close a channel first.
    #[error("the connection's receive budget is used up")]
    ReceiveBudget,
    /// Every channel id of this side was used.
    #[error("channel ids exhausted")]
    IdsExhausted,
    /// The connection is gone.
    #[error("connection closed")]
    ConnectionClosed,
}

/// Something the application or driver should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer opens a channel: answer with [`Mux::accept`] or [`Mux::refuse`].
    Incoming {
        /// The new channel.
        id: ChannelId,
        /// The service the peer asks for.
        service: String,
    },
    /// The peer accepted a channel this side opened.
    Opened(ChannelId),
    /// The peer refused a channel this side opened (its state is released).
    Refused {
        /// The channel.
        id: ChannelId,
        /// Why.
        reason: RefuseReason,
    },
    /// Data arrived on a channel whose buffer was empty.
    Readable(ChannelId),
    /// A channel that had no credit got some.
    Writable(ChannelId),
    /// The peer will send no more data on this channel (reads end after the buffer).
    Finished(ChannelId),
    /// The channel was closed by the peer, by the connection ending, or by the open
    /// timeout. Buffered data can still be read; release it with [`Mux::close`] (a
    /// channel whose open timed out is already released).
    Closed {
        /// The channel.
        id: ChannelId,
        /// Why.
        reason: CloseReason,
    },
    /// The connection ended; every channel got a `Closed` event before this one.
    ConnectionClosed(ConnectionEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This side sent OPEN and waits for ACCEPT or REFUSE.
    Opening,
    /// The peer sent OPEN; the application has not answered.
    Pending,
    /// Both sides agreed.
    Open,
}

#[derive(Debug)]
struct Chan {
    state: State,
    /// Bytes this side may still send.
    send_credit: u64,
    /// This side sent FIN.
    sent_fin: bool,
    /// Received data not read yet.
    recv: VecDeque<Bytes>,
    /// Bytes the peer may still send (the credit it holds).
    recv_window: u64,
    /// Bytes read by the application and not yet returned as credit.
    unacked: u32,
    /// In `credit_queue`.
    credit_queued: bool,
    /// The peer sent FIN.
    recv_fin: bool,
    /// The peer closed the channel (or the connection ended).
    closed: Option<CloseReason>,
}

impl Chan {
    fn new(state: State, send_credit: u64, recv_window: u64) -> Self {
        Chan {
            state,
            send_credit,
            sent_fin: false,
            recv: VecDeque::new(),
            recv_window,
            unacked: 0,
            credit_queued: false,
            recv_fin: false,
            closed: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Rx {
    Preface {
        got: usize,
    },
    Header,
    Control {
        kind: Kind,
        channel: u32,
        len: usize,
    },
    Data {
        channel: u32,
        remaining: usize,
        deliver: bool,
    },
}

/// The channel multiplexer: many channels inside one reliable, ordered byte stream
/// (Carrier's channels inside a stream), each with its own credit-based flow control.
///
/// Sans-IO: feed received bytes with [`handle_input`](Self::handle_input), send what
/// [`poll_transmit`](Self::poll_transmit) returns, drain [`poll_event`](Self::poll_event),
/// and call [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
///
/// Deadlock freedom (the yamux #227 lesson): credit, PING and PONG frames never queue
/// behind channel data; they are produced from state when the transport can take bytes,
/// so a driver that keeps reading while its writes are blocked always lets credit flow.
/// Reading is never gated on writing: everything a peer may make this side queue is
/// bounded (credit per channel, one PONG, one REFUSE per unanswerable OPEN), and received
/// data across all channels is bounded by [`Config::max_receive_buffer`].
#[derive(Debug)]
pub struct Mux {
    role: Role,
    config: Config,
    channels: HashMap<u32, Chan>,
    pending_in: usize,
    next_local: u32,
    max_peer: u32,
    rx: Rx,
    /// The preface was not handed out yet: it goes before anything else.
    preface_pending: bool,
    /// Ordered frames (preface, OPEN, ACCEPT, REFUSE, DATA, FIN, CLOSE, GOAWAY).
    out: BytesMut,
    /// Length of each frame in `out`, so transmits end on frame boundaries.
    out_frames: VecDeque<usize>,
    credit_queue: VecDeque<u32>,
    pong: Option<u64>,
    ping_due: bool,
    ping_counter: u64,
    /// A GOAWAY that replaces everything else (after a protocol error or timeout).
    fatal_goaway: Option<GoAwayCode>,
    events: VecDeque<Event>,
    open_deadlines: VecDeque<(Instant, u32)>,
    last_recv: Instant,
    last_ping: Instant,
    ended: Option<ConnectionEnd>,
}

impl Mux {
    /// A multiplexer for one end of a fresh stream. It queues the preface at once.
    pub fn new(role: Role, config: Config, now: Instant) -> Self {
        Mux {
            role,
            config,
            channels: HashMap::new(),
            pending_in: 0,
            next_local: match role {
                Role::Client => 1,
                Role::Server => 2,
            },
            max_peer: 0,
            rx: Rx::Preface { got: 0 },
            preface_pending: true,
            out: BytesMut::with_capacity(64 * 1024),
            out_frames: VecDeque::new(),
            credit_queue: VecDeque::new(),
            pong: None,
            ping_due: false,
            ping_counter: 0,
            fatal_goaway: None,
            events: VecDeque::new(),
            open_deadlines: VecDeque::new(),
            last_recv: now,
            last_ping: now,
            ended: None,
        }
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Why the connection ended, once it has.
    pub fn ended(&self) -> Option<&ConnectionEnd> {
        self.ended.as_ref()
    }

    /// Channels held (open, opening, pending, or closed but not released).
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Bytes this side may still write on `id` (0 for unknown channels).
    pub fn send_credit(&self, id: ChannelId) -> u64 {
        self.channels.get(&id.0).map_or(0, |c| c.send_credit)
    }

    /// Bytes received on `id` and not read yet.
    pub fn buffered(&self, id: ChannelId) -> usize {
        self.channels
            .get(&id.0)
            .map_or(0, |c| c.recv.iter().map(Bytes::len).sum())
    }

    fn is_local(&self, ch: u32) -> bool {
        let odd = ch % 2 == 1;
        odd == (self.role == Role::Client)
    }

    /// A channel id that existed once and was released: frames for it are in flight
    /// from before the peer learned, and are dropped.
    fn is_stale(&self, ch: u32) -> bool {
        if self.is_local(ch) {
            ch < self.next_local
        } else {
            ch <= self.max_peer
        }
    }

    fn push_frame(&mut self, start: usize) {
        self.out_frames.push_back(self.out.len() - start);
    }

    // ---- input ---------------------------------------------------------------------

    /// Consumes received bytes from `buf` (whole frames, and as much of a DATA payload as
    /// is there; a partial header or control frame stays in `buf` for the next call).
    /// Data payloads are split off `buf` without copying.
    ///
    /// On a frame it cannot accept the multiplexer queues a GOAWAY, closes every channel
    /// and returns the error (also reported as [`Event::ConnectionClosed`]). After the
    /// connection ended, input is discarded.
    pub fn handle_input(&mut self, buf: &mut BytesMut, now: Instant) -> Result<(), MuxError> {
        if self.ended.is_some() {
            buf.clear();
            return Ok(());
        }
        if !buf.is_empty() {
            self.last_recv = now;
        }
        match self.decode(buf) {
            Ok(()) => Ok(()),
            Err(e) => {
                buf.clear();
                self.fail(
                    ConnectionEnd::Error(e.clone()),
                    Some(e.goaway_code()),
                    CloseReason::Error,
                );
                Err(e)
            }
        }
    }

    /// Tells the multiplexer the underlying stream ended (EOF or an I/O error).
    pub fn handle_transport_closed(&mut self) {
        if self.ended.is_none() {
            self.fail(ConnectionEnd::TransportClosed, None, CloseReason::Error);
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<(), MuxError> {
        loop {
            match self.rx {
                Rx::Preface { got } => {
                    let n = (PREFACE.len() - got).min(buf.len());
                    if buf[..n] != PREFACE[got..got + n] {
                        return Err(MuxError::BadPreface);
                    }
                    buf.advance(n);
                    if got + n < PREFACE.len() {
                        self.rx = Rx::Preface { got: got + n };
                        return Ok(());
                    }
                    self.rx = Rx::Header;
                }
                Rx::Header => {
                    if buf.len() < HEADER_LEN {
                        return Ok(());
                    }
                    let kind_b = buf[0];
                    let channel = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
                    let len = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]);
                    let kind = Kind::from_u8(kind_b).ok_or(MuxError::UnknownFrameKind(kind_b))?;
                    buf.advance(HEADER_LEN);
                    if kind == Kind::Data {
                        let deliver = self.check_data(channel, len)?;
                        self.rx = Rx::Data {
                            channel,
                            remaining: len as usize,
                            deliver,
                        };
                    } else {
                        if len as usize > MAX_CONTROL_PAYLOAD {
                            return Err(MuxError::BadLength { kind, len });
                        }
                        self.rx = Rx::Control {
                            kind,
                            channel,
                            len: len as usize,
                        };
                    }
                }
                Rx::Control { kind, channel, len } => {
                    if buf.len() < len {
                        return Ok(());
                    }
                    let payload = buf.split_to(len);
                    self.rx = Rx::Header;
                    self.control(kind, channel, &payload)?;
                    if self.ended.is_some() {
                        buf.clear();
                        return Ok(());
                    }
                }
                Rx::Data {
                    channel,
                    remaining,
                    deliver,
                } => {
                    if remaining == 0 {
                        self.rx = Rx::Header;
                        continue;
                    }
                    let n = remaining.min(buf.len());
                    if n == 0 {
                        return Ok(());
                    }
                    if deliver {
                        let chunk = buf.split_to(n).freeze();
                        if let Some(c) = self.channels.get_mut(&channel) {
                            if c.recv.is_empty() {
                                self.events.push_back(Event::Readable(ChannelId(channel)));
                            }
                            c.recv.push_back(chunk);
                        }
                    } else {
                        buf.advance(n);
                    }
                    self.rx = Rx::Data {
                        channel,
                        remaining: remaining - n,
                        deliver,
                    };
                }
            }
        }
    }

    /// Whether one more channel's window fits in the connection's receive budget. Every
    /// channel held (opening, pending, open, or closed by the peer with data not yet
    /// released) reserves `initial_window`; a channel never holds more than its window.
    fn budget_allows_another(&self) -> bool {
        let reserved = (self.channels.len() as u64 + 1) * u64::from(self.config.initial_window);
        reserved <= self.config.max_receive_buffer
    }

    /// Bytes of the connection's receive budget reserved by the channels held now (at
    /// most [`Config::max_receive_buffer`]).
    pub fn receive_reserved(&self) -> u64 {
        self.channels.len() as u64 * u64::from(self.config.initial_window)
    }

    /// Received bytes held across all channels, not yet read by the application (at
    /// most [`receive_reserved`](Self::receive_reserved)).
    pub fn buffered_total(&self) -> usize {
        self.channels
            .values()
            .map(|c| c.recv.iter().map(Bytes::len).sum::<usize>())
            .sum()
    }

    /// Checks a DATA header; returns whether its payload is delivered (false for a
    /// channel this side already released).
    fn check_data(&mut self, channel: u32, len: u32) -> Result<bool, MuxError> {
        let unexpected = MuxError::UnexpectedFrame {
            kind: Kind::Data,
            channel,
        };
        let Some(c) = self.channels.get_mut(&channel) else {
            return if channel != 0 && self.is_stale(channel) {
                Ok(false)
            } else {
                Err(unexpected)
            };
        };
        // Data flows only on an accepted channel, before the sender's FIN or CLOSE.
        if c.state == State::Opening || c.recv_fin || c.closed.is_some() {
            return Err(unexpected);
        }
        // Credit: a sender never sends more than the receiver granted (a Pending channel
        // granted nothing yet).
        if u64::from(len) > c.recv_window || (c.state == State::Pending && len > 0) {
            return Err(MuxError::FlowControl { channel });
        }
        c.recv_window -= u64::from(len);
        Ok(true)
    }

    fn control(&mut self, kind: Kind, channel: u32, p: &[u8]) -> Result<(), MuxError> {
        let bad_len = || MuxError::BadLength {
            kind,
            len: p.len() as u32,
        };
        let unexpected = MuxError::UnexpectedFrame { kind, channel };
        let id = ChannelId(channel);
        match kind {
            Kind::Data => unreachable!("DATA is streamed"),
            Kind::Ping | Kind::Pong | Kind::GoAway if channel != 0 => return Err(unexpected),
            Kind::Ping => {
                let v = u64::from_be_bytes(p.try_into().map_err(|_| bad_len())?);
                // Only the latest PING is answered: a peer cannot make this side queue
                // more than one PONG.
                self.pong = Some(v);
            }
            Kind::Pong => {
                if p.len() != 8 {
                    return Err(bad_len());
                }
            }
            Kind::GoAway => {
                let [code] = p else { return Err(bad_len()) };
                let code = GoAwayCode::from_code(*code);
                let reason = match code {
                    GoAwayCode::Normal => CloseReason::Normal,
                    GoAwayCode::Timeout => CloseReason::Timeout,
                    _ => CloseReason::Error,
                };
                self.end(ConnectionEnd::Peer(code), reason);
            }
            Kind::Open => {
                if p.len() < 4 {
                    return Err(bad_len());
                }
                // Ids are the opener's parity and strictly increase (never reused).
                if channel == 0 || self.is_local(channel) || channel <= self.max_peer {
                    return Err(unexpected);
                }
                let window = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let service = std::str::from_utf8(&p[4..])
                    .map_err(|_| MuxError::BadServiceName)?
                    .to_owned();
                self.max_peer = channel;
                // The channel reserves its window now, so that accepting it later can
                // never exceed the connection's receive budget.
                if self.channels.len() >= self.config.max_channels
                    || !self.budget_allows_another()
                    || self.pending_in >= self.config.max_pending_accepts
                {
                    let start = self.out.len();
                    frame::put_u8_frame(
                        &mut self.out,
                        Kind::Refuse,
                        channel,
                        RefuseReason::Busy.code(),
                    );
                    self.push_frame(start);
                    return Ok(());
                }
                self.channels
                    .insert(channel, Chan::new(State::Pending, u64::from(window), 0));
                self.pending_in += 1;
                self.events.push_back(Event::Incoming { id, service });
            }
            Kind::Accept | Kind::Refuse => {
                let Some(c) = self.channels.get_mut(&channel) else {
                    return if channel != 0 && self.is_stale(channel) {
                        Ok(())
                    } else {
                        Err(unexpected)
                    };
                };
                if c.state != State::Opening || c.closed.is_some() {
                    return Err(unexpected);
                }
                if kind == Kind::Accept {
                    let w = u32::from_be_bytes(p.try_into().map_err(|_| bad_len())?);
                    c.state = State::Open;
                    c.send_credit = u64::from(w);
                    self.events.push_back(Event::Opened(id));
                } else {
                    let [code] = p else { return Err(bad_len()) };
                    let reason = RefuseReason::from_code(*code);
                    self.channels.remove(&channel);
                    self.events.push_back(Event::Refused { id, reason });
                }
            }
            Kind::Credit | Kind::Fin | Kind::Close => {
                let Some(c) = self.channels.get_mut(&channel) else {
                    return if channel != 0 && self.is_stale(channel) {
                        Ok(())
                    } else {
                        Err(unexpected)
                    };
                };
                if c.closed.is_some() {
                    return Err(unexpected);
                }
                match kind {
                    Kind::Credit => {
                        let inc = u32::from_be_bytes(p.try_into().map_err(|_| bad_len())?);
                        // A peer's credit can never exceed what a u32 window describes.
                        let new = c.send_credit + u64::from(inc);
                        if new > u64::from(u32::MAX) {
                            return Err(MuxError::FlowControl { channel });
                        }
                        let was_blocked = c.send_credit == 0;
                        c.send_credit = new;
                        if was_blocked && inc > 0 && c.state == State::Open && !c.sent_fin {
                            self.events.push_back(Event::Writable(id));
                        }
                    }
                    Kind::Fin => {
                        if !p.is_empty() {
                            return Err(bad_len());
                        }
                        if c.state != State::Open || c.recv_fin {
                            return Err(unexpected);
                        }
                        c.recv_fin = true;
                        self.events.push_back(Event::Finished(id));
                    }
                    _ => {
                        let [code] = p else { return Err(bad_len()) };
                        let reason = CloseReason::from_code(*code);
                        c.closed = Some(reason);
                        c.send_credit = 0;
                        self.events.push_back(Event::Closed { id, reason });
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the connection: every channel still held is closed with `reason`.
    fn end(&mut self, why: ConnectionEnd, reason: CloseReason) {
        let mut ids: Vec<u32> = self.channels.keys().copied().collect();
        ids.sort_unstable();
        for ch in ids {
            let c = self.channels.get_mut(&ch).expect("listed");
            c.send_credit = 0;
            if c.closed.is_none() {
                c.closed = Some(reason);
                self.events.push_back(Event::Closed {
                    id: ChannelId(ch),
                    reason,
                });
            }
        }
        self.credit_queue.clear();
        self.pong = None;
        self.ping_due = false;
        self.open_deadlines.clear();
        self.events.push_back(Event::ConnectionClosed(why.clone()));
        self.ended = Some(why);
    }

    /// Ends the connection abruptly: queued frames are dropped, a GOAWAY (if any) is the
    /// last thing sent.
    fn fail(&mut self, why: ConnectionEnd, goaway: Option<GoAwayCode>, reason: CloseReason) {
        self.out.clear();
        self.out_frames.clear();
        self.fatal_goaway = goaway;
        self.end(why, reason);
    }

    // ---- commands ------------------------------------------------------------------

    /// Opens a channel for `service`. The peer answers with [`Event::Opened`] or
    /// [`Event::Refused`]; after [`Config::open_timeout`] without an answer the channel is
    /// closed with [`CloseReason::Timeout`]. Writes before the answer return 0 (no credit).
    pub fn open(&mut self, service: &str, now: Instant) -> Result<ChannelId, OpenError> {
        if self.ended.is_some() {
            return Err(OpenError::ConnectionClosed);
        }
        if service.len() > MAX_SERVICE_LEN {
            return Err(OpenError::ServiceNameTooLong);
        }
        if self.channels.len() >= self.config.max_channels {
            return Err(OpenError::TooManyChannels);
        }
        if !self.budget_allows_another() {
            return Err(OpenError::ReceiveBudget);
        }
        let ch = self.next_local;
        self.next_local = ch.checked_add(2).ok_or(OpenError::IdsExhausted)?;
        let window = self.config.initial_window;
        let start = self.out.len();
        frame::put_open(&mut self.out, ch, window, service);
        self.push_frame(start);
        self.channels
            .insert(ch, Chan::new(State::Opening, 0, u64::from(window)));
        self.open_deadlines
            .push_back((now + self.config.open_timeout, ch));
        Ok(ChannelId(ch))
    }

    fn pending(&mut self, id: ChannelId) -> Result<&mut Chan, ChannelError> {
        if self.ended.is_some() {
            return Err(ChannelError::ConnectionClosed);
        }
        let c = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError::Unknown(id))?;
        if c.state != State::Pending {
            return Err(ChannelError::NotPending);
        }
        Ok(c)
    }

    /// Accepts an incoming channel.
    pub fn accept(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let window = self.config.initial_window;
        let c = self.pending(id)?;
        c.state = State::Open;
        let closed = c.closed;
        if closed.is_none() {
            c.recv_window = u64::from(window);
        }
        self.pending_in -= 1;
        if closed.is_none() {
            let start = self.out.len();
            frame::put_u32_frame(&mut self.out, Kind::Accept, id.0, window);
            self.push_frame(start);
        }
        Ok(())
    }

    /// Refuses an incoming channel and releases it.
    pub fn refuse(&mut self, id: ChannelId, reason: RefuseReason) -> Result<(), ChannelError> {
        let closed = self.pending(id)?.closed;
        self.channels.remove(&id.0);
        self.pending_in -= 1;
        if closed.is_none() {
            let start = self.out.len();
            frame::put_u8_frame(&mut self.out, Kind::Refuse, id.0, reason.code());
            self.push_frame(start);
        }
        Ok(())
    }

    fn writable(&mut self, id: ChannelId) -> Result<&mut Chan, ChannelError> {
        if self.ended.is_some() {
            return Err(ChannelError::ConnectionClosed);
        }
        let c = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError::Unknown(id))?;
        if let Some(r) = c.closed {
            return Err(ChannelError::Closed(r));
        }
        if c.state == State::Pending {
            return Err(ChannelError::NotAccepted);
        }
        if c.sent_fin {
            return Err(ChannelError::Finished);
        }
        Ok(c)
    }

    /// Queues as much of `data` as the channel's credit allows and returns how much that
    /// was. `Ok(0)` for non-empty data means no credit: wait for [`Event::Writable`] (or
    /// [`Event::Opened`] for a channel still opening). This is the backpressure: nothing
    /// beyond the peer's credit is ever queued.
    pub fn write(&mut self, id: ChannelId, data: &[u8]) -> Result<usize, ChannelError> {
        let c = self.writable(id)?;
        let n = (c.send_credit.min(data.len() as u64)) as usize;
        c.send_credit -= n as u64;
        for piece in data[..n].chunks(MAX_DATA_FRAME) {
            let start = self.out.len();
            frame::put_header(&mut self.out, Kind::Data, id.0, piece.len());
            self.out.extend_from_slice(piece);
            self.push_frame(start);
        }
        Ok(n)
    }

    /// Half-closes the channel: this side sends no more data; the peer reads to the end.
    pub fn finish(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let c = self.writable(id)?;
        c.sent_fin = true;
        c.send_credit = 0;
        let start = self.out.len();
        frame::put_header(&mut self.out, Kind::Fin, id.0, 0);
        self.push_frame(start);
        Ok(())
    }

    /// Copies received data into `buf`. `Some(n)` with `n > 0`: data; `Some(0)`: the end
    /// (the peer finished, or closed normally, and everything was read); `None`: nothing
    /// yet, wait for [`Event::Readable`]. Reading returns credit to the peer.
    pub fn read(&mut self, id: ChannelId, buf: &mut [u8]) -> Result<Option<usize>, ChannelError> {
        let c = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError::Unknown(id))?;
        let mut n = 0;
        while n < buf.len() {
            let Some(front) = c.recv.front_mut() else {
                break;
            };
            let k = front.len().min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&front[..k]);
            front.advance(k);
            if front.is_empty() {
                c.recv.pop_front();
            }
            n += k;
        }
        if n > 0 {
            self.consumed(id.0, n);
            return Ok(Some(n));
        }
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let c = &self.channels[&id.0];
        if c.recv_fin {
            return Ok(Some(0));
        }
        match c.closed {
            Some(CloseReason::Normal) => Ok(Some(0)),
            Some(r) => Err(ChannelError::Closed(r)),
            None if self.ended.is_some() => Err(ChannelError::ConnectionClosed),
            None => Ok(None),
        }
    }

    /// Like [`read`](Self::read) without copying: the next received piece, at most `max`
    /// bytes. `Some(empty)` is the end.
    pub fn read_chunk(&mut self, id: ChannelId, max: usize) -> Result<Option<Bytes>, ChannelError> {
        let c = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError::Unknown(id))?;
        if let Some(front) = c.recv.front_mut() {
            let piece = if front.len() <= max {
                c.recv.pop_front().expect("front exists")
            } else {
                front.split_to(max)
            };
            self.consumed(id.0, piece.len());
            return Ok(Some(piece));
        }
        let mut empty = [0u8; 1];
        self.read(id, &mut empty).map(|r| r.map(|_| Bytes::new()))
    }

    fn consumed(&mut self, ch: u32, n: usize) {
        let threshold = (self.config.initial_window / 4).max(1);
        let c = self.channels.get_mut(&ch).expect("checked by caller");
        c.unacked += n as u32;
        if c.unacked >= threshold && !c.credit_queued && !c.recv_fin && c.closed.is_none() {
            c.credit_queued = true;
            self.credit_queue.push_back(ch);
        }
    }

    /// Closes a channel in both directions and releases it. Data already written is sent
    /// first; the peer sees [`Event::Closed`] with `reason`. Nothing is sent if the peer
    /// already closed it.
    pub fn close(&mut self, id: ChannelId, reason: CloseReason) -> Result<(), ChannelError> {
        let c = self
            .channels
            .remove(&id.0)
            .ok_or(ChannelError::Unknown(id))?;
        if c.state == State::Pending {
            self.pending_in -= 1;
        }
        if c.closed.is_none() && self.ended.is_none() {
            let start = self.out.len();
            frame::put_u8_frame(&mut self.out, Kind::Close, id.0, reason.code());
            self.push_frame(start);
        }
        Ok(())
    }

    /// Ends the connection gracefully: data already written is sent, then GOAWAY.
    pub fn go_away(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let start = self.out.len();
        frame::put_u8_frame(&mut self.out, Kind::GoAway, 0, GoAwayCode::Normal.code());
        self.push_frame(start);
        self.end(ConnectionEnd::Local, CloseReason::Normal);
    }

    // ---- output --------------------------------------------------------------------

    /// The next bytes to write to the stream, or `None` when nothing is queued. Credit,
    /// PING and PONG frames come first; then queued frames in order, at most
    /// [`Config::max_transmit`] bytes (always whole frames).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if let Some(code) = self.fatal_goaway.take() {
            let mut b = BytesMut::new();
            frame::put_u8_frame(&mut b, Kind::GoAway, 0, code.code());
            return Some(b.freeze());
        }
        if std::mem::take(&mut self.preface_pending) {
            return Some(Bytes::from_static(PREFACE));
        }
        // Priority frames may go only between whole frames, which is always where the
        // previous transmit ended.
        if !self.credit_queue.is_empty() || self.pong.is_some() || self.ping_due {
            let mut b = BytesMut::new();
            if let Some(v) = self.pong.take() {
                frame::put_u64_frame(&mut b, Kind::Pong, 0, v);
            }
            if std::mem::take(&mut self.ping_due) {
                self.ping_counter += 1;
                frame::put_u64_frame(&mut b, Kind::Ping, 0, self.ping_counter);
            }
            while let Some(ch) = self.credit_queue.pop_front() {
                let Some(c) = self.channels.get_mut(&ch) else {
                    continue;
                };
                c.credit_queued = false;
                if c.recv_fin || c.closed.is_some() {
                    continue;
                }
                let inc = std::mem::take(&mut c.unacked);
                c.recv_window += u64::from(inc);
                frame::put_u32_frame(&mut b, Kind::Credit, ch, inc);
            }
            if !b.is_empty() {
                return Some(b.freeze());
            }
        }
        let mut n = 0;
        while let Some(&len) = self.out_frames.front() {
            if n > 0 && n + len > self.config.max_transmit {
                break;
            }
            n += len;
            self.out_frames.pop_front();
        }
        if n == 0 {
            return None;
        }
        Some(self.out.split_to(n).freeze())
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something to hand out.
    pub fn wants_transmit(&self) -> bool {
        self.preface_pending
            || !self.out_frames.is_empty()
            || !self.credit_queue.is_empty()
            || self.pong.is_some()
            || self.ping_due
            || self.fatal_goaway.is_some()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.ended.is_some() {
            return None;
        }
        while let Some(&(_, ch)) = self.open_deadlines.front() {
            if self
                .channels
                .get(&ch)
                .is_some_and(|c| c.state == State::Opening && c.closed.is_none())
            {
                break;
            }
            self.open_deadlines.pop_front();
        }
        let ping = self.last_recv.max(self.last_ping) + self.config.keepalive_interval;
        let dead = self.last_recv + self.config.keepalive_timeout;
        let mut t = ping.min(dead);
        if let Some(&(d, _)) = self.open_deadlines.front() {
            t = t.min(d);
        }
        Some(t)
    }

    /// Fires the timers due at `now`: keep-alive PINGs, the keep-alive timeout (which
    /// ends the connection with [`ConnectionEnd::KeepAliveTimeout`] and closes every
    /// channel with [`CloseReason::Timeout`]), and open timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.ended.is_some() {
            return;
        }
        if now >= self.last_recv + self.config.keepalive_timeout {
            self.fail(
                ConnectionEnd::KeepAliveTimeout,
                Some(GoAwayCode::Timeout),
                CloseReason::Timeout,
            );
            return;
        }
        if now >= self.last_recv.max(self.last_ping) + self.config.keepalive_interval {
            self.ping_due = true;
            self.last_ping = now;
        }
        while let Some(&(d, ch)) = self.open_deadlines.front() {
            if d > now {
                break;
            }
            self.open_deadlines.pop_front();
            let still_opening = self
                .channels
                .get(&ch)
                .is_some_and(|c| c.state == State::Opening && c.closed.is_none());
            if still_opening {
                self.channels.remove(&ch);
                let start = self.out.len();
                frame::put_u8_frame(&mut self.out, Kind::Close, ch, CloseReason::Timeout.code());
                self.push_frame(start);
                self.events.push_back(Event::Closed {
                    id: ChannelId(ch),
                    reason: CloseReason::Timeout,
                });
            }
        }
    }
}
