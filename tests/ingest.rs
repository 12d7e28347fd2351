//! The standard ways in, through the real binary: OTLP/HTTP (built
//! messages, the specification's JSON example, the OpenTelemetry JavaScript
//! SDK's own exporters), Prometheus remote write (built requests, and a real
//! Prometheus), and scraping (a real node_exporter). Each sees its points
//! reach the rules as an incident, and bad input refused with nothing stored.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};

use alertd::series::remote_write::{Label, MetricMetadata, TimeSeries, WriteRequest, WriteSample};
use support::{Alertd, free_port, now, programs, wait_for};

/// Ticks every second, one sample per host per second, and rules on what
/// the senders below send.
fn config(ingest: Value) -> String {
    config_with(ingest, 1_048_576)
}

fn config_with(ingest: Value, body_limit: u64) -> String {
    json!({
        "monitoring": {"enabled": false, "collectionInterval": "1s"},
        "alerting": {
            "enabled": true,
            "watcherInterval": "1s",
            "rules": [
                {"name": "queue deep", "field": "queue.depth", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 40, "timeframe": "1m"},
                {"name": "depth deep", "field": "queue_depth", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 40, "timeframe": "1m"},
                {"name": "cpu measured", "field": "cpu.usage", "aggregation": "count",
                 "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"}
            ]
        },
        "server": {"bodyLimit": body_limit},
        "ingest": ingest
    })
    .to_string()
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn number(value: f64, time: i64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: (time * 1_000_000) as u64,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_string(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

fn request(host: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attribute("host.name", host)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A request that must be refused: its headers, its body, the status it
/// gets, and words its answer says.
type Case = (
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The values of `field` the store holds for `host`, oldest first.
fn values(alertd: &Alertd, host: &str, field: &str) -> Vec<f64> {
    let from = now() - 600_000;
    let stats = alertd.get_json(&format!("/api/v1/stats?from={from}&resolution=1s"));
    stats["hosts"][host]
        .as_array()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|bucket| bucket["sum"][field].as_f64())
                .collect()
        })
        .unwrap_or_default()
}

/// The hosts with an open incident of `rule`.
fn open_for(alertd: &Alertd, rule: &str) -> Vec<String> {
    let mut hosts: Vec<String> = alertd
        .active()
        .iter()
        .filter(|incident| incident["ruleName"] == rule)
        .map(|incident| incident["hostName"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

fn hosts(alertd: &Alertd) -> Vec<String> {
    alertd.get_json("/api/v1/hosts")["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| host["host"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn otlp_protobuf_gzip_and_the_specification_s_json_reach_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(json!({})));
    let t = now() - 5_000;
    // Protobuf, gzipped, built with the OpenTelemetry project's own types.
    let counter = Metric {
        name: "jobs.done".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![number(100.0, t), number(130.0, t + 1_000)],
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    let body = request(
        "pb-host",
        vec![gauge("queue.depth", vec![number(41.0, t)]), counter],
    )
    .encode_to_vec();
    let (status, content_type, answer) = alertd.post_raw(
        "/v1/metrics",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        gzip(&body),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(content_type, "application/x-protobuf");
    let answer = ExportMetricsServiceResponse::decode(answer.as_slice()).unwrap();
    assert_eq!(answer.partial_success, None, "everything taken");

    // The JSON example of the OTLP specification (opentelemetry-proto,
    // examples/metrics.json), with a host and times of now.
    let nanos = |ms: i64| (ms * 1_000_000).to_string();
    let example = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "my.service"}},
            {"key": "host.name", "value": {"stringValue": "json-host"}}
        ]},
        "scopeMetrics": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
            "metrics": [
                {"name": "my.counter", "unit": "1", "description": "I am a Counter",
                 "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
                     {"asDouble": 5, "startTimeUnixNano": nanos(t - 1_000), "timeUnixNano": nanos(t),
                      "attributes": [{"key": "my.counter.attr", "value": {"stringValue": "some value"}}]}]}},
                {"name": "queue.depth", "unit": "1", "description": "I am a Gauge",
                 "gauge": {"dataPoints": [
                     {"asDouble": 45, "timeUnixNano": t * 1_000_000,
                      "attributes": [{"key": "my.gauge.attr", "value": {"stringValue": "some value"}}]}]}},
                {"name": "my.histogram", "unit": "1", "description": "I am a Histogram",
                 "histogram": {"aggregationTemporality": 1, "dataPoints": [
                     {"startTimeUnixNano": nanos(t - 1_000), "timeUnixNano": nanos(t),
                      "count": 3, "sum": 3, "bucketCounts": [1, 1, 1], "explicitBounds": [1],
                      "min": 1, "max": 1,
                      "attributes": [{"key": "my.histogram.attr", "value": {"stringValue": "some value"}}]}]}}
            ]
        }]
    }]});
    let (status, content_type, answer) =
        alertd.post_raw("/v1/metrics", &[JSON], example.to_string());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(content_type, "application/json");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer, json!({}), "everything taken");

    wait_for("both hosts' incidents", 20, || {
        (open_for(&alertd, "queue deep") == ["json-host", "pb-host"]).then_some(())
    });
    // A cumulative counter is its increase; a delta is taken as it is; a
    // histogram gives its count and sum.
    assert_eq!(values(&alertd, "pb-host", "jobs.done"), vec![30.0]);
    assert_eq!(values(&alertd, "json-host", "my.counter"), vec![5.0]);
    assert_eq!(
        values(&alertd, "json-host", "my.histogram.count"),
        vec![3.0]
    );
    assert_eq!(values(&alertd, "json-host", "my.histogram.sum"), vec![3.0]);
    assert_eq!(
        alertd.metric("alertd_points_total{via=\"otlp\",outcome=\"taken\"}"),
        7.0
    );
}

