//! The huddle-msrp chunk decoder and encoder as a tokio-util codec.
//!
//! [`MsrpCodec`] adds no protocol logic: it forwards to [`huddle_msrp::Decoder`] and
//! [`Chunk::encode`]. The one translation is in the error channel. tokio-util treats any
//! `Err` from a `Decoder` as the end of the stream, but an MSRP receiver must answer a
//! malformed request and keep the connection (RFC 4975 §7.2: the receiver answers 400
//! and goes on), so:
//!
//! - a non-fatal [`DecodeError`] (the bad frame was consumed whole) is an *item*:
//!   `Ok(Some(Err(e)))`, and the stream continues;
//! - a fatal one (the stream is out of sync) is the codec's error, [`CodecError::Decode`],
//!   after which `FramedRead` stops.

use bytes::BytesMut;
use huddle_msrp::{Chunk, DecodeError, Decoder as ChunkDecoder, Limits};

/// What a [`MsrpCodec`] yields: a chunk (or segment of one), or a frame that was bad but
/// did not break the stream.
pub type CodecItem = Result<Chunk, DecodeError>;

/// A fatal codec failure: the connection must be closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The byte stream is out of sync (e.g. a garbage start line, an oversized head).
    #[error("unrecoverable MSRP framing error: {0}")]
    Decode(DecodeError),
    /// The socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// The decode error, when this is one.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match self {
            CodecError::Decode(e) => Some(e),
            CodecError::Io(_) => None,
        }
    }
}

/// tokio-util `Decoder`/`Encoder` for MSRP frames. See the module documentation.
#[derive(Debug, Default)]
pub struct MsrpCodec {
    decoder: ChunkDecoder,
}

impl MsrpCodec {
    /// A codec whose decoder enforces `limits` (bodies larger than
    /// [`Limits::max_body_in_memory`] arrive as numbered segments).
    pub fn new(limits: Limits) -> Self {
        MsrpCodec {
            decoder: ChunkDecoder::new(limits),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        self.decoder.limits()
    }

    /// True between frames.
    pub fn is_idle(&self) -> bool {
        self.decoder.is_idle()
    }

    fn translate(r: Result<Option<Chunk>, DecodeError>) -> Result<Option<CodecItem>, CodecError> {
        match r {
            Ok(Some(c)) => Ok(Some(Ok(c))),
            Ok(None) => Ok(None),
            Err(e) if e.is_fatal() => Err(CodecError::Decode(e)),
            Err(e) => Ok(Some(Err(e))),
        }
    }
}

impl tokio_util::codec::Decoder for MsrpCodec {
    type Item = CodecItem;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<CodecItem>, CodecError> {
        Self::translate(self.decoder.decode(src))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<CodecItem>, CodecError> {
        Self::translate(self.decoder.decode_eof(src))
    }
}

impl tokio_util::codec::Encoder<&Chunk> for MsrpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Chunk, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

impl tokio_util::codec::Encoder<Chunk> for MsrpCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Chunk, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_msrp::DecodeErrorKind;
    use tokio_util::codec::{Decoder, Encoder};

    const SEND: &[u8] = b"MSRP a786hjs2 SEND\r\nTo-Path: msrp://bob.example.com:8888/9di4eae923wzd;tcp\r\nFrom-Path: msrp://alicepc.example.com:7777/iau39soe2843z;tcp\r\nMessage-ID: 87652491\r\nByte-Range: 1-25/25\r\nContent-Type: text/plain\r\n\r\nHey Bob, are you there?\r\n-------a786hjs2$\r\n";

    #[test]
    fn decodes_a_frame_and_encodes_it_back() {
        let mut codec = MsrpCodec::default();
        let mut buf = BytesMut::from(SEND);
        let chunk = codec.decode(&mut buf).unwrap().unwrap().unwrap();
        assert!(buf.is_empty());
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        let mut out = BytesMut::new();
        codec.encode(&chunk, &mut out).unwrap();
        codec.encode(chunk, &mut out).unwrap();
        assert_eq!(&out[..SEND.len()], SEND);
        assert_eq!(&out[SEND.len()..], SEND);
    }

    #[test]
    fn a_bad_frame_is_an_item_and_the_stream_goes_on() {
        // RFC 4975 §7.1.1: a SEND without Message-ID is answered with 400; the frame itself
        // is well delimited here (bad Byte-Range), so the next frame still decodes.
        let bad = b"MSRP bad1 SEND\r\nTo-Path: msrp://a.example:1/x;tcp\r\nFrom-Path: msrp://b.example:2/y;tcp\r\nByte-Range: 0-1/1\r\n-------bad1$\r\n";
        let mut codec = MsrpCodec::default();
        let mut buf = BytesMut::from(&bad[..]);
        buf.extend_from_slice(SEND);
        let item = codec.decode(&mut buf).unwrap().unwrap();
        let err = item.unwrap_err();
        assert!(!err.is_fatal());
        assert!(matches!(err.kind(), DecodeErrorKind::BadHeader(_)));
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_ok());
    }

    #[test]
    fn garbage_is_a_fatal_codec_error() {
        let mut codec = MsrpCodec::default();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(err.decode_error().is_some_and(DecodeError::is_fatal));
    }

    #[test]
    fn eof_inside_a_frame_is_fatal() {
        let mut codec = MsrpCodec::default();
        let mut buf = BytesMut::from(&SEND[..40]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(matches!(
            err.decode_error().map(DecodeError::kind),
            Some(DecodeErrorKind::UnexpectedEof)
        ));
    }

    #[test]
    fn large_bodies_arrive_in_segments() {
        let mut codec = MsrpCodec::new(Limits {
            max_body_in_memory: 8,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(SEND);
        let mut segments = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            segments.push(item.unwrap());
        }
        assert!(segments.len() > 1);
        let body: Vec<u8> = segments
            .iter()
            .flat_map(|c| c.body_bytes().unwrap())
            .collect();
        assert_eq!(body, b"Hey Bob, are you there?");
        assert_eq!(segments[0].segment, Some(1));
    }
}
