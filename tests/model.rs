//! The incremental engine against a brute-force model of what docs/engine.md says
//! from Ticks to Incidents.
//!
//! The model keeps every sample ever ingested and, at each tick, recomputes
//! each window from scratch by filtering and sorting them. Random traces mix
//! samples in and out of order, late (older than a tick already evaluated) and
//! early (newer than the next tick), duplicate timestamps, samples without the
//! rule's field, and silences long enough for hosts to be forgotten. Values
//! are small multiples of 1/4 so that every sum is exact in both.
//!
//! The model follows docs/engine.md's rules for rule options literally, for
//! every rule: with the options at their defaults they must give exactly
//! the original's incidents, which the first property checks; the second
//! draws every option.

mod common;

use std::collections::BTreeMap;

use alertd::config::{Aggregation, NoData, Operand, Rule, RuleOptions};
use alertd::duration::Millis;
use alertd::engine::Engine;
use alertd::incident::{SequentialIds, Transition};
use alertd::sample::Sample;
use proptest::prelude::*;

const WATCHER: Millis = 10;

#[derive(Debug, Clone)]
struct ModelSample {
    host: String,
    ts: Millis,
    /// (field, value); a sample may carry neither, one or both fields.
    metrics: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Default)]
struct Pair {
    /// Start, trigger value (none: opened on no data), pendingSince.
    open: Option<(Millis, Option<f64>, Option<Millis>)>,
    last_end: Option<Millis>,
    pending_since: Option<Millis>,
    clear_since: Option<Millis>,
}

/// What a transition says, without the random id: kind, tick, rule, host,
/// start, end, trigger value (none: no data), pendingSince.
type Event = (
    &'static str,
    Millis,
    usize,
    String,
    Millis,
    Option<Millis>,
    Option<f64>,
    Option<Millis>,
);

fn event(t: &Transition) -> Event {
    (
        t.kind.as_str(),
        t.at,
        t.rule,
        t.incident.host_name.to_string(),
        t.incident.start_time,
        t.incident.end_time,
        Some(t.incident.trigger_value).filter(|value| !value.is_nan()),
        t.incident
            .details
            .as_ref()
            .and_then(|details| details.pending_since),
    )
}

struct Model {
    rules: Vec<Rule>,
    retention: Millis,
    samples: Vec<ModelSample>,
    pairs: BTreeMap<(usize, String), Pair>,
}

/// The values of `rule`'s field on `host` in its window at `t`, in time
/// order (a stable sort keeps arrival order for ties).
fn window(samples: &[ModelSample], rule: &Rule, host: &str, t: Millis) -> Vec<f64> {
    let mut window: Vec<&ModelSample> = samples
        .iter()
        .filter(|s| s.host == host && t - rule.timeframe < s.ts && s.ts <= t)
        .collect();
    window.sort_by_key(|s| s.ts);
    window
        .iter()
        .filter_map(|s| {
            s.metrics
                .iter()
                .find(|(f, _)| *f == rule.field)
                .map(|&(_, v)| v)
        })
        .collect()
}

impl Model {
    fn aggregate(rule: &Rule, values: &[f64]) -> Option<f64> {
        let n = values.len();
        let sum = || values.iter().fold(0.0, |acc, v| acc + v);
        match rule.aggregation {
            Aggregation::Count => Some(n as f64),
            Aggregation::Sum => Some(sum()),
            _ if n == 0 => None,
            Aggregation::Avg => Some(sum() / n as f64),
            Aggregation::Min => values.iter().copied().reduce(f64::min),
            Aggregation::Max => values.iter().copied().reduce(f64::max),
            Aggregation::Last => values.last().copied(),
        }
    }

    /// Each rule's aggregate on `host` at `t`; none when the host has no
    /// sample by `t` or is forgotten.
    fn aggregates(&self, host: &str, t: Millis) -> Vec<Option<f64>> {
        let newest = self
            .samples
            .iter()
            .filter(|s| s.host == host && s.ts <= t)
            .map(|s| s.ts)
            .max();
        if newest.is_none_or(|newest| newest <= t - self.retention) {
            return Vec::new();
        }
        self.rules
            .iter()
            .map(|rule| Self::aggregate(rule, &window(&self.samples, rule, host, t)))
            .collect()
    }

