//! The incidents page (the home page) and an incident's detail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::PageQuery;
use super::chart::{self, Bar, Colour, Lane};
use super::{
    FRAMES, Frame, FrameParams, Nav, PageContext, PageError, badge, condition, figure, format,
    frame_selector, given, hidden_frame, href_with, legend,
};
use crate::incident::Incident;
use crate::service::Service;

/// Resolved incidents per page.
const PAGE_SIZE: usize = 50;
/// The most hosts the timeline draws.
const TIMELINE_HOSTS: usize = 40;
/// Seconds between reloads with auto-refresh on.
const REFRESH_SECONDS: u32 = 10;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct IncidentsParams {
    #[serde(flatten)]
    frame: FrameParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// The page of resolved incidents, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// `on` to reload the page every few seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
}

impl IncidentsParams {
    fn with(&self, change: impl FnOnce(&mut Self)) -> String {
        href_with("/", self, change)
    }

    fn refreshing(&self) -> bool {
        given(&self.refresh) == Some("on")
    }
}

pub(super) async fn page(
    State(service): State<Arc<Service>>,
    PageQuery(params): PageQuery<IncidentsParams>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| render(context, &params))
        .await
}

fn render(context: &PageContext, params: &IncidentsParams) -> Result<Html<String>, PageError> {
    let service = &context.service;
    let frame = params.frame.resolve(service.now(), &FRAMES)?;
    let page: usize = match given(&params.page) {
        None => 1,
        Some(text) => text.parse().ok().filter(|page| *page > 0).ok_or_else(|| {
            PageError::bad_request(format!("Page {text:?}: expected a number from 1."))
        })?,
    };
    let incidents = service.store().incidents(frame.from, frame.to)?;
    let known_hosts = service.store().hosts()?;
    // The configured rules first; the incidents may add removed ones below.
    let mut rule_names: Vec<String> = service.read_config(|config| {
        config
            .alerting
            .rules
            .iter()
            .map(|r| r.name.clone())
            .collect()
    });
    let now = service.now();

    let rule_filter = given(&params.rule);
    let host_filter = given(&params.host);
    let shown = |incident: &&Incident| {
        rule_filter.is_none_or(|rule| *incident.rule_name == *rule)
            && host_filter.is_none_or(|host| *incident.host_name == *host)
    };
    let active: Vec<&Incident> = incidents.active.iter().filter(shown).collect();
    let mut resolved: Vec<&Incident> = incidents.resolved.iter().filter(shown).collect();
    // The latest first: what an operator looks for.
    resolved.sort_by(|a, b| b.end_time.cmp(&a.end_time).then_with(|| b.id.cmp(&a.id)));
    let pages = resolved.len().div_ceil(PAGE_SIZE).max(1);
    let page = page.min(pages);
    let on_page = &resolved[(page - 1) * PAGE_SIZE..(page * PAGE_SIZE).min(resolved.len())];

    // Every rule and host worth filtering by.
    for incident in incidents.active.iter().chain(&incidents.resolved) {
        if !rule_names.iter().any(|name| **name == *incident.rule_name) {
            rule_names.push(incident.rule_name.to_string());
        }
    }
    let host_names: BTreeSet<&str> = known_hosts
        .iter()
        .map(|seen| seen.host.as_str())
        .chain(
            incidents
                .active
                .iter()
                .chain(&incidents.resolved)
                .map(|i| &*i.host_name),
        )
        .collect();

    let content = html! {
        div.toolbar {
            (frame_selector("/", &frame, &FRAMES, params, |p, f| { p.frame = f; p.page = None; }, &[
                ("rule", rule_filter), ("host", host_filter), ("refresh", given(&params.refresh)),
            ]))
            form.filters method="get" action="/" {
                (hidden_frame(&params.frame))
                @if params.refreshing() { input type="hidden" name="refresh" value="on"; }
                label { "Rule "
                    select name="rule" {
                        option value="" { "All rules" }
                        @for name in &rule_names {
                            option value=(name) selected[rule_filter == Some(name.as_str())] { (name) }
                        }
                    }
                }
                label { "Host "
                    select name="host" {
                        option value="" { "All hosts" }
                        @for name in &host_names {
                            option value=(name) selected[host_filter == Some(*name)] { (name) }
                        }
                    }
                }
                button type="submit" { "Filter" }
                @if rule_filter.is_some() || host_filter.is_some() {
                    a href=(params.with(|p| { p.rule = None; p.host = None; p.page = None; })) { "Clear" }
                }
            }
            a.toggle href=(params.with(|p| p.refresh = (!params.refreshing()).then(|| "on".to_string())))
                role="switch" aria-checked=(params.refreshing()) {
                "Auto-refresh " b { @if params.refreshing() { "on" } @else { "off" } }
            }
        }
        p.range { "From " (format::time(frame.from)) " to " (format::time(frame.to)) " UTC" }

        section {
            h2 { "Active incidents " span.count { (active.len()) } }
            (incident_table(&active, now, "No active incident.", "table-active"))
        }

        section {
            h2 { "Timeline" }
            (timeline(&frame, &active, &resolved, &rule_names, now))
        }

        section {
            h2 { "Resolved incidents " span.count { (format::count(resolved.len())) } }
            (incident_table(on_page, now, "No incident resolved in this time frame.", "table-resolved"))
            @if pages > 1 {
                nav.pager aria-label="Resolved incidents pages" {
                    @if page > 1 {
                        a href=(params.with(|p| p.page = None)) { "« First" }
                        a href=(params.with(|p| p.page = Some((page - 1).to_string()))) rel="prev" { "‹ Previous" }
                    }
                    span { "Page " (page) " of " (pages) }
                    @if page < pages {
                        a href=(params.with(|p| p.page = Some((page + 1).to_string()))) rel="next" { "Next ›" }
                        a href=(params.with(|p| p.page = Some(pages.to_string()))) { "Last »" }
                    }
                    form method="get" action="/" {
                        (hidden_frame(&params.frame))
                        @if let Some(rule) = rule_filter { input type="hidden" name="rule" value=(rule); }
                        @if let Some(host) = host_filter { input type="hidden" name="host" value=(host); }
                        @if params.refreshing() { input type="hidden" name="refresh" value="on"; }
                        label { "Go to " input type="number" name="page" min="1" max=(pages) value=(page) ; }
                        button type="submit" { "Go" }
                    }
                }
            }
        }
    };
    let refresh = params.refreshing().then_some(REFRESH_SECONDS);
    Ok(context.render("Incidents", Nav::Incidents, refresh, content))
}

