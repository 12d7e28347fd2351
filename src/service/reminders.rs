//! Reminders (docs/notifications.md): while an incident stays open and
//! nobody acknowledged it, a target with `repeatInterval` is told again
//! that often. The leader queues each reminder in the outbox, with the
//! time of the next one, in one step of the store: a takeover neither
//! reminds early nor forgets one.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use super::{Service, Woke};
use crate::duration::Millis;
use crate::incident::{Incident, TransitionKind};
use crate::notify::TargetId;
use crate::silence::{Silence, silencing};
use crate::store::StoreError;

/// How often the leader looks for reminders due.
const EVERY: Millis = 1_000;

/// A target that reminds: its id in the outbox, how often, its filters,
/// and how it groups (a grouped target is reminded per group).
struct Reminding {
    target: String,
    every: Millis,
    rules: Option<Vec<String>>,
    group: Option<crate::config::notify::Grouping>,
}

impl Reminding {
    /// Whether `incident` is one to remind this target of.
    fn takes(&self, incident: &Incident, acked: &BTreeMap<String, crate::store::Ack>) -> bool {
        !acked.contains_key(&incident.id)
            && self
                .rules
                .as_ref()
                .is_none_or(|rules| rules.iter().any(|rule| **rule == *incident.rule_name))
    }
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
                        group: target.group.clone(),
                    })
                })
                .collect();
            let windows = (config.alerting.maintenance.iter())
                .filter_map(|window| window.as_silence(now))
                .collect();
            (targets, windows)
        });
        if leads && !targets.is_empty() {
            let (grouped, targets): (Vec<Reminding>, Vec<Reminding>) = targets
                .into_iter()
                .partition(|target| target.group.is_some());
            for reminding in &grouped {
                if let Err(error) = remind_groups(&service, reminding, windows.clone(), now).await {
                    error!(%error, target = reminding.target, "cannot remind a grouped target");
                }
            }
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
            if !reminding.takes(incident, &acked)
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

/// Reminds a grouped target of each of its groups whose incidents are
/// still open, unacknowledged and not silenced, `repeatInterval` after the
/// group's last message (and only after a first one): one message listing
/// them, kept as the group's last. Not in the outbox: a reminder lost to a
/// crash is sent by the next leader when it finds the group due.
async fn remind_groups(
    service: &Arc<Service>,
    reminding: &Reminding,
    windows: Vec<Silence>,
    now: Millis,
) -> Result<(), StoreError> {
    let Some(grouping) = &reminding.group else {
        return Ok(());
    };
    let store = service.store.clone();
    let (open, acked, mut silences) = tokio::task::spawn_blocking(move || {
        let open = store.incidents(now, now)?.active;
        let ids: Vec<&str> = open.iter().map(|incident| incident.id.as_str()).collect();
        let acked = store.acknowledgements(&ids)?;
        Ok::<_, StoreError>((open, acked, store.silences()?))
    })
    .await
    .map_err(|error| StoreError::Corrupt(error.to_string()))??;
    silences.extend(windows);
    let mut groups: BTreeMap<String, (BTreeMap<String, String>, Vec<Incident>)> = BTreeMap::new();
    for incident in open {
        if !reminding.takes(&incident, &acked)
            || silencing(&silences, &incident, now).next().is_some()
        {
            continue;
        }
        let group = grouping.group_of(&incident);
        let key = serde_json::to_string(&group).unwrap_or_default();
        groups
            .entry(key)
            .or_insert_with(|| (group, Vec::new()))
            .1
            .push(incident);
    }
    for (key, (group, firing)) in groups {
        let store = service.store.clone();
        let (target, asked) = (reminding.target.clone(), key.clone());
        let last = tokio::task::spawn_blocking(move || store.group_sent(&target, &asked))
            .await
            .map_err(|error| StoreError::Corrupt(error.to_string()))??;
        if last.is_none_or(|last| last.saturating_add(reminding.every) > now) {
            continue;
        }
        let config = service.config();
        let named = reminding
            .target
            .strip_prefix("notify:")
            .unwrap_or(&reminding.target);
        let notifier = match service.dispatch.notifiers.notifier_for(
            &TargetId::Configured(named.to_string()),
            &config,
            &service.hook_dir(),
        ) {
            Ok(notifier) => notifier,
            Err(_) => continue,
        };
        let notification = crate::notify::GroupNotification {
            group: &group,
            key: &key,
            events: Vec::new(),
            firing: &firing,
            public_url: config.server.public_url.as_deref(),
            timeout: std::time::Duration::from_millis(config.hooks.timeout.max(0) as u64),
            id: format!("group.reminder.{now}"),
            reminder: true,
        };
        let called = notifier.notify_group(&notification).await;
        match called.succeeded {
            true => info!(
                target = reminding.target,
                group = key,
                firing = firing.len(),
                "group reminded"
            ),
            false => error!(
                target = reminding.target,
                group = key,
                outcome = called.outcome,
                "a group's reminder failed: the next one comes"
            ),
        }
        // Sent or not, the next one comes an interval later.
        let store = service.store.clone();
        let (target, asked) = (reminding.target.clone(), key.clone());
        tokio::task::spawn_blocking(move || store.set_group_sent(&target, &asked, now))
            .await
            .map_err(|error| StoreError::Corrupt(error.to_string()))??;
    }
    Ok(())
}
