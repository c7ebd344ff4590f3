//! Applying an adapter's normalised webhook events to the store, as
//! [`switchboard_core::events::effects`] decides: delivery status on the
//! outbox, inbound messages and the windows they open, consent changes in
//! the ledger. Redelivered events change nothing.

use switchboard_contract::model::{ChannelInfo, Event};
use switchboard_core::events::{self, Effect};
use switchboard_store::{ConsentChange, Inbound, StatusRecord, Store, StoreResult};

/// Record `events` from `info.name`'s webhook.
pub fn apply(store: &Store, info: &ChannelInfo, events: &[Event]) -> StoreResult<()> {
    let channel = info.name.as_str();
    for event in events {
        let at = i64::try_from(event.occurred_at_ms).unwrap_or(i64::MAX);
        for effect in events::effects(info, event) {
            match effect {
                Effect::Status {
                    platform_message_id,
                    correlation_key,
                    state,
                    failure,
                } => {
                    store.record_status(
                        channel,
                        &StatusRecord {
                            event_id: &event.id,
                            platform_message_id: platform_message_id.as_deref(),
                            correlation_key: correlation_key.as_deref(),
                            state,
                            failure: failure.as_deref(),
                            occurred_ms: at,
                        },
                    )?;
                }
                Effect::Inbound { sender, kind, text } => {
                    store.record_inbound(
                        channel,
                        &Inbound {
                            event_id: &event.id,
                            sender: &sender,
                            kind: &kind,
                            text: text.as_deref(),
                            occurred_ms: at,
                        },
                    )?;
                }
                Effect::OpenWindow { address, opener } => {
                    store.open_window(channel, &address, opener, at)?;
                }
                Effect::Consent(change) => {
                    store.record_consent(
                        channel,
                        &ConsentChange {
                            event_id: &event.id,
                            address: &change.address,
                            purpose: change.purpose.map(|p| p.as_str()),
                            opted_in: change.opted_in,
                            occurred_ms: at,
                            source: &change.source,
                        },
                    )?;
                }
            }
        }
    }
    Ok(())
}
