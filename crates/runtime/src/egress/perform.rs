//! Requests the host performs itself: contract 1.2.0's `http.send`.
//!
//! The adapter hands over a whole list of requests in one call. Each one
//! passes the same checks as a `wasi:http` request (the adapter's policy,
//! the call's in-flight and body bounds), and they go out concurrently
//! through the same clients, in waves whose messages are marked durably in
//! one write just before each wave leaves. The adapter gets every reply in
//! one answer, each failure saying whether the request was written.

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use switchboard_contract::model::{HttpResponse, OutgoingError, OutgoingRequest, OutgoingResult};
use wasmtime_wasi_http::Error as HttpError;

use super::{EgressHooks, Exchange, Failed, Reply};
use crate::trace::no_longer_held;

/// Requests one `http.send` call may pass; the rest are refused. With
/// `max_requests_in_flight` this bounds what one call makes the host hold.
pub const MAX_REQUESTS_PER_SEND: usize = 1_000;

/// Requests of one `http.send` call on their way at once (fewer if
/// `max_requests_in_flight` is lower): what the SDK kept in flight per call
/// through contract 1.1.0, so that a crash leaves at most as many
/// requests of a call uncertain as it did then.
pub const MAX_IN_FLIGHT_PER_SEND: usize = 16;

/// A request that passed the checks, waiting for its turn.
struct Admitted {
    position: usize,
    method: http::Method,
    headers: http::HeaderMap,
    body: Bytes,
    exchange: Exchange,
}

impl EgressHooks {
    /// Perform `requests` and return one result per request, in order.
    ///
    /// At most [`MAX_IN_FLIGHT_PER_SEND`] (or `max_requests_in_flight`, if
    /// lower) are on their way at once, and the messages of each wave are
    /// marked written just before it leaves. The replies held for the
    /// adapter are bounded by `max_reply_bytes` in all (past it, a reply is
    /// dropped and its request reported as written without a reply).
    pub async fn perform(
        &self,
        requests: Vec<OutgoingRequest>,
        max_reply_bytes: usize,
    ) -> Vec<OutgoingResult> {
        if requests.len() > MAX_REQUESTS_PER_SEND {
            self.deny(format!(
                "{} requests in one `http.send` call; the host takes at most \
                 {MAX_REQUESTS_PER_SEND} (the rest were refused)",
                requests.len()
            ));
        }
        let mut results: Vec<Option<OutgoingResult>> = vec![None; requests.len()];
        let mut admitted = Vec::with_capacity(requests.len());
        for (position, request) in requests.into_iter().enumerate() {
            match self.admit(position, request) {
                Ok(request) => admitted.push(request),
                Err(error) => results[position] = Some(Err(error)),
            }
        }
        // Requests leave in waves that fill the free slots: each wave's
        // messages are marked written in one write just before it leaves,
        // so that a crash leaves uncertain only what was on its way.
        let slots = self.limits.max_in_flight.clamp(1, MAX_IN_FLIGHT_PER_SEND);
        let mut waiting = admitted.into_iter();
        let mut running = FuturesUnordered::new();
        let mut held = 0usize;
        loop {
            let wave: Vec<Admitted> = waiting.by_ref().take(slots - running.len()).collect();
            for (position, result) in self.mark_wave(&wave).await {
                results[position] = Some(Err(result));
            }
            for request in wave {
                if results[request.position].is_none() {
                    running.push(async move {
                        let position = request.position;
                        (position, self.send_admitted(request).await)
                    });
                }
            }
            let Some(first) = running.next().await else {
                if waiting.len() == 0 {
                    break;
                }
                continue;
            };
            // Every reply already in frees its slot for the same wave.
            let mut done = vec![first];
            while let Some(Some(next)) = running.next().now_or_never() {
                done.push(next);
            }
            for (position, result) in done {
                results[position] = Some(result.and_then(|reply| {
                    if held + reply.body.len() > max_reply_bytes {
                        return Err(OutgoingError::NoReply(format!(
                            "the replies to this call's requests passed {max_reply_bytes} \
                             bytes (the adapter's memory limit); this one was dropped"
                        )));
                    }
                    held += reply.body.len();
                    Ok(response(reply))
                }));
            }
        }
        finish(results)
    }

