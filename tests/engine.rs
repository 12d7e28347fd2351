//! The engine, stepped through time from a fixed epoch (docs/engine.md, Ticks to Incidents).
//!
//! Sample `i` of a series has `ts = EPOCH + i * STEP` and tick `i` is at the
//! same time, evaluated after sample `i` is ingested. A timeframe of `3 * STEP`
//! therefore holds samples `i-2..=i` at tick `i`.

mod common;

use alertd::config::Aggregation::{self, *};
use alertd::config::Operand::{self, *};
use alertd::config::Rule;
use alertd::duration::Millis;
use alertd::engine::{Engine, EngineError};
use alertd::incident::{SequentialIds, Transition, TransitionKind};
use alertd::sample::Sample;
use common::{Step, rule, series};

const EPOCH: Millis = 1_795_428_000_000;
const STEP: Millis = 10_000;
const DAY: Millis = 86_400_000;

fn at(step: usize) -> Millis {
    EPOCH + step as Millis * STEP
}

/// Runs `text` for host `h` through the rules; returns each transition as
/// (tick, "opened"/"resolved", rule name, trigger value).
fn run_with(
    rules: &[Rule],
    retention: Millis,
    text: &str,
) -> Vec<(usize, &'static str, String, f64)> {
    let mut engine = Engine::new(rules, retention);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    for (step, sample) in series(text).into_iter().enumerate() {
        match sample {
            Step::Value(value) => engine.ingest(&Sample::new("h", at(step), &[("f", value)])),
            Step::WithoutField => engine.ingest(&Sample::new("h", at(step), &[("other", 1.0)])),
            Step::Silent => {}
        }
        engine
            .evaluate(at(step), &mut ids, &mut out)
            .expect("ticks move forward");
    }
    out.iter()
        .map(|t| {
            let step = ((t.at - EPOCH) / STEP) as usize;
            (
                step,
                t.kind.as_str(),
                t.incident.rule_name.to_string(),
                t.incident.trigger_value,
            )
        })
        .collect()
}

/// One rule over `3 * STEP`, no cooldown; returns (tick, event, trigger).
fn run(
    aggregation: Aggregation,
    operand: Operand,
    threshold: f64,
    text: &str,
) -> Vec<(usize, &'static str, f64)> {
    let rules = [rule("r", aggregation, operand, threshold, 3 * STEP, 0)];
    run_with(&rules, 10 * DAY, text)
        .into_iter()
        .map(|(step, event, _, trigger)| (step, event, trigger))
        .collect()
}

#[test]
fn each_aggregation_over_a_rolling_window() {
    type Expected = &'static [(usize, &'static str, f64)];
    let cases: &[(Aggregation, Operand, f64, &str, Expected)] = &[
        // avg of samples i-2..=i: 0, 33, 67, 67, 33
        (
            Avg,
            EqualOrMoreThan,
            50.0,
            "0 0 100 100 0 0 0",
            &[(3, "opened", 200.0 / 3.0), (5, "resolved", 200.0 / 3.0)],
        ),
        (
            Sum,
            EqualOrMoreThan,
            150.0,
            "0 0 100 100 0 0 0",
            &[(3, "opened", 200.0), (5, "resolved", 200.0)],
        ),
        (
            Min,
            EqualOrMoreThan,
            50.0,
            "100 100 100 0 100 100 100",
            &[
                (0, "opened", 100.0),
                (3, "resolved", 100.0),
                (6, "opened", 100.0),
            ],
        ),
        (
            Max,
            EqualOrLessThan,
            10.0,
            "5 5 50 5 5 5",
            &[(0, "opened", 5.0), (2, "resolved", 5.0), (5, "opened", 5.0)],
        ),
        (
            Last,
            EqualOrMoreThan,
            10.0,
            "1 20 1 20",
            &[
                (1, "opened", 20.0),
                (2, "resolved", 20.0),
                (3, "opened", 20.0),
            ],
        ),
        (
            Count,
            EqualOrMoreThan,
            3.0,
            "1 1 1 . 1 1 1",
            &[(2, "opened", 3.0), (3, "resolved", 3.0), (6, "opened", 3.0)],
        ),
    ];
    for &(aggregation, operand, threshold, text, expected) in cases {
        let got = run(aggregation, operand, threshold, text);
        let expected: Vec<(usize, &str, f64)> = expected.to_vec();
        assert_eq!(
            got,
            expected,
            "{aggregation}({text}) {} {threshold}",
            operand.symbol()
        );
    }
}

