//! Outbound HTTP for adapters: every `wasi:http` request passes through
//! [`EgressHooks::send_request`], which checks it against the adapter's
//! [`EgressPolicy`], bounds how many requests one call may have in flight
//! and how large bodies may be, then sends it with one of the host's two
//! pooled clients.
//!
//! - [`policy`]: which URLs an adapter may request and where they go.
//! - [`blocklist`]: the special-purpose addresses never dialled.
//! - [`client`]: the clients and the filtering DNS resolver.

pub mod blocklist;
pub mod client;
pub mod policy;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use blocklist::blocked_ip;
pub use policy::{Destination, EgressPolicy};

use crate::trace::{MESSAGE_INDEX_HEADER, RequestFate, SharedTrace, WriteAhead};

/// The host's clients for adapter egress, shared by every call.
#[derive(Debug, Clone)]
pub struct EgressClients {
    /// For the hosts adapters name (filtering resolver).
    pub public: reqwest::Client,
    /// For hosts the operator pointed elsewhere (`endpoints`).
    pub operator: reqwest::Client,
}

impl EgressClients {
    /// Build both clients.
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Self {
            public: client::public_client()?,
            operator: client::operator_client()?,
        })
    }

    fn for_destination(&self, destination: &Destination) -> &reqwest::Client {
        match destination {
            Destination::Direct(_) => &self.public,
            Destination::Operator(_) => &self.operator,
        }
    }
}

/// Per-call bounds on egress.
#[derive(Debug, Clone, Copy)]
pub struct EgressLimits {
    /// Requests one call may have in flight at once.
    pub max_in_flight: usize,
    /// Largest request or response body, in bytes.
    pub max_body_bytes: usize,
}

/// The `wasi:http` hooks of one call: the policy, the shared clients, and a
/// record of refused requests so the host can fail the call clearly.
pub struct EgressHooks {
    /// The adapter's policy.
    pub policy: Arc<EgressPolicy>,
    /// The shared clients.
    pub clients: EgressClients,
    /// The call's bounds.
    pub limits: EgressLimits,
    /// Requests refused during this call, with the reason.
    pub denials: Arc<Mutex<Vec<String>>>,
    /// Requests sent during this call.
    pub requests: Arc<AtomicU64>,
    /// Requests of this call in flight now.
    pub in_flight: Arc<AtomicUsize>,
    /// For a `send` call: which messages each request carries and what
    /// became of it.
    pub trace: Option<SharedTrace>,
    /// For a `send` call: told before a request carrying messages leaves.
    pub write_ahead: Option<Arc<dyn WriteAhead>>,
}

impl EgressHooks {
    fn deny(&self, reason: String) {
        tracing::warn!(%reason, "adapter egress denied");
        if let Ok(mut list) = self.denials.lock() {
            // One call cannot grow the host's memory through refusals.
            if list.len() < MAX_DENIALS_KEPT {
                list.push(reason);
            }
        }
    }
}

/// Refusal reasons kept per call (the first ones explain the rest).
const MAX_DENIALS_KEPT: usize = 8;

/// Counts a request in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> SendFuture {
        let mut request = request;
        let header = request
            .headers_mut()
            .remove(MESSAGE_INDEX_HEADER)
            .and_then(|value| value.to_str().ok().map(str::to_owned));
        let indices = trace_indices(&self.trace, header.as_deref());
        let carried = indices.clone();
        let trace = self.trace.clone();
        let record = move |begun: bool, fate: Option<RequestFate>| {
            if let Some(trace) = &trace
                && let Ok(mut trace) = trace.lock()
            {
                match fate {
                    None => trace.begin(&indices),
                    Some(fate) => trace.record(&indices, begun, fate),
                }
            }
        };
        let refuse = |record: &dyn Fn(bool, Option<RequestFate>)| -> SendFuture {
            record(false, Some(RequestFate::NotSent));
            Box::new(async { Err(HttpError::HttpRequestDenied) })
        };
        // Checked before anything is spawned: a call cannot hold more than
        // its share of connections, descriptors and tasks.
        let max = self.limits.max_in_flight;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.deny(format!(
                "more than {max} requests in flight in one call (`max_requests_in_flight`)"
            ));
            return refuse(&record);
        }
        let guard = InFlight(Arc::clone(&self.in_flight));
        let destination = match self.policy.check(&request.uri().to_string()) {
            Ok(destination) => destination,
            Err(reason) => {
                self.deny(reason);
                return refuse(&record);
            }
        };
        let client = self.clients.for_destination(&destination).clone();
        let requests = Arc::clone(&self.requests);
        let denials = Arc::clone(&self.denials);
        let write_ahead = self.write_ahead.clone();
        let timeout = clamp_timeout(options.as_ref(), self.policy.max_timeout);
        let max_body = self.limits.max_body_bytes;
        Box::new(async move {
            let _guard = guard;
            if let Some(write_ahead) = &write_ahead
                && !carried.is_empty()
                && let Err(reason) = write_ahead.before_write(carried).await
            {
                tracing::warn!(%reason, "request held back: it could not be recorded before leaving");
                record(false, Some(RequestFate::NotSent));
                return Err(HttpError::InternalError(Some(reason)));
            }
            requests.fetch_add(1, Ordering::Relaxed);
            // Counted as written from here: if the call ends while it is on
            // its way, the platform may have it.
            record(false, None);
            match forward(
                &client,
                request,
                destination.url().clone(),
                timeout,
                max_body,
            )
            .await
            {
                Ok(response) => {
                    record(true, Some(RequestFate::Answered));
                    let io: IoFuture = Box::new(async { Ok(()) });
                    Ok((response, io))
                }
                Err(Failed { error, written }) => {
                    if matches!(error, HttpError::DestinationIpProhibited)
                        && let Ok(mut list) = denials.lock()
                        && list.len() < MAX_DENIALS_KEPT
                    {
                        list.push(format!(
                            "`{}` resolves only to special-purpose addresses",
                            destination.url().host_str().unwrap_or("?")
                        ));
                    }
                    record(
                        true,
                        Some(if written {
                            RequestFate::LostAfterWrite
                        } else {
                            RequestFate::NotSent
                        }),
                    );
                    Err(error)
                }
            }
        })
    }
}

