//! The SQL of the embedded store: each [`Store`] method as statements on
//! the writer's connection or a reader's, and the decoding of rows.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};

use super::samples;
use super::{SqliteStore, begin_write};
use crate::duration::Millis;
use crate::incident::{Incident, PairChange, Transition, TransitionKind};
use crate::incident::{PairRecord, PairRecords};
use crate::sample::Sample;
use crate::silence::Silence;
use crate::store::RollupQuery;
use crate::store::rollup::Step;
use crate::store::{
    Ack, Appended, Claim, Condition, Coordination, Delivery, Extra, HookCall, HostSeen,
    IncidentDetail, IncidentLog, Incidents, Lease, LeaseHolder, NodeStatus, Once, SampleCursor,
    SampleStore, SampleVisitor, Sessions, SilenceStore, StoreError, Undelivered,
};

/// The time on this machine's clock, in ms since the epoch: what the lease
/// runs on (the data directory's lock keeps every other process out).
fn wall_now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as Millis)
}

/// Fails with [`StoreError::Fenced`] unless `lease` is the current one, in
/// the caller's transaction.
fn check_lease(connection: &rusqlite::Connection, lease: &Lease) -> Result<(), StoreError> {
    let current = connection
        .query_row(
            "SELECT 1 FROM lease WHERE node = ?1 AND token = ?2 AND expires > ?3",
            params![lease.node, lease.token as i64, wall_now()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if current {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            node: lease.node.clone(),
            token: lease.token,
        })
    }
}

/// The last tick recorded and the token of the lease that recorded it.
fn last_tick(connection: &rusqlite::Connection) -> Result<Option<(Millis, u64)>, StoreError> {
    let read = |key: &str| -> Result<Option<i64>, StoreError> {
        Ok(connection
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()?)
    };
    Ok(match (read("last_tick")?, read("last_tick_token")?) {
        (Some(tick), Some(token)) => Some((tick, token as u64)),
        _ => None,
    })
}

/// Records `tick` under `lease` as the last tick, if it may be (see
/// [`crate::store::check_tick`]).
fn advance_tick(
    connection: &rusqlite::Connection,
    lease: &Lease,
    tick: Millis,
) -> Result<(), StoreError> {
    crate::store::check_tick(last_tick(connection)?, lease, tick)?;
    let mut set = connection.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?;
    set.execute(params!["last_tick", tick])?;
    set.execute(params!["last_tick_token", lease.token as i64])?;
    Ok(())
}

fn kind_from(text: &str) -> Result<TransitionKind, rusqlite::Error> {
    match text {
        "opened" | "reminder" | "acknowledged" => Ok(TransitionKind::Opened),
        "resolved" => Ok(TransitionKind::Resolved),
        other => Err(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown transition kind {other:?}").into(),
        )),
    }
}

/// Reads `id, rule, host, start_time, end_time, trigger_value` from `first`
/// on, and what it carries beyond them (see [`Extra`]) from column `extra`.
fn incident_at(row: &Row<'_>, first: usize, extra: usize) -> rusqlite::Result<Incident> {
    let mut incident = Incident {
        id: row.get(first)?,
        rule_name: row.get::<_, String>(first + 1)?.into(),
        host_name: row.get::<_, String>(first + 2)?.into(),
        start_time: row.get(first + 3)?,
        end_time: row.get(first + 4)?,
        trigger_value: row.get(first + 5)?,
        resolution: None,
        details: None,
    };
    if let Some(json) = row.get::<_, Option<String>>(extra)? {
        Extra::apply(&json, &mut incident).map_err(|error| {
            rusqlite::Error::FromSqlConversionFailure(
                extra,
                rusqlite::types::Type::Text,
                Box::new(error),
            )
        })?;
    }
    Ok(incident)
}

/// The columns [`incident_at`] reads, in its order.
const INCIDENT_COLUMNS: &str = "id, rule, host, start_time, end_time, trigger_value, extra";

