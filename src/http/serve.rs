//! The HTTP server loop: accepts connections and serves the router on each,
//! with the limits that keep idle or slow clients from using up the process.
//!
//! - A client has `server.idleTimeout` to send a request's headers, on a new
//!   connection and between the requests of a kept-alive one; then the
//!   connection is closed.
//! - A request (its body included) has [`REQUEST_TIMEOUT`] to be answered;
//!   then it gets a 408.
//! - At most [`Limits::connections`] connections are open at once; beyond
//!   that a new connection is closed at once, and the log says so (at most
//!   every 10 seconds, with how many were refused).
//! - If accepting fails (no file descriptor left), the loop waits a little
//!   and logs it instead of spinning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error, warn};

use super::ApiError;
use super::guard::AllowedHosts;

/// How long a request may take, from its headers to its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What one node's server allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub connections: usize,
    /// To send a request's headers (and between kept-alive requests).
    pub idle_timeout: Duration,
    /// The host of `server.publicUrl`, if set: the one name besides
    /// loopback names that requests may use (see [`super::guard`]).
    pub public_host: Option<String>,
}

impl Limits {
    /// The connections a process with `open_files` file descriptors can hold,
    /// keeping some for the store, the hooks and the listener.
    pub fn for_open_files(open_files: u64, idle_timeout: Duration) -> Limits {
        let connections = open_files.saturating_sub(128).clamp(16, 10_000);
        Limits {
            connections: usize::try_from(connections).unwrap_or(10_000),
            idle_timeout,
            public_host: None,
        }
    }
}

/// Answers 408 for a request that is not done within [`REQUEST_TIMEOUT`].
pub(super) async fn request_timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {REQUEST_TIMEOUT:?}"),
        )
        .into_response(),
    }
}

/// Serves `router` on `listener` until `stop` turns true; then stops
/// accepting and waits for the connections to finish their requests (the
/// caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        %address,
        connections = limits.connections,
        idle_timeout = ?limits.idle_timeout,
        public_host = limits.public_host.as_deref(),
        "alertd listening"
    );
    let loopback = listener
        .local_addr()
        .is_ok_and(|address| address.ip().is_loopback());
    let allowed = match (&limits.public_host, loopback) {
        (Some(host), _) => AllowedHosts::Named(host.clone()),
        (None, true) => AllowedHosts::Loopback,
        (None, false) => {
            warn!(
                "listening beyond loopback without server.publicUrl: requests are taken under \
                 any host name; set server.publicUrl to refuse names an attacker controls"
            );
            AllowedHosts::Any
        }
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        Arc::new(allowed),
        super::guard::guard,
    ));
    let open = Arc::new(Semaphore::new(limits.connections));
    let graceful = GracefulShutdown::new();
    let refused = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to close.
                error!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused.one(limits.connections);
            drop(stream);
            continue;
        };
        // Who is asking, for the handlers that need it (sign-in throttling).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .keep_alive(true);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Logs refused connections at most every 10 seconds, with their count.
#[derive(Default)]
struct RefusalLog {
    count: AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

impl RefusalLog {
    fn one(&self, limit: usize) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            warn!(
                open = limit,
                refused_so_far = count,
                "connection refused: {limit} connections are open already"
            );
        }
    }
}
