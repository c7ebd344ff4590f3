//! Campaigns submitted to a running host.
//!
//! - `POST /api/campaigns` with JSON `{"campaign": "<campaign TOML>",
//!   "audience_csv": "<CSV>"}` (an uploaded audience) or `{"campaign": …,
//!   "audience_path": "/path/on/the/host.csv"}` (a referenced one). The
//!   campaign is checked against the loaded channels and the audience's
//!   columns (400 with every problem), recorded, and enqueued in the
//!   background: 202 with where to watch it. Submitting a campaign of the
//!   same name again re-runs it: nothing is sent twice.
//! - `GET /api/campaigns/{name}`: the campaign and its counts per state,
//!   reason and delivery state.
//! - `POST /api/campaigns/{name}/cancel`: cancel what has not gone out.
//!
//! A campaign with a `[trigger]` table takes no audience: it is recorded
//! as `listening` (201) and acts on `POST /api/events` until cancelled.
//!
//! A campaign is recorded as `enqueueing` before its audience is read, so
//! a host killed part way finds it when it starts again and finishes the
//! enqueue ([`resume_interrupted`]).

use std::collections::HashSet;
use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use switchboard_core::campaign;
use switchboard_core::ingest::AudienceReader;
use switchboard_delivery::activation::{self, Sinks};
use switchboard_delivery::run::channel_infos;
use switchboard_store::{CampaignRecord, now_ms};

use crate::AppState;
use crate::api::store_error;

/// The body of `POST /api/campaigns`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// The campaign file's text (TOML).
    campaign: String,
    /// The audience, uploaded as CSV text.
    audience_csv: Option<String>,
    /// Or the path of an audience file on the host.
    audience_path: Option<PathBuf>,
}

fn bad_request(errors: Vec<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"errors": errors}))).into_response()
}

/// `POST /api/campaigns`.
pub async fn submit(State(state): State<AppState>, Json(submission): Json<Submission>) -> Response {
    let source = PathBuf::from("campaign.toml");
    let campaign = match campaign::parse_campaign(&source, &submission.campaign) {
        Ok(campaign) => campaign,
        Err(error) => return bad_request(vec![error.to_string()]),
    };
    if campaign.trigger.is_some() {
        return submit_trigger(state, campaign, submission).await;
    }
    let audience = match (submission.audience_csv, submission.audience_path) {
        (Some(csv), None) => {
            if let Err(error) = std::fs::create_dir_all(&state.uploads_dir) {
                return bad_request(vec![format!(
                    "cannot keep the uploaded audience in {}: {error}",
                    state.uploads_dir.display()
                )]);
            }
            let path = state
                .uploads_dir
                .join(format!("{}-{}.csv", campaign.name, now_ms()));
            if let Err(error) = std::fs::write(&path, csv) {
                return bad_request(vec![format!(
                    "cannot keep the uploaded audience in {}: {error}",
                    path.display()
                )]);
            }
            path
        }
        (None, Some(path)) => path,
        _ => {
            return bad_request(vec![
                "give the audience as exactly one of `audience_csv` (the CSV text) or `audience_path` (a file on the host)".into(),
            ]);
        }
    };
    let reader = match AudienceReader::open(&audience) {
        Ok(reader) => reader,
        Err(error) => return bad_request(vec![error.to_string()]),
    };
    let infos = channel_infos(&state.runtime);
    if let Err(errors) = campaign.validate(&source, &infos, reader.columns()) {
        return bad_request(errors.iter().map(ToString::to_string).collect());
    }
    let record = CampaignRecord {
        name: campaign.name.clone(),
        definition: submission.campaign,
        audience: audience.display().to_string(),
        state: ENQUEUEING.into(),
        created_ms: now_ms(),
    };
    if let Err(error) = state.store.put_campaign(record.clone()).await {
        return store_error(error);
    }
    let name = campaign.name.clone();
    enqueue_in_background(state, campaign, record, reader);
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "campaign": name,
            "status": format!("/api/campaigns/{name}"),
        })),
    )
        .into_response()
}

/// The state of a campaign whose audience is being enqueued. A host that
/// stops part way leaves it so, and takes it up again when it starts.
const ENQUEUEING: &str = "enqueueing";

/// Enqueue `campaign`'s audience on a task of its own, then record how it
/// ended in the campaign's state (`enqueued`, or `failed: …`).
fn enqueue_in_background(
    state: AppState,
    campaign: campaign::Campaign,
    record: CampaignRecord,
    reader: AudienceReader,
) {
    tokio::spawn(async move {
        let infos = channel_infos(&state.runtime);
        let engine = std::sync::Arc::clone(&state.engine);
        let wake = move |channels: &HashSet<String>| {
            for channel in channels {
                engine.wake(channel);
            }
        };
        let mut ignore = |_: &switchboard_delivery::ResultLine| Ok(());
        let outcome = activation::enqueue(
            activation::Outbox {
                store: &state.store,
                infos: &infos,
                settings: &state.settings,
            },
            &campaign,
            reader,
            false,
            now_ms(),
            Sinks {
                line: &mut ignore,
                enqueued: &wake,
            },
        )
        .await;
        let final_state = match outcome {
            Ok(report) if report.cancelled => {
                tracing::info!(
                    campaign = %campaign.name,
                    recipients = report.recipients,
                    "campaign cancelled while its audience was being enqueued; the rest was not enqueued"
                );
                activation::CANCELLED.to_owned()
            }
            Ok(report) => {
                tracing::info!(
                    campaign = %campaign.name,
                    recipients = report.recipients,
                    enqueued = report.inserted,
                    already_queued = report.already_queued,
                    row_problems = report.row_problems,
                    "campaign enqueued"
                );
                "enqueued".to_owned()
            }
            Err(error) => {
                tracing::error!(campaign = %campaign.name, %error, "could not enqueue the campaign");
                format!("failed: {error}")
            }
        };
        let record = CampaignRecord {
            state: final_state,
            ..record
        };
        if let Err(error) = state.store.put_campaign(record).await {
            tracing::error!(%error, "could not record the campaign's state");
        }
    });
}