const DELIVERY_COLUMNS: &str = "id, target, kind, attempts, next_attempt, \
     incident_id, rule, host, start_time, end_time, trigger_value, dead, extra, held_by";

/// A trigger value as SQLite keeps it: no value (NaN) as 0, said in `extra`.
fn stored_value(value: f64) -> f64 {
    if value.is_nan() { 0.0 } else { value }
}

/// A delivery `o` with no older delivery of its incident to its target.
const UNBLOCKED: &str = "NOT EXISTS (SELECT 1 FROM outbox p \
     WHERE p.incident_id = o.incident_id AND p.target = o.target AND p.id < o.id)";

/// Records a hook call, in the caller's transaction.
fn insert_call(connection: &rusqlite::Connection, call: &HookCall) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO hook_calls (incident_id, target, kind, attempt, started, duration_ms, \
             outcome, succeeded, stdout, stderr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            call.incident_id,
            call.target,
            call.kind.as_str(),
            call.attempt,
            call.started,
            i64::try_from(call.duration_ms).unwrap_or(i64::MAX),
            call.outcome,
            call.succeeded,
            call.stdout,
            call.stderr,
        ])?;
    Ok(())
}

/// Adds a delivery of `incident` to `target` to the outbox, due at `due`,
/// in the caller's transaction.
fn queue(
    transaction: &rusqlite::Transaction<'_>,
    target: &str,
    kind: &str,
    incident: &Incident,
    due: Millis,
    extra: Option<&str>,
) -> rusqlite::Result<()> {
    transaction
        .prepare_cached(
            "INSERT INTO outbox (target, kind, incident_id, rule, host, start_time, \
             end_time, trigger_value, next_attempt, extra) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            target,
            kind,
            incident.id,
            &*incident.rule_name,
            &*incident.host_name,
            incident.start_time,
            incident.end_time,
            stored_value(incident.trigger_value),
            due,
            extra,
        ])?;
    Ok(())
}

/// Claims `claimed` for `claim.node` until `now + claim.lasts`, in the
/// caller's transaction.
fn take_claims(
    transaction: &rusqlite::Transaction<'_>,
    claimed: &[Delivery],
    claim: &Claim<'_>,
    now: Millis,
) -> rusqlite::Result<()> {
    let mut take = transaction.prepare_cached(
        "INSERT INTO claims (delivery, node, until) VALUES (?1, ?2, ?3) \
         ON CONFLICT (delivery) DO UPDATE SET node = excluded.node, until = excluded.until",
    )?;
    for delivery in claimed {
        take.execute(params![
            delivery.id,
            claim.node,
            now.saturating_add(claim.lasts)
        ])?;
    }
    Ok(())
}

fn delivery(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: row.get(0)?,
        target: row.get(1)?,
        kind: kind_from(&row.get::<_, String>(2)?)?,
        attempts: row.get(3)?,
        next_attempt: row.get(4)?,
        incident: incident_at(row, 5, 12)?,
        dead: row.get(11)?,
        held_by: row.get(13)?,
        note: crate::store::Note::of_kind(row.get::<_, String>(2)?.as_bytes()),
    })
}