    /// Mark a wave's messages written, in one write, before it leaves;
    /// returns the requests of the wave that must not leave, with why.
    async fn mark_wave(&self, wave: &[Admitted]) -> Vec<(usize, OutgoingError)> {
        let refuse = |request: &Admitted, why: String| {
            request.exchange.refused();
            (request.position, OutgoingError::NotSent(why))
        };
        match self.mark_written_ahead(wave).await {
            Ok(lost) if lost.is_empty() => Vec::new(),
            Ok(lost) => wave
                .iter()
                .filter_map(|request| {
                    let carried = &request.exchange.indices;
                    let lost_here = carried.iter().filter(|index| lost.contains(index)).count();
                    (lost_here > 0).then(|| refuse(request, no_longer_held(lost_here)))
                })
                .collect(),
            Err(reason) => wave
                .iter()
                .map(|request| {
                    refuse(
                        request,
                        format!("it could not be recorded before leaving ({reason})"),
                    )
                })
                .collect(),
        }
    }

    /// Check one request: its form, its size, the policy. A refusal is
    /// recorded in the call's trace (and, for the policy, in its denials).
    fn admit(&self, position: usize, request: OutgoingRequest) -> Result<Admitted, OutgoingError> {
        let indices = self.attribute(|trace| trace.attribute_listed(&request.messages));
        let refuse = |reason: String| {
            self.refused(&indices);
            OutgoingError::Denied(reason)
        };
        if position >= MAX_REQUESTS_PER_SEND {
            return Err(refuse(format!(
                "more than {MAX_REQUESTS_PER_SEND} requests in one `http.send` call"
            )));
        }
        let Ok(method) = http::Method::from_bytes(request.method.as_bytes()) else {
            return Err(refuse(format!(
                "`{}` is not an HTTP method",
                request.method
            )));
        };
        let headers = header_map(&request.headers).map_err(&refuse)?;
        let max_body = self.limits.max_body_bytes;
        if request.body.len() > max_body {
            return Err(refuse(format!(
                "a request body of {} bytes is over the host's limit of {max_body} \
                 (`max_http_body_bytes`)",
                request.body.len()
            )));
        }
        let destination = self.destination(&request.url).map_err(&refuse)?;
        let asked = request
            .timeout_ms
            .map(|ms| std::time::Duration::from_millis(u64::from(ms)));
        Ok(Admitted {
            position,
            method,
            headers,
            body: Bytes::from(request.body),
            exchange: self.exchange(destination, indices, asked),
        })
    }

    /// Tell the write-ahead, in one call, every message about to leave;
    /// the positions that must not leave come back.
    async fn mark_written_ahead(&self, admitted: &[Admitted]) -> Result<Vec<u32>, String> {
        let Some(write_ahead) = &self.write_ahead else {
            return Ok(Vec::new());
        };
        let mut indices: Vec<u32> = admitted
            .iter()
            .flat_map(|request| request.exchange.indices.iter().copied())
            .collect();
        if indices.is_empty() {
            return Ok(Vec::new());
        }
        indices.sort_unstable();
        indices.dedup();
        write_ahead.before_write(indices).await.inspect_err(|reason| {
            tracing::warn!(%reason, "requests held back: they could not be recorded before leaving");
        })
    }

    /// Send one admitted request in one of the call's in-flight slots.
    async fn send_admitted(&self, request: Admitted) -> Result<Reply, OutgoingError> {
        let _slot = self.enter().map_err(|reason| {
            request.exchange.refused();
            OutgoingError::Denied(reason)
        })?;
        request
            .exchange
            .run(request.method, &request.headers, request.body)
            .await
            .map_err(outgoing_error)
    }
}

