//! What a campaign run reports: one JSON line per recipient, written as each
//! recipient's outcome is known (a killed run leaves every settled line),
//! and a summary of counts.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchboard_store::{Outcome, SendRecord};

use crate::engine::Settled;

/// One line of the results file: what happened to one recipient. When a
/// recipient has several lines (a run that resumed another's work), the
/// last one is their outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResultLine {
    /// Line of the audience file.
    pub line: u64,
    /// The profile, if the row was readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// `sent`, `already_sent`, `already_settled`, `skipped`, `deferred`,
    /// `failed`, `uncertain`, `cancelled`, `rejected`, or `would_send` in a dry run.
    pub outcome: String,
    /// The channel that decided the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `text` or `template`, for sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The platform's message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// Why it was skipped, deferred or rejected (a stable code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure class, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Details an operator can act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ResultLine {
    /// A line with only its outcome.
    pub fn new(line: u64, profile_id: Option<&str>, outcome: &str) -> Self {
        Self {
            line,
            profile_id: profile_id.map(str::to_owned),
            outcome: outcome.to_owned(),
            channel: None,
            content: None,
            platform_message_id: None,
            reason: None,
            class: None,
            message: None,
        }
    }

    /// The line for a send this engine settled, or `None` while it is not
    /// settled for now (retrying, released, moved to the next channel).
    pub fn from_settled(settled: &Settled) -> Option<Self> {
        if settled.fell_back {
            return None;
        }
        let send = &settled.send;
        let mut line = Self::new(send.line.unwrap_or(0), Some(&send.profile_id), "sent");
        line.channel = Some(send.channel.clone());
        line.content = Some(send.message.content.kind().to_owned());
        match &settled.outcome {
            Outcome::Sent {
                platform_message_id,
                duplicate,
            } => {
                if *duplicate {
                    line.outcome = "already_sent".into();
                }
                line.platform_message_id = platform_message_id.clone();
            }
            Outcome::Failed { class, message } => {
                line.outcome = "failed".into();
                line.class = Some(class.clone());
                line.message = Some(message.clone());
            }
            Outcome::Uncertain { message } => {
                line.outcome = "uncertain".into();
                line.message = Some(message.clone());
            }
            Outcome::Deferred {
                due_ms,
                reason,
                message,
            } => {
                line.outcome = "deferred".into();
                line.reason = Some(reason.clone());
                line.message = Some(format!("{message}; until {}", timestamp(*due_ms)));
            }
            Outcome::Skipped { reason, message } => {
                line.outcome = "skipped".into();
                line.reason = Some(reason.code().to_owned());
                line.message = Some(message.clone());
            }
            Outcome::Retrying { .. } | Outcome::Released { .. } => return None,
        }
        Some(line)
    }

    /// The line for a stored send (settled by another engine).
    pub fn from_record(record: &SendRecord) -> Self {
        let mut line = Self::new(
            record.line.unwrap_or(0),
            Some(&record.profile_id),
            &record.state,
        );
        line.channel = Some(record.channel.clone());
        line.content = Some(record.content_kind.clone());
        line.platform_message_id = record.platform_message_id.clone();
        line.message = record.error_message.clone();
        match record.state.as_str() {
            "failed" => line.class = record.error_class.clone(),
            "deferred" | "skipped" | "cancelled" => line.reason = record.error_class.clone(),
            _ => {}
        }
        if let (Some(due), "deferred") = (record.due_ms, record.state.as_str()) {
            line.message = Some(format!(
                "{}; until {}",
                line.message.unwrap_or_default(),
                timestamp(due)
            ));
        }
        line
    }

    /// The code the summary groups this line under: its reason or class,
    /// or the channel and content for sends.
    pub fn detail(&self) -> String {
        self.reason
            .clone()
            .or_else(|| self.class.clone())
            .or_else(|| {
                let channel = self.channel.as_deref().unwrap_or_default();
                self.content
                    .as_ref()
                    .map(|content| format!("{channel} {content}"))
            })
            .unwrap_or_default()
    }
}

fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| format!("{ms} ms"), |t| t.to_string())
}

/// Lines a writer buffers at most before it pushes them to the file.
const FLUSH_EVERY: usize = 256;

/// Writes result lines as they come and counts them.
///
/// Lines are pushed to the file at least every [`FLUSH_EVERY`] lines and
/// whenever the caller has nothing more queued ([`ResultsWriter::flush`]):
/// a killed run leaves what it wrote up to its last quiet moment, and a
/// busy run does not pay a system call per recipient. (What a killed run
/// settled is in the outbox either way; a re-run reports it.)
pub struct ResultsWriter {
    path: Option<PathBuf>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    counts: BTreeMap<(String, String), u64>,
    unflushed: usize,
}

impl ResultsWriter {
    /// Write to `path` (created or truncated), or only count with `None`.
    pub fn create(path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
            None => None,
        };
        Ok(Self {
            path: path.map(Path::to_owned),
            file,
            counts: BTreeMap::new(),
            unflushed: 0,
        })
    }

    /// Write one line (pushed to the file within [`FLUSH_EVERY`] lines).
    pub fn write(&mut self, line: &ResultLine) -> std::io::Result<()> {
        *self
            .counts
            .entry((line.outcome.clone(), line.detail()))
            .or_default() += 1;
        if let Some(file) = &mut self.file {
            serde_json::to_writer(&mut *file, line)?;
            file.write_all(b"\n")?;
            self.unflushed += 1;
            if self.unflushed >= FLUSH_EVERY {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Push written lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            file.flush()?;
        }
        self.unflushed = 0;
        Ok(())
    }

    /// The counts so far, by outcome and detail.
    pub fn counts(&self) -> &BTreeMap<(String, String), u64> {
        &self.counts
    }

    /// The file written, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// Read a results file back (tests, tools).
pub fn read_results(path: &Path) -> std::io::Result<Vec<ResultLine>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(std::io::Error::other))
        .collect()
}

