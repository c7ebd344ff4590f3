//! Request bodies for `POST /v2/bot/message/push` and
//! `POST /v2/bot/message/multicast`, the `X-Line-Retry-Key` of each request,
//! and the plan that turns a batch into requests.
//!
//! Everything here is pure: it checks the host's [`OutboundMessage`]s
//! (LINE user ids, text length in UTF-16 code units), groups identical texts
//! into multicast requests of at most [`MAX_MULTICAST_RECIPIENTS`], and
//! derives retry keys deterministically from the host's idempotency keys so
//! that a retry reuses the key of the first attempt.

use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_sdk::types::{Content, Failure, OutboundMessage, SendError};

/// Longest text LINE accepts, in UTF-16 code units (LINE counts like Java:
/// an emoji outside the Basic Multilingual Plane is two).
pub const MAX_TEXT_UTF16_UNITS: usize = 5_000;
/// Most user ids one multicast request may carry.
pub const MAX_MULTICAST_RECIPIENTS: usize = 500;
/// Path of the push endpoint (one recipient).
pub const PUSH_PATH: &str = "/v2/bot/message/push";
/// Path of the multicast endpoint (1 to 500 recipients, same messages).
pub const MULTICAST_PATH: &str = "/v2/bot/message/multicast";

/// `{base_url}{path}`, tolerating a trailing slash on the base URL.
pub fn endpoint_url(base_url: &str, path: &str) -> String {
    format!("{}{path}", base_url.trim().trim_end_matches('/'))
}

/// Whether `id` is a LINE user id: `U` followed by 32 lowercase hex digits.
pub fn is_user_id(id: &str) -> bool {
    id.len() == 33
        && id.starts_with('U')
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The length of `text` as LINE counts it: UTF-16 code units.
pub fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The text of `message`, or the error LINE would answer anyway, found
/// before any request is made:
///
/// - a `to` that is not a LINE user id is `recipient-unreachable` (the
///   audience's `line_id` is unusable: try the next channel);
/// - a template is `invalid-content` (LINE has no templates);
/// - empty text, or text over [`MAX_TEXT_UTF16_UNITS`], is `invalid-content`.
pub fn check_message(message: &OutboundMessage) -> Result<&str, SendError> {
    if !is_user_id(&message.to) {
        return Err(SendError::RecipientUnreachable(Failure::new(
            "",
            format!(
                "`{}` is not a LINE user id (U followed by 32 lowercase hex digits)",
                message.to
            ),
        )));
    }
    let text = match &message.content {
        Content::Text(text) => text.as_str(),
        Content::Template(template) => {
            return Err(invalid(&format!(
                "LINE has no message templates (got template `{}`); send text",
                template.name
            )));
        }
    };
    if text.is_empty() {
        return Err(invalid("the text is empty; LINE refuses empty messages"));
    }
    let length = utf16_len(text);
    if length > MAX_TEXT_UTF16_UNITS {
        return Err(invalid(&format!(
            "the text is {length} UTF-16 code units long; LINE accepts at most {MAX_TEXT_UTF16_UNITS}"
        )));
    }
    Ok(text)
}

fn invalid(message: &str) -> SendError {
    SendError::InvalidContent(Failure::new("", message))
}

/// The retry key of a push: a UUID (version-4 layout) made of the first
/// 16 bytes of `SHA-256("line-push\n" + idempotency key)`.
pub fn push_retry_key(idempotency_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"line-push\n");
    hasher.update(idempotency_key.as_bytes());
    uuid_from_digest(&hasher.finalize())
}

/// The retry key of a multicast: a UUID (version-4 layout) made of the first
/// 16 bytes of `SHA-256("line-multicast\n" + for each member's idempotency
/// key, sorted: "{length}:{key}\n")`. The order of the batch does not
/// matter, and the length prefix keeps different key lists apart.
pub fn multicast_retry_key<'a>(idempotency_keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut keys: Vec<&str> = idempotency_keys.into_iter().collect();
    keys.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(b"line-multicast\n");
    for key in keys {
        hasher.update(format!("{}:{key}\n", key.len()).as_bytes());
    }
    uuid_from_digest(&hasher.finalize())
}

