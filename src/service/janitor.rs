//! The janitor: deletes samples older than `monitoring.retentionPeriod` and
//! resolved incidents older than `alerting.retentionPeriod`, each at its own
//! interval, and once at start.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use super::{Service, Woke};
use crate::duration::Millis;
use crate::store::{Store, StoreError};

/// One kind of old data: how long it is kept and how often it is cleaned.
struct Chore {
    what: &'static str,
    next: Millis,
    delete: fn(&dyn Store, Millis) -> Result<u64, StoreError>,
}

pub(super) async fn janitor(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let start = service.now();
    let mut chores = [
        Chore {
            what: "samples",
            next: start,
            delete: |store, before| store.delete_samples_before(before),
        },
        Chore {
            what: "incidents",
            next: start,
            delete: |store, before| store.delete_incidents_resolved_before(before),
        },
    ];
    loop {
        let config = service.config();
        let settings = [
            (
                config.monitoring.retention_period,
                config.monitoring.janitor_interval,
            ),
            (
                config.alerting.retention_period,
                config.alerting.janitor_interval,
            ),
        ];
        drop(config);
        for (chore, (retention, interval)) in chores.iter_mut().zip(settings) {
            let now = service.now();
            if now < chore.next {
                continue;
            }
            clean(&service, chore, now.saturating_sub(retention)).await;
            chore.next = now.saturating_add(interval);
        }
        let next = chores.iter().map(|chore| chore.next).min().unwrap_or(start);
        if service.wait_until(next, &mut stop).await == Woke::Stop {
            return;
        }
    }
}

/// Runs one chore's deletion off the async threads and logs what it did.
async fn clean(service: &Service, chore: &Chore, before: Millis) {
    let store = service.store.clone();
    let (what, delete) = (chore.what, chore.delete);
    match tokio::task::spawn_blocking(move || delete(store.as_ref(), before)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(deleted)) => info!(deleted, "old {what} deleted"),
        Ok(Err(error)) => error!(%error, "deleting old {what} failed"),
        Err(error) => error!(%error, "deleting old {what} panicked"),
    }
}
