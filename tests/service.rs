//! `alertd run` as a real process: real HTTP, a real SQLite file, real hook
//! processes, real signals (SIGTERM, SIGHUP, SIGKILL).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use support::{Alertd, free_port, install_hook, install_logging_hook, lines, now, wait_for};

const RULE_X: &str = r#"{"name": "x high", "field": "x", "aggregation": "last",
    "operand": "equalOrMoreThan", "value": 10, "timeframe": "10s"}"#;

fn config(rules: &[&str], extra: &str) -> String {
    format!(
        r#"{{
  "alerting": {{"enabled": true, "watcherInterval": "100ms", "rules": [{}]}}{extra}
}}"#,
        rules.join(",")
    )
}

/// Runs `alertd run` on a configuration and data directory until it exits
/// (the cases where it must refuse to start).
/// Runs `alertd run` that is expected to exit by itself (a refused start);
/// one still running after 60 s is killed and the test fails, rather than
/// hang the suite.
fn run_to_exit(config: impl AsRef<Path>, data: impl AsRef<Path>, port: u16) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertd"))
        .arg("run")
        .arg("--config")
        .arg(config.as_ref())
        .arg("--data-dir")
        .arg(data.as_ref())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "alertd was expected to exit but still ran after 60 s; its log:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn sample(host: &str, x: f64) -> Value {
    json!({"host": host, "ts": now(), "metrics": {"x": x}})
}

#[test]
fn a_hook_sees_opened_then_resolved_and_the_api_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let calls = install_logging_hook(dir.path());
    let mut alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));

    let (status, body) = alertd.push(json!([sample("web-1", 50.0), sample("web-2", 1.0)]));
    assert_eq!((status, body.as_str()), (200, r#"{"accepted":2}"#));
    let opened = wait_for("the hook to see the opening", 10, || {
        lines(&calls).into_iter().next()
    });
    let words: Vec<&str> = opened.splitn(5, '|').collect();
    assert_eq!(&words[..4], ["opened", words[1], "x high", "web-1"]);
    let id = words[1].to_string();
    let incident: Value = serde_json::from_str(words[4]).unwrap();
    assert_eq!(incident["id"], id.as_str());
    assert_eq!(incident["ruleName"], "x high");
    assert_eq!(incident["triggerValue"], 50);
    assert!(incident.get("endTime").is_none());

    let active = alertd.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0], incident);

    let rules = alertd.get_json("/api/v1/rules");
    let hosts = &rules["rules"][0]["hosts"];
    assert_eq!(hosts[0]["host"], "web-1");
    assert_eq!(hosts[0]["state"], "firing");
    assert_eq!(hosts[0]["aggregate"], 50.0);
    assert_eq!(hosts[1]["host"], "web-2");
    assert_eq!(hosts[1]["state"], "ok");
    assert_eq!(hosts[1]["samples"], 1);

    alertd.push(json!([sample("web-1", 2.0)]));
    let resolved = wait_for("the hook to see the resolution", 10, || {
        lines(&calls).get(1).cloned()
    });
    assert!(
        resolved.starts_with(&format!("resolved|{id}|x high|web-1|{{")),
        "{resolved}"
    );
    let incidents = alertd.get_json("/api/v1/incidents");
    assert_eq!(incidents["active"], json!([]));
    assert_eq!(incidents["resolved"][0]["id"], id.as_str());
    assert!(incidents["resolved"][0]["endTime"].is_string());

    let detail = wait_for("both calls recorded", 10, || {
        let detail = alertd.get_json(&format!("/api/v1/incidents/{id}"));
        (detail["hookCalls"].as_array().unwrap().len() == 2).then_some(detail)
    });
    assert_eq!(detail["hookCalls"][0]["kind"], "opened");
    assert_eq!(detail["hookCalls"][0]["target"], "exec:10-log");
    assert_eq!(detail["hookCalls"][0]["outcome"], "exited with status 0");
    assert_eq!(detail["hookCalls"][1]["kind"], "resolved");
    assert_eq!(detail["pendingHooks"], json!([]));
    let (status, _) = alertd.get("/api/v1/incidents/nope");
    assert_eq!(status, 404);

    let hosts = alertd.get_json("/api/v1/hosts");
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 2);
    let stats = alertd.get_json("/api/v1/stats?resolution=1h&fields=x");
    let web1 = &stats["hosts"]["web-1"];
    assert_eq!(web1.as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(web1[0]["samples"], 2);
    assert_eq!(web1[0]["max"]["x"], 50.0);
    assert_eq!(web1[0]["sum"]["x"], 52.0);
    assert_eq!(web1[0]["avg"]["x"], 26.0);
    let together = alertd.get_json("/api/v1/stats?resolution=1h&fields=x&across=hosts");
    assert!(together.get("hosts").is_none(), "{together}");
    let points = together["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{together}");
    let both = stats["hosts"]["web-2"][0]["samples"].as_u64().unwrap() + 2;
    assert_eq!(points[0]["samples"], both, "{stats} {together}");
    assert_eq!(points[0]["max"]["x"], 50.0);

    let (status, metrics) = alertd.get("/metrics");
    assert_eq!(status, 200);
    for line in [
        "alertd_samples_ingested_total 3",
        "alertd_transitions_total{event=\"opened\"} 1",
        "alertd_transitions_total{event=\"resolved\"} 1",
        "alertd_hook_calls_total{outcome=\"success\"} 2",
        "alertd_open_incidents 0",
        "alertd_rules 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }

    alertd.signal("TERM");
    assert!(alertd.wait_exit(20).success());
    assert_eq!(lines(&calls).len(), 2, "each transition told once");
}

#[test]
fn a_hook_call_cut_by_sigkill_is_made_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.log");
    let block = dir.path().join("block");
    std::fs::write(&block, "").unwrap();
    install_hook(
        dir.path(),
        "10-slow",
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho \"start $INCIDENT_STATUS $INCIDENT_ID $$\" >> '{log}'\n\
             if [ -e '{block}' ]; then sleep 30; exit 1; fi\n\
             echo \"done $INCIDENT_STATUS $INCIDENT_ID\" >> '{log}'\n",
            log = calls.display(),
            block = block.display()
        ),
    );
    let mut alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    alertd.push(json!([sample("web-1", 50.0)]));
    let started = wait_for("the hook to start", 10, || lines(&calls).into_iter().next());
    let words: Vec<&str> = started.split(' ').collect();
    assert_eq!(words[..2], ["start", "opened"]);
    let id = words[2].to_string();
    let hook_pid = words[3].to_string();

    alertd.signal("KILL");
    alertd.wait_exit(10);
    // The orphaned hook would fail later; it is stopped so that it cannot.
    let _ = Command::new("kill").args(["-9", &hook_pid]).status();
    std::fs::remove_file(&block).unwrap();

    let alertd = Alertd::start_existing(dir.path());
    wait_for("the call to be made again", 10, || {
        lines(&calls)
            .contains(&format!("done opened {id}"))
            .then_some(())
    });
    let active = alertd.active();
    assert_eq!(active.len(), 1, "the incident is as it was: {active:?}");
    assert_eq!(active[0]["id"], id.as_str());

    alertd.push(json!([sample("web-1", 1.0)]));
    wait_for("the resolution", 10, || {
        lines(&calls)
            .contains(&format!("done resolved {id}"))
            .then_some(())
    });
    let log = lines(&calls);
    assert_eq!(
        log.iter().filter(|l| l.starts_with("done opened")).count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("start")).count(),
        3,
        "{log:?}"
    );
    // The hook has written its line; its call is recorded when it exits.
    wait_for("both calls recorded", 10, || {
        let detail = alertd.get_json(&format!("/api/v1/incidents/{id}"));
        (detail["hookCalls"].as_array().unwrap().len() == 2).then_some(())
    });
}

