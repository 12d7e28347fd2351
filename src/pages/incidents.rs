//! The incidents page (the home page) and an incident's detail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::PageQuery;
use super::chart::Colour;
use super::timeline::{self, Bar, Lane};
use super::{
    FRAMES, Frame, FrameParams, Nav, PageContext, PageError, Pages, REFRESH_SECONDS, badge, format,
    frame_selector, given, hidden_frame, host_link, href_with, legend, page_number, refresh_toggle,
};
use crate::config::Rule;
use crate::duration::Millis;
use crate::incident::Incident;
use crate::service::Service;
use crate::store::Undelivered;

/// Resolved incidents per page, unless the address chooses one of [`PAGE_SIZES`].
const PAGE_SIZE: usize = 50;
const PAGE_SIZES: [usize; 4] = [25, 50, 100, 200];
/// The severity filter's value for incidents without a severity.
const NO_SEVERITY: &str = "none";
/// The most hosts the timeline draws.
const TIMELINE_HOSTS: usize = 40;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct IncidentsParams {
    #[serde(flatten)]
    frame: FrameParams,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Only the incidents of this severity (`none`: those without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    /// The page of resolved incidents, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// The page of active incidents, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    /// `on` to reload the page every few seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    /// Incidents per page (in each list): one of [`PAGE_SIZES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<String>,
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
    let page: usize = page_number(given(&params.page))?;
    let active_page: usize = page_number(given(&params.active))?;
    let page_size = match given(&params.size) {
        None => PAGE_SIZE,
        Some(text) => text
            .parse()
            .ok()
            .filter(|size| PAGE_SIZES.contains(size))
            .ok_or_else(|| {
                PageError::bad_request(format!(
                    "Page size {text:?}: expected one of 25, 50, 100 or 200."
                ))
            })?,
    };
    let queries = service.queries();
    let incidents = queries.incidents(frame.from, frame.to)?;
    let known_hosts = queries.hosts()?.hosts;
    let undelivered = queries.undelivered()?;
    let rules = service.read_config(|config| config.alerting.rules.clone());
    // The configured rules first; the incidents may add removed ones below.
    let mut rule_names: Vec<String> = rules.iter().map(|rule| rule.name.clone()).collect();
    let now = service.now();

    let rule_filter = given(&params.rule);
    let host_filter = given(&params.host);
    let severity_filter = given(&params.severity);
    let shown = |incident: &&Incident| {
        rule_filter.is_none_or(|rule| *incident.rule_name == *rule)
            && host_filter.is_none_or(|host| *incident.host_name == *host)
            && severity_filter
                .is_none_or(|severity| incident.severity().unwrap_or(NO_SEVERITY) == severity)
    };
    let mut active: Vec<&Incident> = incidents.active.iter().filter(shown).collect();
    // The newest first, as for the resolved ones.
    active.sort_by(|a, b| {
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| b.id.cmp(&a.id))
    });
    let mut resolved: Vec<&Incident> = incidents.resolved.iter().filter(shown).collect();
    // The latest first: what an operator looks for.
    resolved.sort_by(|a, b| b.end_time.cmp(&a.end_time).then_with(|| b.id.cmp(&a.id)));
    let resolved_pages = Pages::of(resolved.len(), page, page_size);
    let on_page = resolved_pages.slice(&resolved);
    let active_pages = Pages::of(active.len(), active_page, page_size);
    let active_on_page = active_pages.slice(&active);

    // Every rule and host worth filtering by.
    for incident in incidents.active.iter().chain(&incidents.resolved) {
        if !rule_names.iter().any(|name| **name == *incident.rule_name) {
            rule_names.push(incident.rule_name.to_string());
        }
    }
    // Every severity the rules give or the incidents carry.
    let severities: BTreeSet<&str> = rules
        .iter()
        .filter_map(|rule| rule.options.severity.as_deref())
        .chain(
            incidents
                .active
                .iter()
                .chain(&incidents.resolved)
                .filter_map(Incident::severity),
        )
        .collect();
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

    let listing = Listing {
        rules: &rules,
        undelivered: &undelivered,
        frame: frame.preset,
        now,
    };
    let content = html! {
        div.toolbar {
            (frame_selector("/", &frame, &FRAMES, params, |p, f| { p.frame = f; p.page = None; p.active = None; }, &[
                ("rule", rule_filter), ("host", host_filter), ("severity", severity_filter),
                ("refresh", given(&params.refresh)), ("size", given(&params.size)),
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
                @if !severities.is_empty() || severity_filter.is_some() {
                    label { "Severity "
                        select name="severity" {
                            option value="" { "All severities" }
                            @for name in &severities {
                                option value=(name) selected[severity_filter == Some(*name)] { (name) }
                            }
                            option value=(NO_SEVERITY) selected[severity_filter == Some(NO_SEVERITY)] { "none" }
                        }
                    }
                }
                button type="submit" { "Filter" }
                @if rule_filter.is_some() || host_filter.is_some() || severity_filter.is_some() {
                    a href=(params.with(|p| { p.rule = None; p.host = None; p.severity = None; p.page = None; p.active = None; })) { "Clear" }
                }
            }
            (refresh_toggle(params.refreshing(), params.with(|p| p.refresh = (!params.refreshing()).then(|| "on".to_string()))))
        }
        p.range { "From " (format::time(frame.from)) " to " (format::time(frame.to)) " UTC" }

        section {
            h2 { "Active incidents " span.count { (format::count(active.len())) } }
            (listing.table(active_on_page, "No active incident.", "table-active"))
            (pager(params, "Active incidents pages", &active_pages, List::Active))
        }

        section {
            h2 { "Timeline" }
            (timeline(&frame, &active, &resolved, &rule_names, &listing))
        }

        section {
            h2 { "Resolved incidents " span.count { (format::count(resolved.len())) } }
            (listing.table(on_page, "No incident resolved in this time frame.", "table-resolved"))
            (pager(params, "Resolved incidents pages", &resolved_pages, List::Resolved))
        }
    };
    let refresh = params.refreshing().then_some(REFRESH_SECONDS);
    Ok(context.render("Incidents", Nav::Incidents, refresh, content))
}

/// Which list a pager turns the pages of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Active,
    Resolved,
}

impl List {
    /// The address parameter that holds this list's page.
    fn name(self) -> &'static str {
        match self {
            List::Active => "active",
            List::Resolved => "page",
        }
    }

    fn set(self, params: &mut IncidentsParams, page: usize) {
        let page = (page > 1).then(|| page.to_string());
        match self {
            List::Active => params.active = page,
            List::Resolved => params.page = page,
        }
    }
}

