//! Arbitrary strings through huddle-msrp's MSRP URI and path parsers (RFC 4975 §9): they
//! never panic, and whatever they accept prints to a form that parses back to the same
//! value, field for field (userinfo and parameters included, which `==` ignores).
#![no_main]

use huddle_msrp::MsrpUri;
use huddle_msrp::uri::{format_path, parse_path};
use libfuzzer_sys::fuzz_target;

fn same(a: &MsrpUri, b: &MsrpUri) -> bool {
    a == b && a.user() == b.user() && a.params() == b.params() && a.host() == b.host()
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = s.parse::<MsrpUri>() {
        let printed = uri.to_string();
        let again: MsrpUri = printed.parse().expect("printed URI must parse");
        assert!(same(&uri, &again), "{s:?} -> {printed:?}");
        assert_eq!(
            again.to_string(),
            printed,
            "canonical form is a fixed point"
        );
    }
    if let Ok(path) = parse_path(s) {
        let printed = format_path(&path);
        let again = parse_path(&printed).expect("printed path must parse");
        assert_eq!(path.len(), again.len());
        assert!(path.iter().zip(&again).all(|(a, b)| same(a, b)));
    }
});
