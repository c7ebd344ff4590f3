//! The durable memory of sent requests, so that a retry reuses the
//! `X-NC-API-IDEMPOTENCY-KEY` of the request its message went out in.
//!
//! NHN deduplicates requests, not messages: a request carrying a message
//! fails with -1005 only if it has the same key as one NHN took in the last
//! 10 minutes. The key of a grouped request is derived from the keys of the
//! messages that happen to share its batch, and the host retries each
//! message on its own schedule (after a crash, possibly in another host
//! process), so a retried message would land in another group with another
//! key, and NHN would deliver it a second time. So, before a request is
//! sent, the adapter records in the host's durable storage:
//!
//! 1. per message, under [`member_key`], the key of the request it goes out
//!    in (also for a request of one);
//! 2. for a request of several, its body, in chunks under [`chunk_key`],
//!    then under [`head_key`] its API and number of chunks.
//!
//! All with `put-if-absent`, members first and the head last, so the first
//! attempt fixes the request, and a head exists only for a request whose
//! every member points at it. A retry (`attempt` > 1) looks its message up
//! ([`recall`]) and:
//!
//! - finds no request: it was never sent (or NHN settled it and the record
//!   was released), so it is grouped afresh;
//! - finds the request of one derived from its own key: it is sent alone,
//!   which rebuilds that request exactly;
//! - finds a recorded request of several: that request is resent whole,
//!   under its key, from the recorded body ([`load`]). NHN answers -1005 if
//!   it had taken it, or sends it once to everyone;
//! - finds the outcome a resend in another call settled it with: that
//!   outcome, without a request.
//!
//! The lookup is a `put-if-absent` too (see [`recall`]), so a storage
//! failure is an error, never mistaken for "nothing recorded". Any storage
//! error sends nothing: the messages concerned are `transient`.
//!
//! Records live [`TTL_SECONDS`], less than NHN's 10-minute window: after
//! it, NHN would not recognise the key anyway, and a whole request must not
//! be resent to people who already have it. After a reply ([`settle`]),
//! the records of settled messages are deleted, as are those of recipients
//! NHN refused for a passing reason (they were not sent, so their retry is
//! grouped afresh); the outcome of a resent recipient whose message was not
//! in the batch is recorded for its own retry.
//!
//! Everything here works on a [`Store`]: the host's storage in the adapter,
//! a map in the unit tests.

use std::collections::HashSet;

use switchboard_sdk::types::{Failure, Receipt, SendError};

use crate::payload::{Api, Outgoing, recipients_of, request_idempotency_key};

/// How long records are kept, in seconds: NHN's 10-minute idempotency
/// window, less a minute for the clocks of the hosts and NHN to disagree.
pub const TTL_SECONDS: u32 = 9 * 60;

/// The most bytes of a request body kept in one stored value.
pub const CHUNK_BYTES: usize = 32 * 1024;

/// What a retry's lookup proposes: nothing was recorded for the message.
pub const FREE: &str = "free";

/// A head's value for a request that was never sent.
pub const NEVER_SENT: &str = "";

/// The prefix of a member record holding the outcome a resend settled it with.
const OUTCOME_PREFIX: &str = "outcome:";

/// Durable storage as the request memory uses it; every write lives
/// [`TTL_SECONDS`].
pub trait Store {
    /// The live value under `key`, if any (a read that fails is `None`).
    fn get(&mut self, key: &str) -> Option<String>;
    /// Store `value` under `key` unless a live value is there; the value
    /// stored afterwards, or why the host refused.
    fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String>;
    /// Store `value` under `key`, replacing any value.
    fn put(&mut self, key: &str, value: &str) -> Result<(), String>;
    /// Remove `key`.
    fn delete(&mut self, key: &str);
}

/// The storage key of a message's record.
pub fn member_key(idempotency_key: &str) -> String {
    format!("kakaotalk:request-of:{idempotency_key}")
}

/// The storage key of a recorded request's head.
pub fn head_key(request_key: &str) -> String {
    format!("kakaotalk:request:{request_key}")
}

/// The storage key of a recorded request's body chunk `index`.
pub fn chunk_key(request_key: &str, index: usize) -> String {
    format!("kakaotalk:request:{request_key}:{index}")
}