/// The first 16 bytes of `digest` as a lowercase hyphenated UUID with the
/// version nibble set to 4 and the RFC 4122 variant, which LINE accepts.
fn uuid_from_digest(digest: &[u8]) -> String {
    let mut bytes = [0u8; 16];
    for (slot, byte) in bytes.iter_mut().zip(digest) {
        *slot = *byte;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// One text message object: `{"type":"text","text":"…"}`.
#[derive(Debug, Clone, Serialize)]
struct TextMessage<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

/// `{"to":"U…","messages":[…]}`.
#[derive(Debug, Clone, Serialize)]
struct PushBody<'a> {
    to: &'a str,
    messages: [TextMessage<'a>; 1],
}

/// `{"to":["U…",…],"messages":[…]}`.
#[derive(Debug, Clone, Serialize)]
struct MulticastBody<'a> {
    to: &'a [String],
    messages: [TextMessage<'a>; 1],
}

/// Which endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v2/bot/message/push`: one recipient.
    Push,
    /// `POST /v2/bot/message/multicast`: several recipients, same text.
    Multicast,
}

impl Endpoint {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Push => PUSH_PATH,
            Endpoint::Multicast => MULTICAST_PATH,
        }
    }

    /// `push` or `multicast`, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Push => "push",
            Endpoint::Multicast => "multicast",
        }
    }
}

/// A message of the batch that passed [`check_message`], ready to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Its position in the batch (results go back in the same order).
    pub index: usize,
    /// The host's idempotency key.
    pub key: &'a str,
    /// The recipient's LINE user id.
    pub to: &'a str,
    /// The text to send.
    pub text: &'a str,
    /// 1 on the first attempt.
    pub attempt: u32,
}

/// A multicast that an earlier attempt of a message was part of: its retry
/// key and every recipient it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    /// The multicast's `X-Line-Retry-Key`.
    pub retry_key: String,
    /// The user ids of the whole group, in the order first sent.
    pub recipients: Vec<String>,
}

/// One request to make, and the batch messages whose result it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Push or multicast.
    pub endpoint: Endpoint,
    /// Positions in the batch of the messages this request carries.
    pub members: Vec<usize>,
    /// The user ids in `to` (one for a push).
    pub recipients: Vec<String>,
    /// The text, identical for every member.
    pub text: String,
    /// The `X-Line-Retry-Key`.
    pub retry_key: String,
    /// Whether this resends a multicast an earlier attempt made (its
    /// recipients may include messages that are not in this batch).
    pub resend: bool,
}

impl Planned {
    /// The JSON request body.
    pub fn body(&self) -> serde_json::Value {
        let messages = [TextMessage {
            kind: "text",
            text: &self.text,
        }];
        let value = match self.endpoint {
            Endpoint::Push => serde_json::to_value(PushBody {
                to: self.recipients.first().map_or("", String::as_str),
                messages,
            }),
            Endpoint::Multicast => serde_json::to_value(MulticastBody {
                to: &self.recipients,
                messages,
            }),
        };
        // Serialising strings and arrays of strings cannot fail.
        value.unwrap_or_default()
    }
}

