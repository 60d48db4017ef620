//! `huddle chat`, `huddle send-file`, `huddle receive-file`: an MSRP endpoint, direct or
//! through a relay (huddle's or any RFC 4976 relay).
//!
//! Rendezvous: no SIP or XMPP here, so the two processes swap their SDP media
//! attributes (RFC 4975 §8.1 `a=path`, RFC 5547 §6 `a=file-*`) as one line each, a JSON
//! array of attribute lines. The side started without `--offer` is the offerer: it
//! prints its line first and reads the answer line from stdin; the side started with
//! `--offer LINE` (or `--offer-file`) prints its answer line and connects: it is the
//! active endpoint (RFC 4975 §5.4), the offerer waits for the connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::{Buf, BytesMut};
use clap::Args;
use huddle_msrp::MsrpUri;
use huddle_msrp::cpim::{CpimMessage, NameAddr};
use huddle_msrp::sdp::{Attribute, FileRange, MsrpAttributes};
use huddle_session::msrp::driver::spawn;
use huddle_session::msrp::file::{FileOffer, FileOutcome, FileReceiver, send_file as queue_file};
use huddle_session::msrp::{MessageOutcome, MsrpConfig, MsrpEvent, MsrpSession, SendOptions};
use huddle_transport::msrp::connect::RelaySettings;
use huddle_transport::msrp::{
    AcceptorDirect, AcceptorRelay, ConnectorDirect, ConnectorRelay, MsrpConnector, MsrpStream,
    TransportOptions,
};
use huddle_transport::relay::client::RelayAuth;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

/// How to reach the peer.
#[derive(Debug, Clone, Args)]
pub(crate) struct LinkArgs {
    /// The peer's offer line: makes this side the answerer, which connects.
    #[arg(long, conflicts_with = "offer_file")]
    pub(crate) offer: Option<String>,
    /// Read the peer's offer line from this file.
    #[arg(long)]
    pub(crate) offer_file: Option<PathBuf>,
    /// Listening address of the offerer when it does not use a relay.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,
    /// Go through this RFC 4976 relay (e.g. msrp://127.0.0.1:2855;tcp).
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// Digest user name at the relay.
    #[arg(long, default_value = "huddle")]
    pub(crate) user: String,
    /// Digest password at the relay.
    #[arg(
        long,
        env = "HUDDLE_RELAY_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub(crate) password: String,
    /// Seconds to wait for the peer (answer line, connection, binding).
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout: u64,
}

/// Which side of the rendezvous we are.
#[derive(Debug)]
pub(crate) enum Role<'a> {
    /// We print first and read the answer from this channel.
    Offer(&'a mut mpsc::Receiver<String>),
    /// We got the peer's offer line.
    Answer(String),
}

/// A bound MSRP connection with both paths and the peer's attributes.
#[derive(Debug)]
pub(crate) struct Established {
    pub(crate) io: Prefixed,
    pub(crate) local_path: Vec<MsrpUri>,
    pub(crate) remote_path: Vec<MsrpUri>,
    pub(crate) peer: MsrpAttributes,
    /// The relay's AUTH state when bound through a relay: the session refreshes the
    /// grant on the same connection for as long as it runs (RFC 4976 §5.1).
    pub(crate) relay: Option<RelayAuth>,
}

