//! Resetting a client's connection instead of answering it.
//!
//! `reset_after_accept_rate` (see [`crate::faults`]) needs a send request
//! to be processed and then answered with *nothing*: no status line, no
//! headers, just a dead connection, as when a platform's front end drops
//! the connection after the back end acted. An axum handler cannot do that
//! by itself, so the simulator serves through [`ResettableListener`]:
//!
//! 1. every accepted connection is a [`ResettableStream`] with a shared
//!    "reset" switch, handed to requests as the connection info
//!    ([`ConnectionHandle`], via `into_make_service_with_connect_info`);
//! 2. a handler answers with [`reset_reply`], a response marked with
//!    [`ResetConnection`];
//! 3. [`reset_layer`], around the whole app, sees the marker and flips the
//!    connection's switch before hyper gets the response;
//! 4. when hyper then writes the response head, the stream sets `SO_LINGER`
//!    to zero and fails the write; hyper gives up on the connection and
//!    drops the socket, which sends a TCP RST. Not a byte of the response
//!    reached the socket.
//!
//! A reqwest client sees `send()` fail with an error for which
//! `is_request()` is true (the source chain says the connection was reset,
//! or closed before the message completed); it never sees a status code.
//! The whole connection goes down (other requests pipelined on it, or
//! HTTP/2 streams, fail too; reqwest's HTTP/1 pool just opens a new one).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections can be reset by the request they
/// carry.
#[derive(Debug)]
pub(crate) struct ResettableListener {
    inner: TcpListener,
}

impl ResettableListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        (
            ResettableStream {
                inner: stream,
                reset: Arc::new(AtomicBool::new(false)),
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A server-side TCP connection that fails every write, and is closed with
/// a TCP RST, once its [`ConnectionHandle`] asked for a reset.
#[derive(Debug)]
pub(crate) struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    /// If a reset was asked for: make closing the socket send an RST and
    /// return the error that makes hyper drop the connection.
    fn check_reset(&self) -> io::Result<()> {
        if !self.reset.load(Ordering::Acquire) {
            return Ok(());
        }
        if let Err(error) = self.inner.set_zero_linger() {
            // The connection is still dropped without a response, with a
            // FIN instead of an RST.
            tracing::debug!(%error, "connection: could not set SO_LINGER to zero");
        }
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "the simulator resets this connection (reset_after_accept_rate)",
        ))
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check_reset()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_reset()?;
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_reset()?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check_reset()?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The reset switch of one connection, given to each of its requests as
/// `ConnectInfo<ConnectionHandle>`.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionHandle {
    reset: Arc<AtomicBool>,
}

impl ConnectionHandle {
    /// From now on, writes to the connection fail and it is reset.
    fn reset(&self) {
        self.reset.store(true, Ordering::Release);
    }
}

impl Connected<IncomingStream<'_, ResettableListener>> for ConnectionHandle {
    fn connect_info(stream: IncomingStream<'_, ResettableListener>) -> Self {
        Self {
            reset: Arc::clone(&stream.io().reset),
        }
    }
}

/// Marks a response whose connection must be reset instead of answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResetConnection;

/// A reply that resets the client's connection without a response.
///
/// Served without [`reset_layer`] (a router used on its own), it goes out
/// as what it is underneath: a 500 saying a reset was asked for.
pub(crate) fn reset_reply() -> Response {
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({
            "error": "simulated connection reset (reset_after_accept_rate), served without the resetting listener"
        })),
    )
        .into_response();
    response.extensions_mut().insert(ResetConnection);
    response
}

/// Whether `response` came from [`reset_reply`].
#[cfg(test)]
pub(crate) fn is_reset_reply(response: &Response) -> bool {
    response.extensions().get::<ResetConnection>().is_some()
}

/// Middleware around the whole app: a response marked [`ResetConnection`]
/// resets its connection (see the module documentation).
pub(crate) async fn reset_layer(request: Request, next: Next) -> Response {
    let connection = request
        .extensions()
        .get::<ConnectInfo<ConnectionHandle>>()
        .map(|ConnectInfo(handle)| handle.clone());
    let response = next.run(request).await;
    if response.extensions().get::<ResetConnection>().is_some() {
        match connection {
            Some(connection) => connection.reset(),
            None => tracing::warn!(
                "connection: a reset was asked for, but the connection has no reset switch"
            ),
        }
    }
    response
}
