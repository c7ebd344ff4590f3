//! What the delivery crate's unit tests build again and again.

use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_store::ClaimedSend;

/// A marketing text under `key`, first attempt, to a number of its own.
pub(crate) fn text_message(key: &str) -> OutboundMessage {
    OutboundMessage {
        idempotency_key: key.into(),
        to: format!("+4915112{key}"),
        purpose: Purpose::Marketing,
        content: Content::Text("hi".into()),
        ttl_seconds: None,
        attempt: 1,
    }
}

/// A claimed WhatsApp [`text_message`] under `key`: no deduplication, no
/// deadline.
pub(crate) fn claimed_send(key: &str) -> ClaimedSend {
    ClaimedSend {
        message: text_message(key),
        campaign: "c".into(),
        profile_id: format!("p-{key}"),
        line: None,
        channel: "whatsapp".into(),
        step: 0,
        window: None,
        deduplicates: false,
        deadline_ms: None,
        rate_limited: 0,
        created_ms: 0,
    }
}
