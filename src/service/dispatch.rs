//! The dispatcher: makes the calls of the deliveries waiting in the store's
//! outbox, oldest first, several at once: each target has its own slots
//! (`hooks.concurrency` of them), so that a target that hangs or is slow
//! holds its own slots and delays no other target.
//!
//! A delivery leaves the outbox only once its call succeeded, in the same
//! transaction that records the call, so a crash at any point means the call
//! is made (again) after the restart: at least once. A failed call is tried
//! again after a back-off; while it waits, later transitions of the same
//! incident to the same target wait too (the store holds them back), so
//! "opened" always comes first, however many calls run at once. A call that
//! hangs holds its target's slot for at most `hooks.timeout`.
//!
//! A delivery's target names a notifier ([`crate::notify`]): a hook of the
//! hooks folder, or a target of `alerting.notify`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use super::Service;
use crate::duration::Millis;
use crate::notify::{Called, Event, Notification, Retry, TargetId};
use crate::silence::{Decision, NOT_SENT};
use crate::store::{Delivery, HookCall};

/// How long a claim outlasts the longest a call may take: past it, another
/// node may claim the delivery.
pub(super) const CLAIM_MARGIN: i64 = 10_000;
/// The longest a silence holds a delivery before it is looked at again, in
/// ms.
const RECHECK: i64 = 60_000;
/// The longest the dispatcher sleeps without looking at the outbox, in ms.
const IDLE: i64 = 60_000;
/// How long to wait before reading the outbox again after a failed read.
const READ_RETRY: i64 = 1_000;

/// The dispatch's part of the node.
#[derive(Default)]
pub(super) struct Dispatch {
    /// What hook calls and HTTP targets share (the HTTP client).
    pub(super) notifiers: crate::notify::Notifiers,
    /// Woken when the outbox may have something due.
    pub(super) outbox: tokio::sync::Notify,
}

pub(super) async fn dispatcher(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let backoff = Backoff::default();
    let mut running: JoinSet<()> = JoinSet::new();
    // The deliveries being called, by task: the store gives them again (they
    // are this node's claims), and they must not be called twice at once.
    let mut calling: HashMap<tokio::task::Id, Calling> = HashMap::new();
    let mut failing = super::Repeated::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = service.now();
        let (per_target, timeout) =
            service.read_config(|config| (config.hooks.concurrency, config.hooks.timeout));
        let store = service.store.clone();
        let node = service.host_name().to_string();
        let lasts = timeout + CLAIM_MARGIN;
        // Grouped messages are the leader's to send: a node that does not
        // lead leaves their deliveries alone.
        let grouped = grouped_targets(&service);
        let leads = !service.topology.others_may_lead() || service.is_leading();
        let skip: Vec<String> = match leads {
            true => Vec::new(),
            false => grouped.iter().cloned().collect(),
        };
        let due = tokio::task::spawn_blocking(move || {
            let claim = crate::store::Claim {
                node: &node,
                lasts,
                skip: &skip,
            };
            let due = store.claim_deliveries(now, &claim, per_target)?;
            let next = store.next_delivery_time()?;
            let pending = store.pending_deliveries()?;
            Ok::<_, crate::store::StoreError>((due, next, pending))
        })
        .await;
        let wait = match due {
            Ok(Ok((due, next, pending))) => {
                if let Some((failures, lasted)) = failing.recovered() {
                    info!(failures, lasted = ?lasted, "the outbox can be read again");
                }
                service.metrics.pending_deliveries(pending);
                let new = slots_free(due, calling.values(), per_target);
                let mut spawned = false;
                for delivery in new {
                    if grouped.contains(&delivery.target) {
                        // One task sends a grouped target's messages, with
                        // every delivery of it that is due.
                        if calling
                            .values()
                            .any(|call| call.delivery == GROUP && call.target == delivery.target)
                        {
                            continue;
                        }
                        let called = Calling {
                            delivery: GROUP,
                            target: delivery.target.clone(),
                        };
                        let (worker, target) = (service.clone(), delivery.target);
                        let task =
                            running.spawn(super::grouping::send_groups(worker, target, backoff));
                        calling.insert(task.id(), called);
                        spawned = true;
                        continue;
                    }
                    let called = Calling {
                        delivery: delivery.id,
                        target: delivery.target.clone(),
                    };
                    let worker = service.clone();
                    let task = running.spawn(async move {
                        deliver(&worker, delivery, &backoff).await;
                    });
                    calling.insert(task.id(), called);
                    spawned = true;
                }
                if spawned {
                    continue;
                }
                match next {
                    // Due, but its target's slots are all taken: the end of
                    // one of their calls wakes the loop.
                    Some(at) if at <= now && !running.is_empty() => now + IDLE,
                    Some(at) if at <= now => now + READ_RETRY,
                    Some(at) => at.min(now + IDLE),
                    None => now + IDLE,
                }
            }
            Ok(Err(error)) => {
                if let Some(unsaid) = failing.failed() {
                    error!(
                        %error,
                        failures_since_last_said = unsaid,
                        "cannot read the outbox (said again every minute while it lasts)"
                    );
                }
                now + READ_RETRY
            }
            Err(error) => {
                error!(%error, "outbox read panicked");
                now + READ_RETRY
            }
        };
        tokio::select! {
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                let task = match done {
                    Ok((task, ())) => task,
                    Err(error) => {
                        // Its claim runs out, and it is called again.
                        error!(%error, "a delivery's call panicked");
                        error.id()
                    }
                };
                calling.remove(&task);
            }
            _ = service.clock.sleep_until(wait) => {}
            _ = service.dispatch.outbox.notified() => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    // The calls under way finish and are recorded before the service stops.
    while running.join_next().await.is_some() {}
}

