//! The monitoring page: CPU and memory, the counters, and an overview per host.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use maud::html;
use serde::{Deserialize, Serialize};

use super::PageQuery;
use super::chart::{Colour, Line, NARROW, TimeChart};
use super::{
    FRAMES, FrameParams, Nav, PageContext, PageError, Pages, REFRESH_SECONDS, figure, format,
    frame_selector, given, hidden_frame, href_with, legend, page_number, refresh_toggle,
};
use crate::duration::{HumanDuration, Millis, parse_duration};
use crate::fleet::{FleetFrame, FrameQuery};
use crate::service::Service;
use crate::stats::{Bucket, FieldStats, HostBuckets, MAX_BUCKETS, StatsQuery};
use crate::store::rollup::Step;

const CPU: &str = "cpu.usage";
const MEMORY: &str = "mem.usage";
/// The counters and how the page names them.
const COUNTERS: [(&str, &str); 6] = [
    ("requests.count", "Requests"),
    ("eventsIn.count", "Events in"),
    ("eventsOut.count", "Events out"),
    ("warnings.count", "Warnings"),
    ("errors.count", "Errors"),
    ("criticals.count", "Criticals"),
];
/// The counter charts: a title, the counters (by index in [`COUNTERS`]), and
/// the rate's unit in milliseconds with its name. Warnings and errors, a few
/// a minute, get their own chart: beside requests they would be a flat line.
const COUNTER_CHARTS: [(&str, &[usize], Millis, &str); 3] = [
    ("Requests", &[0], 1000, "per second"),
    ("Events", &[1, 2], 1000, "per second"),
    ("Warnings & errors", &[3, 4, 5], 60_000, "per minute"),
];
/// A host is marked silent in the overview once it has missed this many
/// collection intervals.
const SILENT_INTERVALS: i64 = 3;
/// The resolutions offered besides the automatic one, where [`servable`].
const RESOLUTIONS: [&str; 8] = ["10s", "30s", "1m", "5m", "15m", "30m", "1h", "6h"];
/// The most points a chart of the page draws.
const MAX_POINTS: i64 = 1_500;
/// The longest frame read sample by sample for the fleet; longer ones read
/// the rolled-up past from rollups ([`fleet_step`]).
const RAW_FRAME: Millis = 3_600_000;
/// The longest frame read from minute rollups for the fleet; longer ones
/// read ten-minute rollups, and past a day hour rollups.
const MINUTE_FRAME: Millis = 2 * 3_600_000;
/// The overview's rows per page.
const OVERVIEW_ROWS: usize = 100;
/// The most hosts drawn on a per-host chart.
const CHART_HOSTS: usize = 10;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct MonitoringParams {
    #[serde(flatten)]
    frame: FrameParams,
    /// A duration, or absent for about 300 points.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolution: Option<String>,
    /// One host only.
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// `on` to reload the page every few seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
    /// The overview's order: a column's key (see [`SORTS`]); absent: the
    /// hosts that need someone first.
    #[serde(skip_serializing_if = "Option::is_none")]
    sort: Option<String>,
    /// The overview's page, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<String>,
}

/// The overview's columns that sort it: key, and whether the largest come
/// first. `host` sorts by name; the others by their figure.
const SORTS: [(&str, bool); 6 + COUNTERS.len()] = [
    ("host", false),
    ("last-seen", true),
    ("reporting", true),
    ("samples", true),
    ("cpu", true),
    ("memory", true),
    ("requests", true),
    ("events-in", true),
    ("events-out", true),
    ("warnings", true),
    ("errors", true),
    ("criticals", true),
];

/// One host's figures over the frame.
#[derive(Debug, Default)]
struct Overview {
    samples: u64,
    /// The start of its latest run of points without a gap, if it reported
    /// in the frame.
    reporting_since: Option<Millis>,
    peak_cpu: Option<f64>,
    peak_memory: Option<f64>,
    totals: [f64; COUNTERS.len()],
}

pub(super) async fn page(
    State(service): State<Arc<Service>>,
    PageQuery(params): PageQuery<MonitoringParams>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| render(context, &params))
        .await
}

