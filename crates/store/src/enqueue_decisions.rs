//! Which of an enqueue's decisions both backends record.
//!
//! A re-run of a campaign plans the same sends again and finds them in the
//! outbox already. The decision recorded for such a recipient then (queued,
//! or what its settlement recorded: sent, failed, uncertain…) stands: the
//! re-run's "enqueued" must not overwrite it, or `switchboard why` would
//! say a message sent an hour ago is still waiting.

use std::collections::HashSet;

use crate::records::{DecisionRecord, Enqueued, NewSend};

/// The decisions to record for `sends` (whose enqueue gave `results`, in
/// the same order): all of them, except "enqueued" for a recipient none of
/// whose sends here was new.
pub(crate) fn worth_recording<'a>(
    sends: &[NewSend],
    results: &[Enqueued],
    decisions: &'a [DecisionRecord],
) -> Vec<&'a DecisionRecord> {
    // A campaign's first run finds nothing in the outbox: no set to build.
    if !results
        .iter()
        .any(|result| matches!(result, Enqueued::Existing { .. }))
    {
        return decisions.iter().collect();
    }
    let mut fresh: HashSet<(&str, &str)> = HashSet::new();
    let mut already: HashSet<(&str, &str)> = HashSet::new();
    for (send, result) in sends.iter().zip(results) {
        let recipient = (send.campaign.as_str(), send.profile_id.as_str());
        match result {
            Enqueued::Inserted => fresh.insert(recipient),
            Enqueued::Existing { .. } => already.insert(recipient),
        };
    }
    decisions
        .iter()
        .filter(|decision| {
            let recipient = (decision.campaign.as_str(), decision.profile_id.as_str());
            decision.outcome != "enqueued"
                || !already.contains(&recipient)
                || fresh.contains(&recipient)
        })
        .collect()
}
