//! The leader's view of every (rule, host) pair, published to a shared
//! store after each tick so that every node's rules page and
//! `/api/v1/rules` show the live aggregates, not only the leader's.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{RuleStates, Service};
use crate::config::Rule;
use crate::duration::Millis;
use crate::engine::{PairState, PairStatus};
use crate::incident::Incident;
use crate::store::StoreError;

/// The published form: rules by name, each host's statuses in that order.
#[derive(Serialize, Deserialize)]
struct Published {
    evaluated: Option<Millis>,
    rules: Vec<String>,
    hosts: Vec<(String, Vec<Status>)>,
    /// How the leader's scrapes went (absent from what an earlier version
    /// published).
    #[serde(default)]
    scrapes: Vec<super::TargetStatus>,
}

/// One pair: state, aggregate, samples, open incident (id, start, trigger
/// value: none when it opened on no data), end of the last one; then its
/// `pendingSince` and `clearSince` (absent from what an earlier version
/// published).
#[derive(Serialize, Deserialize)]
struct Status(
    String,
    Option<f64>,
    u32,
    Option<(String, Millis, Option<f64>)>,
    Option<Millis>,
    #[serde(default)] Option<Millis>,
    #[serde(default)] Option<Millis>,
);

fn state_named(name: &str) -> PairState {
    match name {
        "firing" => PairState::Firing,
        "pending" => PairState::Pending,
        "cooldown" => PairState::Cooldown,
        "ok" => PairState::Ok,
        _ => PairState::NoData,
    }
}

/// Encodes `states` for the other nodes.
pub(super) fn encode(states: &RuleStates, scrapes: Vec<super::TargetStatus>) -> Vec<u8> {
    let published = Published {
        scrapes,
        evaluated: states.evaluated,
        rules: states.rules.iter().map(|rule| rule.name.clone()).collect(),
        hosts: states
            .hosts
            .iter()
            .map(|(host, statuses)| {
                let statuses = statuses
                    .iter()
                    .map(|status| {
                        Status(
                            status.state.as_str().to_string(),
                            status.aggregate.filter(|value| value.is_finite()),
                            status.samples,
                            status.open.as_ref().map(|incident| {
                                (
                                    incident.id.clone(),
                                    incident.start_time,
                                    Some(incident.trigger_value).filter(|value| value.is_finite()),
                                )
                            }),
                            status.last_end,
                            status.pending_since,
                            status.clear_since,
                        )
                    })
                    .collect();
                (host.clone(), statuses)
            })
            .collect(),
    };
    // Plain data: serializing cannot fail.
    serde_json::to_vec(&published).unwrap_or_default()
}

/// The published states, shown against this node's own `rules` (by name:
/// a rule the leader does not have shows no state).
fn decode(bytes: &[u8], rules: Vec<Rule>) -> Result<RuleStates, serde_json::Error> {
    let published: Published = serde_json::from_slice(bytes)?;
    let columns: Vec<Option<usize>> = rules
        .iter()
        .map(|rule| published.rules.iter().position(|name| *name == rule.name))
        .collect();
    let hosts = published
        .hosts
        .into_iter()
        .map(|(host, statuses)| {
            let host_name: Arc<str> = host.as_str().into();
            let row = columns
                .iter()
                .zip(&rules)
                .map(|(column, rule)| {
                    let Some(Status(
                        state,
                        aggregate,
                        samples,
                        open,
                        last_end,
                        pending_since,
                        clear_since,
                    )) = column.and_then(|column| statuses.get(column))
                    else {
                        return PairStatus {
                            state: PairState::NoData,
                            aggregate: None,
                            samples: 0,
                            open: None,
                            last_end: None,
                            pending_since: None,
                            clear_since: None,
                        };
                    };
                    PairStatus {
                        state: state_named(state),
                        aggregate: *aggregate,
                        samples: *samples,
                        open: open.as_ref().map(|(id, start, trigger)| Incident {
                            id: id.clone(),
                            rule_name: rule.name.as_str().into(),
                            host_name: host_name.clone(),
                            start_time: *start,
                            end_time: None,
                            trigger_value: trigger.unwrap_or(f64::NAN),
                            resolution: None,
                            details: None,
                        }),
                        last_end: *last_end,
                        pending_since: *pending_since,
                        clear_since: *clear_since,
                    }
                })
                .collect();
            (host, row)
        })
        .collect();
    Ok(RuleStates {
        rules,
        evaluated: published.evaluated,
        hosts,
    })
}

impl Service {
    /// Publishes this leader's states after tick `at`, which the store
    /// records as the last tick. Blocking. A failure is logged: the tick
    /// stands (it changed nothing in the store), the other nodes show older
    /// states.
    pub(super) fn publish_states(&self, at: Millis) {
        let Some(lease) = self.lease() else {
            return;
        };
        let encoded = encode(&self.engine_states(), self.own_scrape_statuses());
        match self.store.publish_states(&lease, at, &encoded) {
            Ok(()) => {}
            Err(StoreError::StaleTick { tick, last }) => self.behind_recorded_tick(tick, last),
            Err(error) => warn!(%error, "cannot publish the rules' states for the other nodes"),
        }
    }

    /// How the leader's scrapes went, as it last published them.
    pub(super) fn published_scrapes(&self) -> Vec<super::TargetStatus> {
        #[derive(Deserialize)]
        struct Scrapes {
            #[serde(default)]
            scrapes: Vec<super::TargetStatus>,
        }
        match self.store.published_states() {
            Ok(Some(bytes)) => serde_json::from_slice::<Scrapes>(&bytes)
                .map(|published| published.scrapes)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The leader's states as it last published them, against this node's
    /// rules; no host when there are none or they cannot be read.
    pub(super) fn published_states(&self) -> RuleStates {
        let rules = self.config().alerting.rules.clone();
        let empty = |rules| RuleStates {
            rules,
            evaluated: None,
            hosts: Vec::new(),
        };
        match self.store.published_states() {
            Ok(Some(bytes)) => decode(&bytes, rules.clone()).unwrap_or_else(|error| {
                warn!(%error, "the leader's published states cannot be read");
                empty(rules)
            }),
            Ok(None) => empty(rules),
            Err(error) => {
                warn!(%error, "cannot read the leader's published states");
                empty(rules)
            }
        }
    }
}
