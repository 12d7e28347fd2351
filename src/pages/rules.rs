//! The rules page: each rule's state per host, and its aggregate over the
//! time frame against the threshold.
//!
//! The history is not stored: it is computed again, by the same engine that
//! raises incidents, from the stored samples. What the chart shows is what
//! the rule saw, tick by tick.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, Response};
use maud::html;
use serde::{Deserialize, Serialize};

use super::PageQuery;
use super::chart::{Colour, Line, TimeChart, WIDE};
use super::{
    FrameParams, Nav, PageContext, PageError, REFRESH_SECONDS, badge, condition, figure, format,
    frame_selector, given, host_link, legend, refresh_toggle, rule_anchor,
};
use crate::config::{Operand, Rule};
use crate::duration::Millis;
use crate::engine::{PairState, PairStatus};
use crate::service::{RuleStates, Service};

/// The frames of this page: up to a day, since its history is computed.
const FRAMES: &[(&str, Millis)] = super::FRAMES.split_at(6).0;
/// About this many points per chart.
const POINTS: i64 = 100;
/// The most hosts drawn on a rule's chart.
const CHART_HOSTS: usize = 10;
/// The most hosts listed by name among those with no incident.
const FOLDED_SHOWN: usize = 50;
/// The most rows of a rule's table (firing first): a fleet gone silent
/// must not make the page weigh megabytes.
const ROWS_SHOWN: usize = 30;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct RulesParams {
    #[serde(flatten)]
    frame: FrameParams,
    /// `on` to reload the page every few seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh: Option<String>,
}

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
    let (rules, alerting) =
        service.read_config(|config| (config.alerting.rules.clone(), config.alerting.enabled));
    // The live state, as the watcher last evaluated it.
    let RuleStates {
        evaluated,
        hosts: states,
        ..
    } = service.rule_states();
    let queries = service.queries();
    let incidents = queries.incidents(frame.from, frame.to)?;
    let fired: BTreeSet<(&str, &str)> = incidents
        .active
        .iter()
        .chain(&incidents.resolved)
        .map(|incident| (&*incident.rule_name, &*incident.host_name))
        .collect();
    let sorted: Vec<RuleHosts> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| RuleHosts::sort(index, rule, &states, &fired))
        .collect();
    // Per host drawn, the rules it is drawn for.
    let mut drawn: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (place, hosts) in sorted.iter().enumerate() {
        for host in &hosts.charted {
            drawn.entry(host).or_default().push(place);
        }
    }
    let history = queries.rule_history(&rules, (frame.from, frame.to), step, &drawn)?;
    let frame_name = frame.preset;
    let refreshing = given(&params.refresh) == Some("on");
    let content = html! {
        div.toolbar {
            (frame_selector("/rules", &frame, FRAMES, params, |p, f| p.frame = f, &[("refresh", given(&params.refresh))]))
            (refresh_toggle(refreshing, super::href_with("/rules", params, |p| p.refresh = (!refreshing).then(|| "on".to_string()))))
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
            @let hosts = &sorted[index];
            section.rule id=(rule_anchor(index)) {
                h2 { (rule.name) }
                p { code { (condition(rule)) } }
                p.counts { (hosts.counts()) }
                @if hosts.shown.is_empty() {
                    p.empty { "No host fired in this time frame." }
                } @else {
                    (host_table(rule, &hosts.shown[..hosts.shown.len().min(ROWS_SHOWN)], frame_name))
                    @if hosts.shown.len() > ROWS_SHOWN {
                        p.hint {
                            "The first " (ROWS_SHOWN) " of " (format::count(hosts.shown.len()))
                            ", firing first; the others: "
                            a href=(super::href("/incidents", &[("frame", frame_name), ("rule", Some(rule.name.as_str()))])) { "this rule's incidents" }
                            ", and the silent hosts first on "
                            a href="/monitoring" { "the monitoring page" } "."
                        }
                    }
                }
                @if !hosts.folded.is_empty() {
                    details.hosts {
                        summary { (format::count(hosts.folded.len())) " other host" @if hosts.folded.len() != 1 { "s" } ": no incident in this time frame" }
                        (folded_hosts(rule, &hosts.folded[..hosts.folded.len().min(FOLDED_SHOWN)]))
                        @if hosts.folded.len() > FOLDED_SHOWN {
                            p.hint { "The " (FOLDED_SHOWN) " nearest the threshold; "
                                (format::count(hosts.folded.len() - FOLDED_SHOWN)) " more are further from it. "
                                "A host's own view on the monitoring page shows its figures." }
                        }
                    }
                }
                (rule_chart(rule, &history[index], &hosts.charted, hosts.total, (frame.from, frame.to), step))
            }
        }
    };
    let refresh = refreshing.then_some(REFRESH_SECONDS);
    Ok(context.render("Rules", Nav::Rules, refresh, content))
}

