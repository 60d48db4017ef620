//! Streams mode (AIMCC custom sessions): "an authenticated, direct peer-to-peer TCP
//! stream" between two participants.
//!
//! Both sides know a per-session secret exchanged over signaling. Before any
//! application byte flows, each side proves knowledge of it with an HMAC-SHA256
//! challenge-response over nonces chosen by both sides, and checks the other's proof in
//! constant time. A wrong secret closes the connection with a typed [`AuthError`]; after
//! success the stream is plain `AsyncRead + AsyncWrite` ([`AuthenticatedStream`]).
//!
//! [`Handshake`] is the sans-IO state machine; [`connect`] and [`accept`] drive it over
//! any `AsyncRead + AsyncWrite` (a `TcpStream` in practice).
//!
//! The exchange (each side sends, in order):
//!
//! ```text
//! HELLO   = "HSTRM1" role(1: 0 initiator, 1 responder) nonce(32)
//! PROOF   = 'P' HMAC-SHA256(secret, "huddle streams v1" || prover-role || nonce_i || nonce_r)
//! VERDICT = 'V' (0: your proof is good, 1: it is not)
//! ```
//!
//! A side sends its PROOF once it has the peer's HELLO, and its VERDICT once it checked
//! the peer's PROOF; it is established once its own check passed and the peer's VERDICT
//! says 0. The prover's role is part of the MAC, so a proof cannot be reflected back to
//! its sender, and fresh nonces from both sides make a recorded proof useless later.
//!
//! The secret must be random (at least [`MIN_SECRET_LEN`] bytes, like 32 bytes from a
//! CSPRNG sent over signaling), not a password: the proofs would let an active attacker
//! guess a low-entropy secret offline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

const MAGIC: &[u8; 6] = b"HSTRM1";
const HELLO_LEN: usize = 6 + 1 + 32;
const PROOF_LEN: usize = 1 + 32;
const VERDICT_LEN: usize = 2;
const LABEL: &[u8] = b"huddle streams v1";

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Which side of the stream this is: the one that connects, or the one that accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRole {
    /// The side that connected.
    Initiator,
    /// The side that accepted.
    Responder,
}

impl StreamRole {
    fn byte(self) -> u8 {
        match self {
            StreamRole::Initiator => 0,
            StreamRole::Responder => 1,
        }
    }
}

/// Why authentication failed. The connection is unusable after any of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The secret is shorter than [`MIN_SECRET_LEN`].
    #[error("the session secret is shorter than {MIN_SECRET_LEN} bytes")]
    SecretTooShort,
    /// The peer does not speak this protocol (or another version of it).
    #[error("the peer is not a huddle streams-mode endpoint")]
    NotAStreamsPeer,
    /// Both sides claim the same role.
    #[error("both sides claim the same role")]
    RoleConflict,
    /// The peer's proof is wrong: it does not know the session secret.
    #[error("the peer failed to prove knowledge of the session secret")]
    BadProof,
    /// The peer says this side's proof is wrong (the secrets differ).
    #[error("the peer rejected this side's proof")]
    RejectedByPeer,
    /// A handshake message that does not parse.
    #[error("malformed handshake message")]
    Malformed,
    /// The handshake did not finish in time.
    #[error("the handshake timed out")]
    Timeout,
    /// The peer closed the connection during the handshake.
    #[error("the peer closed the connection during the handshake")]
    PeerClosed,
    /// An I/O error during the handshake.
    #[error("I/O error during the handshake: {0:?}")]
    Io(io::ErrorKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    AwaitHello,
    AwaitProof,
    AwaitVerdict,
    Established,
    Failed,
}

/// The sans-IO handshake for one side.
#[derive(Debug)]
pub struct Handshake {
    role: StreamRole,
    mac: Hmac<Sha256>,
    nonce: [u8; 32],
    peer_nonce: [u8; 32],
    step: Step,
    out: BytesMut,
    deadline: Instant,
}

