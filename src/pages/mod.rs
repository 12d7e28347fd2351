//! The web pages: incidents (the home page), monitoring and rules, rendered
//! on the server from [`maud`] templates, charts and the timeline written by
//! hand as inline SVG. No JavaScript and nothing from elsewhere: a page is one
//! HTML document and one stylesheet.
//!
//! Every string from a user (rule, host, field and hook names, hook output)
//! goes through maud, which escapes it. Times are shown in UTC.
//!
//! When a token is configured the pages ask for it once, in a sign-in form,
//! and keep it in an `HttpOnly`, `SameSite=Strict` cookie. The cookie opens
//! the pages only: the API still wants the bearer token, so that no other
//! site can make a browser push samples.

mod ack;
mod bots;
pub(crate) mod chart;
mod format;
mod incident;
mod incidents;
mod monitoring;
mod rules;
mod scrape;
mod signin;
mod silences;
pub(crate) mod timeline;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::{Deserialize, Serialize};

use crate::duration::Millis;
use crate::service::Service;
use crate::store::StoreError;

const STYLESHEET: &str = include_str!("alertd.css");

/// The cookie that carries the token, hex-encoded so that any token is a
/// valid cookie value.
const SESSION_COOKIE: &str = "alertd_session";

pub(super) fn router(service: Arc<Service>) -> Router<Arc<Service>> {
    let pages = Router::new()
        .route("/", get(incidents::page))
        .route("/incidents/{id}", get(incident::detail))
        .route(
            "/incidents/{id}/retry",
            axum::routing::post(incident::retry_dead),
        )
        .route(
            "/incidents/{id}/ack",
            axum::routing::post(incident::acknowledge),
        )
        .route("/monitoring", get(monitoring::page))
        .route("/rules", get(rules::page))
        .route("/scrape", get(scrape::page))
        .route("/silences", get(silences::page).post(silences::add))
        .route(
            "/silences/{id}/expire",
            axum::routing::post(silences::expire),
        )
        .route_layer(middleware::from_fn_with_state(
            service,
            signin::require_session,
        ));
    Router::new()
        .merge(pages)
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/ack/{id}", get(ack::confirm).post(ack::acknowledge))
        .route("/logout", axum::routing::post(signin::logout))
        .route("/static/alertd.css", get(stylesheet))
}

/// Which page the navigation bar marks as current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    Incidents,
    Monitoring,
    Rules,
    Silences,
    Scrape,
    None,
}

/// What every page shows around its content.
struct Chrome<'a> {
    title: &'a str,
    nav: Nav,
    node: &'a str,
    /// In a cluster: who leads, as this node last saw it.
    cluster: Option<String>,
    signed_in: bool,
    /// Reload the page every this many seconds.
    refresh: Option<u32>,
    /// What an operator must know whatever the page ([`Service::warnings`]).
    warnings: Vec<String>,
    /// What holds notifications back now: the maintenance windows on.
    notices: Vec<String>,
    /// Whether `ingest.scrape` lists targets: the menu links their page.
    scrapes: bool,
}

