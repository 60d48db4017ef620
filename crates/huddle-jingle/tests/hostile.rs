//! Hostile and malformed input: every refusal is a typed error, nothing panics, and
//! the limits bound what is held in memory.

use huddle_jingle::{
    Codec, Content, Creator, Description, Element, Extension, ExtensionPayload, Iq, Jingle, Limits,
    ParseError, ReasonCondition, Registry, Senders, Slot, StanzaErrorCondition, Transport,
    XmlError, parse, parse_iq, parse_jingle,
};

fn xml_err(input: &[u8]) -> XmlError {
    match parse(input) {
        Err(ParseError::Xml(e)) => e,
        Err(other) => panic!("expected an XML error, got {other:?}"),
        Ok(_) => panic!("expected an XML error, the input parsed"),
    }
}

const J: &str = "xmlns='urn:xmpp:jingle:1'";

#[test]
fn doctype_and_entity_declarations_are_refused() {
    let laughs = b"<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>\
        <jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='&lol2;'/>";
    assert_eq!(xml_err(laughs), XmlError::Doctype);
    let external = b"<!DOCTYPE iq SYSTEM 'file:///etc/passwd'><iq type='set' id='1'/>";
    assert_eq!(xml_err(external), XmlError::Doctype);
}

#[test]
fn undeclared_entities_are_refused_in_text_and_attributes() {
    let text =
        format!("<jingle {J} action='session-info' sid='s'><x xmlns='urn:x'>&ent;</x></jingle>");
    assert!(
        matches!(xml_err(text.as_bytes()), XmlError::EntityReference { name } if name == "ent")
    );
    let attr = format!("<jingle {J} action='session-info' sid='&ent;'/>");
    assert!(
        matches!(xml_err(attr.as_bytes()), XmlError::EntityReference { name } if name == "ent")
    );
}

#[test]
fn predefined_entities_and_char_refs_are_decoded() {
    let input = format!("<jingle {J} action='session-info' sid='a&amp;b&#x41;&#66;&lt;&quot;'/>");
    assert_eq!(parse_jingle(input.as_bytes()).unwrap().sid, "a&bAB<\"");
    for bad in ["&#0;", "&#xD800;", "&#x110000;", "&#1;", "&#-1;", "&#xZZ;"] {
        let input = format!(
            "<jingle {J} action='session-info' sid='s'><x xmlns='urn:x'>{bad}</x></jingle>"
        );
        assert!(
            matches!(
                xml_err(input.as_bytes()),
                XmlError::InvalidCharRef { .. } | XmlError::Syntax { .. }
            ),
            "{bad}"
        );
        let input = format!("<jingle {J} action='session-info' sid='{bad}'/>");
        assert!(
            matches!(
                xml_err(input.as_bytes()),
                XmlError::InvalidCharRef { .. } | XmlError::Syntax { .. }
            ),
            "{bad}"
        );
    }
}

#[test]
fn comments_and_processing_instructions_are_refused() {
    let c = format!("<jingle {J} action='session-info' sid='s'><!-- hi --></jingle>");
    assert_eq!(xml_err(c.as_bytes()), XmlError::Comment);
    let pi = format!("<jingle {J} action='session-info' sid='s'><?php x?></jingle>");
    assert_eq!(xml_err(pi.as_bytes()), XmlError::ProcessingInstruction);
}

#[test]
fn deep_nesting_is_bounded_without_recursion() {
    let depth = 100_000;
    let mut s = format!("<jingle {J} action='session-info' sid='s'>");
    s.push_str(&"<a xmlns='urn:x'>".repeat(depth));
    s.push_str(&"</a>".repeat(depth));
    s.push_str("</jingle>");
    let codec = Codec {
        limits: Limits {
            max_input: usize::MAX,
            ..Limits::default()
        },
        ..Codec::default()
    };
    assert!(matches!(
        codec.parse(s.as_bytes()),
        Err(ParseError::Xml(XmlError::TooDeep { max: 32 }))
    ));
}

