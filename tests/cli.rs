//! The `alertd` binary end to end: `replay` and `check` on files under
//! `examples/` and `tests/`, compared with what a reader of docs/engine.md expects.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn alertd(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertd"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("alertd starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `alertd replay` on a configuration and samples under the repository (`-`: standard input).
fn replay(config: &str, samples: &str, extra: &[&str], stdin: Option<&[u8]>) -> Output {
    let config = repo(config);
    let samples = if samples == "-" {
        PathBuf::from("-")
    } else {
        repo(samples)
    };
    let mut args = vec![
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--samples",
        samples.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    alertd(&args, stdin)
}

/// `alertd check` on a configuration under the repository.
fn check(config: &str) -> Output {
    alertd(&["check", "--config", repo(config).to_str().unwrap()], None)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The replay output with each incident id replaced by `<id>`, after checking
/// that ids are ULIDs and that a resolution carries its opening's id.
fn without_ids(stdout: &[u8]) -> Vec<Value> {
    let mut open: Vec<(String, String, String)> = Vec::new();
    text(stdout)
        .lines()
        .map(|line| {
            let mut event: Value = serde_json::from_str(line).unwrap();
            let incident = &mut event["incident"];
            let id = incident["id"].as_str().unwrap().to_string();
            assert_eq!(id.len(), 26, "a ULID: {id}");
            let key = (
                incident["ruleName"].to_string(),
                incident["hostName"].to_string(),
            );
            if incident.get("endTime").is_none() {
                open.push((key.0, key.1, id));
            } else {
                let at = open
                    .iter()
                    .position(|(r, h, _)| (r, h) == (&key.0, &key.1))
                    .expect("opened first");
                assert_eq!(open.remove(at).2, id);
            }
            incident["id"] = "<id>".into();
            event
        })
        .collect()
}

fn expected(path: &str) -> Vec<Value> {
    std::fs::read_to_string(repo(path))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn replay_of_the_shipped_example_prints_the_expected_transitions() {
    let output = replay("examples/alertd.json", "examples/samples.ndjson", &[], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        without_ids(&output.stdout),
        expected("tests/replay/example.expected.ndjson")
    );
    assert_eq!(text(&output.stderr), "");
}

fn example_lines() -> Vec<String> {
    std::fs::read_to_string(repo("examples/samples.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn replay_gives_the_same_transitions_whatever_the_line_order() {
    // A deterministic shuffle: reversed, then interleaved halves, with blank lines.
    let mut shuffled: Vec<String> = example_lines().into_iter().rev().collect();
    let back = shuffled.split_off(shuffled.len() / 2);
    let mixed: Vec<String> = back
        .into_iter()
        .zip(shuffled)
        .flat_map(|(a, b)| [a, String::new(), b])
        .collect();
    let input = mixed.join("\n");
    let output = replay(
        "examples/alertd.json",
        "-",
        &["--stats"],
        Some(input.as_bytes()),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        without_ids(&output.stdout),
        expected("tests/replay/example.expected.ndjson")
    );
    assert!(
        text(&output.stderr).contains("input sorted in memory"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn replay_until_extends_the_ticks_past_the_last_sample() {
    // web-1's last sample is at 10:20:00; ten minutes later its 10m window holds no event.
    let until = ["--until", "1795429900000"];
    let output = replay(
        "examples/alertd.json",
        "examples/samples.ndjson",
        &until,
        None,
    );
    assert!(output.status.success());
    let events = without_ids(&output.stdout);
    assert_eq!(events.len(), 6);
    assert_eq!(events[5]["at"], 1_795_429_800_000i64);
    assert_eq!(events[5]["incident"]["hostName"], "web-1");
    assert_eq!(events[5]["incident"]["ruleName"], "No more incoming events");
    assert_eq!(
        events[5]["incident"]["startTime"],
        "2026-11-23T10:30:00.000Z"
    );
}

#[test]
fn replay_refuses_an_until_beyond_year_9999() {
    let output = replay(
        "examples/alertd.json",
        "examples/samples.ndjson",
        &["--until", "253402300830000"],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("253402300830000 is not in 0..=253402300799999"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn replay_reads_a_botpress_config() {
    let output = replay(
        "examples/botpress.config.json",
        "examples/samples.ndjson",
        &[],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        without_ids(&output.stdout),
        expected("tests/replay/example.expected.ndjson")
    );
}

#[test]
fn an_invalid_line_prints_only_its_error() {
    let mut lines = example_lines();
    // Far enough in that transitions have happened before it.
    lines[200] =
        r#"{"host":"web-1","ts":1795429000000,"metrics":{"cpu.usage":"high"}}"#.to_string();
    let input = lines.join("\n");
    let output = replay("examples/alertd.json", "-", &[], Some(input.as_bytes()));
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stdout), "", "nothing is printed as a result");
    assert_eq!(
        text(&output.stderr),
        "error: -:201: metrics.cpu.usage: expected a finite number, got a string\n"
    );
}

#[test]
fn replay_refuses_an_invalid_config_and_a_missing_file() {
    let output = replay(
        "tests/config/bad-unit.bad.json",
        "examples/samples.ndjson",
        &[],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains(r#"timeframe "2x": unknown unit "x""#));

    let config = repo("examples/alertd.json");
    let args = [
        "replay",
        "--config",
        config.to_str().unwrap(),
        "--samples",
        "/nonexistent/samples",
    ];
    let output = alertd(&args, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("error: /nonexistent/samples: "),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn an_empty_samples_file_prints_nothing() {
    let output = replay("examples/alertd.json", "-", &[], Some(b""));
    assert!(output.status.success());
    assert_eq!(text(&output.stdout), "");
}

#[test]
fn check_prints_one_line_per_rule() {
    let output = check("examples/alertd.json");
    assert!(output.status.success());
    assert_eq!(
        text(&output.stdout),
        "native config: monitoring enabled (every 10s, kept 10d), alerting enabled (every 10s, kept 10d), 3 rules\n\
         \x20 High CPU Usage: avg(cpu.usage) over 2m >= 60, cooldown 1m\n\
         \x20 High number of errors: sum(errors.count) over 1m >= 10, no cooldown\n\
         \x20 No more incoming events: sum(eventsIn.count) over 10m <= 0, no cooldown\n"
    );
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn check_warns_of_custom_fields_and_empty_rules() {
    let output = check("tests/config/good-botpress.config.json");
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("warning: "), "{stderr}");
    assert!(
        stderr.contains(r#"field "cpu.usgae" is not a built-in field"#),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"(did you mean "cpu.usage"?)"#),
        "{stderr}"
    );
    assert!(stderr.contains("empty rule {} ignored"), "{stderr}");
    assert!(
        text(&output.stdout)
            .contains("Queue too deep: max(cpu.usgae) over 5s >= 1000, no cooldown")
    );
}

#[test]
fn check_lists_every_problem_and_exits_2() {
    let output = check("tests/config/every-problem-at-once.bad.json");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(text(&output.stdout), "");
    let errors = text(&output.stderr)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(errors, 14);
}

#[test]
fn replay_order_does_not_matter_after_every_host_was_forgotten() {
    // Host a reports once, is forgotten after a minute and dropped; then a
    // line from t=1000s, then one from t=500s: the t=500s sample must still
    // open an incident at 500s, as it does when the file is sorted.
    let lines = [
        r#"{"host":"a","ts":0,"metrics":{"x":1}}"#,
        r#"{"host":"b","ts":1000000,"metrics":{"x":1}}"#,
        r#"{"host":"c","ts":500000,"metrics":{"x":20}}"#,
    ];
    let unsorted = replay(
        "tests/replay/skip.json",
        "-",
        &[],
        Some(lines.join("\n").as_bytes()),
    );
    let sorted_lines = [lines[0], lines[2], lines[1]];
    let sorted = replay(
        "tests/replay/skip.json",
        "-",
        &[],
        Some(sorted_lines.join("\n").as_bytes()),
    );
    assert!(unsorted.status.success() && sorted.status.success());
    let events = without_ids(&sorted.stdout);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["at"], 500_000);
    assert_eq!(without_ids(&unsorted.stdout), events);
}

#[test]
fn a_config_that_is_not_utf8_is_bad_input_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.json");
    std::fs::write(&path, b"{\n  \"alerting\": \xff}\n").unwrap();
    let output = alertd(&["check", "--config", path.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr)
            .contains("invalid JSON at line 2 column 15: not UTF-8 (byte 0xff at offset 16)"),
        "{}",
        text(&output.stderr)
    );
}

/// A data directory named beside a configuration whose samples are in Redis
/// contradicts it: said, rather than an empty SQLite store looked for.
#[test]
fn export_refuses_a_data_dir_that_contradicts_a_redis_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.json");
    std::fs::write(
        &config,
        r#"{"storage": {"backend": "redis", "redisUrl": "redis://127.0.0.1:1/0"}}"#,
    )
    .unwrap();
    let output = alertd(
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("drop --data-dir"), "{stderr}");
    assert!(stderr.contains("Redis"), "{stderr}");
}

/// `alertd export` of a store that holds the shipped example's samples,
/// part compacted and part recent, replays to the example's transitions.
#[test]
fn export_of_stored_samples_replays_to_the_same_transitions() {
    use alertd::store::SampleStore;
    use alertd::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<alertd::sample::Sample> = example_lines()
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| alertd::sample::Sample::from_json(line.as_bytes()).unwrap())
        .collect();
    let middle = samples[samples.len() / 2].ts;
    {
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        for batch in samples.chunks(17) {
            store.append_samples(batch).unwrap();
        }
        while store
            .compact_samples(middle, alertd::store::EVERY_ROLLUP)
            .unwrap()
            > 0
        {}
    }
    let data_dir = dir.path().to_str().unwrap();
    let exported = alertd(
        &["export", "--data-dir", data_dir, "--to", "9999999999999"],
        None,
    );
    assert!(exported.status.success(), "{}", text(&exported.stderr));
    let lines = text(&exported.stdout);
    assert_eq!(lines.lines().count(), samples.len());
    let output = replay("examples/alertd.json", "-", &[], Some(lines.as_bytes()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        without_ids(&output.stdout),
        expected("tests/replay/example.expected.ndjson")
    );
    // Narrowed to a host, fields and a time range.
    let first = samples[0].ts;
    let from = (first + 60_000).to_string();
    let to = (first + 120_000).to_string();
    let narrow = alertd(
        &[
            "export",
            "--data-dir",
            data_dir,
            "--from",
            &from,
            "--to",
            &to,
            "--host",
            "web-2",
            "--fields",
            "cpu.usage,errors.count",
        ],
        None,
    );
    assert!(narrow.status.success(), "{}", text(&narrow.stderr));
    let wanted: Vec<&alertd::sample::Sample> = samples
        .iter()
        .filter(|s| s.host == "web-2" && s.ts >= first + 60_000 && s.ts <= first + 120_000)
        .collect();
    let got: Vec<Value> = text(&narrow.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(got.len(), wanted.len());
    for (line, sample) in got.iter().zip(wanted) {
        assert_eq!(line["ts"], sample.ts);
        let fields: Vec<&String> = line["metrics"].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["cpu.usage", "errors.count"]);
    }
    // A time that is not one says what the forms are.
    let bad = alertd(
        &["export", "--data-dir", data_dir, "--from", "yesterday"],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("\"yesterday\" is not a time"),
        "{}",
        text(&bad.stderr)
    );
    // No store: an error that names the file.
    let empty = tempfile::tempdir().unwrap();
    let none = alertd(
        &["export", "--data-dir", empty.path().to_str().unwrap()],
        None,
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(
        text(&none.stderr).contains("alertd.sqlite"),
        "{}",
        text(&none.stderr)
    );
}

/// `alertd test` on the shipped rule tests: the example rules and one file
/// per README recipe pass.
#[test]
fn the_shipped_rule_tests_pass() {
    let mut args = vec![
        "test".to_string(),
        repo("examples/alertd.test.json").display().to_string(),
    ];
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(repo("examples/recipes"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 7, "a test file per recipe");
    args.extend(recipes.iter().map(|path| path.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = alertd(&args, None);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).trim_end(),
        format!("{} passed, 0 failed", 3 + recipes.len())
    );
}

/// A failing rule test names the test and the time, and shows what was
/// expected against what was found; exit status 1.
#[test]
fn a_failing_rule_test_says_what_it_expected_and_got() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cpu.test.json");
    std::fs::write(
        &file,
        serde_json::json!({
            "config": {"alerting": {"watcherInterval": "10s", "rules": [
                {"name": "cpu", "field": "cpu.usage", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 90, "timeframe": "30s", "for": "20s"}]}},
            "tests": [
                {"name": "passes", "interval": "10s", "series": {"h": {"cpu.usage": "95x5"}},
                 "expect": [{"at": "20s", "open": [{"rule": "cpu", "host": "h", "startTime": "20s"}]}]},
                {"name": "opens too late for this test", "interval": "10s",
                 "series": {"h": {"cpu.usage": "95x5"}},
                 "expect": [{"at": "10s", "open": [{"rule": "cpu", "host": "h", "triggerValue": 95}]}]}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let output = alertd(&["test", file.to_str().unwrap()], None);
    assert_eq!(output.status.code(), Some(1));
    let out = text(&output.stdout);
    assert!(out.contains("FAIL opens too late for this test"), "{out}");
    assert!(out.contains("at 10s:"), "{out}");
    assert!(out.contains("expected open"), "{out}");
    assert!(out.contains("cpu on h (95)"), "{out}");
    assert!(out.contains("(none)"), "{out}");
    assert!(out.trim_end().ends_with("1 passed, 1 failed"), "{out}");
}

/// Every invalid shape of a rule test file gets its precise error, naming
/// the test and the key; exit status 2, nothing run.
#[test]
fn an_invalid_rule_test_file_names_the_test_and_the_key() {
    let config = serde_json::json!({"alerting": {"watcherInterval": "10s", "rules": [
        {"name": "cpu", "field": "cpu.usage", "aggregation": "last",
         "operand": "equalOrMoreThan", "value": 90, "timeframe": "30s"}]}});
    let test = |overrides: serde_json::Value| {
        let mut test = serde_json::json!({"name": "t", "interval": "10s",
            "series": {"h": {"cpu.usage": "1 2"}}, "expect": [{"at": "10s", "open": []}]});
        for (key, value) in overrides.as_object().unwrap() {
            test[key] = value.clone();
        }
        serde_json::json!({"config": config, "tests": [test]})
    };
    let cases = [
        (serde_json::json!({"tests": []}), "config is missing"),
        (
            serde_json::json!({"config": config, "tests": []}),
            "tests is empty",
        ),
        (
            serde_json::json!({"config": "nowhere.json", "tests": [1]}),
            "config \"nowhere.json\"",
        ),
        (
            serde_json::json!({"config": {"alerting": {"rules": [{"name": "x"}]}}, "tests": [1]}),
            "field is missing",
        ),
        (
            test(serde_json::json!({"interval": "0s"})),
            "tests[0] \"t\": interval must be longer than 0",
        ),
        (
            test(serde_json::json!({"intervall": "10s"})),
            "unknown key \"intervall\"",
        ),
        (
            test(serde_json::json!({"series": {"h": {"cpu.usage": "1+2"}}})),
            "series.h.cpu.usage: \"1+2\": a step (a+b) needs a count of steps",
        ),
        (
            test(serde_json::json!({"expect": [{"at": "15s", "open": []}]})),
            "at 15s: not a tick",
        ),
        (
            test(
                serde_json::json!({"expect": [{"at": "10s", "open": [{"rule": "mem", "host": "h"}]}]}),
            ),
            "expect[0].open[0]: rule \"mem\": the configuration has no rule of that name",
        ),
        (
            test(serde_json::json!({"expect": [{"at": "10s"}]})),
            "expect[0]: give either open or transitions",
        ),
        (
            test(
                serde_json::json!({"expect": [{"at": "10s", "transitions": [{"event": "fired", "rule": "cpu", "host": "h"}]}]}),
            ),
            "expect[0].transitions[0]: event: expected \"opened\" or \"resolved\"",
        ),
        (
            test(
                serde_json::json!({"expect": [{"at": "10s", "open": [{"rule": "cpu", "host": "h", "triggerValue": "95"}]}]}),
            ),
            "triggerValue \"95\": expected a number, or null for no data",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (index, (content, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{index}.test.json"));
        std::fs::write(&file, content.to_string()).unwrap();
        let output = alertd(&["test", file.to_str().unwrap()], None);
        let errors = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "case {index}: {errors}");
        assert!(
            errors.contains(message),
            "case {index}: {errors:?} should say {message:?}"
        );
        assert!(
            errors.contains(&format!("case{index}.test.json")),
            "{errors}"
        );
        assert!(text(&output.stdout).is_empty(), "nothing run");
    }
}

/// `alertd replay` prints what rules with options add to the incident: its
/// severity, labels, description and `pendingSince`, and a null trigger
/// value for an incident opened on no data.
#[test]
fn replay_prints_what_rule_options_add() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertd.json");
    std::fs::write(
        &config,
        serde_json::json!({"alerting": {"watcherInterval": "10s", "rules": [
            {"name": "hot", "field": "x", "aggregation": "last", "operand": "equalOrMoreThan",
             "value": 10, "timeframe": "30s", "for": "20s", "severity": "critical",
             "labels": {"team": "web"}, "description": "{{host}} at {{value}}"},
            {"name": "silent", "field": "x", "aggregation": "avg", "operand": "equalOrMoreThan",
             "value": 1000, "timeframe": "20s", "noData": "open"}]}})
        .to_string(),
    )
    .unwrap();
    let samples: String = (0..4)
        .map(|i| {
            format!(
                "{{\"host\":\"h\",\"ts\":{},\"metrics\":{{\"x\":20}}}}\n",
                i * 10_000
            )
        })
        .collect();
    let output = alertd(
        &[
            "replay",
            "--config",
            config.to_str().unwrap(),
            "--samples",
            "-",
            "--until",
            "70000",
        ],
        Some(samples.as_bytes()),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let events: Vec<Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let hot = events
        .iter()
        .find(|e| e["incident"]["ruleName"] == "hot" && e["event"] == "opened")
        .expect("hot opens");
    assert_eq!(hot["at"], 20_000);
    assert_eq!(hot["incident"]["severity"], "critical");
    assert_eq!(hot["incident"]["labels"]["team"], "web");
    assert_eq!(hot["incident"]["description"], "h at 20");
    assert_eq!(hot["incident"]["pendingSince"], "1970-01-01T00:00:00.000Z");
    let silent = events
        .iter()
        .find(|e| e["incident"]["ruleName"] == "silent" && e["event"] == "opened")
        .expect("silent opens on no data");
    assert_eq!(silent["at"], 50_000);
    assert_eq!(silent["incident"]["triggerValue"], Value::Null);
}

#[test]
fn check_prints_targets_grouping_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, notify: serde_json::Value| {
        let path = dir.path().join(name);
        let config = serde_json::json!({
            "alerting": {"enabled": true, "rules": [
                {"name": "r", "field": "x", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 1, "timeframe": "1m"}
            ], "notify": notify}
        });
        std::fs::write(&path, config.to_string()).unwrap();
        path
    };
    let good = write(
        "good.json",
        serde_json::json!([
            {"name": "ops", "type": "webhook", "url": "http://127.0.0.1:1/x", "groupBy": ["rule"]},
            {"name": "chat", "type": "slack", "url": "http://127.0.0.1:1/y",
             "groupBy": [], "groupWait": "0s", "groupInterval": "10m"},
            {"name": "pager", "type": "exec", "path": "/bin/true"}
        ]),
    );
    let output = alertd(&["check", "--config", good.to_str().unwrap()], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for line in [
        "  notify ops (webhook): grouped by rule, waits 30s, then at most every 5m\n",
        "  notify chat (slack): grouped by nothing (one group), waits 0s, then at most every 10m\n",
        "  notify pager (exec): one message per transition\n",
    ] {
        assert!(stdout.contains(line), "{stdout}");
    }
    for (notify, problem) in [
        (
            serde_json::json!([{"type": "exec", "path": "/bin/true", "groupBy": ["rule"]}]),
            "alerting.notify[0]: groupBy: only webhook and slack targets send grouped messages",
        ),
        (
            serde_json::json!([{"type": "slack", "url": "http://a/b", "groupWait": "1s"}]),
            "groupWait needs groupBy",
        ),
        (
            serde_json::json!([{"type": "exec", "path": "/bin/true", "repeatInterval": "1h"}]),
            "repeatInterval: only webhook and slack targets send reminders",
        ),
        (
            serde_json::json!([{"type": "slack", "url": "http://a/b", "repeatInterval": "0s"}]),
            "repeatInterval \"0s\": expected a duration from 1s to 7d",
        ),
        (
            serde_json::json!([{"type": "slack", "url": "http://a/b", "groupBy": [], "groupInterval": "0s"}]),
            "groupInterval \"0s\": expected a duration from 1s to 7d",
        ),
    ] {
        let bad = write("bad.json", notify);
        let output = alertd(&["check", "--config", bad.to_str().unwrap()], None);
        assert_eq!(output.status.code(), Some(2));
        assert!(
            text(&output.stderr).contains(problem),
            "{}",
            text(&output.stderr)
        );
    }
}
