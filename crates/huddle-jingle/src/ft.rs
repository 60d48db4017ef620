//! XEP-0234 Jingle file transfer (namespace `urn:xmpp:jingle:apps:file-transfer:5`),
//! with XEP-0300 hashes (`urn:xmpp:hashes:2`).

use serde_json::Value;

use crate::de;
use crate::error::{JsonError, ParseError};
use crate::json::{self, Obj};
use crate::model::{Creator, unexpected};
use crate::ns;
use crate::xml::{Element, Writer};

/// A XEP-0300 `<hash/>`: an algorithm name from the IANA hash registry and the
/// base64 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hash {
    /// The `algo` attribute (REQUIRED), e.g. `sha-256`.
    pub algo: String,
    /// The base64-encoded digest, as written on the wire (whitespace trimmed).
    pub base64: String,
}

impl Hash {
    fn decode(mut el: Element) -> Result<Hash, ParseError> {
        // XEP-0300 §3: the 'algo' attribute is REQUIRED; the text is the base64 digest.
        let algo = de::req(&mut el, "hash", "algo")?;
        let text = de::text(el);
        let base64 = text.trim();
        if !base64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(ParseError::InvalidText {
                element: "hash",
                value: text,
            });
        }
        Ok(Hash {
            algo,
            base64: base64.to_owned(),
        })
    }

    fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("hash", ns::HASHES);
        w.attr("algo", &self.algo);
        w.text(&self.base64);
        w.end();
    }

    fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "algorithm", &self.algo);
        let mut v = Obj::new();
        json::put_str(&mut v, "$base64", &self.base64);
        o.insert("value".into(), Value::Object(v));
        json::put_str(&mut o, "version", "2");
        Value::Object(o)
    }

    fn from_json(v: &Value) -> Result<Hash, JsonError> {
        let o = json::as_obj(v, "file", "hashes")?;
        let algo = json::req_str(o, "hash", "algorithm")?.to_owned();
        let value = o.get("value").ok_or(JsonError::MissingField {
            object: "hash",
            field: "value",
        })?;
        let b64 = match value {
            Value::String(s) => s.as_str(),
            Value::Object(vo) => json::req_str(vo, "hash", "$base64")?,
            other => return Err(json::invalid("hash", "value", other)),
        };
        if !b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(json::invalid("hash", "value", value));
        }
        Ok(Hash {
            algo,
            base64: b64.to_owned(),
        })
    }
}

/// XEP-0234 §4 `<range/>`: part of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// Start offset in bytes (default 0).
    pub offset: u64,
    /// Length in bytes (absent = to the end).
    pub length: Option<u64>,
    /// Hashes of the range.
    pub hashes: Vec<Hash>,
}

/// XEP-0234 §4 `<file/>`: the metadata of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct File {
    /// Last modification time (XEP-0082 DateTime), kept as written.
    pub date: Option<String>,
    /// The media type.
    pub media_type: Option<String>,
    /// The file name.
    pub name: Option<String>,
    /// A description.
    pub desc: Option<String>,
    /// The size in bytes.
    pub size: Option<u64>,
    /// The requested or offered range.
    pub range: Option<Range>,
    /// Hashes of the whole file.
    pub hashes: Vec<Hash>,
    /// `<hash-used/>`: algorithms whose result will follow in a checksum (XEP-0300 §4).
    pub hashes_used: Vec<String>,
    /// Other children (e.g. XEP-0264 thumbnails), kept as they came.
    pub extensions: Vec<Element>,
}

