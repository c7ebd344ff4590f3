//! The durable memory of multicast retry groups.
//!
//! LINE deduplicates a multicast on its `X-Line-Retry-Key` for 24 hours, but
//! only a request with the same key: a member of a multicast whose reply was
//! lost, retried alone under a key of its own, is delivered twice. The host
//! retries each message on its own schedule (and possibly in another host
//! process after a crash), so the adapter keeps, in the host's durable
//! storage:
//!
//! - per message of a multicast, under [`member_key`], the multicast's retry
//!   key;
//! - per multicast, under [`group_key`], the recipients it carries.
//!
//! Both are written with `put-if-absent` before the multicast is sent (the
//! members first, the group last), so the first attempt of a group fixes its
//! retry key and recipients, and a group record exists only for a multicast
//! whose every member points at it. A retry of any member finds the key and
//! resends the whole group under it: LINE answers `409` if it had accepted
//! the group, or delivers it once. A storage error sends nothing: the
//! messages are `transient`.
//!
//! The lookup of a retried message is a `put-if-absent` too: it records
//! [`PUSHED_ALONE`] when the message was in no multicast (it is then pushed
//! under its own key), and [`NEVER_SENT`] for a group whose record is
//! missing (its members were claimed but it was never sent). A read that
//! fails is therefore an error, never mistaken for "nothing remembered", and
//! a late writer can no longer fix the group the retry gave up on.
//!
//! Everything here works on a [`Store`]: the host's storage in the adapter,
//! a map in the unit tests.

use switchboard_sdk::types::{Failure, SendError};

use crate::payload::{Endpoint, MAX_MULTICAST_RECIPIENTS, Planned, Remembered, is_user_id};

/// How long the memory is kept, in seconds: as long as LINE keeps a retry key.
pub const TTL_SECONDS: u32 = 24 * 60 * 60;

/// A member record's value for a message that was in no recorded multicast.
pub const PUSHED_ALONE: &str = "push";

/// A group record's value for a multicast that was never sent.
pub const NEVER_SENT: &str = "";

/// Durable storage as the group memory uses it.
pub trait Store {
    /// Store `value` under `key` for [`TTL_SECONDS`] unless a live value is
    /// there; the value stored afterwards, or why the host refused.
    fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String>;
    /// Remove `key`.
    fn delete(&mut self, key: &str);
}

/// The storage key under which a message's multicast retry key is kept.
pub fn member_key(idempotency_key: &str) -> String {
    format!("line:multicast-of:{idempotency_key}")
}

/// The storage key under which a multicast's recipients are kept.
pub fn group_key(retry_key: &str) -> String {
    format!("line:multicast:{retry_key}")
}

/// A multicast's recipients as stored: comma-separated user ids (which
/// never contain commas).
pub fn encode_recipients(recipients: &[String]) -> String {
    recipients.join(",")
}

/// The recipients kept by [`encode_recipients`]; `None` unless every entry
/// is a LINE user id and there are 1 to [`MAX_MULTICAST_RECIPIENTS`].
pub fn decode_recipients(value: &str) -> Option<Vec<String>> {
    let recipients: Vec<String> = value.split(',').map(str::to_owned).collect();
    let valid = (1..=MAX_MULTICAST_RECIPIENTS).contains(&recipients.len())
        && recipients.iter().all(|id| is_user_id(id));
    valid.then_some(recipients)
}

/// The multicast an earlier attempt of the message with `idempotency_key`
/// was part of, if one was recorded and sent; `None` when the message is to
/// be pushed alone. Records what it found (see the module docs), so call it
/// for retries only: a first attempt has nothing to find.
pub fn recall(
    store: &mut impl Store,
    idempotency_key: &str,
) -> Result<Option<Remembered>, SendError> {
    let retry_key = store
        .put_if_absent(&member_key(idempotency_key), PUSHED_ALONE)
        .map_err(|why| not_recorded(&why))?;
    if retry_key == PUSHED_ALONE {
        return Ok(None);
    }
    let recipients = store
        .put_if_absent(&group_key(&retry_key), NEVER_SENT)
        .map_err(|why| not_recorded(&why))?;
    Ok(decode_recipients(&recipients).map(|recipients| Remembered {
        retry_key,
        recipients,
    }))
}

/// A fresh multicast made ready to send, and the members it had to leave out.
#[derive(Debug, Clone)]
pub struct Fixed {
    /// The multicast to send, if anything is left to send.
    pub request: Option<Planned>,
    /// Members that are not sent now, with why (all `transient`: they are
    /// resolved on their retry).
    pub refused: Vec<(usize, SendError)>,
}

