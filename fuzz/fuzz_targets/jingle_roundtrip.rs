//! Round trip: whatever parses serializes to XML that parses to the same value and
//! serializes to the same bytes, and its JSON reads back to the same value.
#![no_main]

use huddle_jingle::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec::default();
    let Ok(doc) = codec.parse(data) else { return };
    let xml = doc.to_xml();
    let again = codec.parse(xml.as_bytes()).unwrap_or_else(|e| panic!("re-parse failed: {e}\n{xml}"));
    assert_eq!(again, doc, "re-parsed value differs; serialized {xml}");
    assert_eq!(again.to_xml(), xml, "serialization is not stable");
    let back = codec.from_json(&doc.to_json()).unwrap_or_else(|e| panic!("JSON read-back failed: {e}"));
    assert_eq!(back, doc, "JSON read-back differs");
});
