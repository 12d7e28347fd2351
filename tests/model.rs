//! The incremental engine against a brute-force model of what docs/engine.md says
//! from Ticks to Incidents.
//!
//! The model keeps every sample ever ingested and, at each tick, recomputes
//! each window from scratch by filtering and sorting them. Random traces mix
//! samples in and out of order, late (older than a tick already evaluated) and
//! early (newer than the next tick), duplicate timestamps, samples without the
//! rule's field, and silences long enough for hosts to be forgotten. Values
//! are small multiples of 1/4 so that every sum is exact in both.

mod common;

use std::collections::BTreeMap;

use alertd::config::{Aggregation, Operand, Rule};
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
    open: Option<(Millis, f64)>,
    last_end: Option<Millis>,
}

/// What a transition says, without the random id.
type Event = (
    &'static str,
    Millis,
    usize,
    String,
    Millis,
    Option<Millis>,
    f64,
);

fn event(t: &Transition) -> Event {
    (
        t.kind.as_str(),
        t.at,
        t.rule,
        t.incident.host_name.to_string(),
        t.incident.start_time,
        t.incident.end_time,
        t.incident.trigger_value,
    )
}

struct Model {
    rules: Vec<Rule>,
    retention: Millis,
    samples: Vec<ModelSample>,
    pairs: BTreeMap<(usize, String), Pair>,
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
                    if let Some((start, trigger)) = pair.open.take() {
                        pair.last_end = Some(t);
                        events.push((
                            "resolved",
                            t,
                            rule_index,
                            host.to_string(),
                            start,
                            Some(t),
                            trigger,
                        ));
                    }
                };
                if newest <= t - self.retention {
                    resolve(pair); // forgotten
                    continue;
                }
                // Stable sort by ts keeps arrival order for ties.
                let mut window: Vec<&ModelSample> = self
                    .samples
                    .iter()
                    .filter(|s| s.host == host && t - rule.timeframe < s.ts && s.ts <= t)
                    .collect();
                window.sort_by_key(|s| s.ts);
                let values: Vec<f64> = window
                    .iter()
                    .filter_map(|s| {
                        s.metrics
                            .iter()
                            .find(|(f, _)| *f == rule.field)
                            .map(|&(_, v)| v)
                    })
                    .collect();
                let Some(aggregate) = Self::aggregate(rule, &values) else {
                    continue;
                };
                let holds = rule.holds(aggregate);
                match pair.open {
                    None if holds => {
                        if pair.last_end.is_some_and(|end| t < end + rule.cooldown) {
                            continue;
                        }
                        pair.open = Some((t, aggregate));
                        events.push((
                            "opened",
                            t,
                            rule_index,
                            host.to_string(),
                            t,
                            None,
                            aggregate,
                        ));
                    }
                    Some(_) if !holds => resolve(pair),
                    _ => {}
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

fn rule_strategy(index: usize) -> impl Strategy<Value = Rule> {
    (
        prop::sample::select(Aggregation::ALL.to_vec()),
        prop::bool::ANY,
        quarter(),
        prop::sample::select(vec![5i64, 10, 20, 25, 30, 50, 100]),
        prop::sample::select(vec![0i64, 10, 15, 20, 35]),
        prop::bool::ANY,
    )
        .prop_map(
            move |(aggregation, more, threshold, timeframe, cooldown, on_g)| Rule {
                name: format!("rule{index}"),
                field: if on_g { "g" } else { "f" }.to_string(),
                aggregation,
                operand: if more {
                    Operand::EqualOrMoreThan
                } else {
                    Operand::EqualOrLessThan
                },
                threshold: match aggregation {
                    Aggregation::Count => threshold.abs().floor() / 2.0,
                    _ => threshold,
                },
                timeframe,
                cooldown,
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_brute_force((rules, retention, trace) in scenario()) {
        let mut engine = Engine::new(&rules, retention);
        let mut model = Model { rules: rules.clone(), retention, samples: Vec::new(), pairs: BTreeMap::new() };
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
                let sample = ModelSample { host: format!("h{host}"), ts, metrics };
                engine.ingest(&Sample { host: sample.host.clone(), ts, metrics: sample.metrics.clone() });
                model.samples.push(sample);
            }
            let mut out = Vec::new();
            engine.evaluate(tick, &mut ids, &mut out).unwrap();
            let got: Vec<Event> = out.iter().map(event).collect();
            let expected = model.evaluate(tick);
            prop_assert_eq!(&got, &expected, "tick {} (step {})", tick, step_index);
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
}
