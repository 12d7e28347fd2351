//! Samples in the embedded store: recent ones as one row per append (the
//! [`batch`] format), older ones compacted into one row per host and period
//! (the [`block`] format), and each host's latest sample in memory.
//!
//! Every sample has a sequence number, in append order. A recent row holds
//! the samples of one append (fewer once some are compacted) and the
//! sequence number of its first one; a block, the highest sequence number
//! among its samples, so that a read with a cursor can tell that it came
//! too late.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustc_hash::FxHashMap;

use super::{SqliteStore, begin_write};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::batch::{self, BatchReader, Encoded};
use crate::store::block::BlockReader;
use crate::store::damage::or_skip;
use crate::store::fold::{trim_batch, trim_block};
use crate::store::{
    Appended, BLOCK_PERIOD, HostSeen, Once, SampleCursor, SampleVisitor, StoreError,
    decode_metrics, encode_metrics,
};

/// A host's latest sample, its fields encoded by [`encode_metrics`].
#[derive(Debug, Clone)]
pub(super) struct Latest {
    ts: Millis,
    metrics: Vec<u8>,
}

/// Each host's latest sample, by host name.
pub(super) type LatestSamples = FxHashMap<String, Latest>;

/// Notes `sample` as its host's latest when it is not older than the one
/// known (a later append wins a tie).
fn note_latest(latest: &mut LatestSamples, sample: &Sample) {
    match latest.get_mut(sample.host.as_str()) {
        Some(known) if known.ts > sample.ts => {}
        Some(known) => {
            known.ts = sample.ts;
            encode_metrics(&sample.metrics, &mut known.metrics);
        }
        None => {
            let mut metrics = Vec::new();
            encode_metrics(&sample.metrics, &mut metrics);
            latest.insert(
                sample.host.clone(),
                Latest {
                    ts: sample.ts,
                    metrics,
                },
            );
        }
    }
}

/// Reads what the store holds at open: the next sequence number and each
/// host's latest sample.
pub(super) fn load(connection: &Connection) -> Result<(i64, LatestSamples), StoreError> {
    let mut latest = LatestSamples::default();
    let mut next_seq: i64 =
        connection.query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |row| {
            row.get(0)
        })?;
    // Each host's last block, then every recent row (appended after it).
    // Blocks hold samples appended before the compaction that saved the
    // next sequence number, so they cannot raise it.
    let mut last_blocks = connection.prepare(
        "SELECT b.host, b.data FROM \
         (SELECT host, max(start) AS start FROM blocks GROUP BY host) AS last \
         JOIN blocks b ON b.start = last.start AND b.host = last.host",
    )?;
    let mut rows = last_blocks.query([])?;
    while let Some(row) = rows.next()? {
        let host: String = row.get(0)?;
        let samples = BlockReader::new(blob(row, 1)?).and_then(|block| block.samples(&host));
        for sample in or_skip(samples, || block_row(&host))?.unwrap_or_default() {
            note_latest(&mut latest, &sample);
        }
    }
    let mut recent = connection.prepare("SELECT seq, last_seq, data FROM recent ORDER BY seq")?;
    let mut rows = recent.query([])?;
    while let Some(row) = rows.next()? {
        next_seq = next_seq.max(row.get::<_, i64>(1)? + 1);
        let seq = row.get(0)?;
        let samples = or_skip(batch::decode(blob(row, 2)?, seq), || recent_row(seq))?;
        for (_, sample) in samples.unwrap_or_default() {
            note_latest(&mut latest, &sample);
        }
    }
    Ok((next_seq, latest))
}

/// Moves the samples of the version 1 schema (a row per sample) into
/// recent rows, in one transaction with the caller's.
pub(super) fn migrate_rows(connection: &Connection) -> Result<(), StoreError> {
    let exists: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'samples'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(());
    }
    let mut query =
        connection.prepare("SELECT seq, ts, host, metrics FROM samples ORDER BY seq")?;
    let mut rows = query.query([])?;
    let mut chunk: Vec<(i64, Sample)> = Vec::new();
    let flush = |chunk: &mut Vec<(i64, Sample)>| -> Result<(), StoreError> {
        if !chunk.is_empty() {
            insert_recent(connection, chunk)?;
            chunk.clear();
        }
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let sample = Sample {
            ts: row.get(1)?,
            host: row.get(2)?,
            metrics: decode_metrics(blob(row, 3)?)?,
        };
        chunk.push((row.get(0)?, sample));
        if chunk.len() == 10_000 {
            flush(&mut chunk)?;
        }
    }
    flush(&mut chunk)?;
    drop(rows);
    drop(query);
    connection.execute_batch("DROP TABLE samples; DROP TABLE IF EXISTS hosts;")?;
    Ok(())
}