impl SampleStore for SqliteStore {
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        let encoded = crate::store::batch::Encoded::new(samples)?;
        self.append(&[(samples, &encoded)], &[], wall_now())
            .map(|_| ())
    }

    fn append_once(
        &self,
        batches: &[(&[Sample], &crate::store::batch::Encoded)],
        keys: &[Option<&Once>],
    ) -> Result<Vec<Appended>, StoreError> {
        self.append(batches, keys, wall_now())
    }

    fn remember_once(&self, once: &Once) -> Result<Appended, StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let appended = samples::keep_once(&transaction, once, wall_now())?;
            transaction.commit()?;
            Ok(appended)
        })
    }

    fn scan_samples_before(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.scan(from, to, cursor, None, visit)
    }

    fn scan_unrolled(
        &self,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.scan_recent(from, to, visit)
    }

    fn visit_samples(
        &self,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        self.visit(from, to, visitor)
    }

    fn scan_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.scan(from, to, SampleCursor::MAX, Some(host), visit)
    }

    fn visit_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        if self.visit_host(host, from, to, visitor)? {
            return Ok(());
        }
        crate::store::visit_scanned_host(self, host, (from, to), visitor)
    }

    fn samples_since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError> {
        self.since(cursor, visit)
    }

    fn sample_cursor(&self) -> Result<SampleCursor, StoreError> {
        Ok(self.cursor())
    }

    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        SqliteStore::latest_samples(self)
    }

    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError> {
        Ok(self.hosts_seen())
    }

    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError> {
        let deleted = self.delete_before(before)?;
        self.give_back_pages()?;
        Ok(deleted)
    }

    fn compact_samples(
        &self,
        before: Millis,
        rollups_from: crate::store::RollupsFrom,
    ) -> Result<u64, StoreError> {
        self.compact(before, rollups_from)
    }

    fn scan_rollup_rows(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut crate::store::RowVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.rollup_rows(query, visit)
    }

    fn rolled_up_until(&self) -> Result<Millis, StoreError> {
        self.rollups_until()
    }

    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError> {
        self.delete_points_before(step, before)
    }
}

