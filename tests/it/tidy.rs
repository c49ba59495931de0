//! Architecture invariants, checked as tests (the rust-analyzer habit): which crates each
//! module may use, which modules may reach the store, how long a file may grow, and that every
//! module says what it owns.

use std::path::{Path, PathBuf};

fn rust_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("readable source tree") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == "node_modules") {
                continue;
            }
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

/// `file`'s path under `root`, with forward slashes.
fn relative(file: &Path, root: &Path) -> String {
    file.strip_prefix(root)
        .expect("inside the root")
        .to_string_lossy()
        .replace('\\', "/")
}

/// The code of a file without its comment lines.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
}

/// Every `use` statement of a file, each joined onto one line (groups span lines).
fn use_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current: Option<String> = None;
    for line in code_lines(text) {
        if current.is_none() && (line.starts_with("use ") || line.starts_with("pub use ")) {
            current = Some(String::new());
        }
        if let Some(statement) = current.as_mut() {
            statement.push_str(line);
            statement.push(' ');
            if line.trim_end().ends_with(';') {
                statements.extend(current.take());
            }
        }
    }
    statements
}

/// Whether `text` holds `word` as a whole identifier.
fn has_word(text: &str, word: &str) -> bool {
    text.split(|character: char| !(character.is_alphanumeric() || character == '_'))
        .any(|token| token == word)
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
        ("rmcp", &["mcp/", "http/mcp/", "upstream/"]),
        // Every outbound HTTP client: Telegram, HTTP upstreams, client metadata documents.
        (
            "reqwest",
            &["transport/", "upstream/http.rs", "cimd_fetch.rs"],
        ),
    ];
    let root = source_root();
    for file in rust_files(&root) {
        let relative = relative(&file, &root);
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

#[test]
fn only_the_services_reach_the_store() {
    // `Store` is the SQL boundary; adapters (http, mcp, transports) go through `AuthServer`,
    // `Queue` or `Agents`, so a rule or a transaction is never bypassed.
    let allowed = [
        "store/",
        "oauth/",
        "queue/",
        "upstream/",
        "admin.rs",
        "app.rs",
    ];
    let root = source_root();
    for file in rust_files(&root) {
        let relative = relative(&file, &root);
        if allowed.iter().any(|prefix| relative.starts_with(prefix)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        let imports_store = use_statements(&text)
            .iter()
            .any(|statement| statement.contains("store::") && has_word(statement, "Store"));
        let names_store =
            code_lines(&text).any(|line| line.contains("store::Store") && has_word(line, "Store"));
        assert!(
            !imports_store && !names_store,
            "{relative} uses store::Store, which only {allowed:?} may"
        );
    }
}

#[test]
fn the_domain_knows_no_transport() {
    // The task and authorization rules are tested and reused without a web stack.
    let forbidden = [
        "axum",
        "http",
        "crate::http",
        "rmcp",
        "reqwest",
        "tower",
        "tower_http",
    ];
    let root = source_root();
    for file in rust_files(&root) {
        let relative = relative(&file, &root);
        if !(relative.starts_with("oauth/") || relative.starts_with("queue/")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable");
        for statement in use_statements(&text) {
            let path = statement
                .trim_start_matches("pub ")
                .trim_start_matches("use ")
                .trim_start_matches("::");
            for krate in forbidden {
                assert!(
                    !path.starts_with(&format!("{krate}::")),
                    "{relative} imports {krate}: `oauth` and `queue` know nothing of HTTP, MCP or outside services"
                );
            }
        }
        for krate in ["axum::", "rmcp::", "reqwest::", "crate::http::"] {
            assert!(
                !code_lines(&text).any(|line| line.contains(krate)),
                "{relative} names {krate} inline"
            );
        }
    }
}

#[test]
fn files_stay_short_enough_to_read() {
    // Past these a file has grown a second job: split it along its sections.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (directory, limit) in [("src", 500), ("tests", 600)] {
        let root = manifest.join(directory);
        for file in rust_files(&root) {
            let lines = std::fs::read_to_string(&file)
                .expect("readable")
                .lines()
                .count();
            assert!(
                lines <= limit,
                "{directory}/{} has {lines} lines; the limit is {limit}",
                relative(&file, &root)
            );
        }
    }
}