/// Record a fresh multicast (`request.resend` false) before it is sent:
/// each member's record, then the group's. `idempotency_key` gives a
/// member's key from its batch index.
///
/// - A storage error refuses every member still in the request: nothing
///   is sent under a key that is not recorded.
/// - A member already recorded under another retry key (an earlier attempt
///   the host did not count) is left out, `transient`: its retry resends
///   the multicast it was part of. The others go on under this key.
/// - A group already recorded with other recipients is not sent: its
///   members are `transient` and their retries resend what was recorded.
///
/// Pushes and resends are returned as they are.
pub fn fix<'a>(
    store: &mut impl Store,
    request: Planned,
    idempotency_key: impl Fn(usize) -> &'a str,
) -> Fixed {
    if request.endpoint != Endpoint::Multicast || request.resend {
        return Fixed {
            request: Some(request),
            refused: Vec::new(),
        };
    }
    let retry_key = request.retry_key.clone();
    let mut refused = Vec::new();
    let mut members = Vec::with_capacity(request.members.len());
    let mut recipients = Vec::with_capacity(request.recipients.len());
    for (&member, recipient) in request.members.iter().zip(&request.recipients) {
        match store.put_if_absent(&member_key(idempotency_key(member)), &retry_key) {
            Ok(stored) if stored == retry_key => {
                members.push(member);
                recipients.push(recipient.clone());
            }
            Ok(other) => refused.push((
                member,
                SendError::Transient(Failure::new(
                    "",
                    format!(
                        "not sent: the message is already part of multicast {other}; its retry resends that one"
                    ),
                )),
            )),
            Err(why) => return refuse_all(&request.members, &why),
        }
    }
    if members.is_empty() {
        return Fixed {
            request: None,
            refused,
        };
    }
    let value = encode_recipients(&recipients);
    match store.put_if_absent(&group_key(&retry_key), &value) {
        Ok(stored) if stored == value => Fixed {
            request: Some(Planned {
                members,
                recipients,
                ..request
            }),
            refused,
        },
        Ok(_) => {
            refused.extend(members.into_iter().map(|member| {
                (
                    member,
                    SendError::Transient(Failure::new(
                        "",
                        format!(
                            "not sent: multicast {retry_key} was already recorded with other recipients; the retry resends what was recorded"
                        ),
                    )),
                )
            }));
            Fixed {
                request: None,
                refused,
            }
        }
        Err(why) => {
            // Members left out above keep their own error.
            let mut fixed = refuse_all(&members, &why);
            fixed.refused.extend(refused);
            fixed
        }
    }
}

/// Every member of `members` refused because storage failed.
fn refuse_all(members: &[usize], why: &str) -> Fixed {
    Fixed {
        request: None,
        refused: members
            .iter()
            .map(|&member| (member, not_recorded(why)))
            .collect(),
    }
}

