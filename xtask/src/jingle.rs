//! Jingle commands and conformance suites:
//!
//! - `cargo xtask jingle parse FILE|-`: one `<iq/>` or bare `<jingle/>` in, the
//!   jingle.js/stanza-shaped JSON out; with `--to-xml`, that JSON in and huddle's XML out.
//!   A typed error and exit status 1 on bad input.
//! - `cargo xtask jingle extract-vectors`: writes every Jingle IQ example of the XEP texts
//!   in `shared/specs/` to `crates/huddle-jingle/tests/vectors/xep-NNNN/EEE-slug.xml`, with
//!   the expected parse beside it (`.json`).
//! - conformance suites `jingle-xep-vectors` and `jingle-stanza-vectors`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use huddle_jingle::Codec;
use serde_json::Value;

use crate::conformance::{Ctx, SuiteResult};

/// Where the extracted XEP vectors live, relative to the workspace root.
pub(crate) const XEP_VECTOR_DIR: &str = "crates/huddle-jingle/tests/vectors";

/// The XEPs whose examples are extracted.
const XEPS: &[&str] = &["0166", "0167", "0176", "0234", "0260", "0261", "0353"];

fn read_input(file: &str) -> Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("reading {file}"))
    }
}

/// `cargo xtask jingle parse`. Returns `false` (exit 1) when the input is bad.
pub(crate) fn parse_command(file: &str, to_xml: bool) -> Result<bool> {
    let input = read_input(file)?;
    let codec = Codec::new();
    if to_xml {
        let value: Value = match serde_json::from_slice(&input) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: JsonError::Syntax: {e}");
                return Ok(false);
            }
        };
        match codec.from_json(&value) {
            Ok(doc) => println!("{}", doc.to_xml()),
            Err(e) => {
                eprintln!("error: {e:?}\n  {e}");
                return Ok(false);
            }
        }
    } else {
        match codec.parse(&input) {
            Ok(doc) => println!("{}", serde_json::to_string_pretty(&doc.to_json())?),
            Err(e) => {
                eprintln!("error: {e:?}\n  {e}");
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// One example of a XEP text.
#[derive(Debug)]
pub(crate) struct Example {
    /// The XEP number, e.g. "0166".
    pub(crate) xep: &'static str,
    /// 1-based position among the XEP's `<example/>`s.
    pub(crate) number: usize,
    /// The caption.
    pub(crate) caption: String,
    /// The example text (CDATA content, trimmed).
    pub(crate) text: String,
}

impl Example {
    /// `xep-0166/017-responder-accepts-the-session`.
    pub(crate) fn stem(&self) -> String {
        let mut slug = String::new();
        for c in self.caption.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_matches('-');
        let slug: String = slug.chars().take(60).collect();
        format!(
            "xep-{}/{:03}-{}",
            self.xep,
            self.number,
            slug.trim_end_matches('-')
        )
    }

    /// Whether the example is one Jingle IQ: an `<iq/>` carrying `<jingle/>`, or the
    /// result/error of one (no payload of another protocol).
    pub(crate) fn is_jingle_iq(&self) -> bool {
        let t = &self.text;
        if !t.starts_with("<iq") || t.matches("<iq").count() != 1 {
            return false;
        }
        if t.contains("<jingle ") || t.contains("<jingle\n") {
            return true;
        }
        // Acknowledgements and errors of Jingle requests carry no foreign payload.
        let foreign = t.split("xmlns=").skip(1).any(|rest| {
            let ns = rest.trim_start_matches(['\'', '"']);
            !(ns.starts_with("urn:ietf:params:xml:ns:xmpp-stanzas")
                || ns.starts_with("urn:xmpp:jingle:"))
        });
        !foreign && (t.contains("type='result'") || t.contains("type='error'"))
    }
}

/// Every example of the XEP texts in `specs`.
pub(crate) fn examples(specs: &Path) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for xep in XEPS {
        let path = specs.join(format!("xep-{xep}.xml"));
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut rest = text.as_str();
        let mut number = 0;
        while let Some(i) = rest.find("<example") {
            rest = &rest[i + "<example".len()..];
            number += 1;
            let head_end = rest.find('>').unwrap_or(rest.len());
            let head = &rest[..head_end];
            let caption = head
                .split_once("caption=")
                .map(|(_, c)| {
                    let q = c.chars().next().unwrap_or('"');
                    c[1..].split(q).next().unwrap_or("").to_owned()
                })
                .unwrap_or_default();
            let end = rest.find("</example>").unwrap_or(rest.len());
            let body = &rest[head_end..end];
            let code = match (body.find("<![CDATA["), body.rfind("]]>")) {
                (Some(s), Some(e)) if s < e => &body[s + "<![CDATA[".len()..e],
                _ => continue,
            };
            out.push(Example {
                xep,
                number,
                caption,
                text: code.trim().to_owned(),
            });
        }
    }
    Ok(out)
}

/// `cargo xtask jingle extract-vectors`.
pub(crate) fn extract_vectors(root: &Path) -> Result<()> {
    let specs = crate::util::shared_dir(root).join("specs");
    let codec = Codec::new();
    let mut written = 0;
    for ex in examples(&specs)?.into_iter().filter(Example::is_jingle_iq) {
        let stem = root.join(XEP_VECTOR_DIR).join(ex.stem());
        std::fs::create_dir_all(stem.parent().unwrap())?;
        std::fs::write(stem.with_extension("xml"), format!("{}\n", ex.text))?;
        let expected = match codec.parse(ex.text.as_bytes()) {
            Ok(doc) => doc.to_json(),
            Err(e) => serde_json::json!({ "error": format!("{e:?}") }),
        };
        std::fs::write(
            stem.with_extension("json"),
            format!("{}\n", serde_json::to_string_pretty(&expected)?),
        )?;
        written += 1;
        println!("{}", ex.stem());
    }
    println!("wrote {written} vectors under {XEP_VECTOR_DIR}");
    Ok(())
}

/// Checks one XEP vector: the parse equals the expected one (an `{"error": ...}` object
/// for an example the XEP itself gets wrong), and a successful parse round-trips:
/// serialize → parse gives the same value, and serializing that gives the same bytes.
pub(crate) fn check_vector(xml: &[u8], expected: &Value) -> Result<(), String> {
    let codec = Codec::new();
    let doc = match codec.parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            let got = serde_json::json!({ "error": format!("{e:?}") });
            return if &got == expected {
                Ok(())
            } else {
                Err(format!("parse failed: {e}"))
            };
        }
    };
    if &doc.to_json() != expected {
        return Err(format!(
            "parse differs from the expected one: {}",
            doc.to_json()
        ));
    }
    let out = doc.to_xml();
    let again = codec
        .parse(out.as_bytes())
        .map_err(|e| format!("re-parse of {out}: {e}"))?;
    if again != doc {
        return Err(format!("re-parse of {out} differs"));
    }
    if again.to_xml() != out {
        return Err("serialization is not stable".into());
    }
    let back = codec
        .from_json(&doc.to_json())
        .map_err(|e| format!("JSON read-back: {e}"))?;
    if back != doc {
        return Err("JSON read-back differs".into());
    }
    Ok(())
}

