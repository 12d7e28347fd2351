//! The standard ways in: OTLP/HTTP metrics (`POST /v1/metrics`) and
//! Prometheus remote write 1.0 (`POST /api/v1/write`). Each answers as its
//! specification says: what a sender must not send again is a 4xx, what it
//! should retry (a store that cannot write now) a 5xx.

use std::io::Read;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::series::{Batch, otlp, remote_write};
use crate::service::{PointsError, Service, Taken, Via};

/// How much bigger than `server.bodyLimit` a body may grow once
/// uncompressed.
const INFLATION: usize = 8;

/// A refusal: a status and why.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// A media type or encoding this endpoint does not take (415).
    fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }
}

/// The lowercased media type of `Content-Type`, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn content_encoding(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    match headers.get(header::CONTENT_ENCODING) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|value| Some(value.trim().to_ascii_lowercase()))
            .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "Content-Encoding is not text")),
    }
}

/// The header of a request one node sent on to the leader: it is taken
/// where it arrives, never sent on again.
const FORWARDED: &str = "x-alertd-forwarded";

/// The client that sends requests on to the leader.
fn forwarding_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    })
}

/// In a cluster this node does not lead, sends the request on to the
/// leader and gives its answer back: one node translates every standard
/// sender's points, so that a counter whose points reach several nodes in
/// turn (a load balancer) is counted once. `None`: the request is taken
/// here (this node leads, no leader is known or reachable, or the request
/// was sent on already).
async fn forward(
    service: &Service,
    headers: &HeaderMap,
    path: &str,
    body: &Bytes,
) -> Option<Response> {
    if headers.contains_key(FORWARDED) {
        return None;
    }
    let leader = service.leader_url()?;
    let mut request = forwarding_client()
        .post(format!("{}{path}", leader.trim_end_matches('/')))
        .header(FORWARDED, "1")
        .body(body.clone());
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::AUTHORIZATION,
    ] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            tracing::warn!(
                %leader,
                error = %error.without_url(),
                "cannot send points on to the leader: taking them here"
            );
            return None;
        }
    };
    let status = response.status();
    let mut answer = Response::builder().status(status.as_u16());
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            answer = answer.header(name, value);
        }
    }
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::warn!(%leader, error = %error.without_url(), "the leader's answer broke off");
            return Some(
                (
                    StatusCode::BAD_GATEWAY,
                    "the leader's answer broke off: send the points again\n",
                )
                    .into_response(),
            );
        }
    };
    answer.body(Body::from(bytes)).ok()
}

/// Reads a body of at most `server.bodyLimit` bytes. One whose
/// `Content-Length` says it is bigger is refused before it is read (a client
/// that waits for `100 Continue` sends nothing).
async fn read_body(service: &Service, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let limit = service.read_config(|config| config.server.body_limit);
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than server.bodyLimit ({limit} bytes): send smaller batches"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let error = error.into_inner();
        if error.is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {error}"),
            )
        }
    })
}

/// Inflates a gzip body, refusing one that grows past `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Refusal> {
    let mut inflated = Vec::new();
    let read = flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated);
    match read {
        Err(error) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid gzip: {error}"),
        )),
        Ok(_) if inflated.len() > limit => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body inflates to more than {limit} bytes: send smaller batches"),
        )),
        Ok(_) => Ok(inflated),
    }
}

/// A batch the service did not store: the store failed (a sender should
/// send it again), or could not take it at all.
fn not_stored(error: PointsError) -> Refusal {
    let PointsError::Store(error) = error;
    if let crate::store::StoreError::Unstorable(_) = error {
        return Refusal::new(StatusCode::BAD_REQUEST, error.to_string());
    }
    tracing::error!(%error, "store failed a request");
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the store cannot take the points now ({error}): send them again"),
    )
}

/// Stores `batch`. Blocking.
fn store(service: &Service, via: Via, batch: Batch) -> Result<Taken, Refusal> {
    service.ingest_points(via, batch).map_err(not_stored)
}

/// Runs `work` (inflating, decoding, translating, storing: CPU and disk)
/// off the async threads, which every request goes through.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Refusal> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| {
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request failed: {error}"),
            ))
        })
}

