//! Load through each way in, for docs/performance.md: THREADS clients send
//! the same content, HOSTS hosts each with the 10 built-in fields as gauges,
//! for SECONDS seconds, as a JSON push (`samples`), OTLP protobuf (`otlp`),
//! OTLP JSON (`otlp-json`) or remote write (`remote-write`), and print the
//! values (points) per second the service took. Each thread has hosts of its
//! own and moves its timestamps one collection interval (INTERVAL ms) per
//! request, so that every point starts a new interval and is stored (run
//! alertd with `monitoring.collectionInterval` at INTERVAL and a
//! `server.maxFutureSkew` past SECONDS × the requests per second).
//! With PID, also the CPU time alertd spent per point (from /proc).
//!
//! `target/release/examples/points_load http://127.0.0.1:7474 otlp 4 15 1000 1000 PID`

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use alertd::series::remote_write::{Label, TimeSeries, WriteRequest, WriteSample};

const FIELDS: [&str; 10] = [
    "cpu_usage",
    "mem_usage",
    "mem_free",
    "requests_count",
    "requests_latency_sum",
    "requests_latency_avg",
    "events_in",
    "events_out",
    "warnings",
    "errors",
];

fn value(host: usize, field: usize, step: u64) -> f64 {
    ((host * 7 + field * 13 + step as usize) % 90) as f64 + 0.5
}

/// One request's body and headers.
fn request(
    mode: &str,
    hosts: &[String],
    ts: i64,
    step: u64,
) -> (Vec<(&'static str, &'static str)>, Vec<u8>) {
    match mode {
        "samples" => {
            let mut body = String::from("[");
            for (h, host) in hosts.iter().enumerate() {
                if h > 0 {
                    body.push(',');
                }
                let _ = write!(body, r#"{{"host":"{host}","ts":{ts},"metrics":{{"#);
                for (f, field) in FIELDS.iter().enumerate() {
                    if f > 0 {
                        body.push(',');
                    }
                    let _ = write!(body, r#""{field}":{}"#, value(h, f, step));
                }
                body.push_str("}}");
            }
            body.push(']');
            (
                vec![("Content-Type", "application/json")],
                body.into_bytes(),
            )
        }
        "otlp" | "otlp-json" => {
            let nanos = (ts * 1_000_000) as u64;
            let request = ExportMetricsServiceRequest {
                resource_metrics: hosts
                    .iter()
                    .enumerate()
                    .map(|(h, host)| ResourceMetrics {
                        resource: Some(Resource {
                            attributes: vec![KeyValue {
                                key: "host.name".into(),
                                value: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue(host.clone())),
                                }),
                                ..Default::default()
                            }],
                            ..Default::default()
                        }),
                        scope_metrics: vec![ScopeMetrics {
                            metrics: FIELDS
                                .iter()
                                .enumerate()
                                .map(|(f, field)| Metric {
                                    name: field.to_string(),
                                    data: Some(Data::Gauge(Gauge {
                                        data_points: vec![NumberDataPoint {
                                            time_unix_nano: nanos,
                                            value: Some(number_data_point::Value::AsDouble(value(
                                                h, f, step,
                                            ))),
                                            ..Default::default()
                                        }],
                                    })),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
            };
            if mode == "otlp" {
                (
                    vec![("Content-Type", "application/x-protobuf")],
                    request.encode_to_vec(),
                )
            } else {
                (
                    vec![("Content-Type", "application/json")],
                    serde_json::to_vec(&request).unwrap(),
                )
            }
        }
        "remote-write" => {
            let write = WriteRequest {
                timeseries: hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(h, host)| {
                        FIELDS.iter().enumerate().map(move |(f, field)| TimeSeries {
                            labels: vec![
                                Label {
                                    name: "__name__".into(),
                                    value: field.to_string(),
                                },
                                Label {
                                    name: "instance".into(),
                                    value: host.clone(),
                                },
                            ],
                            samples: vec![WriteSample {
                                value: value(h, f, step),
                                timestamp: ts,
                            }],
                        })
                    })
                    .collect(),
                metadata: vec![],
            };
            let body = snap::raw::Encoder::new()
                .compress_vec(&write.encode_to_vec())
                .unwrap();
            (
                vec![
                    ("Content-Type", "application/x-protobuf"),
                    ("Content-Encoding", "snappy"),
                    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
                ],
                body,
            )
        }
        other => panic!("mode {other:?}: samples, otlp, otlp-json or remote-write"),
    }
}

/// A process's CPU time (user + system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:7373".into());
    let mode = args.get(1).cloned().unwrap_or_else(|| "samples".into());
    let number = |at: usize, default: u64| {
        args.get(at)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let threads = number(2, 4) as usize;
    let seconds = number(3, 15);
    let hosts = number(4, 1000) as usize;
    let interval = number(5, 1000) as i64;
    let pid = args.get(6).map(|pid| pid.parse::<u32>().expect("a pid"));
    let endpoint = match mode.as_str() {
        "samples" => format!("{url}/api/v1/samples"),
        "remote-write" => format!("{url}/api/v1/write"),
        _ => format!("{url}/v1/metrics"),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - now % interval;
    let taken = AtomicU64::new(0);
    let failed = AtomicU64::new(0);
    let cpu_before = pid.map(cpu_seconds);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (endpoint, taken, failed, mode) = (&endpoint, &taken, &failed, &mode);
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                let names: Vec<String> = (0..hosts)
                    .map(|h| format!("load-{thread}-{h:05}"))
                    .collect();
                let mut step = 0u64;
                while Instant::now() < deadline {
                    let ts = start + step as i64 * interval;
                    let (headers, body) = request(mode, &names, ts, step);
                    step += 1;
                    let mut post = agent.post(endpoint);
                    for (name, value) in headers {
                        post = post.header(name, value);
                    }
                    match post.send(&body[..]) {
                        Ok(response) if response.status().is_success() => {
                            taken.fetch_add((hosts * FIELDS.len()) as u64, Ordering::Relaxed);
                        }
                        Ok(mut response) => {
                            let status = response.status();
                            let text = response.body_mut().read_to_string().unwrap_or_default();
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("{status}: {text}");
                            }
                        }
                        Err(error) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("{error}");
                            }
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let taken = taken.load(Ordering::Relaxed);
    let mut line = format!(
        "{mode}: {taken} points in {elapsed:.1} s: {:.0} points/s ({:.0} samples/s); {} failed requests",
        taken as f64 / elapsed,
        taken as f64 / elapsed / FIELDS.len() as f64,
        failed.load(Ordering::Relaxed),
    );
    if let (Some(pid), Some(before)) = (pid, cpu_before) {
        let cpu = cpu_seconds(pid) - before;
        let _ = write!(
            line,
            "; alertd CPU {cpu:.1} s, {:.2} µs per point",
            cpu / taken.max(1) as f64 * 1e6
        );
    }
    println!("{line}");
}