#[test]
fn bad_otlp_requests_are_refused_and_nothing_of_them_stored() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(json!({"maxPointsPerRequest": 1000})));
    let t = now() - 2_000;
    let good = request(
        "refused-host",
        vec![gauge("queue.depth", vec![number(50.0, t)])],
    )
    .encode_to_vec();
    // Cut short: a protobuf error, answered as google.rpc.Status.
    let (status, content_type, answer) =
        alertd.post_raw("/v1/metrics", &[PROTOBUF], &good[..good.len() - 3]);
    assert_eq!(
        (status, content_type.as_str()),
        (400, "application/x-protobuf")
    );
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let refusal = Status::decode(answer.as_slice()).unwrap();
    assert_eq!(refusal.code, 3, "INVALID_ARGUMENT");
    assert!(refusal.message.contains("protobuf"), "{}", refusal.message);

    let cases: Vec<Case> = vec![
        (
            vec![JSON],
            b"{\"resourceMetrics\": 7}".to_vec(),
            400,
            "not an OTLP",
        ),
        (
            vec![("Content-Type", "text/plain")],
            good.clone(),
            415,
            "application/x-protobuf or application/json",
        ),
        (
            vec![PROTOBUF, ("Content-Encoding", "gzip")],
            good.clone(),
            400,
            "not valid gzip",
        ),
        (
            vec![PROTOBUF, ("Content-Encoding", "br")],
            good.clone(),
            415,
            "gzip or none",
        ),
        // 100 MB of zeros, gzipped to 100 KB: refused once it inflates past
        // 8 x bodyLimit, not held whole.
        (
            vec![PROTOBUF, ("Content-Encoding", "gzip")],
            gzip(&vec![0u8; 100 << 20]),
            413,
            "inflates to more than",
        ),
    ];
    for (headers, body, expected, words) in cases {
        let (status, _, answer) = alertd.post_raw("/v1/metrics", &headers, &body);
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status, expected, "{headers:?}: {text}");
        assert!(text.contains(words), "{headers:?}: {words:?} in {text}");
    }
    // Past server.bodyLimit (1 MB) as sent: refused on its Content-Length,
    // before the body is read (the client here sends only the head, as one
    // that waits for 100-continue does).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", alertd.port)).unwrap();
    write!(
        stream,
        "POST /v1/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut answer = Vec::new();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("server.bodyLimit"), "{answer}");

    // A metric whose data does not read as OTLP JSON (a negative time):
    // refused, not taken as a metric without data.
    let nanos = (t * 1_000_000).to_string();
    let malformed = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "refused-host"}}]},
        "scopeMetrics": [{"metrics": [{"name": "queue.depth", "gauge": {"dataPoints": [
            {"asDouble": 50, "timeUnixNano": nanos},
            {"asDouble": 51, "timeUnixNano": "-5"}
        ]}}]}]
    }]});
    let (status, _, answer) = alertd.post_raw("/v1/metrics", &[JSON], malformed.to_string());
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&answer));
    let refusal: Value = serde_json::from_slice(&answer).unwrap();
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains("metrics[0] (\"queue.depth\"): its gauge could not be read"),
        "{message}"
    );
    // Millions of empty messages in a small gzipped body: refused before
    // they are decoded (each would be a struct of a hundred bytes).
    let mut empty_metrics = Vec::new();
    for _ in 0..4_000_000 {
        empty_metrics.extend_from_slice(b"\x12\x00");
    }
    let mut scope = vec![0x12];
    prost::encoding::encode_varint(empty_metrics.len() as u64, &mut scope);
    scope.extend_from_slice(&empty_metrics);
    let mut resource = vec![0x12];
    prost::encoding::encode_varint(scope.len() as u64, &mut resource);
    resource.extend_from_slice(&scope);
    let mut flood = vec![0x0a];
    prost::encoding::encode_varint(resource.len() as u64, &mut flood);
    flood.extend_from_slice(&resource);
    let (status, _, answer) = alertd.post_raw(
        "/v1/metrics",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        gzip(&flood),
    );
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("256 MiB once decoded"), "{text}");

    // More points than ingest.maxPointsPerRequest.
    let many: Vec<NumberDataPoint> = (0..1001).map(|i| number(f64::from(i), t)).collect();
    let (status, _, answer) = alertd.post_raw(
        "/v1/metrics",
        &[PROTOBUF],
        request("refused-host", vec![gauge("queue.depth", many)]).encode_to_vec(),
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("ingest.maxPointsPerRequest"));
    assert!(
        hosts(&alertd).is_empty(),
        "nothing of a refused request is stored"
    );

    // NaN, infinity and a name with markup: refused points in a partial
    // success, the good point taken.
    let body = request(
        "partial-host",
        vec![
            gauge("queue.depth", vec![number(47.0, t)]),
            gauge("nan.gauge", vec![number(f64::NAN, t)]),
            gauge("inf.gauge", vec![number(f64::INFINITY, t)]),
            gauge("<script>alert(1)</script>", vec![number(1.0, t)]),
        ],
    );
    let (status, _, answer) = alertd.post_raw("/v1/metrics", &[PROTOBUF], body.encode_to_vec());
    assert_eq!(status, 200);
    let partial = ExportMetricsServiceResponse::decode(answer.as_slice())
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_data_points, 3);
    assert!(
        partial.error_message.contains("not a finite number"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("not a valid field name"),
        "{}",
        partial.error_message
    );
    wait_for("the good point's incident", 20, || {
        (open_for(&alertd, "queue deep") == ["partial-host"]).then_some(())
    });
    assert_eq!(hosts(&alertd), ["partial-host"]);
}

