//! The shared store: one Redis that every node of a cluster reads and
//! writes, so that the nodes act as one alerting service.
//!
//! Every key of a cluster starts with `{NAME}:` (`storage.cluster`, `alertd`
//! by default): the braces make it the keys' hash tag, so that one cluster's
//! keys live in one slot of a Redis Cluster and its scripts
//! ([`scripts`]) can touch them together. The keys:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `seq` | string | the last sample sequence number given out |
//! | `batch`, `batch_meta` | hashes | per appended batch (by its first sequence number): its samples in the batch format, and `last count min_ts max_ts` |
//! | `by_seq`, `by_max`, `by_min` | sorted sets | the batches by first sequence number, latest and earliest timestamp |
//! | `latest`, `latest_ts` | hashes | per host: its latest sample's fields and time |
//! | `lease`, `lease_token` | string, counter | `token node` of the leading node, expiring; the last token given |
//! | `incident` | hash | per incident id: its record (JSON) |
//! | `open`, `last_end` | hashes | per (rule, host): the open incident's id; the last resolution |
//! | `pair_states` | hash | per (rule, host) of a rule with options: `PENDING CLEAR`, its `pendingSince` and `clearSince` (empty for none) |
//! | `resolved` | sorted set | resolved incident ids by end time |
//! | `outbox*`, `claims`, `pending` | hashes, sorted set, counter | deliveries waiting for hooks (`outbox_dead`: those given up on; `outbox_held`: those held back by silences, and by which), their claims, per incident how many wait |
//! | `silences` | hash | per silence id: the silence (JSON) |
//! | `acks` | hash | per incident id: its acknowledgement (JSON) |
//! | `reminders` | hash | per incident and target (`id\0target`): when its next reminder is due |
//! | `group_sent` | hash | per grouped target and group (`target\0key`): when its last message was sent |
//! | `calls` | hash | per incident: its hook calls (JSON lines) |
//! | `block`, `block_meta`, `block_by_start` | hashes, sorted set | per host and period (`start\0host`): the block, `min_ts max_ts count max_seq`; the blocks by period |
//! | `rollup:STEP`, `rollup_by_start:STEP` | hash, sorted set | per step (in ms: 60000, 600000, 3600000), host and row: the points; the rows by start; host `""` aggregates every host's |
//! | `all_hosts_rolled_up` | string | set once the rows of every host together were made for the rows rolled up before they were kept |
//! | `hour_rolled_up` | string | set once the hour rows were made from the ten-minute rows rolled up before they were kept |
//! | `nodes` | hash | per node: its last report (JSON) |
//! | `identity` | string | `ID CREATED`: the cluster's identity, written once by the first node (see `Coordination::identity`) |
//! | `identity_lost`, `lost_open` | string, hash | a loss of Redis' data found by a node, until acknowledged (JSON); per incident id: the incidents open at the loss, until resolved |
//! | `sessions` | hash | per sign-in session of the pages (a SHA-256 of its id): when it expires |
//! | `once:KEY` | string, expiring | a push's idempotency key (`Idempotency-Key`): the fingerprint of what came with it, for `server.idempotencyWindow` |
//! | `states` | string | every pair's state after the leader's last tick, for the other nodes' pages |
//! | `last_tick` | string | `TICK TOKEN`: the last tick recorded (with transitions or published states) and the token of the lease it was recorded under |
//! | `compacted_seq`, `rolled_up_until`, `compacting` | strings | the highest sequence number compacted; the time rolled up until; the lock of the one compaction or deletion running |
//!
//! The trait is synchronous and the `redis` client is asynchronous: the
//! store runs the client on a small runtime of its own and waits for each
//! answer, at most [`CALL_TIMEOUT`]. A Redis that cannot be reached makes
//! every call fail with [`StoreError::Unavailable`]; the connection manager
//! reconnects when it is back.
//!
//! Incidents, the outbox and hook calls are in [`incidents`]. Samples are
//! kept as in the embedded store ([`samples`]): recent ones in
//! their appended batches, older ones folded into blocks and rollups by the
//! leader's janitor, in the same formats.

mod incidents;
mod samples;
mod scripts;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    AsyncCommands, FromRedisValue, RedisError, RedisResult, Script, ScriptInvocation, Value,
};

