//! The extension point: how later crates add their own application formats, transport
//! methods and session-info payloads.
//!
//! Without registration nothing is lost: an unknown `<description/>`, `<transport/>` or
//! informational payload is kept as a raw [`Element`] (`Description::Raw`, ...) and is
//! written back unchanged in meaning. A crate that owns a namespace registers a decoder
//! in a [`Registry`]; the [`crate::Codec`] then hands every payload in that namespace to
//! the decoder, which returns a typed value implementing [`Extension`]
//! (`Description::Extension`, ...). Decoder errors become [`crate::ParseError::Extension`],
//! so a malformed custom payload is refused like any malformed Jingle request.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::xml::Element;

/// A typed payload defined outside this crate.
pub trait Extension: fmt::Debug + Send + Sync + 'static {
    /// The XML namespace of the payload's element.
    fn namespace(&self) -> &str;
    /// The payload as an element (used for XML output, JSON output and equality).
    fn to_element(&self) -> Element;
    /// `self`, for downcasting with [`ExtensionPayload::downcast_ref`].
    fn as_any(&self) -> &dyn Any;
}

/// A shared, cloneable typed extension payload. Two payloads are equal when their
/// elements are.
#[derive(Debug, Clone)]
pub struct ExtensionPayload(pub Arc<dyn Extension>);

impl ExtensionPayload {
    /// Wraps a typed payload.
    pub fn new(ext: impl Extension) -> Self {
        ExtensionPayload(Arc::new(ext))
    }

    /// The payload's namespace.
    pub fn namespace(&self) -> &str {
        self.0.namespace()
    }

    /// The payload as a raw element.
    pub fn to_element(&self) -> Element {
        self.0.to_element()
    }

    /// The typed payload, if it is a `T`.
    pub fn downcast_ref<T: Extension>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref::<T>()
    }
}

impl PartialEq for ExtensionPayload {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_element() == other.0.to_element()
    }
}

/// Decodes one registered payload element. The error text ends up in
/// [`crate::ParseError::Extension`].
pub type DecodeFn = fn(&Element) -> Result<ExtensionPayload, String>;

/// Where in a Jingle element a payload sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Slot {
    /// `<content><description xmlns=NS/>`: an application format.
    Description,
    /// `<content><transport xmlns=NS/>`: a transport method.
    Transport,
    /// A child of `<jingle action='session-info'>` in NS: an informational payload.
    SessionInfo,
}

/// Decoders for namespaces defined outside this crate. Registering a namespace this
/// crate already types (RTP, file transfer, IBB, SOCKS5, ICE-UDP) overrides the built-in
/// decoder for it.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<(Slot, String, DecodeFn)>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers (or replaces) the decoder for `namespace` in `slot`.
    pub fn register(
        &mut self,
        slot: Slot,
        namespace: impl Into<String>,
        decode: DecodeFn,
    ) -> &mut Self {
        let namespace = namespace.into();
        self.entries
            .retain(|(s, ns, _)| !(*s == slot && *ns == namespace));
        self.entries.push((slot, namespace, decode));
        self
    }

    /// The decoder registered for `namespace` in `slot`.
    pub fn get(&self, slot: Slot, namespace: &str) -> Option<DecodeFn> {
        self.entries
            .iter()
            .find(|(s, ns, _)| *s == slot && ns == namespace)
            .map(|(_, _, f)| *f)
    }

    /// The registered (slot, namespace) pairs.
    pub fn namespaces(&self) -> impl Iterator<Item = (Slot, &str)> {
        self.entries.iter().map(|(s, ns, _)| (*s, ns.as_str()))
    }

    pub(crate) fn decode(
        &self,
        slot: Slot,
        el: &Element,
    ) -> Option<Result<ExtensionPayload, crate::ParseError>> {
        let f = self.get(slot, &el.namespace)?;
        Some(f(el).map_err(|message| crate::ParseError::Extension {
            namespace: el.namespace.to_string(),
            message,
        }))
    }
}
