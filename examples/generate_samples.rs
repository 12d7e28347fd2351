//! Writes a synthetic trace for the replay benchmark: HOSTS hosts reporting
//! the 10 built-in fields every 10 s for TICKS ticks, in timestamp order.
//!
//! `cargo run --release --example generate_samples -- 1000 8640 [FIRST_TS_MS] > day.ndjson`
//!
//! Values wander deterministically (a fixed-seed generator) so that rules
//! open and resolve now and then, as on a real cluster.

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let hosts: usize = args
        .next()
        .map_or(1_000, |a| a.parse().expect("a host count"));
    let ticks: usize = args
        .next()
        .map_or(8_640, |a| a.parse().expect("a tick count"));
    // The first timestamp: 2026-11-23T00:00:00Z unless a third argument says.
    let epoch: i64 = args
        .next()
        .map_or(1_795_392_000_000, |a| a.parse().expect("a timestamp in ms"));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut cpu: Vec<f64> = (0..hosts).map(|_| 20.0 + random() * 30.0).collect();
    let names: Vec<String> = (0..hosts).map(|h| format!("node-{h:04}")).collect();
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    for tick in 0..ticks {
        let ts = epoch + tick as i64 * 10_000;
        for (h, name) in names.iter().enumerate() {
            cpu[h] = (cpu[h] + (random() - 0.5) * 8.0).clamp(0.0, 100.0);
            let requests = (random() * 200.0) as u64;
            let latency_sum = requests * (20 + (random() * 40.0) as u64);
            let errors = u64::from(random() < 0.02) * (random() * 30.0) as u64;
            write!(
                out,
                r#"{{"host":"{name}","ts":{ts},"metrics":{{"cpu.usage":{:.2},"mem.usage":{:.2},"mem.free":{},"requests.count":{requests},"requests.latency_sum":{latency_sum},"#,
                cpu[h],
                40.0 + random() * 20.0,
                4_000_000 + (random() * 1_000_000.0) as u64,
            )?;
            if requests > 0 {
                write!(
                    out,
                    r#""requests.latency_avg":{:.3},"#,
                    latency_sum as f64 / requests as f64
                )?;
            }
            writeln!(
                out,
                r#""eventsIn.count":{},"eventsOut.count":{},"warnings.count":{},"errors.count":{errors}}}}}"#,
                (random() * 50.0) as u64,
                (random() * 50.0) as u64,
                u64::from(random() < 0.1),
            )?;
        }
    }
    out.flush()
}
