//! Running a campaign: audience × route × policy → outbox → dispatcher →
//! one result per recipient and a summary.
//!
//! For each profile the channels of the campaign's route are tried in
//! order: a channel where the profile has no address or no consent, or
//! where the platform reports the recipient unreachable, passes the
//! recipient on to the next channel. Every decision is written to the
//! results file and the store with its reason, so an operator can answer
//! "why did this person get nothing?".

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use switchboard_contract::model::{ChannelInfo, Content, OutboundMessage, Purpose};
use switchboard_core::campaign::{self, Campaign};
use switchboard_core::consent::{self, LedgerEntry};
use switchboard_core::ingest::{self, Profile};
use switchboard_core::policy::{self, Decision, OpenedWindow, Recipient, SkipReason};
use switchboard_runtime::AdapterRuntime;
use switchboard_store::{Claim, NewSend, SendState, Store, now_ms};

use crate::dispatch::{Delivery, Dispatcher, Job};

/// What running a campaign needs: the loaded adapters, the store and the
/// dispatcher that sends through them.
#[derive(Clone)]
pub struct Context {
    /// The loaded adapters.
    pub runtime: Arc<AdapterRuntime>,
    /// The database.
    pub store: Store,
    /// Sends through the adapters.
    pub dispatcher: Arc<Dispatcher>,
}

/// How to run a campaign.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write the per-recipient results (JSON lines).
    pub results_path: Option<PathBuf>,
    /// Decide and report only: nothing is sent or stored.
    pub dry_run: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// One line of the results file: what happened to one recipient.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ResultLine {
    /// Line of the audience file.
    pub line: u64,
    /// The profile, if the row was readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// `sent`, `already_sent`, `skipped`, `deferred`, `failed`, `uncertain`, `rejected`, or `would_send` in a dry run.
    pub outcome: &'static str,
    /// The channel that decided the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `text` or `template`, for sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'static str>,
    /// The platform's message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// Why it was skipped, deferred or rejected (a stable code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The failure class, for failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Details an operator can act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ResultLine {
    fn new(line: u64, profile_id: Option<&str>, outcome: &'static str) -> Self {
        Self {
            line,
            profile_id: profile_id.map(str::to_owned),
            outcome,
            channel: None,
            content: None,
            platform_message_id: None,
            reason: None,
            class: None,
            message: None,
        }
    }
}

/// What a campaign run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The campaign's name.
    pub campaign: String,
    /// The audience file.
    pub audience: PathBuf,
    /// The results file written.
    pub results_path: Option<PathBuf>,
    /// One line per recipient (and per rejected row).
    pub lines: Vec<ResultLine>,
    /// Rows reported as bad (a row can be reported and still be sent on another channel).
    pub row_errors: Vec<String>,
    /// How long it took.
    pub elapsed: Duration,
    /// Messages handed to adapters.
    pub dispatched: usize,
}

impl RunReport {
    /// Counts per outcome and reason, e.g. `("skipped", "no_consent") → 412`;
    /// sends count per channel and content, e.g. `("sent", "whatsapp template")`.
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        let mut counts = BTreeMap::new();
        for line in &self.lines {
            let detail = line
                .reason
                .clone()
                .or_else(|| line.class.clone())
                .or_else(|| {
                    let channel = line.channel.as_deref().unwrap_or_default();
                    line.content.map(|content| format!("{channel} {content}"))
                })
                .unwrap_or_default();
            *counts.entry((line.outcome.to_owned(), detail)).or_default() += 1;
        }
        counts
    }

    /// How many recipients ended with `outcome`.
    pub fn count(&self, outcome: &str) -> u64 {
        self.lines.iter().filter(|l| l.outcome == outcome).count() as u64
    }

    /// The summary printed after a run.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let recipients = self
            .lines
            .iter()
            .filter(|l| l.outcome != "rejected")
            .count();
        out.push_str(&format!(
            "campaign {}: {} recipients from {} in {:.1}s ({} messages dispatched, {:.0}/s)\n",
            self.campaign,
            recipients,
            self.audience.display(),
            self.elapsed.as_secs_f64(),
            self.dispatched,
            self.dispatched as f64 / self.elapsed.as_secs_f64().max(0.001),
        ));
        for ((outcome, detail), count) in self.counts() {
            out.push_str(&format!("  {outcome:<13} {detail:<26} {count:>7}\n"));
        }
        if !self.row_errors.is_empty() {
            out.push_str(&format!(
                "  {} row problems reported, e.g.:\n",
                self.row_errors.len()
            ));
            for error in self.row_errors.iter().take(5) {
                out.push_str(&format!("    {error}\n"));
            }
        }
        if let Some(path) = &self.results_path {
            out.push_str(&format!("  results: {}\n", path.display()));
        }
        out
    }
}