#[test]
fn both_operands_include_equality() {
    assert_eq!(run(Avg, EqualOrMoreThan, 50.0, "50"), [(0, "opened", 50.0)]);
    assert_eq!(run(Avg, EqualOrLessThan, 50.0, "50"), [(0, "opened", 50.0)]);
    assert_eq!(run(Avg, EqualOrMoreThan, 50.0, "49.999"), []);
    assert_eq!(run(Avg, EqualOrLessThan, 50.0, "50.001"), []);
}

#[test]
fn window_holds_ts_at_t_and_drops_ts_at_t_minus_timeframe() {
    // The sample of tick 0 is in the windows of ticks 0, 1 and 2, and out at
    // tick 3, where its ts is exactly t - timeframe: count <= 0 fires then.
    assert_eq!(
        run(Count, EqualOrLessThan, 0.0, "1 . . . ."),
        [(3, "opened", 0.0)]
    );
}

#[test]
fn a_sample_after_the_tick_is_not_yet_in_the_window() {
    let rules = [rule("r", Count, EqualOrMoreThan, 1.0, 3 * STEP, 0)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut out = Vec::new();
    engine.ingest(&Sample::new("h", at(1) + 1, &[("f", 1.0)]));
    engine
        .evaluate(at(1), &mut SequentialIds::default(), &mut out)
        .unwrap();
    assert!(
        out.is_empty(),
        "a host with only future samples is not known yet"
    );
    engine
        .evaluate(at(2), &mut SequentialIds::default(), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
}

#[test]
fn cooldown_blocks_reopening_until_its_end() {
    // Resolved at tick 1; cooldown 2 steps: tick 2 is blocked, tick 3 = end + cooldown opens.
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 2 * STEP)];
    let got = run_with(&rules, 10 * DAY, "20 1 20 20 20");
    let events: Vec<_> = got
        .iter()
        .map(|(step, event, ..)| (*step, *event))
        .collect();
    assert_eq!(events, [(0, "opened"), (1, "resolved"), (3, "opened")]);
}

#[test]
fn empty_windows_have_no_value_and_keep_incidents_open() {
    assert_eq!(
        run(Avg, EqualOrMoreThan, 10.0, "20 . . . . 1"),
        [(0, "opened", 20.0), (5, "resolved", 20.0)]
    );
    for aggregation in [Min, Max, Last] {
        assert_eq!(
            run(aggregation, EqualOrMoreThan, 10.0, "20 . . . . . . 1"),
            [(0, "opened", 20.0), (7, "resolved", 20.0)],
            "{aggregation}"
        );
    }
    // Without any value, a condition that would hold on 0 does not fire.
    assert_eq!(run(Avg, EqualOrLessThan, 0.0, "5 . . . . ."), []);
}

#[test]
fn count_and_sum_detect_a_silent_host() {
    assert_eq!(
        run(Count, EqualOrLessThan, 0.0, "1 1 1 . . . 1"),
        [(5, "opened", 0.0), (6, "resolved", 0.0)]
    );
    assert_eq!(
        run(Sum, EqualOrLessThan, 0.0, "5 5 . . . ."),
        [(4, "opened", 0.0)]
    );
}

#[test]
fn samples_without_the_field_take_no_part() {
    assert_eq!(
        run(Count, EqualOrMoreThan, 2.0, "1 _ _ 1 _ 1"),
        [(5, "opened", 2.0)]
    );
    assert_eq!(
        run(Avg, EqualOrMoreThan, 10.0, "20 _ _ _"),
        [(0, "opened", 20.0)]
    );
    assert_eq!(
        run(Last, EqualOrLessThan, 5.0, "1 _ 9 _ _"),
        [(0, "opened", 1.0), (2, "resolved", 1.0)]
    );
    // A host whose samples never carry the field is known: count <= 0 fires at once.
    assert_eq!(
        run(Count, EqualOrLessThan, 0.0, "_ _"),
        [(0, "opened", 0.0)]
    );
}

