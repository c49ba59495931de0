//! Pure text rules of the Telegram bridge: the task's tag and text, splitting at 4096 UTF-16
//! units into numbered parts, the status commands, and the buttons' callback data.

use crate::queue::message::MessageStatus;
use crate::store::MessageRecord;
use crate::transport::telegram::objects::InlineButton;

/// Telegram's limit on one message's text, counted in UTF-16 units (the safe reading of
/// "4096 characters"; see research/telegram.md §4).
pub const MAX_MESSAGE_UNITS: usize = 4096;
/// Room left in each part for a "(12/34) " marker.
const PART_MARKER_UNITS: usize = 16;
/// Hex digits of a task id used in its tag.
const TAG_LEN: usize = 8;

/// A task's short tag, `#` and the last eight hex digits of its id.
pub fn task_tag(task_id: &str) -> String {
    format!("#{}", tag_digits(task_id))
}

/// The hex digits of a task's tag, lowercase. The end of the id, not its start: a task id is a
/// UUIDv7, which begins with its creation time in milliseconds, so its first eight digits are
/// the same for every task created within the same 65 seconds. Its last are random.
pub fn tag_digits(task_id: &str) -> String {
    let mut hex: String = task_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|digit| digit.to_ascii_lowercase())
        .collect();
    // ASCII only, so any byte offset is a character boundary.
    hex.drain(..hex.len().saturating_sub(TAG_LEN));
    hex
}

/// The text a task is posted with: urgency first, the tag, the sender, the task, and how to answer.
pub fn task_text(task: &MessageRecord) -> String {
    let urgent = if task.urgent { "URGENT · " } else { "" };
    format!(
        "{urgent}Task {} from {}\n\n{}\n\nReply to this message to answer. /ack /working /done /failed (or the buttons) set its status.",
        task_tag(&task.id),
        task.sender,
        task.content
    )
}

/// Splits `text` into messages of at most `MAX_MESSAGE_UNITS` UTF-16 units, preferring line
/// breaks, numbering the parts "(1/3) " when there is more than one.
pub fn split_message(text: &str) -> Vec<String> {
    split_with_limit(text, MAX_MESSAGE_UNITS)
}

fn split_with_limit(text: &str, limit: usize) -> Vec<String> {
    if utf16_len(text) <= limit {
        return vec![text.to_owned()];
    }
    let budget = limit - PART_MARKER_UNITS;
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // What fits is never cut again (only the parts before it are).
        if utf16_len(rest) <= budget {
            parts.push(rest.to_owned());
            break;
        }
        let cut = cut_point(rest, budget);
        let (head, tail) = rest.split_at(cut);
        parts.push(head.to_owned());
        rest = tail;
    }
    let total = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| format!("({}/{total}) {part}", index + 1))
        .collect()
}

/// The byte index to cut `text` at so the head fits `budget` UTF-16 units: after the last
/// newline that fits, else at the last character boundary that fits.
fn cut_point(text: &str, budget: usize) -> usize {
    let mut units = 0;
    let mut last_fit = 0;
    let mut last_newline = None;
    for (index, character) in text.char_indices() {
        units += character.len_utf16();
        if units > budget {
            break;
        }
        last_fit = index + character.len_utf8();
        if character == '\n' {
            last_newline = Some(last_fit);
        }
    }
    // Prefer a line break unless it would leave a tiny part.
    match last_newline {
        Some(newline) if newline * 2 > last_fit => newline,
        _ => last_fit,
    }
}

/// UTF-16 length, the unit Telegram's limits and entity offsets use.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A status command at the start of a reply and the rest of the text: `/done all green` →
/// `(Some(Complete), "all green")`. Accepts `/cmd@botname`.
pub fn parse_command(text: &str) -> (Option<MessageStatus>, String) {
    let trimmed = text.trim_start();
    let Some(command) = trimmed.strip_prefix('/') else {
        return (None, text.trim().to_owned());
    };
    let word_end = command.find(char::is_whitespace).unwrap_or(command.len());
    let (word, rest) = command.split_at(word_end);
    let name = word
        .split('@')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = match name.as_str() {
        "ack" => MessageStatus::Acknowledged,
        "working" => MessageStatus::InProgress,
        "done" => MessageStatus::Complete,
        "failed" => MessageStatus::Error,
        _ => return (None, text.trim().to_owned()),
    };
    let rest = rest.trim();
    let content = if rest.is_empty() {
        default_status_text(status).to_owned()
    } else {
        rest.to_owned()
    };
    (Some(status), content)
}