#[test]
fn bad_inputs_get_a_reason_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "server": {"bodyLimit": 65536}"#),
    );
    let good = r#"{"host": "web-1", "ts": 1795428010000, "metrics": {"x": 1}}"#;
    let cases: Vec<(&str, String, u16, Option<usize>, &str)> = vec![
        (
            "application/json",
            format!(r#"[{good}, {{"host": "b", "ts": 1, "metrics": {{"x": "high"}}}}]"#),
            400,
            Some(1),
            "sample 1: metrics.x: expected a finite number, got a string",
        ),
        (
            "application/json",
            format!(r#"[{good}, {{"host": "b", "ts": 1, "metrics": {{"x": NaN}}}}]"#),
            400,
            Some(1),
            "expected a JSON array of samples",
        ),
        (
            "application/json",
            r#"[{"ts": 1, "metrics": {"x": 1}}]"#.to_string(),
            400,
            Some(0),
            "sample 0: missing host",
        ),
        (
            "application/json",
            format!(r#"[{good}, {good}, {{"host": "#),
            400,
            Some(2),
            "expected a JSON array of samples",
        ),
        (
            "application/json",
            r#"[{"host": "a", "ts": 1, "metrics": {"x": null}}]"#.to_string(),
            400,
            Some(0),
            "sample 0: metrics.x: expected a finite number, got null",
        ),
        (
            "application/x-ndjson",
            format!("{good}\n\n{good}\n{{\"host\": \"\", \"ts\": 1, \"metrics\": {{}}}}\n"),
            400,
            Some(2),
            "sample 2 (line 4): host:",
        ),
        (
            "application/json",
            format!("[{good}, {{\"host\": \"b\", \"ts\": 1795428010, \"metrics\": {{}}}}]"),
            400,
            Some(1),
            "sample 1: ts 1795428010 is before 2001-09-09 (1000000000000): ts is in \
             milliseconds since the Unix epoch; if 1795428010 is in seconds, send 1795428010000",
        ),
        (
            "application/json",
            format!(
                "[{good}, {{\"host\": \"b\", \"ts\": {}, \"metrics\": {{}}}}]",
                now() + 3_600_000
            ),
            400,
            Some(1),
            "ahead of this node's clock, more than server.maxFutureSkew (5m)",
        ),
        (
            "application/json",
            format!("[{}]", vec![good; 2000].join(",")),
            413,
            None,
            "length limit exceeded",
        ),
    ];
    for (content_type, body, status, index, message) in cases {
        let (got, answer) = alertd.post("/api/v1/samples", content_type, &body);
        assert_eq!(got, status, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{error:?} should say {message:?}");
        assert_eq!(
            answer.get("index").and_then(Value::as_u64),
            index.map(|i| i as u64)
        );
    }
    for (path, body, message) in [
        (
            "/api/v1/metrics",
            r#"{"errors.count": "x"}"#,
            "monitoring is disabled",
        ),
        ("/api/v1/nothing", "{}", "no such endpoint"),
    ] {
        let (status, answer) = alertd.post(path, "application/json", body);
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(answer.contains(message), "{answer}");
    }
    for (path, message) in [
        ("/api/v1/incidents?from=abc", "from"),
        (
            "/api/v1/incidents?from=10&to=5",
            "from (10) is after to (5)",
        ),
        ("/api/v1/stats?resolution=0", "resolution \\\"0\\\""),
        (
            "/api/v1/stats?from=0&to=100000000&resolution=1s",
            "buckets per host",
        ),
        (
            "/api/v1/stats?from=-9223372036854775808&to=9223372036854775807&resolution=1",
            "9223372036854775807 buckets per host",
        ),
        ("/api/v1/stats?across=rules", "across=\\\"rules\\\""),
        ("/api/v1/stats?across=hosts&host=web-1", "not both"),
    ] {
        let (status, answer) = alertd.get(path);
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains(message), "{path}: {answer}");
    }

    // The widest range is fine with the automatic resolution.
    let stats = alertd.get_json("/api/v1/stats?from=-9223372036854775808&to=9223372036854775807");
    assert_eq!(stats["hosts"], json!({}));
    let stats = alertd
        .get_json("/api/v1/stats?from=-9223372036854775808&to=9223372036854775807&across=hosts");
    assert_eq!(stats["points"], json!([]));

    // Nothing of any of it was stored.
    assert_eq!(alertd.get_json("/api/v1/hosts"), json!({"hosts": []}));
    let (_, metrics) = alertd.get("/metrics");
    assert!(
        metrics.contains("\nalertd_samples_ingested_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\nalertd_batches_rejected_total 8\n"),
        "{metrics}"
    );

    // The service is still well, and takes a good batch.
    let (status, _) = alertd.post(
        "/api/v1/samples",
        "application/x-ndjson",
        format!("{good}\n{good}\n"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        alertd.get_json("/api/v1/hosts")["hosts"][0]["host"],
        "web-1"
    );
}

#[test]
fn an_invalid_config_refuses_to_start_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/every-problem-at-once.bad.json");
    let expected = std::fs::read_to_string(bad.with_extension("").with_extension("err")).unwrap();
    let output = run_to_exit(&bad, dir.path().join("data"), free_port());
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let problems: Vec<&str> = expected.lines().collect();
    assert!(problems.len() > 3);
    for problem in problems {
        // Each line names the file as given, here a full path.
        let problem = format!("error: {}/{problem}", bad.parent().unwrap().display());
        assert!(
            stderr.contains(&problem),
            "{problem:?} missing from:\n{stderr}"
        );
    }
    assert!(!dir.path().join("data").exists(), "nothing was created");
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_running_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let calls = install_logging_hook(dir.path());
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    alertd.push(json!([sample("web-1", 50.0)]));
    let id = wait_for("the incident", 10, || {
        alertd.active().first().map(|i| i["id"].clone())
    });

    std::fs::write(
        dir.path().join("alertd.json"),
        "{\"alerting\": {\"rules\": [}",
    )
    .unwrap();
    alertd.signal("HUP");
    wait_for("the reload to be refused", 10, || {
        alertd.log().contains("reload refused").then_some(())
    });
    assert_eq!(alertd.get("/healthz").0, 200);
    assert_eq!(
        alertd.get_json("/api/v1/rules")["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let rule_y = r#"{"name": "y low", "field": "y", "aggregation": "min",
        "operand": "equalOrLessThan", "value": 0, "timeframe": "1m"}"#;
    let raised = RULE_X.replace("\"value\": 10", "\"value\": 20");
    std::fs::write(
        dir.path().join("alertd.json"),
        config(&[&raised, rule_y], ""),
    )
    .unwrap();
    alertd.signal("HUP");
    let rules = wait_for("the new rules", 10, || {
        let rules = alertd.get_json("/api/v1/rules");
        (rules["rules"].as_array().unwrap().len() == 2).then_some(rules)
    });
    assert_eq!(rules["rules"][0]["value"], 20.0);
    alertd.wait_ticks(3.0);
    let active = alertd.active();
    assert_eq!(active.len(), 1, "carried over by rule name");
    assert_eq!(active[0]["id"], id);

    // A rule removed: its open incident is resolved, and the hook told.
    std::fs::write(dir.path().join("alertd.json"), config(&[rule_y], "")).unwrap();
    alertd.signal("HUP");
    wait_for("the orphan to resolve", 10, || {
        alertd.active().is_empty().then_some(())
    });
    let told = wait_for("the hook to be told", 10, || {
        let log = lines(&calls);
        (log.len() == 2).then_some(log)
    });
    assert!(
        told[1].starts_with(&format!("resolved|{}|x high|", id.as_str().unwrap())),
        "{told:?}"
    );
}

#[test]
fn a_token_guards_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let mut alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "server": {"token": "s3cret"}"#),
    );
    let (status, body) = alertd.get("/api/v1/rules");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer"));
    let (status, _) = alertd.push(json!([sample("web-1", 1.0)]));
    assert_eq!(status, 401);
    alertd.token = Some("wrong".to_string());
    assert_eq!(alertd.get("/api/v1/rules").0, 401);
    alertd.token = Some("s3cret".to_string());
    assert_eq!(alertd.get("/api/v1/rules").0, 200);
    assert_eq!(alertd.push(json!([sample("web-1", 1.0)])).0, 200);
    alertd.token = None;
    assert_eq!(alertd.get("/healthz").0, 200);
    assert_eq!(alertd.get("/metrics").0, 200);
}

#[test]
fn the_collector_samples_this_node_with_pushed_counters() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": true, "collectionInterval": "200ms"},
            "alerting": {"enabled": true, "watcherInterval": "100ms", "rules": [
              {"name": "errors", "field": "errors.count", "aggregation": "sum",
               "operand": "equalOrMoreThan", "value": 3, "timeframe": "1m"}]}}"#,
    );
    let (status, body) = alertd.post(
        "/api/v1/metrics",
        "application/json",
        r#"{"errors.count": 1, "requests": {"count": 2, "latency_sum": 50}}"#,
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        alertd
            .post(
                "/api/v1/metrics",
                "application/json",
                r#"{"errors.count": 2}"#
            )
            .0,
        204
    );
    let (status, body) = alertd.post("/api/v1/metrics", "application/json", r#"{"x": "1"}"#);
    assert_eq!(status, 400, "{body}");
    wait_for("the errors rule to fire on this node", 10, || {
        alertd
            .active()
            .first()
            .filter(|i| i["hostName"] == "node-under-test")
            .map(|i| assert_eq!(i["triggerValue"], 3))
    });
    let stats = alertd.get_json("/api/v1/stats?resolution=1h");
    let points = stats["hosts"]["node-under-test"].as_array().unwrap();
    let sum = |field: &str| -> f64 {
        points
            .iter()
            .map(|p| p["sum"][field].as_f64().unwrap_or(0.0))
            .sum()
    };
    assert_eq!(sum("errors.count"), 3.0);
    assert_eq!(sum("requests.count"), 2.0);
    assert_eq!(sum("requests.latency_avg"), 25.0);
    let cpu = points[0]["max"]["cpu.usage"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu));
    let memory = points[0]["max"]["mem.usage"].as_f64().unwrap();
    assert!(memory > 0.0 && memory <= 100.0);
    assert!(points[0]["max"]["mem.free"].as_f64().unwrap() > 0.0);
}

