//! Stored samples downsampled into time buckets, per host: what
//! `/api/v1/stats` answers and what the monitoring page draws.

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::rollup::{Point, Step};
use crate::store::{ALL_HOSTS, RollupQuery, SampleVisitor, Store, StoreError};

/// The most buckets one query may have per host.
pub(crate) const MAX_BUCKETS: i64 = 10_000;

/// The rollup reads (step, from, to) that cover `[from, to]` up to `until`
/// (the time before which samples are rolled up: a whole number of ten
/// minutes) with points of `step`, and the time from which the rest is read
/// sample by sample. A compaction cut short has rolled samples after `until`
/// into the step that holds `until`, and those samples are read again from
/// `until` on: so `step`'s points end at the last whole step before
/// `until`, and the ten minutes from there come from ten-minute points where
/// those are kept from there (`ten_minutes_from`), else from the samples. For
/// a step of ten minutes or less there is nothing between.
pub(crate) fn rolled_parts(
    step: Step,
    (from, to): (Millis, Millis),
    until: Millis,
    ten_minutes_from: Millis,
) -> (Vec<(Step, Millis, Millis)>, Millis) {
    let end = to.min(until.saturating_sub(1));
    if from > end {
        return (Vec::new(), from);
    }
    let whole = step.start_of(until).clamp(from, end.saturating_add(1));
    let mut parts = Vec::new();
    if from < whole {
        parts.push((step, from, whole - 1));
    }
    if whole > end {
        return (parts, until);
    }
    if step > Step::TenMinutes && ten_minutes_from <= whole {
        parts.push((Step::TenMinutes, whole, end));
        (parts, until)
    } else {
        (parts, whole)
    }
}

/// One field's values within a bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldStats {
    pub sum: f64,
    pub max: f64,
    pub count: u32,
}

impl FieldStats {
    pub const EMPTY: FieldStats = FieldStats {
        sum: 0.0,
        max: f64::NEG_INFINITY,
        count: 0,
    };

    pub fn add(&mut self, count: u32, sum: f64, max: f64) {
        self.count = self.count.saturating_add(count);
        // Finite, like every stored value: a sum past the largest number
        // stays at it, and so the average is a number too.
        self.sum = (self.sum + sum).clamp(-f64::MAX, f64::MAX);
        self.max = self.max.max(max);
    }

    pub fn avg(&self) -> f64 {
        self.sum / f64::from(self.count)
    }
}

/// The samples of one host within `[t, t + resolution)`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Bucket {
    pub samples: u32,
    pub fields: BTreeMap<String, FieldStats>,
}

/// Buckets by host name, then by start time.
pub(crate) type HostBuckets = BTreeMap<String, BTreeMap<Millis, Bucket>>;

/// The answer of `/api/v1/stats`, written straight from the buckets:
/// `{"from", "hosts": {host: [{"avg", "max", "samples", "sum", "t"}]},
/// "resolution", "to"}`, keys in name order; across hosts, `"points"`
/// (the buckets of every host together) in place of `"hosts"`.
pub(crate) struct StatsAnswer {
    pub from: Millis,
    pub to: Millis,
    pub resolution: Millis,
    pub hosts: HostBuckets,
    pub across_hosts: bool,
}

impl serde::Serialize for StatsAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut answer = serializer.serialize_map(Some(4))?;
        answer.serialize_entry("from", &self.from)?;
        if self.across_hosts {
            let points = self.hosts.get(ALL_HOSTS).into_iter().flatten();
            let points = points.map(|(t, bucket)| BucketAt(*t, bucket));
            answer.serialize_entry("points", &Seq(std::cell::Cell::new(Some(points))))?;
        } else {
            answer.serialize_entry("hosts", &Hosts(&self.hosts))?;
        }
        answer.serialize_entry("resolution", &self.resolution)?;
        answer.serialize_entry("to", &self.to)?;
        answer.end()
    }
}

struct Hosts<'a>(&'a HostBuckets);

