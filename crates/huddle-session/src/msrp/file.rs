//! File transfer over MSRP (RFC 5547, sipsimple's `MSRPFileTransfer`).
//!
//! - [`FileOffer`]: the SDP attributes of RFC 5547 §6 (file-selector with name, size,
//!   type and SHA-1 hash, file-transfer-id, file-disposition, file-date, file-icon,
//!   file-range), built from a file on disk or read from the peer's SDP.
//! - [`send_file`]: queues a file on an [`MsrpSession`]; chunks are read from disk as
//!   they go out, with [`MsrpEvent::SendProgress`] for each.
//! - [`FileReceiver`]: writes incoming chunks into a file, verifies the hash on
//!   completion, and after an interruption tells which range to ask for again
//!   (RFC 5547 §8: a new offer with `a=file-range`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use huddle_msrp::sdp::{Attribute, FileHash, FileRange, FileSelector, FileType, MsrpAttributes};
use huddle_msrp::split::{FileSource, Sink};
use huddle_msrp::{Chunk, KnownHeader};
use sha1::{Digest, Sha1};

use super::session::{IncomingSink, MessageId, MsrpEvent, MsrpSession, SendOptions};

/// Why a file transfer step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// Reading or writing the file.
    #[error("file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// RFC 5547 §6: the offer needs a file-selector (with at least a size to receive).
    #[error("the offer has no usable a=file-selector")]
    NoSelector,
    /// The session refused to queue the file (shutting down, duplicate id).
    #[error("the session does not accept new messages")]
    SessionClosed,
    /// The received file's SHA-1 differs from the offer's.
    #[error("hash mismatch: the received file is corrupt")]
    HashMismatch,
}

/// What one side of a file transfer announces in SDP (RFC 5547 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOffer {
    /// `a=file-selector`.
    pub selector: FileSelector,
    /// `a=file-transfer-id` (unique per transfer, RFC 5547 §6).
    pub transfer_id: String,
    /// `a=file-disposition` (`render` or `attachment`).
    pub disposition: Option<String>,
    /// `a=file-range`: the part of the file this transfer covers (resumption).
    pub range: Option<FileRange>,
}

impl FileOffer {
    /// Describes a file on disk: name, size, media type and SHA-1 (RFC 5547 §6 uses
    /// `hash:sha-1:` with colon-separated hex).
    pub fn for_file(path: &Path, media_type: &str) -> Result<FileOffer, FileError> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let hash = sha1_of(&mut file, size)?;
        let (ty, subtype) = media_type
            .split_once('/')
            .unwrap_or(("application", "octet-stream"));
        Ok(FileOffer {
            selector: FileSelector {
                name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                size: Some(size),
                media_type: Some(FileType {
                    ty: ty.to_owned(),
                    subtype: subtype.to_owned(),
                    params: Vec::new(),
                }),
                hashes: vec![FileHash {
                    algorithm: "sha-1".into(),
                    value: hash.to_vec(),
                }],
            },
            transfer_id: huddle_msrp::ids::random_token(),
            disposition: Some("attachment".into()),
            range: None,
        })
    }

    /// The SDP attributes.
    pub fn to_attributes(&self) -> Vec<Attribute> {
        let mut v = vec![
            Attribute::FileSelector(self.selector.clone()),
            Attribute::FileTransferId(self.transfer_id.clone()),
        ];
        if let Some(d) = &self.disposition {
            v.push(Attribute::FileDisposition(d.clone()));
        }
        if let Some(r) = self.range {
            v.push(Attribute::FileRange(r));
        }
        v
    }

    /// Reads an offer from the peer's attributes.
    pub fn from_attributes(attrs: &MsrpAttributes) -> Result<FileOffer, FileError> {
        let selector = attrs.file_selector.clone().ok_or(FileError::NoSelector)?;
        Ok(FileOffer {
            selector,
            transfer_id: attrs.file_transfer_id.clone().unwrap_or_default(),
            disposition: attrs.file_disposition.clone(),
            range: attrs.file_range,
        })
    }

    /// The content type of the chunks.
    pub fn content_type(&self) -> String {
        self.selector.media_type.as_ref().map_or_else(
            || "application/octet-stream".to_owned(),
            |t| format!("{}/{}", t.ty, t.subtype),
        )
    }

    /// The SHA-1 the offer announces.
    pub fn sha1(&self) -> Option<&[u8]> {
        self.selector
            .hashes
            .iter()
            .find(|h| h.algorithm.eq_ignore_ascii_case("sha-1"))
            .map(|h| h.value.as_slice())
    }

    /// This offer restricted to what is still missing from `start` (1-based, RFC 5547
    /// §8 resumption).
    pub fn resumed_from(&self, start: u64) -> FileOffer {
        FileOffer {
            range: Some(FileRange { start, stop: None }),
            ..self.clone()
        }
    }
}

