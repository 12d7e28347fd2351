//! `alerting.notify`: notification targets besides the hooks folder.
//!
//! ```json
//! "notify": [
//!   {"name": "ops", "type": "webhook", "url": "https://example.com/alerts",
//!    "headers": {"Authorization": "Bearer ..."}, "secret": "whsec_...",
//!    "rules": ["High CPU"], "events": ["opened"]},
//!   {"type": "slack", "url": "https://hooks.slack.com/services/..."},
//!   {"type": "exec", "path": "/usr/local/bin/page", "args": ["--team", "ops"]}
//! ]
//! ```

use base64::Engine as _;
use serde_json::Value;

use crate::incident::TransitionKind;

/// One configured target.
#[derive(Clone, PartialEq)]
pub struct Target {
    /// Unique among the targets: `name`, or `TYPE-N` (N from 1, in order).
    /// Deliveries are queued under `notify:NAME` ([`crate::notify::TargetId`]).
    pub name: String,
    pub kind: TargetKind,
    /// Only these rules' incidents (by name); all when `None`.
    pub rules: Option<Vec<String>>,
    /// Only these transitions; both when `None`.
    pub events: Option<Vec<TransitionKind>>,
    /// Whether `events` asks for `acknowledged`: told when someone
    /// acknowledges an incident.
    pub acknowledged: bool,
    /// One message per group of transitions (`groupBy`); one per transition
    /// when `None`.
    pub group: Option<Grouping>,
    /// `repeatInterval`: while an incident stays open and unacknowledged,
    /// a reminder this often.
    pub repeat: Option<crate::duration::Millis>,
}

/// How a target groups its transitions (docs/notifications.md, Grouping).
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// What makes a group: `rule`, `host`, `severity` or a label's name;
    /// none at all: one group.
    pub by: Vec<String>,
    /// How long the first transition of a group waits for others.
    pub wait: crate::duration::Millis,
    /// The least time between two messages of a group.
    pub interval: crate::duration::Millis,
}

impl Grouping {
    /// The group of `incident`: each `by` with the incident's value (empty
    /// for a severity or label it has not).
    pub fn group_of(
        &self,
        incident: &crate::incident::Incident,
    ) -> std::collections::BTreeMap<String, String> {
        let details = incident.details.as_deref();
        self.by
            .iter()
            .map(|by| {
                let value = match by.as_str() {
                    "rule" => Some(incident.rule_name.to_string()),
                    "host" => Some(incident.host_name.to_string()),
                    "severity" => details.and_then(|details| details.severity.clone()),
                    label => details.and_then(|details| details.labels.get(label).cloned()),
                };
                (by.clone(), value.unwrap_or_default())
            })
            .collect()
    }
}

/// What a target is.
#[derive(Clone, PartialEq)]
pub enum TargetKind {
    /// A program run with arguments, the incident as JSON on its standard
    /// input and in `INCIDENT_*` variables, like a hook.
    Exec { path: String, args: Vec<String> },
    /// An HTTP POST of a JSON body; signed when it has a secret.
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
        /// The key of a `whsec_` secret (Standard Webhooks).
        secret: Option<Vec<u8>>,
    },
    /// A Slack incoming webhook.
    Slack { url: String },
}

/// Secrets and headers stay out of logs and debug output.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            TargetKind::Exec { path, .. } => format!("exec {path}"),
            TargetKind::Webhook { url, .. } => format!("webhook {}", redacted_url(url)),
            TargetKind::Slack { .. } => "slack".to_string(),
        };
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("kind", &kind)
            .field("rules", &self.rules)
            .field("events", &self.events)
            .field("acknowledged", &self.acknowledged)
            .field("group", &self.group)
            .field("repeat", &self.repeat)
            .finish()
    }
}

/// A URL without its path and query, which may carry a secret.
fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?']).next().unwrap_or(rest);
            format!("{scheme}://{host}/...")
        }
        None => "...".to_string(),
    }
}

