//! The Telegram transport: a bot posts a target's tasks to one chat and turns the replies in
//! that chat into task updates (research/telegram.md has the Bot API facts behind each rule).
//! One `TelegramTarget` per configured target runs a delivery worker and either a long-poll
//! loop or, in webhook mode, receives updates from `http::telegram`.

pub mod api;
pub mod approval;
pub mod delivery;
pub mod format;
pub mod objects;
pub mod receive;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Config, TelegramConfig, TelegramMode};
use crate::oauth::AuthServer;
use crate::queue::Queue;
use crate::secrets;
use crate::transport::telegram::api::BotApi;

/// A failure to set up a Telegram target.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The bot token could not be read.
    #[error("target `{target}`: cannot read the bot token: {why}")]
    Token {
        /// The target.
        target: String,
        /// What went wrong (never the token).
        why: String,
    },
    /// Two targets use the same bot, which cannot have two pollers.
    #[error("targets `{0}` and `{1}` use the same bot token; a bot can serve only one target")]
    SharedBot(String, String),
    /// The client could not be built.
    #[error("target `{target}`: {why}")]
    Client {
        /// The target.
        target: String,
        /// What went wrong.
        why: String,
    },
}

/// One target served by a Telegram bot.
#[derive(Clone, Debug)]
pub struct TelegramTarget {
    /// The target's name.
    pub name: String,
    /// Its configuration.
    pub config: TelegramConfig,
    /// The bot.
    pub api: BotApi,
    /// The bot's own user id (the number before its token's colon), to recognise its posts.
    pub bot_id: i64,
    /// The queue it delivers from and reports to.
    pub queue: Queue,
    /// The authorization server, for owner approval.
    pub auth: AuthServer,
    /// The secret Telegram must present on webhook calls (webhook mode only).
    pub webhook_secret: Option<crate::secrets::Secret>,
    /// Where delivery attempts are counted.
    pub metrics: crate::metrics::Metrics,
}

impl TelegramTarget {
    /// The chat tasks go to.
    pub fn chat_id(&self) -> i64 {
        self.config.chat_id
    }

    /// Whether this target's bot asks the owner to approve authorization requests.
    pub fn approves_for_owner(&self) -> bool {
        self.config.owner_user_id.is_some()
    }
}

/// Builds the Telegram targets of `config`, reading each bot token.
pub async fn build_targets(
    config: &Config,
    queue: &Queue,
    auth: &AuthServer,
    metrics: &crate::metrics::Metrics,
) -> Result<Vec<TelegramTarget>, SetupError> {
    let mut built: Vec<(TelegramTarget, String)> = Vec::new();
    for (target, telegram) in config.telegram_targets() {
        let token = read_token(&target.name, telegram)?;
        if let Some((other, _)) = built
            .iter()
            .find(|(_, other_token)| secrets::constant_time_eq(other_token, &token))
        {
            return Err(SetupError::SharedBot(
                other.name.clone(),
                target.name.clone(),
            ));
        }
        let api = BotApi::new(&telegram.api_base, &token).map_err(|error| SetupError::Client {
            target: target.name.clone(),
            why: error.to_string(),
        })?;
        let bot_id = bot_id(&token).ok_or_else(|| SetupError::Token {
            target: target.name.clone(),
            why: "the number before its colon is too large for a bot id".into(),
        })?;
        // Every replica must accept Telegram's calls, whichever registered the webhook: the
        // secret is the one stored first.
        let webhook_secret = match telegram.mode {
            TelegramMode::Webhook => Some(
                queue
                    .shared_state(
                        &format!("telegram:{}:webhook_secret", target.name),
                        &secrets::random_token(),
                    )
                    .await
                    .map_err(|error| SetupError::Client {
                        target: target.name.clone(),
                        why: format!("cannot read the stored webhook secret: {error}"),
                    })?,
            ),
            TelegramMode::Polling => None,
        };
        built.push((
            TelegramTarget {
                name: target.name.clone(),
                config: telegram.clone(),
                api,
                bot_id,
                queue: queue.clone(),
                auth: auth.clone(),
                webhook_secret: webhook_secret.map(crate::secrets::Secret::new),
                metrics: metrics.clone(),
            },
            token,
        ));
    }
    Ok(built.into_iter().map(|(target, _)| target).collect())
}

/// The bot of one target's configuration (reads its token).
pub fn bot_api(target: &str, telegram: &TelegramConfig) -> Result<BotApi, SetupError> {
    let token = read_token(target, telegram)?;
    BotApi::new(&telegram.api_base, &token).map_err(|error| SetupError::Client {
        target: target.to_owned(),
        why: error.to_string(),
    })
}

/// A bot's user id: Telegram issues tokens as `<bot id>:<secret>`.
fn bot_id(token: &str) -> Option<i64> {
    token.split_once(':')?.0.parse().ok()
}

fn read_token(target: &str, telegram: &TelegramConfig) -> Result<String, SetupError> {
    let fail = |why: String| SetupError::Token {
        target: target.to_owned(),
        why,
    };
    let token = match (&telegram.bot_token_file, &telegram.bot_token_env) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|error| fail(format!("{}: {error}", path.display())))?,
        (None, Some(variable)) => std::env::var(variable)
            .map_err(|_| fail(format!("environment variable {variable} is not set")))?,
        (None, None) => return Err(fail("no bot_token_file or bot_token_env".into())),
    };
    let token = token.trim().to_owned();
    // Tokens look like `123456789:AA...`; anything else is a mistake worth stopping for.
    let well_formed = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|byte| byte.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    });
    if !well_formed {
        return Err(fail(
            "it does not look like a bot token (digits, a colon, then letters, digits, - and _)"
                .into(),
        ));
    }
    Ok(token)
}