impl File {
    pub(crate) fn decode(mut el: Element) -> Result<File, ParseError> {
        if el.name != "file" || el.namespace != ns::FILE_TRANSFER {
            return Err(unexpected("file", el));
        }
        let mut f = File::default();
        for mut child in de::child_elements(&mut el) {
            match (&*child.namespace, &*child.name) {
                (ns::FILE_TRANSFER, "date") => {
                    de::once(&mut f.date, de::text(child), "file", "date")?
                }
                (ns::FILE_TRANSFER, "media-type") => {
                    de::once(&mut f.media_type, de::text(child), "file", "media-type")?;
                }
                (ns::FILE_TRANSFER, "name") => {
                    de::once(&mut f.name, de::text(child), "file", "name")?
                }
                (ns::FILE_TRANSFER, "desc") => {
                    de::once(&mut f.desc, de::text(child), "file", "desc")?
                }
                (ns::FILE_TRANSFER, "size") => {
                    let size = de::text_num(child, "size")?;
                    de::once(&mut f.size, size, "file", "size")?;
                }
                (ns::FILE_TRANSFER, "range") => {
                    // XEP-0234 §4: 'offset' defaults to 0, 'length' to the rest of the file.
                    let offset = de::num(&mut child, "range", "offset")?.unwrap_or(0);
                    let length = de::num(&mut child, "range", "length")?;
                    let mut hashes = Vec::new();
                    for h in de::child_elements(&mut child) {
                        if h.is("hash", ns::HASHES) {
                            hashes.push(Hash::decode(h)?);
                        }
                    }
                    de::once(
                        &mut f.range,
                        Range {
                            offset,
                            length,
                            hashes,
                        },
                        "file",
                        "range",
                    )?;
                }
                (ns::HASHES, "hash") => f.hashes.push(Hash::decode(child)?),
                (ns::HASHES, "hash-used") => {
                    f.hashes_used
                        .push(de::req(&mut child, "hash-used", "algo")?)
                }
                _ => f.extensions.push(child),
            }
        }
        Ok(f)
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("file", ns::FILE_TRANSFER);
        w.text_element("date", self.date.as_deref());
        w.text_element("media-type", self.media_type.as_deref());
        w.text_element("name", self.name.as_deref());
        w.text_element("desc", self.desc.as_deref());
        if let Some(size) = self.size {
            w.start("size", ns::FILE_TRANSFER);
            w.text(&size.to_string());
            w.end();
        }
        if let Some(r) = &self.range {
            w.start("range", ns::FILE_TRANSFER);
            w.attr_num("offset", Some(r.offset).filter(|&o| o != 0));
            w.attr_num("length", r.length);
            for h in &r.hashes {
                h.write(w);
            }
            w.end();
        }
        for h in &self.hashes {
            h.write(w);
        }
        for algo in &self.hashes_used {
            w.start("hash-used", ns::HASHES);
            w.attr("algo", algo);
            w.end();
        }
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_opt_str(&mut o, "date", self.date.as_deref());
        json::put_opt_str(&mut o, "description", self.desc.as_deref());
        json::put_opt_str(&mut o, "mediaType", self.media_type.as_deref());
        json::put_opt_str(&mut o, "name", self.name.as_deref());
        json::put_opt_num(&mut o, "size", self.size);
        if let Some(r) = &self.range {
            let mut ro = Obj::new();
            ro.insert("offset".into(), Value::from(r.offset));
            json::put_opt_num(&mut ro, "length", r.length);
            if !r.hashes.is_empty() {
                ro.insert(
                    "hashes".into(),
                    Value::Array(r.hashes.iter().map(Hash::to_json).collect()),
                );
            }
            o.insert("range".into(), Value::Object(ro));
        }
        if !self.hashes.is_empty() {
            o.insert(
                "hashes".into(),
                Value::Array(self.hashes.iter().map(Hash::to_json).collect()),
            );
        }
        if !self.hashes_used.is_empty() {
            let used = self
                .hashes_used
                .iter()
                .map(|a| {
                    let mut u = Obj::new();
                    json::put_str(&mut u, "algorithm", a);
                    json::put_str(&mut u, "version", "2");
                    Value::Object(u)
                })
                .collect();
            o.insert("hashesUsed".into(), Value::Array(used));
        }
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    pub(crate) fn from_json(v: &Value) -> Result<File, JsonError> {
        let o = json::as_obj(v, "application", "file")?;
        let mut f = File {
            date: json::opt_str(o, "file", "date")?.map(str::to_owned),
            media_type: json::opt_str(o, "file", "mediaType")?.map(str::to_owned),
            name: json::opt_str(o, "file", "name")?.map(str::to_owned),
            desc: json::opt_str(o, "file", "description")?.map(str::to_owned),
            size: json::opt_num(o, "file", "size")?,
            ..File::default()
        };
        if let Some(r) = o.get("range").filter(|r| !r.is_null()) {
            let ro = json::as_obj(r, "file", "range")?;
            f.range = Some(Range {
                offset: json::opt_num(ro, "range", "offset")?.unwrap_or(0),
                length: json::opt_num(ro, "range", "length")?,
                hashes: json::arr(ro, "range", "hashes")?
                    .iter()
                    .map(Hash::from_json)
                    .collect::<Result<_, _>>()?,
            });
        }
        f.hashes = json::arr(o, "file", "hashes")?
            .iter()
            .map(Hash::from_json)
            .collect::<Result<_, _>>()?;
        for u in json::arr(o, "file", "hashesUsed")? {
            let uo = json::as_obj(u, "file", "hashesUsed")?;
            f.hashes_used
                .push(json::req_str(uo, "hashUsed", "algorithm")?.to_owned());
        }
        f.extensions = json::get_extensions(o, "file")?;
        Ok(f)
    }
}

/// XEP-0234 `<description/>`: a file offer or request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTransfer {
    /// The file (XEP-0234 §4: the description contains one `<file/>`).
    pub file: File,
    /// Other children, kept as they came.
    pub extensions: Vec<Element>,
}