impl Handshake {
    /// Starts a handshake and queues this side's HELLO. `nonce` must be fresh random
    /// bytes (the driver takes them from the OS); `timeout` bounds the whole exchange.
    pub fn new(
        role: StreamRole,
        secret: &[u8],
        nonce: [u8; 32],
        now: Instant,
        timeout: Duration,
    ) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::SecretTooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AuthError::SecretTooShort)?;
        let mut out = BytesMut::with_capacity(HELLO_LEN + PROOF_LEN + VERDICT_LEN);
        out.put_slice(MAGIC);
        out.put_u8(role.byte());
        out.put_slice(&nonce);
        Ok(Handshake {
            role,
            mac,
            nonce,
            peer_nonce: [0; 32],
            step: Step::AwaitHello,
            out,
            deadline: now + timeout,
        })
    }

    fn tagger(&self, prover: StreamRole) -> Hmac<Sha256> {
        let (ni, nr) = match self.role {
            StreamRole::Initiator => (&self.nonce, &self.peer_nonce),
            StreamRole::Responder => (&self.peer_nonce, &self.nonce),
        };
        let mut m = self.mac.clone();
        m.update(LABEL);
        m.update(&[prover.byte()]);
        m.update(ni);
        m.update(nr);
        m
    }

    fn peer_role(&self) -> StreamRole {
        match self.role {
            StreamRole::Initiator => StreamRole::Responder,
            StreamRole::Responder => StreamRole::Initiator,
        }
    }

    /// Consumes handshake messages from `buf`. Bytes after the peer's VERDICT are
    /// application data and stay in `buf`.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), AuthError> {
        let r = self.step_input(buf);
        if r.is_err() {
            self.step = Step::Failed;
        }
        r
    }

    fn step_input(&mut self, buf: &mut BytesMut) -> Result<(), AuthError> {
        loop {
            match self.step {
                Step::AwaitHello => {
                    // Fail on the first byte that cannot start a HELLO, so a peer speaking
                    // something else is told at once.
                    let n = buf.len().min(MAGIC.len());
                    if buf[..n] != MAGIC[..n] {
                        return Err(AuthError::NotAStreamsPeer);
                    }
                    if buf.len() < HELLO_LEN {
                        return Ok(());
                    }
                    let hello = buf.split_to(HELLO_LEN);
                    if hello[6] != self.peer_role().byte() {
                        return Err(if hello[6] == self.role.byte() {
                            AuthError::RoleConflict
                        } else {
                            AuthError::Malformed
                        });
                    }
                    self.peer_nonce.copy_from_slice(&hello[7..]);
                    let proof = self.tagger(self.role).finalize().into_bytes();
                    self.out.put_u8(b'P');
                    self.out.put_slice(&proof);
                    self.step = Step::AwaitProof;
                }
                Step::AwaitProof => {
                    if buf.len() < PROOF_LEN {
                        return Ok(());
                    }
                    let proof = buf.split_to(PROOF_LEN);
                    if proof[0] != b'P' {
                        return Err(AuthError::Malformed);
                    }
                    // `verify_slice` compares in constant time.
                    let ok = self
                        .tagger(self.peer_role())
                        .verify_slice(&proof[1..])
                        .is_ok();
                    self.out.put_u8(b'V');
                    self.out.put_u8(u8::from(!ok));
                    if !ok {
                        return Err(AuthError::BadProof);
                    }
                    self.step = Step::AwaitVerdict;
                }
                Step::AwaitVerdict => {
                    if buf.len() < VERDICT_LEN {
                        return Ok(());
                    }
                    let v = buf.split_to(VERDICT_LEN);
                    return match (v[0], v[1]) {
                        (b'V', 0) => {
                            self.step = Step::Established;
                            Ok(())
                        }
                        (b'V', 1) => Err(AuthError::RejectedByPeer),
                        _ => Err(AuthError::Malformed),
                    };
                }
                Step::Established | Step::Failed => return Ok(()),
            }
        }
    }

    /// Bytes to send, if any (also after a failure: the VERDICT telling the peer its
    /// proof was wrong).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| self.out.split().freeze())
    }

    /// Whether both proofs checked out: application data may flow.
    pub fn is_established(&self) -> bool {
        self.step == Step::Established
    }

    /// When the handshake times out (`None` once it finished).
    pub fn poll_timeout(&self) -> Option<Instant> {
        matches!(
            self.step,
            Step::AwaitHello | Step::AwaitProof | Step::AwaitVerdict
        )
        .then_some(self.deadline)
    }

    /// Fails the handshake with [`AuthError::Timeout`] if its deadline passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), AuthError> {
        if self.poll_timeout().is_some_and(|d| now >= d) {
            self.step = Step::Failed;
            return Err(AuthError::Timeout);
        }
        Ok(())
    }
}

