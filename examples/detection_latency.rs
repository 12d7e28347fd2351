//! Detection latency: from a sample that crosses a threshold being accepted
//! (its `POST /api/v1/samples` answered) to the hook process starting, with a
//! 1 s watcher interval. Starts the given alertd binary in a temporary
//! directory with a hook that writes the time it started, then makes
//! TRANSITIONS transitions (opening and resolving in turn).
//!
//! `cargo build --release && cargo run --release --example detection_latency -- target/release/alertd 100`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let binary = args
        .next()
        .unwrap_or_else(|| "target/release/alertd".to_string());
    let transitions: usize = args.next().map_or(100, |a| a.parse().expect("a count"));
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir
        .path()
        .join("data/global/hooks/on_incident_status_changed");
    std::fs::create_dir_all(&hooks).unwrap();
    let started_log = dir.path().join("started.log");
    let hook = hooks.join("10-time");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$(date +%s%N) $INCIDENT_STATUS\" >> '{}'\n",
            started_log.display()
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    let config = dir.path().join("alertd.json");
    std::fs::write(
        &config,
        r#"{"alerting": {"enabled": true, "watcherInterval": "1s", "rules": [
            {"name": "x high", "field": "x", "aggregation": "last",
             "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}]}}"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut alertd = Command::new(&binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertd");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}/api/v1/samples");
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .call()
        .is_err()
    {
        assert!(Instant::now() < deadline, "alertd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut latencies = Vec::new();
    for i in 0..transitions {
        let x = if i % 2 == 0 { 50 } else { 1 };
        let ts = now_ns() / 1_000_000;
        let body = format!(r#"[{{"host": "web-1", "ts": {ts}, "metrics": {{"x": {x}}}}}]"#);
        let response = agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(response.status(), 200);
        let accepted = now_ns();
        let line = loop {
            let log = std::fs::read_to_string(&started_log).unwrap_or_default();
            if let Some(line) = log.lines().nth(i) {
                break line.to_string();
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let hook_started: u128 = line.split(' ').next().unwrap().parse().unwrap();
        latencies.push(Duration::from_nanos(
            hook_started.saturating_sub(accepted) as u64
        ));
        // Lands the next sample at a different point of the tick interval.
        std::thread::sleep(Duration::from_millis(37 * (i as u64 % 7)));
    }
    let _ = alertd.kill();
    let _ = alertd.wait();
    latencies.sort();
    println!(
        "{} transitions, watcher interval 1 s: median {:?}, worst {:?}, best {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies[0],
    );
}
