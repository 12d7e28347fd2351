//! The translator, stepped through batches from a fixed epoch.

use super::*;
use crate::sample::Sample;

const T0: Millis = 1_700_000_000_000;

fn point(metric: &str, labels: &[(&str, &str)], kind: Kind, value: f64, ts: Millis) -> Point {
    Point {
        metric: metric.into(),
        labels: Labels::of(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        kind,
        value,
        ts,
    }
}

fn batch(points: Vec<Point>) -> Batch {
    Batch { points, host: None }
}

fn counter() -> Kind {
    Kind::Cumulative { start: None }
}

/// Translates and commits, like a store that always keeps what it is given.
fn run(translator: &mut Translator, mapping: &Mapping, points: Vec<Point>) -> Translation {
    let mut translation = translator.translate(mapping, &batch(points), T0 + 3_600_000, 300_000);
    translator.commit(&mut translation, T0);
    translation
}

fn fields(sample: &Sample) -> Vec<(&str, f64)> {
    sample
        .metrics
        .iter()
        .map(|(field, value)| (field.as_str(), *value))
        .collect()
}

#[test]
fn gauges_pass_through_with_their_labels_summed_away() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let out = run(
        &mut translator,
        &mapping,
        vec![
            point(
                "disk_free",
                &[("host", "db-1"), ("mount", "/")],
                Kind::Gauge,
                10.0,
                T0 + 1_000,
            ),
            point(
                "disk_free",
                &[("host", "db-1"), ("mount", "/var")],
                Kind::Gauge,
                5.0,
                T0 + 1_000,
            ),
            point("load1", &[("host", "db-1")], Kind::Gauge, 0.5, T0 + 2_000),
            point("load1", &[("host", "db-2")], Kind::Gauge, 1.5, T0 + 2_000),
        ],
    );
    assert_eq!(out.samples.len(), 2, "{:?}", out.samples);
    assert_eq!(out.samples[0].host, "db-1");
    assert_eq!(out.samples[0].ts, T0, "the interval's start");
    assert_eq!(
        fields(&out.samples[0]),
        vec![("disk_free", 15.0), ("load1", 0.5)]
    );
    assert_eq!(fields(&out.samples[1]), vec![("load1", 1.5)]);
    assert_eq!(out.taken, 4);
}

#[test]
fn counters_become_increases_and_a_reset_counts_from_zero() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let host = [("instance", "web-1:9100")];
    let first = run(
        &mut translator,
        &mapping,
        vec![point("http_requests_total", &host, counter(), 100.0, T0)],
    );
    assert!(
        first.samples.is_empty(),
        "a first total has no increase: {:?}",
        first.samples
    );
    let second = run(
        &mut translator,
        &mapping,
        vec![point(
            "http_requests_total",
            &host,
            counter(),
            130.0,
            T0 + 10_000,
        )],
    );
    assert_eq!(second.samples.len(), 1);
    assert_eq!(second.samples[0].host, "web-1:9100");
    assert_eq!(
        fields(&second.samples[0]),
        vec![("http_requests_total", 30.0)]
    );
    // The process restarted: 7 since, not -123.
    let third = run(
        &mut translator,
        &mapping,
        vec![point(
            "http_requests_total",
            &host,
            counter(),
            7.0,
            T0 + 20_000,
        )],
    );
    assert_eq!(
        fields(&third.samples[0]),
        vec![("http_requests_total", 7.0)]
    );
    // Sent again: counted once.
    let again = run(
        &mut translator,
        &mapping,
        vec![point(
            "http_requests_total",
            &host,
            counter(),
            7.0,
            T0 + 20_000,
        )],
    );
    assert!(again.samples.is_empty());
    assert_eq!(again.skipped, 1);
}

#[test]
fn a_new_start_time_is_a_reset() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let host = [("host.name", "a")];
    let kind = |start| Kind::Cumulative { start: Some(start) };
    run(
        &mut translator,
        &mapping,
        vec![point("x.total", &host, kind(T0 - 5_000), 50.0, T0)],
    );
    let out = run(
        &mut translator,
        &mapping,
        vec![point("x.total", &host, kind(T0 + 9_000), 60.0, T0 + 10_000)],
    );
    assert_eq!(fields(&out.samples[0]), vec![("x.total", 60.0)]);
}