fn incident_table(incidents: &[&Incident], now: i64, empty: &str, id: &str) -> Markup {
    html! {
        div.scroll {
            table id=(id) {
                thead { tr {
                    th { "Rule" } th { "Host" } th { "Start" } th { "End" }
                    th.num { "Duration" } th.num { "Trigger value" }
                } }
                tbody {
                    @for incident in incidents {
                        tr {
                            td { a href={ "/incidents/" (incident.id) } { (incident.rule_name) } }
                            td { (incident.host_name) }
                            td.time { (format::time(incident.start_time)) }
                            td.time { @match incident.end_time {
                                Some(end) => (format::time(end)),
                                None => (badge("firing")),
                            } }
                            td.num { (format::span(incident.end_time.unwrap_or(now) - incident.start_time)) }
                            td.num title=(incident.trigger_value) { (format::value(incident.trigger_value)) }
                        }
                    }
                    @if incidents.is_empty() {
                        tr.empty { td colspan="6" { (empty) } }
                    }
                }
            }
        }
    }
}

/// A lane per host with an incident in the frame, a colour per rule.
fn timeline(
    frame: &Frame,
    active: &[&Incident],
    resolved: &[&Incident],
    rule_names: &[String],
    now: i64,
) -> Markup {
    let mut by_host: BTreeMap<&str, Vec<&Incident>> = BTreeMap::new();
    for incident in active.iter().chain(resolved) {
        if incident.start_time <= frame.to {
            by_host
                .entry(&incident.host_name)
                .or_default()
                .push(incident);
        }
    }
    if by_host.is_empty() {
        return html! { p.empty { "No incident in this time frame." } };
    }
    let colour =
        |rule: &str| Colour::nth(rule_names.iter().position(|name| name == rule).unwrap_or(0));
    let total = by_host.len();
    let lanes: Vec<Lane> = by_host
        .into_iter()
        .take(TIMELINE_HOSTS)
        .map(|(host, incidents)| Lane {
            label: host.to_string(),
            bars: incidents
                .iter()
                .map(|incident| Bar {
                    start: incident.start_time,
                    end: incident.end_time.unwrap_or(now),
                    colour: colour(&incident.rule_name),
                })
                .collect(),
        })
        .collect();
    let used: BTreeSet<&str> = active
        .iter()
        .chain(resolved)
        .map(|i| &*i.rule_name)
        .collect();
    let caption = if total > TIMELINE_HOSTS {
        format!(
            "When each incident was open, per host: the first {TIMELINE_HOSTS} of {total} hosts (filter by host to see others)."
        )
    } else {
        "When each incident was open, per host.".to_string()
    };
    html! {
        (figure(chart::timeline(frame.from, frame.to, &lanes), &caption))
        (legend(rule_names.iter().filter(|name| used.contains(name.as_str())).map(|name| (name.as_str(), colour(name)))))
    }
}