fn layout(chrome: &Chrome, content: Markup) -> Markup {
    let link = |nav: Nav, href: &str, label: &str| {
        html! { a href=(href) aria-current=[(chrome.nav == nav).then_some("page")] { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = chrome.refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (chrome.title) " · alertd" }
                link rel="stylesheet" href="/static/alertd.css";
            }
            body {
                header.top {
                    a.brand href="/" { "alertd" }
                    nav {
                        (link(Nav::Incidents, "/", "Incidents"))
                        (link(Nav::Monitoring, "/monitoring", "Monitoring"))
                        (link(Nav::Rules, "/rules", "Rules"))
                        (link(Nav::Silences, "/silences", "Silences"))
                        @if chrome.scrapes {
                            (link(Nav::Scrape, "/scrape", "Scrape"))
                        }
                    }
                    div.node {
                        span title="This node's host name" { (chrome.node) }
                        @if let Some(cluster) = &chrome.cluster {
                            span.cluster title="The cluster, as this node last saw it (GET /api/v1/cluster)" { " · " (cluster) }
                        }
                        @if chrome.signed_in {
                            form method="post" action="/logout" {
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    @for warning in &chrome.warnings {
                        p.banner role="alert" { (warning) }
                    }
                    @for notice in &chrome.notices {
                        p.banner.notice role="status" { (notice) }
                    }
                    h1 { (chrome.title) }
                    (content)
                }
            }
        }
    }
}

/// One line per maintenance window on now: which, until when, what it
/// holds back.
fn maintenance_notices(service: &Service) -> Vec<String> {
    let now = service.now();
    service.read_config(|config| {
        (config.alerting.maintenance.iter())
            .filter_map(|window| {
                let until = window.active_until(now)?;
                let matchers = serde_json::to_string(&window.matchers).unwrap_or_default();
                Some(format!(
                    "Maintenance window {:?} is on until {} UTC: incidents matching {matchers} \
                     are recorded and shown, but no hook is called for them until it ends",
                    window.name,
                    format::time(until)
                ))
            })
            .collect()
    })
}

/// "leads a cluster of 3", "follows n1 (token 7)", or what went wrong; `None`
/// for a node alone.
fn cluster_line(service: &Service) -> Option<String> {
    if !service.topology().is_cluster() {
        return None;
    }
    let view = service.cluster();
    if let Some(error) = view.error {
        return Some(format!("cluster unreachable: {error}"));
    }
    let nodes = view.nodes.len();
    Some(match view.leader {
        _ if service.is_leading() => format!("leads a cluster of {nodes}"),
        Some(leader) => format!(
            "follows {} (token {}) in a cluster of {nodes}",
            leader.node, leader.token
        ),
        None => format!("no leader yet in a cluster of {nodes}"),
    })
}

/// What a page handler needs besides its query.
struct PageContext {
    service: Arc<Service>,
    signed_in: bool,
}

impl PageContext {
    fn new(service: Arc<Service>) -> Self {
        let signed_in = service.token().is_some();
        PageContext { service, signed_in }
    }

    fn render(&self, title: &str, nav: Nav, refresh: Option<u32>, content: Markup) -> Html<String> {
        let chrome = Chrome {
            title,
            nav,
            node: self.service.host_name(),
            cluster: cluster_line(&self.service),
            signed_in: self.signed_in,
            refresh,
            warnings: self.service.warnings(),
            notices: maintenance_notices(&self.service),
            scrapes: !self.service.config().ingest.scrape.is_empty(),
        };
        Html(layout(&chrome, content).into_string())
    }

    /// An error as a page: what was wrong, with the navigation to go on.
    fn error(&self, error: PageError) -> Response {
        self.error_at(error, None)
    }

    /// An error as a page, with a link to `page` (the page asked for) as it
    /// opens without parameters, when the parameters were what was wrong.
    fn error_at(&self, error: PageError, page: Option<&str>) -> Response {
        let content = html! {
            p.error role="alert" { (error.message) }
            @if let Some(page) = page.filter(|page| *page != "/") {
                p { a href=(page) { "Open " (page) " with its defaults" } }
            }
            p { a href="/" { "Back to the incidents" } }
        };
        let title = match error.status {
            StatusCode::NOT_FOUND => "Not found",
            status if status.is_client_error() => "Bad request",
            _ => "Unavailable",
        };
        (error.status, self.render(title, Nav::None, None, content)).into_response()
    }

    /// Runs blocking work (the store, the engine lock) off the async threads
    /// and renders its page or its error.
    async fn respond(
        self,
        work: impl FnOnce(&PageContext) -> Result<Html<String>, PageError> + Send + 'static,
    ) -> Response {
        let context = Arc::new(self);
        let worker = context.clone();
        // Held by the work itself, so that a client gone meanwhile does not
        // give its turn to another while the work goes on.
        let turn = context.service.heavy_read().await;
        let work = move || {
            let _turn = turn;
            work(&worker)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(Ok(page)) => page.into_response(),
            Ok(Err(error)) => context.error(error),
            Err(error) => context.error(PageError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the page failed: {error}"),
            }),
        }
    }
}

/// A page's query parameters; a query that does not parse (a parameter
/// given twice, say) gets the error page with the reason, as any other bad
/// parameter does, instead of a line of plain text.
pub(crate) struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<Arc<Service>>
    for PageQuery<T>
{
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        service: &Arc<Service>,
    ) -> Result<Self, Response> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(PageQuery)
            .map_err(|error| {
                PageContext::new(service.clone()).error_at(
                    PageError::bad_request(format!(
                        "This address's parameters cannot be read: {error}."
                    )),
                    Some(parts.uri.path()),
                )
            })
    }
}

/// The page for an address that shows nothing, for browsers.
pub(crate) fn not_found(service: Arc<Service>, path: &str) -> Response {
    PageContext::new(service).error(PageError {
        status: StatusCode::NOT_FOUND,
        message: format!("There is no page at {path}."),
    })
}

/// Why a page cannot be shown.
#[derive(Debug)]
struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store failed a page");
        PageError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("The store failed: {error}"),
        }
    }
}