impl serde::Serialize for Hosts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(host, buckets)| {
            let points = buckets.iter().map(|(t, bucket)| BucketAt(*t, bucket));
            (host, Seq(std::cell::Cell::new(Some(points))))
        }))
    }
}

/// A sequence written from an iterator, once.
struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = T>, T: serde::Serialize> serde::Serialize for Seq<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.take().into_iter().flatten())
    }
}

struct BucketAt<'a>(Millis, &'a Bucket);

impl serde::Serialize for BucketAt<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fields = &self.1.fields;
        let figure = |pick: fn(&FieldStats) -> f64| FieldMap(fields, pick);
        let mut point = serializer.serialize_map(Some(5))?;
        point.serialize_entry("avg", &figure(FieldStats::avg))?;
        point.serialize_entry("max", &figure(|stats| stats.max))?;
        point.serialize_entry("samples", &self.1.samples)?;
        point.serialize_entry("sum", &figure(|stats| stats.sum))?;
        point.serialize_entry("t", &self.0)?;
        point.end()
    }
}

struct FieldMap<'a>(&'a BTreeMap<String, FieldStats>, fn(&FieldStats) -> f64);

impl serde::Serialize for FieldMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(field, stats)| (field, (self.1)(stats))))
    }
}

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
    /// Every host's samples in the same buckets, under [`ALL_HOSTS`].
    pub across_hosts: bool,
    /// Per rollup step (in the order of [`Step::ALL`]), the time from which
    /// its rollups are kept: a query that starts before reads samples.
    pub rollups_kept_from: [Millis; 3],
}

impl StatsQuery {
    /// A query whose buckets start at `from`, or for a resolution that is a
    /// whole number of a rollup step, at the start of the step that holds
    /// `from`: each bucket then holds whole steps, and the rolled-up series
    /// answer for the compacted past.
    pub fn new(
        from: Millis,
        to: Millis,
        resolution: Millis,
        host: Option<String>,
        fields: Option<Vec<String>>,
    ) -> Self {
        let mut query = StatsQuery {
            from,
            to,
            resolution,
            host,
            fields,
            across_hosts: false,
            rollups_kept_from: [Millis::MIN; 3],
        };
        if let Some(step) = query.step() {
            query.from = step.start_of(from);
        }
        query
    }

    /// A resolution that cuts `[from, to]` into about 300 buckets: whole
    /// seconds, whole minutes past a minute, whole ten minutes past ten
    /// minutes (so that long ranges read rolled-up series).
    pub fn auto_resolution(from: Millis, to: Millis) -> Millis {
        let span = i128::from(to) - i128::from(from);
        let rough = (span / 300).max(1000);
        let unit = if rough <= 60_000 {
            1000
        } else if rough <= 600_000 {
            60_000
        } else {
            600_000
        };
        let resolution = (rough + unit - 1) / unit * unit;
        Millis::try_from(resolution).unwrap_or(Millis::MAX)
    }

