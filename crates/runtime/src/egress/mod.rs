//! Outbound HTTP for adapters: every `wasi:http` request passes through
//! [`EgressHooks::send_request`], which checks it against the adapter's
//! [`EgressPolicy`], bounds how many requests one call may have in flight
//! and how large bodies may be, then sends it with one of the host's two
//! pooled clients.
//!
//! - [`policy`]: which URLs an adapter may request and where they go.
//! - [`blocklist`]: the special-purpose addresses never dialled.
//! - [`client`]: the clients and the filtering DNS resolver.
//! - [`perform`]: requests the host performs itself (contract 1.2.0's
//!   `http.send`), through the same checks and clients.

pub mod blocklist;
pub mod client;
pub mod perform;
pub mod policy;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

pub use blocklist::blocked_ip;
pub use policy::{Destination, EgressPolicy};

use crate::trace::{
    CallTrace, MESSAGE_INDEX_HEADER, RequestFate, SharedTrace, WriteAhead, no_longer_held,
};

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

impl EgressHooks {
    /// Take one of the call's in-flight slots, or refuse (the reason is
    /// recorded and returned): checked before anything is spawned, so a
    /// call cannot hold more than its share of connections, descriptors
    /// and tasks.
    fn enter(&self) -> Result<InFlight, String> {
        let max = self.limits.max_in_flight;
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            let reason = format!(
                "more than {max} requests in flight in one call (`max_requests_in_flight`)"
            );
            self.deny(reason.clone());
            return Err(reason);
        }
        Ok(InFlight(Arc::clone(&self.in_flight)))
    }

    /// Where `url` may go under the adapter's policy; a refusal is recorded.
    fn destination(&self, url: &str) -> Result<Destination, String> {
        self.policy
            .check(url)
            .inspect_err(|reason| self.deny(reason.clone()))
    }

    /// The batch positions a request carries, as `read` finds them in
    /// the call's trace (none outside `send`).
    fn attribute(&self, read: impl FnOnce(&CallTrace) -> Vec<u32>) -> Vec<u32> {
        self.trace
            .as_ref()
            .and_then(|trace| trace.lock().ok().map(|trace| read(&trace)))
            .unwrap_or_default()
    }

    /// Record in the call's trace that a request for `indices` was refused
    /// before anything was written.
    fn refused(&self, indices: &[u32]) {
        record_fate(&self.trace, indices, false, Some(RequestFate::NotSent));
    }

    /// Everything needed to send an admitted request to `destination`,
    /// waiting as long as the adapter `asked` within the host's limit.
    fn exchange(
        &self,
        destination: Destination,
        indices: Vec<u32>,
        asked: Option<Duration>,
    ) -> Exchange {
        let max = self.policy.max_timeout;
        Exchange {
            client: self.clients.for_destination(&destination).clone(),
            destination,
            indices,
            timeout: asked.map_or(max, |asked| asked.min(max)),
            max_body: self.limits.max_body_bytes,
            trace: self.trace.clone(),
            requests: Arc::clone(&self.requests),
            denials: Arc::clone(&self.denials),
        }
    }
}

/// Record a request's progress for `indices`: begun when `fate` is none,
/// otherwise its fate.
fn record_fate(
    trace: &Option<SharedTrace>,
    indices: &[u32],
    begun: bool,
    fate: Option<RequestFate>,
) {
    if let Some(trace) = trace
        && let Ok(mut trace) = trace.lock()
    {
        match fate {
            None => trace.begin(indices),
            Some(fate) => trace.record(indices, begun, fate),
        }
    }
}

/// An admitted request on its way out: counted, traced, forwarded.
struct Exchange {
    client: reqwest::Client,
    destination: Destination,
    indices: Vec<u32>,
    timeout: Duration,
    max_body: usize,
    trace: Option<SharedTrace>,
    requests: Arc<AtomicU64>,
    denials: Arc<Mutex<Vec<String>>>,
}

/// A complete reply from the platform.
struct Reply {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Exchange {
    /// Record that the request was refused before anything was written.
    fn refused(&self) {
        record_fate(
            &self.trace,
            &self.indices,
            false,
            Some(RequestFate::NotSent),
        );
    }