/// A recent row to write: samples with their sequence numbers, encoded.
pub(super) struct RecentRow {
    seq: i64,
    last_seq: i64,
    count: i64,
    min_ts: Millis,
    max_ts: Millis,
    data: Vec<u8>,
}

impl From<batch::Sequenced> for RecentRow {
    fn from(batch: batch::Sequenced) -> RecentRow {
        let batch::Sequenced {
            first,
            last,
            encoded,
        } = batch;
        RecentRow {
            seq: first,
            last_seq: last,
            count: encoded.count as i64,
            min_ts: encoded.min_ts,
            max_ts: encoded.max_ts,
            data: encoded.data,
        }
    }
}

impl RecentRow {
    /// `samples` (with their sequence numbers, increasing) as one row;
    /// `None` for none.
    pub(super) fn new(samples: &[(i64, Sample)]) -> Option<RecentRow> {
        batch::Sequenced::new(samples).map(RecentRow::from)
    }

    pub(super) fn insert(&self, connection: &Connection) -> Result<(), StoreError> {
        connection
            .prepare_cached(
                "INSERT INTO recent (seq, last_seq, count, min_ts, max_ts, data) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                self.seq,
                self.last_seq,
                self.count,
                self.min_ts,
                self.max_ts,
                self.data
            ])?;
        Ok(())
    }
}

/// Writes `samples` (with their sequence numbers, increasing) as one recent row.
fn insert_recent(connection: &Connection, samples: &[(i64, Sample)]) -> Result<(), StoreError> {
    match RecentRow::new(samples) {
        Some(row) => row.insert(connection),
        None => Ok(()),
    }
}

/// A BLOB column's bytes.
/// Names a row of recent samples in the log of a row left out.
fn recent_row(first_seq: i64) -> String {
    format!("recent samples from seq {first_seq}")
}

/// Names a block in the log of a row left out.
fn block_row(host: &str) -> String {
    format!("a block of host {host:?}")
}

fn blob<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> Result<&'r [u8], StoreError> {
    Ok(row
        .get_ref(column)?
        .as_blob()
        .map_err(rusqlite::Error::from)?)
}

/// Every sample of a recent row, with its sequence number.
pub(super) fn read_recent(data: &[u8], seq: i64) -> Result<Vec<(i64, Sample)>, StoreError> {
    batch::decode(data, seq)
}

/// Writes the next-sequence row, so that it outlives the rows it counted.
pub(super) fn save_next_seq(
    transaction: &Transaction<'_>,
    next_seq: i64,
) -> Result<(), StoreError> {
    transaction
        .prepare_cached("UPDATE meta SET value = max(value, ?1) WHERE key = 'next_seq'")?
        .execute([next_seq])?;
    Ok(())
}

/// Keeps `once` in the transaction unless its key is held already (and not
/// expired at `now`).
pub(super) fn keep_once(
    transaction: &Transaction<'_>,
    once: &Once,
    now: Millis,
) -> Result<Appended, StoreError> {
    let held: Option<String> = transaction
        .prepare_cached("SELECT fingerprint FROM once WHERE key = ?1 AND expires > ?2")?
        .query_row(params![once.key, now], |row| row.get(0))
        .optional()?;
    Ok(match held {
        Some(fingerprint) if fingerprint == once.fingerprint => Appended::Replayed,
        Some(_) => Appended::Conflict,
        None => {
            transaction
                .prepare_cached(
                    "INSERT INTO once (key, fingerprint, expires) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                     expires = excluded.expires",
                )?
                .execute(params![
                    once.key,
                    once.fingerprint,
                    now.saturating_add(once.keep)
                ])?;
            Appended::Stored
        }
    })
}

