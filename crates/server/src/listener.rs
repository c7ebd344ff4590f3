//! Serving a router on a TCP listener with the bounds a server facing the
//! internet needs: a limit on open connections, and timeouts for reading a
//! request's headers, for its body and for the whole request, so slow
//! clients cannot hold connections open indefinitely.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// To read a request's headers (and, on a kept-alive connection, the
    /// next request's).
    pub header_timeout: Duration,
    /// To read a request's body.
    pub body_timeout: Duration,
    /// For a whole request, answered 408 when it passes.
    pub request_timeout: Duration,
    /// Open connections; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves; connections in
/// flight then finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = router
        .layer(RequestBodyTimeoutLayer::new(limits.body_timeout))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    // HTTP/1.1 only: platforms deliver webhooks over HTTP/1.1 (or HTTP/2
    // through TLS terminated in front of the host), and hyper's HTTP/1
    // header timeout also runs before a client's first byte, whereas a
    // protocol-sniffing server waits for that byte without a timer.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: wait, then go on.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let builder = Arc::clone(&builder);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.request_timeout) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(limits: ListenerLimits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/healthz", get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        addr
    }

    /// Reads until the server closes the connection; the time it took.
    async fn time_until_closed(stream: &mut tokio::net::TcpStream) -> Duration {
        let started = std::time::Instant::now();
        let mut buffer = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "the server kept a slow client's connection open for 10 s"
        );
        started.elapsed()
    }

    fn quick() -> ListenerLimits {
        ListenerLimits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(2),
            max_connections: 4,
        }
    }

    #[tokio::test]
    async fn a_client_that_sends_nothing_is_disconnected() {
        let addr = start(quick()).await;
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(time_until_closed(&mut silent).await < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_client_that_trickles_headers_is_disconnected() {
        let addr = start(quick()).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        assert!(time_until_closed(&mut slow).await < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn idle_connections_past_the_limit_do_not_block_new_clients_for_ever() {
        let addr = start(quick()).await;
        // Fill every connection slot with silent clients.
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // A real client gets in once the silent ones time out.
        let response = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        })
        .await
        .expect("served within 5 s");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}