#[test]
fn past_the_host_limit_the_known_hosts_are_still_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Value = serde_json::from_str(&config(json!({}))).unwrap();
    config["server"]["maxHosts"] = json!(2);
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let t = now() - 2_000;
    let gauges = |hosts: &[&str], value: f64| WriteRequest {
        timeseries: hosts
            .iter()
            .map(|host| {
                series(
                    &[("__name__", "queue_depth"), ("instance", host)],
                    &[(value, t)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    let (status, _, _) = alertd.post_raw(
        "/api/v1/write",
        &REMOTE_WRITE,
        snappy(&gauges(&["a", "b"], 41.0)),
    );
    assert_eq!(status, 204);
    // A third host: its points refused with the reason, the others' taken
    // (Prometheus would send the whole batch again after a 429, forever).
    let body = request(
        "c",
        vec![gauge("queue.depth", vec![number(50.0, t + 1_000)])],
    );
    let (status, _, answer) = alertd.post_raw("/v1/metrics", &[PROTOBUF], body.encode_to_vec());
    assert_eq!(status, 200);
    let partial = ExportMetricsServiceResponse::decode(answer.as_slice())
        .unwrap()
        .partial_success
        .expect("a partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("server.maxHosts"),
        "{}",
        partial.error_message
    );
    let (status, _, answer) = alertd.post_raw(
        "/api/v1/write",
        &REMOTE_WRITE,
        snappy(&WriteRequest {
            timeseries: vec![
                series(
                    &[("__name__", "queue_depth"), ("instance", "a")],
                    &[(42.0, t + 1_000)],
                ),
                series(
                    &[("__name__", "queue_depth"), ("instance", "d")],
                    &[(42.0, t + 1_000)],
                ),
            ],
            metadata: vec![],
        }),
    );
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("1 point(s) refused") && text.contains("server.maxHosts"),
        "{text}"
    );
    let mut known = hosts(&alertd);
    known.sort();
    assert_eq!(known, ["a", "b"]);
    assert_eq!(
        values(&alertd, "a", "queue_depth").len(),
        2,
        "a's second interval taken"
    );
}

fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(name, value)| Label {
                name: name.to_string(),
                value: value.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| WriteSample { value, timestamp })
            .collect(),
    }
}

fn snappy(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

const REMOTE_WRITE: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

#[test]
fn remote_write_requests_are_taken_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A body limit that lets a million series in, for ingest.maxPointsPerRequest.
    let alertd = Alertd::start(dir.path(), &config_with(json!({}), 64 << 20));
    let t = now() - 5_000;
    let write = WriteRequest {
        timeseries: vec![
            series(
                &[("__name__", "queue_depth"), ("instance", "rw-host:9100")],
                &[(44.0, t)],
            ),
            // A counter by its name's suffix, in two label sets summed away,
            // reset in between: 10 + 3.
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("instance", "rw-host:9100"),
                    ("code", "200"),
                ],
                &[(100.0, t), (110.0, t + 1_000)],
            ),
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("instance", "rw-host:9100"),
                    ("code", "500"),
                ],
                &[(7.0, t), (3.0, t + 1_000)],
            ),
            // A counter by its metadata: no suffix.
            series(
                &[("__name__", "bytes_in"), ("instance", "rw-host:9100")],
                &[(1000.0, t), (1500.0, t + 1_000)],
            ),
            // A histogram's buckets are left out.
            series(
                &[
                    ("__name__", "latency_bucket"),
                    ("instance", "rw-host:9100"),
                    ("le", "1"),
                ],
                &[(1.0, t)],
            ),
        ],
        metadata: vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "bytes_in".into(),
        }],
    };
    let (status, _, answer) = alertd.post_raw("/api/v1/write", &REMOTE_WRITE, snappy(&write));
    assert_eq!(status, 204, "{}", String::from_utf8_lossy(&answer));
    wait_for("the remote write incident", 20, || {
        (open_for(&alertd, "depth deep") == ["rw-host:9100"]).then_some(())
    });
    assert_eq!(
        values(&alertd, "rw-host:9100", "http_requests_total"),
        vec![13.0]
    );
    assert_eq!(values(&alertd, "rw-host:9100", "bytes_in"), vec![500.0]);
    assert!(values(&alertd, "rw-host:9100", "latency_bucket").is_empty());

    let fresh = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "queue_depth"), ("instance", "bad-host")],
            &[(1.0, t)],
        )],
        metadata: vec![],
    };
    let mut cases: Vec<Case> = vec![
        (REMOTE_WRITE.to_vec(), fresh.encode_to_vec(), 400, "snappy"),
        (
            REMOTE_WRITE.to_vec(),
            snappy(&fresh)[..10].to_vec(),
            400,
            "snappy",
        ),
        (
            vec![
                (
                    "Content-Type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                ),
                ("Content-Encoding", "snappy"),
            ],
            snappy(&fresh),
            415,
            "remote write 2.0",
        ),
        (
            vec![
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "gzip"),
            ],
            snappy(&fresh),
            415,
            "snappy",
        ),
        (
            REMOTE_WRITE.to_vec(),
            snap::raw::Encoder::new()
                .compress_vec(b"\x0a\xff\xff\xff\x0f")
                .unwrap(),
            400,
            "WriteRequest",
        ),
    ];
    // Millions of empty metadata entries: refused before they are decoded.
    let metadata_flood = b"\x1a\x00".repeat(4_000_000);
    cases.push((
        REMOTE_WRITE.to_vec(),
        snap::raw::Encoder::new()
            .compress_vec(&metadata_flood)
            .unwrap(),
        413,
        "256 MiB once decoded",
    ));
    // A million series: more than ingest.maxPointsPerRequest, refused whole.
    let million = WriteRequest {
        timeseries: (0..1_000_000)
            .map(|i| {
                series(
                    &[
                        ("__name__", "m"),
                        ("instance", "bad-host"),
                        ("i", &i.to_string()),
                    ],
                    &[(1.0, t)],
                )
            })
            .collect(),
        metadata: vec![],
    };
    cases.push((
        REMOTE_WRITE.to_vec(),
        snappy(&million),
        413,
        "ingest.maxPointsPerRequest",
    ));
    for (headers, body, expected, words) in cases {
        let (status, _, answer) = alertd.post_raw("/api/v1/write", &headers, &body);
        let text = String::from_utf8_lossy(&answer);
        assert_eq!(status, expected, "{headers:?}: {text}");
        assert!(text.contains(words), "{headers:?}: {words:?} in {text}");
    }
    assert_eq!(
        hosts(&alertd),
        ["rw-host:9100"],
        "nothing of a refused request is stored"
    );
}

