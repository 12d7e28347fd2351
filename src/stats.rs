//! Stored samples downsampled into time buckets, per host: what
//! `/api/v1/stats` answers and what the monitoring page draws.

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::damage::or_skip;
use crate::store::rollup::{Step, Totals};
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

/// A read of rolled-up points: their step, from, to.
type RollupRead = (Step, Millis, Millis);

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
        if !self.across_hosts {
            // As the per-host answer reads them, on this thread.
            let mut hosts = HostBuckets::new();
            for (host, series) in self.read_hosts(store, 1)?.hosts {
                series.add_to(hosts.entry(host).or_default());
            }
            return Ok(hosts);
        }
        let (mut hosts, raw_from) = self.run_rolled_up(store)?;
        let mut together = self.together();
        store.visit_samples(raw_from, self.to, &mut together)?;
        together.add_to(self.buckets_of(&mut hosts, ALL_HOSTS));
        Ok(hosts)
    }

    /// The part of [`StatsQuery::run`] read from rollups: the buckets, and
    /// the time from which the samples must be read as they lie.
    pub(crate) fn run_rolled_up(
        &self,
        store: &dyn Store,
    ) -> Result<(HostBuckets, Millis), StoreError> {
        let mut hosts = HostBuckets::new();
        let raw_from = self.roll_into(
            store,
            &mut Buckets {
                query: self,
                hosts: &mut hosts,
            },
        )?;
        Ok((hosts, raw_from))
    }

    /// Every host's buckets (or the one asked for's), each host's kept as
    /// figures by field place, to be written as the per-host answer
    /// ([`ByHost::write_entries`]). On `threads` threads at once: each reads
    /// the rollups of the hosts that fall to it by name (no host's figures
    /// are added up in two places); then, on this thread, the samples that
    /// came after their time was rolled up, and the samples not yet rolled
    /// up visited where they lie (without a [`Sample`] made for each where
    /// the store can: the SQLite store's, but for one host's query while its
    /// newest samples are not yet in blocks). A host's samples are added in
    /// the order the store hands them, not in time order. The same sums, bit
    /// for bit, at any number of threads. Blocking.
    pub(crate) fn read_hosts(
        &self,
        store: &dyn Store,
        threads: usize,
    ) -> Result<ByHost<'_>, StoreError> {
        let threads = threads.max(1);
        let mut by_host = ByHost::new(self);
        let raw_from = match self.rolled_plan(store)? {
            Some((parts, raw)) => {
                let parts = &parts;
                let read_share = move |me: usize| -> Result<ByHost<'_>, StoreError> {
                    let mine = move |host: &str| share(host, threads) == me;
                    let mut hosts = ByHost::new(self);
                    for part in parts {
                        self.scan_part(store, *part, &mine, &mut hosts)?;
                    }
                    Ok(hosts)
                };
                let read: Vec<Result<ByHost<'_>, StoreError>> = match threads {
                    1 => vec![read_share(0)],
                    _ => std::thread::scope(|scope| {
                        let readers: Vec<_> = (0..threads)
                            .map(|me| scope.spawn(move || read_share(me)))
                            .collect();
                        readers.into_iter().map(joined).collect()
                    }),
                };
                for hosts in read {
                    // Each host is in one of them only.
                    by_host.hosts.extend(hosts?.hosts);
                }
                self.unrolled_into(store, raw, &mut by_host)?
            }
            None => self.from,
        };
        match &self.host {
            Some(host) => store.visit_host_samples(host, raw_from, self.to, &mut by_host)?,
            None => store.visit_samples(raw_from, self.to, &mut by_host)?,
        }
        Ok(by_host)
    }

    /// The whole per-host answer as [`StatsAnswer`] writes it, byte for
    /// byte, read and written on `threads` threads ([`StatsQuery::read_hosts`],
    /// [`ByHost::write_entries`]), as the tests read it. Blocking.
    #[cfg(test)]
    pub(crate) fn answer(
        &self,
        store: &dyn Store,
        threads: usize,
        (from, to, resolution): (Millis, Millis, Millis),
    ) -> Result<Vec<u8>, AnswerError> {
        let by_host = self.read_hosts(store, threads)?;
        let entries: Vec<std::sync::Mutex<Option<Entry>>> =
            (0..by_host.len()).map(|_| Default::default()).collect();
        by_host.write_entries(threads, &|k, entry| {
            *entries[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(entry);
            true
        });
        let (head, tail) = answer_ends((from, to, resolution));
        let mut answer = head;
        for entry in entries {
            match entry.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(entry) => answer.extend_from_slice(&entry?),
                None => {
                    return Err(StoreError::Corrupt(
                        "a thread of the stats answer failed".to_string(),
                    )
                    .into());
                }
            }
        }
        answer.extend_from_slice(&tail);
        Ok(answer)
    }

    /// The rollup reads that answer the query (step, from, to), and the
    /// time from which the samples must be read as they lie; `None` when no
    /// kept step fits.
    fn rolled_plan(
        &self,
        store: &dyn Store,
    ) -> Result<Option<(Vec<RollupRead>, Millis)>, StoreError> {
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
        let Some((step, _)) = step else {
            return Ok(None);
        };
        let until = store.rolled_up_until()?;
        let (parts, raw) =
            rolled_parts(step, (self.from, self.to), until, self.rollups_kept_from[1]);
        Ok(Some((parts, raw)))
    }

    /// Adds the rolled-up points of `[from, to]` of `step` of the hosts
    /// `mine` takes to `sink` (the others' rows are not decoded).
    fn scan_part(
        &self,
        store: &dyn Store,
        (step, from, to): (Step, Millis, Millis),
        mine: &dyn Fn(&str) -> bool,
        sink: &mut dyn Sink,
    ) -> Result<(), StoreError> {
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
        scan_totals(store, &query, mine, &mut |host, totals| {
            sink.totals(host, totals)
        })
    }

    /// Adds to `sink` the samples that came after their time was rolled up
    /// (in no rollup until the next compaction, but there all the same),
    /// before `raw`; returns the time from which the samples must be read.
    fn unrolled_into(
        &self,
        store: &dyn Store,
        raw: Millis,
        sink: &mut dyn Sink,
    ) -> Result<Millis, StoreError> {
        let end = self.to.min(raw.saturating_sub(1));
        if self.from <= end {
            store.scan_unrolled(self.from, end, &mut |sample| sink.sample(sample))?;
        }
        Ok(raw.max(self.from))
    }

    /// Adds to `sink` what rollups hold of the query; returns the time from
    /// which the samples must be read as they lie.
    fn roll_into(&self, store: &dyn Store, sink: &mut dyn Sink) -> Result<Millis, StoreError> {
        let Some((parts, raw)) = self.rolled_plan(store)? else {
            return Ok(self.from);
        };
        for part in parts {
            self.scan_part(store, part, &|_| true, sink)?;
        }
        self.unrolled_into(store, raw, sink)
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

    /// Adds a row's rolled-up points (already narrowed to the wanted
    /// fields).
    fn add_totals(&self, hosts: &mut HostBuckets, host: &str, totals: &Totals) {
        let buckets = self.buckets_of(hosts, host);
        let starts: Vec<Millis> = totals
            .stamps
            .iter()
            .map(|ts| self.bucket_start(*ts))
            .collect();
        for (start, samples) in starts.iter().zip(&totals.samples) {
            let bucket = buckets.entry(*start).or_default();
            bucket.samples = bucket
                .samples
                .saturating_add(u32::try_from(*samples).unwrap_or(u32::MAX));
        }
        for column in totals.columns() {
            for i in 0..column.at.len() {
                let bucket = buckets.entry(starts[column.at[i] as usize]).or_default();
                let count = u32::try_from(column.count[i]).unwrap_or(u32::MAX);
                let stats = match bucket.fields.get_mut(&column.name) {
                    Some(stats) => stats,
                    None => bucket
                        .fields
                        .entry(column.name.clone())
                        .or_insert(FieldStats::EMPTY),
                };
                stats.add(count, column.sum[i], column.max[i]);
            }
        }
    }
}

