//! A fake Telegram Bot API for the tests: an axum app on 127.0.0.1:0 speaking the real wire
//! format (`/bot<token>/<method>`, `{"ok": ...}` envelopes, `getUpdates` offset confirmation
//! and long polling, 409 conflicts) and enforcing what the real one does (the 4096-unit text
//! limit, unknown chats, a wrong token). Faults are scripted per method: 429 with
//! `retry_after`, a 502 HTML page, any error status, a dropped connection (before or after the
//! call took effect).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// The token the fake accepts.
pub const BOT_TOKEN: &str = "123456789:TEST-token_abcdef";
/// The bot's own user id: as on Telegram, the number before the colon of its token.
pub const BOT_ID: i64 = 123_456_789;
/// The chat tasks go to.
pub const TASK_CHAT: i64 = -100_555;
/// The agent (a person in the chat).
pub const AGENT_USER: i64 = 4242;
/// The owner, who approves access.
pub const OWNER_USER: i64 = 7777;

/// One scripted failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 429 with `retry_after` in the body and the header.
    RetryAfter(u64),
    /// 502 with an HTML page, as Telegram's front end sends.
    BadGatewayHtml,
    /// An error envelope with this code and description.
    Error(u16, &'static str),
    /// The connection drops in the middle of the response.
    Drop,
    /// The call takes effect (a message is posted), then the connection drops before the
    /// answer: the bot never learns the message's id.
    DropAfterSending,
    /// No fault for this call (to script a fault on a later one).
    Pass,
    /// Answer normally, but only after this long.
    Slow(Duration),
}

/// A message the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub request: Value,
}

#[derive(Default)]
struct State_ {
    sent: Vec<Sent>,
    callback_answers: Vec<(String, String)>,
    pending_updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    offsets_seen: Vec<i64>,
    faults: HashMap<String, VecDeque<Fault>>,
    conflict: bool,
    // `getUpdates` calls in flight, and those refused because another one was (as the real
    // API refuses a second poller: "terminated by other getUpdates request").
    polls_in_flight: u32,
    overlapping_polls: u32,
    blocked_chats: Vec<i64>,
    webhook: Option<(String, String)>,
    calls: Vec<String>,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeTelegram {
    pub base_url: String,
    state: Arc<Mutex<State_>>,
    changed: Arc<Notify>,
}

impl FakeTelegram {
    /// Starts a fake on 127.0.0.1:0.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State_ {
            next_update_id: 1000,
            next_message_id: 1,
            ..State_::default()
        }));
        let changed = Arc::new(Notify::new());
        let fake = FakeTelegram {
            base_url: String::new(),
            state,
            changed,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTelegram { base_url, ..fake }
    }

    /// Scripts `faults` for the next calls of `method`, in order.
    pub fn fail_next(&self, method: &str, faults: &[Fault]) {
        self.lock()
            .faults
            .entry(method.to_owned())
            .or_default()
            .extend(faults.iter().cloned());
    }

    /// While set, `getUpdates` answers 409 Conflict.
    pub fn set_conflict(&self, conflict: bool) {
        self.lock().conflict = conflict;
    }

    /// How many `getUpdates` calls arrived while another was still waiting (each answered 409,
    /// as the real API answers two bot instances polling at once).
    pub fn overlapping_polls(&self) -> u32 {
        self.lock().overlapping_polls
    }

    /// Makes a chat refuse the bot (403 blocked).
    pub fn block_chat(&self, chat_id: i64) {
        self.lock().blocked_chats.push(chat_id);
    }

    /// The messages the bot sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// The answers to button taps so far.
    pub fn callback_answers(&self) -> Vec<(String, String)> {
        self.lock().callback_answers.clone()
    }

    /// The `offset` of every `getUpdates` call so far.
    pub fn offsets_seen(&self) -> Vec<i64> {
        self.lock().offsets_seen.clone()
    }

    /// The webhook (url, secret) set by the bot.
    pub fn webhook(&self) -> Option<(String, String)> {
        self.lock().webhook.clone()
    }

    /// The methods called so far.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Queues a text message from `user` in `chat`, optionally replying to a bot message.
    pub fn user_says(&self, chat: i64, user: i64, text: &str, reply_to: Option<i64>) -> i64 {
        let mut message = json!({
            "message_id": self.next_message_id(),
            "from": {"id": user, "is_bot": false, "first_name": "Agent", "username": format!("user{user}")},
            "chat": {"id": chat, "type": if chat < 0 { "supergroup" } else { "private" }},
            "date": 1_800_000_000,
            "text": text,
        });
        if let Some(reply_to) = reply_to {
            let mut replied = json!({"message_id": reply_to, "chat": {"id": chat, "type": "supergroup"}, "date": 1_800_000_000});
            // Telegram quotes the whole replied-to message: a bot post comes with its sender
            // and text.
            if let Some(posted) = self
                .sent()
                .into_iter()
                .find(|sent| sent.chat_id == chat && sent.message_id == reply_to)
            {
                replied["from"] = bot_user();
                replied["text"] = json!(posted.text);
            }
            message["reply_to_message"] = replied;
        }
        self.push_update("message", message)
    }

    /// Queues an update of any kind (`message`, `edited_message`, `callback_query`).
    pub fn push_update(&self, kind: &str, payload: Value) -> i64 {
        let update_id = {
            let mut state = self.lock();
            state.next_update_id += 1;
            let update_id = state.next_update_id;
            state
                .pending_updates
                .push_back(json!({"update_id": update_id, kind: payload}));
            update_id
        };
        self.changed.notify_waiters();
        update_id
    }

    /// Queues a button tap by `user` on the bot message `message_id` in `chat`.
    pub fn user_taps(&self, chat: i64, user: i64, message_id: i64, data: &str) -> i64 {
        let callback = json!({
            "id": format!("cb{}", self.next_message_id()),
            "from": {"id": user, "is_bot": false, "first_name": "Tapper"},
            "message": {"message_id": message_id, "chat": {"id": chat, "type": "supergroup"}, "date": 1_800_000_000},
            "data": data,
        });
        self.push_update("callback_query", callback)
    }

    /// Waits (up to 10 s) until `condition` holds, re-checking whenever the fake changes.
    pub async fn wait_for(&self, what: &str, condition: impl Fn(&FakeTelegram) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let changed = self.changed.notified();
            if condition(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                assert!(condition(self), "timed out waiting for: {what}");
                return;
            }
        }
    }

    /// Whether every queued update has been confirmed by a later `getUpdates` offset.
    pub fn all_updates_confirmed(&self) -> bool {
        self.lock().pending_updates.is_empty()
    }

    fn next_message_id(&self) -> i64 {
        let mut state = self.lock();
        state.next_message_id += 1;
        state.next_message_id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().expect("fake state")
    }
}

