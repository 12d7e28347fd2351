//! The service's state across a restart, in process with a manual clock: a
//! new `Service` on the same SQLite file rebuilds its windows, open incidents
//! and cooldowns from the store, so a restart changes no decision.

use std::path::Path;
use std::sync::Arc;

use alertd::clock::ManualClock;
use alertd::config::Config;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::SqliteStore;

const CONFIG: &str = r#"{"alerting": {"enabled": true, "watcherInterval": "10s", "rules": [
    {"name": "x high", "field": "x", "aggregation": "last", "operand": "equalOrMoreThan",
     "value": 10, "timeframe": "100s", "cooldown": "60s"}]}}"#;

fn service(dir: &Path, now: i64) -> Arc<Service> {
    service_with(dir, now, CONFIG)
}

fn service_with(dir: &Path, now: i64, config: &str) -> Arc<Service> {
    let config = Config::parse(config, "test").unwrap().config;
    let store = Arc::new(SqliteStore::open_dir(dir).unwrap());
    let options = Options {
        config_path: dir.join("unused.json"),
        data_dir: dir.to_path_buf(),
        host_name: "test".to_string(),
        token: None,
        url: None,
    };
    Service::new(options, config, Arc::new(ManualClock::new(now)), store).unwrap()
}

fn push(service: &Service, ts: i64, x: f64) {
    service
        .ingest(vec![Sample::new("web-1", ts, &[("x", x)])])
        .unwrap();
}

#[test]
fn windows_incidents_and_cooldowns_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = service(dir.path(), 0);
    push(&first, 10_000, 50.0);
    assert_eq!(first.tick(10_000).unwrap(), 1, "opened");
    push(&first, 20_000, 1.0);
    assert_eq!(
        first.tick(20_000).unwrap(),
        1,
        "resolved; cooling down until 80s"
    );
    push(&first, 30_000, 50.0);
    assert_eq!(first.tick(30_000).unwrap(), 0, "cooldown");
    drop(first);

    let second = service(dir.path(), 35_000);
    assert_eq!(second.tick(40_000).unwrap(), 0, "the cooldown was restored");
    assert_eq!(second.tick(70_000).unwrap(), 0);
    // No sample since the restart: the rebuilt window still holds x = 50.
    assert_eq!(
        second.tick(80_000).unwrap(),
        1,
        "opened from the rebuilt window"
    );
    let incidents = second.store().incidents(0, 100_000).unwrap();
    assert_eq!(incidents.active.len(), 1);
    assert_eq!(incidents.resolved.len(), 1);
    let open_id = incidents.active[0].id.clone();
    drop(second);

    let third = service(dir.path(), 85_000);
    assert_eq!(
        third.tick(90_000).unwrap(),
        0,
        "still open, not opened twice"
    );
    push(&third, 95_000, 2.0);
    assert_eq!(
        third.tick(100_000).unwrap(),
        1,
        "the restored incident resolves"
    );
    let incidents = third.store().incidents(0, 200_000).unwrap();
    assert!(incidents.active.is_empty());
    assert!(incidents.resolved.iter().any(|i| i.id == open_id));
    // No hooks were installed: nothing waits in the outbox.
    assert_eq!(third.store().pending_deliveries().unwrap(), 0);
}

#[test]
fn a_tick_at_or_before_the_last_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), 0);
    push(&service, 10_000, 50.0);
    assert_eq!(service.tick(10_000).unwrap(), 1);
    assert_eq!(service.tick(10_000).unwrap(), 0);
    assert_eq!(service.tick(0).unwrap(), 0);
    assert_eq!(
        service.store().incidents(0, 20_000).unwrap().active.len(),
        1
    );
}

#[test]
fn with_alerting_off_samples_are_stored_and_used_once_it_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let off = CONFIG.replace(r#""enabled": true"#, r#""enabled": false"#);
    let first = service_with(dir.path(), 0, &off);
    push(&first, 10_000, 50.0);
    assert_eq!(first.tick(10_000).unwrap(), 0, "nothing is evaluated");
    drop(first);
    let second = service(dir.path(), 15_000);
    assert_eq!(second.tick(20_000).unwrap(), 1, "the stored sample counts");
}