/// A program of the tests' own, stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `body` as a `/metrics` page on a free port until the test ends;
/// counts the requests it answered.
fn exporter(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    exporter_of(move |_| body.to_string())
}

/// Serves the page `page(n)` to the n-th request (from 0).
fn exporter_of(page: impl Fn(usize) -> String + Send + 'static) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let body = page(count.load(Ordering::SeqCst));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, served)
}

#[test]
fn a_real_prometheus_remote_writes_what_it_scrapes() {
    if !programs::needed("prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(json!({})));
    // A counter that grows by 7 at each scrape.
    let (page, served) = exporter_of(|n| {
        format!(
            "# TYPE queue_depth gauge\nqueue_depth{{host=\"prom-app\"}} 43\n\
             # TYPE jobs_total counter\njobs_total{{host=\"prom-app\"}} {}\n",
            12 + 7 * n
        )
    });
    let prometheus_config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{page}']\n\
         remote_write:\n  - url: http://127.0.0.1:{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
        alertd.port
    );
    std::fs::write(dir.path().join("prometheus.yml"), prometheus_config).unwrap();
    let _prometheus = Running(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("Prometheus's samples and their incident", 60, || {
        (open_for(&alertd, "depth deep") == ["prom-app"]).then_some(())
    });
    // The counter's increases: multiples of 7, never more in all than the
    // page grew (a doubled increase would pass it).
    wait_for("a counter's increase", 30, || {
        (values(&alertd, "prom-app", "jobs_total")
            .iter()
            .sum::<f64>()
            > 0.0)
            .then_some(())
    });
    let increases = values(&alertd, "prom-app", "jobs_total");
    assert!(increases.iter().all(|v| v % 7.0 == 0.0), "{increases:?}");
    let grown = 7.0 * served.load(Ordering::SeqCst) as f64;
    assert!(
        increases.iter().sum::<f64>() <= grown,
        "{increases:?}, grown {grown}"
    );
    assert!(alertd.metric("alertd_points_total{via=\"remote_write\",outcome=\"taken\"}") > 0.0);
}

#[test]
fn node_exporter_scraped_fills_the_built_in_fields() {
    if !programs::needed("prometheus-node-exporter") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _exporter = Running(
        Command::new("prometheus-node-exporter")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let dead = free_port();
    let alertd = Alertd::start(
        dir.path(),
        &config(json!({"scrape": [
            {"url": format!("http://127.0.0.1:{port}/metrics"), "host": "node-1", "interval": "1s"},
            {"url": format!("http://127.0.0.1:{dead}/metrics"), "host": "gone", "interval": "1s"}
        ]})),
    );
    // cpu.usage needs two scrapes (an increase of CPU time): the rule that
    // counts its values opens once there is one.
    wait_for("cpu.usage from node_exporter", 60, || {
        (open_for(&alertd, "cpu measured") == ["node-1"]).then_some(())
    });
    let cpu = values(&alertd, "node-1", "cpu.usage");
    assert!(cpu.iter().all(|v| (0.0..=100.0).contains(v)), "{cpu:?}");
    let memory = values(&alertd, "node-1", "mem.usage");
    assert!(
        !memory.is_empty() && memory.iter().all(|v| *v > 0.0 && *v < 100.0),
        "{memory:?}"
    );
    let free = values(&alertd, "node-1", "mem.free");
    assert!(
        !free.is_empty() && free.iter().all(|v| *v > 1024.0 && v.fract() == 0.0),
        "{free:?}"
    );
    // Each target's last scrape, in the API and on its page.
    let targets = alertd.get_json("/api/v1/scrape");
    let targets = targets["targets"].as_array().unwrap();
    let up = targets.iter().find(|t| t["host"] == "node-1").unwrap();
    assert_eq!(up["up"], true, "{up}");
    assert!(up["lastScrape"].as_i64().is_some() && up["durationMs"].as_u64().is_some());
    let down = targets.iter().find(|t| t["host"] == "gone").unwrap();
    assert_eq!(down["up"], false);
    assert!(
        down["error"].as_str().unwrap().contains("cannot reach it"),
        "{down}"
    );
    let (status, page) = alertd.get("/scrape");
    assert_eq!(status, 200);
    assert!(
        page.contains("node-1") && page.contains("cannot reach it"),
        "{page}"
    );
}

/// The OpenTelemetry JavaScript SDK, installed by `./test` from npm.
fn otlp_client() -> Option<&'static Path> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp-client"));
    if dir.join("node_modules/@opentelemetry/sdk-metrics").is_dir() {
        return Some(dir);
    }
    assert!(
        !programs::required(),
        "tests/otlp-client is not installed (run ./test)"
    );
    programs::skipped("tests/otlp-client is not installed (run ./test)");
    None
}

#[test]
fn the_opentelemetry_sdk_s_exporters_open_an_incident() {
    if !programs::needed("node") {
        return;
    }
    let Some(client) = otlp_client() else { return };
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(json!({})));
    for (host, protocol) in [("sdk-proto", "protobuf"), ("sdk-json", "json")] {
        let status = Command::new("node")
            .arg(client.join("send.js"))
            .arg(alertd.url("/v1/metrics"))
            .args([host, protocol, "3"])
            .status()
            .unwrap();
        assert!(status.success(), "{protocol}: {status}");
    }
    wait_for("the SDK's incidents", 20, || {
        (open_for(&alertd, "queue deep") == ["sdk-json", "sdk-proto"]).then_some(())
    });
    // Its counter is cumulative: 5 a second, stored as increases.
    let done = values(&alertd, "sdk-proto", "jobs.done");
    assert!(
        !done.is_empty() && done.iter().all(|v| *v > 0.0 && v % 5.0 == 0.0),
        "{done:?}"
    );
}