#[test]
fn sigterm_lets_the_running_hook_call_finish_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.log");
    install_hook(
        dir.path(),
        "10-slow",
        &format!(
            "#!/bin/sh\ncat > /dev/null\necho \"start $INCIDENT_STATUS\" >> '{log}'\n\
             sleep 1\necho \"done $INCIDENT_STATUS $INCIDENT_ID\" >> '{log}'\n",
            log = calls.display()
        ),
    );
    let mut alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    alertd.push(json!([sample("web-1", 50.0)]));
    wait_for("the hook to start", 10, || lines(&calls).first().cloned());
    alertd.signal("TERM");
    assert!(alertd.wait_exit(20).success());
    let log = lines(&calls);
    assert_eq!(log.len(), 2, "the call finished before the exit: {log:?}");
    let id = log[1].rsplit(' ').next().unwrap().to_string();
    drop(alertd);

    // Recorded as done: a restart does not call the hook again.
    let alertd = Alertd::start_existing(dir.path());
    let detail = alertd.get_json(&format!("/api/v1/incidents/{id}"));
    assert_eq!(detail["hookCalls"][0]["succeeded"], true, "{detail}");
    assert_eq!(detail["pendingHooks"], json!([]));
    // The dispatcher reads the outbox as it starts; by three ticks later it
    // would have called the hook again, had the call not been recorded.
    alertd.wait_ticks(3.0);
    assert_eq!(lines(&calls).len(), 2);
}

#[test]
fn the_pages_refuse_bad_parameters_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    let refused = [
        (
            "/?frame=3h",
            400,
            "expected one of 30m, 1h, 2h, 5h, 15h, 24h, 7d",
        ),
        ("/?page=0", 400, "expected a number from 1"),
        ("/?frame=custom&from=yesterday", 400, "yesterday"),
        ("/?frame=custom", 400, "A custom range needs"),
        (
            "/?frame=custom&from=2020-01-02T00:00&to=2020-01-01T00:00",
            400,
            "starts (2020-01-02 00:00:00) after it ends",
        ),
        (
            "/monitoring?frame=custom&from=2020-01-01T00:00&to=2020-03-01T00:00",
            400,
            "this page shows at most 7d",
        ),
        ("/monitoring?resolution=0s", 400, "at least a second"),
        (
            "/rules?frame=7d",
            400,
            "expected one of 30m, 1h, 2h, 5h, 15h, 24h",
        ),
        ("/incidents/nope", 404, "There is no incident"),
        (
            "/?host=a&host=b",
            400,
            "This address's parameters cannot be read: duplicate field `host`",
        ),
        (
            "/rules?frame=1h&frame=2h",
            400,
            "cannot be read: duplicate field `frame`",
        ),
    ];
    for (path, status, reason) in refused {
        let (got, body) = alertd.get(path);
        assert_eq!(got, status, "{path}: {body}");
        let text = body.replace("&quot;", "\"");
        assert!(text.contains(reason), "{path}: {reason:?} not in {body}");
        assert!(
            body.contains("<nav>"),
            "{path}: an error is a page to go on from"
        );
    }
    // A resolution the frame cannot serve in time is not refused: the
    // nearest coarser one offered, said.
    let (got, body) = alertd.get("/monitoring?frame=7d&resolution=10s");
    assert_eq!(got, 200, "{body}");
    assert!(
        body.contains("one point per 30m (10s is not offered for a frame of 7d)"),
        "{body}"
    );
    for path in ["/", "/monitoring", "/rules", "/?frame=7d&page=9"] {
        assert_eq!(alertd.get(path).0, 200, "{path}");
    }
    // Unreadable parameters: a way to the same page without them.
    let (_, body) = alertd.get("/rules?frame=1h&frame=2h");
    assert!(
        body.contains(r#"<a href="/rules">Open /rules with its defaults</a>"#),
        "{body}"
    );
    // An unknown address: a page for a browser, JSON for a program.
    let browser = alertd
        .agent
        .get(alertd.url("/nowhere"))
        .header("Accept", "text/html,application/xhtml+xml")
        .call()
        .unwrap();
    assert_eq!(browser.status(), 404);
    let page = browser.into_body().read_to_string().unwrap();
    assert!(page.contains("There is no page at /nowhere."), "{page}");
    assert!(page.contains("<title>Not found"), "{page}");
    let (status, body) = alertd.get("/nowhere");
    assert_eq!(
        (status, body.as_str()),
        (404, r#"{"error":"no such endpoint"}"#)
    );
    let (status, css) = alertd.get("/static/alertd.css");
    assert_eq!(status, 200);
    assert!(css.contains("figure.chart"));
}

#[test]
fn signing_in_sets_a_strict_cookie_and_goes_back_only_to_this_server() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "server": {"token": "s3 cret"}"#),
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let response = agent.get(alertd.url("/rules?frame=2h")).call().unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/login?next=%2Frules%3Fframe%3D2h"
    );
    let sign_in = |form: &str| {
        agent
            .post(alertd.url("/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form)
            .unwrap()
    };
    let wrong = sign_in("token=s3&next=%2Frules");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = sign_in("token=s3+cret&next=%2Frules%3Fframe%3D2h");
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()["location"], "/rules?frame=2h");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Elsewhere is never a place to go back to.
    for next in [
        "%2F%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "%2F%09%2Fevil.example",
        "%2Frules%0A",
    ] {
        let response = sign_in(&format!("token=s3+cret&next={next}"));
        assert_eq!(response.status(), 303, "{next}");
        assert_eq!(response.headers()["location"], "/", "{next}");
    }
    let session = cookie.split(';').next().unwrap();
    let page = agent
        .get(alertd.url("/rules"))
        .header("Cookie", session)
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let api = agent
        .get(alertd.url("/api/v1/rules"))
        .header("Cookie", session)
        .call()
        .unwrap();
    assert_eq!(api.status(), 401, "the cookie does not open the API");
    // The cookie is a random session id, not the token.
    let id = session.trim_start_matches("alertd_session=");
    assert_eq!(id.len(), 64, "{session}");
    assert!(!id.contains("73332063726574"), "the token in hex");
    // Signing out ends the session for whoever holds the cookie.
    let out = agent
        .post(alertd.url("/logout"))
        .header("Cookie", session)
        .send("")
        .unwrap();
    assert_eq!(out.status(), 303);
    let page = agent
        .get(alertd.url("/rules"))
        .header("Cookie", session)
        .call()
        .unwrap();
    assert_eq!(page.status(), 303, "a revoked session opens nothing");
    // Five wrong tokens from one address, then it must wait.
    for _ in 0..4 {
        assert_eq!(sign_in("token=wrong").status(), 401);
    }
    let throttled = sign_in("token=s3+cret");
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().get("retry-after").is_some());
}

#[test]
fn a_second_instance_on_one_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let calls = install_logging_hook(dir.path());
    let first = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    let second = run_to_exit(
        dir.path().join("alertd.json"),
        dir.path().join("data"),
        free_port(),
    );
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    let expected = format!(
        "data directory {} is in use by process {}",
        dir.path().join("data").display(),
        first.child.id()
    );
    assert!(
        stderr.contains(&expected),
        "{expected:?} missing from:\n{stderr}"
    );
    // The first one goes on alone: one incident, one call per transition.
    first.push(json!([sample("web-1", 50.0)]));
    wait_for("the opened call", 20, || {
        (lines(&calls).len() == 1).then_some(())
    });
    assert_eq!(first.active().len(), 1);
}

#[test]
fn a_port_in_use_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = run_to_exit(
        dir.path().join("alertd.json"),
        dir.path().join("data"),
        port,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "no data directory, lock or store"
    );
}