#[test]
fn silent_hosts_are_forgotten_after_the_retention_period() {
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 0)];
    // Retention 5 steps: tick 5 sees the last sample at exactly t - retention.
    let got = run_with(&rules, 5 * STEP, "20 . . . . . . 20");
    let events: Vec<_> = got
        .iter()
        .map(|(step, event, ..)| (*step, *event))
        .collect();
    assert_eq!(events, [(0, "opened"), (5, "resolved"), (7, "opened")]);

    // Resolving a forgotten host's incident starts its cooldown as usual.
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 3 * STEP)];
    let got = run_with(&rules, 5 * STEP, "20 . . . . . . 20 .");
    let events: Vec<_> = got
        .iter()
        .map(|(step, event, ..)| (*step, *event))
        .collect();
    assert_eq!(events, [(0, "opened"), (5, "resolved"), (8, "opened")]);

    // A forgotten host is not evaluated: count <= 0 does not fire for it.
    let rules = [rule("r", Count, EqualOrLessThan, 0.0, 2 * STEP, 0)];
    let got = run_with(&rules, 4 * STEP, "1 . . . . . . .");
    let events: Vec<_> = got
        .iter()
        .map(|(step, event, ..)| (*step, *event))
        .collect();
    assert_eq!(events, [(2, "opened"), (4, "resolved")]);
}

#[test]
fn forgotten_hosts_are_dropped_and_come_back_fresh() {
    let rules = [rule("r", Count, EqualOrMoreThan, 1.0, 3 * STEP, 0)];
    let mut engine = Engine::new(&rules, 5 * STEP);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    engine.ingest(&Sample::new("gone", at(0), &[("f", 1.0)]));
    for step in 0..10 {
        engine.evaluate(at(step), &mut ids, &mut out).unwrap();
    }
    assert!(
        engine.is_empty(),
        "a forgotten host with nothing left is dropped"
    );
    engine.ingest(&Sample::new("gone", at(10), &[("f", 1.0)]));
    engine.evaluate(at(10), &mut ids, &mut out).unwrap();
    let events: Vec<_> = out.iter().map(|t| (t.at, t.kind)).collect();
    assert_eq!(
        events,
        [
            (at(0), TransitionKind::Opened),
            (at(3), TransitionKind::Resolved),
            (at(10), TransitionKind::Opened)
        ]
    );
}

#[test]
fn late_samples_count_in_later_windows() {
    let rules = [rule("r", Sum, EqualOrMoreThan, 30.0, 3 * STEP, 0)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    engine.ingest(&Sample::new("h", at(0), &[("f", 10.0)]));
    engine.evaluate(at(0), &mut ids, &mut out).unwrap();
    engine.ingest(&Sample::new("h", at(2), &[("f", 10.0)]));
    engine.evaluate(at(1), &mut ids, &mut out).unwrap();
    engine.evaluate(at(2), &mut ids, &mut out).unwrap();
    assert!(out.is_empty());
    // Sample 1 arrives after tick 2 was evaluated: past ticks stay as they
    // were, later ones see it.
    engine.ingest(&Sample::new("h", at(1), &[("f", 10.0)]));
    let status = engine.host_status("h").unwrap();
    assert_eq!((status[0].aggregate, status[0].samples), (Some(30.0), 3));
    engine.evaluate(at(2), &mut ids, &mut out).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].incident.trigger_value, 30.0);
}

#[test]
fn duplicate_timestamps_each_count_and_last_follows_arrival() {
    let rules = [
        rule("count", Count, EqualOrMoreThan, 2.0, 3 * STEP, 0),
        rule("last", Last, EqualOrLessThan, 1.0, 3 * STEP, 0),
    ];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut out = Vec::new();
    engine.ingest(&Sample::new("h", at(0), &[("f", 5.0)]));
    engine.ingest(&Sample::new("h", at(0), &[("f", 1.0)]));
    engine
        .evaluate(at(0), &mut SequentialIds::default(), &mut out)
        .unwrap();
    let fired: Vec<_> = out
        .iter()
        .map(|t| (&*t.incident.rule_name, t.incident.trigger_value))
        .collect();
    assert_eq!(fired, [("count", 2.0), ("last", 1.0)]);
}