/// A rule's hosts, in the order an operator looks at them.
struct RuleHosts<'s> {
    /// Firing first, then in cooldown, then the others that fired in the frame.
    shown: Vec<(&'s str, &'s PairStatus)>,
    /// The hosts with no incident in the frame, by name.
    folded: Vec<(&'s str, &'s PairStatus)>,
    /// The hosts on the chart: those shown, then the others by name, up to
    /// [`CHART_HOSTS`].
    charted: Vec<&'s str>,
    total: usize,
    states: [usize; 5],
}

impl<'s> RuleHosts<'s> {
    fn sort(
        index: usize,
        rule: &Rule,
        states: &'s [(String, Vec<PairStatus>)],
        fired: &BTreeSet<(&str, &str)>,
    ) -> Self {
        let statuses: Vec<(&str, &PairStatus)> = states
            .iter()
            .filter_map(|(host, statuses)| Some((host.as_str(), statuses.get(index)?)))
            .collect();
        let rank = |(host, status): &(&str, &PairStatus)| match status.state {
            PairState::Firing => Some(0),
            PairState::Pending => Some(1),
            PairState::Cooldown => Some(2),
            // A host whose window is empty (silent, or not sending the
            // field) is not folded away with the healthy ones.
            PairState::NoData => Some(3),
            _ if fired.contains(&(rule.name.as_str(), *host)) => Some(4),
            _ => None,
        };
        let mut shown: Vec<(&str, &PairStatus)> = statuses
            .iter()
            .filter(|pair| rank(pair).is_some())
            .copied()
            .collect();
        shown.sort_by_key(|pair| (rank(pair), pair.0));
        // Nearest the threshold first: the hosts that may fire next.
        let mut folded: Vec<(&str, &PairStatus)> = statuses
            .iter()
            .filter(|pair| rank(pair).is_none())
            .copied()
            .collect();
        let nearness = |status: &PairStatus| {
            status.aggregate.map(|value| match rule.operand {
                Operand::EqualOrMoreThan => -value,
                Operand::EqualOrLessThan => value,
            })
        };
        folded.sort_by(|a, b| match (nearness(a.1), nearness(b.1)) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.0.cmp(b.0)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.0.cmp(b.0),
        });
        let mut charted: Vec<&str> = shown
            .iter()
            .chain(&folded)
            .map(|(host, _)| *host)
            .take(CHART_HOSTS)
            .collect();
        charted.sort_unstable();
        let mut counts = [0; 5];
        for (_, status) in &statuses {
            let slot = match status.state {
                PairState::Firing => 0,
                PairState::Pending => 1,
                PairState::Cooldown => 2,
                PairState::NoData => 3,
                PairState::Ok => 4,
            };
            counts[slot] += 1;
        }
        RuleHosts {
            shown,
            folded,
            charted,
            total: statuses.len(),
            states: counts,
        }
    }

    /// `2 firing · 1 in cooldown · 97 ok`
    fn counts(&self) -> String {
        let labels = ["firing", "pending", "in cooldown", "with no data", "ok"];
        let parts: Vec<String> = self
            .states
            .iter()
            .zip(labels)
            .filter(|(count, _)| **count > 0)
            .map(|(count, label)| format!("{} {label}", format::count(*count)))
            .collect();
        match parts.is_empty() {
            true => "No host has reported yet.".to_string(),
            false => parts.join(" · "),
        }
    }
}

