//! What a normalised webhook event means for the host's state.
//!
//! An adapter turns a platform's webhook into events; [`effects`] decides
//! what each changes — a send's delivery state, the inbound-message log,
//! the conversation windows the channel declares, the consent ledger — so
//! the server only applies them. Redeliveries are dropped by the store on
//! the event id.

use switchboard_contract::model::{
    ChannelInfo, DeliveryState, Event, EventKind, FreeFormRule, WindowOpener,
};

use crate::consent::{self, ConsentPolicy, LedgerChange};

/// One change an event makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A sent message moved on.
    Status {
        /// The platform's id, if the webhook carries one.
        platform_message_id: Option<String>,
        /// The idempotency key echoed back, if any.
        correlation_key: Option<String>,
        /// The new state.
        state: DeliveryState,
        /// Why it failed, for operators.
        failure: Option<String>,
    },
    /// A customer wrote in.
    Inbound {
        /// The sender's address.
        sender: String,
        /// The platform's kind of message.
        kind: String,
        /// The text, if any.
        text: Option<String>,
    },
    /// A conversation window opened or was refreshed.
    OpenWindow {
        /// The customer's address.
        address: String,
        /// What opened it.
        opener: WindowOpener,
    },
    /// A consent change for the ledger.
    Consent(LedgerChange),
}

/// Whether `opener` opens one of the channel's declared windows.
fn opens_window(info: &ChannelInfo, opener: WindowOpener) -> bool {
    match &info.free_form {
        FreeFormRule::WithinWindow(rules) => rules.iter().any(|r| r.opened_by.contains(&opener)),
        FreeFormRule::Always | FreeFormRule::Never => false,
    }
}

/// How far ahead of the host's clock a platform's event time may be before
/// the event is refused (clocks drift; a forged event claims the future).
pub const MAX_CLOCK_AHEAD_MS: u64 = 5 * 60 * 1000;

/// Why an event must not be applied, if it must not: it claims a time more
/// than [`MAX_CLOCK_AHEAD_MS`] after `received_ms`.
pub fn refuse(event: &Event, received_ms: u64) -> Option<String> {
    (event.occurred_at_ms > received_ms.saturating_add(MAX_CLOCK_AHEAD_MS)).then(|| {
        format!(
            "event {} claims a time {} s ahead of the host's clock",
            event.id,
            (event.occurred_at_ms - received_ms) / 1000
        )
    })
}