#[test]
fn sizes_are_bounded() {
    let limits = Limits::default();
    let big = vec![b' '; limits.max_input + 1];
    assert!(matches!(xml_err(&big), XmlError::InputTooLarge { .. }));

    let many = format!(
        "<jingle {J} action='session-info' sid='s'>{}</jingle>",
        "<a xmlns='urn:x'/>".repeat(5000)
    );
    assert!(matches!(
        xml_err(many.as_bytes()),
        XmlError::TooManyElements { max: 4096 }
    ));

    let attrs: String = (0..100).map(|i| format!(" a{i}='v'")).collect();
    let input =
        format!("<jingle {J} action='session-info' sid='s'><x xmlns='urn:x'{attrs}/></jingle>");
    assert!(matches!(
        xml_err(input.as_bytes()),
        XmlError::TooManyAttributes { max: 64 }
    ));

    let input = format!(
        "<jingle {J} action='session-info' sid='{}'/>",
        "v".repeat(20_000)
    );
    assert!(matches!(
        xml_err(input.as_bytes()),
        XmlError::AttributeTooLong { .. }
    ));

    let input = format!(
        "<jingle {J} action='session-info' sid='s'><x xmlns='urn:x'>{}</x></jingle>",
        "t".repeat(70_000)
    );
    assert!(matches!(
        xml_err(input.as_bytes()),
        XmlError::TextTooLong { .. }
    ));
    // Many small pieces (entity references) add up to the same bound.
    let input = format!(
        "<jingle {J} action='session-info' sid='s'><x xmlns='urn:x'>{}</x></jingle>",
        "&amp;".repeat(70_000)
    );
    let codec = Codec {
        limits: Limits {
            max_input: usize::MAX,
            ..Limits::default()
        },
        ..Codec::default()
    };
    assert!(matches!(
        codec.parse(input.as_bytes()),
        Err(ParseError::Xml(XmlError::TextTooLong { .. }))
    ));

    let input = format!("<{} {J}/>", "n".repeat(300));
    assert!(matches!(
        xml_err(input.as_bytes()),
        XmlError::NameTooLong { .. }
    ));
}

#[test]
fn encoding_errors_are_refused() {
    let mut bad = format!("<jingle {J} action='session-info' sid='").into_bytes();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"'/>");
    assert!(matches!(xml_err(&bad), XmlError::InvalidUtf8 { .. }));
    let ctl = format!("<jingle {J} action='session-info' sid='a\u{1}'/>");
    assert!(matches!(
        xml_err(ctl.as_bytes()),
        XmlError::ForbiddenChar { code: 1, .. }
    ));
}

#[test]
fn malformed_structure_is_refused() {
    assert_eq!(xml_err(b""), XmlError::NoRootElement);
    assert_eq!(xml_err(b"   "), XmlError::NoRootElement);
    assert_eq!(
        xml_err(format!("<jingle {J} action='session-info' sid='s'>").as_bytes()),
        XmlError::UnexpectedEof
    );
    assert_eq!(
        xml_err(format!("<jingle {J} action='session-info' sid='s'/><x/>").as_bytes()),
        XmlError::TrailingContent
    );
    assert_eq!(
        xml_err(format!("<jingle {J} action='session-info' sid='s'/>junk").as_bytes()),
        XmlError::TrailingContent
    );
    assert!(matches!(
        xml_err(b"<p:jingle action='x' sid='s'/>"),
        XmlError::UnboundPrefix { .. }
    ));
    assert!(matches!(
        xml_err(format!("<jingle {J} sid='a' sid='b'/>").as_bytes()),
        XmlError::Syntax { .. }
    ));
    assert!(matches!(
        xml_err(format!("<jingle {J}><a></b></jingle>").as_bytes()),
        XmlError::Syntax { .. }
    ));
    assert!(matches!(
        xml_err(format!("<jingle {J} sid='<'/>").as_bytes()),
        XmlError::Syntax { .. }
    ));
    assert!(matches!(
        xml_err(b"<jingle"),
        XmlError::Syntax { .. } | XmlError::UnexpectedEof
    ));
}

#[test]
fn missing_required_attributes_are_typed_errors() {
    let e = parse_jingle(format!("<jingle {J} action='session-info'/>").as_bytes()).unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "jingle",
            attribute: "sid"
        }
    );
    let e = parse_jingle(format!("<jingle {J} sid='s'/>").as_bytes()).unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "jingle",
            attribute: "action"
        }
    );
    let e = parse_jingle(format!("<jingle {J} sid='s' action='session-dance'/>").as_bytes())
        .unwrap_err();
    assert!(matches!(
        e,
        ParseError::InvalidAttribute {
            element: "jingle",
            attribute: "action",
            ..
        }
    ));
    let e = parse_jingle(
        format!("<jingle {J} sid='s' action='content-add'><content name='c'/></jingle>").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "content",
            attribute: "creator"
        }
    );
    let e = parse_jingle(
        format!("<jingle {J} sid='s' action='content-add'><content creator='initiator'/></jingle>")
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "content",
            attribute: "name"
        }
    );
    let e = parse_iq(
        b"<iq type='set'><jingle xmlns='urn:xmpp:jingle:1' action='session-info' sid='s'/></iq>",
    )
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "iq",
            attribute: "id"
        }
    );
    let e = parse_jingle(
        format!("<jingle {J} sid='s' action='session-initiate'><content creator='initiator' name='c'><transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='x'/></content></jingle>").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingAttribute {
            element: "transport",
            attribute: "block-size"
        }
    );
}

