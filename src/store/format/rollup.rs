//! Rolled-up series: per host, field and step (a minute, ten minutes, an
//! hour), the
//! count, sum, minimum, maximum and last value of the samples in each step,
//! and how many samples the step holds. Long charts and stats read these
//! instead of every sample.
//!
//! Stored in the [`block`] format: a rollup row is a block whose samples are
//! the steps (timestamp: the step's start) and whose fields are
//! `<field>/count`, `/sum`, `/min`, `/max`, `/last`, `/at` (the last one's
//! time), and `/samples`; a field
//! name cannot hold a `/`, so nothing is ambiguous.

use std::sync::Arc;

use super::block::{self, Ints, Values};
use super::bytes::{Reader, put_varint};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::StoreError;

/// The steps rolled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Minute,
    TenMinutes,
    Hour,
}

impl Step {
    /// Finest first.
    pub const ALL: [Step; 3] = [Step::Minute, Step::TenMinutes, Step::Hour];

    pub fn millis(self) -> Millis {
        match self {
            Step::Minute => 60_000,
            Step::TenMinutes => 600_000,
            Step::Hour => 3_600_000,
        }
    }

    /// The time one stored row of this step covers: a day for ten minutes
    /// and an hour alike, so that a ten-minute row makes an hour row.
    pub fn row_span(self) -> Millis {
        match self {
            Step::Minute => 3_600_000,
            Step::TenMinutes | Step::Hour => 86_400_000,
        }
    }

    /// The number that stands for it in a store.
    pub fn id(self) -> i64 {
        self.millis()
    }

    /// The start of the step that holds `ts`.
    pub fn start_of(self, ts: Millis) -> Millis {
        ts.div_euclid(self.millis()).saturating_mul(self.millis())
    }

    /// The start of the row that holds `ts`.
    pub fn row_of(self, ts: Millis) -> Millis {
        ts.div_euclid(self.row_span())
            .saturating_mul(self.row_span())
    }
}

/// One field's values within a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The value of the last sample (by time, then append order).
    pub last: f64,
    /// The time of the last sample.
    pub last_ts: Millis,
}

impl Aggregate {
    fn new(ts: Millis, value: f64) -> Self {
        Aggregate {
            count: 1,
            sum: value,
            min: value,
            max: value,
            last: value,
            last_ts: ts,
        }
    }

    fn add(&mut self, ts: Millis, value: f64) {
        self.merge(&Aggregate::new(ts, value));
    }

    /// Adds the values of `later`, whose samples were appended after these.
    pub fn merge(&mut self, later: &Aggregate) {
        self.count += later.count;
        // Finite, as stored values must be: a sum past the largest number
        // stays at it.
        self.sum = (self.sum + later.sum).clamp(-f64::MAX, f64::MAX);
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        if later.last_ts >= self.last_ts {
            self.last = later.last;
            self.last_ts = later.last_ts;
        }
    }
}

/// One host's samples within one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The step's start.
    pub ts: Millis,
    pub samples: u64,
    /// Each field given in the step, in the order first given.
    pub fields: Vec<(Arc<str>, Aggregate)>,
}

impl Point {
    /// Adds the samples of `later` (the same step), appended after these.
    pub fn merge(&mut self, later: &Point) {
        self.samples += later.samples;
        for (name, aggregate) in &later.fields {
            match self.fields.iter_mut().find(|(field, _)| field == name) {
                Some((_, mine)) => mine.merge(aggregate),
                None => self.fields.push((name.clone(), *aggregate)),
            }
        }
    }
}

/// The points of a finer step (in time order) made points of `step`: each
/// of its steps the merge of the finer points it holds.
pub fn coarsen(points: Vec<Point>, step: Step) -> Vec<Point> {
    let mut coarse: Vec<Point> = Vec::new();
    for mut point in points {
        point.ts = step.start_of(point.ts);
        match coarse.last_mut() {
            Some(last) if last.ts == point.ts => last.merge(&point),
            _ => coarse.push(point),
        }
    }
    coarse
}