/// The adapter's headers as an HTTP header map (`host` is the URL's).
fn header_map(headers: &[(String, String)]) -> Result<http::HeaderMap, String> {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        if name == http::header::HOST {
            continue;
        }
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn response(reply: Reply) -> HttpResponse {
    HttpResponse {
        status: reply.status.as_u16(),
        headers: reply
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        // Without a copy when the reply's buffer is not shared.
        body: reply.body.into(),
    }
}

/// What the adapter is told of a failed request: whether it was written
/// decides whether a retry is safe. The text never carries the URL.
fn outgoing_error(failed: Failed) -> OutgoingError {
    let detail = match &failed.error {
        HttpError::DestinationIpProhibited => {
            return OutgoingError::Denied(
                "the destination resolves only to special-purpose addresses".to_owned(),
            );
        }
        HttpError::ConnectionTimeout => "timed out connecting".to_owned(),
        HttpError::HttpResponseTimeout => "timed out waiting for the reply".to_owned(),
        HttpError::ConnectionRefused => "connection refused".to_owned(),
        HttpError::HttpResponseBodySize(Some(size)) => {
            format!("the reply body of {size} bytes is over the host's limit")
        }
        HttpError::InternalError(Some(text)) => text.clone(),
        other => format!("{other:?}"),
    };
    if failed.written {
        OutgoingError::NoReply(detail)
    } else {
        OutgoingError::NotSent(detail)
    }
}

fn finish(results: Vec<Option<OutgoingResult>>) -> Vec<OutgoingResult> {
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| Err(OutgoingError::NotSent("never started".to_owned())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures::future::BoxFuture;
    use switchboard_contract::ContractVersion;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::egress::{EgressClients, EgressLimits, EgressPolicy};
    use crate::trace::{CallTrace, RequestFate, WriteAhead};

    /// What the platform and the write-ahead saw, in order.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Marked(Vec<u32>),
        Arrived(u32),
    }

    /// Records each mark; the send at `taken_over` belongs to another engine.
    struct RecordingWriteAhead {
        log: Arc<Mutex<Vec<Seen>>>,
        taken_over: u32,
    }

    impl WriteAhead for RecordingWriteAhead {
        fn before_write(&self, indices: Vec<u32>) -> BoxFuture<'static, Result<Vec<u32>, String>> {
            self.log.lock().unwrap().push(Seen::Marked(indices.clone()));
            let lost = indices
                .into_iter()
                .filter(|&i| i == self.taken_over)
                .collect();
            Box::pin(async move { Ok(lost) })
        }
    }

    /// A loopback platform that logs each request's path (`/<index>`),
    /// holds it 20 ms and counts how many it holds at once.
    async fn platform(log: Arc<Mutex<Vec<Seen>>>, most: Arc<AtomicUsize>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let holding = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (log, most, holding) = (log.clone(), most.clone(), holding.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let mut chunk = [0u8; 1024];
                        let Ok(read) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                            buffer.drain(..end + 4);
                            let index = head
                                .split_whitespace()
                                .nth(1)
                                .and_then(|path| path.trim_start_matches('/').parse().ok())
                                .unwrap();
                            log.lock().unwrap().push(Seen::Arrived(index));
                            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            holding.fetch_sub(1, Ordering::SeqCst);
                            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{address}")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_leave_in_marked_waves_of_at_most_sixteen() {
        const REQUESTS: u32 = 40;
        const TAKEN_OVER: u32 = 5;
        let log = Arc::new(Mutex::new(Vec::new()));
        let most = Arc::new(AtomicUsize::new(0));
        let base = platform(Arc::clone(&log), Arc::clone(&most)).await;
        let policy = EgressPolicy::new(
            &["api.platform.example".to_owned()],
            None,
            &BTreeMap::from([("api.platform.example".to_owned(), base)]),
            Duration::from_secs(5),
        )
        .unwrap();
        let trace = Arc::new(Mutex::new(CallTrace::new(
            REQUESTS as usize,
            ContractVersion::V1_2,
        )));
        let hooks = EgressHooks {
            policy: Arc::new(policy),
            clients: EgressClients::new().unwrap(),
            limits: EgressLimits {
                max_in_flight: 32,
                max_body_bytes: 1 << 20,
            },
            denials: Arc::default(),
            requests: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::default(),
            trace: Some(Arc::clone(&trace)),
            write_ahead: Some(Arc::new(RecordingWriteAhead {
                log: Arc::clone(&log),
                taken_over: TAKEN_OVER,
            })),
        };
        let requests = (0..REQUESTS)
            .map(|index| OutgoingRequest {
                method: "GET".into(),
                url: format!("https://api.platform.example/{index}"),
                headers: vec![],
                body: vec![],
                timeout_ms: None,
                messages: vec![index],
            })
            .collect();

        let results = hooks.perform(requests, 1 << 20).await;

        for (index, result) in results.iter().enumerate() {
            if index as u32 == TAKEN_OVER {
                assert_eq!(
                    result,
                    &Err(OutgoingError::NotSent(no_longer_held(1))),
                    "the request whose send was taken over is refused alone"
                );
            } else {
                assert_eq!(
                    result.as_ref().map(|reply| reply.body.as_slice()),
                    Ok(&b"ok"[..])
                );
            }
        }
        assert!(
            most.load(Ordering::SeqCst) <= MAX_IN_FLIGHT_PER_SEND,
            "{} requests held at once",
            most.load(Ordering::SeqCst)
        );
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log[0],
            Seen::Marked((0..16).collect()),
            "the first wave fills the slots and is marked in one write"
        );
        let mut marked = std::collections::BTreeSet::new();
        for seen in &log {
            match seen {
                Seen::Marked(indices) => marked.extend(indices.iter().copied()),
                Seen::Arrived(index) => assert!(
                    marked.contains(index),
                    "request {index} reached the platform before it was marked: {log:?}"
                ),
            }
        }
        assert_eq!(
            marked.len(),
            REQUESTS as usize,
            "every request was marked once"
        );
        assert!(
            !log.contains(&Seen::Arrived(TAKEN_OVER)),
            "the refused request never left"
        );
        let outcome = trace.lock().unwrap().finish(None, None);
        let fate = |index: u32| outcome.requests[index as usize];
        assert_eq!(fate(TAKEN_OVER).last, Some(RequestFate::NotSent));
        assert!(!fate(TAKEN_OVER).written);
        assert_eq!(fate(0).last, Some(RequestFate::Answered));
        assert!(fate(0).written);
    }

    #[test]
    fn headers_are_checked_and_host_is_dropped() {
        let map = header_map(&[
            ("Content-Type".into(), "application/json".into()),
            ("host".into(), "evil.example".into()),
            ("x-line-retry-key".into(), "k".into()),
        ])
        .unwrap();
        assert_eq!(map.len(), 2);
        assert_eq!(map["content-type"], "application/json");
        assert!(map.get("host").is_none());
        let error = header_map(&[("bad name".into(), "v".into())]).unwrap_err();
        assert_eq!(error, "`bad name` is not a valid header name");
        let error = header_map(&[("x-a".into(), "line\nbreak".into())]).unwrap_err();
        assert_eq!(
            error,
            "the value of header `x-a` is not a valid header value"
        );
    }

    #[test]
    fn a_failure_says_whether_the_request_was_written() {
        let failed = |error, written| Failed { error, written };
        assert_eq!(
            outgoing_error(failed(HttpError::ConnectionRefused, false)),
            OutgoingError::NotSent("connection refused".into())
        );
        assert_eq!(
            outgoing_error(failed(HttpError::HttpResponseTimeout, true)),
            OutgoingError::NoReply("timed out waiting for the reply".into())
        );
        assert!(matches!(
            outgoing_error(failed(HttpError::DestinationIpProhibited, false)),
            OutgoingError::Denied(_)
        ));
    }
}
