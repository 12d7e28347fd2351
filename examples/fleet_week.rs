//! The pages at fleet scale, measured on a store the service wrote itself.
//!
//! Against a running `alertd run` (its data directory given too), this:
//!
//! 1. pushes DAYS days of HOSTS hosts, one sample every 10 s with the 10
//!    built-in fields, through `POST /api/v1/samples` at full speed (4
//!    clients, 5 ticks a request, oldest first) until it reaches now;
//! 2. goes on as the fleet would: every host reports every 10 s, until the end;
//! 3. waits for the service's janitor to compact the backlog (the samples
//!    not yet in blocks, read from the store's file, no longer fall);
//! 4. requests every page and every frame and resolution the pages offer
//!    (the resolutions read from each page's own selector), ROUNDS times
//!    each, and prints best / median / worst time and the size of the
//!    answer, as a Markdown table;
//! 5. prints what the data directory takes on disk, per sample stored.
//!
//! ```sh
//! target/release/alertd run --config benches/rules-12.json --data-dir /tmp/fleet \
//!     --listen 127.0.0.1:7480 --host-name bench &
//! target/release/examples/fleet_week http://127.0.0.1:7480 /tmp/fleet 1000 7 3
//! ```
//!
//! `SKIP_PUSH=1` measures a store built before (the feed still runs).

#[path = "common/shapes.rs"]
mod shapes;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shapes::{Host, Random};

const INTERVAL: i64 = 10_000;
const TICKS_PER_POST: i64 = 5;
const CLIENTS: usize = 4;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// What the feed has done.
#[derive(Default)]
struct Fed {
    samples: AtomicU64,
    refused: AtomicU64,
    /// Set once the pushes reach now: from then on, one tick every 10 s.
    live: AtomicBool,
    stop: AtomicBool,
}