/// The error of a message not sent because its retry group could not be
/// recorded or looked up: `transient`, since nothing was sent.
fn not_recorded(why: &str) -> SendError {
    SendError::Transient(Failure::new(
        "",
        format!(
            "not sent: the multicast retry key could not be recorded in the host's storage ({why})"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::payload::{Candidate, multicast_retry_key, plan, push_retry_key};

    const ANA: &str = "U4af4980629a1b2c3d4e5f60718293a4b";
    const BEN: &str = "U0123456789abcdef0123456789abcdef";
    const CHEN: &str = "U00000000000000000000000000000003";

    /// The host's storage as a map, shared by every "process", that can be
    /// told to refuse writes.
    #[derive(Debug, Default)]
    struct MemoryStore {
        values: HashMap<String, String>,
        /// Refuse every write after this many.
        writes_left: Option<usize>,
        puts: Vec<String>,
    }

    impl Store for MemoryStore {
        fn put_if_absent(&mut self, key: &str, value: &str) -> Result<String, String> {
            if let Some(left) = &mut self.writes_left {
                if *left == 0 {
                    return Err("unavailable: database is locked".into());
                }
                *left -= 1;
            }
            self.puts.push(key.to_owned());
            Ok(self
                .values
                .entry(key.to_owned())
                .or_insert_with(|| value.to_owned())
                .clone())
        }

        fn delete(&mut self, key: &str) {
            self.values.remove(key);
        }
    }

    fn candidate<'a>(index: usize, key: &'a str, to: &'a str, attempt: u32) -> Candidate<'a> {
        Candidate {
            index,
            key,
            to,
            text: "Same for all",
            attempt,
        }
    }

    /// What one `send` call plans for `candidates`: retries looked up in
    /// the store, then the plan, then fresh multicasts fixed.
    fn call(store: &mut MemoryStore, candidates: &[Candidate<'_>]) -> Fixed {
        let mut remembered = HashMap::new();
        for c in candidates.iter().filter(|c| c.attempt > 1) {
            if let Some(group) = recall(store, c.key).expect("storage works") {
                remembered.insert(c.key.to_owned(), group);
            }
        }
        let requests = plan(candidates, |key| remembered.get(key).cloned());
        assert_eq!(requests.len(), 1, "{requests:?}");
        let keys: Vec<&str> = candidates.iter().map(|c| c.key).collect();
        fix(store, requests.into_iter().next().expect("one"), |i| {
            keys[i]
        })
    }

    #[test]
    fn a_fresh_multicast_is_recorded_members_first_then_the_group() {
        let mut store = MemoryStore::default();
        let fixed = call(
            &mut store,
            &[candidate(0, "k0", ANA, 1), candidate(1, "k1", BEN, 1)],
        );
        let request = fixed.request.expect("sent");
        assert!(fixed.refused.is_empty());
        let retry_key = multicast_retry_key(["k0", "k1"]);
        assert_eq!(request.retry_key, retry_key);
        assert_eq!(
            store.puts,
            vec![member_key("k0"), member_key("k1"), group_key(&retry_key)]
        );
        assert_eq!(store.values[&member_key("k1")], retry_key);
        assert_eq!(store.values[&group_key(&retry_key)], format!("{ANA},{BEN}"));
    }

    #[test]
    fn a_retry_in_another_process_finds_the_group_in_storage_and_resends_it_whole() {
        // The first attempt recorded and sent the group, then the host
        // crashed: only the storage is left.
        let mut store = MemoryStore::default();
        let first = call(
            &mut store,
            &[
                candidate(0, "k0", ANA, 1),
                candidate(1, "k1", BEN, 1),
                candidate(2, "k2", CHEN, 1),
            ],
        )
        .request
        .expect("sent");

        // A new process retries Ben alone, in a batch of its own.
        let retried = call(&mut store, &[candidate(0, "k1", BEN, 2)]);
        let resend = retried.request.expect("resent");
        assert!(retried.refused.is_empty());
        assert_eq!(resend.endpoint, Endpoint::Multicast);
        assert!(resend.resend);
        assert_eq!(resend.retry_key, first.retry_key);
        assert_eq!(resend.recipients, first.recipients);
        assert_eq!(resend.members, vec![0]);

        // Records stay until they expire: Ben's again, and the group for
        // the others (and for Ben, should the host stop before settling).
        let again = call(&mut store, &[candidate(0, "k1", BEN, 3)])
            .request
            .expect("resent");
        assert_eq!(again.retry_key, first.retry_key);
        let chen = call(&mut store, &[candidate(0, "k2", CHEN, 3)])
            .request
            .expect("resent");
        assert_eq!(chen.retry_key, first.retry_key);
        assert_eq!(chen.recipients, first.recipients);
    }

    #[test]
    fn a_retry_that_was_in_no_multicast_is_pushed_alone_and_recorded_so() {
        let mut store = MemoryStore::default();
        let fixed = call(&mut store, &[candidate(0, "k9", ANA, 2)]);
        let push = fixed.request.expect("sent");
        assert_eq!(push.endpoint, Endpoint::Push);
        assert_eq!(push.retry_key, push_retry_key("k9"));
        assert_eq!(store.values[&member_key("k9")], PUSHED_ALONE);
    }

    #[test]
    fn members_of_a_group_that_was_never_recorded_are_pushed_alone() {
        // A first attempt claimed its members, then storage failed before
        // the group was recorded: nothing was sent under the key.
        let mut store = MemoryStore {
            writes_left: Some(2),
            ..MemoryStore::default()
        };
        let fixed = call(
            &mut store,
            &[candidate(0, "k0", ANA, 1), candidate(1, "k1", BEN, 1)],
        );
        assert_eq!(fixed.request, None);
        assert_eq!(fixed.refused.len(), 2);
        store.writes_left = None;
        let push = call(&mut store, &[candidate(0, "k0", ANA, 2)])
            .request
            .expect("sent");
        assert_eq!(push.endpoint, Endpoint::Push);
        assert_eq!(push.retry_key, push_retry_key("k0"));
        // The group is marked as never sent, so nothing can fix it later.
        let retry_key = multicast_retry_key(["k0", "k1"]);
        assert_eq!(store.values[&group_key(&retry_key)], NEVER_SENT);
    }

    #[test]
    fn a_storage_error_sends_nothing_and_is_transient() {
        for writes in 0..3 {
            let mut store = MemoryStore {
                writes_left: Some(writes),
                ..MemoryStore::default()
            };
            let fixed = call(
                &mut store,
                &[candidate(0, "k0", ANA, 1), candidate(1, "k1", BEN, 1)],
            );
            assert_eq!(fixed.request, None, "after {writes} writes");
            let refused: Vec<usize> = fixed.refused.iter().map(|(i, _)| *i).collect();
            assert_eq!(refused, vec![0, 1]);
            for (_, error) in &fixed.refused {
                assert!(matches!(error, SendError::Transient(_)), "{error:?}");
                assert!(
                    error.failure().message.contains("database is locked"),
                    "{error:?}"
                );
            }
        }
        // A retry whose lookup fails is not pushed either.
        let mut store = MemoryStore {
            writes_left: Some(0),
            ..MemoryStore::default()
        };
        assert!(matches!(
            recall(&mut store, "k0"),
            Err(SendError::Transient(_))
        ));
    }

    #[test]
    fn a_member_already_in_another_group_is_left_out() {
        let mut store = MemoryStore::default();
        store.values.insert(
            member_key("k1"),
            "11111111-1111-4111-8111-111111111111".into(),
        );
        let fixed = call(
            &mut store,
            &[
                candidate(0, "k0", ANA, 1),
                candidate(1, "k1", BEN, 1),
                candidate(2, "k2", CHEN, 1),
            ],
        );
        let request = fixed.request.expect("sent");
        assert_eq!(request.members, vec![0, 2]);
        assert_eq!(request.recipients, vec![ANA.to_owned(), CHEN.to_owned()]);
        assert_eq!(
            store.values[&group_key(&request.retry_key)],
            format!("{ANA},{CHEN}")
        );
        assert_eq!(fixed.refused.len(), 1);
        assert!(matches!(fixed.refused[0], (1, SendError::Transient(_))));
    }

    #[test]
    fn a_group_recorded_with_other_recipients_is_not_sent() {
        let mut store = MemoryStore::default();
        let retry_key = multicast_retry_key(["k0", "k1"]);
        store.values.insert(group_key(&retry_key), ANA.into());
        let fixed = call(
            &mut store,
            &[candidate(0, "k0", ANA, 1), candidate(1, "k1", BEN, 1)],
        );
        assert_eq!(fixed.request, None);
        assert_eq!(fixed.refused.len(), 2);
    }

    #[test]
    fn a_settled_first_attempt_keeps_its_records_for_a_retry_after_a_crash() {
        let mut store = MemoryStore::default();
        let request = call(
            &mut store,
            &[candidate(0, "k0", ANA, 1), candidate(1, "k1", BEN, 1)],
        )
        .request
        .expect("sent");
        // The host stopped before recording the outcome: Ana's retry
        // resends the whole group under its key.
        let retry = call(&mut store, &[candidate(0, "k0", ANA, 2)])
            .request
            .expect("resent");
        assert_eq!(retry.retry_key, request.retry_key);
        assert_eq!(retry.recipients, request.recipients);
    }

    #[test]
    fn recipients_round_trip_through_the_stored_encoding() {
        let recipients = vec![ANA.to_owned(), BEN.to_owned()];
        assert_eq!(
            decode_recipients(&encode_recipients(&recipients)),
            Some(recipients)
        );
        assert_eq!(decode_recipients(NEVER_SENT), None);
        assert_eq!(decode_recipients(&format!("{ANA},nope")), None);
        assert_eq!(member_key("abc"), "line:multicast-of:abc");
        assert_eq!(group_key("u-u-i-d"), "line:multicast:u-u-i-d");
    }

    #[test]
    fn pushes_and_resends_are_not_recorded_again() {
        let mut store = MemoryStore::default();
        let push = plan(&[candidate(0, "k0", ANA, 1)], |_| None)
            .into_iter()
            .next()
            .expect("one");
        let fixed = fix(&mut store, push.clone(), |_| "k0");
        assert_eq!(fixed.request, Some(push));
        assert!(store.puts.is_empty());
    }
}
