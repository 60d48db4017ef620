//! `cargo xtask bench [NAME]`: the side-by-side benchmarks of the `huddle-bench` crate.
//!
//! Runs `cargo bench -p huddle-bench --bench NAME` (every bench when no name is given).
//! Each bench prints criterion's report and ends with its ratio table, which it also
//! writes to `target/huddle-bench/NAME.md`; this command prints those tables again at the
//! end so they are together.

use std::path::Path;

use anyhow::{Result, bail};

use crate::util::{cargo, run};

/// The benches: every `crates/huddle-bench/benches/*.rs`, sorted.
pub(crate) fn benches(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("crates/huddle-bench/benches");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs")
            && let Some(stem) = p.file_stem()
        {
            out.push(stem.to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// Runs one bench or all of them and prints their tables.
pub(crate) fn run_bench(root: &Path, name: Option<&str>) -> Result<()> {
    let all = benches(root)?;
    let chosen: Vec<String> = match name {
        Some(n) if all.iter().any(|a| a == n) => vec![n.to_owned()],
        Some(n) => bail!("unknown bench {n:?}; benches: {}", all.join(", ")),
        None => all,
    };
    let tables = root.join("target/huddle-bench");
    for b in &chosen {
        let _ = std::fs::remove_file(tables.join(format!("{b}.md")));
        run(cargo()
            .current_dir(root)
            .args(["bench", "-p", "huddle-bench", "--bench", b]))?;
    }
    println!();
    for b in &chosen {
        let path = tables.join(format!("{b}.md"));
        match std::fs::read_to_string(&path) {
            Ok(t) => println!("bench {b}:\n{t}"),
            Err(e) => bail!("bench {b} wrote no table at {} ({e})", path.display()),
        }
    }
    Ok(())
}