fn vector_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir()
            && p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("xep-"))
        {
            for f in std::fs::read_dir(&p)? {
                let f = f?.path();
                if f.extension().is_some_and(|x| x == "xml") {
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Suite `jingle-xep-vectors`: every Jingle IQ example of the XEP texts in
/// `shared/specs` has a vector file with the same text, and every vector parses to its
/// expected value and round-trips.
pub(crate) fn xep_vectors_suite(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("jingle-xep-vectors");
    let dir = ctx.root.join(XEP_VECTOR_DIR);
    let files = match vector_files(&dir) {
        Ok(f) => f,
        Err(e) => return r.could_not_run(format!("cannot read {}: {e}", dir.display())),
    };
    match examples(&ctx.shared.join("specs")) {
        Ok(exs) => {
            for ex in exs.iter().filter(|e| e.is_jingle_iq()) {
                let path = dir.join(ex.stem()).with_extension("xml");
                let outcome = match std::fs::read_to_string(&path) {
                    Ok(t) if t.trim() == ex.text => Ok(()),
                    Ok(_) => Err("vector file differs from the XEP text; run `cargo xtask jingle extract-vectors`".into()),
                    Err(e) => Err(format!("no vector file: {e}")),
                };
                r.case(format!("{} is extracted", ex.stem()), outcome);
            }
        }
        Err(e) => r.note(format!(
            "XEP texts not available, extraction not re-checked: {e:#}"
        )),
    }
    for f in files {
        let rel = f
            .strip_prefix(&ctx.root)
            .unwrap_or(&f)
            .display()
            .to_string();
        let outcome = (|| {
            let xml = std::fs::read(&f).map_err(|e| e.to_string())?;
            let exp = std::fs::read_to_string(f.with_extension("json"))
                .map_err(|e| format!("no expected parse: {e}"))?;
            let exp: Value = serde_json::from_str(&exp).map_err(|e| e.to_string())?;
            check_vector(&xml, &exp)
        })();
        r.case(rel, outcome);
    }
    r
}

/// Suite `jingle-stanza-vectors`: stanza@12's own JSON and XML for the same IQs
/// (`shared/conformance/jingle/stanza-vectors`): huddle's XML → JSON equals stanza's
/// `.parsed.json`, and its JSON → XML parses back to the same value.
pub(crate) fn stanza_vectors_suite(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("jingle-stanza-vectors");
    let dir = ctx.shared.join("conformance/jingle/stanza-vectors");
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .into_string()
                    .ok()?
                    .strip_suffix(".input.json")
                    .map(str::to_owned)
            })
            .collect(),
        Err(e) => return r.could_not_run(format!("cannot read {}: {e}", dir.display())),
    };
    names.sort();
    let codec = Codec::new();
    let read = |n: &str, ext: &str| {
        std::fs::read(dir.join(format!("{n}.{ext}"))).map_err(|e| e.to_string())
    };
    let json = |n: &str, ext: &str| -> Result<Value, String> {
        serde_json::from_slice(&read(n, ext)?).map_err(|e| e.to_string())
    };
    for n in &names {
        for ext in ["xml", "reexport.xml"] {
            let outcome = (|| {
                let doc = codec.parse(&read(n, ext)?).map_err(|e| e.to_string())?;
                let want = json(n, "parsed.json")?;
                if doc.to_json() == want {
                    Ok(())
                } else {
                    Err(format!("JSON differs: {}", doc.to_json()))
                }
            })();
            r.case(format!("{n}.{ext} → JSON = stanza's parse"), outcome);
        }
        for ext in ["input.json", "parsed.json"] {
            let outcome = (|| {
                let reference = codec.parse(&read(n, "xml")?).map_err(|e| e.to_string())?;
                let doc = codec.from_json(&json(n, ext)?).map_err(|e| e.to_string())?;
                if doc != reference {
                    return Err("reads as a different value than the .xml".into());
                }
                let xml = doc.to_xml();
                let back = codec
                    .parse(xml.as_bytes())
                    .map_err(|e| format!("{e}: {xml}"))?;
                if back == doc {
                    Ok(())
                } else {
                    Err(format!("XML does not parse back: {xml}"))
                }
            })();
            r.case(format!("{n}.{ext} → XML → same value"), outcome);
        }
    }
    r
}
