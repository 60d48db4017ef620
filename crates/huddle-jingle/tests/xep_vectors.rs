//! Every Jingle IQ example of XEP-0166, 0167, 0176, 0234, 0260, 0261 and 0353, extracted by
//! `cargo xtask jingle extract-vectors` into `tests/vectors/xep-NNNN/EEE-slug.xml` (EEE is
//! the example's number in the XEP) with the expected parse beside it (`.json`, the
//! stanza-shaped JSON). Each must parse to it, and parse → serialize → parse must be
//! stable.

use std::path::{Path, PathBuf};

use huddle_jingle::Codec;
use serde_json::Value;

fn vectors() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut out = Vec::new();
    for d in std::fs::read_dir(&root).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() && d.file_name().unwrap().to_string_lossy().starts_with("xep-") {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "xml") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    out
}

fn name(p: &Path) -> String {
    let dir = p.parent().unwrap().file_name().unwrap().to_string_lossy();
    format!("{dir}/{}", p.file_name().unwrap().to_string_lossy())
}

#[test]
fn every_xep_has_vectors() {
    let v = vectors();
    for xep in ["0166", "0167", "0176", "0234", "0260", "0261", "0353"] {
        let n = v
            .iter()
            .filter(|p| name(p).starts_with(&format!("xep-{xep}/")))
            .count();
        assert!(n > 0, "no vectors for XEP-{xep}");
    }
    assert!(v.len() >= 150, "only {} vectors", v.len());
}

#[test]
fn every_vector_parses_to_its_expected_value() {
    let codec = Codec::new();
    for p in vectors() {
        let xml = std::fs::read(&p).unwrap();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).unwrap())
                .unwrap();
        let doc = codec
            .parse(&xml)
            .unwrap_or_else(|e| panic!("{}: {e}", name(&p)));
        assert_eq!(doc.to_json(), expected, "{}", name(&p));
    }
}

#[test]
fn parse_serialize_parse_is_stable() {
    let codec = Codec::new();
    for p in vectors() {
        let doc = codec.parse(&std::fs::read(&p).unwrap()).unwrap();
        let once = doc.to_xml();
        let again = codec
            .parse(once.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}\n{once}", name(&p)));
        assert_eq!(again, doc, "{}", name(&p));
        assert_eq!(again.to_xml(), once, "{}", name(&p));
        let from_json = codec
            .from_json(&doc.to_json())
            .unwrap_or_else(|e| panic!("{}: {e}", name(&p)));
        assert_eq!(from_json, doc, "{}: JSON read-back", name(&p));
    }
}

#[test]
fn benchmark_input_parses_fully() {
    let xml = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/session-initiate-1290.xml"),
    )
    .unwrap();
    let j = huddle_jingle::parse_jingle(&xml).unwrap();
    assert_eq!(j.contents.len(), 2);
    let Some(huddle_jingle::Description::FileTransfer(ft)) = &j.contents[1].description else {
        panic!("not FT")
    };
    assert_eq!(ft.file.name.as_deref(), Some("photo.jpg"));
    assert_eq!(ft.file.size, Some(1_048_576));
    let Some(huddle_jingle::Transport::Socks5(s5)) = &j.contents[1].transport else {
        panic!("not S5B")
    };
    assert_eq!(s5.candidates.len(), 2);
    assert_eq!(
        huddle_jingle::parse_jingle(j.to_xml().as_bytes()).unwrap(),
        j
    );
}