#[test]
fn transitions_are_ordered_by_rule_then_host_bytes() {
    let rules = [
        rule("first", Count, EqualOrMoreThan, 1.0, STEP, 0),
        rule("second", Count, EqualOrMoreThan, 1.0, STEP, 0),
    ];
    let mut engine = Engine::new(&rules, 10 * DAY);
    for host in ["b", "a", "B", "a-1"] {
        engine.ingest(&Sample::new(host, at(0), &[("f", 1.0)]));
    }
    let mut out = Vec::new();
    engine
        .evaluate(at(0), &mut SequentialIds::default(), &mut out)
        .unwrap();
    let order: Vec<_> = out
        .iter()
        .map(|t| format!("{}/{}", t.incident.rule_name, t.incident.host_name))
        .collect();
    assert_eq!(
        order,
        [
            "first/B",
            "first/a",
            "first/a-1",
            "first/b",
            "second/B",
            "second/a",
            "second/a-1",
            "second/b"
        ]
    );
}

#[test]
fn an_incident_keeps_its_id_start_and_trigger_when_resolved() {
    let rules = [rule("r", Avg, EqualOrMoreThan, 50.0, 2 * STEP, 0)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut out: Vec<Transition> = Vec::new();
    let mut ids = SequentialIds::default();
    for (step, value) in [60.0, 90.0, 0.0, 0.0].into_iter().enumerate() {
        engine.ingest(&Sample::new("h", at(step), &[("f", value)]));
        engine.evaluate(at(step), &mut ids, &mut out).unwrap();
    }
    let [opened, resolved] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(opened.incident.end_time, None);
    assert_eq!(resolved.incident.id, opened.incident.id);
    assert_eq!(resolved.incident.start_time, at(0));
    assert_eq!(resolved.incident.trigger_value, 60.0);
    assert_eq!(resolved.incident.end_time, Some(at(2)));
}

#[test]
fn ticks_never_go_back() {
    let mut engine = Engine::new(&[rule("r", Count, EqualOrMoreThan, 1.0, STEP, 0)], DAY);
    let mut out = Vec::new();
    engine
        .evaluate(at(5), &mut SequentialIds::default(), &mut out)
        .unwrap();
    assert_eq!(
        engine.evaluate(at(4), &mut SequentialIds::default(), &mut out),
        Err(EngineError::TickInPast {
            at: at(4),
            previous: at(5)
        })
    );
}

#[test]
fn running_sums_do_not_drift() {
    // 0.1 + 0.2 + ... entering and leaving for a long time, then a window of
    // zeros: the sum must be exactly 0 for `sum <= 0` to fire.
    let text = format!("{} 0 0 0", "0.1 0.2 0.7 1e-9 12.345 1e15 ".repeat(500));
    let fired = run(Sum, EqualOrLessThan, 0.0, &text);
    assert_eq!(fired, [(3002, "opened", 0.0)]);
}

#[test]
fn status_tells_firing_cooldown_nodata_and_ok() {
    use alertd::engine::PairState;
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 2 * STEP, 3 * STEP)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    let mut states = Vec::new();
    // Samples at ticks 0..=3, then silence.
    for (step, value) in [
        Some(20.0),
        Some(1.0),
        Some(1.0),
        Some(1.0),
        None,
        None,
        None,
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(value) = value {
            engine.ingest(&Sample::new("h", at(step), &[("f", value)]));
        }
        engine.evaluate(at(step), &mut ids, &mut out).unwrap();
        states.push(engine.host_status("h").unwrap()[0].state);
    }
    use PairState::*;
    // Opened at 0, resolved at 1 (cooldown until tick 4), window empty from tick 5.
    assert_eq!(
        states,
        [Firing, Cooldown, Cooldown, Cooldown, Ok, NoData, NoData]
    );
}

