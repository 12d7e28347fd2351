//! Rollup decoding, what the pages' fleet reads spend their time on (see
//! docs/performance.md, "The pages").
//!
//! One stored day-row of ten-minute points of one host: 144 points of the
//! 10 built-in fields, as compaction writes it. `full`: every aggregate of
//! six fields, a new list of points per row (as a read did before);
//! `totals_into`: count, sum and maximum only, into points used again (as
//! the monitoring page's fleet read does now); `totals_columns`: the same
//! figures column by column into [`rollup::Totals`] (as `/api/v1/stats`
//! reads them). Throughput in points.

use std::hint::black_box;

use alertd::sample::Sample;
use alertd::store::rollup::{self, Step};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FIELDS: [&str; 10] = [
    "cpu.usage",
    "mem.usage",
    "mem.free",
    "requests.count",
    "requests.latency_avg",
    "eventsIn.count",
    "eventsOut.count",
    "warnings.count",
    "errors.count",
    "disk.usage",
];

/// A day of one host every 10 s, with values shaped like real ones.
fn day_row() -> Vec<u8> {
    let base = 1_795_392_000_000;
    let samples: Vec<Sample> = (0..8_640i64)
        .map(|i| {
            let wave = ((i % 97) as f64 * 0.37).sin();
            let values: Vec<(&str, f64)> = FIELDS
                .iter()
                .enumerate()
                .map(|(n, field)| {
                    let value = match n {
                        0 | 1 | 9 => (50.0 + 20.0 * wave * (n as f64 + 1.0).sqrt()).round() / 1.0,
                        2 => (1_000_000.0 + 4096.0 * (i % 31) as f64).round(),
                        _ => ((i * (n as i64 + 3)) % 17) as f64,
                    };
                    (*field, value)
                })
                .collect();
            Sample::new("node-00042", base + i * 10_000, &values)
        })
        .collect();
    let points = rollup::roll_up(&samples, Step::TenMinutes);
    rollup::encode(&points).expect("144 points")
}

fn decode(c: &mut Criterion) {
    let row = day_row();
    let wanted: Vec<String> = FIELDS[..6].iter().map(|field| field.to_string()).collect();
    let mut group = c.benchmark_group("rollup_day_row");
    group.throughput(Throughput::Elements(144));
    group.bench_function("full", |b| {
        b.iter(|| rollup::decode_fields(black_box(&row), Some(&wanted)).unwrap())
    });
    let mut points = Vec::new();
    group.bench_function("totals_into", |b| {
        b.iter(|| {
            rollup::decode_fields_into(black_box(&row), Some(&wanted), true, &mut points).unwrap();
            points.len()
        })
    });
    let mut totals = rollup::Totals::default();
    group.bench_function("totals_columns", |b| {
        b.iter(|| {
            totals
                .decode(black_box(&row), Some(&wanted), (i64::MIN, i64::MAX))
                .unwrap();
            totals.stamps.len()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