#[test]
fn one_interval_split_over_requests_is_one_sample_once_all_its_series_are_in() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let a = [("host", "h"), ("cpu", "0")];
    let b = [("host", "h"), ("cpu", "1")];
    // The first interval: both series in one request.
    let out = run(
        &mut translator,
        &mapping,
        vec![
            point("temp", &a, Kind::Gauge, 40.0, T0),
            point("temp", &b, Kind::Gauge, 50.0, T0),
        ],
    );
    assert_eq!(fields(&out.samples[0]), vec![("temp", 90.0)]);
    // The next, in two requests (as remote write shards send them): nothing
    // until the second half comes, then the whole.
    let half = run(
        &mut translator,
        &mapping,
        vec![point("temp", &a, Kind::Gauge, 41.0, T0 + 10_000)],
    );
    assert!(half.samples.is_empty(), "{:?}", half.samples);
    let rest = run(
        &mut translator,
        &mapping,
        vec![point("temp", &b, Kind::Gauge, 51.0, T0 + 10_000)],
    );
    assert_eq!(rest.samples.len(), 1);
    assert_eq!(rest.samples[0].ts, T0 + 10_000);
    assert_eq!(fields(&rest.samples[0]), vec![("temp", 92.0)]);
    // A series that stops: its field is stored when the next interval begins.
    let alone = run(
        &mut translator,
        &mapping,
        vec![point("temp", &a, Kind::Gauge, 42.0, T0 + 20_000)],
    );
    assert!(alone.samples.is_empty());
    let next = run(
        &mut translator,
        &mapping,
        vec![point("temp", &a, Kind::Gauge, 43.0, T0 + 30_000)],
    );
    assert_eq!(
        next.samples.len(),
        2,
        "the interval before, then this one: {:?}",
        next.samples
    );
    assert_eq!(
        (next.samples[0].ts, fields(&next.samples[0])),
        (T0 + 20_000, vec![("temp", 42.0)])
    );
    assert_eq!(
        (next.samples[1].ts, fields(&next.samples[1])),
        (T0 + 30_000, vec![("temp", 43.0)])
    );
}

#[test]
fn a_second_value_in_a_stored_interval_is_left_out() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let h = [("host", "h")];
    run(
        &mut translator,
        &mapping,
        vec![point("g", &h, Kind::Gauge, 1.0, T0 + 1_000)],
    );
    let late = run(
        &mut translator,
        &mapping,
        vec![point("g", &h, Kind::Gauge, 2.0, T0 + 5_000)],
    );
    assert!(late.samples.is_empty());
    assert_eq!(late.skipped, 1);
    // A counter's increase in a stored interval is not lost: its total
    // stays, and the next interval has it.
    run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 10.0, T0)],
    );
    run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 15.0, T0 + 10_000)],
    );
    let late = run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 18.0, T0 + 15_000)],
    );
    assert!(late.samples.is_empty());
    let next = run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 20.0, T0 + 20_000)],
    );
    assert_eq!(
        fields(&next.samples[0]),
        vec![("c_total", 5.0)],
        "18 and 20 both since 15"
    );
}

