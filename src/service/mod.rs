//! `alertd run`: the engine as a long-running service.
//!
//! The service is a few tasks around shared state:
//!
//! - the HTTP API ([`crate::http`]) takes samples and counters and answers
//!   queries, and serves the web pages ([`crate::pages`]): it calls this
//!   module, never the other way round;
//! - ingestion ([`ingest`]) commits samples to the [`Store`], many batches in
//!   one transaction, then hands them to the engine;
//! - the watcher ([`watcher`]) evaluates the rules at every tick (docs/engine.md, Ticks)
//!   and records the transitions durably before anything acts on them;
//! - the dispatcher ([`dispatch`]) calls the hooks from the store's outbox,
//!   so that a call survives a crash;
//! - the collector ([`collector`]) samples this node (docs/engine.md, The monitoring collector);
//! - the janitor ([`janitor`]) deletes old samples and incidents.
//!
//! The node is in parts that own their state: [`ingest`]'s `Ingest`,
//! [`watcher`]'s `Evaluation`, [`leadership`]'s `Leadership` and
//! [`dispatch`]'s `Dispatch`. Where a node alone and one in a cluster
//! differ is one strategy, [`Topology`].
//!
//! Locks are short and never held across a read: the configuration is an
//! `Arc` swapped whole on reload, the engine's lock is held only for memory
//! work, readers (pages, API) go to the store on their own connections.
//!
//! **Lock order.** A thread that holds several locks takes them in this
//! order, and takes none of them while holding a later one:
//!
//! 1. `evaluation.turn`: a tick, from its proposal to its commit, or a
//!    reload; held across store writes.
//! 2. `evaluation.compaction`: a compaction, or a reload from reading the
//!    store's sample cursor until its engine is built.
//! 3. `points.translator`: the standard senders' points, from their
//!    translation until their samples are stored ([`points`]).
//! 4. `ingest.commit`: the one caller that commits a group of batches;
//!    held across the store write. A reload holds it only to read the
//!    cursor and, at the end, to add the samples committed meanwhile and
//!    swap the engine: pushes go on while it rebuilds.
//! 5. `evaluation.engine`: memory work only (taken before `ingest.commit`
//!    is released, hand over hand, so that groups enter the engine in the
//!    order they were committed).
//!
//! The others (`ingest.group`, `points.families`, `scrapes.statuses`,
//! `evaluation.rebuilding`, `leadership.lease`,
//! `leadership.tail`, `leadership.cluster`, the configuration) guard memory
//! only, are held for a few instructions, and no other lock is taken while
//! one of them is held.

mod collector;
pub mod data_dir;
mod dispatch;
mod grouping;
mod identity;
mod ingest;
mod janitor;
mod leadership;
mod metrics;
mod points;
mod published;
mod reminders;
mod scrape;
mod silencing;
mod topology;
mod watcher;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{Config, ConfigError, Rule};
use crate::duration::{HumanDuration, Millis};
use crate::engine::{Engine, PairStatus};
use crate::incident::UlidIds;
use crate::notify::hooks::HOOK_DIR;
use crate::store::{Observed, SampleCursor, Store, StoreError};

pub use collector::{CounterOverflow, Counters, counter_fields};
pub use data_dir::{DataDirError, DataDirLock, data_dir};
pub use ingest::{HostLimit, HostLimitError};
pub use leadership::{ClockCheck, ClusterRead};
pub use metrics::Metrics;
pub use points::{PointsError, Taken, Via};
pub use scrape::TargetStatus;
pub use silencing::{NotAcknowledged, Refused};
pub use topology::Topology;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
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
    /// How the other nodes of a cluster reach this one
    /// (`http://10.0.0.5:7373`), if they can: `server.publicUrl`, or the
    /// address it listens on unless that is every interface.
    pub url: Option<String>,
}

