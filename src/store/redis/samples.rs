//! Samples in Redis, in the embedded store's formats: recent ones in the
//! batches they were appended in, older ones folded by [`fold`] into one
//! block per host and period and into the rollups. Reads that must see one
//! moment (a scan, the samples since a cursor) run as one script; the
//! writes of a compaction or a deletion as one script too, under a lock
//! (`compacting`) so that one runs at a time in the whole cluster.

use std::collections::BTreeMap;

use redis::{AsyncCommands, Value};

use super::{RedisStore, SCRIPTS, Values, corrupt};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::batch::{self, BatchReader, Sequenced};
use crate::store::block::BlockReader;
use crate::store::damage::or_skip;
use crate::store::fold::{self, Stored, merged_points, period_of, trim_batch, trim_block};
use crate::store::rollup::{self, Step};
use crate::store::{ALL_HOSTS, BLOCK_PERIOD, RollupQuery, SampleCursor, StoreError};

/// The most samples one compaction folds.
const COMPACTION_SAMPLES: u64 = 200_000;

/// How long the compaction lock is held at most, should its holder die.
const LOCK_TTL: Millis = 10 * 60 * 1000;

/// A batch's `batch_meta` entry: `last count min_ts max_ts`.
#[derive(Debug, Clone, Copy)]
pub(super) struct BatchMeta {
    pub last: i64,
    pub count: u64,
    pub min_ts: Millis,
    pub max_ts: Millis,
}

/// Names a batch in the log of a row left out.
fn recent_row(first_seq: i64) -> String {
    format!("recent samples from seq {first_seq}")
}

/// Names a block in the log of a row left out.
fn block_row(host: &str) -> String {
    format!("a block of host {host:?}")
}

/// Parses space-separated integers.
fn numbers<const N: usize>(text: &[u8], what: &str) -> Result<[i64; N], StoreError> {
    let bad = || corrupt(&format!("{what} {:?}", String::from_utf8_lossy(text)));
    let text = std::str::from_utf8(text).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let mut out = [0; N];
    for slot in &mut out {
        *slot = parts.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    }
    Ok(out)
}

impl BatchMeta {
    fn parse(text: &[u8]) -> Result<BatchMeta, StoreError> {
        let [last, count, min_ts, max_ts] = numbers(text, "a batch's entry")?;
        Ok(BatchMeta {
            last,
            count: count.max(0) as u64,
            min_ts,
            max_ts,
        })
    }
}

/// A block's `block_meta` entry: `min_ts max_ts count max_seq`.
#[derive(Debug, Clone, Copy)]
struct BlockMeta {
    min_ts: Millis,
    max_ts: Millis,
    count: u64,
    max_seq: i64,
}

impl BlockMeta {
    fn parse(text: &[u8]) -> Result<BlockMeta, StoreError> {
        let [min_ts, max_ts, count, max_seq] = numbers(text, "a block's entry")?;
        Ok(BlockMeta {
            min_ts,
            max_ts,
            count: count.max(0) as u64,
            max_seq,
        })
    }

    fn text(min_ts: Millis, max_ts: Millis, count: i64, max_seq: i64) -> String {
        format!("{min_ts} {max_ts} {count} {max_seq}")
    }
}

/// A block's or a rollup row's field: `start\0host`.
fn field(start: Millis, host: &str) -> String {
    format!("{start}\0{host}")
}

fn host_of(field: &[u8]) -> Result<String, StoreError> {
    let at = field
        .iter()
        .position(|byte| *byte == 0)
        .ok_or_else(|| corrupt("a block without its host"))?;
    String::from_utf8(field[at + 1..].to_vec()).map_err(|_| corrupt("a block's host"))
}

/// Byte strings from a script's array reply (nil as empty).
fn strings(value: Value) -> Result<Vec<Vec<u8>>, StoreError> {
    let Value::Array(items) = value else {
        return Err(corrupt("a script's answer is not a list"));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::BulkString(bytes) => Ok(bytes),
            Value::SimpleString(text) => Ok(text.into_bytes()),
            Value::Int(n) => Ok(n.to_string().into_bytes()),
            Value::Nil => Ok(Vec::new()),
            _ => Err(corrupt("a script's answer holds an unexpected value")),
        })
        .collect()
}

