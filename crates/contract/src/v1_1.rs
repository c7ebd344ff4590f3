//! Contract 1.1.0 (`wit/1.1.0`): its generated bindings and the shim that
//! maps them onto the neutral [`model`](crate::model), which follows this
//! version closely.

use crate::model;

/// The code `wasmtime::component::bindgen!` generates from `wit/1.1.0`.
#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/1.1.0",
        world: "channel-adapter",
        imports: { default: async },
        exports: { default: async },
    });
}
pub use generated::*;

use self::switchboard::channel::{config, log, outcomes, storage, token_cache, types};

/// The contract version these bindings implement.
pub const VERSION: &str = "1.1.0";

impl From<types::AddressKind> for model::AddressKind {
    fn from(kind: types::AddressKind) -> Self {
        match kind {
            types::AddressKind::PhoneNumber => model::AddressKind::PhoneNumber,
            types::AddressKind::PlatformUserId => model::AddressKind::PlatformUserId,
        }
    }
}

impl From<types::Purpose> for model::Purpose {
    fn from(purpose: types::Purpose) -> Self {
        match purpose {
            types::Purpose::Marketing => model::Purpose::Marketing,
            types::Purpose::Utility => model::Purpose::Utility,
            types::Purpose::Authentication => model::Purpose::Authentication,
            types::Purpose::Service => model::Purpose::Service,
        }
    }
}

impl From<model::Purpose> for types::Purpose {
    fn from(purpose: model::Purpose) -> Self {
        match purpose {
            model::Purpose::Marketing => types::Purpose::Marketing,
            model::Purpose::Utility => types::Purpose::Utility,
            model::Purpose::Authentication => types::Purpose::Authentication,
            model::Purpose::Service => types::Purpose::Service,
        }
    }
}

impl From<types::WindowOpener> for model::WindowOpener {
    fn from(opener: types::WindowOpener) -> Self {
        match opener {
            types::WindowOpener::InboundMessage => model::WindowOpener::InboundMessage,
            types::WindowOpener::Follow => model::WindowOpener::Follow,
            types::WindowOpener::Interaction => model::WindowOpener::Interaction,
            types::WindowOpener::Payment => model::WindowOpener::Payment,
        }
    }
}

impl From<types::WindowRule> for model::WindowRule {
    fn from(rule: types::WindowRule) -> Self {
        Self {
            duration_seconds: rule.duration_seconds,
            opened_by: rule.opened_by.into_iter().map(Into::into).collect(),
            max_messages: rule.max_messages,
        }
    }
}

impl From<types::FreeFormRule> for model::FreeFormRule {
    fn from(rule: types::FreeFormRule) -> Self {
        match rule {
            types::FreeFormRule::Always => model::FreeFormRule::Always,
            types::FreeFormRule::WithinWindow(rules) => {
                model::FreeFormRule::WithinWindow(rules.into_iter().map(Into::into).collect())
            }
            types::FreeFormRule::Never => model::FreeFormRule::Never,
        }
    }
}

impl From<types::QuietHours> for model::QuietHours {
    fn from(quiet: types::QuietHours) -> Self {
        Self {
            time_zone: quiet.time_zone,
            start_minute: quiet.start_minute,
            end_minute: quiet.end_minute,
            purposes: quiet.purposes.into_iter().map(Into::into).collect(),
            reason: quiet.reason,
        }
    }
}

impl From<types::TextUnit> for model::TextUnit {
    fn from(unit: types::TextUnit) -> Self {
        match unit {
            types::TextUnit::UnicodeScalarValues => model::TextUnit::UnicodeScalarValues,
            types::TextUnit::Utf16CodeUnits => model::TextUnit::Utf16CodeUnits,
            types::TextUnit::Utf8Bytes => model::TextUnit::Utf8Bytes,
        }
    }
}

impl From<types::Limits> for model::Limits {
    fn from(limits: types::Limits) -> Self {
        let rules = limits.template_parameters;
        Self {
            max_text_length: limits.max_text_length,
            text_unit: limits.text_unit.into(),
            template_parameters: model::ParameterRules {
                max_length: rules.max_length,
                allow_newlines: rules.allow_newlines,
                allow_tabs: rules.allow_tabs,
                max_consecutive_spaces: rules.max_consecutive_spaces,
            },
            max_batch_size: limits.max_batch_size,
            messages_per_second: limits.messages_per_second,
        }
    }
}

impl From<types::ChannelInfo> for model::ChannelInfo {
    fn from(info: types::ChannelInfo) -> Self {
        Self {
            name: info.name,
            display_name: info.display_name,
            address_kind: info.address_kind.into(),
            free_form: info.free_form.into(),
            template_purposes: info.template_purposes.into_iter().map(Into::into).collect(),
            quiet_hours: info.quiet_hours.into_iter().map(Into::into).collect(),
            limits: info.limits.into(),
            egress_hosts: info.egress_hosts,
            secrets: info.secrets,
            settings: info.settings,
            deduplicates: info.deduplicates,
        }
    }
}

