//! Rolled-up series in the embedded store: one row per step, host and row
//! span (an hour of minutes, a day of ten minutes), to which the compactor
//! adds the samples it folds into blocks, in the same transaction
//! ([`compaction`](super::compaction)).

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{SqliteStore, begin_write};
use crate::duration::Millis;
use crate::store::damage::or_skip;
use crate::store::fold::merged_points;
use crate::store::rollup::{self, Point, Step};
use crate::store::{ALL_HOSTS, RollupQuery, StoreError};

/// Rewrites one row with its points that `keep` keeps, and `added` merged
/// into them. Returns how many points were left out.
fn rewrite_row(
    transaction: &Transaction<'_>,
    step: Step,
    host: &str,
    start: Millis,
    keep: impl Fn(&Point) -> bool,
    added: Vec<Point>,
) -> Result<u64, StoreError> {
    let (data, left_out) = merged_row(transaction, step, host, start, keep, added)?;
    put_row(transaction, step, host, start, data.as_deref())?;
    Ok(left_out)
}

/// One row's points that `keep` keeps, with `added` merged into them,
/// encoded (`None`: no point left), and how many points were left out.
pub(super) fn merged_row(
    connection: &Connection,
    step: Step,
    host: &str,
    start: Millis,
    keep: impl Fn(&Point) -> bool,
    added: Vec<Point>,
) -> Result<(Option<Vec<u8>>, u64), StoreError> {
    let existing = stored_row(connection, step, host, start)?;
    merged_points(existing.as_deref(), keep, added)
}

/// One stored row's data.
pub(super) fn stored_row(
    connection: &Connection,
    step: Step,
    host: &str,
    start: Millis,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(connection
        .prepare_cached("SELECT data FROM rollups WHERE step = ?1 AND host = ?2 AND start = ?3")?
        .query_row(params![step.id(), host, start], |row| row.get(0))
        .optional()?)
}

/// Writes one row (`None`: deletes it).
pub(super) fn put_row(
    connection: &Connection,
    step: Step,
    host: &str,
    start: Millis,
    data: Option<&[u8]>,
) -> Result<(), StoreError> {
    match data {
        None => connection
            .prepare_cached("DELETE FROM rollups WHERE step = ?1 AND host = ?2 AND start = ?3")?
            .execute(params![step.id(), host, start])?,
        Some(data) => connection
            .prepare_cached(
                "INSERT INTO rollups (step, host, start, data) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (step, host, start) DO UPDATE SET data = excluded.data",
            )?
            .execute(params![step.id(), host, start, data])?,
    };
    Ok(())
}

/// Writes the rows of [`ALL_HOSTS`] of a store rolled up before they were
/// kept, each from every host's row of the same step and start, in the
/// caller's transaction. Returns how many rows it wrote.
pub(super) fn add_all_hosts_rows(connection: &Connection) -> Result<u64, StoreError> {
    let rows: Vec<(i64, Millis)> = connection
        .prepare("SELECT DISTINCT step, start FROM rollups WHERE host <> ''")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut written = 0u64;
    for (id, start) in rows {
        let Some(step) = Step::ALL.into_iter().find(|step| step.id() == id) else {
            return Err(StoreError::Corrupt(format!("a rollup row of step {id}")));
        };
        let mut points = Vec::new();
        {
            let mut query = connection.prepare_cached(
                "SELECT data FROM rollups WHERE step = ?1 AND start = ?2 AND host <> '' \
                 ORDER BY host",
            )?;
            let mut found = query.query(params![id, start])?;
            while let Some(row) = found.next()? {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let decoded = or_skip(rollup::decode(data), || format!("a rollup row at {start}"))?;
                points.extend(decoded.unwrap_or_default());
            }
        }
        let (data, _) = merged_points(None, |_| true, points)?;
        put_row(connection, step, ALL_HOSTS, start, data.as_deref())?;
        written += 1;
    }
    if written > 0 {
        tracing::info!(rows = written, "rolled up every host's samples together");
    }
    Ok(written)
}