/// The stream handed over by the transport, with the bytes it had read ahead.
#[derive(Debug)]
pub(crate) struct Prefixed {
    prefix: BytesMut,
    inner: MsrpStream,
    /// Testing aid (`--stop-after`): the process exits once this many bytes were
    /// written, cutting the connection at an exact point.
    write_limit: Option<u64>,
    written: u64,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let Some(limit) = self.write_limit else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        let room = usize::try_from(limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
        let part = &buf[..buf.len().min(room)];
        let r = Pin::new(&mut self.inner).poll_write(cx, part);
        if let Poll::Ready(Ok(n)) = r {
            self.written += n as u64;
            if self.written >= limit {
                eprintln!("send-file: cutting the connection after {limit} bytes (--stop-after)");
                std::process::exit(crate::EXIT_INTERRUPTED.into());
            }
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The rendezvous line: our attributes as a JSON array of `a=` lines.
pub(crate) fn encode_line(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs.iter().map(ToString::to_string).collect();
    serde_json::to_string(&lines).expect("strings serialize")
}

/// Reads a rendezvous line.
pub(crate) fn decode_line(line: &str) -> Result<MsrpAttributes> {
    let lines: Vec<String> =
        serde_json::from_str(line.trim()).context("the peer's line is not a JSON array")?;
    let attrs = MsrpAttributes::collect(lines.iter().map(String::as_str))
        .map_err(|e| anyhow!("the peer's attributes: {e}"))?;
    Ok(attrs)
}

async fn run_connector<C: MsrpConnector>(
    mut connector: C,
    role: Role<'_>,
    mut attrs: Vec<Attribute>,
    publish: &mut (dyn FnMut(String) + Send),
    timeout: Duration,
) -> Result<(
    huddle_transport::msrp::MsrpTransport,
    Vec<MsrpUri>,
    MsrpAttributes,
)> {
    let local_path = connector
        .prepare()
        .await
        .context("preparing the MSRP connection")?;
    attrs.insert(0, Attribute::Path(local_path.clone()));
    let line = encode_line(&attrs);
    let peer = match role {
        Role::Answer(offer) => {
            let peer = decode_line(&offer)?;
            publish(line);
            peer
        }
        Role::Offer(answers) => {
            publish(line);
            let answer = tokio::time::timeout(timeout, answers.recv())
                .await
                .map_err(|_| anyhow!("no answer line within {timeout:?}"))?
                .ok_or_else(|| anyhow!("no answer line (input closed)"))?;
            decode_line(&answer)?
        }
    };
    let remote_path = peer
        .path
        .clone()
        .ok_or_else(|| anyhow!("the peer's line has no a=path"))?;
    let transport = tokio::time::timeout(timeout, connector.complete(&remote_path))
        .await
        .map_err(|_| anyhow!("the peer did not bind within {timeout:?}"))?
        .context("binding the MSRP session")?;
    Ok((transport, local_path, peer))
}

/// Establishes a session: rendezvous, connection, binding.
pub(crate) async fn establish(
    link: &LinkArgs,
    role: Role<'_>,
    attrs: Vec<Attribute>,
    publish: &mut (dyn FnMut(String) + Send),
) -> Result<Established> {
    let timeout = Duration::from_secs(link.timeout);
    let options = TransportOptions {
        bind_timeout: timeout,
        ..TransportOptions::default()
    };
    let answering = matches!(role, Role::Answer(_));
    let relay = match &link.relay {
        Some(uri) => Some(RelaySettings {
            relay_uri: uri.parse().context("--relay")?,
            username: link.user.clone(),
            password: link.password.clone(),
            expires: None,
        }),
        None => None,
    };
    let (transport, local_path, peer) = match (relay, answering) {
        (None, true) => {
            run_connector(ConnectorDirect::new(options), role, attrs, publish, timeout).await?
        }
        (None, false) => {
            let uri: MsrpUri = format!("msrp://{}/{};tcp", link.listen, new_session_id())
                .parse()
                .context("--listen")?;
            let acceptor = AcceptorDirect::new(options).with_local_uri(uri);
            run_connector(acceptor, role, attrs, publish, timeout).await?
        }
        (Some(r), true) => {
            run_connector(
                ConnectorRelay::new(r, options),
                role,
                attrs,
                publish,
                timeout,
            )
            .await?
        }
        (Some(r), false) => {
            run_connector(
                AcceptorRelay::new(r, options),
                role,
                attrs,
                publish,
                timeout,
            )
            .await?
        }
    };
    let remote_path = transport.remote_path().to_vec();
    let parts = transport
        .into_parts()
        .map_err(|e| anyhow!("handing over the connection: {e}"))?;
    Ok(Established {
        io: Prefixed {
            prefix: parts.read_prefix,
            inner: parts.stream,
            write_limit: None,
            written: 0,
        },
        local_path,
        remote_path,
        peer,
        relay: parts.relay,
    })
}

fn new_session_id() -> String {
    huddle_transport::msrp::new_session_id()
}

fn session_for(e: &mut Established) -> MsrpSession {
    let mut cfg = MsrpConfig::new(e.local_path.clone(), e.remote_path.clone());
    cfg.max_chunk_size = 64 * 1024;
    cfg.max_incoming_message = 1 << 20;
    let mut session = MsrpSession::new(cfg);
    if let Some(relay) = e.relay.take() {
        session.set_relay(relay);
    }
    session
}

/// Reads stdin lines into a channel (the answer line first when offering).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if tx.send(l).await.is_err() {
                return;
            }
        }
    });
    rx
}

