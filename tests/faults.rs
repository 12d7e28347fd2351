//! A store that fails must not make the service lose or double a transition.
//!
//! `faulty` wraps the SQLite store and fails the n-th call to it, whatever
//! the method, and the calls right after it (a burst). The same run of
//! samples and ticks, driven by a manual clock, is played once without
//! faults and then with a burst starting at every call of that run. Whatever
//! fails, each step is tried again until it succeeds (a failed start is a
//! restart), and after every step:
//!
//! - no (rule, host) has two open incidents;
//! - every incident has its "opened" delivery first in the outbox, and a
//!   resolved one its "resolved" delivery after it;
//! - the engine's open incidents are the store's, id for id (memory never
//!   moves ahead of the store, nor stays behind it).
//!
//! Once the faults stop, the store ends equal to the run without faults
//! (incident ids are random, so incidents are compared by what they say).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use alertd::clock::ManualClock;
use alertd::config::Config;
use alertd::incident::TransitionKind;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::{HostSeen, Observed, SqliteStore, StoreError};
use alertd::store::{IncidentLog, SampleStore};

const CONFIG: &str = r#"{
  "monitoring": {"retentionPeriod": "60s"},
  "alerting": {"enabled": true, "watcherInterval": "10s", "rules": [
    {"name": "x high", "field": "x", "aggregation": "last", "operand": "equalOrMoreThan",
     "value": 10, "timeframe": "30s", "cooldown": "20s"},
    {"name": "y burst", "field": "y", "aggregation": "sum", "operand": "equalOrMoreThan",
     "value": 5, "timeframe": "20s"}]}}"#;

/// The SQLite store in `dir`, and the same behind a check that fails calls
/// `from .. from + count` (counted from 1), if set, and counts them.
fn faulty(
    dir: &Path,
    burst: Option<(u64, u64)>,
) -> (Arc<SqliteStore>, Arc<Observed>, Arc<AtomicU64>) {
    let inner = Arc::new(SqliteStore::open_dir(dir).unwrap());
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let before = move |method: &str| {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        match burst {
            Some((from, count)) if (from..from + count).contains(&call) => Err(
                StoreError::Corrupt(format!("injected fault: call {call} ({method})")),
            ),
            _ => Ok(()),
        }
    };
    let store = Observed::with_check(inner.clone(), Box::new(before));
    (inner, Arc::new(store), calls)
}

/// A service's options on `dir`.
fn options(dir: &Path) -> Options {
    Options {
        config_path: dir.join("unused.json"),
        data_dir: dir.to_path_buf(),
        host_name: "test".to_string(),
        token: None,
        url: None,
    }
}

/// One step of the run: samples at `at`, then the tick at `at`.
struct Step {
    at: i64,
    samples: Vec<Sample>,
}

/// Two hosts that cross both rules several times, and a third that fires
/// once and falls silent, to be forgotten (its incident resolves).
fn steps() -> Vec<Step> {
    let x_a = [
        1., 20., 20., 5., 5., 30., 30., 30., 2., 2., 40., 1., 1., 1., 50., 50.,
    ];
    let x_b = [
        50., 50., 1., 1., 1., 1., 60., 1., 1., 70., 70., 1., 1., 1., 1., 1.,
    ];
    let y_a = [
        0., 3., 3., 0., 0., 6., 0., 0., 0., 9., 0., 0., 2., 2., 2., 0.,
    ];
    (0..x_a.len())
        .map(|k| {
            let at = (k as i64 + 1) * 10_000;
            let mut samples = vec![
                Sample::new("a", at, &[("x", x_a[k]), ("y", y_a[k])]),
                Sample::new("b", at - 3_000, &[("x", x_b[k])]),
            ];
            if k == 0 {
                samples.push(Sample::new("c", at, &[("x", 99.)]));
            }
            Step { at, samples }
        })
        .collect()
}

fn install_hook(dir: &Path) {
    let hooks = dir.join("global/hooks/on_incident_status_changed");
    std::fs::create_dir_all(&hooks).unwrap();
    let path = hooks.join("10-page");
    std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
}

