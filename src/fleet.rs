//! Each host's figures over a time frame, for the monitoring page's
//! overview at fleet scale: how many samples, each field's count, sum and
//! peak, and since when it has reported without a gap; and the series of
//! a few fields, for the hosts the page draws.
//!
//! Read in one pass over each kind of stored data, without a bucket per
//! host and point: where the samples are rolled up, from each host's
//! rollups of one step (late samples added as they lie); elsewhere from the
//! samples as they lie in their rows ([`SampleStore::visit_samples`]),
//! once for the hosts' figures and the series of every host together. A
//! thousand hosts over seven days are 1,008,000 ten-minute rollup points,
//! not 60 million samples.

use std::collections::{BTreeMap, HashMap};

use crate::duration::Millis;
use crate::stats::{Bucket, FieldStats, StatsQuery, rolled_parts, scan_totals};
use crate::store::rollup::{Step, Totals};
use crate::store::{ALL_HOSTS, RollupQuery, SampleVisitor, Store, StoreError};

/// One host over the frame.
#[derive(Debug, Clone)]
pub(crate) struct HostFrame {
    pub samples: u64,
    /// Per field asked for, in the order asked.
    pub fields: Vec<FieldStats>,
    /// Per grain of the frame (see [`FrameQuery::grain`]), whether the host
    /// sent anything in it: a bit each.
    present: Vec<u64>,
    /// Per point of the query's resolution, per series field: the mean.
    pub series: Vec<Vec<Mean>>,
}

/// A mean being added up.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mean {
    pub sum: f64,
    pub count: u32,
}

impl Mean {
    fn add(&mut self, count: u32, sum: f64) {
        self.count = self.count.saturating_add(count);
        self.sum = (self.sum + sum).clamp(-f64::MAX, f64::MAX);
    }

    pub fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }
}

impl HostFrame {
    fn new(fields: usize, grains: usize) -> Self {
        HostFrame {
            samples: 0,
            fields: vec![FieldStats::EMPTY; fields],
            present: vec![0; grains.div_ceil(64)],
            series: Vec::new(),
        }
    }

    fn mark(&mut self, grain: usize) {
        if let Some(word) = self.present.get_mut(grain / 64) {
            *word |= 1 << (grain % 64);
        }
    }

    /// The series point of `index`, made if need be.
    fn point_at(&mut self, index: usize, fields: usize) -> &mut [Mean] {
        if self.series.len() <= index {
            self.series
                .resize_with(index + 1, || vec![Mean::default(); fields]);
        }
        &mut self.series[index]
    }

    /// The series of the `nth` series field: each point's start and mean.
    pub fn series_of(&self, nth: usize, from: Millis, resolution: Millis) -> Vec<(Millis, f64)> {
        self.series
            .iter()
            .enumerate()
            .filter_map(|(index, point)| {
                Some((
                    from + index as Millis * resolution,
                    point.get(nth)?.value()?,
                ))
            })
            .collect()
    }

