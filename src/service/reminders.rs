//! Reminders (docs/notifications.md): while an incident stays open and
//! nobody acknowledged it, a target with `repeatInterval` is told again
//! that often. The leader queues each reminder in the outbox, with the
//! time of the next one, in one step of the store: a takeover neither
//! reminds early nor forgets one.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use super::{Service, Woke};
use crate::duration::Millis;
use crate::incident::TransitionKind;
use crate::notify::TargetId;
use crate::silence::{Silence, silencing};
use crate::store::StoreError;

/// How often the leader looks for reminders due.
const EVERY: Millis = 1_000;

/// A target that reminds: its id in the outbox, how often, its filters.
struct Reminding {
    target: String,
    every: Millis,
    rules: Option<Vec<String>>,
}

pub(super) async fn reminders(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let mut failing = super::Repeated::default();
    loop {
        let now = service.now();
        let leads = !service.topology.others_may_lead() || service.is_leading();
        let (targets, windows): (Vec<Reminding>, Vec<Silence>) = service.read_config(|config| {
            let targets = (config.alerting.notify.iter())
                .filter(|target| {
                    target
                        .events
                        .as_ref()
                        .is_none_or(|events| events.contains(&TransitionKind::Opened))
                })
                .filter_map(|target| {
                    Some(Reminding {
                        target: TargetId::Configured(target.name.clone()).to_string(),
                        every: target.repeat?,
                        rules: target.rules.clone(),
                    })
                })
                .collect();
            let windows = (config.alerting.maintenance.iter())
                .filter_map(|window| window.as_silence(now))
                .collect();
            (targets, windows)
        });
        if leads && !targets.is_empty() {
            let worker = service.clone();
            let queued =
                tokio::task::spawn_blocking(move || remind(&worker, &targets, windows, now)).await;
            match queued {
                Ok(Ok(queued)) => {
                    if let Some((failures, lasted)) = failing.recovered() {
                        info!(failures, lasted = ?lasted, "reminders can be queued again");
                    }
                    if queued > 0 {
                        service.dispatch.outbox.notify_one();
                    }
                }
                Ok(Err(error)) => {
                    if let Some(unsaid) = failing.failed() {
                        error!(%error, failures_since_last_said = unsaid, "cannot queue reminders");
                    }
                }
                Err(error) => error!(%error, "queuing reminders panicked"),
            }
        }
        if service
            .wait_until(now.saturating_add(EVERY), &mut stop)
            .await
            == Woke::Stop
        {
            return;
        }
    }
}

/// Queues the reminders due at `now`; returns how many. Blocking.
fn remind(
    service: &Service,
    targets: &[Reminding],
    windows: Vec<Silence>,
    now: Millis,
) -> Result<u64, StoreError> {
    let store = service.store();
    let times = store.reminder_times()?;
    let open = store.incidents(now, now)?.active;
    let ids: Vec<&str> = open.iter().map(|incident| incident.id.as_str()).collect();
    let acked = store.acknowledgements(&ids)?;
    let open_ids: HashSet<&str> = ids.iter().copied().collect();
    let stale: Vec<(String, String)> = (times.keys())
        .filter(|(id, _)| !open_ids.contains(id.as_str()))
        .cloned()
        .collect();
    store.forget_reminders(&stale)?;
    let mut silences = store.silences()?;
    silences.extend(windows);
    let mut queued = 0;
    for reminding in targets {
        for incident in &open {
            if acked.contains_key(&incident.id)
                || reminding
                    .rules
                    .as_ref()
                    .is_some_and(|rules| !rules.iter().any(|rule| **rule == *incident.rule_name))
                || silencing(&silences, incident, now).next().is_some()
            {
                continue;
            }
            let key = (incident.id.clone(), reminding.target.clone());
            let next = (times.get(&key).copied())
                .unwrap_or_else(|| incident.start_time.saturating_add(reminding.every));
            if next > now {
                continue;
            }
            store.enqueue_reminder(
                incident,
                &reminding.target,
                now,
                now.saturating_add(reminding.every),
            )?;
            queued += 1;
        }
    }
    Ok(queued)
}
