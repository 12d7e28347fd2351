//! Load for `POST /api/v1/samples`: THREADS clients post batches of BATCH
//! samples (HOSTS hosts, the 10 built-in fields, timestamps of now) for
//! SECONDS seconds, and print the samples per second the service accepted.
//! Every accepted batch is committed to the store before the answer.
//!
//! `cargo run --release --example ingest_load -- http://127.0.0.1:7373 4 20 1000 1000`

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn batch(first_host: usize, hosts: usize, size: usize) -> String {
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let mut body = String::with_capacity(size * 240);
    body.push('[');
    for i in 0..size {
        let host = (first_host + i) % hosts;
        let cpu = (host * 7 + i) % 90;
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"host":"node-{host:05}","ts":{ts},"metrics":{{"cpu.usage":{cpu}.5,"mem.usage":41.25,"mem.free":8126464,"requests.count":120,"requests.latency_sum":4200,"requests.latency_avg":35,"eventsIn.count":40,"eventsOut.count":38,"warnings.count":1,"errors.count":0}}}}"#
        );
    }
    body.push(']');
    body
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7373".to_string());
    let number =
        |arg: Option<String>, default: usize| arg.map_or(default, |a| a.parse().expect("a number"));
    let threads = number(args.next(), 4);
    let seconds = number(args.next(), 20) as u64;
    let size = number(args.next(), 1000);
    let hosts = number(args.next(), 1000);
    let endpoint = format!("{url}/api/v1/samples");
    let accepted = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let latencies = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (endpoint, accepted, failed, latencies) =
                (&endpoint, &accepted, &failed, &latencies);
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut mine = Vec::new();
                let mut first = thread * size;
                while Instant::now() < deadline {
                    let body = batch(first, hosts, size);
                    first += size * threads;
                    let sent = Instant::now();
                    match agent
                        .post(endpoint)
                        .header("Content-Type", "application/json")
                        .send(body.as_bytes())
                    {
                        Ok(response) if response.status() == 200 => {
                            accepted.fetch_add(size as u64, Ordering::Relaxed);
                            mine.push(sent.elapsed());
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    let at = |q: f64| latencies.get(((latencies.len() as f64 - 1.0) * q) as usize);
    println!(
        "{accepted} samples accepted in {elapsed:.1} s: {:.0} samples/s; {} failed batches; \
         batch latency p50 {:?}, p99 {:?}",
        accepted as f64 / elapsed,
        failed.load(Ordering::Relaxed),
        at(0.5).copied().unwrap_or_default(),
        at(0.99).copied().unwrap_or_default(),
    );
}
