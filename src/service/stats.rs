//! Stored samples downsampled into time buckets, per host: what
//! `/api/v1/stats` answers and what the monitoring page draws.

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::store::{Store, StoreError};

/// The most buckets one query may have per host.
pub(super) const MAX_BUCKETS: i64 = 10_000;

/// One field's values within a bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldStats {
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
pub(super) struct Bucket {
    pub samples: u32,
    pub fields: BTreeMap<String, FieldStats>,
}

/// Buckets by host name, then by start time.
pub(super) type HostBuckets = BTreeMap<String, BTreeMap<Millis, Bucket>>;

/// What to read and how to cut it.
#[derive(Debug, Clone)]
pub(super) struct StatsQuery {
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
        (((to - from) / 300).max(1000) + 999) / 1000 * 1000
    }

    /// How many buckets per host the query makes.
    pub fn buckets(&self) -> i64 {
        (self.to - self.from) / self.resolution + 1
    }

    /// Reads the samples of `[from, to]` into buckets. Blocking.
    pub fn run(&self, store: &dyn Store) -> Result<HostBuckets, StoreError> {
        let mut hosts = HostBuckets::new();
        store.scan_samples(self.from, self.to, &mut |sample| {
            if self.host.as_ref().is_some_and(|host| *host != sample.host) {
                return;
            }
            let start = self.from + (sample.ts - self.from) / self.resolution * self.resolution;
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