/// What one compaction or deletion writes (see `scripts::WRITE_FOLD`).
#[derive(Default)]
struct FoldWrite {
    removed_batches: Vec<i64>,
    added_batches: Vec<Sequenced>,
    removed_blocks: Vec<String>,
    /// Field, start, meta, data.
    blocks: Vec<(String, Millis, String, Vec<u8>)>,
    /// Step, field, start, data (`None`: remove the row).
    rollups: Vec<(Step, String, Millis, Option<Vec<u8>>)>,
    compacted_seq: Option<i64>,
    rolled_up_until: Option<Millis>,
    drop_hosts_before: Option<Millis>,
}

/// What a fold reads of the blocks and rollups stored in Redis: all at once
/// ([`Stored::prefetch`]), then from memory.
struct InRedis<'s> {
    store: &'s RedisStore,
    /// Block field: (data, highest sequence number).
    blocks: BTreeMap<String, (Vec<u8>, i64)>,
    /// (step, row field): data.
    rows: BTreeMap<(Step, String), Vec<u8>>,
    fetched: bool,
}

impl<'s> InRedis<'s> {
    fn new(store: &'s RedisStore) -> Self {
        InRedis {
            store,
            blocks: BTreeMap::new(),
            rows: BTreeMap::new(),
            fetched: false,
        }
    }
}

/// A field of a hash, its entry in the matching meta hash, and its data.
type WithMeta<F> = (F, Vec<u8>, Vec<u8>);

impl Stored for InRedis<'_> {
    fn prefetch(
        &mut self,
        blocks: &[(Millis, &str)],
        rows: &[(Step, &str, Millis)],
    ) -> Result<(), StoreError> {
        let fields: Vec<String> = blocks
            .iter()
            .map(|(start, host)| field(*start, host))
            .collect();
        for (field, meta, data) in self.store.blocks(fields)? {
            self.blocks.insert(field, (data, meta.max_seq));
        }
        for step in Step::ALL {
            let fields: Vec<String> = rows
                .iter()
                .filter(|(row_step, _, _)| *row_step == step)
                .map(|(_, host, start)| field(*start, host))
                .collect();
            if fields.is_empty() {
                continue;
            }
            let key = self.store.key(&format!("rollup:{}", step.id()));
            let wanted = fields.clone();
            let found: Values = self
                .store
                .run(move |mut c| async move { c.hmget(key, wanted).await })?;
            for (field, data) in fields.into_iter().zip(found) {
                if let Some(data) = data {
                    self.rows.insert((step, field), data);
                }
            }
        }
        self.fetched = true;
        Ok(())
    }

    fn block(&mut self, start: Millis, host: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
        if self.fetched {
            return Ok(self.blocks.remove(&field(start, host)));
        }
        let store = self.store;
        let (meta, data) = (store.key("block_meta"), store.key("block"));
        let wanted = field(start, host);
        let (meta, data): (Option<Vec<u8>>, Option<Vec<u8>>) =
            store.run(move |mut c| async move {
                redis::pipe()
                    .atomic()
                    .hget(meta, &wanted)
                    .hget(data, &wanted)
                    .query_async(&mut c)
                    .await
            })?;
        match (meta, data) {
            (Some(meta), Some(data)) => Ok(Some((data, BlockMeta::parse(&meta)?.max_seq))),
            _ => Ok(None),
        }
    }

    fn rollup_row(
        &mut self,
        step: Step,
        host: &str,
        start: Millis,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if self.fetched {
            return Ok(self.rows.remove(&(step, field(start, host))));
        }
        let rows = self.store.key(&format!("rollup:{}", step.id()));
        let wanted = field(start, host);
        self.store
            .run(move |mut c| async move { c.hget(rows, wanted).await })
    }
}

impl RedisStore {
    /// Every sample of `[from, to]` (of `host` only, if given) appended
    /// before `cursor`, in (timestamp, host, append) order.
    pub(super) fn read_samples(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        host: Option<&str>,
    ) -> Result<Vec<Sample>, StoreError> {
        self.read_range(from, to, cursor, host, true)
    }