#[test]
fn the_node_exporter_preset_makes_the_built_in_fields() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let cpu = |cpu: &'static str, mode: &'static str, value: f64, ts: Millis| {
        point(
            "node_cpu_seconds_total",
            &[("instance", "db-1"), ("cpu", cpu), ("mode", mode)],
            counter(),
            value,
            ts,
        )
    };
    let memory = |ts: Millis| {
        vec![
            point(
                "node_memory_MemAvailable_bytes",
                &[("instance", "db-1")],
                Kind::Gauge,
                3.0 * 1024.0 * 1024.0,
                ts,
            ),
            point(
                "node_memory_MemTotal_bytes",
                &[("instance", "db-1")],
                Kind::Gauge,
                4.0 * 1024.0 * 1024.0,
                ts,
            ),
        ]
    };
    let mut first = vec![
        cpu("0", "idle", 100.0, T0),
        cpu("0", "user", 50.0, T0),
        cpu("0", "iowait", 1.0, T0),
    ];
    first.extend(memory(T0));
    run(&mut translator, &mapping, first);
    // 10 s: 6 idle, 1 iowait, 3 user: 30 % busy.
    let mut second = vec![
        cpu("0", "idle", 106.0, T0 + 10_000),
        cpu("0", "user", 53.0, T0 + 10_000),
        cpu("0", "iowait", 2.0, T0 + 10_000),
    ];
    second.extend(memory(T0 + 10_000));
    let out = run(&mut translator, &mapping, second);
    let sample = &out.samples[0];
    let value = |name: &str| {
        sample
            .metrics
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(value("cpu.usage"), Some(30.0));
    assert_eq!(value("mem.usage"), Some(25.0));
    assert_eq!(value("mem.free"), Some(3072.0));
    // The inputs pass through too.
    assert_eq!(value("node_cpu_seconds_total"), Some(10.0));
}

#[test]
fn the_host_metrics_preset_reads_the_collector_s_names() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let cpu = |state: &'static str, value: f64, ts: Millis| {
        point(
            "system.cpu.time",
            &[("host.name", "vm"), ("cpu", "cpu0"), ("state", state)],
            counter(),
            value,
            ts,
        )
    };
    let memory = |state: &'static str, bytes: f64, ts: Millis| {
        point(
            "system.memory.usage",
            &[("host.name", "vm"), ("state", state)],
            Kind::Gauge,
            bytes,
            ts,
        )
    };
    run(
        &mut translator,
        &mapping,
        vec![cpu("idle", 10.0, T0), cpu("user", 10.0, T0)],
    );
    let out = run(
        &mut translator,
        &mapping,
        vec![
            cpu("idle", 19.0, T0 + 10_000),
            cpu("user", 11.0, T0 + 10_000),
            memory("used", 1024.0 * 600.0, T0 + 10_000),
            memory("free", 1024.0 * 300.0, T0 + 10_000),
            memory("cached", 1024.0 * 100.0, T0 + 10_000),
        ],
    );
    let sample = &out.samples[0];
    let value = |name: &str| {
        sample
            .metrics
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(value("cpu.usage"), Some(10.0));
    assert_eq!(value("mem.usage"), Some(60.0));
    assert_eq!(value("mem.free"), Some(400.0));
}

#[test]
fn explicit_mappings_pick_series_by_label() {
    let mut mapping = Mapping::default();
    mapping.derived.push(Derived {
        field: "disk.root.free".into(),
        inputs: vec![Selector {
            metric: "node_filesystem_avail_bytes".into(),
            matchers: vec![Matcher {
                names: vec!["mountpoint".into()],
                values: vec!["/".into()],
            }],
        }],
        combine: Combine::Sum,
        preset: None,
    });
    mapping.keep = vec![];
    let mut translator = Translator::default();
    let out = run(
        &mut translator,
        &mapping,
        vec![
            point(
                "node_filesystem_avail_bytes",
                &[("instance", "a"), ("mountpoint", "/")],
                Kind::Gauge,
                7.0,
                T0,
            ),
            point(
                "node_filesystem_avail_bytes",
                &[("instance", "a"), ("mountpoint", "/boot")],
                Kind::Gauge,
                1.0,
                T0,
            ),
        ],
    );
    assert_eq!(fields(&out.samples[0]), vec![("disk.root.free", 7.0)]);
    assert_eq!(out.skipped, 1, "the other mount feeds nothing");
}