    fn is_present(&self, grain: usize) -> bool {
        self.present
            .get(grain / 64)
            .is_some_and(|word| word & (1 << (grain % 64)) != 0)
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub(crate) struct FrameQuery {
    pub from: Millis,
    pub to: Millis,
    pub fields: Vec<String>,
    /// Read the rolled-up past from the rollups of this step (else every
    /// sample).
    pub rolled_up: Option<Step>,
    /// The grain "reporting since" is told at: a gap shorter than it may
    /// not show.
    pub grain: Millis,
    /// The fields (places in `fields`) whose series each host keeps, in
    /// points of `resolution` from `series_from`, for the samples read as
    /// they lie (the rolled-up past is read for the hosts drawn only, by
    /// [`FrameQuery::add_rolled_series`]).
    pub series: Vec<usize>,
    pub resolution: Millis,
    pub series_from: Millis,
    /// The series of every host together to read with the figures (its
    /// query across hosts): the samples read as they lie are read once for
    /// both.
    pub together: Option<StatsQuery>,
    /// Per rollup step (in the order of [`Step::ALL`]), the time from which
    /// its rollups are kept.
    pub kept_from: [Millis; 3],
}

/// Every host's figures over the frame.
#[derive(Debug, Default)]
pub(crate) struct FleetFrame {
    pub hosts: BTreeMap<String, HostFrame>,
    /// The buckets of every host together, if asked for.
    pub together: BTreeMap<Millis, Bucket>,
    /// From when the samples were read as they lie (before: from rollups).
    raw_from: Millis,
    from: Millis,
    grain: Millis,
    grains: usize,
    fields: usize,
}

impl FleetFrame {
    /// The figures of a host that sent nothing in the frame.
    pub fn empty(&self) -> HostFrame {
        HostFrame::new(self.fields, self.grains)
    }

    /// The start of `host`'s latest run of grains without a gap, if it
    /// sent anything in the frame.
    pub fn reporting_since(&self, host: &str) -> Option<Millis> {
        let figures = self.hosts.get(host)?;
        let last = (0..self.grains).rev().find(|&g| figures.is_present(g))?;
        let first = (0..=last)
            .rev()
            .take_while(|&g| figures.is_present(g))
            .last()
            .unwrap_or(last);
        Some(self.from.max(self.from + first as Millis * self.grain))
    }
}

impl FrameQuery {
    /// Reads the frame from `store`. Blocking.
    pub fn run(&self, store: &dyn Store) -> Result<FleetFrame, StoreError> {
        let grain = self.grain.max(1);
        let from = match self.rolled_up {
            Some(step) => step.start_of(self.from),
            None => self.from,
        };
        let grains = usize::try_from((self.to - from) / grain + 1).unwrap_or(0);
        let mut reader = Reader {
            query: self,
            frame: FleetFrame {
                hosts: BTreeMap::new(),
                together: BTreeMap::new(),
                raw_from: from,
                from,
                grain,
                grains,
                fields: self.fields.len(),
            },
            places: Vec::new(),
            read: Vec::new(),
            known: HashMap::new(),
            current: None,
            point_places: Vec::new(),
            point_grains: Vec::new(),
        };
        let mut raw_from = from;
        if let Some(step) = self.rolled_up {
            let until = store.rolled_up_until()?;
            let (parts, raw) = rolled_parts(step, (from, self.to), until, self.kept_from[1]);
            for (step, from, to) in parts {
                let rollups = RollupQuery {
                    step,
                    from,
                    to,
                    host: None,
                    fields: Some(&self.fields),
                    totals_only: true,
                };
                scan_totals(store, &rollups, &|_| true, &mut |host, totals| {
                    reader.totals(host, totals)
                })?;
            }
            let end = self.to.min(raw.saturating_sub(1));
            if from <= end {
                // Samples that came after their time was rolled up.
                let mut values = Vec::new();
                store.scan_unrolled(from, end, &mut |sample| {
                    crate::store::visit_sample(&mut reader, &sample, &mut values);
                })?;
            }
            raw_from = raw.max(from);
        }
        reader.frame.raw_from = raw_from;
        let Some(query) = &self.together else {
            store.visit_samples(raw_from, self.to, &mut reader)?;
            return Ok(reader.finish());
        };
        let (mut rolled, together_from) = query.run_rolled_up(store)?;
        let mut together = query.together();
        let mut both = Both {
            first: (&mut reader, raw_from),
            second: (&mut together, together_from),
        };
        store.visit_samples(raw_from.min(together_from), self.to, &mut both)?;
        let mut series = rolled.remove(ALL_HOSTS).unwrap_or_default();
        together.add_to(&mut series);
        let mut frame = reader.finish();
        frame.together = series;
        Ok(frame)
    }

    /// Adds to `host`'s series its rolled-up points, those before `frame`
    /// read the samples as they lie, from the rollups of the coarsest step
    /// that fits the resolution and is kept. Blocking.
    pub fn add_rolled_series(
        &self,
        store: &dyn Store,
        host: &str,
        frame: &FleetFrame,
        figures: &mut HostFrame,
    ) -> Result<(), StoreError> {
        let Some(step) = Step::ALL
            .into_iter()
            .zip(self.kept_from)
            .rev()
            .find(|(step, kept_from)| {
                self.resolution % step.millis() == 0
                    && self.series_from % step.millis() == 0
                    && *kept_from <= self.series_from
            })
            .map(|(step, _)| step)
        else {
            return Ok(());
        };
        let names: Vec<String> = self
            .series
            .iter()
            .map(|&place| self.fields[place].clone())
            .collect();
        // The same split as the frame's: up to where it read the samples.
        let (parts, _) = rolled_parts(
            step,
            (self.series_from, self.to),
            frame.raw_from,
            Millis::MIN,
        );
        let resolution = self.resolution.max(1);
        for (step, from, to) in parts {
            let rollups = RollupQuery {
                step,
                from,
                to,
                host: Some(host),
                fields: Some(&names),
                totals_only: true,
            };
            store.scan_rollups(&rollups, &mut |_, point| {
                let Ok(index) = usize::try_from((point.ts - self.series_from) / resolution) else {
                    return;
                };
                for (name, aggregate) in &point.fields {
                    if let Some(nth) = names.iter().position(|field| **field == **name) {
                        let count = u32::try_from(aggregate.count).unwrap_or(u32::MAX);
                        figures.point_at(index, names.len())[nth].add(count, aggregate.sum);
                    }
                }
            })?;
        }
        Ok(())
    }
}

/// Hands each sample to two visitors, each from its own time on.
struct Both<'a> {
    first: (&'a mut dyn SampleVisitor, Millis),
    second: (&'a mut dyn SampleVisitor, Millis),
}

impl SampleVisitor for Both<'_> {
    fn names(&mut self, names: &[&str]) {
        self.first.0.names(names);
        self.second.0.names(names);
    }

    fn wants(&self, place: usize) -> bool {
        self.first.0.wants(place) || self.second.0.wants(place)
    }

    fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]) {
        for (visitor, from) in [&mut self.first, &mut self.second] {
            if ts >= *from {
                visitor.sample(host, ts, values);
            }
        }
    }
}

