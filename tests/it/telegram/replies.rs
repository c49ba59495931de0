//! Receiving: replies correlated to their task, commands and buttons, strangers ignored,
//! restarts and conflicts survived.

use super::*;

#[tokio::test]
async fn replies_find_their_task_by_reply_by_tag_or_as_the_single_open_task() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let first = send(&client, "task A").await;
    fake.wait_for("A is posted", |fake| fake.sent().len() == 1)
        .await;
    fake.user_says(TASK_CHAT, AGENT_USER, "looking now", None);
    fake.wait_for("the reply is handled", FakeTelegram::all_updates_confirmed)
        .await;

    let second = send(&client, "task B").await;
    fake.wait_for("B is posted", |fake| fake.sent().len() == 2)
        .await;
    let b_message = fake.sent()[1].message_id;
    fake.user_says(TASK_CHAT, AGENT_USER, "which one do you mean?", None);
    fake.user_says(TASK_CHAT, AGENT_USER, "B is fine", Some(b_message));
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        &format!("{} all good with A", tag(&first).to_uppercase()),
        None,
    );
    // Tasks sent in the same minute have tags of their own (their ids share a time prefix),
    // and each post shows its task's.
    assert_ne!(tag(&first), tag(&second));
    let posts = fake.sent();
    assert!(
        posts[0].text.contains(&tag(&first)) && posts[1].text.contains(&tag(&second)),
        "{posts:?}"
    );
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        &format!("and {} for B", tag(&second)),
        None,
    );
    fake.wait_for(
        "the replies are handled",
        FakeTelegram::all_updates_confirmed,
    )
    .await;

    let a_updates = task_updates(&client, &first).await;
    assert_eq!(
        a_updates
            .iter()
            .map(|(_, content)| content.clone())
            .collect::<Vec<_>>(),
        [
            json!("queued"),
            json!("looking now"),
            json!(format!("{} all good with A", tag(&first).to_uppercase()))
        ]
    );
    let b_updates = task_updates(&client, &second).await;
    assert_eq!(
        b_updates
            .iter()
            .map(|(_, content)| content.clone())
            .collect::<Vec<_>>(),
        [
            json!("queued"),
            json!("B is fine"),
            json!(format!("and {} for B", tag(&second)))
        ]
    );
    // With two tasks open, a plain message is kept as an update with no task.
    let pulled = client.pull(json!({"since": "0"})).await;
    let unattached: Vec<&Value> = pulled["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .filter(|update| update.get("message_id").is_none())
        .collect();
    assert_eq!(unattached.len(), 1);
    assert_eq!(unattached[0]["content"], "which one do you mean?");
    assert_eq!(
        unattached[0]["source"],
        format!("telegram:@user{AGENT_USER}")
    );
}

#[tokio::test]
async fn commands_and_buttons_move_the_status_and_refusals_are_explained() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let id = send(&client, "rotate the logs").await;
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        "/working@nexus_test_bot on it",
        Some(task_message),
    );
    fake.wait_for(
        "the command is handled",
        FakeTelegram::all_updates_confirmed,
    )
    .await;
    assert_eq!(
        call_tool_ok(&client, "get_message", json!({"id": id})).await["message"]["status"],
        "in_progress"
    );

    fake.user_taps(
        TASK_CHAT,
        AGENT_USER,
        task_message,
        &format!("s:complete:{id}"),
    );
    fake.wait_for("the tap is answered", |fake| {
        !fake.callback_answers().is_empty()
    })
    .await;
    assert_eq!(
        fake.callback_answers()[0].1,
        format!("Task {} is now complete", tag(&id))
    );
    let updates = task_updates(&client, &id).await;
    assert_eq!(updates.last(), Some(&(json!("complete"), json!("done"))));
    assert_eq!(updates[1], (json!("in_progress"), json!("on it")));

    // Too late: the bot says why in the chat and nothing changes.
    fake.user_says(TASK_CHAT, AGENT_USER, "/ack", Some(task_message));
    fake.wait_for("the refusal is sent", |fake| fake.sent().len() == 2)
        .await;
    assert!(
        fake.sent()[1]
            .text
            .contains("is complete: the message is already finished"),
        "{}",
        fake.sent()[1].text
    );
    assert_eq!(task_updates(&client, &id).await.len(), updates.len());
    // A command that names no task (two open) asks which one.
    send(&client, "one").await;
    send(&client, "two").await;
    fake.wait_for("both posted", |fake| fake.sent().len() == 4)
        .await;
    fake.user_says(TASK_CHAT, AGENT_USER, "/done", None);
    fake.wait_for("the question is sent", |fake| fake.sent().len() == 5)
        .await;
    assert!(fake.sent()[4].text.starts_with("Which task?"));
}

