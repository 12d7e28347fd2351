//! Engine benchmarks (see docs/performance.md for the figures).
//!
//! `steady_tick`: 10,000 hosts x 12 rules (two per aggregation, timeframes of
//! 12 and 60 ticks) with full windows; one iteration is one tick: a sample per
//! host is ingested and every (rule, host) is evaluated. The throughput is in
//! (rule, host) evaluations, insertion included. `..._with_options`: the
//! same with `for`, `keepFiringFor`, `recoveryValue` and `noData` on every
//! rule (the engine's other path, which keeps two timestamps per pair).
//!
//! `parse_sample`: one sample line with the 10 built-in fields, parsed and checked.
//!
//! `replay`: 100 hosts x 600 ticks of such lines through `replay()` in memory
//! (parsing, engine and output; no file I/O), in samples.

use std::hint::black_box;
use std::path::Path;

use alertd::config::Config;
use alertd::engine::Engine;
use alertd::incident::SequentialIds;
use alertd::replay::{ReplayOptions, replay};
use alertd::sample::SampleReader;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const HOSTS: usize = 10_000;
const INTERVAL: i64 = 10_000;
const EPOCH: i64 = 1_795_428_000_000;

/// A small deterministic generator, so that runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rules_config() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules-12.json");
    Config::load(&path)
        .expect("benches/rules-12.json is valid")
        .config
}

/// The same rules with options (docs/engine.md, Rule options) on every one:
/// `for` 1m, `keepFiringFor` 30s, a recovery value 10 % apart, and no data
/// resolving.
fn rules_with_options() -> Config {
    let mut config = rules_config();
    for rule in &mut config.alerting.rules {
        let apart = rule.threshold.abs() * 0.1;
        rule.options.hold_for = 60_000;
        rule.options.keep_firing_for = 30_000;
        rule.options.recovery = Some(match rule.operand {
            alertd::config::Operand::EqualOrMoreThan => rule.threshold - apart,
            alertd::config::Operand::EqualOrLessThan => rule.threshold + apart,
        });
        rule.options.no_data = alertd::config::NoData::Resolve;
    }
    config
}

fn steady_tick(c: &mut Criterion) {
    tick_bench(c, rules_config(), "steady_tick_10k_hosts_12_rules");
    tick_bench(
        c,
        rules_with_options(),
        "steady_tick_10k_hosts_12_rules_with_options",
    );
}

fn tick_bench(c: &mut Criterion, config: Config, name: &str) {
    let mut engine = Engine::from_config(&config);
    let width = engine.fields().len();
    let names: Vec<String> = (0..HOSTS).map(|h| format!("host-{h:05}")).collect();
    // 64 rows of values per host, cycled: realistic spread without generating in the loop.
    let mut random = Lcg(42);
    let rows: Vec<Vec<f64>> = (0..64)
        .map(|_| {
            (0..width)
                .map(|_| (random.next() * 80.0).round() / 4.0)
                .collect()
        })
        .collect();
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    let mut tick = 0i64;
    let mut step = |engine: &mut Engine, out: &mut Vec<alertd::incident::Transition>| {
        let at = EPOCH + tick * INTERVAL;
        for (h, name) in names.iter().enumerate() {
            engine.ingest_values(name, at, &rows[(h + tick as usize) % rows.len()]);
        }
        out.clear();
        engine.evaluate(at, &mut ids, out).unwrap();
        tick += 1;
    };
    // Fill the longest windows (60 ticks) before measuring.
    for _ in 0..61 {
        step(&mut engine, &mut out);
    }
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(
        (HOSTS * config.alerting.rules.len()) as u64,
    ));
    group.sample_size(30);
    group.bench_function(name, |b| b.iter(|| step(&mut engine, black_box(&mut out))));
    group.finish();
}

fn parse_sample(c: &mut Criterion) {
    let line = br#"{"host":"host-00042","ts":1795428010000,"metrics":{"cpu.usage":37.25,"mem.usage":61.5,"mem.free":6291456,"requests.count":120,"requests.latency_sum":4210,"requests.latency_avg":35.083,"eventsIn.count":31,"eventsOut.count":29,"warnings.count":0,"errors.count":1}}"#;
    let mut reader = SampleReader::default();
    let mut group = c.benchmark_group("sample");
    group.throughput(Throughput::Bytes(line.len() as u64));
    group.bench_function("parse_10_fields", |b| {
        b.iter(|| reader.parse(black_box(line)).unwrap())
    });
    group.finish();
}

fn replay_in_memory(c: &mut Criterion) {
    let config = rules_config();
    let (hosts, ticks) = (100, 600);
    let mut random = Lcg(7);
    let mut input = Vec::new();
    for tick in 0..ticks {
        for host in 0..hosts {
            let ts = EPOCH + tick as i64 * INTERVAL;
            let v = |scale: f64, r: &mut Lcg| (r.next() * scale * 100.0).round() / 100.0;
            let line = format!(
                r#"{{"host":"node-{host:04}","ts":{ts},"metrics":{{"cpu.usage":{},"mem.usage":{},"mem.free":{},"requests.count":{},"requests.latency_sum":{},"requests.latency_avg":{},"eventsIn.count":{},"eventsOut.count":{},"warnings.count":{},"errors.count":{}}}}}"#,
                v(100.0, &mut random),
                v(100.0, &mut random),
                (random.next() * 1e6) as u64,
                (random.next() * 200.0) as u64,
                (random.next() * 8000.0) as u64,
                v(60.0, &mut random),
                (random.next() * 50.0) as u64,
                (random.next() * 50.0) as u64,
                (random.next() * 2.0) as u64,
                (random.next() * 3.0) as u64,
            );
            input.extend_from_slice(line.as_bytes());
            input.push(b'\n');
        }
    }
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements((hosts * ticks) as u64));
    group.sample_size(20);
    group.bench_function("in_memory_100_hosts_600_ticks", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            let cursor = std::io::Cursor::new(&input);
            replay(
                &config,
                cursor,
                "bench",
                ReplayOptions::default(),
                &mut SequentialIds::default(),
                &mut out,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, steady_tick, parse_sample, replay_in_memory);
criterion_main!(benches);
