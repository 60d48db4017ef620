//! Any bytes: parsing as Jingle XML (and, when they are JSON, as stanza-shaped JSON) never
//! panics; the reader's limits bound what it allocates.
#![no_main]

use huddle_jingle::{Codec, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec { limits: Limits::default(), ..Codec::default() };
    let _ = codec.parse(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = codec.from_json(&value);
    }
});