fn offer_of(link: &LinkArgs) -> Result<Option<String>> {
    if let Some(o) = &link.offer {
        return Ok(Some(o.clone()));
    }
    match &link.offer_file {
        Some(p) => Ok(Some(
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )),
        None => Ok(None),
    }
}

fn print_line(line: String) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------------------------------
// Chat

/// `huddle chat` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    pub(crate) link: LinkArgs,
    /// Our name in the CPIM From header.
    #[arg(long, default_value = "huddle")]
    pub(crate) name: String,
}

/// Wraps a text line in CPIM (RFC 3862) from `from` to `to`.
pub(crate) fn cpim_text(from: &str, to: &str, text: &str) -> Result<bytes::Bytes> {
    let from = NameAddr::new(&format!("im:{from}@huddle.invalid"))
        .map_err(|e| anyhow!("{e}"))?
        .with_display_name(from);
    let to = NameAddr::new(&format!("im:{to}@huddle.invalid")).map_err(|e| anyhow!("{e}"))?;
    let m = CpimMessage::new(from, to, "text/plain;charset=utf-8", text.to_owned())
        .map_err(|e| anyhow!("{e}"))?;
    Ok(m.to_bytes())
}

/// The sender and text of a received chat message (CPIM or plain text).
pub(crate) fn chat_text(content_type: &str, body: &[u8]) -> (String, String) {
    if content_type.eq_ignore_ascii_case("message/cpim")
        && let Ok(m) = CpimMessage::parse(body)
    {
        let from = m
            .from()
            .map(|f| f.display_name().unwrap_or(f.uri()).to_owned())
            .unwrap_or_default();
        return (from, String::from_utf8_lossy(m.body()).into_owned());
    }
    (String::new(), String::from_utf8_lossy(body).into_owned())
}

pub(crate) async fn chat(args: ChatArgs) -> Result<ExitCode> {
    let mut lines = stdin_lines();
    let attrs = vec![Attribute::AcceptTypes(vec![
        "message/cpim".into(),
        "text/plain".into(),
    ])];
    let offer = offer_of(&args.link)?;
    let role = match offer {
        Some(o) => Role::Answer(o),
        None => Role::Offer(&mut lines),
    };
    let mut est = establish(&args.link, role, attrs, &mut print_line).await?;
    eprintln!("chat: connected; type lines to send, end with Ctrl-D");
    let session = session_for(&mut est);
    let mut handle = spawn(est.io, session);
    let mut failed = false;
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(text) => {
                    let body = cpim_text(&args.name, "peer", &text)?;
                    if handle.send_message("message/cpim", body, SendOptions::default()).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                None => break,
            },
            ev = handle.next_event() => match ev {
                Some(MsrpEvent::Message { content_type, body, .. }) => {
                    let (from, text) = chat_text(&content_type, &body);
                    print_line(format!("< {from}: {text}"));
                }
                Some(MsrpEvent::Outcome { outcome: MessageOutcome::Failed { .. }, message_id }) => {
                    eprintln!("chat: message {message_id} was not delivered");
                    failed = true;
                }
                Some(MsrpEvent::Closed) | None => {
                    eprintln!("chat: the peer closed the session");
                    return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
                }
                Some(_) => {}
            },
        }
    }
    // Flush what is queued; the peer may already be gone.
    let _ = handle.shutdown().await;
    while let Some(ev) = handle.next_event().await {
        match ev {
            MsrpEvent::Message {
                content_type, body, ..
            } => {
                let (from, text) = chat_text(&content_type, &body);
                print_line(format!("< {from}: {text}"));
            }
            MsrpEvent::Outcome {
                outcome: MessageOutcome::Failed { .. },
                ..
            } => failed = true,
            _ => {}
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

// ---------------------------------------------------------------------------------------
// Files

/// `huddle send-file` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct SendFileArgs {
    /// The file to send.
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) link: LinkArgs,
    /// Media type of the file.
    #[arg(long, default_value = "application/octet-stream")]
    pub(crate) media_type: String,
    /// Testing aid: exit abruptly (code 4) once this many bytes were written to the
    /// connection, to simulate an interrupted transfer.
    #[arg(long, hide = true)]
    pub(crate) stop_after: Option<u64>,
}