fn render(context: &PageContext, params: &MonitoringParams) -> Result<Html<String>, PageError> {
    let service = &context.service;
    let frame = params.frame.resolve(service.now(), &FRAMES)?;
    let interval = service.read_config(|config| config.monitoring.collection_interval);
    let kept_from = service.queries().rollups_kept_from();
    let span = frame.to - frame.from;
    let reach = Reach {
        span,
        minutes: kept_from[0] <= Step::Minute.start_of(frame.from),
    };
    let resolution = match given(&params.resolution) {
        None => automatic(frame.from, frame.to, interval, reach),
        Some(text) => match parse_duration(text) {
            Ok(resolution) if resolution >= 1000 => resolution,
            _ => {
                return Err(PageError::bad_request(format!(
                    "Resolution {text:?}: expected a duration of at least a second, such as \"1m\"."
                )));
            }
        },
    };
    // A resolution kept from another frame (a frame link keeps it) that
    // this one cannot serve in time: the nearest coarser one, said above
    // the charts.
    let asked = resolution;
    let resolution = if servable(reach, asked) {
        asked
    } else {
        coarser(reach, asked).unwrap_or_else(|| automatic(frame.from, frame.to, interval, reach))
    };
    let mut fields = vec![CPU.to_string(), MEMORY.to_string()];
    fields.extend(COUNTERS.iter().map(|(field, _)| field.to_string()));
    let query = StatsQuery::new(
        frame.from,
        frame.to,
        resolution,
        given(&params.host).map(str::to_string),
        Some(fields),
    );
    if query.buckets() > MAX_BUCKETS {
        return Err(PageError::bad_request(format!(
            "A resolution of {} cuts this time frame into {} points: at most {MAX_BUCKETS}. Choose a coarser one.",
            HumanDuration(resolution),
            query.buckets()
        )));
    }
    let queries = service.queries();
    let known_hosts = queries.hosts()?.hosts;
    let host_filter = given(&params.host);
    let chart_from = query.from;
    // One host: its buckets. The fleet: every host's figures over the frame
    // (each read once), and the charts from the series of all hosts together.
    let read = match host_filter {
        Some(_) => {
            // Every field: the bots' counters too.
            let buckets = queries.stats(&StatsQuery {
                fields: None,
                ..query.clone()
            })?;
            let series = buckets
                .values()
                .next()
                .map(|series| {
                    series
                        .iter()
                        .map(|(at, bucket)| (*at, bucket.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Read {
                overview: overview(&buckets, resolution),
                series,
                per_host: PerHost::Buckets(buckets),
            }
        }
        None => {
            let step = fleet_step(span, kept_from, frame.from);
            let frame_query = FrameQuery {
                from: frame.from,
                to: frame.to,
                fields: query.fields.clone().unwrap_or_default(),
                rolled_up: step,
                grain: step.map_or(resolution, Step::millis),
                series: vec![0, 1],
                resolution,
                series_from: chart_from,
                // Every field: the bots' counters too.
                together: Some(
                    StatsQuery {
                        fields: None,
                        ..query.clone()
                    }
                    .across_hosts(),
                ),
                kept_from,
            };
            let mut fleet = queries.fleet(&frame_query)?;
            let series = std::mem::take(&mut fleet.together);
            let overview = fleet_overview(&fleet);
            Read {
                overview,
                series,
                per_host: PerHost::Fleet(fleet, Box::new(frame_query)),
            }
        }
    };
    let mut overview = read.overview;
    // Hosts that sent nothing in the frame are worth seeing too.
    for seen in &known_hosts {
        if host_filter.is_none_or(|host| host == seen.host) {
            overview.entry(seen.host.clone()).or_default();
        }
    }
    // Every chart of the page: the frame, a point per resolution, half width.
    let chart = |percent: bool, lines: Vec<Line>| TimeChart {
        from: frame.from,
        to: frame.to,
        step: resolution,
        width: NARROW,
        height: 250,
        top: percent.then_some(100.0),
        unit: if percent { "%" } else { "" },
        threshold: None,
        lines,
    };
    let average = |field: &str| average(&read.series, field);
    let bots = super::bots::bots(&read.series);
    let cpu_memory = chart(
        true,
        vec![
            Line {
                colour: Colour::nth(0),
                points: average(CPU),
            },
            Line {
                colour: Colour::nth(1),
                points: average(MEMORY),
            },
        ],
    );
    let counters: Vec<TimeChart> = COUNTER_CHARTS
        .iter()
        .map(|(_, counters, per, _)| {
            chart(
                false,
                counters
                    .iter()
                    .map(|&index| Line {
                        colour: Colour::nth(index + 2),
                        points: rate(&read.series, COUNTERS[index].0, resolution, *per, frame.to),
                    })
                    .collect(),
            )
        })
        .collect();
    // Too many hosts to draw: those with the highest peak of the field drawn.
    let busiest = |peak: fn(&Overview) -> Option<f64>| {
        let mut busiest: Vec<&String> = overview.keys().collect();
        busiest.sort_by(|a, b| {
            peak(&overview[*b])
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&peak(&overview[*a]).unwrap_or(f64::NEG_INFINITY))
                .then(a.cmp(b))
        });
        busiest.truncate(CHART_HOSTS);
        busiest.sort();
        busiest
    };
    let busiest_cpu = busiest(|figures| figures.peak_cpu);
    let busiest_memory = busiest(|figures| figures.peak_memory);
    let drawn: Vec<Vec<(Millis, f64)>> = {
        let store = service.store();
        let mut series = Vec::new();
        for (nth, hosts) in [&busiest_cpu, &busiest_memory].into_iter().enumerate() {
            for host in hosts {
                series.push(match &read.per_host {
                    PerHost::Buckets(buckets) => host_series(buckets, host, [CPU, MEMORY][nth]),
                    PerHost::Fleet(fleet, frame_query) => {
                        let mut figures = fleet
                            .hosts
                            .get(*host)
                            .cloned()
                            .unwrap_or_else(|| fleet.empty());
                        if frame_query.rolled_up.is_some() {
                            frame_query.add_rolled_series(store, host, fleet, &mut figures)?;
                        }
                        figures.series_of(nth, chart_from, resolution)
                    }
                });
            }
        }
        series
    };
    let per_host = |nth: usize, hosts: &[&String]| {
        chart(
            true,
            hosts
                .iter()
                .enumerate()
                .map(|(index, _)| Line {
                    colour: Colour::nth(index),
                    points: drawn[nth * busiest_cpu.len() + index].clone(),
                })
                .collect(),
        )
    };
    let host_legend = |hosts: &[&String]| {
        legend(
            hosts
                .iter()
                .enumerate()
                .map(|(index, host)| (host.as_str(), Colour::nth(index))),
        )
    };
    let per_host_note = |what: &str| {
        if overview.len() > CHART_HOSTS {
            format!(
                " The {CHART_HOSTS} hosts of {} with the highest {what} peak; choose a host to see another.",
                overview.len()
            )
        } else {
            String::new()
        }
    };
    let last_seen: BTreeMap<&str, Millis> = known_hosts
        .iter()
        .map(|seen| (seen.host.as_str(), seen.last_seen))
        .collect();
    let now = service.now();
    // Each host's open incidents, for a link from its row and its view.
    let mut open: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for incident in queries.incidents(now, now)?.active {
        open.entry(incident.host_name.to_string())
            .or_default()
            .push((incident.id.clone(), incident.rule_name.to_string()));
    }
    let silent = |host: &str| {
        last_seen
            .get(host)
            .is_none_or(|&at| now - at > SILENT_INTERVALS * interval)
    };
    // The rows that need someone first: silent or firing, then by name;
    // or by the column asked for.
    let mut rows: Vec<(&String, &Overview)> = overview.iter().collect();
    rows.sort_by_key(|(host, _)| (!(silent(host) || open.contains_key(*host)), *host));
    let sort = given(&params.sort);
    if let Some(key) = sort {
        let Some(column) = SORTS.iter().position(|(name, _)| *name == key) else {
            return Err(PageError::bad_request(format!(
                "Sort {key:?}: expected one of {}.",
                SORTS.map(|(name, _)| name).join(", ")
            )));
        };
        // Missing figures last, whatever the direction.
        let figure = |host: &str, figures: &Overview| -> Option<f64> {
            match column {
                0 => None,
                1 => last_seen.get(host).map(|&at| at as f64),
                2 => figures.reporting_since.map(|since| -(since as f64)),
                3 => Some(figures.samples as f64),
                4 => figures.peak_cpu,
                5 => figures.peak_memory,
                counter => Some(figures.totals[counter - 6]),
            }
        };
        if column == 0 {
            rows.sort_by(|a, b| a.0.cmp(b.0));
        } else {
            rows.sort_by(|a, b| {
                let (x, y) = (figure(a.0, a.1), figure(b.0, b.1));
                match (x, y) {
                    (Some(x), Some(y)) => y.total_cmp(&x),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
                .then_with(|| a.0.cmp(b.0))
            });
        }
    }
    let shown = Pages::of(rows.len(), page_number(given(&params.page))?, OVERVIEW_ROWS);
    let sorted_by = |key: &'static str, label: &str| {
        let current = sort == Some(key);
        html! {
            a href=(href_with("/monitoring", params, |p| { p.sort = (!current).then(|| key.to_string()); p.page = None; }))
                aria-sort=[current.then_some(if key == "host" { "ascending" } else { "descending" })]
                title={ "Sort by " (label) @if current { " (again: the default order)" } } {
                (label) @if current { " ▾" }
            }
        }
    };
    // One host that sent nothing in the frame: say so rather than draw empty charts.
    let silent_host = host_filter.filter(|_| read.series.is_empty());
    let refreshing = given(&params.refresh) == Some("on");

    let content = html! {
        div.toolbar {
            (frame_selector("/monitoring", &frame, &FRAMES, params, |p, f| p.frame = f, &[
                ("resolution", given(&params.resolution)), ("host", host_filter),
                ("refresh", given(&params.refresh)), ("sort", sort),
            ]))
            form.filters method="get" action="/monitoring" {
                (hidden_frame(&params.frame))
                @if refreshing { input type="hidden" name="refresh" value="on"; }
                @if let Some(sort) = sort { input type="hidden" name="sort" value=(sort); }
                label { "Resolution "
                    select name="resolution" {
                        option value="" { "Auto (" (HumanDuration(automatic(frame.from, frame.to, interval, reach))) ")" }
                        @for option in offered(reach) {
                            option value=(option) selected[given(&params.resolution) == Some(option)] { (option) }
                        }
                    }
                }
                label { "Host "
                    select name="host" {
                        option value="" { "All hosts" }
                        @for seen in &known_hosts {
                            option value=(seen.host) selected[host_filter == Some(seen.host.as_str())] { (seen.host) }
                        }
                    }
                }
                button type="submit" { "Show" }
            }
            (refresh_toggle(refreshing, href_with("/monitoring", params, |p| p.refresh = (!refreshing).then(|| "on".to_string()))))
        }
        p.range {
            "From " (format::time(frame.from)) " to " (format::time(frame.to)) " UTC, one point per "
            (HumanDuration(resolution))
            @if let Some(host) = host_filter {
                ", host " b { (host) } " · "
                a href={ "/silences?" (serde_urlencoded::to_string([("host", host)]).unwrap_or_default()) } { "Silence this host" }
            }
            @if asked != resolution {
                " (" (HumanDuration(asked)) " is not offered for a frame of " (HumanDuration(span)) ")"
            }
        }
        @if let Some(host) = silent_host {
            p.empty.silent {
                b { (host) } " sent no sample in this time frame"
                @match last_seen.get(host) {
                    Some(&at) => { ": no data since " (format::time(at)) " UTC (" (format::span(now - at)) " ago)." },
                    None => ": it has never reported.",
                }
                @for (id, rule) in open.get(host).into_iter().flatten() {
                    " " a href={ "/incidents/" (id) } { "Open incident: " (rule) }
                }
            }
        } @else {
        div.grid {
            section {
                h2 { "CPU & memory " span.hint { "average across hosts" } }
                (figure(&cpu_memory, "Average CPU and memory use, in percent."))
                (legend([("CPU", Colour::nth(0)), ("Memory", Colour::nth(1))]))
            }
            @for ((title, fields, _, per), chart) in COUNTER_CHARTS.iter().zip(&counters) {
                section {
                    h2 { (title) " " span.hint { (per) ", across hosts" } }
                    (figure(chart, &format!("{title} {per}, summed over the hosts, in points of {} (a whole number of collection intervals).", HumanDuration(resolution))))
                    (legend(fields.iter().map(|&index| (COUNTERS[index].1, Colour::nth(index + 2)))))
                }
            }
            section {
                h2 { "CPU per host" }
                (figure(&per_host(0, &busiest_cpu), &format!("CPU use, in percent.{}", per_host_note("CPU"))))
                (host_legend(&busiest_cpu))
            }
            section {
                h2 { "Memory per host" }
                (figure(&per_host(1, &busiest_memory), &format!("Memory use, in percent.{}", per_host_note("memory"))))
                (host_legend(&busiest_memory))
            }
        }
        }
        section {
            h2 { "Overview" }
            div.scroll {
                table #overview {
                    thead { tr {
                        th { (sorted_by("host", "Host")) } th { (sorted_by("last-seen", "Last seen")) }
                        th.num title="Since its last gap of a point or more in the frame" { (sorted_by("reporting", "Reporting for")) }
                        th.num { (sorted_by("samples", "Samples")) } th.num { (sorted_by("cpu", "Peak CPU")) }
                        th.num { (sorted_by("memory", "Peak memory")) }
                        @for (index, (_, label)) in COUNTERS.iter().enumerate() { th.num { (sorted_by(SORTS[6 + index].0, label)) } }
                    } }
                    tbody {
                        @for (host, figures) in shown.slice(&rows) {
                            tr {
                                td {
                                    a href=(href_with("/monitoring", params, |p| p.host = Some(host.to_string()))) { (host) }
                                    @for (id, rule) in open.get(host.as_str()).into_iter().flatten() {
                                        " " a.badge.firing href={ "/incidents/" (id) } title={ "Open incident: " (rule) } { "firing" }
                                    }
                                }
                                td.time { @match last_seen.get(host.as_str()) {
                                    Some(&at) => {
                                        (format::span(now - at)) " ago"
                                        @if now - at > SILENT_INTERVALS * interval {
                                            " " span.badge.silent title={ "No sample for more than " (SILENT_INTERVALS) " collection intervals" } { "silent" }
                                        }
                                    },
                                    None => "—",
                                } }
                                td.num { @match (figures.reporting_since, last_seen.get(host.as_str())) {
                                    (Some(since), Some(&at)) if now - at <= SILENT_INTERVALS * interval => {
                                        @if since <= frame.from + resolution { "the whole frame" }
                                        @else { (format::span(now - since)) }
                                    },
                                    _ => "—",
                                } }
                                td.num { (format::count(figures.samples as usize)) }
                                td.num { (percent(figures.peak_cpu)) }
                                td.num { (percent(figures.peak_memory)) }
                                @for total in figures.totals { td.num { (format::value(total)) } }
                            }
                        }
                        @if overview.is_empty() {
                            tr.empty { td colspan=(6 + COUNTERS.len()) { "No sample in this time frame." } }
                        }
                    }
                }
            }
            @if shown.pages > 1 {
                @let at = |page: usize| href_with("/monitoring", params, |p| p.page = (page > 1).then(|| page.to_string()));
                nav.pager aria-label="Overview pages" {
                    @if shown.page > 1 {
                        a href=(at(1)) { "« First" }
                        a href=(at(shown.page - 1)) rel="prev" { "‹ Previous" }
                    }
                    span { "Hosts " (format::count((shown.page - 1) * shown.size + 1)) "–" (format::count((shown.page * shown.size).min(shown.total))) " of " (format::count(shown.total)) }
                    @if shown.page < shown.pages {
                        a href=(at(shown.page + 1)) rel="next" { "Next ›" }
                        a href=(at(shown.pages)) { "Last »" }
                    }
                }
            }
        }
        (super::bots::section(&bots, resolution, host_filter.is_none()))
    };
    let refresh = refreshing.then_some(REFRESH_SECONDS);
    Ok(context.render("Monitoring", Nav::Monitoring, refresh, content))
}

/// What the page read: the overview's rows, the series its charts draw
/// (the host's, or all hosts' together), and where each host's own series
/// come from.
struct Read {
    overview: BTreeMap<String, Overview>,
    series: BTreeMap<Millis, Bucket>,
    per_host: PerHost,
}

enum PerHost {
    /// One host's buckets.
    Buckets(HostBuckets),
    /// The fleet's figures, and the query that read them (for the rolled-up
    /// series of the hosts drawn).
    Fleet(FleetFrame, Box<FrameQuery>),
}

/// The overview's rows from the fleet's figures (fields in the order of
/// the page's query: CPU, memory, then the counters).
fn fleet_overview(fleet: &FleetFrame) -> BTreeMap<String, Overview> {
    fleet
        .hosts
        .iter()
        .map(|(host, figures)| {
            let peak = |field: &FieldStats| (field.count > 0).then_some(field.max);
            let mut totals = [0.0; COUNTERS.len()];
            for (total, field) in totals.iter_mut().zip(&figures.fields[2..]) {
                *total = field.sum;
            }
            let overview = Overview {
                samples: figures.samples,
                reporting_since: fleet.reporting_since(host),
                peak_cpu: peak(&figures.fields[0]),
                peak_memory: peak(&figures.fields[1]),
                totals,
            };
            (host.clone(), overview)
        })
        .collect()
}

/// The resolution of about 300 points the page uses when the address names
/// none: a whole number of collection intervals, and [`servable`].
fn automatic(from: Millis, to: Millis, interval: Millis, reach: Reach) -> Millis {
    let resolution = aligned(StatsQuery::auto_resolution(from, to), interval);
    let whole = |unit: Millis| (resolution + unit - 1) / unit * unit;
    if servable(reach, resolution) {
        resolution
    } else if servable(reach, whole(60_000)) {
        whole(60_000)
    } else {
        whole(600_000)
    }
}

/// The step of the rollups the fleet's figures over a frame of `span` from
/// `from` are read from: none up to [`RAW_FRAME`] (every sample), minutes up
/// to [`MINUTE_FRAME`], ten minutes up to a day, hours past it; a step whose
/// rollups are no longer kept at `from` gives way to a coarser one, or to
/// every sample.
fn fleet_step(span: Millis, kept_from: [Millis; 3], from: Millis) -> Option<Step> {
    let finest = match span {
        _ if span <= RAW_FRAME => return None,
        _ if span <= MINUTE_FRAME => Step::Minute,
        _ if span <= 24 * 3_600_000 => Step::TenMinutes,
        _ => Step::Hour,
    };
    Step::ALL
        .into_iter()
        .zip(kept_from)
        .find(|(step, kept_from)| *step >= finest && *kept_from <= step.start_of(from))
        .map(|(step, _)| step)
}

/// A frame as the page can read it: its length, and whether the minute
/// rollups are kept back to its start (`monitoring.minuteRollupRetention`).
#[derive(Debug, Clone, Copy)]
struct Reach {
    span: Millis,
    minutes: bool,
}

/// Whether the page serves a frame at `resolution` fast at any number of
/// hosts: at most [`MAX_POINTS`] points; below a minute only for frames
/// read sample by sample ([`RAW_FRAME`]); past those, whole minutes only up
/// to a day and where the minute rollups are kept, else whole ten minutes.
fn servable(reach: Reach, resolution: Millis) -> bool {
    let span = reach.span;
    span / resolution.max(1) <= MAX_POINTS
        && (resolution % 60_000 == 0 || span <= RAW_FRAME)
        && (resolution % 600_000 == 0
            || span <= RAW_FRAME
            || (span <= 24 * 3_600_000 && reach.minutes))
}

/// The finest resolution offered for a frame at least as coarse as
/// `asked`, if any.
fn coarser(reach: Reach, asked: Millis) -> Option<Millis> {
    offered(reach)
        .into_iter()
        .filter_map(|text| parse_duration(text).ok())
        .find(|&resolution| resolution >= asked)
}

/// The resolutions the page offers for a frame: servable, and drawing at
/// least four points.
fn offered(reach: Reach) -> Vec<&'static str> {
    RESOLUTIONS
        .into_iter()
        .filter(|text| {
            parse_duration(text)
                .is_ok_and(|resolution| servable(reach, resolution) && resolution * 4 <= reach.span)
        })
        .collect()
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(
        || "—".to_string(),
        |value| format!("{}%", format::value(value)),
    )
}

fn overview(buckets: &HostBuckets, resolution: Millis) -> BTreeMap<String, Overview> {
    buckets
        .iter()
        .map(|(host, series)| {
            let mut figures = Overview::default();
            // Back from the latest point while each point follows the one before.
            let mut points = series.keys().rev();
            let mut since = points.next().copied();
            for &at in points {
                match since {
                    Some(later) if later - at <= resolution => since = Some(at),
                    _ => break,
                }
            }
            figures.reporting_since = since;
            for bucket in series.values() {
                figures.samples += u64::from(bucket.samples);
                let peak = |current: Option<f64>, field: &str| match bucket.fields.get(field) {
                    Some(stats) => Some(current.map_or(stats.max, |peak: f64| peak.max(stats.max))),
                    None => current,
                };
                figures.peak_cpu = peak(figures.peak_cpu, CPU);
                figures.peak_memory = peak(figures.peak_memory, MEMORY);
                for (total, (field, _)) in figures.totals.iter_mut().zip(COUNTERS) {
                    *total += bucket.fields.get(field).map_or(0.0, |stats| stats.sum);
                }
            }
            (host.clone(), figures)
        })
        .collect()
}

/// Per point, the mean of `field` over the samples in it.
fn average(series: &BTreeMap<Millis, Bucket>, field: &str) -> Vec<(Millis, f64)> {
    series
        .iter()
        .filter_map(|(at, bucket)| Some((*at, bucket.fields.get(field)?.avg())))
        .collect()
}

/// Per point, the sum as a rate: per `per` milliseconds over the point's
/// `resolution`. The last point, still filling up to `to`, is left out: a
/// part of a point would read as a drop.
fn rate(
    series: &BTreeMap<Millis, Bucket>,
    field: &str,
    resolution: Millis,
    per: Millis,
    to: Millis,
) -> Vec<(Millis, f64)> {
    let scale = per as f64 / resolution as f64;
    series
        .iter()
        .filter(|(at, _)| at.saturating_add(resolution) <= to)
        .filter_map(|(at, bucket)| Some((*at, bucket.fields.get(field)?.sum * scale)))
        .collect()
}

/// `resolution` made a whole number of collection intervals, below a minute
/// (whole minutes already are, for intervals that divide one): then every
/// point holds as many samples of a host reporting steadily, and a steady
/// rate draws a flat line instead of a ripple.
fn aligned(resolution: Millis, interval: Millis) -> Millis {
    if resolution >= 60_000 || interval <= 0 || interval > 60_000 {
        return resolution;
    }
    (resolution + interval - 1) / interval * interval
}

fn host_series(buckets: &HostBuckets, host: &str, field: &str) -> Vec<(Millis, f64)> {
    buckets.get(host).map_or_else(Vec::new, |series| {
        series
            .iter()
            .filter_map(|(at, bucket)| Some((*at, bucket.fields.get(field)?.avg())))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sample;
    use crate::store::SampleStore;
    use crate::store::SqliteStore;

    /// A host reporting 5 requests every 10 s for an hour, at an odd phase:
    /// with the automatic resolution made a whole number of intervals, every
    /// point of the rate is the same (at 12 s points would hold 1 or 2 samples).
    #[test]
    fn a_steady_counter_draws_a_flat_rate() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let start = 1_795_428_003_700;
        let samples: Vec<Sample> = (0..360)
            .map(|n| Sample::new("web-1", start + n * 10_000, &[("requests.count", 5.0)]))
            .collect();
        store.append_samples(&samples).unwrap();
        let (from, to) = (start + 60_000, start + 3_560_000);
        let auto = StatsQuery::auto_resolution(from, to);
        assert_eq!(auto, 12_000, "the unaligned resolution this guards against");
        let resolution = aligned(auto, 10_000);
        assert_eq!(resolution, 20_000);
        let query = StatsQuery::new(
            from,
            to,
            resolution,
            None,
            Some(vec!["requests.count".to_string()]),
        );
        let buckets = query.run(&store).unwrap();
        let points = rate(&buckets["web-1"], "requests.count", resolution, 1000, to);
        assert!(points.len() > 150, "{}", points.len());
        assert!(points.iter().all(|(_, value)| *value == 0.5), "{points:?}");
        // Per minute, the same flat line.
        let per_minute = rate(&buckets["web-1"], "requests.count", resolution, 60_000, to);
        assert!(per_minute.iter().all(|(_, value)| *value == 30.0));
        // Reporting all through the frame: its run starts at the first point.
        let figures = &overview(&buckets, resolution)["web-1"];
        assert_eq!(figures.reporting_since, Some(from));
        // A gap of a minute: reporting since the end of it.
        let gapped: Vec<Sample> = (0..360)
            .filter(|n| !(200..206).contains(n))
            .map(|n| Sample::new("web-2", start + n * 10_000, &[("requests.count", 5.0)]))
            .collect();
        store.append_samples(&gapped).unwrap();
        let buckets = query.run(&store).unwrap();
        let since = overview(&buckets, resolution)["web-2"]
            .reporting_since
            .unwrap();
        let resumed = start + 206 * 10_000;
        assert!(
            since <= resumed && resumed - since < resolution,
            "{since} for {resumed}"
        );
        // A minute and beyond are whole intervals already.
        assert_eq!(aligned(60_000, 10_000), 60_000);
        assert_eq!(aligned(5_000, 7_000), 7_000);
    }

    /// Every frame the page offers has resolutions it can serve, the
    /// automatic one among them; a resolution kept from another frame gives
    /// way to the nearest coarser one.
    #[test]
    fn only_servable_resolutions_are_offered() {
        const HOUR: Millis = 3_600_000;
        let kept = |span| Reach {
            span,
            minutes: true,
        };
        assert_eq!(offered(kept(HOUR)), ["10s", "30s", "1m", "5m", "15m"]);
        assert_eq!(offered(kept(2 * HOUR)), ["1m", "5m", "15m", "30m"]);
        assert_eq!(
            offered(kept(24 * HOUR)),
            ["1m", "5m", "15m", "30m", "1h", "6h"]
        );
        assert_eq!(offered(kept(7 * 24 * HOUR)), ["30m", "1h", "6h"]);
        // A day whose minute rollups are gone: whole ten minutes; an hour
        // is read sample by sample, whatever is kept.
        let gone = |span| Reach {
            span,
            minutes: false,
        };
        assert_eq!(offered(gone(24 * HOUR)), ["30m", "1h", "6h"]);
        assert_eq!(offered(gone(HOUR)), offered(kept(HOUR)));
        for span in [
            30 * 60_000,
            HOUR,
            2 * HOUR,
            5 * HOUR,
            24 * HOUR,
            7 * 24 * HOUR,
            90 * 24 * HOUR,
        ] {
            for reach in [kept(span), gone(span)] {
                let auto = automatic(0, span, 10_000, reach);
                assert!(servable(reach, auto), "{span}: {auto}");
            }
            for text in offered(kept(span)) {
                let resolution = parse_duration(text).unwrap();
                assert!(span / resolution <= MAX_POINTS);
            }
        }
        assert_eq!(coarser(kept(5 * HOUR), 30_000), Some(60_000));
        assert_eq!(coarser(kept(7 * 24 * HOUR), 60_000), Some(1_800_000));
        assert_eq!(coarser(kept(24 * HOUR), 12 * HOUR), None);
        assert_eq!(coarser(kept(HOUR), 10_000), Some(10_000));
        assert_eq!(coarser(gone(24 * HOUR), 60_000), Some(1_800_000));
    }
}
