//! The whole service in process, on a manual clock: `service::run` with its
//! watcher, dispatcher, collector and janitor, time moved by the test. No
//! test here sleeps to let time pass, and none checks that "nothing happened
//! after a while": every wait is for an event the service counts.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alertd::clock::ManualClock;
use alertd::config::Config;
use alertd::http::serve::{self, Limits};
use alertd::sample::Sample;
use alertd::service::{self, Options, Service};
use alertd::store::SqliteStore;
use support::{install_hook, lines, wait_for};
use tokio::sync::oneshot;

/// 2026-11-23T10:00:00Z, a multiple of every interval used here.
const T0: i64 = 1_795_428_000_000;

const RULE_X: &str = r#"{"name": "x high", "field": "x", "aggregation": "last",
    "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}"#;

/// A running service on a manual clock, stopped when dropped.
struct Clocked {
    clock: Arc<ManualClock>,
    service: Arc<Service>,
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Clocked {
    fn start(dir: &Path, config: &str) -> Clocked {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let config = Config::parse(config, "test").unwrap().config;
        let store = Arc::new(SqliteStore::open_dir(&dir.join("data")).unwrap());
        let options = Options {
            config_path: dir.join("alertd.json"),
            data_dir: dir.join("data"),
            host_name: "node".to_string(),
            token: None,
        };
        let service = Service::new(options, config, clock.clone(), store).unwrap();
        let (stop, stopped) = oneshot::channel();
        let listener = runtime.block_on(service::bind("127.0.0.1:0")).unwrap();
        let router = alertd::http::router(service.clone());
        let limits = Limits::for_open_files(1024, Duration::from_secs(30));
        let serve = move |stop| serve::serve(listener, router, limits, stop);
        let task = runtime.spawn(service::run(service.clone(), serve, async {
            let _ = stopped.await;
        }));
        Clocked {
            clock,
            service,
            runtime,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A counter from `/metrics`, as the service renders it.
    fn metric(&self, name: &str) -> f64 {
        let text = self.service.prometheus_text();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
            .parse()
            .unwrap()
    }

    fn wait_metric(&self, name: &str, value: f64) {
        wait_for(&format!("{name} = {value}"), 20, || {
            (self.metric(name) == value).then_some(())
        });
    }

    fn push(&self, host: &str, ts: i64, x: f64) {
        self.service
            .ingest(vec![Sample::new(host, ts, &[("x", x)])])
            .unwrap();
    }

    fn active(&self) -> usize {
        self.service
            .store()
            .incidents(0, i64::MAX)
            .unwrap()
            .active
            .len()
    }
}

impl Drop for Clocked {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
    }
}

fn config(extra: &str) -> String {
    format!(
        r#"{{"alerting": {{"enabled": true, "watcherInterval": "10s", "rules": [{RULE_X}]}}{extra}}}"#
    )
}

#[test]
fn ticks_fall_on_the_multiples_of_the_interval_as_the_clock_moves() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Clocked::start(dir.path(), &config(""));
    alertd.push("web-1", T0 + 1_000, 50.0);
    // Just before the first tick: the watcher is asleep until T0 + 10 s.
    alertd.clock.set(T0 + 9_999);
    alertd.clock.set(T0 + 10_000);
    alertd.wait_metric("alertd_ticks_total", 1.0);
    assert_eq!(alertd.active(), 1);
    alertd.push("web-1", T0 + 12_000, 1.0);
    alertd.clock.set(T0 + 19_999);
    alertd.clock.set(T0 + 20_000);
    alertd.wait_metric("alertd_ticks_total", 2.0);
    // Two ticks for two multiples: none at 9.999 s or 19.999 s, none missed.
    assert_eq!(alertd.active(), 0, "resolved at the second tick");
    assert_eq!(alertd.metric("alertd_ticks_missed_total"), 0.0);
    let incidents = alertd.service.store().incidents(0, i64::MAX).unwrap();
    assert_eq!(incidents.resolved[0].start_time, T0 + 10_000);
    assert_eq!(incidents.resolved[0].end_time, Some(T0 + 20_000));
}

#[test]
fn a_late_wake_evaluates_the_latest_tick_and_counts_the_missed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Clocked::start(dir.path(), &config(""));
    alertd.push("web-1", T0 + 1_000, 50.0);
    // A suspended machine: a minute passes at once.
    alertd.clock.set(T0 + 61_000);
    alertd.wait_metric("alertd_ticks_total", 1.0);
    assert_eq!(alertd.metric("alertd_ticks_missed_total"), 5.0);
    assert_eq!(alertd.metric("alertd_tick_lag_seconds"), 1.0);
    let incidents = alertd.service.store().incidents(0, i64::MAX).unwrap();
    assert_eq!(
        incidents.active[0].start_time,
        T0 + 60_000,
        "opened at the latest due tick, not in the past"
    );
}