    /// The coarsest rollup step that fits a whole number of times in the
    /// resolution.
    fn step(&self) -> Option<Step> {
        Step::ALL
            .into_iter()
            .rev()
            .find(|step| self.resolution % step.millis() == 0)
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

    /// The same query, with every host's samples in the same buckets.
    pub fn across_hosts(self) -> Self {
        StatsQuery {
            across_hosts: true,
            ..self
        }
    }

    /// Reads `[from, to]` into buckets: from the rolled-up series where the
    /// samples are rolled up and the resolution allows (across hosts, the
    /// series of every host together), from the samples themselves
    /// elsewhere. Blocking.
    pub fn run(&self, store: &dyn Store) -> Result<HostBuckets, StoreError> {
        let (mut hosts, raw_from) = self.run_rolled_up(store)?;
        if self.across_hosts {
            let mut together = self.together();
            store.visit_samples(raw_from, self.to, &mut together)?;
            together.add_to(self.buckets_of(&mut hosts, ALL_HOSTS));
            return Ok(hosts);
        }
        let mut add = |sample| self.add_sample(&mut hosts, sample);
        match &self.host {
            Some(host) => store.scan_host_samples(host, raw_from, self.to, &mut add)?,
            None => store.scan_samples(raw_from, self.to, &mut add)?,
        }
        Ok(hosts)
    }

    /// The part of [`StatsQuery::run`] read from rollups: the buckets, and
    /// the time from which the samples must be read as they lie.
    pub(crate) fn run_rolled_up(
        &self,
        store: &dyn Store,
    ) -> Result<(HostBuckets, Millis), StoreError> {
        let mut hosts = HostBuckets::new();
        let mut raw_from = self.from;
        // The coarsest step that fits, whose rollups are kept from `from`.
        let step = Step::ALL
            .into_iter()
            .zip(self.rollups_kept_from)
            .rev()
            .find(|(step, kept_from)| {
                self.resolution % step.millis() == 0
                    && self.from % step.millis() == 0
                    && self.from >= *kept_from
            });
        if let Some((step, _)) = step {
            let until = store.rolled_up_until()?;
            let (parts, raw) =
                rolled_parts(step, (self.from, self.to), until, self.rollups_kept_from[1]);
            for (step, from, to) in parts {
                let query = RollupQuery {
                    step,
                    from,
                    to,
                    host: match self.across_hosts {
                        true => Some(ALL_HOSTS),
                        false => self.host.as_deref(),
                    },
                    fields: self.fields.as_deref(),
                    totals_only: true,
                };
                store.scan_rollups(&query, &mut |host, point| {
                    self.add_point(&mut hosts, host, point)
                })?;
            }
            let end = self.to.min(raw.saturating_sub(1));
            if self.from <= end {
                // Samples that came after their time was rolled up: in no
                // rollup until the next compaction, but there all the same.
                store.scan_unrolled(self.from, end, &mut |sample| {
                    if self.across_hosts {
                        self.add_sample(
                            &mut hosts,
                            Sample {
                                host: ALL_HOSTS.to_string(),
                                ..sample
                            },
                        );
                    } else {
                        self.add_sample(&mut hosts, sample);
                    }
                })?;
            }
            raw_from = raw.max(self.from);
        }
        Ok((hosts, raw_from))
    }

    /// Adds up the samples it is handed, every host's in the same buckets
    /// (read as they lie: [`crate::store::SampleStore::visit_samples`]).
    pub(crate) fn together(&self) -> Together<'_> {
        Together::new(self)
    }

    fn wanted(&self, field: &str) -> bool {
        self.fields
            .as_ref()
            .is_none_or(|fields| fields.iter().any(|f| f == field))
    }

    /// The buckets of `host`'s samples (of every host's, across hosts).
    fn buckets_of<'h>(
        &self,
        hosts: &'h mut HostBuckets,
        host: &str,
    ) -> &'h mut BTreeMap<Millis, Bucket> {
        let host = if self.across_hosts { ALL_HOSTS } else { host };
        // A host's name is copied once, not once per point.
        if !hosts.contains_key(host) {
            hosts.insert(host.to_string(), BTreeMap::new());
        }
        hosts.get_mut(host).expect("inserted above")
    }

    fn add_sample(&self, hosts: &mut HostBuckets, sample: Sample) {
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
            if self.wanted(&field) {
                bucket
                    .fields
                    .entry(field)
                    .or_insert(FieldStats::EMPTY)
                    .add(1, value, value);
            }
        }
    }

    /// Adds a rolled-up point (already narrowed to the wanted fields).
    fn add_point(&self, hosts: &mut HostBuckets, host: &str, point: &Point) {
        let start = self.bucket_start(point.ts);
        let bucket = self.buckets_of(hosts, host).entry(start).or_default();
        bucket.samples += u32::try_from(point.samples).unwrap_or(u32::MAX);
        for (field, aggregate) in &point.fields {
            let count = u32::try_from(aggregate.count).unwrap_or(u32::MAX);
            let stats = match bucket.fields.get_mut(&**field) {
                Some(stats) => stats,
                None => bucket
                    .fields
                    .entry(field.to_string())
                    .or_insert(FieldStats::EMPTY),
            };
            stats.add(count, aggregate.sum, aggregate.max);
        }
    }
}

