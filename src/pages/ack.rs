//! `/ack/{id}`: the acknowledgement link of a message (Slack), which works
//! without signing in while it has not expired and, when the server has a
//! token, only as signed ([`crate::notify::ack_signature`]). Opening it
//! shows the incident and a button; only the button (a POST) acknowledges,
//! so that a chat's link preview does not.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::{Nav, PageContext, PageError, PageQuery};
use crate::notify::ack_signature;
use crate::service::{NotAcknowledged, Service};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Link {
    expires: i64,
    sig: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Who {
    by: String,
}

/// Why the link does not work, if it does not.
fn refused(service: &Service, id: &str, link: &Link) -> Option<PageError> {
    if link.expires < service.now() {
        return Some(PageError {
            status: StatusCode::GONE,
            message: "This acknowledgement link has expired: sign in and acknowledge the \
                      incident from its page."
                .to_string(),
        });
    }
    let expected = ack_signature(service.token(), id, link.expires);
    if !crate::auth::same_secret(link.sig.as_bytes(), expected.as_bytes()) {
        return Some(PageError {
            status: StatusCode::FORBIDDEN,
            message: "This acknowledgement link is not one alertd signed.".to_string(),
        });
    }
    None
}

/// `GET /ack/{id}`: the incident, and a button.
pub(super) async fn confirm(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    PageQuery(link): PageQuery<Link>,
) -> Response {
    let context = PageContext::new(service.clone());
    if let Some(error) = refused(&service, &id, &link) {
        return context.error(error);
    }
    let asked = id.clone();
    let found = tokio::task::spawn_blocking(move || service.queries().incident(&asked)).await;
    let view = match found {
        Ok(Ok(Some(view))) => view,
        Ok(Ok(None)) => {
            return context.error(PageError {
                status: StatusCode::NOT_FOUND,
                message: format!("There is no incident {id:?}."),
            });
        }
        Ok(Err(error)) => return context.error(PageError::from(error)),
        Err(error) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
        }
    };
    let incident = &view.incident;
    let action = format!(
        "/ack/{id}?{}",
        serde_urlencoded::to_string([("expires", link.expires.to_string()), ("sig", link.sig)])
            .unwrap_or_default()
    );
    let content = html! {
        p { (incident.rule_name) " on " (incident.host_name) ", "
            @if incident.is_open() { "open" } @else { "resolved" } "." }
        @if let Some(ack) = &view.acknowledged {
            p { "Acknowledged already by " b { (ack.by) } "." }
        } @else if incident.is_open() {
            form method="post" action=(action) {
                label { "Your name " input type="text" name="by" required size="16"; }
                " "
                button type="submit" { "Acknowledge" }
            }
        }
    };
    context
        .render("Acknowledge an incident", Nav::None, None, content)
        .into_response()
}

/// `POST /ack/{id}`: acknowledges, as the link allows.
pub(super) async fn acknowledge(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    PageQuery(link): PageQuery<Link>,
    Form(who): Form<Who>,
) -> Response {
    let context = PageContext::new(service.clone());
    if let Some(error) = refused(&service, &id, &link) {
        return context.error(error);
    }
    let asked = id.clone();
    let done = tokio::task::spawn_blocking(move || {
        service.acknowledge(&asked, &who.by, "through a message's link")
    })
    .await;
    match done {
        Ok(Ok(ack)) => context
            .render(
                "Acknowledged",
                Nav::None,
                None,
                html! { p { "Acknowledged by " b { (ack.by) } ": its reminders stop." } },
            )
            .into_response(),
        Ok(Err(NotAcknowledged::Unknown)) => context.error(PageError {
            status: StatusCode::NOT_FOUND,
            message: format!("There is no incident {id:?}."),
        }),
        Ok(Err(NotAcknowledged::Resolved)) => context.error(PageError::bad_request(
            "This incident is resolved: there is nothing to acknowledge.",
        )),
        Ok(Err(NotAcknowledged::Invalid(problem))) => context.error(PageError::bad_request(
            format!("Not acknowledged: {problem}."),
        )),
        Ok(Err(NotAcknowledged::Store(error))) => context.error(PageError::from(error)),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