use super::batch::Encoded;
use super::rollup::Step;
use super::{
    Appended, Claim, Coordination, Delivery, HookCall, HostSeen, IncidentDetail, IncidentLog,
    Incidents, Lease, LeaseHolder, NodeStatus, Once, RollupQuery, SampleCursor, SampleStore,
    Sessions, SilenceStore, StoreError, decode_metrics, encode_metrics,
};
use crate::duration::Millis;
use crate::incident::{PairRecord, Transition};
use crate::sample::Sample;
use crate::silence::Silence;
use scripts::Scripts;

/// The scripts, made once: invocations borrow them for as long as a call runs.
static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(Scripts::new);

/// What became of a batch with an idempotency key, as a script says it.
fn appended(outcome: &str) -> Result<Appended, StoreError> {
    match outcome {
        "stored" => Ok(Appended::Stored),
        "replayed" => Ok(Appended::Replayed),
        "conflict" => Ok(Appended::Conflict),
        other => Err(corrupt(&format!("appending answered {other:?}"))),
    }
}

/// What a script that records a tick answered: `ok`, `fenced`, or `stale`
/// with the last tick recorded.
fn tick_outcome(
    outcome: &[String],
    lease: &Lease,
    tick: Millis,
    what: &str,
) -> Result<(), StoreError> {
    match outcome.first().map(String::as_str) {
        Some("ok") => Ok(()),
        Some("fenced") => Err(StoreError::Fenced {
            node: lease.node.clone(),
            token: lease.token,
        }),
        Some("stale") if outcome.len() == 2 => Err(StoreError::StaleTick {
            tick,
            last: outcome[1]
                .parse()
                .map_err(|_| corrupt(&format!("the last tick {:?}", outcome[1])))?,
        }),
        _ => Err(corrupt(&format!("{what} answered {outcome:?}"))),
    }
}

/// The longest a call waits for Redis before it fails as unavailable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long what Redis said of its memory and settings stands before it is
/// read again (and at once after Redis could not be reached).
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// What Redis says of its memory (`INFO memory`, or `CONFIG GET` where
/// `INFO` is refused), or why it says nothing.
#[derive(Debug, Clone, PartialEq)]
struct Memory {
    /// Bytes used; unknown from `CONFIG GET`.
    used: Option<u64>,
    max: u64,
    policy: String,
    /// Why neither `INFO memory` nor `CONFIG GET` could be read (a user
    /// without the right to run them): then nothing is known.
    unread: Option<String>,
}

impl Memory {
    fn parse(info: &str) -> Option<Memory> {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        Some(Memory {
            used: Some(field("used_memory")?.parse().ok()?),
            max: field("maxmemory")?.parse().ok()?,
            policy: field("maxmemory_policy")?.to_string(),
            unread: None,
        })
    }

    /// From `CONFIG GET maxmemory*`'s name and value pairs.
    fn from_config(pairs: &[String]) -> Option<Memory> {
        let value = |name: &str| {
            pairs
                .chunks(2)
                .find(|pair| pair.len() == 2 && pair[0] == name)
                .map(|pair| pair[1].as_str())
        };
        Some(Memory {
            used: None,
            max: value("maxmemory")?.parse().ok()?,
            policy: value("maxmemory-policy")?.to_string(),
            unread: None,
        })
    }

    fn unknown(why: String) -> Memory {
        Memory {
            used: None,
            max: 0,
            policy: String::new(),
            unread: Some(why),
        }
    }

    /// Why Redis set up so would lose what alertd acknowledged, if it would:
    /// a memory limit with any policy but `noeviction` evicts keys when full.
    fn unsafe_setting(&self, shown: &str) -> Option<String> {
        (self.unread.is_none() && self.max != 0 && self.policy != "noeviction").then(|| {
            format!(
                "the Redis at {shown} evicts keys when it is full (maxmemory {}, \
                 maxmemory-policy {}): it would drop acknowledged samples and incidents \
                 without a word, so this node takes no sample and does not lead. Set \
                 maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, and in \
                 redis.conf), or maxmemory 0",
                self.max, self.policy
            )
        })
    }
}

const BACKEND: &str = "redis";