/// Links to a list's other pages, a "go to" field and the page sizes; nothing
/// for a list that fits the smallest page.
fn pager(params: &IncidentsParams, label: &str, shown: &Pages, list: List) -> Markup {
    let Pages { page, pages, .. } = *shown;
    let other = match list {
        List::Active => ("page", given(&params.page)),
        List::Resolved => ("active", given(&params.active)),
    };
    html! {
        @if shown.total > PAGE_SIZES[0] {
            nav.pager aria-label=(label) {
                @if page > 1 {
                    a href=(params.with(|p| list.set(p, 1))) { "« First" }
                    a href=(params.with(|p| list.set(p, page - 1))) rel="prev" { "‹ Previous" }
                }
                span { "Page " (page) " of " (pages) }
                @if page < pages {
                    a href=(params.with(|p| list.set(p, page + 1))) rel="next" { "Next ›" }
                    a href=(params.with(|p| list.set(p, pages))) { "Last »" }
                }
                form method="get" action="/" {
                    (hidden_frame(&params.frame))
                    @for (name, value) in [("rule", given(&params.rule)), ("host", given(&params.host)), ("refresh", given(&params.refresh)), ("size", given(&params.size)), other] {
                        @if let Some(value) = value { input type="hidden" name=(name) value=(value); }
                    }
                    label { "Go to " input type="number" name=(list.name()) min="1" max=(pages) value=(page) ; }
                    button type="submit" { "Go" }
                }
                span.sizes {
                    "Per page:"
                    @for size in PAGE_SIZES {
                        " "
                        @if size == shown.size { b aria-current="true" { (size) } }
                        @else { a href=(params.with(|p| { p.size = (size != PAGE_SIZE).then(|| size.to_string()); p.page = None; p.active = None; })) { (size) } }
                    }
                }
            }
        }
    }
}

