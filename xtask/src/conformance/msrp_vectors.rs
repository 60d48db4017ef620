//! Suite `msrp-rfc-vectors`: every `crates/huddle-msrp/tests/vectors/**/*.msrp` decodes to
//! exactly the expected parse stored beside it (`<name>.json`: one `msrp decode` line per
//! frame or error) and, when it holds only whole frames, re-encodes byte-identical.

use std::path::{Path, PathBuf};

use huddle_msrp::Limits;
use serde_json::Value;

use super::{Ctx, SuiteResult};
use crate::msrp::{Line, decode_all};

/// Where the vectors live, relative to the workspace root.
pub(crate) const VECTOR_DIR: &str = "crates/huddle-msrp/tests/vectors";

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("msrp-rfc-vectors");
    let dir = ctx.root.join(VECTOR_DIR);
    let mut files = Vec::new();
    if let Err(e) = collect(&dir, &mut files) {
        return r.could_not_run(format!("cannot read {}: {e}", dir.display()));
    }
    files.sort();
    if files.is_empty() {
        r.note(format!("no .msrp vector files under {}", dir.display()));
    }
    for f in files {
        let rel = f
            .strip_prefix(&ctx.root)
            .unwrap_or(&f)
            .display()
            .to_string();
        r.case(rel, check(&f));
    }
    r
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "msrp") {
            out.push(p);
        }
    }
    Ok(())
}

/// Checks one vector file against its expected parse.
fn check(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read: {e}"))?;
    let expected_path = path.with_extension("json");
    let expected_text = std::fs::read_to_string(&expected_path)
        .map_err(|e| format!("no expected parse {}: {e}", expected_path.display()))?;
    let expected = expected_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Value>(l).map_err(|e| format!("expected line {}: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let lines = decode_all(&bytes, Limits::default(), bytes.len());
    compare(&lines, &expected)?;
    // The same stream fed one byte at a time must give the same lines.
    let slow = decode_all(&bytes, Limits::default(), 1);
    compare(&slow, &expected).map_err(|e| format!("fed byte by byte: {e}"))?;
    // Whole frames only: encoding them again gives the file back, byte for byte.
    let whole = lines
        .iter()
        .all(|l| matches!(l, Line::Frame(c) if c.segment.is_none()));
    if whole {
        let mut out = Vec::with_capacity(bytes.len());
        for l in &lines {
            if let Line::Frame(c) = l {
                out.extend_from_slice(&c.to_bytes());
            }
        }
        if out != bytes {
            let at = out
                .iter()
                .zip(&bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(out.len().min(bytes.len()));
            return Err(format!(
                "re-encoding differs at byte {at} (encoded {} bytes, file {} bytes): {:?} vs {:?}",
                out.len(),
                bytes.len(),
                String::from_utf8_lossy(&out[at..(at + 40).min(out.len())]),
                String::from_utf8_lossy(&bytes[at..(at + 40).min(bytes.len())]),
            ));
        }
    }
    Ok(())
}

fn compare(lines: &[Line], expected: &[Value]) -> Result<(), String> {
    for (i, (l, want)) in lines.iter().zip(expected).enumerate() {
        let got = l.to_json();
        if &got != want {
            return Err(format!("line {}: got {got}, expected {want}", i + 1));
        }
    }
    if lines.len() != expected.len() {
        return Err(format!(
            "decoded {} lines, expected {}",
            lines.len(),
            expected.len()
        ));
    }
    Ok(())
}
