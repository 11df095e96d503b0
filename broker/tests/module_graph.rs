//! The broker's modules import one another without circles: data and calls
//! flow one way (feed → fanout → socket; client → fanout; http → client).
//!
//! The check reads `src/` as text: every module (a file, or a folder's
//! `mod.rs`) is a node, and every path it names — `crate::a::b::Item`,
//! `super::x`, or one of its own child modules — is an edge to the deepest
//! module that path reaches. Comments and the `#[cfg(test)]` block at the
//! end of a file are left out (a unit test may build the whole fan-out); a
//! nested `use` group counts toward its outer module (more edges, never
//! fewer, so a circle cannot hide). A
//! child that names its parent and a parent that uses the child count as a
//! circle too, so shared types live in a module of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `lib.rs` → `[]`, `a/mod.rs` → `[a]`,
/// `a/b.rs` → `[a, b]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without comments and without its trailing test module.
fn code_of(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paths named in `code` that start with `head::`, as segment lists.
fn paths_after(code: &str, head: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let pattern = format!("{head}::");
    let mut rest = code;
    while let Some(at) = rest.find(&pattern) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + pattern.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut segments = Vec::new();
        let mut grouped = false;
        let mut tail = rest;
        loop {
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if len == 0 {
                // `crate::{a, b::c}`: each branch of a group.
                if let Some(group) = tail.strip_prefix('{') {
                    grouped = true;
                    let close = group.find('}').unwrap_or(group.len());
                    for branch in group[..close].split(',') {
                        let branch: Vec<String> = branch
                            .trim()
                            .split("::")
                            .map(|s| s.trim().trim_start_matches('{').to_owned())
                            .filter(|s| !s.is_empty())
                            .collect();
                        let mut path = segments.clone();
                        path.extend(branch);
                        out.push(path);
                    }
                }
                break;
            }
            segments.push(tail[..len].to_owned());
            tail = &tail[len..];
            match tail.strip_prefix("::") {
                Some(next) => tail = next,
                None => break,
            }
        }
        if !segments.is_empty() && !grouped {
            out.push(segments);
        }
    }
    out
}

/// The deepest known module that `path` (from the crate root) reaches.
fn resolve(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|m| m.join("::")).collect();
                    cycle.push(next.join("::"));
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn broker_modules_import_each_other_without_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The binary (src/bin/) is a crate of its own.
    files.retain(|f| !f.starts_with(src.join("bin")));
    let codes: Vec<(Vec<String>, String)> = files
        .iter()
        .map(|f| {
            let text =
                std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (module_of(&src, f), code_of(&text))
        })
        .collect();
    let modules: BTreeSet<Vec<String>> = codes.iter().map(|(m, _)| m.clone()).collect();
    assert!(modules.len() > 20, "found only {modules:?}");

    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, code) in &codes {
        let mut targets = Vec::new();
        for path in paths_after(code, "crate") {
            targets.extend(resolve(&modules, &path));
        }
        let parent = &module[..module.len().saturating_sub(1)];
        for path in paths_after(code, "super") {
            let mut full = parent.to_vec();
            full.extend(path);
            targets.extend(resolve(&modules, &full));
        }
        // Its own child modules, named by a relative path.
        for child in modules
            .iter()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
        {
            let name = &child[module.len()];
            if !paths_after(code, name).is_empty() {
                graph
                    .entry(module.clone())
                    .or_default()
                    .insert(child.clone());
            }
        }
        let edges = graph.entry(module.clone()).or_default();
        for target in targets {
            if &target != module && !target.is_empty() {
                edges.insert(target);
            }
        }
    }
    assert!(
        graph.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the scan found almost no imports: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import circle: {}", cycle.join(" → "));
    }
}

#[test]
fn the_scan_finds_a_circle_when_there_is_one() {
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let m = |s: &str| vec![s.to_owned()];
    graph.entry(m("a")).or_default().insert(m("b"));
    graph.entry(m("b")).or_default().insert(m("c"));
    assert_eq!(find_cycle(&graph), None);
    graph.entry(m("c")).or_default().insert(m("a"));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code =
        "use crate::fanout::{hub::Hub, inbox::Item};\nlet x = crate::config::Limits::default();";
    assert_eq!(
        paths_after(code, "crate"),
        vec![
            vec!["fanout".to_owned(), "hub".to_owned(), "Hub".to_owned()],
            vec!["fanout".to_owned(), "inbox".to_owned(), "Item".to_owned()],
            vec![
                "config".to_owned(),
                "Limits".to_owned(),
                "default".to_owned()
            ],
        ]
    );
}