#[test]
fn without_data_dir_the_store_is_beside_the_config_file() {
    // Started from another directory, the service finds the same store.
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertd"))
        .arg("run")
        .arg("--config")
        .arg(dir.path().join("alertd.json"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(elsewhere.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let store = dir.path().join("data/alertd.sqlite");
    wait_for("the store beside the config file", 20, || {
        store.exists().then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(!elsewhere.path().join("data").exists());
}

#[test]
fn the_largest_values_are_charted_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let rule = r#"{"name": "errors", "field": "errors.count", "aggregation": "sum",
        "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"}"#;
    let alertd = Alertd::start(dir.path(), &config(&[rule], ""));
    // Twenty seconds ago, so that the rules chart, evaluated at round
    // ticks up to now, has a tick that sees them.
    let ts = now() - 20_000;
    let (status, body) = alertd.push(json!([
        {"host": "a", "ts": ts, "metrics": {"errors.count": 1.7e308, "cpu.usage": 1.7e308}},
        {"host": "b", "ts": ts, "metrics": {"errors.count": 1.7e308, "cpu.usage": -1.7e308}},
    ]));
    assert_eq!(status, 200, "{body}");
    wait_for("the incidents", 10, || {
        (alertd.active().len() == 2).then_some(())
    });
    for page in ["/monitoring", "/rules", "/"] {
        let (status, body) = alertd.get(page);
        assert_eq!(status, 200, "{page}");
        if page != "/" {
            assert!(body.contains("beyond ±1e300 not drawn"), "{page}");
        }
    }
}

#[test]
fn a_stop_ends_the_process_while_a_request_hangs() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    // A request whose body never comes.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", alertd.port)).unwrap();
    slow.write_all(
        b"POST /api/v1/samples HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{\"host\"",
    )
    .unwrap();
    // Answered on a later connection: the slow one has been accepted.
    assert_eq!(alertd.get("/healthz").0, 200);
    alertd.signal("TERM");
    let status = alertd.wait_exit(20);
    assert!(status.success(), "{status}");
    assert!(
        alertd
            .log()
            .contains("requests still running after the grace period"),
        "{}",
        alertd.log()
    );
    drop(slow);
}

/// Sends a raw HTTP/1.1 request; returns the status code.
fn raw_status(port: u16, request: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[test]
fn other_sites_cannot_change_anything_and_foreign_host_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "monitoring": {"enabled": true}"#),
    );
    let port = alertd.port;
    let body = r#"[{"host": "web-1", "ts": 1795428010000, "metrics": {"x": 1}}]"#;
    let post = |path: &str, content_type: &str, extra: &str, body: &str| {
        raw_status(
            port,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n\
                 {extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    // What a page elsewhere can send without asking first: a form or text.
    assert_eq!(post("/api/v1/samples", "text/plain", "", body), 415);
    assert_eq!(
        post(
            "/api/v1/metrics",
            "application/x-www-form-urlencoded",
            "",
            r#"{"errors.count": 1}"#
        ),
        415
    );
    // JSON, but from another site.
    let evil = "Origin: https://evil.example\r\n";
    assert_eq!(post("/api/v1/samples", "application/json", evil, body), 403);
    assert_eq!(
        post(
            "/login",
            "application/x-www-form-urlencoded",
            evil,
            "token=x&next=%2F"
        ),
        403
    );
    assert_eq!(
        post("/logout", "application/x-www-form-urlencoded", evil, ""),
        403
    );
    assert_eq!(
        alertd.get_json("/api/v1/hosts"),
        json!({"hosts": []}),
        "nothing stored"
    );
    // From this server's own pages, or from a tool that sends no Origin: fine.
    let own = format!("Origin: http://127.0.0.1:{port}\r\n");
    assert_eq!(post("/api/v1/samples", "application/json", &own, body), 200);
    assert_eq!(
        post(
            "/api/v1/samples",
            "application/json; charset=utf-8",
            "",
            body
        ),
        200
    );
    // A name that resolves here but is not this server's (DNS rebinding).
    let get = |host: &str| {
        raw_status(
            port,
            &format!("GET /api/v1/hosts HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
    };
    assert_eq!(get("attacker.example"), 421);
    assert_eq!(get(&format!("attacker.example:{port}")), 421);
    assert_eq!(get(&format!("localhost:{port}")), 200);
    assert_eq!(get("[::1]"), 200);
}

#[test]
fn a_damaged_store_is_refused_at_start_with_a_way_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let data = dir.path().join("data");
    {
        let store = alertd::store::SqliteStore::open_dir(&data).unwrap();
        let samples: Vec<_> = (0..20_000)
            .map(|i| {
                alertd::sample::Sample::new(
                    format!("h{}", i % 50),
                    1_795_428_000_000 + i,
                    &[("x", 1.0)],
                )
            })
            .collect();
        alertd::store::SampleStore::append_samples(&store, &samples).unwrap();
    }
    // A page in the middle of the file, as a failing disk would: here one of
    // the pages that hold the recent samples.
    let file = data.join("alertd.sqlite");
    damage_page(&file, |_, pages| pages / 2);
    let output = run_to_exit(dir.path().join("alertd.json"), &data, free_port());
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{} is damaged", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains(".recover"), "{stderr}");
}

/// Overwrites one page of the store file with garbage, as a failing disk
/// would: the page `which` picks (counted from 0) given a connection and the
/// number of pages. Everything is checkpointed into the file first, so that
/// no page in the write-ahead log hides the damage. (The store's
/// checkpointer thread may still be finishing a checkpoint of its own, since
/// it outlives the store by that much: until it has, this one is busy.)
fn damage_page(file: &Path, which: impl FnOnce(&rusqlite::Connection, usize) -> usize) {
    let connection = rusqlite::Connection::open(file).unwrap();
    wait_for("a complete checkpoint", 20, || {
        let busy: i64 = connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
            .unwrap();
        (busy == 0).then_some(())
    });
    let page: i64 = connection
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let page = page as usize;
    let mut bytes = std::fs::read(file).unwrap();
    let at = which(&connection, bytes.len() / page) * page;
    drop(connection);
    bytes[at..at + page].fill(0xde);
    std::fs::write(file, &bytes).unwrap();
}

/// The pushes that made the node's next sample infinite (and the store
/// unreadable) before counters were checked: refused, naming the field.
#[test]
fn counters_that_would_overflow_are_refused_and_the_store_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(
            &[RULE_X],
            r#", "monitoring": {"enabled": true, "collectionInterval": "1s"}"#,
        ),
    );
    let metrics = |body: &str| alertd.post("/api/v1/metrics", "application/json", body);
    assert_eq!(metrics(r#"{"errors.count": 1.7e308}"#).0, 204);
    let (status, body) = metrics(r#"{"errors.count": 1.7e308}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains(
            "errors.count: adding 1.7e308 to the 1.7e308 counted since the last collection gives inf"
        ),
        "{body}"
    );
    assert!(body.contains("nothing of this push was counted"), "{body}");
    let (status, body) = metrics(r#"{"requests.count": 1e-300, "requests.latency_sum": 1e300}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("requests.latency_avg"), "{body}");
    // Two collections later every page and the export still answer.
    let collected = alertd.metric("alertd_samples_ingested_total");
    wait_for("two collections", 20, || {
        (alertd.metric("alertd_samples_ingested_total") >= collected + 2.0).then_some(())
    });
    for path in ["/healthz", "/monitoring", "/rules", "/api/v1/stats"] {
        assert_eq!(alertd.get(path).0, 200, "{path}");
    }
    drop(alertd);
    let exported = exported_samples(&dir.path().join("data"));
    assert!(exported >= 2, "{exported}");
    let again = Alertd::start_existing(dir.path());
    assert_eq!(again.metric("alertd_store_rows_skipped_total"), 0.0);
}

/// A store that an earlier alertd left with a row it cannot decode (the
/// infinite value of an overflowing counter): the service starts on it, the
/// row is left out and counted, everything else is read, and the next
/// compaction drops the row.
#[test]
fn a_row_that_cannot_be_decoded_costs_that_row_only() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let data = dir.path().join("data");
    let base = now() - 60_000;
    {
        let store = alertd::store::SqliteStore::open_dir(&data).unwrap();
        let good: Vec<_> = (0..10)
            .map(|i| alertd::sample::Sample::new("web-1", base + i * 1_000, &[("x", 1.0)]))
            .collect();
        alertd::store::SampleStore::append_samples(&store, &good).unwrap();
    }
    // Written as the store wrote a batch before it refused infinities.
    let bad = [alertd::sample::Sample::new(
        "node",
        base + 500,
        &[("errors.count", f64::INFINITY)],
    )];
    let mut bytes = Vec::new();
    alertd::store::batch::encode(&bad, &mut bytes);
    let connection = rusqlite::Connection::open(data.join("alertd.sqlite")).unwrap();
    connection
        .execute(
            "INSERT INTO recent (seq, last_seq, count, min_ts, max_ts, data) \
             VALUES (1000, 1000, 1, ?1, ?1, ?2)",
            rusqlite::params![base + 500, bytes],
        )
        .unwrap();
    drop(connection);
    let alertd = Alertd::start_existing(dir.path());
    assert!(alertd.metric("alertd_store_rows_skipped_total") >= 1.0);
    for path in ["/healthz", "/monitoring", "/rules", "/api/v1/stats?from=0"] {
        assert_eq!(alertd.get(path).0, 200, "{path}");
    }
    assert!(alertd.log().contains("a stored row cannot be decoded"));
    drop(alertd);
    assert_eq!(exported_samples(&data), 10);
    // Compaction folds the good samples and drops the damaged row.
    let store = alertd::store::SqliteStore::open_dir(&data).unwrap();
    alertd::store::SampleStore::compact_samples(&store, i64::MAX, alertd::store::EVERY_ROLLUP)
        .unwrap();
    drop(store);
    let connection = rusqlite::Connection::open(data.join("alertd.sqlite")).unwrap();
    let left: i64 = connection
        .query_row("SELECT count(*) FROM recent", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(exported_samples(&data), 10);
}

#[test]
fn counters_that_are_not_json_say_what_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "monitoring": {"enabled": true}"#),
    );
    for (body, message) in [
        (
            &b"{\"errors.count\": \xff}"[..],
            "the body is not UTF-8: byte 17 is not valid",
        ),
        (
            &b"{\"errors.count\": NaN}"[..],
            "the body is not JSON: expected value at line 1 column 18 (NaN and Infinity are not JSON numbers)",
        ),
        (
            &b"{\"errors.count\": 1,}"[..],
            "the body is not JSON: key must be a string at line 1 column 20",
        ),
        (
            &b"{\"errors.count\": \"1\"}"[..],
            "metrics.errors.count: expected a finite number, got a string",
        ),
    ] {
        let (status, answer) = alertd.post("/api/v1/metrics", "application/json", body);
        assert_eq!(status, 400, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"], message);
    }
}

#[test]
fn pages_say_how_a_browser_may_use_them() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    for path in ["/", "/monitoring", "/api/v1/hosts"] {
        let response = alertd.agent.get(alertd.url(path)).call().unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    }
}

#[test]
fn the_original_js_hook_is_called_and_logs_through_bp_logger() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir
        .path()
        .join("data/global/hooks/on_incident_status_changed");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(
        hooks.join("alert.js"),
        "async function alertChanged() {\n  if (!incident.endTime) {\n    \
         console.log('HOOK: Incident Opened:', incident)\n  } else {\n    \
         console.log('HOOK: Incident Closed:', incident)\n  }\n}\n\
         bp.logger.info('told of', incident.ruleName)\nreturn alertChanged()\n",
    )
    .unwrap();
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    assert!(alertd.log().contains("JavaScript hooks run under Node.js"));
    alertd.push(json!([sample("web-1", 50.0)]));
    let id = wait_for("the incident", 10, || {
        alertd
            .active()
            .first()
            .map(|i| i["id"].as_str().unwrap().to_string())
    });
    let detail = wait_for("the hook call", 20, || {
        let detail = alertd.get_json(&format!("/api/v1/incidents/{id}"));
        (!detail["hookCalls"].as_array().unwrap().is_empty()).then_some(detail)
    });
    let call = &detail["hookCalls"][0];
    assert_eq!(call["target"], "js:alert.js");
    assert_eq!(call["succeeded"], true, "{call}");
    assert!(
        call["stdout"]
            .as_str()
            .unwrap()
            .contains("HOOK: Incident Opened:"),
        "{call}"
    );
    wait_for("bp.logger in the log", 10, || {
        alertd.log().contains("told of x high").then_some(())
    });
}

#[test]
fn hooks_that_cannot_run_are_reported_at_start_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir
        .path()
        .join("data/global/hooks/on_incident_status_changed");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("alert.js"), "console.log('x')\n").unwrap();
    std::fs::write(hooks.join("notes.txt"), "not a program\n").unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "hooks": {"node": "/nonexistent/node"}"#),
    );
    let log = alertd.log();
    assert!(
        log.contains(&format!("hook={}", hooks.join("alert.js").display()))
            && log.contains(
                "this JavaScript hook cannot run: Node.js (/nonexistent/node) cannot be started"
            ),
        "{log}"
    );
    assert!(
        log.contains(&format!("hook={}", hooks.join("notes.txt").display()))
            && log.contains("hook skipped: not executable"),
        "{log}"
    );
}

