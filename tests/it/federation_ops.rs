//! The operator's side of federation: `upstreams import` turns a Claude-Desktop-style file into
//! `[[upstreams]]` TOML with empty allow-lists, and the owner's consent page says what each
//! upstream scope unlocks.

use serde_json::json;
use tempfile::TempDir;

use crate::support::fixture::{fixture_binary, fixture_upstream, ready};
use crate::support::{Pkce, spawn_app_with};

#[tokio::test]
async fn import_prints_toml_with_empty_allow_lists_and_the_offered_tools() {
    let dir = TempDir::new().expect("dir");
    let file = dir.path().join("claude_desktop_config.json");
    std::fs::write(
        &file,
        json!({"mcpServers": {
            "Fixture Server": {"command": fixture_binary(), "args": ["--state-dir", dir.path().join("state")], "env": {"REGION": "home"}},
            "missing": {"command": "no-such-mcp-server-anywhere"},
        }})
        .to_string(),
    )
    .expect("file");
    let shim = std::path::Path::new(env!("CARGO_BIN_EXE_nexus-gateway"));
    let toml = nexus_gateway::upstream::operator::import(&file, shim)
        .await
        .expect("import");
    assert!(toml.contains("name = \"fixtureserve\""), "{toml}");
    assert!(toml.contains("\"Fixture Server\" renamed"), "{toml}");
    assert!(toml.contains("env = { \"REGION\" = \"home\" }"), "{toml}");
    assert!(
        toml.contains("# offers 9 tools:") && toml.contains("#   echo: "),
        "{toml}"
    );
    assert!(toml.contains("not found on PATH"), "{toml}");
    assert_eq!(toml.matches("tools = []").count(), 2, "{toml}");
    // What it prints loads, and the one thing left to fix is named by its key.
    let problems = nexus_gateway::config::Config::from_toml(&toml)
        .expect_err("the missing command")
        .0;
    let keys: Vec<&str> = problems
        .iter()
        .map(|problem| problem.key.as_str())
        .collect();
    assert_eq!(keys, ["upstreams[1].command"], "{problems:?}");
}

#[tokio::test]
async fn the_consent_page_says_what_an_upstream_scope_unlocks() {
    let state = TempDir::new().expect("state");
    let upstream = fixture_upstream(state.path(), &[("echo", None, None), ("add", None, None)]);
    let app = spawn_app_with(|config| {
        config.approval = nexus_gateway::config::ApprovalMode::Password;
        config.upstreams = vec![upstream];
    })
    .await;
    ready(&app, "fx").await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    let mut browser = crate::owner_approval::Browser::new(&app);
    // No scope asked for: everything is asked for, the upstream's scope included.
    let mut query = app.authorize_query(&client, &pkce, "s");
    query.retain(|(name, _)| *name != "scope");
    let login = browser
        .request(reqwest::Method::GET, "/authorize")
        .query(&query)
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("html");
    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    let logged_in = browser.log_in(&login, &passphrase).await;
    let location = logged_in.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let consent = browser.get(&location).await.text().await.expect("html");
    assert!(
        consent.contains("Use 2 tools of fx from your homelab"),
        "{consent}"
    );
    assert!(consent.contains("Send tasks to your agent"), "{consent}");
}