/// `GET /incidents/{id}`: an incident, its hook calls and what still waits.
pub(super) async fn detail(
    State(service): State<Arc<Service>>,
    Path(id): Path<String>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| {
            let service = &context.service;
            let detail = service.store().incident(&id)?.ok_or_else(|| PageError {
                status: StatusCode::NOT_FOUND,
                message: format!("There is no incident {id:?}: it may have been deleted after the retention period."),
            })?;
            let incident = &detail.incident;
            let rule = service.read_config(|config| {
                config
                    .alerting
                    .rules
                    .iter()
                    .find(|rule| rule.name == *incident.rule_name)
                    .map(condition)
            });
            let now = service.now();
            let content = html! {
                dl.facts {
                    dt { "Rule" } dd { (incident.rule_name) }
                    dt { "Host" } dd { (incident.host_name) }
                    dt { "State" } dd { @if incident.is_open() { (badge("firing")) } @else { (badge("resolved")) } }
                    dt { "Start" } dd { (format::time(incident.start_time)) " UTC" }
                    dt { "End" } dd { @match incident.end_time { Some(end) => { (format::time(end)) " UTC" }, None => "open" } }
                    dt { "Duration" } dd { (format::span(incident.end_time.unwrap_or(now) - incident.start_time)) }
                    dt { "Trigger value" } dd { (incident.trigger_value) }
                    dt { "Condition" } dd { @match &rule { Some(rule) => code { (rule) }, None => "the rule is no longer configured" } }
                    dt { "Id" } dd { code { (incident.id) } }
                }
                section {
                    h2 { "Hook calls " span.count { (detail.calls.len()) } }
                    div.scroll {
                        table #hook-calls {
                            thead { tr { th { "Started" } th { "Hook" } th { "Event" } th.num { "Attempt" } th { "Outcome" } th.num { "Took" } th { "Output" } } }
                            tbody {
                                @for call in &detail.calls {
                                    tr {
                                        td.time { (format::time(call.started)) }
                                        td { code { (call.target) } }
                                        td { (call.kind.as_str()) }
                                        td.num { (call.attempt) }
                                        td { (badge(if call.succeeded { "ok" } else { "failed" })) " " (call.outcome) }
                                        td.num { (format::span(call.duration_ms as i64)) }
                                        td {
                                            @if !call.stdout.is_empty() { pre { (call.stdout) } }
                                            @if !call.stderr.is_empty() { pre.stderr { (call.stderr) } }
                                        }
                                    }
                                }
                                @if detail.calls.is_empty() {
                                    tr.empty { td colspan="7" { "No hook has been called for this incident." } }
                                }
                            }
                        }
                    }
                }
                @if !detail.pending.is_empty() {
                    section {
                        h2 { "Waiting hook calls " span.count { (detail.pending.len()) } }
                        div.scroll {
                            table #pending-hooks {
                                thead { tr { th { "Hook" } th { "Event" } th.num { "Failed attempts" } th { "Next attempt" } } }
                                tbody {
                                    @for delivery in &detail.pending {
                                        tr {
                                            td { code { (delivery.target) } }
                                            td { (delivery.kind.as_str()) }
                                            td.num { (delivery.attempts) }
                                            @if delivery.dead {
                                                td { b { "given up" } }
                                            } @else {
                                                td.time { (format::time(delivery.next_attempt)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if detail.pending.iter().any(|delivery| delivery.dead) {
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