/// The values of several hash fields, each missing or its bytes.
type Values = Vec<Option<Vec<u8>>>;

/// The names of one cluster's keys.
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(cluster: &str) -> Keys {
        Keys {
            prefix: format!("{{{cluster}}}:"),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The Redis store of one cluster.
pub struct RedisStore {
    keys: Keys,
    /// Where Redis is, as the errors show it (no password).
    shown: String,
    connection: ConnectionManager,
    runtime: Option<tokio::runtime::Runtime>,
    /// What Redis last said of its memory, and when it was read.
    memory: std::sync::Mutex<Option<(std::time::Instant, Memory)>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may not block on an async thread.
            runtime.shutdown_background();
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

impl RedisStore {
    /// A store on the Redis at `url` for the cluster named `cluster`. Does
    /// not connect: a Redis that is down now is reached once it is up.
    pub fn open(url: &str, cluster: &str) -> Result<RedisStore, StoreError> {
        let shown = shown_url(url);
        let invalid = |error: RedisError| StoreError::Backend {
            backend: BACKEND,
            source: format!("{shown}: {error}").into(),
        };
        let client = redis::Client::open(url).map_err(invalid)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Open {
                path: shown.clone(),
                source,
            })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = {
            let _entered = runtime.enter();
            ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?
        };
        Ok(RedisStore {
            keys: Keys::new(cluster),
            shown,
            connection,
            runtime: Some(runtime),
            memory: std::sync::Mutex::new(None),
        })
    }

    /// Fails with [`StoreError::Unsafe`] while Redis is set up to evict
    /// keys; reads its settings again when they are older than
    /// [`SETTINGS_TTL`] (so also soon after a restart of Redis).
    fn check_settings(&self) -> Result<(), StoreError> {
        let known = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|(at, _)| at.elapsed() < SETTINGS_TTL)
            .map(|(_, memory)| memory);
        let memory = match known {
            Some(memory) => memory,
            None => {
                let memory = self.read_memory()?;
                let mut last = self.memory.lock().unwrap_or_else(|p| p.into_inner());
                let was = last
                    .as_ref()
                    .map(|(_, memory)| memory.unsafe_setting(&self.shown));
                let now = memory.unsafe_setting(&self.shown);
                let was_unread = last
                    .as_ref()
                    .is_some_and(|(_, memory)| memory.unread.is_some());
                match &memory.unread {
                    Some(why) if !was_unread => tracing::error!("{why}"),
                    None if was_unread => {
                        tracing::info!("Redis' eviction settings can be read again")
                    }
                    _ => {}
                }
                if was.as_ref() != Some(&now) {
                    match &now {
                        Some(problem) => tracing::error!("{problem}"),
                        None if was.is_some() => {
                            tracing::info!(policy = memory.policy, "Redis no longer evicts keys")
                        }
                        None => {}
                    }
                }
                *last = Some((std::time::Instant::now(), memory.clone()));
                memory
            }
        };
        match memory.unsafe_setting(&self.shown) {
            Some(problem) => Err(StoreError::Unsafe(problem)),
            None => Ok(()),
        }
    }

    /// Redis' memory and eviction settings: from `INFO memory`, else from
    /// `CONFIG GET` (where `INFO` is refused to alertd's user), else
    /// unknown, and said. Fails only when Redis cannot be reached.
    fn read_memory(&self) -> Result<Memory, StoreError> {
        let info = self.run(|mut c| async move {
            redis::cmd("INFO")
                .arg("memory")
                .query_async::<String>(&mut c)
                .await
        });
        let info = match info {
            Ok(info) => match Memory::parse(&info) {
                Some(memory) => return Ok(memory),
                None => "it lacks used_memory, maxmemory or maxmemory_policy".to_string(),
            },
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => error.to_string(),
        };
        let config = self.run(|mut c| async move {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory*")
                .query_async::<Vec<String>>(&mut c)
                .await
        });
        let config = match config {
            Ok(pairs) => match Memory::from_config(&pairs) {
                Some(memory) => return Ok(memory),
                None => "it lacks maxmemory or maxmemory-policy".to_string(),
            },
            Err(error) if error.is_unavailable() => return Err(error),
            Err(error) => error.to_string(),
        };
        Ok(Memory::unknown(format!(
            "alertd cannot read the eviction settings of the Redis at {} (INFO memory: {info}; \
             CONFIG GET maxmemory*: {config}), so it cannot tell whether Redis would drop \
             acknowledged samples and incidents: make sure maxmemory-policy is noeviction (or \
             maxmemory 0), and let alertd's Redis user run INFO",
            self.shown
        )))
    }

    fn key(&self, name: &str) -> String {
        self.keys.key(name)
    }

    /// Runs `work` on the store's runtime with a connection, and waits for
    /// its answer.
    fn run<T, F>(&self, work: impl FnOnce(ConnectionManager) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = RedisResult<T>> + Send + 'static,
    {
        let Some(runtime) = &self.runtime else {
            return Err(self.unavailable("the store is closed".to_string()));
        };
        let future = work(self.connection.clone());
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = tokio::time::timeout(CALL_TIMEOUT, future).await;
            let _ = answer.send(result);
        });
        match answered.recv() {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(self.error(error)),
            Ok(Err(_)) => Err(self.unavailable(format!("no answer within {CALL_TIMEOUT:?}"))),
            Err(_) => Err(self.unavailable("the call was dropped".to_string())),
        }
    }

    /// An invocation of `script` on this cluster's `keys` (named without
    /// the cluster's prefix), for arguments to be added.
    fn script(&self, script: &'static Script, keys: &[&str]) -> ScriptInvocation<'static> {
        let mut invocation = script.prepare_invoke();
        for name in keys {
            invocation.key(self.key(name));
        }
        invocation
    }

    /// Runs a script's invocation and waits for its answer.
    fn invoke<T>(&self, invocation: ScriptInvocation<'static>) -> Result<T, StoreError>
    where
        T: FromRedisValue + Send + 'static,
    {
        self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })
    }

    fn unavailable(&self, detail: String) -> StoreError {
        // Whatever Redis answers next may have restarted with other
        // settings: they are read again before the next write.
        *self.memory.lock().unwrap_or_else(|p| p.into_inner()) = None;
        StoreError::Unavailable {
            backend: BACKEND,
            detail: format!("{}: {detail}", self.shown),
        }
    }

    /// A Redis error: the server cannot be reached, or it refused the call.
    fn error(&self, error: RedisError) -> StoreError {
        if error.is_io_error()
            || error.is_connection_refusal()
            || error.is_connection_dropped()
            || error.is_timeout()
            || error.is_unrecoverable_error()
        {
            self.unavailable(error.to_string())
        } else {
            StoreError::Backend {
                backend: BACKEND,
                source: Box::new(error),
            }
        }
    }
}

