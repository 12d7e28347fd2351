//! Silences (docs/notifications.md) with the real binary and a real HTTP
//! receiver: what they hold back is recorded and shown, sent when they end
//! if its incident is still open, and never lost.

mod support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::receiver::start_receiver;
use support::{Alertd, now, wait_for};

fn config(receiver: SocketAddr) -> String {
    let url = |name: &str| format!("http://{receiver}/hook/{name}");
    support::x_high_with(json!([
        {"name": "ops", "type": "webhook", "url": url("ops")},
        {"name": "closings", "type": "webhook", "url": url("closings"),
         "events": ["resolved"]}
    ]))
    .to_string()
}

/// The events the receiver got at `name`, as `event host`.
fn events(receiver: &support::receiver::Receiver, name: &str) -> Vec<String> {
    receiver
        .got(name)
        .iter()
        .map(|got| {
            let body: Value = serde_json::from_str(&got.body).unwrap();
            format!(
                "{} {}",
                body["event"].as_str().unwrap(),
                body["incident"]["hostName"].as_str().unwrap()
            )
        })
        .collect()
}

/// Makes a silence through the API; its id.
fn add_silence(alertd: &Alertd, silence: Value) -> String {
    let (status, answer) = alertd.post("/api/v1/silences", "application/json", silence.to_string());
    assert_eq!(status, 201, "{answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn push(alertd: &Alertd, host: &str, x: f64) {
    let (status, body) = alertd.push(json!([{"host": host, "ts": now(), "metrics": {"x": x}}]));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_silence_holds_back_what_it_matches_and_sends_it_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let alertd = Alertd::start(dir.path(), &config(address));
    // Bad silences are refused, saying what is wrong; nothing is stored.
    for (body, problem) in [
        (json!({"matchers": {}, "duration": "1h"}), "none given"),
        (json!({"matchers": {"host": "web-*"}}), "endsAt or duration"),
        (
            json!({"matchers": {"hots": "web-*"}, "duration": "1h"}),
            "unknown field",
        ),
    ] {
        let (status, answer) =
            alertd.post("/api/v1/silences", "application/json", body.to_string());
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(problem), "{answer}");
    }
    let (status, answer) = alertd.post("/api/v1/silences", "application/json", "{");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(alertd.get_json("/api/v1/silences")["silences"], json!([]));

    let (status, answer) = alertd.post(
        "/api/v1/silences",
        "application/json",
        json!({"matchers": {"host": "web-*"}, "duration": "1h",
               "comment": "deploying web", "createdBy": "ana"})
        .to_string(),
    );
    assert_eq!(status, 201, "{answer}");
    let silence: Value = serde_json::from_str(&answer).unwrap();
    let id = silence["id"].as_str().unwrap().to_string();
    assert_eq!(silence["state"], "active");
    assert_eq!(silence["matchers"], json!({"host": "web-*"}));

    // web-1 and web-2 open, are recorded, and are held; db-1 is sent.
    for host in ["web-1", "web-2", "db-1"] {
        push(&alertd, host, 50.0);
    }
    wait_for("db-1's opening", 10, || {
        events(&receiver, "ops")
            .contains(&"opened db-1".to_string())
            .then_some(())
    });
    let active = wait_for("three open incidents", 10, || {
        let active = alertd.active();
        (active.len() == 3).then_some(active)
    });
    let incident_of = |host: &str| {
        active
            .iter()
            .find(|incident| incident["hostName"] == host)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let held = |incident: &str| {
        let view = alertd.get_json(&format!("/api/v1/incidents/{incident}"));
        view["pendingHooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pending| pending["heldBy"] == id.as_str())
            .count()
    };
    wait_for("web-1's opening held", 10, || {
        (held(&incident_of("web-1")) == 1).then_some(())
    });
    wait_for("web-2's opening held", 10, || {
        (held(&incident_of("web-2")) == 1).then_some(())
    });
    // web-2 resolves while silenced: its opening was never sent, so its
    // resolution is not either; "closings" (resolutions only) is silenced
    // too. db-1 resolves: sent to both.
    push(&alertd, "web-2", 1.0);
    push(&alertd, "db-1", 1.0);
    wait_for("db-1's resolution", 10, || {
        let ops = events(&receiver, "ops");
        let closings = events(&receiver, "closings");
        (ops.contains(&"resolved db-1".to_string())
            && closings.contains(&"resolved db-1".to_string()))
        .then_some(())
    });
    let web2 = incident_of("web-2");
    wait_for("web-2 resolved", 10, || {
        let view = alertd.get_json(&format!("/api/v1/incidents/{web2}"));
        view["incident"]["endTime"].is_string().then_some(())
    });
    // Still held: the silence lasts an hour.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(events(&receiver, "ops"), ["opened db-1", "resolved db-1"]);
    assert_eq!(events(&receiver, "closings"), ["resolved db-1"]);

    // Expired early: web-1, still open, is sent; web-2 never is.
    let (status, answer) = alertd.delete(&format!("/api/v1/silences/{id}"));
    assert_eq!(status, 200, "{answer}");
    let expired: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(expired["state"], "expired");
    assert!(expired["expiredAt"].is_i64());
    wait_for("web-1's opening, once the silence ended", 10, || {
        events(&receiver, "ops")
            .contains(&"opened web-1".to_string())
            .then_some(())
    });
    let web2_calls = wait_for("web-2's deliveries done", 10, || {
        let view = alertd.get_json(&format!("/api/v1/incidents/{web2}"));
        view["pendingHooks"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(view["hookCalls"].clone())
    });
    let outcomes: Vec<String> = web2_calls
        .as_array()
        .unwrap()
        .iter()
        .map(|call| format!("{} {} {}", call["target"], call["kind"], call["outcome"]))
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|outcome| outcome.contains("not sent: ")),
        "{outcomes:?}"
    );
    // web-1 resolves: sent, to both targets ("closings" was never told
    // it opened, and no silence matches any more).
    push(&alertd, "web-1", 1.0);
    wait_for("web-1's resolution", 10, || {
        let ops = events(&receiver, "ops");
        (ops.contains(&"resolved web-1".to_string())
            && events(&receiver, "closings").contains(&"resolved web-1".to_string()))
        .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut ops = events(&receiver, "ops");
    ops.sort();
    assert_eq!(
        ops,
        [
            "opened db-1",
            "opened web-1",
            "resolved db-1",
            "resolved web-1"
        ],
        "each once; nothing of web-2"
    );
    // Listed, ended; unknown ones are 404.
    let listed = alertd.get_json("/api/v1/silences");
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["state"], "expired");
    assert_eq!(alertd.delete("/api/v1/silences/nope").0, 404);
    assert_eq!(alertd.get("/api/v1/silences/nope").0, 404);
    assert!(alertd.metric("alertd_deliveries_silenced_total{what=\"not_sent\"}") >= 3.0);
}

/// A resolution whose opening was sent goes out, silenced or not: nobody
/// is left believing an incident is still open.
#[test]
fn a_resolution_is_sent_when_its_opening_was() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let alertd = Alertd::start(dir.path(), &config(address));
    push(&alertd, "web-1", 50.0);
    wait_for("web-1's opening", 10, || {
        (events(&receiver, "ops") == ["opened web-1"]).then_some(())
    });
    let (status, answer) = alertd.post(
        "/api/v1/silences",
        "application/json",
        json!({"matchers": {"rule": "x *"}, "duration": "1h"}).to_string(),
    );
    assert_eq!(status, 201, "{answer}");
    push(&alertd, "web-1", 1.0);
    wait_for("web-1's resolution", 10, || {
        (events(&receiver, "ops") == ["opened web-1", "resolved web-1"]).then_some(())
    });
    // The target that takes only resolutions was never told of the
    // opening: silenced, it is not told of the resolution either.
    let id = alertd.get_json("/api/v1/incidents?from=0")["resolved"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls = wait_for("the closings target's call recorded", 10, || {
        let view = alertd.get_json(&format!("/api/v1/incidents/{id}"));
        let calls = view["hookCalls"].as_array().unwrap().clone();
        calls
            .iter()
            .any(|call| call["target"] == "notify:closings")
            .then_some(calls)
    });
    assert!(events(&receiver, "closings").is_empty());
    let closing = calls
        .iter()
        .find(|call| call["target"] == "notify:closings")
        .unwrap();
    assert!(
        closing["outcome"]
            .as_str()
            .unwrap()
            .starts_with("not sent: silenced by")
    );
}

/// A silence and what it holds are in the store: a SIGKILL and a restart
/// lose neither, and what it held is sent once when it ends.
#[test]
fn a_silence_and_what_it_holds_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let mut alertd = Alertd::start(dir.path(), &config(address));
    let id = add_silence(
        &alertd,
        json!({"matchers": {"host": "web-1"}, "duration": "1h"}),
    );
    push(&alertd, "web-1", 50.0);
    let incident = wait_for("web-1's opening held", 10, || {
        let active = alertd.active();
        let incident = active.first()?["id"].as_str()?.to_string();
        let view = alertd.get_json(&format!("/api/v1/incidents/{incident}"));
        (view["pendingHooks"][0]["heldBy"] == id.as_str()).then_some(incident)
    });
    alertd.signal("KILL");
    alertd.wait_exit(10);
    let alertd = Alertd::start_existing(dir.path());
    let listed = alertd.get_json("/api/v1/silences");
    assert_eq!(listed["silences"][0]["id"], id.as_str());
    assert_eq!(listed["silences"][0]["state"], "active");
    let view = alertd.get_json(&format!("/api/v1/incidents/{incident}"));
    assert_eq!(view["pendingHooks"][0]["heldBy"], id.as_str(), "{view}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        events(&receiver, "ops").is_empty(),
        "still held after the restart"
    );
    assert_eq!(alertd.delete(&format!("/api/v1/silences/{id}")).0, 200);
    wait_for("web-1's opening, once the silence ended", 10, || {
        (events(&receiver, "ops") == ["opened web-1"]).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(events(&receiver, "ops"), ["opened web-1"], "once");
}

/// `alertd silence add|list|expire` against the running service.
#[test]
fn the_command_line_adds_lists_and_expires_silences() {
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, address) = start_receiver();
    let alertd = Alertd::start(dir.path(), &config(address));
    let url = alertd.url("");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_alertd"))
            .arg("silence")
            .args(args)
            .args(["--url", &url])
            .env_remove("ALERTD_TOKEN")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, out, err) = run(&[
        "add",
        "--match",
        "host=web-*",
        "--match",
        "label.team=ops",
        "--duration",
        "2h",
        "--comment",
        "deploy",
        "--by",
        "ana",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    assert!(out.contains("active") && out.contains("deploy"), "{out}");
    let stored = alertd.get_json(&format!("/api/v1/silences/{id}"));
    assert_eq!(
        stored["matchers"],
        json!({"host": "web-*", "labels": {"team": "ops"}})
    );
    assert_eq!(stored["createdBy"], "ana");
    let (code, out, _) = run(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&id), "{out}");
    let (code, out, _) = run(&["expire", &id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("expired"), "{out}");
    // Bad input: said, exit 2, nothing stored.
    let (code, _, err) = run(&["add", "--match", "hostweb"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("expected NAME=VALUE"), "{err}");
    let (code, _, err) = run(&["add", "--match", "host=x", "--duration", "0s"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("HTTP 400") && err.contains("duration"),
        "{err}"
    );
    let (code, _, err) = run(&["expire", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("404"), "{err}");
    assert_eq!(
        alertd.get_json("/api/v1/silences")["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A maintenance window that starts a few seconds after the service does
/// (in a time zone half an hour off UTC's hours; the service's clock set by
/// libfaketime just before a whole minute): what opens before it is sent,
/// what opens inside it is held, and sent once it ends.
#[test]
fn a_maintenance_window_holds_what_opens_inside_it() {
    if !support::programs::needed("faketime") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    // The service's clock: 12 s before the next whole minute, B.
    let real = now();
    let boundary = (real / 60_000 + 2) * 60_000;
    let skew = std::cell::Cell::new(boundary - 12_000 - real);
    let offset = dir.path().join("offset");
    let write_skew =
        |skew: i64| std::fs::write(&offset, format!("{:+}\n", skew as f64 / 1000.0)).unwrap();
    write_skew(skew.get());
    let zone = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let local = |at: i64| {
        let zoned = jiff::Timestamp::from_millisecond(at)
            .unwrap()
            .to_zoned(zone.clone());
        (
            format!("{:02}:{:02}", zoned.hour(), zoned.minute()),
            zoned.weekday(),
        )
    };
    let (start, weekday) = local(boundary);
    let (end, _) = local(boundary + 60_000);
    let day =
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][weekday.to_monday_zero_offset() as usize];
    let mut config: Value = serde_json::from_str(&config(address)).unwrap();
    config["alerting"]["maintenance"] = json!([{
        "name": "deploys", "weekdays": [day], "times": [format!("{start}-{end}")],
        "timezone": "Asia/Kolkata", "matchers": {"host": "web-*"}
    }]);
    std::fs::write(dir.path().join("alertd.json"), config.to_string()).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_alertd"))
        .args(["check", "--config"])
        .arg(dir.path().join("alertd.json"))
        .env("LD_PRELOAD", support::FAKETIME_LIBRARY)
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .output()
        .unwrap();
    let said = String::from_utf8(check.stdout).unwrap();
    assert!(
        said.contains(&format!(
            "maintenance deploys: {day} {start}-{end} Asia/Kolkata, silencing {{\"host\":\"web-*\"}}; next starts {}",
            alertd::incident::rfc3339(boundary)
        )),
        "{said}"
    );
    let alertd = Alertd::start_node_with_clock(dir.path(), "node-under-test", &offset);
    let fake_now = || now() + skew.get();
    let push_at = |host: &str, x: f64| {
        let samples = json!([{"host": host, "ts": fake_now(), "metrics": {"x": x}}]);
        let (status, body) = alertd.push(samples);
        assert_eq!(status, 200, "{body}");
    };
    // Before the window: sent.
    push_at("web-1", 50.0);
    wait_for("web-1's opening, before the window", 10, || {
        events(&receiver, "ops")
            .contains(&"opened web-1".to_string())
            .then_some(())
    });
    assert!(fake_now() < boundary, "the test was too slow to start");
    // Inside it: held, and the pages say the window is on.
    wait_for("the window to start", 15, || {
        (fake_now() >= boundary + 500).then_some(())
    });
    push_at("web-2", 50.0);
    wait_for("web-2's opening held", 10, || {
        let active = alertd.active();
        let web2 = active
            .iter()
            .find(|incident| incident["hostName"] == "web-2")?;
        let id = web2["id"].as_str()?;
        let view = alertd.get_json(&format!("/api/v1/incidents/{id}"));
        (view["pendingHooks"][0]["heldBy"] == "maintenance:deploys").then_some(())
    });
    let (_, page) = alertd.get("/");
    assert!(
        page.contains("Maintenance window &quot;deploys&quot; is on until"),
        "{page}"
    );
    // Past its end (the clock moved on a minute): sent, once a transition
    // wakes the dispatcher (db-1 opening).
    skew.set(skew.get() + 60_000);
    write_skew(skew.get());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    push_at("db-1", 50.0);
    wait_for("web-2's opening, once the window ended", 15, || {
        let ops = events(&receiver, "ops");
        (ops.contains(&"opened web-2".to_string()) && ops.contains(&"opened db-1".to_string()))
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    let mut ops = events(&receiver, "ops");
    ops.sort();
    assert_eq!(ops, ["opened db-1", "opened web-1", "opened web-2"]);
}

/// The silences page: pre-filled from a link, makes a silence from its
/// form, lists it, ends it with its button; bad input is said.
#[test]
fn the_silences_page_makes_lists_and_ends_silences() {
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, address) = start_receiver();
    let alertd = Alertd::start(dir.path(), &config(address));
    let (status, page) = alertd.get("/silences?rule=x+high&host=web-1");
    assert_eq!(status, 200);
    assert!(page.contains(r#"name="rule" value="x high""#), "{page}");
    assert!(page.contains(r#"name="host" value="web-1""#), "{page}");
    assert!(page.contains("No silence."));
    let form = "rule=x+high&host=web-*&severity=&label=team%3Dops&duration=30m&comment=deploy&created_by=ana";
    let (status, page) = alertd.post("/silences", "application/x-www-form-urlencoded", form);
    assert!(status == 200 || status == 303, "{status} {page}");
    let listed = alertd.get_json("/api/v1/silences");
    let silence = &listed["silences"][0];
    assert_eq!(
        silence["matchers"],
        json!({"rule": "x high", "host": "web-*", "labels": {"team": "ops"}})
    );
    assert_eq!(silence["comment"], "deploy");
    assert_eq!(
        silence["endsAt"].as_i64().unwrap() - silence["startsAt"].as_i64().unwrap(),
        1_800_000
    );
    let id = silence["id"].as_str().unwrap().to_string();
    let (_, page) = alertd.get("/silences");
    assert!(
        page.contains(&format!(r#"action="/silences/{id}/expire""#)),
        "{page}"
    );
    let (status, _) = alertd.post(
        &format!("/silences/{id}/expire"),
        "application/x-www-form-urlencoded",
        "",
    );
    assert!(status == 200 || status == 303, "{status}");
    assert_eq!(
        alertd.get_json("/api/v1/silences")["silences"][0]["state"],
        "expired"
    );
    // Bad input: the reason, nothing made.
    let (status, page) = alertd.post(
        "/silences",
        "application/x-www-form-urlencoded",
        "duration=1h",
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("none given"), "{page}");
    let (status, page) = alertd.post(
        "/silences",
        "application/x-www-form-urlencoded",
        "host=a&label=team",
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("expected NAME=VALUE"), "{page}");
    assert_eq!(
        alertd.get_json("/api/v1/silences")["silences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// An opening a silence held, then sent and failing, is tried again as any
/// delivery is when its incident resolves meanwhile: once called, it is no
/// longer "held", and its resolution follows it.
#[test]
fn a_held_opening_that_fails_once_sent_is_tried_again_and_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    receiver.plan("ops", &[(503, None), (503, None)]);
    let alertd = Alertd::start(dir.path(), &config(address));
    let id = add_silence(
        &alertd,
        json!({"matchers": {"host": "web-1"}, "duration": "1h"}),
    );
    push(&alertd, "web-1", 50.0);
    wait_for("web-1's opening held", 10, || {
        let active = alertd.active();
        let incident = active.first()?["id"].as_str()?.to_string();
        let view = alertd.get_json(&format!("/api/v1/incidents/{incident}"));
        (view["pendingHooks"][0]["heldBy"] == id.as_str()).then_some(())
    });
    assert_eq!(alertd.delete(&format!("/api/v1/silences/{id}")).0, 200);
    wait_for("the first try of web-1's opening", 10, || {
        (!receiver.got("ops").is_empty()).then_some(())
    });
    push(&alertd, "web-1", 1.0);
    wait_for("web-1's resolution, after its opening", 20, || {
        events(&receiver, "ops")
            .contains(&"resolved web-1".to_string())
            .then_some(())
    });
    let ops = events(&receiver, "ops");
    assert_eq!(
        ops,
        [
            "opened web-1",
            "opened web-1",
            "opened web-1",
            "resolved web-1"
        ],
        "two failed tries, then the opening, then the resolution"
    );
}

/// `POST /api/v1/incidents/{id}/ack` and the incident page's button: who
/// handles an open incident, the first one kept; bad input said.
#[test]
fn an_open_incident_is_acknowledged_through_the_api_or_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_receiver, address) = start_receiver();
    let alertd = Alertd::start(dir.path(), &config(address));
    push(&alertd, "web-1", 50.0);
    push(&alertd, "web-2", 50.0);
    let active = wait_for("two open incidents", 10, || {
        let active = alertd.active();
        (active.len() == 2).then_some(active)
    });
    let id_of = |host: &str| {
        active
            .iter()
            .find(|incident| incident["hostName"] == host)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (web1, web2) = (id_of("web-1"), id_of("web-2"));
    let ack = |id: &str, body: Value| {
        alertd.post(
            &format!("/api/v1/incidents/{id}/ack"),
            "application/json",
            body.to_string(),
        )
    };
    let (status, answer) = ack(&web1, json!({"by": "ana", "comment": "on it"}));
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["acknowledged"]["by"], "ana");
    let (status, answer) = ack(&web1, json!({"by": "bob"}));
    assert_eq!(status, 200);
    assert!(answer.contains("\"ana\""), "the first one stays: {answer}");
    let view = alertd.get_json(&format!("/api/v1/incidents/{web1}"));
    assert_eq!(view["acknowledged"]["comment"], "on it");
    for (id, body, status) in [
        ("nope", json!({"by": "ana"}), 404),
        (web2.as_str(), json!({"by": " "}), 400),
        (web2.as_str(), json!({"who": "ana"}), 400),
    ] {
        assert_eq!(ack(id, body.clone()).0, status, "{id} {body}");
    }
    // The page: a form while nobody did, then who did.
    let (_, page) = alertd.get(&format!("/incidents/{web2}"));
    assert!(
        page.contains(&format!(r#"action="/incidents/{web2}/ack""#)),
        "{page}"
    );
    let (status, _) = alertd.post(
        &format!("/incidents/{web2}/ack"),
        "application/x-www-form-urlencoded",
        "by=carl&comment=looking",
    );
    assert!(status == 200 || status == 303, "{status}");
    let (_, page) = alertd.get(&format!("/incidents/{web2}"));
    assert!(
        page.contains("<b>carl</b>") && page.contains("looking"),
        "{page}"
    );
    // Resolved: nothing to acknowledge.
    push(&alertd, "web-1", 1.0);
    wait_for("web-1 resolved", 10, || {
        let view = alertd.get_json(&format!("/api/v1/incidents/{web1}"));
        view["incident"]["endTime"].is_string().then_some(())
    });
    let resolved_id = web1.clone();
    let (status, answer) = alertd.post(
        &format!("/api/v1/incidents/{resolved_id}/ack"),
        "application/json",
        json!({"by": "dan"}).to_string(),
    );
    assert_eq!(status, 409, "{answer}");
}
