//! Round trip: every chunk the decoder accepts encodes to bytes that decode, alone and with
//! nothing left over, to the same chunk.
#![no_main]

use bytes::BytesMut;
use huddle_msrp::{Decoder, Limits};
use libfuzzer_sys::fuzz_target;

// Bodies up to the fuzzer's input size stay whole (no segments), so every chunk is a
// real frame that can be encoded again.
const LIMITS: Limits = Limits {
    max_head_bytes: 4096,
    max_headers: 32,
    max_body_in_memory: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let mut dec = Decoder::new(LIMITS);
    let mut buf = BytesMut::from(data);
    for _ in 0..=data.len() + 1 {
        match dec.decode_eof(&mut buf) {
            Ok(Some(chunk)) => {
                assert_eq!(chunk.segment, None);
                let bytes = chunk.to_bytes();
                let mut again = BytesMut::from(&bytes[..]);
                let mut fresh = Decoder::new(LIMITS);
                let back = fresh.decode_eof(&mut again);
                match back {
                    Ok(Some(back)) => {
                        assert_eq!(back, chunk, "re-decoded chunk differs; encoded {bytes:?}")
                    }
                    other => panic!("encoded chunk does not decode: {other:?}; encoded {bytes:?}"),
                }
                assert!(again.is_empty(), "bytes left after re-decoding {bytes:?}");
            }
            Ok(None) => return,
            Err(e) if e.is_fatal() => return,
            Err(_) => {}
        }
    }
    panic!("the decoder did not finish a {}-byte input", data.len());
});