    /// Send the request and read the whole reply, recording in the call's
    /// trace that it was written and what became of it.
    async fn run(
        self,
        method: http::Method,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<Reply, Failed> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Counted as written from here: if the call ends while it is on
        // its way, the platform may have it.
        record_fate(&self.trace, &self.indices, false, None);
        let url = self.destination.url().clone();
        match forward(
            &self.client,
            method,
            url,
            headers,
            body,
            self.timeout,
            self.max_body,
        )
        .await
        {
            Ok(reply) => {
                record_fate(
                    &self.trace,
                    &self.indices,
                    true,
                    Some(RequestFate::Answered),
                );
                Ok(reply)
            }
            Err(failed) => {
                if matches!(failed.error, HttpError::DestinationIpProhibited)
                    && let Ok(mut list) = self.denials.lock()
                    && list.len() < MAX_DENIALS_KEPT
                {
                    list.push(format!(
                        "`{}` resolves only to special-purpose addresses",
                        self.destination.url().host_str().unwrap_or("?")
                    ));
                }
                let fate = if failed.written {
                    RequestFate::LostAfterWrite
                } else {
                    RequestFate::NotSent
                };
                record_fate(&self.trace, &self.indices, true, Some(fate));
                Err(failed)
            }
        }
    }
}

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
        let indices = self.attribute(|trace| trace.attribute(header.as_deref()));
        let refuse = |indices: &[u32]| -> SendFuture {
            self.refused(indices);
            Box::new(async { Err(HttpError::HttpRequestDenied) })
        };
        let Ok(guard) = self.enter() else {
            return refuse(&indices);
        };
        let destination = match self.destination(&request.uri().to_string()) {
            Ok(destination) => destination,
            Err(_) => return refuse(&indices),
        };
        let write_ahead = self.write_ahead.clone();
        let exchange = self.exchange(destination, indices, asked_timeout(options.as_ref()));
        Box::new(async move {
            let _guard = guard;
            let (parts, body) = request.into_parts();
            // Bounded while it streams in, not after.
            let Ok(body) = Limited::new(body, exchange.max_body).collect().await else {
                exchange.refused();
                return Err(HttpError::HttpRequestBodySize(None));
            };
            if let Some(write_ahead) = &write_ahead
                && !exchange.indices.is_empty()
            {
                let refused = match write_ahead.before_write(exchange.indices.clone()).await {
                    Ok(lost) if lost.is_empty() => None,
                    Ok(lost) => Some(no_longer_held(lost.len())),
                    Err(reason) => Some(reason),
                };
                if let Some(reason) = refused {
                    tracing::warn!(%reason, "request held back: it could not be recorded before leaving");
                    exchange.refused();
                    return Err(HttpError::InternalError(Some(reason)));
                }
            }
            let reply = exchange
                .run(parts.method, &parts.headers, body.to_bytes())
                .await
                .map_err(|failed| failed.error)?;
            let mut out = http::Response::builder().status(reply.status);
            if let Some(map) = out.headers_mut() {
                *map = reply.headers;
            }
            let response = out
                .body(
                    Full::new(reply.body)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                )
                .map_err(|error| HttpError::InternalError(Some(error.to_string())))?;
            let io: IoFuture = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The timeout a `wasi:http` request asked for, if any.
fn asked_timeout(options: Option<&RequestOptions>) -> Option<Duration> {
    options.and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
}

/// A request that got no complete reply, and whether it was written first.
struct Failed {
    error: HttpError,
    written: bool,
}

/// Send one request with `client` and read its whole reply, bounded.
async fn forward(
    client: &reqwest::Client,
    method: http::Method,
    url: url::Url,
    headers: &http::HeaderMap,
    body: Bytes,
    timeout: Duration,
    max_body: usize,
) -> Result<Reply, Failed> {
    let mut builder = client.request(method, url).timeout(timeout).body(body);
    for (name, value) in headers {
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
    let mut headers = response.headers().clone();
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.remove(http::header::CONNECTION);
    let body = read_limited(response, max_body)
        .await
        .map_err(|error| Failed {
            error,
            written: true,
        })?;
    Ok(Reply {
        status,
        headers,
        body,
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
