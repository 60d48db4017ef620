//! Property tests: for any model value, `parse(to_xml(x)) == x` and
//! `from_json(to_json(x)) == x`; for any parsed input, parse → serialize → parse is
//! stable.

use std::collections::BTreeMap;

use huddle_jingle::ft::{File, FileInfo, FileInfoKind, FileTransfer, Hash, Range};
use huddle_jingle::ibb::{IbbStanza, IbbTransport};
use huddle_jingle::ice::{IceCandidate, IceCandidateType, IceUdpTransport, RemoteCandidate};
use huddle_jingle::rtp::{PayloadType, RtpDescription, RtpInfo};
use huddle_jingle::s5b::{CandidateType, S5bCandidate, S5bMode, Socks5Transport};
use huddle_jingle::{
    Action, Attribute, Codec, Content, Creator, Description, Element, ErrorType, Iq, IqType, Jid,
    Jingle, JingleErrorCondition, Node, Reason, ReasonCondition, Registry, Senders, SessionInfo,
    StanzaError, StanzaErrorCondition, Transport,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// Any text XML can carry (no C0 controls besides TAB/LF/CR), with the characters that
/// need escaping well represented.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&'\"=/:;\\]\\[é中\t\n\r-]{0,12}"
}

fn token() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9-]{0,8}"
}

fn jid() -> impl Strategy<Value = Jid> {
    ("[a-z]{1,8}", "[a-z]{1,8}", option::of("[a-zA-Z0-9 ]{1,8}")).prop_map(|(l, d, r)| {
        let s = match r {
            Some(r) => format!("{l}@{d}.example/{r}"),
            None => format!("{l}@{d}.example"),
        };
        Jid::new(s).unwrap()
    })
}

/// A raw element in a foreign namespace, as the parser would produce it: attribute
/// names unique and sorted (JSON objects are unordered), text only as the sole child.
fn raw(ns: &'static str, name: &'static str) -> impl Strategy<Value = Element> {
    raw_in(ns.to_owned(), Just(name.to_owned()).boxed(), 2)
}

fn raw_in(ns: String, name: BoxedStrategy<String>, depth: u32) -> BoxedStrategy<Element> {
    let attrs = btree_map("[a-z][a-z0-9]{0,5}", text(), 0..3);
    let leaf = (
        name.clone(),
        attrs,
        option::of("[a-z<&>][a-z <&>]{0,6}"),
        Just(ns.clone()),
    )
        .prop_map(|(name, attrs, t, ns)| {
            let mut el = Element::new(name, ns);
            el.attributes = attrs
                .into_iter()
                .filter(|(k, _)| k != "xmlns")
                .map(|(name, value)| Attribute {
                    namespace: String::new(),
                    name,
                    value,
                })
                .collect();
            if let Some(t) = t {
                el.children.push(Node::Text(t));
            }
            el
        })
        .boxed();
    if depth == 0 {
        return leaf;
    }
    let child = raw_in(ns.clone(), "x-[a-z]{1,4}".boxed(), depth - 1);
    (leaf, vec(child, 0..3), any::<bool>())
        .prop_map(|(mut el, children, lang)| {
            if !children.is_empty() {
                el.children = children.into_iter().map(Node::Element).collect();
            }
            if lang {
                el.attributes.push(Attribute {
                    namespace: huddle_jingle::XML_NS.into(),
                    name: "lang".into(),
                    value: "en".into(),
                });
            }
            el
        })
        .boxed()
}

fn hash() -> impl Strategy<Value = Hash> {
    ("sha-[0-9]{1,3}", "[A-Za-z0-9+/]{1,20}={0,2}").prop_map(|(algo, base64)| Hash { algo, base64 })
}

fn file() -> impl Strategy<Value = File> {
    (
        (
            option::of(text()),
            option::of(text()),
            option::of(text()),
            option::of(text()),
            option::of(any::<u64>()),
        ),
        option::of((any::<u64>(), option::of(any::<u64>()), vec(hash(), 0..2))),
        vec(hash(), 0..3),
        vec("sha-[0-9]{1,3}", 0..2),
        vec(raw("urn:example:thumbs", "thumbnail"), 0..2),
    )
        .prop_map(
            |((date, media_type, name, desc, size), range, hashes, hashes_used, extensions)| File {
                date,
                media_type,
                name,
                desc,
                size,
                range: range.map(|(offset, length, hashes)| Range {
                    offset,
                    length,
                    hashes,
                }),
                hashes,
                hashes_used,
                extensions,
            },
        )
}

