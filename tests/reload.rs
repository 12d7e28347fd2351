//! A reload rebuilds the engine from the store without holding up pushes:
//! the store is held in the middle of the rebuild's scan while a batch is
//! pushed; the push completes, and the new engine has every sample exactly
//! once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertd::clock::ManualClock;
use alertd::config::Config;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::{Observed, SqliteStore};

const T0: i64 = 1_795_428_000_000;

fn config(rules: &str) -> String {
    format!(r#"{{"alerting": {{"enabled": true, "watcherInterval": "10s", "rules": [{rules}]}}}}"#)
}

const COUNT_X: &str = r#"{"name": "x count", "field": "x", "aggregation": "count",
    "operand": "equalOrMoreThan", "value": 1000000, "timeframe": "1h"}"#;
const SUM_X: &str = r#"{"name": "x sum", "field": "x", "aggregation": "sum",
    "operand": "equalOrMoreThan", "value": 1000000, "timeframe": "1h"}"#;

#[test]
fn pushes_go_on_during_a_reload_and_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.json");
    std::fs::write(&path, config(COUNT_X)).unwrap();
    let hold = Arc::new(AtomicBool::new(false));
    let (entered, in_scan) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let holding = hold.clone();
    let store = Observed::with_check(
        Arc::new(SqliteStore::open_dir(dir.path()).unwrap()),
        Box::new(move |method| {
            if method == "scan_samples_before" && holding.swap(false, Ordering::SeqCst) {
                let _ = entered.send(());
                let _ = released.lock().unwrap().recv();
            }
            Ok(())
        }),
    );
    let clock = Arc::new(ManualClock::new(T0));
    let loaded = Config::load(&path).unwrap().config;
    let options = Options {
        config_path: path.clone(),
        data_dir: dir.path().to_path_buf(),
        host_name: "test".to_string(),
        token: None,
        url: None,
    };
    let service = Service::new(options, loaded, clock.clone(), Arc::new(store)).unwrap();
    let push = |service: &Service, from: i64, count: i64| {
        let samples = (from..from + count)
            .map(|i| Sample::new("web-1", T0 - 60_000 + i * 1_000, &[("x", 1.0)]))
            .collect();
        service.ingest(samples).unwrap();
    };
    push(&service, 0, 3);

    // A reload with one more rule, held inside its scan of the samples.
    std::fs::write(&path, config(&format!("{COUNT_X}, {SUM_X}"))).unwrap();
    hold.store(true, Ordering::SeqCst);
    let reloading = {
        let service = service.clone();
        std::thread::spawn(move || service.reload())
    };
    in_scan
        .recv_timeout(Duration::from_secs(20))
        .expect("the reload reaches its scan");

    // A push while the rebuild is held: it must not wait for it.
    let (pushed, done) = mpsc::channel();
    {
        let service = service.clone();
        std::thread::spawn(move || {
            push(&service, 3, 2);
            let _ = pushed.send(());
        });
    }
    let answered = done.recv_timeout(Duration::from_secs(20));
    release.send(()).unwrap();
    reloading.join().unwrap().unwrap();
    assert!(answered.is_ok(), "the push waited for the reload");

    // Every sample, once, in the new engine (which has both rules).
    assert_eq!(service.tick(T0).unwrap(), 0);
    let states = service.rule_states();
    assert_eq!(states.rules.len(), 2, "the new configuration");
    let (host, statuses) = &states.hosts[0];
    assert_eq!(host, "web-1");
    assert_eq!(
        statuses[0].aggregate,
        Some(5.0),
        "count: none lost, none twice"
    );
    assert_eq!(statuses[1].aggregate, Some(5.0), "sum");
}