/// The state shared by the service's tasks.
pub struct Service {
    options: Options,
    clock: Arc<dyn Clock>,
    /// The store, its failures noted for [`Service::store_failure`].
    observed: Arc<Observed>,
    /// The clock when the service was built: the first tick is the next
    /// multiple of the interval after it.
    built_at: Millis,
    store: Arc<dyn Store>,
    /// The running configuration, replaced whole by a reload.
    config: RwLock<Arc<Config>>,
    /// Alone or in a cluster: what differs between the two.
    topology: Topology,
    /// The engine and what keeps it in step with the store ([`watcher`]).
    evaluation: watcher::Evaluation,
    /// Samples and counters on their way in ([`ingest`]).
    ingest: ingest::Ingest,
    /// Points from standard senders on their way in ([`points`]).
    points: points::Points,
    /// How this node's scrapes went ([`scrape`]).
    scrapes: scrape::Scrapes,
    /// The lease and the cluster as seen from here ([`leadership`]).
    leadership: leadership::Leadership,
    /// Hook and target calls from the outbox ([`dispatch`]).
    dispatch: dispatch::Dispatch,
    /// Wrong tokens (sign-ins and API bearer tokens), per client address.
    token_guesses: crate::auth::TokenThrottle,
    metrics: Metrics,
    /// Bounds the pages and stats queries that run at once, so that they
    /// leave a core to ingestion and ticks (see [`Service::heavy_read`]).
    heavy_reads: Arc<tokio::sync::Semaphore>,
    /// Woken when the configuration changed, so that loops re-read intervals.
    reloaded: Notify,
    /// The files the service writes, checked every second ([`data_dir`]).
    files: Mutex<data_dir::Files>,
    /// The cluster's identity as this node knows it ([`identity`]).
    known: identity::Known,
}

/// The engine and what names its incidents.
struct Evaluator {
    engine: Engine,
    ids: UlidIds,
}

/// The state of every rule on every host the engine holds, as of its last
/// evaluation: what the rules page and `/api/v1/rules` show.
pub struct RuleStates {
    /// The engine's rules, in configuration order.
    pub rules: Vec<Rule>,
    /// The last evaluated tick.
    pub evaluated: Option<Millis>,
    /// Per host, in name order: one status per rule, in rule order.
    pub hosts: Vec<(String, Vec<PairStatus>)>,
}

