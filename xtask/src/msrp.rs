//! `cargo xtask msrp decode FILE|-`: a debugging aid for captured MSRP byte streams.
//!
//! Prints one JSON line per decoded frame (huddle-msrp's `FrameSummary`) and one typed
//! error line (`{"error": kind, "status": code, "fatal": bool, "offset": N}`) where the
//! stream is bad; after a non-fatal error decoding goes on, after a fatal one it stops.
//! The same lines are the expected parse of the vector files (`<name>.json` beside
//! `<name>.msrp`), so what this prints is what the conformance suite compares.

use std::io::{Read, Write};

use anyhow::{Context, Result};

pub(crate) use huddle_msrp::summary::{SummaryLine as Line, kind_name, summarize as decode_all};

/// `cargo xtask msrp decode FILE|-`. Returns whether the stream decoded without error.
pub(crate) fn decode_command(path: &str) -> Result<bool> {
    let mut input: Box<dyn Read> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?)
    };
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let clean = huddle_msrp::summary::write_lines(&mut input, &mut w)
        .with_context(|| format!("decoding {path}"))?;
    w.flush()?;
    Ok(clean)
}
