//! Property tests for the MSRP SDP attributes (RFC 4975 §8, RFC 4145, RFC 5547): printed
//! lines parse back to the same attribute, and arbitrary lines never panic.

use huddle_msrp::sdp::{
    Attribute, Connection, FileDate, FileHash, FileRange, FileSelector, FileType, MsrpAttributes,
    Setup,
};
use huddle_msrp::uri::parse_path;
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+.^_`{|}~-]{1,12}"
}

fn media_type() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_owned()), "[a-z]{1,8}/([a-z0-9.+-]{1,10}|\\*)",]
}

fn file_selector() -> impl Strategy<Value = FileSelector> {
    (
        proptest::option::of("[^\\x00]{1,16}"),
        proptest::option::of(any::<u64>()),
        proptest::option::of((
            "[a-z]{1,8}",
            "[a-z0-9.+-]{1,10}",
            proptest::collection::vec(("[a-z]{1,6}", "[^\"\\x00\r\n]{0,8}"), 0..3),
        )),
        proptest::collection::vec(
            (
                "sha-1|sha-256|md5",
                proptest::collection::vec(any::<u8>(), 1..32),
            ),
            0..2,
        ),
    )
        .prop_map(|(name, size, ty, hashes)| FileSelector {
            name,
            size,
            media_type: ty.map(|(ty, subtype, params)| FileType {
                ty,
                subtype,
                params,
            }),
            hashes: hashes
                .into_iter()
                .map(|(algorithm, value)| FileHash { algorithm, value })
                .collect(),
        })
}

fn date() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[A-Za-z0-9,:+ -]{1,31}")
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        "(msrps?://[a-z]{1,8}(:[0-9]{1,4})?/[a-zA-Z0-9]{1,10};tcp ){1,3}"
            .prop_map(|p| Attribute::Path(parse_path(&p).unwrap())),
        proptest::collection::vec(media_type(), 1..4).prop_map(Attribute::AcceptTypes),
        proptest::collection::vec(media_type(), 1..4).prop_map(Attribute::AcceptWrappedTypes),
        any::<u64>().prop_map(Attribute::MaxSize),
        prop_oneof![
            Just(Setup::Active),
            Just(Setup::Passive),
            Just(Setup::ActPass),
            Just(Setup::HoldConn)
        ]
        .prop_map(Attribute::Setup),
        prop_oneof![Just(Connection::New), Just(Connection::Existing)]
            .prop_map(Attribute::Connection),
        Just(Attribute::MsrpCema),
        file_selector().prop_map(Attribute::FileSelector),
        token().prop_map(Attribute::FileTransferId),
        token().prop_map(Attribute::FileDisposition),
        (date(), date(), date())
            .prop_filter("at least one date", |(c, m, r)| c.is_some()
                || m.is_some()
                || r.is_some())
            .prop_map(
                |(creation, modification, read)| Attribute::FileDate(FileDate {
                    creation,
                    modification,
                    read
                })
            ),
        "cid:[a-zA-Z0-9@.]{1,20}".prop_map(Attribute::FileIcon),
        (1u64..u64::MAX, proptest::option::of(any::<u64>())).prop_map(|(start, stop)| {
            Attribute::FileRange(FileRange {
                start,
                stop: stop.map(|s| s.max(start)),
            })
        }),
        ("x-[a-z]{1,8}", proptest::option::of("[^\r\n\\x00]{0,20}"))
            .prop_map(|(name, value)| Attribute::Other { name, value }),
    ]
}

proptest! {
    #[test]
    fn printed_attributes_parse_back(a in attribute()) {
        let line = a.to_string();
        let back = Attribute::parse(&line).map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        prop_assert_eq!(&back, &a);
        // Also without the "a=" and with a line end.
        let bare = format!("{}\r\n", line.strip_prefix("a=").unwrap());
        prop_assert_eq!(Attribute::parse(&bare).unwrap(), a);
    }

    #[test]
    fn arbitrary_lines_never_panic_and_are_stable_when_accepted(
        line in prop_oneof![
            "\\PC{0,60}",
            "a=(path|accept-types|max-size|setup|file-selector|file-date|file-range|file-icon):\\PC{0,60}",
        ]
    ) {
        if let Ok(a) = Attribute::parse(&line) {
            let printed = a.to_string();
            let back = Attribute::parse(&printed).map_err(|e| TestCaseError::fail(format!("{line:?} -> {printed:?}: {e}")))?;
            prop_assert_eq!(&back, &a);
            prop_assert_eq!(back.to_string(), printed);
        }
    }

    #[test]
    fn collected_attributes_round_trip(attrs in proptest::collection::vec(attribute(), 0..10)) {
        // Keep the first of each known kind, as a media description would.
        let mut seen = std::collections::HashSet::new();
        let attrs: Vec<Attribute> = attrs
            .into_iter()
            .filter(|a| matches!(a, Attribute::Other { .. }) || seen.insert(a.name().to_owned()))
            .collect();
        let lines: Vec<String> = attrs.iter().map(ToString::to_string).collect();
        let m = MsrpAttributes::collect(lines.iter().map(String::as_str)).unwrap();
        let printed = m.to_lines();
        prop_assert_eq!(printed.len(), attrs.len());
        let again = MsrpAttributes::collect(printed.iter().map(String::as_str)).unwrap();
        prop_assert_eq!(again, m);
    }
}