impl From<&model::OutboundMessage> for types::OutboundMessage {
    fn from(message: &model::OutboundMessage) -> Self {
        Self {
            idempotency_key: message.idempotency_key.clone(),
            to: message.to.clone(),
            purpose: message.purpose.into(),
            content: match &message.content {
                model::Content::Text(text) => types::Content::Text(text.clone()),
                model::Content::Template(template) => {
                    types::Content::Template(types::TemplateMessage {
                        name: template.name.clone(),
                        language: template.language.clone(),
                        parameters: template
                            .parameters
                            .iter()
                            .map(|p| types::TemplateParameter {
                                name: p.name.clone(),
                                value: p.value.clone(),
                            })
                            .collect(),
                        link: template.link.clone(),
                    })
                }
            },
            ttl_seconds: message.ttl_seconds,
            attempt: message.attempt,
        }
    }
}

impl From<types::Failure> for model::Failure {
    fn from(failure: types::Failure) -> Self {
        Self {
            code: failure.code,
            message: failure.message,
        }
    }
}

impl From<types::Receipt> for model::Receipt {
    fn from(receipt: types::Receipt) -> Self {
        Self {
            platform_message_id: receipt.platform_message_id.filter(|id| !id.is_empty()),
            duplicate: receipt.duplicate,
        }
    }
}

impl From<types::RateLimitScope> for model::RateLimitScope {
    fn from(scope: types::RateLimitScope) -> Self {
        match scope {
            types::RateLimitScope::Sender => model::RateLimitScope::Sender,
            types::RateLimitScope::Recipient => model::RateLimitScope::Recipient,
            types::RateLimitScope::Quota => model::RateLimitScope::Quota,
        }
    }
}

impl From<types::SendError> for model::SendError {
    fn from(error: types::SendError) -> Self {
        use types::SendError as V;
        match error {
            V::RateLimited(limited) => model::SendError::RateLimited(model::RateLimited {
                scope: limited.scope.into(),
                retry_after_ms: limited.retry_after_ms,
                failure: limited.failure.into(),
            }),
            V::Transient(f) => model::SendError::Transient(f.into()),
            V::Permanent(f) => model::SendError::Permanent(f.into()),
            V::WindowClosed(f) => model::SendError::WindowClosed(f.into()),
            V::RecipientUnreachable(f) => model::SendError::RecipientUnreachable(f.into()),
            V::OptedOut(f) => model::SendError::OptedOut(f.into()),
            V::AuthFailed(f) => model::SendError::AuthFailed(f.into()),
            V::InvalidContent(f) => model::SendError::InvalidContent(f.into()),
            V::Uncertain(f) => model::SendError::Uncertain(f.into()),
            V::Deferred(deferral) => model::SendError::Deferred(model::Deferral {
                until_ms: deferral.until_ms,
                failure: deferral.failure.into(),
            }),
        }
    }
}

impl From<&model::HttpRequest> for types::HttpRequest {
    fn from(request: &model::HttpRequest) -> Self {
        Self {
            method: request.method.clone(),
            path_and_query: request.path_and_query.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        }
    }
}

impl From<types::DeliveryState> for model::DeliveryState {
    fn from(state: types::DeliveryState) -> Self {
        match state {
            types::DeliveryState::Accepted => model::DeliveryState::Accepted,
            types::DeliveryState::Sent => model::DeliveryState::Sent,
            types::DeliveryState::Delivered => model::DeliveryState::Delivered,
            types::DeliveryState::Read => model::DeliveryState::Read,
            types::DeliveryState::Failed => model::DeliveryState::Failed,
            types::DeliveryState::Expired => model::DeliveryState::Expired,
        }
    }
}

impl From<types::ConsentChange> for model::ConsentChange {
    fn from(change: types::ConsentChange) -> Self {
        Self {
            address: change.address,
            purpose: change.purpose.map(Into::into),
        }
    }
}

impl From<types::EventKind> for model::EventKind {
    fn from(kind: types::EventKind) -> Self {
        match kind {
            types::EventKind::Status(status) => model::EventKind::Status(model::StatusUpdate {
                platform_message_id: status.platform_message_id.filter(|id| !id.is_empty()),
                state: status.state.into(),
                recipient: status.recipient,
                failure: status.failure.map(Into::into),
                correlation_key: status.correlation_key.filter(|key| !key.is_empty()),
            }),
            types::EventKind::Inbound(inbound) => {
                model::EventKind::Inbound(model::InboundMessage {
                    sender: inbound.sender,
                    text: inbound.text,
                    kind: inbound.kind,
                })
            }
            types::EventKind::OptIn(change) => model::EventKind::OptIn(change.into()),
            types::EventKind::OptOut(change) => model::EventKind::OptOut(change.into()),
            types::EventKind::Interaction(interaction) => {
                model::EventKind::Interaction(model::Interaction {
                    address: interaction.address,
                    opener: interaction.opener.into(),
                    kind: interaction.kind,
                })
            }
        }
    }
}