/// `POST /v1/metrics`: an OTLP `ExportMetricsServiceRequest`.
pub(super) async fn otlp(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match media_type(&headers).as_deref() {
        Some("application/x-protobuf" | "application/protobuf") => otlp::Encoding::Protobuf,
        Some("application/json") => otlp::Encoding::Json,
        other => {
            let message = format!(
                "Content-Type {}: OTLP/HTTP is application/x-protobuf or application/json",
                other.unwrap_or("(none)")
            );
            return otlp_error(Refusal::unsupported(message), otlp::Encoding::Json);
        }
    };
    let body = match read_body(&service, &headers, body).await {
        Ok(body) => body,
        Err(refusal) => return otlp_error(refusal, encoding),
    };
    if let Some(answer) = forward(&service, &headers, "/v1/metrics", &body).await {
        return answer;
    }
    match otlp_export(&service, &headers, body, encoding).await {
        Ok(answer) => answer,
        Err(refusal) => {
            if refusal.status.is_client_error() {
                service.metrics().batch_rejected(0);
            }
            otlp_error(refusal, encoding)
        }
    }
}

async fn otlp_export(
    service: &Arc<Service>,
    headers: &HeaderMap,
    body: Bytes,
    encoding: otlp::Encoding,
) -> Result<Response, Refusal> {
    let gzipped = match content_encoding(headers)?.as_deref() {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(Refusal::unsupported(format!(
                "Content-Encoding {other:?}: alertd takes gzip or none"
            )));
        }
    };
    let service = service.clone();
    let answer = blocking(move || {
        let config = service.config();
        let limit = config.server.body_limit.saturating_mul(INFLATION);
        let inflated;
        let body: &[u8] = if gzipped {
            inflated = gunzip(&body, limit)?;
            &inflated
        } else {
            &body
        };
        let mut request = otlp::decode(body, encoding).map_err(|error| {
            let status = match error {
                otlp::OtlpError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            Refusal::new(status, error.to_string())
        })?;
        let count = otlp::count_points(&request);
        if count > config.ingest.max_points {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{count} data points in one request, more than ingest.maxPointsPerRequest \
                     ({}): send smaller batches (the Collector's batch processor: \
                     send_batch_max_size)",
                    config.ingest.max_points
                ),
            ));
        }
        if encoding == otlp::Encoding::Json
            && let Some(problem) = otlp::unreadable_data(&request, body)
        {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, problem));
        }
        if encoding == otlp::Encoding::Json {
            otlp::read_string_values(&mut request, body);
        }
        let decoded = otlp::points(request);
        let refused_before = decoded.refused.count();
        if refused_before > 0 {
            service.points_refused(Via::Otlp, refused_before);
        }
        let batch = Batch {
            points: decoded.points,
            host: None,
        };
        let taken = store(&service, Via::Otlp, batch)?;
        let mut reasons: Vec<String> = Vec::new();
        if refused_before > 0 {
            reasons.push(decoded.refused.summary());
        }
        if taken.refused.count() > 0 {
            reasons.push(taken.refused.summary());
        }
        let refused = refused_before + taken.refused.count();
        Ok(otlp::response(refused, &reasons.join("; "), encoding))
    })
    .await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type(encoding))],
        answer,
    )
        .into_response())
}

fn content_type(encoding: otlp::Encoding) -> &'static str {
    match encoding {
        otlp::Encoding::Protobuf => "application/x-protobuf",
        otlp::Encoding::Json => "application/json",
    }
}

/// A refusal of `/v1/metrics` made before its handler (a missing token),
/// as an OTLP sender reads one: a `google.rpc.Status` in the request's
/// encoding.
pub(super) fn otlp_refusal(status: StatusCode, message: String, headers: &HeaderMap) -> Response {
    let encoding = match media_type(headers).as_deref() {
        Some("application/json") => otlp::Encoding::Json,
        _ => otlp::Encoding::Protobuf,
    };
    otlp_error(Refusal::new(status, message), encoding)
}

