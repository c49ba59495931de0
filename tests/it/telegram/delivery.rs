//! Delivery: tasks posted as plain text with tag and buttons, split into parts, and every
//! Bot API fault (429, 5xx, drops, slowness, refusals) survived without loss or repeats.

use super::*;

#[tokio::test]
async fn tasks_are_posted_once_as_plain_text_with_tag_sender_urgency_and_buttons() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    let sent = call_tool_ok(
        &client,
        "send_message",
        json!({"message": "check the *backups* of file_name.txt", "urgent": true}),
    )
    .await;
    let id = sent["id"].as_str().expect("id").to_owned();
    fake.wait_for("the task is posted", |fake| fake.sent().len() == 1)
        .await;
    let posted = &fake.sent()[0];
    assert_eq!(posted.chat_id, TASK_CHAT);
    assert!(
        posted
            .text
            .starts_with(&format!("URGENT · Task {} from c_", tag(&id))),
        "{}",
        posted.text
    );
    assert!(
        posted.text.contains("check the *backups* of file_name.txt"),
        "sent verbatim, as plain text"
    );
    assert!(posted.request.get("parse_mode").is_none());
    let buttons: Vec<&str> = posted.request["reply_markup"]["inline_keyboard"]
        .as_array()
        .expect("keyboard")
        .iter()
        .flat_map(|row| row.as_array().expect("row"))
        .map(|button| button["text"].as_str().expect("label"))
        .collect();
    assert_eq!(buttons, ["Ack", "Working", "Done", "Failed"]);
    // Delivered is not acknowledged: the agent says when it has seen it.
    assert_eq!(
        call_tool_ok(&client, "get_message", json!({"id": id})).await["message"]["status"],
        "pending"
    );
    // Sent once: another task goes out, the first is not repeated.
    send(&client, "second").await;
    fake.wait_for("the second task is posted", |fake| fake.sent().len() == 2)
        .await;
    assert!(fake.sent()[1].text.contains("second"));
}

#[tokio::test]
async fn long_tasks_go_out_in_numbered_parts_within_telegrams_limit() {
    let fake = FakeTelegram::start().await;
    let app = spawn_with_bot(&fake, |_| {}).await;
    let client = client(&app).await;
    // 2000 emoji are 4000 UTF-16 units (8000 bytes, within the 16 KiB task limit).
    let text = format!(
        "{}\n{}",
        "status report line\n".repeat(300),
        "😀".repeat(2000)
    );
    send(&client, &text).await;
    fake.wait_for("all parts are posted", |fake| fake.sent().len() >= 3)
        .await;
    let parts = fake.sent();
    let total = parts.len();
    for (index, part) in parts.iter().enumerate() {
        assert!(
            part.text.starts_with(&format!("({}/{total}) ", index + 1)),
            "{}",
            &part.text[..20]
        );
        assert!(part.text.encode_utf16().count() <= 4096);
    }
    assert!(
        parts.last().expect("last").request["reply_markup"].is_object(),
        "buttons under the last part"
    );
    assert!(parts[0].request.get("reply_markup").is_none());
}

#[tokio::test]
// The wait itself is the delivery loop's (`pause_after`, unit-tested beside it); this checks
// the step: a 429 is reported with Telegram's `retry_after`, nothing is posted, and the next
// step posts the task once.
async fn a_429_is_reported_with_its_retry_after_and_the_next_step_posts_the_task() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "throttled", false).await;
    fake.fail_next("sendMessage", &[Fault::RetryAfter(7)]);
    let mut progress = DeliveryProgress::default();
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::RetryAfter(Duration::from_secs(7))
    );
    assert!(fake.sent().is_empty());
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Sent {
            message_id: id,
            parts: 1
        }
    );
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle
    );
}

#[tokio::test]
async fn outages_and_dropped_connections_delay_tasks_in_order_and_never_lose_them() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let first = queue_task(&app, "first", false).await;
    let second = queue_task(&app, "second", false).await;
    let urgent = queue_task(&app, "urgent one", true).await;
    fake.fail_next(
        "sendMessage",
        &[
            Fault::BadGatewayHtml,
            Fault::Drop,
            Fault::Error(500, "Internal Server Error: restart"),
        ],
    );
    let mut progress = DeliveryProgress::default();
    for _ in 0..3 {
        assert!(matches!(
            deliver_one(target, &mut progress).await.expect("step"),
            Delivery::Transient(_)
        ));
    }
    let mut delivered = Vec::new();
    while let Delivery::Sent { message_id, .. } =
        deliver_one(target, &mut progress).await.expect("step")
    {
        delivered.push(message_id);
    }
    assert_eq!(
        delivered,
        [urgent, first, second],
        "urgent first, then in order, none lost"
    );
    assert_eq!(fake.sent().len(), 3, "nothing posted twice");
}

#[tokio::test]
async fn a_failure_in_the_middle_of_a_long_task_resumes_without_reposting() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    queue_task(&app, &"x".repeat(9000), false).await;
    // Part 1 goes out, the connection drops on part 2.
    fake.fail_next("sendMessage", &[Fault::Pass, Fault::Drop]);
    let mut progress = DeliveryProgress::default();
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(matches!(outcome, Delivery::Transient(_)), "{outcome:?}");
    assert_eq!(fake.sent().len(), 1);
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(
        matches!(outcome, Delivery::Sent { parts: 3, .. }),
        "{outcome:?}"
    );
    let markers: Vec<String> = fake
        .sent()
        .iter()
        .map(|sent| sent.text[..6].to_owned())
        .collect();
    assert_eq!(
        markers,
        ["(1/3) ", "(2/3) ", "(3/3) "],
        "each part exactly once"
    );
}

#[tokio::test]
async fn a_slow_answer_is_waited_for_and_the_task_is_posted_once() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "patience", false).await;
    fake.fail_next("sendMessage", &[Fault::Slow(Duration::from_millis(1500))]);
    let mut progress = DeliveryProgress::default();
    let started = std::time::Instant::now();
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Sent {
            message_id: id,
            parts: 1
        }
    );
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle
    );
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn permanent_refusals_mark_the_task_as_error_with_the_reason() {
    let fake = FakeTelegram::start().await;
    let (app, _dir) = built_with_bot(&fake).await;
    let target = &app.state().telegram[0];
    let id = queue_task(&app, "to a blocked chat", false).await;
    fake.block_chat(TASK_CHAT);
    let mut progress = DeliveryProgress::default();
    let outcome = deliver_one(target, &mut progress).await.expect("step");
    assert!(
        matches!(&outcome, Delivery::Failed { reason, .. } if reason.contains("bot was blocked by the user")),
        "{outcome:?}"
    );
    let detail = app
        .state()
        .queue
        .message(&id, Default::default())
        .await
        .expect("task");
    assert_eq!(detail.message.status, MessageStatus::Error);
    assert!(detail.updates.last().is_some_and(|update| {
        update
            .content
            .contains("delivery failed: sendMessage: Forbidden: bot was blocked")
    }));
    assert_eq!(
        deliver_one(target, &mut progress).await.expect("step"),
        Delivery::Idle,
        "not retried"
    );
}
