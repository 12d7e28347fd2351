//! Query strings against every GET endpoint of the real router (see
//! `tests/support/queries.rs`), over a store with a rule, samples and an
//! incident.
#![no_main]

use std::sync::{Arc, OnceLock};

use alertd::clock::SystemClock;
use alertd::config::Config;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::SqliteStore;

#[path = "../../tests/support/queries.rs"]
mod queries;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = r#"{"alerting": {"enabled": true, "rules": [
            {"name": "x high", "field": "x", "aggregation": "avg",
             "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}]}}"#;
        let config = Config::parse(config, "fuzz.json").expect("valid").config;
        let store = Arc::new(SqliteStore::open_dir(dir.path()).expect("a store"));
        let options = Options {
            config_path: dir.path().join("alertd.json"),
            data_dir: dir.path().to_path_buf(),
            host_name: "fuzz".to_string(),
            token: None,
        };
        let service = Service::new(options, config, Arc::new(SystemClock), store).expect("a service");
        let now = service.now();
        let samples = (0..60)
            .map(|i| Sample::new(format!("h{}", i % 3), now - i * 10_000, &[("x", i as f64)]))
            .collect();
        service.ingest(samples).expect("stored");
        service.tick(now - now % 10_000).expect("a tick");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture {
            runtime,
            service,
            _dir: dir,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    fixture.runtime.block_on(queries::check(&fixture.service, data));
});
