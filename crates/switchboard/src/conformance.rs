//! `switchboard adapter test`: the checks every adapter must pass, run on an
//! author's own package against a stub platform on loopback (or the
//! author's own mock), with a report of what passed and what did not.
//!
//! The checks need no knowledge of the platform: the package loads and its
//! `describe` agrees with its manifest; its declared limits are usable; a
//! forged webhook (no signature, made-up body) is refused with nothing
//! recorded; one message and a full batch each get one classified outcome
//! per message; and the component stays inside size and time budgets.
//! Platform-specific checks (payloads, signatures, error codes) belong in
//! the adapter's own tests against its platform's mock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use switchboard_contract::model::{
    AddressKind, ChannelInfo, Content, FreeFormRule, HttpRequest, OutboundMessage, Purpose,
    TemplateMessage,
};
use switchboard_runtime::{
    AdapterRuntime, ChannelGrant, LoadedAdapter, Manifest, PackageTrust, RuntimeOptions,
    SandboxLimits,
};

/// The largest component the check accepts without a warning-level fail.
const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It passed.
    Pass,
    /// It failed: the adapter breaks the contract.
    Fail,
    /// It could not be decided with the inputs given (the detail says
    /// which input would decide it).
    Skip,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was seen.
    pub detail: String,
}

/// Every check's result, in order.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks run.
    pub checks: Vec<Check>,
}

impl Report {
    fn record(&mut self, name: &'static str, passed: bool, detail: impl Into<String>) {
        let status = if passed { Status::Pass } else { Status::Fail };
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
        });
    }

    fn skip(&mut self, name: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
        });
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The report as the command prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Pass => "PASS",
                Status::Fail => "FAIL",
                Status::Skip => "SKIP",
            };
            out.push_str(&format!("{status} {:<30} {}\n", check.name, check.detail));
        }
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped{}\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip),
            if count(Status::Fail) == 0 {
                ""
            } else {
                "; see the FAIL lines"
            }
        ));
        out
    }
}

/// What the checks run against and with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The platform (a mock) every declared host is pointed at; `None`
    /// starts a stub on loopback that answers `200 {}` to everything.
    pub against: Option<String>,
    /// Settings to grant the adapter.
    pub settings: HashMap<String, String>,
    /// Secrets to grant; declared secrets not given get a placeholder.
    pub secrets: HashMap<String, String>,
    /// Recipients to send to (cycled); default: made-up addresses of the
    /// channel's address kind, which a real adapter may refuse before
    /// making a request.
    pub recipients: Vec<String>,
}

/// A stub platform: answers every request `200 {}` and counts them.
struct Stub {
    url: String,
    requests: Arc<AtomicUsize>,
}

async fn start_stub() -> anyhow::Result<Stub> {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let router = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "{}",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Stub { url, requests })
}

/// A recipient address of the channel's kind.
fn sample_address(kind: AddressKind, n: usize) -> String {
    match kind {
        AddressKind::PhoneNumber => format!("+49151{:08}", 10_000_000 + n),
        AddressKind::PlatformUserId => format!("conformance-user-{n}"),
    }
}

/// A message the channel can carry: text where it sends free-form text,
/// otherwise a template.
fn sample_message(info: &ChannelInfo, recipients: &[String], n: usize) -> OutboundMessage {
    let content = if info.free_form == FreeFormRule::Never {
        Content::Template(TemplateMessage {
            name: "conformance_test".into(),
            language: Some("en".into()),
            parameters: Vec::new(),
            link: None,
        })
    } else {
        Content::Text(format!("Conformance check message {n}"))
    };
    OutboundMessage {
        idempotency_key: format!("{:064x}", 0xC0FFEE_u128 * 1_000_003 + n as u128),
        to: if recipients.is_empty() {
            sample_address(info.address_kind, n)
        } else {
            recipients[n % recipients.len()].clone()
        },
        purpose: info
            .template_purposes
            .first()
            .copied()
            .unwrap_or(Purpose::Utility),
        content,
        ttl_seconds: None,
        attempt: 1,
    }
}

/// Run every check on the package in `folder`.
pub async fn run(folder: &Path, options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let folder = &folder
        .canonicalize()
        .map_err(|e| anyhow::anyhow!("{}: {e}", folder.display()))?;
    let manifest_path = folder.join("manifest.toml");
    let manifest = match Manifest::load(&manifest_path) {
        Ok(manifest) => manifest,
        Err(error) => {
            report.record("manifest", false, error.to_string());
            return Ok(report);
        }
    };
    let channel = manifest.adapter.name.clone();
    report.record(
        "manifest",
        true,
        format!("channel `{channel}` v{}", manifest.adapter.version),
    );

    let stub = match &options.against {
        Some(_) => None,
        None => Some(start_stub().await?),
    };
    let platform = options
        .against
        .clone()
        .or_else(|| stub.as_ref().map(|s| s.url.clone()))
        .unwrap_or_default();
    let mut secrets = options.secrets.clone();
    for key in &manifest.config.secrets {
        secrets
            .entry(key.clone())
            .or_insert_with(|| "conformance-placeholder-secret".to_owned());
    }
    let endpoints = manifest
        .egress
        .hosts
        .iter()
        .map(|host| (host.clone(), platform.clone()))
        .collect();
    let grant = ChannelGrant {
        allow_hosts: Some(manifest.egress.hosts.clone()),
        settings: options.settings.clone(),
        secrets,
        endpoints,
        // The author's own package, usually not signed yet.
        allow_unsigned: Some(true),
        package: Some(folder.to_owned()),
        ..Default::default()
    };
    let limits = SandboxLimits::default();
    let runtime = AdapterRuntime::new(
        RuntimeOptions {
            limits,
            trust: PackageTrust {
                allow_unsigned: true,
                ..Default::default()
            },
            ..Default::default()
        },
        HashMap::from([(channel.clone(), grant)]),
    )?;

    let started = Instant::now();
    let adapter = match runtime.load_package(&manifest_path).await {
        Ok(adapter) => adapter,
        Err(error) => {
            report.record("loads and describes", false, error.to_string());
            return Ok(report);
        }
    };
    report.record(
        "loads and describes",
        true,
        format!(
            "contract {}, compiled in {} ms; `describe` agrees with the manifest",
            adapter.contract,
            started.elapsed().as_millis()
        ),
    );
    check_limits(&mut report, &adapter.info);
    check_size(&mut report, folder, &manifest);
    check_forged_webhook(&mut report, &adapter).await;
    check_sends(
        &mut report,
        &adapter,
        &options.recipients,
        limits.call_timeout,
    )
    .await;
    if let Some(stub) = &stub {
        let seen = stub.requests.load(Ordering::SeqCst);
        if seen > 0 {
            report.record(
                "requests reach the platform",
                true,
                format!("{seen} requests reached the stub platform through the declared hosts"),
            );
        } else {
            report.skip(
                "requests reach the platform",
                "no message got as far as a request: give the adapter what it needs (--setting, --secret, --to a valid address)",
            );
        }
    }
    Ok(report)
}

