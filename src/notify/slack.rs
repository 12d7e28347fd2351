//! Slack: a readable message to an incoming webhook.

use serde_json::json;

use super::http::send;
use super::{Calling, GroupNotification, Notification, Notifier};
use crate::duration::HumanDuration;
use crate::incident::{JsonNumber, TransitionKind, rfc3339};
use crate::store::Note;

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
        TransitionKind::Opened if event.note.is_some_and(|(note, _)| note == Note::Reminder) => {
            format!(
                ":bell: *Still open*{severity}: {} on {}, not acknowledged",
                incident.rule_name, incident.host_name
            )
        }
        TransitionKind::Opened if event.note.is_some() => format!(
            ":eyes: *Acknowledged*{severity}: {} on {}",
            incident.rule_name, incident.host_name
        ),
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
        let mut links = format!("<{link}|Open the incident>");
        // Someone to handle it: acknowledging stops the reminders.
        if event.kind == TransitionKind::Opened
            && event.note.is_none_or(|(note, _)| note == Note::Reminder)
        {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as i64);
            if let Some(ack) = notification.ack_link(now) {
                links.push_str(&format!(" · <{ack}|Acknowledge>"));
            }
        }
        lines.push(links);
    }
    lines.join("\n")
}

/// The most hosts a group's message names; the rest are counted.
const HOSTS_NAMED: usize = 7;

/// A group's message: `High CPU: 37 opened, 2 resolved; 37 firing on
/// web-1, web-2, ... (+30)`, and a link to the incidents page of the group.
pub fn group_text(group: &GroupNotification<'_>) -> String {
    let (opened, resolved) = group.counts();
    let mut rules: Vec<&str> = (group.events.iter())
        .map(|event| &*event.incident.rule_name)
        .chain(group.firing.iter().map(|incident| &*incident.rule_name))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let what = match rules.as_slice() {
        [rule] => rule.to_string(),
        rules => format!("{} rules", rules.len()),
    };
    let mut done = Vec::new();
    if opened > 0 {
        done.push(format!("{opened} opened"));
    }
    if resolved > 0 {
        done.push(format!("{resolved} resolved"));
    }
    let mut hosts: Vec<&str> = group.firing.iter().map(|i| &*i.host_name).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let firing = match hosts.len() {
        0 => "nothing firing".to_string(),
        count => {
            let mut named = hosts[..count.min(HOSTS_NAMED)].join(", ");
            if count > HOSTS_NAMED {
                named.push_str(&format!(", ... (+{})", count - HOSTS_NAMED));
            }
            let host_word = if count == 1 { "host" } else { "hosts" };
            format!("firing on {count} {host_word}: {named}")
        }
    };
    let icon = if group.firing.is_empty() {
        ":white_check_mark:"
    } else {
        ":rotating_light:"
    };
    let mut lines = vec![match group.reminder {
        true => format!(":bell: *Still open*: *{what}*, not acknowledged; {firing}"),
        false => format!("{icon} *{what}*: {}; {firing}", done.join(", ")),
    }];
    if let Some(link) = group.link() {
        lines.push(format!("<{link}|Open the incidents>"));
    }
    lines.join("\n")
}

impl SlackNotifier {
    async fn post(&self, text: String, timeout: std::time::Duration) -> super::Called {
        let payload = json!({ "text": text });
        let request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string());
        send(request, timeout).await
    }
}

impl Notifier for SlackNotifier {
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a> {
        Box::pin(async move { self.post(text(notification), notification.timeout).await })
    }

    fn notify_group<'a>(&'a self, group: &'a GroupNotification<'a>) -> Calling<'a> {
        Box::pin(async move { self.post(group_text(group), group.timeout).await })
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
                note: None,
            },
            rule: None,
            public_url: None,
            token: None,
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
