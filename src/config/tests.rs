//! The configuration's loading and rules, checked against TOML snippets.

use super::*;

#[track_caller]
fn problems(toml: &str) -> Vec<(String, String)> {
    match Config::from_toml(toml) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|problem| (problem.key, problem.message))
            .collect(),
    }
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let config = Config::from_toml("").expect("defaults are valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080");
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.approval, ApprovalMode::Password);
    assert_eq!(config.mcp_resource(), "http://127.0.0.1:8080/mcp");
}

#[test]
fn optional_keys_are_known_keys() {
    // Unset by default, so absent from the serialised defaults the unknown-key check reads.
    let config = Config::from_toml("internal_listen = \"127.0.0.1:9464\"\n").expect("valid");
    assert_eq!(
        config.internal_listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
    );
}

#[test]
fn a_rotated_refresh_token_answers_for_ten_seconds_by_default() {
    // Long enough for a client's concurrent double refresh, short enough that a stolen token
    // is of little use for long.
    let config = Config::from_toml("").expect("defaults are valid");
    assert_eq!(config.oauth.refresh_grace, Duration::from_secs(10));
}

#[test]
fn every_problem_is_reported_with_its_key_path() {
    let found = problems(
        r#"
        listen = "not an address"
        public_url = "https://example.com/path"
        approval = "sometimes"
        colour = "blue"
        [oauth]
        code_ttl = "soon"
        [limits]
        login_per_minute = 0
        "#,
    );
    let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
    for expected in [
        "listen",
        "public_url",
        "approval",
        "colour",
        "oauth.code_ttl",
    ] {
        assert!(
            keys.contains(&expected),
            "no problem for {expected} in {found:?}"
        );
    }
}

#[test]
fn auto_approval_is_refused_off_loopback() {
    let found = problems("listen = \"0.0.0.0:8080\"\napproval = \"auto\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "approval");
    assert!(problems("listen = \"127.0.0.1:9\"\napproval = \"auto\"\n").is_empty());
    let proxied =
        "listen = \"127.0.0.1:9\"\npublic_url = \"https://mcp.example.com\"\napproval = \"auto\"\n";
    assert_eq!(
        problems(proxied).len(),
        1,
        "a public URL means the outside can reach it"
    );
    let trusted =
        "listen = \"127.0.0.1:9\"\ntrusted_proxies = [\"127.0.0.1\"]\napproval = \"auto\"\n";
    assert_eq!(
        problems(trusted).len(),
        1,
        "a proxy in front means the outside can reach it"
    );
    assert!(PublicUrl::parse("http://[::1]:8080").is_ok_and(|url| url.is_loopback()));
    assert!(PublicUrl::parse("http://localhost").is_ok_and(|url| url.is_loopback()));
}

#[test]
fn public_url_must_be_a_bare_origin() {
    for good in [
        "https://mcp.example.com",
        "https://mcp.example.com/",
        "http://127.0.0.1:8080",
    ] {
        assert!(PublicUrl::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "ftp://x",
        "https://x/mcp",
        "https://x?a=b",
        "https://x#f",
        "https://u:p@x",
        "nope",
    ] {
        assert!(PublicUrl::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        PublicUrl::parse("https://mcp.example.com/").map(|url| url.to_string()),
        Ok("https://mcp.example.com".into())
    );
}

#[test]
fn targets_are_checked() {
    let config =
        Config::from_toml("[[targets]]\nname = \"nexus:felt\"\ntransport = \"agent_api\"\n")
            .expect("valid");
    assert_eq!(
        config.targets.len(),
        1,
        "a file's targets replace the default"
    );
    let found = problems(
        "[[targets]]\nname = \"Bad Name\"\ntransport = \"agent_api\"\n[[targets]]\nname = \"x\"\ntransport = \"pigeon\"\n",
    );
    assert!(
        found.iter().any(|(key, _)| key == "targets[1].transport"),
        "{found:?}"
    );
    let twice = problems(
        "[[targets]]\nname = \"a\"\ntransport = \"agent_api\"\n[[targets]]\nname = \"a\"\ntransport = \"agent_api\"\n",
    );
    assert_eq!(
        twice.first().map(|(key, _)| key.as_str()),
        Some("targets[1].name")
    );
    assert!(!problems("targets = []\n").is_empty());
}

#[test]
fn telegram_targets_need_a_token_source_but_never_the_token() {
    let good = "[[targets]]\nname = \"homelab\"\ntransport = \"telegram\"\n[targets.telegram]\nbot_token_env = \"BOT\"\nchat_id = -1001\n";
    let config = Config::from_toml(good).expect("valid");
    let telegram = config.targets[0].telegram.as_ref().expect("telegram");
    assert_eq!(telegram.mode, TelegramMode::Polling);
    assert_eq!(telegram.api_base, "https://api.telegram.org");
    let missing = problems("[[targets]]\nname = \"homelab\"\ntransport = \"telegram\"\n");
    assert_eq!(
        missing.first().map(|(key, _)| key.as_str()),
        Some("targets[0].telegram")
    );
    let both = problems(&good.replace("chat_id", "bot_token_file = \"/t\"\nchat_id"));
    assert!(
        both.iter()
            .any(|(_, message)| message.contains("exactly one")),
        "{both:?}"
    );
    let inline_token = problems(&good.replace("chat_id", "bot_token = \"123:abc\"\nchat_id"));
    assert!(
        !inline_token.is_empty(),
        "a token in the file is an unknown key"
    );
    let webhook_http =
        problems(&good.replace("chat_id = -1001", "chat_id = -1001\nmode = \"webhook\""));
    assert!(
        webhook_http
            .iter()
            .any(|(key, _)| key == "targets[0].telegram.mode"),
        "{webhook_http:?}"
    );
}

#[test]
fn custom_schemes_cannot_smuggle_dangerous_ones() {
    assert!(!problems("[oauth]\ncustom_redirect_schemes = [\"javascript\"]\n").is_empty());
    assert!(problems("[oauth]\ncustom_redirect_schemes = [\"cursor\"]\n").is_empty());
}

#[test]
fn pinned_client_documents_are_checked_with_their_key_path() {
    let good = "[[oauth.cimd_documents]]\nclient_id = \"https://tools.example.org/client.json\"\nclient_name = \"Tools\"\nredirect_uris = [\"https://tools.example.org/cb\"]\n";
    assert!(problems(good).is_empty(), "{:?}", problems(good));
    let closed = Config::from_toml(&format!("[oauth]\nregistration = \"off\"\n{good}"))
        .expect("registration off with a pinned document");
    assert_eq!(closed.oauth.registration, super::Registration::Off);
    assert_eq!(closed.oauth.cimd_documents.len(), 1);

    for (toml, reason) in [
        (good.replace("https://tools", "http://tools"), "https"),
        (
            good.replace("tools.example.org/client.json", "10.0.0.2/client.json"),
            "IP address",
        ),
        (
            good.replace(
                "https://tools.example.org/cb",
                "http://tools.example.org/cb",
            ),
            "loopback",
        ),
        (good.replace("\"Tools\"", "\"\""), "client_name"),
        (
            good.replace(
                "https://tools.example.org/client.json",
                crate::oauth::cimd::CLAUDE_AI,
            ),
            "already pinned",
        ),
        (format!("{good}{good}"), "already pinned"),
    ] {
        let found = problems(&toml);
        assert!(
            found
                .iter()
                .any(|(key, message)| key.starts_with("oauth.cimd_documents[")
                    && message.contains(reason)),
            "{reason}: {found:?}"
        );
    }
}
