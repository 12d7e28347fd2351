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
    for _ in 0..fields {
        let name: Arc<str> = Arc::from(if version == 1 {
            reader.str()?
        } else {
            reader.name()?
        });
        let present = match reader.byte()? {
            block::ALL_PRESENT => None,
            block::BITMAP => Some(reader.take(count.div_ceil(8))?),
            _ => return Err(reader.error()),
        };
        let values = match present {
            None => count,
            Some(bitmap) => bitmap.iter().map(|byte| byte.count_ones() as usize).sum(),
        };
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
    if !reader.is_empty() {
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