/// An OTLP error answer: its status, and a `google.rpc.Status` body.
fn otlp_error(refusal: Refusal, encoding: otlp::Encoding) -> Response {
    // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL,
    // UNAUTHENTICATED.
    let code = match refusal.status {
        StatusCode::UNAUTHORIZED => 16,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        status if status.is_server_error() => 13,
        _ => 3,
    };
    let body = otlp::status(code, &refusal.message, encoding);
    let response = (
        refusal.status,
        [(header::CONTENT_TYPE, content_type(encoding))],
        body,
    )
        .into_response();
    retry_later(refusal.status, response)
}

/// Says when to send again, on an answer a sender should retry.
fn retry_later(status: StatusCode, mut response: Response) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("5"),
        );
    }
    response
}

/// `POST /api/v1/write`: a Prometheus remote write 1.0 `WriteRequest`.
pub(super) async fn remote_write(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&service, &headers, body).await {
        Ok(body) => body,
        Err(refusal) => return (refusal.status, format!("{}\n", refusal.message)).into_response(),
    };
    if let Some(answer) = forward(&service, &headers, "/api/v1/write", &body).await {
        return answer;
    }
    match write(&service, &headers, body).await {
        Ok(taken) if taken.refused.count() == 0 => StatusCode::NO_CONTENT.into_response(),
        // Remote write 1.0 has no partial success: a 2xx with why, for
        // whoever reads it (the refused points are in the metrics too).
        Ok(taken) => (
            StatusCode::OK,
            format!(
                "{} point(s) refused: {}\n",
                taken.refused.count(),
                taken.refused.summary()
            ),
        )
            .into_response(),
        Err(refusal) => {
            if refusal.status.is_client_error() {
                service.metrics().batch_rejected(0);
            }
            let response = (refusal.status, format!("{}\n", refusal.message)).into_response();
            retry_later(refusal.status, response)
        }
    }
}

async fn write(service: &Arc<Service>, headers: &HeaderMap, body: Bytes) -> Result<Taken, Refusal> {
    if let Some(value) = headers.get(header::CONTENT_TYPE) {
        let value = value.to_str().unwrap_or("").to_ascii_lowercase();
        if value.contains("io.prometheus.write.v2") {
            return Err(Refusal::unsupported(
                "remote write 2.0 is not taken: set protobuf_message: prometheus.WriteRequest \
                 (remote write 1.0)",
            ));
        }
        if !value.starts_with("application/x-protobuf") {
            return Err(Refusal::unsupported(format!(
                "Content-Type {value:?}: remote write is application/x-protobuf"
            )));
        }
    }
    match content_encoding(headers)?.as_deref() {
        None | Some("snappy") => {}
        Some(other) => {
            return Err(Refusal::unsupported(format!(
                "Content-Encoding {other:?}: remote write is snappy-compressed"
            )));
        }
    }
    let service = service.clone();
    blocking(move || {
        let config = service.config();
        let limit = config.server.body_limit.saturating_mul(INFLATION);
        let request =
            remote_write::decode(&body, limit, config.ingest.max_points).map_err(|error| {
                let status = match error {
                    remote_write::RemoteWriteError::TooLarge { .. }
                    | remote_write::RemoteWriteError::TooManyMessages
                    | remote_write::RemoteWriteError::TooManySeries { .. } => {
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                Refusal::new(status, error.to_string())
            })?;
        let count: usize = request
            .timeseries
            .iter()
            .map(|series| series.samples.len())
            .sum();
        if count > config.ingest.max_points {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{count} samples in one request, more than ingest.maxPointsPerRequest ({}): \
                     lower queue_config.max_samples_per_send",
                    config.ingest.max_points
                ),
            ));
        }
        service.learn_families(
            request
                .metadata
                .iter()
                .map(|metadata| (metadata.metric_family_name.clone(), metadata.family())),
        );
        let decoded = remote_write::points(request, |name| service.family_of(name));
        let refused_before: u64 = decoded.refused.iter().map(|(_, count)| count).sum();
        if refused_before > 0 {
            service.points_refused(Via::RemoteWrite, refused_before);
        }
        let batch = Batch {
            points: decoded.points,
            host: None,
        };
        let mut taken = store(&service, Via::RemoteWrite, batch)?;
        for (reason, count) in decoded.refused {
            taken.refused.reasons.push((reason, count));
        }
        Ok(taken)
    })
    .await
}
