//! The standard ways in with the real senders: a real Prometheus remote-writing what it
//! scrapes, a real node_exporter scraped, the OpenTelemetry JavaScript SDK's own
//! exporters, and all of them through a cluster of three nodes.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Metric, Sum, metric::Data};
use prost::Message;
use serde_json::{Value, json};

use alertd::series::remote_write::WriteRequest;
use support::ingest::*;
use support::{Alertd, free_port, now, programs, wait_for};

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