#[tokio::test]
async fn strangers_bots_other_chats_and_edits_change_nothing() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |telegram| {
        telegram.allowed_user_ids = vec![AGENT_USER]
    })
    .await;
    let client = client(&app).await;
    let id = send(&client, "the only task").await;
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(-100_999, AGENT_USER, "/done from another chat", None);
    fake.user_says(TASK_CHAT, 5555, "/done from a stranger", Some(task_message));
    fake.user_taps(TASK_CHAT, 5555, task_message, &format!("s:complete:{id}"));
    fake.push_update(
        "message",
        json!({"message_id": 90, "from": {"id": 31337, "is_bot": true, "first_name": "OtherBot"}, "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": "/done"}),
    );
    fake.push_update(
        "edited_message",
        json!({"message_id": 91, "from": {"id": AGENT_USER, "is_bot": false, "first_name": "Agent"}, "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "edit_date": 2, "text": "/done edited"}),
    );
    fake.wait_for("everything is read", FakeTelegram::all_updates_confirmed)
        .await;
    assert_eq!(
        task_updates(&client, &id).await,
        [(json!("pending"), json!("queued"))]
    );
    assert_eq!(fake.sent().len(), 1, "strangers get no answer");
    assert!(fake.callback_answers().is_empty());
    // The allowed user still gets through.
    fake.user_says(TASK_CHAT, AGENT_USER, "/ack", Some(task_message));
    fake.wait_for("the ack is read", FakeTelegram::all_updates_confirmed)
        .await;
    assert_eq!(task_updates(&client, &id).await.len(), 2);
}

#[tokio::test]
async fn a_restart_neither_replays_nor_skips_updates() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let public_url = app.base_url.clone();
    let client = client(&app).await;
    let id = send(&client, "survive a restart").await;
    fake.wait_for("posted", |fake| fake.sent().len() == 1).await;
    let task_message = fake.sent()[0].message_id;
    fake.user_says(TASK_CHAT, AGENT_USER, "first reply", Some(task_message));
    fake.wait_for("read", FakeTelegram::all_updates_confirmed)
        .await;
    let token = app.access_token("tasks:read").await;
    let last_offset = *fake.offsets_seen().last().expect("polled");
    let data_dir = app.stop().await;

    // While the gateway is down the agent answers; after the restart it is read exactly once.
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        "reply while down",
        Some(task_message),
    );
    let calls_before = fake.offsets_seen().len();
    let app = spawn_in(data_dir, Some(&public_url), |config| {
        bot_target(config, &fake, |_| {})
    })
    .await;
    fake.wait_for("polled again and read", |fake| {
        fake.offsets_seen().len() > calls_before + 1 && fake.all_updates_confirmed()
    })
    .await;
    assert_eq!(
        fake.offsets_seen()[calls_before],
        last_offset,
        "the offset was persisted"
    );
    let client = app.mcp_client(&token, Lifecycle::Initialize).await;
    let contents: Vec<Value> = task_updates(&client, &id)
        .await
        .into_iter()
        .map(|(_, content)| content)
        .collect();
    assert_eq!(
        contents,
        [
            json!("queued"),
            json!("first reply"),
            json!("reply while down")
        ]
    );
    assert_eq!(
        fake.sent().len(),
        1,
        "the delivered task is not posted again"
    );
}