#[test]
fn behind_a_proxy_the_public_url_is_this_servers_origin_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(
            &[RULE_X],
            r#", "server": {"publicUrl": "https://alerts.example.com/"}"#,
        ),
    );
    let port = alertd.port;
    let body = r#"[{"host": "web-1", "ts": 1795428010000, "metrics": {"x": 1}}]"#;
    let post = |host: &str, origin: &str| {
        raw_status(
            port,
            &format!(
                "POST /api/v1/samples HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    // A proxy that rewrote Host, and the page's own origin.
    let local = format!("127.0.0.1:{port}");
    assert_eq!(post(&local, "https://alerts.example.com"), 200);
    assert_eq!(
        post("alerts.example.com", "https://alerts.example.com"),
        200
    );
    assert_eq!(post(&local, "https://evil.example"), 403);
    assert_eq!(post("evil.example", "https://evil.example"), 421);
}

#[test]
fn answers_are_gzipped_for_clients_that_take_it() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    let base = (now() - 600_000) / 10_000 * 10_000;
    let samples: Vec<Value> = (0..200)
        .map(
            |i| json!({"host": format!("h{}", i % 20), "ts": base + i * 1000, "metrics": {"x": i}}),
        )
        .collect();
    assert_eq!(alertd.push(Value::Array(samples)).0, 200);
    let stats = format!(
        "/api/v1/stats?from={base}&to={}&resolution=10s",
        base + 200_000
    );
    for path in ["/", "/api/v1/rules", "/static/alertd.css", &stats] {
        let mut zipped = alertd
            .agent
            .get(alertd.url(path))
            .header("Accept-Encoding", "gzip")
            .call()
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        let packed = zipped.body_mut().read_to_vec().unwrap();
        assert_eq!(&packed[..2], [0x1f, 0x8b], "{path}: a gzip stream");
        let mut plain = alertd.agent.get(alertd.url(path)).call().unwrap();
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        if path != "/" {
            // The same bytes, unpacked (the incidents page says the time).
            let mut unpacked = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&packed[..]),
                &mut unpacked,
            )
            .unwrap();
            assert_eq!(unpacked, plain.body_mut().read_to_vec().unwrap(), "{path}");
            assert!(path != stats || unpacked.windows(4).any(|w| w == b"\"h19"));
        }
    }
}

/// 500 samples of 50 hosts, the `round`-th batch of a disk-filling run.
fn disk_batch(base: i64, round: i64) -> Value {
    json!(
        (0..500)
            .map(
                |i| json!({"host": format!("h{}", i % 50), "ts": base + round * 10 + i / 50,
                            "metrics": {"x": (round * 500 + i) as f64, "y": 1.5, "z": i}})
            )
            .collect::<Vec<_>>()
    )
}

/// How many samples `alertd export` finds in the data directory `data`.
fn exported_samples(data: &std::path::Path) -> usize {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_alertd"))
        .arg("export")
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().lines().count()
}

