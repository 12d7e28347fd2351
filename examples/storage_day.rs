//! Fills a store with simulated history and reports what it takes on disk:
//! HOSTS hosts, one sample every INTERVAL seconds for DAYS days, the 10
//! built-in fields with values shaped like real ones (percentages with two
//! decimals, byte counts in pages, request counts around a rate), appended
//! one tick at a time and compacted as the service does (everything older
//! than 20 minutes, every 10 minutes of simulated time).
//!
//! `cargo run --release --example storage_day -- DIR HOSTS INTERVAL DAYS [noisy]`
//!
//! `noisy` gives every field a full-precision random value instead: the
//! worst case for the compressed format.

use std::time::Instant;

use alertd::sample::Sample;
use alertd::store::SampleStore;
use alertd::store::SqliteStore;

#[path = "common/shapes.rs"]
mod shapes;

use shapes::{Host, Random};

fn sample(host: &mut Host, ts: i64, random: &mut Random, noisy: bool) -> Sample {
    if noisy {
        let fields: Vec<(&str, f64)> = alertd::field::BUILT_IN_FIELDS
            .iter()
            .map(|field| (*field, random.unit() * 1000.0))
            .collect();
        return Sample::new(host.name.clone(), ts, &fields);
    }
    Sample::new(host.name.clone(), ts, &host.next(random))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let number = |arg: Option<String>, default: f64| arg.map_or(default, |a| a.parse().unwrap());
    let hosts = number(args.next(), 1000.0) as usize;
    let interval = (number(args.next(), 10.0) * 1000.0) as i64;
    let days = number(args.next(), 1.0);
    let noisy = args.next().as_deref() == Some("noisy");
    let store = SqliteStore::open_dir(&dir).unwrap();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut fleet: Vec<Host> = (0..hosts).map(Host::nth).collect();
    let span = (days * 86_400_000.0) as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = (now - span) / interval * interval;
    let mut appended = 0u64;
    let mut append_time = std::time::Duration::ZERO;
    let mut compaction_time = std::time::Duration::ZERO;
    // The longest transaction: how long an append can wait for compaction.
    let mut longest_compaction = std::time::Duration::ZERO;
    let mut next_compaction = start + 600_000;
    let mut ts = start;
    while ts < start + span {
        let batch: Vec<Sample> = fleet
            .iter_mut()
            .enumerate()
            .map(|(i, host)| {
                // Hosts report at their own moment within the interval.
                let jitter = (i as i64 * 7919) % interval.max(1);
                sample(host, ts + jitter, &mut random, noisy)
            })
            .collect();
        let timer = Instant::now();
        store.append_samples(&batch).unwrap();
        append_time += timer.elapsed();
        appended += batch.len() as u64;
        ts += interval;
        if ts >= next_compaction {
            loop {
                let timer = Instant::now();
                let folded = store
                    .compact_samples(ts - 1_200_000, alertd::store::EVERY_ROLLUP)
                    .unwrap();
                let took = timer.elapsed();
                compaction_time += took;
                longest_compaction = longest_compaction.max(took);
                if folded == 0 {
                    break;
                }
            }
            next_compaction += 600_000;
        }
    }
    drop(store);
    let connection = rusqlite::Connection::open(dir.join("alertd.sqlite")).unwrap();
    let _ = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let figure = |sql: &str| -> i64 { connection.query_row(sql, [], |row| row.get(0)).unwrap() };
    let page_size = figure("PRAGMA page_size");
    let pages = figure("PRAGMA page_count");
    let free = figure("PRAGMA freelist_count");
    let blocks = figure("SELECT coalesce(sum(length(data)), 0) FROM blocks");
    let compacted = figure("SELECT coalesce(sum(count), 0) FROM blocks");
    let recent = figure("SELECT coalesce(sum(length(data)), 0) FROM recent");
    let recent_samples = figure("SELECT coalesce(sum(count), 0) FROM recent");
    let rollups_minute =
        figure("SELECT coalesce(sum(length(data)), 0) FROM rollups WHERE step = 60000");
    let rollups_ten =
        figure("SELECT coalesce(sum(length(data)), 0) FROM rollups WHERE step = 600000");
    let used = (pages - free) * page_size;
    println!(
        "{appended} samples of {hosts} hosts every {} s over {days} d{}",
        interval / 1000,
        if noisy { " (noisy values)" } else { "" }
    );
    println!(
        "append: {:.0} samples/s (store only, {} per append); compaction: {:.1} s in all, \
         longest transaction {:.0} ms",
        appended as f64 / append_time.as_secs_f64(),
        hosts,
        compaction_time.as_secs_f64(),
        longest_compaction.as_secs_f64() * 1000.0
    );
    println!(
        "file: {:.1} MB used ({:.1} MB with free pages); {:.2} bytes per sample",
        used as f64 / 1e6,
        (pages * page_size) as f64 / 1e6,
        used as f64 / appended as f64
    );
    println!(
        "blocks: {compacted} samples in {:.1} MB ({:.2} bytes per sample); recent: {recent_samples} samples in {:.1} MB",
        blocks as f64 / 1e6,
        blocks as f64 / compacted.max(1) as f64,
        recent as f64 / 1e6
    );
    println!(
        "rollups: per minute {:.1} MB, per ten minutes {:.1} MB",
        rollups_minute as f64 / 1e6,
        rollups_ten as f64 / 1e6
    );
}