/// Hands `visit` the rolled-up points of `query` of each row of the hosts
/// `mine` takes (the others' rows are not decoded), column by column, the
/// query's fields only; a row that cannot be decoded is left out (logged
/// and counted), as damaged rows are.
pub(crate) fn scan_totals(
    store: &dyn Store,
    query: &RollupQuery<'_>,
    mine: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(&str, &Totals),
) -> Result<(), StoreError> {
    let mut totals = Totals::default();
    store.scan_rollup_rows(query, &mut |host, row| {
        if !mine(host) {
            return Ok(());
        }
        let decoded = or_skip(
            totals.decode(row, query.fields, (query.from, query.to)),
            || format!("a rollup row of host {host:?}"),
        )?;
        if decoded.is_some() && !totals.stamps.is_empty() {
            visit(host, &totals);
        }
        Ok(())
    })
}

/// What a query's reads are added to.
trait Sink {
    /// A row of rolled-up points of `host`, narrowed to the wanted fields.
    fn totals(&mut self, host: &str, totals: &Totals);
    /// A sample as it lies.
    fn sample(&mut self, sample: Sample);
}

/// Adds to buckets by host (every host's under [`ALL_HOSTS`], across hosts).
struct Buckets<'a> {
    query: &'a StatsQuery,
    hosts: &'a mut HostBuckets,
}