fn check_limits(report: &mut Report, info: &ChannelInfo) {
    let limits = &info.limits;
    let mut problems = Vec::new();
    if limits.max_batch_size == 0 {
        problems.push("max-batch-size is 0".to_owned());
    }
    if limits.messages_per_second == 0 {
        problems.push("messages-per-second is 0".to_owned());
    }
    if limits.max_text_length == 0 && info.free_form != FreeFormRule::Never {
        problems.push("max-text-length is 0 but free-form text is allowed".to_owned());
    }
    if info.egress_hosts.is_empty() {
        problems.push("no egress hosts: the adapter cannot reach its platform".to_owned());
    }
    if info.free_form == FreeFormRule::Never && info.template_purposes.is_empty() {
        problems.push("neither free-form text nor templates: nothing can be sent".to_owned());
    }
    report.record(
        "declared limits usable",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "batches of {}, {} msg/s, text up to {} {:?}",
                limits.max_batch_size,
                limits.messages_per_second,
                limits.max_text_length,
                limits.text_unit
            )
        } else {
            problems.join("; ")
        },
    );
}

fn check_size(report: &mut Report, folder: &Path, manifest: &Manifest) {
    let path: PathBuf = folder.join(&manifest.adapter.component);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    report.record(
        "component size",
        bytes > 0 && bytes <= MAX_COMPONENT_BYTES,
        format!("{bytes} bytes (budget {MAX_COMPONENT_BYTES})"),
    );
}

async fn check_forged_webhook(report: &mut Report, adapter: &LoadedAdapter) {
    let channel = adapter.channel().to_owned();
    let forged = HttpRequest {
        method: "POST".into(),
        path_and_query: format!("/webhooks/{channel}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"forged":true,"events":[{"type":"message","from":"attacker"}]}"#.to_vec(),
    };
    match adapter.handle_webhook(&forged).await {
        Ok(result) => {
            let refused = (400..500).contains(&result.response.status);
            report.record(
                "forged webhook refused",
                refused && result.events.is_empty(),
                format!(
                    "an unsigned, made-up POST got {} with {} events (want 4xx and none)",
                    result.response.status,
                    result.events.len()
                ),
            );
        }
        Err(error) => report.record(
            "forged webhook refused",
            false,
            format!("the call failed instead of refusing: {error}"),
        ),
    }
}

async fn check_sends(
    report: &mut Report,
    adapter: &LoadedAdapter,
    recipients: &[String],
    timeout: Duration,
) {
    let info = &adapter.info;
    let started = Instant::now();
    match adapter.send(&[sample_message(info, recipients, 1)]).await {
        Ok(results) if results.len() == 1 => report.record(
            "one message, one outcome",
            true,
            format!(
                "{} in {} ms",
                outcome_name(&results[0]),
                started.elapsed().as_millis()
            ),
        ),
        Ok(results) => report.record(
            "one message, one outcome",
            false,
            format!("{} outcomes for 1 message", results.len()),
        ),
        Err(error) => report.record("one message, one outcome", false, error.to_string()),
    }
    let size = (info.limits.max_batch_size as usize).clamp(1, 100);
    let batch: Vec<OutboundMessage> = (0..size)
        .map(|n| sample_message(info, recipients, 100 + n))
        .collect();
    let started = Instant::now();
    match adapter.send(&batch).await {
        Ok(results) => {
            let elapsed = started.elapsed();
            let mut classes: std::collections::BTreeMap<&str, usize> = Default::default();
            for result in &results {
                *classes.entry(outcome_name(result)).or_default() += 1;
            }
            report.record(
                "full batch, one outcome each",
                results.len() == size,
                format!(
                    "{} outcomes for {size} messages: {classes:?}",
                    results.len()
                ),
            );
            report.record(
                "time budget",
                elapsed < timeout / 2,
                format!(
                    "a batch of {size} took {} ms (call timeout {} ms; keep under half)",
                    elapsed.as_millis(),
                    timeout.as_millis()
                ),
            );
        }
        Err(error) => report.record("full batch, one outcome each", false, error.to_string()),
    }
}

fn outcome_name(result: &switchboard_contract::model::SendResult) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(error) => error.class(),
    }
}
