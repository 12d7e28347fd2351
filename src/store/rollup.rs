//! Rolled-up series: per host, field and step (a minute, ten minutes), the
//! count, sum, minimum, maximum and last value of the samples in each step,
//! and how many samples the step holds. Long charts and stats read these
//! instead of every sample.
//!
//! Stored in the [`block`] format: a rollup row is a block whose samples are
//! the steps (timestamp: the step's start) and whose fields are
//! `<field>/count`, `/sum`, `/min`, `/max`, `/last`, `/at` (the last one's
//! time), and `/samples`; a field
//! name cannot hold a `/`, so nothing is ambiguous.

use std::collections::BTreeMap;

use super::StoreError;
use super::block::{self, BlockReader};
use crate::duration::Millis;
use crate::sample::Sample;

/// The steps rolled up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Minute,
    TenMinutes,
}

impl Step {
    pub const ALL: [Step; 2] = [Step::Minute, Step::TenMinutes];

    pub fn millis(self) -> Millis {
        match self {
            Step::Minute => 60_000,
            Step::TenMinutes => 600_000,
        }
    }

    /// The time one stored row of this step covers.
    pub fn row_span(self) -> Millis {
        match self {
            Step::Minute => 3_600_000,
            Step::TenMinutes => 86_400_000,
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
        self.sum += later.sum;
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
    pub fields: Vec<(String, Aggregate)>,
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
            match point.fields.iter_mut().find(|(field, _)| field == name) {
                Some((_, aggregate)) => aggregate.add(sample.ts, *value),
                None => point
                    .fields
                    .push((name.clone(), Aggregate::new(sample.ts, *value))),
            }
        }
    }
    points
}

const PARTS: [&str; 6] = ["count", "sum", "min", "max", "last", "at"];
const SAMPLES: &str = "/samples";

/// Encodes points (in time order) as a block.
pub fn encode(points: &[Point]) -> Option<Vec<u8>> {
    let rows: Vec<Sample> = points
        .iter()
        .map(|point| {
            let mut metrics = Vec::with_capacity(1 + point.fields.len() * PARTS.len());
            metrics.push((SAMPLES.to_string(), point.samples as f64));
            for (name, a) in &point.fields {
                let values = [
                    a.count as f64,
                    a.sum,
                    a.min,
                    a.max,
                    a.last,
                    a.last_ts as f64,
                ];
                for (part, value) in PARTS.iter().zip(values) {
                    metrics.push((format!("{name}/{part}"), value));
                }
            }
            Sample {
                host: String::new(),
                ts: point.ts,
                metrics,
            }
        })
        .collect();
    let refs: Vec<&Sample> = rows.iter().collect();
    block::encode(&refs)
}

/// The inverse of [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Point>, StoreError> {
    let corrupt = || StoreError::Corrupt("a rollup cannot be decoded".to_string());
    let mut reader = BlockReader::new(bytes)?;
    let mut points = Vec::with_capacity(reader.len());
    while let Some((ts, metrics)) = reader.next_sample()? {
        let mut samples = None;
        let mut fields: BTreeMap<String, [Option<f64>; 6]> = BTreeMap::new();
        let mut order = Vec::new();
        for (name, value) in metrics {
            if name == SAMPLES {
                samples = Some(value);
                continue;
            }
            let (field, part) = name.rsplit_once('/').ok_or_else(corrupt)?;
            let index = PARTS.iter().position(|p| *p == part).ok_or_else(corrupt)?;
            let parts = fields.entry(field.to_string()).or_insert_with(|| {
                order.push(field.to_string());
                [None; 6]
            });
            parts[index] = Some(value);
        }
        let mut point = Point {
            ts,
            samples: samples.ok_or_else(corrupt)? as u64,
            fields: Vec::with_capacity(order.len()),
        };
        for field in order {
            let [
                Some(count),
                Some(sum),
                Some(min),
                Some(max),
                Some(last),
                Some(last_ts),
            ] = fields[&field]
            else {
                return Err(corrupt());
            };
            point.fields.push((
                field,
                Aggregate {
                    count: count as u64,
                    sum,
                    min,
                    max,
                    last,
                    last_ts: last_ts as Millis,
                },
            ));
        }
        points.push(point);
    }
    Ok(points)
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
                "a".to_string(),
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
        assert_eq!(decode(&encode(&points).unwrap()).unwrap(), points);
    }
}
