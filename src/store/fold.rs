//! Compaction's work, the same for every backend: recent batches of
//! samples folded into one block per host and [`BLOCK_PERIOD`], and into the
//! rolled-up series, each host's and every host's together (under
//! [`ALL_HOSTS`]). A backend reads what to fold and what is stored
//! already ([`Stored`]), calls [`fold`], and writes the [`Fold`] in one
//! atomic step.

use std::collections::BTreeMap;

use super::batch::{self, Sequenced};
use super::block::{self, BlockReader};
use super::damage::or_skip;
use super::rollup::{self, Point, Step};
use super::{ALL_HOSTS, BLOCK_PERIOD, StoreError};
use crate::duration::Millis;
use crate::sample::Sample;

/// The start of the block period that holds `ts`.
pub fn period_of(ts: Millis) -> Millis {
    ts.div_euclid(BLOCK_PERIOD).saturating_mul(BLOCK_PERIOD)
}

/// The smallest and largest of `stamps` (0 and 0 for none).
pub fn span(stamps: impl Iterator<Item = Millis>) -> (Millis, Millis) {
    stamps
        .fold(None, |span: Option<(Millis, Millis)>, ts| match span {
            None => Some((ts, ts)),
            Some((min, max)) => Some((min.min(ts), max.max(ts))),
        })
        .unwrap_or((0, 0))
}