#[test]
fn a_failing_hook_is_retried_when_the_clock_reaches_its_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let flag = dir.path().join("fail");
    std::fs::write(&flag, "").unwrap();
    install_hook(
        dir.path(),
        "10-flaky",
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho \"$INCIDENT_STATUS\" >> '{}'\n\
             if [ -e '{}' ]; then exit 1; fi\n",
            log.display(),
            flag.display()
        ),
    );
    let alertd = Clocked::start(dir.path(), &config(""));
    alertd.push("web-1", T0 + 1_000, 50.0);
    alertd.clock.set(T0 + 10_000);
    alertd.wait_metric("alertd_hook_calls_total{outcome=\"failure\"}", 1.0);
    // The first retry is due 1 s after the failure, on the service's clock.
    std::fs::remove_file(&flag).unwrap();
    alertd.clock.advance(999);
    assert_eq!(lines(&log).len(), 1, "not before its time");
    alertd.clock.advance(2_000);
    alertd.wait_metric("alertd_hook_calls_total{outcome=\"success\"}", 1.0);
    assert_eq!(lines(&log), ["opened", "opened"]);
}

#[test]
fn the_janitor_deletes_old_samples_when_the_clock_passes_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Clocked::start(
        dir.path(),
        &config(r#", "monitoring": {"retentionPeriod": "1h", "janitorInterval": "10m"}"#),
    );
    alertd.push("web-1", T0 - 30 * 60_000, 1.0);
    alertd.push("web-1", T0 + 1_000, 1.0);
    // At T0 + 40 min the first sample is 70 minutes old; the janitor ran at
    // start (nothing old then) and runs again every 10 minutes.
    alertd.clock.set(T0 + 40 * 60_000);
    wait_for("the old sample to go", 20, || {
        let mut count = 0;
        alertd
            .service
            .store()
            .scan_samples(0, i64::MAX, &mut |_| count += 1)
            .unwrap();
        (count == 1).then_some(())
    });
}

#[test]
fn after_a_start_rules_that_missing_samples_would_fire_wait_for_a_whole_window() {
    // A count <= rule fires when samples are missing, as they are for the
    // time the service was down: it does not open until its window lies
    // after the start. A >= rule is not held back.
    let dir = tempfile::tempdir().unwrap();
    let rules = r#"{"alerting": {"enabled": true, "watcherInterval": "10s", "rules": [
        {"name": "x sparse", "field": "x", "aggregation": "count",
         "operand": "equalOrLessThan", "value": 2, "timeframe": "1m"},
        {"name": "x high", "field": "x", "aggregation": "last",
         "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}]}}"#;
    let alertd = Clocked::start(dir.path(), rules);
    alertd.push("web-1", T0 + 1_000, 50.0);
    alertd.clock.set(T0 + 10_000);
    alertd.wait_metric("alertd_ticks_total", 1.0);
    let open = |alertd: &Clocked| -> Vec<String> {
        let mut names: Vec<String> = alertd
            .service
            .store()
            .incidents(0, i64::MAX)
            .unwrap()
            .active
            .iter()
            .map(|i| i.rule_name.to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(open(&alertd), ["x high"], "x sparse is held back");
    for tick in 2..=5 {
        alertd.clock.set(T0 + tick * 10_000);
        alertd.wait_metric("alertd_ticks_total", tick as f64);
    }
    assert_eq!(
        open(&alertd),
        ["x high"],
        "windows still reach before the start"
    );
    alertd.clock.set(T0 + 60_000);
    alertd.wait_metric("alertd_ticks_total", 6.0);
    // The window (T0, T0 + 60 s] lies after the start: one sample, too few.
    assert_eq!(open(&alertd), ["x high", "x sparse"]);
    let incidents = alertd.service.store().incidents(0, i64::MAX).unwrap();
    let sparse = incidents
        .active
        .iter()
        .find(|i| &*i.rule_name == "x sparse");
    assert_eq!(sparse.map(|i| i.start_time), Some(T0 + 60_000));
}
