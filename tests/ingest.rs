//! The standard ways in, through the real binary, with requests built by the senders'
//! own message types: OTLP/HTTP (protobuf, gzip, the OTLP specification's JSON example)
//! and Prometheus remote write. Each sees its points reach the rules as an incident, and
//! bad input refused with nothing stored. The real senders are in tests/senders.rs.

mod support;

use std::io::Write;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, Sum, metric::Data,
};
use prost::Message;
use serde_json::{Value, json};

use alertd::series::remote_write::{MetricMetadata, WriteRequest};
use support::ingest::*;
use support::{Alertd, now, wait_for};

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

    // Doubles written as strings, as the protobuf JSON mapping allows:
    // read, and "NaN" refused for what it is.
    let strings = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "strings-host"}}]},
        "scopeMetrics": [{"metrics": [{"name": "str.gauge", "gauge": {"dataPoints": [
            {"asDouble": "47.5", "timeUnixNano": nanos},
        ]}}, {"name": "nan.gauge", "gauge": {"dataPoints": [
            {"asDouble": "NaN", "timeUnixNano": nanos},
        ]}}]}]
    }]});
    let (status, _, answer) = alertd.post_raw("/v1/metrics", &[JSON], strings.to_string());
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], 1,
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not a finite number")
    );
    wait_for("the string's value", 20, || {
        (values(&alertd, "strings-host", "str.gauge") == [47.5]).then_some(())
    });

    // More points than ingest.maxPointsPerRequest.
    let many: Vec<NumberDataPoint> = (0..1001).map(|i| number(f64::from(i), t)).collect();
    let (status, _, answer) = alertd.post_raw(
        "/v1/metrics",
        &[PROTOBUF],
        request("refused-host", vec![gauge("queue.depth", many)]).encode_to_vec(),
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("ingest.maxPointsPerRequest"));
    assert_eq!(
        hosts(&alertd),
        ["strings-host"],
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
    let mut known = hosts(&alertd);
    known.sort();
    assert_eq!(known, ["partial-host", "strings-host"]);
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

#[test]
fn an_otlp_sender_without_the_token_is_told_in_a_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut config: Value = serde_json::from_str(&config(json!({}))).unwrap();
    config["server"]["token"] = json!("s3cret");
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let body = request("h", vec![gauge("queue.depth", vec![number(1.0, now())])]);
    let (status, content_type, answer) =
        alertd.post_raw("/v1/metrics", &[PROTOBUF], body.encode_to_vec());
    assert_eq!(
        (status, content_type.as_str()),
        (401, "application/x-protobuf")
    );
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let refusal = Status::decode(answer.as_slice()).unwrap();
    assert_eq!(refusal.code, 16, "UNAUTHENTICATED: {}", refusal.message);
    assert!(refusal.message.contains("Authorization: Bearer"));
    let (status, _, _) = alertd.post_raw(
        "/v1/metrics",
        &[PROTOBUF, ("Authorization", "Bearer s3cret")],
        body.encode_to_vec(),
    );
    assert_eq!(status, 200);
}

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
