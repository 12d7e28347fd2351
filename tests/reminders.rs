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
    let config = json!({
        "alerting": {
            "enabled": true,
            "watcherInterval": "1s",
            "rules": [
                {"name": "x high", "field": "x", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 10, "timeframe": "2s"}
            ],
            "notify": [
                {"name": "ops", "type": "webhook", "url": url("ops"), "repeatInterval": "2s"},
                {"name": "quiet", "type": "webhook", "url": url("quiet")}
            ]
        },
        "hooks": {"timeout": "5s"}
    });
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
    let config = json!({
        "alerting": {
            "enabled": true,
            "watcherInterval": "1s",
            "rules": [
                {"name": "x high", "field": "x", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 10, "timeframe": "2s"}
            ],
            "notify": [
                {"name": "asks", "type": "webhook", "url": url("asks"),
                 "events": ["opened", "acknowledged", "resolved"]},
                {"name": "only", "type": "slack", "url": url("only"), "events": ["acknowledged"]},
                {"name": "plain", "type": "webhook", "url": url("plain")}
            ]
        },
        "hooks": {"timeout": "5s"}
    });
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
