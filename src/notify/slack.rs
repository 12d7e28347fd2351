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
    let value = if incident.opened_on_no_data() {
        "no data".to_string()
    } else {
        serde_json::to_string(&JsonNumber(incident.trigger_value)).unwrap_or_default()
    };
    let severity = incident
        .severity()
        .map(|severity| format!(" [{severity}]"))
        .unwrap_or_default();
    let mut lines = vec![match event.kind {
        TransitionKind::Opened => format!(
            ":rotating_light: *Opened*{severity}: {} on {}",
            incident.rule_name, incident.host_name
        ),
        TransitionKind::Resolved => format!(
            ":white_check_mark: *Resolved*{severity}: {} on {}",
            incident.rule_name, incident.host_name
        ),
    }];
    if let Some(description) = incident
        .details
        .as_ref()
        .and_then(|details| details.description.as_deref())
    {
        lines.push(description.to_string());
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::incident::{Incident, IncidentDetails};
    use crate::notify::Event;

    #[test]
    fn an_incident_on_no_data_with_a_severity_says_both() {
        let incident = Incident {
            id: "i".into(),
            rule_name: "silent".into(),
            host_name: "web-1".into(),
            start_time: 1_795_428_010_000,
            end_time: None,
            trigger_value: f64::NAN,
            resolution: None,
            details: Some(Arc::new(IncidentDetails {
                severity: Some("critical".into()),
                description: Some("web-1 sent nothing".into()),
                ..IncidentDetails::default()
            })),
        };
        let text = text(&Notification {
            event: Event {
                incident: &incident,
                kind: TransitionKind::Opened,
            },
            rule: None,
            public_url: None,
            timeout: Duration::from_secs(1),
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            ":rotating_light: *Opened* [critical]: silent on web-1"
        );
        assert_eq!(lines[1], "web-1 sent nothing");
        assert_eq!(lines[2], "Value no data");
    }
}
