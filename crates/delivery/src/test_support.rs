//! What the delivery crate's unit tests build again and again.

use switchboard_contract::model::{Content, OutboundMessage, Purpose};
use switchboard_store::ClaimedSend;

/// A claimed WhatsApp text to one number under `key`: first attempt, no
/// deduplication, no deadline.
pub(crate) fn claimed_send(key: &str) -> ClaimedSend {
    ClaimedSend {
        message: OutboundMessage {
            idempotency_key: key.into(),
            to: "+4915112345678".into(),
            purpose: Purpose::Marketing,
            content: Content::Text("hi".into()),
            ttl_seconds: None,
            attempt: 1,
        },
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
