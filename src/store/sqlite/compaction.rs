//! Compaction in two phases. The work (decoding recent rows, merging and
//! encoding blocks and rollups) runs on a reader's snapshot; the writes then
//! run in one short transaction on the writer, so that appends wait only
//! for the writes. One compaction or deletion runs at a time
//! ([`SqliteStore::compacting`]): the rows a compaction read are still as
//! they were when it writes, since appends only add rows after them.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::SqliteStore;
use super::rollups::{merged_row, put_row};
use super::samples::{RecentRow, period_of, read_recent, save_next_seq, span};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::StoreError;
use crate::store::block::{self, BlockReader};
use crate::store::rollup::{self, Step};

/// The most samples one compaction folds: the work and the transaction grow
/// with it, and a period of a large fleet takes several.
const COMPACTION_SAMPLES: u64 = 200_000;

/// A block to write, replacing the one of the same host and period.
struct BlockRow {
    replaces: Option<i64>,
    start: Millis,
    host: String,
    min_ts: Millis,
    max_ts: Millis,
    count: i64,
    max_seq: i64,
    data: Vec<u8>,
}

/// What one compaction writes.
struct Plan {
    /// The period boundary: samples before it are folded.
    before: Millis,
    folded: u64,
    /// Whether every recent row with samples before `before` was read.
    complete: bool,
    /// Recent rows folded (deleted), and what is left of them (inserted).
    deleted_rows: Vec<i64>,
    kept_rows: Vec<RecentRow>,
    blocks: Vec<BlockRow>,
    /// (step, host, row start, data; `None` deletes the row).
    rollups: Vec<(Step, String, Millis, Option<Vec<u8>>)>,
}

impl SqliteStore {
    /// Folds recent samples with `ts` before the period that holds `before`
    /// into blocks and rollups, at most [`COMPACTION_SAMPLES`] at a time.
    /// Returns how many samples were folded: 0 when none is left.
    pub(super) fn compact(&self, before: Millis) -> Result<u64, StoreError> {
        let _compacting = self.compacting();
        let before = period_of(before);
        let started = std::time::Instant::now();
        let plan = self.read(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            plan(&snapshot, before)
        })?;
        if plan.folded == 0 && !plan.complete {
            return Ok(0);
        }
        let planned = started.elapsed();
        let next_seq = self.next_seq.load(std::sync::atomic::Ordering::Relaxed);
        self.write(|connection| {
            let transaction = connection.transaction()?;
            apply(&transaction, &plan)?;
            save_next_seq(&transaction, next_seq)?;
            transaction.commit()?;
            Ok(())
        })?;
        tracing::debug!(
            folded = plan.folded,
            blocks = plan.blocks.len(),
            planned = ?planned,
            written = ?started.elapsed() - planned,
            "samples compacted"
        );
        Ok(plan.folded)
    }
}

/// Reads what to fold and works out every row to write.
fn plan(connection: &Connection, before: Millis) -> Result<Plan, StoreError> {
    let mut rows: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut complete = true;
    {
        let mut query = connection
            .prepare_cached("SELECT seq, count, data FROM recent WHERE min_ts < ?1 ORDER BY seq")?;
        let mut found = query.query([before])?;
        let mut samples = 0u64;
        while let Some(row) = found.next()? {
            rows.push((row.get(0)?, row.get(2)?));
            samples += row.get::<_, i64>(1)?.max(0) as u64;
            if samples >= COMPACTION_SAMPLES {
                complete = found.next()?.is_none();
                break;
            }
        }
    }
    let mut plan = Plan {
        before,
        folded: 0,
        complete,
        deleted_rows: Vec::with_capacity(rows.len()),
        kept_rows: Vec::new(),
        blocks: Vec::new(),
        rollups: Vec::new(),
    };
    // The samples to fold, by period and host, in append order.
    let mut groups: BTreeMap<(Millis, String), Vec<(i64, Sample)>> = BTreeMap::new();
    for (seq, data) in rows {
        let (old, kept): (Vec<_>, Vec<_>) = read_recent(&data, seq)?
            .into_iter()
            .partition(|(_, sample)| sample.ts < before);
        plan.folded += old.len() as u64;
        for (seq, sample) in old {
            groups
                .entry((period_of(sample.ts), sample.host.clone()))
                .or_default()
                .push((seq, sample));
        }
        plan.deleted_rows.push(seq);
        plan.kept_rows.extend(RecentRow::new(&kept));
    }
    // Rollup points to add, by row.
    let mut points: BTreeMap<(Step, String, Millis), Vec<rollup::Point>> = BTreeMap::new();
    for ((start, host), mut new) in groups {
        // Stable: ties stay in append order.
        new.sort_by_key(|(_, sample)| sample.ts);
        for step in Step::ALL {
            let row = step.row_of(start);
            points
                .entry((step, host.clone(), row))
                .or_default()
                .extend(rollup::roll_up(new.iter().map(|(_, sample)| sample), step));
        }
        plan.blocks
            .push(merged_block(connection, start, host, new)?);
    }
    for ((step, host, start), added) in points {
        let (data, _) = merged_row(connection, step, &host, start, |_| true, added)?;
        plan.rollups.push((step, host, start, data));
    }
    Ok(plan)
}

