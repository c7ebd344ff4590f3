//! Outbound HTTP for adapters: every `wasi:http` request passes through
//! [`EgressHooks::send_request`], which checks it against the adapter's
//! manifest and the operator's policy, then sends it with the host's one
//! pooled `reqwest` client.
//!
//! Checks, in order: the scheme is https (plain http only to loopback, and
//! only when the operator enables it for the simulator); the host name is in
//! both the manifest's allow-list and the operator's; the address it resolves
//! to is not loopback, private, link-local or cloud metadata (unless the
//! operator allows loopback). Redirects are not followed by the host: the
//! adapter sees the 3xx and any follow-up request is checked again.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::trace::{MESSAGE_INDEX_HEADER, RequestFate, SharedTrace, WriteAhead};

/// Largest request or response body an adapter may move, in bytes.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What one adapter may reach.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    /// Host names from the manifest, lowercase.
    pub manifest_hosts: BTreeSet<String>,
    /// Host names the operator approved; `None` approves every manifest host.
    pub operator_hosts: Option<BTreeSet<String>>,
    /// Allow plain http and https to loopback addresses (simulator, tests).
    pub allow_loopback: bool,
    /// Longest the host waits for a connection or a reply, whatever the adapter asks.
    pub max_timeout: Duration,
}

impl EgressPolicy {
    /// Decide whether a request to `uri` may leave; the error says why not.
    pub fn check(&self, uri: &http::Uri) -> Result<(), String> {
        let host = uri
            .host()
            .ok_or_else(|| format!("`{uri}` has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let scheme = uri.scheme_str().unwrap_or("https");
        if self.allow_loopback && is_loopback_host(&host) {
            return Ok(());
        }
        if scheme != "https" {
            return Err(format!(
                "`{uri}`: only https is allowed (plain http only to loopback with `allow_loopback_http`)"
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && let Some(reason) = blocked_ip(ip)
        {
            return Err(format!("`{uri}`: address {ip} is {reason}"));
        }
        if !self.manifest_hosts.contains(&host) {
            return Err(format!(
                "`{host}` is not in the adapter's manifest allow-list [{}]",
                join(&self.manifest_hosts)
            ));
        }
        if let Some(approved) = &self.operator_hosts
            && !approved.contains(&host)
        {
            return Err(format!(
                "`{host}` is declared by the adapter but not approved in the operator's `allow_hosts` [{}]",
                join(approved)
            ));
        }
        Ok(())
    }
}

fn join(hosts: &BTreeSet<String>) -> String {
    hosts.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why an address must not be reached from an adapter, if it must not.
pub fn blocked_ip(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.octets()[..2] == [169, 254] {
                Some("link-local (cloud metadata)")
            } else if v4.is_private() || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 {
                Some("a private network")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() {
                Some("not routable")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private network")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not routable")
            } else {
                None
            }
        }
    }
}

/// A DNS resolver for the shared client that refuses names resolving to
/// blocked addresses, so that DNS cannot be used to reach inside networks.
#[derive(Debug, Clone)]
pub struct FilteringResolver {
    /// Allow loopback answers (simulator and tests only).
    pub allow_loopback: bool,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|addr| match blocked_ip(addr.ip()) {
                    None => true,
                    Some(_) => allow_loopback && addr.ip().is_loopback(),
                })
                .collect();
            if addrs.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("`{host}` resolves only to blocked addresses").into();
                return Err(refused);
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Build the host's one pooled HTTP client for adapter egress.
pub fn build_client(allow_loopback: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(FilteringResolver { allow_loopback }))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The `wasi:http` hooks of one call: the policy, the shared client, and a
/// record of refused requests so the host can fail the call clearly.
pub struct EgressHooks {
    /// The adapter's policy.
    pub policy: Arc<EgressPolicy>,
    /// The shared client.
    pub client: reqwest::Client,
    /// Requests refused during this call, with the reason.
    pub denials: Arc<Mutex<Vec<String>>>,
    /// Requests sent during this call.
    pub requests: Arc<std::sync::atomic::AtomicU64>,
    /// For a `send` call: which messages each request carries and what
    /// became of it.
    pub trace: Option<SharedTrace>,
    /// For a `send` call: told before a request carrying messages leaves.
    pub write_ahead: Option<Arc<dyn WriteAhead>>,
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                    ),
                    HttpError,
                >,
            > + Send,
    > {
        let policy = Arc::clone(&self.policy);
        let client = self.client.clone();
        let denials = Arc::clone(&self.denials);
        let requests = Arc::clone(&self.requests);
        let trace = self.trace.clone();
        let write_ahead = self.write_ahead.clone();
        let mut request = request;
        let header = request
            .headers_mut()
            .remove(MESSAGE_INDEX_HEADER)
            .and_then(|value| value.to_str().ok().map(str::to_owned));
        let indices = trace_indices(&trace, header.as_deref());
        let carried = indices.clone();
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
        Box::new(async move {
            if let Err(reason) = policy.check(request.uri()) {
                tracing::warn!(%reason, "adapter egress denied");
                if let Ok(mut list) = denials.lock() {
                    list.push(reason);
                }
                record(false, Some(RequestFate::NotSent));
                return Err(HttpError::HttpRequestDenied);
            }
            if let Some(write_ahead) = &write_ahead
                && !carried.is_empty()
                && let Err(reason) = write_ahead.before_write(carried).await
            {
                tracing::warn!(%reason, "request held back: it could not be recorded before leaving");
                record(false, Some(RequestFate::NotSent));
                return Err(HttpError::InternalError(Some(reason)));
            }
            requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let timeout = clamp_timeout(options.as_ref(), policy.max_timeout);
            // Counted as written from here: if the call ends while it is on
            // its way, the platform may have it.
            record(false, None);
            match forward(client, request, timeout).await {
                Ok(response) => {
                    record(true, Some(RequestFate::Answered));
                    let io: Box<dyn Future<Output = Result<(), HttpError>> + Send> =
                        Box::new(async { Ok(()) });
                    Ok((response, io))
                }
                Err(Failed { error, written }) => {
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
    client: reqwest::Client,
    request: http::Request<WasiBody>,
    timeout: Duration,
) -> Result<http::Response<WasiBody>, Failed> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| Failed::unsent(HttpError::HttpRequestBodySize(None)))?
        .to_bytes();
    if body.len() > MAX_BODY_BYTES {
        return Err(Failed::unsent(HttpError::HttpRequestBodySize(Some(
            body.len() as u64,
        ))));
    }
    let url = parts.uri.to_string();
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
    let bytes = read_limited(response).await.map_err(|error| Failed {
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

async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, HttpError> {
    let mut buffer = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(map_reqwest_error)? {
        if buffer.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(HttpError::HttpResponseBodySize(Some(
                (buffer.len() + chunk.len()) as u64,
            )));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buffer))
}

fn map_reqwest_error(error: reqwest::Error) -> HttpError {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(operator: Option<&[&str]>, loopback: bool) -> EgressPolicy {
        EgressPolicy {
            manifest_hosts: ["graph.facebook.com".to_owned()].into(),
            operator_hosts: operator.map(|hosts| hosts.iter().map(|h| (*h).to_owned()).collect()),
            allow_loopback: loopback,
            max_timeout: Duration::from_secs(5),
        }
    }

    fn uri(text: &str) -> http::Uri {
        text.parse().unwrap()
    }

    #[test]
    fn allows_declared_https_hosts() {
        assert!(
            policy(None, false)
                .check(&uri("https://graph.facebook.com/v21.0/1/messages"))
                .is_ok()
        );
        assert!(
            policy(Some(&["graph.facebook.com"]), false)
                .check(&uri("https://GRAPH.facebook.com/"))
                .is_ok()
        );
    }

    #[test]
    fn refuses_undeclared_hosts_naming_the_allow_list() {
        let error = policy(None, false)
            .check(&uri("https://evil.example/steal"))
            .unwrap_err();
        assert!(error.contains("evil.example"), "{error}");
        assert!(error.contains("graph.facebook.com"), "{error}");
    }

    #[test]
    fn refuses_hosts_the_operator_did_not_approve() {
        let error = policy(Some(&[]), false)
            .check(&uri("https://graph.facebook.com/"))
            .unwrap_err();
        assert!(error.contains("allow_hosts"), "{error}");
    }

    #[test]
    fn refuses_plain_http_and_loopback_unless_enabled() {
        assert!(
            policy(None, false)
                .check(&uri("http://graph.facebook.com/"))
                .is_err()
        );
        assert!(
            policy(None, false)
                .check(&uri("http://127.0.0.1:9000/"))
                .is_err()
        );
        assert!(
            policy(None, false)
                .check(&uri("https://169.254.169.254/latest"))
                .is_err()
        );
        assert!(
            policy(None, true)
                .check(&uri("http://127.0.0.1:9000/v21.0/x"))
                .is_ok()
        );
        assert!(
            policy(None, true)
                .check(&uri("http://localhost:9000/"))
                .is_ok()
        );
        assert!(policy(None, true).check(&uri("http://10.0.0.1/")).is_err());
    }

    #[test]
    fn classifies_blocked_addresses() {
        for blocked in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(blocked_ip(blocked.parse().unwrap()).is_some(), "{blocked}");
        }
        for public in ["157.240.1.1", "8.8.8.8", "2a03:2880::1"] {
            assert!(blocked_ip(public.parse().unwrap()).is_none(), "{public}");
        }
    }
}