/// Locks a mutex whose holder may have panicked. Every lock here guards
/// state that stays consistent with the store up to its last commit, so a
/// poisoned lock is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let topology = Topology::of(store.as_ref());
        let observed = Arc::new(Observed::new(store));
        let store: Arc<dyn Store> = observed.clone();
        let store_files = match config.storage.backend {
            crate::config::Backend::Sqlite => {
                let file = options.data_dir.join(crate::store::SQLITE_FILE_NAME);
                let wal = options
                    .data_dir
                    .join(format!("{}-wal", crate::store::SQLITE_FILE_NAME));
                data_dir::Watched::files(&[file, wal])
            }
            crate::config::Backend::Redis { .. } => Vec::new(),
        };
        // In a cluster the engine is built when the node takes the lease,
        // from the store as it is then.
        let (engine, orphans) = if topology.builds_engine_at_start() {
            watcher::rebuild(&config, store.as_ref(), now, SampleCursor::MAX, Some(now))?
        } else {
            (Engine::from_config(&config), Vec::new())
        };
        let service = Arc::new(Service {
            options,
            clock,
            observed,
            built_at: now,
            store,
            config: RwLock::new(Arc::new(config)),
            topology,
            evaluation: watcher::Evaluation::new(Evaluator {
                engine,
                ids: UlidIds,
            }),
            ingest: ingest::Ingest::default(),
            points: points::Points::default(),
            scrapes: scrape::Scrapes::default(),
            leadership: leadership::Leadership::default(),
            dispatch: dispatch::Dispatch::default(),
            token_guesses: crate::auth::TokenThrottle::default(),
            metrics: Metrics::default(),
            heavy_reads: Arc::new(tokio::sync::Semaphore::new(heavy_read_slots())),
            reloaded: Notify::new(),
            files: Mutex::new(data_dir::Files::new(store_files)),
            known: identity::Known::default(),
        });
        if !topology.builds_engine_at_start() {
            // A store that cannot be reached now is tried again by the
            // leadership task: the node starts all the same.
            if let Err(error) = service.try_lead() {
                warn!(%error, "cannot take the lease now: trying again in the background");
            }
        } else if service.try_lead()? {
            service.resolve_orphans(orphans, now)?;
        } else {
            warn!("another node holds the store's lease: waiting for it to run out");
        }
        info!(
            hosts = service.engine().engine.host_names().count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "state rebuilt from the store"
        );
        Ok(service)
    }

    fn engine(&self) -> MutexGuard<'_, Evaluator> {
        lock(&self.evaluation.engine)
    }

    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn counters(&self) -> &Counters {
        &self.ingest.counters
    }

    pub fn host_name(&self) -> &str {
        &self.options.host_name
    }

    /// What the store last failed with, within the last minute: the service
    /// is then not healthy, even if the store answers a simple query.
    pub fn store_failure(&self) -> Option<String> {
        self.observed.failed_within(Duration::from_secs(60))
    }

    /// What makes this node unhealthy beyond a failing store (`/healthz`
    /// answers 503 with the first): a loss of the shared store not yet
    /// acknowledged, its files removed, its damage or unsafe settings.
    pub fn problems(&self) -> Vec<String> {
        let condition = self.store.condition();
        [
            self.loss_warning(),
            self.file_problem(),
            condition.damage,
            condition.unsafe_setting,
            self.clock_problem(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// What an operator must know, whatever page they look at: the
    /// [problems](Service::problems), and a shared store past 80 % of its
    /// memory.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.problems();
        let condition = self.store.condition();
        warnings.extend(condition.unverified);
        if let Some((used, max)) = condition.memory
            && max > 0
            && used.saturating_mul(10) > max.saturating_mul(8)
        {
            warnings.push(format!(
                "Redis uses {} % of its maxmemory ({used} of {max} bytes): when it is full, \
                 samples are refused (503) until memory is freed or maxmemory raised",
                used.saturating_mul(100) / max
            ));
        }
        warnings
    }

    /// Wrong tokens (sign-ins and API bearer tokens), per client address.
    pub(crate) fn token_throttle(&self) -> &crate::auth::TokenThrottle {
        &self.token_guesses
    }

    /// The bearer token the API wants, if any.
    pub fn token(&self) -> Option<&str> {
        self.options.token.as_deref()
    }

    /// The running configuration: a shared handle, cheap to take, that a
    /// reload replaces without disturbing those who hold the old one.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads the running configuration without copying it.
    pub fn read_config<T>(&self, read: impl FnOnce(&Config) -> T) -> T {
        read(&self.config())
    }

    /// The hooks directory under the data directory.
    pub fn hook_dir(&self) -> PathBuf {
        self.options.data_dir.join(HOOK_DIR)
    }

    /// Every rule's state on every host, as of the last evaluation: this
    /// node's, or in a cluster the leader's (as it last published them).
    /// Blocking in a cluster.
    pub fn rule_states(&self) -> RuleStates {
        if self.topology.others_may_lead() && !self.is_leading() {
            return self.published_states();
        }
        self.engine_states()
    }

    /// Every rule's state on every host as this node's engine holds it.
    fn engine_states(&self) -> RuleStates {
        let evaluator = self.engine();
        let engine = &evaluator.engine;
        let mut hosts: Vec<&str> = engine.host_names().collect();
        hosts.sort_unstable();
        RuleStates {
            rules: engine.rules().cloned().collect(),
            evaluated: engine.last_tick(),
            hosts: hosts
                .into_iter()
                .filter_map(|host| Some((host.to_string(), engine.host_status(host)?)))
                .collect(),
        }
    }

    /// The service's figures in the Prometheus text format (`GET /metrics`).
    pub fn prometheus_text(&self) -> String {
        let (hosts, open_incidents, by_severity) = {
            let evaluator = self.engine();
            (
                evaluator.engine.host_names().count(),
                evaluator.engine.open_incidents(),
                evaluator.engine.open_incidents_by_severity(),
            )
        };
        self.metrics.render(&metrics::Gauges {
            rules: self.config().alerting.rules.len(),
            hosts,
            open_incidents,
            open_by_severity: by_severity,
            store_memory: self.store.condition().memory,
        })
    }

    /// Waits for a turn to run a read that takes a core for a while (a page,
    /// a stats query over many samples). Such reads run at most one fewer at
    /// once than the machine has cores, so that a burst of them cannot
    /// starve ingestion and ticks of CPU; the others wait their turn without
    /// holding a thread. The turn lasts as long as the permit is held.
    pub async fn heavy_read(&self) -> tokio::sync::OwnedSemaphorePermit {
        // The semaphore is never closed.
        self.heavy_reads
            .clone()
            .acquire_owned()
            .await
            .expect("the heavy-read semaphore is never closed")
    }

    /// Waits until the clock reads `at` (`Woke::Time`), a reload happens
    /// (`Woke::Reload`: intervals may have changed) or the service stops.
    async fn wait_until(&self, at: Millis, stop: &mut watch::Receiver<bool>) -> Woke {
        tokio::select! {
            _ = self.clock.sleep_until(at) => Woke::Time,
            _ = stop.wait_for(|stopped| *stopped) => Woke::Stop,
            _ = self.reloaded.notified() => Woke::Reload,
        }
    }
}

/// A failure that repeats while it lasts (a store that stays unreachable):
/// logged when it starts, then once a minute with how many there were, so
/// that an outage does not flood the log.
#[derive(Debug, Default)]
struct Repeated {
    since: Option<Instant>,
    logged: Option<Instant>,
    /// Failures since the last line logged.
    unsaid: u64,
    total: u64,
}

/// How often a lasting failure is logged again.
const REPEAT_EVERY: Duration = Duration::from_secs(60);

impl Repeated {
    /// Counts a failure; `Some(failures not logged since the last line)`
    /// when this one is to be logged.
    fn failed(&mut self) -> Option<u64> {
        self.since.get_or_insert_with(Instant::now);
        self.total += 1;
        if self.logged.is_some_and(|at| at.elapsed() < REPEAT_EVERY) {
            self.unsaid += 1;
            return None;
        }
        self.logged = Some(Instant::now());
        Some(std::mem::take(&mut self.unsaid))
    }

    /// The end of a failure: how many there were and how long it lasted.
    fn recovered(&mut self) -> Option<(u64, Duration)> {
        let since = self.since.take()?;
        let total = self.total;
        *self = Repeated::default();
        Some((total, since.elapsed()))
    }
}

/// Why [`Service::wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    Time,
    Reload,
    Stop,
}

