//! Any bytes: parsing as Jingle XML (and, when they are JSON, as stanza-shaped JSON) never
//! panics; the reader's limits bound what it allocates. `parse_iq` (which decodes valid
//! stanzas without an element tree) accepts exactly what the element-tree reader behind
//! `parse` accepts as an IQ, with the same value.
#![no_main]

use huddle_jingle::{Codec, Document, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec { limits: Limits::default(), ..Codec::default() };
    let tree = match codec.parse(data) {
        Ok(Document::Iq(iq)) => Some(iq),
        _ => None,
    };
    assert_eq!(codec.parse_iq(data).ok(), tree, "the two XML readers disagree");
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = codec.from_json(&value);
    }
});