impl SqliteStore {
    /// Appends each batch as one recent row, in one transaction.
    pub(super) fn append(
        &self,
        batches: &[(&[Sample], &Encoded)],
        keys: &[Option<&Once>],
        now: Millis,
    ) -> Result<Vec<Appended>, StoreError> {
        if batches.iter().all(|(samples, _)| samples.is_empty()) {
            return Ok(vec![Appended::Stored; batches.len()]);
        }
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let mut seq = self.next_seq.load(Relaxed);
            let mut appended = Vec::with_capacity(batches.len());
            if keys.iter().any(Option::is_some) {
                transaction
                    .prepare_cached("DELETE FROM once WHERE expires <= ?1")?
                    .execute([now])?;
            }
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO recent (seq, last_seq, count, min_ts, max_ts, data) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?;
                for (index, (_, encoded)) in batches.iter().enumerate() {
                    let outcome = match keys.get(index).copied().flatten() {
                        Some(once) => keep_once(&transaction, once, now)?,
                        None => Appended::Stored,
                    };
                    appended.push(outcome);
                    if outcome != Appended::Stored || encoded.count == 0 {
                        continue;
                    }
                    let count = encoded.count as i64;
                    insert.execute(params![
                        seq,
                        seq + count - 1,
                        count,
                        encoded.min_ts,
                        encoded.max_ts,
                        encoded.data
                    ])?;
                    seq += count;
                }
            }
            transaction.commit()?;
            self.next_seq.store(seq, Relaxed);
            let mut latest = self.latest();
            for ((samples, _), outcome) in batches.iter().zip(&appended) {
                if *outcome == Appended::Stored {
                    for sample in *samples {
                        note_latest(&mut latest, sample);
                    }
                }
            }
            Ok(appended)
        })
    }

    /// The samples of `[from, to]` in recent rows (not compacted yet).
    pub(super) fn scan_recent(
        &self,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        if from > to {
            return Ok(());
        }
        self.read(|connection| {
            let mut rows = connection.prepare_cached(
                "SELECT seq, data FROM recent WHERE max_ts >= ?1 AND min_ts <= ?2",
            )?;
            let mut rows = rows.query(params![from, to])?;
            while let Some(row) = rows.next()? {
                let seq: i64 = row.get(0)?;
                let samples = or_skip(read_recent(blob(row, 1)?, seq), || recent_row(seq))?;
                for (_, sample) in samples.into_iter().flatten() {
                    if (from..=to).contains(&sample.ts) {
                        visit(sample);
                    }
                }
            }
            Ok(())
        })
    }

    pub(super) fn cursor(&self) -> SampleCursor {
        // Appends move it with the writer locked; so does this read.
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.next_seq.load(Relaxed)
    }

    pub(super) fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        let latest = self.latest();
        let mut samples = latest
            .iter()
            .map(|(host, latest)| {
                Ok(Sample {
                    host: host.clone(),
                    ts: latest.ts,
                    metrics: decode_metrics(&latest.metrics)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        drop(latest);
        samples.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(samples)
    }

    pub(super) fn hosts_seen(&self) -> Vec<HostSeen> {
        let mut hosts: Vec<HostSeen> = self
            .latest()
            .iter()
            .map(|(host, latest)| HostSeen {
                host: host.clone(),
                last_seen: latest.ts,
            })
            .collect();
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        hosts
    }

    /// Samples of `[from, to]` appended before `cursor`, in (timestamp, host,
    /// append) order, from blocks and recent rows as of one snapshot.
    pub(super) fn scan(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        host: Option<&str>,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        if from > to {
            return Ok(());
        }
        self.read(|connection| {
            // One read transaction: a compaction cannot move samples between
            // the two queries.
            let snapshot = connection.unchecked_transaction()?;
            let mut recent = RecentStream::open(&snapshot, from, to, cursor, host)?;
            let mut periods = snapshot.prepare_cached(match host {
                None => {
                    "SELECT start, host, max_seq, data FROM blocks \
                     WHERE start > ?1 AND start <= ?2 AND max_ts >= ?3 AND min_ts <= ?2 \
                     ORDER BY start, host"
                }
                Some(_) => {
                    "SELECT start, host, max_seq, data FROM blocks \
                     WHERE host = ?4 AND start > ?1 AND start <= ?2 AND max_ts >= ?3 \
                     AND min_ts <= ?2 ORDER BY start"
                }
            })?;
            let first = from.saturating_sub(BLOCK_PERIOD);
            let mut rows = match host {
                None => periods.query(params![first, to, from])?,
                Some(host) => periods.query(params![first, to, from, host])?,
            };
            let mut period: Vec<(String, Vec<u8>)> = Vec::new();
            let mut start = None;
            while let Some(row) = rows.next()? {
                let row_start: Millis = row.get(0)?;
                if row.get::<_, i64>(2)? >= cursor {
                    return Err(StoreError::CompactedAfterCursor);
                }
                if start.is_some_and(|start| start != row_start) {
                    merge_period(&period, from, to, &mut recent, visit)?;
                    period.clear();
                }
                start = Some(row_start);
                period.push((row.get(1)?, row.get(3)?));
            }
            merge_period(&period, from, to, &mut recent, visit)?;
            while let Some(sample) = recent.pop()? {
                visit(sample);
            }
            Ok(())
        })
    }

    /// Hands `host`'s samples of `[from, to]` to `visitor` straight from its
    /// blocks, in time order, when none of them lies in the recent rows (a
    /// late sample, to merge in time order): then answers `false` and hands
    /// nothing, and the caller reads them as [`SqliteStore::scan`] does.
    pub(super) fn visit_host(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<bool, StoreError> {
        if from > to {
            return Ok(true);
        }
        self.read(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            let mut recent =
                RecentStream::open(&snapshot, from, to, SampleCursor::MAX, Some(host))?;
            if recent.pop()?.is_some() {
                return Ok(false);
            }
            let mut blocks = snapshot.prepare_cached(
                "SELECT data FROM blocks WHERE host = ?4 AND start > ?1 AND start <= ?2 \
                 AND max_ts >= ?3 AND min_ts <= ?2 ORDER BY start",
            )?;
            let first = from.saturating_sub(BLOCK_PERIOD);
            let mut rows = blocks.query(params![first, to, from, host])?;
            let mut room = crate::store::block::Room::default();
            while let Some(row) = rows.next()? {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let Some(block) = or_skip(BlockReader::new(data), || block_row(host))? else {
                    continue;
                };
                // A block damaged part-way costs the rest of that block.
                or_skip(block.visit(host, (from, to), visitor, &mut room), || {
                    block_row(host)
                })?;
            }
            Ok(true)
        })
    }

    /// Hands every sample of `[from, to]` to `visitor`: blocks first, then
    /// recent rows, in one read transaction; a recent row's samples as they
    /// are in it, without copying them.
    pub(super) fn visit(
        &self,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        if from > to {
            return Ok(());
        }
        self.read(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            let mut blocks = snapshot.prepare_cached(
                "SELECT host, data FROM blocks \
                 WHERE start > ?1 AND start <= ?2 AND max_ts >= ?3 AND min_ts <= ?2",
            )?;
            let mut rows = blocks.query(params![from.saturating_sub(BLOCK_PERIOD), to, from])?;
            let mut room = crate::store::block::Room::default();
            let mut values = Vec::new();
            while let Some(row) = rows.next()? {
                let host = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                // Decoded straight into the visitor, without a sample's
                // strings: a block damaged part-way hands over what is
                // before the damage.
                let Some(block) = or_skip(BlockReader::new(data), || block_row(host))? else {
                    continue;
                };
                or_skip(block.visit(host, (from, to), visitor, &mut room), || {
                    block_row(host)
                })?;
            }
            let mut recent = snapshot.prepare_cached(
                "SELECT seq, data FROM recent WHERE max_ts >= ?1 AND min_ts <= ?2",
            )?;
            let mut rows = recent.query(params![from, to])?;
            while let Some(row) = rows.next()? {
                let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                let seq = row.get(0)?;
                let Some(mut reader) = or_skip(BatchReader::new(data, seq), || recent_row(seq))?
                else {
                    continue;
                };
                visitor.names(reader.field_names());
                // A row damaged part-way costs the rest of that row.
                while let Some((_, host, ts)) =
                    or_skip(reader.next_values(&mut values), || recent_row(seq))?.flatten()
                {
                    if ts >= from && ts <= to {
                        visitor.sample(host, ts, &values);
                    }
                }
            }
            Ok(())
        })
    }

    /// Samples appended at or after `cursor`, in append order; the cursor
    /// after the last.
    pub(super) fn since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError> {
        self.read(|connection| {
            let snapshot = connection.unchecked_transaction()?;
            let compacted: Option<i64> = snapshot
                .query_row(
                    "SELECT value FROM meta WHERE key = 'compacted_seq'",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            if compacted.is_some_and(|seq| seq >= cursor) {
                return Err(StoreError::CompactedAfterCursor);
            }
            // Rows hold disjoint runs of sequence numbers: the last row that
            // starts before the cursor may hold some at or after it.
            let mut rows = snapshot.prepare_cached(
                "SELECT seq, data FROM recent WHERE seq >= \
                 coalesce((SELECT max(seq) FROM recent WHERE seq < ?1), ?1) ORDER BY seq",
            )?;
            let mut rows = rows.query([cursor])?;
            let mut next = cursor;
            while let Some(row) = rows.next()? {
                let first = row.get(0)?;
                let samples = or_skip(read_recent(blob(row, 1)?, first), || recent_row(first))?;
                for (seq, sample) in samples.unwrap_or_default() {
                    if seq >= cursor {
                        next = next.max(seq + 1);
                        visit(sample);
                    }
                }
            }
            Ok(next)
        })
    }

    pub(super) fn delete_before(&self, before: Millis) -> Result<u64, StoreError> {
        let _compacting = self.compacting();
        self.write(|connection| {
            let transaction = begin_write(connection)?;
            let mut deleted = 0u64;
            // Rows with samples on both sides are rewritten with the newer ones.
            let straddling: Vec<(i64, String, i64, Vec<u8>)> = transaction
                .prepare_cached(
                    "SELECT id, host, start, data FROM blocks WHERE min_ts < ?1 AND max_ts >= ?1",
                )?
                .query_map([before], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
            for (id, host, _, data) in straddling {
                // A damaged block goes with the samples it can no longer give.
                let Some((kept, left_out)) =
                    or_skip(trim_block(&data, &host, before), || block_row(&host))?
                else {
                    transaction.execute("DELETE FROM blocks WHERE id = ?1", [id])?;
                    continue;
                };
                deleted += left_out;
                transaction.execute(
                    "UPDATE blocks SET data = ?2, count = ?3, min_ts = ?4, max_ts = ?5 \
                     WHERE id = ?1",
                    params![id, kept.data, kept.count, kept.min_ts, kept.max_ts],
                )?;
            }
            let straddling: Vec<(i64, Vec<u8>)> = transaction
                .prepare_cached("SELECT seq, data FROM recent WHERE min_ts < ?1 AND max_ts >= ?1")?
                .query_map([before], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (seq, data) in straddling {
                transaction.execute("DELETE FROM recent WHERE seq = ?1", [seq])?;
                let Some((kept, left_out)) =
                    or_skip(trim_batch(&data, seq, before), || recent_row(seq))?
                else {
                    continue;
                };
                deleted += left_out;
                insert_recent(&transaction, &kept)?;
            }
            let counted: i64 = transaction.query_row(
                "SELECT (SELECT coalesce(sum(count), 0) FROM blocks WHERE max_ts < ?1) + \
                 (SELECT coalesce(sum(count), 0) FROM recent WHERE max_ts < ?1)",
                [before],
                |row| row.get(0),
            )?;
            deleted += counted as u64;
            transaction.execute("DELETE FROM blocks WHERE max_ts < ?1", [before])?;
            transaction.execute("DELETE FROM recent WHERE max_ts < ?1", [before])?;
            save_next_seq(&transaction, self.next_seq.load(Relaxed))?;
            transaction.commit()?;
            self.latest().retain(|_, latest| latest.ts >= before);
            Ok(deleted)
        })
    }

    /// Held by a compaction or a deletion of samples or rollups: the rows a
    /// compaction read stay as they were until it writes.
    pub(super) fn compacting(&self) -> std::sync::MutexGuard<'_, ()> {
        self.compacting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, LatestSamples> {
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The samples of one period's blocks (one per host, in host order), merged
/// in (timestamp, host) order with the recent samples that sort before each.
fn merge_period(
    period: &[(String, Vec<u8>)],
    from: Millis,
    to: Millis,
    recent: &mut RecentStream<'_>,
    visit: &mut dyn FnMut(Sample),
) -> Result<(), StoreError> {
    let mut readers = Vec::with_capacity(period.len());
    // (timestamp, host index): the host index orders by name.
    let mut heads = BinaryHeap::new();
    let mut pending = Vec::with_capacity(period.len());
    for (index, (host, data)) in period.iter().enumerate() {
        let mut reader = or_skip(BlockReader::new(data), || block_row(host))?;
        let head = match reader.as_mut() {
            Some(reader) => or_skip(reader.next_sample(), || block_row(host))?.flatten(),
            None => None,
        };
        if let Some((ts, _)) = &head {
            heads.push(Reverse((*ts, index)));
        }
        readers.push(reader);
        pending.push(head);
    }
    while let Some(Reverse((ts, index))) = heads.pop() {
        let host = &period[index].0;
        while recent.sorts_before(ts, host)? {
            if let Some(sample) = recent.pop()? {
                visit(sample);
            }
        }
        if let Some((ts, metrics)) = pending[index].take()
            && ts >= from
            && ts <= to
        {
            visit(Sample {
                host: host.clone(),
                ts,
                metrics,
            });
        }
        // A block damaged part-way costs the rest of that block.
        pending[index] = match readers[index].as_mut() {
            Some(reader) => or_skip(reader.next_sample(), || block_row(host))?.flatten(),
            None => None,
        };
        if let Some((ts, _)) = &pending[index] {
            heads.push(Reverse((*ts, index)));
        }
    }
    Ok(())
}

/// A recent sample waiting to be visited, ordered by (timestamp, host, seq).
struct Pending {
    seq: i64,
    sample: Sample,
}

impl Pending {
    fn key(&self) -> (Millis, &str, i64) {
        (self.sample.ts, &self.sample.host, self.seq)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// The recent samples of a scan in (timestamp, host, seq) order. Rows are
/// read in append order, and a sample is given out once no row left to read
/// can hold an earlier one: since timestamps mostly grow with appends, few
/// samples wait in memory.
struct RecentStream<'c> {
    connection: &'c Connection,
    /// (seq, lowest timestamp) of the rows to read, in seq order.
    rows: Vec<(i64, Millis)>,
    /// One host's samples only.
    host: Option<String>,
    /// The lowest timestamp of `rows[i..]`, for each i (and MAX past the end).
    lowest_after: Vec<Millis>,
    next_row: usize,
    waiting: BinaryHeap<Reverse<Pending>>,
    from: Millis,
    to: Millis,
    cursor: SampleCursor,
}

impl<'c> RecentStream<'c> {
    fn open(
        connection: &'c Connection,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        host: Option<&str>,
    ) -> Result<Self, StoreError> {
        let rows: Vec<(i64, Millis)> = connection
            .prepare_cached(
                "SELECT seq, min_ts FROM recent \
                 WHERE max_ts >= ?1 AND min_ts <= ?2 AND seq < ?3 ORDER BY seq",
            )?
            .query_map(params![from, to, cursor], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut lowest_after = vec![Millis::MAX; rows.len() + 1];
        for i in (0..rows.len()).rev() {
            lowest_after[i] = lowest_after[i + 1].min(rows[i].1);
        }
        Ok(RecentStream {
            connection,
            rows,
            host: host.map(str::to_string),
            lowest_after,
            next_row: 0,
            waiting: BinaryHeap::new(),
            from,
            to,
            cursor,
        })
    }

    /// Reads rows until the earliest waiting sample is known to be the
    /// earliest of all; returns its key, `None` when all are visited.
    fn head(&mut self) -> Result<Option<(Millis, &str)>, StoreError> {
        loop {
            let settled = match self.waiting.peek() {
                Some(Reverse(first)) => first.sample.ts < self.lowest_after[self.next_row],
                None => self.next_row == self.rows.len(),
            };
            if settled {
                break;
            }
            let (seq, _) = self.rows[self.next_row];
            self.next_row += 1;
            let data: Vec<u8> = self
                .connection
                .prepare_cached("SELECT data FROM recent WHERE seq = ?1")?
                .query_row([seq], |row| row.get(0))?;
            let Some(mut reader) = or_skip(BatchReader::new(&data, seq), || recent_row(seq))?
            else {
                continue;
            };
            while let Some((at, sample)) =
                or_skip(reader.next_of(self.host.as_deref()), || recent_row(seq))?.flatten()
            {
                if at < self.cursor && sample.ts >= self.from && sample.ts <= self.to {
                    self.waiting.push(Reverse(Pending { seq: at, sample }));
                }
            }
        }
        Ok(self
            .waiting
            .peek()
            .map(|Reverse(first)| (first.sample.ts, first.sample.host.as_str())))
    }

    /// Whether the next recent sample sorts before a block's sample of `ts`
    /// and `host` (a block's samples were appended before any recent one of
    /// the same host and timestamp).
    fn sorts_before(&mut self, ts: Millis, host: &str) -> Result<bool, StoreError> {
        Ok(self
            .head()?
            .is_some_and(|(first_ts, first_host)| (first_ts, first_host) < (ts, host)))
    }

    fn pop(&mut self) -> Result<Option<Sample>, StoreError> {
        self.head()?;
        Ok(self.waiting.pop().map(|Reverse(pending)| pending.sample))
    }
}
