//! The read layer: what the API and the pages show, as the typed views of
//! [`crate::view`]. Both call here rather than the store or the engine, so
//! that a rule or an incident reads the same wherever it is shown.
//!
//! Every method blocks (it may read the store): call it from
//! `spawn_blocking`.

use std::collections::BTreeMap;

use crate::config::{Operand, Rule};
use crate::duration::Millis;
use crate::engine::Engine;
use crate::incident::rfc3339;
use crate::sample::Sample;
use crate::service::Service;
use crate::stats::{HostBuckets, StatsQuery};
use crate::store::StoreError;
use crate::store::rollup::Step;
use crate::view::{
    ClusterView, HostView, HostsView, IncidentView, IncidentsView, LeaderView, NodeView, PairView,
    PendingView, RuleStatusView, RuleView, RulesView,
};

/// The read layer over one node.
pub struct Queries<'a> {
    service: &'a Service,
}

impl Service {
    /// What the API and the pages read.
    pub fn queries(&self) -> Queries<'_> {
        Queries { service: self }
    }
}

impl Queries<'_> {
    /// Every rule, in configuration order, with its state per host in name order.
    pub fn rules(&self) -> RulesView {
        let states = self.service.rule_states();
        let rules = states
            .rules
            .iter()
            .enumerate()
            .map(|(index, rule)| RuleStatusView {
                rule: RuleView::from(rule),
                hosts: states
                    .hosts
                    .iter()
                    .filter_map(|(host, statuses)| {
                        Some(PairView::new(host, rule, statuses.get(index)?))
                    })
                    .collect(),
            })
            .collect();
        RulesView {
            evaluated_at: states.evaluated,
            alerting_enabled: self.service.read_config(|config| config.alerting.enabled),
            rules,
        }
    }

    /// The open incidents, and the resolved ones with `startTime <= to` and
    /// `endTime >= from`.
    pub fn incidents(&self, from: Millis, to: Millis) -> Result<IncidentsView, StoreError> {
        let incidents = self.service.store().incidents(from, to)?;
        Ok(IncidentsView {
            from,
            to,
            active: incidents.active,
            resolved: incidents.resolved,
        })
    }

    /// One incident with its calls and what waits; `None` when there is none
    /// of that id (never, or deleted after the retention period).
    pub fn incident(&self, id: &str) -> Result<Option<IncidentView>, StoreError> {
        let Some(detail) = self.service.store().incident(id)? else {
            return Ok(None);
        };
        let acknowledged = self.service.store().acknowledgements(&[id])?.remove(id);
        Ok(Some(IncidentView {
            pending_hooks: detail.pending.iter().map(PendingView::from).collect(),
            incident: detail.incident,
            hook_calls: detail.calls,
            acknowledged,
        }))
    }

    /// Runs each drawn host's stored samples of `[from - longest timeframe,
    /// to]` through a fresh engine with the rules it is drawn for (`drawn`:
    /// per host, places in `rules`), evaluating at the watcher's ticks
    /// (coarser over a long frame, at most [`MAX_TICKS`]), and keeps per
    /// chart point of `step` the value closest to firing: the highest for
    /// `>=`, the lowest for `<=`. A crossing between two points still
    /// shows. Hosts and rules are evaluated independently by the engine, so
    /// one host and a few rules at a time give the same figures as all
    /// together, reading only the hosts drawn.
    pub fn rule_history(
        &self,
        rules: &[Rule],
        (from, to): (Millis, Millis),
        step: Millis,
        drawn: &BTreeMap<&str, Vec<usize>>,
    ) -> Result<History, StoreError> {
        let (retention, watcher_interval) = self.service.read_config(|config| {
            (
                config.monitoring.retention_period,
                config.alerting.watcher_interval,
            )
        });
        let store = self.service.store();
        let mut history: History = vec![BTreeMap::new(); rules.len()];
        if rules.is_empty() {
            return Ok(history);
        }
        let longest = rules.iter().map(|rule| rule.timeframe).max().unwrap_or(0);
        let interval = watcher_interval.max((to - from) / MAX_TICKS).max(1);
        let hosts: Vec<&str> = drawn.keys().copied().collect();
        let mut samples = DrawnSamples::read(store, hosts, from.saturating_sub(longest), to)?;
        // Each host's own part, then the hosts shared out among the cores:
        // their histories are independent.
        let jobs: Vec<(DrawnHost<'_>, &Vec<usize>)> = drawn
            .values()
            .enumerate()
            .map(|(nth, places)| (samples.take(nth), places))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |cores| cores.get())
            .min(HISTORY_THREADS)
            .clamp(1, jobs.len().max(1));
        let mut shares: Vec<Vec<(DrawnHost<'_>, &Vec<usize>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (nth, job) in jobs.into_iter().enumerate() {
            shares[nth % threads].push(job);
        }
        let run = |share: Vec<(DrawnHost<'_>, &Vec<usize>)>| {
            let mut made = Vec::new();
            for (drawn_host, places) in share {
                let places: Vec<usize> = places
                    .iter()
                    .copied()
                    .filter(|&place| place < rules.len())
                    .collect();
                let own: Vec<Rule> = places.iter().map(|&place| rules[place].clone()).collect();
                let host = drawn_host.host;
                let series = HostHistory::make(
                    store,
                    &own,
                    drawn_host,
                    (from, to),
                    step,
                    interval,
                    retention,
                )?;
                made.extend(
                    places
                        .into_iter()
                        .zip(series)
                        .filter(|(_, points)| !points.is_empty())
                        .map(|(place, points)| (place, host.to_string(), points)),
                );
            }
            Ok::<_, StoreError>(made)
        };
        let made: Vec<Result<_, StoreError>> = std::thread::scope(|scope| {
            let mut shares = shares.into_iter();
            let first = shares.next();
            let others: Vec<_> = shares
                .map(|share| scope.spawn(move || run(share)))
                .collect();
            let mut made = vec![first.map_or(Ok(Vec::new()), run)];
            for other in others {
                made.push(
                    other
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                );
            }
            made
        });
        for made in made {
            for (place, host, points) in made? {
                history[place].insert(host, points);
            }
        }
        Ok(history)
    }

    /// Every host with stored samples and its last report, by name.
    pub fn hosts(&self) -> Result<HostsView, StoreError> {
        let hosts = self.service.store().hosts()?;
        Ok(HostsView {
            hosts: hosts.into_iter().map(HostView::from).collect(),
        })
    }

    /// Per incident id with a delivery not made yet: whether one of them was
    /// given up on.
    pub fn undelivered(&self) -> Result<BTreeMap<String, crate::store::Undelivered>, StoreError> {
        self.service.store().undelivered()
    }

    /// The cluster as this node last read it (every third of the lease).
    pub fn cluster(&self) -> ClusterView {
        let read = self.service.cluster();
        let now = self.service.now();
        let leader_rules = read.leader.as_ref().and_then(|leader| {
            read.nodes
                .iter()
                .find(|node| node.node == leader.node)
                .map(|node| node.rules.clone())
        });
        let leads = |node: &str| {
            read.leader
                .as_ref()
                .is_some_and(|leader| leader.node == node)
        };
        let nodes = read
            .nodes
            .iter()
            .map(|node| NodeView {
                node: node.node.clone(),
                heartbeat: node.heartbeat,
                heartbeat_time: rfc3339(node.heartbeat),
                seconds_since_heartbeat: (now - node.heartbeat).max(0) / 1000,
                started: node.started,
                version: node.version.clone(),
                rules: node.rules.clone(),
                rules_differ_from_leader: leader_rules
                    .as_ref()
                    .is_some_and(|rules| *rules != node.rules),
                leads: leads(&node.node),
                url: node.url.clone(),
            })
            .collect();
        ClusterView {
            node: self.service.host_name().to_string(),
            clustered: self.service.topology().is_cluster(),
            leads: self.service.is_leading(),
            leader: read.leader.as_ref().map(|leader| LeaderView {
                node: leader.node.clone(),
                token: leader.token,
                expires_in_ms: leader.expires_in,
            }),
            nodes,
            read_at: read.read_at,
            error: read.error,
        }
    }

    /// Every host's figures over a frame (see [`crate::fleet`]).
    pub(crate) fn fleet(
        &self,
        query: &crate::fleet::FrameQuery,
    ) -> Result<crate::fleet::FleetFrame, StoreError> {
        let mut query = query.clone();
        query.kept_from = self.rollups_kept_from();
        if let Some(together) = &mut query.together {
            together.rollups_kept_from = query.kept_from;
        }
        query.run(self.service.store())
    }

    /// Stored samples downsampled as `query` asks: from rollups where the
    /// janitor keeps them, from samples before.
    pub(crate) fn stats(&self, query: &StatsQuery) -> Result<HostBuckets, StoreError> {
        self.kept(query).run(self.service.store())
    }

    /// `query` reading rollups only where the janitor keeps them.
    pub(crate) fn kept(&self, query: &StatsQuery) -> StatsQuery {
        StatsQuery {
            rollups_kept_from: self.rollups_kept_from(),
            ..query.clone()
        }
    }

    /// Per rollup step (in the order of [`Step::ALL`]), the time from which
    /// the janitor keeps its rollups (`monitoring.minuteRollupRetention`,
    /// `tenMinuteRollupRetention`, `hourRollupRetention`).
    pub(crate) fn rollups_kept_from(&self) -> [Millis; 3] {
        let now = self.service.now();
        self.service.read_config(|config| {
            Step::ALL.map(|step| {
                now.saturating_sub(match step {
                    Step::Minute => config.monitoring.minute_rollup_retention,
                    Step::TenMinutes => config.monitoring.ten_minute_rollup_retention,
                    Step::Hour => config.monitoring.hour_rollup_retention,
                })
            })
        })
    }
}