/// Take up again the campaigns a host stopped enqueueing (killed, or the
/// machine went down): their state still says so. Enqueueing is idempotent,
/// so the recipients already in the outbox are left as they are and the
/// rest are added. A campaign that cannot be taken up (its audience file is
/// not on this host, which happens when another node received the upload,
/// or its definition no longer fits the loaded channels) keeps its state,
/// and a warning says why. Returns the campaigns taken up.
pub async fn resume_interrupted(state: &AppState) -> Vec<String> {
    let records = match state.store.campaigns().await {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(%error, "could not list the campaigns to take up interrupted ones");
            return Vec::new();
        }
    };
    let infos = channel_infos(&state.runtime);
    let mut resumed = Vec::new();
    for record in records.into_iter().filter(|r| r.state == ENQUEUEING) {
        let source = PathBuf::from(format!("campaign {}", record.name));
        let audience = PathBuf::from(&record.audience);
        let prepared = campaign::parse_campaign(&source, &record.definition)
            .map_err(|error| vec![error.to_string()])
            .and_then(|campaign| {
                let reader = AudienceReader::open(&audience).map_err(|e| vec![e.to_string()])?;
                campaign
                    .validate(&source, &infos, reader.columns())
                    .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
                Ok((campaign, reader))
            });
        match prepared {
            Ok((campaign, reader)) => {
                tracing::info!(campaign = %record.name, audience = %audience.display(), "taking up a campaign whose enqueueing was interrupted");
                resumed.push(record.name.clone());
                enqueue_in_background(state.clone(), campaign, record, reader);
            }
            Err(problems) => tracing::warn!(
                campaign = %record.name,
                problems = %problems.join("; "),
                "a campaign's enqueueing was interrupted and cannot be taken up on this host; it stays `enqueueing`"
            ),
        }
    }
    resumed
}

/// A triggered campaign: checked against the loaded channels, recorded as
/// listening; from then on it acts on `POST /api/events` on every node.
async fn submit_trigger(
    state: AppState,
    campaign: campaign::Campaign,
    submission: Submission,
) -> Response {
    if submission.audience_csv.is_some() || submission.audience_path.is_some() {
        return bad_request(vec![
            "campaign.toml: field `trigger`: a triggered campaign takes its recipients from events; give no audience".into(),
        ]);
    }
    let infos = channel_infos(&state.runtime);
    if let Err(errors) = campaign.validate_triggered(&PathBuf::from("campaign.toml"), &infos) {
        return bad_request(errors.iter().map(ToString::to_string).collect());
    }
    let record = CampaignRecord {
        name: campaign.name.clone(),
        definition: submission.campaign,
        audience: "events".into(),
        state: switchboard_delivery::triggers::LISTENING.into(),
        created_ms: now_ms(),
    };
    if let Err(error) = state.store.put_campaign(record).await {
        return store_error(error);
    }
    state.triggers.invalidate().await;
    let name = campaign.name;
    (
        StatusCode::CREATED,
        Json(json!({
            "campaign": name,
            "state": switchboard_delivery::triggers::LISTENING,
            "status": format!("/api/campaigns/{name}"),
        })),
    )
        .into_response()
}

/// `GET /api/campaigns/{name}`.
pub async fn status(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let record = match state.store.campaign(&name).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such campaign"})),
            )
                .into_response();
        }
        Err(error) => return store_error(error),
    };
    match state.store.campaign_counts(&name).await {
        Ok(counts) => Json(json!({
            "campaign": record.name,
            "state": record.state,
            "audience": record.audience,
            "created_ms": record.created_ms,
            "open": counts.open(),
            "settled": counts.unsettled() == 0 && record.state != ENQUEUEING,
            "sends": counts.by_state,
            "reasons": counts.by_reason,
            "fell_back": counts.fell_back,
            "delivery": counts.by_delivery,
            "decisions": counts.decisions,
        }))
        .into_response(),
        Err(error) => store_error(error),
    }
}

/// `POST /api/campaigns/{name}/cancel`.
pub async fn cancel(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    match state.store.campaign(&name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such campaign"})),
            )
                .into_response();
        }
        Err(error) => return store_error(error),
    }
    let cancelled = state.store.cancel_campaign(&name, now_ms()).await;
    state.triggers.invalidate().await;
    match cancelled {
        Ok(cancelled) => Json(json!({"campaign": name, "cancelled": cancelled})).into_response(),
        Err(error) => store_error(error),
    }
}
