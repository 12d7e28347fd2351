//! The HTTP API: ingestion (`/api/v1/metrics`, `/api/v1/samples`), queries
//! (`/api/v1/incidents`, `/api/v1/rules`, `/api/v1/hosts`, `/api/v1/stats`),
//! `/metrics` for Prometheus and `/healthz`; and the web pages ([`super::pages`]).
//!
//! Every error is JSON, `{"error": "..."}`, with a 4xx status for a bad
//! request and 503 when the store fails; a request that fails changes nothing.

pub mod guard;
mod push;
pub mod serve;
mod silences;
mod standard;

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::auth::{Client, same_secret};
use crate::duration::{Millis, parse_duration};
use crate::service::Service;
use crate::stats::{MAX_BUCKETS, StatsQuery};
use crate::store::StoreError;

/// The service's HTTP routes: the API, `/metrics`, `/healthz` and the pages.
pub fn router(service: Arc<Service>) -> Router {
    let limit = service.read_config(|config| config.server.body_limit);
    let api = Router::new()
        .route("/api/v1/metrics", post(push::metrics))
        .route("/api/v1/samples", post(push::samples))
        .route("/api/v1/write", post(standard::remote_write))
        .route("/v1/metrics", post(standard::otlp))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/retry", post(retry_dead))
        .route("/api/v1/incidents/{id}/ack", post(silences::acknowledge))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/cluster/loss/acknowledge", post(acknowledge_loss))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/scrape", get(scrape_targets))
        .route("/api/v1/silences", get(silences::list).post(silences::add))
        .route(
            "/api/v1/silences/{id}",
            get(silences::one).delete(silences::expire),
        )
        .route_layer(middleware::from_fn_with_state(service.clone(), authorize));
    Router::new()
        .merge(api)
        .merge(super::pages::router(service.clone()))
        .route("/metrics", get(prometheus))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        // Pages and answers are gzipped for clients that take it, at level
        // 4: the per-host stats answer (24 MB for a day of 100 hosts) within
        // a tenth of level 6's size in 40% of its time.
        .layer(
            tower_http::compression::CompressionLayer::new()
                .quality(tower_http::CompressionLevel::Precise(4)),
        )
        .layer(middleware::from_fn(serve::request_timeout))
        .layer(middleware::map_response(security_headers))
        .with_state(service)
}

/// What every answer says about how a browser may use it: the pages load
/// nothing from elsewhere and run no script (inline SVG and the legend's
/// colours are the only inline content), may not be framed, and send no
/// `Referer` elsewhere. (`no-referrer` would also make browsers send
/// `Origin: null` with the pages' own forms, which the guard refuses.)
async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(&str, &str); 4] = [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(
            axum::http::HeaderName::from_static(name),
            axum::http::HeaderValue::from_static(value),
        );
    }
    response
}

/// An unknown address: an error page for a browser (one that asks for
/// HTML), JSON for anything else.
async fn not_found(State(service): State<Arc<Service>>, request: Request) -> Response {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !request.uri().path().starts_with("/api/") {
        return crate::pages::not_found(service, request.uri().path());
    }
    ApiError::new(StatusCode::NOT_FOUND, "no such endpoint").into_response()
}

/// An error answer: a status and `{"error": message}` (and the index of the
/// first bad sample of a batch).
#[derive(Debug, Serialize)]
pub(super) struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    #[serde(rename = "error")]
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl fmt::Display) -> Self {
        ApiError {
            status,
            message: message.to_string(),
            index: None,
        }
    }

    fn bad_request(message: impl fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Unstorable(_) = error {
            return ApiError::bad_request(error.to_string());
        }
        tracing::error!(%error, "store failed a request");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {error}"))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking work (the store, the engine lock) off the async threads,
/// and writes its JSON answer there too: a large answer (a day of stats is
/// megabytes) would otherwise hold one of the few async threads that every
/// request, samples included, goes through.
async fn blocking<T: serde::Serialize>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<Response> {
    blocking_holding((), work).await
}

/// [`blocking`], `held` (a heavy-read turn) kept until the answer is
/// written, whether or not the client still waits for it.
async fn blocking_holding<T: serde::Serialize>(
    held: impl Send + 'static,
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<Response> {
    tokio::task::spawn_blocking(move || {
        let _held = held;
        let answer = work()?;
        let body = serde_json::to_vec(&answer)
            .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error))?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    })
    .await?
}

/// `POST /api/v1/cluster/loss/acknowledge`: an operator has seen that the
/// shared store lost its data; `/healthz` and the pages stop saying so.
async fn acknowledge_loss(State(service): State<Arc<Service>>) -> ApiResult<Response> {
    #[derive(Serialize)]
    struct Acknowledged {
        acknowledged: Option<crate::store::Loss>,
    }
    blocking(move || {
        Ok(Acknowledged {
            acknowledged: service.acknowledge_loss()?,
        })
    })
    .await
}

