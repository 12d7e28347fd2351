//! Fuzzed pushes to both ingestion endpoints of the real router, in process:
//! whatever is pushed, no answer is a 5xx, the counters held for this node's
//! next sample stay finite (their latency average too), and the sample the
//! next collection makes can be stored. Shared by the `pushes` fuzz target
//! and the regression test.

use std::path::Path;
use std::sync::Arc;

use alertd::http::router;
use alertd::sample::Sample;
use alertd::service::{Service, counter_fields};
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

/// A service in `dir` that collects its own samples (not started: the test
/// collects), with a rule on a counter.
pub fn fixture(dir: &Path) -> Arc<Service> {
    super::queries::service(
        dir,
        r#"{"monitoring": {"enabled": true}, "alerting": {"enabled": true, "rules": [
        {"name": "errors", "field": "errors.count", "aggregation": "avg",
         "operand": "equalOrMoreThan", "value": 10, "timeframe": "1m"}]}}"#,
    )
}

/// `data` as pushes: split at each `\n\n`, the parts go in turn to
/// `/api/v1/metrics` and `/api/v1/samples` (the samples' `"ts": 0` made the
/// present, so that they are not refused for their time alone); then this
/// node's sample is collected and stored. Panics when a property fails.
pub async fn check(service: &Arc<Service>, data: &[u8]) {
    let now = service.now().to_string();
    for (index, body) in split(data).enumerate() {
        let (path, body) = if index % 2 == 0 {
            ("/api/v1/metrics", body.to_vec())
        } else {
            let text = String::from_utf8_lossy(body).replace("\"ts\":0", &format!("\"ts\":{now}"));
            ("/api/v1/samples", text.into_bytes())
        };
        let request = Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("a request");
        let status = router(service.clone())
            .oneshot(request)
            .await
            .expect("the router answers")
            .status()
            .as_u16();
        assert!(status < 500, "POST {path}: {status}");
        let totals = service.counters().totals();
        assert!(totals.values().all(|v| v.is_finite()), "{totals:?}");
        let total = |field: &str| totals.get(field).copied().unwrap_or(0.0);
        let (count, sum) = (total("requests.count"), total("requests.latency_sum"));
        assert!(count <= 0.0 || (sum / count).is_finite(), "{sum} / {count}");
    }
    let metrics = counter_fields(service.counters().take());
    let sample = Sample {
        host: "fixture".to_string(),
        ts: service.now(),
        metrics,
    };
    alertd::store::batch::storable(std::slice::from_ref(&sample)).expect("a storable sample");
    service
        .ingest(vec![sample])
        .expect("the collected sample is stored");
}

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.windows(2).position(|pair| pair == b"\n\n") {
            Some(at) => {
                rest = Some(&text[at + 2..]);
                Some(&text[..at])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}
