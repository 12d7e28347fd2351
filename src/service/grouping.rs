//! Grouped targets (docs/notifications.md, Grouping): instead of one call
//! per transition, one message per group of transitions. The transitions
//! stay in the outbox, each one a delivery as for any target, until the
//! message that carries them succeeded: a crash while a group waits sends
//! it after the restart, and a node sends only the deliveries it claimed.
//!
//! A group's first transition waits `groupWait` for others; a group's next
//! message goes out no sooner than `groupInterval` after its last (kept in
//! the store, so a restart or a takeover does not send early).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tracing::{error, info, warn};

use super::Service;
use super::dispatch::{Backoff, CLAIM_MARGIN, Then, first_call, then, unsilenced};
use crate::config::notify::Grouping;
use crate::duration::Millis;
use crate::incident::{Incident, TransitionKind};
use crate::notify::{Event, GroupNotification, TargetId};
use crate::silence::{Silence, silencing};
use crate::store::{Claim, Delivery, HookCall, StoreError};

/// The most open incidents a group's message lists (its counts count
/// them all).
const MOST_FIRING: usize = 1_000;

/// The time of a delivery's transition.
fn transition_time(delivery: &Delivery) -> Millis {
    let incident = &delivery.incident;
    match delivery.kind {
        TransitionKind::Opened => incident.start_time,
        TransitionKind::Resolved => incident.end_time.unwrap_or(incident.start_time),
    }
}

/// When a group's message is due: `groupWait` after its first transition
/// waiting, and `groupInterval` after its last message.
pub(super) fn due_at(
    grouping: &Grouping,
    first_transition: Millis,
    last_sent: Option<Millis>,
) -> Millis {
    let waited = first_transition.saturating_add(grouping.wait);
    match last_sent {
        Some(sent) => waited.max(sent.saturating_add(grouping.interval)),
        None => waited,
    }
}

