//! Times engine ticks at 10,000 hosts x 12 rules (the criterion bench's
//! workload) and prints the median and best tick, for quick comparisons:
//! `cargo run --release --example tick_timing`.

use std::path::Path;
use std::time::Instant;

use alertd::config::Config;
use alertd::engine::Engine;
use alertd::incident::SequentialIds;

fn main() {
    let hosts: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a host count"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules-12.json");
    let config = Config::load(&path).expect("valid").config;
    let mut engine = Engine::from_config(&config);
    let width = engine.fields().len();
    let names: Vec<String> = (0..hosts).map(|h| format!("host-{h:05}")).collect();
    let mut state = 42u64;
    let rows: Vec<Vec<f64>> = (0..64)
        .map(|_| {
            (0..width)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 11) as f64 / (1u64 << 53) as f64 * 80.0).round() / 4.0
                })
                .collect()
        })
        .collect();
    let mut ids = SequentialIds::default();
    let mut out = Vec::new();
    let mut times = Vec::new();
    let mut ingest_times = Vec::new();
    for tick in 0..400i64 {
        let at = 1_795_428_000_000 + tick * 10_000;
        let started = Instant::now();
        for (h, name) in names.iter().enumerate() {
            engine.ingest_values(name, at, &rows[(h + tick as usize) % rows.len()]);
        }
        let ingested = started.elapsed().as_secs_f64();
        out.clear();
        engine.evaluate(at, &mut ids, &mut out).unwrap();
        if tick >= 100 {
            times.push(started.elapsed().as_secs_f64());
            ingest_times.push(ingested);
        }
    }
    times.sort_by(f64::total_cmp);
    ingest_times.sort_by(f64::total_cmp);
    let pairs = (hosts * config.alerting.rules.len()) as f64;
    let median = times[times.len() / 2];
    println!(
        "{hosts} hosts x {} rules: median tick {:.2} ms ({:.1} ns per rule and host), best {:.2} ms, of which ingestion {:.2} ms",
        config.alerting.rules.len(),
        median * 1e3,
        median * 1e9 / pairs,
        times[0] * 1e3,
        ingest_times[0] * 1e3
    );
    let memory = engine.memory();
    println!(
        "window data: {:.1} MB for {} values ({:.2} bytes/value)",
        memory.window_bytes as f64 / 1e6,
        memory.values_held,
        memory.window_bytes as f64 / memory.values_held as f64
    );
}
