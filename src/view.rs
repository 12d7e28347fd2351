//! Typed views of rules and incidents: what the API answers, the pages
//! show and notifications tell, each in one shape. [`crate::query`] makes
//! them from the node's state; this module only says what they hold, and
//! depends on nothing above the engine and the store's records.

use serde::Serialize;

use crate::config::{NoData, Rule};
use crate::duration::{HumanDuration, Millis};
use crate::engine::PairStatus;
use crate::incident::Incident;
use crate::store::{Delivery, HookCall, HostSeen};

/// A rule as configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    pub name: String,
    pub field: String,
    pub aggregation: &'static str,
    pub operand: &'static str,
    /// The threshold.
    pub value: f64,
    /// As written, normalised (`2m`).
    pub timeframe: String,
    pub timeframe_ms: Millis,
    pub cooldown: String,
    pub cooldown_ms: Millis,
    /// The options beyond the original's (docs/engine.md, Rule options),
    /// present only when set.
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub hold_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_data: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One readable line: `avg(cpu.usage) over 2m >= 60, cooldown 1m`.
    pub summary: String,
}

impl From<&Rule> for RuleView {
    fn from(rule: &Rule) -> Self {
        let options = &rule.options;
        RuleView {
            name: rule.name.clone(),
            field: rule.field.clone(),
            aggregation: rule.aggregation.as_str(),
            operand: rule.operand.as_str(),
            value: rule.threshold,
            timeframe: HumanDuration(rule.timeframe).to_string(),
            timeframe_ms: rule.timeframe,
            cooldown: HumanDuration(rule.cooldown).to_string(),
            cooldown_ms: rule.cooldown,
            hold_for: (options.hold_for > 0).then(|| HumanDuration(options.hold_for).to_string()),
            keep_firing_for: (options.keep_firing_for > 0)
                .then(|| HumanDuration(options.keep_firing_for).to_string()),
            recovery_value: options.recovery,
            no_data: (options.no_data != NoData::Keep).then(|| options.no_data.as_str()),
            severity: options.severity.as_deref().map(str::to_string),
            labels: (*options.labels).clone(),
            description: options.description.as_deref().map(str::to_string),
            summary: rule.to_string(),
        }
    }
}

/// A rule with its state on every host, as of the last tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleStatusView {
    #[serde(flatten)]
    pub rule: RuleView,
    pub hosts: Vec<PairView>,
}

/// One (rule, host) pair as of the last tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairView {
    pub host: String,
    /// `firing`, `pending`, `cooldown`, `nodata` or `ok`.
    pub state: &'static str,
    pub aggregate: Option<f64>,
    pub samples: u32,
    pub incident_id: Option<String>,
    pub cooldown_until: Option<Millis>,
    /// While pending (a rule with `for`): since when the condition holds,
    /// and when the incident opens if it goes on holding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<Millis>,
    /// While an open incident is clear (a rule with `keepFiringFor` or
    /// `recoveryValue`): since when, and when it resolves if it stays so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear_since: Option<Millis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves_at: Option<Millis>,
}

impl PairView {
    pub fn new(host: &str, rule: &Rule, status: &PairStatus) -> PairView {
        PairView {
            host: host.to_string(),
            state: status.state.as_str(),
            aggregate: status.aggregate,
            samples: status.samples,
            incident_id: status.open.as_ref().map(|open| open.id.clone()),
            cooldown_until: status.last_end.map(|end| end + rule.cooldown),
            pending_since: status.pending_since,
            opens_at: status.pending_since.map(|since| {
                let held = since + rule.options.hold_for;
                // Not before its cooldown ends.
                status
                    .last_end
                    .map_or(held, |end| held.max(end + rule.cooldown))
            }),
            clear_since: status.clear_since,
            resolves_at: status
                .clear_since
                .map(|since| since + rule.options.keep_firing_for),
        }
    }
}

/// Every rule with its state per host: `GET /api/v1/rules`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesView {
    pub evaluated_at: Option<Millis>,
    pub alerting_enabled: bool,
    pub rules: Vec<RuleStatusView>,
}

/// The incidents of a time range: `GET /api/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentsView {
    pub from: Millis,
    pub to: Millis,
    /// Every open incident, by start time.
    pub active: Vec<Incident>,
    /// Those resolved that touch the range, by start time.
    pub resolved: Vec<Incident>,
}

/// One incident, its calls and what still waits: `GET /api/v1/incidents/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentView {
    pub incident: Incident,
    pub hook_calls: Vec<HookCall>,
    pub pending_hooks: Vec<PendingView>,
    /// Who said they handle it, when, and why (`null` for no one yet).
    pub acknowledged: Option<crate::store::Ack>,
}

/// A delivery not made yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingView {
    pub target: String,
    /// `opened` or `resolved`.
    pub event: &'static str,
    pub failed_attempts: u32,
    pub next_attempt: Millis,
    pub dead: bool,
    /// The silences holding it back (their ids), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

impl From<&Delivery> for PendingView {
    fn from(delivery: &Delivery) -> Self {
        PendingView {
            target: delivery.target.clone(),
            event: delivery.kind.as_str(),
            failed_attempts: delivery.attempts,
            next_attempt: delivery.next_attempt,
            dead: delivery.dead,
            held_by: delivery.held_by.clone(),
        }
    }
}

/// Every host with stored samples: `GET /api/v1/hosts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostsView {
    /// By name.
    pub hosts: Vec<HostView>,
}

/// A host and its last report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    pub host: String,
    /// The newest sample's `ts`.
    pub last_seen: Millis,
    /// The same, RFC 3339.
    pub last_seen_time: String,
}

impl From<HostSeen> for HostView {
    fn from(seen: HostSeen) -> Self {
        HostView {
            last_seen_time: crate::incident::rfc3339(seen.last_seen),
            host: seen.host,
            last_seen: seen.last_seen,
        }
    }
}

/// The cluster as a node last read it: `GET /api/v1/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The node answering.
    pub node: String,
    pub clustered: bool,
    /// Whether the node answering leads.
    pub leads: bool,
    pub leader: Option<LeaderView>,
    pub nodes: Vec<NodeView>,
    /// When the node answering last read the cluster, on its clock.
    pub read_at: Option<Millis>,
    /// Why that read failed, if it did.
    pub error: Option<String>,
}

/// Who holds the lease.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderView {
    pub node: String,
    /// The fencing token of its lease.
    pub token: u64,
    pub expires_in_ms: Millis,
}

/// A node as it last reported itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub node: String,
    /// On its own clock.
    pub heartbeat: Millis,
    pub heartbeat_time: String,
    /// Seen from the answering node's clock; 0 for a heartbeat ahead of it.
    pub seconds_since_heartbeat: Millis,
    pub started: Millis,
    pub version: String,
    /// The fingerprint of its rules.
    pub rules: String,
    /// Whether its rules differ from the leader's (it would evaluate
    /// differently once it leads).
    pub rules_differ_from_leader: bool,
    pub leads: bool,
    /// How the other nodes reach it (where the standard senders' points
    /// are sent on to, when it leads), if they can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