/// Adds points and samples up into the frame.
struct Reader<'q> {
    query: &'q FrameQuery,
    frame: FleetFrame,
    /// For each of the current names, its place among the fields asked for.
    places: Vec<Option<usize>>,
    /// The hosts read so far, in the order met, and their places there.
    read: Vec<(String, HostFrame)>,
    known: HashMap<String, usize>,
    /// The place of the host of the last point or sample: the next is most
    /// likely its.
    current: Option<usize>,
    /// Room for a rollup row: its columns' places among the fields asked
    /// for, and its points' grains.
    point_places: Vec<Option<usize>>,
    point_grains: Vec<Option<usize>>,
}

impl Reader<'_> {
    fn host(&mut self, host: &str) -> &mut HostFrame {
        let place = match self.current {
            Some(place) if self.read[place].0 == host => place,
            _ => {
                let place = match self.known.get(host) {
                    Some(&place) => place,
                    None => {
                        let figures = HostFrame::new(self.query.fields.len(), self.frame.grains);
                        self.read.push((host.to_string(), figures));
                        self.known.insert(host.to_string(), self.read.len() - 1);
                        self.read.len() - 1
                    }
                };
                self.current = Some(place);
                place
            }
        };
        &mut self.read[place].1
    }

    /// The frame, every host read in it.
    fn finish(mut self) -> FleetFrame {
        self.frame.hosts = self.read.into_iter().collect();
        self.frame
    }

    fn grain(&self, ts: Millis) -> Option<usize> {
        if ts < self.frame.from {
            return None;
        }
        usize::try_from((ts - self.frame.from) / self.frame.grain).ok()
    }

    /// Adds a row's rolled-up points (the fields asked for only).
    fn totals(&mut self, host: &str, totals: &Totals) {
        let fields = &self.query.fields;
        let mut places = std::mem::take(&mut self.point_places);
        places.clear();
        places.extend(
            totals
                .columns()
                .iter()
                .map(|column| fields.iter().position(|field| *field == column.name)),
        );
        let mut grains = std::mem::take(&mut self.point_grains);
        grains.clear();
        grains.extend(totals.stamps.iter().map(|ts| self.grain(*ts)));
        let figures = self.host(host);
        figures.samples += totals.samples.iter().sum::<u64>();
        for grain in grains.iter().flatten() {
            figures.mark(*grain);
        }
        for (column, place) in totals.columns().iter().zip(&places) {
            let Some(place) = *place else {
                continue;
            };
            let stats = &mut figures.fields[place];
            for i in 0..column.at.len() {
                let count = u32::try_from(column.count[i]).unwrap_or(u32::MAX);
                stats.add(count, column.sum[i], column.max[i]);
            }
        }
        self.point_places = places;
        self.point_grains = grains;
    }
}