    fn evaluate(&mut self, t: Millis) -> Vec<Event> {
        let mut events = Vec::new();
        let mut latest: BTreeMap<&str, Millis> = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.ts <= t) {
            let entry = latest.entry(&s.host).or_insert(s.ts);
            *entry = (*entry).max(s.ts);
        }
        for (rule_index, rule) in self.rules.iter().enumerate() {
            for (&host, &newest) in &latest {
                let pair = self
                    .pairs
                    .entry((rule_index, host.to_string()))
                    .or_default();
                let mut resolve = |pair: &mut Pair| {
                    if let Some((start, trigger, pending)) = pair.open.take() {
                        pair.last_end = Some(t);
                        events.push((
                            "resolved",
                            t,
                            rule_index,
                            host.to_string(),
                            start,
                            Some(t),
                            trigger,
                            pending,
                        ));
                    }
                    pair.clear_since = None;
                };
                if newest <= t - self.retention {
                    resolve(pair); // forgotten
                    pair.pending_since = None;
                    continue;
                }
                let aggregate = Self::aggregate(rule, &window(&self.samples, rule, host, t));
                let options = &rule.options;
                let recovery = options.recovery.unwrap_or(rule.threshold);
                let holds = match aggregate {
                    Some(a) => match rule.operand {
                        Operand::EqualOrMoreThan => a >= rule.threshold,
                        Operand::EqualOrLessThan => a <= rule.threshold,
                    },
                    None => options.no_data == NoData::Open,
                };
                let clear = match aggregate {
                    Some(a) => match rule.operand {
                        Operand::EqualOrMoreThan => a < recovery,
                        Operand::EqualOrLessThan => a > recovery,
                    },
                    None => options.no_data == NoData::Resolve,
                };
                if pair.open.is_none() {
                    if !holds {
                        pair.pending_since = None;
                        continue;
                    }
                    let since = *pair.pending_since.get_or_insert(t);
                    let cooling = pair.last_end.is_some_and(|end| t < end + rule.cooldown);
                    if t - since >= options.hold_for && !cooling {
                        let pending = (options.hold_for > 0).then_some(since);
                        pair.open = Some((t, aggregate, pending));
                        pair.pending_since = None;
                        pair.clear_since = None;
                        events.push((
                            "opened",
                            t,
                            rule_index,
                            host.to_string(),
                            t,
                            None,
                            aggregate,
                            pending,
                        ));
                    }
                } else if clear {
                    let since = *pair.clear_since.get_or_insert(t);
                    if t - since >= options.keep_firing_for {
                        resolve(pair);
                    }
                } else {
                    pair.clear_since = None;
                }
            }
        }
        events.sort_by(|a, b| {
            a.2.cmp(&b.2)
                .then_with(|| a.3.as_bytes().cmp(b.3.as_bytes()))
        });
        events
    }
}

/// One step of a trace: samples arriving, then a tick.
#[derive(Debug, Clone)]
struct TraceStep {
    /// (host, ts relative to the tick, value of f, value of g)
    arrivals: Vec<(usize, Millis, Option<f64>, Option<f64>)>,
    /// How many watcher intervals pass before the tick (0 re-evaluates the same tick).
    advance: i64,
}

fn quarter() -> impl Strategy<Value = f64> {
    (-20i32..80).prop_map(|q| f64::from(q) / 4.0)
}

/// A rule's evaluation options (`for`, `keepFiringFor`, how far
/// `recoveryValue` is from `value`, `noData`): drawn, or all at their
/// defaults.
fn options_strategy(drawn: bool) -> BoxedStrategy<(Millis, Millis, Option<f64>, NoData)> {
    if !drawn {
        return Just((0, 0, None, NoData::Keep)).boxed();
    }
    (
        prop::sample::select(vec![0i64, 0, 10, 20, 35]),
        prop::sample::select(vec![0i64, 0, 10, 25]),
        prop::option::weighted(0.5, 0i32..20),
        prop::sample::select(NoData::ALL.to_vec()),
    )
        .prop_map(|(hold_for, keep, apart, no_data)| {
            (hold_for, keep, apart.map(|q| f64::from(q) / 4.0), no_data)
        })
        .boxed()
}

fn rule_strategy(index: usize) -> impl Strategy<Value = Rule> {
    rule_with_options(index, false)
}

fn rule_with_options(index: usize, drawn: bool) -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(Aggregation::ALL.to_vec()),
        prop::bool::ANY,
        quarter(),
        prop::sample::select(vec![5i64, 10, 20, 25, 30, 50, 100]),
        prop::sample::select(vec![0i64, 10, 15, 20, 35]),
        prop::bool::ANY,
        options_strategy(drawn),
    )
        .prop_map(
            move |(aggregation, more, threshold, timeframe, cooldown, on_g, options)| {
                let threshold = match aggregation {
                    Aggregation::Count => threshold.abs().floor() / 2.0,
                    _ => threshold,
                };
                let (hold_for, keep_firing_for, apart, no_data) = options;
                Rule {
                    name: format!("rule{index}"),
                    field: if on_g { "g" } else { "f" }.to_string(),
                    aggregation,
                    operand: if more {
                        Operand::EqualOrMoreThan
                    } else {
                        Operand::EqualOrLessThan
                    },
                    threshold,
                    timeframe,
                    cooldown,
                    options: RuleOptions {
                        hold_for,
                        keep_firing_for,
                        // On the side the operand allows.
                        recovery: apart.map(|apart| {
                            if more {
                                threshold - apart
                            } else {
                                threshold + apart
                            }
                        }),
                        no_data,
                        ..RuleOptions::default()
                    },
                }
            },
        )
}

