//! Leadership: which node evaluates the rules.
//!
//! One node at a time holds the store's lease ([`Coordination::acquire_lease`]) and
//! runs the ticks; every transition it records carries the lease's fencing
//! token, and the store refuses a token that is no longer current. So a
//! node that lost its lease without knowing (paused, cut off) cannot write
//! once another has taken over: it learns it from the refusal, or from a
//! failed renewal, and steps down.
//!
//! With the embedded store the node always leads (the data directory's lock
//! keeps other processes out); the lease only guards against the node's own
//! long pauses. With a shared store the leader also follows what every node
//! appends ([`SampleStore::samples_since`]) rather than what it ingests itself, and
//! a node that takes over first rebuilds its engine from the store: windows
//! from the stored samples, open incidents and cooldowns from the incident
//! records. It carries on from there without repeating or skipping a
//! transition the previous leader recorded.
//!
//! Leases run on real time (the store's clock), not on the service's clock:
//! a paused process must lose its lease however its clock is stepped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use super::watcher::rebuild;
use super::{Service, lock};
use crate::duration::Millis;
use crate::store::SampleCursor;
use crate::store::{Lease, LeaseHolder, NodeStatus, StoreError};

/// The cluster as this node last saw it (see [`Service::cluster`]).
#[derive(Debug, Clone, Default)]
pub struct ClusterRead {
    /// When it was read, on this node's clock; `None` before the first read.
    pub read_at: Option<Millis>,
    /// The store's answer, or why there was none.
    pub error: Option<String>,
    pub leader: Option<LeaseHolder>,
    pub nodes: Vec<NodeStatus>,
}

/// Nodes silent this long are dropped from the cluster's list.
const FORGET_AFTER: Millis = 24 * 3600 * 1000;

/// The leadership's part of the node.
#[derive(Default)]
pub(super) struct Leadership {
    /// The lease, while this node leads.
    pub(super) lease: Mutex<Option<Lease>>,
    /// When the lease runs out by this node's monotonic clock: the time of
    /// the call that took or last renewed it, plus its length. Past it the
    /// node has stopped leading, whatever a call to the store is doing.
    pub(super) until: Mutex<Option<Instant>>,
    /// The cluster as last read (see [`Service::cluster`]).
    pub(super) cluster: Mutex<ClusterRead>,
    /// In a cluster, while leading: where the samples the engine has not
    /// seen yet start.
    pub(super) tail: Mutex<Option<SampleCursor>>,
    /// While leading: the last tick the store had recorded when this node
    /// took the lease (or refused since). Ticks at or before it are not
    /// evaluated: another lease covered them.
    pub(super) floor: Mutex<Option<Millis>>,
    /// This node's clock against the store's, as last compared.
    pub(super) clock: Mutex<Option<ClockCheck>>,
}

/// This node's clock against the shared store's (Redis `TIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockCheck {
    /// This node's clock minus the store's, in ms: positive when ahead.
    pub skew: Millis,
    /// Half the round trip of the call that read the store's clock: the
    /// skew is known to within it.
    pub within: Millis,
    /// The most the skew may be (`storage.maxClockSkew`).
    pub bound: Millis,
}

impl ClockCheck {
    /// Whether the clocks are surely further apart than the bound.
    pub fn too_far(&self) -> bool {
        self.skew.abs().saturating_sub(self.within) > self.bound
    }

    /// What is wrong, when the clocks are too far apart.
    pub fn problem(&self) -> Option<String> {
        self.too_far().then(|| {
            format!(
                "this node's clock is {:.3} s {} Redis's (more than storage.maxClockSkew, {}): \
                 it does not lead while they differ; keep the machines' clocks in time (NTP)",
                self.skew.unsigned_abs() as f64 / 1e3,
                if self.skew > 0 { "ahead of" } else { "behind" },
                crate::duration::HumanDuration(self.bound)
            )
        })
    }
}

impl Service {
    /// The lease this node holds, if it leads.
    pub fn lease(&self) -> Option<Lease> {
        self.expire_lease();
        lock(&self.leadership.lease).clone()
    }