#[test]
fn saved_pairs_restore_into_a_new_engine() {
    let rules = [
        rule("cpu", Last, EqualOrMoreThan, 10.0, 3 * STEP, 0),
        rule("mem", Last, EqualOrLessThan, 5.0, 3 * STEP, 5 * STEP),
    ];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    engine.ingest(&Sample::new("h", at(0), &[("f", 1.0)]));
    engine.evaluate(at(0), &mut ids, &mut out).unwrap(); // mem opens
    engine.ingest(&Sample::new("h", at(1), &[("f", 20.0)]));
    engine.evaluate(at(1), &mut ids, &mut out).unwrap(); // cpu opens, mem resolves
    let saved = engine.saved_pairs();
    assert_eq!(saved.len(), 2);

    // A new engine (a restart, or a reload that dropped the rule "mem" and
    // added "disk"), fed the same samples again.
    let new_rules = [
        rule("disk", Count, EqualOrLessThan, -1.0, STEP, 0),
        rules[0].clone(),
    ];
    let mut restarted = Engine::new(&new_rules, 10 * DAY);
    let restored: Vec<bool> = saved.iter().map(|pair| restarted.restore(pair)).collect();
    let cpu_first = saved[0].rule_name == "cpu";
    assert_eq!(
        restored,
        if cpu_first {
            [true, false]
        } else {
            [false, true]
        }
    );
    restarted.ingest(&Sample::new("h", at(0), &[("f", 1.0)]));
    restarted.ingest(&Sample::new("h", at(1), &[("f", 20.0)]));
    let mut after = Vec::new();
    restarted.evaluate(at(2), &mut ids, &mut after).unwrap();
    assert!(
        after.is_empty(),
        "cpu stays open, nothing reopens: {after:?}"
    );
    restarted.ingest(&Sample::new("h", at(3), &[("f", 1.0)]));
    restarted.evaluate(at(3), &mut ids, &mut after).unwrap();
    let cpu_opened = out
        .iter()
        .find(|t| &*t.incident.rule_name == "cpu")
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].rule, 1,
        "the rule's index in the new configuration"
    );
    assert_eq!(
        after[0].incident.id, cpu_opened.incident.id,
        "the same incident resolves"
    );
    assert_eq!(after[0].incident.start_time, at(1));
}

#[test]
fn a_restored_open_incident_on_a_host_without_samples_resolves() {
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 0)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut saved_incident = alertd::incident::PairRecord {
        rule_name: "r".into(),
        host: "gone".into(),
        open: None,
        last_end: None,
        pending_since: None,
        clear_since: None,
    };
    saved_incident.open = Some(alertd::incident::Incident {
        id: "inc-7".into(),
        rule_name: "r".into(),
        host_name: "gone".into(),
        start_time: at(0),
        end_time: None,
        trigger_value: 12.0,
        resolution: None,
        details: None,
    });
    assert!(engine.restore(&saved_incident));
    let mut out = Vec::new();
    engine
        .evaluate(at(5), &mut SequentialIds::default(), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, TransitionKind::Resolved);
    assert_eq!(out[0].incident.id, "inc-7");
    assert_eq!(out[0].incident.end_time, Some(at(5)));
    engine
        .evaluate(at(6), &mut SequentialIds::default(), &mut out)
        .unwrap();
    assert!(engine.is_empty(), "then the host is dropped");
}

#[test]
fn a_dropped_proposal_changes_no_decision() {
    // Two-phase ticks: what `propose` returns applies only at `commit`. A
    // proposal the caller could not store is dropped, and the next one (for
    // the same tick or a later one) finds the same transitions.
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 2 * STEP)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut ids = SequentialIds::default();
    engine.ingest(&Sample::new("h", at(0), &[("f", 50.0)]));
    let dropped = engine.propose(at(0), &mut ids).unwrap();
    assert_eq!(dropped.transitions().len(), 1);
    assert_eq!(
        engine.open_incidents(),
        0,
        "nothing opens before the commit"
    );
    assert_eq!(engine.last_tick(), None);
    drop(dropped);

    let again = engine.propose(at(0), &mut ids).unwrap();
    assert_eq!(again.transitions()[0].kind, TransitionKind::Opened);
    let opened = engine.commit(again).unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(engine.open_incidents(), 1);
    assert_eq!(engine.last_tick(), Some(at(0)));

    // The resolution, dropped once, proposed again at the next tick.
    engine.ingest(&Sample::new("h", at(1), &[("f", 1.0)]));
    let dropped = engine.propose(at(1), &mut ids).unwrap();
    assert_eq!(dropped.transitions()[0].kind, TransitionKind::Resolved);
    drop(dropped);
    assert_eq!(engine.open_incidents(), 1, "still open: not committed");
    let later = engine.propose(at(2), &mut ids).unwrap();
    let resolved = engine.commit(later).unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].incident.id, opened[0].incident.id);
    assert_eq!(resolved[0].incident.end_time, Some(at(2)));
    assert_eq!(engine.open_incidents(), 0);
}

