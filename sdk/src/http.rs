//! A small blocking HTTP client, with JSON helpers.
//!
//! [`Request::send`], [`send_all`] and [`send_all_then`] hand their requests
//! to the host (the contract's `http.send`), which performs a whole list in
//! one call and returns every reply: a batch of 50 requests costs one call
//! into the host. [`Request::start`] goes through `wasi:http` instead, for
//! an adapter that wants to do other work while a request is on its way.
//!
//! Every request leaves through the host, which allows only the hosts the
//! adapter's manifest declares and the operator approves; anything else
//! fails with [`HttpError::Denied`].
//!
//! ```no_run
//! use switchboard_sdk::http::Request;
//!
//! let response = Request::post("https://graph.facebook.com/v21.0/123/messages")
//!     .bearer("token")
//!     .json(&serde_json::json!({"messaging_product": "whatsapp"}))
//!     .send()?;
//! if response.is_success() {
//!     let body: serde_json::Value = response.json()?;
//! }
//! # Ok::<(), switchboard_sdk::http::HttpError>(())
//! ```

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::bindings::switchboard::channel::http as host_http;
use crate::types::{Failure, SendError};

/// Bytes written to the request body per call; `wasi:io` allows 4 KiB per
/// blocking write.
const WRITE_CHUNK: usize = 4096;
/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 * 1024;

/// Why a request got no HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL could not be parsed.
    InvalidUrl(String),
    /// The host refused the request: the destination is not allowed for this adapter.
    Denied(String),
    /// Connecting took too long: the request never reached the platform.
    ConnectTimeout(String),
    /// The reply took too long: the platform may have acted on the request.
    Timeout(String),
    /// The connection failed (refused, reset, DNS, TLS).
    Connection(String),
    /// The request was written, then no complete reply came (timeout,
    /// reset, a reply over the host's limit): the platform may have acted
    /// on it.
    NoReply(String),
    /// The reply body was not the JSON expected.
    InvalidJson(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(detail) => write!(f, "invalid URL: {detail}"),
            HttpError::Denied(detail) => write!(f, "egress denied by the host: {detail}"),
            HttpError::ConnectTimeout(detail) => write!(f, "timed out connecting: {detail}"),
            HttpError::Timeout(detail) => write!(f, "timed out waiting for the reply: {detail}"),
            HttpError::Connection(detail) => write!(f, "connection failed: {detail}"),
            HttpError::NoReply(detail) => write!(f, "no reply after sending: {detail}"),
            HttpError::InvalidJson(detail) => write!(f, "unexpected response body: {detail}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for SendError {
    /// A request that never reached the platform is transient. One whose
    /// reply never came (or came garbled) is uncertain: the platform may
    /// have acted on it, so the host does not resend it blindly. Adapters
    /// for platforms that deduplicate on the idempotency key map those to
    /// transient themselves, since a retry there cannot deliver twice. A
    /// denied or malformed request will never succeed.
    fn from(error: HttpError) -> Self {
        let failure = Failure::new("", error.to_string());
        match error {
            HttpError::ConnectTimeout(_) | HttpError::Connection(_) => {
                SendError::Transient(failure)
            }
            HttpError::Timeout(_) | HttpError::NoReply(_) | HttpError::InvalidJson(_) => {
                SendError::Uncertain(failure)
            }
            HttpError::Denied(_) | HttpError::InvalidUrl(_) => SendError::Permanent(failure),
        }
    }
}

/// An HTTP request being built.
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    messages: Option<Vec<u32>>,
}