/// What an update says when a command or button carried no text of its own.
pub fn default_status_text(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Acknowledged => "acknowledged",
        MessageStatus::InProgress => "working on it",
        MessageStatus::Complete => "done",
        MessageStatus::Error => "failed",
        MessageStatus::Pending => "pending",
        MessageStatus::Cancelled => "cancelled",
    }
}

/// The first task tag (`#` and eight hex digits) in `text`, without the `#`.
pub fn find_tag(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    text.match_indices('#').find_map(|(index, _)| {
        let candidate = text.get(index + 1..index + 1 + TAG_LEN)?;
        let boundary_after = bytes
            .get(index + 1 + TAG_LEN)
            .is_none_or(|byte| !byte.is_ascii_alphanumeric());
        (candidate.bytes().all(|byte| byte.is_ascii_hexdigit()) && boundary_after)
            .then(|| candidate.to_ascii_lowercase())
    })
}

/// The tag in the heading of a task's post (`task_text`, or the first of its parts):
/// `[(1/n) ][URGENT · ]Task #tag from …`, without the `#`. Other texts, later parts included,
/// have none.
pub fn posted_task_tag(text: &str) -> Option<String> {
    let text = match text.strip_prefix("(1/") {
        Some(numbered) => {
            let (total, rest) = numbered.split_once(") ")?;
            total
                .bytes()
                .all(|byte| byte.is_ascii_digit())
                .then_some(rest)?
        }
        None => text,
    };
    let text = text.strip_prefix("URGENT · ").unwrap_or(text);
    let mut words = text.strip_prefix("Task ")?.splitn(3, ' ');
    let (tagged, from) = (words.next()?, words.next()?);
    (tagged.len() == TAG_LEN + 1 && from == "from")
        .then(|| find_tag(tagged))
        .flatten()
}

/// The status buttons under a task: Ack, Working, Done, Failed.
pub fn status_buttons(task_id: &str) -> Vec<Vec<InlineButton>> {
    let button = |label: &str, status: MessageStatus| InlineButton {
        text: label.into(),
        callback_data: status_callback(status, task_id),
    };
    vec![
        vec![
            button("Ack", MessageStatus::Acknowledged),
            button("Working", MessageStatus::InProgress),
        ],
        vec![
            button("Done", MessageStatus::Complete),
            button("Failed", MessageStatus::Error),
        ],
    ]
}

/// What a tapped button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ButtonAction {
    /// Move a task to a status.
    SetStatus {
        /// The new status.
        status: MessageStatus,
        /// The task id.
        task_id: String,
    },
    /// The owner's answer to an authorization request.
    Approval {
        /// Approve or deny.
        approved: bool,
        /// The one-time token naming the request.
        token: String,
    },
}

fn status_callback(status: MessageStatus, task_id: &str) -> String {
    format!("s:{}:{task_id}", status.as_str())
}

/// The callback data of an approval button.
pub fn approval_callback(approved: bool, token: &str) -> String {
    format!("{}:{token}", if approved { "a" } else { "d" })
}

/// Parses a button's callback data.
pub fn parse_callback(data: &str) -> Option<ButtonAction> {
    let (kind, rest) = data.split_once(':')?;
    match kind {
        "s" => {
            let (status, task_id) = rest.split_once(':')?;
            Some(ButtonAction::SetStatus {
                status: status.parse().ok()?,
                task_id: task_id.to_owned(),
            })
        }
        "a" | "d" => Some(ButtonAction::Approval {
            approved: kind == "a",
            token: rest.to_owned(),
        }),
        _ => None,
    }
}

