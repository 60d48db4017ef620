//! The layering rule, checked against `cargo metadata`.
//!
//! huddle is built bottom-up: the wire codecs know nothing of the layers above them,
//! and no async runtime reaches them. The rule is a table ([`LAYERS`], [`WIRE_FORBIDDEN`]):
//! a crate may depend (normal dependencies, transitively) only on huddle crates of its own
//! layer or lower, and a crate of the wire layer on none of the runtime crates. A new
//! `huddle*` crate that is not in the table is itself a violation, so every crate gets a
//! place in the order when it appears.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// huddle's layers, bottom-up: (package, layer). Higher numbers sit above lower ones.
pub(crate) const LAYERS: &[(&str, u8)] = &[
    ("huddle-msrp", 0),
    ("huddle-jingle", 0),
    ("huddle-transport", 1),
    ("huddle-session", 2),
    ("huddle-room-metrics", 3),
    ("huddle", 4),
];

/// The layer whose crates are wire codecs (sans-IO, no runtime).
pub(crate) const WIRE_LAYER: u8 = 0;

/// Packages that must never reach a wire crate, even transitively: async runtimes and
/// their I/O drivers.
pub(crate) const WIRE_FORBIDDEN: &[&str] = &["tokio", "tokio-util", "mio", "async-std", "smol"];

/// Workspace packages that are tooling, not layers (they may depend on anything).
pub(crate) const TOOLING: &[&str] = &["xtask", "huddle-bench", "huddle-fuzz"];

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The workspace package that breaks the rule.
    pub(crate) package: String,
    /// What is wrong, with the dependency chain that shows it.
    pub(crate) message: String,
}

/// The normal-dependency graph of a resolved workspace: package name -> (dependency name ->
/// package id), plus which packages are workspace members.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// package id -> package name.
    names: BTreeMap<String, String>,
    /// package id -> ids of its normal dependencies.
    deps: BTreeMap<String, Vec<String>>,
    /// ids of workspace members.
    members: Vec<String>,
}

impl Graph {
    /// Reads the graph from `cargo metadata --format-version 1` JSON.
    pub(crate) fn from_metadata(meta: &Value) -> Result<Self> {
        let mut g = Graph::default();
        for p in meta["packages"].as_array().context("metadata: packages")? {
            let id = p["id"].as_str().context("metadata: package id")?;
            let name = p["name"].as_str().context("metadata: package name")?;
            g.names.insert(id.to_owned(), name.to_owned());
        }
        for m in meta["workspace_members"]
            .as_array()
            .context("metadata: workspace_members")?
        {
            g.members
                .push(m.as_str().context("metadata: member id")?.to_owned());
        }
        for node in meta["resolve"]["nodes"]
            .as_array()
            .context("metadata: resolve.nodes")?
        {
            let id = node["id"].as_str().context("metadata: node id")?;
            let mut out = Vec::new();
            for d in node["deps"].as_array().context("metadata: node deps")? {
                // `kind: null` is a normal dependency; "dev" and "build" do not ship in the
                // crate. Any target counts: a platform-specific tokio is still tokio.
                let normal = d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()));
                if normal {
                    out.push(d["pkg"].as_str().context("metadata: dep pkg")?.to_owned());
                }
            }
            g.deps.insert(id.to_owned(), out);
        }
        Ok(g)
    }

    /// Builds a graph by hand: `edges` are (from, to) package names, every package is a
    /// member when its name starts with `huddle` or is `xtask`.
    #[cfg(test)]
    fn from_edges(edges: &[(&str, &str)]) -> Self {
        let mut g = Graph::default();
        for (a, b) in edges {
            for n in [a, b] {
                if !g.names.contains_key(*n) {
                    g.names.insert((*n).to_owned(), (*n).to_owned());
                    g.deps.insert((*n).to_owned(), Vec::new());
                    if n.starts_with("huddle") || *n == "xtask" {
                        g.members.push((*n).to_owned());
                    }
                }
            }
            g.deps
                .get_mut(*a)
                .expect("inserted above")
                .push((*b).to_owned());
        }
        g
    }

    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }

    /// Every package reachable from `id` through normal dependencies, with the chain of
    /// names that reaches it first (breadth-first, so the chain is a shortest one).
    fn reachable(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::new();
        queue.push_back((id.to_owned(), vec![self.name(id).to_owned()]));
        let mut visited = BTreeSet::new();
        visited.insert(id.to_owned());
        while let Some((cur, chain)) = queue.pop_front() {
            for dep in self.deps.get(&cur).into_iter().flatten() {
                if visited.insert(dep.clone()) {
                    let mut c = chain.clone();
                    c.push(self.name(dep).to_owned());
                    seen.insert(dep.clone(), c.clone());
                    queue.push_back((dep.clone(), c));
                }
            }
        }
        seen
    }
}