/// One host's history being made: its samples go into an engine of the
/// rules it is drawn for, whose aggregates are taken at every tick before
/// each.
struct HostHistory<'r> {
    engine: Engine,
    rules: &'r [Rule],
    host: &'r str,
    frame: (Millis, Millis),
    step: Millis,
    interval: Millis,
    next_tick: Millis,
    /// Per rule, its points.
    series: Vec<Vec<(Millis, f64)>>,
    /// Each rule's aggregate at the tick being drawn.
    aggregates: Vec<Option<f64>>,
    /// For each of the current names, its slot among the engine's fields.
    slots: Vec<Option<usize>>,
    values: Vec<f64>,
}

impl<'r> HostHistory<'r> {
    /// The history of `drawn`'s host under `rules`: per rule, its points
    /// of `step` over `frame`, evaluated every `interval`.
    fn make(
        store: &dyn crate::store::Store,
        rules: &'r [Rule],
        drawn: DrawnHost<'r>,
        frame: (Millis, Millis),
        step: Millis,
        interval: Millis,
        retention: Millis,
    ) -> Result<Vec<Vec<(Millis, f64)>>, StoreError> {
        let mut history = HostHistory {
            engine: Engine::new(rules, retention),
            rules,
            host: drawn.host,
            frame,
            step,
            interval,
            next_tick: frame.0.div_euclid(interval) * interval,
            series: vec![Vec::new(); rules.len()],
            aggregates: Vec::new(),
            slots: Vec::new(),
            values: Vec::new(),
        };
        drawn.visit(store, &mut history)?;
        history.tick_until(frame.1.saturating_add(1));
        Ok(history.series)
    }