impl Sink for Buckets<'_> {
    fn totals(&mut self, host: &str, totals: &Totals) {
        self.query.add_totals(self.hosts, host, totals);
    }

    fn sample(&mut self, sample: Sample) {
        let sample = match self.query.across_hosts {
            true => Sample {
                host: ALL_HOSTS.to_string(),
                ..sample
            },
            false => sample,
        };
        self.query.add_sample(self.hosts, sample);
    }
}

/// Each host's buckets of one query, as figures by field place
/// ([`StatsQuery::read_hosts`]); written to JSON as the per-host answer
/// of `/api/v1/stats`, without a map of field names per bucket.
pub(crate) struct ByHost<'q> {
    query: &'q StatsQuery,
    hosts: BTreeMap<String, Together<'q>>,
    /// Every field name visited samples gave, each with its id (its place
    /// here), so that each host's series looks a name up once, by id.
    names: Vec<String>,
    ids: rustc_hash::FxHashMap<String, usize>,
    /// For each of the names last given to [`SampleVisitor::names`], its id
    /// and whether the query wants it.
    visiting: Vec<(usize, bool)>,
}

impl<'q> ByHost<'q> {
    fn new(query: &'q StatsQuery) -> Self {
        ByHost {
            query,
            hosts: BTreeMap::new(),
            names: Vec::new(),
            ids: Default::default(),
            visiting: Vec::new(),
        }
    }

    fn series(&mut self, host: &str) -> &mut Together<'q> {
        // A host's name is copied once, not once per sample.
        if !self.hosts.contains_key(host) {
            self.hosts
                .insert(host.to_string(), Together::new(self.query));
        }
        self.hosts.get_mut(host).expect("inserted above")
    }

    /// How many hosts have an entry.
    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Writes each host's entry of the answer (`"host":[bucket, ...]`, after
    /// a comma but for the first) on `threads` threads and hands it to
    /// `put` with its place in host name order: the `k`-th by the thread
    /// `k % threads`, so that the entries come about in order, to be sent
    /// as soon as written. A thread stops when `put` returns `false` (no
    /// one waits for the answer any more). Blocking.
    pub(crate) fn write_entries(
        &self,
        threads: usize,
        put: &(dyn Fn(usize, Entry) -> bool + Sync),
    ) {
        let threads = threads.max(1);
        let hosts: Vec<(&String, &Together<'_>)> = self.hosts.iter().collect();
        let hosts = &hosts;
        std::thread::scope(|scope| {
            for me in 0..threads {
                scope.spawn(move || {
                    for k in (me..hosts.len()).step_by(threads) {
                        let (host, series) = hosts[k];
                        if !put(k, write_host(k > 0, host, series)) {
                            return;
                        }
                    }
                });
            }
        });
    }
}

impl Sink for ByHost<'_> {
    fn totals(&mut self, host: &str, totals: &Totals) {
        self.series(host).add_totals(totals);
    }

    fn sample(&mut self, sample: Sample) {
        crate::store::visit_sample(self, &sample, &mut Vec::new());
    }
}

