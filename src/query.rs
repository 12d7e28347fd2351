//! The read layer: what the API and the pages show, as the typed views of
//! [`crate::view`]. Both call here rather than the store or the engine, so
//! that a rule or an incident reads the same wherever it is shown.
//!
//! Every method blocks (it may read the store): call it from
//! `spawn_blocking`.

use crate::duration::Millis;
use crate::service::Service;
use crate::store::StoreError;
use crate::view::{
    IncidentView, IncidentsView, PairView, PendingView, RuleStatusView, RuleView, RulesView,
};

/// The read layer over one node.
pub struct Queries<'a> {
    service: &'a Service,
}

impl Service {
    /// What the API and the pages read.
    pub fn queries(&self) -> Queries<'_> {
        Queries { service: self }
    }
}

impl Queries<'_> {
    /// Every rule, in configuration order, with its state per host in name order.
    pub fn rules(&self) -> RulesView {
        let states = self.service.rule_states();
        let rules = states
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| RuleStatusView {
                rule: RuleView::from(rule),
                hosts: states
                    .hosts
                    .iter()
                    .filter_map(|(host, statuses)| {
                        Some(PairView::new(host, rule, statuses.get(index)?))
                    })
                    .collect(),
            })
            .collect();
        RulesView {
            evaluated_at: states.evaluated,
            alerting_enabled: self.service.read_config(|config| config.alerting.enabled),
            rules,
        }
    }

    /// The open incidents, and the resolved ones with `startTime <= to` and
    /// `endTime >= from`.
    pub fn incidents(&self, from: Millis, to: Millis) -> Result<IncidentsView, StoreError> {
        let incidents = self.service.store().incidents(from, to)?;
        Ok(IncidentsView {
            from,
            to,
            active: incidents.active,
            resolved: incidents.resolved,
        })
    }

    /// One incident with its calls and what waits; `None` when there is none
    /// of that id (never, or deleted after the retention period).
    pub fn incident(&self, id: &str) -> Result<Option<IncidentView>, StoreError> {
        let Some(detail) = self.service.store().incident(id)? else {
            return Ok(None);
        };
        Ok(Some(IncidentView {
            pending_hooks: detail.pending.iter().map(PendingView::from).collect(),
            incident: detail.incident,
            hook_calls: detail.calls,
        }))
    }
}
