//! Contract 1.0.0 (`wit/1.0.0`, released): its generated bindings and the
//! shim that maps them onto the neutral [`model`](crate::model).
//!
//! What 1.0.0 lacks is filled in with what it implied: one window rule,
//! lengths in Unicode scalar values, no template-parameter rules of its own,
//! a platform message id on every receipt. Its imports are served by the
//! same [`Imports`](crate::Imports) implementation as every other version,
//! so host policy lives in one place.

use crate::model;

/// The code `wasmtime::component::bindgen!` generates from `wit/1.0.0`.
#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit/1.0.0",
        world: "channel-adapter",
        imports: { default: async },
        exports: { default: async },
    });
}
pub use generated::*;

use self::switchboard::channel::{config, log, token_cache, types};

/// The contract version these bindings implement.
pub const VERSION: &str = "1.0.0";

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
    /// 1.0.0 has one window per channel: it becomes a list of one.
    fn from(rule: types::FreeFormRule) -> Self {
        match rule {
            types::FreeFormRule::Always => model::FreeFormRule::Always,
            types::FreeFormRule::WithinWindow(rule) => {
                model::FreeFormRule::WithinWindow(vec![rule.into()])
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

impl From<types::Limits> for model::Limits {
    /// 1.0.0 counts Unicode scalar values and declares no parameter rules.
    fn from(limits: types::Limits) -> Self {
        Self {
            max_text_length: limits.max_text_length,
            text_unit: model::TextUnit::UnicodeScalarValues,
            template_parameters: model::ParameterRules::default(),
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
    /// 1.0.0 always carries an id; an empty one means the platform gave none.
    fn from(receipt: types::Receipt) -> Self {
        Self {
            platform_message_id: Some(receipt.platform_message_id).filter(|id| !id.is_empty()),
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
                platform_message_id: Some(status.platform_message_id),
                state: status.state.into(),
                recipient: status.recipient,
                failure: status.failure.map(Into::into),
                correlation_key: None,
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

impl From<log::Level> for model::LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Debug => model::LogLevel::Debug,
            log::Level::Info => model::LogLevel::Info,
            log::Level::Warn => model::LogLevel::Warn,
            log::Level::Error => model::LogLevel::Error,
        }
    }
}

impl<T: crate::Imports> config::Host for crate::instance::Shim<'_, T> {
    async fn get(&mut self, key: String) -> Option<String> {
        crate::Imports::setting(self.0, key).await
    }

    async fn secret(&mut self, key: String) -> Option<String> {
        crate::Imports::secret(self.0, key).await
    }
}

impl<T: crate::Imports> token_cache::Host for crate::instance::Shim<'_, T> {
    async fn get(&mut self, key: String) -> Option<String> {
        crate::Imports::token_get(self.0, key).await
    }

    async fn lock(&mut self, key: String) -> Option<String> {
        crate::Imports::token_lock(self.0, key).await
    }

    async fn set(&mut self, key: String, value: String, ttl_seconds: u32) {
        crate::Imports::token_set(self.0, key, value, ttl_seconds).await
    }

    async fn invalidate(&mut self, key: String) {
        crate::Imports::token_invalidate(self.0, key).await
    }
}

impl<T: crate::Imports> log::Host for crate::instance::Shim<'_, T> {
    async fn write(&mut self, level: log::Level, message: String) {
        crate::Imports::log(self.0, level.into(), message).await
    }
}

impl<T: crate::Imports> types::Host for crate::instance::Shim<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(free_form: types::FreeFormRule) -> types::ChannelInfo {
        types::ChannelInfo {
            name: "wechat".into(),
            display_name: "WeChat".into(),
            address_kind: types::AddressKind::PlatformUserId,
            free_form,
            template_purposes: vec![types::Purpose::Utility],
            quiet_hours: vec![types::QuietHours {
                time_zone: "Asia/Shanghai".into(),
                start_minute: 1320,
                end_minute: 480,
                purposes: vec![types::Purpose::Marketing],
                reason: "night".into(),
            }],
            limits: types::Limits {
                max_text_length: 600,
                max_batch_size: 1,
                messages_per_second: 20,
            },
            egress_hosts: vec!["api.weixin.qq.com".into()],
            secrets: vec!["app_secret".into()],
            settings: vec!["app_id".into()],
            deduplicates: false,
        }
    }

    #[test]
    fn channel_info_gets_one_window_and_1_0_defaults() {
        let model =
            model::ChannelInfo::from(info(types::FreeFormRule::WithinWindow(types::WindowRule {
                duration_seconds: 48 * 3600,
                opened_by: vec![
                    types::WindowOpener::InboundMessage,
                    types::WindowOpener::Follow,
                ],
                max_messages: Some(5),
            })));
        assert_eq!(
            model.free_form,
            model::FreeFormRule::WithinWindow(vec![model::WindowRule {
                duration_seconds: 48 * 3600,
                opened_by: vec![
                    model::WindowOpener::InboundMessage,
                    model::WindowOpener::Follow
                ],
                max_messages: Some(5),
            }])
        );
        assert_eq!(model.limits.text_unit, model::TextUnit::UnicodeScalarValues);
        assert_eq!(
            model.limits.template_parameters,
            model::ParameterRules::default()
        );
        assert_eq!(model.limits.max_text_length, 600);
        assert_eq!(model.quiet_hours[0].purposes, [model::Purpose::Marketing]);
        assert_eq!(model.settings, ["app_id"]);
        assert_eq!(
            model::ChannelInfo::from(info(types::FreeFormRule::Never)).free_form,
            model::FreeFormRule::Never
        );
    }

    #[test]
    fn outbound_messages_keep_every_field() {
        let message = model::OutboundMessage {
            idempotency_key: "k".into(),
            to: "+491".into(),
            purpose: model::Purpose::Marketing,
            content: model::Content::Template(model::TemplateMessage {
                name: "winback".into(),
                language: Some("en_US".into()),
                parameters: vec![model::TemplateParameter {
                    name: "1".into(),
                    value: "Mina".into(),
                }],
                link: Some("https://x.example".into()),
            }),
            ttl_seconds: Some(60),
            attempt: 2,
        };
        let wire = types::OutboundMessage::from(&message);
        assert_eq!(wire.idempotency_key, "k");
        assert_eq!(wire.purpose, types::Purpose::Marketing);
        assert_eq!(wire.ttl_seconds, Some(60));
        assert_eq!(wire.attempt, 2);
        let types::Content::Template(template) = wire.content else {
            panic!("template expected");
        };
        assert_eq!(template.parameters[0].value, "Mina");
        assert_eq!(template.link.as_deref(), Some("https://x.example"));
    }

    #[test]
    fn receipts_and_errors_map_by_class() {
        let receipt = model::Receipt::from(types::Receipt {
            platform_message_id: "wamid.1".into(),
            duplicate: true,
        });
        assert_eq!(receipt.platform_message_id.as_deref(), Some("wamid.1"));
        assert!(receipt.duplicate);
        let empty = model::Receipt::from(types::Receipt {
            platform_message_id: String::new(),
            duplicate: false,
        });
        assert_eq!(empty.platform_message_id, None);

        let failure = || types::Failure {
            code: "131047".into(),
            message: "window".into(),
        };
        let error = model::SendError::from(types::SendError::WindowClosed(failure()));
        assert_eq!(error.class(), "window_closed");
        assert_eq!(error.failure().code, "131047");
        let limited = model::SendError::from(types::SendError::RateLimited(types::RateLimited {
            scope: types::RateLimitScope::Recipient,
            retry_after_ms: Some(6000),
            failure: failure(),
        }));
        assert_eq!(
            limited,
            model::SendError::RateLimited(model::RateLimited {
                scope: model::RateLimitScope::Recipient,
                retry_after_ms: Some(6000),
                failure: model::Failure::new("131047", "window"),
            })
        );
        let deferred = model::SendError::from(types::SendError::Deferred(types::Deferral {
            until_ms: 9,
            failure: failure(),
        }));
        assert_eq!(deferred.class(), "deferred");
    }

    #[test]
    fn webhook_events_map_with_no_correlation_key() {
        let result = model::WebhookResult::from(types::WebhookResult {
            response: types::HttpResponse {
                status: 200,
                headers: vec![],
                body: b"ok".to_vec(),
            },
            events: vec![
                types::Event {
                    id: "e1".into(),
                    occurred_at_ms: 5,
                    kind: types::EventKind::Status(types::StatusUpdate {
                        platform_message_id: "wamid.1".into(),
                        state: types::DeliveryState::Read,
                        recipient: Some("+491".into()),
                        failure: None,
                    }),
                },
                types::Event {
                    id: "e2".into(),
                    occurred_at_ms: 6,
                    kind: types::EventKind::OptOut(types::ConsentChange {
                        address: "+491".into(),
                        purpose: Some(types::Purpose::Marketing),
                    }),
                },
            ],
        });
        assert_eq!(result.response.body, b"ok");
        assert_eq!(
            result.events[0].kind,
            model::EventKind::Status(model::StatusUpdate {
                platform_message_id: Some("wamid.1".into()),
                state: model::DeliveryState::Read,
                recipient: Some("+491".into()),
                failure: None,
                correlation_key: None,
            })
        );
        assert_eq!(
            result.events[1].kind,
            model::EventKind::OptOut(model::ConsentChange {
                address: "+491".into(),
                purpose: Some(model::Purpose::Marketing),
            })
        );
    }

    #[test]
    fn http_requests_pass_through() {
        let request = model::HttpRequest {
            method: "POST".into(),
            path_and_query: "/webhooks/x?a=1".into(),
            headers: vec![("x-sig".into(), "abc".into())],
            body: b"{}".to_vec(),
        };
        let wire = types::HttpRequest::from(&request);
        assert_eq!(wire.method, "POST");
        assert_eq!(wire.path_and_query, "/webhooks/x?a=1");
        assert_eq!(wire.headers, request.headers);
        assert_eq!(wire.body, b"{}");
    }
}
