//! Does a write wait for reads? One client posts 1-sample batches back to
//! back while READERS clients request `/monitoring?frame=24h` and
//! `/api/v1/stats` (24 h) in a loop, for SECONDS seconds; prints the POST
//! latency (p50, p99, max) and how many pages the readers got.
//!
//! Load the store first (HOSTS hosts x 24 h at 10 s, ending now), e.g. with
//! `generate_samples` and `curl`, as `docs/performance.md` shows; then
//!
//! `cargo run --release --example read_load -- http://127.0.0.1:7474 20 4`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7373".to_string());
    let number =
        |arg: Option<String>, default: u64| arg.map_or(default, |a| a.parse().expect("a number"));
    let seconds = number(args.next(), 20);
    let readers = number(args.next(), 4);
    let stop = AtomicBool::new(false);
    let pages = AtomicU64::new(0);
    let failed_reads = AtomicU64::new(0);
    let mut latencies = Vec::new();
    let mut failed_posts = 0u64;
    std::thread::scope(|scope| {
        for reader in 0..readers {
            let (url, stop, pages, failed_reads) = (&url, &stop, &pages, &failed_reads);
            scope.spawn(move || {
                let agent = agent();
                let mut turn = reader;
                while !stop.load(Ordering::Relaxed) {
                    let path = if turn % 2 == 0 {
                        "/monitoring?frame=24h".to_string()
                    } else {
                        format!("/api/v1/stats?from={}", now() - 86_400_000)
                    };
                    turn += 1;
                    match agent.get(format!("{url}{path}")).call() {
                        Ok(mut response) if response.status() == 200 => {
                            let _ = response
                                .body_mut()
                                .with_config()
                                .limit(1 << 30)
                                .read_to_vec();
                            pages.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed_reads.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        // Let the readers get going before measuring.
        std::thread::sleep(Duration::from_secs(1));
        let agent = agent();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            let body = format!(
                r#"[{{"host":"writer","ts":{},"metrics":{{"cpu.usage":12.5}}}}]"#,
                now()
            );
            let sent = Instant::now();
            match agent
                .post(format!("{url}/api/v1/samples"))
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
            {
                Ok(response) if response.status() == 200 => latencies.push(sent.elapsed()),
                _ => failed_posts += 1,
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{} posts ({failed_posts} failed): p50 {:.1?}, p99 {:.1?}, max {:.1?}; \
         {readers} readers got {} pages ({} failed)",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default(),
        pages.load(Ordering::Relaxed),
        failed_reads.load(Ordering::Relaxed),
    );
}