/// Every host's samples added up in the buckets of one query, without
/// copying them and with each field looked up by name once per run of
/// samples that name their fields alike.
pub(crate) struct Together<'q> {
    query: &'q StatsQuery,
    /// The wanted fields met so far.
    fields: Vec<String>,
    /// For each of the current names, its place in `fields` (`None`: not
    /// wanted).
    places: Vec<Option<usize>>,
    /// Per bucket: how many samples, and per place in `fields` its figures.
    buckets: Vec<(u32, Vec<FieldStats>)>,
    /// Bucket start: its place in `buckets`.
    starts: BTreeMap<Millis, usize>,
    /// The start and place of the bucket the last sample went into: the
    /// next sample most likely goes there too.
    last: Option<(Millis, usize)>,
}

impl<'q> Together<'q> {
    fn new(query: &'q StatsQuery) -> Self {
        Together {
            query,
            fields: Vec::new(),
            places: Vec::new(),
            buckets: Vec::new(),
            starts: BTreeMap::new(),
            last: None,
        }
    }

    /// The place in `buckets` of the bucket that holds `ts`.
    fn bucket(&mut self, ts: Millis) -> usize {
        if let Some((start, place)) = self.last {
            // At most `u64::MAX` apart when `ts >= start`.
            if ts >= start && (ts.wrapping_sub(start) as u64) < self.query.resolution as u64 {
                return place;
            }
        }
        let start = self.query.bucket_start(ts);
        let next = self.buckets.len();
        let place = *self.starts.entry(start).or_insert(next);
        if place == next {
            self.buckets.push((0, Vec::new()));
        }
        self.last = Some((start, place));
        place
    }

    /// Adds the buckets to `buckets`.
    pub(crate) fn add_to(mut self, buckets: &mut BTreeMap<Millis, Bucket>) {
        for (start, place) in self.starts {
            let (samples, figures) = std::mem::take(&mut self.buckets[place]);
            let bucket = buckets.entry(start).or_default();
            bucket.samples = bucket.samples.saturating_add(samples);
            for (field, stats) in self.fields.iter().zip(figures) {
                if stats.count > 0 {
                    bucket
                        .fields
                        .entry(field.clone())
                        .or_insert(FieldStats::EMPTY)
                        .add(stats.count, stats.sum, stats.max);
                }
            }
        }
    }
}

