//! Helpers for the jingle.js/stanza JSON mapping, and the JSON form of raw elements.
//!
//! A raw [`Element`] is written as
//! `{"name": .., "namespace": .., "attributes": {..}, "children": [..]}` where each child
//! is either a string (text) or another such object, and a namespaced attribute's key is
//! written in Clark notation (`{namespace}name`).

use serde_json::{Map, Value};

use crate::error::JsonError;
use crate::xml::{Attribute, Element, Node};

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn as_obj<'a>(
    v: &'a Value,
    object: &'static str,
    field: &'static str,
) -> Result<&'a Obj, JsonError> {
    v.as_object().ok_or_else(|| invalid(object, field, v))
}

pub(crate) fn invalid(object: &'static str, field: &'static str, v: &Value) -> JsonError {
    JsonError::InvalidField {
        object,
        field,
        value: v.to_string(),
    }
}

/// An optional string field (`null` counts as absent).
pub(crate) fn opt_str<'a>(
    o: &'a Obj,
    object: &'static str,
    field: &'static str,
) -> Result<Option<&'a str>, JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid(object, field, v)),
    }
}

pub(crate) fn req_str<'a>(
    o: &'a Obj,
    object: &'static str,
    field: &'static str,
) -> Result<&'a str, JsonError> {
    opt_str(o, object, field)?.ok_or(JsonError::MissingField { object, field })
}

/// An optional unsigned integer (a JSON number, or a string of digits as jingle.js
/// sometimes produces from attributes).
pub(crate) fn opt_num<T: TryFrom<u64>>(
    o: &Obj,
    object: &'static str,
    field: &'static str,
) -> Result<Option<T>, JsonError> {
    let v = match o.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v,
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| invalid(object, field, v))
}

pub(crate) fn req_num<T: TryFrom<u64>>(
    o: &Obj,
    object: &'static str,
    field: &'static str,
) -> Result<T, JsonError> {
    opt_num(o, object, field)?.ok_or(JsonError::MissingField { object, field })
}

pub(crate) fn opt_bool(
    o: &Obj,
    object: &'static str,
    field: &'static str,
) -> Result<Option<bool>, JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(object, field, v)),
    }
}

/// An optional array (absent = empty).
pub(crate) fn arr<'a>(
    o: &'a Obj,
    object: &'static str,
    field: &'static str,
) -> Result<&'a [Value], JsonError> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(invalid(object, field, v)),
    }
}

/// A token looked up in a closed set.
pub(crate) fn opt_token<T>(
    o: &Obj,
    object: &'static str,
    field: &'static str,
    lookup: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, JsonError> {
    match opt_str(o, object, field)? {
        None => Ok(None),
        Some(s) => lookup(s)
            .map(Some)
            .ok_or_else(|| invalid(object, field, &Value::String(s.to_owned()))),
    }
}

pub(crate) fn put_str(o: &mut Obj, k: &str, v: &str) {
    o.insert(k.to_owned(), Value::String(v.to_owned()));
}

pub(crate) fn put_opt_str(o: &mut Obj, k: &str, v: Option<&str>) {
    if let Some(v) = v {
        put_str(o, k, v);
    }
}

pub(crate) fn put_opt_num<T: Into<u64>>(o: &mut Obj, k: &str, v: Option<T>) {
    if let Some(v) = v {
        o.insert(k.to_owned(), Value::from(v.into()));
    }
}

/// `"extensions": [raw...]` when there are any.
pub(crate) fn put_extensions(o: &mut Obj, ext: &[Element]) {
    if !ext.is_empty() {
        o.insert(
            "extensions".into(),
            Value::Array(ext.iter().map(element_to_json).collect()),
        );
    }
}

pub(crate) fn get_extensions(o: &Obj, object: &'static str) -> Result<Vec<Element>, JsonError> {
    arr(o, object, "extensions")?
        .iter()
        .map(element_from_json)
        .collect()
}

/// The JSON form of a raw element (see the module docs).
pub fn element_to_json(el: &Element) -> Value {
    let mut o = Obj::new();
    put_str(&mut o, "name", &el.name);
    put_str(&mut o, "namespace", &el.namespace);
    if !el.attributes.is_empty() {
        let mut attrs = Obj::new();
        for a in &el.attributes {
            let key = if a.namespace.is_empty() {
                a.name.clone()
            } else {
                format!("{{{}}}{}", a.namespace, a.name)
            };
            attrs.insert(key, Value::String(a.value.clone()));
        }
        o.insert("attributes".into(), Value::Object(attrs));
    }
    if !el.children.is_empty() {
        let children = el
            .children
            .iter()
            .map(|c| match c {
                Node::Element(e) => element_to_json(e),
                Node::Text(t) => Value::String(t.clone()),
            })
            .collect();
        o.insert("children".into(), Value::Array(children));
    }
    Value::Object(o)
}

/// Reads the JSON form of a raw element (see the module docs).
pub fn element_from_json(v: &Value) -> Result<Element, JsonError> {
    element_from_json_depth(v, 0)
}

fn element_from_json_depth(v: &Value, depth: usize) -> Result<Element, JsonError> {
    // The same nesting bound the XML reader applies by default.
    if depth >= crate::xml::Limits::default().max_depth {
        return Err(invalid(
            "element",
            "children",
            &Value::String("nested too deeply".into()),
        ));
    }
    let o = as_obj(v, "element", "element")?;
    let name = req_str(o, "element", "name")?;
    if name.is_empty() || name.contains([':', '<', '>', '&', '"', '\'', ' ', '/', '=']) {
        return Err(invalid("element", "name", &Value::String(name.into())));
    }
    let mut el = Element::new(
        crate::xml::known_name(name),
        crate::xml::known_namespace(opt_str(o, "element", "namespace")?.unwrap_or("")),
    );
    if let Some(attrs) = o.get("attributes") {
        for (k, v) in as_obj(attrs, "element", "attributes")? {
            let value = v
                .as_str()
                .ok_or_else(|| invalid("element", "attributes", v))?;
            let (namespace, name) = match k.strip_prefix('{').and_then(|r| r.split_once('}')) {
                Some((ns, n)) => (ns.to_owned(), n.to_owned()),
                None => (String::new(), k.clone()),
            };
            if name.is_empty()
                || name.contains([':', '<', '>', '&', '"', '\'', ' ', '/', '='])
                || name == "xmlns"
            {
                return Err(invalid("element", "attributes", &Value::String(k.clone())));
            }
            el.attributes.push(Attribute {
                namespace,
                name,
                value: value.to_owned(),
            });
        }
    }
    for c in arr(o, "element", "children")? {
        match c {
            Value::String(s) => el.children.push(Node::Text(s.clone())),
            other => el
                .children
                .push(Node::Element(element_from_json_depth(other, depth + 1)?)),
        }
    }
    Ok(el)
}