async fn handle(
    State(fake): State<FakeTelegram>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let response = respond(&fake, &bot, &method, &body).await;
    fake.changed.notify_waiters();
    response
}

async fn respond(fake: &FakeTelegram, bot: &str, method: &str, body: &[u8]) -> Response {
    fake.lock().calls.push(method.to_owned());
    if bot != format!("bot{BOT_TOKEN}") {
        return error(401, "Unauthorized", None);
    }
    let fault = fake
        .lock()
        .faults
        .get_mut(method)
        .and_then(VecDeque::pop_front);
    let drop_after_sending = matches!(fault, Some(Fault::DropAfterSending));
    match fault {
        Some(Fault::RetryAfter(seconds)) => {
            return error(
                429,
                &format!("Too Many Requests: retry after {seconds}"),
                Some(seconds),
            );
        }
        Some(Fault::BadGatewayHtml) => {
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
                .into_response();
        }
        Some(Fault::Error(code, description)) => return error(code, description, None),
        Some(Fault::Drop) => return dropped(),
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Pass | Fault::DropAfterSending) | None => {}
    }
    let response = perform(fake, method, body).await;
    if drop_after_sending {
        return dropped();
    }
    response
}

/// A response whose body breaks off: the client sees a dropped connection.
fn dropped() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other("dropped"))
    });
    Response::new(Body::from_stream(broken))
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Nexus", "username": "nexus_test_bot"})
}

