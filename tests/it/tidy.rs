//! Architecture invariants, checked as tests (the rust-analyzer habit): which crates each
//! module may use, and that every module says what it owns.

use std::path::{Path, PathBuf};

fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("readable source tree") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    for file in rust_files(&source_root()) {
        let text = std::fs::read_to_string(&file).expect("readable");
        assert!(
            text.starts_with("//!"),
            "{} must open with a //! line saying what it owns",
            file.display()
        );
    }
}

#[test]
fn crates_stay_inside_their_modules() {
    // (crate, the only places that may use it)
    let rules: [(&str, &[&str]); 5] = [
        ("sqlx", &["store/"]),
        ("axum", &["http/", "app.rs"]),
        ("tower_http", &["http/"]),
        ("rmcp", &["mcp/", "http/mcp.rs"]),
        ("reqwest", &["transport/"]),
    ];
    let root = source_root();
    for file in rust_files(&root) {
        let relative = file
            .strip_prefix(&root)
            .expect("inside src")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).expect("readable");
        for (krate, allowed) in rules {
            let used = text.lines().any(|line| {
                let line = line.trim_start();
                !line.starts_with("//")
                    && (line.contains(&format!("use {krate}::"))
                        || line.contains(&format!("{krate}::")))
            });
            let permitted = allowed.iter().any(|prefix| relative.starts_with(prefix));
            assert!(
                !used || permitted,
                "{relative} uses {krate}, which belongs to {allowed:?} only"
            );
        }
    }
}

#[test]
fn no_grab_bag_modules() {
    for file in rust_files(&source_root()) {
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .to_string();
        assert!(
            !["utils", "helpers", "common", "types", "manager", "misc"].contains(&stem.as_str()),
            "{}",
            file.display()
        );
    }
}
