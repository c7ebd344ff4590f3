//! What `switchboard status` prints: a campaign's recipients by outcome,
//! its sends by state (with why the failed ones failed, and how many of
//! those handed their recipient to the next channel of the route), and the
//! delivery states the platforms reported.
//!
//! Recipients and sends differ: a recipient whose first channel could not
//! reach them has a failed send and a sent one, so the two lists are shown
//! apart, each with its total.

use std::fmt::Write as _;

use switchboard_store::CampaignCounts;

/// The report for `campaign`'s `counts`.
pub fn status_report(campaign: &str, counts: &CampaignCounts) -> String {
    if counts.by_state.is_empty() && counts.decisions.is_empty() {
        return format!("no sends recorded for campaign `{campaign}`\n");
    }
    let mut out = String::new();
    let mut line = |indent: usize, label: &str, count: u64, note: &str| {
        let width = 30 - indent;
        let _ = writeln!(out, "{:indent$}{label:<width$} {count:>8}{note}", "");
    };
    line(0, "recipients", counts.decisions.values().sum(), "");
    for (outcome, count) in &counts.decisions {
        line(2, outcome, *count, "");
    }
    line(0, "sends", counts.by_state.values().sum(), "");
    for (state, count) in &counts.by_state {
        let note = if state == "failed" && counts.fell_back > 0 {
            format!(
                "  ({} went on to the next channel of the route)",
                counts.fell_back
            )
        } else {
            String::new()
        };
        line(2, state, *count, &note);
        let prefix = format!("{state}:");
        for (reason, count) in &counts.by_reason {
            if let Some(class) = reason.strip_prefix(&prefix) {
                line(4, class, *count, "");
            }
        }
    }
    if !counts.by_delivery.is_empty() {
        line(
            0,
            "delivery states reported",
            counts.by_delivery.values().sum(),
            "",
        );
        for (state, count) in &counts.by_delivery {
            line(2, state, *count, "");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn recipients_and_sends_are_told_apart_and_fallbacks_named() {
        let counts = CampaignCounts {
            by_state: map(&[("failed", 13), ("sent", 493)]),
            by_reason: map(&[("failed:unreachable", 13)]),
            by_delivery: map(&[("read", 203)]),
            fell_back: 13,
            decisions: map(&[("sent", 493), ("skipped:no_consent", 7)]),
        };
        let report = status_report("loyalty", &counts);
        let lines: Vec<&str> = report.lines().map(str::trim_end).collect();
        assert_eq!(
            lines,
            [
                "recipients                          500",
                "  sent                              493",
                "  skipped:no_consent                  7",
                "sends                               506",
                "  failed                             13  (13 went on to the next channel of the route)",
                "    unreachable                      13",
                "  sent                              493",
                "delivery states reported            203",
                "  read                              203",
            ]
        );
    }

    #[test]
    fn an_unknown_campaign_says_so() {
        assert_eq!(
            status_report("nope", &CampaignCounts::default()),
            "no sends recorded for campaign `nope`\n"
        );
    }
}
