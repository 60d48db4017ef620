//! stanza@12.22.1's Jingle vectors (copied from `shared/conformance/jingle/stanza-vectors`):
//! huddle's XML → JSON must equal stanza's `.parsed.json` (as JSON values), and its
//! JSON → XML must parse back to the same value.

use std::path::PathBuf;

use huddle_jingle::{Codec, Document, Iq};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/stanza")
}

fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".input.json").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

fn read(name: &str, ext: &str) -> String {
    std::fs::read_to_string(dir().join(format!("{name}.{ext}"))).unwrap()
}

fn json(name: &str, ext: &str) -> Value {
    serde_json::from_str(&read(name, ext)).unwrap()
}

#[test]
fn there_are_seven_vectors() {
    assert_eq!(names().len(), 7);
}

#[test]
fn xml_to_json_equals_stanza_parse() {
    for name in names() {
        for ext in ["xml", "reexport.xml"] {
            let iq = huddle_jingle::parse_iq(read(&name, ext).as_bytes())
                .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
            assert_eq!(iq.to_json(), json(&name, "parsed.json"), "{name}.{ext}");
        }
    }
}

#[test]
fn json_to_xml_parses_back_to_the_same_value() {
    let codec = Codec::new();
    for name in names() {
        let from_xml = huddle_jingle::parse_iq(read(&name, "xml").as_bytes()).unwrap();
        for ext in ["input.json", "parsed.json"] {
            let Document::Iq(iq) = codec
                .from_json(&json(&name, ext))
                .unwrap_or_else(|e| panic!("{name}.{ext}: {e}"))
            else {
                panic!("{name}.{ext}: not an IQ");
            };
            assert_eq!(
                iq, from_xml,
                "{name}.{ext} reads as a different value than {name}.xml"
            );
            let xml = iq.to_xml();
            let back = huddle_jingle::parse_iq(xml.as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
            assert_eq!(back, iq, "{name}: {xml}");
        }
    }
}

#[test]
fn serde_traits_match_the_json_mapping() {
    for name in names() {
        let iq: Iq = serde_json::from_str(&read(&name, "input.json")).unwrap();
        let v = serde_json::to_value(&iq).unwrap();
        assert_eq!(v, json(&name, "parsed.json"), "{name}");
    }
}

#[test]
fn alternative_session_is_written_in_the_xep_form() {
    let iq =
        huddle_jingle::parse_iq(read("04-session-terminate-alternative-session", "xml").as_bytes())
            .unwrap();
    let xml = iq.to_xml();
    assert!(
        xml.contains("<alternative-session><sid>b84tkkwlmb48kgfb</sid></alternative-session>"),
        "{xml}"
    );
}