impl IncidentLog for SqliteStore {
    fn record_tick(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
        changes: &[PairChange],
    ) -> Result<(), StoreError> {
        crate::store::check_times(transitions)?;
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            check_lease(&transaction, lease)?;
            if let Some(tick) = crate::store::tick_of(transitions, changes) {
                advance_tick(&transaction, lease, tick)?;
            }
            {
                // A transition ends its pair's pending and clear runs; the
                // changes set them.
                let mut forget = transaction
                    .prepare_cached("DELETE FROM pair_states WHERE rule = ?1 AND host = ?2")?;
                for transition in transitions {
                    let i = &transition.incident;
                    forget.execute(params![&*i.rule_name, &*i.host_name])?;
                }
                let mut set = transaction.prepare_cached(
                    "INSERT INTO pair_states (rule, host, pending_since, clear_since) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (rule, host) DO UPDATE SET \
                     pending_since = excluded.pending_since, clear_since = excluded.clear_since",
                )?;
                for change in changes {
                    let (rule, host) = (&*change.rule_name, &*change.host);
                    if change.pending_since.is_none() && change.clear_since.is_none() {
                        forget.execute(params![rule, host])?;
                    } else {
                        set.execute(params![
                            rule,
                            host,
                            change.pending_since,
                            change.clear_since
                        ])?;
                    }
                }
            }
            {
                let mut stored = transaction
                    .prepare_cached("SELECT end_time IS NOT NULL FROM incidents WHERE id = ?1")?;
                let mut open = transaction.prepare_cached(
                    "SELECT id FROM incidents WHERE rule = ?1 AND host = ?2 \
                     AND end_time IS NULL AND id != ?3",
                )?;
                let mut incident = transaction.prepare_cached(
                    "INSERT INTO incidents (id, rule, host, start_time, end_time, trigger_value, \
                 extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (id) DO UPDATE SET end_time = excluded.end_time, \
                 extra = excluded.extra",
                )?;
                let mut pair = transaction.prepare_cached(
                    "INSERT INTO pairs (rule, host, last_end) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (rule, host) DO UPDATE SET last_end = excluded.last_end",
                )?;
                for (index, transition) in transitions.iter().enumerate() {
                    let targets = targets.get(index).map_or(&[][..], Vec::as_slice);
                    let i = &transition.incident;
                    let (rule, host) = (&*i.rule_name, &*i.host_name);
                    // Recorded already (a retry whose first try succeeded)?
                    let resolved: Option<bool> =
                        stored.query_row([&i.id], |row| row.get(0)).optional()?;
                    let recorded = match transition.kind {
                        TransitionKind::Opened => resolved.is_some(),
                        TransitionKind::Resolved => resolved == Some(true),
                    };
                    if recorded {
                        continue;
                    }
                    if transition.kind == TransitionKind::Opened {
                        let other: Option<String> = open
                            .query_row(params![rule, host, i.id], |row| row.get(0))
                            .optional()?;
                        if let Some(other) = other {
                            return Err(StoreError::AlreadyOpen {
                                rule: rule.to_string(),
                                host: host.to_string(),
                                open: other,
                            });
                        }
                    }
                    let extra = Extra::encode(i);
                    incident.execute(params![
                        i.id,
                        rule,
                        host,
                        i.start_time,
                        i.end_time,
                        stored_value(i.trigger_value),
                        extra
                    ])?;
                    if let Some(end) = i.end_time {
                        pair.execute(params![rule, host, end])?;
                    }
                    for target in targets {
                        let kind = transition.kind.as_str();
                        queue(
                            &transaction,
                            target,
                            kind,
                            i,
                            transition.at,
                            extra.as_deref(),
                        )?;
                    }
                }
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError> {
        self.read(|connection| {
            let mut pairs = PairRecords::default();
            let mut query = connection.prepare_cached("SELECT rule, host, last_end FROM pairs")?;
            for row in query.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                ))
            })? {
                let (rule, host, last_end) = row?;
                pairs.pair(rule, host).last_end = Some(last_end);
            }
            let mut query = connection
                .prepare_cached("SELECT rule, host, pending_since, clear_since FROM pair_states")?;
            for row in query.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            })? {
                let (rule, host, pending_since, clear_since) = row?;
                let pair = pairs.pair(rule, host);
                pair.pending_since = pending_since;
                pair.clear_since = clear_since;
            }
            let mut query = connection.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE end_time IS NULL"
            ))?;
            for row in query.query_map([], |row| incident_at(row, 0, 6))? {
                let open = row?;
                let (rule, host) = (open.rule_name.to_string(), open.host_name.to_string());
                pairs.pair(rule, host).open = Some(open);
            }
            Ok(pairs.into_vec())
        })
    }

    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError> {
        self.read(|connection| {
            let mut active = connection.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE end_time IS NULL ORDER BY start_time, id"
            ))?;
            let mut resolved = connection.prepare_cached(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE end_time >= ?1 AND start_time <= ?2 ORDER BY start_time, id"
            ))?;
            let active = active
                .query_map([], |row| incident_at(row, 0, 6))?
                .collect::<Result<_, _>>()?;
            let resolved = resolved
                .query_map([from, to], |row| incident_at(row, 0, 6))?
                .collect::<Result<_, _>>()?;
            Ok(Incidents { active, resolved })
        })
    }

    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        self.read(|connection| {
            let incident = connection
                .query_row(
                    &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                    [id],
                    |row| incident_at(row, 0, 6),
                )
                .optional()?;
            let Some(incident) = incident else {
                return Ok(None);
            };
            let mut calls = connection.prepare_cached(
                "SELECT incident_id, target, kind, attempt, started, duration_ms, outcome, \
             succeeded, stdout, stderr FROM hook_calls WHERE incident_id = ?1 ORDER BY id",
            )?;
            let calls = calls
                .query_map([id], |row| {
                    Ok(HookCall {
                        incident_id: row.get(0)?,
                        target: row.get(1)?,
                        kind: kind_from(&row.get::<_, String>(2)?)?,
                        attempt: row.get(3)?,
                        started: row.get(4)?,
                        duration_ms: row.get::<_, i64>(5)?.max(0) as u64,
                        outcome: row.get(6)?,
                        succeeded: row.get(7)?,
                        stdout: row.get(8)?,
                        stderr: row.get(9)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let mut pending = connection.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE incident_id = ?1 ORDER BY id"
            ))?;
            let pending = pending
                .query_map([id], delivery)?
                .collect::<Result<_, _>>()?;
            Ok(Some(IncidentDetail {
                incident,
                calls,
                pending,
            }))
        })
    }

    fn claim_deliveries(
        &self,
        now: Millis,
        claim: &Claim<'_>,
        per_target: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let claimed: Vec<Delivery> = {
                let mut query = transaction.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM (SELECT o.*, ROW_NUMBER() OVER \
                     (PARTITION BY target ORDER BY id) AS place FROM outbox o \
                     WHERE next_attempt <= ?1 AND dead = 0 AND {UNBLOCKED} \
                     AND target NOT IN (SELECT value FROM json_each(?4)) \
                     AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.delivery = o.id \
                     AND c.node != ?2 AND c.until > ?1)) WHERE place <= ?3 ORDER BY id"
                ))?;
                let per_target = i64::try_from(per_target).unwrap_or(i64::MAX);
                let skip = serde_json::to_string(claim.skip).unwrap_or_else(|_| "[]".into());
                let rows = query.query_map(params![now, claim.node, per_target, skip], delivery)?;
                rows.collect::<Result<_, _>>()?
            };
            take_claims(&transaction, &claimed, claim, now)?;
            transaction.commit()?;
            Ok(claimed)
        })
    }

    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError> {
        self.read(|connection| {
            Ok(connection.query_row(
                &format!(
                    "SELECT min(max(next_attempt, coalesce((SELECT until FROM claims c \
                     WHERE c.delivery = o.id), next_attempt))) FROM outbox o WHERE dead = 0 AND {UNBLOCKED}"
                ),
                [],
                |row| row.get(0),
            )?)
        })
    }

    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            insert_call(&transaction, call)?;
            transaction.execute("DELETE FROM claims WHERE delivery = ?1", [delivery])?;
            match retry_at {
                None => transaction.execute("DELETE FROM outbox WHERE id = ?1", [delivery])?,
                Some(at) => transaction.execute(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, held_by = NULL \
                     WHERE id = ?1",
                    [delivery, at],
                )?,
            };
            transaction.commit()?;
            Ok(())
        })
    }

    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            insert_call(&transaction, call)?;
            transaction.execute("DELETE FROM claims WHERE delivery = ?1", [delivery])?;
            transaction.execute(
                "UPDATE outbox SET dead = 1, attempts = attempts + 1, held_by = NULL WHERE id = ?1",
                [delivery],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn hold_delivery(&self, delivery: i64, until: Millis, by: &str) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            transaction.execute("DELETE FROM claims WHERE delivery = ?1", [delivery])?;
            transaction.execute(
                "UPDATE outbox SET next_attempt = ?2, held_by = ?3 WHERE id = ?1",
                params![delivery, until, by],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn postpone_delivery(&self, delivery: i64, until: Millis) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            transaction.execute("DELETE FROM claims WHERE delivery = ?1", [delivery])?;
            transaction.execute(
                "UPDATE outbox SET next_attempt = ?2 WHERE id = ?1",
                [delivery, until],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn claim_target(
        &self,
        target: &str,
        now: Millis,
        claim: &Claim<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let claimed: Vec<Delivery> = {
                let mut query = transaction.prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox o \
                     WHERE target = ?3 AND next_attempt <= ?1 AND dead = 0 AND {UNBLOCKED} \
                     AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.delivery = o.id \
                     AND c.node != ?2 AND c.until > ?1) ORDER BY id"
                ))?;
                let rows = query.query_map(params![now, claim.node, target], delivery)?;
                rows.collect::<Result<_, _>>()?
            };
            take_claims(&transaction, &claimed, claim, now)?;
            transaction.commit()?;
            Ok(claimed)
        })
    }

    fn finish_deliveries(
        &self,
        finished: &[(i64, HookCall)],
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            for (delivery, call) in finished {
                insert_call(&transaction, call)?;
                transaction.execute("DELETE FROM claims WHERE delivery = ?1", [delivery])?;
                match retry_at {
                    None => transaction.execute("DELETE FROM outbox WHERE id = ?1", [delivery])?,
                    Some(at) => transaction.execute(
                        "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, \
                         held_by = NULL WHERE id = ?1",
                        [*delivery, at],
                    )?,
                };
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn group_sent(&self, target: &str, key: &str) -> Result<Option<Millis>, StoreError> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT sent FROM groups_sent WHERE target = ?1 AND key = ?2",
                    [target, key],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    fn set_group_sent(&self, target: &str, key: &str, at: Millis) -> Result<(), StoreError> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO groups_sent (target, key, sent) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (target, key) DO UPDATE SET sent = max(sent, excluded.sent)",
                params![target, key, at],
            )?;
            Ok(())
        })
    }

    fn delete_groups_sent_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            let deleted =
                connection.execute("DELETE FROM groups_sent WHERE sent < ?1", [before])?;
            Ok(deleted as u64)
        })
    }

    fn release_held(&self, now: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            let released = connection.execute(
                "UPDATE outbox SET next_attempt = ?1 \
                 WHERE held_by IS NOT NULL AND dead = 0 AND next_attempt > ?1",
                [now],
            )?;
            Ok(released as u64)
        })
    }

    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            let revived = connection.execute(
                "UPDATE outbox SET dead = 0, next_attempt = ?2 WHERE incident_id = ?1 AND dead = 1",
                params![id, now],
            )?;
            Ok(revived as u64)
        })
    }

    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        self.read(|connection| {
            let count: i64 =
                connection.query_row("SELECT count(*) FROM outbox", [], |row| row.get(0))?;
            Ok(count as u64)
        })
    }

    fn undelivered(&self) -> Result<BTreeMap<String, Undelivered>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT incident_id, max(dead), max(attempts > 0), max(held_by IS NOT NULL) \
                 FROM outbox GROUP BY incident_id",
            )?;
            let rows = statement.query_map([], |row| {
                let state = match (
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ) {
                    (0, 0, 0) => Undelivered::Waiting,
                    (0, 0, _) => Undelivered::Held,
                    (0, _, _) => Undelivered::Failing,
                    _ => Undelivered::Dead,
                };
                Ok((row.get(0)?, state))
            })?;
            Ok(rows.collect::<Result<BTreeMap<String, Undelivered>, _>>()?)
        })
    }

    fn reminder_times(&self) -> Result<BTreeMap<(String, String), Millis>, StoreError> {
        self.read(|connection| {
            let mut query =
                connection.prepare_cached("SELECT incident_id, target, next_at FROM reminders")?;
            let rows = query.query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn forget_reminders(&self, pairs: &[(String, String)]) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            for (id, target) in pairs {
                transaction.execute(
                    "DELETE FROM reminders WHERE incident_id = ?1 AND target = ?2",
                    [id, target],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
    }

    fn enqueue_reminder(
        &self,
        i: &Incident,
        target: &str,
        now: Millis,
        next: Millis,
    ) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let extra = Extra::encode(i);
            queue(&transaction, target, "reminder", i, now, extra.as_deref())?;
            transaction.execute(
                "INSERT INTO reminders (incident_id, target, next_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (incident_id, target) DO UPDATE SET next_at = excluded.next_at",
                params![i.id, target, next],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn acknowledge(
        &self,
        id: &str,
        ack: &Ack,
        targets: &[String],
    ) -> Result<Option<Ack>, StoreError> {
        let data = serde_json::to_string(ack)
            .map_err(|error| StoreError::Corrupt(format!("an acknowledgement: {error}")))?;
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let known: bool = transaction
                .prepare_cached("SELECT 1 FROM incidents WHERE id = ?1")?
                .exists([id])?;
            if !known {
                return Ok(None);
            }
            let first = transaction.execute(
                "INSERT INTO acks (incident_id, data) VALUES (?1, ?2) \
                 ON CONFLICT (incident_id) DO NOTHING",
                [id, &data],
            )? == 1;
            if first && !targets.is_empty() {
                // The incident as it is, for the targets told of it.
                for target in targets {
                    transaction.execute(
                        "INSERT INTO outbox (target, kind, incident_id, rule, host, start_time, \
                         end_time, trigger_value, next_attempt, extra) \
                         SELECT ?1, 'acknowledged', id, rule, host, start_time, end_time, \
                         trigger_value, ?2, extra FROM incidents WHERE id = ?3",
                        params![target, ack.at, id],
                    )?;
                }
            }
            let kept: String = transaction.query_row(
                "SELECT data FROM acks WHERE incident_id = ?1",
                [id],
                |row| row.get(0),
            )?;
            transaction.commit()?;
            let ack = serde_json::from_str(&kept)
                .map_err(|error| StoreError::Corrupt(format!("an acknowledgement: {error}")))?;
            Ok(Some(ack))
        })
    }

    fn acknowledgements(&self, ids: &[&str]) -> Result<BTreeMap<String, Ack>, StoreError> {
        self.read(|connection| {
            let mut query =
                connection.prepare_cached("SELECT data FROM acks WHERE incident_id = ?1")?;
            let mut found = BTreeMap::new();
            for id in ids {
                let data: Option<String> = query.query_row([id], |row| row.get(0)).optional()?;
                if let Some(ack) = data.and_then(|data| serde_json::from_str(&data).ok()) {
                    found.insert(id.to_string(), ack);
                }
            }
            Ok(found)
        })
    }

    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let condition = "end_time < ?1 AND NOT EXISTS \
             (SELECT 1 FROM outbox o WHERE o.incident_id = incidents.id)";
            transaction.execute(
                &format!(
                    "DELETE FROM hook_calls WHERE incident_id IN \
                 (SELECT id FROM incidents WHERE {condition})"
                ),
                [before],
            )?;
            for table in ["acks", "reminders"] {
                transaction.execute(
                    &format!(
                        "DELETE FROM {table} WHERE incident_id IN \
                     (SELECT id FROM incidents WHERE {condition})"
                    ),
                    [before],
                )?;
            }
            let deleted = transaction.execute(
                &format!("DELETE FROM incidents WHERE {condition}"),
                [before],
            )?;
            transaction.commit()?;
            Ok(deleted as u64)
        })
    }
}

