//! Channels inside one stream (Elastos Carrier's channels): many independent,
//! flow-controlled byte channels multiplexed over one reliable ordered stream (TCP, TLS,
//! an authenticated [`streams`](crate::streams) connection).
//!
//! - [`Mux`] is the sans-IO state machine: framing ([`frame`]), per-channel state,
//!   credit-based flow control (like HTTP/2 and QUIC stream windows), keep-alive with a
//!   timeout, open/accept/refuse, half-close and close with a reason, and a
//!   connection-wide receive budget ([`Config::max_receive_buffer`], like HTTP/2's
//!   connection window or QUIC's `max_data`) that bounds what all channels together can
//!   make this side hold.
//! - [`Connection`] and [`Channel`] are the tokio driver: a task that moves bytes between
//!   the stream and the state machine and fires its timers; each channel is
//!   `AsyncRead + AsyncWrite`.
//!
//! Unlike Carrier's pend/resume notifications (advisory), credit here is real
//! backpressure: a writer without credit cannot queue a byte. Unlike yamux, a silent peer
//! is detected by the keep-alive timeout, and credit frames never wait behind data.

mod core;
mod driver;
pub mod frame;

pub use self::core::{
    ChannelError, ChannelId, Config, ConnectionEnd, Event, Mux, MuxError, OpenError, Role,
};
pub use self::driver::{Channel, Connection, ConnectionError, Incoming};
pub use self::frame::{CloseReason, GoAwayCode, RefuseReason};
