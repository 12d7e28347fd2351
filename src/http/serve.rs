//! The HTTP server loop: accepts connections and serves the router on each,
//! with the limits that keep idle, slow or greedy clients from using up the
//! process.
//!
//! - A client has `server.idleTimeout` to send a request's headers, on a new
//!   connection and between the requests of a kept-alive one; then the
//!   connection is closed.
//! - A request (its body included) has [`REQUEST_TIMEOUT`] to be answered;
//!   then it gets a 408.
//! - One client address holds at most [`Limits::per_client`] connections;
//!   beyond, its new connection is closed at once. A trusted proxy's
//!   connections are not counted per address (it carries many clients).
//! - At most [`Limits::connections`] connections are open at once. When a
//!   new one comes and the table is full, an idle connection (no request
//!   being answered) is closed to make room: the longest idle of the address
//!   that holds the most. Only when every connection is answering a request
//!   is the new one refused. A client that holds connections open without
//!   asking anything cannot keep others out.
//! - Refusals are logged at most every 10 seconds, with their count.
//! - If accepting fails (no file descriptor left), the loop waits a little
//!   and logs it instead of spinning.
//! - Each request carries its [`Client`]: the peer, or the address a
//!   trusted proxy forwarded (`server.trustedProxies`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{debug, error, warn};

use super::ApiError;
use super::guard::AllowedHosts;
use crate::auth::Client;

/// How long a request may take, from its headers to its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Connections asked to close (evicted idle ones, still finishing) that may
/// stand beyond [`Limits::connections`] before new ones are refused.
const CLOSING_ALLOWANCE: usize = 64;

/// What one node's server allows.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections open at once.
    pub connections: usize,
    /// Connections open at once from one client address.
    pub per_client: usize,
    /// To send a request's headers (and between kept-alive requests).
    pub idle_timeout: Duration,
    /// The host of `server.publicUrl`, if set: the one name besides
    /// loopback names that requests may use (see [`super::guard`]).
    pub public_host: Option<String>,
    /// `server.trustedProxies`.
    pub trusted_proxies: Vec<IpNet>,
}

impl Limits {
    /// The connections a process with `open_files` file descriptors can hold,
    /// keeping some for the store, the hooks and the listener.
    pub fn for_open_files(open_files: u64, idle_timeout: Duration) -> Limits {
        let connections = open_files.saturating_sub(128 + CLOSING_ALLOWANCE as u64);
        let connections = connections.clamp(16, 10_000);
        Limits {
            connections: usize::try_from(connections).unwrap_or(10_000),
            per_client: 64,
            idle_timeout,
            public_host: None,
            trusted_proxies: Vec::new(),
        }
    }

    fn trusted(&self, peer: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(peer))
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
    let table = Arc::new(Mutex::new(Table::default()));
    let refused = RefusalLog::default();
    let limits = Arc::new(limits);
    let started = Instant::now();
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
        let counted = !limits.trusted(&peer.ip());
        let mut admitted = lock(&table).admit(peer.ip(), counted, &limits, millis_since(started));
        // Connections asked to close are still closing: wait a little for
        // them (new ones wait in the listen backlog meanwhile).
        let waiting = Instant::now();
        while admitted.as_ref().err() == Some(&Refusal::Closing)
            && waiting.elapsed() < Duration::from_secs(1)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
            admitted = lock(&table).admit(peer.ip(), counted, &limits, millis_since(started));
        }
        let (id, connection) = match admitted {
            Ok(admitted) => admitted,
            Err(refusal) => {
                refused.one(refusal, &limits);
                drop(stream);
                continue;
            }
        };
        // Who is asking, for the handlers that need it (throttles), and
        // whether the connection is busy answering (for eviction).
        let busy = connection.clone();
        let idle = connection.clone();
        let trusted = limits.clone();
        let router = tower::ServiceExt::<hyper::Request<hyper::body::Incoming>>::map_response(
            router.clone(),
            move |response: Response| {
                idle.requests.fetch_sub(1, Ordering::Relaxed);
                idle.touch(started);
                response
            },
        );
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router,
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                busy.requests.fetch_add(1, Ordering::Relaxed);
                busy.touch(started);
                // Several X-Forwarded-For lines are one list, in order.
                let forwarded: Vec<&str> = request
                    .headers()
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .collect();
                let forwarded = (!forwarded.is_empty()).then(|| forwarded.join(","));
                let client = crate::address::client_address(
                    peer.ip(),
                    forwarded.as_deref(),
                    &trusted.trusted_proxies,
                );
                let extensions = request.extensions_mut();
                extensions.insert(axum::extract::ConnectInfo(peer));
                extensions.insert(Client(client));
                request
            },
        ));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout)
            .keep_alive(true);
        let table = table.clone();
        let grace = limits.idle_timeout;
        tokio::spawn(async move {
            let served = builder.serve_connection(TokioIo::new(stream), service);
            let mut served = std::pin::pin!(served);
            let ended = tokio::select! {
                ended = served.as_mut() => Some(ended),
                _ = connection.close.notified() => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    // Asked to close: a request being answered finishes,
                    // then the connection closes; one that will not within
                    // the idle timeout is dropped.
                    served.as_mut().graceful_shutdown();
                    tokio::time::timeout(grace, served).await.unwrap_or(Ok(()))
                }
            };
            if let Err(error) = ended {
                debug!(%error, "connection ended");
            }
            lock(&table).remove(id);
        });
    }
    drop(listener);
    // Stop: every connection finishes what it answers, then closes.
    lock(&table).close_all();
    while !lock(&table).open.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One open connection, as the table sees it.