/// A link to `path` with `params` as its query string.
fn href<P: Serialize>(path: &str, params: &P) -> String {
    match serde_urlencoded::to_string(params) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

/// A link to `path` with `params` changed by `change`.
fn href_with<P: Serialize + Clone>(path: &str, params: &P, change: impl FnOnce(&mut P)) -> String {
    let mut changed = params.clone();
    change(&mut changed);
    href(path, &changed)
}

/// A host's monitoring view over `frame` (a preset name) or the default frame.
fn host_href(host: &str, frame: Option<&str>) -> String {
    href("/monitoring", &[("frame", frame), ("host", Some(host))])
}

/// A host's name linking to its monitoring view.
fn host_link(host: &str, frame: Option<&str>) -> Markup {
    html! { a href=(host_href(host, frame)) title={ "Monitoring of " (host) } { (host) } }
}

/// The anchor of a rule's section on the rules page.
fn rule_anchor(index: usize) -> String {
    format!("rule-{}", index + 1)
}

/// A query parameter that was given and is not blank.
fn given(value: &Option<String>) -> Option<&str> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The time frames a page offers, by the name used in its query string.
const FRAMES: [(&str, Millis); 7] = [
    ("30m", HOUR / 2),
    ("1h", HOUR),
    ("2h", 2 * HOUR),
    ("5h", 5 * HOUR),
    ("15h", 15 * HOUR),
    ("24h", 24 * HOUR),
    ("7d", 7 * 24 * HOUR),
];

/// The frame a page shows when its address names none.
const DEFAULT_FRAME: &str = "1h";

/// Seconds between reloads of a page with auto-refresh on.
const REFRESH_SECONDS: u32 = 10;

/// The auto-refresh switch of a page: a link to the same view with
/// `refresh=on` (or without it).
fn refresh_toggle(on: bool, href: String) -> Markup {
    html! {
        a.toggle href=(href) role="switch" aria-checked=(on) {
            "Auto-refresh " b { @if on { "on" } @else { "off" } }
        }
    }
}

/// The time frame of a page, from its `frame`, `from` and `to` parameters.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct FrameParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    frame: Option<String>,
    /// With `frame=custom`: `2026-11-23 10:00` (UTC; a `T` for the space is taken too).
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<String>,
}

/// A resolved time frame: `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Frame {
    from: Millis,
    to: Millis,
    /// The name of a preset, `None` for a custom range.
    preset: Option<&'static str>,
}