/// The points of one host's `samples` (in time order, ties in append
/// order), in time order.
pub fn roll_up<'a>(samples: impl IntoIterator<Item = &'a Sample>, step: Step) -> Vec<Point> {
    let mut points: Vec<Point> = Vec::new();
    for sample in samples {
        let ts = step.start_of(sample.ts);
        if points.last().is_none_or(|point| point.ts != ts) {
            points.push(Point {
                ts,
                samples: 0,
                fields: Vec::new(),
            });
        }
        let Some(point) = points.last_mut() else {
            continue;
        };
        point.samples += 1;
        for (name, value) in &sample.metrics {
            match point.fields.iter_mut().find(|(field, _)| **field == **name) {
                Some((_, aggregate)) => aggregate.add(sample.ts, *value),
                None => point
                    .fields
                    .push((Arc::from(name.as_str()), Aggregate::new(sample.ts, *value))),
            }
        }
    }
    points
}

/// Encodes points (in time order, at most [`block::MAX_SAMPLES`]):
///
/// ```text
/// rollup = version:u8 count:varint ints(ts) ints(samples) fields:varint field*
/// field  = name presence:u8 [bitmap] ints(count) values(sum) values(min)
///          values(max) values(last) ints(time of last)
/// ```
///
/// with the column encodings of the [`block`] format, of the same version
/// (version 1 is still read).
pub fn encode(points: &[Point]) -> Option<Vec<u8>> {
    if points.is_empty() || points.len() > block::MAX_SAMPLES {
        return None;
    }
    let mut out = Vec::with_capacity(64 + points.len() * 48);
    out.push(block::VERSION);
    put_varint(&mut out, points.len() as u64);
    let stamps: Vec<i64> = points.iter().map(|point| point.ts).collect();
    block::put_ints(&mut out, &stamps);
    let samples: Vec<i64> = points.iter().map(|point| point.samples as i64).collect();
    block::put_ints(&mut out, &samples);
    let mut names: Vec<&Arc<str>> = Vec::new();
    for point in points {
        for (name, _) in &point.fields {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    put_varint(&mut out, names.len() as u64);
    for (column, name) in names.into_iter().enumerate() {
        let found = block::put_column_head(
            &mut out,
            points.iter().map(|point| point.fields.as_slice()),
            column,
            name,
        );
        let counts: Vec<i64> = found.iter().map(|a| a.count as i64).collect();
        block::put_ints(&mut out, &counts);
        for part in [
            |a: &Aggregate| a.sum,
            |a: &Aggregate| a.min,
            |a: &Aggregate| a.max,
            |a: &Aggregate| a.last,
        ] {
            let values: Vec<f64> = found.iter().map(part).collect();
            block::put_values(&mut out, &values);
        }
        let lasts: Vec<i64> = found.iter().map(|a| a.last_ts).collect();
        block::put_ints(&mut out, &lasts);
    }
    Some(out)
}

/// How many points encoded `bytes` hold, without decoding them.
pub fn point_count(bytes: &[u8]) -> Result<usize, StoreError> {
    let mut reader = Reader::new(bytes, "rollup");
    read_version(&mut reader)?;
    reader.count(block::MAX_SAMPLES)
}

/// The format version of a row, checked.
fn read_version(reader: &mut Reader<'_>) -> Result<u8, StoreError> {
    let version = reader.byte()?;
    if (block::FIRST_VERSION..=block::VERSION).contains(&version) {
        Ok(version)
    } else {
        Err(reader.error())
    }
}

/// One field's columns while decoding.
struct Columns<'a> {
    name: Arc<str>,
    present: Option<&'a [u8]>,
    count: Ints<'a>,
    parts: [Values<'a>; 4],
    last_ts: Ints<'a>,
}

/// The inverse of [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, StoreError> {
    decode_fields(bytes, None)
}

/// [`decode`], keeping only the `wanted` fields (all for `None`): the
/// others' columns are skipped, not decoded.
pub fn decode_fields(bytes: &[u8], wanted: Option<&[String]>) -> Result<Vec<Point>, StoreError> {
    let mut points = Vec::new();
    decode_fields_into(bytes, wanted, false, &mut points)?;
    Ok(points)
}

/// [`decode_fields`] into `points`, whose points (and their lists of
/// fields) are used again: a scan of a thousand rows makes a point per
/// step once, not once per row. With `totals_only`, each aggregate's
/// minimum, last value and its time are not decoded: NaN, NaN and
/// `Millis::MIN`. On an error `points` holds nothing.
pub fn decode_fields_into(
    bytes: &[u8],
    wanted: Option<&[String]>,
    totals_only: bool,
    points: &mut Vec<Point>,
) -> Result<(), StoreError> {
    let decoded = decode_into(bytes, wanted, totals_only, points);
    if decoded.is_err() {
        points.clear();
    }
    decoded
}

fn decode_into(
    bytes: &[u8],
    wanted: Option<&[String]>,
    totals_only: bool,
    points: &mut Vec<Point>,
) -> Result<(), StoreError> {
    let mut reader = Reader::new(bytes, "rollup");
    let version = read_version(&mut reader)?;
    let count = reader.count(block::MAX_SAMPLES)?;
    let mut stamps = Ints::read(&mut reader, count, version)?;
    let mut samples = Ints::read(&mut reader, count, version)?;
    let fields = reader.count(bytes.len())?;
    let mut columns = Vec::with_capacity(fields);
    let mut names = Vec::with_capacity(fields);
    for _ in 0..fields {
        let (name, present, values) = block::column_head(&mut reader, count, version)?;
        names.push(name);
        let name: Arc<str> = Arc::from(name);
        let limit = bytes.len();
        let count = Ints::read(&mut reader, values, version)?;
        let parts = [
            Values::read(&mut reader, values, limit, version)?,
            Values::read(&mut reader, values, limit, version)?,
            Values::read(&mut reader, values, limit, version)?,
            Values::read(&mut reader, values, limit, version)?,
        ];
        let last_ts = Ints::read(&mut reader, values, version)?;
        if wanted.is_some_and(|wanted| !wanted.iter().any(|field| **field == *name)) {
            continue;
        }
        columns.push(Columns {
            name,
            present,
            count,
            parts,
            last_ts,
        });
    }
    // A field twice in a row is damage: rows are written with each once.
    if !reader.is_empty() || !block::distinct(&mut names) {
        return Err(reader.error());
    }
    points.truncate(count);
    for i in 0..count {
        if points.len() <= i {
            points.push(Point {
                ts: 0,
                samples: 0,
                fields: Vec::with_capacity(columns.len()),
            });
        }
        let point = &mut points[i];
        point.ts = stamps.next()?;
        point.samples = samples.next()?.max(0) as u64;
        // The fields of a point used again mostly have the same names, in
        // the same order: those are overwritten, not dropped and cloned.
        let mut kept = 0;
        for column in &mut columns {
            if column
                .present
                .is_some_and(|bitmap| bitmap[i / 8] & (1 << (i % 8)) == 0)
            {
                continue;
            }
            let [sum, min, max, last] = &mut column.parts;
            let count = column.count.next()?.max(0) as u64;
            let aggregate = match totals_only {
                true => {
                    let sum = sum.next()?;
                    Aggregate {
                        count,
                        sum,
                        min: f64::NAN,
                        max: max.next()?,
                        last: f64::NAN,
                        last_ts: Millis::MIN,
                    }
                }
                false => Aggregate {
                    count,
                    sum: sum.next()?,
                    min: min.next()?,
                    max: max.next()?,
                    last: last.next()?,
                    last_ts: column.last_ts.next()?,
                },
            };
            match point.fields.get_mut(kept) {
                Some((name, old)) if **name == *column.name => *old = aggregate,
                _ => {
                    point.fields.truncate(kept);
                    point.fields.push((column.name.clone(), aggregate));
                }
            }
            kept += 1;
        }
        point.fields.truncate(kept);
    }
    Ok(())
}

/// The count, sum and maximum of each field of a row's points, column by
/// column: what a sum over buckets needs, decoded in one loop per column
/// rather than a [`Point`] at a time. Used again from row to row.
#[derive(Debug, Default)]
pub struct Totals {
    /// The points kept (within the range asked for): their times and how
    /// many samples each holds.
    pub stamps: Vec<Millis>,
    pub samples: Vec<u64>,
    /// The wanted fields, in the row's order; `columns[..len]` are this
    /// row's, the rest kept for their room.
    pub columns: Vec<TotalsColumn>,
    pub len: usize,
    /// Room for the decoding.
    ints: Vec<i64>,
    kept: Vec<u32>,
}

/// One field of a row in [`Totals`].
#[derive(Debug, Default)]
pub struct TotalsColumn {
    pub name: String,
    /// For each of the field's values kept, the place of its point in
    /// [`Totals::stamps`]; `count`, `sum` and `max` alike.
    pub at: Vec<u32>,
    pub count: Vec<u64>,
    pub sum: Vec<f64>,
    pub max: Vec<f64>,
}

impl Totals {
    /// This row's columns.
    pub fn columns(&self) -> &[TotalsColumn] {
        &self.columns[..self.len]
    }

    /// Decodes the points of `bytes` with `from <= ts <= to`, with the
    /// `wanted` fields only (all for `None`). On an error, holds nothing.
    pub fn decode(
        &mut self,
        bytes: &[u8],
        wanted: Option<&[String]>,
        (from, to): (Millis, Millis),
    ) -> Result<(), StoreError> {
        let decoded = self.decode_row(bytes, wanted, (from, to));
        if decoded.is_err() {
            self.stamps.clear();
            self.samples.clear();
            self.len = 0;
        }
        decoded
    }

    fn decode_row(
        &mut self,
        bytes: &[u8],
        wanted: Option<&[String]>,
        (from, to): (Millis, Millis),
    ) -> Result<(), StoreError> {
        let mut reader = Reader::new(bytes, "rollup");
        let version = read_version(&mut reader)?;
        let count = reader.count(block::MAX_SAMPLES)?;
        self.ints.clear();
        Ints::read(&mut reader, count, version)?.fill(count, &mut self.ints)?;
        // Each point's place among those kept (`u32::MAX`: out of range).
        self.kept.clear();
        self.stamps.clear();
        for &ts in &self.ints {
            match ts >= from && ts <= to {
                true => {
                    self.kept.push(self.stamps.len() as u32);
                    self.stamps.push(ts);
                }
                false => self.kept.push(u32::MAX),
            }
        }
        self.ints.clear();
        Ints::read(&mut reader, count, version)?.fill(count, &mut self.ints)?;
        self.samples.clear();
        for (&samples, &kept) in self.ints.iter().zip(&self.kept) {
            if kept != u32::MAX {
                self.samples.push(samples.max(0) as u64);
            }
        }
        let fields = reader.count(bytes.len())?;
        self.len = 0;
        let mut names = Vec::with_capacity(fields);
        for _ in 0..fields {
            let (name, present, values) = block::column_head(&mut reader, count, version)?;
            names.push(name);
            let limit = bytes.len();
            let mut counts = Ints::read(&mut reader, values, version)?;
            let mut sum = Values::read(&mut reader, values, limit, version)?;
            Values::read(&mut reader, values, limit, version)?;
            let mut max = Values::read(&mut reader, values, limit, version)?;
            Values::read(&mut reader, values, limit, version)?;
            Ints::read(&mut reader, values, version)?;
            if wanted.is_some_and(|wanted| !wanted.iter().any(|field| field == name)) {
                continue;
            }
            if self.columns.len() <= self.len {
                self.columns.push(TotalsColumn::default());
            }
            let column = &mut self.columns[self.len];
            self.len += 1;
            column.name.clear();
            column.name.push_str(name);
            // Where each value's point is kept.
            column.at.clear();
            match present {
                None => column.at.extend(self.kept.iter().copied()),
                Some(bitmap) => column.at.extend(
                    self.kept
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| bitmap[i / 8] & (1 << (i % 8)) != 0)
                        .map(|(_, &kept)| kept),
                ),
            }
            // The values of the points (a bitmap's bits past the last point
            // stand for nothing and are not read).
            let read = column.at.len();
            self.ints.clear();
            counts.fill(read, &mut self.ints)?;
            column.count.clear();
            column
                .count
                .extend(self.ints.iter().map(|&count| count.max(0) as u64));
            column.sum.clear();
            sum.fill(read, &mut column.sum, &mut self.ints)?;
            column.max.clear();
            max.fill(read, &mut column.max, &mut self.ints)?;
            // Only the points kept.
            if column.at.contains(&u32::MAX) {
                let mut place = 0;
                for i in 0..column.at.len() {
                    if column.at[i] != u32::MAX {
                        column.at[place] = column.at[i];
                        column.count[place] = column.count[i];
                        column.sum[place] = column.sum[i];
                        column.max[place] = column.max[i];
                        place += 1;
                    }
                }
                column.at.truncate(place);
                column.count.truncate(place);
                column.sum.truncate(place);
                column.max.truncate(place);
            }
        }
        // A field twice in a row is damage (rows are written with each
        // once), as in [`decode_fields_into`].
        if !reader.is_empty() || !block::distinct(&mut names) {
            return Err(reader.error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_aggregate_their_step_and_round_trip() {
        let samples = vec![
            Sample::new("h", 0, &[("a", 1.0), ("b", 0.5)]),
            Sample::new("h", 59_999, &[("a", 3.0)]),
            Sample::new("h", 59_999, &[("a", 2.0)]),
            Sample::new("h", 60_000, &[("b", -1.0)]),
        ];
        let points = roll_up(&samples, Step::Minute);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].samples, 3);
        assert_eq!(
            points[0].fields[0],
            (
                Arc::from("a"),
                Aggregate {
                    count: 3,
                    sum: 6.0,
                    min: 1.0,
                    max: 3.0,
                    last: 2.0,
                    last_ts: 59_999,
                }
            )
        );
        assert_eq!(points[1].ts, 60_000);
        assert_eq!(roll_up(&samples, Step::TenMinutes).len(), 1);
        // Minutes made ten minutes are what the samples make at ten minutes.
        assert_eq!(
            coarsen(points.clone(), Step::TenMinutes),
            roll_up(&samples, Step::TenMinutes)
        );
        assert_eq!(decode(&encode(&points).unwrap()).unwrap(), points);
    }

    /// A point's time, samples, and each field's count, sum and maximum.
    type Figures = Vec<(Millis, u64, Vec<(String, u64, f64, f64)>)>;

    /// What [`Totals`] gives, as points: the same as [`decode_fields`]
    /// narrowed to `[from, to]`, with count, sum and maximum only.
    fn totals_as_points(totals: &Totals) -> Figures {
        let mut points: Vec<_> = totals
            .stamps
            .iter()
            .zip(&totals.samples)
            .map(|(ts, samples)| (*ts, *samples, Vec::new()))
            .collect();
        for column in totals.columns() {
            for i in 0..column.at.len() {
                let point = &mut points[column.at[i] as usize];
                point.2.push((
                    column.name.clone(),
                    column.count[i],
                    column.sum[i],
                    column.max[i],
                ));
            }
        }
        points
    }

    fn points_as_totals(points: &[Point], (from, to): (Millis, Millis)) -> Figures {
        points
            .iter()
            .filter(|point| point.ts >= from && point.ts <= to)
            .map(|point| {
                let fields = point.fields.iter();
                let fields = fields.map(|(name, a)| (name.to_string(), a.count, a.sum, a.max));
                (point.ts, point.samples, fields.collect())
            })
            .collect()
    }

    /// Column by column, a row decodes to what its points hold, in any
    /// range and for any fields; a damaged row fails as it does point by
    /// point.
    #[test]
    fn totals_are_the_points_counts_sums_and_maxima() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut totals = Totals::default();
        for round in 0..200 {
            let samples: Vec<Sample> = (0..(1 + random() % 400) as i64)
                .map(|i| {
                    let mut fields = Vec::new();
                    for (n, name) in ["cpu.usage", "errors.count", "custom.x"].iter().enumerate() {
                        if random() % 5 != 0 || n == round % 3 {
                            let value = match random() % 4 {
                                0 => (random() % 10_000) as f64 / 100.0,
                                1 => (random() % 7) as f64,
                                2 => f64::from_bits(random() >> 2) % 1e12,
                                _ => -((random() % 1_000) as f64) * 0.125,
                            };
                            fields.push((*name, value));
                        }
                    }
                    Sample::new("h", 1_700_000_000_000 + i * 10_000, &fields)
                })
                .collect();
            let points = roll_up(&samples, Step::Minute);
            let Some(row) = encode(&points) else { continue };
            let (first, last) = (points[0].ts, points[points.len() - 1].ts);
            let span = (last - first).max(1);
            let from = first - 1 + (random() % span as u64) as i64 * (round % 2) as i64;
            let to = from + (random() % (span as u64 + 2)) as i64;
            let wanted = ["errors.count".to_string(), "none".to_string()];
            for fields in [None, Some(&wanted[..])] {
                totals.decode(&row, fields, (from, to)).unwrap();
                let expected = points_as_totals(&decode_fields(&row, fields).unwrap(), (from, to));
                assert_eq!(totals_as_points(&totals), expected, "round {round}");
            }
            // Damaged: cut short, or a bit changed (the minima and last
            // values are not read, as with `totals_only`); every bit of the
            // first rows, one at random of the others.
            let mut damaged: Vec<Vec<u8>> = Vec::new();
            if round < 30 && row.len() < 2_000 {
                for at in 0..row.len() {
                    for bit in 0..8 {
                        let mut flipped = row.clone();
                        flipped[at] ^= 1 << bit;
                        damaged.push(flipped);
                    }
                }
            }
            let at = (random() % row.len() as u64) as usize;
            damaged.push(row[..at].to_vec());
            for damaged in damaged {
                let mut by_points = Vec::new();
                let by_points =
                    decode_fields_into(&damaged, None, true, &mut by_points).map(|()| by_points);
                let by_columns = totals.decode(&damaged, None, (Millis::MIN, Millis::MAX));
                match (by_points, by_columns) {
                    (Err(_), Err(_)) => {
                        assert!(totals.stamps.is_empty() && totals.columns().is_empty())
                    }
                    (Ok(points), Ok(())) => assert_eq!(
                        totals_as_points(&totals),
                        points_as_totals(&points, (Millis::MIN, Millis::MAX))
                    ),
                    (points, columns) => panic!("round {round}: {points:?} but {columns:?}"),
                }
            }
        }
    }

    /// The bits of a bitmap past the last point stand for nothing: set by
    /// damage, they are not read as values either way.
    #[test]
    fn a_bitmaps_bits_past_the_points_are_not_read() {
        let samples: Vec<Sample> = (0..5i64)
            .map(|i| {
                let x = [1.0 / 3.0, 0.0, 1.0 / 5.0, 0.0, 1.0 / 7.0][i as usize];
                match i % 2 {
                    0 => Sample::new("h", i * 60_000, &[("y", 1.0), ("x", x)]),
                    _ => Sample::new("h", i * 60_000, &[("y", 1.0)]),
                }
            })
            .collect();
        let points = roll_up(&samples, Step::Minute);
        let row = encode(&points).unwrap();
        let at = row.windows(2).position(|pair| pair == [2, b'x']).unwrap() + 3;
        assert_eq!(row[at], 0b10101, "the bitmap of x");
        let mut totals = Totals::default();
        for bit in 5..8 {
            let mut damaged = row.clone();
            damaged[at] |= 1 << bit;
            let expected = decode_fields(&damaged, None).unwrap();
            assert_eq!(expected, points);
            totals
                .decode(&damaged, None, (Millis::MIN, Millis::MAX))
                .unwrap();
            assert_eq!(
                totals_as_points(&totals),
                points_as_totals(&points, (Millis::MIN, Millis::MAX))
            );
        }
    }

    /// A row that names a field twice is damaged, whichever way it is read.
    #[test]
    fn a_row_with_a_field_twice_is_refused() {
        let samples = [
            Sample::new("h", 0, &[("a", 1.0), ("b", 2.0)]),
            Sample::new("h", 60_000, &[("a", 3.0), ("b", 4.0)]),
        ];
        let mut row = encode(&roll_up(&samples, Step::Minute)).unwrap();
        // Name "b" made "a": the names are written as a length and bytes.
        let at = row.windows(2).position(|pair| pair == [2, b'b']).unwrap();
        row[at + 1] = b'a';
        assert!(decode(&row).is_err());
        let mut totals = Totals::default();
        assert!(
            totals
                .decode(&row, None, (Millis::MIN, Millis::MAX))
                .is_err()
        );
    }

    /// A rollup row written by version 1 still reads back exactly.
    #[test]
    fn version_1_rows_still_read_back() {
        let written_by_version_1 = crate::store::block::tests::hex(
            "010101c0e7a8fef9620001060003096370752e757361676500010600000201b63900000001160000020\
             1da1400000001160001c0d8adfef9620008637573746f6d2e780001040000010149000000010700010\
             900343333333333d33f000001070001c0d8adfef962000c6572726f72732e636f756e7400010400000\
             0010a0000000104000000010600000001060001c0d8adfef96200",
        );
        let samples = crate::store::block::tests::fixture_samples();
        let points = roll_up(samples.iter(), Step::Minute);
        assert_eq!(decode(&written_by_version_1).unwrap(), points);
        let now = encode(&points).unwrap();
        assert_eq!(decode(&now).unwrap(), points);
        assert!(
            now.len() < written_by_version_1.len(),
            "{} bytes",
            now.len()
        );
    }
}
