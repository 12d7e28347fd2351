//! The watcher: evaluates the rules at every tick and records what changed.
//!
//! A tick is two-phase. The engine proposes the tick's transitions without
//! applying them; the store records them (incidents, cooldowns, one outbox
//! delivery per hook) in one transaction; only then does the engine commit
//! them. If the store fails, the proposal is dropped: the engine's incidents
//! stay as the store has them, and the tick is tried again. So the engine
//! never moves ahead of the store, and a hook never hears of a resolution
//! whose opening was not recorded.
//!
//! Ticks fall on the multiples of `alerting.watcherInterval`. A tick that
//! fails is retried every second until the next tick is due. When the
//! watcher wakes late (a busy or suspended machine, a tick that took longer
//! than the interval, a store that kept failing), it evaluates the latest due
//! tick only and counts the ones it skipped in `alertd_ticks_missed_total`:
//! evaluating them afterwards would open and resolve incidents in the past
//! and page people about moments long gone. `alertd replay` on the stored
//! samples shows what the skipped ticks would have done.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{error, info, warn};

use std::sync::Mutex;

use super::topology::Recovery;
use super::{Evaluator, Service, ServiceError, Woke, lock, next_multiple};
use crate::config::{Config, Loaded};
use crate::duration::Millis;
use crate::engine::Engine;
use crate::incident::PairRecord;
use crate::incident::{PairChange, Transition};
use crate::notify::Targets;
use crate::notify::hooks;
use crate::store::{Lease, SampleCursor, Store, StoreError};

/// How long after a failed tick it is tried again (if the next is not due).
const RETRY: Millis = 1_000;

/// The evaluation's part of the node: the engine, and the locks that keep
/// it in step with the store (their order: `docs` of [`super`]).
pub(super) struct Evaluation {
    /// The engine, locked only for work in memory.
    pub(super) engine: Mutex<Evaluator>,
    /// Held by a tick from its proposal to its commit, and by a reload.
    pub(super) turn: Mutex<()>,
    /// Held by a compaction of samples, and by a reload from reading the
    /// store's sample cursor until the engine is rebuilt: samples appended
    /// after the cursor must not be compacted meanwhile.
    pub(super) compaction: Mutex<()>,
    /// While a reload rebuilds the engine: the samples committed since it
    /// read the store's cursor, for the new engine.
    pub(super) rebuilding: Mutex<Option<Vec<crate::sample::Sample>>>,
}

impl Evaluation {
    pub(super) fn new(evaluator: Evaluator) -> Evaluation {
        Evaluation {
            engine: Mutex::new(evaluator),
            turn: Mutex::new(()),
            compaction: Mutex::new(()),
            rebuilding: Mutex::new(None),
        }
    }
}