    /// The samples of `[from, to]` in batches (not compacted yet).
    pub(super) fn read_recent(&self, from: Millis, to: Millis) -> Result<Vec<Sample>, StoreError> {
        self.read_range(from, to, SampleCursor::MAX, None, false)
    }

    /// [`RedisStore::read_samples`], with the blocks' samples or without.
    fn read_range(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        host: Option<&str>,
        blocks: bool,
    ) -> Result<Vec<Sample>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let mut invocation = self.script(
            &SCRIPTS.read_range,
            &[
                "by_max",
                "batch_meta",
                "batch",
                "block_by_start",
                "block_meta",
                "block",
            ],
        );
        invocation
            .arg(from)
            .arg(to)
            .arg(cursor)
            // Blocks that start after this, up to `to`: none, when left out.
            .arg(if blocks {
                from.saturating_sub(BLOCK_PERIOD)
            } else {
                to
            })
            .arg(host.unwrap_or(""));
        let answer: Vec<Value> = self.invoke(invocation)?;
        let mut parts = answer.into_iter();
        let (Some(batches), Some(blocks)) = (parts.next(), parts.next()) else {
            return Err(corrupt("a scan's answer"));
        };
        // (ts, host, order, sample): a block's samples come before the
        // recent ones of their host and time, in their own order.
        let mut found: Vec<(i64, Sample)> = Vec::new();
        for entry in strings(blocks)?.chunks_exact(3) {
            let meta = BlockMeta::parse(&entry[1])?;
            if meta.max_seq >= cursor {
                return Err(StoreError::CompactedAfterCursor);
            }
            if meta.max_ts < from || meta.min_ts > to {
                continue;
            }
            let host = host_of(&entry[0])?;
            let samples = BlockReader::new(&entry[2]).and_then(|block| block.samples(&host));
            let samples = or_skip(samples, || block_row(&host))?.unwrap_or_default();
            for (index, sample) in samples.into_iter().enumerate() {
                if (from..=to).contains(&sample.ts) {
                    found.push((i64::MIN + index as i64, sample));
                }
            }
        }
        for entry in strings(batches)?.chunks_exact(3) {
            let first = numbers::<1>(&entry[0], "a batch")?[0];
            let meta = BatchMeta::parse(&entry[1])?;
            if meta.min_ts > to {
                continue;
            }
            let Some(mut reader) =
                or_skip(BatchReader::new(&entry[2], first), || recent_row(first))?
            else {
                continue;
            };
            // A batch damaged part-way costs the rest of that batch.
            while let Some((seq, sample)) =
                or_skip(reader.next_of(host), || recent_row(first))?.flatten()
            {
                if seq < cursor && (from..=to).contains(&sample.ts) {
                    found.push((seq, sample));
                }
            }
        }
        found.sort_by(|(a_order, a), (b_order, b)| {
            (a.ts, &a.host, a_order).cmp(&(b.ts, &b.host, b_order))
        });
        Ok(found.into_iter().map(|(_, sample)| sample).collect())
    }

    /// Samples appended at or after `cursor`, in append order; the cursor
    /// after the last.
    pub(super) fn since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError> {
        let mut invocation = self.script(
            &SCRIPTS.read_since,
            &["by_seq", "batch_meta", "batch", "compacted_seq"],
        );
        invocation.arg(cursor);
        let answer: Value = self.invoke(invocation)?;
        let answer = strings(answer)?;
        let Some((compacted, batches)) = answer.split_first() else {
            return Err(corrupt("the answer of a read since a cursor"));
        };
        if numbers::<1>(compacted, "the compacted sequence number")?[0] >= cursor {
            return Err(StoreError::CompactedAfterCursor);
        }
        let mut next = cursor;
        for entry in batches.chunks_exact(3) {
            let first = numbers::<1>(&entry[0], "a batch")?[0];
            if BatchMeta::parse(&entry[1])?.last < cursor {
                continue;
            }
            let samples = or_skip(batch::decode(&entry[2], first), || recent_row(first))?;
            for (seq, sample) in samples.unwrap_or_default() {
                if seq >= cursor {
                    next = next.max(seq + 1);
                    visit(sample);
                }
            }
        }
        Ok(next)
    }

    /// Runs `work` holding the cluster's compaction lock; `None` if another
    /// node holds it (its work is under way: nothing to do now).
    fn exclusively<T>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let token = ulid::Ulid::generate().to_string();
        let (lock, held) = (self.key("compacting"), token.clone());
        let taken: Option<String> = self.run(move |mut c| async move {
            redis::cmd("SET")
                .arg(lock)
                .arg(held)
                .arg("NX")
                .arg("PX")
                .arg(LOCK_TTL)
                .query_async(&mut c)
                .await
        })?;
        if taken.is_none() {
            return Ok(None);
        }
        let result = work();
        let mut invocation = self.script(&SCRIPTS.release, &["compacting"]);
        invocation.arg(token);
        let released = self.invoke::<Value>(invocation);
        let value = result?;
        released?;
        Ok(Some(value))
    }

    fn write_fold(&self, write: FoldWrite) -> Result<(), StoreError> {
        let mut invocation = self.script(
            &SCRIPTS.write_fold,
            &[
                "by_seq",
                "by_max",
                "by_min",
                "batch",
                "batch_meta",
                "block",
                "block_meta",
                "block_by_start",
                "rollup:60000",
                "rollup_by_start:60000",
                "rollup:600000",
                "rollup_by_start:600000",
                "compacted_seq",
                "rolled_up_until",
                "latest",
                "latest_ts",
                "rollup:3600000",
                "rollup_by_start:3600000",
            ],
        );
        debug_assert_eq!(
            Step::ALL.map(Step::id),
            [60_000, 600_000, 3_600_000],
            "the rollup keys above"
        );
        invocation.arg(write.removed_batches.len());
        for first in &write.removed_batches {
            invocation.arg(*first);
        }
        invocation.arg(write.added_batches.len());
        for batch in &write.added_batches {
            let encoded = &batch.encoded;
            invocation
                .arg(batch.first)
                .arg(batch.last)
                .arg(encoded.count)
                .arg(encoded.min_ts)
                .arg(encoded.max_ts)
                .arg(&encoded.data[..]);
        }
        invocation.arg(write.removed_blocks.len());
        for field in &write.removed_blocks {
            invocation.arg(field);
        }
        invocation.arg(write.blocks.len());
        for (field, start, meta, data) in &write.blocks {
            invocation.arg(field).arg(*start).arg(meta).arg(&data[..]);
        }
        invocation.arg(write.rollups.len());
        for (step, field, start, data) in &write.rollups {
            invocation
                .arg(match step {
                    Step::Minute => 1,
                    Step::TenMinutes => 2,
                    Step::Hour => 3,
                })
                .arg(field)
                .arg(*start)
                .arg(data.as_deref().unwrap_or(b""));
        }
        let optional = |value: Option<i64>| value.map(|v| v.to_string()).unwrap_or_default();
        invocation
            .arg(optional(write.compacted_seq))
            .arg(optional(write.rolled_up_until))
            .arg(optional(write.drop_hosts_before));
        self.invoke::<Value>(invocation)?;
        Ok(())
    }

    /// Folds batches with samples before the period that holds `before`
    /// into blocks and rollups, at most [`COMPACTION_SAMPLES`] at a time.
    pub(super) fn compact(
        &self,
        before: Millis,
        rollups_from: crate::store::RollupsFrom,
    ) -> Result<u64, StoreError> {
        let before = period_of(before);
        let done = self.exclusively(|| {
            self.add_all_hosts_rows()?;
            self.add_hour_rows()?;
            let by_min = self.key("by_min");
            let mut old: Vec<i64> = self.run(move |mut c| async move {
                c.zrangebyscore(by_min, "-inf", format!("({before}")).await
            })?;
            old.sort_unstable();
            let mut batches = Vec::new();
            let mut complete = true;
            let mut samples = 0u64;
            for (first, meta, data) in self.batches(&old)? {
                batches.push((first, data));
                samples += meta.count;
                if samples >= COMPACTION_SAMPLES {
                    complete = batches.len() == old.len();
                    break;
                }
            }
            let fold = fold::fold(batches, before, rollups_from, &mut InRedis::new(self))?;
            if fold.folded == 0 && !complete {
                return Ok(0);
            }
            let folded = fold.folded;
            let write = FoldWrite {
                compacted_seq: fold.max_seq(),
                removed_batches: fold.removed,
                added_batches: fold.kept,
                blocks: fold
                    .blocks
                    .into_iter()
                    .map(|block| {
                        let meta =
                            BlockMeta::text(block.min_ts, block.max_ts, block.count, block.max_seq);
                        (
                            field(block.start, &block.host),
                            block.start,
                            meta,
                            block.data,
                        )
                    })
                    .collect(),
                rollups: fold
                    .rollups
                    .into_iter()
                    .map(|row| (row.step, field(row.start, &row.host), row.start, row.data))
                    .collect(),
                rolled_up_until: complete.then_some(before),
                ..FoldWrite::default()
            };
            self.write_fold(write)?;
            Ok(folded)
        })?;
        Ok(done.unwrap_or(0))
    }

    /// Writes the rows of [`ALL_HOSTS`] of a store rolled up before they
    /// were kept, each from every host's row of the same step and start,
    /// once (`all_hosts_rolled_up` marks it done). Holding the compaction
    /// lock: no fold adds to a row meanwhile, and a row made again after a
    /// failure is made whole again.
    fn add_all_hosts_rows(&self) -> Result<(), StoreError> {
        let done = self.key("all_hosts_rolled_up");
        let marked = done.clone();
        let is_done: bool = self.run(move |mut c| async move { c.exists(marked).await })?;
        if is_done {
            return Ok(());
        }
        let mut written = 0usize;
        for step in Step::ALL {
            let (index, rows) = (
                self.key(&format!("rollup_by_start:{}", step.id())),
                self.key(&format!("rollup:{}", step.id())),
            );
            let found: Vec<String> =
                self.run(move |mut c| async move { c.zrange(index, 0, -1).await })?;
            let mut by_start: BTreeMap<Millis, Vec<String>> = BTreeMap::new();
            for field in found {
                if host_of(field.as_bytes())? == ALL_HOSTS {
                    continue;
                }
                let start = numbers::<1>(
                    field.split('\0').next().unwrap_or_default().as_bytes(),
                    "a rollup row",
                )?[0];
                by_start.entry(start).or_default().push(field);
            }
            let starts: Vec<(Millis, Vec<String>)> = by_start.into_iter().collect();
            // A few rows of every host at a time.
            for chunk in starts.chunks(8) {
                let mut write = FoldWrite::default();
                for (start, fields) in chunk {
                    let (rows, mut names) = (rows.clone(), fields.clone());
                    names.sort_unstable();
                    let data: Values =
                        self.run(move |mut c| async move { c.hmget(rows, names).await })?;
                    let mut points = Vec::new();
                    for data in data.into_iter().flatten() {
                        let decoded =
                            or_skip(rollup::decode(&data), || format!("a rollup row at {start}"))?;
                        points.extend(decoded.unwrap_or_default());
                    }
                    let (data, _) = merged_points(None, |_| true, points)?;
                    write
                        .rollups
                        .push((step, field(*start, ALL_HOSTS), *start, data));
                }
                written += write.rollups.len();
                self.write_fold(write)?;
            }
        }
        self.run(move |mut c| async move { c.set::<_, _, ()>(done, 1).await })?;
        if written > 0 {
            tracing::info!(rows = written, "rolled up every host's samples together");
        }
        Ok(())
    }

    /// Writes the hour rows of a store rolled up before they were kept,
    /// each from the ten-minute row of the same host and day (a row of
    /// either step holds a day), once (`hour_rolled_up` marks it done).
    /// Holding the compaction lock, as [`Self::add_all_hosts_rows`]: a row
    /// made again after a failure is made whole again.
    fn add_hour_rows(&self) -> Result<(), StoreError> {
        let done = self.key("hour_rolled_up");
        let marked = done.clone();
        let is_done: bool = self.run(move |mut c| async move { c.exists(marked).await })?;
        if is_done {
            return Ok(());
        }
        let (index, rows) = (
            self.key(&format!("rollup_by_start:{}", Step::TenMinutes.id())),
            self.key(&format!("rollup:{}", Step::TenMinutes.id())),
        );
        let found: Vec<String> =
            self.run(move |mut c| async move { c.zrange(index, 0, -1).await })?;
        let mut written = 0usize;
        for chunk in found.chunks(256) {
            let (rows, names) = (rows.clone(), chunk.to_vec());
            let data: Values = self.run(move |mut c| async move { c.hmget(rows, names).await })?;
            let mut write = FoldWrite::default();
            for (field, data) in chunk.iter().zip(data) {
                let Some(data) = data else { continue };
                let start = numbers::<1>(
                    field.split('\0').next().unwrap_or_default().as_bytes(),
                    "a rollup row",
                )?[0];
                let decoded =
                    or_skip(rollup::decode(&data), || format!("a rollup row at {start}"))?;
                let Some(points) = decoded else { continue };
                let (data, _) = merged_points(None, |_| true, rollup::coarsen(points, Step::Hour))?;
                write.rollups.push((Step::Hour, field.clone(), start, data));
            }
            written += write.rollups.len();
            self.write_fold(write)?;
        }
        self.run(move |mut c| async move { c.set::<_, _, ()>(done, 1).await })?;
        if written > 0 {
            tracing::info!(
                rows = written,
                "rolled the stored ten-minute rollups up by the hour"
            );
        }
        Ok(())
    }

    /// The entries and data of the batches `firsts` that are still there.
    pub(super) fn batches(
        &self,
        firsts: &[i64],
    ) -> Result<Vec<(i64, BatchMeta, Vec<u8>)>, StoreError> {
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        self.with_meta("batch_meta", "batch", firsts.to_vec())?
            .into_iter()
            .map(|(first, meta, data)| Ok((first, BatchMeta::parse(&meta)?, data)))
            .collect()
    }

    /// The blocks `fields` (`<start>:<host>`) that are there, with their entries.
    fn blocks(&self, fields: Vec<String>) -> Result<Vec<(String, BlockMeta, Vec<u8>)>, StoreError> {
        self.with_meta("block_meta", "block", fields)?
            .into_iter()
            .map(|(field, meta, data)| Ok((field, BlockMeta::parse(&meta)?, data)))
            .collect()
    }

    /// The `fields` of the hash `data` that are there, each with its entry
    /// in the hash `meta`, read in one atomic step.
    fn with_meta<F>(
        &self,
        meta: &str,
        data: &str,
        fields: Vec<F>,
    ) -> Result<Vec<WithMeta<F>>, StoreError>
    where
        F: redis::ToRedisArgs + Send + Sync + 'static,
    {
        if fields.is_empty() {
            return Ok(Vec::new());
        }
        let (meta, data) = (self.key(meta), self.key(data));
        let (fields, metas, datas): (Vec<F>, Values, Values) =
            self.run(move |mut c| async move {
                let (metas, datas) = redis::pipe()
                    .atomic()
                    .hmget(meta, &fields)
                    .hmget(data, &fields)
                    .query_async(&mut c)
                    .await?;
                Ok((fields, metas, datas))
            })?;
        Ok(fields
            .into_iter()
            .zip(metas)
            .zip(datas)
            .filter_map(|((field, meta), data)| Some((field, meta?, data?)))
            .collect())
    }

    /// Deletes the samples with `ts < before`, from batches and blocks, and
    /// the hosts left with none.
    pub(super) fn delete_before(&self, before: Millis) -> Result<u64, StoreError> {
        let done = self.exclusively(|| {
            let mut write = FoldWrite {
                drop_hosts_before: Some(before),
                ..FoldWrite::default()
            };
            let mut deleted = 0u64;
            let by_min = self.key("by_min");
            let old: Vec<i64> = self.run(move |mut c| async move {
                c.zrangebyscore(by_min, "-inf", format!("({before}")).await
            })?;
            for (first, meta, data) in self.batches(&old)? {
                write.removed_batches.push(first);
                if meta.max_ts < before {
                    deleted += meta.count;
                    continue;
                }
                let Some((kept, left_out)) =
                    or_skip(trim_batch(&data, first, before), || recent_row(first))?
                else {
                    continue;
                };
                deleted += left_out;
                write.added_batches.extend(Sequenced::new(&kept));
            }
            let index = self.key("block_by_start");
            let fields: Vec<String> = self.run(move |mut c| async move {
                c.zrangebyscore(index, "-inf", format!("({before}")).await
            })?;
            for (field, meta, data) in self.blocks(fields)? {
                if meta.min_ts >= before {
                    continue;
                }
                if meta.max_ts < before {
                    deleted += meta.count;
                    write.removed_blocks.push(field);
                    continue;
                }
                let host = host_of(field.as_bytes())?;
                // A damaged block goes with the samples it can no longer give.
                let Some((kept, left_out)) =
                    or_skip(trim_block(&data, &host, before), || block_row(&host))?
                else {
                    write.removed_blocks.push(field);
                    continue;
                };
                deleted += left_out;
                let start = period_of(meta.min_ts);
                let meta = BlockMeta::text(kept.min_ts, kept.max_ts, kept.count, meta.max_seq);
                write.blocks.push((field, start, meta, kept.data));
            }
            self.write_fold(write)?;
            Ok(deleted)
        })?;
        Ok(done.unwrap_or(0))
    }

    /// Calls `visit` with the rollup rows `query` asks for, by host, then
    /// time ([`SampleStore::scan_rollup_rows`]).
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
        let (index, rows) = (
            self.key(&format!("rollup_by_start:{}", step.id())),
            self.key(&format!("rollup:{}", step.id())),
        );
        let first = step.row_of(from);
        let found: Vec<String> =
            self.run(move |mut c| async move { c.zrangebyscore(index, first, to).await })?;
        // By host, then start.
        let mut wanted: BTreeMap<(String, Millis), String> = BTreeMap::new();
        for field in found {
            let row_host = host_of(field.as_bytes())?;
            if host.map_or(row_host == ALL_HOSTS, |host| host != row_host) {
                continue;
            }
            let start = numbers::<1>(
                field.split('\0').next().unwrap_or_default().as_bytes(),
                "a rollup row",
            )?[0];
            wanted.insert((row_host, start), field);
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = wanted.values().cloned().collect();
        let data: Values = self.run(move |mut c| async move { c.hmget(rows, names).await })?;
        for (((row_host, _), _), data) in wanted.into_iter().zip(data) {
            if let Some(data) = data {
                visit(&row_host, &data)?;
            }
        }
        Ok(())
    }

    /// Deletes the rolled-up points of `step` with `ts < before`.
    pub(super) fn delete_points_before(
        &self,
        step: Step,
        before: Millis,
    ) -> Result<u64, StoreError> {
        let done = self.exclusively(|| {
            let (index, rows) = (
                self.key(&format!("rollup_by_start:{}", step.id())),
                self.key(&format!("rollup:{}", step.id())),
            );
            let last = step.row_of(before);
            let found: Vec<String> =
                self.run(move |mut c| async move { c.zrangebyscore(index, "-inf", last).await })?;
            if found.is_empty() {
                return Ok(0);
            }
            let names = found.clone();
            let data: Values = self.run(move |mut c| async move { c.hmget(rows, names).await })?;
            let mut write = FoldWrite::default();
            let mut deleted = 0u64;
            for (field, data) in found.into_iter().zip(data) {
                let Some(data) = data else { continue };
                let start = numbers::<1>(
                    field.split('\0').next().unwrap_or_default().as_bytes(),
                    "a rollup row",
                )?[0];
                if start < last {
                    deleted += rollup::point_count(&data)? as u64;
                    write.rollups.push((step, field, start, None));
                } else {
                    let (kept, left_out) =
                        merged_points(Some(&data), |point| point.ts >= before, Vec::new())?;
                    deleted += left_out;
                    write.rollups.push((step, field, start, kept));
                }
            }
            self.write_fold(write)?;
            Ok(deleted)
        })?;
        Ok(done.unwrap_or(0))
    }
}