/// Writes ticks from `start` on, oldest first, as request bodies: as fast
/// as the clients take them while behind, then each tick when it is due.
fn produce(hosts: usize, start: i64, fed: &Fed, bodies: SyncSender<(String, u64)>) {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut fleet: Vec<Host> = (0..hosts).map(Host::nth).collect();
    let mut ts = start;
    while !fed.stop.load(Ordering::Relaxed) {
        let behind = ts + TICKS_PER_POST * INTERVAL <= now();
        let ticks = if behind { TICKS_PER_POST } else { 1 };
        if !behind {
            fed.live.store(true, Ordering::Relaxed);
            let wait = ts - now();
            if wait > 0 {
                std::thread::sleep(Duration::from_millis(wait as u64));
            }
        }
        let mut body = String::with_capacity(hosts * ticks as usize * 300);
        body.push('[');
        for tick in 0..ticks {
            for (index, host) in fleet.iter_mut().enumerate() {
                // Hosts report at their own moment within the interval.
                let at = ts + tick * INTERVAL + (index as i64 * 7919) % INTERVAL;
                if body.len() > 1 {
                    body.push(',');
                }
                let _ = write!(body, r#"{{"host":"{}","ts":{at},"metrics":{{"#, host.name);
                for (position, (field, value)) in host.next(&mut random).iter().enumerate() {
                    let comma = if position > 0 { "," } else { "" };
                    let _ = write!(body, r#"{comma}"{field}":{value}"#);
                }
                body.push_str("}}");
            }
        }
        body.push(']');
        if bodies.send((body, hosts as u64 * ticks as u64)).is_err() {
            return;
        }
        ts += ticks * INTERVAL;
    }
}

fn send(url: &str, fed: &Fed, bodies: &Mutex<Receiver<(String, u64)>>) {
    let agent = agent();
    loop {
        let Ok((body, samples)) = bodies.lock().unwrap().recv() else {
            return;
        };
        let answer = agent
            .post(&format!("{url}/api/v1/samples"))
            .content_type("application/json")
            .send(&body);
        match answer {
            Ok(response) if response.status() == 200 => {
                fed.samples.fetch_add(samples, Ordering::Relaxed);
            }
            Ok(response) => {
                eprintln!("a push of {samples} samples answered {}", response.status());
                fed.refused.fetch_add(samples, Ordering::Relaxed);
            }
            Err(error) => {
                eprintln!("a push failed: {error}");
                fed.refused.fetch_add(samples, Ordering::Relaxed);
            }
        }
    }
}

/// The store's figures, read from its file beside the running service.
struct Store(rusqlite::Connection);

impl Store {
    fn open(dir: &Path) -> Store {
        let path = dir.join("alertd.sqlite");
        let connection = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        connection.busy_timeout(Duration::from_secs(30)).unwrap();
        Store(connection)
    }

    fn figure(&self, sql: &str) -> i64 {
        self.0
            .query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    }
}

fn directory_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One request: milliseconds and bytes, or the status if not 200.
fn fetch(agent: &ureq::Agent, url: &str) -> Result<(f64, usize, String), u16> {
    let started = Instant::now();
    let mut response = agent.get(url).call().map_err(|_| 0u16)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|_| status)?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    if status != 200 {
        return Err(status);
    }
    Ok((millis, body.len(), body))
}

/// The values of the `<select name="resolution">` of a page.
fn resolutions(html: &str) -> Vec<String> {
    let Some(start) = html.find(r#"<select name="resolution">"#) else {
        return Vec::new();
    };
    let select = &html[start..];
    let select = &select[..select.find("</select>").unwrap_or(select.len())];
    select
        .split(r#"<option value=""#)
        .skip(1)
        .filter_map(|option| option.split('"').next())
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .collect()
}

fn measure(agent: &ureq::Agent, base: &str, path: &str, rounds: usize) -> String {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        match fetch(agent, &format!("{base}{path}")) {
            Ok((millis, size, _)) => {
                times.push(millis);
                bytes = size;
            }
            Err(status) => return format!("| `{path}` | answered {status} | |"),
        }
    }
    times.sort_by(f64::total_cmp);
    let row = format!(
        "| `{path}` | {:.0} / {:.0} / {:.0} | {:.0} |",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        bytes as f64 / 1000.0
    );
    println!("{row}");
    row
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:7480".to_string());
    let dir = PathBuf::from(args.next().expect("the service's data directory"));
    let number =
        |arg: Option<String>, default: usize| arg.map_or(default, |a| a.parse().expect("a number"));
    let hosts = number(args.next(), 1000);
    let days = number(args.next(), 7) as i64;
    let rounds = number(args.next(), 3).max(1);
    let skip_push = std::env::var_os("SKIP_PUSH").is_some();

    let fed = Arc::new(Fed::default());
    let first = if skip_push {
        now() / INTERVAL * INTERVAL
    } else {
        (now() - days * 86_400_000) / INTERVAL * INTERVAL
    };
    let (bodies_in, bodies_out) = sync_channel::<(String, u64)>(CLIENTS * 2);
    let bodies_out = Arc::new(Mutex::new(bodies_out));
    let producer = {
        let fed = fed.clone();
        std::thread::spawn(move || produce(hosts, first, &fed, bodies_in))
    };
    let senders: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (fed, bodies, base) = (fed.clone(), bodies_out.clone(), base.clone());
            std::thread::spawn(move || send(&base, &fed, &bodies))
        })
        .collect();

    let started = Instant::now();
    while !fed.live.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(10));
        let samples = fed.samples.load(Ordering::Relaxed);
        eprintln!(
            "{:>5.0} s: {samples} samples pushed ({:.0}/s)",
            started.elapsed().as_secs_f64(),
            samples as f64 / started.elapsed().as_secs_f64()
        );
    }
    let pushed = fed.samples.load(Ordering::Relaxed);
    let push_time = started.elapsed();
    println!(
        "pushed {pushed} samples of {hosts} hosts over {days} d in {:.0} s: {:.0} samples/s; {} refused",
        push_time.as_secs_f64(),
        pushed as f64 / push_time.as_secs_f64(),
        fed.refused.load(Ordering::Relaxed)
    );

    // The janitor compacts every minute in bounded steps: done when the
    // samples not yet in blocks stop falling.
    let store = Store::open(&dir);
    let waited = Instant::now();
    let mut last = i64::MAX;
    loop {
        let raw = store.figure("SELECT coalesce(sum(count), 0) FROM recent");
        eprintln!(
            "{:>5.0} s after the push: {raw} samples not yet compacted",
            waited.elapsed().as_secs_f64()
        );
        if raw >= last && raw < (hosts as i64) * 720 {
            break;
        }
        last = last.min(raw);
        std::thread::sleep(Duration::from_secs(30));
    }
    println!(
        "compacted {:.0} s after the push",
        waited.elapsed().as_secs_f64()
    );

    let agent = agent();
    println!("\n| page | ms: best / median / worst of {rounds} | KB |\n|---|---|---|");
    let monitoring_frames = ["30m", "1h", "2h", "5h", "15h", "24h", "7d"];
    for frame in monitoring_frames {
        let path = format!("/monitoring?frame={frame}");
        measure(&agent, &base, &path, rounds);
        let offered = fetch(&agent, &format!("{base}{path}"))
            .map(|(_, _, html)| resolutions(&html))
            .unwrap_or_default();
        for resolution in offered {
            measure(
                &agent,
                &base,
                &format!("{path}&resolution={resolution}"),
                rounds,
            );
        }
    }
    measure(
        &agent,
        &base,
        "/monitoring?frame=7d&host=node-00042",
        rounds,
    );
    for frame in &monitoring_frames[..6] {
        measure(&agent, &base, &format!("/rules?frame={frame}"), rounds);
    }
    for frame in ["1h", "24h", "7d"] {
        measure(&agent, &base, &format!("/?frame={frame}"), rounds);
    }
    let incident = fetch(&agent, &format!("{base}/?frame=7d"))
        .ok()
        .and_then(|(_, _, html)| {
            let at = html.find("href=\"/incidents/")? + "href=\"".len();
            Some(html[at..].split('"').next()?.to_string())
        });
    match incident {
        Some(path) => {
            measure(&agent, &base, &path, rounds);
        }
        None => println!("| an incident page | no incident in 7 days | |"),
    }
    let to = now();
    let from = to - 86_400_000;
    measure(
        &agent,
        &base,
        &format!("/api/v1/stats?from={from}&to={to}&resolution=300000&across=hosts"),
        rounds,
    );
    measure(
        &agent,
        &base,
        &format!("/api/v1/stats?from={from}&to={to}&resolution=300000"),
        rounds,
    );

    fed.stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    for sender in senders {
        sender.join().unwrap();
    }
    let fed_total = fed.samples.load(Ordering::Relaxed);
    let page_size = store.figure("PRAGMA page_size");
    let free = store.figure("PRAGMA freelist_count") * page_size;
    let table = |sql: &str| store.figure(sql) as f64;
    let blocks = table("SELECT coalesce(sum(length(data)), 0) FROM blocks");
    let in_blocks = table("SELECT coalesce(sum(count), 0) FROM blocks");
    let minute = table("SELECT coalesce(sum(length(data)), 0) FROM rollups WHERE step = 60000");
    let ten = table("SELECT coalesce(sum(length(data)), 0) FROM rollups WHERE step = 600000");
    let hour = table("SELECT coalesce(sum(length(data)), 0) FROM rollups WHERE step = 3600000");
    let recent = table("SELECT coalesce(sum(length(data)), 0) FROM recent");
    let stored = in_blocks + table("SELECT coalesce(sum(count), 0) FROM recent");
    let whole = directory_bytes(&dir) as f64;
    // Per sample stored (a store measured again holds more than this run pushed).
    let per = |bytes: f64| bytes / stored.max(1.0);
    println!(
        "\n{fed_total} samples pushed by this run, {stored} stored; the data directory: {:.1} MB, \
         {:.2} bytes per sample stored ({:.1} MB of free pages)",
        whole / 1e6,
        per(whole),
        free as f64 / 1e6
    );
    println!(
        "payloads: blocks {:.1} MB ({:.2} B per sample in them), 1-minute rollups {:.1} MB ({:.2} B), \
         10-minute rollups {:.1} MB ({:.2} B), hour rollups {:.1} MB ({:.2} B), recent rows {:.1} MB",
        blocks / 1e6,
        blocks / in_blocks.max(1.0),
        minute / 1e6,
        per(minute),
        ten / 1e6,
        per(ten),
        hour / 1e6,
        per(hour),
        recent / 1e6
    );
}