impl FrameParams {
    /// The frame these parameters name, ending now unless custom.
    /// `presets` limits the choice (a page may offer fewer).
    fn resolve(&self, now: Millis, presets: &[(&'static str, Millis)]) -> Result<Frame, PageError> {
        let default = match presets.iter().any(|(preset, _)| *preset == DEFAULT_FRAME) {
            true => DEFAULT_FRAME,
            false => presets[0].0,
        };
        let name = given(&self.frame).unwrap_or(default);
        if name == "custom" {
            let from = parse_time("from", given(&self.from))?;
            let to = match given(&self.to) {
                Some(_) => parse_time("to", given(&self.to))?,
                None => now,
            };
            if from >= to {
                return Err(PageError::bad_request(format!(
                    "The custom range starts ({}) after it ends ({}).",
                    format::time(from),
                    format::time(to)
                )));
            }
            let longest = presets
                .iter()
                .map(|(_, length)| *length)
                .max()
                .unwrap_or(HOUR);
            if to - from > longest {
                return Err(PageError::bad_request(format!(
                    "The custom range lasts {}: this page shows at most {}.",
                    format::span(to - from),
                    format::span(longest)
                )));
            }
            return Ok(Frame {
                from,
                to,
                preset: None,
            });
        }
        let Some(&(preset, length)) = presets.iter().find(|(preset, _)| *preset == name) else {
            let names: Vec<&str> = presets.iter().map(|(preset, _)| *preset).collect();
            return Err(PageError::bad_request(format!(
                "Time frame {name:?}: expected one of {} or \"custom\".",
                names.join(", ")
            )));
        };
        Ok(Frame {
            from: now - length,
            to: now,
            preset: Some(preset),
        })
    }
}

/// What a custom range's fields take: a date and a 24-hour time, UTC.
const TIME_PATTERN: &str = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?";

/// Parses a date-time field's value, `2026-11-23 10:00` (or with a `T`, or
/// with seconds), as UTC.
fn parse_time(name: &str, value: Option<&str>) -> Result<Millis, PageError> {
    let Some(text) = value else {
        return Err(PageError::bad_request(format!(
            "A custom range needs \"{name}\", a date and time such as 2026-11-23 10:00 (UTC)."
        )));
    };
    let full = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as Millis)
        .ok_or_else(|| {
            PageError::bad_request(format!(
                "\"{name}\" is {text:?}: expected a date and time such as 2026-11-23 10:00 (UTC)."
            ))
        })
}

/// The time-frame selector: a link per preset and a custom range form that
/// keeps the page's other parameters (`keep`, as hidden fields).
fn frame_selector<P: Serialize + Clone>(
    path: &str,
    frame: &Frame,
    presets: &[(&'static str, Millis)],
    params: &P,
    set_frame: impl Fn(&mut P, FrameParams),
    keep: &[(&str, Option<&str>)],
) -> Markup {
    let link = |preset: &str| {
        href_with(path, params, |params| {
            let frame = FrameParams {
                frame: Some(preset.to_string()),
                ..FrameParams::default()
            };
            set_frame(params, frame);
        })
    };
    html! {
        div.frames role="group" aria-label="Time frame" {
            span.label { "Time frame" }
            @for (preset, _) in presets {
                a.pill href=(link(preset)) aria-current=[(frame.preset == Some(*preset)).then_some("true")] { (preset) }
            }
            details.custom open[frame.preset.is_none()] {
                summary.pill aria-current=[frame.preset.is_none().then_some("true")] { "Custom" }
                form method="get" action=(path) {
                    input type="hidden" name="frame" value="custom";
                    @for (name, value) in keep {
                        @if let Some(value) = value {
                            input type="hidden" name=(name) value=(value);
                        }
                    }
                    // Text, not the browser's date-time field, which follows the
                    // browser's locale (12-hour clocks) while the page is UTC.
                    label { "From " input type="text" name="from" required size="16" inputmode="numeric"
                        pattern=(TIME_PATTERN) placeholder="2026-11-23 10:00" value=(format::time_input(frame.from)); }
                    label { "To " input type="text" name="to" size="16" inputmode="numeric"
                        pattern=(TIME_PATTERN) placeholder="2026-11-23 11:00" value=(format::time_input(frame.to)); }
                    span.hint { "UTC" }
                    button type="submit" { "Apply" }
                }
            }
        }
    }
}

/// The frame parameters as hidden fields, for a form that changes something else.
fn hidden_frame(frame: &FrameParams) -> Markup {
    html! {
        @if let Some(name) = given(&frame.frame) { input type="hidden" name="frame" value=(name); }
        @if let Some(from) = given(&frame.from) { input type="hidden" name="from" value=(from); }
        @if let Some(to) = given(&frame.to) { input type="hidden" name="to" value=(to); }
    }
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// A rule's condition without its name: `avg(cpu.usage) over 2m >= 60, cooldown 1m`.
fn condition(rule: &crate::config::Rule) -> String {
    let text = rule.to_string();
    match text.strip_prefix(&format!("{}: ", rule.name)) {
        Some(condition) => condition.to_string(),
        None => text,
    }
}

/// A state badge: `ok`, `firing`, `cooldown`, `nodata`.
fn badge(state: &str) -> Markup {
    let label = match state {
        "nodata" => "no data",
        other => other,
    };
    html! { span class={ "badge " (state) } { (label) } }
}

/// An HTML legend for a chart: a colour swatch and a name per series.
fn legend<'a>(entries: impl IntoIterator<Item = (&'a str, chart::Colour)>) -> Markup {
    html! {
        ul.legend {
            @for (label, colour) in entries {
                li { i style={ "background:" (colour.css()) } {} (label) }
            }
        }
    }
}

/// A chart's SVG, or why it could not be drawn.
fn figure(chart: &chart::TimeChart, caption: &str) -> Markup {
    html! {
        figure.chart {
            // The caption is the chart's text alternative too.
            (chart.svg(caption))
            figcaption { (caption) }
        }
    }
}

/// The page of a list an address asks for: 1 when it names none.
fn page_number(given: Option<&str>) -> Result<usize, PageError> {
    match given {
        None => Ok(1),
        Some(text) => text.parse().ok().filter(|page| *page > 0).ok_or_else(|| {
            PageError::bad_request(format!("Page {text:?}: expected a number from 1."))
        }),
    }
}

/// One list's pages: which is shown, of how many, of what size.
struct Pages {
    page: usize,
    pages: usize,
    size: usize,
    total: usize,
}

impl Pages {
    /// The pages of `total` items, showing `page` (the last if past it).
    fn of(total: usize, page: usize, size: usize) -> Pages {
        let pages = total.div_ceil(size).max(1);
        Pages {
            page: page.min(pages),
            pages,
            size,
            total,
        }
    }

    fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = (self.page - 1) * self.size;
        &items[start.min(items.len())..(start + self.size).min(items.len())]
    }
}
