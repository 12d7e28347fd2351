//! Compaction in two phases. The work (decoding recent rows, merging and
//! encoding blocks and rollups: [`fold`]) runs on a reader's snapshot; the
//! writes then run in one short transaction on the writer, so that appends
//! wait only for the writes. One compaction or deletion runs at a time
//! ([`SqliteStore::compacting`]): the rows a compaction read are still as
//! they were when it writes, since appends only add rows after them.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::rollups::{put_row, stored_row};
use super::samples::{RecentRow, save_next_seq};
use super::{SqliteStore, begin_write};
use crate::duration::Millis;
use crate::store::fold::{self, Fold, Stored, period_of};
use crate::store::rollup::Step;
use crate::store::{RollupsFrom, StoreError};

/// The most samples one compaction folds: the work and the transaction grow
/// with it, and a period of a large fleet takes several.
pub const COMPACTION_SAMPLES: u64 = 200_000;

/// What one compaction writes.
struct Plan {
    /// The period boundary: samples before it are folded.
    before: Millis,
    /// Whether every recent row with samples before `before` was read.
    complete: bool,
    fold: Fold,
}

/// What is stored already, read on the compaction's snapshot.
struct Snapshot<'c>(&'c Connection);

impl Stored for Snapshot<'_> {
    fn block(&mut self, start: Millis, host: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT data, max_seq FROM blocks WHERE start = ?1 AND host = ?2")?
            .query_row(params![start, host], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    fn rollup_row(
        &mut self,
        step: Step,
        host: &str,
        start: Millis,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        stored_row(self.0, step, host, start)
    }
}

impl SqliteStore {
    /// Folds recent samples with `ts` before the period that holds `before`
    /// into blocks and rollups, at most [`COMPACTION_SAMPLES`] at a time.
    /// Returns how many samples were folded: 0 when none is left.
    pub(super) fn compact(
        &self,
        before: Millis,
        rollups_from: RollupsFrom,
    ) -> Result<u64, StoreError> {
        let _compacting = self.compacting();
        let before = period_of(before);
        let started = std::time::Instant::now();
        let plan = self.read(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            plan(&snapshot, before, rollups_from)
        })?;
        if plan.fold.folded == 0 && !plan.complete {
            return Ok(0);
        }
        let planned = started.elapsed();
        let next_seq = self.next_seq.load(std::sync::atomic::Ordering::Relaxed);
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            apply(&transaction, &plan)?;
            save_next_seq(&transaction, next_seq)?;
            transaction.commit()?;
            Ok(())
        })?;
        tracing::debug!(
            folded = plan.fold.folded,
            blocks = plan.fold.blocks.len(),
            planned = ?planned,
            written = ?started.elapsed() - planned,
            "samples compacted"
        );
        self.give_back_pages()?;
        Ok(plan.fold.folded)
    }

    /// Gives free pages back to the file system, at most
    /// [`PAGES_GIVEN_BACK`] at a time, once more than [`FREE_PAGES_KEPT`]
    /// are free: compaction empties the recent rows' pages, which would
    /// otherwise stay in the file. Only a file in incremental auto-vacuum
    /// mode (every file this version creates) can; others keep them.
    pub(super) fn give_back_pages(&self) -> Result<(), StoreError> {
        self.give_back_pages_over(FREE_PAGES_KEPT)
    }

    /// [`SqliteStore::give_back_pages`], once more than `kept` are free.
    fn give_back_pages_over(&self, kept: i64) -> Result<(), StoreError> {
        self.write(|connection| {
            let incremental: i64 =
                connection.query_row("PRAGMA auto_vacuum", [], |row| row.get(0))?;
            let free: i64 = connection.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
            if incremental == 2 && free > kept {
                // Stepped to its end: a step gives back one page.
                let mut vacuum = connection
                    .prepare(&format!("PRAGMA incremental_vacuum({PAGES_GIVEN_BACK})"))?;
                let mut steps = vacuum.query([])?;
                while steps.next()?.is_some() {}
                tracing::debug!(free, "free pages given back");
            }
            Ok(())
        })
    }
}

