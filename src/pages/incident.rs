//! An incident's page: its facts, its rule's chart around it, its hook calls
//! per delivery and what still waits, with a button to try again what was
//! given up on.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::chart::{self, Colour};
use super::{Nav, PageContext, PageError, badge, condition, figure, format, host_link};
use crate::config::Rule;
use crate::duration::Millis;
use crate::incident::Incident;
use crate::service::Service;
use crate::store::HookCall;

/// `GET /incidents/{id}`: an incident, its hook calls and what still waits.
pub(super) async fn detail(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| {
            let service = &context.service;
            let detail = service.queries().incident(&id)?.ok_or_else(|| PageError {
                status: StatusCode::NOT_FOUND,
                message: format!("There is no incident {id:?}: it may have been deleted after the retention period."),
            })?;
            let incident = &detail.incident;
            let rules = service.read_config(|config| config.alerting.rules.clone());
            let index = rules.iter().position(|rule| rule.name == *incident.rule_name);
            let rule = index.map(|index| &rules[index]);
            let now = service.now();
            let chart = match rule {
                Some(rule) => Some(incident_chart(service, rule, incident, now)?),
                None => None,
            };
            let deliveries = deliveries(&detail.hook_calls);
            let content = html! {
                dl.facts {
                    dt { "Rule" } dd { @match index {
                        Some(index) => a href={ "/rules#" (super::rule_anchor(index)) } { (incident.rule_name) },
                        None => (incident.rule_name),
                    } }
                    dt { "Host" } dd { (host_link(&incident.host_name, None)) }
                    dt { "State" } dd {
                        @if incident.is_open() { (badge("firing")) } @else { (badge("resolved")) }
                        " "
                        a href={ "/silences?" (serde_urlencoded::to_string([("rule", &*incident.rule_name), ("host", &*incident.host_name)]).unwrap_or_default()) } {
                            "Silence this rule on this host"
                        }
                    }
                    dt { "Acknowledged" } dd {
                        @if let Some(ack) = &detail.acknowledged {
                            "by " b { (ack.by) } " at " (format::time(ack.at)) " UTC"
                            @if !ack.comment.is_empty() { ": " (ack.comment) }
                        } @else if incident.is_open() {
                            form.inline method="post" action={ "/incidents/" (incident.id) "/ack" } {
                                input type="text" name="by" placeholder="your name" required size="12";
                                " "
                                input type="text" name="comment" placeholder="comment" size="16";
                                " "
                                button type="submit" { "Acknowledge" }
                            }
                        } @else {
                            "no"
                        }
                    }
                    dt { "Hooks" } dd {
                        (super::incidents::delivery_badge(delivery_state(&detail.pending_hooks)))
                        @if detail.pending_hooks.iter().any(|delivery| delivery.dead) {
                            " given up: on-call was not paged by every hook (below: try again)"
                        } @else if let Some(silences) = detail.pending_hooks.iter().find_map(|delivery| delivery.held_by.as_deref()) {
                            " held back by silence " code { (silences) } " (below)"
                        }
                    }
                    dt { "Start" } dd { (format::time(incident.start_time)) " UTC" }
                    dt { "End" } dd { @match incident.end_time { Some(end) => { (format::time(end)) " UTC" }, None => "open" } }
                    dt { "Duration" } dd { (format::span(incident.end_time.unwrap_or(now) - incident.start_time)) }
                    dt { "Trigger value" } dd {
                        @if incident.opened_on_no_data() { "no data (the rule opens on an empty window)" }
                        @else if let Some(rule) = rule { (format::against(incident.trigger_value, rule)) " (exactly " (incident.trigger_value) ")" }
                        @else { (incident.trigger_value) }
                    }
                    @if let Some(details) = &incident.details {
                        @if let Some(severity) = &details.severity {
                            dt { "Severity" } dd { (super::incidents::severity_badge(severity)) }
                        }
                        @if let Some(description) = &details.description {
                            dt { "Description" } dd { (description) }
                        }
                        @if !details.labels.is_empty() {
                            dt { "Labels" } dd { @for (name, value) in &details.labels { code { (name) "=" (value) } " " } }
                        }
                        @if let Some(since) = details.pending_since {
                            dt { "Pending since" } dd { (format::time(since)) " UTC (its condition held from then on)" }
                        }
                    }
                    dt { "Condition" } dd { @match rule { Some(rule) => code { (condition(rule)) }, None => "the rule is no longer configured" } }
                    dt { "Id" } dd { code { (incident.id) } }
                }
                @if let Some(chart) = chart { (chart) }
                section {
                    h2 { "Hook calls " span.count { (detail.hook_calls.len()) } }
                    div.scroll {
                        table.cards #hook-calls {
                            thead { tr { th { "Hook" } th { "Event" } th.num { "Attempts" } th { "Last outcome" } th { "Last started" } th.num { "Took" } th { "Output" } } }
                            tbody {
                                @for attempts in &deliveries {
                                    @let last = attempts[attempts.len() - 1];
                                    tr {
                                        td data-label="Hook" { code { (last.target) } }
                                        td data-label="Event" { (last.kind.as_str()) }
                                        td.num data-label="Attempts" { (attempts.len()) }
                                        td data-label="Last outcome" { span.outcome { (badge(if last.succeeded { "ok" } else { "failed" })) " " (last.outcome) } }
                                        td.time data-label="Last started" { (format::time(last.started)) }
                                        td.num data-label="Took" { (format::span(last.duration_ms as i64)) }
                                        td.output data-label="Output" {
                                            @if !last.stdout.is_empty() { pre { (last.stdout) } }
                                            @if !last.stderr.is_empty() { pre.stderr { (last.stderr) } }
                                            @if attempts.len() > 1 {
                                                details.attempts {
                                                    summary { "All " (attempts.len()) " attempts" }
                                                    ol {
                                                        @for call in attempts {
                                                            li {
                                                                (format::time(call.started)) ": " (call.outcome) " (" (format::span(call.duration_ms as i64)) ")"
                                                                @if !call.stderr.is_empty() { pre.stderr { (call.stderr) } }
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                @if detail.hook_calls.is_empty() {
                                    tr.empty { td colspan="7" { "No hook has been called for this incident." } }
                                }
                            }
                        }
                    }
                }
                @if !detail.pending_hooks.is_empty() {
                    section {
                        h2 { "Waiting hook calls " span.count { (detail.pending_hooks.len()) } }
                        div.scroll {
                            table.cards #pending-hooks {
                                thead { tr { th { "Hook" } th { "Event" } th.num { "Failed attempts" } th { "Waits for" } } }
                                tbody {
                                    @for (position, delivery) in detail.pending_hooks.iter().enumerate() {
                                        @let ahead = detail.pending_hooks[..position].iter().find(|earlier| earlier.target == delivery.target);
                                        tr {
                                            td data-label="Hook" { code { (delivery.target) } }
                                            td data-label="Event" { (delivery.event) }
                                            td.num data-label="Failed attempts" { (delivery.failed_attempts) }
                                            @if delivery.dead {
                                                td data-label="Waits for" { b { "nothing: given up" } " after " (delivery.failed_attempts) " attempt" @if delivery.failed_attempts != 1 { "s" } }
                                            } @else if let Some(ahead) = ahead {
                                                td data-label="Waits for" { "the " (ahead.event) " call to this hook, first" }
                                            } @else if let Some(silences) = delivery.held_by.as_deref().filter(|_| delivery.next_attempt > now) {
                                                td.time data-label="Waits for" { "silence " code { (silences) } " to end (looked at again " (format::time(delivery.next_attempt)) " UTC)" }
                                            } @else {
                                                td.time data-label="Waits for" { "its next attempt, " (format::time(delivery.next_attempt)) " UTC" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if detail.pending_hooks.iter().any(|delivery| delivery.dead) {
                            form method="post" action=(format!("/incidents/{}/retry", incident.id)) {
                                button type="submit" { "Try the given-up calls again" }
                            }
                        }
                    }
                }
                p { a href="/" { "« All incidents" } }
            };
            let title = format!("Incident: {} on {}", incident.rule_name, incident.host_name);
            Ok(context.render(&title, Nav::Incidents, None, content))
        })
        .await
}

/// The calls of each delivery (one hook, one event), in the order of their
/// first attempt; each delivery's attempts oldest first.
fn deliveries(calls: &[HookCall]) -> Vec<Vec<&HookCall>> {
    let mut deliveries: Vec<Vec<&HookCall>> = Vec::new();
    for call in calls {
        match deliveries
            .iter_mut()
            .find(|attempts| attempts[0].target == call.target && attempts[0].kind == call.kind)
        {
            Some(attempts) => attempts.push(call),
            None => deliveries.push(vec![call]),
        }
    }
    deliveries
}

/// The rule's aggregate on the incident's host over the incident's own span
/// (and as much again before and after, at least a timeframe), threshold drawn.
fn incident_chart(
    service: &Service,
    rule: &Rule,
    incident: &Incident,
    now: Millis,
) -> Result<Markup, PageError> {
    let end = incident.end_time.unwrap_or(now);
    let margin = (end - incident.start_time).max(rule.timeframe).max(60_000);
    let (from, to) = (
        incident.start_time - margin,
        (end + margin).min(now.max(end)),
    );
    let step = ((to - from) / 150).max(1000) / 1000 * 1000;
    let hosts: BTreeMap<&str, Vec<usize>> = [(&*incident.host_name, vec![0])].into();
    let history =
        service
            .queries()
            .rule_history(std::slice::from_ref(rule), (from, to), step, &hosts)?;
    let chart = chart::TimeChart {
        from,
        to,
        step,
        width: chart::WIDE,
        height: 220,
        top: None,
        unit: format::unit(&rule.field).trim(),
        threshold: Some(rule.threshold),
        lines: vec![chart::Line {
            colour: Colour::nth(0),
            points: history[0]
                .get(&*incident.host_name)
                .cloned()
                .unwrap_or_default(),
        }],
    };
    let caption = format!(
        "{}({}) over {} on {} around the incident, as the rule saw it at each tick; the dashed line is the threshold.",
        rule.aggregation,
        rule.field,
        crate::duration::HumanDuration(rule.timeframe),
        incident.host_name
    );
    Ok(figure(&chart, &caption))
}

/// `POST /incidents/{id}/retry`: the page's button that brings back the
/// incident's dead deliveries; back to the incident's page.
pub(super) async fn retry_dead(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Response {
    let worker = service.clone();
    let target = id.clone();
    let retried = tokio::task::spawn_blocking(move || worker.retry_dead(&target)).await;
    match retried {
        Ok(Ok(_)) => {
            let path = format!(
                "/incidents/{}",
                serde_urlencoded::to_string([("", &id)])
                    .unwrap_or_default()
                    .trim_start_matches('=')
            );
            axum::response::Redirect::to(&path).into_response()
        }
        Ok(Err(error)) => PageContext::new(service).error(super::PageError::from(error)),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// The worst state of an incident's waiting deliveries (`None`: none waits).
fn delivery_state(pending: &[crate::view::PendingView]) -> Option<crate::store::Undelivered> {
    use crate::store::Undelivered;
    pending
        .iter()
        .map(|delivery| match (delivery.dead, delivery.failed_attempts) {
            (true, _) => Undelivered::Dead,
            (false, 0) if delivery.held_by.is_some() => Undelivered::Held,
            (false, 0) => Undelivered::Waiting,
            (false, _) => Undelivered::Failing,
        })
        .max()
}

/// `POST /incidents/{id}/ack`: the form's acknowledgement.
pub(super) async fn acknowledge(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<AckForm>,
) -> Response {
    use crate::service::NotAcknowledged;
    let context = PageContext::new(service.clone());
    let asked = id.clone();
    let done =
        tokio::task::spawn_blocking(move || service.acknowledge(&asked, &form.by, &form.comment))
            .await;
    let page = format!(
        "/incidents/{}",
        serde_urlencoded::to_string([("", &id)])
            .unwrap_or_default()
            .trim_start_matches('=')
    );
    match done {
        Ok(Ok(_)) => axum::response::Redirect::to(&page).into_response(),
        Ok(Err(NotAcknowledged::Unknown)) => context.error(super::PageError {
            status: StatusCode::NOT_FOUND,
            message: format!("There is no incident {id:?}."),
        }),
        Ok(Err(NotAcknowledged::Resolved)) => context.error(super::PageError::bad_request(
            "This incident is resolved: there is nothing to acknowledge.",
        )),
        Ok(Err(NotAcknowledged::Invalid(problem))) => context.error(super::PageError::bad_request(
            format!("Not acknowledged: {problem}."),
        )),
        Ok(Err(NotAcknowledged::Store(error))) => context.error(super::PageError::from(error)),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

/// What the acknowledgement form sends.
#[derive(Debug, serde::Deserialize)]
pub(super) struct AckForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    comment: String,
}