/// `body` cut into pieces of at most [`CHUNK_BYTES`], at character boundaries.
pub fn chunks(body: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let mut end = rest.len().min(CHUNK_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// What a retry's lookup found.
#[derive(Debug, Clone)]
pub enum Recall {
    /// Nothing was sent for it: group it afresh.
    Fresh,
    /// It was sent in a request of its own: send it alone again.
    Alone,
    /// It was sent in the recorded request of several with this key, whose
    /// head is recorded as `head`.
    Resend {
        /// The request's `X-NC-API-IDEMPOTENCY-KEY`.
        key: String,
        /// Its recorded head (API and number of chunks).
        head: String,
    },
    /// A resend in another call settled it with this outcome.
    Settled(Result<Receipt, SendError>),
}

/// Look up the retried message with `idempotency_key` (see the module
/// docs). The lookup writes [`FREE`] when nothing is recorded and removes
/// it again, and marks a request that was recorded but never sent
/// ([`NEVER_SENT`]) so that nothing can send it later.
pub fn recall(store: &mut impl Store, idempotency_key: &str) -> Result<Recall, SendError> {
    let member = member_key(idempotency_key);
    let recorded = store
        .put_if_absent(&member, FREE)
        .map_err(|why| not_recorded(&why))?;
    if recorded == FREE {
        store.delete(&member);
        return Ok(Recall::Fresh);
    }
    if let Some(outcome) = recorded.strip_prefix(OUTCOME_PREFIX) {
        return Ok(match decode_outcome(outcome) {
            Some(outcome) => Recall::Settled(outcome),
            // Unreadable: resending would be guesswork; it may have been sent.
            None => Recall::Settled(Err(SendError::Uncertain(Failure::new(
                "",
                "a resend of this message's request settled it, but its outcome could not be read",
            )))),
        });
    }
    if recorded == request_idempotency_key([idempotency_key]) {
        return Ok(Recall::Alone);
    }
    let head = store
        .put_if_absent(&head_key(&recorded), NEVER_SENT)
        .map_err(|why| not_recorded(&why))?;
    if head == NEVER_SENT {
        // Claimed but never sent: nothing went out under that key.
        store.delete(&member);
        return Ok(Recall::Fresh);
    }
    Ok(Recall::Resend {
        key: recorded,
        head,
    })
}

/// The recorded request with key `request_key` and head `head` (as
/// [`recall`] found them), ready to resend for the messages of this batch
/// it carries (`members`: batch index and idempotency key). `Ok(None)` when
/// it carries none of them (the records disagree: they were not sent in
/// it). A chunk that cannot be read is an error: nothing is sent.
pub fn load(
    store: &mut impl Store,
    request_key: &str,
    head: &str,
    members: &[(usize, &str)],
) -> Result<Option<Outgoing>, SendError> {
    let unreadable = |what: &str| {
        SendError::Transient(Failure::new(
            "",
            format!(
                "not sent: request {request_key} is recorded, but {what} could not be read from the host's storage"
            ),
        ))
    };
    let (api, count) = head
        .split_once(':')
        .and_then(|(api, count)| Some((Api::from_code(api)?, count.parse::<usize>().ok()?)))
        .ok_or_else(|| unreadable("its head"))?;
    let mut body = String::new();
    for index in 0..count {
        let chunk = store
            .get(&chunk_key(request_key, index))
            .ok_or_else(|| unreadable("its body"))?;
        body.push_str(&chunk);
    }
    let recipients = recipients_of(&body).ok_or_else(|| unreadable("its body"))?;
    let members: Vec<(usize, usize)> = members
        .iter()
        .filter_map(|&(index, key)| {
            let position = recipients.iter().position(|(_, k)| k == key)?;
            Some((index, position))
        })
        .collect();
    if members.is_empty() {
        return Ok(None);
    }
    let (recipients, grouping_keys) = recipients.into_iter().unzip();
    Ok(Some(Outgoing {
        api,
        idempotency_key: request_key.to_owned(),
        body,
        recipients,
        grouping_keys,
        members,
        resend: true,
    }))
}

/// Forget the record of the message with `idempotency_key` (its outcome is
/// with the host, or it was not sent in the request its record names).
pub fn forget(store: &mut impl Store, idempotency_key: &str) {
    store.delete(&member_key(idempotency_key));
}

/// Record a fresh request before it is sent: each member's record, then,
/// for a request of several, its body and head. A storage error, or a
/// member or request already recorded differently, sends nothing: every
/// member is `transient` (a retry resolves what was recorded).
pub fn fix(store: &mut impl Store, request: &Outgoing) -> Result<(), SendError> {
    let key = request.idempotency_key.as_str();
    for &(_, position) in &request.members {
        let member = member_key(&request.grouping_keys[position]);
        let recorded = store
            .put_if_absent(&member, key)
            .map_err(|why| not_recorded(&why))?;
        if recorded != key {
            return Err(SendError::Transient(Failure::new(
                "",
                format!(
                    "not sent: a message of request {key} is already recorded in another request; its retry resends that one"
                ),
            )));
        }
    }
    if !request.grouped() {
        return Ok(());
    }
    let pieces = chunks(&request.body);
    for (index, piece) in pieces.iter().enumerate() {
        let recorded = store
            .put_if_absent(&chunk_key(key, index), piece)
            .map_err(|why| not_recorded(&why))?;
        if recorded != *piece {
            return Err(already_recorded(key));
        }
    }
    let head = format!("{}:{}", request.api.code(), pieces.len());
    let recorded = store
        .put_if_absent(&head_key(key), &head)
        .map_err(|why| not_recorded(&why))?;
    if recorded != head {
        return Err(already_recorded(key));
    }
    Ok(())
}

/// Update the records after the reply to `request`: `results` has one
/// result per recipient (in `recipientList` order); `processed` says
/// whether NHN processed the request (per-recipient results, or -1005)
/// rather than refusing it as a whole or not answering.
///
/// - Processed: the records of this batch's messages go (the host has
///   their outcomes), as do those of recipients refused for a passing
///   reason (not sent: their retry is grouped afresh). A resent recipient
///   whose message is not in this batch gets its outcome recorded, so its
///   retry settles without a request (-1005 would hide a refusal).
/// - Refused as a whole for good: the records of this batch's messages go.
/// - Refused in passing or unanswered: everything stays, so the retry
///   resends the same request under the same key.
///
/// The body and head of a fresh request go once its members' records are
/// gone; a resend's stay until they expire, for members still to come.
pub fn settle(
    store: &mut impl Store,
    request: &Outgoing,
    results: &[Result<Receipt, SendError>],
    processed: bool,
) {
    let present: HashSet<usize> = request.members.iter().map(|&(_, p)| p).collect();
    if processed {
        for (position, key) in request.grouping_keys.iter().enumerate() {
            let result = results.get(position);
            let member = member_key(key);
            if result.is_none_or(retry_separately) {
                store.delete(&member);
            } else if present.contains(&position) {
                // Kept until it expires: the host records this outcome only
                // after the call returns, and if it stops first, the retry
                // must resend this very request (NHN answers -1005), never
                // a new one.
            } else if let Some(result) = result {
                // Best effort: without it the retry resends and meets -1005.
                let _ = store.put(
                    &member,
                    &format!("{OUTCOME_PREFIX}{}", encode_outcome(result)),
                );
            }
        }
    } else if results.iter().all(|result| !may_resend(result)) {
        for &position in &present {
            store.delete(&member_key(&request.grouping_keys[position]));
        }
    }
    // The request's body and head stay until they expire, for the same
    // reason: a retry after the host stopped resends the request whole.
}

/// Whether a recipient's result in a processed reply means it was not sent
/// and is retried later: its record is released, so the retry is grouped
/// afresh under a new key.
fn retry_separately(result: &Result<Receipt, SendError>) -> bool {
    matches!(
        result,
        Err(SendError::Transient(_) | SendError::RateLimited(_) | SendError::Deferred(_))
    )
}

/// Whether a result for a request NHN did not process leaves the request
/// to be resent as it is (the records stay).
fn may_resend(result: &Result<Receipt, SendError>) -> bool {
    matches!(
        result,
        Err(SendError::Transient(_) | SendError::RateLimited(_) | SendError::Uncertain(_))
    )
}

/// An outcome as recorded: `sent:{id}`, `duplicate:{id}` or
/// `{class}:{code}:{message}` (the final classes only).
pub fn encode_outcome(outcome: &Result<Receipt, SendError>) -> String {
    match outcome {
        Ok(receipt) if receipt.duplicate => format!("duplicate:{}", receipt.id()),
        Ok(receipt) => format!("sent:{}", receipt.id()),
        Err(error) => {
            let class = match error {
                SendError::Permanent(_) => "permanent",
                SendError::InvalidContent(_) => "invalid-content",
                SendError::RecipientUnreachable(_) => "recipient-unreachable",
                SendError::OptedOut(_) => "opted-out",
                SendError::AuthFailed(_) => "auth-failed",
                SendError::WindowClosed(_) => "window-closed",
                // Passing classes are never recorded as outcomes; should one
                // be, its retry must not resend blindly.
                SendError::Uncertain(_)
                | SendError::Transient(_)
                | SendError::RateLimited(_)
                | SendError::Deferred(_) => "uncertain",
            };
            let failure = error.failure();
            format!(
                "{class}:{}:{}",
                failure.code.replace(':', " "),
                failure.message
            )
        }
    }
}

/// The outcome [`encode_outcome`] recorded.
pub fn decode_outcome(value: &str) -> Option<Result<Receipt, SendError>> {
    let (class, rest) = value.split_once(':')?;
    match class {
        "sent" => return Some(Ok(Receipt::new(rest))),
        "duplicate" => return Some(Ok(Receipt::duplicate(rest))),
        _ => {}
    }
    let (code, message) = rest.split_once(':')?;
    let failure = Failure::new(code, message);
    Some(Err(match class {
        "permanent" => SendError::Permanent(failure),
        "invalid-content" => SendError::InvalidContent(failure),
        "recipient-unreachable" => SendError::RecipientUnreachable(failure),
        "opted-out" => SendError::OptedOut(failure),
        "auth-failed" => SendError::AuthFailed(failure),
        "window-closed" => SendError::WindowClosed(failure),
        "uncertain" => SendError::Uncertain(failure),
        _ => return None,
    }))
}

/// The error of messages not sent because their request could not be
/// recorded or looked up: `transient`, since nothing was sent.
fn not_recorded(why: &str) -> SendError {
    SendError::Transient(Failure::new(
        "",
        format!("not sent: the request could not be recorded in the host's storage ({why})"),
    ))
}

/// The error of a request whose key is already recorded with another body.
fn already_recorded(key: &str) -> SendError {
    SendError::Transient(Failure::new(
        "",
        format!(
            "not sent: request {key} is already recorded with another body; the retries resend what was recorded"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::payload::{Mode, Options, plan};
    use switchboard_sdk::types::{
        Content, OutboundMessage, Purpose, TemplateMessage, TemplateParameter,
    };

    /// The host's storage as a map, shared by every "process", that can be
    /// told to refuse writes.
    #[derive(Debug, Default)]
    struct MemoryStore {
        values: HashMap<String, String>,
        /// Refuse every write after this many.
        writes_left: Option<usize>,
    }

    impl MemoryStore {
        fn write(&mut self) -> Result<(), String> {
            match &mut self.writes_left {
                Some(0) => Err("unavailable: database is locked".into()),
                Some(left) => {
                    *left -= 1;
                    Ok(())
                }
                None => Ok(()),
            }
        }
    }

    impl Store for MemoryStore {
        fn get(&mut self, key: &str) -> Option<String> {
            self.values.get(key).cloned()
        }

        fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String> {
            self.write()?;
            Ok(self
                .values
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned())
                .clone())
        }

        fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
            self.write()?;
            self.values.insert(key.to_owned(), value.to_owned());
            Ok(())
        }

        fn delete(&mut self, key: &str) {
            self.values.remove(key);
        }
    }

    fn key(n: usize) -> String {
        format!("{n:064x}")
    }

    fn message(n: usize, attempt: u32) -> OutboundMessage {
        OutboundMessage {
            idempotency_key: key(n),
            to: format!("+8210123400{n:02}"),
            purpose: Purpose::Utility,
            content: Content::Template(TemplateMessage {
                name: "ORDER_SHIPPED".into(),
                language: None,
                parameters: vec![TemplateParameter {
                    name: "orderNo".into(),
                    value: format!("A-{n}"),
                }],
                link: None,
            }),
            ttl_seconds: None,
            attempt,
        }
    }

    fn options() -> Options {
        Options {
            sender_key: "0123456789abcdef0123456789abcdef01234567".into(),
            ..Options::default()
        }
    }

    /// The fresh requests a batch is planned into.
    fn fresh(batch: &[OutboundMessage]) -> Vec<Outgoing> {
        plan(batch, &options(), |_| Mode::Group)
            .requests
            .into_iter()
            .map(|request| Outgoing::fresh(request, batch))
            .collect()
    }

    fn only(mut requests: Vec<Outgoing>) -> Outgoing {
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests.remove(0)
    }

    /// What a retry of `message` finds, loaded as a request to resend.
    fn resend_of(store: &mut MemoryStore, index: usize, message: &OutboundMessage) -> Outgoing {
        match recall(store, &message.idempotency_key).expect("storage works") {
            Recall::Resend { key, head } => {
                load(store, &key, &head, &[(index, &message.idempotency_key)])
                    .expect("storage works")
                    .expect("it carries the message")
            }
            other => panic!("expected a resend, got {other:?}"),
        }
    }

    fn ok(id: &str) -> Result<Receipt, SendError> {
        Ok(Receipt::new(id))
    }

    #[test]
    fn a_grouped_request_is_recorded_members_first_then_body_and_head() {
        let batch: Vec<_> = (1..=3).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        let mut store = MemoryStore::default();
        fix(&mut store, &request).expect("recorded");
        for n in 1..=3 {
            assert_eq!(store.values[&member_key(&key(n))], request.idempotency_key);
        }
        assert_eq!(
            store.values[&head_key(&request.idempotency_key)],
            "alimtalk:1"
        );
        assert_eq!(
            store.values[&chunk_key(&request.idempotency_key, 0)],
            request.body
        );
        // Fixing it again (the same call retried) finds the same records.
        fix(&mut store, &request).expect("same records");
    }

    #[test]
    fn a_retry_in_another_process_resends_the_recorded_request_whole() {
        // The first attempt recorded and sent the request, then the host
        // crashed before it knew the outcome: only the storage is left.
        let batch: Vec<_> = (1..=3).map(|n| message(n, 1)).collect();
        let first = only(fresh(&batch));
        let mut store = MemoryStore::default();
        fix(&mut store, &first).expect("recorded");

        // The host retries the second message alone, in a batch of its own.
        let retry = message(2, 2);
        let resend = resend_of(&mut store, 0, &retry);
        assert!(resend.resend);
        assert_eq!(resend.idempotency_key, first.idempotency_key);
        assert_eq!(resend.body, first.body);
        assert_eq!(resend.api, first.api);
        assert_eq!(resend.recipients, first.recipients);
        assert_eq!(resend.grouping_keys, first.grouping_keys);
        // It is batch index 0 here, recipient 2 of 3 in the request.
        assert_eq!(resend.members, vec![(0, 1)]);
        assert_eq!(resend.indices(), vec![0]);
    }

    #[test]
    fn a_request_of_one_is_recorded_without_a_body_and_its_retry_goes_alone() {
        let batch = vec![message(7, 1)];
        let request = only(fresh(&batch));
        assert!(!request.grouped());
        let mut store = MemoryStore::default();
        fix(&mut store, &request).expect("recorded");
        assert_eq!(store.values.len(), 1, "{:?}", store.values);
        assert!(matches!(
            recall(&mut store, &key(7)).expect("storage works"),
            Recall::Alone
        ));
        // Planned alone, it rebuilds the same request under the same key.
        let alone = plan(&[message(7, 2), message(8, 1)], &options(), |i| {
            if i == 0 { Mode::Alone } else { Mode::Group }
        });
        assert_eq!(alone.requests.len(), 2);
        assert_eq!(alone.requests[0].idempotency_key, request.idempotency_key);
    }

    #[test]
    fn a_retry_with_nothing_recorded_is_grouped_afresh_and_leaves_nothing() {
        let mut store = MemoryStore::default();
        assert!(matches!(
            recall(&mut store, &key(1)).expect("storage works"),
            Recall::Fresh
        ));
        assert!(store.values.is_empty(), "{:?}", store.values);
    }

    #[test]
    fn a_request_claimed_but_never_sent_is_forgotten_by_its_retries() {
        // Storage failed after the members were claimed: nothing was sent.
        let batch: Vec<_> = (1..=2).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        let mut store = MemoryStore {
            writes_left: Some(2),
            ..MemoryStore::default()
        };
        assert!(matches!(
            fix(&mut store, &request),
            Err(SendError::Transient(_))
        ));
        store.writes_left = None;
        assert!(matches!(
            recall(&mut store, &key(1)).expect("storage works"),
            Recall::Fresh
        ));
        assert!(!store.values.contains_key(&member_key(&key(1))));
        // The request is marked never sent, so nothing can send it later.
        assert_eq!(
            store.values[&head_key(&request.idempotency_key)],
            NEVER_SENT
        );
        assert!(matches!(
            fix(&mut store, &request),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn storage_errors_send_nothing_and_are_transient() {
        let batch: Vec<_> = (1..=2).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        for writes in 0..4 {
            let mut store = MemoryStore {
                writes_left: Some(writes),
                ..MemoryStore::default()
            };
            match fix(&mut store, &request) {
                Err(SendError::Transient(failure)) => {
                    assert!(
                        failure.message.contains("database is locked"),
                        "{failure:?}"
                    )
                }
                other => panic!("after {writes} writes: {other:?}"),
            }
        }
        let mut store = MemoryStore {
            writes_left: Some(0),
            ..MemoryStore::default()
        };
        assert!(matches!(
            recall(&mut store, &key(1)),
            Err(SendError::Transient(_))
        ));
        // A recorded body that cannot be read is not resent.
        let mut store = MemoryStore::default();
        fix(&mut store, &request).expect("recorded");
        store.values.remove(&chunk_key(&request.idempotency_key, 0));
        let Recall::Resend { key: found, head } = recall(&mut store, &key(1)).expect("works")
        else {
            panic!("expected a resend");
        };
        assert!(matches!(
            load(&mut store, &found, &head, &[(0, key(1).as_str())]),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn a_message_recorded_in_another_request_is_not_sent_again() {
        let batch: Vec<_> = (1..=2).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        let mut store = MemoryStore::default();
        store.values.insert(
            member_key(&key(2)),
            "11111111-1111-4111-8111-111111111111".into(),
        );
        assert!(matches!(
            fix(&mut store, &request),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn a_processed_first_attempt_keeps_what_was_sent_and_releases_the_rest() {
        let batch: Vec<_> = (1..=3).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        let mut store = MemoryStore::default();
        fix(&mut store, &request).expect("recorded");
        let results = vec![
            ok("R:1"),
            Err(SendError::RecipientUnreachable(Failure::new(
                "3019",
                "not a KakaoTalk user",
            ))),
            Err(SendError::Transient(Failure::new("3006", "internal error"))),
        ];
        settle(&mut store, &request, &results, true);
        // Sent or settled for good: the records stay until they expire, so a
        // retry after the host stopped resends this request (NHN: -1005).
        assert!(store.values.contains_key(&member_key(&key(1))));
        assert!(store.values.contains_key(&member_key(&key(2))));
        assert!(
            store
                .values
                .contains_key(&head_key(&request.idempotency_key))
        );
        assert!(!store.values.contains_key(&member_key(&key(3))));
        // The recipient NHN refused in passing is grouped afresh on its retry.
        assert!(matches!(
            recall(&mut store, &key(3)).expect("works"),
            Recall::Fresh
        ));
    }

    #[test]
    fn a_request_refused_in_passing_stays_recorded_for_its_retries() {
        let batch: Vec<_> = (1..=2).map(|n| message(n, 1)).collect();
        let request = only(fresh(&batch));
        let mut store = MemoryStore::default();
        fix(&mut store, &request).expect("recorded");
        let before = store.values.clone();
        for error in [
            SendError::Transient(Failure::new("-9999", "system error")),
            SendError::Uncertain(Failure::new("", "reply lost twice")),
        ] {
            settle(
                &mut store,
                &request,
                &[Err(error.clone()), Err(error)],
                false,
            );
            assert_eq!(store.values, before);
        }
        // Refused for good (credentials): nothing was sent, the members are
        // released; the request's body stays until it expires.
        let auth = SendError::AuthFailed(Failure::new("-1001", "invalid secretKey"));
        settle(&mut store, &request, &[Err(auth.clone()), Err(auth)], false);
        assert!(!store.values.contains_key(&member_key(&key(1))));
        assert!(!store.values.contains_key(&member_key(&key(2))));
    }

    #[test]
    fn a_resend_records_the_outcomes_of_recipients_not_in_the_batch() {
        let batch: Vec<_> = (1..=3).map(|n| message(n, 1)).collect();
        let first = only(fresh(&batch));
        let mut store = MemoryStore::default();
        fix(&mut store, &first).expect("recorded");
        // The first reply was lost; a retry of message 1 resends it whole.
        let resend = resend_of(&mut store, 0, &message(1, 2));
        let results = vec![
            ok("R2:1"),
            Err(SendError::RecipientUnreachable(Failure::new(
                "3019",
                "not a KakaoTalk user: x",
            ))),
            Err(SendError::Transient(Failure::new("3006", "internal error"))),
        ];
        settle(&mut store, &resend, &results, true);
        // Message 1 was in the batch: its record stays until it expires.
        assert!(store.values.contains_key(&member_key(&key(1))));
        // Message 2 settles on its retry without a request, as NHN said.
        match recall(&mut store, &key(2)).expect("works") {
            Recall::Settled(Err(SendError::RecipientUnreachable(failure))) => {
                assert_eq!(failure.code, "3019");
                assert_eq!(failure.message, "not a KakaoTalk user: x");
            }
            other => panic!("{other:?}"),
        }
        // Message 3 was not sent: its retry is grouped afresh.
        assert!(matches!(
            recall(&mut store, &key(3)).expect("works"),
            Recall::Fresh
        ));
        // The recorded request stays for members still to come.
        assert!(store.values.contains_key(&head_key(&first.idempotency_key)));
    }

    #[test]
    fn outcomes_round_trip() {
        let cases = vec![
            ok("20261110120000abcdefghijk:1"),
            Ok(Receipt::duplicate("6f1c2a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f:2")),
            Err(SendError::RecipientUnreachable(Failure::new(
                "3019", "a: b",
            ))),
            Err(SendError::OptedOut(Failure::new("-3301", "080"))),
            Err(SendError::InvalidContent(Failure::new("3016", "mismatch"))),
            Err(SendError::Permanent(Failure::new("1007", ""))),
            Err(SendError::Uncertain(Failure::new("3005", "not confirmed"))),
        ];
        for outcome in cases {
            let decoded = decode_outcome(&encode_outcome(&outcome)).expect("decodes");
            assert_eq!(format!("{decoded:?}"), format!("{outcome:?}"));
        }
        assert!(decode_outcome("nonsense").is_none());
    }

    #[test]
    fn bodies_are_cut_at_character_boundaries() {
        // Three bytes each: a piece holds 10,922 of them (32,766 bytes), so
        // 32,768 of them take four pieces.
        let body = "한".repeat(CHUNK_BYTES);
        let pieces = chunks(&body);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].len(), CHUNK_BYTES - 2);
        assert!(pieces.iter().all(|p| p.len() <= CHUNK_BYTES));
        assert_eq!(pieces.concat(), body);
        assert!(chunks("").is_empty());
    }

    #[test]
    fn a_large_request_is_recorded_in_several_chunks_and_read_back() {
        let batch: Vec<_> = (1..=99)
            .map(|n| {
                let mut m = message(n, 1);
                if let Content::Template(t) = &mut m.content {
                    t.parameters[0].value = "가".repeat(400);
                }
                m
            })
            .collect();
        let first = only(fresh(&batch));
        assert!(first.body.len() > 2 * CHUNK_BYTES, "{}", first.body.len());
        let mut store = MemoryStore::default();
        fix(&mut store, &first).expect("recorded");
        let count = chunks(&first.body).len();
        assert_eq!(
            store.values[&head_key(&first.idempotency_key)],
            format!("alimtalk:{count}")
        );
        let resend = resend_of(&mut store, 5, &message(50, 2));
        assert_eq!(resend.body, first.body);
        assert_eq!(resend.members, vec![(5, 49)]);
    }
}