/// What a fold reads of what the backend holds already.
pub trait Stored {
    /// Told, before any other call, every block and rollup row the fold
    /// will ask for: a backend far away reads them all at once here.
    fn prefetch(
        &mut self,
        _blocks: &[(Millis, &str)],
        _rows: &[(Step, &str, Millis)],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// The block of `host` for the period starting at `start`, and the
    /// highest sequence number among its samples.
    fn block(&mut self, start: Millis, host: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError>;

    /// The rollup row of `step` and `host` starting at `start`.
    fn rollup_row(
        &mut self,
        step: Step,
        host: &str,
        start: Millis,
    ) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A block to write, in place of the one of its host and period, if any.
#[derive(Debug, Clone)]
pub struct BlockWrite {
    pub start: Millis,
    pub host: String,
    pub min_ts: Millis,
    pub max_ts: Millis,
    pub count: i64,
    pub max_seq: i64,
    pub data: Vec<u8>,
    /// Whether a block of this host and period was stored (and read).
    pub replaces: bool,
}

/// A rollup row to write (`data` `None`: delete it).
#[derive(Debug, Clone)]
pub struct RollupWrite {
    pub step: Step,
    pub host: String,
    pub start: Millis,
    pub data: Option<Vec<u8>>,
}

/// What one compaction writes.
#[derive(Debug, Default)]
pub struct Fold {
    /// How many samples it folds.
    pub folded: u64,
    /// The batches read (by first sequence number): each is removed...
    pub removed: Vec<i64>,
    /// ...and what is left of them, after their folded samples, added back.
    pub kept: Vec<Sequenced>,
    pub blocks: Vec<BlockWrite>,
    pub rollups: Vec<RollupWrite>,
}

impl Fold {
    /// The highest sequence number among the blocks written.
    pub fn max_seq(&self) -> Option<i64> {
        self.blocks.iter().map(|block| block.max_seq).max()
    }
}

/// Folds the samples with `ts < before` of `batches` (first sequence
/// number, data) into blocks and rollups, merged with what `stored` holds.
pub fn fold(
    batches: Vec<(i64, Vec<u8>)>,
    before: Millis,
    rollups_from: crate::store::RollupsFrom,
    stored: &mut dyn Stored,
) -> Result<Fold, StoreError> {
    // The steps whose row starting at `row` is written.
    let kept = |(step, row): (Step, Millis)| {
        let place = Step::ALL.iter().position(|s| *s == step).unwrap_or(0);
        row.saturating_add(step.row_span()) > rollups_from[place]
    };
    let mut fold = Fold::default();
    // The samples to fold, by period and host, in append order.
    let mut groups: BTreeMap<(Millis, String), Vec<(i64, Sample)>> = BTreeMap::new();
    for (first, data) in batches {
        // A damaged batch is removed with the rest: its samples are lost
        // already, and keeping it would only say so again at every read.
        fold.removed.push(first);
        let Some(samples) = or_skip(batch::decode(&data, first), || {
            format!("recent samples from seq {first}")
        })?
        else {
            continue;
        };
        let (old, kept): (Vec<_>, Vec<_>) = samples
            .into_iter()
            .partition(|(_, sample)| sample.ts < before);
        fold.folded += old.len() as u64;
        for (seq, sample) in old {
            groups
                .entry((period_of(sample.ts), sample.host.clone()))
                .or_default()
                .push((seq, sample));
        }
        fold.kept.extend(Sequenced::new(&kept));
    }
    {
        let blocks: Vec<(Millis, &str)> = groups
            .keys()
            .map(|(start, host)| (*start, host.as_str()))
            .collect();
        let mut rows: Vec<(Step, &str, Millis)> = blocks
            .iter()
            .flat_map(|(start, host)| [(*start, *host), (*start, ALL_HOSTS)])
            .flat_map(|(start, host)| Step::ALL.map(|step| (step, host, step.row_of(start))))
            .filter(|(step, _, row)| kept((*step, *row)))
            .collect();
        rows.sort_unstable();
        rows.dedup();
        stored.prefetch(&blocks, &rows)?;
    }
    // Rollup points to add, by row.
    let mut points: BTreeMap<(Step, String, Millis), Vec<Point>> = BTreeMap::new();
    for ((start, host), mut new) in groups {
        // Stable: ties stay in append order.
        new.sort_by_key(|(_, sample)| sample.ts);
        for step in Step::ALL {
            let row = step.row_of(start);
            if !kept((step, row)) {
                continue;
            }
            let rolled = rollup::roll_up(new.iter().map(|(_, sample)| sample), step);
            points
                .entry((step, ALL_HOSTS.to_string(), row))
                .or_default()
                .extend(rolled.iter().cloned());
            points
                .entry((step, host.clone(), row))
                .or_default()
                .extend(rolled);
        }
        let existing = stored.block(start, &host)?;
        fold.blocks.push(merged_block(start, host, existing, new)?);
    }
    for ((step, host, start), added) in points {
        let existing = stored.rollup_row(step, &host, start)?;
        let (data, _) = merged_points(existing.as_deref(), |_| true, added)?;
        fold.rollups.push(RollupWrite {
            step,
            host,
            start,
            data,
        });
    }
    Ok(fold)
}

/// The block of `host` and the period starting at `start`: the samples of
/// `existing` (its data and highest sequence number), then `new` (in time
/// order, ties in append order).
fn merged_block(
    start: Millis,
    host: String,
    existing: Option<(Vec<u8>, i64)>,
    new: Vec<(i64, Sample)>,
) -> Result<BlockWrite, StoreError> {
    let mut samples = Vec::new();
    let mut max_seq = new.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
    let replaces = existing.is_some();
    if let Some((data, seq)) = existing {
        // A damaged block is replaced by one of the new samples alone.
        let stored = BlockReader::new(&data).and_then(|block| block.samples(&host));
        samples = or_skip(stored, || format!("a block of host {host:?}"))?.unwrap_or_default();
        max_seq = max_seq.max(seq);
    }
    samples.extend(new.into_iter().map(|(_, sample)| sample));
    // Stable: samples of equal timestamp stay in append order.
    samples.sort_by_key(|sample| sample.ts);
    let refs: Vec<&Sample> = samples.iter().collect();
    let data = block::encode(&refs).ok_or_else(|| {
        StoreError::Corrupt(format!("{host}'s block at {start} holds too many samples"))
    })?;
    let (min_ts, max_ts) = span(samples.iter().map(|s| s.ts));
    Ok(BlockWrite {
        start,
        host,
        min_ts,
        max_ts,
        count: samples.len() as i64,
        max_seq,
        data,
        replaces,
    })
}

/// A block after a deletion of its samples before some time.
#[derive(Debug, Clone)]
pub struct TrimmedBlock {
    pub data: Vec<u8>,
    pub count: i64,
    pub min_ts: Millis,
    pub max_ts: Millis,
}

/// The samples of `host`'s block `data` with `ts >= before`, encoded again,
/// and how many were left out. The block must keep at least one sample.
pub fn trim_block(
    data: &[u8],
    host: &str,
    before: Millis,
) -> Result<(TrimmedBlock, u64), StoreError> {
    let samples = BlockReader::new(data)?.samples(host)?;
    let kept: Vec<&Sample> = samples.iter().filter(|s| s.ts >= before).collect();
    let left_out = (samples.len() - kept.len()) as u64;
    let (min_ts, max_ts) = span(kept.iter().map(|s| s.ts));
    let data = block::encode(&kept)
        .ok_or_else(|| StoreError::Corrupt("a block to keep has no samples".to_string()))?;
    let count = kept.len() as i64;
    Ok((
        TrimmedBlock {
            data,
            count,
            min_ts,
            max_ts,
        },
        left_out,
    ))
}

/// The samples of the batch `data` (first numbered `first`) with
/// `ts >= before`, with their sequence numbers, and how many were left out.
pub fn trim_batch(
    data: &[u8],
    first: i64,
    before: Millis,
) -> Result<(Vec<(i64, Sample)>, u64), StoreError> {
    let samples = batch::decode(data, first)?;
    let total = samples.len();
    let kept: Vec<(i64, Sample)> = samples
        .into_iter()
        .filter(|(_, sample)| sample.ts >= before)
        .collect();
    let left_out = (total - kept.len()) as u64;
    Ok((kept, left_out))
}

/// The points of a rollup row (`existing`) that `keep` keeps, with `added`
/// merged into them, encoded (`None`: no point left), and how many points
/// were left out.
pub fn merged_points(
    existing: Option<&[u8]>,
    keep: impl Fn(&Point) -> bool,
    added: Vec<Point>,
) -> Result<(Option<Vec<u8>>, u64), StoreError> {
    // A damaged row is replaced by the points added (or deleted, for none).
    let mut points = match existing {
        Some(data) => {
            or_skip(rollup::decode(data), || "a rollup row".to_string())?.unwrap_or_default()
        }
        None => Vec::new(),
    };
    let before = points.len();
    points.retain(|point| keep(point));
    let left_out = (before - points.len()) as u64;
    for point in added {
        match points.binary_search_by_key(&point.ts, |p| p.ts) {
            Ok(found) => points[found].merge(&point),
            Err(at) => points.insert(at, point),
        }
    }
    if points.is_empty() {
        return Ok((None, left_out));
    }
    let data = rollup::encode(&points)
        .ok_or_else(|| StoreError::Corrupt("a rollup row holds too many points".to_string()))?;
    Ok((Some(data), left_out))
}