    /// Whether this node evaluates the rules now.
    pub fn is_leading(&self) -> bool {
        self.expire_lease();
        lock(&self.leadership.lease).is_some()
    }

    /// Steps down once the lease has run out by this node's clock: a node
    /// cut off from the store, whose calls wait for an answer, must not go
    /// on believing it leads.
    fn expire_lease(&self) {
        let mut until = lock(&self.leadership.until);
        if until.is_some_and(|until| Instant::now() >= until) {
            *until = None;
            drop(until);
            self.step_down("the lease ran out by this node's clock before the store renewed it");
        }
    }

    /// The lease taken or renewed by a call made at `asked` runs until
    /// `asked` plus `ttl` by this node's clock.
    fn lease_runs(&self, asked: Instant, ttl: Millis) {
        let ttl = Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
        *lock(&self.leadership.until) = Some(asked + ttl);
    }

    /// The cluster as this node last saw it: refreshed with every renewal
    /// of the lease (or try to take it).
    pub fn cluster(&self) -> ClusterRead {
        lock(&self.leadership.cluster).clone()
    }

    /// Reports this node to the store and reads the cluster back. Blocking.
    fn report(&self) -> Result<(), StoreError> {
        let config = self.config();
        let now = self.now();
        let rules = config.rules_fingerprint();
        self.store.heartbeat(&NodeStatus {
            node: self.host_name().to_string(),
            heartbeat: now,
            started: self.built_at,
            rules: rules.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            url: self.options.url.clone(),
        })?;
        let leader = self.store.lease_holder()?;
        let mut nodes = self.store.nodes()?;
        if self.is_leading() {
            for gone in nodes.iter().filter(|n| now - n.heartbeat > FORGET_AFTER) {
                info!(node = gone.node, "forgetting a node silent for a day");
                self.store.forget_node(&gone.node)?;
            }
        }
        nodes.retain(|n| now - n.heartbeat <= FORGET_AFTER);
        let leader_rules = leader.as_ref().and_then(|leader| {
            nodes
                .iter()
                .find(|n| n.node == leader.node)
                .map(|n| n.rules.clone())
        });
        let differs = leader_rules.is_some_and(|theirs| theirs != rules);
        let mut view = lock(&self.leadership.cluster);
        let differed = view.error.is_none()
            && view.leader.as_ref().is_some_and(|known| {
                view.nodes
                    .iter()
                    .find(|n| n.node == known.node)
                    .is_some_and(|n| n.rules != rules)
            });
        if differs && !differed {
            warn!(
                leader = leader.as_ref().map(|l| l.node.as_str()),
                "this node's rules differ from the leader's: it would evaluate differently \
                 once it leads; give every node the same rules"
            );
        }
        *view = ClusterRead {
            read_at: Some(now),
            error: None,
            leader,
            nodes,
        };
        Ok(())
    }

    /// Compares this node's clock with the store's, when the store has one,
    /// and keeps the outcome. Blocking.
    fn check_clock(&self) -> Result<Option<ClockCheck>, StoreError> {
        let before = self.now();
        let asked = Instant::now();
        let Some(store) = self.store.store_clock()? else {
            return Ok(None);
        };
        let round_trip = Millis::try_from(asked.elapsed().as_millis()).unwrap_or(Millis::MAX);
        let after = self.now();
        let check = ClockCheck {
            skew: before + (after - before) / 2 - store,
            within: round_trip / 2 + 1,
            bound: self.config().max_clock_skew(),
        };
        let before = lock(&self.leadership.clock).replace(check);
        // Said once per fault: when the clock goes off, or to the other side.
        let was_off = before
            .filter(ClockCheck::too_far)
            .map(|before| before.skew > 0);
        let was_far = was_off.is_some();
        match check.problem() {
            Some(problem) if was_off != Some(check.skew > 0) => error!("{problem}"),
            None if was_far => info!(
                skew_ms = check.skew,
                "this node's clock agrees with Redis's again: it may lead"
            ),
            _ => {}
        }
        self.metrics.clock_skew(check.skew);
        Ok(Some(check))
    }