/// The lease key's value for `lease`: `TOKEN NODE`.
fn lease_value(lease: &Lease) -> String {
    format!("{} {}", lease.token, lease.node)
}

/// `redis://HOST:PORT/DB` without a password.
fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl SampleStore for RedisStore {
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        let encoded = Encoded::new(samples)?;
        self.append_batches(&[(samples, &encoded)])
    }

    fn append_once(
        &self,
        batches: &[(&[Sample], &Encoded)],
        keys: &[Option<&Once>],
    ) -> Result<Vec<Appended>, StoreError> {
        if batches.iter().all(|(_, encoded)| encoded.count == 0) {
            return Ok(vec![Appended::Stored; batches.len()]);
        }
        self.check_settings()?;
        let mut names: Vec<String> = [
            "seq",
            "by_seq",
            "by_max",
            "by_min",
            "batch",
            "batch_meta",
            "latest",
            "latest_ts",
        ]
        .iter()
        .map(|name| self.key(name))
        .collect();
        let mut invocation = SCRIPTS.append.prepare_invoke();
        invocation.arg(batches.len());
        let mut fields = Vec::new();
        for (index, (samples, encoded)) in batches.iter().enumerate() {
            invocation
                .arg(encoded.count)
                .arg(encoded.min_ts)
                .arg(encoded.max_ts)
                .arg(&encoded.data[..]);
            match keys.get(index).copied().flatten() {
                Some(once) => {
                    names.push(self.key(&format!("once:{}", once.key)));
                    invocation
                        .arg(names.len())
                        .arg(&once.fingerprint)
                        .arg(once.keep.max(1));
                }
                None => {
                    invocation.arg(0).arg("").arg(0);
                }
            }
            // Each host's latest sample in the batch (a later one wins a tie).
            let mut latest: std::collections::BTreeMap<&str, &Sample> = Default::default();
            for sample in samples.iter() {
                let entry = latest.entry(&sample.host).or_insert(sample);
                if entry.ts <= sample.ts {
                    *entry = sample;
                }
            }
            invocation.arg(latest.len());
            for (host, sample) in latest {
                fields.clear();
                encode_metrics(&sample.metrics, &mut fields);
                invocation.arg(host).arg(sample.ts).arg(&fields[..]);
            }
        }
        for name in &names {
            invocation.key(name);
        }
        let outcomes: Vec<String> = self.invoke(invocation)?;
        outcomes.iter().map(|outcome| appended(outcome)).collect()
    }

    fn remember_once(&self, once: &Once) -> Result<Appended, StoreError> {
        self.check_settings()?;
        let mut invocation = SCRIPTS.once.prepare_invoke();
        invocation
            .key(self.key(&format!("once:{}", once.key)))
            .arg(&once.fingerprint)
            .arg(once.keep.max(1));
        let outcome: String = self.invoke(invocation)?;
        appended(&outcome)
    }

    fn scan_unrolled(
        &self,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.read_recent(from, to)?.into_iter().for_each(visit);
        Ok(())
    }

    fn scan_samples_before(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.read_samples(from, to, cursor, None)?
            .into_iter()
            .for_each(visit);
        Ok(())
    }

    fn scan_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.read_samples(from, to, SampleCursor::MAX, Some(host))?
            .into_iter()
            .for_each(visit);
        Ok(())
    }

    fn sample_cursor(&self) -> Result<SampleCursor, StoreError> {
        let seq = self.key("seq");
        let last: Option<i64> = self.run(move |mut c| async move { c.get(seq).await })?;
        Ok(last.unwrap_or(0) + 1)
    }

    fn samples_since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError> {
        self.since(cursor, visit)
    }

    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        let (latest, latest_ts) = (self.key("latest"), self.key("latest_ts"));
        let (fields, times): (
            std::collections::BTreeMap<String, Vec<u8>>,
            std::collections::BTreeMap<String, Millis>,
        ) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .hgetall(latest)
                .hgetall(latest_ts)
                .query_async(&mut c)
                .await
        })?;
        let mut samples = Vec::with_capacity(fields.len());
        for (host, fields) in fields {
            let Some(&ts) = times.get(&host) else {
                continue;
            };
            let metrics = crate::store::damage::or_skip(decode_metrics(&fields), || {
                format!("the latest sample of host {host:?}")
            })?;
            if let Some(metrics) = metrics {
                samples.push(Sample { host, ts, metrics });
            }
        }
        Ok(samples)
    }

    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError> {
        let latest_ts = self.key("latest_ts");
        let times: std::collections::BTreeMap<String, Millis> =
            self.run(move |mut c| async move { c.hgetall(latest_ts).await })?;
        Ok(times
            .into_iter()
            .map(|(host, last_seen)| HostSeen { host, last_seen })
            .collect())
    }

    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.delete_before(before)
    }

    fn compact_samples(
        &self,
        before: Millis,
        rollups_from: crate::store::RollupsFrom,
    ) -> Result<u64, StoreError> {
        self.compact(before, rollups_from)
    }

    fn scan_rollup_rows(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut crate::store::RowVisitor<'_>,
    ) -> Result<(), StoreError> {
        self.rollup_rows(query, visit)
    }

    fn rolled_up_until(&self) -> Result<Millis, StoreError> {
        let key = self.key("rolled_up_until");
        let until: Option<Millis> = self.run(move |mut c| async move { c.get(key).await })?;
        Ok(until.unwrap_or(Millis::MIN))
    }

    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError> {
        self.delete_points_before(step, before)
    }
}