#[derive(Default)]
struct Connection {
    /// Requests being answered on it (0 or 1 with HTTP/1.1).
    requests: AtomicUsize,
    /// When it last started or finished answering a request (or was
    /// accepted), in milliseconds since the server started.
    active: AtomicU64,
    /// Notified to ask it to close.
    close: Notify,
}

impl Connection {
    fn touch(&self, started: Instant) {
        self.active.store(millis_since(started), Ordering::Relaxed);
    }
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct Entry {
    peer: IpAddr,
    counted: bool,
    closing: bool,
    connection: Arc<Connection>,
}

/// The open connections, and how many each client address holds.
#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
    /// Open connections not asked to close.
    live: usize,
}

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its address holds [`Limits::per_client`] connections already.
    PerClient,
    /// Every connection is answering a request.
    Full,
    /// Too many connections asked to close have not closed yet.
    Closing,
}

impl Table {
    /// Makes room for a connection from `peer` and registers it, or says why
    /// it cannot.
    fn admit(
        &mut self,
        peer: IpAddr,
        counted: bool,
        limits: &Limits,
        now: u64,
    ) -> Result<(u64, Arc<Connection>), Refusal> {
        if counted && self.per_address.get(&peer).copied().unwrap_or(0) >= limits.per_client {
            return Err(Refusal::PerClient);
        }
        if self.live >= limits.connections {
            if self.open.len() >= limits.connections + CLOSING_ALLOWANCE {
                return Err(Refusal::Closing);
            }
            // The address that holds the most gives up its longest idle
            // connection: a client that holds many cannot push out one
            // that holds a few.
            let held = |entry: &Entry| match entry.counted {
                true => self.per_address.get(&entry.peer).copied().unwrap_or(0),
                false => 0,
            };
            let oldest_idle = self
                .open
                .iter()
                .filter(|(_, entry)| {
                    !entry.closing && entry.connection.requests.load(Ordering::Relaxed) == 0
                })
                .min_by_key(|(_, entry)| {
                    (
                        std::cmp::Reverse(held(entry)),
                        entry.connection.active.load(Ordering::Relaxed),
                    )
                })
                .map(|(id, _)| *id);
            let Some(oldest) = oldest_idle else {
                return Err(Refusal::Full);
            };
            if let Some(entry) = self.open.get_mut(&oldest) {
                entry.closing = true;
                entry.connection.close.notify_one();
                self.live -= 1;
                debug!(peer = %entry.peer, "closed the longest idle connection to make room");
            }
        }
        self.next += 1;
        let connection = Arc::new(Connection::default());
        connection.active.store(now, Ordering::Relaxed);
        self.open.insert(
            self.next,
            Entry {
                peer,
                counted,
                closing: false,
                connection: connection.clone(),
            },
        );
        self.live += 1;
        if counted {
            *self.per_address.entry(peer).or_default() += 1;
        }
        Ok((self.next, connection))
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.open.remove(&id) else {
            return;
        };
        if !entry.closing {
            self.live -= 1;
        }
        if entry.counted
            && let Some(count) = self.per_address.get_mut(&entry.peer)
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&entry.peer);
            }
        }
    }

    fn close_all(&mut self) {
        for entry in self.open.values_mut() {
            if !entry.closing {
                entry.closing = true;
                self.live -= 1;
            }
            entry.connection.close.notify_one();
        }
    }
}

/// Logs refused connections at most every 10 seconds, with their count.
#[derive(Default)]
struct RefusalLog {
    count: AtomicU64,
    last: std::sync::Mutex<Option<Instant>>,
}

impl RefusalLog {
    fn one(&self, refusal: Refusal, limits: &Limits) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            match refusal {
                Refusal::PerClient => warn!(
                    refused_so_far = count,
                    "connection refused: its address holds {} connections already \
                     (server.connectionsPerClient)",
                    limits.per_client
                ),
                Refusal::Closing => warn!(
                    refused_so_far = count,
                    "connection refused: {CLOSING_ALLOWANCE} connections asked to close have not \
                     closed within a second"
                ),
                Refusal::Full => warn!(
                    refused_so_far = count,
                    "connection refused: {} connections are open, each answering a request",
                    limits.connections
                ),
            }
        }
    }
}
