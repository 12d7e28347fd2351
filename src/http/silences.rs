//! `/api/v1/silences`: make, list and expire silences; and
//! `/api/v1/incidents/{id}/ack` (docs/notifications.md).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, ApiResult};
use crate::service::{NotAcknowledged, Refused, Service};
use crate::silence::{NewSilence, Silence, State as SilenceState};

/// A silence and where it stands now.
#[derive(Serialize)]
struct Shown {
    #[serde(flatten)]
    silence: Silence,
    state: SilenceState,
}

fn shown(silence: Silence, now: crate::duration::Millis) -> Shown {
    Shown {
        state: silence.state(now),
        silence,
    }
}

/// `POST /api/v1/silences`: `{"matchers": {...}, "duration": "2h", ...}`;
/// answers 201 with the silence.
pub(super) async fn add(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body?;
    let asked: NewSilence = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("silence: {error}")))?;
    let made = tokio::task::spawn_blocking(move || {
        let now = service.now();
        service
            .add_silence(asked)
            .map(|silence| shown(silence, now))
    })
    .await?;
    match made {
        Ok(silence) => Ok((StatusCode::CREATED, axum::Json(silence)).into_response()),
        Err(Refused::Invalid(problem)) => Err(ApiError::bad_request(format!("silence: {problem}"))),
        Err(Refused::Store(error)) => Err(error.into()),
    }
}

/// `GET /api/v1/silences`: every silence kept, active ones first.
pub(super) async fn list(State(service): State<Arc<Service>>) -> ApiResult<Response> {
    #[derive(Serialize)]
    struct Listed {
        silences: Vec<Shown>,
    }
    super::blocking(move || {
        let now = service.now();
        let silences = service.silences()?;
        Ok(Listed {
            silences: silences.into_iter().map(|s| shown(s, now)).collect(),
        })
    })
    .await
}

/// `GET /api/v1/silences/{id}`.
pub(super) async fn one(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    super::blocking(move || {
        let now = service.now();
        let found = service.silences()?.into_iter().find(|s| s.id == id);
        found
            .map(|silence| shown(silence, now))
            .ok_or_else(|| no_silence(&id))
    })
    .await
}

/// `DELETE /api/v1/silences/{id}`: ends it now (one ended already stays
/// as it is); what it held is sent if its incident is still open.
pub(super) async fn expire(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    super::blocking(move || {
        let expired = service.expire_silence(&id)?;
        // After it ended, so that it shows as ended.
        let now = service.now();
        match expired {
            Some(silence) => Ok(shown(silence, now)),
            None => Err(no_silence(&id)),
        }
    })
    .await
}

fn no_silence(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no silence {id:?}"))
}

/// `POST /api/v1/incidents/{id}/ack`: `{"by": "ana", "comment": "on it"}`;
/// answers the acknowledgement kept (the first one, if there was one).
pub(super) async fn acknowledge(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        by: String,
        #[serde(default)]
        comment: String,
    }
    let body = body?;
    let asked: Asked = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("acknowledgement: {error}")))?;
    let asked_id = id.clone();
    let done = tokio::task::spawn_blocking(move || {
        service.acknowledge(&asked_id, &asked.by, &asked.comment)
    })
    .await?;
    #[derive(Serialize)]
    struct Acknowledged {
        acknowledged: crate::store::Ack,
    }
    match done {
        Ok(acknowledged) => Ok(axum::Json(Acknowledged { acknowledged }).into_response()),
        Err(NotAcknowledged::Unknown) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident {id:?}"),
        )),
        Err(NotAcknowledged::Resolved) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("incident {id:?} is resolved: nothing to acknowledge"),
        )),
        Err(NotAcknowledged::Invalid(problem)) => {
            Err(ApiError::bad_request(format!("acknowledgement: {problem}")))
        }
        Err(NotAcknowledged::Store(error)) => Err(error.into()),
    }
}