/// Turn checked messages into requests.
///
/// 1. A retry (`attempt > 1`) whose earlier attempt was part of a multicast
///    that `recall` remembers (and which lists its recipient) resends that
///    multicast, with the same retry key and the same recipients, so LINE
///    either answers 409 (already accepted) or delivers the group once.
///    Messages of the batch remembered under the same key share the
///    request. `recall` is asked about retries only.
/// 2. Any other retry is a push with its own retry key: it is never
///    regrouped, since a new group would have a new key.
/// 3. First attempts are grouped by identical text, in batch order, into
///    multicasts of at most [`MAX_MULTICAST_RECIPIENTS`] distinct user ids;
///    a group of one is a push.
///
/// Requests come out in the batch order of their first member.
pub fn plan(
    candidates: &[Candidate<'_>],
    mut recall: impl FnMut(&str) -> Option<Remembered>,
) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Vec::new();
    // Fresh groups by text: for each text, the chunks being filled.
    let mut fresh: Vec<(&str, Vec<Vec<&Candidate<'_>>>)> = Vec::new();
    let mut order: Vec<(usize, Slot)> = Vec::new();

    for candidate in candidates {
        if let Some(remembered) = (candidate.attempt > 1)
            .then(|| recall(candidate.key))
            .flatten()
            .filter(|r| r.recipients.iter().any(|to| to == candidate.to))
        {
            match planned
                .iter_mut()
                .find(|p| p.resend && p.retry_key == remembered.retry_key)
            {
                Some(existing) => existing.members.push(candidate.index),
                None => {
                    order.push((candidate.index, Slot::Planned(planned.len())));
                    planned.push(Planned {
                        endpoint: Endpoint::Multicast,
                        members: vec![candidate.index],
                        recipients: remembered.recipients,
                        text: candidate.text.to_owned(),
                        retry_key: remembered.retry_key,
                        resend: true,
                    });
                }
            }
            continue;
        }
        if candidate.attempt > 1 {
            order.push((candidate.index, Slot::Planned(planned.len())));
            planned.push(push(candidate));
            continue;
        }
        let group = match fresh.iter().position(|(text, _)| *text == candidate.text) {
            Some(position) => position,
            None => {
                fresh.push((candidate.text, Vec::new()));
                fresh.len() - 1
            }
        };
        let chunks = &mut fresh[group].1;
        let open = chunks.iter().position(|chunk| {
            chunk.len() < MAX_MULTICAST_RECIPIENTS && chunk.iter().all(|c| c.to != candidate.to)
        });
        match open {
            Some(chunk) => chunks[chunk].push(candidate),
            None => {
                order.push((candidate.index, Slot::Fresh(group, chunks.len())));
                chunks.push(vec![candidate]);
            }
        }
    }

    let mut requests = Vec::with_capacity(order.len());
    let mut taken: Vec<Option<Planned>> = planned.into_iter().map(Some).collect();
    for (_, slot) in order {
        match slot {
            Slot::Planned(i) => {
                if let Some(request) = taken.get_mut(i).and_then(Option::take) {
                    requests.push(request);
                }
            }
            Slot::Fresh(group, chunk) => {
                let members = &fresh[group].1[chunk];
                requests.push(match members.as_slice() {
                    [single] => push(single),
                    _ => Planned {
                        endpoint: Endpoint::Multicast,
                        members: members.iter().map(|c| c.index).collect(),
                        recipients: members.iter().map(|c| c.to.to_owned()).collect(),
                        text: fresh[group].0.to_owned(),
                        retry_key: multicast_retry_key(members.iter().map(|c| c.key)),
                        resend: false,
                    },
                });
            }
        }
    }
    requests
}

/// Where a request of the plan comes from, in batch order.
enum Slot {
    /// An entry of the already planned requests.
    Planned(usize),
    /// A fresh chunk: (text group, chunk).
    Fresh(usize, usize),
}

fn push(candidate: &Candidate<'_>) -> Planned {
    Planned {
        endpoint: Endpoint::Push,
        members: vec![candidate.index],
        recipients: vec![candidate.to.to_owned()],
        text: candidate.text.to_owned(),
        retry_key: push_retry_key(candidate.key),
        resend: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::types::{Purpose, TemplateMessage};

    const ANA: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const BEN: &str = "U0123456789abcdef0123456789abcdef";
    const KEY: &str = "3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f1b3d5c7a9e0f2b4d6c8a0e2f4b6d8c0a";

    fn user(n: usize) -> String {
        format!("U{n:032x}")
    }

    fn message(to: &str, content: Content) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: KEY.into(),
            to: to.into(),
            purpose: Purpose::Marketing,
            content,
            ttl_seconds: None,
            attempt: 1,
        }
    }

    fn failure_text(error: &SendError) -> &str {
        &error.failure().message
    }

    #[test]
    fn user_ids_are_u_and_32_lowercase_hex() {
        assert!(is_user_id(ANA));
        assert!(is_user_id(BEN));
        assert!(!is_user_id("u4af4980629a1b2c3d4e5f60718293a4b"));
        assert!(!is_user_id("U4AF4980629A1B2C3D4E5F60718293A4B"));
        assert!(!is_user_id("U4af4980629a1b2c3d4e5f60718293a4"));
        assert!(!is_user_id("U4af4980629a1b2c3d4e5f60718293a4bb"));
        assert!(!is_user_id("C4af4980629a1b2c3d4e5f60718293a4b"));
        assert!(!is_user_id("U4af4980629a1b2c3d4e5f60718293a4g"));
        assert!(!is_user_id(""));
        assert!(!is_user_id("Ué4980629a1b2c3d4e5f60718293a4b"));
    }

    #[test]
    fn text_length_counts_utf16_code_units() {
        assert_eq!(utf16_len("hello"), 5);
        assert_eq!(utf16_len("héllo"), 5);
        assert_eq!(utf16_len("こんにちは"), 5);
        // Outside the BMP: two code units each.
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀b"), 4);
    }

    #[test]
    fn accepts_text_up_to_the_limit_in_utf16_units() {
        let at_limit = "a".repeat(MAX_TEXT_UTF16_UNITS);
        assert_eq!(
            check_message(&message(ANA, Content::Text(at_limit.clone()))).ok(),
            Some(at_limit.as_str())
        );
        // 2,500 emoji are 2,500 characters but 5,000 code units: still fine.
        let emoji = "😀".repeat(MAX_TEXT_UTF16_UNITS / 2);
        assert!(check_message(&message(ANA, Content::Text(emoji))).is_ok());
    }

    #[test]
    fn rejects_text_over_the_limit_as_invalid_content() {
        // 2,501 emoji: 2,501 characters, 5,002 code units.
        let emoji = "😀".repeat(MAX_TEXT_UTF16_UNITS / 2 + 1);
        let error = check_message(&message(ANA, Content::Text(emoji))).expect_err("too long");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert_eq!(
            failure_text(&error),
            "the text is 5002 UTF-16 code units long; LINE accepts at most 5000"
        );
        let error =
            check_message(&message(ANA, Content::Text("a".repeat(5_001)))).expect_err("too long");
        assert!(failure_text(&error).contains("5001 UTF-16 code units"));
    }

    #[test]
    fn rejects_empty_text_and_templates() {
        let error = check_message(&message(ANA, Content::Text(String::new()))).expect_err("empty");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert_eq!(
            failure_text(&error),
            "the text is empty; LINE refuses empty messages"
        );
        let template = Content::Template(TemplateMessage {
            name: "winback_offer".into(),
            language: None,
            parameters: Vec::new(),
            link: None,
        });
        let error = check_message(&message(ANA, template)).expect_err("template");
        assert!(matches!(error, SendError::InvalidContent(_)));
        assert_eq!(
            failure_text(&error),
            "LINE has no message templates (got template `winback_offer`); send text"
        );
    }

    #[test]
    fn a_malformed_user_id_is_unreachable() {
        let error = check_message(&message("+4915112345678", Content::Text("hi".into())))
            .expect_err("not a user id");
        assert!(matches!(error, SendError::RecipientUnreachable(_)));
        assert_eq!(
            failure_text(&error),
            "`+4915112345678` is not a LINE user id (U followed by 32 lowercase hex digits)"
        );
    }

    fn is_uuid_v4_layout(key: &str) -> bool {
        let parts: Vec<&str> = key.split('-').collect();
        parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && key
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
            && parts[2].starts_with('4')
            && matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b'))
    }

    #[test]
    fn push_retry_keys_are_stable_uuids() {
        let key = push_retry_key(KEY);
        assert!(is_uuid_v4_layout(&key), "{key}");
        assert_eq!(key, push_retry_key(KEY));
        assert_ne!(key, push_retry_key(&KEY.replace('3', "4")));
        assert_eq!(push_retry_key(KEY).len(), 36);
    }

    #[test]
    fn multicast_retry_keys_ignore_order_and_differ_from_push() {
        let a = multicast_retry_key(["k1", "k2", "k3"]);
        assert!(is_uuid_v4_layout(&a), "{a}");
        assert_eq!(a, multicast_retry_key(["k3", "k1", "k2"]));
        assert_ne!(a, multicast_retry_key(["k1", "k2"]));
        assert_ne!(multicast_retry_key(["k1"]), push_retry_key("k1"));
        // "k1\nk2" must not collide with "k1" + "k2" split differently.
        assert_ne!(
            multicast_retry_key(["k1\nk2"]),
            multicast_retry_key(["k1", "k2"])
        );
    }

    #[test]
    fn retry_key_derivation_is_pinned() {
        // Computed independently (Python hashlib). A change here would make
        // retries after an upgrade use new keys, so LINE could not
        // deduplicate them: change the derivation only on purpose.
        assert_eq!(
            push_retry_key("abc"),
            "9cc97433-abc1-4749-87b8-d9944ea727b6"
        );
        assert_eq!(
            multicast_retry_key(["k2", "k1"]),
            "cc191e83-ad01-410b-8195-ecd64052a95c"
        );
    }

    fn candidate<'a>(index: usize, key: &'a str, to: &'a str, text: &'a str) -> Candidate<'a> {
        Candidate {
            index,
            key,
            to,
            text,
            attempt: 1,
        }
    }

    #[test]
    fn unique_texts_go_by_push_and_identical_ones_by_multicast() {
        let (c, d) = (user(3), user(4));
        let candidates = [
            candidate(0, "k0", ANA, "Hi Ana"),
            candidate(1, "k1", BEN, "Sale!"),
            candidate(2, "k2", &c, "Hi Chen"),
            candidate(3, "k3", &d, "Sale!"),
        ];
        let requests = plan(&candidates, |_| None);
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert_eq!(requests[0].endpoint, Endpoint::Push);
        assert_eq!(requests[0].members, vec![0]);
        assert_eq!(requests[0].retry_key, push_retry_key("k0"));
        assert_eq!(requests[1].endpoint, Endpoint::Multicast);
        assert_eq!(requests[1].members, vec![1, 3]);
        assert_eq!(requests[1].recipients, vec![BEN.to_owned(), d.clone()]);
        assert_eq!(requests[1].retry_key, multicast_retry_key(["k1", "k3"]));
        assert!(!requests[1].resend);
        assert_eq!(requests[2].endpoint, Endpoint::Push);
        assert_eq!(requests[2].members, vec![2]);
        assert_eq!(
            requests[1].body(),
            serde_json::json!({"to": [BEN, d], "messages": [{"type": "text", "text": "Sale!"}]})
        );
        assert_eq!(
            requests[0].body(),
            serde_json::json!({"to": ANA, "messages": [{"type": "text", "text": "Hi Ana"}]})
        );
    }

    #[test]
    fn multicasts_hold_at_most_500_distinct_recipients() {
        let users: Vec<String> = (0..1_001).map(user).collect();
        let keys: Vec<String> = (0..1_001).map(|i| format!("k{i}")).collect();
        let candidates: Vec<Candidate<'_>> = (0..1_001)
            .map(|i| candidate(i, &keys[i], &users[i], "Same"))
            .collect();
        let requests = plan(&candidates, |_| None);
        let sizes: Vec<(Endpoint, usize)> = requests
            .iter()
            .map(|r| (r.endpoint, r.recipients.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (Endpoint::Multicast, 500),
                (Endpoint::Multicast, 500),
                (Endpoint::Push, 1)
            ]
        );
        assert_eq!(requests[2].members, vec![1_000]);
    }

    #[test]
    fn the_same_user_twice_is_not_put_in_one_multicast() {
        let c = user(3);
        let candidates = [
            candidate(0, "k0", ANA, "Same"),
            candidate(1, "k1", ANA, "Same"),
            candidate(2, "k2", &c, "Same"),
        ];
        let requests = plan(&candidates, |_| None);
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(requests[0].endpoint, Endpoint::Multicast);
        assert_eq!(requests[0].members, vec![0, 2]);
        assert_eq!(requests[1].endpoint, Endpoint::Push);
        assert_eq!(requests[1].members, vec![1]);
    }

    #[test]
    fn retries_resend_the_remembered_multicast_or_push_alone() {
        let c = user(3);
        let group = Remembered {
            retry_key: multicast_retry_key(["k0", "k1", "k2"]),
            recipients: vec![ANA.to_owned(), BEN.to_owned(), c.clone()],
        };
        let mut candidates = [
            candidate(0, "k1", BEN, "Same"),
            candidate(1, "k9", ANA, "Same"),
            candidate(2, "k2", &c, "Same"),
        ];
        for c in &mut candidates {
            c.attempt = 2;
        }
        let requests = plan(&candidates, |key| {
            (key == "k1" || key == "k2").then(|| group.clone())
        });
        assert_eq!(requests.len(), 2, "{requests:?}");
        // Both remembered members share one resend of the whole group.
        assert_eq!(requests[0].endpoint, Endpoint::Multicast);
        assert!(requests[0].resend);
        assert_eq!(requests[0].members, vec![0, 2]);
        assert_eq!(requests[0].recipients, group.recipients);
        assert_eq!(requests[0].retry_key, group.retry_key);
        // A retry with nothing remembered is pushed alone, never regrouped.
        assert_eq!(requests[1].endpoint, Endpoint::Push);
        assert_eq!(requests[1].members, vec![1]);
        assert_eq!(requests[1].retry_key, push_retry_key("k9"));
    }

    #[test]
    fn first_attempts_are_never_looked_up() {
        let mut asked = Vec::new();
        let requests = plan(
            &[
                candidate(0, "k0", ANA, "Same"),
                candidate(1, "k1", BEN, "Same"),
            ],
            |key| {
                asked.push(key.to_owned());
                None
            },
        );
        assert!(asked.is_empty(), "{asked:?}");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].endpoint, Endpoint::Multicast);
    }

    #[test]
    fn a_remembered_group_that_lacks_the_recipient_is_ignored() {
        let group = Remembered {
            retry_key: "00000000-0000-4000-8000-000000000000".into(),
            recipients: vec![BEN.to_owned()],
        };
        let mut only = candidate(0, "k0", ANA, "Same");
        only.attempt = 2;
        let requests = plan(&[only], |_| Some(group.clone()));
        assert_eq!(requests[0].endpoint, Endpoint::Push);
        assert_eq!(requests[0].retry_key, push_retry_key("k0"));
    }

    #[test]
    fn urls_join_base_and_path() {
        assert_eq!(
            endpoint_url("https://api.line.me/", PUSH_PATH),
            "https://api.line.me/v2/bot/message/push"
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000", Endpoint::Multicast.path()),
            "http://127.0.0.1:9000/v2/bot/message/multicast"
        );
    }
}
