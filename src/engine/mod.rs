//! The rule engine (docs/engine.md, from Samples to Incidents): pure, incremental, exact.
//!
//! The engine holds, for every host, the samples its rules can still see and
//! one [`Window`] per rule, and for every (rule, host) pair the open incident
//! and the end of the last resolved one. It has no clock and does no I/O: the
//! caller feeds it samples ([`Engine::ingest`]) and evaluation times
//! ([`Engine::evaluate`]), and receives the [`Transition`]s of each tick.
//!
//! A tick costs O(1) amortised per (rule, host), whatever the timeframe: a
//! sample enters each window once and leaves it once. A sample that arrives
//! after samples of the same host with a later timestamp is placed in order;
//! if the windows have already seen later samples, that host's windows are
//! rebuilt from the samples it holds (rare, and O(window) when it happens).

mod exact_sum;
mod host;
mod status;
mod window;

use std::sync::Arc;

use rustc_hash::FxHashMap;

pub use exact_sum::ExactSum;
pub use status::{MemoryStats, PairState, PairStatus};

pub use host::describe;
use host::{
    EngineRule, Host, HostShape, OpenIncident, StateChange, StateSlot, advance_windows, aggregate,
    can_drop, decide, decide_with_options, forget, incident, prefetch_samples, prefetch_state,
};
use window::Seq;

use crate::config::{Aggregation, Config, Rule};
use crate::duration::Millis;
use crate::field::field_hash;
use crate::incident::{IncidentIds, PairChange, PairRecord, Transition, TransitionKind};
use crate::sample::Sample;

/// Why the engine refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(
        "evaluation at {at} is before the previous evaluation at {previous}: ticks must not go back in time"
    )]
    TickInPast { at: Millis, previous: Millis },
    #[error("the proposal for the tick at {at} is stale: the engine changed since it was made")]
    StaleProposal { at: Millis },
}

/// The distinct fields rules use, each with its column in the hosts' rings.
#[derive(Debug, Clone, Default)]
pub struct FieldTable {
    /// Names and their [`field_hash`], in column order.
    fields: Vec<(String, u64)>,
}

impl FieldTable {
    fn column_of(&mut self, field: &str) -> usize {
        self.slot(field, field_hash(field)).unwrap_or_else(|| {
            self.fields.push((field.to_string(), field_hash(field)));
            self.fields.len() - 1
        })
    }

    /// The column of `field`, given its [`field_hash`].
    #[inline]
    pub fn slot(&self, field: &str, hash: u64) -> Option<usize> {
        self.fields
            .iter()
            .position(|(f, h)| *h == hash && f == field)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<EngineRule>,
    shape: HostShape,
    fields: FieldTable,
    /// A host silent for this long is forgotten (`monitoring.retentionPeriod`).
    host_retention: Millis,
    hosts: Vec<Host>,
    host_index: FxHashMap<Arc<str>, usize>,
    /// The last committed tick: the alarms are as of this tick.
    last_tick: Option<Millis>,
    /// The tick the windows have been moved to (at or after `last_tick`).
    windows_at: Option<Millis>,
    /// Which engine a [`Proposal`] came from, and after how many commits.
    identity: u64,
    commits: u64,
    /// One value per field, reused by [`Engine::ingest`].
    scratch: Vec<f64>,
    /// The end of a gap in the samples (see [`Engine::samples_missing_until`]).
    gap_end: Option<Millis>,
}

/// The change of a pair's state, named for the store.
fn pair_change(
    index: usize,
    rule: &EngineRule,
    host: &Arc<str>,
    at: Millis,
    change: StateChange,
) -> PairChange {
    PairChange {
        rule: index,
        rule_name: rule.name.clone(),
        host: host.clone(),
        at,
        pending_since: change.pending_since,
        clear_since: change.clear_since,
    }
}

/// Tells engines apart, so that a proposal is only committed where it was made.
static ENGINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The transitions of one tick, computed by [`Engine::propose`] and not yet
/// applied: the engine's alarms change only at [`Engine::commit`], so that a
/// caller can store the transitions first and drop the proposal if it cannot.
#[derive(Debug)]
#[must_use = "a proposal changes nothing until it is committed"]
pub struct Proposal {
    at: Millis,
    transitions: Vec<Transition>,
    /// Pairs whose `pendingSince` or `clearSince` change (rules with options).
    changes: Vec<PairChange>,
    /// Hosts that were not evaluated (forgotten, or restored and silent):
    /// dropped at commit if nothing of them can matter any more.
    idle: Vec<usize>,
    engine: u64,
    commits: u64,
}

impl Proposal {
    /// The tick.
    pub fn at(&self) -> Millis {
        self.at
    }