#[test]
fn bad_points_are_refused_with_their_reason_and_the_rest_taken() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let out = run(
        &mut translator,
        &mapping,
        vec![
            point("ok", &[("host", "h")], Kind::Gauge, 1.0, T0),
            point("no_host", &[("pod", "p")], Kind::Gauge, 1.0, T0),
            point("bad/name", &[("host", "h")], Kind::Gauge, 1.0, T0),
            point("<script>", &[("host", "h")], Kind::Gauge, 1.0, T0),
            point("nan", &[("host", "h")], Kind::Gauge, f64::NAN, T0),
            point("inf", &[("host", "h")], Kind::Gauge, f64::INFINITY, T0),
            point("seconds", &[("host", "h")], Kind::Gauge, 1.0, 1_700_000_000),
            point(
                "future",
                &[("host", "h")],
                Kind::Gauge,
                1.0,
                T0 + 10 * 3_600_000,
            ),
        ],
    );
    assert_eq!(out.samples.len(), 1);
    assert_eq!(fields(&out.samples[0]), vec![("ok", 1.0)]);
    assert_eq!(out.refused.count(), 7);
    let summary = out.refused.summary();
    for expected in [
        "no host",
        "2 point(s): not a valid field name",
        "2 point(s): not a finite number",
        "timestamp out of range",
        "timestamp in the future",
    ] {
        assert!(summary.contains(expected), "{expected:?} in {summary}");
    }
    // A Prometheus staleness marker is no error.
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let out = run(
        &mut translator,
        &mapping,
        vec![point(
            "ok",
            &[("host", "h")],
            Kind::Gauge,
            stale,
            T0 + 10_000,
        )],
    );
    assert_eq!((out.refused.count(), out.skipped), (0, 1));
}

#[test]
fn a_rollback_leaves_the_state_as_before() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let h = [("host", "h")];
    run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 10.0, T0)],
    );
    let mut failed = translator.translate(
        &mapping,
        &batch(vec![point("c_total", &h, counter(), 15.0, T0 + 10_000)]),
        T0 + 3_600_000,
        300_000,
    );
    assert_eq!(fields(&failed.samples[0]), vec![("c_total", 5.0)]);
    translator.rollback(&mut failed);
    // Sent again after the store failed: the same increase, not 0.
    let retried = run(
        &mut translator,
        &mapping,
        vec![point("c_total", &h, counter(), 15.0, T0 + 10_000)],
    );
    assert_eq!(fields(&retried.samples[0]), vec![("c_total", 5.0)]);
}

#[test]
fn too_many_series_are_refused_not_remembered() {
    let mapping = Mapping {
        max_series: 2,
        ..Mapping::default()
    };
    let mut translator = Translator::default();
    let points = (0..5)
        .map(|i| {
            point(
                "c_total",
                &[("host", "h"), ("i", &i.to_string())],
                counter(),
                1.0,
                T0,
            )
        })
        .collect();
    let out = run(&mut translator, &mapping, points);
    assert_eq!(out.refused.count(), 3);
    assert_eq!(translator.series(), 2);
}

#[test]
fn globs() {
    assert!(glob("*", "anything"));
    assert!(glob("node_*", "node_load1"));
    assert!(!glob("node_*", "go_goroutines"));
    assert!(glob("*_total", "http_requests_total"));
    assert!(glob("a*b*c", "a-x-b-y-c"));
    assert!(!glob("a*b*c", "a-x-c-y-b"));
    assert!(glob("exact", "exact"));
    assert!(!glob("exact", "exactly"));
}

#[test]
fn a_host_s_own_metric_of_a_preset_s_name_wins() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let h = [("host", "h")];
    let cpu = |mode: &'static str, value: f64, ts: Millis| {
        point(
            "node_cpu_seconds_total",
            &[("host", "h"), ("mode", mode)],
            counter(),
            value,
            ts,
        )
    };
    run(
        &mut translator,
        &mapping,
        vec![cpu("idle", 10.0, T0), cpu("user", 10.0, T0)],
    );
    // The host also sends cpu.usage itself: its value, not the preset's.
    let out = run(
        &mut translator,
        &mapping,
        vec![
            cpu("idle", 15.0, T0 + 10_000),
            cpu("user", 20.0, T0 + 10_000),
            point("cpu.usage", &h, Kind::Gauge, 12.5, T0 + 10_000),
        ],
    );
    let value = |name: &str| {
        out.samples[0]
            .metrics
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, v)| *v)
    };
    assert_eq!(value("cpu.usage"), Some(12.5));
}