async fn perform(fake: &FakeTelegram, method: &str, body: &[u8]) -> Response {
    let params: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match method {
        "getMe" => ok(bot_user()),
        "getChat" => match params["chat_id"].as_i64() {
            Some(TASK_CHAT) => {
                ok(json!({"id": TASK_CHAT, "type": "supergroup", "title": "Homelab"}))
            }
            _ => error(400, "Bad Request: chat not found", None),
        },
        "sendMessage" => send_message(fake, &params),
        "getUpdates" => get_updates(fake, &params).await,
        "answerCallbackQuery" => {
            let id = params["callback_query_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let text = params["text"].as_str().unwrap_or_default().to_owned();
            fake.lock().callback_answers.push((id, text));
            ok(json!(true))
        }
        "setWebhook" => {
            let url = params["url"].as_str().unwrap_or_default().to_owned();
            let secret = params["secret_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            fake.lock().webhook = Some((url, secret));
            ok(json!(true))
        }
        "deleteWebhook" => {
            fake.lock().webhook = None;
            ok(json!(true))
        }
        "getWebhookInfo" => {
            let url = fake
                .lock()
                .webhook
                .as_ref()
                .map(|(url, _)| url.clone())
                .unwrap_or_default();
            ok(json!({"url": url, "has_custom_certificate": false, "pending_update_count": 0}))
        }
        _ => error(404, "Not Found", None),
    }
}

fn send_message(fake: &FakeTelegram, params: &Value) -> Response {
    let chat_id = params["chat_id"].as_i64().unwrap_or_default();
    let text = params["text"].as_str().unwrap_or_default().to_owned();
    if params.get("parse_mode").is_some() {
        return error(400, "Bad Request: the bridge must send plain text", None);
    }
    if text.trim().is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    if text.encode_utf16().count() > 4096 {
        return error(400, "Bad Request: message is too long", None);
    }
    if fake.lock().blocked_chats.contains(&chat_id) {
        return error(403, "Forbidden: bot was blocked by the user", None);
    }
    if chat_id != TASK_CHAT && chat_id != OWNER_USER && chat_id != AGENT_USER {
        return error(400, "Bad Request: chat not found", None);
    }
    let message_id = fake.next_message_id();
    fake.lock().sent.push(Sent {
        chat_id,
        message_id,
        text: text.clone(),
        request: params.clone(),
    });
    ok(json!({"message_id": message_id, "from": bot_user(),
        "chat": {"id": chat_id, "type": if chat_id < 0 { "supergroup" } else { "private" }}, "date": 1_800_000_000, "text": text}))
}

async fn get_updates(fake: &FakeTelegram, params: &Value) -> Response {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0).min(2));
    {
        let mut state = fake.lock();
        state.offsets_seen.push(offset);
        if state.conflict || state.polls_in_flight > 0 {
            if !state.conflict {
                state.overlapping_polls += 1;
            }
            drop(state);
            return error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                None,
            );
        }
        state.polls_in_flight += 1;
        // An offset confirms (and forgets) every update before it.
        state
            .pending_updates
            .retain(|update| update["update_id"].as_i64().unwrap_or_default() >= offset);
    }
    // Counted out however the call ends, a poller that hung up included.
    struct InFlight<'a>(&'a FakeTelegram);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.lock().polls_in_flight -= 1;
        }
    }
    let _in_flight = InFlight(fake);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let changed = fake.changed.notified();
        let updates: Vec<Value> = fake
            .lock()
            .pending_updates
            .iter()
            .take(100)
            .cloned()
            .collect();
        if !updates.is_empty() {
            return ok(Value::Array(updates));
        }
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            return ok(json!([]));
        }
    }
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn error(code: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(seconds) = retry_after {
        body["parameters"] = json!({"retry_after": seconds});
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
    }
    response
}

/// Makes the fake Bot API the config's only target (`homelab`), its token in a file in the data
/// dir, polling every second; `adjust` tunes the bot settings.
pub fn bot_target(
    config: &mut nexus_gateway::config::Config,
    fake: &FakeTelegram,
    adjust: impl FnOnce(&mut nexus_gateway::config::TelegramConfig),
) {
    use nexus_gateway::config::{TargetConfig, TelegramConfig, TelegramMode, TransportKind};
    let token_file = config.data_dir.join("bot-token");
    std::fs::write(&token_file, format!("{}\n", BOT_TOKEN)).expect("token file");
    let mut telegram = TelegramConfig {
        bot_token_file: Some(token_file),
        bot_token_env: None,
        chat_id: TASK_CHAT,
        allowed_user_ids: Vec::new(),
        owner_user_id: None,
        api_base: fake.base_url.clone(),
        mode: TelegramMode::Polling,
        poll_timeout: std::time::Duration::from_secs(1),
    };
    adjust(&mut telegram);
    config.targets = vec![TargetConfig {
        name: "homelab".into(),
        transport: TransportKind::Telegram,
        description: None,
        telegram: Some(telegram),
    }];
}