    /// The transitions, ordered by rule (configuration order) and then host
    /// name (byte order).
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The pairs whose `pendingSince` or `clearSince` change without a
    /// transition, in the order of the transitions.
    pub fn changes(&self) -> &[PairChange] {
        &self.changes
    }

    /// Whether it changes nothing that is stored.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty() && self.changes.is_empty()
    }
}

impl Engine {
    pub fn new(rules: &[Rule], host_retention: Millis) -> Self {
        let mut fields = FieldTable::default();
        let mut shape = HostShape {
            rules: rules.len(),
            ..HostShape::default()
        };
        let rules = rules
            .iter()
            .map(|rule| {
                let next = |count: &mut usize| {
                    *count += 1;
                    *count - 1
                };
                let state = match rule.aggregation {
                    Aggregation::Count | Aggregation::Last => StateSlot::Plain,
                    Aggregation::Sum | Aggregation::Avg => StateSlot::Sum(next(&mut shape.sums)),
                    Aggregation::Min => StateSlot::Min(next(&mut shape.extrema)),
                    Aggregation::Max => StateSlot::Max(next(&mut shape.extrema)),
                };
                EngineRule {
                    rule: rule.clone(),
                    plain: rule.is_plain(),
                    name: rule.name.as_str().into(),
                    slot: fields.column_of(&rule.field),
                    state,
                }
            })
            .collect::<Vec<_>>();
        Engine {
            rules,
            shape,
            fields,
            host_retention,
            hosts: Vec::new(),
            host_index: FxHashMap::default(),
            last_tick: None,
            windows_at: None,
            identity: ENGINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            commits: 0,
            scratch: Vec::new(),
            gap_end: None,
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::new(&config.alerting.rules, config.monitoring.retention_period)
    }

    /// Says that samples may be missing before `end`: a service that starts
    /// stored nothing while it was down, and hosts could not push to it.
    /// Until each rule's window lies after `end`, `count` and `sum` rules
    /// that fire at or below their value do not open incidents, since the
    /// missing samples would make them fire; other rules, and resolutions,
    /// are not affected. Replay does not call this: its input has no gap.
    pub fn samples_missing_until(&mut self, end: Millis) {
        self.gap_end = Some(end);
    }

    /// The fields rules use, in the order [`Engine::ingest_values`] takes their values.
    pub fn fields(&self) -> &FieldTable {
        &self.fields
    }

    /// Whether no host is held at all (every host has been forgotten and dropped).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Adds a sample. Fields no rule uses are ignored.
    pub fn ingest(&mut self, sample: &Sample) {
        let mut values = std::mem::take(&mut self.scratch);
        values.clear();
        values.resize(self.fields.len(), f64::NAN);
        for (field, value) in &sample.metrics {
            if let Some(slot) = self.fields.slot(field, field_hash(field)) {
                values[slot] = *value;
            }
        }
        self.ingest_values(&sample.host, sample.ts, &values);
        self.scratch = values;
    }

    /// Adds a sample given as one value per field of [`Engine::fields`], NaN
    /// where the sample lacks the field. Values must otherwise be finite.
    ///
    /// # Panics
    ///
    /// If `values` does not have one value per field: a caller's bug, which
    /// would otherwise corrupt the host's samples.
    pub fn ingest_values(&mut self, host: &str, ts: Millis, values: &[f64]) {
        assert_eq!(
            values.len(),
            self.fields.len(),
            "one value per field of Engine::fields"
        );
        let index = self.host_slot(host);
        let host = &mut self.hosts[index];
        let seq = host.ring.insert(ts, values);
        if seq < host.entered {
            // Older than samples the windows have already taken in: rebuild
            // this host's windows as they are at the last tick.
            host.restart_windows();
            if let Some(tick) = self.windows_at {
                advance_windows(&self.rules, host, tick);
            }
        }
    }

    /// The index of a host, added if new.
    fn host_slot(&mut self, name: &str) -> usize {
        if let Some(&index) = self.host_index.get(name) {
            return index;
        }
        let host = Host::new(name, self.fields.len(), &self.shape);
        self.host_index.insert(host.name.clone(), self.hosts.len());
        self.hosts.push(host);
        self.hosts.len() - 1
    }

    /// Evaluates every rule for every known host at tick `at` and applies the
    /// result at once: [`Engine::propose`] then [`Engine::commit`], for callers
    /// with nothing to store in between (replay, history, benchmarks). The
    /// transitions are appended to `out`.
    pub fn evaluate(
        &mut self,
        at: Millis,
        ids: &mut dyn IncidentIds,
        out: &mut Vec<Transition>,
    ) -> Result<(), EngineError> {
        let proposal = self.propose(at, ids)?;
        out.extend(self.commit(proposal)?);
        Ok(())
    }

    /// Computes the transitions of tick `at` without applying them: the
    /// windows move to `at` (they only depend on the samples and the time),
    /// but no incident opens or resolves until [`Engine::commit`]. A proposal
    /// that is dropped changes no decision: the next one, for the same tick
    /// or a later one, finds the same incidents to open and resolve.
    pub fn propose(
        &mut self,
        at: Millis,
        ids: &mut dyn IncidentIds,
    ) -> Result<Proposal, EngineError> {
        // The windows are never behind the last committed tick.
        if let Some(previous) = self.windows_at
            && at < previous
        {
            return Err(EngineError::TickInPast { at, previous });
        }
        self.windows_at = Some(at);
        let mut out = Vec::new();
        let mut changes = Vec::new();
        let mut idle = Vec::new();
        for index in 0..self.hosts.len() {
            // Memory, not arithmetic, bounds a tick over many hosts: fetch
            // ahead what the coming hosts will touch.
            if let Some(ahead) = self.hosts.get(index + 4) {
                prefetch_state(ahead);
            }
            if let Some(ahead) = self.hosts.get(index + 2) {
                prefetch_samples(ahead);
            }
            let host = &mut self.hosts[index];
            advance_windows(&self.rules, host, at);
            let forgotten = match host.latest_visible {
                Some(latest) => latest <= at - self.host_retention,
                // No sample yet: unknown, unless restored with an open
                // incident or a pending one (see `restore`), which then
                // resolves or stops pending.
                None => host
                    .alarms
                    .iter()
                    .any(|alarm| alarm.open.is_some() || alarm.pending_since.is_some()),
            };
            if forgotten {
                forget(&self.rules, host, at, &mut out);
                for (index, (rule, alarm)) in self.rules.iter().zip(&host.alarms).enumerate() {
                    if alarm.open.is_none() && alarm.pending_since.is_some() {
                        let none = StateChange::default();
                        changes.push(pair_change(index, rule, &host.name, at, none));
                    }
                }
            }
            if forgotten || host.latest_visible.is_none() {
                // Forgotten, or restored with a cooldown only and silent since.
                idle.push(index);
                continue;
            }
            for (rule_index, rule) in self.rules.iter().enumerate() {
                let window = &host.windows[rule_index];
                let aggregate = aggregate(rule, window, &host.sums, &host.extrema);
                if !rule.plain {
                    let (transition, change) = decide_with_options(
                        rule,
                        rule_index,
                        &host.name,
                        &host.alarms[rule_index],
                        aggregate,
                        at,
                        self.gap_end,
                        ids,
                    );
                    out.extend(transition);
                    if let Some(change) = change {
                        changes.push(pair_change(rule_index, rule, &host.name, at, change));
                    }
                    continue;
                }
                let Some(value) = aggregate else {
                    continue; // no value: nothing changes (docs/engine.md, Incidents)
                };
                if rule.rule.holds(value) == window.open {
                    continue; // firing and open, or quiet and closed
                }
                let alarm = &host.alarms[rule_index];
                if let Some(transition) = decide(
                    rule,
                    rule_index,
                    &host.name,
                    alarm,
                    value,
                    at,
                    self.gap_end,
                    ids,
                ) {
                    out.push(transition);
                }
            }
        }
        out.sort_by(|a, b| {
            a.rule.cmp(&b.rule).then_with(|| {
                a.incident
                    .host_name
                    .as_bytes()
                    .cmp(b.incident.host_name.as_bytes())
            })
        });
        changes.sort_by(|a, b| {
            a.rule
                .cmp(&b.rule)
                .then_with(|| a.host.as_bytes().cmp(b.host.as_bytes()))
        });
        Ok(Proposal {
            at,
            transitions: out,
            changes,
            idle,
            engine: self.identity,
            commits: self.commits,
        })
    }

    /// Applies a proposal made by this engine since its last commit: opens
    /// and resolves its incidents, and makes its tick the last one. Returns
    /// its transitions. A proposal from another engine, or made before
    /// another commit, is refused and changes nothing.
    pub fn commit(&mut self, proposal: Proposal) -> Result<Vec<Transition>, EngineError> {
        if proposal.engine != self.identity || proposal.commits != self.commits {
            return Err(EngineError::StaleProposal { at: proposal.at });
        }
        let at = proposal.at;
        for transition in &proposal.transitions {
            let host = &mut self.hosts[self.host_index[&transition.incident.host_name]];
            let alarm = &mut host.alarms[transition.rule];
            let window = &mut host.windows[transition.rule];
            alarm.pending_since = None;
            alarm.clear_since = None;
            match transition.kind {
                TransitionKind::Opened => {
                    let incident = &transition.incident;
                    alarm.open = Some(Box::new(OpenIncident {
                        id: incident.id.clone(),
                        start_time: incident.start_time,
                        trigger_value: incident.trigger_value,
                        details: incident.details.clone(),
                    }));
                    window.open = true;
                }
                TransitionKind::Resolved => {
                    alarm.open = None;
                    alarm.last_end = Some(at);
                    window.open = false;
                }
            }
        }
        for change in &proposal.changes {
            let host = &mut self.hosts[self.host_index[&change.host]];
            let alarm = &mut host.alarms[change.rule];
            alarm.pending_since = change.pending_since;
            alarm.clear_since = change.clear_since;
        }
        self.last_tick = Some(at);
        self.commits += 1;
        // Highest index first, so that each swap_remove moves a host that stays.
        for &index in proposal.idle.iter().rev() {
            if !can_drop(&self.rules, &self.hosts[index], at) {
                continue;
            }
            let host = self.hosts.swap_remove(index);
            self.host_index.remove(&host.name);
            if let Some(moved) = self.hosts.get(index) {
                self.host_index.insert(moved.name.clone(), index);
            }
        }
        Ok(proposal.transitions)
    }

    /// The hosts the engine holds (known, or restored and waiting for a sample),
    /// in the order it first heard of them.
    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|host| &*host.name)
    }

    /// The rules, in configuration order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|rule| &rule.rule)
    }

    /// How many incidents are open.
    pub fn open_incidents(&self) -> usize {
        self.hosts
            .iter()
            .map(|host| host.alarms.iter().filter(|a| a.open.is_some()).count())
            .sum()
    }

    /// How many incidents are open, by their rule's severity (`""` for
    /// none).
    pub fn open_incidents_by_severity(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for alarm in self.hosts.iter().flat_map(|host| &host.alarms) {
            if let Some(open) = &alarm.open {
                let severity = open
                    .details
                    .as_ref()
                    .and_then(|details| details.severity.clone())
                    .unwrap_or_default();
                *counts.entry(severity).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The last evaluated tick.
    pub fn last_tick(&self) -> Option<Millis> {
        self.last_tick
    }

    /// Moves the windows of `host` to `at` and puts each rule's aggregate
    /// there in `out`, in rule order, without deciding anything: no
    /// incident opens or resolves, no other host moves (what a rule's chart
    /// draws of one host: `query::rule_history`). `out` is left empty when
    /// the engine does not hold `host`, or would not evaluate it at `at`:
    /// no sample yet, or silent past the host retention (forgotten, as
    /// [`Engine::propose`] forgets it). Not before the windows' last move
    /// ([`EngineError::TickInPast`]).
    pub fn aggregates_at(
        &mut self,
        at: Millis,
        host: &str,
        out: &mut Vec<Option<f64>>,
    ) -> Result<(), EngineError> {
        if let Some(previous) = self.windows_at
            && at < previous
        {
            return Err(EngineError::TickInPast { at, previous });
        }
        self.windows_at = Some(at);
        out.clear();
        let Some(&index) = self.host_index.get(host) else {
            return Ok(());
        };
        let host = &mut self.hosts[index];
        advance_windows(&self.rules, host, at);
        if host
            .latest_visible
            .is_some_and(|latest| latest > at - self.host_retention)
        {
            out.extend(
                self.rules
                    .iter()
                    .zip(&host.windows)
                    .map(|(rule, window)| aggregate(rule, window, &host.sums, &host.extrema)),
            );
        }
        Ok(())
    }

    /// The state of every rule on `host`, as of the last evaluation.
    pub fn host_status(&self, host: &str) -> Option<Vec<PairStatus>> {
        let host = &self.hosts[*self.host_index.get(host)?];
        Some(
            self.rules
                .iter()
                .enumerate()
                .map(|(index, rule)| {
                    let window = &host.windows[index];
                    let alarm = &host.alarms[index];
                    let aggregate = aggregate(rule, window, &host.sums, &host.extrema);
                    let cooling = match (alarm.last_end, self.last_tick) {
                        (Some(end), Some(tick)) => tick < end + rule.rule.cooldown,
                        _ => false,
                    };
                    let state = match () {
                        _ if alarm.open.is_some() => PairState::Firing,
                        _ if alarm.pending_since.is_some() => PairState::Pending,
                        _ if cooling => PairState::Cooldown,
                        _ if aggregate.is_none() => PairState::NoData,
                        _ => PairState::Ok,
                    };
                    PairStatus {
                        state,
                        aggregate,
                        samples: window.count(),
                        open: alarm
                            .open
                            .as_ref()
                            .map(|open| incident(rule, &host.name, open, None)),
                        last_end: alarm.last_end,
                        pending_since: alarm.pending_since,
                        clear_since: alarm.clear_since,
                    }
                })
                .collect(),
        )
    }

    /// Every (rule, host) pair with an open incident or a resolved one, to
    /// carry over to a new engine with [`Engine::restore`].
    pub fn saved_pairs(&self) -> Vec<PairRecord> {
        let mut saved = Vec::new();
        for host in &self.hosts {
            for (rule, alarm) in self.rules.iter().zip(&host.alarms) {
                if alarm.open.is_none() && alarm.last_end.is_none() && alarm.pending_since.is_none()
                {
                    continue;
                }
                saved.push(PairRecord {
                    rule_name: rule.rule.name.clone(),
                    host: host.name.to_string(),
                    open: alarm
                        .open
                        .as_ref()
                        .map(|open| incident(rule, &host.name, open, None)),
                    last_end: alarm.last_end,
                    pending_since: alarm.pending_since,
                    clear_since: alarm.clear_since,
                });
            }
        }
        saved
    }

    /// Restores a pair saved by [`Engine::saved_pairs`] or read from a store,
    /// matching the rule by name. Returns `false`, changing nothing, when no
    /// rule has that name (it was removed from the configuration).
    ///
    /// A restored host is known once it has a sample again; one that has an
    /// open incident but no sample at all by the next tick is treated as
    /// forgotten, and its incident resolves, so that no incident stays open
    /// for a host nobody will hear from.
    pub fn restore(&mut self, pair: &PairRecord) -> bool {
        let Some(rule_index) = self
            .rules
            .iter()
            .position(|r| r.rule.name == pair.rule_name)
        else {
            return false;
        };
        let index = self.host_slot(&pair.host);
        let host = &mut self.hosts[index];
        let alarm = &mut host.alarms[rule_index];
        alarm.last_end = pair.last_end;
        alarm.open = pair.open.as_ref().map(|incident| {
            Box::new(OpenIncident {
                id: incident.id.clone(),
                start_time: incident.start_time,
                trigger_value: incident.trigger_value,
                details: incident.details.clone(),
            })
        });
        // A rule changed to one without options keeps no such state.
        let plain = self.rules[rule_index].plain;
        alarm.pending_since = pair
            .pending_since
            .filter(|_| !plain && alarm.open.is_none());
        alarm.clear_since = pair.clear_since.filter(|_| !plain && alarm.open.is_some());
        host.windows[rule_index].open = alarm.open.is_some();
        true
    }

    /// Memory held for samples and running states, for `--stats` and benchmarks.
    pub fn memory(&self) -> MemoryStats {
        let mut stats = MemoryStats {
            hosts: self.hosts.len(),
            ..MemoryStats::default()
        };
        for host in &self.hosts {
            stats.values_held += host.ring.len() * host.ring.width();
            stats.window_bytes += host.ring.retained_bytes()
                + host
                    .extrema
                    .iter()
                    .map(|e| e.capacity() * std::mem::size_of::<(Seq, f64)>())
                    .sum::<usize>();
        }
        stats
    }
}
