//! `alertd run`: the engine as a long-running service.
//!
//! The service is a few tasks around shared state:
//!
//! - the HTTP API ([`http`]) takes samples and counters and answers queries,
//!   and serves the web pages ([`pages`]);
//! - the watcher evaluates the rules at every tick (SPEC 5.1) and records the
//!   transitions durably, in the [`Store`], before anything acts on them;
//! - the dispatcher ([`dispatch`]) calls the hooks from the store's outbox,
//!   so that a call survives a crash;
//! - the collector ([`collector`]) samples this node (SPEC 9);
//! - the janitors delete old samples and incidents.
//!
//! Every change of state (samples in, ticks, reloads) happens under one lock,
//! store first and engine second, so that the engine always equals what a
//! restart would rebuild from the store.

mod collector;
mod dispatch;
mod http;
mod metrics;
mod pages;
mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{Config, ConfigError, Loaded};
use crate::duration::{HumanDuration, Millis};
use crate::engine::{Engine, SavedPair};
use crate::hooks::{self, HOOK_DIR};
use crate::incident::{Transition, TransitionKind, UlidIds};
use crate::sample::Sample;
use crate::store::{Store, StoreError};

pub use collector::Counters;
pub use metrics::Metrics;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

/// What the service needs besides its configuration.
pub struct Options {
    /// The configuration file, read again on reload.
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    /// The name of this node's own samples.
    pub host_name: String,
    /// The bearer token for `/api`, if any.
    pub token: Option<String>,
}

/// The state shared by the service's tasks.
pub struct Service {
    options: Options,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    state: Mutex<State>,
    counters: Counters,
    metrics: Metrics,
    /// Batches of samples waiting to be committed together.
    group_commit: Mutex<GroupCommit>,
    /// Woken when the outbox may have something due.
    outbox: Notify,
    /// Woken when the configuration changed, so that loops re-read intervals.
    reloaded: Notify,
}

/// Batches waiting for a commit, and the outcome of commits made on behalf
/// of callers that have not yet looked.
#[derive(Default)]
struct GroupCommit {
    next_ticket: u64,
    waiting: Vec<(u64, Vec<Sample>)>,
    results: rustc_hash::FxHashMap<u64, Result<(), String>>,
}

/// What changes under the lock.
struct State {
    config: Config,
    engine: Engine,
    ids: UlidIds,
}

