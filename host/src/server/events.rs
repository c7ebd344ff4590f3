//! Turning an adapter's normalised webhook events into state: delivery
//! status on the outbox, inbound messages and the windows they open, and
//! consent changes in the ledger. Redelivered events change nothing.

use crate::runtime::bindings::types::{
    ChannelInfo, DeliveryState, Event, EventKind, FreeFormRule, WindowOpener,
};
use crate::store::{ConsentChange, Inbound, Store, StoreResult};

/// The name of an event kind, for metrics and logs.
pub fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Status(_) => "status",
        EventKind::Inbound(_) => "inbound",
        EventKind::OptIn(_) => "opt_in",
        EventKind::OptOut(_) => "opt_out",
    }
}

fn state_name(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Accepted => "accepted",
        DeliveryState::Sent => "sent",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Read => "read",
        DeliveryState::Failed => "failed",
    }
}

/// Whether an inbound message opens this channel's conversation window.
fn inbound_opens_window(info: &ChannelInfo) -> bool {
    match &info.free_form {
        FreeFormRule::WithinWindow(rule) => rule.opened_by.contains(&WindowOpener::InboundMessage),
        FreeFormRule::Always | FreeFormRule::Never => false,
    }
}

/// Record `events` from `info.name`'s webhook.
pub fn apply(store: &Store, info: &ChannelInfo, events: &[Event]) -> StoreResult<()> {
    let channel = info.name.as_str();
    for event in events {
        let at = event.occurred_at_ms as i64;
        match &event.kind {
            EventKind::Status(status) => {
                let failure = status
                    .failure
                    .as_ref()
                    .map(|f| format!("({}) {}", f.code, f.message));
                store.record_status(
                    channel,
                    &event.id,
                    &status.platform_message_id,
                    state_name(status.state),
                    failure.as_deref(),
                    at,
                )?;
            }
            EventKind::Inbound(message) => {
                let inbound = Inbound {
                    event_id: &event.id,
                    sender: &message.sender,
                    kind: &message.kind,
                    text: message.text.as_deref(),
                    occurred_ms: at,
                };
                store.record_inbound(channel, &inbound, inbound_opens_window(info))?;
            }
            EventKind::OptIn(change) | EventKind::OptOut(change) => {
                let opted_in = matches!(event.kind, EventKind::OptIn(_));
                let source = format!("webhook:{channel}");
                let change = ConsentChange {
                    event_id: &event.id,
                    address: &change.address,
                    purpose: change.purpose.map(|p| p.as_str()),
                    opted_in,
                    occurred_ms: at,
                    source: &source,
                };
                store.record_consent(channel, &change)?;
            }
        }
    }
    Ok(())
}