fn rtp() -> impl Strategy<Value = RtpDescription> {
    let pt = (
        any::<u8>(),
        option::of("[a-zA-Z0-9]{1,8}"),
        option::of(any::<u32>()),
        option::of(any::<u8>()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        btree_map("[a-z-]{1,8}", text(), 0..3),
        vec(raw("urn:xmpp:jingle:apps:rtp:rtcp-fb:0", "rtcp-fb"), 0..2),
    )
        .prop_map(
            |(id, name, clockrate, channels, maxptime, ptime, parameters, extensions)| {
                PayloadType {
                    id,
                    name,
                    clockrate,
                    channels,
                    maxptime,
                    ptime,
                    parameters: parameters.into_iter().collect::<BTreeMap<_, _>>(),
                    extensions,
                }
            },
        );
    (
        "[a-z]{1,6}",
        option::of(any::<u32>()),
        vec(pt, 0..3),
        vec(raw("urn:example:rtp-ext", "bandwidth"), 0..2),
    )
        .prop_map(|(media, ssrc, payload_types, extensions)| RtpDescription {
            media,
            ssrc,
            payload_types,
            extensions,
        })
}

fn description() -> impl Strategy<Value = Description> {
    prop_oneof![
        (file(), vec(raw("urn:example:ft-ext", "extra"), 0..2)).prop_map(|(file, extensions)| {
            Description::FileTransfer(Box::new(FileTransfer { file, extensions }))
        }),
        rtp().prop_map(Description::Rtp),
        raw("urn:example:app", "description").prop_map(Description::Raw),
    ]
}

fn transport() -> impl Strategy<Value = Transport> {
    let ibb = (any::<u16>(), token(), any::<bool>()).prop_map(|(block_size, sid, msg)| {
        Transport::Ibb(IbbTransport {
            block_size,
            sid,
            stanza: if msg {
                IbbStanza::Message
            } else {
                IbbStanza::Iq
            },
        })
    });
    let cand = (
        token(),
        "[a-z0-9.:]{1,15}",
        jid(),
        option::of(any::<u16>()),
        any::<u32>(),
        0..4usize,
    )
        .prop_map(|(cid, host, jid, port, priority, k)| S5bCandidate {
            cid,
            host,
            jid,
            port,
            priority,
            kind: [
                CandidateType::Assisted,
                CandidateType::Direct,
                CandidateType::Proxy,
                CandidateType::Tunnel,
            ][k],
        });
    let s5b = (
        token(),
        option::of("[a-f0-9]{1,40}"),
        any::<bool>(),
        vec(cand, 0..3),
        option::of(token()),
        any::<bool>(),
        option::of(token()),
        any::<bool>(),
        vec(raw("urn:example:s5b-ext", "extra"), 0..2),
    )
        .prop_map(
            |(
                sid,
                dstaddr,
                udp,
                candidates,
                candidate_used,
                candidate_error,
                activated,
                proxy_error,
                extensions,
            )| {
                Transport::Socks5(Box::new(Socks5Transport {
                    sid,
                    dstaddr,
                    mode: if udp { S5bMode::Udp } else { S5bMode::Tcp },
                    candidates,
                    candidate_used,
                    candidate_error,
                    activated,
                    proxy_error,
                    extensions,
                }))
            },
        );
    let ice_cand = (
        (
            any::<u8>(),
            token(),
            any::<u32>(),
            token(),
            "[0-9.]{1,15}",
            option::of(any::<u32>()),
        ),
        (
            any::<u16>(),
            any::<u64>(),
            "udp|tcp",
            option::of("[0-9.]{1,15}"),
            option::of(any::<u16>()),
            0..4usize,
        ),
    )
        .prop_map(
            |(
                (component, foundation, generation, id, ip, network),
                (port, priority, protocol, rel_addr, rel_port, k),
            )| {
                IceCandidate {
                    component,
                    foundation,
                    generation,
                    id,
                    ip,
                    network,
                    port,
                    priority,
                    protocol,
                    rel_addr,
                    rel_port,
                    kind: [
                        IceCandidateType::Host,
                        IceCandidateType::Prflx,
                        IceCandidateType::Relay,
                        IceCandidateType::Srflx,
                    ][k],
                }
            },
        );
    let ice = (
        option::of(token()),
        option::of(text()),
        vec(ice_cand, 0..3),
        option::of((any::<u8>(), "[0-9.]{1,15}", any::<u16>())),
        vec(raw("urn:xmpp:jingle:apps:dtls:0", "fingerprint"), 0..2),
    )
        .prop_map(|(ufrag, pwd, candidates, remote, extensions)| {
            Transport::IceUdp(Box::new(IceUdpTransport {
                ufrag,
                pwd,
                candidates,
                remote_candidate: remote.map(|(component, ip, port)| RemoteCandidate {
                    component,
                    ip,
                    port,
                }),
                extensions,
            }))
        });
    prop_oneof![
        ibb,
        s5b,
        ice,
        raw("urn:example:tr", "transport").prop_map(Transport::Raw)
    ]
}

fn content() -> impl Strategy<Value = Content> {
    (
        any::<bool>(),
        text(),
        prop_oneof![Just("session".to_owned()), token()],
        0..4usize,
        option::of(description()),
        option::of(transport()),
        option::of(raw("urn:example:sec", "security")),
        vec(raw("urn:example:ext", "x-content"), 0..2),
    )
        .prop_map(
            |(resp, name, disposition, s, description, transport, security, extensions)| Content {
                creator: if resp {
                    Creator::Responder
                } else {
                    Creator::Initiator
                },
                name: name.into(),
                disposition: disposition.into(),
                senders: [
                    Senders::Both,
                    Senders::Initiator,
                    Senders::Responder,
                    Senders::None,
                ][s],
                description,
                transport,
                security,
                extensions,
            },
        )
}

fn reason() -> impl Strategy<Value = Reason> {
    (
        proptest::sample::select(ReasonCondition::ALL),
        "[a-z0-9]{1,10}",
        option::of((text(), option::of("[a-z]{2}"))),
        vec(
            raw("urn:xmpp:jingle:apps:rtp:errors:1", "crypto-required"),
            0..2,
        ),
    )
        .prop_map(|(condition, alt, text, extensions)| Reason {
            condition,
            alternative_session: (condition == ReasonCondition::AlternativeSession).then_some(alt),
            lang: text.as_ref().and_then(|(_, l)| l.clone()),
            text: text.map(|(t, _)| t),
            extensions,
        })
}

fn info() -> impl Strategy<Value = SessionInfo> {
    let creator = option::of(any::<bool>().prop_map(|r| {
        if r {
            Creator::Responder
        } else {
            Creator::Initiator
        }
    }));
    prop_oneof![
        Just(SessionInfo::Rtp(RtpInfo::Ringing)),
        Just(SessionInfo::Rtp(RtpInfo::Hold)),
        Just(SessionInfo::Rtp(RtpInfo::Unhold)),
        Just(SessionInfo::Rtp(RtpInfo::Active)),
        (creator.clone(), option::of(text()))
            .prop_map(|(creator, name)| SessionInfo::Rtp(RtpInfo::Mute { creator, name })),
        (creator.clone(), option::of(text()))
            .prop_map(|(creator, name)| SessionInfo::Rtp(RtpInfo::Unmute { creator, name })),
        (creator.clone(), option::of(text()), file()).prop_map(|(creator, name, f)| {
            SessionInfo::FileTransfer(Box::new(FileInfo {
                kind: FileInfoKind::Checksum,
                creator,
                name,
                file: Some(f),
            }))
        }),
        (creator, option::of(text())).prop_map(|(creator, name)| SessionInfo::FileTransfer(
            Box::new(FileInfo {
                kind: FileInfoKind::Received,
                creator,
                name,
                file: None
            })
        )),
        raw("urn:example:info", "ping").prop_map(SessionInfo::Raw),
    ]
}

fn jingle() -> impl Strategy<Value = Jingle> {
    (
        proptest::sample::select(Action::ALL),
        text(),
        option::of(jid()),
        option::of(jid()),
        vec(content(), 0..3),
        option::of(reason()),
        info(),
        vec(raw("urn:example:ext", "x-jingle"), 0..2),
    )
        .prop_map(
            |(action, sid, initiator, responder, contents, reason, info, extensions)| Jingle {
                action,
                sid: sid.into(),
                initiator,
                responder,
                contents,
                reason: reason.map(Box::new),
                // Only a session-info carries an informational payload; in any other action a
                // foreign child is an extension.
                info: (action == Action::SessionInfo).then_some(Box::new(info)),
                extensions,
            },
        )
}

fn stanza_error() -> impl Strategy<Value = StanzaError> {
    (
        proptest::sample::select(ErrorType::ALL),
        proptest::sample::select(StanzaErrorCondition::ALL),
        option::of("[a-z:@.]{1,12}"),
        option::of(proptest::sample::select(JingleErrorCondition::ALL)),
        option::of((text(), option::of("[a-z]{2}"))),
        option::of(jid()),
        vec(raw("urn:example:app-error", "oops"), 0..2),
    )
        .prop_map(
            |(kind, condition, condition_text, jingle_condition, text, by, extensions)| {
                StanzaError {
                    kind,
                    condition,
                    condition_text,
                    jingle_condition,
                    lang: text.as_ref().and_then(|(_, l)| l.clone()),
                    text: text.map(|(t, _)| t),
                    by,
                    extensions,
                }
            },
        )
}

fn iq() -> impl Strategy<Value = Iq> {
    (
        0..4usize,
        text(),
        option::of(jid()),
        option::of(jid()),
        option::of("[a-z]{2}"),
        jingle(),
        any::<bool>(),
        stanza_error(),
    )
        .prop_map(|(k, id, from, to, lang, jingle, with_jingle, error)| {
            let kind = [IqType::Get, IqType::Set, IqType::Result, IqType::Error][k];
            let (jingle, error) = match kind {
                IqType::Get | IqType::Set => (Some(jingle), None),
                IqType::Result => (with_jingle.then_some(jingle), None),
                IqType::Error => (with_jingle.then_some(jingle), Some(error)),
            };
            Iq {
                kind,
                id,
                from,
                to,
                lang,
                jingle: jingle.map(Box::new),
                error: error.map(Box::new),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn xml_round_trip(iq in iq()) {
        let xml = iq.to_xml();
        let back = huddle_jingle::parse_iq(xml.as_bytes());
        prop_assert!(back.is_ok(), "{:?}\n{}", back, xml);
        let back = back.unwrap();
        prop_assert_eq!(&back, &iq, "{}", xml);
        prop_assert_eq!(&back.to_xml(), &xml);
        // Appending to a buffer writes the same text after what it held.
        let mut buf = String::from("<held/>");
        iq.write_xml(&mut buf);
        prop_assert_eq!(buf.strip_prefix("<held/>"), Some(xml.as_str()));
    }

    #[test]
    fn json_round_trip(iq in iq()) {
        let json = iq.to_json();
        let back = Iq::from_json(&json, &Registry::new());
        prop_assert!(back.is_ok(), "{:?}\n{}", back, json);
        prop_assert_eq!(&back.unwrap(), &iq);
        // And through serde's text form.
        let text = serde_json::to_string(&iq).unwrap();
        let again: Iq = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(again.to_json(), json);
    }

    #[test]
    fn bare_jingle_round_trips(j in jingle()) {
        prop_assert_eq!(huddle_jingle::parse_jingle(j.to_xml().as_bytes()).unwrap(), j.clone());
        prop_assert_eq!(Jingle::from_json(&j.to_json(), &Registry::new()).unwrap(), j);
    }

    /// Arbitrary bytes never panic; whatever parses re-parses to the same value.
    #[test]
    fn arbitrary_input_is_stable(bytes in vec(any::<u8>(), 0..200)) {
        let codec = Codec::new();
        if let Ok(doc) = codec.parse(&bytes) {
            prop_assert_eq!(codec.parse(doc.to_xml().as_bytes()).unwrap(), doc);
        }
    }

    /// Mutations of a real stanza never panic, and what parses is stable.
    #[test]
    fn mutated_stanzas_are_stable(pos in 0usize..1290, byte in any::<u8>(), cut in 0usize..1290) {
        let mut input = include_bytes!("vectors/session-initiate-1290.xml").to_vec();
        let p = pos % input.len();
        input[p] = byte;
        input.truncate(cut.max(p + 1));
        let codec = Codec::new();
        if let Ok(doc) = codec.parse(&input) {
            prop_assert_eq!(codec.parse(doc.to_xml().as_bytes()).unwrap(), doc);
        }
    }
}
