//! Ingestion over HTTP: whole samples from any host (`POST /api/v1/samples`)
//! and counters for this node's next sample (`POST /api/v1/metrics`). A batch
//! is parsed ([`crate::sample::batch`]) and checked ([`Service::plausible`])
//! whole before anything of it is stored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use serde::Serialize;

use super::{ApiError, ApiResult, blocking};
use crate::sample::batch::{Format, parse_batch};
use crate::sample::{Sample, SampleReader};
use crate::service::{HostLimit, HostLimitError, Service};

/// `POST /api/v1/metrics`: counters for this node's next sample.
pub(super) async fn metrics(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
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
    service
        .counters()
        .add(&counters)
        .map_err(|overflow| ApiError::bad_request(overflow.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
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
    let worker = service.clone();
    let checked = move |samples: Vec<Sample>| service.plausible(&samples).map(|()| samples);
    blocking(move || match parse_batch(&body, format).and_then(checked) {
        Ok(samples) => {
            let accepted = samples.len();
            worker.admit_hosts(&samples).map_err(host_limit)?;
            worker.ingest(samples)?;
            Ok(Accepted { accepted })
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
    .await
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
