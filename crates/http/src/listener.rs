//! The HTTP listener: HTTP/1.1 connections with a bound on how long a client may take, how many
//! may be open, and how long a shutdown waits for them.
//!
//! - Headers must arrive within [`HttpLimits::header_timeout`], counted from when the connection
//!   starts waiting for a request: a new connection that sends nothing, a slow header, and an idle
//!   keep-alive connection are all closed after it (hyper's header read timer).
//! - A body must arrive whole within [`HttpLimits::body_timeout`], else 408
//!   ([`read_body_in_time`]).
//! - At most [`HttpLimits::max_connections`] are open; further clients wait in the kernel's
//!   backlog until one closes.
//! - On shutdown the listener stops accepting, asks every connection to finish its request in
//!   flight, and closes what is left after [`HttpLimits::drain_timeout`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::error::{ApiError, ErrorCode};
use crate::extract::MAX_BODY_BYTES;

/// How long clients may take and how many may be connected.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// From waiting for a request to having its whole header.
    pub header_timeout: Duration,
    /// From the header to the whole body.
    pub body_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain_timeout: Duration,
}

impl HttpLimits {
    pub const DEFAULT: HttpLimits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(10),
        max_connections: 1024,
        drain_timeout: Duration::from_secs(10),
    };
}

/// What a finished [`serve`] reports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Connections that finished within the drain deadline.
    pub finished: usize,
    /// Connections closed at the deadline with a request still in flight or a client still there.
    pub closed_at_deadline: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    dialects: Arc<dyn crate::dialects::Dialects>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<Drained> {
    // A declared oversize is refused before the body is read (so before `100 Continue`); the
    // errors of these limits take the envelope of the dialect whose paths they are under.
    let router = router
        .layer(axum::middleware::from_fn_with_state(limits.body_timeout, read_body_in_time))
        .layer(axum::middleware::from_fn(crate::extract::refuse_oversize))
        .layer(axum::middleware::from_fn_with_state(dialects, crate::dialects::in_dialect_envelope));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (draining_tx, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = connection_service(router.clone(), peer);
        let mut draining = draining.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let asked_to_drain = tokio::select! {
                result = connection.as_mut() => {
                    log_end(result);
                    false
                }
                changed = draining.wait_for(|draining| *draining) => changed.is_ok(),
            };
            if asked_to_drain {
                connection.as_mut().graceful_shutdown();
                log_end(connection.await);
            }
        });
        // Reap the finished ones as we go, so the set holds only open connections.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = draining_tx.send(true);
    let mut drained = Drained::default();
    let deadline = tokio::time::sleep(limits.drain_timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = connections.join_next() => match next {
                Some(_) => drained.finished += 1,
                None => break,
            },
            () = &mut deadline => {
                drained.closed_at_deadline = connections.len();
                connections.abort_all();
                break;
            }
        }
    }
    Ok(drained)
}

/// The router as a hyper service for one connection, with the peer's address in the request's
/// extensions (as `ConnectInfo`).
fn connection_service(
    router: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let router = router.clone();
        async move { tower::ServiceExt::oneshot(router, request.map(Body::new)).await }
    })
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Header timeouts, resets and malformed requests: the client's doing, not ours.
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within `timeout`, so a slow body cannot hold
/// a connection; 408 when it does not arrive in time.
pub async fn read_body_in_time(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => next.run(Request::from_parts(parts, Body::from(collected.to_bytes()))).await,
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        Ok(Err(e)) => ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, format!("reading the body: {e}"))
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the body did not arrive within {} s", timeout.as_secs_f64()),
        )
        .into_response(),
    }
}
