//! Reminders (docs/notifications.md) with the real binary and a real HTTP
//! receiver: every `repeatInterval` while an incident is open and nobody
//! acknowledged it; an acknowledgement stops them, and the resolution is
//! still sent.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::receiver::start_receiver;
use support::{Alertd, now, wait_for};

fn events(receiver: &support::receiver::Receiver, name: &str) -> Vec<(String, Value)> {
    receiver
        .got(name)
        .iter()
        .map(|got| {
            let body: Value = serde_json::from_str(&got.body).unwrap();
            let id = got.headers.get("webhook-id").cloned().unwrap_or_default();
            (body["event"].as_str().unwrap_or("").to_string(), json!(id))
        })
        .collect()
}

#[test]
fn reminders_come_until_an_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let url = |name: &str| format!("http://{address}/hook/{name}");
    let config = support::x_high_with(json!([
        {"name": "ops", "type": "webhook", "url": url("ops"), "repeatInterval": "2s"},
        {"name": "quiet", "type": "webhook", "url": url("quiet")}
    ]));
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let push = |x: f64| {
        let (status, body) =
            alertd.push(json!([{"host": "web-1", "ts": now(), "metrics": {"x": x}}]));
        assert_eq!(status, 200, "{body}");
    };
    push(50.0);
    let reminded = wait_for("two reminders", 15, || {
        let got = events(&receiver, "ops");
        (got.iter().filter(|(event, _)| event == "reminder").count() >= 2).then_some(got)
    });
    assert_eq!(reminded[0].0, "opened");
    let ids: Vec<&Value> = reminded.iter().map(|(_, id)| id).collect();
    let mut unique = ids.clone();
    unique.sort_by_key(|id| id.to_string());
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "each reminder its own id: {ids:?}");
    let body: Value = serde_json::from_str(&receiver.got("ops")[1].body).unwrap();
    assert_eq!(body["type"], "incident.reminder");
    assert!(
        receiver.got("quiet").len() == 1,
        "no repeatInterval: no reminder"
    );
    // Acknowledged: no more.
    let id = alertd.active()[0]["id"].as_str().unwrap().to_string();
    let (status, answer) = alertd.post(
        &format!("/api/v1/incidents/{id}/ack"),
        "application/json",
        json!({"by": "ana"}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    let after_ack = receiver.got("ops").len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(receiver.got("ops").len(), after_ack, "reminders stopped");
    // The resolution still goes out.
    push(1.0);
    wait_for("the resolution", 10, || {
        events(&receiver, "ops")
            .iter()
            .any(|(event, _)| event == "resolved")
            .then_some(())
    });
}

/// A target whose `events` ask for `acknowledged` is told of an
/// acknowledgement; the others are not.
#[test]
fn an_acknowledgement_is_told_to_the_targets_that_ask() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let url = |name: &str| format!("http://{address}/hook/{name}");
    let config = support::x_high_with(json!([
        {"name": "asks", "type": "webhook", "url": url("asks"),
         "events": ["opened", "acknowledged", "resolved"]},
        {"name": "only", "type": "slack", "url": url("only"), "events": ["acknowledged"]},
        {"name": "plain", "type": "webhook", "url": url("plain")}
    ]));
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let (status, body) = alertd.push(json!([{"host": "web-1", "ts": now(), "metrics": {"x": 50}}]));
    assert_eq!(status, 200, "{body}");
    let id = wait_for("web-1's opening", 10, || {
        let got = receiver.got("asks");
        let body: Value = serde_json::from_str(&got.first()?.body).ok()?;
        Some(body["incident"]["id"].as_str()?.to_string())
    });
    let (status, answer) = alertd.post(
        &format!("/api/v1/incidents/{id}/ack"),
        "application/json",
        json!({"by": "ana", "comment": "on it"}).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let acknowledged = wait_for("the acknowledged event", 10, || {
        let got = receiver.got("asks");
        (got.len() == 2).then(|| got[1].clone())
    });
    let body: Value = serde_json::from_str(&acknowledged.body).unwrap();
    assert_eq!(body["type"], "incident.acknowledged");
    assert_eq!(
        acknowledged.headers["webhook-id"],
        format!("{id}.acknowledged")
    );
    let slack = wait_for("the Slack note", 10, || {
        receiver.got("only").first().cloned()
    });
    assert!(
        slack
            .body
            .contains(":eyes: *Acknowledged*: x high on web-1"),
        "{}",
        slack.body
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(receiver.got("plain").len(), 1, "the opening only");
    assert_eq!(receiver.got("only").len(), 1, "the acknowledgement only");
}

/// The Slack message's acknowledgement link: signed with the server's
/// token, it works without signing in, by a button (opening it changes
/// nothing); a tampered or expired link is refused.
#[test]
fn a_message_s_signed_link_acknowledges_without_signing_in() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let mut config = support::x_high_with(json!([
        {"name": "chat", "type": "slack", "url": format!("http://{address}/hook/chat")}
    ]));
    config["server"] = json!({
        "token": "a-token-only-this-test-knows-1234",
        "publicUrl": "https://alerts.example.com/"
    });
    let mut alertd = Alertd::start(dir.path(), &config.to_string());
    alertd.token = Some("a-token-only-this-test-knows-1234".to_string());
    let (status, body) = alertd.push(json!([{"host": "web-1", "ts": now(), "metrics": {"x": 50}}]));
    assert_eq!(status, 200, "{body}");
    let text = wait_for("the Slack message", 10, || {
        let got = receiver.got("chat");
        let body: Value = serde_json::from_str(&got.first()?.body).ok()?;
        Some(body["text"].as_str()?.to_string())
    });
    let link = text
        .split("<https://alerts.example.com/ack/")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .unwrap_or_else(|| panic!("no acknowledgement link in {text}"));
    let path = format!("/ack/{link}");
    let id = link.split('?').next().unwrap().to_string();
    // Without the token: the page, then the button.
    let anonymous = |method: &str, path: &str, body: &str| {
        let agent = &alertd.agent;
        let response = match method {
            "GET" => agent.get(alertd.url(path)).call(),
            _ => agent
                .post(alertd.url(path))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(body),
        };
        let mut response = response.unwrap();
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    };
    let (status, page) = anonymous("GET", &path, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("x high on web-1"), "{page}");
    assert!(alertd.get_json(&format!("/api/v1/incidents/{id}"))["acknowledged"].is_null());
    let tampered = path.replace("sig=", "sig=0");
    assert_eq!(anonymous("POST", &tampered, "by=eve").0, 403);
    let expired = path.replace("expires=", "expires=1");
    assert_eq!(
        anonymous("GET", &expired, "").0,
        403,
        "another time is another signature"
    );
    let (status, page) = anonymous("POST", &path, "by=ana");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Acknowledged by <b>ana</b>"), "{page}");
    let view = alertd.get_json(&format!("/api/v1/incidents/{id}"));
    assert_eq!(view["acknowledged"]["by"], "ana");
    // The API still wants the token.
    let refused = alertd
        .agent
        .post(alertd.url(&format!("/api/v1/incidents/{id}/ack")))
        .header("Content-Type", "application/json")
        .send(r#"{"by": "eve"}"#)
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
}

/// A grouped target with `repeatInterval` is reminded per group, after
/// the group's first message, until its incidents are acknowledged.
#[test]
fn a_group_is_reminded_until_its_incidents_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let config = support::x_high_with(json!([
        {"name": "grouped", "type": "webhook", "url": format!("http://{address}/hook/grouped"),
         "groupBy": ["rule"], "groupWait": "0s", "groupInterval": "1h",
         "repeatInterval": "2s"}
    ]));
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let at = now();
    let samples: Vec<Value> = (0..3)
        .map(|host| json!({"host": format!("web-{host}"), "ts": at, "metrics": {"x": 50}}))
        .collect();
    let (status, body) = alertd.push(Value::Array(samples));
    assert_eq!(status, 200, "{body}");
    let bodies = |receiver: &support::receiver::Receiver| -> Vec<Value> {
        receiver
            .got("grouped")
            .iter()
            .map(|got| serde_json::from_str(&got.body).unwrap())
            .collect()
    };
    let got = wait_for("the group's message and two reminders", 20, || {
        let got = bodies(&receiver);
        (got.iter()
            .filter(|body| body["type"] == "group.reminder")
            .count()
            >= 2)
            .then_some(got)
    });
    assert_eq!(got[0]["type"], "group");
    let reminder = got
        .iter()
        .find(|body| body["type"] == "group.reminder")
        .unwrap();
    assert_eq!(reminder["counts"]["firing"], 3);
    assert_eq!(reminder["events"], json!([]));
    for incident in alertd.active() {
        let id = incident["id"].as_str().unwrap();
        let (status, answer) = alertd.post(
            &format!("/api/v1/incidents/{id}/ack"),
            "application/json",
            json!({"by": "ana"}).to_string(),
        );
        assert_eq!(status, 200, "{answer}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = receiver.got("grouped").len();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        receiver.got("grouped").len(),
        after,
        "no reminder once acknowledged"
    );
}