/// `huddle receive-file` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReceiveFileArgs {
    /// Where to write the file; a partial file there is resumed.
    #[arg(long, short)]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) link: LinkArgs,
    /// Start over even if a partial file exists.
    #[arg(long)]
    pub(crate) no_resume: bool,
}

/// A progress bar with bytes, rate and ETA.
pub(crate) fn progress_bar_for(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .expect("a valid template"),
    );
    bar
}

/// What a sender reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) from: u64,
    pub(crate) size: u64,
}

/// Sends `path` over an established session; `stop_after` cuts it short.
pub(crate) async fn send_over(
    mut est: Established,
    offer: &FileOffer,
    path: &Path,
    stop_after: Option<u64>,
    bar: &ProgressBar,
) -> Result<Sent> {
    let full = offer.selector.size.unwrap_or(0);
    // A range past the end (the receiver has a longer file) means "start over".
    let start = est
        .peer
        .file_range
        .map_or(1, |r| r.start.max(1))
        .min(full + 1);
    let start = if start > full { 1 } else { start };
    let offer = if start > 1 {
        offer.resumed_from(start)
    } else {
        offer.clone()
    };
    let size = offer.selector.size.unwrap_or(0);
    let mut session = session_for(&mut est);
    let id = queue_file(&mut session, &offer, path, SendOptions::default())
        .map_err(|e| anyhow!("queueing the file: {e}"))?;
    let mut io = est.io;
    io.write_limit = stop_after;
    let mut handle = spawn(io, session);
    bar.set_length(size);
    bar.set_position(start - 1);
    while let Some(ev) = handle.next_event().await {
        match ev {
            MsrpEvent::SendProgress { sent, .. } => {
                bar.set_position((start - 1).max(sent));
            }
            MsrpEvent::Outcome {
                message_id,
                outcome,
            } if message_id == id => {
                return match outcome {
                    MessageOutcome::Delivered { .. } => {
                        bar.finish();
                        let _ = handle.shutdown().await;
                        Ok(Sent {
                            from: start - 1,
                            size,
                        })
                    }
                    other => {
                        bar.abandon();
                        bail!("the transfer failed: {other:?}")
                    }
                };
            }
            MsrpEvent::Closed => break,
            _ => {}
        }
    }
    bar.abandon();
    Err(anyhow!(
        "the connection closed before the file was delivered"
    ))
}

/// The end of a receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Received {
    /// Complete; the SHA-1 matched when `verified`.
    Complete {
        size: u64,
        verified: bool,
        resumed_from: u64,
    },
    /// Complete but the SHA-1 differs.
    Corrupt,
    /// The connection went away first; this many bytes are on disk.
    Interrupted { have: u64 },
}

/// What the receiver already has (the resume point).
pub(crate) fn partial_len(out: &Path, no_resume: bool) -> u64 {
    if no_resume {
        let _ = std::fs::remove_file(out);
        return 0;
    }
    std::fs::metadata(out).map_or(0, |m| m.len())
}

