//! Spec-example and captured-traffic vectors (`tests/vectors/**/*.msrp`, see its README).
//!
//! For every `.msrp` file: decode it whole, one byte at a time and in seeded random splits;
//! each decoded frame's `FrameSummary` must equal the matching line of the `.json` file beside
//! it, no byte may be left over, and re-encoding the chunks must give the file back byte for
//! byte. The expected parses were written from the RFC text, not by this decoder.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use huddle_msrp::summary::FrameSummary;
use huddle_msrp::{Chunk, Decoder};
use serde_json::Value;

/// Sources that must be present: an empty or missing directory must not pass silently.
const SOURCES: [&str; 3] = ["rfc4975", "rfc4976", "kamailio"];

/// Random split plans tried per file, on top of "whole" and "one byte at a time".
const RANDOM_SPLITS: u64 = 16;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn all_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect(&vectors_dir(), &mut files);
    files.sort();
    files
}

fn with_ext(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

/// Deterministic split points (SplitMix64), so a failure reproduces from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// How the file's bytes are handed to the decoder.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Whole,
    OneByte,
    Random(u64),
}

impl Plan {
    fn pieces(self, len: usize) -> Vec<usize> {
        match self {
            Plan::Whole => vec![len],
            Plan::OneByte => vec![1; len],
            Plan::Random(seed) => {
                let mut rng = SplitMix(seed);
                let mut sizes = Vec::new();
                let mut left = len;
                while left > 0 {
                    // Mostly small pieces (they straddle every boundary), sometimes large ones.
                    let cap = if rng.next().is_multiple_of(4) {
                        512
                    } else {
                        16
                    };
                    let n = usize::try_from(rng.next() % cap).expect("small") + 1;
                    let n = n.min(left);
                    sizes.push(n);
                    left -= n;
                }
                sizes
            }
        }
    }
}

/// Feeds `data` to a fresh decoder in the pieces `plan` gives, draining chunks after each piece.
fn decode(data: &[u8], plan: Plan) -> Result<Vec<Chunk>, String> {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut chunks = Vec::new();
    let mut offset = 0;
    for size in plan.pieces(data.len()) {
        buf.extend_from_slice(&data[offset..offset + size]);
        offset += size;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(chunk)) => chunks.push(chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(format!(
                        "decode error after {offset} of {} bytes: {e} (fatal: {})",
                        data.len(),
                        e.is_fatal()
                    ));
                }
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(chunk)) => chunks.push(chunk),
            Ok(None) => break,
            Err(e) => return Err(format!("decode_eof error: {e} (fatal: {})", e.is_fatal())),
        }
    }
    if !buf.is_empty() {
        return Err(format!(
            "{} byte(s) left over after the last frame: {:?}",
            buf.len(),
            String::from_utf8_lossy(&buf)
        ));
    }
    Ok(chunks)
}

fn expected_frames(json_path: &Path) -> Result<Vec<Value>, String> {
    let text = fs::read_to_string(json_path)
        .map_err(|e| format!("cannot read {}: {e}", json_path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| format!("{} line {}: {e}", json_path.display(), i + 1))
        })
        .collect()
}

fn summaries(chunks: &[Chunk]) -> Vec<Value> {
    chunks
        .iter()
        .map(|c| serde_json::to_value(FrameSummary::of(c)).expect("FrameSummary serializes"))
        .collect()
}

/// Everything that is wrong with one vector, empty if it passes.
fn check_vector(msrp: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let data = match fs::read(msrp) {
        Ok(d) => d,
        Err(e) => return vec![format!("cannot read: {e}")],
    };
    let expected = match expected_frames(&with_ext(msrp, "json")) {
        Ok(v) => v,
        Err(e) => return vec![e],
    };
    if expected.is_empty() {
        problems.push("the .json file lists no frame".to_owned());
    }

    let whole = match decode(&data, Plan::Whole) {
        Ok(chunks) => chunks,
        Err(e) => return vec![format!("whole input: {e}")],
    };
    let got = summaries(&whole);
    if got.len() != expected.len() {
        problems.push(format!(
            "decoded {} frame(s), expected {}; decoded summaries:\n{}",
            got.len(),
            expected.len(),
            got.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        if g != e {
            problems.push(format!("frame {}:\n  expected {e}\n  actual   {g}", i + 1));
        }
    }

    // RFC 4975 §9: a frame is start line, headers, optional content-stuff and end-line, so
    // re-encoding the decoded chunks must reproduce the input exactly.
    let mut encoded = Vec::with_capacity(data.len());
    for chunk in &whole {
        encoded.extend_from_slice(&chunk.to_bytes());
    }
    if encoded != data {
        let at = encoded
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(encoded.len().min(data.len()));
        problems.push(format!(
            "re-encoding differs from the file at byte {at} (encoded {} bytes, file {} bytes):\n  encoded: {:?}\n  file:    {:?}",
            encoded.len(),
            data.len(),
            String::from_utf8_lossy(&encoded[at.min(encoded.len())..]),
            String::from_utf8_lossy(&data[at.min(data.len())..]),
        ));
    }

    // Any split of the stream decodes to the same chunks.
    let plans = [Plan::OneByte]
        .into_iter()
        .chain((0..RANDOM_SPLITS).map(|s| Plan::Random(0x5EED_0000 + s)));
    for plan in plans {
        match decode(&data, plan) {
            Ok(chunks) => {
                let split = summaries(&chunks);
                let same_bytes = chunks.len() == whole.len()
                    && chunks
                        .iter()
                        .zip(&whole)
                        .all(|(a, b)| a.to_bytes() == b.to_bytes());
                if split != got || !same_bytes {
                    problems.push(format!(
                        "{plan:?}: chunks differ from the whole-input decode; summaries:\n{}",
                        split
                            .iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join("\n")
                    ));
                }
            }
            Err(e) => problems.push(format!("{plan:?}: {e}")),
        }
    }
    problems
}

#[test]
fn every_vector_decodes_to_its_expected_parse_and_round_trips() {
    let root = vectors_dir();
    let files = all_files();
    let mut failures = String::new();

    for source in SOURCES {
        let n = files
            .iter()
            .filter(|p| {
                p.extension().is_some_and(|e| e == "msrp") && p.starts_with(root.join(source))
            })
            .count();
        if n == 0 {
            let _ = writeln!(failures, "{source}: no .msrp vector found");
        }
    }

    // Every .json and .note belongs to a .msrp file, and every .msrp has its .json.
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("msrp") => {
                if !with_ext(path, "json").is_file() {
                    let _ = writeln!(failures, "{rel}: no .json expected parse beside it");
                }
            }
            Some("json" | "note") => {
                if !with_ext(path, "msrp").is_file() {
                    let _ = writeln!(failures, "{rel}: no .msrp file beside it");
                }
            }
            _ if path.file_name().is_some_and(|n| n == "README.md") => {}
            _ => {
                let _ = writeln!(failures, "{rel}: unexpected file in tests/vectors");
            }
        }
    }

    let mut checked = 0;
    for msrp in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "msrp"))
    {
        checked += 1;
        let rel = msrp
            .strip_prefix(&root)
            .unwrap_or(msrp)
            .display()
            .to_string();
        for problem in check_vector(msrp) {
            let _ = writeln!(failures, "{rel}: {problem}");
        }
    }

    assert!(checked > 0, "no vector found under {}", root.display());
    assert!(failures.is_empty(), "MSRP vector failures:\n{failures}");
}