/// What `event`, from `info.name`'s webhook, changes, under the operator's
/// consent `policy` for the channel.
pub fn effects(info: &ChannelInfo, policy: &ConsentPolicy, event: &Event) -> Vec<Effect> {
    let channel = info.name.as_str();
    let mut effects = Vec::new();
    let open = |address: &str, opener: WindowOpener, effects: &mut Vec<Effect>| {
        if opens_window(info, opener) {
            effects.push(Effect::OpenWindow {
                address: address.to_owned(),
                opener,
            });
        }
    };
    match &event.kind {
        EventKind::Status(status) => effects.push(Effect::Status {
            platform_message_id: status.platform_message_id.clone(),
            correlation_key: status.correlation_key.clone(),
            state: status.state,
            failure: status.failure.as_ref().map(ToString::to_string),
        }),
        EventKind::Inbound(message) => {
            effects.push(Effect::Inbound {
                sender: message.sender.clone(),
                kind: message.kind.clone(),
                text: message.text.clone(),
            });
            open(&message.sender, WindowOpener::InboundMessage, &mut effects);
        }
        EventKind::OptIn(change) => {
            open(&change.address, WindowOpener::Follow, &mut effects);
        }
        EventKind::Interaction(interaction) => {
            open(&interaction.address, interaction.opener, &mut effects);
        }
        EventKind::OptOut(_) => {}
    }
    effects.extend(
        consent::from_platform_event(channel, policy, &event.kind)
            .into_iter()
            .map(Effect::Consent),
    );
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::model::{
        ConsentChange, Failure, InboundMessage, Interaction, Purpose, StatusUpdate, WindowRule,
    };

    fn wechat() -> ChannelInfo {
        ChannelInfo {
            name: "wechat".into(),
            display_name: "WeChat".into(),
            address_kind: switchboard_contract::model::AddressKind::PlatformUserId,
            free_form: FreeFormRule::WithinWindow(vec![
                WindowRule {
                    duration_seconds: 48 * 3600,
                    opened_by: vec![WindowOpener::InboundMessage],
                    max_messages: Some(5),
                },
                WindowRule {
                    duration_seconds: 60,
                    opened_by: vec![WindowOpener::Follow, WindowOpener::Interaction],
                    max_messages: Some(3),
                },
            ]),
            template_purposes: vec![],
            quiet_hours: vec![],
            limits: switchboard_contract::model::Limits {
                max_text_length: 600,
                text_unit: Default::default(),
                template_parameters: Default::default(),
                max_batch_size: 1,
                messages_per_second: 10,
            },
            egress_hosts: vec![],
            secrets: vec![],
            settings: vec![],
            deduplicates: false,
        }
    }

    fn event(kind: EventKind) -> Event {
        Event {
            id: "e".into(),
            occurred_at_ms: 1,
            kind,
        }
    }

    #[test]
    fn inbound_messages_follows_and_interactions_open_their_windows() {
        let info = wechat();
        let inbound = effects(
            &info,
            &ConsentPolicy::default(),
            &event(EventKind::Inbound(InboundMessage {
                sender: "o1".into(),
                text: Some("hi".into()),
                kind: "text".into(),
            })),
        );
        assert_eq!(
            inbound[1],
            Effect::OpenWindow {
                address: "o1".into(),
                opener: WindowOpener::InboundMessage
            }
        );
        let follow = effects(
            &info,
            &ConsentPolicy::default(),
            &event(EventKind::OptIn(ConsentChange {
                address: "o1".into(),
                purpose: None,
            })),
        );
        assert_eq!(
            follow,
            [
                Effect::OpenWindow {
                    address: "o1".into(),
                    opener: WindowOpener::Follow
                },
                // A follow opts into what the operator chose: utility by default.
                Effect::Consent(LedgerChange {
                    address: "o1".into(),
                    purpose: Some(Purpose::Utility),
                    opted_in: true,
                    source: "webhook:wechat".into()
                })
            ]
        );
        let click = effects(
            &info,
            &ConsentPolicy::default(),
            &event(EventKind::Interaction(Interaction {
                address: "o1".into(),
                opener: WindowOpener::Interaction,
                kind: "CLICK".into(),
            })),
        );
        assert_eq!(click.len(), 1);
        // A channel without windows opens none.
        let mut always = wechat();
        always.free_form = FreeFormRule::Always;
        let inbound = effects(
            &always,
            &ConsentPolicy::default(),
            &event(EventKind::Inbound(InboundMessage {
                sender: "o1".into(),
                text: None,
                kind: "image".into(),
            })),
        );
        assert_eq!(inbound.len(), 1);
    }

    #[test]
    fn statuses_and_opt_outs() {
        let info = wechat();
        let status = effects(
            &info,
            &ConsentPolicy::default(),
            &event(EventKind::Status(StatusUpdate {
                platform_message_id: None,
                state: DeliveryState::Failed,
                recipient: None,
                failure: Some(Failure::new("43101", "user refused")),
                correlation_key: Some("key".into()),
            })),
        );
        assert_eq!(
            status,
            [Effect::Status {
                platform_message_id: None,
                correlation_key: Some("key".into()),
                state: DeliveryState::Failed,
                failure: Some("(43101) user refused".into()),
            }]
        );
        let out = effects(
            &info,
            &ConsentPolicy::default(),
            &event(EventKind::OptOut(ConsentChange {
                address: "o1".into(),
                purpose: Some(Purpose::Marketing),
            })),
        );
        assert!(matches!(&out[..], [Effect::Consent(change)] if !change.opted_in));
    }

    #[test]
    fn an_event_from_the_future_is_refused() {
        let now = 1_800_000_000_000;
        let mut forged = event(EventKind::OptIn(ConsentChange {
            address: "o1".into(),
            purpose: None,
        }));
        forged.occurred_at_ms = now + 365 * 86_400_000;
        let reason = refuse(&forged, now).expect("refused");
        assert!(reason.contains("ahead of the host's clock"), "{reason}");
        forged.occurred_at_ms = now + 60_000;
        assert_eq!(refuse(&forged, now), None, "a minute of drift is fine");
    }
}