impl SampleVisitor for ByHost<'_> {
    fn names(&mut self, names: &[&str]) {
        self.visiting.clear();
        for name in names {
            let id = match self.ids.get(*name) {
                Some(id) => *id,
                None => {
                    self.names.push(name.to_string());
                    self.ids.insert(name.to_string(), self.names.len() - 1);
                    self.names.len() - 1
                }
            };
            self.visiting.push((id, self.query.wanted(name)));
        }
    }

    fn wants(&self, place: usize) -> bool {
        self.visiting.get(place).is_some_and(|(_, wanted)| *wanted)
    }

    fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]) {
        if self.query.host.as_ref().is_some_and(|one| one != host) {
            return;
        }
        // Borrowed apart from the series, which is also in `self`.
        let visiting = std::mem::take(&mut self.visiting);
        let names = std::mem::take(&mut self.names);
        self.series(host).add_values(ts, values, &visiting, &names);
        self.visiting = visiting;
        self.names = names;
    }
}

/// A host's entry in the per-host answer, as JSON ([`ByHost::write_entries`]).
pub(crate) type Entry = Result<Vec<u8>, serde_json::Error>;

/// Why the per-host answer could not be made.
#[cfg(test)]
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the answer could not be written: {0}")]
    Write(#[from] serde_json::Error),
}

/// What a scoped thread gave, or an error if it panicked.
fn joined<T, E: From<StoreError>>(
    thread: std::thread::ScopedJoinHandle<'_, Result<T, E>>,
) -> Result<T, E> {
    thread.join().unwrap_or_else(|_| {
        Err(StoreError::Corrupt("a thread of the stats answer failed".to_string()).into())
    })
}

/// Which of `threads` threads takes `host`: by its name, so that every
/// read of the query gives the host to the same one.
fn share(host: &str, threads: usize) -> usize {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let hash = BuildHasherDefault::<rustc_hash::FxHasher>::default().hash_one(host);
    (hash % threads as u64) as usize
}

/// What comes before the hosts' entries in the per-host answer of
/// `/api/v1/stats`, and what after, as [`StatsAnswer`] writes them.
pub(crate) fn answer_ends((from, to, resolution): (Millis, Millis, Millis)) -> (Vec<u8>, Vec<u8>) {
    let mut number = Numbers::default();
    let mut head = b"{\"from\":".to_vec();
    number.int(&mut head, from);
    head.extend_from_slice(b",\"hosts\":{");
    let mut tail = b"},\"resolution\":".to_vec();
    number.int(&mut tail, resolution);
    tail.extend_from_slice(b",\"to\":");
    number.int(&mut tail, to);
    tail.push(b'}');
    (head, tail)
}

/// The entry `"host":[bucket, ...]` of one host's series, written by hand
/// byte for byte as serde_json writes [`StatsAnswer`]: each field's key is
/// escaped once, not once per figure (30 per bucket).
fn write_host(
    after_another: bool,
    host: &str,
    series: &Together<'_>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(series.json_size(host) + 1);
    if after_another {
        out.push(b',');
    }
    let mut number = Numbers::default();
    serde_json::to_writer(&mut out, host)?;
    out.push(b':');
    // The fields in name order, as a map gives them, each with its key.
    let mut order: Vec<usize> = (0..series.fields.len()).collect();
    order.sort_by(|a, b| series.fields[*a].cmp(&series.fields[*b]));
    let mut keys = Vec::with_capacity(order.len());
    for &place in &order {
        let mut key = serde_json::to_vec(&series.fields[place])?;
        key.push(b':');
        keys.push((place, key));
    }
    out.push(b'[');
    for (n, (start, place)) in series.starts.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let (samples, figures) = &series.buckets[*place];
        out.extend_from_slice(b"{\"avg\":");
        number.figures(&mut out, figures, &keys, FieldStats::avg);
        out.extend_from_slice(b",\"max\":");
        number.figures(&mut out, figures, &keys, |stats| stats.max);
        out.extend_from_slice(b",\"samples\":");
        number.int(&mut out, *samples);
        out.extend_from_slice(b",\"sum\":");
        number.figures(&mut out, figures, &keys, |stats| stats.sum);
        out.extend_from_slice(b",\"t\":");
        number.int(&mut out, *start);
        out.push(b'}');
    }
    out.push(b']');
    Ok(out)
}

const NEGATIVE_ZERO: u64 = 0x8000_0000_0000_0000;

/// Writes numbers as serde_json does.
#[derive(Default)]
struct Numbers {
    ints: itoa::Buffer,
    floats: zmij::Buffer,
}

