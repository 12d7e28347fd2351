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
    FRAMES, FrameParams, Nav, PageContext, PageError, figure, format, frame_selector, given,
    hidden_frame, href_with, legend,
};
use crate::duration::{HumanDuration, Millis, parse_duration};
use crate::service::Service;
use crate::stats::{HostBuckets, MAX_BUCKETS, StatsQuery};

const CPU: &str = "cpu.usage";
const MEMORY: &str = "mem.usage";
/// The counters and how the page names them.
const COUNTERS: [(&str, &str); 5] = [
    ("requests.count", "Requests"),
    ("eventsIn.count", "Events in"),
    ("eventsOut.count", "Events out"),
    ("warnings.count", "Warnings"),
    ("errors.count", "Errors"),
];
/// The resolutions offered besides the automatic one.
const RESOLUTIONS: [&str; 7] = ["10s", "30s", "1m", "5m", "15m", "1h", "6h"];
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
}

/// One host's figures over the frame.
#[derive(Debug, Default)]
struct Overview {
    samples: u64,
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
    let resolution = match given(&params.resolution) {
        None => StatsQuery::auto_resolution(frame.from, frame.to),
        Some(text) => match parse_duration(text) {
            Ok(resolution) if resolution >= 1000 => resolution,
            _ => {
                return Err(PageError::bad_request(format!(
                    "Resolution {text:?}: expected a duration of at least a second, such as \"1m\"."
                )));
            }
        },
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
    let buckets = query.run(service.store())?;
    let known_hosts = service.store().hosts()?;
    let host_filter = given(&params.host);

    let mut overview = overview(&buckets);
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
    let average = |field: &str| average_across_hosts(&buckets, field);
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
    let counters = chart(
        false,
        COUNTERS
            .iter()
            .enumerate()
            .map(|(index, (field, _))| Line {
                colour: Colour::nth(index + 2),
                points: total_across_hosts(&buckets, field),
            })
            .collect(),
    );
    // The busiest hosts, by peak CPU, when there are too many to draw.
    let mut busiest: Vec<(&String, &Overview)> = overview.iter().collect();
    busiest.sort_by(|a, b| {
        b.1.peak_cpu
            .unwrap_or(0.0)
            .total_cmp(&a.1.peak_cpu.unwrap_or(0.0))
            .then(a.0.cmp(b.0))
    });
    busiest.truncate(CHART_HOSTS);
    busiest.sort_by(|a, b| a.0.cmp(b.0));
    let per_host = |field: &str| {
        chart(
            true,
            busiest
                .iter()
                .enumerate()
                .map(|(index, (host, _))| Line {
                    colour: Colour::nth(index),
                    points: host_series(&buckets, host, field),
                })
                .collect(),
        )
    };
    let host_legend = || {
        legend(
            busiest
                .iter()
                .enumerate()
                .map(|(index, (host, _))| (host.as_str(), Colour::nth(index))),
        )
    };
    let per_host_note = if overview.len() > CHART_HOSTS {
        format!(
            " The {CHART_HOSTS} hosts with the highest CPU peak of {}; choose a host to see another.",
            overview.len()
        )
    } else {
        String::new()
    };
    let last_seen: BTreeMap<&str, Millis> = known_hosts
        .iter()
        .map(|seen| (seen.host.as_str(), seen.last_seen))
        .collect();
    let now = service.now();

    let content = html! {
        div.toolbar {
            (frame_selector("/monitoring", &frame, &FRAMES, params, |p, f| p.frame = f, &[
                ("resolution", given(&params.resolution)), ("host", host_filter),
            ]))
            form.filters method="get" action="/monitoring" {
                (hidden_frame(&params.frame))
                label { "Resolution "
                    select name="resolution" {
                        option value="" { "Auto (" (HumanDuration(StatsQuery::auto_resolution(frame.from, frame.to))) ")" }
                        @for option in RESOLUTIONS {
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
        }
        p.range {
            "From " (format::time(frame.from)) " to " (format::time(frame.to)) " UTC, one point per "
            (HumanDuration(resolution))
            @if let Some(host) = host_filter { ", host " b { (host) } }
        }
        div.grid {
            section {
                h2 { "CPU & memory " span.hint { "average across hosts" } }
                (figure(cpu_memory.svg(), "Average CPU and memory use, in percent."))
                (legend([("CPU", Colour::nth(0)), ("Memory", Colour::nth(1))]))
            }
            section {
                h2 { "Counters " span.hint { "total across hosts" } }
                (figure(counters.svg(), "Counts per point, summed over the hosts."))
                (legend(COUNTERS.iter().enumerate().map(|(index, (_, label))| (*label, Colour::nth(index + 2)))))
            }
            section {
                h2 { "CPU per host" }
                (figure(per_host(CPU).svg(), &format!("CPU use, in percent.{per_host_note}")))
                (host_legend())
            }
            section {
                h2 { "Memory per host" }
                (figure(per_host(MEMORY).svg(), &format!("Memory use, in percent.{per_host_note}")))
                (host_legend())
            }
        }
        section {
            h2 { "Overview" }
            div.scroll {
                table #overview {
                    thead { tr {
                        th { "Host" } th { "Last seen" } th.num { "Samples" } th.num { "Peak CPU" } th.num { "Peak memory" }
                        @for (_, label) in COUNTERS { th.num { (label) } }
                    } }
                    tbody {
                        @for (host, figures) in &overview {
                            tr {
                                td { a href=(href_with("/monitoring", params, |p| p.host = Some(host.to_string()))) { (host) } }
                                td.time { @match last_seen.get(host.as_str()) {
                                    Some(&at) => { (format::span(now - at)) " ago" },
                                    None => "—",
                                } }
                                td.num { (format::count(figures.samples as usize)) }
                                td.num { (percent(figures.peak_cpu)) }
                                td.num { (percent(figures.peak_memory)) }
                                @for total in figures.totals { td.num { (format::value(total)) } }
                            }
                        }
                        @if overview.is_empty() {
                            tr.empty { td colspan=(5 + COUNTERS.len()) { "No sample in this time frame." } }
                        }
                    }
                }
            }
        }
    };
    Ok(context.render("Monitoring", Nav::Monitoring, None, content))
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(
        || "—".to_string(),
        |value| format!("{}%", format::value(value)),
    )
}

fn overview(buckets: &HostBuckets) -> BTreeMap<String, Overview> {
    buckets
        .iter()
        .map(|(host, series)| {
            let mut figures = Overview::default();
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

/// Per point, the mean over hosts of each host's average.
fn average_across_hosts(buckets: &HostBuckets, field: &str) -> Vec<(Millis, f64)> {
    let mut points: BTreeMap<Millis, (f64, u32)> = BTreeMap::new();
    for series in buckets.values() {
        for (at, bucket) in series {
            if let Some(stats) = bucket.fields.get(field) {
                let point = points.entry(*at).or_default();
                point.0 += stats.avg();
                point.1 += 1;
            }
        }
    }
    points
        .into_iter()
        .map(|(at, (sum, hosts))| (at, sum / f64::from(hosts)))
        .collect()
}

/// Per point, the sum over hosts.
fn total_across_hosts(buckets: &HostBuckets, field: &str) -> Vec<(Millis, f64)> {
    let mut points: BTreeMap<Millis, f64> = BTreeMap::new();
    for series in buckets.values() {
        for (at, bucket) in series {
            if let Some(stats) = bucket.fields.get(field) {
                *points.entry(*at).or_default() += stats.sum;
            }
        }
    }
    points.into_iter().collect()
}

fn host_series(buckets: &HostBuckets, host: &str, field: &str) -> Vec<(Millis, f64)> {
    buckets.get(host).map_or_else(Vec::new, |series| {
        series
            .iter()
            .filter_map(|(at, bucket)| Some((*at, bucket.fields.get(field)?.avg())))
            .collect()
    })
}
