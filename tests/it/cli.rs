//! The binary as an operator runs it: configuration from a file and `NEXUS_*` variables (set on
//! the child process, never on the test's own), every problem reported with its key path and
//! exit code 2, an admin command's refusal, and the shipped deployment files working as shipped.

use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::serve_process::ServeProcess;

fn gateway(args: &[&str], env: &[(&str, &str)], dir: &TempDir) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nexus-gateway"));
    command
        .args(args)
        .current_dir(dir.path())
        .env_remove("RUST_LOG");
    // Only the variables this test sets: nothing from the developer's shell leaks in.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("NEXUS_")) {
        command.env_remove(name);
    }
    command
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

#[test]
fn environment_variables_override_the_file_including_nested_keys() {
    let dir = TempDir::new().expect("dir");
    std::fs::write(
        dir.path().join("gateway.toml"),
        "public_url = \"https://from-file.example\"\n",
    )
    .expect("config");
    let output = gateway(
        &["--config", "gateway.toml", "config", "check"],
        &[
            ("NEXUS_PUBLIC_URL", "https://mcp.example.com"),
            ("NEXUS_OAUTH__ACCESS_TOKEN_TTL", "2h"),
            ("NEXUS_APPROVAL", "password"),
        ],
        &dir,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("public_url  https://mcp.example.com"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mcp         https://mcp.example.com/mcp"),
        "{stdout}"
    );
    // A nested override with a bad value is reported under its dotted path.
    let bad = gateway(
        &["config", "check"],
        &[("NEXUS_OAUTH__CODE_TTL", "soon")],
        &dir,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("oauth.code_ttl"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn an_invalid_configuration_names_every_problem_and_exits_2() {
    let dir = TempDir::new().expect("dir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "listen = \"nowhere\"\npublic_url = \"https://x.example/mcp\"\ncolour = \"blue\"\n[oauth]\ncode_ttl = \"soon\"\n",
    )
    .expect("config");
    let output = gateway(&["--config", "bad.toml", "serve"], &[], &dir);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in ["listen:", "public_url:", "colour:", "oauth.code_ttl:"] {
        assert!(stderr.contains(key), "no line for {key} in:\n{stderr}");
    }
    assert!(
        stderr.contains("invalid configuration (4 problem(s))"),
        "{stderr}"
    );
    let missing = gateway(&["--config", "missing.toml", "serve"], &[], &dir);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.toml does not exist"));
    let exposed_auto = gateway(
        &["config", "check"],
        &[("NEXUS_APPROVAL", "auto"), ("NEXUS_LISTEN", "0.0.0.0:8080")],
        &dir,
    );
    assert_eq!(exposed_auto.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&exposed_auto.stderr).contains("approval: `auto`"));
}

#[test]
fn admin_commands_refuse_bad_input_with_a_message_and_a_failure_code() {
    let dir = TempDir::new().expect("dir");
    let data = dir.path().join("data");
    let data_dir = data.to_str().expect("utf-8");
    let short = Command::new(env!("CARGO_BIN_EXE_nexus-gateway"))
        .args(["owner", "set-password", "--stdin"])
        .env("NEXUS_DATA_DIR", data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(b"too short\n")?;
            child.wait_with_output()
        })
        .expect("runs");
    assert_eq!(short.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let scope = gateway(
        &["tokens", "issue", "--name", "x", "--scope", "tasks:admin"],
        &[("NEXUS_DATA_DIR", data_dir)],
        &dir,
    );
    assert_eq!(scope.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&scope.stderr).contains("unknown scope `tasks:admin`"));
}

/// The variables the shipped environment file sets (its `KEY=value` lines).
fn shipped_environment() -> Vec<(String, String)> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/environment.example");
    std::fs::read_to_string(file)
        .expect("deploy/environment.example")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn the_shipped_configuration_loads_with_the_shipped_environment_file() {
    let dir = TempDir::new().expect("dir");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/config.example.toml");
    let environment = shipped_environment();
    assert!(
        environment
            .iter()
            .any(|(name, _)| name == "NEXUS_TELEGRAM_TOKEN"),
        "the environment file sets the bot token: {environment:?}"
    );
    let variables: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let output = gateway(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "config",
            "check",
        ],
        &variables,
        &dir,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("public_url  https://mcp.example.com"),
        "{stdout}"
    );
    for (_, secret) in &environment {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret was printed"
        );
    }
    // A variable a target names in bot_token_env is a secret too, not a key.
    std::fs::write(
        dir.path().join("bot.toml"),
        "[[targets]]\nname = \"homelab\"\ntransport = \"telegram\"\n[targets.telegram]\nbot_token_env = \"NEXUS_OTHER_BOT\"\nchat_id = 1\n",
    )
    .expect("config");
    let other = gateway(
        &["--config", "bot.toml", "config", "check"],
        &[("NEXUS_OTHER_BOT", "1:secret")],
        &dir,
    );
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    // Any other unknown NEXUS_ variable is still a mistake worth stopping for.
    let typo = gateway(&["config", "check"], &[("NEXUS_PUBLC_URL", "x")], &dir);
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("publc_url"));
}

