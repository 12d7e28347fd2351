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
        Self::start_at(dir, config, T0)
    }

    /// Starts with the clock at `now` (a restart resumes where time was: a
    /// clock that went back would find incidents that started in its
    /// future, which no store records as ending before they started).
    fn start_at(dir: &Path, config: &str, now: i64) -> Clocked {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let clock = Arc::new(ManualClock::new(now));
        let config = Config::parse(config, "test").unwrap().config;
        let store = Arc::new(SqliteStore::open_dir(&dir.join("data")).unwrap());
        let options = Options {
            config_path: dir.join("alertd.json"),
            data_dir: dir.join("data"),
            host_name: "node".to_string(),
            token: None,
            url: None,
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

/// A hook file deleted while its delivery waits for a retry: on a node
/// alone the delivery is dropped (not buried as dead), so nothing waits and
/// the incident can be deleted by retention.
#[test]
fn a_hook_deleted_while_its_delivery_waits_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    install_hook(
        dir.path(),
        "10-failing",
        "#!/bin/sh
cat > /dev/null
exit 1
",
    );
    let alertd = Clocked::start(dir.path(), &config(""));
    alertd.push("web-1", T0 + 1_000, 50.0);
    alertd.clock.set(T0 + 10_000);
    alertd.wait_metric("alertd_hook_calls_total{outcome=\"failure\"}", 1.0);
    assert_eq!(alertd.metric("alertd_pending_hook_deliveries"), 1.0);
    std::fs::remove_file(
        dir.path()
            .join("data/global/hooks/on_incident_status_changed/10-failing"),
    )
    .unwrap();
    alertd.clock.advance(3_000);
    alertd.wait_metric("alertd_hook_calls_total{outcome=\"failure\"}", 2.0);
    wait_for("the delivery to go", 20, || {
        (alertd.service.store().pending_deliveries().unwrap() == 0).then_some(())
    });
    assert_eq!(alertd.metric("alertd_deliveries_dead_total"), 0.0);
    assert!(alertd.service.store().undelivered().unwrap().is_empty());
    let id = alertd
        .service
        .store()
        .incidents(0, i64::MAX)
        .unwrap()
        .active[0]
        .id
        .clone();
    let detail = alertd.service.store().incident(&id).unwrap().unwrap();
    let last = detail.calls.last().unwrap();
    assert!(last.outcome.ends_with("dropped"), "{}", last.outcome);
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

mod pushes {
    //! Whatever is pushed to either endpoint, in any order, the store that
    //! results restarts and exports, and every value read back is finite.

    use std::collections::BTreeMap;

    use super::*;
    use alertd::clock::Clock;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use proptest::prelude::*;
    use tower::ServiceExt;

    const CONFIG: &str = r#"{
        "monitoring": {"enabled": true, "collectionInterval": "10s"},
        "alerting": {"enabled": true, "watcherInterval": "10s", "rules": [
            {"name": "errors", "field": "errors.count", "aggregation": "avg",
             "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"},
            {"name": "latency", "field": "requests.latency_avg", "aggregation": "sum",
             "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"},
            {"name": "x", "field": "x", "aggregation": "avg",
             "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"}]}}"#;

    #[derive(Debug, Clone)]
    enum Push {
        Counters(Vec<(&'static str, f64)>),
        Samples(Vec<f64>),
        /// The next collection of this node's sample (and tick).
        Collect,
    }

    /// Values at the edges of what a double holds, and ordinary ones.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(1.7e308),
            Just(1.7e308),
            Just(-1.7e308),
            Just(f64::MAX),
            Just(-f64::MAX),
            Just(1e308),
            Just(1e300),
            Just(1e-300),
            Just(-1e-300),
            Just(5e-324),
            Just(0.0),
            -1e6f64..1e6,
        ]
    }

    fn push() -> impl Strategy<Value = Push> {
        let field = prop::sample::select(vec![
            "requests.count",
            "requests.latency_sum",
            "requests.latency_avg",
            "errors.count",
            "errors.count",
            "custom.total",
        ]);
        prop_oneof![
            // One value per field: a JSON object's keys are unique.
            prop::collection::btree_map(field, value(), 1..4)
                .prop_map(|values| Push::Counters(values.into_iter().collect())),
            prop::collection::vec(value(), 1..4).prop_map(Push::Samples),
            Just(Push::Collect),
        ]
    }

    fn send(alertd: &Clocked, request: Request<Body>) -> StatusCode {
        let router = alertd::http::router(alertd.service.clone());
        alertd
            .runtime
            .block_on(router.oneshot(request))
            .unwrap()
            .status()
    }

    fn post(alertd: &Clocked, path: &str, body: String) -> StatusCode {
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body));
        send(alertd, request.unwrap())
    }

    fn get(alertd: &Clocked, path: &str) -> StatusCode {
        send(alertd, Request::get(path).body(Body::empty()).unwrap())
    }

    /// Moves the clock to the next collections until one has stored this
    /// node's sample (the collector may not have been waiting yet).
    fn collect(alertd: &Clocked) {
        let before = alertd.metric("alertd_samples_ingested_total");
        for _ in 0..100 {
            let now = alertd.clock.now();
            alertd.clock.set(now - now % 10_000 + 10_000);
            for _ in 0..20 {
                if alertd.metric("alertd_samples_ingested_total") > before {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("no collection");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn any_pushes_leave_a_store_that_restarts_and_exports(
            pushes in prop::collection::vec(push(), 1..8)
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("alertd.json"), CONFIG).unwrap();
            let stopped_at = {
                let alertd = Clocked::start(dir.path(), CONFIG);
                // The counters since the last collection, as the service
                // must hold them.
                let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
                for push in &pushes {
                    match push {
                        Push::Counters(values) => {
                            let mut after = totals.clone();
                            for (field, value) in values {
                                *after.entry(field).or_insert(0.0) += value;
                            }
                            let total = |field| after.get(field).copied().unwrap_or(0.0);
                            let (count, sum) = (total("requests.count"), total("requests.latency_sum"));
                            // Every partial sum too: a total that overflows
                            // and comes back is refused all the same.
                            let mut partial = totals.clone();
                            let overflows = values.iter().any(|(field, value)| {
                                let held = partial.entry(field).or_insert(0.0);
                                *held += value;
                                !held.is_finite()
                            }) || (count > 0.0 && !(sum / count).is_finite());
                            let body: serde_json::Map<String, serde_json::Value> = values
                                .iter()
                                .map(|(field, value)| (field.to_string(), (*value).into()))
                                .collect();
                            let status = post(
                                &alertd,
                                "/api/v1/metrics",
                                serde_json::Value::Object(body).to_string(),
                            );
                            if overflows {
                                prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{:?}", values);
                            } else {
                                prop_assert_eq!(status, StatusCode::NO_CONTENT, "{:?}", values);
                                totals = after;
                            }
                        }
                        Push::Samples(values) => {
                            let samples: Vec<serde_json::Value> = values
                                .iter()
                                .enumerate()
                                .map(|(i, x)| serde_json::json!({
                                    "host": format!("h{i}"), "ts": alertd.clock.now(),
                                    "metrics": {"x": x}
                                }))
                                .collect();
                            let status = post(
                                &alertd,
                                "/api/v1/samples",
                                serde_json::Value::Array(samples).to_string(),
                            );
                            prop_assert_eq!(status, StatusCode::OK, "{:?}", values);
                        }
                        Push::Collect => {
                            collect(&alertd);
                            totals.clear();
                        }
                    }
                }
                collect(&alertd);
                prop_assert_eq!(get(&alertd, "/healthz"), StatusCode::OK);
                alertd.clock.now()
            };
            // The store restarts, answers, and exports every sample, finite.
            let skipped = alertd::store::damage::rows_skipped();
            let alertd = Clocked::start_at(dir.path(), CONFIG, stopped_at);
            collect(&alertd);
            for path in ["/healthz", "/api/v1/stats?from=0", "/monitoring", "/rules", "/"] {
                prop_assert_eq!(get(&alertd, path), StatusCode::OK, "{}", path);
            }
            let mut out = Vec::new();
            let options = alertd::export::ExportOptions {
                from: 0,
                to: i64::MAX,
                hosts: Vec::new(),
                fields: None,
            };
            let written = alertd::export::export(alertd.service.store(), &options, &mut out)
                .expect("the store exports");
            prop_assert!(written >= 2, "the two collections at least");
            for line in out.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
                let sample: serde_json::Value = serde_json::from_slice(line).unwrap();
                for value in sample["metrics"].as_object().unwrap().values() {
                    prop_assert!(value.as_f64().is_some_and(f64::is_finite), "{}", sample);
                }
            }
            let incidents = alertd.service.store().incidents(0, i64::MAX).unwrap();
            for incident in incidents.active.iter().chain(&incidents.resolved) {
                prop_assert!(incident.trigger_value.is_finite(), "{:?}", incident);
            }
            prop_assert_eq!(alertd::store::damage::rows_skipped(), skipped, "nothing damaged");
        }
    }
}
