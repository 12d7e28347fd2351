//! Replay (docs/engine.md, Replay) gives the same transitions whatever the order of
//! the lines: streamed when in order, sorted in memory when not.

use std::io::Cursor;

use alertd::config::Config;
use alertd::incident::SequentialIds;
use alertd::replay::{ReplayOptions, replay};
use proptest::prelude::*;
use serde_json::Value;

const CONFIG: &str = r#"{
  "monitoring": { "retentionPeriod": "1m" },
  "alerting": {
    "watcherInterval": "10s",
    "rules": [
      { "name": "last", "field": "x", "aggregation": "last", "operand": "equalOrMoreThan", "value": 10, "timeframe": "30s" },
      { "name": "sum", "field": "x", "aggregation": "sum", "operand": "equalOrMoreThan", "value": 25, "timeframe": "45s", "cooldown": "20s" },
      { "name": "silent", "field": "y", "aggregation": "count", "operand": "equalOrLessThan", "value": 0, "timeframe": "20s" }
    ]
  }
}"#;

/// The transitions of a replay, ids removed.
fn transitions(lines: &[String], until: Option<i64>) -> Vec<Value> {
    let config = Config::parse(CONFIG, "order.json").unwrap().config;
    let input = Cursor::new(lines.join("\n").into_bytes());
    let mut out = Vec::new();
    let options = ReplayOptions { until };
    replay(
        &config,
        input,
        "order",
        options,
        &mut SequentialIds::default(),
        &mut out,
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let mut event: Value = serde_json::from_str(line).unwrap();
            event["incident"]["id"] = Value::Null;
            event
        })
        .collect()
}

fn sample_line() -> impl Strategy<Value = (i64, String)> {
    // Hosts that come and go over half an hour, so that some are forgotten.
    (
        0usize..4,
        0i64..1_800_000,
        0i32..16,
        prop::bool::weighted(0.8),
    )
        .prop_map(|(host, ts, x, with_y)| {
            let y = if with_y { r#","y":1"# } else { "" };
            (
                ts,
                format!(r#"{{"host":"h{host}","ts":{ts},"metrics":{{"x":{x}{y}}}}}"#),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn line_order_does_not_change_the_transitions(
        samples in prop::collection::vec(sample_line(), 1..120),
        shuffle in any::<prop::sample::Index>(),
        until in prop::option::of(0i64..2_400_000),
    ) {
        let mut sorted = samples.clone();
        sorted.sort_by_key(|(ts, _)| *ts); // stable: equal timestamps keep their order
        let sorted: Vec<String> = sorted.into_iter().map(|(_, line)| line).collect();
        // Same relative order for equal timestamps, any order otherwise:
        // rotate, then restore the order of ties by a stable sort on a coarse key.
        let mut shuffled = samples.clone();
        let cut = shuffle.index(shuffled.len());
        shuffled.rotate_left(cut);
        shuffled.sort_by_key(|(ts, _)| ts / 400_000);
        // Ties must keep the order they have in `sorted` (docs/engine.md,
        // Windows: by arrival), so only shuffle lines whose timestamps all differ.
        let mut seen = std::collections::HashSet::new();
        prop_assume!(samples.iter().all(|(ts, _)| seen.insert(*ts)));
        let shuffled: Vec<String> = shuffled.into_iter().map(|(_, line)| line).collect();
        prop_assert_eq!(transitions(&shuffled, until), transitions(&sorted, until));
    }
}
