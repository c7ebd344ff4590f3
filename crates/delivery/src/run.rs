//! A one-shot campaign run (`switchboard send`): enqueue the campaign, then
//! work the outbox with an engine scoped to it until it settles, writing
//! each recipient's result as it is known.
//!
//! "Settled" means nothing is pending, leased or waiting for a retry;
//! sends deferred to a later time (quiet hours, a platform's "not now") are
//! reported as deferred and left to a running `switchboard serve`. A run
//! beside another run of the same campaign sends nothing twice (claims are
//! exclusive); each writes the lines of what it settled, then of what the
//! other settled meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use switchboard_contract::model::ChannelInfo;
use switchboard_core::campaign;
use switchboard_core::ingest::AudienceReader;
use switchboard_runtime::AdapterRuntime;
use switchboard_store::{CampaignRecord, SendQuery, Store, now_ms};

use crate::activation::{self, Sinks};
use crate::engine::{Engine, EngineOptions};
use crate::results::{ResultLine, ResultsWriter, RunReport};
use crate::settings::DeliverySettings;

/// How to run a campaign.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where to write the per-recipient results (JSON lines); default
    /// `<campaign name>.results.jsonl`.
    pub results_path: Option<PathBuf>,
    /// Decide and report only: nothing is sent or stored.
    pub dry_run: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// How often a run checks whether its campaign has settled.
const POLL: Duration = Duration::from_millis(200);

/// The loaded channels' declarations, by name.
pub fn channel_infos(runtime: &AdapterRuntime) -> BTreeMap<String, ChannelInfo> {
    runtime
        .channels()
        .into_iter()
        .filter_map(|name| runtime.get(&name).map(|a| (name, a.info.clone())))
        .collect()
}