impl From<types::WebhookResult> for model::WebhookResult {
    fn from(result: types::WebhookResult) -> Self {
        Self {
            response: model::HttpResponse {
                status: result.response.status,
                headers: result.response.headers,
                body: result.response.body,
            },
            events: result
                .events
                .into_iter()
                .map(|event| model::Event {
                    id: event.id,
                    occurred_at_ms: event.occurred_at_ms,
                    kind: event.kind.into(),
                })
                .collect(),
        }
    }
}

/// The host side of the imports 1.1.0 added or kept, for a version module
/// whose `config`, `token_cache`, `storage`, `outcomes` and `log` modules
/// are in scope: 1.2.0 has the same imports under its own names.
#[macro_export]
#[doc(hidden)]
macro_rules! __shim_imports_since_1_1 {
    () => {
        impl From<log::Level> for $crate::model::LogLevel {
            fn from(level: log::Level) -> Self {
                match level {
                    log::Level::Debug => $crate::model::LogLevel::Debug,
                    log::Level::Info => $crate::model::LogLevel::Info,
                    log::Level::Warn => $crate::model::LogLevel::Warn,
                    log::Level::Error => $crate::model::LogLevel::Error,
                }
            }
        }

        impl From<$crate::model::StorageError> for storage::StorageError {
            fn from(error: $crate::model::StorageError) -> Self {
                match error {
                    $crate::model::StorageError::TooLarge(why) => {
                        storage::StorageError::TooLarge(why)
                    }
                    $crate::model::StorageError::QuotaExceeded(why) => {
                        storage::StorageError::QuotaExceeded(why)
                    }
                    $crate::model::StorageError::Unavailable(why) => {
                        storage::StorageError::Unavailable(why)
                    }
                }
            }
        }

        impl<T: $crate::Imports> config::Host for $crate::instance::Shim<'_, T> {
            async fn get(&mut self, key: String) -> Option<String> {
                $crate::Imports::setting(self.0, key).await
            }

            async fn secret(&mut self, key: String) -> Option<String> {
                $crate::Imports::secret(self.0, key).await
            }
        }

        impl<T: $crate::Imports> token_cache::Host for $crate::instance::Shim<'_, T> {
            async fn get(&mut self, key: String) -> Option<String> {
                $crate::Imports::token_get(self.0, key).await
            }

            async fn lock(&mut self, key: String) -> Option<String> {
                $crate::Imports::token_lock(self.0, key).await
            }

            async fn set(&mut self, key: String, value: String, ttl_seconds: u32) {
                $crate::Imports::token_set(self.0, key, value, ttl_seconds).await
            }

            async fn invalidate(&mut self, key: String) {
                $crate::Imports::token_invalidate(self.0, key).await
            }
        }

        impl<T: $crate::Imports> storage::Host for $crate::instance::Shim<'_, T> {
            async fn get(&mut self, key: String) -> Option<String> {
                $crate::Imports::storage_get(self.0, key).await
            }

            async fn put(
                &mut self,
                key: String,
                value: String,
                ttl_seconds: Option<u32>,
            ) -> Result<(), storage::StorageError> {
                $crate::Imports::storage_put(self.0, key, value, ttl_seconds)
                    .await
                    .map_err(Into::into)
            }

            async fn put_if_absent(
                &mut self,
                key: String,
                value: String,
                ttl_seconds: Option<u32>,
            ) -> Result<String, storage::StorageError> {
                $crate::Imports::storage_put_if_absent(self.0, key, value, ttl_seconds)
                    .await
                    .map_err(Into::into)
            }

            async fn delete(&mut self, key: String) {
                $crate::Imports::storage_delete(self.0, key).await
            }
        }

        impl<T: $crate::Imports> outcomes::Host for $crate::instance::Shim<'_, T> {
            async fn report(
                &mut self,
                index: u32,
                outcome: Result<types::Receipt, types::SendError>,
            ) {
                let outcome = outcome.map(Into::into).map_err(Into::into);
                $crate::Imports::report_outcome(self.0, index, outcome).await
            }
        }

        impl<T: $crate::Imports> log::Host for $crate::instance::Shim<'_, T> {
            async fn write(&mut self, level: log::Level, message: String) {
                $crate::Imports::log(self.0, level.into(), message).await
            }
        }
    };
}