impl Service {
    /// Builds the service: opens nothing, starts nothing; rebuilds the engine
    /// from the store (windows, open incidents, cooldowns).
    pub fn new(
        options: Options,
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Self>, ServiceError> {
        let started = Instant::now();
        let now = clock.now();
        let (engine, orphans) = rebuild(&config, store.as_ref(), now)?;
        let service = Arc::new(Service {
            options,
            clock,
            store,
            state: Mutex::new(State {
                config,
                engine,
                ids: UlidIds,
            }),
            counters: Counters::default(),
            metrics: Metrics::default(),
            group_commit: Mutex::default(),
            outbox: Notify::new(),
            reloaded: Notify::new(),
        });
        service.resolve_orphans(orphans, now)?;
        info!(
            hosts = service.lock().engine.host_names().count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state rebuilt from the store"
        );
        Ok(service)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Engine methods do not panic on valid input; if one ever did, the
        // state is still consistent with the store up to the last commit.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn host_name(&self) -> &str {
        &self.options.host_name
    }

    /// Reads the running configuration without copying it.
    pub fn read_config<T>(&self, read: impl FnOnce(&Config) -> T) -> T {
        read(&self.lock().config)
    }

    /// The hooks directory under the data directory.
    pub fn hook_dir(&self) -> PathBuf {
        self.options.data_dir.join(HOOK_DIR)
    }

    /// Stores valid samples, then hands them to the engine. Blocking.
    ///
    /// Batches that arrive while another is being committed are committed
    /// together by whichever caller takes the lock next (group commit): one
    /// transaction and one sync to disk for all of them. Each caller returns
    /// once its own samples are durable.
    pub fn ingest(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        let ticket = {
            let mut group = self.group();
            group.next_ticket += 1;
            let ticket = group.next_ticket;
            group.waiting.push((ticket, samples));
            ticket
        };
        let mut state = self.lock();
        let mut group = self.group();
        if let Some(result) = group.results.remove(&ticket) {
            // Committed by the caller that held the lock before.
            return result.map_err(StoreError::Group);
        }
        let waiting = std::mem::take(&mut group.waiting);
        drop(group);
        let tickets: Vec<u64> = waiting.iter().map(|(ticket, _)| *ticket).collect();
        let samples: Vec<Sample> = waiting
            .into_iter()
            .flat_map(|(_, samples)| samples)
            .collect();
        let result = self.store.append_samples(&samples);
        if result.is_ok() {
            // With alerting off nothing evaluates, so nothing would ever leave
            // the windows: the engine gets the samples from the store when
            // alerting is turned on (a reload rebuilds it).
            if state.config.alerting.enabled {
                for sample in &samples {
                    state.engine.ingest(sample);
                }
            }
            self.metrics.samples_ingested(samples.len());
        }
        let shared = result.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let mut group = self.group();
        for other in tickets.into_iter().filter(|t| *t != ticket) {
            group.results.insert(other, shared.clone());
        }
        result
    }

    fn group(&self) -> MutexGuard<'_, GroupCommit> {
        self.group_commit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Evaluates every rule at tick `at` and records the transitions durably;
    /// then wakes the dispatcher. Blocking. Returns how many transitions.
    pub fn tick(&self, at: Millis) -> Result<usize, StoreError> {
        let started = Instant::now();
        let mut state = self.lock();
        if !state.config.alerting.enabled {
            return Ok(0);
        }
        if state.engine.last_tick().is_some_and(|last| at <= last) {
            return Ok(0);
        }
        let mut transitions = Vec::new();
        let State { engine, ids, .. } = &mut *state;
        if let Err(error) = engine.evaluate(at, ids, &mut transitions) {
            warn!(%error, "tick skipped");
            return Ok(0);
        }
        if !transitions.is_empty() {
            if let Err(error) = self.record(&transitions) {
                // The engine moved on but the store did not: go back to what
                // the store holds; the next tick finds the same transitions.
                error!(%error, "could not record the tick's transitions; rebuilding");
                let (engine, _) = rebuild(&state.config, self.store.as_ref(), at)?;
                state.engine = engine;
                return Err(error);
            }
            self.outbox.notify_one();
        }
        drop(state);
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
        self.metrics.tick(started.elapsed(), &transitions);
        Ok(transitions.len())
    }

    /// Records transitions with one delivery per hook present now.
    fn record(&self, transitions: &[Transition]) -> Result<(), StoreError> {
        let targets = self.targets();
        self.store.record_transitions(transitions, &targets)
    }

    /// The hooks to tell of a transition: `exec:<name>` per executable hook.
    fn targets(&self) -> Vec<String> {
        match hooks::discover(&self.hook_dir()) {
            Ok(discovery) => {
                for (name, why) in &discovery.skipped {
                    warn!(hook = name, "hook skipped: {why}");
                }
                discovery
                    .hooks
                    .into_iter()
                    .map(|hook| format!("exec:{}", hook.name))
                    .collect()
            }
            Err(error) => {
                error!(dir = %self.hook_dir().display(), %error, "cannot list hooks");
                Vec::new()
            }
        }
    }

    /// Resolves, at `now`, stored open incidents whose rule no longer exists.
    fn resolve_orphans(&self, orphans: Vec<SavedPair>, now: Millis) -> Result<(), StoreError> {
        let transitions: Vec<Transition> = orphans
            .into_iter()
            .filter_map(|pair| pair.open)
            .map(|mut incident| {
                incident.end_time = Some(now.max(incident.start_time));
                warn!(
                    rule = &*incident.rule_name,
                    host = &*incident.host_name,
                    id = incident.id,
                    "rule removed from the configuration: its open incident is resolved"
                );
                Transition {
                    kind: TransitionKind::Resolved,
                    at: now,
                    rule: usize::MAX,
                    incident,
                }
            })
            .collect();
        if !transitions.is_empty() {
            self.record(&transitions)?;
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Reads the configuration file again. An invalid file changes nothing.
    /// Blocking.
    pub fn reload(&self) -> Result<(), ServiceError> {
        let Loaded { config, warnings } = Config::load(&self.options.config_path)?;
        for warning in &warnings {
            warn!("{}: {warning}", self.options.config_path.display());
        }
        let now = self.now();
        let mut state = self.lock();
        // The new engine has evaluated no tick yet; evaluating the last tick
        // again would find nothing new, as its transitions are restored.
        let (engine, orphans) = rebuild(&config, self.store.as_ref(), now)?;
        state.engine = engine;
        state.config = config;
        drop(state);
        self.resolve_orphans(orphans, now)?;
        self.reloaded.notify_waiters();
        info!(
            rules = self.lock().config.alerting.rules.len(),
            "configuration reloaded"
        );
        Ok(())
    }
}

/// A new engine for `config` with the state the store holds at `now`: the
/// windows refilled from stored samples, open incidents and cooldowns
/// restored. Also returns the stored pairs whose rule is gone.
fn rebuild(
    config: &Config,
    store: &dyn Store,
    now: Millis,
) -> Result<(Engine, Vec<SavedPair>), StoreError> {
    let mut engine = Engine::from_config(config);
    let mut orphans = Vec::new();
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
    // every host is known (and a silent host is noticed).
    let longest = config
        .alerting
        .rules
        .iter()
        .map(|rule| rule.timeframe)
        .max()
        .unwrap_or(0);
    let since = now.saturating_sub(longest);
    for sample in store.latest_samples()? {
        if sample.ts <= since {
            engine.ingest(&sample);
        }
    }
    let mut count = 0usize;
    store.scan_samples(since.saturating_add(1), Millis::MAX, &mut |sample| {
        engine.ingest(&sample);
        count += 1;
    })?;
    tracing::debug!(samples = count, since, "windows refilled");
    Ok((engine, orphans))
}

/// Runs the service until `shutdown` resolves: serves HTTP on `listener`,
/// ticks, dispatches hooks, collects, cleans. On shutdown, finishes the
/// current tick and the running hook call, then returns.
pub async fn run(
    service: Arc<Service>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    let (stop_tx, stop) = watch::channel(false);
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(%address, data_dir = %service.options.data_dir.display(), host = service.host_name(), "alertd listening");
    service.read_config(|config| {
        info!(
            rules = config.alerting.rules.len(),
            alerting = config.alerting.enabled,
            watcher_interval = %HumanDuration(config.alerting.watcher_interval),
            monitoring = config.monitoring.enabled,
            "configuration"
        )
    });
    let tasks = vec![
        tokio::spawn(watcher(service.clone(), stop.clone())),
        tokio::spawn(dispatch::dispatcher(service.clone(), stop.clone())),
        tokio::spawn(collector::collector(service.clone(), stop.clone())),
        tokio::spawn(janitor(service.clone(), stop.clone())),
    ];
    let mut http_stop = stop.clone();
    let server =
        axum::serve(listener, http::router(service.clone())).with_graceful_shutdown(async move {
            let _ = http_stop.wait_for(|stopped| *stopped).await;
        });
    let server = tokio::spawn(async move { server.await });
    shutdown.await;
    info!("shutting down: finishing the current tick and hook calls");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    match server.await {
        Ok(result) => result.map_err(ServiceError::Serve)?,
        Err(error) => error!(%error, "HTTP server task failed"),
    }
    info!("stopped");
    Ok(())
}

/// Binds the listening socket.
pub async fn bind(address: &str) -> Result<TcpListener, ServiceError> {
    let listen_error = |source| ServiceError::Listen {
        address: address.to_string(),
        source,
    };
    let address: SocketAddr = address.parse().map_err(|_| {
        listen_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "expected an address such as 127.0.0.1:7373",
        ))
    })?;
    TcpListener::bind(address).await.map_err(listen_error)
}

/// Sleeps until the clock reads `at`, or until stopped (returns `false`).
async fn sleep_until(service: &Service, at: Millis, stop: &mut watch::Receiver<bool>) -> bool {
    loop {
        let now = service.now();
        if now >= at {
            return true;
        }
        let wait = Duration::from_millis((at - now) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopped| *stopped) => return false,
            _ = service.reloaded.notified() => return true,
        }
    }
}