impl Target {
    /// The type's name, as written in the file.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TargetKind::Exec { .. } => "exec",
            TargetKind::Webhook { .. } => "webhook",
            TargetKind::Slack { .. } => "slack",
        }
    }
}

/// Reads `alerting.notify` (at `place`) given the rules' names; returns the
/// targets and the problems found, each with where it is.
pub fn targets(place: &str, value: &Value, rules: &[&str]) -> (Vec<Target>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut found: Vec<Target> = Vec::new();
    let Some(items) = value.as_array() else {
        problems.push((
            place.to_string(),
            "expected an array of target objects".to_string(),
        ));
        return (found, problems);
    };
    for (index, item) in items.iter().enumerate() {
        let at = format!("{place}[{index}]");
        match target(item, index, rules) {
            Ok(target) => {
                if found.iter().any(|other| other.name == target.name) {
                    problems.push((at, format!("name {:?} is used twice", target.name)));
                } else {
                    found.push(target);
                }
            }
            Err(message) => problems.push((at, message)),
        }
    }
    (found, problems)
}

fn text(object: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
        Some(other) => Err(format!("{key} {other}: expected a non-empty string")),
    }
}

fn texts(
    object: &serde_json::Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<String>>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(text.clone()),
                other => Err(format!("{key}: {other} is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("{key} {other}: expected an array of strings")),
    }
}

fn http_url(object: &serde_json::Map<String, Value>) -> Result<String, String> {
    let url = text(object, "url")?.ok_or("url is missing")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains(' ') {
        return Err(format!("url {url:?}: expected an http:// or https:// URL"));
    }
    Ok(url)
}

const KEYS: &[&str] = &[
    "name",
    "type",
    "rules",
    "events",
    "url",
    "headers",
    "secret",
    "path",
    "args",
    "groupBy",
    "groupWait",
    "groupInterval",
    "repeatInterval",
];

/// `repeatInterval`: 1 s to 7 days, on webhook and Slack targets.
fn repeat(
    object: &serde_json::Map<String, Value>,
    kind_name: &str,
) -> Result<Option<crate::duration::Millis>, String> {
    let Some(value) = object.get("repeatInterval") else {
        return Ok(None);
    };
    if kind_name == "exec" {
        return Err("repeatInterval: only webhook and slack targets send reminders".to_string());
    }
    match value {
        Value::String(text) => match crate::duration::parse_duration(text) {
            Ok(millis) if (1_000..=7 * 86_400_000).contains(&millis) => Ok(Some(millis)),
            _ => Err(format!(
                "repeatInterval {text:?}: expected a duration from 1s to 7d"
            )),
        },
        other => Err(format!(
            "repeatInterval {other}: expected a duration such as \"4h\""
        )),
    }
}

/// `groupBy`, `groupWait` (30 s by default), `groupInterval` (5 min).
fn grouping(
    object: &serde_json::Map<String, Value>,
    kind_name: &str,
) -> Result<Option<Grouping>, String> {
    let Some(by) = texts(object, "groupBy")? else {
        for key in ["groupWait", "groupInterval"] {
            if object.contains_key(key) {
                return Err(format!("{key} needs groupBy (use [] for one group)"));
            }
        }
        return Ok(None);
    };
    if kind_name == "exec" {
        return Err("groupBy: only webhook and slack targets send grouped messages".to_string());
    }
    if let Some(empty) = by.iter().find(|by| by.trim().is_empty()) {
        return Err(format!("groupBy: {empty:?} is empty"));
    }
    let duration = |key: &str, default: crate::duration::Millis, least: &str| match object.get(key)
    {
        None => Ok(default),
        Some(Value::String(text)) => match crate::duration::parse_duration(text) {
            Ok(millis)
                if millis >= crate::duration::parse_duration(least).unwrap_or(0)
                    && millis <= 7 * 86_400_000 =>
            {
                Ok(millis)
            }
            _ => Err(format!(
                "{key} {text:?}: expected a duration from {least} to 7d"
            )),
        },
        Some(other) => Err(format!(
            "{key} {other}: expected a duration such as \"30s\""
        )),
    };
    Ok(Some(Grouping {
        by,
        wait: duration("groupWait", 30_000, "0s")?,
        interval: duration("groupInterval", 300_000, "1s")?,
    }))
}

fn target(item: &Value, index: usize, rules: &[&str]) -> Result<Target, String> {
    let object = item
        .as_object()
        .ok_or_else(|| format!("{item}: expected a target object"))?;
    if let Some(unknown) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(format!(
            "unknown key {unknown:?} (known: {})",
            KEYS.join(", ")
        ));
    }
    let kind_name = text(object, "type")?.ok_or("type is missing: exec, webhook or slack")?;
    let kind = match kind_name.as_str() {
        "exec" => TargetKind::Exec {
            path: text(object, "path")?.ok_or("path is missing")?,
            args: texts(object, "args")?.unwrap_or_default(),
        },
        "webhook" => {
            let headers = match object.get("headers") {
                None => Vec::new(),
                Some(Value::Object(headers)) => headers
                    .iter()
                    .map(|(name, value)| match value {
                        Value::String(value) => Ok((name.clone(), value.clone())),
                        other => Err(format!("headers.{name} {other}: expected a string")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(format!("headers {other}: expected an object")),
            };
            let secret = match text(object, "secret")? {
                None => None,
                Some(secret) => Some(
                    secret
                        .strip_prefix("whsec_")
                        .and_then(|key| base64::engine::general_purpose::STANDARD.decode(key).ok())
                        .filter(|key| !key.is_empty())
                        .ok_or("secret: expected whsec_ followed by base64 (Standard Webhooks)")?,
                ),
            };
            TargetKind::Webhook {
                url: http_url(object)?,
                headers,
                secret,
            }
        }
        "slack" => TargetKind::Slack {
            url: http_url(object)?,
        },
        other => return Err(format!("type {other:?}: expected exec, webhook or slack")),
    };
    for key in ["path", "args"] {
        if object.contains_key(key) && !matches!(kind, TargetKind::Exec { .. }) {
            return Err(format!("{key} is for exec targets"));
        }
    }
    for key in ["url", "headers", "secret"] {
        let allowed = match kind {
            TargetKind::Webhook { .. } => true,
            TargetKind::Slack { .. } => key == "url",
            TargetKind::Exec { .. } => false,
        };
        if object.contains_key(key) && !allowed {
            return Err(format!("{key} is not for {kind_name} targets"));
        }
    }
    let wanted = texts(object, "rules")?;
    if let Some(unknown) = wanted
        .iter()
        .flatten()
        .find(|name| !rules.contains(&name.as_str()))
    {
        return Err(format!("rules: no rule is named {unknown:?}"));
    }
    let named = texts(object, "events")?;
    let acknowledged = named.iter().flatten().any(|event| event == "acknowledged");
    let events = named
        .map(|events| {
            events
                .iter()
                .filter(|event| *event != "acknowledged")
                .map(|event| match event.as_str() {
                    "opened" => Ok(TransitionKind::Opened),
                    "resolved" => Ok(TransitionKind::Resolved),
                    other => Err(format!(
                        "events: {other:?} is not opened, resolved or acknowledged"
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let name = match text(object, "name")? {
        Some(name) if name.contains([':', '\0']) => {
            return Err(format!("name {name:?}: must not hold ':'"));
        }
        Some(name) => name,
        None => format!("{kind_name}-{}", index + 1),
    };
    let group = grouping(object, &kind_name)?;
    let repeat = repeat(object, &kind_name)?;
    Ok(Target {
        name,
        kind,
        rules: wanted,
        events,
        acknowledged,
        group,
        repeat,
    })
}
