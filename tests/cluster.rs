//! Cluster mode with real processes: three `alertd run` nodes on one
//! `redis-server` of the test's own, and what happens when the leader is
//! killed or paused, when Redis restarts, and when a node is cut off.
//!
//! Every node's hook appends to one shared log, so that the test sees every
//! call the cluster made, whichever node made it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::redis::{Proxy, RedisServer};
use support::{Alertd, install_hook, lines, now, wait_for};

/// A configuration for a node of the cluster at `url`.
fn config(url: &str, lease: &str) -> String {
    json!({
        "monitoring": {"enabled": false},
        "alerting": {
            "enabled": true,
            "watcherInterval": "1s",
            "rules": [{
                "name": "x high", "field": "x", "aggregation": "last",
                "operand": "equalOrMoreThan", "value": 10, "timeframe": "2s"
            }]
        },
        "storage": {"backend": "redis", "redisUrl": url, "cluster": "test", "lease": lease},
        "hooks": {"timeout": "5s"}
    })
    .to_string()
}

/// A node's directory, with its configuration and a hook that appends
/// `status|id|host|node` to the shared `calls`.
fn node_dir(root: &Path, name: &str, config: &str, calls: &Path) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("alertd.json"), config).unwrap();
    install_hook(
        &dir,
        "10-log",
        &format!(
            "#!/bin/sh\necho \"$INCIDENT_STATUS|$INCIDENT_ID|$INCIDENT_HOST|{name}\" >> '{}'\n",
            calls.display()
        ),
    );
    dir
}

/// Whether a node leads, by its `/metrics`; `None` if it does not answer.
fn leads(node: &Alertd) -> Option<bool> {
    let (status, text) = node.try_get("/metrics")?;
    if status != 200 {
        return None;
    }
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("alertd_leader "))?;
    Some(value.trim() == "1")
}

/// The one node that leads, once exactly one does.
fn leader(nodes: &[Option<Alertd>]) -> usize {
    wait_for("exactly one leader", 30, || {
        let leading: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.as_ref().and_then(leads) == Some(true))
            .map(|(index, _)| index)
            .collect();
        (leading.len() == 1).then(|| leading[0])
    })
}

/// Pushes one sample per host to the first node (from `start`) that
/// acknowledges it; returns whether one did.
fn push(nodes: &[Option<Alertd>], start: usize, samples: &Value) -> bool {
    (0..nodes.len()).any(|offset| {
        let Some(node) = &nodes[(start + offset) % nodes.len()] else {
            return false;
        };
        let request = node
            .agent
            .post(node.url("/api/v1/samples"))
            .header("Content-Type", "application/json")
            .send(samples.to_string());
        matches!(request, Ok(response) if response.status() == 200)
    })
}

/// What a run left: the incidents the cluster recorded and the calls its
/// hooks made, checked for what must never happen.
struct Outcome {
    incidents: Vec<Value>,
    duplicate_calls: usize,
}

/// Checks the cluster's incidents and hook calls: no two incidents of one
/// host overlap (no duplicate alert), every incident was told to the hook
/// (opened, then resolved once resolved), and the hook heard of no incident
/// the store does not hold.
fn check(node: &Alertd, calls: &Path) -> Outcome {
    let incidents = node.get_json("/api/v1/incidents?from=0");
    let mut all: Vec<Value> = incidents["active"].as_array().unwrap().clone();
    all.extend(incidents["resolved"].as_array().unwrap().iter().cloned());
    let mut by_host: BTreeMap<String, Vec<(String, String, Option<String>)>> = BTreeMap::new();
    for incident in &all {
        by_host
            .entry(incident["hostName"].as_str().unwrap().to_string())
            .or_default()
            .push((
                incident["startTime"].as_str().unwrap().to_string(),
                incident["id"].as_str().unwrap().to_string(),
                incident["endTime"].as_str().map(str::to_string),
            ));
    }
    for (host, mut incidents) in by_host {
        incidents.sort();
        for pair in incidents.windows(2) {
            let (_, id, end) = &pair[0];
            let (next_start, next_id, _) = &pair[1];
            let end = end
                .as_ref()
                .unwrap_or_else(|| panic!("{host}: {id} still open when {next_id} opened"));
            assert!(
                end <= next_start,
                "{host}: {id} (ended {end}) overlaps {next_id} (started {next_start})"
            );
        }
    }
    let log = lines(calls);
    let mut seen: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (index, line) in log.iter().enumerate() {
        let parts: Vec<&str> = line.split('|').collect();
        seen.entry((parts[1].to_string(), parts[0].to_string()))
            .or_default()
            .push(index);
    }
    let ids: BTreeSet<String> = all
        .iter()
        .map(|incident| incident["id"].as_str().unwrap().to_string())
        .collect();
    let mut lost = Vec::new();
    for incident in &all {
        let id = incident["id"].as_str().unwrap().to_string();
        let opened = seen.get(&(id.clone(), "opened".to_string()));
        if opened.is_none() {
            lost.push(format!("{id} opened"));
        }
        if incident.get("endTime").is_some() {
            match seen.get(&(id.clone(), "resolved".to_string())) {
                None => lost.push(format!("{id} resolved")),
                Some(resolved) => assert!(
                    opened.is_some_and(|opened| opened[0] < resolved[0]),
                    "{id}: resolved told before opened"
                ),
            }
        }
    }
    assert_eq!(lost, Vec::<String>::new(), "hook calls lost");
    for (id, _) in seen.keys() {
        assert!(
            ids.contains(id),
            "the hook heard of {id}, which the store does not hold"
        );
    }
    Outcome {
        incidents: all,
        duplicate_calls: seen.values().map(|calls| calls.len() - 1).sum(),
    }
}

