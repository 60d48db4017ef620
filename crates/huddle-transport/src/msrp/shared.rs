//! One connection carrying several sessions (RFC 4975 §5.4: a connection is not tied
//! to one session; an endpoint may send the chunks of several sessions over it, and
//! the receiver tells them apart by the session URI in To-Path).
//!
//! [`SharedConnection`] owns the connection: a reader task that routes each incoming
//! frame to the session whose URI is its To-Path (§7.3: a request for no session here
//! is answered 481; a response or REPORT for none is dropped, as they are never
//! answered), and a writer task that serializes the sessions' outgoing chunks. Each
//! [`SharedSession`] sends and receives its own chunks.
//!
//! The sessions share the connection's ordering: a session that stops reading holds
//! its bounded queue, then the reader waits for it (TCP head-of-line blocking, which a
//! shared connection cannot avoid); sessions that need isolation use their own
//! connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use huddle_msrp::{Chunk, Method, MsrpUri, StatusCode};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::stream::MsrpStream;
use super::{TransportOptions, connect::ConnectError};
use crate::codec::MsrpCodec;

/// Chunks queued per session before the reader waits for it.
const SESSION_QUEUE: usize = 64;
/// Chunks queued for writing before senders wait.
const WRITE_QUEUE: usize = 256;

type Routes = Arc<Mutex<HashMap<MsrpUri, mpsc::Sender<Chunk>>>>;

/// A connection shared by sessions. Dropping it closes the connection.
#[derive(Debug)]
pub struct SharedConnection {
    routes: Routes,
    out: mpsc::Sender<Chunk>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for SharedConnection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Why a shared session cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// The connection is closed.
    #[error("the shared connection is closed")]
    Closed,
}

impl SharedConnection {
    /// Starts sharing `stream` (connected, TCP or TLS).
    pub fn new(stream: MsrpStream, options: &TransportOptions) -> SharedConnection {
        let (rd, wr) = tokio::io::split(stream);
        let routes: Routes = Arc::default();
        let (out_tx, mut out_rx) = mpsc::channel::<Chunk>(WRITE_QUEUE);
        let mut sink = FramedWrite::new(wr, MsrpCodec::new(options.limits));
        let writer = tokio::spawn(async move {
            while let Some(first) = out_rx.recv().await {
                if sink.feed(&first).await.is_err() {
                    break;
                }
                // Everything already queued shares one flush.
                while let Ok(next) = out_rx.try_recv() {
                    if sink.feed(&next).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<&Chunk>::flush(&mut sink).await.is_err() {
                    break;
                }
            }
        });
        let mut frames = FramedRead::new(rd, MsrpCodec::new(options.limits));
        let reader_routes = routes.clone();
        let reader_out = out_tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(item) = frames.next().await {
                match item {
                    Ok(Ok(chunk)) => route(&reader_routes, &reader_out, chunk).await,
                    // A bad frame that left the stream usable: answer it (RFC 4975 §7.2).
                    Ok(Err(bad)) => {
                        if let Some(resp) = bad.response() {
                            let _ = reader_out.send(resp).await;
                        }
                    }
                    Err(_) => break,
                }
            }
            // The connection is gone: every session sees its queue end.
            reader_routes.lock().expect("routes lock poisoned").clear();
        });
        SharedConnection {
            routes,
            out: out_tx,
            reader,
            writer,
        }
    }

    /// Adds a session whose URI is `local_uri` (its To-Path on incoming frames).
    pub fn attach(&self, local_uri: MsrpUri) -> Result<SharedSession, ConnectError> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut routes = self.routes.lock().expect("routes lock poisoned");
        if routes.contains_key(&local_uri) {
            return Err(ConnectError::Duplicate);
        }
        routes.insert(local_uri.clone(), tx);
        Ok(SharedSession {
            local_uri,
            rx,
            out: self.out.clone(),
            routes: self.routes.clone(),
        })
    }

    /// Sessions attached.
    pub fn sessions(&self) -> usize {
        self.routes.lock().expect("routes lock poisoned").len()
    }
}

async fn route(routes: &Routes, out: &mpsc::Sender<Chunk>, chunk: Chunk) {
    // RFC 4975 §7.3: an endpoint is the last hop, so To-Path holds exactly its URI.
    let target = match chunk.to_path() {
        Ok(to) if to.len() == 1 => routes
            .lock()
            .expect("routes lock poisoned")
            .get(&to[0])
            .cloned(),
        _ => None,
    };
    match target {
        Some(tx) => {
            // A session that went away between lookup and send is a session that does
            // not exist any more.
            if let Err(mpsc::error::SendError(chunk)) = tx.send(chunk).await {
                refuse(out, &chunk).await;
            }
        }
        None => refuse(out, &chunk).await,
    }
}

async fn refuse(out: &mpsc::Sender<Chunk>, chunk: &Chunk) {
    // Responses and REPORTs are never answered (RFC 4975 §7.1.2, §7.2).
    if chunk.method().is_some_and(|m| *m != Method::REPORT)
        && let Some(resp) = chunk.response(
            StatusCode::SESSION_DOES_NOT_EXIST,
            StatusCode::SESSION_DOES_NOT_EXIST.canonical_reason(),
        )
    {
        let _ = out.send(resp).await;
    }
}

/// One session on a [`SharedConnection`]. Dropping it detaches the session (later
/// requests for it are answered 481).
#[derive(Debug)]
pub struct SharedSession {
    local_uri: MsrpUri,
    rx: mpsc::Receiver<Chunk>,
    out: mpsc::Sender<Chunk>,
    routes: Routes,
}

impl SharedSession {
    /// This session's URI.
    pub fn local_uri(&self) -> &MsrpUri {
        &self.local_uri
    }

    /// Queues a chunk for the connection (waits while the write queue is full).
    pub async fn send(&self, chunk: Chunk) -> Result<(), SharedError> {
        self.out.send(chunk).await.map_err(|_| SharedError::Closed)
    }

    /// The next frame for this session (requests and responses); `None` once the
    /// connection closed.
    pub async fn recv(&mut self) -> Option<Chunk> {
        self.rx.recv().await
    }
}

impl Drop for SharedSession {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.remove(&self.local_uri);
        }
    }
}