/// Tries `attempt` until it succeeds; faults are bounded, so a few suffice.
fn retry<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let mut errors = Vec::new();
    for _ in 0..10 {
        match attempt() {
            Ok(value) => return value,
            Err(error) => errors.push(error),
        }
    }
    panic!("{what} kept failing: {errors:?}");
}

/// An incident without its id: rule, host, start, end, trigger value, and
/// the deliveries waiting for it (`target:kind`).
type Told = (String, String, i64, Option<i64>, String, Vec<String>);

/// What the store holds, without incident ids: each incident with the
/// deliveries waiting for it, the cooldowns, the hosts.
#[derive(Debug, PartialEq)]
struct Held {
    incidents: BTreeSet<Told>,
    pairs: Vec<(String, String, Option<i64>, bool)>,
    hosts: Vec<HostSeen>,
}

fn held(store: &SqliteStore) -> Held {
    let all = store.incidents(i64::MIN, i64::MAX).unwrap();
    let incidents = all
        .active
        .iter()
        .chain(&all.resolved)
        .map(|incident| {
            let detail = store.incident(&incident.id).unwrap().unwrap();
            let deliveries = detail
                .pending
                .iter()
                .map(|d| format!("{}:{}", d.target, d.kind.as_str()))
                .collect();
            (
                incident.rule_name.to_string(),
                incident.host_name.to_string(),
                incident.start_time,
                incident.end_time,
                incident.trigger_value.to_string(),
                deliveries,
            )
        })
        .collect();
    let pairs = store
        .pairs()
        .unwrap()
        .into_iter()
        .map(|pair| {
            (
                pair.rule_name,
                pair.host,
                pair.last_end,
                pair.open.is_some(),
            )
        })
        .collect();
    Held {
        incidents,
        pairs,
        hosts: store.hosts().unwrap(),
    }
}

/// The invariants that hold after every step, faults or not.
fn check_invariants(service: &Service, store: &SqliteStore, context: &str) {
    let all = store.incidents(i64::MIN, i64::MAX).unwrap();
    let mut open_pairs = BTreeSet::new();
    for incident in &all.active {
        assert!(
            open_pairs.insert((incident.rule_name.clone(), incident.host_name.clone())),
            "{context}: two open incidents for {} on {}",
            incident.rule_name,
            incident.host_name
        );
    }
    for incident in all.active.iter().chain(&all.resolved) {
        let detail = store.incident(&incident.id).unwrap().unwrap();
        let kinds: Vec<TransitionKind> = detail.pending.iter().map(|d| d.kind).collect();
        let expected = if incident.is_open() {
            vec![TransitionKind::Opened]
        } else {
            vec![TransitionKind::Opened, TransitionKind::Resolved]
        };
        assert_eq!(
            kinds, expected,
            "{context}: deliveries of incident {incident:?}"
        );
    }
    let mut in_memory: Vec<String> = service
        .rule_states()
        .hosts
        .iter()
        .flat_map(|(_, statuses)| statuses.iter().filter_map(|s| s.open.clone()))
        .map(|incident| incident.id)
        .collect();
    in_memory.sort();
    let mut stored: Vec<String> = all.active.iter().map(|i| i.id.clone()).collect();
    stored.sort();
    assert_eq!(
        in_memory, stored,
        "{context}: the engine's open incidents are the store's"
    );
}

/// Plays the steps with `burst` faults; returns what the store ends with and
/// how many store calls the run made.
fn play(burst: Option<(u64, u64)>) -> (Held, u64) {
    let dir = tempfile::tempdir().unwrap();
    install_hook(dir.path());
    let (inner, store, calls) = faulty(dir.path(), burst);
    let clock = Arc::new(ManualClock::new(0));
    let config = Config::parse(CONFIG, "test").unwrap().config;
    let start = || {
        let options = options(dir.path());
        Service::new(options, config.clone(), clock.clone(), store.clone())
            .map_err(|e| e.to_string())
    };
    let service = retry("start", start);
    let context = |at: i64| format!("burst {burst:?}, tick {at}");
    for step in steps() {
        clock.set(step.at);
        retry("ingest", || {
            service
                .ingest(step.samples.clone())
                .map_err(|e| e.to_string())
        });
        check_invariants(&service, &inner, &context(step.at));
        retry("tick", || service.tick(step.at).map_err(|e| e.to_string()));
        check_invariants(&service, &inner, &context(step.at));
    }
    (held(&inner), calls.load(Ordering::SeqCst))
}