impl Coordination for SqliteStore {
    fn condition(&self) -> Condition {
        Condition {
            damage: self
                .history_damage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            ..Default::default()
        }
    }

    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let now = wall_now();
            let held: Option<(String, i64, Millis)> = transaction
                .query_row("SELECT node, token, expires FROM lease", [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let token = match held {
                Some((holder, _, expires)) if holder != node && expires > now => return Ok(None),
                Some((_, token, _)) => token + 1,
                None => 1,
            };
            transaction.execute(
                "INSERT INTO lease (id, node, token, expires) VALUES (1, ?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET node = excluded.node, token = excluded.token, \
                 expires = excluded.expires",
                params![node, token, now.saturating_add(ttl)],
            )?;
            transaction.commit()?;
            Ok(Some(Lease {
                node: node.to_string(),
                token: token as u64,
            }))
        })
    }

    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError> {
        self.write(|connection| {
            let now = wall_now();
            let renewed = connection.execute(
                "UPDATE lease SET expires = ?4 WHERE node = ?1 AND token = ?2 AND expires > ?3",
                params![lease.node, lease.token as i64, now, now.saturating_add(ttl)],
            )?;
            Ok(renewed == 1)
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.write(|connection| {
            connection.execute(
                "UPDATE lease SET expires = 0 WHERE node = ?1 AND token = ?2",
                params![lease.node, lease.token as i64],
            )?;
            Ok(())
        })
    }

    fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError> {
        self.read(|connection| {
            let now = wall_now();
            Ok(connection
                .query_row(
                    "SELECT node, token, expires FROM lease WHERE expires > ?1",
                    [now],
                    |row| {
                        Ok(LeaseHolder {
                            node: row.get(0)?,
                            token: row.get::<_, i64>(1)? as u64,
                            expires_in: row.get::<_, Millis>(2)? - now,
                        })
                    },
                )
                .optional()?)
        })
    }

    fn publish_states(&self, lease: &Lease, tick: Millis, states: &[u8]) -> Result<(), StoreError> {
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            check_lease(&transaction, lease)?;
            advance_tick(&transaction, lease, tick)?;
            transaction.execute(
                "INSERT INTO published (id, data) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                [states],
            )?;
            transaction.commit()?;
            Ok(())
        })
    }

    fn last_tick(&self) -> Result<Option<Millis>, StoreError> {
        self.read(|connection| Ok(last_tick(connection)?.map(|(tick, _)| tick)))
    }

    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|connection| {
            Ok(connection
                .query_row("SELECT data FROM published WHERE id = 1", [], |row| {
                    row.get(0)
                })
                .optional()?)
        })
    }

    fn heartbeat(&self, status: &NodeStatus) -> Result<(), StoreError> {
        let json = serde_json::to_string(status)
            .map_err(|error| StoreError::Corrupt(format!("a node's status: {error}")))?;
        self.write(|connection| {
            connection.execute(
                "INSERT INTO nodes (node, status) VALUES (?1, ?2) \
                 ON CONFLICT (node) DO UPDATE SET status = excluded.status",
                params![status.node, json],
            )?;
            Ok(())
        })
    }

    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        self.read(|connection| {
            let mut query = connection.prepare_cached("SELECT status FROM nodes ORDER BY node")?;
            let rows = query.query_map([], |row| row.get::<_, String>(0))?;
            let mut nodes = Vec::new();
            for row in rows {
                nodes.push(
                    serde_json::from_str(&row?).map_err(|error| {
                        StoreError::Corrupt(format!("a node's status: {error}"))
                    })?,
                );
            }
            Ok(nodes)
        })
    }

    fn forget_node(&self, name: &str) -> Result<(), StoreError> {
        self.write(|connection| {
            connection.execute("DELETE FROM nodes WHERE node = ?1", [name])?;
            Ok(())
        })
    }
}

