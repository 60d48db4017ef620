//! Property tests for MSRP URIs and paths (RFC 4975 §6, §9): parse/print round trips,
//! equality that agrees with hashing, and hostile input that must fail without panicking.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use huddle_msrp::uri::{Host, format_path, parse_path};
use huddle_msrp::{MsrpUri, UriError};
use proptest::prelude::*;

fn hash_of(u: &MsrpUri) -> u64 {
    let mut h = DefaultHasher::new();
    u.hash(&mut h);
    h.finish()
}

/// Every field, including the ones RFC 4975 §6.1 leaves out of equality.
fn same_fields(a: &MsrpUri, b: &MsrpUri) -> bool {
    a.secure() == b.secure()
        && a.user() == b.user()
        && a.host() == b.host()
        && a.port() == b.port()
        && a.session_id() == b.session_id()
        && a.transport() == b.transport()
        && a.params() == b.params()
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9][a-zA-Z0-9-]{0,10}(\\.[a-zA-Z0-9-]{1,8}){0,3}",
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u16; 8]>().prop_map(|s| format!("[{}]", Ipv6Addr::from(s))),
        // reg-name with percent-encodings and sub-delims (but never ';').
        "[a-z%0-9!$&'()*+,=_~.-]{1,12}".prop_filter("valid pct", |s| {
            let b = s.as_bytes();
            (0..b.len()).all(|i| {
                b[i] != b'%'
                    || (i + 2 < b.len()
                        && b[i + 1].is_ascii_hexdigit()
                        && b[i + 2].is_ascii_hexdigit())
            })
        }),
    ]
}

prop_compose! {
    fn uri_text()(
        scheme in prop_oneof!["msrp", "msrps", "MSRP", "MsRpS"],
        user in proptest::option::of("[a-zA-Z0-9._~!$&'()*+,;=:-]{1,10}"),
        host in host(),
        port in proptest::option::of(any::<u16>()),
        sid in proptest::option::of("[a-zA-Z0-9._~+=/-]{1,24}"),
        transport in prop_oneof!["tcp", "TCP", "ws", "[a-z0-9]{1,6}"],
        params in proptest::collection::vec(
            ("[a-zA-Z0-9!#$%&'*+.^_`{|}~-]{1,8}", proptest::option::of("[a-zA-Z0-9.~-]{1,8}")),
            0..4,
        ),
    ) -> String {
        let mut s = format!("{scheme}://");
        if let Some(u) = user { s.push_str(&u); s.push('@'); }
        s.push_str(&host);
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        if let Some(sid) = sid { s.push('/'); s.push_str(&sid); }
        s.push(';');
        s.push_str(&transport);
        for (n, v) in params {
            s.push(';');
            s.push_str(&n);
            if let Some(v) = v { s.push('='); s.push_str(&v); }
        }
        s
    }
}

proptest! {
    #[test]
    fn generated_uris_parse_and_round_trip(text in uri_text()) {
        let uri: MsrpUri = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        let printed = uri.to_string();
        let again: MsrpUri = printed.parse().unwrap();
        prop_assert_eq!(&uri, &again);
        prop_assert!(same_fields(&uri, &again), "{} -> {}", text, printed);
        prop_assert_eq!(hash_of(&uri), hash_of(&again));
        // The canonical form is a fixed point.
        prop_assert_eq!(again.to_string(), printed);
    }

    #[test]
    fn case_of_scheme_host_transport_does_not_matter(text in uri_text()) {
        let uri: MsrpUri = text.parse().unwrap();
        // Upper-case everything, then put back the session-id, which RFC 4975 §6.1
        // compares case-sensitively.
        let shouted: MsrpUri = uri.to_string().to_ascii_uppercase().parse().unwrap();
        let shouted = match uri.session_id() {
            Some(s) => shouted.with_session_id(s).unwrap(),
            None => shouted,
        };
        prop_assert_eq!(&shouted, &uri);
        prop_assert_eq!(hash_of(&shouted), hash_of(&uri));
        if let (Host::Name(a), Host::Name(b)) = (uri.host(), shouted.host()) {
            prop_assert!(a.eq_ignore_ascii_case(b));
        }
    }

    #[test]
    fn userinfo_and_params_are_ignored_by_eq(text in uri_text()) {
        let uri: MsrpUri = text.parse().unwrap();
        let decorated = uri.clone().with_user("someone").unwrap().with_param("extra", Some("1")).unwrap();
        prop_assert_eq!(&decorated, &uri);
        prop_assert_eq!(hash_of(&decorated), hash_of(&uri));
    }

    #[test]
    fn paths_round_trip(texts in proptest::collection::vec(uri_text(), 1..6), gaps in proptest::collection::vec(1usize..4, 6)) {
        let mut joined = String::new();
        for (i, t) in texts.iter().enumerate() {
            if i > 0 { joined.push_str(&" ".repeat(gaps[i])); }
            joined.push_str(t);
        }
        let path = parse_path(&joined).unwrap();
        prop_assert_eq!(path.len(), texts.len());
        let formatted = format_path(&path);
        let again = parse_path(&formatted).unwrap();
        prop_assert_eq!(path.len(), again.len());
        for (a, b) in path.iter().zip(&again) {
            prop_assert!(same_fields(a, b));
        }
        prop_assert_eq!(format_path(&again), formatted);
    }

    #[test]
    fn arbitrary_strings_never_panic_and_round_trip_when_accepted(s in "\\PC{0,80}") {
        if let Ok(uri) = s.parse::<MsrpUri>() {
            let again: MsrpUri = uri.to_string().parse().unwrap();
            prop_assert!(same_fields(&uri, &again));
        }
        if let Ok(path) = parse_path(&s) {
            let again = parse_path(&format_path(&path)).unwrap();
            prop_assert_eq!(path.len(), again.len());
        }
    }

    #[test]
    fn mutated_uris_never_panic(text in uri_text(), at in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
        let mut bytes = text.into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let s = String::from_utf8(bytes).unwrap();
        if let Ok(uri) = s.parse::<MsrpUri>() {
            let again: MsrpUri = uri.to_string().parse().unwrap();
            prop_assert!(same_fields(&uri, &again));
        }
    }
}

#[test]
fn hostile_sizes_are_refused_by_length() {
    let long_host = format!("msrp://{}/s;tcp", "a".repeat(10 << 20));
    assert!(matches!(
        long_host.parse::<MsrpUri>(),
        Err(UriError::TooLong { .. })
    ));
    let long_path = "msrp://a;tcp ".repeat(1 << 20);
    assert!(matches!(
        parse_path(&long_path),
        Err(UriError::TooLong { .. })
    ));
}
