//! The owner's login stays reachable under attack: wrong passphrases from a few addresses lock
//! only those addresses out, and a browser the owner logged in from before skips the global
//! budget that a flood from many addresses spends.

use reqwest::StatusCode;

use crate::owner_approval::Browser;
use crate::support::{Pkce, TestApp, hidden_field, spawn_app_with};
use nexus_gateway::config::ApprovalMode;

/// A password-mode gateway behind a proxy on 127.0.0.1, so tests can speak from many addresses.
async fn proxied_password_app() -> TestApp {
    spawn_app_with(|config| {
        config.approval = ApprovalMode::Password;
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await
}

#[tokio::test]
async fn wrong_passphrases_from_three_addresses_do_not_lock_the_owner_out() {
    let app = proxied_password_app().await;
    let client = app.register_client("none").await;
    let pkce = Pkce::new();
    for address in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let mut attacker = Browser::at(&app, address);
        let page = attacker.login_page(&client, &pkce, "x").await;
        for _ in 0..10 {
            attacker.log_in(&page, "not the passphrase").await;
        }
    }
    // Locked-out addresses spent nothing of the global budget: the owner gets in.
    let mut owner = Browser::at(&app, "127.0.0.5");
    let page = owner.login_page(&client, &pkce, "o").await;
    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    assert_eq!(
        owner.log_in(&page, &passphrase).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_browser_the_owner_used_before_gets_in_when_the_global_budget_is_spent() {
    let app = proxied_password_app().await;
    let client = app.register_client("none").await;
    let passphrase = app.owner_passphrase.clone().expect("passphrase");
    let mut owner = Browser::at(&app, "127.0.1.1");
    let consent = owner.reach_consent(&client, &Pkce::new(), "first").await;
    let decided = owner
        .decide(
            &hidden_field(&consent, "request_id"),
            &hidden_field(&consent, "csrf"),
            "approve",
        )
        .await;
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    assert!(
        owner.cookies.iter().any(|(name, _)| name == "nexus_device"),
        "{:?}",
        owner.cookies
    );
    // A guess from each of many addresses spends the global budget of passphrase checks.
    let pkce = Pkce::new();
    let mut refused = 0;
    for host in 0..40u8 {
        let mut attacker = Browser::at(&app, &format!("127.0.2.{host}"));
        let page = attacker.login_page(&client, &pkce, "x").await;
        if attacker.log_in(&page, "a guess").await.status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 10, "the global budget held: {refused} refused");
    let mut stranger = Browser::at(&app, "127.0.3.1");
    let page = stranger.login_page(&client, &pkce, "s").await;
    assert_eq!(
        stranger.log_in(&page, &passphrase).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // The owner's browser, now on another network, still gets in.
    owner.address = Some("127.0.3.2".into());
    let page = owner.login_page(&client, &pkce, "again").await;
    assert_eq!(
        owner.log_in(&page, &passphrase).await.status(),
        StatusCode::SEE_OTHER
    );
}
