//! The layering rule of `src/`, checked on every `use crate::…` line so that it still holds after
//! whoever edits next. Bottom up: `protocol`, `capture`, `telemetry` → `device` → `sim`, `mqtt`, `cloud` →
//! `server` → `transport` → `rollout` → `bridge` → `config` → `cli`. A module may import its own
//! folder and anything on a lower level, never a higher level or a sibling on the same level.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    &["protocol", "capture", "telemetry"],
    &["device"],
    &["sim", "mqtt", "cloud"],
    &["server"],
    &["transport"],
    &["rollout"],
    &["bridge"],
    &["config"],
    &["cli"],
];

fn level(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&folder))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<folder>` named on a `use` line (also inside `use crate::{a::…, b::…}` groups).
fn imported_folders(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_use = false;
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with("use crate::") || line.starts_with("pub use crate::") {
            in_use = true;
        }
        if in_use {
            let tail = line.split("crate::").nth(1).unwrap_or("");
            let mut names: Vec<&str> = vec![tail];
            if tail.starts_with('{') || !line.contains("crate::") {
                names = line.trim_start_matches(['{', ' ']).split(',').collect();
            }
            for name in names {
                let name = name
                    .trim()
                    .trim_start_matches("crate::")
                    .trim_start_matches('{');
                let folder: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if level(&folder).is_some() {
                    found.insert(folder);
                }
            }
            if line.ends_with(';') {
                in_use = false;
            }
        }
        // Paths written out in code (`crate::config::X` without a `use`) count too.
        for part in line.split("crate::").skip(1) {
            let folder: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if level(&folder).is_some() && !line.trim_start().starts_with("//") {
                found.insert(folder);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_higher_layer_or_a_sibling_folder_on_its_own_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(folder) = relative.iter().next().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(own) = level(folder) else { continue };
        let source = std::fs::read_to_string(file).unwrap();
        for imported in imported_folders(&source) {
            if imported == folder {
                continue;
            }
            let theirs = level(&imported).unwrap();
            if theirs >= own {
                wrong.push(format!("{} imports crate::{imported}", relative.display()));
            }
        }
    }
    assert!(
        files.len() > 50,
        "read only {} files: is src/ where this test thinks?",
        files.len()
    );
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_nested_and_written_out_paths() {
    let source = "use crate::{\n    device::DeviceKey,\n    server::Routes,\n};\nfn f() { crate::config::load(); }\n// crate::cli::x in a comment\n";
    let found = imported_folders(source);
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec![
            "config".to_owned(),
            "device".to_owned(),
            "server".to_owned()
        ]
    );
}