impl IncidentLog for RedisStore {
    fn record_tick(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
        changes: &[crate::incident::PairChange],
    ) -> Result<(), StoreError> {
        super::check_times(transitions)?;
        incidents::record_tick(self, lease, transitions, targets, changes)
    }

    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError> {
        incidents::pairs(self)
    }

    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError> {
        incidents::incidents(self, from, to)
    }

    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        incidents::incident(self, id)
    }

    fn claim_deliveries(
        &self,
        now: Millis,
        claim: &Claim<'_>,
        per_target: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        incidents::claim_deliveries(self, now, claim, per_target)
    }

    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError> {
        incidents::next_delivery_time(self)
    }

    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        incidents::finish_delivery(self, delivery, call, retry_at)
    }

    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError> {
        incidents::bury_delivery(self, delivery, call)
    }

    fn hold_delivery(&self, delivery: i64, until: Millis, by: &str) -> Result<(), StoreError> {
        incidents::hold_delivery(self, delivery, until, by)
    }

    fn release_held(&self, now: Millis) -> Result<u64, StoreError> {
        incidents::release_held(self, now)
    }

    fn reminder_times(
        &self,
    ) -> Result<std::collections::BTreeMap<(String, String), Millis>, StoreError> {
        incidents::reminder_times(self)
    }

    fn forget_reminders(&self, pairs: &[(String, String)]) -> Result<(), StoreError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let reminders = self.key("reminders");
        let fields: Vec<String> = pairs
            .iter()
            .map(|(id, target)| format!("{id}\0{target}"))
            .collect();
        self.run(move |mut c| async move { c.hdel::<_, _, ()>(reminders, fields).await })
    }

    fn enqueue_reminder(
        &self,
        incident: &crate::incident::Incident,
        target: &str,
        now: Millis,
        next: Millis,
    ) -> Result<(), StoreError> {
        incidents::enqueue_reminder(self, incident, target, now, next)
    }

    fn acknowledge(
        &self,
        id: &str,
        ack: &crate::store::Ack,
        targets: &[String],
    ) -> Result<Option<crate::store::Ack>, StoreError> {
        incidents::acknowledge(self, id, ack, targets)
    }

    fn acknowledgements(
        &self,
        ids: &[&str],
    ) -> Result<std::collections::BTreeMap<String, crate::store::Ack>, StoreError> {
        incidents::acknowledgements(self, ids)
    }

    fn postpone_delivery(&self, delivery: i64, until: Millis) -> Result<(), StoreError> {
        incidents::hold_delivery(self, delivery, until, "")
    }

    fn claim_target(
        &self,
        target: &str,
        now: Millis,
        claim: &Claim<'_>,
    ) -> Result<Vec<Delivery>, StoreError> {
        incidents::claim_target(self, target, now, claim)
    }

    fn group_sent(&self, target: &str, key: &str) -> Result<Option<Millis>, StoreError> {
        incidents::group_sent(self, target, key)
    }

    fn set_group_sent(&self, target: &str, key: &str, at: Millis) -> Result<(), StoreError> {
        incidents::set_group_sent(self, target, key, at)
    }

    fn delete_groups_sent_before(&self, before: Millis) -> Result<u64, StoreError> {
        incidents::delete_groups_sent_before(self, before)
    }

    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError> {
        incidents::retry_dead(self, id, now)
    }

    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        incidents::pending_deliveries(self)
    }

    fn undelivered(
        &self,
    ) -> Result<std::collections::BTreeMap<String, super::Undelivered>, StoreError> {
        incidents::undelivered(self)
    }

    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError> {
        incidents::delete_incidents_resolved_before(self, before)
    }
}