fn sha1_of(file: &mut File, len: u64) -> std::io::Result<[u8; 20]> {
    file.seek(SeekFrom::Start(0))?;
    let mut h = Sha1::new();
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// Queues the file described by `offer` on `session`, from the offer's `file-range`
/// start if set (resumption), with `Content-Disposition` naming the file
/// (RFC 5547 §7: chunks carry the file; Byte-Range counts from the start of the file).
pub fn send_file(
    session: &mut MsrpSession,
    offer: &FileOffer,
    path: &Path,
    options: SendOptions,
) -> Result<MessageId, FileError> {
    let source = FileSource::new(File::open(path)?)?;
    let offset = offer.range.map_or(0, |r| r.start.saturating_sub(1));
    let name = offer.selector.name.clone().unwrap_or_else(|| "file".into());
    let disposition = format!(
        "{}; filename=\"{}\"",
        offer.disposition.as_deref().unwrap_or("attachment"),
        name.replace('"', "'")
    );
    let id = huddle_msrp::ids::new_message_id();
    session
        .send_source(
            &id,
            &offer.content_type(),
            Box::new(source),
            &[(KnownHeader::ContentDisposition, disposition)],
            offset,
            options,
        )
        .ok_or(FileError::SessionClosed)
}

#[derive(Debug)]
struct FileSink {
    file: File,
    have: Vec<(u64, u64)>,
    state: Arc<Mutex<ReceiveState>>,
}

#[derive(Debug, Default)]
struct ReceiveState {
    /// Contiguous bytes from the start that are on disk.
    prefix: u64,
}

impl Sink for FileSink {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(data)?;
        let mut st = self.state.lock().expect("not poisoned");
        if offset <= st.prefix {
            st.prefix = st.prefix.max(offset + data.len() as u64);
        }
        Ok(())
    }
}

impl IncomingSink for FileSink {
    fn into_body(self: Box<Self>) -> Bytes {
        Bytes::new()
    }

    fn already_have(&self) -> Vec<(u64, u64)> {
        self.have.clone()
    }
}

/// Receives one file into `dest`.
#[derive(Debug)]
pub struct FileReceiver {
    offer: FileOffer,
    dest: PathBuf,
    state: Arc<Mutex<ReceiveState>>,
}

/// The end of a received file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Complete; `verified` when the offer carried a SHA-1 and it matched.
    Complete {
        /// The file size.
        size: u64,
        /// The hash was checked.
        verified: bool,
    },
    /// Complete but the SHA-1 differs (the file is kept for inspection).
    Corrupt,
}

impl FileReceiver {
    /// Prepares to receive `offer` into `dest`. When the offer resumes (file-range
    /// starting past 1), the bytes before it must already be in `dest`.
    pub fn new(offer: FileOffer, dest: impl Into<PathBuf>) -> FileReceiver {
        let start = offer.range.map_or(0, |r| r.start.saturating_sub(1));
        FileReceiver {
            offer,
            dest: dest.into(),
            state: Arc::new(Mutex::new(ReceiveState { prefix: start })),
        }
    }

    /// Installs this receiver's file sink on the session.
    pub fn attach(&self, session: &mut MsrpSession) -> Result<(), FileError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&self.dest)?;
        let prefix = self.state.lock().expect("not poisoned").prefix;
        let shared = Mutex::new(Some(file));
        let state = self.state.clone();
        session.set_sink_factory(Box::new(move |_id: &str, _c: &Chunk| {
            let file = shared.lock().expect("not poisoned").take();
            // One file per transfer: a second message gets a sink that fails its writes
            // (→ 413 to the sender) instead of corrupting the file.
            let file = match file {
                Some(f) => f,
                None => {
                    return Box::new(huddle_msrp::split::MemorySink::new(0))
                        as Box<dyn IncomingSink>;
                }
            };
            let have = if prefix > 0 {
                vec![(0, prefix)]
            } else {
                Vec::new()
            };
            Box::new(FileSink {
                file,
                have,
                state: state.clone(),
            }) as Box<dyn IncomingSink>
        }));
        Ok(())
    }

    /// Bytes on disk from the start of the file (what a resumed transfer can skip).
    pub fn received_prefix(&self) -> u64 {
        self.state.lock().expect("not poisoned").prefix
    }

    /// The offer to make for the rest of the file after an interruption (RFC 5547 §8).
    pub fn resume_offer(&self) -> FileOffer {
        self.offer.resumed_from(self.received_prefix() + 1)
    }

    /// Checks a completed file (call on [`MsrpEvent::Message`]).
    pub fn complete(&self) -> Result<FileOutcome, FileError> {
        let mut file = File::open(&self.dest)?;
        let size = self.offer.selector.size.unwrap_or(file.metadata()?.len());
        match self.offer.sha1() {
            Some(expected) => {
                let got = sha1_of(&mut file, size)?;
                if got[..] == *expected {
                    Ok(FileOutcome::Complete {
                        size,
                        verified: true,
                    })
                } else {
                    Ok(FileOutcome::Corrupt)
                }
            }
            None => Ok(FileOutcome::Complete {
                size,
                verified: false,
            }),
        }
    }

    /// Whether an event completes this transfer.
    pub fn is_completion(event: &MsrpEvent) -> bool {
        matches!(event, MsrpEvent::Message { .. })
    }
}