impl Service {
    /// Brings back the dead deliveries of incident `id`, due now, and wakes
    /// the dispatcher. Blocking. Returns how many.
    pub fn retry_dead(&self, id: &str) -> Result<u64, crate::store::StoreError> {
        let revived = self.store.retry_dead(id, self.now())?;
        if revived > 0 {
            info!(
                id,
                deliveries = revived,
                "dead deliveries brought back on demand"
            );
            self.dispatch.outbox.notify_one();
        }
        Ok(revived)
    }
}

/// What [`Calling::delivery`] says for a task sending a grouped target's
/// messages.
const GROUP: i64 = i64::MIN;

/// The targets (as deliveries name them) that group their transitions.
fn grouped_targets(service: &Service) -> std::collections::HashSet<String> {
    service.read_config(|config| {
        (config.alerting.notify.iter())
            .filter(|target| target.group.is_some())
            .map(|target| TargetId::Configured(target.name.clone()).to_string())
            .collect()
    })
}

/// A delivery whose call is under way.
struct Calling {
    delivery: i64,
    target: String,
}

/// The deliveries of `due` to call now: not under way already, and no more
/// per target than its free slots (`per_target` less its calls under way),
/// so that a target that hangs holds its own slots and no one else's.
fn slots_free<'a>(
    due: Vec<Delivery>,
    calling: impl Iterator<Item = &'a Calling>,
    per_target: usize,
) -> Vec<Delivery> {
    let mut busy: HashMap<&str, usize> = HashMap::new();
    let mut under_way = std::collections::HashSet::new();
    for call in calling {
        *busy.entry(call.target.as_str()).or_default() += 1;
        under_way.insert(call.delivery);
    }
    let mut taken: HashMap<String, usize> = HashMap::new();
    due.into_iter()
        .filter(|delivery| !under_way.contains(&delivery.id))
        .filter(|delivery| {
            let running = busy.get(delivery.target.as_str()).copied().unwrap_or(0);
            let taken = taken.entry(delivery.target.clone()).or_default();
            *taken += 1;
            running + *taken <= per_target
        })
        .collect()
}

/// What becomes of a delivery after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    /// Done (delivered, or dropped): it leaves the outbox.
    Done,
    /// Tried again at this time.
    RetryAt(i64),
    /// Given up on: kept as dead until retried on demand.
    Dead,
}

/// What becomes of a delivery after a call at `now`: done when it succeeded
/// or its target is missing (a cluster has turned a missing target into
/// [`Retry::Later`] before: see [`missing`]); dead when the target refused
/// for good or the transition is older than `give_up_at`; else tried again
/// at `backoff_at`, or later if the target asked for a longer wait.
pub(super) fn then(called: &Called, now: i64, give_up_at: i64, backoff_at: i64) -> Then {
    match called.retry {
        _ if called.succeeded => Then::Done,
        Retry::Missing => Then::Done,
        Retry::Never => Then::Dead,
        Retry::Later | Retry::After(_) if now >= give_up_at => Then::Dead,
        Retry::Later => Then::RetryAt(backoff_at),
        Retry::After(wait) => {
            Then::RetryAt(backoff_at.max(now.saturating_add(wait.as_millis() as i64)))
        }
    }
}