/// x for `host` at `at`: high for a few seconds, then low, in turn; each
/// host at its own pace.
fn value(host: usize, at: i64) -> f64 {
    let period = 2_500 + 700 * host as i64;
    if (at / period) % 2 == 0 { 20.0 } else { 1.0 }
}

#[test]
fn leader_kills_lose_and_double_nothing() {
    let root = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&root.path().join("redis"));
    let calls = root.path().join("calls.log");
    let config = config(&redis.url(), "3s");
    let names = ["n0", "n1", "n2"];
    let dirs: Vec<PathBuf> = names
        .iter()
        .map(|name| node_dir(root.path(), name, &config, &calls))
        .collect();
    let mut nodes: Vec<Option<Alertd>> = names
        .iter()
        .zip(&dirs)
        .map(|(name, dir)| Some(Alertd::start_node(dir, name)))
        .collect();
    let hosts = 5;
    let started = Instant::now();
    let mut kills = 0;
    let mut next_kill = Instant::now() + Duration::from_secs(4);
    let mut down: Option<(usize, Instant)> = None;
    let mut round = 0usize;
    while started.elapsed() < Duration::from_secs(40) {
        let at = now();
        let samples: Vec<Value> = (0..hosts)
            .map(|host| json!({"host": format!("h{host}"), "ts": at, "metrics": {"x": value(host, at)}}))
            .collect();
        round += 1;
        assert!(
            push(&nodes, round, &json!(samples)),
            "no node took the samples"
        );
        if let Some((index, since)) = down
            && since.elapsed() > Duration::from_millis(1500)
        {
            nodes[index] = Some(Alertd::start_node(&dirs[index], names[index]));
            down = None;
        }
        if down.is_none() && Instant::now() >= next_kill {
            let index = leader(&nodes);
            let mut killed = nodes[index].take().unwrap();
            killed.child.kill().unwrap();
            killed.child.wait().unwrap();
            kills += 1;
            down = Some((index, Instant::now()));
            next_kill = Instant::now() + Duration::from_secs(4);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Some((index, _)) = down {
        nodes[index] = Some(Alertd::start_node(&dirs[index], names[index]));
    }
    // Quiet: every incident resolves, and every call is made.
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        let at = now();
        let samples: Vec<Value> = (0..hosts)
            .map(|host| json!({"host": format!("h{host}"), "ts": at, "metrics": {"x": 1.0}}))
            .collect();
        assert!(push(&nodes, 0, &json!(samples)));
        std::thread::sleep(Duration::from_millis(250));
    }
    let node = nodes[0].as_ref().unwrap();
    wait_for("every incident resolved", 20, || {
        node.active().is_empty().then_some(())
    });
    wait_for("every hook call made", 30, || {
        (node.metric("alertd_pending_hook_deliveries") == 0.0).then_some(())
    });
    let outcome = check(node, &calls);
    eprintln!(
        "{kills} leader kills: {} incidents, 0 duplicates, 0 lost, {} hook calls made twice",
        outcome.incidents.len(),
        outcome.duplicate_calls
    );
    assert!(kills >= 8, "{kills} kills");
    assert!(
        outcome.incidents.len() >= 20,
        "too few incidents to tell: {}",
        outcome.incidents.len()
    );
    // A call is made twice only when its node died between the call and
    // its record (at least once): at most once per kill.
    assert!(
        outcome.duplicate_calls <= kills,
        "{} calls made twice",
        outcome.duplicate_calls
    );
}

