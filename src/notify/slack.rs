//! Slack: a readable message to an incoming webhook.

use serde_json::json;

use super::http::send;
use super::{Calling, Notification, Notifier};
use crate::duration::HumanDuration;
use crate::incident::{JsonNumber, TransitionKind, rfc3339};

pub struct SlackNotifier {
    pub client: reqwest::Client,
    pub url: String,
}

/// The message: what happened to which rule on which host, the value
/// against the threshold, when, how long, and a link to the incident.
pub fn text(notification: &Notification<'_>) -> String {
    let event = notification.event;
    let incident = &event.incident;
    let value = serde_json::to_string(&JsonNumber(incident.trigger_value)).unwrap_or_default();
    let mut lines = vec![match event.kind {
        TransitionKind::Opened => format!(
            ":rotating_light: *Opened*: {} on {}",
            incident.rule_name, incident.host_name
        ),
        TransitionKind::Resolved => format!(
            ":white_check_mark: *Resolved*: {} on {}",
            incident.rule_name, incident.host_name
        ),
    }];
    lines.push(match notification.rule {
        Some(rule) => format!(
            "Value {value} ({} of {} over {}; threshold {} {})",
            rule.aggregation.as_str(),
            rule.field,
            HumanDuration(rule.timeframe),
            match rule.operand {
                crate::config::Operand::EqualOrMoreThan => ">=",
                crate::config::Operand::EqualOrLessThan => "<=",
            },
            serde_json::to_string(&JsonNumber(rule.threshold)).unwrap_or_default(),
        ),
        None => format!("Value {value}"),
    });
    let mut when = format!("Started {}", rfc3339(incident.start_time));
    if let Some(end) = incident.end_time {
        when.push_str(&format!(
            ", ended {} after {}",
            rfc3339(end),
            HumanDuration(end - incident.start_time)
        ));
    }
    lines.push(when);
    if let Some(link) = notification.link() {
        lines.push(format!("<{link}|Open the incident>"));
    }
    lines.join("\n")
}

impl Notifier for SlackNotifier {
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a> {
        Box::pin(async move {
            let payload = json!({ "text": text(notification) });
            let request = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(payload.to_string());
            send(request, notification.timeout).await
        })
    }
}
