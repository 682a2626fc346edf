//! `cargo xtask surface [--no-doc] [--src DIR]`: the size of kiln's public API and its module import cycles.
//!
//! - Public items: `cargo doc -p kiln --no-deps --all-features`, then the entries of
//!   `target/doc/kiln/all.html` (structs, enums, traits, functions, constants, ... that rustdoc
//!   shows; `#[doc(hidden)]` and private items are not there).
//! - Cycles: the graph "file uses module" of `core/src`, from the file-level `use` lines and the
//!   `crate::`/`super::` paths written in code (comments, strings and `#[cfg(test)] mod tests`
//!   skipped), re-exports followed to the module that defines the item. A module and its own
//!   submodules count as one unit. Every strongly connected component of two or more modules
//!   is one cycle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::util::{cargo, root, run as sh};

pub fn run(args: &[String]) -> Result<(), String> {
    if !args.iter().any(|a| a == "--no-doc") {
        sh(cargo(&["doc", "-p", "kiln", "--no-deps", "--all-features"]))?;
        let all = root().join("target/doc/kiln/all.html");
        let html = std::fs::read_to_string(&all)
            .map_err(|e| format!("cannot read {}: {e}", all.display()))?;
        println!(
            "public items (rustdoc all.html, --all-features): {}",
            public_items(&html)
        );
    }
    // `--src DIR`: another copy of the sources (e.g. an older revision from `git archive`).
    let src = match args.iter().position(|a| a == "--src") {
        Some(i) => args
            .get(i + 1)
            .map(Into::into)
            .ok_or("--src needs a directory")?,
        None => root().join("core/src"),
    };
    let cycles = cycles(&src)?;
    for c in &cycles {
        println!("cycle: {}", c.join(" "));
    }
    println!("import cycles: {}", cycles.len());
    Ok(())
}

/// Entries of rustdoc's "all items" page.
fn public_items(html: &str) -> usize {
    // Section links of the page itself (`href="#structs"`) are not items.
    html.matches("<li><a href=\"").count() - html.matches("<li><a href=\"#").count()
}

type Module = Vec<String>;

struct ModInfo {
    /// Paths named by `use` lines and in code, as written.
    paths: Vec<String>,
    /// Last segment of a `pub use` path -> the path.
    reexports: BTreeMap<String, String>,
}

/// The import cycles of the crate whose sources are in `src`, each as sorted module names.
fn cycles(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let mut files = Vec::new();
    walk(src, &mut files)?;
    let mut mods: BTreeMap<Module, ModInfo> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut m: Module = rel
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let name = m.last().cloned().unwrap_or_default();
        let is_mod_file = name == "mod" || (m.len() == 1 && name == "lib");
        if is_mod_file {
            m.pop();
        }
        if name == "tests" {
            continue;
        }
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        let code = strip(&text);
        let (paths, reexports) = scan(&code);
        mods.insert(m, ModInfo { paths, reexports });
    }
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, info) in &mods {
        let out = edges.entry(m.clone()).or_default();
        for p in &info.paths {
            let Some(abs) = absolute(&mods, m, p) else {
                continue;
            };
            let Some(t) = resolve(&mods, abs, 0) else {
                continue;
            };
            let k = t.len().min(m.len());
            if t[..k] != m[..k] {
                out.insert(t);
            }
        }
    }
    Ok(sccs(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
            names.sort();
            names
        })
        .collect())
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<(), String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The code of a file without comments, string contents and its inline test module.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    if let Some(at) = out.find("#[cfg(test)]\nmod tests {") {
        out.truncate(at);
    }
    out
}

/// The `use` paths of file-level `use` lines (expanded) and the `crate::`/`super::` paths in code.
fn scan(code: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let mut paths = Vec::new();
    let mut reexports = BTreeMap::new();
    let mut rest = String::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let (public, tree) = if let Some(t) = line.strip_prefix("use ") {
            (false, t)
        } else if let Some(t) = line.strip_prefix("pub use ") {
            (true, t)
        } else if line.starts_with("pub(") && line.contains(") use ") {
            (false, line.split_once(") use ").unwrap().1)
        } else {
            let t = line.trim_start();
            if t.starts_with("use ")
                || t.starts_with("pub use ")
                || t.starts_with("pub(") && t.contains(") use ")
            {
                // A nested module's own imports (its `super` is this file): skip to the `;`.
                let mut l = line;
                while !l.contains(';') {
                    match lines.next() {
                        Some(n) => l = n,
                        None => break,
                    }
                }
            } else {
                rest.push_str(line);
                rest.push('\n');
            }
            continue;
        };
        let mut stmt = tree.to_string();
        while !stmt.contains(';') {
            match lines.next() {
                Some(l) => stmt.push_str(l),
                None => break,
            }
        }
        let stmt = stmt.split(';').next().unwrap_or("");
        for p in expand(stmt) {
            if public {
                if let Some(last) = p.rsplit("::").next() {
                    reexports.insert(last.to_string(), p.clone());
                }
            }
            paths.push(p);
        }
    }
    // `crate::a::b` / `super::a` written in code.
    let b = rest.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = rest[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if at > 0
                && (b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_' || b[at - 1] == b':')
            {
                continue;
            }
            let end = rest[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(rest.len(), |e| at + e);
            paths.push(rest[at..end].trim_end_matches(':').to_string());
        }
    }
    (paths, reexports)
}

/// `a::{b, c::{d, e as f}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let t = tree.split(" as ").next().unwrap_or(tree);
        return vec![t.split_whitespace().collect()];
    };
    let prefix: String = tree[..open].split_whitespace().collect();
    let close = tree.rfind('}').unwrap_or(tree.len());
    let body = &tree[open + 1..close];
    let (mut parts, mut depth, mut cur) = (Vec::new(), 0, String::new());
    for ch in body.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if ch == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.trim().is_empty()) {
        for e in expand(p) {
            out.push(if e == "self" {
                prefix.trim_end_matches(':').to_string()
            } else {
                format!("{prefix}{e}")
            });
        }
    }
    out
}

/// `p` as written in module `m`, as segments from the crate root (`None`: another crate).
fn absolute(mods: &BTreeMap<Module, ModInfo>, m: &Module, p: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = p.split("::").map(str::to_string).collect();
    match segs[0].as_str() {
        "crate" => Some(segs[1..].to_vec()),
        "self" | "super" => {
            let mut cur = m.clone();
            let mut i = 0;
            while i < segs.len() && (segs[i] == "self" || segs[i] == "super") {
                if segs[i] == "super" {
                    cur.pop();
                }
                i += 1;
            }
            cur.extend_from_slice(&segs[i..]);
            Some(cur)
        }
        first => {
            let mut child = m.clone();
            child.push(first.to_string());
            mods.contains_key(&child).then(|| {
                let mut v = m.clone();
                v.extend_from_slice(&segs);
                v
            })
        }
    }
}

/// The module defining the item at `segs`, following `pub use` re-exports.
fn resolve(mods: &BTreeMap<Module, ModInfo>, segs: Vec<String>, depth: u32) -> Option<Module> {
    for k in (0..=segs.len()).rev() {
        let m: Module = segs[..k].to_vec();
        let Some(info) = mods.get(&m) else { continue };
        if k < segs.len() && depth < 5 {
            if let Some(r) = info.reexports.get(&segs[k]) {
                if let Some(mut a) = absolute(mods, &m, r) {
                    a.extend_from_slice(&segs[k + 1..]);
                    return resolve(mods, a, depth + 1);
                }
            }
        }
        return Some(m);
    }
    None
}

/// Strongly connected components (Tarjan).
fn sccs(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                c.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(c);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
