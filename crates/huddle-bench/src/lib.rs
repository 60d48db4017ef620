//! # huddle-bench: side-by-side benchmarks
//!
//! Each bench in `benches/` measures huddle and a peer implementation on the same input in
//! the same run: criterion's report for the record, then a summary table (huddle vs peer,
//! their ratio, throughput) computed with [`measure`], printed and written to
//! `target/huddle-bench/<bench>.md` so `cargo xtask bench` can show all tables together.
//!
//! This crate is not a default workspace member and CI never builds it: the peers it pulls
//! in (rust-rcs-core and its async stack) are for comparison only. Timings never gate tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long [`measure`] runs each case at least.
pub const MIN_MEASURE: Duration = Duration::from_secs(1);

/// Runs `batch` until at least `min` of measured time has passed and returns nanoseconds
/// per operation. `batch` does its own untimed setup, times its work and returns
/// (time spent in the measured work, operations done).
pub fn measure(min: Duration, mut batch: impl FnMut() -> (Duration, u64)) -> f64 {
    // One warm-up batch (caches, allocator, branch predictors), not counted.
    let _ = batch();
    let (mut spent, mut ops) = (Duration::ZERO, 0u64);
    while spent < min {
        let (t, n) = batch();
        spent += t;
        ops += n;
    }
    spent.as_nanos() as f64 / ops.max(1) as f64
}

/// Times `f` once.
pub fn timed(f: impl FnOnce() -> u64) -> (Duration, u64) {
    let t = Instant::now();
    let n = f();
    (t.elapsed(), n)
}

/// A summary table: a title, column names, rows of cells.
#[derive(Debug, Clone)]
pub struct Table {
    /// The bench this table belongs to (its file name in `target/huddle-bench/`).
    pub bench: String,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (goals, notes).
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table for `bench` with these columns.
    pub fn new(bench: &str, columns: &[&str]) -> Self {
        Table {
            bench: bench.to_owned(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.columns.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// The table as Markdown.
    pub fn render(&self) -> String {
        let n = self.columns.len();
        let mut w: Vec<usize> = self.columns.iter().map(String::len).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.len());
            }
        }
        let mut s = String::new();
        let line = |s: &mut String, cells: &[String]| {
            s.push('|');
            for (i, c) in cells.iter().enumerate() {
                if i == 0 {
                    let _ = write!(s, " {c:<width$} |", width = w[i]);
                } else {
                    let _ = write!(s, " {c:>width$} |", width = w[i]);
                }
            }
            s.push('\n');
        };
        line(&mut s, &self.columns);
        s.push('|');
        for (i, width) in w.iter().enumerate().take(n) {
            // Text left-aligned, numbers right-aligned.
            if i == 0 {
                let _ = write!(s, "{}|", "-".repeat(width + 2));
            } else {
                let _ = write!(s, "{}:|", "-".repeat(width + 1));
            }
        }
        s.push('\n');
        for r in &self.rows {
            line(&mut s, r);
        }
        for note in &self.notes {
            let _ = writeln!(s, "\n{note}");
        }
        s
    }

    /// Prints the table and writes it to `target/huddle-bench/<bench>.md`.
    pub fn publish(&self) {
        let text = self.render();
        println!("\n{text}");
        let dir = target_dir().join("huddle-bench");
        let path = dir.join(format!("{}.md", self.bench));
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text)) {
            eprintln!("could not write {}: {e}", path.display());
        }
    }
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `target/` of the workspace).
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Formats a number of nanoseconds with a sensible precision.
pub fn fmt_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2}")
    } else if ns < 1000.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_renders_aligned_markdown() {
        let mut t = Table::new("x", &["case", "ns"]);
        t.row(vec!["a".into(), "1.5".into()]);
        t.row(vec!["long case".into(), "12345".into()]);
        let s = t.render();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "| case      |    ns |");
        assert_eq!(lines[1], "|-----------|------:|");
        assert_eq!(lines[3], "| long case | 12345 |");
    }

    #[test]
    fn measure_counts_operations_across_batches() {
        let ns = measure(Duration::from_millis(5), || {
            (Duration::from_millis(1), 1000)
        });
        assert!((ns - 1000.0).abs() < 1e-6, "{ns}");
    }
}
