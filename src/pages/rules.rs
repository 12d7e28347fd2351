//! The rules page: each rule's state per host, and its aggregate over the
//! time frame against the threshold.
//!
//! The history is not stored: it is computed again, by the same engine that
//! raises incidents, from the stored samples. What the chart shows is what
//! the rule saw, tick by tick.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use maud::html;
use serde::{Deserialize, Serialize};

use super::PageQuery;
use super::chart::{Colour, Line, TimeChart, WIDE};
use super::{
    FrameParams, Nav, PageContext, PageError, badge, condition, figure, format, frame_selector,
    legend,
};
use crate::config::{Operand, Rule};
use crate::duration::Millis;
use crate::engine::{Engine, PairStatus};
use crate::incident::SequentialIds;
use crate::service::{RuleStates, Service};
use crate::store::{Store, StoreError};

/// The frames of this page: up to a day, since its history is computed.
const FRAMES: &[(&str, Millis)] = super::FRAMES.split_at(5).0;
/// About this many points per chart.
const POINTS: i64 = 150;
/// The most hosts drawn on a rule's chart.
const CHART_HOSTS: usize = 10;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct RulesParams {
    #[serde(flatten)]
    frame: FrameParams,
}

/// A rule's aggregate per host at each point: `history[rule][host]`.
type History = Vec<BTreeMap<String, Vec<(Millis, f64)>>>;

pub(super) async fn page(
    State(service): State<Arc<Service>>,
    PageQuery(params): PageQuery<RulesParams>,
) -> Response {
    PageContext::new(service)
        .respond(move |context| render(context, &params))
        .await
}

fn render(context: &PageContext, params: &RulesParams) -> Result<Html<String>, PageError> {
    let service = &context.service;
    let frame = params.frame.resolve(service.now(), FRAMES)?;
    let step = (((frame.to - frame.from) / POINTS).max(1000) + 999) / 1000 * 1000;
    let (rules, retention, watcher_interval, alerting) = service.read_config(|config| {
        (
            config.alerting.rules.clone(),
            config.monitoring.retention_period,
            config.alerting.watcher_interval,
            config.alerting.enabled,
        )
    });
    let history = history(
        service.store(),
        &rules,
        retention,
        watcher_interval,
        (frame.from, frame.to),
        step,
    )?;
    // The live state, as the watcher last evaluated it.
    let RuleStates {
        evaluated,
        hosts: states,
        ..
    } = service.rule_states();
    let content = html! {
        div.toolbar {
            (frame_selector("/rules", &frame, FRAMES, params, |p, f| p.frame = f, &[]))
        }
        p.range {
            @if !alerting { b { "Alerting is disabled: " } "the rules are not evaluated. " }
            @match evaluated {
                Some(at) => { "Last evaluated at " (format::time(at)) " UTC. " },
                None => "Not evaluated yet. ",
            }
            "Charts from " (format::time(frame.from)) " to " (format::time(frame.to)) " UTC."
        }
        @if rules.is_empty() {
            p.empty { "No rule is configured (alerting.rules)." }
        }
        @for (index, rule) in rules.iter().enumerate() {
            section.rule {
                h2 { (rule.name) }
                p { code { (condition(rule)) } }
                div.scroll {
                    table.rule-hosts {
                        thead { tr {
                            th { "Host" } th.num { "Aggregate" } th.num { "Threshold" } th.num { "Samples" } th { "State" } th { "" }
                        } }
                        tbody {
                            @for (host, statuses) in &states {
                                @if let Some(status) = statuses.get(index) {
                                    tr {
                                        td { (host) }
                                        td.num { @match status.aggregate {
                                            Some(value) => (format::value(value)),
                                            None => "—",
                                        } }
                                        td.num { (rule.operand.symbol()) " " (format::value(rule.threshold)) }
                                        td.num { (status.samples) }
                                        td { (badge(status.state.as_str())) }
                                        td {
                                            @if let Some(open) = &status.open {
                                                a href={ "/incidents/" (open.id) } { "open incident" }
                                            } @else if let Some(end) = status.last_end.filter(|_| status.state.as_str() == "cooldown") {
                                                "until " (format::time(end + rule.cooldown))
                                            }
                                        }
                                    }
                                }
                            }
                            @if states.is_empty() {
                                tr.empty { td colspan="6" { "No host has reported yet." } }
                            }
                        }
                    }
                }
                (rule_chart(rule, &history[index], &firing(&states, index), (frame.from, frame.to), step))
            }
        }
    };
    Ok(context.render("Rules", Nav::Rules, None, content))
}

