//! The shape of the crate, checked on its sources (`src/`, shipped in the package):
//!
//! * **layers that only point down** — every module has a rank, and no code line of a
//!   module names (`crate::…`) a module of the same or a higher rank, other than itself;
//!   sibling files inside a module folder may not import each other in a cycle;
//! * **one run loop** — only the driver calls the observer hook `after_step` and implements
//!   `Sampler::run_observed` (besides the `Box` forwarding);
//! * **no step function with too many arguments** — the context structs carry them (the
//!   mixture kernel's register-tiled product is the one exception).
//!
//! Doc comments are skipped (they link upwards freely).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may import only modules of a lower rank.
const LAYERS: &[(&str, u32)] = &[
    ("num", 0),
    ("error", 1),
    ("check", 2),
    ("linalg", 2),
    ("schedule", 3),
    ("grid", 4),
    ("score", 5),
    ("sde", 5),
    ("observe", 5),
    ("tweedie", 6),
    ("ode", 6),
    ("dynamics", 7),
    ("gmm", 7),
    ("metrics", 8),
    ("sample", 9),
    ("likelihood", 10),
    ("train", 10),
    ("condition", 11),
    ("progress", 12),
    ("backend", 12),
    ("lib", 13),
];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let p = entry.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`src/sample/pc.rs` → `sample`).
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty").as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// Code lines (not comments) of a file.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l))
}

/// Every `crate::name` in a line.
fn crate_refs(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

fn sources() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    (src, files)
}

#[test]
fn no_module_imports_a_module_above_it() {
    let (src, files) = sources();
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for f in &files {
        let from = top_module(&src, f);
        let Some(r_from) = rank(&from) else {
            violations.push(format!("{}: module `{from}` has no layer", f.display()));
            continue;
        };
        seen_modules.insert(from.clone());
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in code_lines(&text) {
            for to in crate_refs(line) {
                if to == from {
                    continue;
                }
                match rank(&to) {
                    // Items of the crate root (`crate::Error`, `crate::Result`, the
                    // re-exports) are names, not modules: `lib` re-exports what is below.
                    None if to.chars().next().is_some_and(|c| c.is_uppercase()) => {}
                    None => violations.push(format!("{}:{n}: unknown module `{to}`", f.display())),
                    Some(r_to) if r_to >= r_from && from != "lib" => violations.push(format!(
                        "{}:{n}: `{from}` (layer {r_from}) imports `{to}` (layer {r_to})",
                        f.display()
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer violations:\n{}",
        violations.join("\n")
    );
    // Every layer named exists, so the table cannot silently go stale.
    for (m, _) in LAYERS {
        assert!(seen_modules.contains(*m), "layer `{m}` has no source file");
    }
}

#[test]
fn sibling_files_do_not_import_each_other_in_a_cycle() {
    // Inside a module folder, `super::x` from file `y` is an edge y → x; the graph of each
    // folder must be acyclic (gmm/kernel's block and tied used to import each other).
    let (src, files) = sources();
    let mut edges: BTreeMap<PathBuf, BTreeSet<(String, String)>> = BTreeMap::new();
    for f in &files {
        let Some(dir) = f.parent() else { continue };
        if dir == src.as_path() {
            continue;
        }
        let me = f.file_stem().expect("stem").to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).expect("read");
        for (_, line) in code_lines(&text) {
            let mut rest = line;
            while let Some(i) = rest.find("super::") {
                let after = &rest[i + "super::".len()..];
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                // Only lowercase names are sibling modules (items of the parent are fine).
                if name.chars().next().is_some_and(|c| c.is_lowercase())
                    && dir.join(format!("{name}.rs")).exists()
                    && name != me
                {
                    edges
                        .entry(dir.to_path_buf())
                        .or_default()
                        .insert((me.clone(), name));
                }
                rest = after;
            }
        }
    }
    for (dir, es) in &edges {
        let mut adj: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (a, b) in es {
            adj.entry(a.clone()).or_default().push(b.clone());
        }
        // Depth-first search; state 1 = on the current path, 2 = done.
        fn visit(
            n: &str,
            adj: &BTreeMap<String, Vec<String>>,
            state: &mut BTreeMap<String, u8>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            match state.get(n) {
                Some(1) => {
                    let i = path.iter().position(|p| p == n).unwrap_or(0);
                    return Some(path[i..].to_vec());
                }
                Some(2) => return None,
                _ => {}
            }
            state.insert(n.to_string(), 1);
            path.push(n.to_string());
            for m in adj.get(n).into_iter().flatten() {
                if let Some(c) = visit(m, adj, state, path) {
                    return Some(c);
                }
            }
            path.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for n in adj.keys() {
            if let Some(cycle) = visit(n, &adj, &mut state, &mut Vec::new()) {
                panic!("{}: sibling import cycle {cycle:?}", dir.display());
            }
        }
    }
}

#[test]
fn one_run_loop_and_no_long_argument_lists() {
    let (src, files) = sources();
    for f in &files {
        let rel = f
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in code_lines(&text) {
            // The mixture kernel's register-tiled matmul keeps its flat argument list (the
            // hot loop of the oracle); every step function takes context structs.
            assert!(
                !line.contains("too_many_arguments") || rel.starts_with("gmm/kernel/"),
                "{rel}:{n}: a function with too many arguments"
            );
            if line.contains("after_step(") {
                assert!(
                    rel == "observe.rs" || rel == "sample/driver.rs",
                    "{rel}:{n}: a run loop outside the driver calls after_step"
                );
            }
            if line.contains("fn run_observed(") {
                assert!(
                    rel == "sample/driver.rs" || rel == "sample/mod.rs",
                    "{rel}:{n}: a Sampler implemented outside the driver"
                );
            }
        }
    }
}