    /// What is wrong with this node's clock, as last compared with the
    /// store's.
    pub fn clock_problem(&self) -> Option<String> {
        lock(&self.leadership.clock).and_then(|check| check.problem())
    }

    /// Ticks at or before this one are not evaluated (see
    /// [`Leadership::floor`]).
    pub(super) fn tick_floor(&self) -> Option<Millis> {
        *lock(&self.leadership.floor)
    }

    /// The store refused tick `tick` because another lease recorded `last`,
    /// a later one: this node's clock is behind. No tick until then is
    /// evaluated.
    pub(super) fn behind_recorded_tick(&self, tick: Millis, last: Millis) {
        warn!(
            tick,
            last,
            "the store recorded a later tick (this node's clock is behind the node that \
             recorded it): no tick until then is evaluated"
        );
        *lock(&self.leadership.floor) = Some(last);
    }

    /// The moment at which a node that leads now records what no tick
    /// decides (a removed rule's incidents, the incidents lost with the
    /// store): now, or just after the last recorded tick when this node's
    /// clock is behind it.
    pub(super) fn record_time(&self) -> Millis {
        let now = self.now();
        self.tick_floor().map_or(now, |floor| now.max(floor + 1))
    }

    /// Alone or in a cluster.
    pub fn topology(&self) -> super::Topology {
        self.topology
    }

    /// Takes the lease if no other node holds it. With a shared store, the
    /// engine is rebuilt from the store before the node leads. Blocking.
    /// Returns whether this node now leads.
    pub fn try_lead(&self) -> Result<bool, StoreError> {
        if self.is_leading() {
            return Ok(true);
        }
        let config = self.config();
        let asked = Instant::now();
        let ttl = self.topology.lease_ttl(config.lease_ttl());
        let Some(lease) = self.store.acquire_lease(self.host_name(), ttl)? else {
            return Ok(false);
        };
        self.lease_runs(asked, ttl);
        // Ticks another lease recorded are not evaluated again, however far
        // behind this node's clock is.
        match self.store.last_tick() {
            Ok(floor) => {
                let now = self.now();
                if let Some(last) = floor.filter(|last| *last >= now) {
                    warn!(
                        last_tick = last,
                        now,
                        "this node's clock is behind the last tick recorded: no tick is \
                         evaluated until it passes it"
                    );
                }
                *lock(&self.leadership.floor) = floor;
            }
            Err(error) => {
                let _ = self.store.release_lease(&lease);
                return Err(error);
            }
        }
        if !self.topology.builds_engine_at_start() {
            let _evaluation = lock(&self.evaluation.turn);
            let taken = (|| {
                let cursor = self.store.sample_cursor()?;
                let now = self.now();
                let (engine, orphans) = rebuild(&config, self.store.as_ref(), now, cursor, None)?;
                Ok::<_, StoreError>((cursor, engine, orphans, now))
            })();
            let (cursor, engine, orphans, now) = match taken {
                Ok(taken) => taken,
                Err(error) => {
                    // Leading on a stale engine could repeat transitions: let
                    // another node (or a later try) lead instead.
                    let _ = self.store.release_lease(&lease);
                    return Err(error);
                }
            };
            self.engine().engine = engine;
            *lock(&self.leadership.tail) = Some(cursor);
            *lock(&self.leadership.lease) = Some(lease.clone());
            self.metrics.leading(true);
            self.resolve_orphans(orphans, now)?;
        } else {
            *lock(&self.leadership.lease) = Some(lease.clone());
            self.metrics.leading(true);
        }
        self.forget_remembered_open();
        info!(
            node = lease.node,
            token = lease.token,
            "leading: this node evaluates the rules"
        );
        Ok(true)
    }

    /// Stops leading (the lease was lost or refused).
    pub(super) fn step_down(&self, why: &str) {
        if !self.is_leading() {
            return;
        }
        self.remember_open();
        let Some(lease) = lock(&self.leadership.lease).take() else {
            return;
        };
        *lock(&self.leadership.tail) = None;
        *lock(&self.leadership.until) = None;
        *lock(&self.leadership.floor) = None;
        self.metrics.leading(false);
        if self.topology.others_may_lead() {
            warn!(
                node = lease.node,
                token = lease.token,
                "stepping down: {why}; another node evaluates the rules"
            );
        } else {
            warn!(
                node = lease.node,
                token = lease.token,
                "{why}: no rule is evaluated until this node takes it again"
            );
        }
    }

