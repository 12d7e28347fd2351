//! The silences page: the silences kept, a form to make one (pre-filled
//! from an incident's or a host's "Silence" link), and a button to end one
//! now (docs/notifications.md).

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Nav, PageContext, PageError, PageQuery, format};
use crate::service::{Refused, Service};
use crate::silence::{Matchers, NewSilence, Silence, State as SilenceState};

/// What the form is pre-filled with, and what it sends.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct SilenceForm {
    rule: String,
    host: String,
    severity: String,
    /// `NAME=VALUE`.
    label: String,
    duration: String,
    comment: String,
    created_by: String,
}

impl SilenceForm {
    fn silence(&self) -> Result<NewSilence, String> {
        let given = |text: &str| Some(text.trim().to_string()).filter(|text| !text.is_empty());
        let mut matchers = Matchers {
            rule: given(&self.rule),
            host: given(&self.host),
            severity: given(&self.severity),
            ..Default::default()
        };
        if let Some(label) = given(&self.label) {
            let Some((name, value)) = label.split_once('=') else {
                return Err(format!("label {label:?}: expected NAME=VALUE"));
            };
            matchers
                .labels
                .insert(name.trim().to_string(), value.trim().to_string());
        }
        Ok(NewSilence {
            matchers,
            starts_at: None,
            ends_at: None,
            duration: Some(given(&self.duration).unwrap_or_else(|| "2h".to_string())),
            comment: self.comment.trim().to_string(),
            created_by: self.created_by.trim().to_string(),
        })
    }
}

/// `GET /silences`.
pub(super) async fn page(
    State(service): State<Arc<Service>>,
    PageQuery(form): PageQuery<SilenceForm>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| {
            let now = context.service.now();
            let silences = context.service.silences().map_err(PageError::from)?;
            Ok(context.render(
                "Silences",
                Nav::Silences,
                None,
                content(&form, &silences, now),
            ))
        })
        .await
}

fn content(form: &SilenceForm, silences: &[Silence], now: crate::duration::Millis) -> Markup {
    let duration = if form.duration.is_empty() {
        "2h"
    } else {
        &form.duration
    };
    html! {
        p.note {
            "While a silence matches an incident, the incident is recorded and shown, but no hook "
            "or target is called for it; what it held is sent when it ends if the incident is still "
            "open. Values are exact, or globs with " code { "*" } " (" code { "web-*" } ")."
        }
        form.silence method="post" action="/silences" {
            label { "Rule " input type="text" name="rule" value=(form.rule) placeholder="any"; }
            label { "Host " input type="text" name="host" value=(form.host) placeholder="any"; }
            label { "Severity " input type="text" name="severity" value=(form.severity) placeholder="any"; }
            label { "Label " input type="text" name="label" value=(form.label) placeholder="NAME=VALUE"; }
            label { "For " input type="text" name="duration" value=(duration) size="6"; }
            label { "Comment " input type="text" name="comment" value=(form.comment); }
            label { "By " input type="text" name="created_by" value=(form.created_by); }
            button type="submit" { "Silence" }
        }
        section {
            h2 { "Silences " span.count { (silences.len()) } }
            @if silences.is_empty() {
                p.empty { "No silence." }
            } @else {
                div.scroll {
                    table.cards #silences {
                        thead { tr { th { "State" } th { "Matches" } th { "Until" } th { "Comment" } th { "By" } th { "" } } }
                        tbody {
                            @for silence in silences {
                                @let state = silence.state(now);
                                tr id=(silence.id) {
                                    td data-label="State" { (match state {
                                        SilenceState::Active => "active",
                                        SilenceState::Pending => "to come",
                                        SilenceState::Expired => "ended",
                                    }) }
                                    td data-label="Matches" { code { (serde_json::to_string(&silence.matchers).unwrap_or_default()) } }
                                    td.time data-label="Until" { (format::time(silence.ends_at)) " UTC" }
                                    td data-label="Comment" { (silence.comment) }
                                    td data-label="By" { (silence.created_by) }
                                    td {
                                        @if state != SilenceState::Expired {
                                            form method="post" action={ "/silences/" (silence.id) "/expire" } {
                                                button type="submit" { "End now" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /silences`: the form's silence, from now.
pub(super) async fn add(
    State(service): State<Arc<Service>>,
    Form(form): Form<SilenceForm>,
) -> Response {
    let context = PageContext::new(service.clone());
    let asked = match form.silence() {
        Ok(asked) => asked,
        Err(problem) => return context.error(PageError::bad_request(problem)),
    };
    match tokio::task::spawn_blocking(move || service.add_silence(asked)).await {
        Ok(Ok(silence)) => Redirect::to(&format!("/silences#{}", silence.id)).into_response(),
        Ok(Err(Refused::Invalid(problem))) => context.error(PageError::bad_request(format!(
            "The silence was not made: {problem}."
        ))),
        Ok(Err(Refused::Store(error))) => context.error(PageError::from(error)),
        Err(error) => context.error(PageError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: error.to_string(),
        }),
    }
}

/// `POST /silences/{id}/expire`.
pub(super) async fn expire(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Response {
    let context = PageContext::new(service.clone());
    let asked = id.clone();
    match tokio::task::spawn_blocking(move || service.expire_silence(&asked)).await {
        Ok(Ok(Some(_))) => Redirect::to("/silences").into_response(),
        Ok(Ok(None)) => context.error(PageError {
            status: axum::http::StatusCode::NOT_FOUND,
            message: format!("There is no silence {id:?}."),
        }),
        Ok(Err(error)) => context.error(PageError::from(error)),
        Err(error) => context.error(PageError {
            status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            message: error.to_string(),
        }),
    }
}
