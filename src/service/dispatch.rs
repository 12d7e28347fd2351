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

/// Calls the hook of one delivery and records the call.
async fn deliver(service: &Arc<Service>, delivery: Delivery, backoff: &Backoff) {
    let started = service.now();
    let called = call(service, &delivery).await;
    let attempt = delivery.attempts + 1;
    let backoff_at = || service.now() + backoff.delay(attempt).as_millis() as i64;
    let retry_at = match called.retry {
        _ if called.succeeded => None,
        Retry::Never | Retry::Missing => None,
        Retry::Later => Some(backoff_at()),
        Retry::After(wait) => Some(backoff_at().max(service.now() + wait.as_millis() as i64)),
    };
    let incident = &delivery.incident;
    if called.succeeded {
        info!(
            hook = delivery.target,
            event = delivery.kind.as_str(),
            id = incident.id,
            attempt,
            duration_ms = called.duration.as_millis() as u64,
            "hook called"
        );
    } else {
        warn!(
            hook = delivery.target,
            event = delivery.kind.as_str(),
            id = incident.id,
            attempt,
            outcome = called.outcome,
            stderr = called.stderr.trim_end(),
            retry_at,
            "hook call failed"
        );
    }
    service.metrics.hook_call(called.succeeded);
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
    match tokio::task::spawn_blocking(move || store.finish_delivery(id, &record, retry_at)).await {
        Ok(Ok(())) => {}
        // The delivery stays in the outbox: it is called again.
        Ok(Err(error)) => error!(%error, "cannot record a hook call"),
        Err(error) => error!(%error, "recording a hook call panicked"),
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
