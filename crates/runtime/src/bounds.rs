//! What an adapter's answers may make the host hold: checked as each call
//! returns, before anything is stored or acted on. An oversized platform id,
//! webhook reply or event list fails the call with [`CallError::BoundExceeded`]
//! naming the bound; a long failure message is cut (it is only text for
//! operators, and the platform's error pages are long).
//!
//! [`CallError::BoundExceeded`]: crate::CallError::BoundExceeded

use switchboard_contract::model::{EventKind, Failure, SendResult, WebhookResult};

use crate::SandboxLimits;
use crate::redact::Redactor;

/// Longest event id, address, kind or correlation key an event may carry.
const MAX_EVENT_FIELD_BYTES: usize = 1024;
/// Longest inbound message text kept in an event.
const MAX_INBOUND_TEXT_BYTES: usize = 64 * 1024;

/// `text` cut to at most `max` bytes at a character boundary, marked as cut.
pub fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
}

fn cut_failure(failure: &mut Failure, limits: &SandboxLimits) {
    cut(&mut failure.message, limits.max_failure_message_bytes);
    cut(&mut failure.code, 64);
}

/// Check one message's outcome in place: platform ids within bounds,
/// failure messages cut. The error names the bound.
pub fn check_send_result(result: &mut SendResult, limits: &SandboxLimits) -> Result<(), String> {
    match result {
        Ok(receipt) => {
            if let Some(id) = &receipt.platform_message_id
                && id.len() > limits.max_platform_id_bytes
            {
                return Err(format!(
                    "a platform message id of {} bytes (limit {}, `max_platform_id_bytes`)",
                    id.len(),
                    limits.max_platform_id_bytes
                ));
            }
        }
        Err(error) => cut_failure(error.failure_mut(), limits),
    }
    Ok(())
}

/// Blank secrets in a message's failure text.
pub fn redact_send_result(result: &mut SendResult, redactor: &Redactor) {
    if let Err(error) = result {
        let failure = error.failure_mut();
        failure.message = redactor.redact(&failure.message);
    }
}

/// Blank secrets in the failure texts of a webhook's status events.
pub fn redact_webhook_result(result: &mut WebhookResult, redactor: &Redactor) {
    for event in &mut result.events {
        if let EventKind::Status(status) = &mut event.kind
            && let Some(failure) = &mut status.failure
        {
            failure.message = redactor.redact(&failure.message);
        }
    }
}

/// Check a webhook call's answer in place.
pub fn check_webhook_result(
    result: &mut WebhookResult,
    limits: &SandboxLimits,
) -> Result<(), String> {
    let reply = result.response.body.len()
        + result
            .response
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>();
    if reply > limits.max_webhook_reply_bytes {
        return Err(format!(
            "a webhook reply of {reply} bytes (limit {}, `max_webhook_reply_bytes`)",
            limits.max_webhook_reply_bytes
        ));
    }
    if result.events.len() > limits.max_webhook_events {
        return Err(format!(
            "{} events from one webhook (limit {}, `max_webhook_events`)",
            result.events.len(),
            limits.max_webhook_events
        ));
    }
    for event in &mut result.events {
        let mut fields: Vec<(&str, usize)> = vec![("event id", event.id.len())];
        match &mut event.kind {
            EventKind::Status(status) => {
                if let Some(id) = &status.platform_message_id
                    && id.len() > limits.max_platform_id_bytes
                {
                    return Err(format!(
                        "a status event's platform message id of {} bytes (limit {}, `max_platform_id_bytes`)",
                        id.len(),
                        limits.max_platform_id_bytes
                    ));
                }
                fields.push((
                    "recipient",
                    status.recipient.as_ref().map_or(0, String::len),
                ));
                fields.push((
                    "correlation key",
                    status.correlation_key.as_ref().map_or(0, String::len),
                ));
                if let Some(failure) = &mut status.failure {
                    cut_failure(failure, limits);
                }
            }
            EventKind::Inbound(inbound) => {
                fields.push(("sender", inbound.sender.len()));
                fields.push(("kind", inbound.kind.len()));
                if let Some(text) = &mut inbound.text {
                    cut(text, MAX_INBOUND_TEXT_BYTES);
                }
            }
            EventKind::OptIn(change) | EventKind::OptOut(change) => {
                fields.push(("address", change.address.len()));
            }
            EventKind::Interaction(interaction) => {
                fields.push(("address", interaction.address.len()));
                fields.push(("kind", interaction.kind.len()));
            }
        }
        if let Some((field, bytes)) = fields
            .into_iter()
            .find(|(_, bytes)| *bytes > MAX_EVENT_FIELD_BYTES)
        {
            return Err(format!(
                "an event's {field} of {bytes} bytes (limit {MAX_EVENT_FIELD_BYTES})"
            ));
        }
    }
    Ok(())
}

/// A log line as the host writes it: control characters escaped, so an
/// adapter cannot forge lines or terminal sequences.
pub fn escape_log_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use switchboard_contract::model::{
        DeliveryState, Event, HttpResponse, Receipt, SendError, StatusUpdate,
    };

    use super::*;

    #[test]
    fn long_failure_messages_are_cut_at_a_character_boundary() {
        let limits = SandboxLimits::default();
        let mut result: SendResult = Err(SendError::Permanent(Failure::new(
            "131000",
            "é".repeat(5000),
        )));
        check_send_result(&mut result, &limits).unwrap();
        let error = result.unwrap_err();
        let message = &error.failure().message;
        assert!(
            message.len() <= limits.max_failure_message_bytes,
            "{}",
            message.len()
        );
        assert!(message.ends_with('…'));
    }

    #[test]
    fn an_oversized_platform_id_fails_naming_the_bound() {
        let limits = SandboxLimits::default();
        let mut result: SendResult = Ok(Receipt {
            platform_message_id: Some("x".repeat(50 * 1024 * 1024)),
            duplicate: false,
        });
        let error = check_send_result(&mut result, &limits).unwrap_err();
        assert!(
            error.contains("52428800 bytes") && error.contains("max_platform_id_bytes"),
            "{error}"
        );
    }

    fn webhook(events: usize, body: usize) -> WebhookResult {
        WebhookResult {
            response: HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: vec![b'x'; body],
            },
            events: (0..events)
                .map(|i| Event {
                    id: format!("e{i}"),
                    occurred_at_ms: 0,
                    kind: EventKind::Status(StatusUpdate {
                        platform_message_id: Some("wamid".into()),
                        state: DeliveryState::Delivered,
                        recipient: None,
                        failure: None,
                        correlation_key: None,
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn webhook_replies_and_event_counts_are_bounded() {
        let limits = SandboxLimits::default();
        assert!(check_webhook_result(&mut webhook(1000, 1024), &limits).is_ok());
        let error = check_webhook_result(&mut webhook(200_000, 0), &limits).unwrap_err();
        assert!(
            error.contains("200000 events") && error.contains("max_webhook_events"),
            "{error}"
        );
        let error = check_webhook_result(&mut webhook(0, 48 << 20), &limits).unwrap_err();
        assert!(error.contains("max_webhook_reply_bytes"), "{error}");
        let mut long_id = webhook(1, 0);
        long_id.events[0].id = "i".repeat(10_000);
        assert!(
            check_webhook_result(&mut long_id, &limits)
                .unwrap_err()
                .contains("event id")
        );
    }

    #[test]
    fn log_lines_cannot_forge_other_lines() {
        assert_eq!(
            escape_log_line("ok\nINFO adapter loaded channel=whatsapp\u{1b}[2J"),
            "ok\\nINFO adapter loaded channel=whatsapp\\u{1b}[2J"
        );
    }
}