#[tokio::test]
async fn serve_with_internal_listen_serves_metrics() {
    let dir = TempDir::new().expect("dir");
    std::fs::write(
        dir.path().join("gateway.toml"),
        "listen = \"127.0.0.1:0\"\npublic_url = \"http://localhost:8080\"\ndata_dir = \"data\"\nlog_format = \"json\"\ninternal_listen = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let gateway = ServeProcess::start(dir.path(), "gateway.toml", true).await;
    let (public, internal) = (gateway.public, gateway.internal.expect("internal"));
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{public}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    // The JSON access line carries the request's span once, in `spans`, with its id.
    let served = gateway
        .log_line(|event| event["message"] == "served" && event["spans"][0]["route"] == "/healthz");
    assert_eq!(served["status"], 200, "{served}");
    let request_id = served["spans"][0]["request_id"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(request_id.len(), 36, "{served}");
    assert!(served.get("span").is_none(), "{served}");
    let metrics = http
        .get(format!("http://{internal}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(metrics.status(), reqwest::StatusCode::OK);
    let text = metrics.text().await.expect("text");
    for expected in [
        r#"nexus_http_requests_total{route="/healthz",status="200"} 1"#,
        "# TYPE nexus_queue_messages gauge",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    let public_metrics = http
        .get(format!("http://{public}/metrics"))
        .send()
        .await
        .expect("public");
    assert_eq!(public_metrics.status(), reqwest::StatusCode::NOT_FOUND);
}

#[test]
fn an_unreachable_database_is_a_clear_error_at_start_and_its_password_is_never_shown() {
    let dir = TempDir::new().expect("dir");
    // Nothing listens on port 1.
    let url = "postgres://nexus:hunter2-secret@127.0.0.1:1/nexus";
    let check = gateway(&["config", "check"], &[("NEXUS_DATABASE_URL", url)], &dir);
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{shown}");
    assert!(
        shown.contains("store       postgres postgres://nexus:***@127.0.0.1:1/nexus"),
        "{shown}"
    );
    // Its own ports: the default ones may be another test's.
    let serve = gateway(
        &["serve"],
        &[
            ("NEXUS_DATABASE_URL", url),
            ("NEXUS_LISTEN", "127.0.0.1:0"),
            ("NEXUS_INTERNAL_LISTEN", "127.0.0.1:0"),
        ],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert_eq!(serve.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the database at postgres://nexus:***@127.0.0.1:1/nexus"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let wrong = gateway(
        &["config", "check"],
        &[("NEXUS_DATABASE_URL", "mysql://root:hunter2@db/nexus")],
        &dir,
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("database_url: must be a postgres:// URL, not mysql://"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