/// Run `campaign_path` over `audience_path`; see the [module docs](self).
pub async fn run_campaign(
    store: Arc<dyn Store>,
    runtime: Arc<AdapterRuntime>,
    settings: DeliverySettings,
    campaign_path: &Path,
    audience_path: &Path,
    options: &RunOptions,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let started_ms = now_ms();
    let definition = std::fs::read_to_string(campaign_path)
        .with_context(|| format!("cannot read campaign {}", campaign_path.display()))?;
    let campaign = campaign::parse_campaign(campaign_path, &definition)?;
    if campaign.trigger.is_some() {
        anyhow::bail!(
            "{}: field `trigger`: a triggered campaign sends on events, not to an audience file: submit it to a running host (`POST /api/campaigns` with only `campaign`) and post events to `POST /api/events`",
            campaign_path.display()
        );
    }
    let reader = AudienceReader::open(audience_path)?;
    let infos = channel_infos(&runtime);
    if let Err(errors) = campaign.validate(campaign_path, &infos, reader.columns()) {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the campaign is not valid:\n  {}", list.join("\n  "));
    }
    let results_path = match (&options.results_path, options.dry_run) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => None,
        (None, false) => Some(PathBuf::from(format!("{}.results.jsonl", campaign.name))),
    };
    let writer = ResultsWriter::create(results_path.as_deref()).with_context(|| {
        format!(
            "creating the results file {}",
            results_path.as_deref().unwrap_or(Path::new("-")).display()
        )
    })?;
    let writer = Arc::new(Mutex::new(writer));
    let progress = progress_bar(options.progress);
    let write = {
        let writer = Arc::clone(&writer);
        let progress = progress.clone();
        move |line: &ResultLine| -> std::io::Result<()> {
            progress.inc(1);
            writer
                .lock()
                .map_err(|_| std::io::Error::other("results writer poisoned"))?
                .write(line)
        }
    };

    if !options.dry_run {
        store
            .put_campaign(CampaignRecord {
                name: campaign.name.clone(),
                definition,
                audience: audience_path.display().to_string(),
                state: "running".into(),
                created_ms: started_ms,
            })
            .await?;
    }
    let engine = (!options.dry_run).then(|| {
        Arc::new(Engine::new(
            Arc::clone(&store),
            Arc::clone(&runtime),
            settings.clone(),
            EngineOptions {
                scope: Some(campaign.name.clone()),
                stop_on_store_error: true,
            },
        ))
    });
    let mut events = engine.as_ref().map(|engine| engine.subscribe());
    if let Some(engine) = &engine {
        engine.start();
    }
    let dispatched = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop_collector, mut collector_stop) = tokio::sync::oneshot::channel::<()>();
    let collector = events.take().map(|mut events| {
        let name = campaign.name.clone();
        let write = write.clone();
        let dispatched = Arc::clone(&dispatched);
        let flush = {
            let writer = Arc::clone(&writer);
            move || match writer.lock().map(|mut writer| writer.flush()) {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "could not write result lines"),
                Err(_) => tracing::error!("results writer poisoned"),
            }
        };
        tokio::spawn(async move {
            let handle = |settled: crate::engine::Settled| {
                if settled.send.campaign != name {
                    return;
                }
                dispatched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(line) = ResultLine::from_settled(&settled)
                    && let Err(error) = write(&line)
                {
                    tracing::error!(%error, "could not write a result line");
                }
            };
            loop {
                tokio::select! {
                    biased;
                    event = events.recv() => match event {
                        Some(settled) => {
                            handle(settled);
                            if events.is_empty() {
                                flush();
                            }
                        }
                        None => break,
                    },
                    _ = &mut collector_stop => {
                        // Drain what the stopped engine settled, then end.
                        while let Ok(settled) = events.try_recv() {
                            handle(settled);
                        }
                        break;
                    }
                }
            }
        })
    });

    let mut line = write.clone();
    let enqueued = {
        let engine = engine.clone();
        move |channels: &HashSet<String>| {
            if let Some(engine) = &engine {
                for channel in channels {
                    engine.wake(channel);
                }
            }
        }
    };
    let enqueue = activation::enqueue(
        activation::Outbox {
            store: &store,
            infos: &infos,
            settings: &settings,
        },
        &campaign,
        reader,
        options.dry_run,
        started_ms,
        Sinks {
            line: &mut line,
            enqueued: &enqueued,
        },
    )
    .await;
    let enqueue = match enqueue {
        Ok(report) => report,
        Err(error) => {
            if let Some(engine) = &engine {
                engine.shutdown().await;
            }
            return Err(error);
        }
    };

    let mut settled_elsewhere = 0;
    if let Some(engine) = &engine {
        let mut failure = engine.failure();
        let settled = loop {
            if let Some(error) = failure.borrow().clone() {
                break Err(anyhow::Error::new(error).context(format!(
                    "campaign {} stopped: the database failed; what was sent is recorded, what was in flight is reconciled on the next run",
                    campaign.name
                )));
            }
            match store.campaign_unsettled(&campaign.name).await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(error) => break Err(anyhow::Error::new(error)),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = failure.changed() => {}
            }
        };
        engine.shutdown().await;
        let _ = stop_collector.send(());
        if let Some(collector) = collector {
            let _ = collector.await;
        }
        settled?;
        // What other engines settled while this run went on.
        let others = store
            .sends(SendQuery {
                campaign: Some(campaign.name.clone()),
                settled_by_others_since: Some((engine.owner().to_owned(), started_ms)),
                ..SendQuery::default()
            })
            .await?;
        // A send that fell back is not its recipient's outcome: the next
        // channel's is.
        for record in others
            .iter()
            .filter(|r| !r.fell_back && r.state != "retrying" && r.state != "pending")
        {
            write(&ResultLine::from_record(record))?;
            settled_elsewhere += 1;
        }
    }
    progress.finish_and_clear();
    let mut writer = writer
        .lock()
        .map_err(|_| anyhow::anyhow!("results writer poisoned"))?;
    writer.flush()?;
    Ok(RunReport {
        campaign: campaign.name.clone(),
        audience: audience_path.to_owned(),
        results_path: writer.path().map(Path::to_owned),
        counts: writer.counts().clone(),
        row_problems: enqueue.row_problems,
        row_errors: enqueue.row_errors,
        elapsed: started.elapsed(),
        dispatched: dispatched.load(std::sync::atomic::Ordering::Relaxed),
        settled_elsewhere,
    })
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {pos} recipients settled ({per_sec})")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
