//! Keeps `core/src` in layers: every `crate::` path a module names must
//! belong to its own layer or one below it (the table in [`LAYERS`], the
//! order `lib.rs` lists them in), no circle of imports among core's files
//! leaves one folder or spans more than three files, and no file is over
//! 700 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module's first path segment names its layer.
/// A module may name modules of its own layer and of the layers before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "vocabulary",
        &[
            "cache",
            "config",
            "error",
            "host",
            "ids",
            "log",
            "once",
            "signal",
            "state",
            "sync",
            "timeline",
            "uncounted",
            "values",
        ],
    ),
    ("resources", &["resources"]),
    ("object", &["object"]),
    ("task", &["task"]),
    ("actor", &["actor"]),
    ("cluster", &["cluster"]),
    ("runtime", &["runtime"]),
    ("macro glue", &["private"]),
];

const MAX_LINES: usize = 700;
const MAX_CIRCLE: usize = 3;

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&top))
}

/// Module path (without `crate`) of a source file, relative to `src`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read core/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc links name paths that are not
/// imports).
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// Every module path (as segments) named after `crate::` or `super::` in
/// `src`, a file whose own module path is `me`.
fn named_paths(src: &str, me: &[String]) -> Vec<Vec<String>> {
    let src = strip_comments(src);
    let mut out = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", me[..me.len().saturating_sub(1)].to_vec()),
    ] {
        let mut from = 0;
        while let Some(i) = src[from..].find(prefix) {
            let at = from + i;
            from = at + prefix.len();
            let before = src[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
                continue;
            }
            let rest = &src[from..];
            let heads: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                group[..end]
                    .split(',')
                    .filter_map(|item| ident_at(item.trim()))
                    .collect()
            } else {
                ident_at(rest).into_iter().collect()
            };
            for head in heads {
                if head == "self" {
                    continue;
                }
                let mut path = base.clone();
                path.push(head.to_string());
                // The next segment, if it names a module file, is read too.
                let after = &rest[head.len()..];
                if let Some(next) = after.strip_prefix("::").and_then(ident_at) {
                    path.push(next.to_string());
                }
                out.push(path);
            }
        }
    }
    out
}

struct Crate {
    /// File (relative to src) by module path.
    files: BTreeMap<Vec<String>, PathBuf>,
    edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    lines: BTreeMap<PathBuf, usize>,
    violations: Vec<String>,
}

fn read_crate(src_dir: &Path) -> Crate {
    let mut paths = Vec::new();
    rust_files(src_dir, &mut paths);
    let mut files = BTreeMap::new();
    for p in &paths {
        let rel = p.strip_prefix(src_dir).expect("under src").to_path_buf();
        files.insert(module_path(&rel), rel);
    }
    let resolve = |path: &[String]| -> Option<PathBuf> {
        (1..=path.len())
            .rev()
            .find_map(|k| files.get(&path[..k]).cloned())
    };
    let mut edges = BTreeMap::new();
    let mut lines = BTreeMap::new();
    let mut violations = Vec::new();
    for (me, rel) in &files {
        let src = fs::read_to_string(src_dir.join(rel)).expect("read source");
        lines.insert(rel.clone(), src.lines().count());
        let mine = me.first().and_then(|t| layer_of(t));
        if !me.is_empty() && mine.is_none() {
            violations.push(format!(
                "{}: module `{}` is in no layer of LAYERS",
                rel.display(),
                me[0]
            ));
        }
        let mut to = BTreeSet::new();
        for path in named_paths(&src, me) {
            let Some(target) = resolve(&path) else {
                continue;
            };
            if &target == rel {
                continue;
            }
            if let (Some(mine), Some(theirs)) = (mine, path.first().and_then(|t| layer_of(t)))
                && theirs > mine
            {
                violations.push(format!(
                    "{} ({}) names crate::{} ({}), a layer above it",
                    rel.display(),
                    LAYERS[mine].0,
                    path.join("::"),
                    LAYERS[theirs].0
                ));
            }
            to.insert(target);
        }
        edges.insert(rel.clone(), to);
    }
    violations.sort();
    violations.dedup();
    Crate {
        files,
        edges,
        lines,
        violations,
    }
}

/// Strongly connected components with more than one file.
fn circles(edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a PathBuf) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.edges[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut c = Vec::new();
                loop {
                    let w = self.stack.pop().expect("on stack");
                    self.on.remove(w);
                    c.push(w.clone());
                    if w == v {
                        break;
                    }
                }
                if c.len() > 1 {
                    c.sort();
                    self.out.push(c);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

fn core_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_module_names_a_layer_above_it() {
    let krate = read_crate(&core_src());
    assert!(krate.files.len() > 20, "read too few files");
    assert!(
        krate.violations.is_empty(),
        "imports that point up:\n  {}",
        krate.violations.join("\n  ")
    );
}

#[test]
fn import_circles_stay_inside_one_folder() {
    let krate = read_crate(&core_src());
    let mut bad = Vec::new();
    for c in circles(&krate.edges) {
        let folders: BTreeSet<_> = c
            .iter()
            .map(|p| p.parent().map(Path::to_path_buf))
            .collect();
        if c.len() > MAX_CIRCLE || folders.len() > 1 {
            bad.push(
                c.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
    }
    assert!(bad.is_empty(), "import circles:\n  {}", bad.join("\n  "));
}

#[test]
fn no_file_is_over_the_limit() {
    let krate = read_crate(&core_src());
    let long: Vec<String> = krate
        .lines
        .iter()
        .filter(|(_, n)| **n > MAX_LINES)
        .map(|(p, n)| format!("{}: {n} lines", p.display()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines:\n  {}",
        long.join("\n  ")
    );
}

/// The check itself finds what it must: an upward import, a circle, and a
/// `super::` path.
#[test]
fn the_check_sees_upward_imports_and_circles() {
    let dir = std::env::temp_dir().join(format!("ferry-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("object")).expect("mkdir");
    fs::create_dir_all(dir.join("runtime")).expect("mkdir");
    fs::write(dir.join("lib.rs"), "mod object;\nmod runtime;\n").expect("write");
    fs::write(dir.join("object/mod.rs"), "mod cell;\n").expect("write");
    fs::write(
        dir.join("object/cell.rs"),
        "// crate::runtime::Inner in a comment is not an import\nuse crate::{error::Error, runtime::Inner};\n",
    )
    .expect("write");
    fs::write(dir.join("runtime/mod.rs"), "use super::object::cell;\n").expect("write");
    let krate = read_crate(&dir);
    assert_eq!(krate.violations.len(), 1, "{:?}", krate.violations);
    assert!(krate.violations[0].contains("crate::runtime"));
    let c = circles(&krate.edges);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].len(), 2);
    let _ = fs::remove_dir_all(&dir);
}
