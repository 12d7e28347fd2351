//! Incidents (docs/engine.md, The incident object) and the transitions that open and resolve them.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::duration::Millis;

/// An open or resolved alarm of one rule on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: String,
    pub rule_name: Arc<str>,
    pub host_name: Arc<str>,
    pub start_time: Millis,
    /// `None` while the incident is open.
    pub end_time: Option<Millis>,
    /// The aggregate when the incident opened; never changes.
    pub trigger_value: f64,
    /// Why it was resolved, when not by its rule: `store lost` for an
    /// incident that was open when a cluster's Redis lost its data.
    pub resolution: Option<Arc<str>>,
    /// What a rule with options gives its incidents (`severity`, `labels`,
    /// the rendered `description`, `pendingSince`); `None` for the others.
    pub details: Option<Arc<IncidentDetails>>,
}

/// What an incident carries from a rule with options (docs/engine.md, Rule
/// options), fixed when it opens.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IncidentDetails {
    pub severity: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The rule's `description`, its placeholders replaced.
    pub description: Option<String>,
    /// The tick at which its condition started to hold (rules with `for`).
    pub pending_since: Option<Millis>,
}

impl IncidentDetails {
    /// Whether there is nothing to carry.
    pub fn is_empty(&self) -> bool {
        self.severity.is_none()
            && self.labels.is_empty()
            && self.description.is_none()
            && self.pending_since.is_none()
    }
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.end_time.is_none()
    }

    /// Whether it opened on no data (`noData: "open"`): it has no trigger value.
    pub fn opened_on_no_data(&self) -> bool {
        self.trigger_value.is_nan()
    }

    /// Its severity, if its rule gives one.
    pub fn severity(&self) -> Option<&str> {
        self.details.as_ref()?.severity.as_deref()
    }
}

/// The incident's JSON object (docs/engine.md, The incident object): RFC 3339
/// times with milliseconds, and `endTime` absent (not null) while open.
impl Serialize for Incident {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("ruleName", &*self.rule_name)?;
        map.serialize_entry("hostName", &*self.host_name)?;
        map.serialize_entry("startTime", &rfc3339(self.start_time))?;
        if let Some(end) = self.end_time {
            map.serialize_entry("endTime", &rfc3339(end))?;
        }
        map.serialize_entry("triggerValue", &JsonNumber(self.trigger_value))?;
        if let Some(resolution) = &self.resolution {
            map.serialize_entry("resolution", &**resolution)?;
        }
        if let Some(details) = &self.details {
            if let Some(severity) = &details.severity {
                map.serialize_entry("severity", severity)?;
            }
            if !details.labels.is_empty() {
                map.serialize_entry("labels", &details.labels)?;
            }
            if let Some(description) = &details.description {
                map.serialize_entry("description", description)?;
            }
            if let Some(since) = details.pending_since {
                map.serialize_entry("pendingSince", &rfc3339(since))?;
            }
        }
        map.end()
    }
}

/// `2026-11-23T10:00:10.000Z`
///
/// Times outside 1970..=9999, which RFC 3339 cannot write, are clamped to
/// its first and last millisecond.
pub fn rfc3339(at: Millis) -> String {
    let at = at.clamp(0, crate::sample::MAX_TIMESTAMP);
    let time = UNIX_EPOCH + Duration::from_millis(at as u64);
    humantime::format_rfc3339_millis(time).to_string()
}

/// A number written the way JavaScript writes it: `12`, not `12.0`.
pub struct JsonNumber(pub f64);

impl Serialize for JsonNumber {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0; // 2^53
        let value = self.0;
        if value.fract() == 0.0 && value.abs() < EXACT_INTEGERS {
            serializer.serialize_i64(value as i64)
        } else {
            serializer.serialize_f64(value)
        }
    }
}

/// The state of a (rule, host) pair that outlives the engine, as the store
/// keeps it: its open incident, its last resolution (the cooldown's start),
/// and for rules with options since when its condition holds or its open
/// incident has been clear. Saved by every tick, restored after a restart,
/// a reload or a takeover.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRecord {
    pub rule_name: String,
    pub host: String,
    pub open: Option<Incident>,
    pub last_end: Option<Millis>,
    pub pending_since: Option<Millis>,
    pub clear_since: Option<Millis>,
}

