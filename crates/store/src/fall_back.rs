//! The next channel of a route, for a send whose recipient the platform
//! reported unreachable: what both backends enqueue and record, built once.

use switchboard_contract::model::{OutboundMessage, Purpose};
use switchboard_core::campaign::next_channel_key;

use crate::records::{Alternative, DecisionRecord, NewSend};

/// The send that reached nobody, as a backend read it back.
pub(crate) struct Unreachable<'a> {
    pub key: &'a str,
    pub campaign: &'a str,
    pub profile_id: &'a str,
    pub channel: &'a str,
    pub purpose: Purpose,
    pub ttl_seconds: Option<u32>,
    pub line: Option<u64>,
    pub step: u32,
    pub deadline_ms: Option<i64>,
}

/// The send to enqueue on the first of `rest` (the remaining channels of
/// the route), and the decision that says so; `None` when the route ends.
pub(crate) fn next_in_route(
    from: &Unreachable<'_>,
    mut rest: Vec<Alternative>,
    now: i64,
) -> Option<(NewSend, DecisionRecord)> {
    if rest.is_empty() {
        return None;
    }
    let next = rest.remove(0);
    let waits_until = next.not_before_ms.filter(|t| *t > now);
    let send = NewSend {
        message: OutboundMessage {
            idempotency_key: next_channel_key(
                from.campaign,
                from.profile_id,
                from.channel,
                from.key,
                &next.channel,
            ),
            to: next.address,
            purpose: from.purpose,
            content: next.content,
            ttl_seconds: from.ttl_seconds,
            attempt: 1,
        },
        campaign: from.campaign.to_owned(),
        profile_id: from.profile_id.to_owned(),
        line: from.line,
        channel: next.channel.clone(),
        step: from.step + 1,
        window: next.window,
        deduplicates: next.deduplicates,
        due_ms: waits_until.unwrap_or(now),
        deferred_reason: waits_until.map(|_| "quiet_hours".to_owned()),
        deferred_message: waits_until.map(|t| {
            format!(
                "{}; until {}",
                next.not_before_reason.as_deref().unwrap_or("quiet hours"),
                jiff::Timestamp::from_millisecond(t)
                    .map_or_else(|_| t.to_string(), |t| t.to_string())
            )
        }),
        deadline_ms: from.deadline_ms,
        fallback: rest,
    };
    let decision = DecisionRecord {
        campaign: from.campaign.to_owned(),
        profile_id: from.profile_id.to_owned(),
        channel: Some(next.channel),
        outcome: "enqueued".into(),
        reason: Some("fall_back".into()),
        detail: Some(format!(
            "not reachable on `{}`; trying the next channel of the route",
            from.channel
        )),
        decided_ms: now,
    };
    Some((send, decision))
}
