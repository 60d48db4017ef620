//! Small helpers shared by the element → model decoders.

use std::str::FromStr;

use crate::error::ParseError;
use crate::jid::Jid;
use crate::xml::{Element, Node};

/// Removes and returns a required unqualified attribute.
pub(crate) fn req(
    el: &mut Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<String, ParseError> {
    el.take_attr(attribute)
        .ok_or(ParseError::MissingAttribute { element, attribute })
}

/// Parses an optional numeric attribute.
pub(crate) fn num<T: FromStr>(
    el: &mut Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<Option<T>, ParseError> {
    match el.take_attr(attribute) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ParseError::InvalidAttribute {
                element,
                attribute,
                value: v,
            }),
    }
}

/// Parses a required numeric attribute.
pub(crate) fn req_num<T: FromStr>(
    el: &mut Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<T, ParseError> {
    num(el, element, attribute)?.ok_or(ParseError::MissingAttribute { element, attribute })
}

/// Parses an optional JID attribute.
pub(crate) fn jid(
    el: &mut Element,
    element: &'static str,
    attribute: &'static str,
) -> Result<Option<Jid>, ParseError> {
    match el.take_attr(attribute) {
        None => Ok(None),
        Some(v) => Jid::new(v)
            .map(Some)
            .map_err(|source| ParseError::InvalidJid {
                element,
                attribute,
                source,
            }),
    }
}

/// Parses an attribute through a lookup function (for closed token sets).
pub(crate) fn token<T>(
    el: &mut Element,
    element: &'static str,
    attribute: &'static str,
    lookup: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ParseError> {
    match el.take_attr(attribute) {
        None => Ok(None),
        Some(v) => lookup(&v).map(Some).ok_or(ParseError::InvalidAttribute {
            element,
            attribute,
            value: v,
        }),
    }
}

/// The text content of an element, consumed (child elements are ignored).
pub(crate) fn text(el: Element) -> String {
    let mut out = String::new();
    for n in el.children {
        if let Node::Text(t) = n {
            if out.is_empty() {
                out = t;
            } else {
                out.push_str(&t);
            }
        }
    }
    out
}

/// Parses the (trimmed) text content of an element as a number.
pub(crate) fn text_num<T: FromStr>(el: Element, element: &'static str) -> Result<T, ParseError> {
    let t = text(el);
    t.trim()
        .parse()
        .map_err(|_| ParseError::InvalidText { element, value: t })
}

/// Stores `value` in `slot`, refusing a second occurrence.
pub(crate) fn once<T>(
    slot: &mut Option<T>,
    value: T,
    element: &'static str,
    child: &'static str,
) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(ParseError::DuplicateChild { element, child });
    }
    *slot = Some(value);
    Ok(())
}

/// Iterates over the child elements of `el`, consuming them (text is dropped).
pub(crate) fn child_elements(el: &mut Element) -> impl Iterator<Item = Element> {
    std::mem::take(&mut el.children)
        .into_iter()
        .filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
}