/// Calls the target of one delivery and records the call; or, while a
/// silence matches its incident, holds it back or drops it
/// ([`crate::silence::decide`]).
async fn deliver(service: &Arc<Service>, delivery: Delivery, backoff: &Backoff) {
    if !unsilenced(service, &delivery).await {
        return;
    }
    let started = service.now();
    let called = call(service, &delivery).await;
    let attempt = delivery.attempts + 1;
    let now = service.now();
    let backoff_at = || now + backoff.jittered(attempt).as_millis() as i64;
    let incident = &delivery.incident;
    // The transition's time: how old the delivery is.
    let since = match delivery.kind {
        crate::incident::TransitionKind::Opened => incident.start_time,
        crate::incident::TransitionKind::Resolved => {
            incident.end_time.unwrap_or(incident.start_time)
        }
    };
    // Giving up counts from the first call, not from a transition a silence
    // held back: waiting for a silence to end is not failing.
    let since = match called.succeeded {
        false => since.max(first_call(service, &delivery).await.unwrap_or(started)),
        true => since,
    };
    let give_up_at = since.saturating_add(service.read_config(|c| c.hooks.give_up_after));
    // A reminder that fails is not tried again (the next one comes), nor
    // kept as dead, which would hold back the incident's resolution.
    let then = match delivery.note {
        Some(crate::store::Note::Reminder) => Then::Done,
        _ => then(&called, now, give_up_at, backoff_at()),
    };
    if called.succeeded {
        info!(
            target = delivery.target,
            event = delivery.kind.as_str(),
            id = incident.id,
            attempt,
            duration_ms = called.duration.as_millis() as u64,
            "delivered"
        );
    } else {
        warn!(
            target = delivery.target,
            event = delivery.kind.as_str(),
            id = incident.id,
            attempt,
            outcome = called.outcome,
            stderr = called.stderr.trim_end(),
            then = ?then,
            "delivery failed"
        );
    }
    service.metrics.hook_call(called.succeeded);
    if then == Then::Dead {
        service.metrics.delivery_dead();
        error!(
            target = delivery.target,
            event = delivery.kind.as_str(),
            id = incident.id,
            attempt,
            "delivery given up on: kept as dead; retry it from the incident's page or \
             POST /api/v1/incidents/{}/retry",
            incident.id
        );
    }
    let record = HookCall {
        incident_id: incident.id.clone(),
        target: delivery.target.clone(),
        kind: delivery.kind,
        attempt,
        started,
        duration_ms: called.duration.as_millis() as u64,
        outcome: called.outcome,
        succeeded: called.succeeded,
        stdout: called.stdout,
        stderr: called.stderr,
    };
    let store = service.store.clone();
    let id = delivery.id;
    let recorded = tokio::task::spawn_blocking(move || match then {
        Then::Done => store.finish_delivery(id, &record, None),
        Then::RetryAt(at) => store.finish_delivery(id, &record, Some(at)),
        Then::Dead => store.bury_delivery(id, &record),
    })
    .await;
    match recorded {
        Ok(Ok(())) => {}
        // The delivery stays in the outbox: it is called again.
        Ok(Err(error)) => error!(%error, "cannot record a delivery's call"),
        Err(error) => error!(%error, "recording a delivery's call panicked"),
    }
}

/// When the first call of `delivery` (its target and event) was made, as
/// its incident's calls say; `None` for none, or a store that cannot say.
pub(super) async fn first_call(service: &Arc<Service>, delivery: &Delivery) -> Option<Millis> {
    let store = service.store.clone();
    let (id, target, kind) = (
        delivery.incident.id.clone(),
        delivery.target.clone(),
        delivery.kind,
    );
    let detail = tokio::task::spawn_blocking(move || store.incident(&id))
        .await
        .ok()?
        .ok()??;
    detail
        .calls
        .iter()
        .filter(|call| call.target == target && call.kind == kind)
        .filter(|call| !call.outcome.starts_with(NOT_SENT))
        .map(|call| call.started)
        .min()
}