fn trace_strategy() -> impl Strategy<Value = Vec<TraceStep>> {
    let arrival = (
        0usize..3,
        // Mostly around the tick; sometimes late (up to 6 ticks back) or early.
        prop_oneof![4 => -15i64..=5, 1 => -60i64..=25],
        prop::option::weighted(0.8, quarter()),
        prop::option::weighted(0.6, quarter()),
    );
    let step = (
        prop::collection::vec(arrival, 0..4),
        prop_oneof![8 => Just(1i64), 1 => Just(0i64), 1 => 2i64..12],
    )
        .prop_map(|(arrivals, advance)| TraceStep { arrivals, advance });
    prop::collection::vec(step, 1..60)
}

fn scenario() -> impl Strategy<Value = (Vec<Rule>, Millis, Vec<TraceStep>)> {
    (
        (1usize..4).prop_flat_map(|n| (0..n).map(rule_strategy).collect::<Vec<_>>()),
        prop::sample::select(vec![20i64, 45, 100, 100_000]),
        trace_strategy(),
    )
}

fn scenario_with_options() -> impl Strategy<Value = (Vec<Rule>, Millis, Vec<TraceStep>)> {
    (
        (1usize..4).prop_flat_map(|n| {
            (0..n)
                .map(|index| rule_with_options(index, true))
                .collect::<Vec<_>>()
        }),
        prop::sample::select(vec![20i64, 45, 100, 100_000]),
        trace_strategy(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_brute_force((rules, retention, trace) in scenario()) {
        check(&rules, retention, &trace)?;
    }

    #[test]
    fn engine_with_rule_options_matches_brute_force((rules, retention, trace) in scenario_with_options()) {
        check(&rules, retention, &trace)?;
    }
}

/// Runs `trace` through the engine and the model; fails at the first tick
/// where they differ.
fn check(rules: &[Rule], retention: Millis, trace: &[TraceStep]) -> Result<(), TestCaseError> {
    {
        let mut engine = Engine::new(rules, retention);
        // Fed the same samples, but only asked for its aggregates, one host
        // at a time, as a rule's chart asks.
        let mut drawn = Engine::new(rules, retention);
        let mut model = Model {
            rules: rules.to_vec(),
            retention,
            samples: Vec::new(),
            pairs: BTreeMap::new(),
        };
        let mut ids = SequentialIds::default();
        let mut open_ids: BTreeMap<(usize, String), String> = BTreeMap::new();
        let mut tick: Millis = 1_000;
        for (step_index, step) in trace.iter().enumerate() {
            tick += step.advance * WATCHER;
            for &(host, offset, f, g) in &step.arrivals {
                let ts = (tick + offset).max(0);
                let metrics: Vec<(String, f64)> = [("f", f), ("g", g)]
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| (name.to_string(), v)))
                    .collect();
                let sample = ModelSample {
                    host: format!("h{host}"),
                    ts,
                    metrics,
                };
                let fed = Sample {
                    host: sample.host.clone(),
                    ts,
                    metrics: sample.metrics.clone(),
                };
                engine.ingest(&fed);
                drawn.ingest(&fed);
                model.samples.push(sample);
            }
            let mut out = Vec::new();
            engine.evaluate(tick, &mut ids, &mut out).unwrap();
            let got: Vec<Event> = out.iter().map(event).collect();
            let expected = model.evaluate(tick);
            prop_assert_eq!(&got, &expected, "tick {} (step {})", tick, step_index);
            for host in ["h0", "h1", "h2"] {
                let mut aggregates = Vec::new();
                drawn.aggregates_at(tick, host, &mut aggregates).unwrap();
                let expected = model.aggregates(host, tick);
                prop_assert_eq!(
                    &aggregates,
                    &expected,
                    "aggregates of {} at tick {} (step {})",
                    host,
                    tick,
                    step_index
                );
            }
            // The state that is stored with the tick: each pair's
            // pendingSince and clearSince, as the model has them. (A rule
            // without options keeps none: with `for` 0 nothing reads it.)
            for ((rule, host), pair) in &model.pairs {
                if rules[*rule].is_plain() {
                    continue;
                }
                let status = engine
                    .host_status(host)
                    .map(|statuses| (statuses[*rule].pending_since, statuses[*rule].clear_since));
                prop_assert_eq!(
                    status.unwrap_or((None, None)),
                    (pair.pending_since, pair.clear_since),
                    "rule {} on {} at tick {} (step {})",
                    rule,
                    host,
                    tick,
                    step_index
                );
            }
            // A resolved incident carries the id it was opened with.
            for t in &out {
                let key = (t.rule, t.incident.host_name.to_string());
                if t.incident.is_open() {
                    open_ids.insert(key, t.incident.id.clone());
                } else {
                    prop_assert_eq!(open_ids.remove(&key), Some(t.incident.id.clone()));
                }
            }
        }
    }
    Ok(())
}