    /// Evaluates every tick before `ts` (and within the frame), keeping per
    /// point the value closest to firing.
    fn tick_until(&mut self, ts: Millis) {
        let (from, to) = self.frame;
        while self.next_tick < ts && self.next_tick <= to {
            let at = self.next_tick;
            self.next_tick += self.interval;
            // Ticks only move forward here, the one thing checked. The
            // aggregates only: no incident of the history matters.
            if at < from
                || self
                    .engine
                    .aggregates_at(at, self.host, &mut self.aggregates)
                    .is_err()
            {
                continue;
            }
            let point = from + (at - from) / self.step * self.step;
            for ((rule, aggregate), points) in self
                .rules
                .iter()
                .zip(&self.aggregates)
                .zip(self.series.iter_mut())
            {
                let Some(value) = *aggregate else {
                    continue;
                };
                match points.last_mut() {
                    Some((last, kept)) if *last == point => {
                        // holds(value) against the kept one: the worse of two.
                        let worse = match rule.operand {
                            Operand::EqualOrMoreThan => value > *kept,
                            Operand::EqualOrLessThan => value < *kept,
                        };
                        if worse {
                            *kept = value;
                        }
                    }
                    _ => points.push((point, value)),
                }
            }
        }
    }
}

impl crate::store::SampleVisitor for HostHistory<'_> {
    fn names(&mut self, names: &[&str]) {
        let fields = self.engine.fields();
        self.slots = names
            .iter()
            .map(|name| fields.slot(name, crate::field::field_hash(name)))
            .collect();
    }

    fn wants(&self, place: usize) -> bool {
        matches!(self.slots.get(place), Some(Some(_)))
    }

    fn sample(&mut self, _host: &str, ts: Millis, values: &[(usize, f64)]) {
        self.tick_until(ts);
        let mut row = std::mem::take(&mut self.values);
        row.clear();
        row.resize(self.engine.fields().len(), f64::NAN);
        for &(name, value) in values {
            if let Some(&Some(slot)) = self.slots.get(name) {
                row[slot] = value;
            }
        }
        self.engine.ingest_values(self.host, ts, &row);
        self.values = row;
    }
}