    /// With a shared store: adds to the engine the samples every node
    /// appended since the last call. Called by a tick, with the evaluation
    /// lock held.
    pub(super) fn follow_appends(&self) -> Result<(), StoreError> {
        let Some(cursor) = *lock(&self.leadership.tail) else {
            return Ok(());
        };
        let mut samples = Vec::new();
        let next = self
            .store
            .samples_since(cursor, &mut |sample| samples.push(sample))?;
        let mut evaluator = self.engine();
        for sample in &samples {
            evaluator.engine.ingest(sample);
        }
        drop(evaluator);
        *lock(&self.leadership.tail) = Some(next);
        Ok(())
    }
}

/// Renews the lease while this node leads, and tries to take it while it
/// does not, every third of the lease; gives it up on stop, so that another
/// node takes over at once.
pub(super) async fn leadership(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let mut failing = super::Repeated::default();
    loop {
        let configured = service.config().lease_ttl();
        let ttl = service.topology.lease_ttl(configured);
        let worker = service.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            // Before the lease: a store that lost its data lost the lease too.
            let lost = worker.check_identity();
            // A node whose clock is off does not lead: its ticks and
            // incidents would be stamped off.
            let clock = worker.check_clock();
            let off = match &clock {
                Ok(check) => check.is_some_and(|check| check.too_far()),
                Err(_) => lock(&worker.leadership.clock).is_some_and(|check| check.too_far()),
            };
            if off && let Some(lease) = worker.lease() {
                worker.step_down("this node's clock is too far from Redis's");
                // Another node takes over at once.
                let _ = worker.store.release_lease(&lease);
            }
            let asked = Instant::now();
            let outcome = match worker.lease() {
                Some(lease) => worker
                    .store
                    .renew_lease(&lease, ttl)
                    .map(|kept| Some((lease, kept))),
                None if off => Ok(None),
                None => worker.try_lead().map(|_| None),
            };
            if let Ok(Some((_, true))) = &outcome {
                worker.lease_runs(asked, ttl);
            }
            match lost {
                Ok(lost) if worker.is_leading() => {
                    if let Err(error) = worker.resolve_lost(lost) {
                        warn!(%error, "cannot resolve the incidents lost with the store yet");
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "cannot read the cluster's identity"),
            }
            if let Err(error) = worker.report() {
                let mut view = lock(&worker.leadership.cluster);
                view.read_at = Some(worker.now());
                view.error = Some(error.to_string());
            }
            outcome
        })
        .await;
        if matches!(outcome, Ok(Ok(_)))
            && let Some((failures, lasted)) = failing.recovered()
        {
            info!(failures, lasted = ?lasted, "lease: the store answers again");
        }
        match outcome {
            Ok(Ok(Some((_, true)) | None)) => {}
            Ok(Ok(Some((_, false)))) => service.step_down("the lease was lost"),
            Ok(Err(error)) => {
                // Steps down if the lease ran out meanwhile.
                service.is_leading();
                if let Some(unsaid) = failing.failed() {
                    error!(
                        %error,
                        failures_since_last_said = unsaid,
                        "lease: cannot reach the store (said again every minute while it lasts)"
                    );
                }
            }
            Err(error) => error!(%error, "lease: panicked"),
        }
        // Every third of the configured lease, also when a node alone holds
        // a longer one: a lease it lost is taken again as soon.
        let every = Duration::from_millis((configured / 3).max(100) as u64);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    if let Some(lease) = service.lease() {
        let worker = service.clone();
        let released =
            tokio::task::spawn_blocking(move || worker.store.release_lease(&lease)).await;
        if let Ok(Err(error)) = released {
            warn!(%error, "could not give the lease up: another node takes over when it runs out");
        }
    }
}
