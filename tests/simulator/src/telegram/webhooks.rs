//! Updates posted to the host: a user's message (`/start` included) and
//! the bot being blocked or unblocked (`my_chat_member`), each a JSON
//! `Update` with the header `X-Telegram-Bot-Api-Secret-Token` carrying the
//! `secret_token` the webhook was set with, as Telegram sends them
//! (<https://core.telegram.org/bots/api#setwebhook>).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::{ChatState, TelegramControlError, TelegramState, lock};
use crate::webhook_sender::{SignedRequest, WebhookError};

/// The header Telegram puts the webhook's secret token in.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The user behind a private chat (its id is the chat's).
fn user(chat_id: i64, first_name: &str) -> Value {
    json!({"id": chat_id, "is_bot": false, "first_name": first_name, "language_code": "en"})
}

fn private_chat(chat_id: i64, first_name: &str) -> Value {
    json!({"id": chat_id, "first_name": first_name, "type": "private"})
}

/// Posts `{"update_id": N, <kind>: payload}` with the secret-token header;
/// returns the update id.
async fn post(state: &TelegramState, kind: &str, payload: Value) -> Result<i64, WebhookError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let update_id = state.next_update_id.fetch_add(1, Ordering::Relaxed);
    let mut update = json!({ "update_id": update_id });
    if let Some(obj) = update.as_object_mut() {
        obj.insert(kind.to_owned(), payload);
    }
    let mut request = SignedRequest::json(url, update.to_string().into_bytes());
    if !state.webhook_secret.is_empty()
        && let Ok(value) = HeaderValue::from_str(&state.webhook_secret)
    {
        request = request.with_header(HeaderName::from_static(SECRET_HEADER), value);
    }
    state.sender.post(request).await?;
    Ok(update_id)
}

/// A `message` update: `text` from the user of `chat_id`.
pub(crate) async fn message(
    state: &Arc<TelegramState>,
    chat_id: i64,
    text: &str,
) -> Result<i64, TelegramControlError> {
    if text.is_empty() {
        return Err(TelegramControlError::Invalid(
            "text must not be empty".into(),
        ));
    }
    let (message_id, first_name) = {
        let mut chats = lock(&state.chats);
        let chat = chats
            .get_mut(&chat_id)
            .ok_or(TelegramControlError::UnknownChat(chat_id))?;
        (ChatState::next_message_id(chat), chat.first_name.clone())
    };
    let mut message = json!({
        "message_id": message_id,
        "from": user(chat_id, &first_name),
        "chat": private_chat(chat_id, &first_name),
        "date": state.clock.now_unix(),
        "text": text,
    });
    // A command at the start of the text is a `bot_command` entity (in
    // UTF-16 code units, as every entity offset and length is).
    if let Some(command) = text
        .split_whitespace()
        .next()
        .filter(|w| w.starts_with('/'))
        && let Some(obj) = message.as_object_mut()
    {
        obj.insert(
            "entities".into(),
            json!([{"offset": 0, "length": command.encode_utf16().count(), "type": "bot_command"}]),
        );
    }
    let id = post(state, "message", message).await?;
    state.inbound_posted.fetch_add(1, Ordering::Relaxed);
    Ok(id)
}

/// A `my_chat_member` update: the bot's status in the user's private chat
/// went from `before` to `after` (`member` / `kicked`).
pub(crate) async fn member_change(
    state: &Arc<TelegramState>,
    chat_id: i64,
    before: &str,
    after: &str,
) -> Result<i64, TelegramControlError> {
    let first_name = lock(&state.chats)
        .get(&chat_id)
        .map(|chat| chat.first_name.clone())
        .ok_or(TelegramControlError::UnknownChat(chat_id))?;
    let bot = state.bot_user(false);
    let mut new_member = json!({"user": bot, "status": after});
    if after == "kicked"
        && let Some(obj) = new_member.as_object_mut()
    {
        obj.insert("until_date".into(), json!(0));
    }
    let update = json!({
        "chat": private_chat(chat_id, &first_name),
        "from": user(chat_id, &first_name),
        "date": state.clock.now_unix(),
        "old_chat_member": {"user": bot, "status": before},
        "new_chat_member": new_member,
    });
    let id = post(state, "my_chat_member", update).await?;
    state.member_updates_posted.fetch_add(1, Ordering::Relaxed);
    Ok(id)
}
