//! The janitor: deletes samples older than `monitoring.retentionPeriod` and
//! resolved incidents and ended silences older than `alerting.retentionPeriod`,
//! each at its own interval, and once at start; deletes rolled-up series older than their
//! own retention (`monitoring.minuteRollupRetention`,
//! `monitoring.tenMinuteRollupRetention`, `monitoring.hourRollupRetention`); and every minute compacts the samples that
//! no rule window can see any more (older than the longest timeframe and a
//! [`BLOCK_PERIOD`]).

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{error, info};

use super::{Service, Woke};
use crate::duration::Millis;
use crate::store::rollup::Step;
use crate::store::{BLOCK_PERIOD, StoreError};

/// How often recent samples are compacted.
const COMPACTION_INTERVAL: Millis = 60_000;

/// One kind of old data: how long it is kept as it is, and how often it is
/// cleaned.
struct Chore {
    what: &'static str,
    done: &'static str,
    next: Millis,
    /// Does one bounded step; returns how many things it changed (0: done).
    step: fn(&Service, Millis) -> Result<u64, StoreError>,
}

/// How long before their retention's end rollups are still written by a
/// compaction.
const ROLLUPS_SPARED: Millis = 3_600_000;

pub(super) async fn janitor(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let start = service.now();
    let mut chores = [
        Chore {
            what: "old samples",
            done: "deleted",
            next: start,
            step: |service, before| service.store.delete_samples_before(before),
        },
        Chore {
            what: "old incidents",
            done: "deleted",
            next: start,
            step: |service, before| service.store.delete_incidents_resolved_before(before),
        },
        Chore {
            what: "ended silences",
            done: "deleted",
            next: start,
            step: |service, before| service.store.delete_silences_ended_before(before),
        },
        Chore {
            what: "groups last sent long ago",
            done: "forgotten",
            next: start,
            step: |service, before| service.store.delete_groups_sent_before(before),
        },
        Chore {
            what: "old per-minute rollups",
            done: "deleted",
            next: start,
            step: |service, before| service.store.delete_rollups_before(Step::Minute, before),
        },
        Chore {
            what: "old per-ten-minute rollups",
            done: "deleted",
            next: start,
            step: |service, before| {
                service
                    .store
                    .delete_rollups_before(Step::TenMinutes, before)
            },
        },
        Chore {
            what: "old per-hour rollups",
            done: "deleted",
            next: start,
            step: |service, before| service.store.delete_rollups_before(Step::Hour, before),
        },
        Chore {
            what: "recent samples",
            done: "compacted",
            next: start,
            step: |service, before| {
                // Not while a reload reads samples up to a cursor.
                let _compaction = super::lock(&service.evaluation.compaction);
                // Without the rollups past their retention, which no read
                // uses and the janitor would delete (an hour to spare, for
                // nodes whose clocks differ).
                let rollups_from = service
                    .queries()
                    .rollups_kept_from()
                    .map(|from| from.saturating_sub(ROLLUPS_SPARED));
                service.store.compact_samples(before, rollups_from)
            },
        },
    ];
    loop {
        let config = service.config();
        let longest = config.alerting.longest_timeframe();
        let settings = [
            (
                config.monitoring.retention_period,
                config.monitoring.janitor_interval,
            ),
            (
                config.alerting.retention_period,
                config.alerting.janitor_interval,
            ),
            // Ended silences, as long as the incidents they held.
            (
                config.alerting.retention_period,
                config.alerting.janitor_interval,
            ),
            // When groups last sent: as long as incidents are kept.
            (
                config.alerting.retention_period,
                config.alerting.janitor_interval,
            ),
            (
                config.monitoring.minute_rollup_retention,
                config.monitoring.janitor_interval,
            ),
            (
                config.monitoring.ten_minute_rollup_retention,
                config.monitoring.janitor_interval,
            ),
            (
                config.monitoring.hour_rollup_retention,
                config.monitoring.janitor_interval,
            ),
            (longest.saturating_add(BLOCK_PERIOD), COMPACTION_INTERVAL),
        ];
        drop(config);
        for (chore, (retention, interval)) in chores.iter_mut().zip(settings) {
            let now = service.now();
            if now < chore.next {
                continue;
            }
            if service.topology.others_may_lead() && !service.is_leading() {
                // The leader cleans the shared store.
                chore.next = now.saturating_add(interval);
                continue;
            }
            clean(&service, chore, now.saturating_sub(retention), &stop).await;
            chore.next = now.saturating_add(interval);
        }
        let next = chores.iter().map(|chore| chore.next).min().unwrap_or(start);
        if service.wait_until(next, &mut stop).await == Woke::Stop {
            return;
        }
    }
}

/// Runs one chore's steps off the async threads until it is done or the
/// service stops, and logs what it did.
async fn clean(
    service: &Arc<Service>,
    chore: &Chore,
    before: Millis,
    stop: &watch::Receiver<bool>,
) {
    let (what, done, step) = (chore.what, chore.done, chore.step);
    let mut total = 0u64;
    loop {
        let worker = service.clone();
        match tokio::task::spawn_blocking(move || step(&worker, before)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(changed)) => total += changed,
            Ok(Err(error)) => {
                error!(%error, "{what}: {done} {total}, then failed");
                return;
            }
            Err(error) => {
                error!(%error, "{what}: panicked");
                return;
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    if total > 0 {
        info!(count = total, "{what} {done}");
    }
}