#[test]
fn a_full_disk_refuses_samples_loses_none_and_recovers_when_space_returns() {
    // RLIMIT_FSIZE stands for a full disk: past it, every write to a file
    // that would grow it fails (EFBIG), as ENOSPC would.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let alertd = Alertd::start_under(dir.path(), &["prlimit", "--fsize=3000000:unlimited"]);
    let mut acknowledged = 0usize;
    let mut refused = 0usize;
    let mut round = 0i64;
    let base = now() - 60_000;
    let batch = |round: i64| disk_batch(base, round);
    while refused < 3 {
        round += 1;
        assert!(round < 2_000, "the store never filled");
        let (status, body) = alertd.push(batch(round));
        match status {
            200 => acknowledged += 500,
            503 => {
                refused += 1;
                assert!(body.contains("store"), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    // Still up, and says so.
    let (status, _) = alertd.get("/healthz");
    assert_eq!(status, 503, "a store that fails writes is not healthy");
    let log = alertd.log();
    assert!(log.contains("the disk refused a write"), "{log}");
    for line in log
        .lines()
        .filter(|line| line.contains("the disk refused"))
        .take(2)
    {
        eprintln!("{line}");
    }
    // Space comes back.
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &alertd.child.id().to_string(), "--fsize=unlimited"])
        .status()
        .unwrap();
    assert!(status.success());
    let mut more = 0;
    for round in round + 1..round + 20 {
        let (status, body) = alertd.push(batch(round));
        assert_eq!(status, 200, "after space came back: {body}");
        more += 500;
    }
    // Nothing acknowledged was lost.
    let hosts = alertd.get_json("/api/v1/hosts");
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 50);
    let exported = exported_samples(&dir.path().join("data"));
    assert_eq!(
        exported,
        acknowledged + more,
        "every acknowledged sample is stored"
    );
}

/// A small filesystem of its own (tmpfs), unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    /// Mounts `size` of tmpfs at `path`; `None` when this process may not
    /// mount (not root).
    fn mount(path: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| SmallDisk {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn a_really_full_disk_recovers_as_soon_as_space_is_freed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_disk) = SmallDisk::mount(&dir.path().join("data"), "6m") else {
        // Mounting needs root, which CI has (it installs packages as root).
        assert_ne!(
            unsafe { libc::geteuid() },
            0,
            "root, yet tmpfs could not be mounted"
        );
        eprintln!("skipped: mounting a small filesystem needs root");
        return;
    };
    let data = dir.path().join("data");
    // Ballast, to free later.
    std::fs::write(data.join("ballast"), vec![7u8; 1_500_000]).unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let alertd = Alertd::start_existing(dir.path());
    let base = now() - 60_000;
    let batch = |round: i64| disk_batch(base, round);
    let mut acknowledged = 0usize;
    let mut round = 0i64;
    let mut refused = 0;
    while refused < 3 {
        round += 1;
        assert!(round < 5_000, "the disk never filled");
        match alertd.push(batch(round)) {
            (200, _) => acknowledged += 500,
            (503, body) => {
                refused += 1;
                assert!(body.contains("full") || body.contains("I/O"), "{body}");
            }
            (status, body) => panic!("{status}: {body}"),
        }
    }
    let wal = || std::fs::metadata(data.join("alertd.sqlite-wal")).map_or(0, |m| m.len());
    eprintln!("full: the write-ahead log holds {} bytes", wal());
    // 1.5 MB freed: writing goes on at once, and the write-ahead log does not
    // take the freed space back.
    std::fs::remove_file(data.join("ballast")).unwrap();
    for round in round + 1..round + 11 {
        let (status, body) = alertd.push(batch(round));
        assert_eq!(status, 200, "after space was freed: {body}");
        acknowledged += 500;
    }
    let after = wal();
    eprintln!("after 10 more batches: the write-ahead log holds {after} bytes");
    assert!(
        after < 1_000_000,
        "the write-ahead log grew to {after} bytes"
    );
    // `/healthz` still reports the failures of the last minute: by design.
    let exported = exported_samples(&data);
    assert_eq!(
        exported, acknowledged,
        "every acknowledged sample is stored"
    );
}

/// One target that never ends, beside targets that misbehave otherwise (one
/// leaves a child holding its output open, one exits 3, one prints 10 MB,
/// a `.js` one throws) and a good one: the good one is called for every
/// incident while the others hold their own slots. With one shared pool
/// the hanging target's backlog took every slot, and the good hook waited
/// for `hooks.timeout` (60 s here) per round of calls.
#[test]
fn a_target_that_hangs_delays_no_other() {
    if !support::programs::needed("node") {
        return;
    }
    /// Stops the hooks' sleeps however the test ends (alertd killed leaves
    /// its hooks running).
    struct Sleeps;
    impl Drop for Sleeps {
        fn drop(&mut self) {
            for left in ["^sleep 100017$", "^sleep 1017$"] {
                let _ = Command::new("pkill").args(["-f", left]).status();
            }
        }
    }
    let _sleeps = Sleeps;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.log");
    // The sleeps have lengths of their own, so that they can be counted
    // and stopped at the end whatever else runs on the machine.
    install_hook(dir.path(), "hang", "#!/bin/sh\nexec sleep 100017\n");
    install_hook(
        dir.path(),
        "background",
        "#!/bin/sh\nsleep 1017 &\necho started\n",
    );
    install_hook(dir.path(), "exit3", "#!/bin/sh\nexit 3\n");
    install_hook(
        dir.path(),
        "flood",
        "#!/bin/sh\nhead -c 10000000 /dev/zero | tr '\\0' x\n",
    );
    install_hook(dir.path(), "throws.js", "throw new Error('boom')\n");
    install_hook(
        dir.path(),
        "good",
        &format!(
            "#!/bin/sh\necho \"$INCIDENT_ID $(date +%s%3N)\" >> {}\n",
            good.display()
        ),
    );
    let alertd = Alertd::start(
        dir.path(),
        &config(
            &[RULE_X],
            r#", "hooks": {"timeout": "60s", "concurrency": 2}"#,
        ),
    );
    let hosts = 20;
    let pushed = now();
    let batch: Vec<Value> = (0..hosts)
        .map(|n| sample(&format!("web-{n:02}"), 50.0))
        .collect();
    assert_eq!(alertd.push(json!(batch)).0, 200);
    // Every incident opens at the next tick, and the good hook hears of each.
    let calls = wait_for("the good hook called for every incident", 30, || {
        let text = std::fs::read_to_string(&good).unwrap_or_default();
        let lines: Vec<(String, i64)> = text
            .lines()
            .filter_map(|line| {
                let (id, at) = line.split_once(' ')?;
                Some((id.to_string(), at.parse().ok()?))
            })
            .collect();
        (lines.len() >= hosts).then_some(lines)
    });
    let active = alertd.active();
    assert_eq!(active.len(), hosts);
    let ids: std::collections::BTreeSet<&str> =
        active.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let called: std::collections::BTreeSet<&str> =
        calls.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(called, ids, "each incident once to the good hook");
    let latest = calls.iter().map(|(_, at)| at - pushed).max().unwrap();
    eprintln!("the good hook's last call came {latest} ms after the push");
    // The hanging target holds its own two slots, no more.
    let hanging = Command::new("pgrep")
        .args(["-c", "-f", "^sleep 100017$"])
        .output()
        .unwrap();
    let hanging: usize = String::from_utf8_lossy(&hanging.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(hanging <= 2, "{hanging} calls of the hanging hook at once");
    assert!(hanging >= 1, "the hanging hook was called");
    drop(alertd);
}

#[test]
fn active_incidents_are_listed_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    let samples: Vec<Value> = (0..60)
        .map(|i| sample(&format!("web-{i:02}"), 11.0))
        .collect();
    let (status, body) = alertd.post(
        "/api/v1/samples",
        "application/json",
        serde_json::to_string(&samples).unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("60 open incidents", 20, || {
        let open = alertd.get_json("/api/v1/incidents");
        (open["active"].as_array().unwrap().len() == 60).then_some(())
    });
    // The rows of the active list on a page.
    let active_rows = |path: &str| {
        let (status, page) = alertd.get(path);
        assert_eq!(status, 200, "{page}");
        let table = page
            .split("id=\"table-active\"")
            .nth(1)
            .and_then(|rest| rest.split("</table>").next())
            .unwrap_or_else(|| panic!("no active table in {page}"))
            .to_string();
        (table.matches("<tr").count() - 1, page)
    };
    let (rows, page) = active_rows("/?size=25");
    assert_eq!(rows, 25);
    assert!(page.contains("Page 1 of 3"), "{page}");
    assert!(page.contains("aria-label=\"Active incidents pages\""));
    let (rows, page) = active_rows("/?size=25&active=3");
    assert_eq!(rows, 10);
    assert!(page.contains("Page 3 of 3"), "{page}");
    // Past the last page: the last page.
    assert_eq!(active_rows("/?size=25&active=9").0, 10);
    let (status, _) = alertd.get("/?active=0");
    assert_eq!(status, 400);
}

/// Damage in the sample history (here the rollups table's root page) does
/// not stop alerting, and `/healthz` says what is damaged and how to recover.
#[test]
fn a_damaged_history_is_reported_and_alerting_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("alertd.json"), config(&[RULE_X], "")).unwrap();
    let data = dir.path().join("data");
    {
        let store = alertd::store::SqliteStore::open_dir(&data).unwrap();
        let start = now() - 3 * 24 * 3600 * 1000;
        let samples: Vec<_> = (0..5_000)
            .map(|i| {
                alertd::sample::Sample::new(
                    format!("h{}", i % 5),
                    start + i * 10_000,
                    &[("x", 1.0)],
                )
            })
            .collect();
        alertd::store::SampleStore::append_samples(&store, &samples).unwrap();
        while alertd::store::SampleStore::compact_samples(
            &store,
            now(),
            alertd::store::EVERY_ROLLUP,
        )
        .unwrap()
            > 0
        {}
        let rollups = support::rollups(&store, alertd::store::rollup::Step::Minute, None);
        assert!(!rollups.is_empty(), "compaction made rollups");
    }
    // The rollups table's root page.
    damage_page(&data.join("alertd.sqlite"), |connection, _| {
        let root: i64 = connection
            .query_row(
                "SELECT rootpage FROM sqlite_master WHERE name = 'rollups'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        root as usize - 1
    });

    let alertd = Alertd::start_answering(dir.path());
    // A chore that reads the damaged table may fail first ("the store
    // failed within the last minute"); the damage is said once found.
    let (status, body) = wait_for("/healthz to report the damage", 20, || {
        let answer = alertd.get("/healthz");
        (answer.0 == 503 && answer.1.contains("sample history")).then_some(answer)
    });
    assert_eq!(status, 503);
    assert!(
        body.contains("sample history (rollups)") && body.contains(".recover"),
        "{body}"
    );
    assert!(alertd.log().contains("ERROR"), "{}", alertd.log());
    // Alerting goes on.
    let (status, _) = alertd.post(
        "/api/v1/samples",
        "application/json",
        json!([sample("web-1", 11.0)]).to_string(),
    );
    assert_eq!(status, 200);
    wait_for("the incident", 20, || {
        let open = alertd.get_json("/api/v1/incidents");
        (open["active"].as_array().unwrap().len() == 1).then_some(())
    });
}

/// `rm alertd.sqlite-wal` under a running service: the store halts at once
/// (samples 503, `/healthz` says which file and what to do), and a clean
/// stop then keeps every sample that was acknowledged.
#[test]
fn a_store_file_removed_under_the_service_halts_it_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut alertd = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    let base = now() - 60_000;
    let mut acknowledged = 0usize;
    let mut round = 0i64;
    let mut push = |alertd: &Alertd| {
        round += 1;
        let samples: Vec<Value> = (0..10)
            .map(|i| json!({"host": format!("h{i}"), "ts": base + round, "metrics": {"x": 1}}))
            .collect();
        let (status, body) = alertd.post(
            "/api/v1/samples",
            "application/json",
            serde_json::to_string(&samples).unwrap(),
        );
        if status == 200 {
            acknowledged += 10;
        }
        (status, body)
    };
    for _ in 0..100 {
        assert_eq!(push(&alertd).0, 200);
    }
    std::fs::remove_file(dir.path().join("data/alertd.sqlite-wal")).unwrap();
    let refused = wait_for("samples to be refused", 20, || {
        let (status, body) = push(&alertd);
        (status == 503).then_some(body)
    });
    assert!(
        refused.contains("alertd.sqlite-wal was removed"),
        "{refused}"
    );
    let (status, health) = alertd.get("/healthz");
    assert_eq!(status, 503);
    assert!(health.contains("SIGTERM"), "{health}");
    assert!(alertd.log().contains("ERROR"), "{}", alertd.log());
    alertd.signal("TERM");
    assert!(alertd.wait_exit(30).success());
    drop(alertd);
    assert_eq!(
        exported_samples(&dir.path().join("data")),
        acknowledged,
        "every acknowledged sample, and nothing more"
    );
}