/// A recipient still looking for a channel.
struct Pending<'a> {
    profile: &'a Profile,
    /// Index of the next route channel to try.
    next_channel: usize,
    /// The first reason a channel gave for not sending, reported if none sends.
    first_skip: Option<(String, SkipReason)>,
    /// The last channel that reported the recipient unreachable, and what it said.
    unreachable: Option<(String, String)>,
    /// How many channels the route has.
    route_len: usize,
}

/// Run `campaign_path` over `audience_path`.
pub async fn run_campaign(
    host: &Context,
    campaign_path: &Path,
    audience_path: &Path,
    options: &RunOptions,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let campaign = campaign::load_campaign(campaign_path)?;
    let audience = ingest::read_audience(audience_path)?;
    let infos: BTreeMap<String, ChannelInfo> = host
        .runtime
        .channels()
        .into_iter()
        .filter_map(|name| host.runtime.get(&name).map(|a| (name, a.info.clone())))
        .collect();
    if let Err(errors) = campaign.validate(campaign_path, &infos, &audience.columns) {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the campaign is not valid:\n  {}", list.join("\n  "));
    }

    let mut lines: Vec<ResultLine> = Vec::with_capacity(audience.profiles.len());
    let row_errors: Vec<String> = audience.rejected.iter().map(ToString::to_string).collect();
    let profile_lines: std::collections::HashSet<u64> =
        audience.profiles.iter().map(|p| p.line).collect();
    for error in &audience.rejected {
        if !profile_lines.contains(&error.line) {
            let mut line = ResultLine::new(error.line, None, "rejected");
            line.reason = Some(if error.field.is_empty() {
                "invalid_row".to_owned()
            } else {
                format!("invalid_{}", error.field)
            });
            line.message = Some(error.to_string());
            lines.push(line);
        }
    }

    let progress = progress_bar(options.progress, audience.profiles.len() as u64);
    let dispatcher = Arc::clone(&host.dispatcher);
    let mut pending: Vec<Pending<'_>> = audience
        .profiles
        .iter()
        .map(|profile| Pending {
            profile,
            next_channel: 0,
            first_skip: None,
            unreachable: None,
            route_len: campaign.route.len(),
        })
        .collect();
    let mut dispatched = 0usize;
    while !pending.is_empty() {
        let mut jobs: Vec<Job> = Vec::new();
        let mut retry: Vec<Pending<'_>> = Vec::new();
        for mut recipient in pending {
            match decide_next(host, &campaign, &infos, &mut recipient, options.dry_run)? {
                Next::Done(line) => {
                    record(host, &campaign, &line, options.dry_run);
                    progress.inc(1);
                    lines.push(line);
                }
                Next::Dispatch(job) => {
                    jobs.push(job);
                    retry.push(recipient);
                }
            }
        }
        if jobs.is_empty() {
            break;
        }
        dispatched += jobs.len();
        let by_key: BTreeMap<String, usize> = jobs
            .iter()
            .enumerate()
            .map(|(slot, job)| (job.message.idempotency_key.clone(), slot))
            .collect();
        let results = dispatcher.deliver(jobs, Arc::new(|_, _| {})).await;
        let mut next_round = Vec::new();
        let mut outcomes: Vec<Option<(Job, Delivery)>> = vec![None; retry.len()];
        for (job, delivery) in results {
            if let Some(&slot) = by_key.get(&job.message.idempotency_key) {
                outcomes[slot] = Some((job, delivery));
            }
        }
        for (mut recipient, outcome) in retry.into_iter().zip(outcomes) {
            let Some((job, delivery)) = outcome else {
                continue;
            };
            match settle_line(host, &mut recipient, &job, delivery) {
                Some(line) => {
                    record(host, &campaign, &line, options.dry_run);
                    progress.inc(1);
                    lines.push(line);
                }
                None => next_round.push(recipient),
            }
        }
        pending = next_round;
    }
    progress.finish_and_clear();
    lines.sort_by_key(|line| line.line);

    let results_path = if options.dry_run && options.results_path.is_none() {
        None
    } else {
        Some(
            options
                .results_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.results.jsonl", campaign.name))),
        )
    };
    if let Some(path) = &results_path {
        write_results(path, &lines)?;
    }
    Ok(RunReport {
        campaign: campaign.name.clone(),
        audience: audience_path.to_owned(),
        results_path,
        lines,
        row_errors,
        elapsed: started.elapsed(),
        dispatched,
    })
}