#[test]
fn absent_optional_attributes_take_the_xep_defaults() {
    let j = parse_jingle(
        format!("<jingle {J} sid='s' action='content-remove'><content creator='responder' name='c'/></jingle>").as_bytes(),
    )
    .unwrap();
    assert_eq!(j.contents[0].senders, Senders::Both);
    assert_eq!(j.contents[0].disposition, "session");
    assert_eq!(j.contents[0].creator, Creator::Responder);
    assert!(j.initiator.is_none() && j.responder.is_none());
}

#[test]
fn invalid_values_are_typed_errors() {
    let e = parse_jingle(
        format!("<jingle {J} action='session-info' sid='s' initiator='@x'/>").as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        ParseError::InvalidJid {
            attribute: "initiator",
            ..
        }
    ));
    let e = parse_jingle(format!("<jingle {J} action='session-terminate' sid='s'><reason><text>x</text></reason></jingle>").as_bytes())
        .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingChild {
            element: "reason",
            child: "condition"
        }
    );
    let e = parse_jingle(
        format!("<jingle {J} action='session-terminate' sid='s'><reason><alternative-session/></reason></jingle>").as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingChild {
            element: "alternative-session",
            child: "sid"
        }
    );
    let e = parse_jingle(
        format!(
            "<jingle {J} action='session-terminate' sid='s'><reason><bored/></reason></jingle>"
        )
        .as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(e, ParseError::UnexpectedElement { .. }));
    let e = parse_iq(b"<iq type='error' id='1'/>").unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingChild {
            element: "iq",
            child: "error"
        }
    );
    let e = parse_iq(b"<iq type='set' id='1'/>").unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingChild {
            element: "iq",
            child: "jingle"
        }
    );
    let e = parse_iq(b"<iq type='set' id='1'><query xmlns='jabber:iq:roster'/></iq>").unwrap_err();
    assert!(matches!(e, ParseError::UnexpectedElement { .. }));
    let e = parse_iq(b"<iq type='sideways' id='1'/>").unwrap_err();
    assert!(matches!(
        e,
        ParseError::InvalidAttribute {
            element: "iq",
            attribute: "type",
            ..
        }
    ));
    let e = parse_iq(b"<message type='chat' id='1'/>").unwrap_err();
    assert!(matches!(e, ParseError::UnexpectedElement { .. }));
    let e = parse_jingle(
        format!("<jingle {J} action='session-initiate' sid='s'><content creator='initiator' name='c'><transport xmlns='urn:xmpp:jingle:transports:s5b:1' sid='x'><candidate cid='c' host='h' jid='j@d' priority='high'/></transport></content></jingle>").as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        ParseError::InvalidAttribute {
            element: "candidate",
            attribute: "priority",
            ..
        }
    ));
    let e = parse_iq(b"<iq type='error' id='1'><error type='cancel'/></iq>").unwrap_err();
    assert_eq!(
        e,
        ParseError::MissingChild {
            element: "error",
            child: "condition"
        }
    );
}

#[test]
fn a_parse_error_answers_with_bad_request() {
    let e = parse_jingle(b"<jingle xmlns='urn:xmpp:jingle:1'/>").unwrap_err();
    assert_eq!(e.stanza_error().condition, StanzaErrorCondition::BadRequest);
}

#[test]
fn prefixes_attribute_order_and_whitespace_do_not_matter() {
    let a = "<iq type='set' id='1'><jingle xmlns='urn:xmpp:jingle:1' action='session-terminate' sid='s'>\
             <reason><success/></reason></jingle></iq>";
    let b = "<?xml version='1.0'?>\n<c:iq xmlns:c='jabber:client' id=\"1\"\n type='set'>\n  <j:jingle xmlns:j='urn:xmpp:jingle:1' \
             sid='s' action='session-terminate'>\n    <j:reason>\n      <j:success/>\n    </j:reason>\n  </j:jingle>\n</c:iq>\n";
    assert_eq!(
        parse_iq(a.as_bytes()).unwrap(),
        parse_iq(b.as_bytes()).unwrap()
    );
    assert_eq!(
        parse_iq(a.as_bytes())
            .unwrap()
            .jingle
            .unwrap()
            .reason
            .unwrap()
            .condition,
        ReasonCondition::Success
    );
}

#[test]
fn an_element_in_the_wrong_namespace_is_not_jingle() {
    let e = parse_jingle(b"<jingle xmlns='urn:xmpp:jingle:0' action='session-info' sid='s'/>")
        .unwrap_err();
    assert!(matches!(e, ParseError::UnexpectedElement { .. }));
}

