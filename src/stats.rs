//! Stored samples downsampled into time buckets, per host: what
//! `/api/v1/stats` answers and what the monitoring page draws.

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::store::{Store, StoreError};

/// The most buckets one query may have per host.
pub(crate) const MAX_BUCKETS: i64 = 10_000;

/// One field's values within a bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldStats {
    pub sum: f64,
    pub max: f64,
    pub count: u32,
}

impl FieldStats {
    pub fn avg(&self) -> f64 {
        self.sum / f64::from(self.count)
    }
}

/// The samples of one host within `[t, t + resolution)`.
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    pub samples: u32,
    pub fields: BTreeMap<String, FieldStats>,
}

/// Buckets by host name, then by start time.
pub(crate) type HostBuckets = BTreeMap<String, BTreeMap<Millis, Bucket>>;

/// What to read and how to cut it.
#[derive(Debug, Clone)]
pub(crate) struct StatsQuery {
    pub from: Millis,
    pub to: Millis,
    pub resolution: Millis,
    /// One host only.
    pub host: Option<String>,
    /// These fields only.
    pub fields: Option<Vec<String>>,
}

impl StatsQuery {
    /// A resolution that cuts `[from, to]` into about 300 buckets of whole seconds.
    pub fn auto_resolution(from: Millis, to: Millis) -> Millis {
        let span = i128::from(to) - i128::from(from);
        let resolution = ((span / 300).max(1000) + 999) / 1000 * 1000;
        Millis::try_from(resolution).unwrap_or(Millis::MAX)
    }

    /// How many buckets per host the query makes (any `from <= to`, any
    /// resolution > 0, without overflow).
    pub fn buckets(&self) -> i64 {
        let span = i128::from(self.to) - i128::from(self.from);
        let buckets = span / i128::from(self.resolution.max(1)) + 1;
        i64::try_from(buckets).unwrap_or(i64::MAX)
    }

    /// The start of the bucket that holds `ts` (`from <= ts`).
    fn bucket_start(&self, ts: Millis) -> Millis {
        let resolution = i128::from(self.resolution.max(1));
        let offset = (i128::from(ts) - i128::from(self.from)) / resolution * resolution;
        // At most `ts - from`, so the sum is at most `ts`.
        (i128::from(self.from) + offset) as Millis
    }

    /// Reads the samples of `[from, to]` into buckets. Blocking.
    pub fn run(&self, store: &dyn Store) -> Result<HostBuckets, StoreError> {
        let mut hosts = HostBuckets::new();
        store.scan_samples(self.from, self.to, &mut |sample| {
            if self.host.as_ref().is_some_and(|host| *host != sample.host) {
                return;
            }
            let start = self.bucket_start(sample.ts);
            let bucket = hosts
                .entry(sample.host)
                .or_default()
                .entry(start)
                .or_default();
            bucket.samples += 1;
            for (field, value) in sample.metrics {
                if self
                    .fields
                    .as_ref()
                    .is_some_and(|fields| !fields.contains(&field))
                {
                    continue;
                }
                let entry = bucket.fields.entry(field).or_insert(FieldStats {
                    sum: 0.0,
                    max: f64::NEG_INFINITY,
                    count: 0,
                });
                entry.sum += value;
                entry.max = entry.max.max(value);
                entry.count += 1;
            }
        })?;
        Ok(hosts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_range_counts_its_buckets_without_overflow() {
        let query = StatsQuery {
            from: Millis::MIN,
            to: Millis::MAX,
            resolution: 1,
            host: None,
            fields: None,
        };
        assert_eq!(query.buckets(), i64::MAX);
        assert_eq!(query.bucket_start(5), 5);
        let auto = StatsQuery::auto_resolution(Millis::MIN, Millis::MAX);
        assert!(auto >= 1000);
        let query = StatsQuery {
            resolution: auto,
            ..query
        };
        assert!(
            (300..=301).contains(&query.buckets()),
            "{}",
            query.buckets()
        );
        assert!(query.bucket_start(Millis::MAX) > Millis::MAX - auto);
    }
}