#[tokio::test]
async fn conflicts_are_reported_and_polling_resumes_after_them() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    fake.set_conflict(true);
    let outcome = poll_once(target).await;
    assert!(
        matches!(outcome, Err(PollError::Telegram(TelegramError::Conflict(ref text))) if text.contains("only one bot instance")),
        "{outcome:?}"
    );
    fake.set_conflict(false);
    fake.user_says(TASK_CHAT, AGENT_USER, "hello after the conflict", None);
    assert_eq!(poll_once(target).await.expect("poll"), 1);
    let pulled = app
        .state()
        .queue
        .pull_updates("c_test", Default::default())
        .await
        .expect("pulled");
    assert_eq!(
        pulled.updates.last().map(|update| update.content.as_str()),
        Some("hello after the conflict")
    );
    // The update was confirmed by the next poll's offset and is not handled again.
    assert_eq!(poll_once(target).await.expect("poll"), 0);
}

#[tokio::test]
async fn a_reply_to_a_copy_whose_id_was_lost_counts_for_its_task_and_lookalikes_do_not() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let first = queue_task(&app, "check the disks", false).await;
    let second = queue_task(&app, "renew the certificate", false).await;
    // The first post reaches the chat but its answer is lost, so the task is posted again.
    fake.fail_next("sendMessage", &[Fault::DropAfterSending]);
    let mut progress = DeliveryProgress::default();
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(matches!(outcome, Delivery::Transient(_)), "{outcome:?}");
    for task in [&first, &second] {
        assert!(matches!(
            deliver_one(target, &mut progress).await.expect("step"),
            Delivery::Sent { message_id, .. } if message_id == *task
        ));
    }
    let lost_copy = fake.sent()[0].clone();
    assert!(lost_copy.text.contains(&tag(&first)), "{}", lost_copy.text);

    // The same text is no proof: posted by another bot, pasted by a person, or our bot's
    // post naming a task this target does not have.
    let other_task = lost_copy.text.replace(&tag(&first)[1..], "0badc0de");
    for (author, text) in [
        (
            json!({"id": 31337, "is_bot": true, "first_name": "OtherBot"}),
            lost_copy.text.as_str(),
        ),
        (
            json!({"id": AGENT_USER, "is_bot": false, "first_name": "Agent"}),
            lost_copy.text.as_str(),
        ),
        (
            json!({"id": BOT_ID, "is_bot": true, "first_name": "Nexus"}),
            other_task.as_str(),
        ),
    ] {
        let replied = json!({"message_id": 500, "from": author, "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": text});
        fake.push_update(
            "message",
            json!({"message_id": 501, "from": {"id": AGENT_USER, "is_bot": false, "first_name": "Agent"},
                "chat": {"id": TASK_CHAT, "type": "supergroup"}, "date": 1, "text": "/done", "reply_to_message": replied}),
        );
    }
    fake.user_says(
        TASK_CHAT,
        AGENT_USER,
        "/working from the first copy",
        Some(lost_copy.message_id),
    );
    poll_until_idle(target).await;

    let queue = &app.state().queue;
    let first_task = queue
        .message(&first, Default::default())
        .await
        .expect("task");
    assert_eq!(first_task.message.status, MessageStatus::InProgress);
    assert_eq!(
        first_task
            .updates
            .last()
            .map(|update| update.content.as_str()),
        Some("from the first copy")
    );
    let second_task = queue
        .message(&second, Default::default())
        .await
        .expect("task");
    assert_eq!(second_task.message.status, MessageStatus::Pending);
    let asked = fake
        .sent()
        .iter()
        .filter(|sent| sent.text.starts_with("Which task?"))
        .count();
    assert_eq!(asked, 3, "each lookalike is asked which task it means");
}