crate::__shim_imports_since_1_1!();

impl<T: crate::Imports> types::Host for crate::instance::Shim<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_info_keeps_window_rules_per_opener_and_units() {
        let info = model::ChannelInfo::from(types::ChannelInfo {
            name: "wechat".into(),
            display_name: "WeChat".into(),
            address_kind: types::AddressKind::PlatformUserId,
            free_form: types::FreeFormRule::WithinWindow(vec![
                types::WindowRule {
                    duration_seconds: 48 * 3600,
                    opened_by: vec![types::WindowOpener::InboundMessage],
                    max_messages: Some(5),
                },
                types::WindowRule {
                    duration_seconds: 60,
                    opened_by: vec![
                        types::WindowOpener::Follow,
                        types::WindowOpener::Interaction,
                    ],
                    max_messages: Some(3),
                },
            ]),
            template_purposes: vec![types::Purpose::Utility],
            quiet_hours: vec![],
            limits: types::Limits {
                max_text_length: 5000,
                text_unit: types::TextUnit::Utf16CodeUnits,
                template_parameters: types::ParameterRules {
                    max_length: Some(1024),
                    allow_newlines: false,
                    allow_tabs: false,
                    max_consecutive_spaces: Some(4),
                },
                max_batch_size: 500,
                messages_per_second: 100,
            },
            egress_hosts: vec![],
            secrets: vec![],
            settings: vec![],
            deduplicates: true,
        });
        let model::FreeFormRule::WithinWindow(rules) = &info.free_form else {
            panic!("window rules expected");
        };
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].duration_seconds, 60);
        assert_eq!(
            rules[1].opened_by,
            [
                model::WindowOpener::Follow,
                model::WindowOpener::Interaction
            ]
        );
        assert_eq!(info.limits.text_unit, model::TextUnit::Utf16CodeUnits);
        assert_eq!(
            info.limits.template_parameters,
            model::ParameterRules {
                max_length: Some(1024),
                allow_newlines: false,
                allow_tabs: false,
                max_consecutive_spaces: Some(4),
            }
        );
        assert!(info.deduplicates);
    }

    #[test]
    fn receipts_without_id_and_errors_map() {
        let receipt = model::Receipt::from(types::Receipt {
            platform_message_id: None,
            duplicate: false,
        });
        assert_eq!(receipt.platform_message_id, None);
        let error = model::SendError::from(types::SendError::Uncertain(types::Failure {
            code: String::new(),
            message: "reset".into(),
        }));
        assert_eq!(error.class(), "uncertain");
        assert_eq!(error.failure().message, "reset");
    }

    #[test]
    fn outbound_messages_keep_every_field() {
        let message = model::OutboundMessage {
            idempotency_key: "k".into(),
            to: "U1".into(),
            purpose: model::Purpose::Utility,
            content: model::Content::Text("hi".into()),
            ttl_seconds: None,
            attempt: 1,
        };
        let wire = types::OutboundMessage::from(&message);
        assert_eq!(wire.to, "U1");
        assert_eq!(wire.purpose, types::Purpose::Utility);
        assert!(matches!(wire.content, types::Content::Text(ref t) if t == "hi"));
    }

    #[test]
    fn events_carry_expiry_correlation_and_interactions() {
        let result = model::WebhookResult::from(types::WebhookResult {
            response: types::HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
            },
            events: vec![
                types::Event {
                    id: "e1".into(),
                    occurred_at_ms: 1,
                    kind: types::EventKind::Status(types::StatusUpdate {
                        platform_message_id: None,
                        state: types::DeliveryState::Expired,
                        recipient: None,
                        failure: None,
                        correlation_key: Some("key-1".into()),
                    }),
                },
                types::Event {
                    id: "e2".into(),
                    occurred_at_ms: 2,
                    kind: types::EventKind::Interaction(types::Interaction {
                        address: "oOPEN".into(),
                        opener: types::WindowOpener::Interaction,
                        kind: "CLICK".into(),
                    }),
                },
            ],
        });
        assert_eq!(
            result.events[0].kind,
            model::EventKind::Status(model::StatusUpdate {
                platform_message_id: None,
                state: model::DeliveryState::Expired,
                recipient: None,
                failure: None,
                correlation_key: Some("key-1".into()),
            })
        );
        assert_eq!(
            result.events[1].kind,
            model::EventKind::Interaction(model::Interaction {
                address: "oOPEN".into(),
                opener: model::WindowOpener::Interaction,
                kind: "CLICK".into(),
            })
        );
    }

    #[test]
    fn storage_errors_map() {
        assert!(matches!(
            storage::StorageError::from(model::StorageError::QuotaExceeded("1000".into())),
            storage::StorageError::QuotaExceeded(why) if why == "1000"
        ));
    }
}