impl Request {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            messages: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// A `POST` request.
    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    /// A `DELETE` request.
    pub fn delete(url: &str) -> Self {
        Self::new("DELETE", url)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body, with `Content-Type: application/json`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Self {
        // Serialising our own payload types to a Vec cannot fail.
        let body = serde_json::to_vec(value).unwrap_or_default();
        self.body(body, "application/json")
    }

    /// A raw body with its content type.
    pub fn body(mut self, body: Vec<u8>, content_type: &str) -> Self {
        self.body = body;
        self.header("content-type", content_type)
    }

    /// How long to wait for the connection and for the first byte of the reply.
    /// The host may clamp it. Without it, the host's own limit applies (the
    /// operator's `[sandbox] http_timeout_ms`, 10 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send this request on behalf of the messages at `indices` of the
    /// batch (see [`crate::outcomes`]). Without it, a request made inside
    /// [`crate::outcomes::send_each`] or [`crate::outcomes::working_on`] is
    /// tagged with the messages being worked on.
    pub fn for_messages(mut self, indices: &[u32]) -> Self {
        self.messages = Some(indices.to_vec());
        self
    }

    /// Send the request through the host and read the whole reply.
    pub fn send(self) -> Result<Response, HttpError> {
        let mut replies = send_all(vec![self]);
        replies
            .pop()
            .unwrap_or_else(|| Err(HttpError::Connection("the host returned no reply".into())))
    }

    /// The messages this request carries: the ones named with
    /// [`Request::for_messages`], or the ones being worked on.
    fn carried(&self) -> Vec<u32> {
        self.messages
            .clone()
            .unwrap_or_else(crate::outcomes::current)
    }

    /// The request as the host's `http.send` takes it.
    fn into_host(self) -> host_http::Request {
        let messages = self.carried();
        host_http::Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self
                .timeout
                .map(|timeout| u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX)),
            messages,
        }
    }

    /// Start the request over `wasi:http` without waiting for the reply:
    /// the adapter may do other work meanwhile; [`Pending::wait`] collects
    /// the reply. [`send_all`] is cheaper for several requests at once.
    pub fn start(self) -> Result<Pending, HttpError> {
        let target = Target::parse(&self.url)?;
        let mut header_list: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
            .collect();
        let indices = self.carried();
        if !indices.is_empty() {
            header_list.push((
                crate::outcomes::MESSAGE_INDEX_HEADER.to_owned(),
                crate::outcomes::header_value(&indices).into_bytes(),
            ));
        }
        let headers = Fields::from_list(&header_list)
            .map_err(|error| HttpError::InvalidUrl(format!("bad header: {error:?}")))?;
        let request = OutgoingRequest::new(headers);
        let scheme = if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let invalid = |what: &str| HttpError::InvalidUrl(format!("{what} of {}", self.url));
        request
            .set_method(&wasi_method(&self.method))
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&target.authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&target.path_and_query))
            .map_err(|()| invalid("path"))?;
        let body = request.body().map_err(|()| invalid("body"))?;

        // Options cost a resource and three calls into the host: made only
        // when the adapter asked for a timeout of its own.
        let options = self.timeout.map(|timeout| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            // The host clamps these; a refusal only means it keeps its own limit.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });

        let pending = outgoing_handler::handle(request, options).map_err(map_error_code)?;
        write_body(&body, &self.body)?;
        OutgoingBody::finish(body, None).map_err(map_error_code)?;
        Ok(Pending { future: pending })
    }
}

/// Requests handed to the host in one `http.send` call (the host refuses
/// more than 1,000 in one call); longer lists go in several calls.
pub const MAX_REQUESTS_PER_CALL: usize = 500;

/// Send `requests` through the host in one call (the host sends them
/// concurrently, at most 16 at a time) and return
/// the replies in order. A batch of messages a platform takes one per
/// request goes out in the time of the slowest few, not of all of them.
pub fn send_all(requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
    let mut replies = Vec::with_capacity(requests.len());
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let chunk: Vec<host_http::Request> = requests
            .by_ref()
            .take(MAX_REQUESTS_PER_CALL)
            .map(Request::into_host)
            .collect();
        let sent = chunk.len();
        let mut answers = host_http::send(&chunk);
        // The host answers every request; a short answer is its fault.
        answers.resize_with(sent, || {
            Err(host_http::RequestError::NotSent(
                "the host returned no reply".into(),
            ))
        });
        replies.extend(answers.into_iter().map(from_host));
    }
    replies
}

/// Send `requests` through the host like [`send_all`] and hand each reply
/// to `done` with the request's index, in order.
pub fn send_all_then(
    requests: Vec<Request>,
    mut done: impl FnMut(usize, Result<Response, HttpError>),
) {
    for (index, reply) in send_all(requests).into_iter().enumerate() {
        done(index, reply);
    }
}

fn from_host(
    answer: Result<host_http::Response, host_http::RequestError>,
) -> Result<Response, HttpError> {
    match answer {
        Ok(reply) => Ok(Response {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
        }),
        Err(host_http::RequestError::Denied(why)) => Err(HttpError::Denied(why)),
        Err(host_http::RequestError::NotSent(why)) => Err(HttpError::Connection(why)),
        Err(host_http::RequestError::NoReply(why)) => Err(HttpError::NoReply(why)),
    }
}

/// `wasi:http`'s name for a method.
fn wasi_method(method: &str) -> Method {
    match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_owned()),
    }
}

/// A request on its way.
pub struct Pending {
    future: wasip2::http::types::FutureIncomingResponse,
}

impl Pending {
    /// Wait for the reply and read it whole.
    pub fn wait(self) -> Result<Response, HttpError> {
        let pending = self.future;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(map_error_code(code)),
            Some(Err(())) | None => {
                return Err(HttpError::Connection("response already taken".into()));
            }
        };
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| HttpError::Connection("response body already taken".into()))?;
        let mut reply = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length = reply
            .header("content-length")
            .and_then(|value| value.trim().parse::<usize>().ok());
        reply.body = read_body(&incoming, length)?;
        // Trailers are not read: dropping the body is one call where
        // finishing it and dropping its trailers would be two.
        drop(incoming);
        Ok(reply)
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| HttpError::Connection("request body stream unavailable".into()))?;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|error| HttpError::Connection(format!("writing request body: {error:?}")))?;
    }
    Ok(())
}

