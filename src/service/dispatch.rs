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

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::Service;
use crate::hooks::{Backoff, Hook, HookResult, LOGGER_MARK, run_hook_with};
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

/// How a call ended, for the record.
struct Called {
    outcome: String,
    succeeded: bool,
    /// Whether to try again on failure (false when the hook is gone).
    retry: bool,
    stdout: String,
    stderr: String,
    duration: Duration,
}

/// Calls the hook of one delivery and records the call.
async fn deliver(service: &Arc<Service>, delivery: Delivery, backoff: &Backoff) {
    let started = service.now();
    let called = call(service, &delivery).await;
    let attempt = delivery.attempts + 1;
    let retry_at = (!called.succeeded && called.retry)
        .then(|| service.now() + backoff.delay(attempt).as_millis() as i64);
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
    let gone = |why: String| Called {
        outcome: why,
        succeeded: false,
        retry: false,
        stdout: String::new(),
        stderr: String::new(),
        duration: Duration::ZERO,
    };
    let Some(hook) = Hook::from_target(&service.hook_dir(), &delivery.target) else {
        return gone(format!(
            "unknown kind of hook {:?}: dropped",
            delivery.target
        ));
    };
    if !hook.path.is_file() {
        if service.is_clustered() {
            // Hooks live in each node's data directory: this node may lack
            // one that others have. Tried again later, here or elsewhere.
            return Called {
                retry: true,
                ..gone(format!(
                    "no such hook on this node ({}): tried again later",
                    hook.path.display()
                ))
            };
        }
        return gone("the hook no longer exists: dropped".to_string());
    }
    let (timeout, node) =
        service.read_config(|config| (config.service.hook_timeout, config.service.node.clone()));
    let timeout = Duration::from_millis(timeout as u64);
    let outcome = run_hook_with(
        &hook,
        &delivery.incident,
        delivery.kind,
        timeout,
        Path::new(&node),
    )
    .await;
    // What a `.js` hook logged through `bp.logger`, in alertd's log.
    for line in outcome.stdout.lines() {
        if let Some(logged) = line.strip_prefix(LOGGER_MARK) {
            let (level, message) = logged.split_once(' ').unwrap_or(("info", logged));
            match level {
                "error" => error!(hook = hook.name, "{message}"),
                "warn" => warn!(hook = hook.name, "{message}"),
                "debug" => tracing::debug!(hook = hook.name, "{message}"),
                _ => info!(hook = hook.name, "{message}"),
            }
        }
    }
    let succeeded = outcome.succeeded();
    Called {
        outcome: match outcome.result {
            HookResult::TimedOut => format!("timed out after {timeout:?} and was killed"),
            result => result.to_string(),
        },
        succeeded,
        retry: true,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        duration: outcome.duration,
    }
}