/// The first multiple of `interval` strictly after `now`.
fn next_multiple(now: Millis, interval: Millis) -> Millis {
    (now.div_euclid(interval) + 1) * interval
}

/// Evaluates at every tick until stopped.
async fn watcher(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    loop {
        let interval = service.lock().config.alerting.watcher_interval;
        let at = next_multiple(service.now(), interval);
        if !sleep_until(&service, at, &mut stop).await {
            return;
        }
        if service.now() < at {
            continue; // woken by a reload: the interval may have changed
        }
        let worker = service.clone();
        match tokio::task::spawn_blocking(move || worker.tick(at)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => error!(%error, tick = at, "tick failed"),
            Err(error) => error!(%error, tick = at, "tick panicked"),
        }
    }
}

/// Deletes old samples and incidents at their intervals, and once at start.
async fn janitor(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let mut next_samples = service.now();
    let mut next_incidents = service.now();
    loop {
        let now = service.now();
        let (monitoring, alerting) = service.read_config(|config| {
            (
                (
                    config.monitoring.retention_period,
                    config.monitoring.janitor_interval,
                ),
                (
                    config.alerting.retention_period,
                    config.alerting.janitor_interval,
                ),
            )
        });
        if now >= next_samples {
            let before = now.saturating_sub(monitoring.0);
            clean(&service, "samples", move |store| {
                store.delete_samples_before(before)
            })
            .await;
            next_samples = now + monitoring.1;
        }
        if now >= next_incidents {
            let before = now.saturating_sub(alerting.0);
            clean(&service, "incidents", move |store| {
                store.delete_incidents_resolved_before(before)
            })
            .await;
            next_incidents = now + alerting.1;
        }
        if !sleep_until(&service, next_samples.min(next_incidents), &mut stop).await {
            return;
        }
    }
}

/// Runs one janitor's deletion and logs what it did.
async fn clean(
    service: &Service,
    what: &'static str,
    delete: impl FnOnce(&dyn Store) -> Result<u64, StoreError> + Send + 'static,
) {
    let store = service.store.clone();
    match tokio::task::spawn_blocking(move || delete(store.as_ref())).await {
        Ok(Ok(0)) => {}
        Ok(Ok(deleted)) => info!(deleted, "old {what} deleted"),
        Ok(Err(error)) => error!(%error, "deleting old {what} failed"),
        Err(error) => error!(%error, "deleting old {what} panicked"),
    }
}

/// Resolves the data directory: `--data-dir`, else `storage.dataDir`
/// relative to the configuration file's directory, else `data` in the
/// current directory.
pub fn data_dir(flag: Option<&Path>, config: &Config, config_path: &Path) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    match &config.service.data_dir {
        Some(dir) => config_path.parent().unwrap_or(Path::new(".")).join(dir),
        None => PathBuf::from("data"),
    }
}