impl Service {
    /// Evaluates every rule at tick `at` and records the transitions durably;
    /// then wakes the dispatcher. Blocking. Returns how many transitions; a
    /// tick at or before the last evaluated one does nothing.
    ///
    /// On a store error nothing changes, in the store or in memory: the same
    /// tick may be tried again.
    pub fn tick(&self, at: Millis) -> Result<usize, StoreError> {
        let _evaluation = lock(&self.evaluation.turn);
        if !self.config().alerting.enabled {
            return Ok(0);
        }
        let Some(lease) = self.lease() else {
            // Another node evaluates.
            return Ok(0);
        };
        let started = Instant::now();
        if !self.topology.feeds_engine_at_ingest() {
            match self.follow_appends() {
                Ok(()) => {}
                Err(error @ StoreError::CompactedAfterCursor) => {
                    // This leader fell so far behind that samples it had not
                    // read were compacted: lead again, from a rebuilt engine.
                    self.step_down(&error.to_string());
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
        if self.tick_floor().is_some_and(|floor| at <= floor) {
            // Recorded under another lease already: this node's clock is
            // behind the one that recorded it.
            tracing::debug!(tick = at, "tick skipped: the store recorded a later one");
            return Ok(0);
        }
        let proposal = {
            let mut evaluator = self.engine();
            if evaluator.engine.last_tick().is_some_and(|last| at <= last) {
                return Ok(0);
            }
            let Evaluator { engine, ids } = &mut *evaluator;
            match engine.propose(at, ids) {
                Ok(proposal) => proposal,
                Err(error) => {
                    warn!(%error, "tick skipped");
                    return Ok(0);
                }
            }
        };
        if !proposal.is_empty() {
            match self.record_changes(&lease, proposal.transitions(), proposal.changes()) {
                Ok(()) => {}
                Err(StoreError::StaleTick { tick, last }) => {
                    // Nothing was recorded; skip to after the recorded tick.
                    self.behind_recorded_tick(tick, last);
                    return Ok(0);
                }
                Err(error @ (StoreError::Fenced { .. } | StoreError::AlreadyOpen { .. })) => {
                    let fenced = matches!(error, StoreError::Fenced { .. });
                    match self.topology.recovery(fenced) {
                        Recovery::StepDown => self.step_down(&error.to_string()),
                        Recovery::LeadAgain => {
                            self.step_down(&error.to_string());
                            self.try_lead()?;
                        }
                        Recovery::Rebuild => {
                            error!(%error, "the engine disagrees with the store; rebuilding");
                            self.catch_up(at)?;
                        }
                    }
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
        let committed = self.engine().engine.commit(proposal);
        let transitions = match committed {
            Ok(transitions) => transitions,
            Err(error) => {
                // Cannot happen while ticks and reloads hold the evaluation
                // lock; if it did, the store is ahead of the engine: catch up.
                error!(%error, "the tick's transitions are recorded but not applied; rebuilding");
                self.catch_up(at)?;
                return Ok(0);
            }
        };
        if !transitions.is_empty() {
            self.dispatch.outbox.notify_one();
        }
        for transition in &transitions {
            let incident = &transition.incident;
            info!(
                event = transition.kind.as_str(),
                rule = &*incident.rule_name,
                host = &*incident.host_name,
                id = incident.id,
                trigger_value = incident.trigger_value,
                "incident {}",
                transition.kind.as_str()
            );
        }
        if self.topology.others_may_lead() {
            self.publish_states(at);
        }
        self.metrics.tick(started.elapsed(), &transitions);
        Ok(transitions.len())
    }

    /// Replaces the engine by one rebuilt from the store at `at`, when it
    /// disagrees with the store; in a cluster, by leading again.
    fn catch_up(&self, at: Millis) -> Result<(), StoreError> {
        if self.topology.recovery(false) == Recovery::StepDown {
            self.step_down("the engine disagrees with the store");
            return Ok(());
        }
        let _commit = lock(&self.ingest.commit);
        let (engine, _) = rebuild(
            &self.config(),
            self.store.as_ref(),
            at,
            SampleCursor::MAX,
            Some(self.built_at),
        )?;
        self.engine().engine = engine;
        Ok(())
    }

    /// Records transitions under `lease`, each with one delivery per target
    /// it goes to now (the hooks present, the configured targets that want it).
    pub(super) fn record(
        &self,
        lease: &Lease,
        transitions: &[Transition],
    ) -> Result<(), StoreError> {
        self.record_changes(lease, transitions, &[])
    }

    /// [`Service::record`], with the changes of pairs' `pendingSince` and
    /// `clearSince` at the tick.
    pub(super) fn record_changes(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        changes: &[PairChange],
    ) -> Result<(), StoreError> {
        let config = self.config();
        let targets = Targets::list(&self.hook_dir(), &config.alerting.notify);
        let each: Vec<Vec<String>> = transitions
            .iter()
            .map(|transition| {
                targets
                    .targets_for(transition)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .collect();
        self.store.record_tick(lease, transitions, &each, changes)
    }

    /// Says, with their paths, which hooks cannot run: files skipped by
    /// discovery, and `.js` hooks when Node.js cannot be started. Called at
    /// start and after each reload, so that a hook that never runs is known
    /// before the first incident needs it.
    pub fn report_hooks(&self) {
        let dir = self.hook_dir();
        let discovery = match hooks::discover(&dir) {
            Ok(discovery) => discovery,
            Err(error) => {
                error!(dir = %dir.display(), %error, "cannot list hooks");
                return;
            }
        };
        for (name, why) in &discovery.skipped {
            warn!(hook = %dir.join(name).display(), "hook skipped: {why}");
        }
        let js: Vec<_> = discovery
            .hooks
            .iter()
            .filter(|hook| hook.kind == hooks::HookKind::Js)
            .collect();
        if js.is_empty() {
            return;
        }
        let node = self.config().hooks.node.clone();
        let version = std::process::Command::new(&node)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output();
        match version {
            Ok(output) if output.status.success() => info!(
                node,
                version = String::from_utf8_lossy(&output.stdout).trim(),
                hooks = js.len(),
                "JavaScript hooks run under Node.js"
            ),
            failed => {
                let why = match failed {
                    Ok(output) => format!("it exited with {}", output.status),
                    Err(error) => error.to_string(),
                };
                for hook in js {
                    error!(
                        hook = %hook.path.display(),
                        node,
                        "this JavaScript hook cannot run: Node.js ({node}) cannot be started: {why}; \
                         install Node.js or set hooks.node"
                    );
                }
            }
        }
    }

    /// Resolves, at `now`, stored open incidents whose rule no longer exists.
    /// The caller holds the evaluation lock (or runs alone, at start).
    pub(super) fn resolve_orphans(
        &self,
        orphans: Vec<PairRecord>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let now = self.tick_floor().map_or(now, |floor| now.max(floor + 1));
        let transitions: Vec<Transition> = orphans
            .into_iter()
            .filter_map(|pair| pair.open)
            .map(|incident| {
                warn!(
                    rule = &*incident.rule_name,
                    host = &*incident.host_name,
                    id = incident.id,
                    "rule removed from the configuration: its open incident is resolved"
                );
                Transition::resolved_apart(incident, now, None)
            })
            .collect();
        if transitions.is_empty() {
            return Ok(());
        }
        // Only the leader records; a node that takes the lease resolves them.
        if let Some(lease) = self.lease() {
            self.record(&lease, &transitions)?;
            self.dispatch.outbox.notify_one();
        }
        Ok(())
    }

    /// Reads the configuration file again. An invalid file changes nothing.
    /// Blocking. No tick runs meanwhile; samples are committed as usual while
    /// the new engine is built from the store, and those committed since it
    /// read the store's cursor are added to it before it replaces the old one.
    pub fn reload(&self) -> Result<(), ServiceError> {
        let Loaded { config, warnings } = Config::load(&self.options.config_path)?;
        for warning in &warnings {
            warn!("{}: {warning}", self.options.config_path.display());
        }
        let _evaluation = lock(&self.evaluation.turn);
        let compaction = lock(&self.evaluation.compaction);
        let (now, cursor) = {
            let _commit = lock(&self.ingest.commit);
            *lock(&self.evaluation.rebuilding) = Some(Vec::new());
            (self.now(), self.store.sample_cursor())
        };
        // The new engine has evaluated no tick yet; evaluating the last tick
        // again would find nothing new, as its transitions are restored.
        let rebuilt = cursor.and_then(|cursor| {
            rebuild(
                &config,
                self.store.as_ref(),
                now,
                cursor,
                self.topology.samples_missing_until(self.built_at),
            )
            .map(|(engine, orphans)| (engine, orphans, cursor))
        });
        drop(compaction);
        let commit = lock(&self.ingest.commit);
        let committed_meanwhile = lock(&self.evaluation.rebuilding).take().unwrap_or_default();
        let (mut engine, orphans, cursor) = rebuilt?;
        if self.topology.feeds_engine_at_ingest() {
            if config.alerting.enabled {
                for sample in &committed_meanwhile {
                    engine.ingest(sample);
                }
            }
        } else if self.is_leading() {
            // The new engine follows every node's appends from the cursor.
            *lock(&self.leadership.tail) = Some(cursor);
        }
        let rules = config.alerting.rules.len();
        self.engine().engine = engine;
        *self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(config);
        drop(commit);
        self.resolve_orphans(orphans, now)?;
        self.reloaded.notify_waiters();
        self.report_hooks();
        info!(
            rules,
            committed_meanwhile = committed_meanwhile.len(),
            "configuration reloaded"
        );
        Ok(())
    }
}

/// A new engine for `config` with the state the store holds at `now`: the
/// windows refilled from the samples appended before `cursor`, open
/// incidents and cooldowns restored. Also returns the stored pairs whose rule
/// is gone.
pub(super) fn rebuild(
    config: &Config,
    store: &dyn Store,
    now: Millis,
    cursor: SampleCursor,
    missing_until: Option<Millis>,
) -> Result<(Engine, Vec<PairRecord>), StoreError> {
    let mut engine = Engine::from_config(config);
    let mut orphans = Vec::new();
    // A node alone stored nothing while it was down, before it was built.
    // In a cluster the other nodes went on storing samples: a takeover is
    // no gap.
    if let Some(until) = missing_until {
        engine.samples_missing_until(until);
    }
    if !config.alerting.enabled {
        // Nothing is evaluated: no window to fill, no incident to resolve.
        return Ok((engine, orphans));
    }
    for pair in store.pairs()? {
        if !engine.restore(&pair) && pair.open.is_some() {
            orphans.push(pair);
        }
    }
    // Samples any window can still see, and each host's latest sample so that
    // every host is known (and a silent host is noticed). A latest sample may
    // be one appended after `cursor`, which the caller adds again: it is then
    // older than any window, and entering twice changes nothing.
    let longest = config.alerting.longest_timeframe();
    let since = now.saturating_sub(longest);
    for sample in store.latest_samples()? {
        if sample.ts <= since {
            engine.ingest(&sample);
        }
    }
    let mut count = 0usize;
    store.scan_samples_before(
        since.saturating_add(1),
        Millis::MAX,
        cursor,
        &mut |sample| {
            engine.ingest(&sample);
            count += 1;
        },
    )?;
    tracing::debug!(samples = count, since, "windows refilled");
    Ok((engine, orphans))
}

/// Evaluates at every tick until stopped.
pub(super) async fn watcher(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let interval = || service.config().alerting.watcher_interval;
    // The tick to evaluate next, and when to wake for it.
    // From when the service was built, not when this task first runs: a tick
    // due in between is evaluated (late) rather than skipped.
    let mut pending = next_multiple(service.built_at, interval());
    let mut wake_at = pending;
    loop {
        match service.wait_until(wake_at, &mut stop).await {
            Woke::Stop => return,
            Woke::Reload => {
                // The interval may have changed.
                pending = next_multiple(service.now(), interval());
                wake_at = pending;
                continue;
            }
            Woke::Time => {}
        }
        let interval = interval();
        let now = service.now();
        let latest = now.div_euclid(interval) * interval;
        let at = if latest > pending {
            let missed = (latest - pending) / interval;
            warn!(
                missed,
                tick = latest,
                "woke late: evaluating the latest tick, skipping {missed} missed"
            );
            service.metrics.ticks_missed(missed as u64);
            latest
        } else {
            pending
        };
        service.metrics.tick_lag(now.saturating_sub(at));
        let worker = service.clone();
        let outcome = tokio::task::spawn_blocking(move || worker.tick(at)).await;
        match outcome {
            Ok(Ok(_)) => {
                pending = at + interval;
                wake_at = pending;
            }
            Ok(Err(error)) => {
                error!(%error, tick = at, "tick failed: nothing changed; trying again");
                service.metrics.tick_failed();
                pending = at;
                wake_at = service.now().saturating_add(RETRY).min(at + interval);
            }
            Err(error) => {
                error!(%error, tick = at, "tick panicked");
                pending = at + interval;
                wake_at = pending;
            }
        }
    }
}