#[test]
fn a_stale_proposal_is_refused() {
    let rules = [rule("r", Last, EqualOrMoreThan, 10.0, 3 * STEP, 0)];
    let mut engine = Engine::new(&rules, 10 * DAY);
    let mut other = Engine::new(&rules, 10 * DAY);
    let mut ids = SequentialIds::default();
    engine.ingest(&Sample::new("h", at(0), &[("f", 50.0)]));
    other.ingest(&Sample::new("h", at(0), &[("f", 50.0)]));
    let first = engine.propose(at(0), &mut ids).unwrap();
    let second = engine.propose(at(0), &mut ids).unwrap();
    engine.commit(first).unwrap();
    assert_eq!(
        engine.commit(second).unwrap_err(),
        EngineError::StaleProposal { at: at(0) },
        "made before another commit"
    );
    let foreign = other.propose(at(1), &mut ids).unwrap();
    assert!(engine.commit(foreign).is_err(), "made by another engine");
    assert_eq!(engine.open_incidents(), 1, "opened once");
    assert_eq!(
        engine.propose(at(0) - 1, &mut ids).unwrap_err(),
        EngineError::TickInPast {
            at: at(0) - 1,
            previous: at(0)
        }
    );
}

/// A rule over `3 * STEP` on `last` (the latest value decides), with options.
fn with_options(
    operand: Operand,
    threshold: f64,
    cooldown: Millis,
    set: impl FnOnce(&mut alertd::config::RuleOptions),
) -> Rule {
    let mut rule = rule("r", Last, operand, threshold, 3 * STEP, cooldown);
    set(&mut rule.options);
    rule
}

fn events(rule: Rule, text: &str) -> Vec<(usize, &'static str)> {
    run_with(&[rule], 10 * DAY, text)
        .into_iter()
        .map(|(step, event, _, _)| (step, event))
        .collect()
}

