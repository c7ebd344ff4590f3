//! NHN Cloud's send APIs:
//!
//! - `POST /alimtalk/v2.3/appkeys/{appkey}/messages` and `…/auth/messages`;
//! - `POST /brand-message/v1.0/appkeys/{appkey}/freestyle-messages`;
//! - `POST /friendtalk/{version}/appkeys/{appkey}/messages`, retired (-9992).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng as _;
use serde_json::{Map, Value, json};

use super::error::{NhnError, codes, recipient_message};
use super::{
    IDEMPOTENCY_HEADER, IDEMPOTENCY_WINDOW_SECS, KakaoMessage, KakaoRequest, KakaoTalkState,
    MAX_ALIMTALK_CHARS, MAX_BRAND_TEXT_CHARS, MAX_RECIPIENTS, MessageKind, SECRET_KEY_HEADER, kst,
    lock, webhooks,
};

pub(super) fn router(state: Arc<KakaoTalkState>) -> Router {
    Router::new()
        .route(
            "/alimtalk/v2.3/appkeys/{appkey}/messages",
            post(send_alimtalk),
        )
        .route(
            "/alimtalk/v2.3/appkeys/{appkey}/auth/messages",
            post(send_alimtalk_auth),
        )
        .route(
            "/brand-message/v1.0/appkeys/{appkey}/freestyle-messages",
            post(send_brand_message),
        )
        .route(
            "/friendtalk/{version}/appkeys/{appkey}/messages",
            post(retired_friendtalk),
        )
        .with_state(state)
}

async fn send_alimtalk(
    state: State<Arc<KakaoTalkState>>,
    app_key: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(state, app_key, headers, body, MessageKind::AlimTalk).await
}

async fn send_alimtalk_auth(
    state: State<Arc<KakaoTalkState>>,
    app_key: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(state, app_key, headers, body, MessageKind::AlimTalkAuth).await
}

async fn send_brand_message(
    state: State<Arc<KakaoTalkState>>,
    app_key: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    send(state, app_key, headers, body, MessageKind::BrandMessage).await
}

/// Words an authentication message must contain (NHN's list).
const AUTH_WORDS: &[&str] = &[
    "auth",
    "password",
    "verif",
    "にんしょう",
    "認証",
    "비밀번호",
    "인증",
];