/// A row per host: the aggregate against the threshold, the samples in the
/// window, the state and its incident.
fn host_table(rule: &Rule, hosts: &[(&str, &PairStatus)], frame: Option<&str>) -> maud::Markup {
    html! {
        div.scroll {
            table.rule-hosts {
                thead { tr {
                    th { "Host" } th { "State" } th.num { "Aggregate" } th.num { "Samples" } th { "" }
                } }
                tbody {
                    @for (host, status) in hosts {
                        tr {
                            td { (host_link(host, frame)) }
                            td { (badge(status.state.as_str())) }
                            td.num { @match status.aggregate {
                                Some(value) => (format::against(value, rule)),
                                None => { "— " (rule.operand.symbol()) " " (format::measured(rule.threshold, rule)) },
                            } }
                            td.num { (status.samples) }
                            td {
                                @if let Some(open) = &status.open {
                                    a href={ "/incidents/" (open.id) } { "open incident" }
                                    @if let Some(since) = status.clear_since {
                                        " · clear since " (format::time(since)) ", resolves at "
                                        (format::time(since + rule.options.keep_firing_for)) " if it stays clear"
                                    }
                                } @else if let Some(since) = status.pending_since {
                                    "pending since " (format::time(since)) ", opens at "
                                    (format::time(opens_at(rule, status, since))) " if it holds"
                                } @else if let Some(end) = status.last_end.filter(|_| status.state == PairState::Cooldown) {
                                    "until " (format::time(end + rule.cooldown))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// When a pending pair opens if its condition goes on holding: `for` after
/// it started to hold, and not before its cooldown ends.
fn opens_at(
    rule: &Rule,
    status: &PairStatus,
    since: crate::duration::Millis,
) -> crate::duration::Millis {
    let held = since + rule.options.hold_for;
    status
        .last_end
        .map_or(held, |end| held.max(end + rule.cooldown))
}

/// The quiet hosts, compactly (a hundred hosts under each of a dozen rules
/// must not make the page heavy): each name and its aggregate, or "no data".
fn folded_hosts(rule: &Rule, hosts: &[(&str, &PairStatus)]) -> maud::Markup {
    html! {
        ul.folded {
            @for (host, status) in hosts {
                li {
                    (host) " "
                    @match status.aggregate {
                        Some(value) => span.num { (format::measured(value, rule)) },
                        None => span.nodata { "no data" },
                    }
                }
            }
        }
    }
}

/// The chart of a rule's aggregate for `hosts`.
fn rule_chart(
    rule: &Rule,
    history: &BTreeMap<String, Vec<(Millis, f64)>>,
    hosts: &[&str],
    total: usize,
    (from, to): (Millis, Millis),
    step: Millis,
) -> maud::Markup {
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
                points: history.get(*host).cloned().unwrap_or_default(),
            })
            .collect(),
    };
    let mut caption = format!(
        "{}({}) over {} per host, the value closest to firing in each point; the dashed line is the threshold.",
        rule.aggregation,
        rule.field,
        crate::duration::HumanDuration(rule.timeframe)
    );
    if total > hosts.len() {
        caption.push_str(&format!(
            " {} of {total} hosts: those that fired in the frame first.",
            hosts.len()
        ));
    }
    html! {
        (figure(&chart, &caption))
        (legend(hosts.iter().enumerate().map(|(index, host)| (*host, Colour::nth(index)))))
    }
}