impl SilenceStore for SqliteStore {
    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let data = serde_json::to_string(silence)
            .map_err(|error| StoreError::Corrupt(format!("a silence: {error}")))?;
        self.write(|connection| {
            connection.execute(
                "INSERT INTO silences (id, ends_at, data) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at, data = excluded.data",
                params![silence.id, silence.ends_at, data],
            )?;
            Ok(())
        })
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached("SELECT id, data FROM silences")?;
            let mut rows = statement.query([])?;
            let mut silences = Vec::new();
            while let Some(row) = rows.next()? {
                let (id, data): (String, String) = (row.get(0)?, row.get(1)?);
                // A damaged silence silences nothing: paging is better
                // than holding every delivery back.
                match serde_json::from_str(&data) {
                    Ok(silence) => silences.push(silence),
                    Err(error) => tracing::error!(id, %error, "a stored silence cannot be read"),
                }
            }
            Ok(silences)
        })
    }

    fn delete_silences_ended_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            let deleted =
                connection.execute("DELETE FROM silences WHERE ends_at < ?1", [before])?;
            Ok(deleted as u64)
        })
    }
}

impl Sessions for SqliteStore {
    fn put_session(&self, key: &str, expires: Millis) -> Result<(), StoreError> {
        self.write(|connection| {
            connection.execute(
                "INSERT INTO sessions (key, expires) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET expires = excluded.expires",
                params![key, expires],
            )?;
            Ok(())
        })
    }

    fn session_expires(&self, key: &str) -> Result<Option<Millis>, StoreError> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT expires FROM sessions WHERE key = ?1",
                    [key],
                    |row| row.get(0),
                )
                .optional()?)
        })
    }

    fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.write(|connection| {
            connection.execute("DELETE FROM sessions WHERE key = ?1", [key])?;
            Ok(())
        })
    }

    fn delete_sessions_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.write(|connection| {
            Ok(connection.execute("DELETE FROM sessions WHERE expires < ?1", [now])? as u64)
        })
    }
}