enum Next {
    Done(ResultLine),
    Dispatch(Job),
}

/// Try the recipient's remaining route channels until one sends, defers or
/// settles; skips move on to the next channel.
fn decide_next(
    host: &Context,
    campaign: &Campaign,
    infos: &BTreeMap<String, ChannelInfo>,
    recipient: &mut Pending<'_>,
    dry_run: bool,
) -> anyhow::Result<Next> {
    let profile = recipient.profile;
    while recipient.next_channel < campaign.route.len() {
        let channel = campaign.route[recipient.next_channel].clone();
        recipient.next_channel += 1;
        let Some(info) = infos.get(&channel) else {
            continue;
        };
        let address = match profile.address_for(&channel, info.address_kind) {
            ingest::AddressLookup::Found(address) => Some(address),
            _ => None,
        };
        let (ledger, windows) = match &address {
            Some(address) => (
                host.store
                    .consent_history(&channel, address)?
                    .into_iter()
                    .map(|record| LedgerEntry {
                        opted_in: record.opted_in,
                        purpose: record.purpose.as_deref().and_then(Purpose::from_name),
                        at_ms: record.occurred_ms,
                        source: record.source,
                    })
                    .collect(),
                host.store.windows(&channel, address)?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let consent = consent::resolve(
            profile.consent(&channel, campaign.purpose),
            &ledger,
            campaign.purpose,
        );
        let view = Recipient {
            profile,
            consent,
            windows: windows
                .into_iter()
                .map(|w| OpenedWindow {
                    opener: w.opener,
                    opened_ms: w.opened_ms,
                    free_form_sent: w.free_form_sent,
                })
                .collect(),
        };
        match policy::decide(campaign, &channel, info, &view, jiff::Timestamp::now()) {
            Decision::Skip(reason) => {
                // Report the first channel that knew the person; "no address"
                // only when none did.
                let replace = match &recipient.first_skip {
                    None => true,
                    Some((_, first)) => {
                        first.code() == "no_address" && reason.code() != "no_address"
                    }
                };
                if replace {
                    recipient.first_skip = Some((channel, reason));
                }
            }
            Decision::Defer { until, reason } => {
                let key =
                    campaign::idempotency_key(&campaign.name, &profile.profile_id, &channel, 0);
                let address = address.unwrap_or_default();
                if !dry_run {
                    host.store.claim(
                        &new_send(campaign, profile, &channel, &address, &key, "deferred"),
                        info.deduplicates,
                        now_ms(),
                    )?;
                    host.store.mark_failed(
                        &key,
                        SendState::Deferred,
                        "quiet_hours",
                        &reason,
                        Some(until.as_millisecond()),
                        now_ms(),
                    )?;
                }
                let mut line = ResultLine::new(profile.line, Some(&profile.profile_id), "deferred");
                line.channel = Some(channel);
                line.reason = Some("quiet_hours".into());
                line.message = Some(format!("{reason}; until {until}"));
                return Ok(Next::Done(line));
            }
            Decision::Send {
                to,
                content,
                purpose,
                window,
            } => {
                let key =
                    campaign::idempotency_key(&campaign.name, &profile.profile_id, &channel, 0);
                let kind = content_kind(&content);
                if dry_run {
                    let mut line =
                        ResultLine::new(profile.line, Some(&profile.profile_id), "would_send");
                    line.channel = Some(channel);
                    line.content = Some(kind);
                    return Ok(Next::Done(line));
                }
                match host.store.claim(
                    &new_send(campaign, profile, &channel, &to, &key, kind),
                    info.deduplicates,
                    now_ms(),
                )? {
                    Claim::Proceed { attempts } => {
                        return Ok(Next::Dispatch(Job {
                            channel,
                            profile_id: profile.profile_id.clone(),
                            message: OutboundMessage {
                                idempotency_key: key,
                                to,
                                purpose,
                                content,
                                ttl_seconds: campaign.ttl_seconds,
                                attempt: attempts + 1,
                            },
                            window,
                        }));
                    }
                    Claim::AlreadyDone {
                        state,
                        platform_message_id,
                    } => {
                        let outcome = if state == SendState::Sent {
                            "already_sent"
                        } else {
                            "already_settled"
                        };
                        let mut line =
                            ResultLine::new(profile.line, Some(&profile.profile_id), outcome);
                        line.channel = Some(channel);
                        line.platform_message_id = platform_message_id;
                        line.reason = Some(state.as_str().to_owned());
                        return Ok(Next::Done(line));
                    }
                    Claim::Uncertain => {
                        let mut line =
                            ResultLine::new(profile.line, Some(&profile.profile_id), "uncertain");
                        line.channel = Some(channel);
                        line.message = Some("left in flight by an earlier run that stopped; not resent because the platform does not deduplicate".into());
                        return Ok(Next::Done(line));
                    }
                }
            }
        }
    }
    if let Some((channel, message)) = recipient.unreachable.take() {
        let mut line = ResultLine::new(profile.line, Some(&profile.profile_id), "failed");
        line.channel = Some(channel);
        line.class = Some("unreachable".into());
        line.message = Some(message);
        return Ok(Next::Done(line));
    }
    let mut line = ResultLine::new(profile.line, Some(&profile.profile_id), "skipped");
    match recipient.first_skip.take() {
        Some((channel, reason)) => {
            line.channel = Some(channel);
            line.reason = Some(reason.code().to_owned());
            line.message = Some(reason.to_string());
        }
        None => line.reason = Some("no_channel".into()),
    }
    Ok(Next::Done(line))
}

fn new_send<'a>(
    campaign: &'a Campaign,
    profile: &'a Profile,
    channel: &'a str,
    address: &'a str,
    key: &'a str,
    kind: &'a str,
) -> NewSend<'a> {
    NewSend {
        key,
        campaign: &campaign.name,
        profile_id: &profile.profile_id,
        channel,
        address,
        step: 0,
        content_kind: kind,
    }
}