/// docs/engine.md, Rule options: each key at its edge.
#[test]
fn rule_options_at_their_edges() {
    use alertd::config::NoData;
    type Case = (
        &'static str,
        Rule,
        &'static str,
        &'static [(usize, &'static str)],
    );
    let cases: Vec<Case> = vec![
        (
            "for exactly reached: holds from tick 1, opens at tick 1 + 3",
            with_options(EqualOrMoreThan, 10.0, 0, |o| o.hold_for = 3 * STEP),
            "0 20x5",
            &[(4, "opened")],
        ),
        (
            "pending broken by one tick starts again",
            with_options(EqualOrMoreThan, 10.0, 0, |o| o.hold_for = 2 * STEP),
            "20 20 0 20 20 20",
            &[(5, "opened")],
        ),
        (
            "a no-value tick under noData keep breaks pending (avg over one step)",
            {
                let mut rule = with_options(EqualOrMoreThan, 10.0, 0, |o| o.hold_for = 2 * STEP);
                rule.aggregation = Avg;
                rule.timeframe = STEP;
                rule
            },
            "20 20 _ 20 20 20",
            &[(5, "opened")],
        ),
        (
            "for 2 steps: holds from tick 2, opens at 4",
            with_options(EqualOrMoreThan, 10.0, 3 * STEP, |o| o.hold_for = 2 * STEP),
            "20 0 20 20 20 20",
            &[(4, "opened")],
        ),
        (
            "time in cooldown counts toward for",
            with_options(EqualOrMoreThan, 10.0, 4 * STEP, |o| {
                o.hold_for = STEP;
                o.keep_firing_for = 0;
            }),
            "20 20 0 20 20 20 20 20",
            // Opens at 1, resolves at 2 (cooldown until 6); holds from 3:
            // for is met at 4, the cooldown ends at 6: opens at 6.
            &[(1, "opened"), (2, "resolved"), (6, "opened")],
        ),
        (
            "keepFiringFor exactly elapsed: clear at 2, 3, 4: resolves at 4",
            with_options(EqualOrMoreThan, 10.0, 0, |o| o.keep_firing_for = 2 * STEP),
            "20 20 0 0 0 0",
            &[(0, "opened"), (4, "resolved")],
        ),
        (
            "a tick that is not clear starts keepFiringFor anew",
            with_options(EqualOrMoreThan, 10.0, 0, |o| o.keep_firing_for = STEP),
            "20 0 20 0 0",
            &[(0, "opened"), (4, "resolved")],
        ),
        (
            "the band between recoveryValue and value keeps an incident open",
            with_options(EqualOrMoreThan, 10.0, 0, |o| o.recovery = Some(5.0)),
            "20 7 5 7 4.9",
            &[(0, "opened"), (4, "resolved")],
        ),
        (
            "noData resolve: an empty window resolves",
            {
                let mut rule =
                    with_options(EqualOrMoreThan, 10.0, 0, |o| o.no_data = NoData::Resolve);
                rule.aggregation = Avg;
                rule
            },
            "20 . . . .",
            &[(0, "opened"), (3, "resolved")],
        ),
        (
            "noData keep: an empty window changes nothing",
            {
                let mut rule = with_options(EqualOrMoreThan, 10.0, 0, |_| {});
                rule.aggregation = Avg;
                rule.options.hold_for = STEP;
                rule
            },
            "20 20 . . . 0",
            &[(1, "opened"), (5, "resolved")],
        ),
        (
            "noData open: an empty window opens, after for",
            {
                let mut rule = with_options(EqualOrMoreThan, 10.0, 0, |o| {
                    o.no_data = NoData::Open;
                    o.hold_for = STEP;
                });
                rule.aggregation = Avg;
                rule
            },
            "0 . . . . 0",
            &[(4, "opened"), (5, "resolved")],
        ),
    ];
    for (what, rule, text, expected) in cases {
        assert_eq!(events(rule, text), expected, "{what}");
    }
}

/// A forgotten host's open incident resolves whatever `keepFiringFor` says,
/// and its pending pairs lose `pendingSince`: a host that comes back starts
/// pending afresh.
#[test]
fn a_forgotten_host_resolves_and_stops_pending_whatever_the_options() {
    let keeping = with_options(EqualOrMoreThan, 10.0, 0, |o| o.keep_firing_for = 10 * STEP);
    let got = run_with(&[keeping], 5 * STEP, "20 . . . . . . .");
    let events: Vec<_> = got
        .iter()
        .map(|(step, event, ..)| (*step, *event))
        .collect();
    assert_eq!(events, [(0, "opened"), (5, "resolved")]);

    let mut waiting = rule("r", Count, EqualOrMoreThan, 1.0, 3 * STEP, 0);
    waiting.options.hold_for = 10 * STEP;
    let mut engine = Engine::new(&[waiting], 3 * STEP);
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    let pending = |engine: &Engine| engine.host_status("h").and_then(|s| s[0].pending_since);
    for step in 0..8 {
        if [0, 1, 6, 7].contains(&step) {
            engine.ingest(&Sample::new("h", at(step), &[("f", 1.0)]));
        }
        engine.evaluate(at(step), &mut ids, &mut out).unwrap();
        match step {
            0..=3 => assert_eq!(pending(&engine), Some(at(0)), "step {step}"),
            // Forgotten at 4 (its last sample, at 1, is a retention old).
            4 | 5 => assert_eq!(pending(&engine), None, "step {step}"),
            _ => assert_eq!(pending(&engine), Some(at(6)), "step {step}"),
        }
    }
    assert!(out.is_empty(), "{out:?}");
}