#[test]
fn whatever_store_call_fails_nothing_is_lost_or_doubled() {
    let (expected, calls) = play(None);
    // The run must exercise what could go wrong: opens, resolves, cooldowns
    // and a forgotten host.
    let resolved = expected.incidents.iter().filter(|i| i.3.is_some()).count();
    assert!(resolved >= 5, "a run with resolutions: {expected:#?}");
    assert!(
        expected
            .incidents
            .iter()
            .any(|i| i.1 == "c" && i.3.is_some()),
        "host c is forgotten and its incident resolved"
    );
    assert!(calls > 30, "{calls} store calls");
    eprintln!("{calls} store calls in a run; a burst of 1 and of 3 starting at each");
    for count in [1, 3] {
        for from in 1..=calls {
            let (got, _) = play(Some((from, count)));
            assert_eq!(
                got,
                expected,
                "calls {from}..{} failed: the store differs from the run without faults",
                from + count
            );
        }
    }
}

#[test]
fn after_a_failed_tick_the_engine_keeps_the_stored_state_and_the_same_tick_succeeds() {
    // Fail the recording of the first transitions and every call after it
    // for a while: the tick fails, the engine keeps the stored state.
    let dir = tempfile::tempdir().unwrap();
    install_hook(dir.path());
    // Calls: 1-3 at start (pairs, latest, scan), 4 the lease, 5 the last
    // tick, 6 ingest, 7 record.
    let (inner, store, _) = faulty(dir.path(), Some((7, 3)));
    let clock = Arc::new(ManualClock::new(0));
    let config = Config::parse(CONFIG, "test").unwrap().config;
    let options = options(dir.path());
    let service = Service::new(options, config, clock.clone(), store.clone()).unwrap();
    clock.set(10_000);
    service
        .ingest(vec![Sample::new("a", 10_000, &[("x", 50.0)])])
        .unwrap();
    let error = service.tick(10_000).unwrap_err().to_string();
    assert!(error.contains("injected fault: call 7"), "{error}");
    assert!(service.store().incidents(0, i64::MAX).is_err(), "call 8");
    assert!(service.store().incidents(0, i64::MAX).is_err(), "call 9");
    let states = service.rule_states();
    assert!(
        states.hosts[0].1.iter().all(|s| s.open.is_none()),
        "nothing opened in memory"
    );
    assert_eq!(service.tick(10_000).unwrap(), 1, "the same tick, again");
    check_invariants(&service, &inner, "after the retry");
}

#[test]
fn healthz_reports_a_store_that_fails_requests() {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fail = failing.clone();
    // Only the incidents query fails: the health check's own query works.
    let store = Observed::with_check(
        Arc::new(SqliteStore::open_dir(dir.path()).unwrap()),
        Box::new(move |method| match method {
            "incidents" if fail.load(Ordering::SeqCst) => Err(StoreError::Corrupt(
                "database disk image is malformed".to_string(),
            )),
            _ => Ok(()),
        }),
    );
    let config = Config::parse(CONFIG, "test").unwrap().config;
    let options = options(dir.path());
    let clock = Arc::new(ManualClock::new(0));
    let service = Service::new(options, config, clock, Arc::new(store)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let get = |path: &str| {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = runtime
            .block_on(alertd::http::router(service.clone()).oneshot(request))
            .unwrap();
        let status = response.status().as_u16();
        let body = runtime
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(get("/healthz").0, 200);
    failing.store(true, Ordering::SeqCst);
    assert_eq!(get("/api/v1/incidents").0, 503);
    let (status, body) = get("/healthz");
    assert_eq!(status, 503);
    assert!(body.contains("database disk image is malformed"), "{body}");
}