/// The most threads one history is computed on (a page's request must not
/// take every core of a large machine).
const HISTORY_THREADS: usize = 4;

/// The most evaluations per host the history may take.
const MAX_TICKS: i64 = 20_000;

/// A rule's aggregate per host at each point: `history[rule][host]`.
pub type History = Vec<BTreeMap<String, Vec<(Millis, f64)>>>;

/// The stored samples of `[from, to]` of some hosts, handed over one host
/// at a time, each host's by time. The compacted past is read host by host
/// (its blocks are per host) when the host's turn comes; the samples not
/// compacted yet, which lie together for all hosts, are read once for all
/// of them: a page drawing ten hosts of a thousand does not decode the
/// recent rows ten times, nor hold a day of every host drawn at once.
struct DrawnSamples<'h> {
    hosts: Vec<&'h str>,
    from: Millis,
    /// Where the compacted past ends (within `[from, to + 1]`).
    until: Millis,
    /// Per host, its samples from `until` on.
    tails: Vec<Vec<Sample>>,
}

impl<'h> DrawnSamples<'h> {
    /// Reads the recent part of `[from, to]` of `hosts` (sorted, no repeats).
    fn read(
        store: &dyn crate::store::Store,
        hosts: Vec<&'h str>,
        from: Millis,
        to: Millis,
    ) -> Result<Self, StoreError> {
        let until = store.rolled_up_until()?.clamp(from, to.saturating_add(1));
        struct Tail<'a, 'h> {
            hosts: &'a [&'h str],
            names: Vec<String>,
            samples: Vec<Vec<Sample>>,
        }
        impl crate::store::SampleVisitor for Tail<'_, '_> {
            fn names(&mut self, names: &[&str]) {
                self.names = names.iter().map(|name| name.to_string()).collect();
            }
            fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]) {
                let Ok(nth) = self.hosts.binary_search(&host) else {
                    return;
                };
                let metrics = values
                    .iter()
                    .filter_map(|&(name, value)| Some((self.names.get(name)?.clone(), value)))
                    .collect();
                self.samples[nth].push(Sample {
                    host: host.to_string(),
                    ts,
                    metrics,
                });
            }
        }
        let mut tail = Tail {
            hosts: &hosts,
            names: Vec::new(),
            samples: vec![Vec::new(); hosts.len()],
        };
        if until <= to {
            store.visit_samples(until, to, &mut tail)?;
        }
        let mut tails = tail.samples;
        for later in &mut tails {
            // Recent rows lie in the order they came: by time, the same
            // time in the order stored.
            later.sort_by_key(|sample| sample.ts);
        }
        Ok(DrawnSamples {
            hosts,
            from,
            until,
            tails,
        })
    }

    /// The `nth` host's part, to read on its own (its recent samples move
    /// into it).
    fn take(&mut self, nth: usize) -> DrawnHost<'h> {
        DrawnHost {
            host: self.hosts[nth],
            from: self.from,
            until: self.until,
            tail: std::mem::take(&mut self.tails[nth]),
        }
    }
}