/// Whether a node leads, by its `/metrics`.
fn leads(node: &Alertd) -> bool {
    node.try_get("/metrics").is_some_and(|(status, text)| {
        status == 200 && text.lines().any(|line| line == "alertd_leader 1")
    })
}

#[test]
fn a_cluster_takes_every_way_in_and_scrapes_each_target_once() {
    if !programs::needed("redis-server") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let redis = support::redis::RedisServer::start(&root.path().join("redis"));
    let (page, served) = exporter("# TYPE queue_depth gauge\nqueue_depth 42\n");
    let mut config: Value = serde_json::from_str(&config(json!({"scrape": [
        {"url": format!("http://127.0.0.1:{page}/metrics"), "host": "scraped", "interval": "1s"}
    ]})))
    .unwrap();
    config["storage"] =
        json!({"backend": "redis", "redisUrl": redis.url(), "cluster": "ingest", "lease": "2s"});
    let mut nodes: Vec<Option<Alertd>> = ["n0", "n1", "n2"]
        .iter()
        .map(|name| {
            let dir = root.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("alertd.json"), config.to_string()).unwrap();
            Some(Alertd::start_node(&dir, name))
        })
        .collect();
    let leader = |nodes: &[Option<Alertd>]| {
        wait_for("one leader", 30, || {
            let leading: Vec<usize> = (0..nodes.len())
                .filter(|&i| nodes[i].as_ref().is_some_and(leads))
                .collect();
            (leading.len() == 1).then(|| leading[0])
        })
    };
    let first = leader(&nodes);
    let followers: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let node = |i: usize| nodes[i].as_ref().unwrap();
    // OTLP to one follower, remote write to the other: any node takes points.
    let t = now() - 2_000;
    let otlp = request("otlp-c", vec![gauge("queue.depth", vec![number(41.0, t)])]);
    let (status, _, _) =
        node(followers[0]).post_raw("/v1/metrics", &[PROTOBUF], otlp.encode_to_vec());
    assert_eq!(status, 200);
    let write = WriteRequest {
        timeseries: vec![series(
            &[("__name__", "queue_depth"), ("instance", "rw-c")],
            &[(45.0, t)],
        )],
        metadata: vec![],
    };
    let (status, _, _) =
        node(followers[1]).post_raw("/api/v1/write", &REMOTE_WRITE, snappy(&write));
    assert_eq!(status, 204);
    wait_for("every way in's incident", 30, || {
        let open = (
            open_for(node(first), "queue deep"),
            open_for(node(first), "depth deep"),
        );
        (open
            == (
                vec!["otlp-c".to_string()],
                vec!["rw-c".to_string(), "scraped".to_string()],
            ))
            .then_some(())
    });
    // A counter whose points reach the followers in turn (a load balancer)
    // is counted once: they send them on to the leader.
    for &i in &followers {
        wait_for("the leader's address, as the followers see it", 30, || {
            let cluster = node(i).get_json("/api/v1/cluster");
            cluster["nodes"]
                .as_array()?
                .iter()
                .any(|n| n["leads"] == true && n["url"].is_string())
                .then_some(())
        });
    }
    let counter_at = |value: f64, at: i64| {
        let sum = Metric {
            name: "jobs.done".into(),
            data: Some(Data::Sum(Sum {
                data_points: vec![number(value, at)],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        request("balanced", vec![sum]).encode_to_vec()
    };
    let t = now() - 20_000;
    for (step, value) in [100.0, 110.0, 120.0, 130.0, 140.0].into_iter().enumerate() {
        let via = node(followers[step % 2]);
        let body = counter_at(value, t + step as i64 * 1_000);
        let (status, _, answer) = via.post_raw("/v1/metrics", &[PROTOBUF], body);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    }
    let stored = values(node(first), "balanced", "jobs.done");
    assert_eq!(
        stored.iter().sum::<f64>(),
        40.0,
        "increases {stored:?}: 140 - 100, once"
    );

    // Exactly one node scrapes: the leader.
    let scrapes = |node: &Alertd| node.metric("alertd_scrapes_total{outcome=\"ok\"}");
    let before = served.load(Ordering::SeqCst);
    let started = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(5));
    let hits = served.load(Ordering::SeqCst) - before;
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        (hits as f64) <= seconds + 1.0,
        "{hits} scrapes in {seconds:.1} s at 1 s: a target read by more than one node"
    );
    assert!(scrapes(node(first)) > 0.0);
    for &i in &followers {
        assert_eq!(scrapes(node(i)), 0.0, "node {i} scraped while not leading");
    }
    // Every node shows the leader's scrape status.
    let shown = node(followers[0]).get_json("/api/v1/scrape");
    assert_eq!(shown["targets"][0]["up"], true, "{shown}");
    // The leader dies: another takes the scrapes over.
    nodes[first].as_mut().unwrap().child.kill().unwrap();
    nodes[first] = None;
    let second = leader(&nodes);
    wait_for("the new leader's scrapes", 30, || {
        (nodes[second]
            .as_ref()
            .is_some_and(|node| scrapes(node) > 0.0))
        .then_some(())
    });
}