/// What the incident lists and the timeline need to put an incident in context.
/// Whether an incident reached its hooks, as a badge: `delivered` (every
/// hook called, or none to call), `waiting` (a call not made yet),
/// `silenced` (a silence holds a call back),
/// `failing` (a call failed and will be tried again) or `not delivered`
/// (given up on: on-call was not paged).
pub(super) fn delivery_badge(state: Option<Undelivered>) -> Markup {
    let (class, text, title) = match state {
        None => (
            "ok",
            "delivered",
            "Every hook was called (or there was none to call)",
        ),
        Some(Undelivered::Waiting) => ("nodata", "waiting", "A hook call is not made yet"),
        Some(Undelivered::Held) => (
            "nodata",
            "silenced",
            "A silence holds its hook calls back: see the incident",
        ),
        Some(Undelivered::Failing) => (
            "cooldown",
            "failing",
            "A hook call failed and will be tried again: see the incident",
        ),
        Some(Undelivered::Dead) => (
            "undelivered",
            "not delivered",
            "A hook call was given up on: on-call was not paged. See the incident to try again",
        ),
    };
    html! { span class={ "badge " (class) } title=(title) { (text) } }
}

/// An incident's severity, as a badge whose class follows the usual names
/// (`critical`, `error`, `warning`, `info`; any other is shown plainly).
pub(super) fn severity_badge(severity: &str) -> Markup {
    let class = match severity.to_ascii_lowercase().as_str() {
        "critical" | "page" | "fatal" | "emergency" => "severity-critical",
        "error" | "high" | "major" => "severity-error",
        "warning" | "warn" | "medium" | "minor" => "severity-warning",
        "info" | "low" | "notice" => "severity-info",
        _ => "severity-other",
    };
    html! { span class={ "badge severity " (class) } title="Severity" { (severity) } }
}

struct Listing<'a> {
    rules: &'a [Rule],
    undelivered: &'a BTreeMap<String, Undelivered>,
    /// The page's frame preset, kept by the links to a host's monitoring.
    frame: Option<&'a str>,
    now: Millis,
}

impl Listing<'_> {
    fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.name == name)
    }

    /// The trigger value with its unit and the rule's threshold, when the
    /// rule is still configured: `440,129 KB <= 500,000 KB`.
    fn trigger(&self, incident: &Incident) -> String {
        if incident.opened_on_no_data() {
            return "no data".to_string();
        }
        match self.rule(&incident.rule_name) {
            Some(rule) => format::against(incident.trigger_value, rule),
            None => format::value(incident.trigger_value),
        }
    }

    /// `None`, or why on-call may not know: a delivery given up on, or failing.
    fn delivery_problem(&self, incident: &Incident) -> Option<&'static str> {
        match self.undelivered.get(&*incident.id)? {
            Undelivered::Dead => Some("not delivered"),
            Undelivered::Failing => Some("delivery failing"),
            Undelivered::Waiting | Undelivered::Held => None,
        }
    }

    /// Whether anyone was told: every hook called (or none to call), a call
    /// waiting, failing, or given up on.
    fn delivery(&self, incident: &Incident) -> Markup {
        delivery_badge(self.undelivered.get(&*incident.id).copied())
    }

    fn table(&self, incidents: &[&Incident], empty: &str, id: &str) -> Markup {
        html! {
            div.scroll {
                table.incidents id=(id) {
                    thead { tr {
                        th { "Rule" } th { "Host" } th { "Start" } th { "End" }
                        th.num { "Duration" } th.num { "Trigger value" } th { "Hooks" }
                    } }
                    tbody {
                        @for incident in incidents {
                            tr {
                                td data-label="Rule" {
                                    a href={ "/incidents/" (incident.id) } { (incident.rule_name) }
                                    @if let Some(severity) = incident.severity() {
                                        " " (severity_badge(severity))
                                    }
                                }
                                td data-label="Host" { (host_link(&incident.host_name, self.frame)) }
                                td.time data-label="Start" { (format::time(incident.start_time)) }
                                td.time data-label="End" { @match incident.end_time {
                                    Some(end) => (format::time(end)),
                                    None => (badge("firing")),
                                } }
                                td.num data-label="Duration" { (format::span(incident.end_time.unwrap_or(self.now) - incident.start_time)) }
                                td.num data-label="Trigger value" title=(incident.trigger_value) { (self.trigger(incident)) }
                                td data-label="Hooks" { (self.delivery(incident)) }
                            }
                        }
                        @if incidents.is_empty() {
                            tr.empty { td colspan="7" { (empty) } }
                        }
                    }
                }
            }
        }
    }

    /// An incident's tooltip on the timeline.
    fn tooltip(&self, incident: &Incident) -> String {
        let end = match incident.end_time {
            Some(end) => format!("{} UTC", format::time(end)),
            None => "now (firing)".to_string(),
        };
        let mut text = format!(
            "{} on {}: {} UTC to {}, {}; {}",
            incident.rule_name,
            incident.host_name,
            format::time(incident.start_time),
            end,
            format::span(incident.end_time.unwrap_or(self.now) - incident.start_time),
            self.trigger(incident)
        );
        if let Some(problem) = self.delivery_problem(incident) {
            text.push_str(&format!(" ({problem})"));
        }
        text
    }
}