/// A pending task of `homelab` with id `id`, for the Telegram modules' tests.
#[cfg(test)]
pub(crate) fn pending_task(id: &str) -> MessageRecord {
    MessageRecord {
        id: id.into(),
        target: "homelab".into(),
        content: "task".into(),
        urgent: false,
        status: crate::queue::message::MessageStatus::Pending,
        sender: "c_1".into(),
        created_at: 0,
        acknowledged_at: None,
        started_at: None,
        finished_at: None,
        claimed_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part_and_long_text_is_numbered_parts_within_the_limit() {
        assert_eq!(split_message("hello"), vec!["hello"]);
        let long = "line of text that repeats\n".repeat(400);
        let parts = split_message(&long);
        assert_eq!(parts.len(), 3);
        assert!(parts[0].starts_with("(1/3) ") && parts[2].starts_with("(3/3) "));
        assert!(
            parts
                .iter()
                .all(|part| utf16_len(part) <= MAX_MESSAGE_UNITS)
        );
        let rejoined: String = parts
            .iter()
            .map(|part| part.split_once(") ").expect("marker").1)
            .collect();
        assert_eq!(rejoined, long, "nothing lost or reordered");
    }

    #[test]
    fn splitting_counts_utf16_units_and_never_cuts_a_character() {
        // An emoji is 2 UTF-16 units: 2100 of them exceed the limit although they are only
        // 2100 characters.
        let emoji = "😀".repeat(2100);
        let parts = split_message(&emoji);
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|part| utf16_len(part) <= MAX_MESSAGE_UNITS)
        );
        assert_eq!(
            parts
                .iter()
                .map(|part| part.split_once(") ").expect("marker").1)
                .collect::<String>(),
            emoji
        );
        assert_eq!(split_with_limit("abcdef", 4 + PART_MARKER_UNITS).len(), 1);
        // A remainder that fits stays whole, even with a line break in it.
        let text = format!("{}\n\nfooter", "y".repeat(5000));
        assert_eq!(split_message(&text).len(), 2);
    }

    #[test]
    fn commands_set_statuses_and_keep_the_rest_as_content() {
        assert_eq!(
            parse_command("/done all green"),
            (Some(MessageStatus::Complete), "all green".into())
        );
        assert_eq!(
            parse_command("/ack"),
            (Some(MessageStatus::Acknowledged), "acknowledged".into())
        );
        assert_eq!(
            parse_command("/working@nexus_bot on it\nsecond line"),
            (Some(MessageStatus::InProgress), "on it\nsecond line".into())
        );
        assert_eq!(
            parse_command("/failed disk full"),
            (Some(MessageStatus::Error), "disk full".into())
        );
        assert_eq!(parse_command("/start"), (None, "/start".into()));
        assert_eq!(parse_command("just a reply"), (None, "just a reply".into()));
        assert_eq!(
            parse_command("a /done in the middle"),
            (None, "a /done in the middle".into())
        );
    }

    #[test]
    fn tags_are_found_only_as_whole_words() {
        assert_eq!(
            task_tag("019d3f1c-2b4a-7e01-9c3d-4a5b8C1E2F3A"),
            "#8c1e2f3a"
        );
        // Tasks created in the same instant (one UUIDv7 time prefix) get tags of their own.
        let ids: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let tags: std::collections::HashSet<String> = ids.iter().map(|id| task_tag(id)).collect();
        assert_eq!(tags.len(), ids.len(), "{ids:?}");
        assert_eq!(find_tag("re #8C1E2F3A: done"), Some("8c1e2f3a".into()));
        assert_eq!(find_tag("#8c1e2f3a"), Some("8c1e2f3a".into()));
        assert_eq!(find_tag("#8c1e2f3ab is longer"), None);
        assert_eq!(find_tag("#nothex12 and #1234"), None);
        assert_eq!(find_tag("no tag"), None);
    }

    #[test]
    fn a_posts_tag_is_read_from_its_heading_only() {
        let task = MessageRecord {
            content: "see #0badc0de first\n".repeat(400),
            urgent: true,
            ..pending_task("019d3f1c-2b4a-7e01-9c3d-4a5b8c1e2f3a")
        };
        let parts = split_message(&task_text(&task));
        assert!(parts.len() > 1);
        assert_eq!(posted_task_tag(&parts[0]), Some("8c1e2f3a".into()));
        // Later parts carry the task's own text, which may name any tag.
        assert_eq!(posted_task_tag(&parts[1]), None);
        let single = task_text(&MessageRecord {
            content: "short".into(),
            urgent: false,
            ..task
        });
        assert_eq!(posted_task_tag(&single), Some("8c1e2f3a".into()));
        // The bot's other messages about a task are not its post.
        assert_eq!(posted_task_tag("Task #8c1e2f3a is complete: done"), None);
        assert_eq!(posted_task_tag("(2/3) Task #8c1e2f3a from c_1"), None);
        assert_eq!(posted_task_tag("Task #8c1e2f3ab from c_1"), None);
    }

    #[test]
    fn callback_data_round_trips_and_fits_telegrams_64_bytes() {
        let id = "8c1e2f3a-0000-4000-8000-000000000000";
        for row in status_buttons(id) {
            for button in row {
                assert!(button.callback_data.len() <= 64, "{}", button.callback_data);
                assert!(
                    matches!(parse_callback(&button.callback_data), Some(ButtonAction::SetStatus { task_id, .. }) if task_id == id)
                );
            }
        }
        assert_eq!(
            parse_callback(&approval_callback(false, "tok")),
            Some(ButtonAction::Approval {
                approved: false,
                token: "tok".into()
            })
        );
        assert_eq!(parse_callback("s:bogus:x"), None);
        assert_eq!(parse_callback("zz"), None);
    }
}
