//! A byte stream carried in MSRP messages (sipsimple's desktop sharing carries RFB this
//! way, `application/x-rfb`): [`MsrpStream`] is `AsyncRead + AsyncWrite`.
//!
//! Each write becomes one single-chunk message (at most the session's chunk size), so
//! the session sends them in order and the peer receives them in order; every message
//! asks for hop-by-hop responses (`Failure-Report: yes`), and a failed one breaks the
//! stream with an error instead of a silent gap.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::driver::MsrpSessionHandle;
use super::session::{MessageOutcome, MsrpEvent, SendOptions};

/// The content type sipsimple uses for screen sharing streams.
pub const RFB: &str = "application/x-rfb";

/// A byte stream over an MSRP session: the application end of a duplex pipe whose other
/// end a task moves in and out of MSRP messages.
pub type MsrpStream = DuplexStream;

/// Turns a running session into a byte stream of `content_type` messages, writing at
/// most `max_piece` bytes per message.
pub fn into_stream(handle: MsrpSessionHandle, content_type: &str, max_piece: usize) -> MsrpStream {
    let (app, mut bridge) = tokio::io::duplex(max_piece.max(1) * 4);
    let content_type = content_type.to_owned();
    tokio::spawn(async move {
        let (sender, mut events) = handle.split();
        let mut buf = vec![0u8; max_piece.max(1)];
        let opts = SendOptions::default();
        let (mut rd, mut wr) = tokio::io::split(&mut bridge);
        let outbound = async {
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if sender
                    .send_message(&content_type, Bytes::copy_from_slice(&buf[..n]), opts)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            drop(sender);
        };
        let inbound = async {
            while let Some(ev) = events.recv().await {
                match ev {
                    MsrpEvent::Message { body, .. } if wr.write_all(&body).await.is_err() => break,
                    MsrpEvent::Message { .. } => {}
                    MsrpEvent::Outcome {
                        outcome: MessageOutcome::Failed { .. },
                        ..
                    }
                    | MsrpEvent::Closed => break,
                    _ => {}
                }
            }
            let _ = wr.shutdown().await;
        };
        tokio::join!(outbound, inbound);
    });
    app
}

/// Whether an I/O error came from a broken MSRP stream (for callers matching errors).
pub fn is_broken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    )
}