/// Receives into `out` over an established session.
pub(crate) async fn receive_over(
    mut est: Established,
    out: &Path,
    have: u64,
    bar: &ProgressBar,
) -> Result<Received> {
    let offer = FileOffer::from_attributes(&est.peer)
        .map_err(|e| anyhow!("the sender's description: {e}"))?;
    let size = offer.selector.size.unwrap_or(0);
    // Same rule as the sender: nothing left to send means start over.
    let have = if have >= size { 0 } else { have };
    if have == 0 {
        // Nothing to keep: make sure stale bytes past the end cannot survive.
        let _ = std::fs::remove_file(out);
    }
    let receiver = if have > 0 {
        FileReceiver::new(offer.resumed_from(have + 1), out)
    } else {
        FileReceiver::new(offer, out)
    };
    let mut session = session_for(&mut est);
    receiver
        .attach(&mut session)
        .map_err(|e| anyhow!("opening {}: {e}", out.display()))?;
    bar.set_length(size);
    bar.set_position(have);
    let mut handle = spawn(est.io, session);
    while let Some(ev) = handle.next_event().await {
        match ev {
            MsrpEvent::ReceiveProgress { received, .. } => {
                bar.set_position(have.max(received));
            }
            ev if FileReceiver::is_completion(&ev) => {
                // Let the last responses out before checking the file.
                let _ = handle.shutdown().await;
                bar.finish();
                return Ok(
                    match receiver
                        .complete()
                        .map_err(|e| anyhow!("checking the file: {e}"))?
                    {
                        FileOutcome::Complete { size, verified } => Received::Complete {
                            size,
                            verified,
                            resumed_from: have,
                        },
                        _ => Received::Corrupt,
                    },
                );
            }
            MsrpEvent::Closed => break,
            _ => {}
        }
    }
    bar.abandon();
    Ok(Received::Interrupted {
        have: std::fs::metadata(out).map_or(0, |m| m.len()),
    })
}

pub(crate) async fn send_file(args: SendFileArgs) -> Result<ExitCode> {
    let offer = FileOffer::for_file(&args.file, &args.media_type)
        .map_err(|e| anyhow!("{}: {e}", args.file.display()))?;
    let mut lines = stdin_lines();
    let role = match offer_of(&args.link)? {
        Some(o) => Role::Answer(o),
        None => Role::Offer(&mut lines),
    };
    let est = establish(&args.link, role, offer.to_attributes(), &mut print_line).await?;
    let bar = progress_bar_for(offer.selector.size.unwrap_or(0));
    let sent = send_over(est, &offer, &args.file, args.stop_after, &bar).await?;
    eprintln!(
        "send-file: delivered {} ({} bytes{})",
        args.file.display(),
        sent.size,
        if sent.from > 0 {
            format!(", resumed at {}", sent.from)
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn receive_file(args: ReceiveFileArgs) -> Result<ExitCode> {
    let have = partial_len(&args.out, args.no_resume);
    let mut attrs = Vec::new();
    if have > 0 {
        // RFC 5547 §8: the part still wanted, from the first missing octet.
        attrs.push(Attribute::FileRange(FileRange {
            start: have + 1,
            stop: None,
        }));
    }
    let mut lines = stdin_lines();
    let role = match offer_of(&args.link)? {
        Some(o) => Role::Answer(o),
        None => Role::Offer(&mut lines),
    };
    let est = establish(&args.link, role, attrs, &mut print_line).await?;
    let bar = progress_bar_for(0);
    match receive_over(est, &args.out, have, &bar).await? {
        Received::Complete {
            size,
            verified,
            resumed_from,
        } => {
            eprintln!(
                "receive-file: {} complete, {size} bytes{}{}",
                args.out.display(),
                if verified {
                    ", SHA-1 verified"
                } else {
                    ", no hash offered"
                },
                if resumed_from > 0 {
                    format!(", resumed at {resumed_from}")
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Received::Corrupt => {
            eprintln!(
                "receive-file: {}: SHA-1 mismatch, the file is corrupt (kept for inspection; use --no-resume)",
                args.out.display()
            );
            Ok(ExitCode::from(crate::EXIT_VERIFY))
        }
        Received::Interrupted { have } => {
            eprintln!(
                "receive-file: interrupted with {have} bytes in {}; run the transfer again to resume",
                args.out.display()
            );
            Ok(ExitCode::from(crate::EXIT_INTERRUPTED))
        }
    }
}