/// Runs the service until `shutdown` resolves: ticks, dispatches hooks,
/// collects, cleans, and runs the server that `serve` makes (the HTTP
/// server of [`crate::http::serve`], given a receiver that turns true when it
/// must stop). On shutdown, finishes the current tick and the running hook
/// call, gives the server [`SHUTDOWN_GRACE`] to finish its requests, then
/// returns.
pub async fn run<F>(
    service: Arc<Service>,
    serve: impl FnOnce(watch::Receiver<bool>) -> F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop) = watch::channel(false);
    let config = service.config();
    info!(
        data_dir = %service.options.data_dir.display(),
        host = service.host_name(),
        rules = config.alerting.rules.len(),
        alerting = config.alerting.enabled,
        watcher_interval = %HumanDuration(config.alerting.watcher_interval),
        monitoring = config.monitoring.enabled,
        "alertd running"
    );
    service.report_hooks();
    let tasks = vec![
        tokio::spawn(watcher::watcher(service.clone(), stop.clone())),
        tokio::spawn(dispatch::dispatcher(service.clone(), stop.clone())),
        tokio::spawn(collector::collector(service.clone(), stop.clone())),
        tokio::spawn(scrape::scraper(service.clone(), stop.clone())),
        tokio::spawn(janitor::janitor(service.clone(), stop.clone())),
        tokio::spawn(reminders::reminders(service.clone(), stop.clone())),
        tokio::spawn(leadership::leadership(service.clone(), stop.clone())),
        tokio::spawn(data_dir::watch_files(service.clone(), stop.clone())),
    ];
    let server = tokio::spawn(serve(stop));
    shutdown.await;
    info!("shutting down: finishing the current tick and hook calls");
    let drained_by = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    match tokio::time::timeout_at(drained_by, server).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => error!(%error, "HTTP server task failed"),
        Err(_) => warn!(
            grace = ?SHUTDOWN_GRACE,
            "requests still running after the grace period: stopping without them"
        ),
    }
    info!("stopped");
}

/// How long requests in flight may take to finish once the service is told
/// to stop; a stop takes at most this, plus the running tick and hook call.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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

/// How many heavy reads may run at once: one fewer than the cores, at least one.
fn heavy_read_slots() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_sub(1)
        .max(1)
}

/// The first multiple of `interval` strictly after `now`.
fn next_multiple(now: Millis, interval: Millis) -> Millis {
    (now.div_euclid(interval) + 1) * interval
}

#[cfg(test)]
mod repeated_tests {
    use super::Repeated;

    #[test]
    fn a_lasting_failure_is_said_once_then_counted() {
        let mut failing = Repeated::default();
        assert_eq!(failing.recovered(), None, "nothing failed");
        assert_eq!(failing.failed(), Some(0), "the first is said");
        assert_eq!(failing.failed(), None);
        assert_eq!(failing.failed(), None);
        let (failures, _) = failing.recovered().unwrap();
        assert_eq!(failures, 3);
        assert_eq!(failing.recovered(), None);
        assert_eq!(failing.failed(), Some(0), "a new outage is said again");
    }
}