fn clamp_timeout(options: Option<&RequestOptions>, max: Duration) -> Duration {
    options
        .and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
        .map_or(max, |asked| asked.min(max))
}

/// The batch positions a request with this header carries, per the trace.
fn trace_indices(trace: &Option<SharedTrace>, header: Option<&str>) -> Vec<u32> {
    trace
        .as_ref()
        .and_then(|trace| trace.lock().ok().map(|t| t.attribute(header)))
        .unwrap_or_default()
}

/// A request that got no complete reply, and whether it was written first.
struct Failed {
    error: HttpError,
    written: bool,
}

impl Failed {
    fn unsent(error: HttpError) -> Self {
        Self {
            error,
            written: false,
        }
    }
}

async fn forward(
    client: &reqwest::Client,
    request: http::Request<WasiBody>,
    url: url::Url,
    timeout: Duration,
    max_body: usize,
) -> Result<http::Response<WasiBody>, Failed> {
    let (parts, body) = request.into_parts();
    // Bounded while it streams in, not after.
    let body = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|_| Failed::unsent(HttpError::HttpRequestBodySize(None)))?
        .to_bytes();
    let mut builder = client
        .request(parts.method, url)
        .timeout(timeout)
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            builder = builder.header(name, value);
        }
    }
    let response = builder.send().await.map_err(|error| Failed {
        // A connection that never opened carried nothing; anything later
        // may have reached the platform.
        written: !error.is_connect(),
        error: map_reqwest_error(error),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = read_limited(response, max_body)
        .await
        .map_err(|error| Failed {
            error,
            written: true,
        })?;
    let mut out = http::Response::builder().status(status);
    if let Some(map) = out.headers_mut() {
        for (name, value) in &headers {
            if name != http::header::TRANSFER_ENCODING && name != http::header::CONNECTION {
                map.append(name, value.clone());
            }
        }
    }
    out.body(
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
    .map_err(|error| Failed {
        error: HttpError::InternalError(Some(error.to_string())),
        written: true,
    })
}

async fn read_limited(mut response: reqwest::Response, max: usize) -> Result<Bytes, HttpError> {
    if let Some(length) = response.content_length()
        && length > max as u64
    {
        return Err(HttpError::HttpResponseBodySize(Some(length)));
    }
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_reqwest_error)? {
        if buffer.len() + chunk.len() > max {
            return Err(HttpError::HttpResponseBodySize(Some(
                (buffer.len() + chunk.len()) as u64,
            )));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

/// wasi:http's error for a client error. The text never carries the URL
/// (platforms put tokens in query strings).
fn map_reqwest_error(error: reqwest::Error) -> HttpError {
    let error = error.without_url();
    if error.is_timeout() && error.is_connect() {
        HttpError::ConnectionTimeout
    } else if error.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if error.is_connect() {
        let text = format!("{error:?}");
        if text.contains("blocked addresses") {
            HttpError::DestinationIpProhibited
        } else {
            HttpError::ConnectionRefused
        }
    } else {
        HttpError::InternalError(Some(error.to_string()))
    }
}