fn content_kind(content: &Content) -> &'static str {
    match content {
        Content::Text(_) => "text",
        Content::Template(_) => "template",
    }
}

/// The result line for a dispatched job, or `None` when the recipient should
/// try the next channel of the route.
fn settle_line(
    host: &Context,
    recipient: &mut Pending<'_>,
    job: &Job,
    delivery: Delivery,
) -> Option<ResultLine> {
    let profile = recipient.profile;
    let mut line = ResultLine::new(profile.line, Some(&profile.profile_id), "sent");
    line.channel = Some(job.channel.clone());
    line.content = Some(content_kind(&job.message.content));
    match delivery {
        Delivery::Sent {
            platform_message_id,
            duplicate,
        } => {
            if let Some(opener) = job.window
                && let Err(error) =
                    host.store
                        .count_free_form(&job.channel, &job.message.to, opener)
            {
                tracing::error!(%error, "could not count a free-form message against the window");
            }
            if duplicate {
                line.outcome = "already_sent";
            }
            line.platform_message_id = platform_message_id;
        }
        Delivery::Failed { class, message } => {
            line.outcome = "failed";
            line.class = Some(class);
            line.message = Some(message);
        }
        Delivery::Unreachable { message } => {
            // Another channel of the route may reach them.
            if recipient.next_channel < recipient.route_len {
                recipient.unreachable = Some((job.channel.clone(), message));
                return None;
            }
            line.outcome = "failed";
            line.class = Some("unreachable".into());
            line.message = Some(message);
        }
        Delivery::Deferred { until_ms, message } => {
            line.outcome = "deferred";
            line.reason = Some("platform_deferred".into());
            let until = jiff::Timestamp::from_millisecond(until_ms)
                .map_or_else(|_| format!("{until_ms} ms"), |t| t.to_string());
            line.message = Some(format!("{message}; until {until}"));
        }
        Delivery::Uncertain { message } => {
            line.outcome = "uncertain";
            line.message = Some(message);
        }
    }
    Some(line)
}

fn record(host: &Context, campaign: &Campaign, line: &ResultLine, dry_run: bool) {
    if dry_run {
        return;
    }
    let Some(profile_id) = &line.profile_id else {
        return;
    };
    let reason = line.reason.as_deref().or(line.class.as_deref());
    if let Err(error) = host.store.record_decision(
        &campaign.name,
        profile_id,
        line.channel.as_deref(),
        line.outcome,
        reason,
        line.message.as_deref(),
    ) {
        tracing::error!(%error, "could not record a decision");
    }
}

fn write_results(path: &Path, lines: &[ResultLine]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    for line in lines {
        serde_json::to_writer(&mut writer, line)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(())
}

fn progress_bar(enabled: bool, length: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} recipients ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    bar
}
