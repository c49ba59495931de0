//! A real browser (Debian's headless Chromium, driven by playwright-core) through the owner's
//! pages at a phone-sized viewport: log in, read the consent page, approve (the callback gets a
//! code, our state and `iss`) and, in a second run, deny. Screenshots of the login and consent
//! pages land in `target/screenshots/`.
//!
//! It needs Chromium and the npm packages in `tests/browser/`, so it is ignored by a plain
//! `cargo test` and run by `scripts/test`, which installs them.

use std::path::Path;
use std::process::Command;

use nexus_gateway::config::ApprovalMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::spawn_app_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and playwright-core; run by scripts/test"]
async fn browser_the_owner_logs_in_approves_and_denies_on_a_phone() {
    let app = spawn_app_with(|config| config.approval = ApprovalMode::Password).await;
    let passphrase = app.owner_passphrase.clone().expect("generated passphrase");
    let registered = app
        .register(json!({"redirect_uris": ["https://client.example/callback"], "token_endpoint_auth_method": "none", "client_name": "Claude"}))
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client_id = registered.json::<Value>().await.expect("json")["client_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshots = root.join("target/screenshots");
    let script = root.join("tests/browser/consent.mjs");
    let server = app.base_url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args([
                "--server",
                &server,
                "--client-id",
                &client_id,
                "--passphrase",
                &passphrase,
                "--screenshots",
            ])
            .arg(&screenshots)
            .output()
            .expect("node runs")
    })
    .await
    .expect("browser task");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.lines().last(), Some("BROWSER OK"), "{stdout}");
    for page in ["login.png", "consent.png"] {
        assert!(
            root.join("target/screenshots").join(page).exists(),
            "{page} was saved"
        );
    }
}