/// Checks `Authorization: Bearer <token>` when a token is configured. A
/// client that gave 5 wrong tokens within a minute (here or to the sign-in
/// form) gets 429 until the minute is over, whatever it sends; a request
/// without a token guesses nothing and is not counted.
async fn authorize(State(service): State<Arc<Service>>, request: Request, next: Next) -> Response {
    // OTLP senders read a refusal as a google.rpc.Status.
    let otlp = request.uri().path() == "/v1/metrics";
    let refuse = |status: StatusCode, message: String| {
        if otlp {
            standard::otlp_refusal(status, message, request.headers())
        } else {
            ApiError::new(status, message).into_response()
        }
    };
    if let Some(token) = service.token() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let client = Client::of(request.extensions());
        let throttle = service.token_throttle();
        if given.is_some()
            && let Some(wait) = throttle.wait(client)
        {
            service.metrics().wrong_token();
            tracing::warn!(%client, "API request refused: too many wrong tokens from this address");
            let mut response = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many wrong tokens from {client}: try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                wait.as_secs().max(1).to_string().parse().expect("digits"),
            );
            return response;
        }
        if !given.is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes())) {
            if given.is_some() {
                throttle.failed(client);
                service.metrics().wrong_token();
                tracing::warn!(%client, "an API request gave a wrong token");
            }
            let mut response = refuse(
                StatusCode::UNAUTHORIZED,
                "this server needs \"Authorization: Bearer <token>\" (server.token or ALERTD_TOKEN)"
                    .to_string(),
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
            return response;
        }
    }
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct Range {
    from: Option<Millis>,
    to: Option<Millis>,
}

impl Range {
    /// `[from, to]`; `to` defaults to now and `from` to an hour before `to`.
    fn resolve(&self, now: Millis) -> ApiResult<(Millis, Millis)> {
        let to = self.to.unwrap_or(now);
        let from = self.from.unwrap_or(to.saturating_sub(3_600_000));
        if from > to {
            return Err(ApiError::bad_request(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        Ok((from, to))
    }
}

/// `GET /api/v1/incidents?from=MS&to=MS`.
async fn incidents(
    State(service): State<Arc<Service>>,
    query: Result<Query<Range>, QueryRejection>,
) -> ApiResult<Response> {
    let (from, to) = query?.resolve(service.now())?;
    blocking(move || Ok(service.queries().incidents(from, to)?)).await
}

/// `POST /api/v1/incidents/{id}/retry`: brings back the incident's dead
/// deliveries, due now.
async fn retry_dead(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    blocking(move || {
        if service.queries().incident(&id)?.is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no incident {id:?}"),
            ));
        }
        /// How many dead deliveries were brought back.
        #[derive(Serialize)]
        struct Retried {
            retried: u64,
        }
        let retried = service.retry_dead(&id)?;
        Ok(Retried { retried })
    })
    .await
}

/// `GET /api/v1/incidents/{id}`: one incident, its hook calls and what waits.
async fn incident(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    blocking(move || {
        service
            .queries()
            .incident(&id)?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no incident {id:?}")))
    })
    .await
}

/// `GET /api/v1/rules`: every rule with its state per host.
async fn rules(State(service): State<Arc<Service>>) -> ApiResult<Response> {
    // In a cluster the states are the leader's, as last read from the
    // store: stale while it cannot be read, so not given as current.
    if service.topology().is_cluster()
        && let Some(error) = service.cluster().error
    {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: {error}"),
        ));
    }
    blocking(move || Ok(service.queries().rules())).await
}

/// `GET /api/v1/cluster`: the nodes, their last heartbeat, who leads and
/// with which token, and whose rules differ from the leader's; as this node
/// last read it (every third of the lease).
async fn cluster(State(service): State<Arc<Service>>) -> ApiResult<Response> {
    let view = service.queries().cluster();
    if let Some(error) = &view.error {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store: {error}"),
        ));
    }
    Ok(axum::Json(view).into_response())
}

/// `GET /api/v1/hosts`: every host with stored samples and its last report.
async fn hosts(State(service): State<Arc<Service>>) -> ApiResult<Response> {
    blocking(move || Ok(service.queries().hosts()?)).await
}

#[derive(Debug, Deserialize)]
struct StatsParams {
    from: Option<Millis>,
    to: Option<Millis>,
    /// A duration (`"1m"`, `"30s"`, or milliseconds).
    resolution: Option<String>,
    host: Option<String>,
    /// Comma-separated field names; all fields when absent.
    fields: Option<String>,
    /// `hosts`: every host's samples in the same buckets.
    across: Option<String>,
}

