//! Ingestion over HTTP: whole samples from any host (`POST /api/v1/samples`)
//! and counters for this node's next sample (`POST /api/v1/metrics`). A batch
//! is parsed ([`crate::sample::batch`]) and checked ([`Service::plausible`])
//! whole before anything of it is stored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::Serialize;

use super::{ApiError, ApiResult};
use crate::sample::batch::{Format, parse_batch};
use crate::sample::{Sample, SampleReader};
use crate::service::{HostLimit, HostLimitError, Service};
use crate::store::{Appended, Once};

/// The header a sender sets so that a push sent again (a retry after a
/// timeout) is not stored twice.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on the answer to a push whose key was seen already.
const REPLAYED: &str = "idempotent-replayed";
/// The longest key taken.
const KEY_LIMIT: usize = 200;

/// The push's idempotency key, if it has one, with the fingerprint of what
/// came with it (`what` names the endpoint, so that one key on two
/// endpoints is two pushes). A bad header is refused.
fn once(
    service: &Service,
    headers: &HeaderMap,
    what: &str,
    body: &[u8],
) -> Result<Option<Once>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=KEY_LIMIT).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key: expected 1 to {KEY_LIMIT} visible ASCII characters \
                 (a UUID, say), without spaces"
            ))
        })?;
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(what.as_bytes());
    digest.update([0]);
    digest.update(body);
    let fingerprint: String = digest.finalize()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Some(Once {
        key: key.to_string(),
        fingerprint,
        keep: service.read_config(|config| config.server.idempotency_window),
    }))
}

/// The refusal of a key used before for something else.
fn conflict(service: &Service, once: &Once) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "Idempotency-Key {:?} came within server.idempotencyWindow ({}) with another \
             body: nothing was stored; give each new push a new key",
            once.key,
            crate::duration::HumanDuration(
                service.read_config(|config| config.server.idempotency_window)
            )
        ),
    )
}

/// `POST /api/v1/metrics`: counters for this node's next sample.
pub(super) async fn metrics(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body?;
    if !service.read_config(|config| config.monitoring.enabled) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "monitoring is disabled on this node: set monitoring.enabled to collect counters",
        ));
    }
    // Say precisely what is wrong with a body that is not a JSON text at all.
    if let Err(error) = std::str::from_utf8(&body) {
        return Err(ApiError::bad_request(format!(
            "the body is not UTF-8: byte {} is not valid",
            error.valid_up_to()
        )));
    }
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        let hint =
            if body.windows(3).any(|w| w == b"NaN") || body.windows(8).any(|w| w == b"Infinity") {
                " (NaN and Infinity are not JSON numbers)"
            } else {
                ""
            };
        return Err(ApiError::bad_request(format!(
            "the body is not JSON: {error}{hint}"
        )));
    }
    // A counters object is a sample's metrics: the same rules, the same errors.
    let mut reader = SampleReader::default();
    if let Err(error) = reader.parse_metrics(&body) {
        return Err(ApiError::bad_request(match error {
            crate::sample::SampleError::Syntax { .. } => {
                "expected a JSON object of counters and numbers".to_string()
            }
            other => other.to_string(),
        }));
    }
    let counters: Vec<(String, f64)> = reader
        .metrics()
        .map(|(field, value)| (field.to_string(), value))
        .collect();
    let once = once(&service, &headers, "metrics", &body)?;
    // Checked before the key is kept: a push refused keeps no key.
    service
        .counters()
        .check(&counters)
        .map_err(|overflow| ApiError::bad_request(overflow.to_string()))?;
    let Some(once) = once else {
        service
            .counters()
            .add(&counters)
            .map_err(|overflow| ApiError::bad_request(overflow.to_string()))?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    // The key and the counters on one thread, to the end: a client that
    // hangs up meanwhile cannot leave the key kept and the counters not.
    let worker = service.clone();
    let kept = off_thread(move || match worker.store().remember_once(&once)? {
        Appended::Conflict => Err(conflict(&worker, &once)),
        Appended::Replayed => Ok(Appended::Replayed),
        Appended::Stored => {
            worker
                .counters()
                .add(&counters)
                .map_err(|overflow| ApiError::bad_request(overflow.to_string()))?;
            Ok(Appended::Stored)
        }
    })
    .await?;
    Ok(match kept {
        Appended::Replayed => ([(REPLAYED, "true")], StatusCode::NO_CONTENT).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST /api/v1/samples`: whole samples, all stored or none.
pub(super) async fn samples(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.trim_start().to_ascii_lowercase();
            value.starts_with("application/x-ndjson") || value.starts_with("application/jsonl")
        });
    let format = if ndjson { Format::Ndjson } else { Format::Json };
    let once = once(&service, &headers, "samples", &body)?;
    let worker = service.clone();
    let checked = move |samples: Vec<Sample>| service.plausible(&samples).map(|()| samples);
    let (accepted, appended) =
        off_thread(move || match parse_batch(&body, format).and_then(checked) {
            Ok(samples) => {
                let accepted = samples.len();
                worker.admit_hosts(&samples).map_err(host_limit)?;
                match (worker.ingest_once(samples, once.clone())?, &once) {
                    (Appended::Conflict, Some(once)) => Err(conflict(&worker, once)),
                    (appended, _) => Ok((accepted, appended)),
                }
            }
            Err(bad) => {
                worker.metrics().batch_rejected(1);
                Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    message: bad.message,
                    index: Some(bad.index),
                })
            }
        })
        .await?;
    let answer = axum::Json(Accepted { accepted });
    Ok(match appended {
        Appended::Replayed => ([(REPLAYED, "true")], answer).into_response(),
        _ => answer.into_response(),
    })
}

/// Runs blocking `work` on a thread of its own.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work).await?
}

/// A batch refused for its new hosts: 400 for too many at once (the same
/// batch would be refused again), 429 for too many in all (it may pass once
/// retention forgets hosts, or the limit is raised).
fn host_limit(error: HostLimitError) -> ApiError {
    match error {
        HostLimitError::Store(error) => error.into(),
        HostLimitError::Limit(limit @ HostLimit::PerBatch { .. }) => ApiError::bad_request(limit),
        HostLimitError::Limit(limit @ HostLimit::Total { .. }) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, limit)
        }
    }
}

/// The answer to an accepted batch: how many samples it held.
#[derive(Serialize)]
struct Accepted {
    accepted: usize,
}