/// The hosts on which rule `index` has an open incident.
fn firing(states: &[(String, Vec<PairStatus>)], index: usize) -> Vec<&str> {
    states
        .iter()
        .filter(|(_, statuses)| {
            statuses
                .get(index)
                .is_some_and(|status| status.open.is_some())
        })
        .map(|(host, _)| host.as_str())
        .collect()
}

/// The chart of a rule's aggregate: the firing hosts first, then the others
/// in name order, up to [`CHART_HOSTS`].
fn rule_chart(
    rule: &Rule,
    history: &BTreeMap<String, Vec<(Millis, f64)>>,
    firing: &[&str],
    (from, to): (Millis, Millis),
    step: Millis,
) -> maud::Markup {
    let mut hosts: Vec<&String> = history
        .keys()
        .filter(|host| firing.contains(&host.as_str()))
        .chain(
            history
                .keys()
                .filter(|host| !firing.contains(&host.as_str())),
        )
        .take(CHART_HOSTS)
        .collect();
    hosts.sort();
    let chart = TimeChart {
        from,
        to,
        step,
        width: WIDE,
        height: 200,
        top: None,
        unit: "",
        threshold: Some(rule.threshold),
        lines: hosts
            .iter()
            .enumerate()
            .map(|(index, host)| Line {
                colour: Colour::nth(index),
                points: history[*host].clone(),
            })
            .collect(),
    };
    let mut caption = format!(
        "{}({}) over {} per host, the value closest to firing in each point; the dashed line is the threshold.",
        rule.aggregation,
        rule.field,
        crate::duration::HumanDuration(rule.timeframe)
    );
    if history.len() > CHART_HOSTS {
        caption.push_str(&format!(
            " The first {CHART_HOSTS} of {} hosts.",
            history.len()
        ));
    }
    html! {
        (figure(chart.svg(), &caption))
        (legend(hosts.iter().enumerate().map(|(index, host)| (host.as_str(), Colour::nth(index)))))
    }
}

/// The most evaluations per host the history may take.
const MAX_TICKS: i64 = 20_000;

/// Runs the stored samples of `[from - longest timeframe, to]` through a
/// fresh engine with `rules`, evaluating at the watcher's ticks (coarser
/// over a long frame, at most [`MAX_TICKS`]), and keeps per chart point of
/// `step` the value closest to firing: the highest for `>=`, the lowest for
/// `<=`. A crossing between two points still shows.
fn history(
    store: &dyn Store,
    rules: &[Rule],
    retention: Millis,
    watcher_interval: Millis,
    (from, to): (Millis, Millis),
    step: Millis,
) -> Result<History, StoreError> {
    let mut history: History = vec![BTreeMap::new(); rules.len()];
    if rules.is_empty() {
        return Ok(history);
    }
    let longest = rules.iter().map(|rule| rule.timeframe).max().unwrap_or(0);
    let interval = watcher_interval.max((to - from) / MAX_TICKS).max(1);
    let mut engine = Engine::new(rules, retention);
    let mut ids = SequentialIds(0);
    let mut transitions = Vec::new();
    let mut next_tick = from.div_euclid(interval) * interval;
    let mut evaluate = |engine: &mut Engine, at: Millis, history: &mut History| {
        transitions.clear();
        // Ticks only move forward here, the one thing evaluate checks.
        if at < from || engine.evaluate(at, &mut ids, &mut transitions).is_err() {
            return;
        }
        let point = from + (at - from) / step * step;
        for host in engine.host_names() {
            let Some(statuses) = engine.host_status(host) else {
                continue;
            };
            for ((rule, status), series) in rules.iter().zip(&statuses).zip(history.iter_mut()) {
                let Some(value) = status.aggregate else {
                    continue;
                };
                let points = match series.get_mut(host) {
                    Some(points) => points,
                    None => series.entry(host.to_string()).or_default(),
                };
                match points.last_mut() {
                    Some((last, kept)) if *last == point => {
                        // holds(value) against the kept one: the worse of two.
                        let worse = match rule.operand {
                            Operand::EqualOrMoreThan => value > *kept,
                            Operand::EqualOrLessThan => value < *kept,
                        };
                        if worse {
                            *kept = value;
                        }
                    }
                    _ => points.push((point, value)),
                }
            }
        }
    };
    store.scan_samples(from.saturating_sub(longest), to, &mut |sample| {
        while next_tick < sample.ts && next_tick <= to {
            evaluate(&mut engine, next_tick, &mut history);
            next_tick += interval;
        }
        engine.ingest(&sample);
    })?;
    while next_tick <= to {
        evaluate(&mut engine, next_tick, &mut history);
        next_tick += interval;
    }
    Ok(history)
}