/// `GET /api/v1/scrape`: each scrape target's last scrape.
async fn scrape_targets(State(service): State<Arc<Service>>) -> Response {
    #[derive(Serialize)]
    struct Targets {
        targets: Vec<crate::service::TargetStatus>,
    }
    let worker = service.clone();
    match tokio::task::spawn_blocking(move || worker.scrape_statuses()).await {
        Ok(targets) => axum::Json(Targets { targets }).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `GET /api/v1/stats?from=MS&to=MS&resolution=1m`: samples per host,
/// downsampled into buckets of `resolution` with each field's average,
/// maximum and sum; with `across=hosts`, every host's samples together.
async fn stats(
    State(service): State<Arc<Service>>,
    query: Result<Query<StatsParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(params) = query?;
    let (from, to) = Range {
        from: params.from,
        to: params.to,
    }
    .resolve(service.now())?;
    let resolution = match &params.resolution {
        Some(text) => match parse_duration(text) {
            Ok(0) | Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "resolution {text:?}: expected a duration longer than 0, such as \"1m\""
                )));
            }
            Ok(resolution) => resolution,
        },
        None => StatsQuery::auto_resolution(from, to),
    };
    let across_hosts = match (params.across.as_deref(), &params.host) {
        (None, _) => false,
        (Some("hosts"), None) => true,
        (Some("hosts"), Some(host)) => {
            return Err(ApiError::bad_request(format!(
                "across=hosts and host={host:?}: ask for one host or for all together, not both"
            )));
        }
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "across={other:?}: the one choice is \"hosts\""
            )));
        }
    };
    let mut query = StatsQuery::new(
        from,
        to,
        resolution,
        params.host,
        params
            .fields
            .map(|list| list.split(',').map(|f| f.trim().to_string()).collect()),
    );
    if across_hosts {
        query = query.across_hosts();
    }
    let from = query.from;
    let buckets = query.buckets();
    if buckets > MAX_BUCKETS {
        return Err(ApiError::bad_request(format!(
            "{buckets} buckets per host: at most {MAX_BUCKETS}; choose a coarser resolution"
        )));
    }
    let turn = service.heavy_read().await;
    if across_hosts {
        return blocking_holding(turn, move || {
            Ok(crate::stats::StatsAnswer {
                from,
                to,
                resolution,
                hosts: service.queries().stats(&query)?,
                across_hosts,
            })
        })
        .await;
    }
    // Each host's buckets written as they were added up (no map of field
    // names per bucket: 24 MB of JSON for 100 hosts over a day at 5 m), and
    // sent as soon as written. The answer is not sent before every host's
    // were read, so that a store error is still an error status.
    let (read, answer) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let query = service.queries().kept(&query);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let by_host = match query.read_hosts(service.store(), threads) {
            Ok(by_host) => by_host,
            Err(error) => {
                let _ = read.send(Err(error));
                return;
            }
        };
        // Not bounded, so that a client that reads slowly holds no turn:
        // at worst the whole answer waits in memory, as it did when it was
        // sent only once written.
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..threads)
            .map(|_| tokio::sync::mpsc::unbounded_channel())
            .unzip();
        let hosts = by_host.len();
        if read.send(Ok((hosts, receivers))).is_err() {
            return;
        }
        by_host.write_entries(threads, &|k, entry| {
            let entry = entry.map_err(|error| {
                tracing::error!(%error, "the stats answer could not be written");
                error.to_string()
            });
            senders[k % threads].send(entry).is_ok()
        });
    });
    let (hosts, entries) = match answer.await {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => return Err(error.into()),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the stats answer failed",
            ));
        }
    };
    let (head, tail) = crate::stats::answer_ends((from, to, resolution));
    let body = axum::body::Body::new(Entries {
        head: Some(head.into()),
        entries,
        hosts,
        sent: 0,
        tail: Some(tail.into()),
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The per-host stats answer sent as its hosts' entries are written: the
/// `k`-th host's comes from `entries[k % entries.len()]`.
struct Entries {
    head: Option<bytes::Bytes>,
    entries: Vec<tokio::sync::mpsc::UnboundedReceiver<Result<Vec<u8>, String>>>,
    hosts: usize,
    sent: usize,
    tail: Option<bytes::Bytes>,
}

impl http_body::Body for Entries {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let data = |bytes: bytes::Bytes| Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
        if let Some(head) = self.head.take() {
            return data(head);
        }
        if self.sent < self.hosts {
            let from = self.sent % self.entries.len();
            return match self.entries[from].poll_recv(context) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Ok(entry))) => {
                    self.sent += 1;
                    data(entry.into())
                }
                // The client gets a cut answer (the connection is closed),
                // never a whole one with a host missing.
                Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(None) => Poll::Ready(Some(Err("the stats answer stopped".into()))),
            };
        }
        Poll::Ready(
            self.tail
                .take()
                .map(|tail| Ok(http_body::Frame::data(tail))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.sent == self.hosts && self.tail.is_none()
    }
}

/// `GET /metrics`: the service's own figures for Prometheus.
async fn prometheus(State(service): State<Arc<Service>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        service.prometheus_text(),
    )
        .into_response()
}

/// `GET /healthz`: 200 when the store answers, has not failed any operation
/// in the last minute and the node has no [problem](Service::problems);
/// 503 with the reason otherwise.
async fn healthz(State(service): State<Arc<Service>>) -> ApiResult<&'static str> {
    let checked = service.clone();
    blocking(move || Ok(checked.store().pending_deliveries()?)).await?;
    if let Some(problem) = service.problems().into_iter().next() {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, problem));
    }
    if let Some(failure) = service.store_failure() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store failed within the last minute: {failure}"),
        ));
    }
    Ok("ok\n")
}