impl Numbers {
    fn int<I: itoa::Integer>(&mut self, out: &mut Vec<u8>, value: I) {
        out.extend_from_slice(self.ints.format(value).as_bytes());
    }

    /// `value` as serde_json writes an `f64`: `null` when not finite, a
    /// whole number below 10^15 as its digits and `.0` (what the shortest
    /// form gives, reached faster), any other as its shortest form.
    fn float(&mut self, out: &mut Vec<u8>, value: f64) {
        if !value.is_finite() {
            out.extend_from_slice(b"null");
        } else if let Some(whole) = Some(value as i64)
            .filter(|whole| *whole as f64 == value && whole.unsigned_abs() < 1_000_000_000_000_000)
            && value.to_bits() != NEGATIVE_ZERO
        {
            self.int(out, whole);
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(self.floats.format_finite(value).as_bytes());
        }
    }

    /// A map of the fields of `keys` (place, `"name":`) present in
    /// `figures`, each with the figure `pick` takes.
    fn figures(
        &mut self,
        out: &mut Vec<u8>,
        figures: &[FieldStats],
        keys: &[(usize, Vec<u8>)],
        pick: fn(&FieldStats) -> f64,
    ) {
        out.push(b'{');
        let mut first = true;
        for (place, key) in keys {
            let Some(stats) = figures.get(*place).filter(|stats| stats.count > 0) else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            self.float(out, pick(stats));
        }
        out.push(b'}');
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
    /// Room for the bucket of each point of a row of rollups, and the
    /// place of each of its columns.
    point_buckets: Vec<usize>,
    column_places: Vec<Option<usize>>,
    /// Per bucket: how many samples, and per place in `fields` its figures.
    buckets: Vec<(u32, Vec<FieldStats>)>,
    /// Bucket start: its place in `buckets`.
    starts: BTreeMap<Millis, usize>,
    /// The start and place of the bucket the last sample went into: the
    /// next sample most likely goes there too.
    last: Option<(Millis, usize)>,
    /// By field id ([`ByHost`]'s names), for the ids of this series'
    /// samples only: its place in `fields` (`None`: not wanted). A map, not
    /// a table by id: ids count every host's names, and a fleet whose hosts
    /// each name fields of their own would make tables as long as all of
    /// them, per host.
    id_places: rustc_hash::FxHashMap<usize, Option<usize>>,
}

impl<'q> Together<'q> {
    fn new(query: &'q StatsQuery) -> Self {
        Together {
            query,
            fields: Vec::new(),
            places: Vec::new(),
            point_buckets: Vec::new(),
            column_places: Vec::new(),
            buckets: Vec::new(),
            starts: BTreeMap::new(),
            last: None,
            id_places: Default::default(),
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

    /// About the size of its buckets in JSON, as `host`'s: each field of a
    /// bucket named three times with a number, and the bucket's own keys.
    fn json_size(&self, host: &str) -> usize {
        let names: usize = self.fields.iter().map(|name| name.len() + 24).sum();
        host.len() + 8 + self.buckets.len() * (64 + 3 * names)
    }

    /// The place of field `name` in `fields` (`None`: not wanted).
    fn place_of(&mut self, name: &str) -> Option<usize> {
        match self.fields.iter().position(|field| field == name) {
            Some(place) => Some(place),
            None if self.query.wanted(name) => {
                self.fields.push(name.to_string());
                Some(self.fields.len() - 1)
            }
            None => None,
        }
    }

    /// Adds a row's rolled-up points.
    fn add_totals(&mut self, totals: &Totals) {
        let mut places = std::mem::take(&mut self.column_places);
        places.clear();
        for column in totals.columns() {
            places.push(self.place_of(&column.name));
        }
        // Each point's bucket, found once for all its fields, with room for
        // every field met so far.
        let width = self.fields.len();
        let mut at = std::mem::take(&mut self.point_buckets);
        at.clear();
        for (&ts, &samples) in totals.stamps.iter().zip(&totals.samples) {
            let bucket = self.bucket(ts);
            let (count, figures) = &mut self.buckets[bucket];
            *count = count.saturating_add(u32::try_from(samples).unwrap_or(u32::MAX));
            if figures.len() < width {
                figures.resize(width, FieldStats::EMPTY);
            }
            at.push(bucket);
        }
        for (column, place) in totals.columns().iter().zip(&places) {
            let Some(place) = *place else {
                continue;
            };
            for (i, point) in column.at.iter().enumerate() {
                let count = u32::try_from(column.count[i]).unwrap_or(u32::MAX);
                self.buckets[at[*point as usize]].1[place].add(count, column.sum[i], column.max[i]);
            }
        }
        self.point_buckets = at;
        self.column_places = places;
    }

    /// Adds a sample visited by a [`ByHost`]: its fields by place in
    /// `visiting` (each name's id in `names`, and whether it is wanted).
    fn add_values(
        &mut self,
        ts: Millis,
        values: &[(usize, f64)],
        visiting: &[(usize, bool)],
        names: &[String],
    ) {
        let bucket = self.bucket(ts);
        self.buckets[bucket].0 = self.buckets[bucket].0.saturating_add(1);
        for &(at, value) in values {
            let Some(&(id, true)) = visiting.get(at) else {
                continue;
            };
            let Some(place) = self.place_of_id(id, &names[id]) else {
                continue;
            };
            let figures = &mut self.buckets[bucket].1;
            if figures.len() <= place {
                figures.resize(place + 1, FieldStats::EMPTY);
            }
            figures[place].add(1, value, value);
        }
    }

    /// The place in `fields` of the field of id `id`, named `name`.
    fn place_of_id(&mut self, id: usize, name: &str) -> Option<usize> {
        if let Some(place) = self.id_places.get(&id) {
            return *place;
        }
        let place = self.place_of(name);
        self.id_places.insert(id, place);
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
            let place = self.place_of(name);
            self.places.push(place);
        }
    }

    fn wants(&self, place: usize) -> bool {
        matches!(self.places.get(place), Some(Some(_)))
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

    /// Numbers are written as serde_json writes them, whole ones by the
    /// short way included.
    #[test]
    fn numbers_are_written_as_serde_json_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e15 - 1.0,
            1e15,
            -(1e15 - 1.0),
            1e16,
            123_456_789_012_345.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            77.75000000000003,
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for exponent in 0..16 {
            let power = 10f64.powi(exponent);
            values.extend([power, power - 1.0, power + 1.0, -power, power / 3.0]);
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let whole = (x % 2_000_000_000_000_000) as f64 - 1e15;
            values.extend([whole, f64::from_bits(x), whole / 100.0]);
        }
        let mut numbers = Numbers::default();
        for value in values {
            let mut out = Vec::new();
            numbers.float(&mut out, value);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&value).unwrap(),
                "{value:?}"
            );
        }
    }

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
                    // A field of its own, named first or last.
                    let own = format!("{host}.own");
                    match i % 7 {
                        0 => fields.insert(0, (&own, i as f64)),
                        1 => fields.push((&own, -(i as f64))),
                        _ => {}
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
        while compacted
            .compact_samples(end - 600_000, crate::store::EVERY_ROLLUP)
            .unwrap()
            > 0
        {}
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
            let narrowed = StatsQuery {
                fields: Some(vec!["errors.count".to_string(), "b.own".to_string()]),
                ..query.clone()
            };
            // Both stores give what the samples themselves give, added up
            // here, with every field or some.
            for query in [&query, &narrowed] {
                let mut expected = HostBuckets::new();
                for sample in samples.iter().chain(&late) {
                    if (query.from..=query.to).contains(&sample.ts) {
                        query.add_sample(&mut expected, sample.clone());
                    }
                }
                assert!(!expected.is_empty());
                for store in [&compacted, &raw] {
                    assert_same_buckets(&query.run(store).unwrap(), &expected, resolution);
                }
            }
            // The per-host answer, written from each host's figures, is the
            // answer written from the buckets, byte for byte.
            for store in [&compacted, &raw] {
                for query in [&query, &narrowed] {
                    let buckets = StatsAnswer {
                        from,
                        to: end + 1,
                        resolution,
                        hosts: query.run(store).unwrap(),
                        across_hosts: false,
                    };
                    let x = serde_json::to_string(&buckets).unwrap();
                    assert!(x.len() > 100, "{x}");
                    for threads in [1, 2, 3] {
                        let answer = query.answer(store, threads, (from, end + 1, resolution));
                        let y = String::from_utf8(answer.unwrap()).unwrap();
                        assert_eq!(x, y, "{resolution}, {threads} threads");
                    }
                }
            }
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
