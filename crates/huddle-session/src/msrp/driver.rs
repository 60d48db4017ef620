//! The tokio driver of an [`MsrpSession`]: it owns the connection and the timers and
//! moves frames between them and the sans-IO session; every decision is the session's.
//!
//! [`MsrpSessionHandle`] is the async API (msrplib's `MSRPSession` / `GreenMSRPSession`):
//! [`send_message`](MsrpSessionHandle::send_message) with a future for its outcome
//! (`deliver_chunk`-style), incoming events from a queue
//! ([`next_event`](MsrpSessionHandle::next_event)), and
//! [`shutdown`](MsrpSessionHandle::shutdown), which flushes what is queued and closes.
//! Backpressure: when the application stops taking events, the driver stops reading the
//! socket, so a fast peer cannot grow memory without bound.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use huddle_transport::codec::MsrpCodec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::session::{MessageId, MessageOutcome, MsrpEvent, MsrpSession, SendOptions};

/// Why an async call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The driver task has ended (connection closed or shut down).
    #[error("the MSRP session has ended")]
    Ended,
    /// The session refused the message (shutting down).
    #[error("the MSRP session is shutting down")]
    ShuttingDown,
}

enum Command {
    Send {
        content_type: String,
        body: Bytes,
        options: SendOptions,
        reply: oneshot::Sender<Option<MessageId>>,
        outcome: Option<oneshot::Sender<MessageOutcome>>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A handle on a running MSRP session.
#[derive(Debug)]
pub struct MsrpSessionHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<MsrpEvent>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Send {
                content_type, body, ..
            } => write!(f, "Send({content_type}, {} bytes)", body.len()),
            Command::Shutdown { .. } => f.write_str("Shutdown"),
        }
    }
}

/// Starts driving `session` over `io` (a connected, bound MSRP connection).
pub fn spawn<T>(io: T, session: MsrpSession) -> MsrpSessionHandle
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (ev_tx, ev_rx) = mpsc::channel(256);
    tokio::spawn(run(
        Framed::new(io, MsrpCodec::default()),
        session,
        cmd_rx,
        ev_tx,
    ));
    MsrpSessionHandle {
        commands: cmd_tx,
        events: ev_rx,
    }
}

impl MsrpSessionHandle {
    /// Queues a message; returns its Message-ID. Its outcome arrives as an
    /// [`MsrpEvent::Outcome`] from [`next_event`](Self::next_event).
    pub async fn send_message(
        &self,
        content_type: &str,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Result<MessageId, DriverError> {
        self.send(content_type, body.into(), options, None).await
    }

    /// Sends a message and waits for its outcome (msrplib's `deliver_chunk`).
    pub async fn deliver(
        &self,
        content_type: &str,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Result<(MessageId, MessageOutcome), DriverError> {
        let (tx, rx) = oneshot::channel();
        let id = self
            .send(content_type, body.into(), options, Some(tx))
            .await?;
        let outcome = rx.await.map_err(|_| DriverError::Ended)?;
        Ok((id, outcome))
    }

    async fn send(
        &self,
        content_type: &str,
        body: Bytes,
        options: SendOptions,
        outcome: Option<oneshot::Sender<MessageOutcome>>,
    ) -> Result<MessageId, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Send {
                content_type: content_type.to_owned(),
                body,
                options,
                reply,
                outcome,
            })
            .await
            .map_err(|_| DriverError::Ended)?;
        rx.await
            .map_err(|_| DriverError::Ended)?
            .ok_or(DriverError::ShuttingDown)
    }

    /// The next event (incoming message, outcome, ...); `None` once the session ended
    /// and every event was taken.
    pub async fn next_event(&mut self) -> Option<MsrpEvent> {
        self.events.recv().await
    }

    /// Sends what is queued, waits until every message has its outcome, then closes.
    pub async fn shutdown(&self) -> Result<(), DriverError> {
        let (done, rx) = oneshot::channel();
        self.commands
            .send(Command::Shutdown { done })
            .await
            .map_err(|_| DriverError::Ended)?;
        rx.await.map_err(|_| DriverError::Ended)
    }

    /// Splits into the command side and the event side, for applications that read
    /// events in one task and send from another.
    pub fn split(self) -> (MsrpSender, mpsc::Receiver<MsrpEvent>) {
        (
            MsrpSender {
                commands: self.commands,
            },
            self.events,
        )
    }
}

/// The sending half of a [`MsrpSessionHandle`].
#[derive(Debug, Clone)]
pub struct MsrpSender {
    commands: mpsc::Sender<Command>,
}

impl MsrpSender {
    /// Queues a message (see [`MsrpSessionHandle::send_message`]).
    pub async fn send_message(
        &self,
        content_type: &str,
        body: impl Into<Bytes>,
        options: SendOptions,
    ) -> Result<MessageId, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Send {
                content_type: content_type.to_owned(),
                body: body.into(),
                options,
                reply,
                outcome: None,
            })
            .await
            .map_err(|_| DriverError::Ended)?;
        rx.await
            .map_err(|_| DriverError::Ended)?
            .ok_or(DriverError::ShuttingDown)
    }
}

async fn run<T>(
    mut framed: Framed<T, MsrpCodec>,
    mut session: MsrpSession,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<MsrpEvent>,
) where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut waiters: HashMap<MessageId, oneshot::Sender<MessageOutcome>> = HashMap::new();
    let mut shutdown_waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut commands_open = true;
    let mut closed = false;
    loop {
        // Write everything the session wants written.
        let now = Instant::now().into_std();
        let mut wrote = false;
        while let Some(chunk) = session.poll_transmit(now) {
            if framed.feed(chunk).await.is_err() {
                session.handle_connection_lost();
                break;
            }
            wrote = true;
        }
        if wrote
            && SinkExt::<huddle_msrp::Chunk>::flush(&mut framed)
                .await
                .is_err()
        {
            session.handle_connection_lost();
        }
        // Hand events out (waiting here is the backpressure on the reader).
        while let Some(ev) = session.poll_event() {
            if let MsrpEvent::Outcome {
                message_id,
                outcome,
            } = &ev
                && let Some(w) = waiters.remove(message_id)
            {
                let _ = w.send(outcome.clone());
            }
            if ev == MsrpEvent::Closed {
                closed = true;
            }
            if events.send(ev).await.is_err() {
                // Nobody listens any more: keep the session correct, drop the event.
            }
        }
        if closed {
            for w in shutdown_waiters.drain(..) {
                let _ = w.send(());
            }
            let _ = SinkExt::<huddle_msrp::Chunk>::close(&mut framed).await;
            return;
        }
        let deadline = session.poll_timeout().map(Instant::from_std);
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(Ok(chunk))) => session.handle_chunk(chunk, Instant::now().into_std()),
                Some(Ok(Err(bad))) => session.handle_decode_error(&bad),
                Some(Err(_)) | None => session.handle_connection_lost(),
            },
            cmd = commands.recv(), if commands_open => match cmd {
                Some(Command::Send { content_type, body, options, reply, outcome }) => {
                    let id = session.send_message(&content_type, body, options);
                    if let (Some(id), Some(o)) = (&id, outcome) {
                        waiters.insert(id.clone(), o);
                    }
                    let _ = reply.send(id);
                }
                Some(Command::Shutdown { done }) => {
                    shutdown_waiters.push(done);
                    session.shutdown();
                }
                None => {
                    // Every handle is gone: finish what is queued and close.
                    commands_open = false;
                    session.shutdown();
                }
            },
            _ = sleep_until(deadline) => session.handle_timeout(Instant::now().into_std()),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