/// A row per rule and host with an incident in the frame, a colour per rule.
fn timeline(
    frame: &Frame,
    active: &[&Incident],
    resolved: &[&Incident],
    rule_names: &[String],
    listing: &Listing,
) -> Markup {
    let mut by_pair: BTreeMap<(&str, usize), Vec<&Incident>> = BTreeMap::new();
    let rule_index = |rule: &str| rule_names.iter().position(|name| name == rule).unwrap_or(0);
    for incident in active.iter().chain(resolved) {
        if incident.start_time <= frame.to {
            by_pair
                .entry((&incident.host_name, rule_index(&incident.rule_name)))
                .or_default()
                .push(incident);
        }
    }
    if by_pair.is_empty() {
        return html! { p.empty { "No incident in this time frame." } };
    }
    // The hosts that matter first: those with an incident open now, then
    // those whose last incident ended most recently; by name among equals.
    let mut latest: BTreeMap<&str, (bool, Millis)> = BTreeMap::new();
    for ((host, _), incidents) in &by_pair {
        for incident in incidents {
            let entry = latest.entry(host).or_insert((false, Millis::MIN));
            entry.0 |= incident.is_open();
            entry.1 = entry.1.max(incident.end_time.unwrap_or(listing.now));
        }
    }
    let mut hosts: Vec<(&str, bool, Millis)> = latest
        .into_iter()
        .map(|(host, (open, last))| (host, open, last))
        .collect();
    hosts.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(b.0)));
    let left_out = hosts.len().saturating_sub(TIMELINE_HOSTS);
    let order: BTreeMap<&str, usize> = hosts
        .iter()
        .take(TIMELINE_HOSTS)
        .enumerate()
        .map(|(place, (host, ..))| (*host, place))
        .collect();
    let mut pairs: Vec<((&str, usize), Vec<&Incident>)> = by_pair
        .into_iter()
        .filter(|((host, _), _)| order.contains_key(host))
        .collect();
    pairs.sort_by_key(|((host, rule), _)| (order[host], *rule));
    let lanes: Vec<Lane> = pairs
        .into_iter()
        .map(|((host, rule), incidents)| Lane {
            host: host.to_string(),
            rule: rule_names[rule].clone(),
            colour: Colour::nth(rule),
            bars: incidents
                .iter()
                .map(|incident| Bar {
                    start: incident.start_time,
                    end: incident.end_time.unwrap_or(listing.now),
                    href: format!("/incidents/{}", incident.id),
                    title: listing.tooltip(incident),
                    undelivered: listing.delivery_problem(incident).is_some(),
                })
                .collect(),
        })
        .collect();
    let used: BTreeSet<&str> = lanes.iter().map(|lane| lane.rule.as_str()).collect();
    let mut caption = "When each incident was open: a row per rule and host. Each bar opens its incident (or, where incidents are closer than the chart can tell apart, their list); bars outlined in red did not reach every hook.".to_string();
    caption.push_str(" Hosts with an incident open now come first, then the most recent.");
    let left_out_note = (left_out > 0).then(|| {
        format!(
            "{left_out} of {} hosts, whose incidents all ended longer ago, are left out: \
             see them in the resolved incidents below, or filter by host.",
            hosts.len()
        )
    });
    // A merged bar opens the list of its incidents: a custom range around it
    // (whole minutes, as the fields take them), at most the 7 days a custom
    // range may last, on its rule and host.
    let group_href = |lane: &Lane, from: Millis, to: Millis| {
        let to = to.saturating_add(60_000);
        let from = from.max(to - FRAMES[FRAMES.len() - 1].1 + 60_000);
        let params = IncidentsParams {
            frame: FrameParams {
                frame: Some("custom".to_string()),
                from: Some(format::time_input(from)),
                to: Some(format::time_input(to)),
            },
            rule: Some(lane.rule.clone()),
            host: Some(lane.host.clone()),
            ..IncidentsParams::default()
        };
        super::href("/", &params)
    };
    html! {
        figure.chart {
            (timeline::timeline(frame.from, frame.to, &lanes, &group_href))
            figcaption {
                (caption)
                @if let Some(note) = &left_out_note {
                    " " a href="#table-resolved" { (note) }
                }
            }
        }
        (legend(rule_names.iter().filter(|name| used.contains(name.as_str())).map(|name| (name.as_str(), Colour::nth(rule_index(name))))))
    }
}