#[test]
fn output_is_escaped() {
    let mut j = Jingle::new(huddle_jingle::Action::SessionTerminate, "a\"b<c>&d'\n\te\r");
    let mut r = huddle_jingle::Reason::new(ReasonCondition::Gone);
    r.text = Some("<script>&amp;</script>\r\n ]]>".into());
    j.reason = Some(Box::new(r));
    let xml = j.to_xml();
    assert!(!xml.contains("<script>"), "{xml}");
    assert_eq!(parse_jingle(xml.as_bytes()).unwrap(), j);
}

#[test]
fn unknown_payloads_survive_a_round_trip() {
    let input = format!(
        "<jingle {J} action='session-initiate' sid='s'><content creator='initiator' name='c'>\
         <description xmlns='urn:example:app' mode='x'><thing a='1' xml:lang='en'>text &amp; more</thing><empty/></description>\
         <transport xmlns='urn:example:tr'><p:q xmlns:p='urn:example:other' p:attr='v'/></transport>\
         <security xmlns='urn:example:sec'/><extra xmlns='urn:example:ext'/></content>\
         <foreign xmlns='urn:example:ext'>t</foreign></jingle>"
    );
    let j = parse_jingle(input.as_bytes()).unwrap();
    let Some(Description::Raw(d)) = &j.contents[0].description else {
        panic!("{j:?}")
    };
    assert_eq!(d.namespace, "urn:example:app");
    assert_eq!(
        d.child("thing", "urn:example:app")
            .unwrap()
            .attr_ns(huddle_jingle::XML_NS, "lang"),
        Some("en")
    );
    let Some(Transport::Raw(t)) = &j.contents[0].transport else {
        panic!()
    };
    assert_eq!(
        t.child("q", "urn:example:other")
            .unwrap()
            .attr_ns("urn:example:other", "attr"),
        Some("v")
    );
    assert_eq!(
        j.contents[0].security.as_ref().unwrap().namespace,
        "urn:example:sec"
    );
    assert_eq!(j.contents[0].extensions.len(), 1);
    assert_eq!(j.extensions.len(), 1);
    let again = parse_jingle(j.to_xml().as_bytes()).unwrap();
    assert_eq!(again, j);
    let from_json = Jingle::from_json(&j.to_json(), &Registry::new()).unwrap();
    assert_eq!(from_json, j);
}

/// A payload type a later crate could register (like the session manager's own
/// description namespaces).
#[derive(Debug, PartialEq)]
struct Chat {
    room: String,
}

const CHAT: &str = "urn:example:huddle:chat:0";

impl Extension for Chat {
    fn namespace(&self) -> &str {
        CHAT
    }
    fn to_element(&self) -> Element {
        Element::new("description", CHAT).with_attr("room", self.room.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn decode_chat(el: &Element) -> Result<ExtensionPayload, String> {
    let room = el.attr("room").ok_or("no room")?;
    Ok(ExtensionPayload::new(Chat {
        room: room.to_owned(),
    }))
}

#[test]
fn registered_namespaces_are_decoded_by_their_owner() {
    let mut codec = Codec::new();
    codec
        .registry
        .register(Slot::Description, CHAT, decode_chat);
    let input = format!(
        "<iq type='set' id='1'><jingle {J} action='session-initiate' sid='s'><content creator='initiator' name='c'>\
         <description xmlns='{CHAT}' room='lobby'/><transport xmlns='urn:xmpp:jingle:transports:ibb:1' sid='i' block-size='4096'/>\
         </content></jingle></iq>"
    );
    let iq = codec.parse_iq(input.as_bytes()).unwrap();
    let content: &Content = &iq.jingle.as_ref().unwrap().contents[0];
    let Some(Description::Extension(ext)) = &content.description else {
        panic!("{content:?}")
    };
    assert_eq!(
        ext.downcast_ref::<Chat>(),
        Some(&Chat {
            room: "lobby".into()
        })
    );
    assert_eq!(codec.parse_iq(iq.to_xml().as_bytes()).unwrap(), iq);
    let back = Iq::from_json(&iq.to_json(), &codec.registry).unwrap();
    assert_eq!(back, iq);
    // Without the registration the same payload stays raw and still round-trips.
    let raw = parse_iq(input.as_bytes()).unwrap();
    assert!(matches!(
        raw.jingle.as_ref().unwrap().contents[0].description,
        Some(Description::Raw(_))
    ));
    // A malformed registered payload is refused with the owner's reason.
    let bad = input.replace(" room='lobby'", "");
    assert!(
        matches!(codec.parse_iq(bad.as_bytes()), Err(ParseError::Extension { message, .. }) if message == "no room")
    );
}
