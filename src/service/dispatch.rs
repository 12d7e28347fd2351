//! The hook dispatcher: calls the hooks of the deliveries waiting in the
//! store's outbox, one at a time, oldest first.
//!
//! A delivery leaves the outbox only once its call succeeded, in the same
//! transaction that records the call, so a crash at any point means the call
//! is made (again) after the restart: at least once. A failed call is tried
//! again after a back-off; while it waits, later transitions of the same
//! incident to the same hook wait too, so "opened" always comes first.
//!
//! A delivery's target names the kind of hook (`exec:<file name>` for an
//! executable); more kinds plug in at [`call`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Service;
use crate::hooks::Backoff;
use crate::notify::{Called, Notification, Retry};
use crate::store::{Delivery, HookCall};

/// How many due deliveries are claimed at once.
const BATCH: usize = 4;
/// How long a claim outlasts the longest its deliveries' calls may take:
/// past it, another node may claim them.
const CLAIM_MARGIN: i64 = 10_000;
/// The longest the dispatcher sleeps without looking at the outbox, in ms.
const IDLE: i64 = 60_000;
/// How long to wait before reading the outbox again after a failed read.
const READ_RETRY: i64 = 1_000;

pub(super) async fn dispatcher(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let backoff = Backoff::default();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = service.now();
        let store = service.store.clone();
        let node = service.host_name().to_string();
        let until = now
            + BATCH as i64 * service.read_config(|config| config.service.hook_timeout)
            + CLAIM_MARGIN;
        let due = tokio::task::spawn_blocking(move || {
            let claim = crate::store::Claim { node: &node, until };
            let due = store.claim_deliveries(now, &claim, BATCH)?;
            let next = store.next_delivery_time()?;
            let pending = store.pending_deliveries()?;
            Ok::<_, crate::store::StoreError>((due, next, pending))
        })
        .await;
        let wait = match due {
            Ok(Ok((due, next, pending))) => {
                service.metrics.pending_deliveries(pending);
                if !due.is_empty() {
                    for delivery in due {
                        deliver(&service, delivery, &backoff).await;
                        if *stop.borrow() {
                            return;
                        }
                    }
                    continue;
                }
                next.map_or(now + IDLE, |at| at.clamp(now + 1, now + IDLE))
            }
            Ok(Err(error)) => {
                error!(%error, "cannot read the outbox");
                now + READ_RETRY
            }
            Err(error) => {
                error!(%error, "outbox read panicked");
                now + READ_RETRY
            }
        };
        tokio::select! {
            _ = service.clock.sleep_until(wait) => {}
            _ = service.outbox.notified() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
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
            self.outbox.notify_one();
        }
        Ok(revived)
    }
}

/// What becomes of a delivery after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Done (delivered, or dropped): it leaves the outbox.
    Done,
    /// Tried again at this time.
    RetryAt(i64),
    /// Given up on: kept as dead until retried on demand.
    Dead,
}

/// Calls the target of one delivery and records the call.
async fn deliver(service: &Arc<Service>, delivery: Delivery, backoff: &Backoff) {
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
    let give_up_at = since.saturating_add(service.read_config(|c| c.service.give_up_after));
    let then = match called.retry {
        _ if called.succeeded => Then::Done,
        Retry::Missing => Then::Done,
        Retry::Never => Then::Dead,
        Retry::Later | Retry::After(_) if now >= give_up_at => Then::Dead,
        Retry::Later => Then::RetryAt(backoff_at()),
        Retry::After(wait) => Then::RetryAt(backoff_at().max(now + wait.as_millis() as i64)),
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

/// Makes the call a delivery's target names.
async fn call(service: &Service, delivery: &Delivery) -> Called {
    let config = service.config();
    let notifier =
        match service
            .notifiers
            .notifier_for(&delivery.target, &config, &service.hook_dir())
        {
            Ok(notifier) => notifier,
            Err(why) => return missing(service, Called::missing(why)),
        };
    let notification = Notification {
        delivery,
        rule: config
            .alerting
            .rules
            .iter()
            .find(|rule| *rule.name == *delivery.incident.rule_name),
        public_url: config.service.public_url.as_deref(),
        timeout: Duration::from_millis(config.service.hook_timeout.max(0) as u64),
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
    if service.is_clustered() {
        Called {
            outcome: format!("{} on this node: tried again later", called.outcome),
            retry: Retry::Later,
            ..called
        }
    } else {
        Called {
            outcome: format!("{}: dropped", called.outcome),
            retry: Retry::Never,
            ..called
        }
    }
}