impl Coordination for RedisStore {
    fn shared(&self) -> bool {
        true
    }

    fn condition(&self) -> super::Condition {
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|(_, memory)| memory);
        super::Condition {
            damage: None,
            unsafe_setting: memory
                .as_ref()
                .and_then(|memory| memory.unsafe_setting(&self.shown)),
            unverified: memory.as_ref().and_then(|memory| memory.unread.clone()),
            memory: memory.and_then(|memory| Some((memory.used?, memory.max))),
        }
    }

    fn identity(&self, new: &super::Identity) -> Result<super::ClusterIdentity, StoreError> {
        let mut invocation = self.script(
            &SCRIPTS.identity,
            &["identity", "identity_lost", "lost_open"],
        );
        invocation.arg(new.to_line());
        let (current, loss, open): (String, String, Vec<Vec<u8>>) = self.invoke(invocation)?;
        let current = super::Identity::from_line(&current)
            .ok_or_else(|| corrupt(&format!("the cluster's identity {current:?}")))?;
        let loss = match loss.as_str() {
            "" => None,
            json => Some(
                serde_json::from_str(json)
                    .map_err(|error| corrupt(&format!("the recorded loss: {error}")))?,
            ),
        };
        let lost_open = open
            .iter()
            .map(|record| incidents::incident_from(record))
            .collect::<Result<_, _>>()?;
        Ok(super::ClusterIdentity {
            current,
            loss,
            lost_open,
        })
    }

    fn record_loss(
        &self,
        loss: &super::Loss,
        open: &[crate::incident::Incident],
    ) -> Result<(), StoreError> {
        let (lost, lost_open) = (self.key("identity_lost"), self.key("lost_open"));
        // Serializing plain fields cannot fail.
        let loss = serde_json::to_string(loss).unwrap_or_default();
        let open: Vec<(String, String)> = open
            .iter()
            .map(|incident| (incident.id.clone(), incidents::incident_json(incident)))
            .collect();
        self.run(move |mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic().set_nx(&lost, loss).ignore();
            if !open.is_empty() {
                pipe.hset_multiple(&lost_open, &open).ignore();
            }
            pipe.query_async::<()>(&mut c).await
        })
    }

    fn forget_lost(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (lost_open, ids) = (self.key("lost_open"), ids.to_vec());
        self.run(move |mut c| async move { c.hdel::<_, _, ()>(lost_open, ids).await })
    }

    fn acknowledge_loss(&self) -> Result<Option<super::Loss>, StoreError> {
        let lost = self.key("identity_lost");
        let (loss,): (Option<String>,) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .get(&lost)
                .del(&lost)
                .ignore()
                .query_async(&mut c)
                .await
        })?;
        loss.map(|json| {
            serde_json::from_str(&json)
                .map_err(|error| corrupt(&format!("the recorded loss: {error}")))
        })
        .transpose()
    }

    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError> {
        self.check_settings()?;
        let mut invocation = self.script(&SCRIPTS.acquire, &["lease", "lease_token"]);
        invocation.arg(node).arg(ttl.max(1));
        let token: Option<u64> = self.invoke(invocation)?;
        Ok(token.map(|token| Lease {
            node: node.to_string(),
            token,
        }))
    }

    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError> {
        self.check_settings()?;
        let mut invocation = self.script(&SCRIPTS.renew, &["lease"]);
        invocation.arg(lease_value(lease)).arg(ttl.max(1));
        let renewed: i64 = self.invoke(invocation)?;
        Ok(renewed == 1)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut invocation = self.script(&SCRIPTS.release, &["lease"]);
        invocation.arg(lease_value(lease));
        self.invoke::<Value>(invocation)?;
        Ok(())
    }

    fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError> {
        let lease = self.key("lease");
        let (held, left): (Option<String>, i64) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .get(&lease)
                .pttl(&lease)
                .query_async(&mut c)
                .await
        })?;
        let Some(held) = held else {
            return Ok(None);
        };
        let (token, node) = held
            .split_once(' ')
            .ok_or_else(|| corrupt(&format!("the lease {held:?}")))?;
        Ok(Some(LeaseHolder {
            node: node.to_string(),
            token: token
                .parse()
                .map_err(|_| corrupt(&format!("the lease {held:?}")))?,
            expires_in: left.max(0),
        }))
    }

    fn publish_states(&self, lease: &Lease, tick: Millis, states: &[u8]) -> Result<(), StoreError> {
        let mut invocation = self.script(&SCRIPTS.publish, &["lease", "states", "last_tick"]);
        invocation.arg(lease_value(lease)).arg(states).arg(tick);
        let outcome: Vec<String> = self.invoke(invocation)?;
        tick_outcome(&outcome, lease, tick, "publishing")
    }

    fn last_tick(&self) -> Result<Option<Millis>, StoreError> {
        let key = self.key("last_tick");
        let value: Option<String> = self.run(move |mut c| async move { c.get(key).await })?;
        value
            .map(|value| {
                value
                    .split_once(' ')
                    .and_then(|(tick, _)| tick.parse().ok())
                    .ok_or_else(|| corrupt(&format!("the last tick {value:?}")))
            })
            .transpose()
    }

    fn store_clock(&self) -> Result<Option<Millis>, StoreError> {
        let (seconds, micros): (i64, i64) =
            self.run(move |mut c| async move { redis::cmd("TIME").query_async(&mut c).await })?;
        Ok(Some(seconds * 1000 + micros / 1000))
    }

    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("states");
        self.run(move |mut c| async move { c.get(key).await })
    }

    fn heartbeat(&self, status: &NodeStatus) -> Result<(), StoreError> {
        let json = serde_json::to_string(status)
            .map_err(|error| corrupt(&format!("a node's status: {error}")))?;
        let (nodes, node) = (self.key("nodes"), status.node.clone());
        self.run(move |mut c| async move { c.hset::<_, _, _, ()>(nodes, node, json).await })
    }

    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        let nodes = self.key("nodes");
        let found: std::collections::BTreeMap<String, String> =
            self.run(move |mut c| async move { c.hgetall(nodes).await })?;
        found
            .values()
            .map(|json| {
                serde_json::from_str(json)
                    .map_err(|error| corrupt(&format!("a node's status: {error}")))
            })
            .collect()
    }

    fn forget_node(&self, name: &str) -> Result<(), StoreError> {
        let (nodes, node) = (self.key("nodes"), name.to_string());
        self.run(move |mut c| async move { c.hdel::<_, _, ()>(nodes, node).await })
    }
}