/// The lock file removed under a running service is locked again, so that
/// a second instance is still kept out.
#[test]
fn a_removed_lock_file_still_keeps_a_second_instance_out() {
    let dir = tempfile::tempdir().unwrap();
    let first = Alertd::start(dir.path(), &config(&[RULE_X], ""));
    std::fs::remove_file(dir.path().join("data/alertd.lock")).unwrap();
    wait_for("the lock file again", 20, || {
        dir.path().join("data/alertd.lock").exists().then_some(())
    });
    let second = run_to_exit(
        dir.path().join("alertd.json"),
        dir.path().join("data"),
        free_port(),
    );
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("in use by process {}", first.child.id())),
        "{stderr}"
    );
    assert!(first.log().contains("locked it again"), "{}", first.log());
    assert_eq!(first.get("/healthz").0, 200);
}

/// A hook that finished while the service was stopped (SIGSTOP) finished:
/// after SIGCONT its exit is taken, not the timeout that passed meanwhile,
/// and it is not called again.
#[test]
fn a_hook_that_finished_while_the_service_was_stopped_is_not_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.log");
    install_hook(
        dir.path(),
        "10-slow",
        &format!(
            "#!/bin/sh\nsleep 1\necho \"$INCIDENT_STATUS|$INCIDENT_ID\" >> '{}'\n",
            calls.display()
        ),
    );
    let alertd = Alertd::start(
        dir.path(),
        &config(&[RULE_X], r#", "hooks": {"timeout": "2s"}"#),
    );
    for (round, host) in ["web-1", "web-2", "web-3"].iter().enumerate() {
        let (status, _) = alertd.post(
            "/api/v1/samples",
            "application/json",
            json!([sample(host, 11.0)]).to_string(),
        );
        assert_eq!(status, 200);
        wait_for("the incident", 20, || {
            (alertd.active().len() == round + 1).then_some(())
        });
        // The hook runs for a second; the service is stopped for four, on
        // the first round alone, then with the hook (as a paused container
        // is), which then still has most of its second to run.
        std::thread::sleep(Duration::from_millis(300));
        let hook = (round > 0).then(|| {
            let found = Command::new("pgrep")
                .args(["-f", "10-slow"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&found.stdout).trim().to_string()
        });
        let group = |signal: &str| {
            if let Some(pid) = hook.as_deref().filter(|pid| !pid.is_empty()) {
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), "--", &format!("-{pid}")])
                    .status();
            }
        };
        alertd.signal("STOP");
        group("STOP");
        std::thread::sleep(Duration::from_secs(4));
        group("CONT");
        alertd.signal("CONT");
        wait_for("the call told", 20, || {
            (lines(&calls).len() > round).then_some(())
        });
    }
    std::thread::sleep(Duration::from_secs(4));
    let lines = lines(&calls);
    assert_eq!(lines.len(), 3, "each opening told once: {lines:?}");
    assert!(
        !alertd.log().contains("timed out"),
        "no call taken as timed out:\n{}",
        alertd.log()
    );
}