/// Read the response body to its end, or up to `length` bytes when the
/// reply declared its length (the read that would only report the end is
/// saved).
fn read_body(incoming: &IncomingBody, length: Option<usize>) -> Result<Vec<u8>, HttpError> {
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Connection("response body stream unavailable".into()))?;
    let mut body = Vec::with_capacity(length.unwrap_or(0).min(READ_CHUNK as usize));
    while length.is_none_or(|length| body.len() < length) {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(HttpError::Connection(format!(
                    "reading response body: {}",
                    error.to_debug_string()
                )));
            }
        }
    }
    Ok(body)
}

fn map_error_code(code: ErrorCode) -> HttpError {
    let detail = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(detail),
        ErrorCode::ConnectionTimeout | ErrorCode::DnsTimeout => HttpError::ConnectTimeout(detail),
        ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => HttpError::Timeout(detail),
        ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl(detail),
        _ => HttpError::Connection(detail),
    }
}

/// The parts of a URL that `wasi:http` wants separately.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    authority: String,
    path_and_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, HttpError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| HttpError::InvalidUrl(format!("`{url}` has no scheme")))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            other => {
                return Err(HttpError::InvalidUrl(format!(
                    "`{url}`: scheme `{other}` is not http or https"
                )));
            }
        };
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(HttpError::InvalidUrl(format!("`{url}` has no host")));
        }
        let path_and_query = match path {
            "" => "/".to_owned(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_owned(),
        };
        Ok(Self {
            https,
            authority: authority.to_owned(),
            path_and_query,
        })
    }
}

/// A complete HTTP reply.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            let snippet: String = self.text().chars().take(200).collect();
            HttpError::InvalidJson(format!("{error} in HTTP {} body `{snippet}`", self.status))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_into_wasi_parts() {
        assert_eq!(
            Target::parse("https://graph.facebook.com/v21.0/1/messages?x=1").unwrap(),
            Target {
                https: true,
                authority: "graph.facebook.com".into(),
                path_and_query: "/v21.0/1/messages?x=1".into()
            }
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:9000").unwrap(),
            Target {
                https: false,
                authority: "127.0.0.1:9000".into(),
                path_and_query: "/".into()
            }
        );
        assert!(matches!(
            Target::parse("ftp://x/"),
            Err(HttpError::InvalidUrl(_))
        ));
        assert!(matches!(
            Target::parse("graph.facebook.com/x"),
            Err(HttpError::InvalidUrl(_))
        ));
        assert!(matches!(
            Target::parse("https:///x"),
            Err(HttpError::InvalidUrl(_))
        ));
    }

    #[test]
    fn the_host_says_whether_a_failed_request_was_written() {
        let failed = |error| from_host(Err(error)).unwrap_err();
        assert_eq!(
            failed(host_http::RequestError::Denied("evil.example".into())),
            HttpError::Denied("evil.example".into())
        );
        assert!(matches!(
            SendError::from(failed(host_http::RequestError::NotSent("refused".into()))),
            SendError::Transient(_)
        ));
        assert!(matches!(
            SendError::from(failed(host_http::RequestError::NoReply("reset".into()))),
            SendError::Uncertain(_)
        ));
    }

    #[test]
    fn requests_carry_their_messages_and_timeout_to_the_host() {
        let request = Request::post("https://api.line.me/v2/bot/message/multicast")
            .header("X-Line-Retry-Key", "k")
            .timeout(Duration::from_secs(5))
            .for_messages(&[3, 4, 7])
            .into_host();
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.headers,
            [("x-line-retry-key".to_owned(), "k".to_owned())]
        );
        assert_eq!(request.timeout_ms, Some(5_000));
        assert_eq!(request.messages, [3, 4, 7]);
        let untagged = Request::get("https://api.line.me/").into_host();
        assert!(untagged.messages.is_empty());
        assert_eq!(untagged.timeout_ms, None);
    }

    #[test]
    fn denied_egress_is_permanent_and_lost_replies_uncertain() {
        assert!(matches!(
            SendError::from(HttpError::Denied("x".into())),
            SendError::Permanent(_)
        ));
        assert!(matches!(
            SendError::from(HttpError::Timeout("x".into())),
            SendError::Uncertain(_)
        ));
        assert!(matches!(
            SendError::from(HttpError::ConnectTimeout("x".into())),
            SendError::Transient(_)
        ));
    }
}