impl SilenceStore for RedisStore {
    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let data = serde_json::to_string(silence)
            .map_err(|error| corrupt(&format!("a silence: {error}")))?;
        let (silences, id) = (self.key("silences"), silence.id.clone());
        self.run(move |mut c| async move { c.hset::<_, _, _, ()>(silences, id, data).await })
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let silences = self.key("silences");
        let all: std::collections::BTreeMap<String, String> =
            self.run(move |mut c| async move { c.hgetall(silences).await })?;
        Ok(all
            .into_iter()
            .filter_map(|(id, data)| match serde_json::from_str(&data) {
                Ok(silence) => Some(silence),
                Err(error) => {
                    // Silences nothing: paging is better than holding
                    // every delivery back.
                    tracing::error!(id, %error, "a stored silence cannot be read");
                    None
                }
            })
            .collect())
    }

    fn delete_silences_ended_before(&self, before: Millis) -> Result<u64, StoreError> {
        let ended: Vec<String> = self
            .silences()?
            .into_iter()
            .filter(|silence| silence.ends_at < before)
            .map(|silence| silence.id)
            .collect();
        if ended.is_empty() {
            return Ok(0);
        }
        let silences = self.key("silences");
        self.run(move |mut c| async move { c.hdel(silences, ended).await })
    }
}