/// A push sent again with its `Idempotency-Key` (a retry after a timeout)
/// is answered as the first one was and stored once; the same key with
/// another body is refused (422) and stores nothing; a bad key is refused
/// (400). Samples and counters alike.
#[test]
fn a_push_sent_again_with_its_idempotency_key_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": true, "collectionInterval": "200ms"},
            "alerting": {"enabled": false}}"#,
    );
    let send = |path: &str, key: &str, body: &str| -> (u16, bool, String) {
        let mut response = alertd
            .agent
            .post(alertd.url(path))
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", key)
            .send(body)
            .unwrap();
        let replayed = response.headers().get("Idempotent-Replayed").is_some();
        let status = response.status().as_u16();
        (
            status,
            replayed,
            response.body_mut().read_to_string().unwrap(),
        )
    };
    let at = now();
    let batch = json!([
        {"host": "h", "ts": at - 1000, "metrics": {"x": 1}},
        {"host": "h", "ts": at, "metrics": {"x": 2}}
    ])
    .to_string();
    assert_eq!(
        send("/api/v1/samples", "batch-1", &batch),
        (200, false, r#"{"accepted":2}"#.to_string())
    );
    assert_eq!(
        send("/api/v1/samples", "batch-1", &batch),
        (200, true, r#"{"accepted":2}"#.to_string()),
        "the retry is answered as the first push"
    );
    let other = json!([{"host": "h", "ts": at, "metrics": {"x": 100}}]).to_string();
    let (status, _, body) = send("/api/v1/samples", "batch-1", &other);
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("another body"), "{body}");
    for bad in ["has a space", &"k".repeat(201), "é"] {
        let (status, _, body) = send("/api/v1/samples", bad, &other);
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(body.contains("Idempotency-Key"), "{body}");
    }
    let sum = |host: &str, field: &str| -> f64 {
        let stats = alertd.get_json(&format!("/api/v1/stats?resolution=1h&host={host}"));
        stats["hosts"][host]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .map(|p| p["sum"][field].as_f64().unwrap_or(0.0))
                    .sum()
            })
            .unwrap_or(0.0)
    };
    // A push whose answer never came (alertd paused while its request
    // arrived; the sender stopped waiting), sent again once alertd runs:
    // alertd read the first one after all, and the retry is answered as a
    // replay, the batch stored once. The first request stays open, so that
    // alertd surely reads it (a sender that hung up may find it read or not:
    // stored once either way).
    let late = json!([{"host": "late", "ts": at, "metrics": {"x": 5}}]).to_string();
    alertd.signal("STOP");
    let url = alertd.url("/");
    let authority = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap();
    let mut unanswered = std::net::TcpStream::connect(authority).unwrap();
    {
        use std::io::{Read, Write};
        write!(
            unanswered,
            "POST /api/v1/samples HTTP/1.1\r\nHost: {authority}\r\n\
             Content-Type: application/json\r\nIdempotency-Key: late-1\r\n\
             Content-Length: {}\r\n\r\n{late}",
            late.len()
        )
        .unwrap();
        unanswered
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut answer = [0u8; 1];
        assert!(
            unanswered.read(&mut answer).is_err(),
            "no answer from a paused alertd"
        );
    }
    alertd.signal("CONT");
    wait_for("the unanswered push to be stored", 10, || {
        (sum("late", "x") == 5.0).then_some(())
    });
    let (status, late_replayed, _) = send("/api/v1/samples", "late-1", &late);
    assert_eq!(status, 200);
    drop(unanswered);
    // Counters: the retry adds nothing.
    let counters = r#"{"errors.count": 1}"#;
    assert_eq!(send("/api/v1/metrics", "c-1", counters).0, 204);
    let (status, replayed, _) = send("/api/v1/metrics", "c-1", counters);
    assert_eq!((status, replayed), (204, true));
    assert_eq!(
        send("/api/v1/metrics", "c-1", r#"{"errors.count": 5}"#).0,
        422
    );
    wait_for("the counters collected", 10, || {
        (sum("node-under-test", "errors.count") > 0.0).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sum("node-under-test", "errors.count"), 1.0, "counted once");
    assert_eq!(sum("h", "x"), 3.0, "each sample once");
    assert_eq!(sum("late", "x"), 5.0, "the batch without an answer, once");
    assert!(late_replayed, "alertd had read the first push after all");
}

/// Pushes `x = 20` for each of `hosts` every 200 ms to `url` until stopped.
struct Pusher {
    hosts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pusher {
    fn start(url: String) -> Pusher {
        let hosts: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let stop: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        let (pushed, stopped) = (hosts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .into();
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let at = now();
                let batch: Vec<Value> = pushed
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|host| json!({"host": host, "ts": at, "metrics": {"x": 20}}))
                    .collect();
                if !batch.is_empty() {
                    // A node being restarted does not answer: the next push will.
                    let _ = agent
                        .post(format!("{url}/api/v1/samples"))
                        .header("Content-Type", "application/json")
                        .send(json!(batch).to_string());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Pusher {
            hosts,
            stop,
            thread: Some(thread),
        }
    }

    fn add(&self, host: &str) {
        self.hosts.lock().unwrap().push(host.to_string());
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A pair pending under a rule with `for` keeps its `pendingSince` through
/// a SIGKILL and a restart, and through a reload (SIGHUP) that keeps the
/// rule: its incident opens at the same tick as without them, `for` after
/// the condition started to hold, and says so (`pendingSince`, severity,
/// description).
#[test]
fn a_pending_pair_opens_on_time_through_a_kill_and_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"{"monitoring": {"enabled": false},
        "alerting": {"enabled": true, "watcherInterval": "1s", "rules": [
          {"name": "hot", "field": "x", "aggregation": "avg", "operand": "equalOrMoreThan",
           "value": 10, "timeframe": "3s", "for": "6s", "severity": "critical",
           "description": "{{host}} at {{value}} (threshold {{threshold}})"}]}}"#;
    let mut alertd = Alertd::start(dir.path(), config);
    let port = alertd.port;
    let pusher = Pusher::start(alertd.url(""));
    let pending = |alertd: &Alertd, host: &str| -> Option<(i64, i64)> {
        let rules = alertd.get_json("/api/v1/rules");
        let pair = rules["rules"][0]["hosts"]
            .as_array()?
            .iter()
            .find(|pair| pair["host"] == host)?
            .clone();
        Some((pair["pendingSince"].as_i64()?, pair["opensAt"].as_i64()?))
    };
    pusher.add("h1");
    let (since, opens) = wait_for("h1 pending", 10, || pending(&alertd, "h1"));
    assert_eq!(opens, since + 6_000);
    let (_, page) = alertd.get("/rules");
    assert!(page.contains("pending since"), "the rules page shows it");
    // Killed while pending, started again at once.
    alertd.signal("KILL");
    alertd.wait_exit(10);
    drop(alertd);
    let alertd = Alertd::start_on(dir.path(), port);
    let opened = wait_for("h1's incident", 20, || alertd.active().into_iter().next());
    let rfc = alertd::incident::rfc3339;
    assert_eq!(opened["pendingSince"], rfc(since), "{opened}");
    assert_eq!(opened["startTime"], rfc(since + 6_000), "{opened}");
    assert_eq!(opened["severity"], "critical");
    assert_eq!(opened["description"], "h1 at 20 (threshold 10)");
    // h2 pending across a reload that keeps the rule.
    pusher.add("h2");
    let (since, _) = wait_for("h2 pending", 10, || pending(&alertd, "h2"));
    alertd.signal("HUP");
    let opened = wait_for("h2's incident", 20, || {
        alertd
            .active()
            .into_iter()
            .find(|incident| incident["hostName"] == "h2")
    });
    assert_eq!(opened["pendingSince"], rfc(since), "{opened}");
    assert_eq!(opened["startTime"], rfc(since + 6_000), "{opened}");
    assert!(alertd.log().contains("configuration reloaded"));
}

/// An incident of a rule with `severity`, `labels` and `description` that
/// opened on no data (`noData: "open"`) says so everywhere: the API
/// (`triggerValue: null`), the hook (its input and `INCIDENT_SEVERITY`),
/// the incidents page (a severity badge, "no data", a severity filter), the
/// incident page, and `/metrics` by severity.
#[test]
fn an_incident_of_a_rule_with_options_says_so_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    install_hook(
        dir.path(),
        "10-log",
        &format!(
            "#!/bin/sh\necho \"$INCIDENT_STATUS|$INCIDENT_SEVERITY|$(cat)\" >> '{}'\n",
            log.display()
        ),
    );
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": false},
            "alerting": {"enabled": true, "watcherInterval": "200ms", "rules": [
              {"name": "silent", "field": "x", "aggregation": "avg", "operand": "equalOrMoreThan",
               "value": 1000, "timeframe": "1s", "noData": "open", "severity": "critical",
               "labels": {"team": "web"}, "description": "{{host}} sent nothing ({{value}})"}]}}"#,
    );
    let (status, _) = alertd.push(json!([{"host": "h", "ts": now(), "metrics": {"x": 1}}]));
    assert_eq!(status, 200);
    let incident = wait_for("the incident on no data", 10, || {
        alertd.active().into_iter().next()
    });
    assert_eq!(incident["triggerValue"], Value::Null, "{incident}");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["labels"], json!({"team": "web"}));
    assert_eq!(incident["description"], "h sent nothing (no data)");
    let called = wait_for("the hook call", 10, || lines(&log).into_iter().next());
    let (head, input) = called.split_at(called.find("|{").unwrap() + 1);
    assert_eq!(head, "opened|critical|");
    let input: Value = serde_json::from_str(input).unwrap();
    assert_eq!(input["triggerValue"], Value::Null);
    assert_eq!(input["severity"], "critical");
    let (_, page) = alertd.get("/");
    assert!(page.contains("severity-critical"), "a severity badge");
    assert!(page.contains(">no data<"), "no data for a value");
    let link = format!("/incidents/{}", incident["id"].as_str().unwrap());
    let (_, filtered) = alertd.get("/?severity=critical");
    assert!(filtered.contains(&link), "kept by its severity");
    let (_, none) = alertd.get("/?severity=none");
    assert!(!none.contains(&link), "left out by another");
    let (_, detail) = alertd.get(&format!("/incidents/{}", incident["id"].as_str().unwrap()));
    assert!(detail.contains("h sent nothing (no data)"), "{detail}");
    assert!(detail.contains("team=web"));
    let (_, metrics) = alertd.get("/metrics");
    assert!(
        metrics.contains("alertd_incidents_open{severity=\"critical\"} 1"),
        "{metrics}"
    );
}