#[test]
fn a_paused_leader_is_fenced_and_steps_down() {
    let root = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&root.path().join("redis"));
    let calls = root.path().join("calls.log");
    let config = config(&redis.url(), "2s");
    let names = ["n0", "n1"];
    let nodes: Vec<Option<Alertd>> = names
        .iter()
        .map(|name| {
            let dir = node_dir(root.path(), name, &config, &calls);
            Some(Alertd::start_node(&dir, name))
        })
        .collect();
    let first = leader(&nodes);
    let paused = nodes[first].as_ref().unwrap();
    let token_before = redis.cli(&["GET", "{test}:lease"]);
    paused.signal("STOP");
    // The other node takes over once the lease runs out.
    let other = nodes[1 - first].as_ref().unwrap();
    wait_for("the other node to lead", 15, || leads(other).filter(|l| *l));
    let at = now();
    assert!(push(
        &nodes,
        1 - first,
        &json!([{"host": "h", "ts": at, "metrics": {"x": 50}}])
    ));
    wait_for("the incident opened by the new leader", 10, || {
        (other.active().len() == 1).then_some(())
    });
    paused.signal("CONT");
    // The paused node wakes believing it leads: its renewal fails, or a
    // write of its is refused; either way it steps down.
    wait_for("the paused node to step down", 15, || {
        leads(paused).filter(|l| !*l)
    });
    let log = paused.log();
    assert!(
        log.contains("stepping down"),
        "no step-down in the log:\n{log}"
    );
    let token_after = redis.cli(&["GET", "{test}:lease"]);
    assert_ne!(token_before, token_after);
    assert!(token_after.ends_with(names[1 - first]), "{token_after}");
    // Still one incident, told once.
    let at = now();
    assert!(push(
        &nodes,
        0,
        &json!([{"host": "h", "ts": at, "metrics": {"x": 1}}])
    ));
    wait_for("the resolution", 10, || {
        other.active().is_empty().then_some(())
    });
    wait_for("both calls", 10, || {
        (lines(&calls).len() >= 2).then_some(())
    });
    let outcome = check(other, &calls);
    assert_eq!(outcome.incidents.len(), 1);
    assert_eq!(outcome.duplicate_calls, 0);
}

#[test]
fn a_node_cut_off_from_redis_refuses_samples_and_rejoins() {
    let root = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&root.path().join("redis"));
    let calls = root.path().join("calls.log");
    let proxy = Proxy::start(redis.port);
    let direct = config(&redis.url(), "2s");
    let through_proxy = config(&proxy.url(), "2s");
    let cut_dir = node_dir(root.path(), "cut", &through_proxy, &calls);
    let cut = Alertd::start_node(&cut_dir, "cut");
    wait_for("the first node to lead", 15, || leads(&cut).filter(|l| *l));
    let other_dir = node_dir(root.path(), "other", &direct, &calls);
    let other = Alertd::start_node(&other_dir, "other");
    proxy.cut();
    // What needs Redis answers 503 with the reason; nothing is acknowledged.
    let (status, body) = cut.push(json!([{"host": "h", "ts": now(), "metrics": {"x": 50}}]));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    // The other node takes over and evaluates what it is sent.
    wait_for("the other node to lead", 15, || {
        leads(&other).filter(|l| *l)
    });
    wait_for("the cut node to step down", 15, || {
        leads(&cut).filter(|l| !*l)
    });
    let (status, _) = other.push(json!([{"host": "h", "ts": now(), "metrics": {"x": 50}}]));
    assert_eq!(status, 200);
    wait_for("the incident", 10, || {
        (other.active().len() == 1).then_some(())
    });
    // Back: the cut node serves the cluster's state again.
    proxy.restore();
    wait_for("the cut node to answer from Redis again", 20, || {
        let (status, body) = cut.get("/api/v1/incidents");
        (status == 200 && body.contains("\"hostName\":\"h\"")).then_some(())
    });
    let (status, _) = cut.push(json!([{"host": "h", "ts": now(), "metrics": {"x": 1}}]));
    assert_eq!(status, 200);
    wait_for("the resolution", 10, || {
        other.active().is_empty().then_some(())
    });
    assert_eq!(leads(&other), Some(true), "the lease stays where it is");
    wait_for("both calls", 10, || {
        (lines(&calls).len() >= 2).then_some(())
    });
    let outcome = check(&other, &calls);
    assert_eq!(outcome.incidents.len(), 1);
}