/// How long a replica's hold on a bot lasts without renewal: longer than a poll (30 s by
/// default), so a poll never overlaps the next holder's; short enough that the others take
/// over within a minute of its death.
const BOT_LEASE: Duration = Duration::from_secs(40);
/// How often the holder renews its lease, and the others ask for it.
const BOT_LEASE_RENEWAL: Duration = Duration::from_secs(5);

/// Starts the workers of every target: delivery, and polling or webhook registration. With
/// several replicas on one database, one of them works each bot at a time (a lease in the
/// store); the others take over when it stops or dies. Every replica accepts webhook calls.
/// The handles end once each bot's workers have stopped and its lease is released: await them
/// at shutdown, so another replica can take over at once.
pub fn spawn_all(
    targets: &[TelegramTarget],
    public_url: &crate::config::PublicUrl,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let holder = secrets::random_id("replica_");
    targets
        .iter()
        .map(|target| {
            let webhook_url = public_url.join(&crate::http::paths::telegram_webhook(&target.name));
            tokio::spawn(work_bot(
                target.clone(),
                webhook_url,
                holder.clone(),
                shutdown.clone(),
            ))
        })
        .collect()
}

/// Works one bot while this replica holds its lease, until `shutdown`.
async fn work_bot(
    target: TelegramTarget,
    webhook_url: String,
    holder: String,
    shutdown: CancellationToken,
) {
    let lease = format!("telegram:{}", target.bot_id);
    loop {
        if !hold(&target, &lease, &holder).await {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(BOT_LEASE_RENEWAL) => continue,
            }
        }
        tracing::info!(target = %target.name, "this replica works the Telegram bot");
        let working = shutdown.child_token();
        let mut workers = vec![tokio::spawn(delivery::run(target.clone(), working.clone()))];
        match (&target.webhook_secret, target.config.mode) {
            (Some(secret), TelegramMode::Webhook) => {
                tokio::spawn(register_webhook(
                    target.clone(),
                    webhook_url.clone(),
                    secret.expose().to_owned(),
                ));
            }
            _ => workers.push(tokio::spawn(receive::run_polling(
                target.clone(),
                working.clone(),
            ))),
        }
        // Renew while working. A renewal the store refuses means another replica took over
        // (this one stalled past its lease); one it cannot answer is retried until the lease
        // would have run out, and then the work stops, as another replica may take it.
        let mut held_until = tokio::time::Instant::now() + BOT_LEASE;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Only once this replica's workers have stopped may another take over.
                    stop_workers(&working, workers).await;
                    if let Err(error) = target.queue.release_lease(&lease, &holder).await {
                        tracing::warn!(target = %target.name, error = %error, "cannot release the Telegram bot's lease; another replica takes it when it runs out");
                    }
                    return;
                }
                () = tokio::time::sleep(BOT_LEASE_RENEWAL) => {}
            }
            // A renewal that hangs counts as failed: the lease runs out all the same.
            let asked_at = tokio::time::Instant::now();
            let renewal = tokio::time::timeout(
                BOT_LEASE_RENEWAL,
                target.queue.take_lease(&lease, &holder, BOT_LEASE),
            )
            .await;
            let failure = match renewal {
                Ok(Ok(true)) => {
                    held_until = asked_at + BOT_LEASE;
                    continue;
                }
                Ok(Ok(false)) => {
                    tracing::warn!(target = %target.name, "another replica took over the Telegram bot");
                    break;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => "the store did not answer in time".to_owned(),
            };
            // Stop while the lease still holds, so the next holder never overlaps this one.
            if tokio::time::Instant::now() + BOT_LEASE_RENEWAL >= held_until {
                tracing::warn!(target = %target.name, error = %failure, "cannot renew the Telegram bot's lease; stopping work on it");
                break;
            }
            tracing::warn!(target = %target.name, error = %failure, "cannot renew the Telegram bot's lease; will retry");
        }
        stop_workers(&working, workers).await;
    }
}

/// Stops a bot's workers and waits until they have, so no post or poll of this replica
/// overlaps the next holder's.
async fn stop_workers(working: &CancellationToken, workers: Vec<tokio::task::JoinHandle<()>>) {
    working.cancel();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Whether this replica holds (or just took) the bot's lease.
async fn hold(target: &TelegramTarget, lease: &str, holder: &str) -> bool {
    match target.queue.take_lease(lease, holder, BOT_LEASE).await {
        Ok(held) => held,
        Err(error) => {
            tracing::warn!(target = %target.name, error = %error, "cannot ask for the Telegram bot's lease; will retry");
            false
        }
    }
}

async fn register_webhook(target: TelegramTarget, url: String, secret: String) {
    match target.api.set_webhook(&url, &secret).await {
        Ok(_) => tracing::info!(target = %target.name, "Telegram webhook registered"),
        Err(error) => {
            tracing::error!(target = %target.name, error = %error, "cannot register the Telegram webhook; replies will not arrive")
        }
    }
}
