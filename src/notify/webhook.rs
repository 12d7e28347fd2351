//! Webhooks: the event as JSON, POSTed to a URL, signed as Standard
//! Webhooks (<https://www.standardwebhooks.com/>) do when the target has a
//! secret.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde_json::json;

use super::http::send;
use super::{Calling, GroupNotification, Notification, Notifier};

pub struct WebhookNotifier {
    pub client: reqwest::Client,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The key of the `whsec_` secret.
    pub secret: Option<Vec<u8>>,
}

/// The body: the event, the incident (docs/engine.md, The incident object),
/// its rule as this node has it (as `GET /api/v1/rules` shows a rule), and a
/// link when the public URL is known.
pub fn body(notification: &Notification<'_>) -> serde_json::Value {
    let event = notification.event;
    let name = match event.note {
        Some((note, _)) => note.as_str(),
        None => event.kind.as_str(),
    };
    json!({
        "type": format!("incident.{name}"),
        "event": name,
        "incident": event.incident,
        "rule": notification.rule.map(crate::view::RuleView::from),
        "url": notification.link(),
    })
}

/// The message id: the same for every try of one delivery, on any node,
/// so that a receiver can drop what it saw already.
pub fn message_id(notification: &Notification<'_>) -> String {
    let event = notification.event;
    match event.note {
        Some((crate::store::Note::Reminder, due)) => {
            format!("{}.reminder.{due}", event.incident.id)
        }
        Some((note, _)) => format!("{}.{}", event.incident.id, note.as_str()),
        None => format!("{}.{}", event.incident.id, event.kind.as_str()),
    }
}

/// A group's body: the group, its transitions since the last message
/// (each as `{"event", "incident"}`), its incidents open now, the counts,
/// and a link to the incidents page of the group.
pub fn group_body(group: &GroupNotification<'_>) -> serde_json::Value {
    let (opened, resolved) = group.counts();
    let events: Vec<serde_json::Value> = (group.events.iter())
        .map(|event| json!({"event": event.kind.as_str(), "incident": event.incident}))
        .collect();
    json!({
        "type": if group.reminder { "group.reminder" } else { "group" },
        "groupKey": group.key,
        "group": group.group,
        "events": events,
        "firing": group.firing,
        "counts": {"opened": opened, "resolved": resolved, "firing": group.firing.len()},
        "url": group.link(),
    })
}

/// `v1,BASE64(HMAC-SHA256(key, "ID.TIMESTAMP.BODY"))`.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let signed = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(signed)
    )
}

impl WebhookNotifier {
    /// POSTs `payload` as message `id`, signed when the target has a secret.
    async fn post(
        &self,
        id: &str,
        payload: Vec<u8>,
        timeout: std::time::Duration,
    ) -> super::Called {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64);
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &self.secret {
            request = request.header("webhook-signature", signature(key, id, timestamp, &payload));
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        send(request.body(payload), timeout).await
    }
}

impl Notifier for WebhookNotifier {
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&body(notification)).unwrap_or_default();
            self.post(&message_id(notification), payload, notification.timeout)
                .await
        })
    }

    fn notify_group<'a>(&'a self, group: &'a GroupNotification<'a>) -> Calling<'a> {
        Box::pin(async move {
            let payload = serde_json::to_vec(&group_body(group)).unwrap_or_default();
            self.post(&group.id, payload, group.timeout).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification and its
        // reference libraries.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let signed = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