/// Whether `delivery` is to be sent now; if not, it is held back or
/// dropped here (a delivery the silences cannot be read for waits for its
/// claim to run out, and is looked at again).
pub(super) async fn unsilenced(service: &Arc<Service>, delivery: &Delivery) -> bool {
    let store = service.store.clone();
    let now = service.now();
    let asked = delivery.clone();
    let windows = service.read_config(|config| {
        let windows = config.alerting.maintenance.iter();
        windows
            .filter_map(|window| window.as_silence(now))
            .collect()
    });
    let decided = tokio::task::spawn_blocking(move || {
        let decision = match super::silencing::decision(store.as_ref(), &asked, now, windows) {
            Ok(decision) => decision,
            Err(error) => {
                // Paging is better than holding a delivery back on a
                // silence that cannot be read.
                warn!(%error, id = asked.incident.id, "cannot tell whether a silence matches: sent");
                return Ok((Decision::Send, 0));
            }
        };
        match &decision {
            Decision::Send => {}
            // Looked at again at least every minute: a silence ended early
            // while this one was decided is not waited for to its end.
            Decision::Hold { until, by } => {
                store.hold_delivery(asked.id, (*until).min(now.saturating_add(RECHECK)), by)?
            }
            Decision::Drop { why } => {
                let record = |delivery: &Delivery, why: &str| HookCall {
                    incident_id: delivery.incident.id.clone(),
                    target: delivery.target.clone(),
                    kind: delivery.kind,
                    attempt: delivery.attempts,
                    started: now,
                    duration_ms: 0,
                    outcome: format!("{NOT_SENT}{why}"),
                    succeeded: false,
                    stdout: String::new(),
                    stderr: String::new(),
                };
                let mut dropped = vec![(asked.id, record(&asked, why))];
                if asked.kind == crate::incident::TransitionKind::Opened && asked.note.is_none() {
                    // An opening not sent takes the resolution behind it
                    // along, in the same step.
                    let behind = store.incident(&asked.incident.id)?.into_iter().flat_map(|d| d.pending);
                    dropped.extend(
                        behind
                            .filter(|later| later.target == asked.target && later.id > asked.id)
                            .map(|later| (later.id, record(&later, "its opening was not sent"))),
                    );
                }
                store.finish_deliveries(&dropped, None)?;
                return Ok((decision, dropped.len() as u64));
            }
        }
        Ok::<_, crate::store::StoreError>((decision, 0))
    })
    .await;
    let (target, event, id) = (
        &delivery.target,
        delivery.kind.as_str(),
        &delivery.incident.id,
    );
    match decided {
        Ok(Ok((Decision::Send, _))) => true,
        Ok(Ok((Decision::Hold { until, by }, _))) => {
            info!(
                target,
                event,
                id,
                until,
                silences = by,
                "delivery held by silences"
            );
            service.metrics.delivery_silenced("held", 1);
            false
        }
        Ok(Ok((Decision::Drop { why }, dropped))) => {
            info!(target, event, id, why, "delivery not sent");
            service.metrics.delivery_silenced("dropped", dropped);
            false
        }
        Ok(Err(error)) => {
            error!(%error, target, event, id, "cannot read the silences: tried again later");
            false
        }
        Err(error) => {
            error!(%error, "reading the silences panicked");
            false
        }
    }
}

/// Makes the call a delivery's target names.
async fn call(service: &Service, delivery: &Delivery) -> Called {
    let config = service.config();
    let notifier = TargetId::parse(&delivery.target).and_then(|target| {
        service
            .dispatch
            .notifiers
            .notifier_for(&target, &config, &service.hook_dir())
    });
    let notifier = match notifier {
        Ok(notifier) => notifier,
        Err(why) => return missing(service, Called::missing(why)),
    };
    let notification = Notification {
        event: Event {
            incident: &delivery.incident,
            kind: delivery.kind,
            note: delivery.note.map(|note| (note, delivery.next_attempt)),
        },
        rule: config
            .alerting
            .rules
            .iter()
            .find(|rule| *rule.name == *delivery.incident.rule_name),
        public_url: config.server.public_url.as_deref(),
        token: service.token(),
        timeout: Duration::from_millis(config.hooks.timeout.max(0) as u64),
    };
    let called = notifier.notify(&notification).await;
    match called.retry {
        Retry::Missing if !called.succeeded => missing(service, called),
        _ => called,
    }
}

