//! The controller's modules import each other in one direction only: no module reaches
//! itself through `crate::` and `super::` paths. A circle is where a reader can no longer
//! tell which part is built on which, so the build says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (`binding::inputs`, `policy`) and the modules its non-test code names.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source folder reads").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut raw = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src").with_extension("");
        let is_mod = relative.file_name().is_some_and(|n| n == "mod");
        let parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).filter(|p| p != "mod").collect();
        let module = parts.join("::");
        // The crate root, and the unit-test helpers, which only test code uses.
        if ["lib", "test_context", "fake_compute"].contains(&module.as_str()) || module.ends_with("::tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap_or_default();
        let parent = if is_mod { parts.clone() } else { parts[..parts.len() - 1].to_vec() };
        let parent_of_self = if is_mod { parts[..parts.len().saturating_sub(1)].to_vec() } else { parent.clone() };
        let mut named = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (prefix, base) in [("crate::", Vec::new()), ("super::", parent_of_self.clone()), ("self::", parts.clone())] {
                let mut rest = line;
                while let Some(at) = rest.find(prefix) {
                    let boundary = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
                    rest = &rest[at + prefix.len()..];
                    if !boundary {
                        continue;
                    }
                    // `super::{a, b::C}` names each of its items.
                    let items: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group.split('}').next().unwrap_or_default().split(',').map(str::trim).collect(),
                        None => vec![rest],
                    };
                    for item in items {
                        let path: Vec<&str> = item
                            .split("::")
                            .take(2)
                            .map(|s| s.split(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())).next().unwrap_or_default())
                            .take_while(|s| !s.is_empty())
                            .collect();
                        let mut full = base.clone();
                        full.extend(path.iter().map(|s| (*s).to_owned()));
                        named.insert(full.join("::"));
                    }
                }
            }
        }
        raw.insert(module, named);
    }
    let modules: BTreeSet<String> = raw.keys().cloned().collect();
    // A named path is the longest known module it starts with.
    let resolve = |path: &str| {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| modules.contains(m))
    };
    raw.iter().map(|(m, named)| (m.clone(), named.iter().filter_map(|p| resolve(p)).filter(|d| d != m).collect())).collect()
}

/// The modules on a circle, each circle once (Tarjan's strongly connected components).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let at = self.stack.iter().rposition(|m| *m == v).unwrap_or_default();
                let component: Vec<String> = self.stack.drain(at..).map(str::to_owned).collect();
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for m in graph.keys() {
        if !walk.index.contains_key(m.as_str()) {
            walk.visit(m);
        }
    }
    walk.found
}

#[test]
fn no_module_of_the_controller_imports_itself_through_others() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 30, "the graph was read: {} modules", graph.len());
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(edges > 100 && graph["policy"].contains("policy::judge"), "imports are seen: {edges} edges, policy: {:?}", graph["policy"]);
    let found = circles(&graph);
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn a_circle_is_found() {
    let graph: BTreeMap<String, BTreeSet<String>> = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(m, ds)| (m.to_owned(), ds.into_iter().map(str::to_owned).collect()))
        .collect();
    let mut found = circles(&graph);
    found.iter_mut().for_each(|c| c.sort());
    assert_eq!(found, [vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]]);
}