/// The block of `host` and the period starting at `start` with `new`
/// samples (in time order, ties in append order) added after those it held.
fn merged_block(
    connection: &Connection,
    start: Millis,
    host: String,
    new: Vec<(i64, Sample)>,
) -> Result<BlockRow, StoreError> {
    let existing: Option<(i64, i64, Vec<u8>)> = connection
        .prepare_cached("SELECT id, max_seq, data FROM blocks WHERE start = ?1 AND host = ?2")?
        .query_row(params![start, host], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let mut samples = Vec::new();
    let mut max_seq = new.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
    let mut replaces = None;
    if let Some((id, seq, data)) = existing {
        samples = BlockReader::new(&data)?.samples(&host)?;
        max_seq = max_seq.max(seq);
        replaces = Some(id);
    }
    samples.extend(new.into_iter().map(|(_, sample)| sample));
    // Stable: samples of equal timestamp stay in append order.
    samples.sort_by_key(|sample| sample.ts);
    let refs: Vec<&Sample> = samples.iter().collect();
    let data = block::encode(&refs).ok_or_else(|| {
        StoreError::Corrupt(format!("{host}'s block at {start} holds too many samples"))
    })?;
    let (min_ts, max_ts) = span(samples.iter().map(|s| s.ts));
    Ok(BlockRow {
        replaces,
        start,
        host,
        min_ts,
        max_ts,
        count: samples.len() as i64,
        max_seq,
        data,
    })
}

/// Writes a plan, in the caller's transaction.
fn apply(transaction: &Transaction<'_>, plan: &Plan) -> Result<(), StoreError> {
    let mut delete_row = transaction.prepare_cached("DELETE FROM recent WHERE seq = ?1")?;
    for seq in &plan.deleted_rows {
        delete_row.execute([seq])?;
    }
    for row in &plan.kept_rows {
        row.insert(transaction)?;
    }
    let mut delete_block = transaction.prepare_cached("DELETE FROM blocks WHERE id = ?1")?;
    let mut insert_block = transaction.prepare_cached(
        "INSERT INTO blocks (start, host, min_ts, max_ts, count, max_seq, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for block in &plan.blocks {
        if let Some(id) = block.replaces {
            delete_block.execute([id])?;
        }
        insert_block.execute(params![
            block.start,
            block.host,
            block.min_ts,
            block.max_ts,
            block.count,
            block.max_seq,
            block.data
        ])?;
    }
    for (step, host, start, data) in &plan.rollups {
        put_row(transaction, *step, host, *start, data.as_deref())?;
    }
    if let Some(max_seq) = plan.blocks.iter().map(|block| block.max_seq).max() {
        // For reads that follow appends from a cursor (`samples_since`).
        transaction
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES ('compacted_seq', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            )?
            .execute([max_seq])?;
    }
    if plan.complete {
        // Every recent sample before `before` is now in blocks and rollups.
        transaction
            .prepare_cached(
                "INSERT INTO meta (key, value) VALUES ('rolled_up_until', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            )?
            .execute([plan.before])?;
    }
    Ok(())
}