#[test]
fn the_state_of_series_gone_for_an_hour_is_forgotten() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let mut first = translator.translate(
        &mapping,
        &batch(vec![point("c_total", &[("host", "h")], counter(), 1.0, T0)]),
        T0,
        300_000,
    );
    translator.commit(&mut first, T0);
    assert_eq!(translator.series(), 1);
    let later = T0 + 2 * 3_600_000;
    let mut other = translator.translate(
        &mapping,
        &batch(vec![point("g", &[("host", "k")], Kind::Gauge, 1.0, later)]),
        later,
        300_000,
    );
    translator.commit(&mut other, later);
    assert_eq!(
        translator.series(),
        0,
        "the counter no point came for in two hours"
    );
}

/// The sum of every value of `field` stored over `batches`, run one after another.
fn stored_sum(mapping: &Mapping, batches: Vec<Vec<Point>>, field: &str) -> f64 {
    let mut translator = Translator::default();
    batches
        .into_iter()
        .flat_map(|points| run(&mut translator, mapping, points).samples)
        .flat_map(|sample| sample.metrics)
        .filter(|(name, _)| name == field)
        .map(|(_, value)| value)
        .sum()
}

#[test]
fn no_increase_is_lost_whatever_order_the_series_come_in() {
    let series = |code: &'static str, value: f64, ts: Millis| {
        point(
            "req_total",
            &[("host", "h"), ("code", code)],
            counter(),
            value,
            ts,
        )
    };
    let a = |step: i64| series("200", 100.0 + 10.0 * step as f64, T0 + step * 10_000);
    let b = |step: i64| series("500", 200.0 + 10.0 * step as f64, T0 + step * 10_000);
    let mut mapping = Mapping::default();
    mapping.derived.push(Derived {
        field: "err500".into(),
        inputs: vec![Selector {
            metric: "req_total".into(),
            matchers: vec![Matcher {
                names: vec!["code".into()],
                values: vec!["500".into()],
            }],
        }],
        combine: Combine::Sum,
        preset: None,
    });
    // One field ahead of another: A's later intervals come before B's.
    let orders = [
        vec![
            vec![a(0), b(0)],
            vec![a(1), b(1)],
            vec![a(2)],
            vec![a(3)],
            vec![b(2)],
            vec![b(3)],
            vec![a(4), b(4)],
        ],
        // A skips an interval (a slower sender) and runs ahead.
        vec![
            vec![a(0), b(0)],
            vec![a(1), b(1)],
            vec![a(3)],
            vec![b(2)],
            vec![b(3)],
            vec![a(4), b(4)],
        ],
        // Everything in one request, shuffled.
        vec![vec![
            b(4),
            a(2),
            b(0),
            a(0),
            a(4),
            b(2),
            a(1),
            b(1),
            a(3),
            b(3),
        ]],
    ];
    for (index, batches) in orders.into_iter().enumerate() {
        assert_eq!(
            stored_sum(&mapping, batches.clone(), "req_total"),
            80.0,
            "order {index}"
        );
        assert_eq!(
            stored_sum(&mapping, batches, "err500"),
            40.0,
            "order {index}"
        );
    }
}

#[test]
fn deltas_faster_than_the_interval_all_count() {
    let mapping = Mapping::default();
    // Every 5 s with 10 s intervals: the second of each interval is carried
    // to the next one.
    let batches = (0..7)
        .map(|i| {
            vec![point(
                "jobs",
                &[("host", "h")],
                Kind::Delta,
                1.0,
                T0 + i * 5_000,
            )]
        })
        .collect();
    assert_eq!(stored_sum(&mapping, batches, "jobs"), 7.0);
}

