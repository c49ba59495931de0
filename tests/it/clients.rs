//! The official MCP SDKs as clients, each doing discovery → registration → authorize → token →
//! tools → refresh against a real gateway: the Python SDK (both protocol generations) and the
//! TypeScript SDK (its only generation, `initialize`; it has no 2026-07-28 support yet).
//!
//! They need the SDKs installed, so they are ignored by a plain `cargo test` and run by
//! `scripts/test`, which installs them at the versions pinned in `tests/clients/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::spawn_app;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs a client script (off the async runtime, so the in-process gateway keeps serving) and
/// returns its standard output, failing with everything it printed when it fails.
async fn run_client(program: String, args: Vec<String>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"))
    })
    .await
    .expect("client task");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Python MCP SDK; run by scripts/test"]
async fn sdk_python_client_completes_oauth_and_tools_with_both_lifecycles() {
    let app = spawn_app().await;
    let python = std::env::var("NEXUS_SDK_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = clients_dir()
        .join("python/sdk_client.py")
        .display()
        .to_string();
    for (protocol, negotiated) in [
        ("legacy", "protocol=2025-11-25"),
        ("2026", "protocol=2026-07-28"),
    ] {
        let output = run_client(
            python.clone(),
            vec![
                script.clone(),
                "--server".into(),
                app.base_url.clone(),
                "--protocol".into(),
                protocol.into(),
            ],
        )
        .await;
        let last = output.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("PYTHON SDK OK mcp==") && last.ends_with(negotiated),
            "{output}"
        );
        assert!(output.contains("refresh token rotated"), "{output}");
    }
}

/// Runs `tests/clients/typescript/sdk-client.mjs` against `app` with `extra` arguments.
async fn run_typescript_client(app: &crate::support::TestApp, extra: &[String]) -> String {
    let script = clients_dir().join("typescript/sdk-client.mjs");
    let mut args = vec![
        script.display().to_string(),
        "--server".into(),
        app.base_url.clone(),
    ];
    args.extend_from_slice(extra);
    run_client("node".into(), args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the TypeScript MCP SDK; run by scripts/test"]
async fn sdk_typescript_client_completes_oauth_and_tools() {
    let app = spawn_app().await;
    let output = run_typescript_client(&app, &[]).await;
    let last = output.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("TS SDK OK @modelcontextprotocol/sdk@")
            && last.ends_with("protocol=2025-11-25"),
        "{output}"
    );
    assert!(output.contains("refresh token rotated"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the TypeScript MCP SDK; run by scripts/test"]
async fn sdk_typescript_client_signs_in_with_a_client_id_metadata_document() {
    // The SDK's `clientMetadataUrl`: it skips registration when the server advertises support.
    let document_url = "https://sdk-check.example.org/oauth/client.json";
    let app = crate::support::spawn_app_with(|config| {
        config.oauth.registration = nexus_gateway::config::Registration::Off;
        config.oauth.cimd_documents = vec![nexus_gateway::config::PinnedClientDocument {
            client_id: document_url.into(),
            client_name: "TS SDK check".into(),
            redirect_uris: vec!["http://127.0.0.1:53682/oauth/callback".into()],
        }];
    })
    .await;
    let output =
        run_typescript_client(&app, &["--client-metadata-url".into(), document_url.into()]).await;
    assert!(
        output.contains(&format!(
            "metadata document: no registration, client_id={document_url}"
        )),
        "{output}"
    );
    assert!(output.contains("refresh token rotated"), "{output}");
}
