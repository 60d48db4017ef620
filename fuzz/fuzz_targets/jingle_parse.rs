//! Any bytes: parsing as Jingle XML (and, when they are JSON, as stanza-shaped JSON) never
//! panics; the reader's limits bound what it allocates. The codec's fast reader (which
//! decodes valid stanzas without an element tree) agrees with the element-tree reader
//! (`Element::parse` + `decode_element`): `parse`, `parse_iq` and `parse_jingle` accept
//! exactly what the tree reader accepts, with the same value.
#![no_main]

use huddle_jingle::{Codec, Document, Element, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec { limits: Limits::default(), ..Codec::default() };
    let tree = Element::parse(data, &codec.limits)
        .ok()
        .and_then(|el| codec.decode_element(el).ok());
    assert_eq!(codec.parse(data).ok(), tree, "parse disagrees with the tree reader");
    let (iq, jingle) = match tree {
        Some(Document::Iq(iq)) => (Some(iq), None),
        Some(Document::Jingle(j)) => (None, Some(j)),
        None => (None, None),
    };
    assert_eq!(codec.parse_iq(data).ok(), iq, "parse_iq disagrees with the tree reader");
    assert_eq!(codec.parse_jingle(data).ok(), jingle, "parse_jingle disagrees with the tree reader");
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = codec.from_json(&value);
    }
});
