//! Fuzzed query strings against every GET endpoint of the real router, in
//! process: whatever the query, the answer comes, and it is not a 5xx other
//! than 503 (a failing store). Shared by the `query` fuzz target and the
//! regression test.

use std::path::Path;
use std::sync::Arc;

use alertd::clock::SystemClock;
use alertd::config::Config;
use alertd::http::router;
use alertd::sample::Sample;
use alertd::service::{Options, Service};
use alertd::store::SqliteStore;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

/// A service in `dir` with something on every page: a rule, three hosts'
/// samples over the last ten minutes, and the incidents of a tick.
pub fn fixture(dir: &Path) -> Arc<Service> {
    let service = service(
        dir,
        r#"{"alerting": {"enabled": true, "rules": [
        {"name": "x high", "field": "x", "aggregation": "avg",
         "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}]}}"#,
    );
    let now = service.now();
    let samples = (0..60)
        .map(|i| Sample::new(format!("h{}", i % 3), now - i * 10_000, &[("x", i as f64)]))
        .collect();
    service.ingest(samples).expect("stored");
    service.tick(now - now % 10_000).expect("a tick");
    service
}

/// A service named `fixture` on the configuration `config`, with its store
/// in `dir`, not started: the caller drives it.
pub fn service(dir: &Path, config: &str) -> Arc<Service> {
    let config = Config::parse(config, "fixture.json").expect("valid").config;
    let store = Arc::new(SqliteStore::open_dir(dir).expect("a store"));
    let options = Options {
        config_path: dir.join("alertd.json"),
        data_dir: dir.to_path_buf(),
        host_name: "fixture".to_string(),
        token: None,
        url: None,
    };
    Service::new(options, config, Arc::new(SystemClock), store).expect("a service")
}

/// Every page and API endpoint that answers a GET: those that read a query
/// string, and those that must ignore one.
pub const PATHS: &[&str] = &[
    "/",
    "/monitoring",
    "/rules",
    "/incidents/x",
    "/login",
    "/api/v1/incidents",
    "/api/v1/incidents/x",
    "/api/v1/stats",
    "/api/v1/rules",
    "/api/v1/hosts",
    "/api/v1/cluster",
    "/metrics",
    "/healthz",
];

/// `data` as a query string: bytes outside a safe set are percent-encoded,
/// so that any input makes a valid URI and reaches the handlers.
pub fn query_string(data: &[u8]) -> String {
    let mut query = String::with_capacity(data.len() * 3);
    for &byte in data {
        if byte.is_ascii_alphanumeric() || b"=&%+._~-,:".contains(&byte) {
            query.push(byte as char);
        } else {
            query.push_str(&format!("%{byte:02X}"));
        }
    }
    query
}

/// Sends `data` as the query of every path; panics on an answer of 500 or more
/// other than 503.
pub async fn check(service: &Arc<Service>, data: &[u8]) {
    let query = query_string(data);
    for path in PATHS {
        let uri = format!("{path}?{query}");
        let request = Request::get(&uri).body(Body::empty()).expect("a valid URI");
        let response = router(service.clone())
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status().as_u16();
        assert!(status < 500 || status == 503, "GET {uri}: {status}");
    }
}