impl SampleVisitor for Reader<'_> {
    fn names(&mut self, names: &[&str]) {
        let fields = &self.query.fields;
        self.places = names
            .iter()
            .map(|name| fields.iter().position(|field| field == name))
            .collect();
    }

    fn wants(&self, place: usize) -> bool {
        matches!(self.places.get(place), Some(Some(_)))
    }

    fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]) {
        let Some(grain) = self.grain(ts) else {
            return;
        };
        if ts > self.query.to {
            return;
        }
        let query = self.query;
        let point = (ts >= query.series_from && !query.series.is_empty())
            .then(|| usize::try_from((ts - query.series_from) / query.resolution.max(1)).ok())
            .flatten();
        let places = std::mem::take(&mut self.places);
        let figures = self.host(host);
        figures.samples += 1;
        figures.mark(grain);
        for &(name, value) in values {
            if let Some(&Some(place)) = places.get(name) {
                figures.fields[place].add(1, value, value);
                if let (Some(point), Some(nth)) =
                    (point, query.series.iter().position(|&field| field == place))
                {
                    figures.point_at(point, query.series.len())[nth].add(1, value);
                }
            }
        }
        self.places = places;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sample;
    use crate::store::{SampleStore, SqliteStore};

    /// The same samples in two stores, one compacted (so rolled up, with
    /// samples that came late), one not: a frame read from the rollups
    /// gives every host the same figures, the same "reporting since" and
    /// the same series as one read sample by sample.
    #[test]
    fn a_rolled_up_frame_reads_what_the_samples_hold() {
        let (compacted_dir, raw_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let compacted = SqliteStore::open_dir(compacted_dir.path()).unwrap();
        let raw = SqliteStore::open_dir(raw_dir.path()).unwrap();
        let base = 1_700_000_000_000 / 600_000 * 600_000;
        let samples: Vec<Sample> = (0..3_000i64)
            // Host b is silent for a while: its run starts after the gap.
            .flat_map(|i| {
                let hosts: &[&str] = if (900..1_400).contains(&i) {
                    &["a"]
                } else {
                    &["a", "b"]
                };
                hosts
                    .iter()
                    .map(move |host| {
                        let mut fields = vec![("cpu.usage", (i % 17) as f64 * 0.75)];
                        if i % 5 == 0 {
                            fields.push(("errors.count", (i % 3) as f64));
                        }
                        Sample::new(*host, base + i * 7_001, &fields)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for store in [&compacted, &raw] {
            for batch in samples.chunks(100) {
                store.append_samples(batch).unwrap();
            }
        }
        let end = base + 3_000 * 7_001;
        while compacted
            .compact_samples(end - 1_200_000, crate::store::EVERY_ROLLUP)
            .unwrap()
            > 0
        {}
        let until = compacted.rolled_up_until().unwrap();
        assert!(until > base + 3_600_000);
        let late: Vec<Sample> = (0..50i64)
            .map(|i| Sample::new("a", base + 30_000 + i * 13_000, &[("cpu.usage", 99.0)]))
            .collect();
        for store in [&compacted, &raw] {
            store.append_samples(&late).unwrap();
        }
        let fields = vec!["cpu.usage".to_string(), "errors.count".to_string()];
        let query = |rolled_up| FrameQuery {
            from: base,
            to: end + 1,
            fields: fields.clone(),
            rolled_up,
            grain: Step::TenMinutes.millis(),
            series: vec![0],
            resolution: 1_200_000,
            series_from: base,
            together: Some(
                StatsQuery::new(base, end + 1, 1_200_000, None, Some(fields.clone()))
                    .across_hosts(),
            ),
            kept_from: [Millis::MIN; 3],
        };
        let rolled = query(Some(Step::TenMinutes)).run(&compacted).unwrap();
        let read = query(None).run(&raw).unwrap();
        // The series of every host together: as a query across hosts reads
        // it on its own, whichever store.
        let alone = query(None).together.unwrap().run(&raw).unwrap();
        for together in [&rolled.together, &read.together] {
            assert_eq!(
                together.keys().collect::<Vec<_>>(),
                alone[ALL_HOSTS].keys().collect::<Vec<_>>()
            );
            for (at, bucket) in &alone[ALL_HOSTS] {
                assert_eq!(together[at].samples, bucket.samples, "{at}");
                for (field, stats) in &bucket.fields {
                    let got = together[at].fields[field];
                    assert_eq!((got.count, got.max), (stats.count, stats.max), "{at}");
                    assert!((got.sum - stats.sum).abs() < 1e-9 * stats.sum.abs().max(1.0));
                }
            }
        }
        assert_eq!(
            rolled.hosts.keys().collect::<Vec<_>>(),
            read.hosts.keys().collect::<Vec<_>>()
        );
        for (host, by_samples) in &read.hosts {
            let mut by_rollups = rolled.hosts[host].clone();
            assert_eq!(by_rollups.samples, by_samples.samples, "{host}");
            for (x, y) in by_rollups.fields.iter().zip(&by_samples.fields) {
                assert_eq!((x.count, x.max), (y.count, y.max), "{host}");
                assert!((x.sum - y.sum).abs() < 1e-9 * y.sum.abs().max(1.0));
            }
            assert_eq!(
                rolled.reporting_since(host),
                read.reporting_since(host),
                "{host}"
            );
            query(Some(Step::TenMinutes))
                .add_rolled_series(&compacted, host, &rolled, &mut by_rollups)
                .unwrap();
            let (x, y) = (
                by_rollups.series_of(0, base, 1_200_000),
                by_samples.series_of(0, base, 1_200_000),
            );
            assert_eq!(x.len(), y.len(), "{host}");
            for ((t, a), (u, b)) in x.iter().zip(&y) {
                assert_eq!(t, u);
                assert!((a - b).abs() < 1e-9, "{host} at {t}: {a} and {b}");
            }
        }
        // Host b's gap shows: it reports since after it, not the whole frame.
        let since = read.reporting_since("b").unwrap();
        assert!(
            since > base + 1_300 * 7_001 && since <= base + 1_400 * 7_001,
            "{since}"
        );
        assert_eq!(read.reporting_since("a"), Some(base));
    }

    /// A compaction cut short (at its most samples a run) has rolled samples
    /// after the time it says it rolled up until into the hour that holds
    /// that time: a read by the hour, of the fleet's figures, its series and
    /// each host's, counts each sample once all the same.
    #[test]
    fn a_compaction_cut_short_is_counted_once_by_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let hour = 1_700_000_000_000 / 3_600_000 * 3_600_000;
        let minute = 60_000;
        let first: Vec<Sample> = (0..120)
            .map(|i| Sample::new("a", hour + i * 10_000, &[("cpu", 1.0)]))
            .collect();
        store.append_samples(&first).unwrap();
        store
            .compact_samples(hour + 20 * minute, crate::store::EVERY_ROLLUP)
            .unwrap();
        let mut total = first.len() as u64;
        for k in 0..205i64 {
            let batch: Vec<Sample> = (0..1_000)
                .map(|n| {
                    Sample::new(
                        format!("h{n:04}"),
                        hour + 20 * minute + k * 10_000,
                        &[("cpu", 1.0)],
                    )
                })
                .collect();
            total += batch.len() as u64;
            store.append_samples(&batch).unwrap();
        }
        store
            .compact_samples(hour + 60 * minute, crate::store::EVERY_ROLLUP)
            .unwrap();
        let until = store.rolled_up_until().unwrap();
        assert_eq!(until, hour + 20 * minute, "the compaction was cut short");
        let to = hour + 60 * minute - 1;
        let fields = vec!["cpu".to_string()];
        for resolution in [600_000, 3_600_000] {
            let together = StatsQuery::new(hour, to, resolution, None, Some(fields.clone()))
                .across_hosts()
                .run(&store)
                .unwrap();
            let counted: u64 = together[ALL_HOSTS]
                .values()
                .map(|bucket| u64::from(bucket.fields["cpu"].count))
                .sum();
            assert_eq!(counted, total, "across hosts at {resolution}");
            let one = StatsQuery::new(hour, to, resolution, Some("h0007".into()), None)
                .run(&store)
                .unwrap();
            let counted: u32 = one["h0007"].values().map(|bucket| bucket.samples).sum();
            assert_eq!(counted, 205, "one host at {resolution}");
        }
        for step in [Step::TenMinutes, Step::Hour] {
            let query = FrameQuery {
                from: hour,
                to,
                fields: fields.clone(),
                rolled_up: Some(step),
                grain: step.millis(),
                series: vec![0],
                resolution: 3_600_000,
                series_from: hour,
                together: Some(
                    StatsQuery::new(hour, to, 3_600_000, None, Some(fields.clone())).across_hosts(),
                ),
                kept_from: [Millis::MIN; 3],
            };
            let frame = query.run(&store).unwrap();
            let counted: u64 = frame.hosts.values().map(|host| host.samples).sum();
            assert_eq!(counted, total, "the fleet's figures by {step:?}");
            let together: u32 = frame.together.values().map(|bucket| bucket.samples).sum();
            assert_eq!(u64::from(together), total, "the fleet's series by {step:?}");
            let mut figures = frame.hosts["h0007"].clone();
            query
                .add_rolled_series(&store, "h0007", &frame, &mut figures)
                .unwrap();
            let series: u32 = figures.series.iter().map(|point| point[0].count).sum();
            assert_eq!(series, 205, "a host's series by {step:?}");
        }
    }
}