fn layer_of(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// Checks every workspace member against the layer table.
pub(crate) fn check(g: &Graph) -> Vec<Violation> {
    let mut out = Vec::new();
    for id in &g.members {
        let name = g.name(id);
        if TOOLING.contains(&name) {
            continue;
        }
        let Some(layer) = layer_of(name) else {
            if name.starts_with("huddle") {
                out.push(Violation {
                    package: name.to_owned(),
                    message: format!(
                        "`{name}` has no place in the layer table: add it to LAYERS (or TOOLING) \
                         in xtask/src/layering.rs"
                    ),
                });
            }
            continue;
        };
        for (_dep, chain) in g.reachable(id) {
            let dep_name = chain.last().expect("chain has the dependency").as_str();
            if let Some(dep_layer) = layer_of(dep_name)
                && dep_layer > layer
            {
                out.push(Violation {
                    package: name.to_owned(),
                    message: format!(
                        "`{name}` (layer {layer}) depends on the higher layer `{dep_name}` \
                         (layer {dep_layer}): {}",
                        chain.join(" -> ")
                    ),
                });
            }
            if layer == WIRE_LAYER && WIRE_FORBIDDEN.contains(&dep_name) {
                out.push(Violation {
                    package: name.to_owned(),
                    message: format!(
                        "wire crate `{name}` must stay runtime-free but reaches `{dep_name}`: {}",
                        chain.join(" -> ")
                    ),
                });
            }
        }
    }
    out
}

/// Runs `cargo metadata` on the workspace at `root` and reads its graph.
pub(crate) fn load(root: &Path) -> Result<Graph> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1"])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    Graph::from_metadata(&meta)
}

/// `cargo xtask ci`'s layering step: prints each violation, fails if there is one.
pub(crate) fn run(root: &Path) -> Result<()> {
    let g = load(root)?;
    let violations = check(&g);
    let checked = g
        .members
        .iter()
        .map(|id| g.name(id))
        .filter(|n| layer_of(n).is_some())
        .collect::<Vec<_>>();
    for v in &violations {
        eprintln!("layering: {}", v.message);
    }
    if !violations.is_empty() {
        bail!("{} layering violation(s)", violations.len());
    }
    println!("layering: ok ({})", checked.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real workspace keeps its layers: read from `cargo metadata`.
    #[test]
    fn workspace_respects_layers() {
        let g = load(&crate::workspace_root()).expect("cargo metadata");
        let violations = check(&g);
        assert!(
            violations.is_empty(),
            "layering violations:\n{violations:#?}"
        );
        // The check saw the wire codec, so it is not vacuous.
        assert!(g.members.iter().any(|id| g.name(id) == "huddle-msrp"));
    }

    #[test]
    fn tokio_reaching_a_wire_crate_transitively_is_caught() {
        let g = Graph::from_edges(&[
            ("huddle-msrp", "bytes"),
            ("bytes", "tokio-util"),
            ("tokio-util", "tokio"),
        ]);
        let v = check(&g);
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v.iter().all(|v| v.package == "huddle-msrp"));
        assert!(
            v.iter().any(|v| v
                .message
                .contains("huddle-msrp -> bytes -> tokio-util -> tokio")),
            "{v:#?}"
        );
    }

    #[test]
    fn a_lower_layer_depending_on_a_higher_one_is_caught() {
        let g = Graph::from_edges(&[
            ("huddle-session", "huddle-transport"),
            ("huddle-transport", "huddle-msrp"),
            ("huddle-jingle", "helper"),
            ("helper", "huddle-session"),
        ]);
        let v = check(&g);
        // huddle-session, and huddle-transport through it.
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v.iter().all(|v| v.package == "huddle-jingle"));
        assert!(
            v[0].message
                .contains("huddle-jingle -> helper -> huddle-session"),
            "{v:#?}"
        );
    }

    #[test]
    fn higher_layers_may_use_lower_ones_and_tokio() {
        let g = Graph::from_edges(&[
            ("huddle", "huddle-room-metrics"),
            ("huddle-room-metrics", "huddle-session"),
            ("huddle-session", "huddle-transport"),
            ("huddle-transport", "huddle-msrp"),
            ("huddle-transport", "huddle-jingle"),
            ("huddle-transport", "tokio"),
            ("xtask", "huddle"),
            ("huddle-bench", "tokio"),
        ]);
        assert_eq!(check(&g), Vec::new());
    }

    #[test]
    fn an_unplaced_huddle_crate_is_a_violation() {
        let g = Graph::from_edges(&[("huddle-newthing", "bytes")]);
        let v = check(&g);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("layer table"));
    }
}