/// A change of a pair's `pendingSince` or `clearSince` at a tick that
/// neither opens nor resolves its incident (docs/engine.md, Rule options):
/// recorded with the tick's transitions, so that it survives a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct PairChange {
    /// Index of the rule in the configuration, as in [`Transition::rule`].
    pub rule: usize,
    pub rule_name: Arc<str>,
    pub host: Arc<str>,
    /// The tick.
    pub at: Millis,
    pub pending_since: Option<Millis>,
    pub clear_since: Option<Millis>,
}

/// Pair records as a store gathers them (the ends of resolved incidents,
/// then the open ones), by rule and host.
#[derive(Debug, Default)]
pub(crate) struct PairRecords(std::collections::BTreeMap<(String, String), PairRecord>);

impl PairRecords {
    /// The record of `rule` on `host`, empty until filled in.
    pub(crate) fn pair(&mut self, rule: String, host: String) -> &mut PairRecord {
        self.0
            .entry((rule.clone(), host.clone()))
            .or_insert(PairRecord {
                rule_name: rule,
                host,
                open: None,
                last_end: None,
                pending_since: None,
                clear_since: None,
            })
    }

    /// By rule name, then host name.
    pub(crate) fn into_vec(self) -> Vec<PairRecord> {
        self.0.into_values().collect()
    }
}

/// Whether a transition opened or resolved its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    Opened,
    Resolved,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Opened => "opened",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// An incident being opened or resolved at an evaluation tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub kind: TransitionKind,
    /// The evaluation tick.
    pub at: Millis,
    /// Index of the rule in the configuration.
    pub rule: usize,
    /// The incident as it is after the transition.
    pub incident: Incident,
}

impl Transition {
    /// The resolution at `at` of an open incident that no rule evaluation
    /// resolves (its rule was removed, the store lost it), with why, if the
    /// incident object must say it. Not an index of any rule.
    pub fn resolved_apart(mut incident: Incident, at: Millis, resolution: Option<&str>) -> Self {
        incident.end_time = Some(at.max(incident.start_time));
        incident.resolution = resolution.map(Into::into);
        Transition {
            kind: TransitionKind::Resolved,
            at,
            rule: usize::MAX,
            incident,
        }
    }
}

/// `{"event":"opened","at":...,"incident":{...}}`: the replay output line (docs/engine.md, Replay).
impl Serialize for Transition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("event", self.kind.as_str())?;
        map.serialize_entry("at", &self.at)?;
        map.serialize_entry("incident", &self.incident)?;
        map.end()
    }
}

/// Where incident ids come from: random in a service, predictable in tests.
pub trait IncidentIds {
    fn next_id(&mut self, start_time: Millis) -> String;
}

/// ULIDs: unique, random, and sorted by the incident's start time.
#[derive(Debug, Default)]
pub struct UlidIds;

impl IncidentIds for UlidIds {
    fn next_id(&mut self, start_time: Millis) -> String {
        let time = UNIX_EPOCH + Duration::from_millis(start_time.max(0) as u64);
        ulid::Ulid::from_datetime(time).to_string()
    }
}

/// `inc-1`, `inc-2`, ...: for tests.
#[derive(Debug, Default)]
pub struct SequentialIds(pub u64);

impl IncidentIds for SequentialIds {
    fn next_id(&mut self, _start_time: Millis) -> String {
        self.0 += 1;
        format!("inc-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_the_incident_object() {
        let mut incident = Incident {
            id: "01JD6Z8J1V6N5WQ3W5G1B8H1QX".into(),
            rule_name: "High CPU Usage".into(),
            host_name: "web-1".into(),
            start_time: 1_795_428_010_000,
            end_time: None,
            trigger_value: 71.5,
            resolution: None,
            details: None,
        };
        assert_eq!(
            serde_json::to_string(&incident).unwrap(),
            r#"{"id":"01JD6Z8J1V6N5WQ3W5G1B8H1QX","ruleName":"High CPU Usage","hostName":"web-1","startTime":"2026-11-23T10:00:10.000Z","triggerValue":71.5}"#
        );
        incident.end_time = Some(1_795_428_200_000);
        incident.trigger_value = 60.0;
        let json = serde_json::to_string(&incident).unwrap();
        assert!(
            json.ends_with(r#""endTime":"2026-11-23T10:03:20.000Z","triggerValue":60}"#),
            "{json}"
        );
    }

    #[test]
    fn ulids_sort_by_start_time() {
        let mut ids = UlidIds;
        let (a, b) = (ids.next_id(1_000), ids.next_id(2_000));
        assert_eq!(a.len(), 26);
        assert!(a < b);
    }
}