/// A call whose target is missing on this node: dropped on a node alone;
/// in a cluster, where hooks and targets live in each node's files and
/// another node may have it, tried again later (here or elsewhere).
fn missing(service: &Service, called: Called) -> Called {
    if service.topology().retries_missing_targets() {
        Called {
            outcome: format!("{} on this node: tried again later", called.outcome),
            retry: Retry::Later,
            ..called
        }
    } else {
        // Done with: not dead, which would keep the incident from
        // retention and count as a delivery given up on.
        Called {
            outcome: format!("{}: dropped", called.outcome),
            retry: Retry::Missing,
            ..called
        }
    }
}

/// When a failed call is tried again: exponential back-off, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub longest: Duration,
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s, ... up to 5 minutes between tries.
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            longest: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The wait before try number `attempt + 1`, after `attempt` failed tries (1 or more).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.longest)
    }

    /// [`Backoff::delay`] less up to a fifth, at random: targets that failed
    /// together are not all tried again in the same instant.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let delay = self.delay(attempt);
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let fraction = f64::from(noise % 1000) / 1000.0;
        delay.mul_f64(1.0 - 0.2 * fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn called(succeeded: bool, retry: Retry) -> Called {
        Called {
            outcome: String::new(),
            succeeded,
            retry,
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
        }
    }

    fn delivery(id: i64, target: &str) -> Delivery {
        Delivery {
            id,
            target: target.to_string(),
            kind: crate::incident::TransitionKind::Opened,
            incident: crate::incident::Incident {
                id: format!("i{id}"),
                rule_name: "r".into(),
                host_name: "h".into(),
                start_time: 0,
                end_time: None,
                trigger_value: 1.0,
                resolution: None,
                details: None,
            },
            attempts: 0,
            next_attempt: 0,
            dead: false,
            held_by: None,
            note: None,
        }
    }

    #[test]
    fn a_target_takes_its_own_slots_only() {
        let calling = |calls: &[(i64, &str)]| -> Vec<Calling> {
            calls
                .iter()
                .map(|(delivery, target)| Calling {
                    delivery: *delivery,
                    target: target.to_string(),
                })
                .collect()
        };
        let ids = |deliveries: Vec<Delivery>| -> Vec<i64> {
            deliveries.iter().map(|delivery| delivery.id).collect()
        };
        // Two slots per target; "hang" has both taken by calls under way
        // (1 and 2, given again by the store as this node's claims).
        let busy = calling(&[(1, "exec:hang"), (2, "exec:hang")]);
        let due = vec![
            delivery(1, "exec:hang"),
            delivery(2, "exec:hang"),
            delivery(3, "exec:hang"),
            delivery(4, "exec:good"),
            delivery(5, "exec:good"),
            delivery(6, "exec:good"),
        ];
        assert_eq!(ids(slots_free(due.clone(), busy.iter(), 2)), [4, 5]);
        // One good call under way: one more good call, none of hang's.
        let busy = calling(&[(1, "exec:hang"), (2, "exec:hang"), (4, "exec:good")]);
        assert_eq!(ids(slots_free(due.clone(), busy.iter(), 2)), [5]);
        // Nothing under way: the oldest of each, up to the slots.
        assert_eq!(ids(slots_free(due, [].iter(), 1)), [1, 4]);
    }

    #[test]
    fn a_call_decides_what_becomes_of_its_delivery() {
        let (now, give_up_at, backoff_at) = (10_000, 20_000, 12_000);
        let then = |succeeded, retry| then(&called(succeeded, retry), now, give_up_at, backoff_at);
        assert_eq!(then(true, Retry::Later), Then::Done);
        assert_eq!(then(false, Retry::Missing), Then::Done);
        assert_eq!(then(false, Retry::Never), Then::Dead);
        assert_eq!(then(false, Retry::Later), Then::RetryAt(12_000));
        // A longer wait asked for is kept; a shorter one is not.
        let after = |secs| then(false, Retry::After(Duration::from_secs(secs)));
        assert_eq!(after(7), Then::RetryAt(17_000));
        assert_eq!(after(1), Then::RetryAt(12_000));
        // Past the give-up time, a failure is dead whatever it asks.
        let late = |retry| super::then(&called(false, retry), give_up_at, give_up_at, backoff_at);
        assert_eq!(late(Retry::Later), Then::Dead);
        assert_eq!(late(Retry::After(Duration::from_secs(1))), Then::Dead);
        assert_eq!(late(Retry::Missing), Then::Done);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (1..=11).map(|a| backoff.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(300));
    }
}
