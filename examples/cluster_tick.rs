//! The leader's cost per tick on Redis, at 10,000 hosts x 12 rules
//! (`benches/rules-12.json`): each tick reads the samples every node
//! appended since the last one, evaluates, records the transitions and
//! publishes every pair's state. Also reports Redis's memory per host-day of
//! samples (raw and compacted).
//!
//! `cargo run --release --example cluster_tick -- redis://127.0.0.1:6390/0 [HOSTS] [TICKS]`
//! against a Redis of its own (it writes under the cluster name `tick-bench`
//! and deletes nothing).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use alertd::clock::ManualClock;
use alertd::config::Config;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::{RedisStore, Store};

/// CPU time of this process (all threads, including the Redis client's), in
/// seconds.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn redis_memory(url: &str) -> u64 {
    let port = url
        .rsplit(':')
        .next()
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("6379");
    let output = std::process::Command::new("redis-cli")
        .args(["-p", port, "INFO", "memory"])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("a redis:// URL");
    let hosts: usize = args.next().map_or(10_000, |a| a.parse().expect("hosts"));
    let ticks: i64 = args.next().map_or(60, |a| a.parse().expect("ticks"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules-12.json");
    let config = Config::load(&path).expect("valid").config;
    let fields = [
        "cpu.usage",
        "mem.usage",
        "errors.count",
        "requests.count",
        "mem.free",
        "requests.latency_avg",
        "warnings.count",
        "eventsIn.count",
        "eventsOut.count",
    ];
    let store: Arc<dyn Store> = Arc::new(RedisStore::open(&url, "tick-bench").expect("redis"));
    let start = 1_795_428_000_000i64;
    let clock = Arc::new(ManualClock::new(start));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = Options {
        config_path: dir.path().join("unused.json"),
        data_dir: dir.path().to_path_buf(),
        host_name: "bench".to_string(),
        token: None,
        url: None,
    };
    let memory_before = redis_memory(&url);
    let service = Service::new(options, config, clock.clone(), store.clone()).expect("service");
    assert!(
        service.is_leading(),
        "another process holds the lease of tick-bench"
    );
    let names: Vec<String> = (0..hosts).map(|h| format!("host-{h:05}")).collect();
    let mut state = 42u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64 * 80.0).round() / 4.0
    };
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut appended = 0usize;
    for tick in 0..ticks {
        let at = start + tick * 10_000;
        clock.set(at);
        // What the nodes appended over the interval, 1,000 samples a batch.
        let samples: Vec<Sample> = names
            .iter()
            .map(|name| {
                let metrics: Vec<(&str, f64)> = fields.iter().map(|f| (*f, next())).collect();
                Sample::new(name.clone(), at - 5_000, &metrics)
            })
            .collect();
        for batch in samples.chunks(1_000) {
            service.ingest(batch.to_vec()).expect("ingest");
        }
        appended += samples.len();
        let (started, cpu_started) = (Instant::now(), cpu_seconds());
        service.tick(at).expect("tick");
        if tick >= 12 {
            wall.push(started.elapsed().as_secs_f64());
            cpu.push(cpu_seconds() - cpu_started);
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    println!(
        "{hosts} hosts x 12 rules on Redis: per tick, median wall {:.1} ms (worst {:.1}), median CPU {:.1} ms (worst {:.1})",
        wall[wall.len() / 2] * 1e3,
        wall[wall.len() - 1] * 1e3,
        cpu[cpu.len() / 2] * 1e3,
        cpu[cpu.len() - 1] * 1e3
    );
    let raw = redis_memory(&url).saturating_sub(memory_before);
    let span_days = (ticks * 10_000) as f64 / 86_400_000.0;
    println!(
        "Redis memory for {appended} raw samples ({} fields): {:.1} MB, {:.0} bytes/sample, {:.2} MB per host-day at 10 s",
        fields.len(),
        raw as f64 / 1e6,
        raw as f64 / appended as f64,
        raw as f64 / 1e6 / (hosts as f64 * span_days)
    );
    let compact_started = Instant::now();
    let mut folded = 0;
    loop {
        let step = store
            .compact_samples(i64::MAX, alertd::store::EVERY_ROLLUP)
            .expect("compact");
        if step == 0 {
            break;
        }
        folded += step;
    }
    let compacted = redis_memory(&url).saturating_sub(memory_before);
    println!(
        "compacted {folded} samples in {:.1} s: {:.1} MB, {:.0} bytes/sample, {:.2} MB per host-day at 10 s",
        compact_started.elapsed().as_secs_f64(),
        compacted as f64 / 1e6,
        compacted as f64 / appended as f64,
        compacted as f64 / 1e6 / (hosts as f64 * span_days)
    );
}