/// One host of [`DrawnSamples`]: its compacted past still to read, its
/// recent samples read.
struct DrawnHost<'h> {
    host: &'h str,
    from: Millis,
    until: Millis,
    tail: Vec<Sample>,
}

impl DrawnHost<'_> {
    /// Hands the host's samples to `visitor`, in time order.
    fn visit(
        self,
        store: &dyn crate::store::Store,
        visitor: &mut dyn crate::store::SampleVisitor,
    ) -> Result<(), StoreError> {
        store.visit_host_samples(self.host, self.from, self.until - 1, visitor)?;
        let mut values = Vec::new();
        for sample in &self.tail {
            crate::store::visit_sample(visitor, sample, &mut values);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SampleStore, SqliteStore};
    use std::collections::BTreeSet;

    /// Each drawn host's samples, read in two parts (its compacted past,
    /// then the recent rows once for all), are what a read of that host
    /// alone gives, in the same order: late samples and samples sharing a
    /// time included.
    #[test]
    fn the_drawn_hosts_read_as_one_host_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).unwrap();
        let base = 1_700_000_000_000 / 600_000 * 600_000;
        let hosts = ["a", "b", "c", "d"];
        let samples: Vec<Sample> = (0..2_000i64)
            .flat_map(|i| {
                hosts.map(|host| Sample::new(host, base + i * 5_003, &[("cpu.usage", i as f64)]))
            })
            .collect();
        for batch in samples.chunks(97) {
            store.append_samples(batch).unwrap();
        }
        let end = base + 2_000 * 5_003;
        while store
            .compact_samples(end - 1_800_000, crate::store::EVERY_ROLLUP)
            .unwrap()
            > 0
        {}
        let until = store.rolled_up_until().unwrap();
        assert!(until > base && until < end);
        // Late (before the compacted frontier), at the same time as another,
        // and out of order in the recent rows.
        let more = [
            Sample::new("b", base + 1_000, &[("cpu.usage", -1.0)]),
            Sample::new("b", until + 5_003, &[("cpu.usage", -2.0)]),
            Sample::new("d", end - 60_000, &[("cpu.usage", -3.0)]),
            Sample::new("b", until + 1, &[("errors.count", 4.0)]),
        ];
        for sample in &more {
            store.append_samples(std::slice::from_ref(sample)).unwrap();
        }
        let drawn: BTreeSet<&str> = ["b", "d"].into();
        for (from, to) in [
            (base, end),
            (base + 600_000, until + 60_000),
            (until + 1, end),
            (end + 1, end + 2),
        ] {
            let mut read =
                DrawnSamples::read(&store, drawn.iter().copied().collect(), from, to).unwrap();
            for (nth, host) in drawn.iter().enumerate() {
                struct Collect(Vec<Sample>, Vec<String>);
                impl crate::store::SampleVisitor for Collect {
                    fn names(&mut self, names: &[&str]) {
                        self.1 = names.iter().map(|name| name.to_string()).collect();
                    }
                    fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]) {
                        let metrics = values
                            .iter()
                            .map(|&(name, value)| (self.1[name].clone(), value))
                            .collect();
                        self.0.push(Sample {
                            host: host.to_string(),
                            ts,
                            metrics,
                        });
                    }
                }
                let mut collect = Collect(Vec::new(), Vec::new());
                read.take(nth).visit(&store, &mut collect).unwrap();
                let got = collect.0;
                let mut alone = Vec::new();
                store
                    .scan_host_samples(host, from, to, &mut |sample| alone.push(sample))
                    .unwrap();
                assert_eq!(got.len(), alone.len(), "{host} {from}..{to}");
                for (x, y) in got.iter().zip(&alone) {
                    assert_eq!((&x.host, x.ts, &x.metrics), (&y.host, y.ts, &y.metrics));
                }
            }
        }
    }
}