impl SampleVisitor for Together<'_> {
    fn names(&mut self, names: &[&str]) {
        self.places.clear();
        for name in names {
            let place = match self.fields.iter().position(|field| field == name) {
                Some(place) => Some(place),
                None if self.query.wanted(name) => {
                    self.fields.push(name.to_string());
                    Some(self.fields.len() - 1)
                }
                None => None,
            };
            self.places.push(place);
        }
    }

    fn sample(&mut self, _host: &str, ts: Millis, values: &[(usize, f64)]) {
        let bucket = self.bucket(ts);
        let (samples, figures) = &mut self.buckets[bucket];
        *samples = samples.saturating_add(1);
        for &(name, value) in values {
            let Some(&Some(place)) = self.places.get(name) else {
                continue;
            };
            if figures.len() <= place {
                figures.resize(place + 1, FieldStats::EMPTY);
            }
            figures[place].add(1, value, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SampleStore;
    use crate::store::SqliteStore;

    /// The same samples in two stores, one compacted (so rolled up), one
    /// not: every query gives the same buckets.
    #[test]
    fn rolled_up_and_raw_samples_give_the_same_buckets() {
        let (compacted_dir, raw_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let compacted = SqliteStore::open_dir(compacted_dir.path()).unwrap();
        let raw = SqliteStore::open_dir(raw_dir.path()).unwrap();
        let base = 1_700_000_000_000 / 600_000 * 600_000;
        let samples: Vec<Sample> = (0..2_000i64)
            .flat_map(|i| {
                ["a", "b"].map(|host| {
                    let mut fields = vec![("cpu.usage", (i % 17) as f64 * 0.75)];
                    if i % 5 == 0 {
                        fields.push(("errors.count", (i % 3) as f64));
                    }
                    Sample::new(host, base + i * 7_001, &fields)
                })
            })
            .collect();
        for store in [&compacted, &raw] {
            for batch in samples.chunks(100) {
                store.append_samples(batch).unwrap();
            }
        }
        let end = base + 2_000 * 7_001;
        // Everything but the last ten minutes or so.
        while compacted.compact_samples(end - 600_000).unwrap() > 0 {}
        assert!(compacted.rolled_up_until().unwrap() > base);
        // Samples pushed after their time was rolled up (late, or with old
        // timestamps): in no rollup until the next compaction, yet every
        // read has them.
        let late: Vec<Sample> = (0..50i64)
            .map(|i| Sample::new("a", base + 30_000 + i * 13_000, &[("cpu.usage", 99.0)]))
            .collect();
        assert!(
            late.iter()
                .all(|s| s.ts < compacted.rolled_up_until().unwrap())
        );
        for store in [&compacted, &raw] {
            store.append_samples(&late).unwrap();
        }
        for (from, resolution, host) in [
            (base, 60_000, None),
            (base + 12_345, 600_000, None),
            (base - 3_600_000, 1_800_000, Some("b".to_string())),
            (base + 7, 1_000, None),
        ] {
            let query = StatsQuery::new(from, end + 1, resolution, host.clone(), None);
            let (a, b) = (query.run(&compacted).unwrap(), query.run(&raw).unwrap());
            assert_same_buckets(&a, &b, resolution);
            if host.is_none() {
                // Across hosts: the same buckets in both stores, and the
                // per-host buckets added up.
                let across = query.clone().across_hosts();
                let (c, d) = (across.run(&compacted).unwrap(), across.run(&raw).unwrap());
                assert_same_buckets(&c, &d, resolution);
                assert_eq!(c.keys().collect::<Vec<_>>(), [ALL_HOSTS]);
                let mut added = HostBuckets::new();
                for (t, bucket) in a.values().flatten() {
                    let total: &mut Bucket = added
                        .entry(ALL_HOSTS.to_string())
                        .or_default()
                        .entry(*t)
                        .or_default();
                    total.samples += bucket.samples;
                    for (field, stats) in &bucket.fields {
                        total
                            .fields
                            .entry(field.clone())
                            .or_insert(FieldStats::EMPTY)
                            .add(stats.count, stats.sum, stats.max);
                    }
                }
                assert_same_buckets(&c, &added, resolution);
            }
        }
    }

    fn assert_same_buckets(a: &HostBuckets, b: &HostBuckets, resolution: Millis) {
        assert_eq!(a.len(), b.len());
        for ((host_a, buckets_a), (host_b, buckets_b)) in a.iter().zip(b) {
            assert_eq!(host_a, host_b);
            assert_eq!(buckets_a.len(), buckets_b.len());
            for ((t_a, x), (t_b, y)) in buckets_a.iter().zip(buckets_b) {
                assert_eq!((t_a, x.samples), (t_b, y.samples), "{resolution}");
                assert_eq!(x.fields.len(), y.fields.len());
                for ((f, p), (g, q)) in x.fields.iter().zip(&y.fields) {
                    assert_eq!((f, p.count, p.max), (g, q.count, q.max));
                    assert!((p.sum - q.sum).abs() < 1e-9 * q.sum.abs().max(1.0));
                }
            }
        }
    }

    #[test]
    fn the_widest_range_counts_its_buckets_without_overflow() {
        let query = StatsQuery {
            from: Millis::MIN,
            to: Millis::MAX,
            resolution: 1,
            host: None,
            fields: None,
            across_hosts: false,
            rollups_kept_from: [Millis::MIN; 3],
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