/// Writes the hour rows of a store rolled up before they were kept, each
/// from the ten-minute row of the same host and day (a row of either step
/// holds a day), in the caller's transaction. Returns how many rows it
/// wrote.
pub(super) fn add_hour_rows(connection: &Connection) -> Result<u64, StoreError> {
    let rows: Vec<(String, Millis)> = connection
        .prepare("SELECT host, start FROM rollups WHERE step = ?1")?
        .query_map([Step::TenMinutes.id()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut written = 0u64;
    for (host, start) in rows {
        let data: Vec<u8> = connection
            .prepare_cached(
                "SELECT data FROM rollups WHERE step = ?1 AND host = ?2 AND start = ?3",
            )?
            .query_row(params![Step::TenMinutes.id(), host, start], |row| {
                row.get(0)
            })?;
        let Some(points) = or_skip(rollup::decode(&data), || {
            format!("a rollup row of host {host:?} at {start}")
        })?
        else {
            continue;
        };
        let (data, _) = merged_points(None, |_| true, rollup::coarsen(points, Step::Hour))?;
        put_row(connection, Step::Hour, &host, start, data.as_deref())?;
        written += 1;
    }
    if written > 0 {
        tracing::info!(
            rows = written,
            "rolled the stored ten-minute rollups up by the hour"
        );
    }
    Ok(written)
}

impl SqliteStore {
    pub(super) fn rollup_rows(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut crate::store::RowVisitor<'_>,
    ) -> Result<(), StoreError> {
        let RollupQuery {
            step,
            from,
            to,
            host,
            ..
        } = *query;
        if from > to {
            return Ok(());
        }
        self.read(|connection| {
            let first = step.row_of(from);
            // Two statements, so that one host's rows are found by the key.
            let mut query = connection.prepare_cached(match host {
                Some(_) => {
                    "SELECT host, data FROM rollups \
                     WHERE step = ?1 AND host = ?4 AND start >= ?2 AND start <= ?3 ORDER BY start"
                }
                // Along the key, which gives the order: the index by start
                // would need the rows sorted, data and all (five times
                // slower for a day of a thousand hosts).
                None => {
                    "SELECT host, data FROM rollups WHERE step = ?1 AND host > '' \
                     AND +start >= ?2 AND +start <= ?3 AND ?4 IS NULL ORDER BY host, start"
                }
            })?;
            let mut rows = query.query(params![step.id(), first, to, host])?;
            while let Some(row) = rows.next()? {
                let host = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                visit(host, data)?;
            }
            Ok(())
        })
    }

    /// The time before which the compactor has rolled samples up (written
    /// by [`compaction`](super::compaction) in `meta`).
    pub(super) fn rollups_until(&self) -> Result<Millis, StoreError> {
        self.read(|connection| {
            Ok(connection
                .query_row(
                    "SELECT value FROM meta WHERE key = 'rolled_up_until'",
                    [],
                    |row| row.get(0),
                )
                .optional()?
                .unwrap_or(Millis::MIN))
        })
    }

    pub(super) fn delete_points_before(
        &self,
        step: Step,
        before: Millis,
    ) -> Result<u64, StoreError> {
        let _compacting = self.compacting();
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let row = step.row_of(before);
            let mut deleted = 0u64;
            // Whole rows: count their points from their headers.
            {
                let mut query = transaction
                    .prepare_cached("SELECT data FROM rollups WHERE step = ?1 AND start < ?2")?;
                let mut rows = query.query(params![step.id(), row])?;
                while let Some(found) = rows.next()? {
                    let data = found.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                    deleted += rollup::point_count(data)? as u64;
                }
            }
            transaction.execute(
                "DELETE FROM rollups WHERE step = ?1 AND start < ?2",
                params![step.id(), row],
            )?;
            // The row that holds `before`, for each host.
            let hosts: Vec<String> = transaction
                .prepare_cached("SELECT host FROM rollups WHERE step = ?1 AND start = ?2")?
                .query_map(params![step.id(), row], |found| found.get(0))?
                .collect::<Result<_, _>>()?;
            for host in hosts {
                deleted += rewrite_row(
                    &transaction,
                    step,
                    &host,
                    row,
                    |point| point.ts >= before,
                    Vec::new(),
                )?;
            }
            transaction.commit()?;
            Ok(deleted)
        })
    }
}
