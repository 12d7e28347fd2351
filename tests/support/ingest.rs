//! What the tests of the standard ways in share (tests/ingest.rs, tests/senders.rs):
//! a configuration with rules on what they send, OTLP and remote write requests built
//! with the senders' own message types, a `/metrics` page of the test's own, and reads
//! of what alertd stored.

use std::io::Write;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::{Value, json};

use alertd::series::remote_write::{Label, TimeSeries, WriteRequest, WriteSample};

use super::{Alertd, now};

/// Ticks every second, one sample per host per second, and rules on what
/// the senders below send.
pub fn config(ingest: Value) -> String {
    config_with(ingest, 1_048_576)
}

pub fn config_with(ingest: Value, body_limit: u64) -> String {
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

pub fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

pub fn number(value: f64, time: i64) -> NumberDataPoint {
    NumberDataPoint {
        time_unix_nano: (time * 1_000_000) as u64,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

pub fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.to_string(),
        data: Some(Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    }
}

pub fn request(host: &str, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
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

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A request that must be refused: its headers, its body, the status it
/// gets, and words its answer says.
pub type Case = (
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
    &'static str,
);

pub const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// The values of `field` the store holds for `host`, oldest first.
pub fn values(alertd: &Alertd, host: &str, field: &str) -> Vec<f64> {
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
pub fn open_for(alertd: &Alertd, rule: &str) -> Vec<String> {
    let mut hosts: Vec<String> = alertd
        .active()
        .iter()
        .filter(|incident| incident["ruleName"] == rule)
        .map(|incident| incident["hostName"].as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    hosts
}

pub fn hosts(alertd: &Alertd) -> Vec<String> {
    alertd.get_json("/api/v1/hosts")["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| host["host"].as_str().unwrap().to_string())
        .collect()
}

pub fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
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

pub fn snappy(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

pub const REMOTE_WRITE: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// A program of the tests' own, stopped when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `body` as a `/metrics` page on a free port until the test ends;
/// counts the requests it answered.
pub fn exporter(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    exporter_of(move |_| body.to_string())
}

/// Serves the page `page(n)` to the n-th request (from 0).
pub fn exporter_of(page: impl Fn(usize) -> String + Send + 'static) -> (u16, Arc<AtomicUsize>) {
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