impl Sessions for RedisStore {
    fn put_session(&self, key: &str, expires: Millis) -> Result<(), StoreError> {
        let (sessions, key) = (self.key("sessions"), key.to_string());
        self.run(move |mut c| async move { c.hset::<_, _, _, ()>(sessions, key, expires).await })
    }

    fn session_expires(&self, key: &str) -> Result<Option<Millis>, StoreError> {
        let (sessions, key) = (self.key("sessions"), key.to_string());
        self.run(move |mut c| async move { c.hget(sessions, key).await })
    }

    fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        let (sessions, key) = (self.key("sessions"), key.to_string());
        self.run(move |mut c| async move { c.hdel::<_, _, ()>(sessions, key).await })
    }

    fn delete_sessions_expired(&self, now: Millis) -> Result<u64, StoreError> {
        let sessions = self.key("sessions");
        let all: std::collections::BTreeMap<String, Millis> = {
            let sessions = sessions.clone();
            self.run(move |mut c| async move { c.hgetall(sessions).await })?
        };
        let expired: Vec<String> = all
            .into_iter()
            .filter(|(_, expires)| *expires < now)
            .map(|(key, _)| key)
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let count = expired.len() as u64;
        self.run(move |mut c| async move { c.hdel::<_, _, ()>(sessions, expired).await })?;
        Ok(count)
    }
}