impl FileTransfer {
    pub(crate) fn decode(mut el: Element) -> Result<FileTransfer, ParseError> {
        let mut file = None;
        let mut extensions = Vec::new();
        for child in de::child_elements(&mut el) {
            if child.is("file", ns::FILE_TRANSFER) {
                de::once(&mut file, File::decode(child)?, "description", "file")?;
            } else {
                extensions.push(child);
            }
        }
        // XEP-0234 schema: <description/> holds exactly one <file/>.
        let file = file.ok_or(ParseError::MissingChild {
            element: "description",
            child: "file",
        })?;
        Ok(FileTransfer { file, extensions })
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start("description", ns::FILE_TRANSFER);
        self.file.write(w);
        for e in &self.extensions {
            w.element(e);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        json::put_str(&mut o, "applicationType", ns::FILE_TRANSFER);
        o.insert("file".into(), self.file.to_json());
        json::put_extensions(&mut o, &self.extensions);
        Value::Object(o)
    }

    pub(crate) fn from_json(o: &Obj) -> Result<FileTransfer, JsonError> {
        let file = o.get("file").ok_or(JsonError::MissingField {
            object: "application",
            field: "file",
        })?;
        Ok(FileTransfer {
            file: File::from_json(file)?,
            extensions: json::get_extensions(o, "application")?,
        })
    }
}

/// Which XEP-0234 informational message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileInfoKind {
    /// `<checksum/>` (XEP-0234 §8): the hash of the file, sent after the offer.
    Checksum,
    /// `<received/>` (XEP-0234 §7): the file arrived completely.
    Received,
}

/// XEP-0234 session-info payloads: `<checksum/>` and `<received/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Which message.
    pub kind: FileInfoKind,
    /// The content's creator.
    pub creator: Option<Creator>,
    /// The content's name.
    pub name: Option<String>,
    /// For a checksum: the file element carrying the hashes.
    pub file: Option<File>,
}

impl FileInfo {
    pub(crate) fn decode(mut el: Element) -> Result<FileInfo, ParseError> {
        let kind = if el.name == "checksum" {
            FileInfoKind::Checksum
        } else {
            FileInfoKind::Received
        };
        // XEP-0234 §8: the checksum SHOULD carry 'creator' and 'name' identifying the
        // content; absent ones are tolerated.
        let creator = de::token(&mut el, "checksum", "creator", Creator::from_wire)?;
        let name = el.take_attr("name");
        let mut file = None;
        for child in de::child_elements(&mut el) {
            if child.is("file", ns::FILE_TRANSFER) {
                de::once(&mut file, File::decode(child)?, "checksum", "file")?;
            }
        }
        // XEP-0234 §8: the checksum MUST contain a <file/> element.
        if kind == FileInfoKind::Checksum && file.is_none() {
            return Err(ParseError::MissingChild {
                element: "checksum",
                child: "file",
            });
        }
        Ok(FileInfo {
            kind,
            creator,
            name,
            file,
        })
    }

    pub(crate) fn write<'w>(&'w self, w: &mut Writer<'w>) {
        w.start(
            match self.kind {
                FileInfoKind::Checksum => "checksum",
                FileInfoKind::Received => "received",
            },
            ns::FILE_TRANSFER,
        );
        w.attr_opt("creator", self.creator.map(Creator::as_str));
        w.attr_opt("name", self.name.as_deref());
        if let Some(f) = &self.file {
            f.write(w);
        }
        w.end();
    }

    pub(crate) fn to_json(&self) -> Value {
        let mut o = Obj::new();
        let ty = match self.kind {
            FileInfoKind::Checksum => "checksum",
            FileInfoKind::Received => "received",
        };
        json::put_str(
            &mut o,
            "infoType",
            &format!("{{{}}}{ty}", ns::FILE_TRANSFER),
        );
        json::put_opt_str(&mut o, "creator", self.creator.map(Creator::as_str));
        json::put_opt_str(&mut o, "name", self.name.as_deref());
        if let Some(f) = &self.file {
            o.insert("file".into(), f.to_json());
        }
        Value::Object(o)
    }

    pub(crate) fn from_json(name: &str, o: &Obj) -> Result<FileInfo, JsonError> {
        let kind = match name {
            "checksum" => FileInfoKind::Checksum,
            "received" => FileInfoKind::Received,
            other => {
                return Err(json::invalid(
                    "info",
                    "infoType",
                    &Value::String(other.to_owned()),
                ));
            }
        };
        let file = match o.get("file").filter(|f| !f.is_null()) {
            Some(f) => Some(File::from_json(f)?),
            None if kind == FileInfoKind::Checksum => {
                return Err(JsonError::MissingField {
                    object: "checksum",
                    field: "file",
                });
            }
            None => None,
        };
        Ok(FileInfo {
            kind,
            creator: json::opt_token(o, "info", "creator", Creator::from_wire)?,
            name: json::opt_str(o, "info", "name")?.map(str::to_owned),
            file: if kind == FileInfoKind::Received {
                None
            } else {
                file
            },
        })
    }
}
