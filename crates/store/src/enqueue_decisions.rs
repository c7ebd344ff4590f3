//! Which of an enqueue's decisions both backends record.
//!
//! A re-run of a campaign plans the same sends again and finds them in the
//! outbox already. The decision recorded for such a recipient then (queued,
//! or what its settlement recorded: sent, failed, uncertain…) stands: the
//! re-run's "enqueued" must not overwrite it, or `switchboard why` would
//! say a message sent an hour ago is still waiting.

use std::collections::{HashMap, HashSet};

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

/// An enqueue split into pieces of at most `size` sends, each with the
/// decisions about its sends' recipients, so that a piece can be written
/// on its own and a recipient's send and decision are always written
/// together. Decisions about recipients with no send here (skipped) follow
/// in pieces of at most `size`. The sends keep their order across the
/// pieces, so the pieces' results, joined, are in the order of `sends`.
pub(crate) fn pieces(
    sends: Vec<NewSend>,
    decisions: Vec<DecisionRecord>,
    size: usize,
) -> Vec<(Vec<NewSend>, Vec<DecisionRecord>)> {
    let size = size.max(1);
    let mut pieces: Vec<(Vec<NewSend>, Vec<DecisionRecord>)> = Vec::new();
    let mut piece_of: HashMap<(String, String), usize> = HashMap::new();
    for send in sends {
        // A recipient's sends stay in one piece, so that its decision sees
        // all of their results.
        let same_recipient = pieces
            .last()
            .and_then(|(sends, _)| sends.last())
            .is_some_and(|last| {
                last.campaign == send.campaign && last.profile_id == send.profile_id
            });
        if pieces
            .last()
            .is_none_or(|(sends, _)| sends.len() >= size && !same_recipient)
        {
            pieces.push((Vec::with_capacity(size), Vec::new()));
        }
        let index = pieces.len() - 1;
        piece_of.insert((send.campaign.clone(), send.profile_id.clone()), index);
        pieces[index].0.push(send);
    }
    let with_sends = pieces.len();
    for decision in decisions {
        let recipient = (decision.campaign.clone(), decision.profile_id.clone());
        match piece_of.get(&recipient) {
            Some(&index) => pieces[index].1.push(decision),
            None => {
                if pieces.len() == with_sends
                    || pieces.last().is_some_and(|(_, loose)| loose.len() >= size)
                {
                    pieces.push((Vec::new(), Vec::with_capacity(size)));
                }
                if let Some((_, loose)) = pieces.last_mut() {
                    loose.push(decision);
                }
            }
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::send;

    fn decided(profile: &str, outcome: &str) -> DecisionRecord {
        DecisionRecord {
            campaign: "winback".into(),
            profile_id: profile.into(),
            channel: None,
            outcome: outcome.into(),
            reason: None,
            detail: None,
            decided_ms: 0,
        }
    }

    fn keys(sends: &[NewSend]) -> Vec<&str> {
        sends
            .iter()
            .map(|s| s.message.idempotency_key.as_str())
            .collect()
    }

    fn profiles(decisions: &[DecisionRecord]) -> Vec<&str> {
        decisions.iter().map(|d| d.profile_id.as_str()).collect()
    }

    #[test]
    fn pieces_keep_the_order_and_each_recipients_decision_with_its_send() {
        let sends = ["a", "b", "c", "d", "e"].map(|k| send(k, "whatsapp", false));
        // Decisions in another order than the sends, and two recipients
        // skipped (no send).
        let decisions = [
            decided("p-e", "enqueued"),
            decided("skipped-1", "skipped"),
            decided("p-a", "enqueued"),
            decided("p-c", "enqueued"),
            decided("skipped-2", "skipped"),
            decided("p-b", "enqueued"),
            decided("p-d", "enqueued"),
        ];
        let pieces = pieces(sends.to_vec(), decisions.to_vec(), 2);
        let shape: Vec<(Vec<&str>, Vec<&str>)> = pieces
            .iter()
            .map(|(sends, decisions)| (keys(sends), profiles(decisions)))
            .collect();
        assert_eq!(
            shape,
            [
                (vec!["a", "b"], vec!["p-a", "p-b"]),
                (vec!["c", "d"], vec!["p-c", "p-d"]),
                (vec!["e"], vec!["p-e"]),
                (vec![], vec!["skipped-1", "skipped-2"]),
            ]
        );
    }

    #[test]
    fn a_recipients_sends_are_not_split_between_pieces() {
        let mut second = send("a2", "rcs", true);
        second.profile_id = "p-a".into();
        let sends = vec![
            send("z", "whatsapp", false),
            send("a", "whatsapp", false),
            second,
        ];
        let pieces = pieces(sends, vec![decided("p-a", "enqueued")], 2);
        let shape: Vec<Vec<&str>> = pieces.iter().map(|(sends, _)| keys(sends)).collect();
        assert_eq!(shape, [vec!["z", "a", "a2"]]);
        assert_eq!(profiles(&pieces[0].1), ["p-a"]);
    }

    #[test]
    fn loose_decisions_are_pieced_too_and_nothing_is_lost() {
        let decisions: Vec<DecisionRecord> = (0..5)
            .map(|i| decided(&format!("skipped-{i}"), "skipped"))
            .collect();
        let pieces = pieces(vec![], decisions, 2);
        let shape: Vec<Vec<&str>> = pieces.iter().map(|(_, d)| profiles(d)).collect();
        assert_eq!(
            shape,
            [
                vec!["skipped-0", "skipped-1"],
                vec!["skipped-2", "skipped-3"],
                vec!["skipped-4"]
            ]
        );
    }
}