/// Options for [`connect`] and [`accept`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// The whole handshake must finish within this time.
    pub handshake_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Authenticates as the side that connected.
pub async fn connect<T>(
    io: T,
    secret: &[u8],
    config: &StreamConfig,
) -> Result<AuthenticatedStream<T>, AuthError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    authenticate(io, StreamRole::Initiator, secret, config).await
}

/// Authenticates as the side that accepted.
pub async fn accept<T>(
    io: T,
    secret: &[u8],
    config: &StreamConfig,
) -> Result<AuthenticatedStream<T>, AuthError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    authenticate(io, StreamRole::Responder, secret, config).await
}

async fn authenticate<T>(
    mut io: T,
    role: StreamRole,
    secret: &[u8],
    config: &StreamConfig,
) -> Result<AuthenticatedStream<T>, AuthError>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|_| AuthError::Io(io::ErrorKind::Other))?;
    let now = tokio::time::Instant::now();
    let mut hs = Handshake::new(
        role,
        secret,
        nonce,
        now.into_std(),
        config.handshake_timeout,
    )?;
    let deadline = tokio::time::Instant::from_std(hs.poll_timeout().expect("just started"));
    let mut buf = BytesMut::with_capacity(256);
    let run = async {
        loop {
            while let Some(b) = hs.poll_transmit() {
                io.write_all(&b)
                    .await
                    .map_err(|e| AuthError::Io(e.kind()))?;
            }
            if hs.is_established() {
                return Ok(());
            }
            let n = io
                .read_buf(&mut buf)
                .await
                .map_err(|e| AuthError::Io(e.kind()))?;
            if n == 0 {
                return Err(AuthError::PeerClosed);
            }
            if let Err(e) = hs.handle_input(&mut buf) {
                // Tell the peer its proof failed before closing.
                if let Some(b) = hs.poll_transmit() {
                    let _ = io.write_all(&b).await;
                }
                return Err(e);
            }
        }
    };
    let r = match tokio::time::timeout_at(deadline, run).await {
        Ok(r) => r,
        Err(_) => Err(AuthError::Timeout),
    };
    match r {
        Ok(()) => Ok(AuthenticatedStream {
            io,
            leftover: buf.freeze(),
        }),
        Err(e) => {
            // Close the connection: nothing more is read or written on it.
            let _ = io.shutdown().await;
            Err(e)
        }
    }
}

/// A stream whose peer proved knowledge of the session secret: `AsyncRead +
/// AsyncWrite`, passing bytes straight through.
#[derive(Debug)]
pub struct AuthenticatedStream<T> {
    io: T,
    /// Application bytes that arrived with the handshake's last message.
    leftover: Bytes,
}

impl<T> AuthenticatedStream<T> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The underlying stream and the application bytes already read from it.
    pub fn into_parts(self) -> (T, Bytes) {
        (self.io, self.leftover)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for AuthenticatedStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.leftover.is_empty() {
            let n = self.leftover.len().min(buf.remaining());
            buf.put_slice(&self.leftover[..n]);
            self.leftover.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for AuthenticatedStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