/// Free pages kept for the next appends rather than given back: 8 MiB.
const FREE_PAGES_KEPT: i64 = 1024;
/// The most free pages given back at once: 64 MiB, a bounded pause.
const PAGES_GIVEN_BACK: i64 = 8192;

/// Reads what to fold and works out every row to write.
fn plan(
    connection: &Connection,
    before: Millis,
    rollups_from: RollupsFrom,
) -> Result<Plan, StoreError> {
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
    let fold = fold::fold(rows, before, rollups_from, &mut Snapshot(connection))?;
    Ok(Plan {
        before,
        complete,
        fold,
    })
}

/// Writes a plan, in the caller's transaction.
fn apply(transaction: &Transaction<'_>, plan: &Plan) -> Result<(), StoreError> {
    let fold = &plan.fold;
    let mut delete_row = transaction.prepare_cached("DELETE FROM recent WHERE seq = ?1")?;
    for seq in &fold.removed {
        delete_row.execute([seq])?;
    }
    for kept in &fold.kept {
        RecentRow::from(kept.clone()).insert(transaction)?;
    }
    let mut delete_block =
        transaction.prepare_cached("DELETE FROM blocks WHERE start = ?1 AND host = ?2")?;
    let mut insert_block = transaction.prepare_cached(
        "INSERT INTO blocks (start, host, min_ts, max_ts, count, max_seq, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for block in &fold.blocks {
        if block.replaces {
            delete_block.execute(params![block.start, block.host])?;
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
    for row in &fold.rollups {
        put_row(
            transaction,
            row.step,
            &row.host,
            row.start,
            row.data.as_deref(),
        )?;
    }
    if let Some(max_seq) = fold.max_seq() {
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

#[cfg(test)]
mod tests {
    use crate::sample::Sample;
    use crate::store::{BLOCK_PERIOD, SampleStore, SqliteStore};

    /// A compaction gives the recent rows' emptied pages back: the file does
    /// not keep them free.
    #[test]
    fn a_compaction_gives_free_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let base = 1_700_000_000_000 / BLOCK_PERIOD * BLOCK_PERIOD;
        // Six periods of 100 hosts x 10 fields every 10 s: some 36,000 samples.
        for step in 0..360i64 {
            let batch: Vec<Sample> = (0..100)
                .map(|host| {
                    let fields: Vec<(String, f64)> = (0..10)
                        .map(|field| {
                            (
                                format!("f{field}"),
                                ((step * 7 + host * 3 + field) % 97) as f64,
                            )
                        })
                        .collect();
                    let fields: Vec<(&str, f64)> = fields
                        .iter()
                        .map(|(name, value)| (name.as_str(), *value))
                        .collect();
                    Sample::new(format!("host-{host:03}"), base + step * 10_000, &fields)
                })
                .collect();
            store.append_samples(&batch).unwrap();
        }
        let pragma = |name: &str| -> i64 {
            store
                .read(|connection| {
                    Ok(connection.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))?)
                })
                .unwrap()
        };
        assert_eq!(pragma("auto_vacuum"), 2, "a new file vacuums incrementally");
        while store
            .compact_samples(base + 6 * BLOCK_PERIOD, crate::store::EVERY_ROLLUP)
            .unwrap()
            > 0
        {}
        // Below FREE_PAGES_KEPT the pages are kept for the next appends;
        // past it (here, past none) they are given back.
        let (free, before) = (pragma("freelist_count"), pragma("page_count"));
        assert!(
            free > 0 && free <= super::FREE_PAGES_KEPT,
            "{free} free pages"
        );
        store.give_back_pages_over(0).unwrap();
        let (free_after, after) = (pragma("freelist_count"), pragma("page_count"));
        assert_eq!(free_after, 0);
        assert_eq!(after, before - free, "the file shrank by its free pages");
    }
}