/// What a campaign run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The campaign's name.
    pub campaign: String,
    /// The audience file.
    pub audience: PathBuf,
    /// The results file written.
    pub results_path: Option<PathBuf>,
    /// Recipients and rejected rows, by outcome and detail.
    pub counts: BTreeMap<(String, String), u64>,
    /// How many row problems were reported.
    pub row_problems: u64,
    /// The first few, for the summary.
    pub row_errors: Vec<String>,
    /// How long it took.
    pub elapsed: Duration,
    /// Messages this run handed to adapters.
    pub dispatched: u64,
    /// Sends of the campaign that other hosts sharing the outbox (a
    /// running `serve`, other nodes) settled while this run went on: their
    /// result lines come from the outbox, and without this count the
    /// summary would seem to have lost them.
    pub settled_elsewhere: u64,
}

impl RunReport {
    /// Counts per outcome and detail, e.g. `("skipped", "no_consent") → 412`;
    /// sends count per channel and content, e.g. `("sent", "whatsapp template")`.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.counts.clone()
    }

    /// How many recipients ended with `outcome`.
    pub fn count(&self, outcome: &str) -> u64 {
        self.counts
            .iter()
            .filter(|((o, _), _)| o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    /// Recipients whose message failed or may not have arrived, in this
    /// run or in an earlier run of the same campaign (a re-run reports the
    /// campaign, not only what it did itself).
    pub fn failures(&self) -> u64 {
        let earlier: u64 = self
            .counts
            .iter()
            .filter(|((outcome, detail), _)| {
                outcome == "already_settled" && (detail == "failed" || detail == "uncertain")
            })
            .map(|(_, n)| n)
            .sum();
        self.count("failed") + self.count("uncertain") + earlier
    }

    /// The summary printed after a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let recipients: u64 = self
            .counts
            .iter()
            .filter(|((o, _), _)| o != "rejected")
            .map(|(_, n)| n)
            .sum();
        let rate = self.dispatched as f64 / self.elapsed.as_secs_f64().max(0.001);
        let delivery = if self.settled_elsewhere > 0 {
            format!(
                "{} messages dispatched by this run, {rate:.0}/s; {} settled by other hosts sharing the outbox",
                self.dispatched, self.settled_elsewhere
            )
        } else {
            format!("{} messages dispatched, {rate:.0}/s", self.dispatched)
        };
        out.push_str(&format!(
            "campaign {}: {} recipients from {} in {:.1}s ({delivery})\n",
            self.campaign,
            recipients,
            self.audience.display(),
            self.elapsed.as_secs_f64(),
        ));
        for ((outcome, detail), count) in &self.counts {
            out.push_str(&format!("  {outcome:<15} {detail:<26} {count:>8}\n"));
        }
        if self.row_problems > 0 {
            out.push_str(&format!(
                "  {} row problems reported, e.g.:\n",
                self.row_problems
            ));
            for error in &self.row_errors {
                out.push_str(&format!("    {error}\n"));
            }
        }
        if let Some(path) = &self.results_path {
            out.push_str(&format!("  results: {}\n", path.display()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(counts: &[(&str, &str, u64)]) -> RunReport {
        RunReport {
            campaign: "c".into(),
            audience: PathBuf::from("a.csv"),
            results_path: None,
            counts: counts
                .iter()
                .map(|(o, d, n)| ((o.to_string(), d.to_string()), *n))
                .collect(),
            row_problems: 0,
            row_errors: Vec::new(),
            elapsed: Duration::ZERO,
            dispatched: 0,
            settled_elsewhere: 0,
        }
    }

    #[test]
    fn the_summary_says_what_other_hosts_settled() {
        let mut run = report(&[("sent", "whatsapp template", 2525)]);
        run.elapsed = Duration::from_secs(10);
        run.dispatched = 1200;
        let alone = run.summary();
        assert!(
            alone.starts_with("campaign c: 2525 recipients from a.csv in 10.0s (1200 messages dispatched, 120/s)\n"),
            "{alone}"
        );
        run.settled_elsewhere = 1325;
        let shared = run.summary();
        assert!(
            shared.starts_with(
                "campaign c: 2525 recipients from a.csv in 10.0s (1200 messages dispatched by this run, \
                 120/s; 1325 settled by other hosts sharing the outbox)\n"
            ),
            "{shared}"
        );
    }

    #[test]
    fn failures_include_earlier_runs_failed_and_uncertain_sends() {
        let mixed = report(&[
            ("sent", "whatsapp template", 10),
            ("failed", "invalid_recipient", 2),
            ("uncertain", "uncertain", 1),
            ("already_sent", "sent", 50),
            ("already_settled", "uncertain", 3),
            ("already_settled", "failed", 4),
            ("already_settled", "cancelled", 5),
        ]);
        assert_eq!(mixed.failures(), 2 + 1 + 3 + 4);
        assert_eq!(report(&[("already_settled", "cancelled", 5)]).failures(), 0);
    }
}