/// The message id of `deliveries` of `key`: the same for every try of the
/// same transitions, on any node.
fn message_id(target: &str, key: &str, deliveries: &[Delivery]) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(target.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    for delivery in deliveries {
        hash.update(delivery.id.to_be_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest[..12]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("group.{hex}")
}

/// Sends what is due of `target`'s groups, and postpones the rest to when
/// it is due. After a failure, waits a second: the deliveries it leaves
/// stay claimed and due, and are not to be taken again at once.
pub(super) async fn send_groups(service: Arc<Service>, target: String, backoff: Backoff) {
    if !send_due_groups(&service, &target, backoff).await {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// [`send_groups`]; false when something failed.
async fn send_due_groups(service: &Arc<Service>, target: &str, backoff: Backoff) -> bool {
    let found = service.read_config(|config| {
        let mut configured = config.alerting.notify.iter();
        configured
            .find(|configured| TargetId::Configured(configured.name.clone()).to_string() == target)
            .and_then(|configured| Some((configured.group.clone()?, configured.rules.clone())))
    });
    let Some((grouping, rules)) = found else {
        return false;
    };
    let now = service.now();
    let timeout = service.read_config(|config| config.hooks.timeout);
    let (store, node, name) = (
        service.store.clone(),
        service.host_name().to_string(),
        target.to_string(),
    );
    let claimed = tokio::task::spawn_blocking(move || {
        let claim = Claim {
            node: &node,
            lasts: timeout + CLAIM_MARGIN,
            skip: &[],
        };
        let claimed = store.claim_target(&name, now, &claim)?;
        Ok::<_, StoreError>((claimed, store.silences()?))
    })
    .await;
    let (claimed, stored) = match claimed {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(error)) => {
            error!(%error, target, "cannot claim a grouped target's deliveries");
            return false;
        }
        Err(error) => {
            error!(%error, "claiming a grouped target's deliveries panicked");
            return false;
        }
    };
    // Silences first: what they hold or drop is in no message. Without a
    // silence or window, and nothing held before, nothing to ask.
    let mut silences: Vec<Silence> = service.read_config(|config| {
        let windows = config.alerting.maintenance.iter();
        windows
            .filter_map(|window| window.as_silence(now))
            .collect()
    });
    silences.extend(stored);
    let quiet = silences.is_empty() && claimed.iter().all(|d| d.held_by.is_none());
    let mut groups: BTreeMap<String, (BTreeMap<String, String>, Vec<Delivery>)> = BTreeMap::new();
    for delivery in claimed {
        if !quiet && !unsilenced(service, &delivery).await {
            continue;
        }
        let group = grouping.group_of(&delivery.incident);
        let key = serde_json::to_string(&group).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (group, Vec::new()))
            .1
            .push(delivery);
    }
    let mut fine = true;
    for (key, (group, deliveries)) in groups {
        let said = Said {
            group: (&key, &group),
            rules: rules.as_deref(),
            silences: &silences,
        };
        let sent = send_group(service, target, &grouping, said, deliveries, &backoff).await;
        if let Err(error) = sent {
            error!(%error, target, group = key, "a group's message could not be recorded: it is sent again");
            fine = false;
        }
    }
    fine
}

/// What a group's message may say: its group, and of its open incidents
/// those of the target's rules that no silence holds back.
struct Said<'a> {
    group: (&'a str, &'a BTreeMap<String, String>),
    rules: Option<&'a [String]>,
    silences: &'a [Silence],
}

/// Postpones `deliveries` to `until`.
async fn postpone(
    service: &Service,
    deliveries: &[Delivery],
    until: Millis,
) -> Result<(), StoreError> {
    let ids: Vec<i64> = deliveries.iter().map(|delivery| delivery.id).collect();
    let store = service.store.clone();
    tokio::task::spawn_blocking(move || {
        ids.iter()
            .try_for_each(|id| store.postpone_delivery(*id, until))
    })
    .await
    .map_err(|error| StoreError::Corrupt(error.to_string()))?
}

async fn send_group(
    service: &Arc<Service>,
    target: &str,
    grouping: &Grouping,
    said: Said<'_>,
    deliveries: Vec<Delivery>,
    backoff: &Backoff,
) -> Result<(), StoreError> {
    let (key, group) = said.group;
    let now = service.now();
    let store = service.store.clone();
    let first = deliveries.iter().map(transition_time).min().unwrap_or(now);
    let (asked_target, asked_key) = (target.to_string(), key.to_string());
    let read = store.clone();
    let last_sent = tokio::task::spawn_blocking(move || read.group_sent(&asked_target, &asked_key))
        .await
        .map_err(|error| StoreError::Corrupt(error.to_string()))??;
    let due = due_at(grouping, first, last_sent);
    if now < due {
        return postpone(service, &deliveries, due).await;
    }
    let read = store.clone();
    let open = tokio::task::spawn_blocking(move || read.incidents(now, now))
        .await
        .map_err(|error| StoreError::Corrupt(error.to_string()))??
        .active;
    let firing: Vec<Incident> = open
        .into_iter()
        .filter(|incident| grouping.group_of(incident) == *group)
        .filter(|incident| {
            said.rules
                .is_none_or(|rules| rules.iter().any(|rule| **rule == *incident.rule_name))
        })
        .filter(|incident| silencing(said.silences, incident, now).next().is_none())
        .take(MOST_FIRING)
        .collect();
    let config = service.config();
    let named = TargetId::Configured(target.strip_prefix("notify:").unwrap_or(target).to_string());
    let notifier =
        match (service.dispatch.notifiers).notifier_for(&named, &config, &service.hook_dir()) {
            Ok(notifier) => notifier,
            Err(why) => {
                warn!(
                    target,
                    why, "a grouped target is missing: tried again in a minute"
                );
                return postpone(service, &deliveries, now.saturating_add(60_000)).await;
            }
        };
    let notification = GroupNotification {
        group,
        key,
        events: deliveries
            .iter()
            .map(|delivery| Event {
                incident: &delivery.incident,
                kind: delivery.kind,
                note: None,
            })
            .collect(),
        firing: &firing,
        public_url: config.server.public_url.as_deref(),
        timeout: Duration::from_millis(config.hooks.timeout.max(0) as u64),
        id: message_id(target, key, &deliveries),
        reminder: false,
    };
    let started = service.now();
    let called = notifier.notify_group(&notification).await;
    drop(notification);
    let now = service.now();
    let attempt = deliveries
        .iter()
        .map(|delivery| delivery.attempts)
        .max()
        .unwrap_or(0)
        + 1;
    // Giving up counts from the message's first try: a transition may
    // have waited long for its group, or for a silence to end.
    let since = match deliveries.iter().find(|delivery| delivery.attempts > 0) {
        Some(tried) => first_call(service, tried).await.unwrap_or(started),
        None => started,
    };
    let give_up_after = service.read_config(|config| config.hooks.give_up_after);
    let give_up_at = since.saturating_add(give_up_after);
    let backoff_at = now + backoff.jittered(attempt).as_millis() as i64;
    let next = then(&called, now, give_up_at, backoff_at);
    let (opened, resolved) =
        deliveries
            .iter()
            .fold((0, 0), |(o, r), delivery| match delivery.kind {
                TransitionKind::Opened => (o + 1, r),
                TransitionKind::Resolved => (o, r + 1),
            });
    if called.succeeded {
        info!(
            target,
            group = key,
            opened,
            resolved,
            firing = firing.len(),
            "group message sent"
        );
    } else {
        warn!(target, group = key, outcome = called.outcome, then = ?next, "group message failed");
    }
    service.metrics.hook_call(called.succeeded);
    let records: Vec<(i64, HookCall)> = deliveries
        .iter()
        .map(|delivery| {
            (
                delivery.id,
                HookCall {
                    incident_id: delivery.incident.id.clone(),
                    target: target.to_string(),
                    kind: delivery.kind,
                    attempt: delivery.attempts + 1,
                    started,
                    duration_ms: called.duration.as_millis() as u64,
                    outcome: format!(
                        "{} (in a message of {} transitions)",
                        called.outcome,
                        deliveries.len()
                    ),
                    succeeded: called.succeeded,
                    stdout: called.stdout.clone(),
                    stderr: called.stderr.clone(),
                },
            )
        })
        .collect();
    let (sent_target, sent_key) = (target.to_string(), key.to_string());
    let succeeded = called.succeeded;
    tokio::task::spawn_blocking(move || {
        match next {
            Then::Done => store.finish_deliveries(&records, None)?,
            Then::RetryAt(at) => store.finish_deliveries(&records, Some(at))?,
            Then::Dead => {
                for (id, call) in &records {
                    store.bury_delivery(*id, call)?;
                }
            }
        }
        if succeeded {
            store.set_group_sent(&sent_target, &sent_key, now)?;
        }
        Ok::<_, StoreError>(())
    })
    .await
    .map_err(|error| StoreError::Corrupt(error.to_string()))??;
    if next == Then::Dead {
        service.metrics.delivery_dead();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_waits_for_others_then_keeps_its_interval() {
        let grouping = Grouping {
            by: vec!["rule".to_string()],
            wait: 30_000,
            interval: 300_000,
        };
        assert_eq!(due_at(&grouping, 1_000, None), 31_000);
        // Sent at 31 s: the next transitions wait for the interval.
        assert_eq!(due_at(&grouping, 40_000, Some(31_000)), 331_000);
        // Long after: only the wait.
        assert_eq!(due_at(&grouping, 1_000_000, Some(31_000)), 1_030_000);
    }
}
