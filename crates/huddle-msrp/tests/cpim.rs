//! Property tests for message/cpim (RFC 3862): encode → parse gives the value back,
//! parse → encode → parse is stable, and arbitrary input never panics.

use bytes::Bytes;
use huddle_msrp::cpim::{CpimMessage, DateTime, Header, NameAddr, Namespace, Subject};
use proptest::prelude::*;

fn uri() -> impl Strategy<Value = String> {
    "(im|sip|mid|urn):[a-zA-Z0-9@._:;=+-]{1,20}"
}

fn name_addr() -> impl Strategy<Value = NameAddr> {
    (uri(), proptest::option::of(any::<String>())).prop_map(|(u, name)| {
        let na = NameAddr::new(&u).unwrap();
        match name {
            Some(n) => na.with_display_name(&n),
            None => na,
        }
    })
}

/// Header text: no control characters, no leading white space.
fn text() -> impl Strategy<Value = String> {
    "([^\\p{Cc} \t][^\\p{Cc}]{0,20})?"
}

fn subject() -> impl Strategy<Value = Subject> {
    (
        text(),
        proptest::option::of("[a-z]{1,8}(-[a-zA-Z0-9]{1,8}){0,2}"),
    )
        .prop_map(|(t, lang)| Subject::new(&t, lang.as_deref()).unwrap())
}

fn header() -> impl Strategy<Value = Header> {
    (
        "([A-Za-z][A-Za-z0-9-]{0,6}\\.)?[A-Za-z][A-Za-z0-9_-]{0,10}",
        text(),
        proptest::collection::vec(
            (
                "[a-z]{1,5}",
                prop_oneof!["[a-zA-Z0-9.-]{1,6}", "\"[a-z ]{0,6}\""],
            ),
            0..3,
        ),
    )
        .prop_filter("not a known header", |(n, _, _)| {
            !["from", "to", "cc", "datetime", "subject", "ns", "require"]
                .contains(&n.to_ascii_lowercase().as_str())
        })
        .prop_map(|(n, v, params)| {
            let mut h = Header::new(&n, &v).unwrap();
            for (k, pv) in params {
                h = h.with_param(&k, &pv).unwrap();
            }
            h
        })
}

prop_compose! {
    fn message()(
        from in name_addr(),
        to in proptest::collection::vec(name_addr(), 1..3),
        cc in proptest::collection::vec(name_addr(), 0..2),
        when in proptest::option::of(-62_000_000_000i64..250_000_000_000),
        subjects in proptest::collection::vec(subject(), 0..3),
        namespaces in proptest::collection::vec(
            (proptest::option::of("[A-Za-z][A-Za-z0-9]{0,6}"), uri()), 0..2),
        require in proptest::collection::vec("[A-Za-z]{1,5}(\\.[A-Za-z]{1,5})?", 0..3),
        headers in proptest::collection::vec(header(), 0..4),
        content_type in prop_oneof!["text/plain", "text/plain; charset=utf-8", "application/im-iscomposing+xml"],
        extra in proptest::collection::vec(("X-[A-Za-z]{1,6}", text()), 0..3),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) -> CpimMessage {
        let mut it = to.into_iter();
        let mut m = CpimMessage::new(from, it.next().unwrap(), &content_type, body).unwrap()
            .with_date_time(when.and_then(DateTime::from_unix_seconds));
        for t in it { m = m.with_to(t); }
        for c in cc { m = m.with_cc(c); }
        for s in subjects { m = m.with_subject(s); }
        for (p, u) in namespaces { m = m.with_namespace(Namespace::new(p.as_deref(), &u).unwrap()); }
        for r in require { m = m.with_require(&r).unwrap(); }
        for h in headers { m = m.with_header(h); }
        for (n, v) in extra { m = m.with_content_header(&n, &v).unwrap(); }
        m
    }
}

proptest! {
    #[test]
    fn encode_then_parse_gives_the_message_back(m in message()) {
        let bytes = m.to_bytes();
        let parsed = CpimMessage::parse(&bytes)
            .map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(&parsed, &m);
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_are_stable_when_accepted(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = CpimMessage::parse(&input) {
            let again = CpimMessage::parse(&m.to_bytes()).unwrap();
            prop_assert_eq!(&again, &m);
        }
    }

    #[test]
    fn mutated_messages_never_panic_and_are_stable_when_accepted(
        m in message(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b':'), Just(b';'), Just(b' '), Just(b'"'),
            Just(b'\\'), Just(b'<'), Just(b'>'), Just(b'='), any::<u8>()
        ]), 1..4),
    ) {
        let mut bytes = m.to_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(parsed) = CpimMessage::parse(&bytes) {
            let again = CpimMessage::parse(&parsed.to_bytes()).unwrap();
            prop_assert_eq!(&again, &parsed);
        }
    }

    #[test]
    fn parse_bytes_and_parse_agree(m in message()) {
        let bytes = m.to_bytes();
        prop_assert_eq!(CpimMessage::parse_bytes(bytes.clone()).unwrap(), CpimMessage::parse(&bytes).unwrap());
    }
}

#[test]
fn body_is_opaque() {
    // The body may hold anything, blank lines and header-like text included.
    let body = Bytes::from_static(b"\r\n\r\nFrom: <im:evil>\r\n\r\n\x00\xff");
    let m = CpimMessage::new(
        NameAddr::new("im:a@b").unwrap(),
        NameAddr::new("im:c@d").unwrap(),
        "application/octet-stream",
        body.clone(),
    )
    .unwrap();
    let parsed = CpimMessage::parse(&m.to_bytes()).unwrap();
    assert_eq!(parsed.body(), &body);
    assert_eq!(parsed.from().unwrap().uri(), "im:a@b");
}