#[test]
fn hosts_with_control_characters_and_summary_quantiles_are_not_taken() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let out = run(
        &mut translator,
        &mapping,
        vec![
            point("g", &[("host", "bad\nhost")], Kind::Gauge, 1.0, T0),
            point(
                "rpc_seconds",
                &[("host", "h"), ("quantile", "0.5")],
                Kind::Gauge,
                1.0,
                T0,
            ),
            point(
                "rpc_seconds",
                &[("host", "h"), ("quantile", "0.99")],
                Kind::Gauge,
                5.0,
                T0,
            ),
        ],
    );
    assert!(out.samples.is_empty(), "{:?}", out.samples);
    assert_eq!((out.refused.count(), out.skipped), (1, 2));
    assert!(out.refused.summary().contains("control characters"));
}

#[test]
fn two_presets_on_one_host_do_not_mix() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let node = |ts: Millis| {
        vec![
            point(
                "node_memory_MemAvailable_bytes",
                &[("host", "db")],
                Kind::Gauge,
                1024.0 * 100.0,
                ts,
            ),
            point(
                "node_memory_MemTotal_bytes",
                &[("host", "db")],
                Kind::Gauge,
                1024.0 * 400.0,
                ts,
            ),
        ]
    };
    let otel = |ts: Millis| {
        vec![
            point(
                "system.memory.usage",
                &[("host", "db"), ("state", "free")],
                Kind::Gauge,
                1024.0 * 900.0,
                ts,
            ),
            point(
                "system.memory.usage",
                &[("host", "db"), ("state", "used")],
                Kind::Gauge,
                1024.0 * 100.0,
                ts,
            ),
        ]
    };
    for step in 0..3 {
        let ts = T0 + step * 10_000;
        let mut points = node(ts);
        points.extend(otel(ts));
        let out = run(&mut translator, &mapping, points);
        let value = |name: &str| {
            out.samples
                .iter()
                .flat_map(|sample| &sample.metrics)
                .find(|(field, _)| field == name)
                .map(|(_, v)| *v)
        };
        // node_exporter came first: its values, never a mix.
        assert_eq!(value("mem.free"), Some(100.0), "step {step}");
        assert_eq!(value("mem.usage"), Some(75.0), "step {step}");
    }
}

#[test]
fn a_counter_first_seen_late_is_its_baseline() {
    let mapping = Mapping::default();
    let a = |value: f64, ts: Millis| {
        point(
            "req_total",
            &[("host", "h"), ("s", "a")],
            counter(),
            value,
            ts,
        )
    };
    let b = |value: f64, ts: Millis| {
        point(
            "req_total",
            &[("host", "h"), ("s", "b")],
            counter(),
            value,
            ts,
        )
    };
    let batches = vec![
        vec![a(100.0, T0)],
        vec![a(110.0, T0 + 10_000)],
        // B appears in an interval already stored: its baseline.
        vec![b(50.0, T0 + 15_000)],
        vec![a(120.0, T0 + 20_000), b(60.0, T0 + 20_000)],
    ];
    assert_eq!(
        stored_sum(&mapping, batches, "req_total"),
        30.0,
        "10 + 10 of A, 10 of B"
    );
}

#[test]
fn scraped_totals_are_forgotten_when_another_node_scraped_meanwhile() {
    let mapping = Mapping::default();
    let mut translator = Translator::default();
    let scrape = |translator: &mut Translator, value: f64, ts: Millis| {
        let batch = Batch {
            points: vec![point("jobs_total", &[], counter(), value, ts)],
            host: Some("target".into()),
        };
        let mut out = translator.translate(&mapping, &batch, T0 + 3_600_000, 300_000);
        translator.commit(&mut out, T0);
        out.samples
    };
    scrape(&mut translator, 10.0, T0);
    assert_eq!(
        fields(&scrape(&mut translator, 15.0, T0 + 10_000)[0]),
        vec![("jobs_total", 5.0)]
    );
    // Another node led from here and stored the increases up to 40.
    translator.forget_scraped();
    assert!(
        scrape(&mut translator, 45.0, T0 + 60_000).is_empty(),
        "a new baseline"
    );
    assert_eq!(
        fields(&scrape(&mut translator, 47.0, T0 + 70_000)[0]),
        vec![("jobs_total", 2.0)]
    );
}