async fn send(
    State(state): State<Arc<KakaoTalkState>>,
    Path(app_key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    kind: MessageKind,
) -> Response {
    let (accepted, reply) = match handle(&state, &app_key, &headers, &body, kind).await {
        Ok((reply, accepted)) => (accepted, Json(reply).into_response()),
        Err(error) => {
            state.rejections.record(error.code);
            match error.code {
                codes::DUPLICATE_IDEMPOTENCY_KEY => {
                    state.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                codes::CLIENT_ERROR => {
                    state.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
            tracing::debug!(code = error.code, message = %error.message, "kakaotalk: rejected");
            (false, error.into_response())
        }
    };
    state
        .faults
        .finish_send(accepted, &state.reset_after_accept, reply)
        .await
}

async fn retired_friendtalk(
    State(state): State<Arc<KakaoTalkState>>,
    Path((_version, app_key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let error = authenticate(&state, &app_key, &headers)
        .err()
        .unwrap_or_else(NhnError::retired_api);
    state.rejections.record(error.code);
    error.into_response()
}

fn authenticate(
    state: &KakaoTalkState,
    app_key: &str,
    headers: &HeaderMap,
) -> Result<(), NhnError> {
    if app_key != state.app_key {
        return Err(NhnError::invalid_app_key());
    }
    let secret = headers
        .get(SECRET_KEY_HEADER)
        .and_then(|value| value.to_str().ok());
    if secret != Some(state.secret_key.as_str()) {
        return Err(NhnError::invalid_secret_key());
    }
    Ok(())
}

/// One recipient's outcome before the reply is written.
struct Outcome {
    seq: u32,
    recipient_no: String,
    code: i64,
    message: String,
    recipient_grouping_key: Option<String>,
    /// Set when accepted.
    accepted: Option<Accepted>,
}

struct Accepted {
    content: String,
    parameters: BTreeMap<String, String>,
    targeting: Option<String>,
    resend_send_no: Option<String>,
}

async fn handle(
    state: &Arc<KakaoTalkState>,
    app_key: &str,
    headers: &HeaderMap,
    body: &[u8],
    kind: MessageKind,
) -> Result<(Value, bool), NhnError> {
    authenticate(state, app_key, headers)?;
    if state.take_forced_failure() || state.faults.apply().await {
        return Err(NhnError::system_error());
    }
    if !state.bucket.try_acquire() {
        return Err(NhnError::too_many_requests(state.bucket.rate()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(NhnError::not_json());
    }
    let request: Map<String, Value> = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(NhnError::unreadable_body("the body is not a JSON object")),
        Err(error) => return Err(NhnError::unreadable_body(&error.to_string())),
    };
    let now_ms = state.clock.now_unix_ms();
    let idempotency_key = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(str::to_owned);
    if let Some(key) = &idempotency_key
        && state.idempotency_key_seen(key, now_ms)
    {
        return Err(NhnError::duplicate_idempotency_key());
    }

    let sender_key = string_field(&request, "senderKey")?;
    if sender_key != state.sender_key {
        return Err(NhnError::no_sender());
    }
    let recipients = match request.get("recipientList") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(NhnError::blank("recipientList"));
        }
        Some(_) => {
            return Err(NhnError::invalid_parameter(
                "'recipientList' must be a list",
            ));
        }
    };
    if recipients.len() > MAX_RECIPIENTS {
        return Err(NhnError::out_of_range("recipientList", 1, MAX_RECIPIENTS));
    }
    let sender_grouping_key = optional_string(&request, "senderGroupingKey");

    let (template_code, outcomes, unsubscribe_no) = match kind {
        MessageKind::AlimTalk | MessageKind::AlimTalkAuth => {
            let (code, outcomes) = alimtalk(state, &request, recipients, kind)?;
            (Some(code), outcomes, None)
        }
        MessageKind::BrandMessage => {
            let (outcomes, unsubscribe_no) = brand(state, &request, recipients, now_ms)?;
            (None, outcomes, unsubscribe_no)
        }
    };

    let accepted = outcomes.iter().filter(|o| o.accepted.is_some()).count();
    let request_id = request_id(now_ms);
    if accepted > 0
        && let Some(key) = &idempotency_key
    {
        state.remember_idempotency_key(key, now_ms);
    }
    let mut results = Vec::with_capacity(outcomes.len());
    let mut delivered = Vec::new();
    for outcome in &outcomes {
        let mut result = json!({
            "recipientSeq": outcome.seq,
            "recipientNo": outcome.recipient_no,
            "resultCode": outcome.code,
            "resultMessage": outcome.message,
        });
        if let (Some(key), Some(object)) = (&outcome.recipient_grouping_key, result.as_object_mut())
        {
            object.insert("recipientGroupingKey".into(), json!(key));
        }
        results.push(result);
        match &outcome.accepted {
            None => state.rejections.record(outcome.code),
            Some(accepted) => {
                let message = KakaoMessage {
                    request_id: request_id.clone(),
                    recipient_seq: outcome.seq,
                    recipient_no: outcome.recipient_no.clone(),
                    kind,
                    template_code: template_code.clone(),
                    parameters: accepted.parameters.clone(),
                    content: accepted.content.clone(),
                    targeting: accepted.targeting.clone(),
                    unsubscribe_no: unsubscribe_no.clone(),
                    resend_send_no: accepted.resend_send_no.clone(),
                    idempotency_key: idempotency_key.clone(),
                    sender_grouping_key: sender_grouping_key.clone(),
                    recipient_grouping_key: outcome.recipient_grouping_key.clone(),
                    received_at_ms: now_ms,
                };
                delivered.push(message.clone());
                state.messages.push(message);
                state.accepted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    state.requests.push(KakaoRequest {
        request_id: request_id.clone(),
        kind,
        template_code,
        recipients: outcomes.len(),
        accepted,
        idempotency_key,
        received_at_ms: now_ms,
    });
    webhooks::schedule_results(state, delivered);

    let successful = accepted > 0;
    let (code, message) = if successful {
        (codes::SUCCESS, "SUCCESS")
    } else {
        (
            codes::ALL_RECIPIENTS_FAILED,
            "All of receivers are failed to send.",
        )
    };
    let mut message_body = json!({"requestId": request_id, "sendResults": results});
    if let (Some(key), Some(object)) = (&sender_grouping_key, message_body.as_object_mut()) {
        object.insert("senderGroupingKey".into(), json!(key));
    }
    let mut reply = super::error::header(code, message, successful);
    if let Some(object) = reply.as_object_mut() {
        object.insert("message".into(), message_body);
    }
    Ok((reply, successful))
}

/// AlimTalk: template checks, then each recipient.
fn alimtalk(
    state: &KakaoTalkState,
    request: &Map<String, Value>,
    recipients: &[Value],
    kind: MessageKind,
) -> Result<(String, Vec<Outcome>), NhnError> {
    let code = string_field(request, "templateCode")?;
    if code.chars().count() > 20 {
        return Err(NhnError::too_long("templateCode", 20));
    }
    let template = lock(&state.templates)
        .get(&code)
        .cloned()
        .ok_or_else(|| NhnError::template_missing(&code))?;
    if template.status != super::TemplateStatus::Approved {
        return Err(NhnError::template_not_approved(
            &code,
            template.status.code(),
        ));
    }
    let outcomes = recipients
        .iter()
        .enumerate()
        .map(|(index, recipient)| {
            let seq = seq_of(index);
            let outcome = Outcome::new(seq, recipient);
            if let Some(code) = outcome.number_problem() {
                return outcome.failed(code);
            }
            let parameters = match recipient.get("templateParameter") {
                None | Some(Value::Null) => BTreeMap::new(),
                Some(Value::Object(object)) => {
                    let mut parameters = BTreeMap::new();
                    for (key, value) in object {
                        match value {
                            Value::String(text) => {
                                parameters.insert(key.clone(), text.clone());
                            }
                            _ => return outcome.failed(codes::TEMPLATE_PARAMETER),
                        }
                    }
                    parameters
                }
                Some(_) => return outcome.failed(codes::TEMPLATE_PARAMETER),
            };
            let content = match template.render(&parameters) {
                Ok(content) => content,
                Err(missing) => {
                    return outcome.failed_with(
                        codes::CONTENT_MISMATCH,
                        format!(
                            "{} (no value for {})",
                            recipient_message(codes::CONTENT_MISMATCH),
                            missing
                                .iter()
                                .map(|name| format!("#{{{name}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            };
            if content.chars().count() > MAX_ALIMTALK_CHARS {
                return outcome.failed(codes::LENGTH_LIMIT);
            }
            if kind == MessageKind::AlimTalkAuth && !has_auth_word(&content) {
                return outcome.failed(codes::AUTH_WORD_MISSING);
            }
            let resend_send_no = match recipient.get("resendParameter") {
                None | Some(Value::Null) => None,
                Some(resend) => match valid_resend(resend) {
                    Some(number) => number,
                    None => return outcome.failed(codes::RESEND_INVALID),
                },
            };
            if let Some(code) = outcome.configured_result(state) {
                return outcome.failed(code);
            }
            outcome.accept(Accepted {
                content,
                parameters,
                targeting: None,
                resend_send_no,
            })
        })
        .collect();
    Ok((code, outcomes))
}

/// Brand Message free-form `TEXT`: request checks, then each recipient.
fn brand(
    state: &KakaoTalkState,
    request: &Map<String, Value>,
    recipients: &[Value],
    now_ms: i64,
) -> Result<(Vec<Outcome>, Option<String>), NhnError> {
    let bubble = string_field(request, "chatBubbleType")?;
    if bubble != "TEXT" {
        return Err(NhnError::invalid_parameter(&format!(
            "chatBubbleType {bubble:?}: the simulator serves TEXT only"
        )));
    }
    let content = string_field(request, "content")?;
    if content.chars().count() > MAX_BRAND_TEXT_CHARS {
        return Err(NhnError::too_long("content", MAX_BRAND_TEXT_CHARS));
    }
    let unsubscribe_no = optional_string(request, "unsubscribeNo");
    if let Some(number) = &unsubscribe_no
        && !valid_unsubscribe_no(number)
    {
        return Err(NhnError::unsubscribe_no_invalid());
    }
    for recipient in recipients {
        match recipient.get("targeting").and_then(Value::as_str) {
            Some("I") => {}
            Some("M" | "N") => return Err(NhnError::targeting_not_approved()),
            Some(other) => return Err(NhnError::targeting_invalid(other)),
            None => return Err(NhnError::targeting_invalid("")),
        }
    }
    let night = super::kst::in_night_ban(now_ms);
    let outcomes = recipients
        .iter()
        .enumerate()
        .map(|(index, recipient)| {
            let outcome = Outcome::new(seq_of(index), recipient);
            if let Some(code) = outcome.number_problem() {
                return outcome.failed(code);
            }
            if night {
                return outcome.failed(codes::NIGHT_BAN);
            }
            if let Some(code) = outcome.configured_result(state) {
                return outcome.failed(code);
            }
            outcome.accept(Accepted {
                content: content.clone(),
                parameters: BTreeMap::new(),
                targeting: Some("I".into()),
                resend_send_no: None,
            })
        })
        .collect();
    Ok((outcomes, unsubscribe_no))
}

impl Outcome {
    fn new(seq: u32, recipient: &Value) -> Self {
        Self {
            seq,
            recipient_no: recipient
                .get("recipientNo")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            code: codes::SUCCESS,
            message: recipient_message(codes::SUCCESS).to_owned(),
            recipient_grouping_key: recipient
                .get("recipientGroupingKey")
                .and_then(Value::as_str)
                .map(str::to_owned),
            accepted: None,
        }
    }

    /// -5000 for something that is not a number NHN takes, 3008 for a
    /// number that is not a Korean mobile number.
    fn number_problem(&self) -> Option<i64> {
        let number = self.recipient_no.as_str();
        if number.is_empty() || number.len() > 15 || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Some(codes::RECIPIENT_NO_INVALID);
        }
        if !super::is_korean_mobile(number) {
            return Some(codes::PHONE_NUMBER_ERROR);
        }
        None
    }

    fn configured_result(&self, state: &KakaoTalkState) -> Option<i64> {
        lock(&state.recipient_results)
            .get(&self.recipient_no)
            .copied()
    }

    fn failed(self, code: i64) -> Self {
        let message = recipient_message(code).to_owned();
        self.failed_with(code, message)
    }

    fn failed_with(mut self, code: i64, message: String) -> Self {
        self.code = code;
        self.message = message;
        self
    }

    fn accept(mut self, accepted: Accepted) -> Self {
        self.accepted = Some(accepted);
        self
    }
}

/// `recipientSeq` of the recipient at `index` (from 1).
fn seq_of(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

/// A required string field: -2001 when missing, null or blank.
fn string_field(request: &Map<String, Value>, field: &str) -> Result<String, NhnError> {
    match request.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.clone()),
        Some(Value::String(_)) | Some(Value::Null) | None => Err(NhnError::blank(field)),
        Some(_) => Err(NhnError::invalid_parameter(&format!(
            "'{field}' must be a string"
        ))),
    }
}

fn optional_string(request: &Map<String, Value>, field: &str) -> Option<String> {
    request
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

fn has_auth_word(text: &str) -> bool {
    let lower = text.to_lowercase();
    AUTH_WORDS.iter().any(|word| lower.contains(word))
}

/// The fallback sender number of a valid `resendParameter` (`None` inside
/// when it has none), or `None` when it is invalid.
fn valid_resend(resend: &Value) -> Option<Option<String>> {
    let object = resend.as_object()?;
    if let Some(flag) = object.get("isResend")
        && !flag.is_boolean()
    {
        return None;
    }
    if let Some(kind) = object.get("resendType")
        && !matches!(kind.as_str(), Some("SMS" | "LMS"))
    {
        return None;
    }
    match object.get("resendSendNo") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(number))
            if (8..=12).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(Some(number.clone()))
        }
        Some(_) => None,
    }
}

/// `080-xxx-xxxx`, `080-xxxx-xxxx`, `080xxxxxxx` or `080xxxxxxxx`.
fn valid_unsubscribe_no(number: &str) -> bool {
    let digits: String = number.chars().filter(|c| *c != '-').collect();
    digits.starts_with("080")
        && (10..=11).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// NHN-style request id: KST `yyyyMMddHHmmss` and 11 random letters and digits.
fn request_id(now_ms: i64) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&rand::distr::Alphanumeric)
        .take(11)
        .map(char::from)
        .collect();
    format!("{}{suffix}", kst::Local::of(now_ms).compact())
}

impl KakaoTalkState {
    fn take_forced_failure(&self) -> bool {
        self.fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Whether `key` was accepted within the last 10 minutes.
    fn idempotency_key_seen(&self, key: &str, now_ms: i64) -> bool {
        lock(&self.idempotency_keys)
            .get(key)
            .is_some_and(|&expires_ms| now_ms < expires_ms)
    }

    fn remember_idempotency_key(&self, key: &str, now_ms: i64) {
        let mut keys = lock(&self.idempotency_keys);
        keys.retain(|_, &mut expires_ms| now_ms < expires_ms);
        keys.insert(key.to_owned(), now_ms + IDEMPOTENCY_WINDOW_SECS * 1000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_words_resend_and_unsubscribe_numbers() {
        assert!(has_auth_word("인증번호는 123456"));
        assert!(has_auth_word("Your VERIFICATION code"));
        assert!(!has_auth_word("주문이 발송되었습니다"));
        assert_eq!(
            valid_resend(
                &json!({"isResend": true, "resendType": "SMS", "resendSendNo": "0212345678"})
            ),
            Some(Some("0212345678".to_owned()))
        );
        assert_eq!(valid_resend(&json!({"isResend": true})), Some(None));
        assert_eq!(valid_resend(&json!({"resendType": "MMS"})), None);
        assert_eq!(valid_resend(&json!({"resendSendNo": "02-1234"})), None);
        assert_eq!(valid_resend(&json!("SMS")), None);
        for ok in ["080-123-4567", "080-1234-5678", "0801234567", "08012345678"] {
            assert!(valid_unsubscribe_no(ok), "{ok}");
        }
        for bad in ["0212345678", "080-12", "080abc4567", ""] {
            assert!(!valid_unsubscribe_no(bad), "{bad}");
        }
    }

    #[test]
    fn request_ids_look_like_nhn_ones() {
        // 2026-11-10 21:00:00 KST.
        let id = request_id(1_794_312_000_000);
        assert_eq!(id.len(), 25);
        assert!(id.starts_with("20261110210000"), "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
