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
//! | `resolved` | sorted set | resolved incident ids by end time |
//! | `outbox*`, `claims`, `pending` | hashes, sorted set, counter | deliveries waiting for hooks (`outbox_dead`: those given up on), their claims, per incident how many wait |
//! | `calls` | hash | per incident: its hook calls (JSON lines) |
//! | `block`, `block_meta`, `block_by_start` | hashes, sorted set | per host and period (`start\0host`): the block, `min_ts max_ts count max_seq`; the blocks by period |
//! | `rollup:STEP`, `rollup_by_start:STEP` | hash, sorted set | per step (in ms: 60000, 600000), host and row: the points; the rows by start |
//! | `nodes` | hash | per node: its last report (JSON) |
//! | `sessions` | hash | per sign-in session of the pages (a SHA-256 of its id): when it expires |
//! | `states` | string | every pair's state after the leader's last tick, for the other nodes' pages |
//! | `compacted_seq`, `rolled_up_until`, `compacting` | strings | the highest sequence number compacted; the time rolled up until; the lock of the one compaction or deletion running |
//!
//! The trait is synchronous and the `redis` client is asynchronous: the
//! store runs the client on a small runtime of its own and waits for each
//! answer, at most [`CALL_TIMEOUT`]. A Redis that cannot be reached makes
//! every call fail with [`StoreError::Unavailable`]; the connection manager
//! reconnects when it is back.
//!
//! Samples are kept as in the embedded store ([`samples`]): recent ones in
//! their appended batches, older ones folded into blocks and rollups by the
//! leader's janitor, in the same formats.

mod samples;
mod scripts;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RedisResult, Value};
use serde::{Deserialize, Serialize};

use super::batch::Encoded;
use super::rollup::{Point, Step};
use super::{
    Claim, Delivery, HookCall, HostSeen, IncidentDetail, Incidents, Lease, LeaseHolder, NodeStatus,
    RollupQuery, SampleCursor, Store, StoreError, decode_metrics, encode_metrics,
};
use crate::duration::Millis;
use crate::incident::{Incident, PairRecord, Transition, TransitionKind};
use crate::sample::Sample;
use scripts::Scripts;

/// The scripts, made once: invocations borrow them for as long as a call runs.
static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(Scripts::new);

/// The longest a call waits for Redis before it fails as unavailable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

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
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may not block on an async thread.
            runtime.shutdown_background();
        }
    }
}

/// A stored incident: its fields, the trigger value exactly.
#[derive(Serialize, Deserialize)]
struct IncidentRecord {
    id: String,
    rule: String,
    host: String,
    start: Millis,
    end: Option<Millis>,
    value: f64,
}

impl IncidentRecord {
    fn of(incident: &Incident) -> IncidentRecord {
        IncidentRecord {
            id: incident.id.clone(),
            rule: incident.rule_name.to_string(),
            host: incident.host_name.to_string(),
            start: incident.start_time,
            end: incident.end_time,
            value: incident.trigger_value,
        }
    }

    fn into_incident(self) -> Incident {
        Incident {
            id: self.id,
            rule_name: self.rule.into(),
            host_name: self.host.into(),
            start_time: self.start,
            end_time: self.end,
            trigger_value: self.value,
        }
    }
}

/// A stored hook call.
#[derive(Serialize, Deserialize)]
struct CallRecord {
    incident: String,
    target: String,
    kind: String,
    attempt: u32,
    started: Millis,
    duration_ms: u64,
    outcome: String,
    succeeded: bool,
    stdout: String,
    stderr: String,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("redis: {what}"))
}

fn kind_from(text: &str) -> Result<TransitionKind, StoreError> {
    match text {
        "opened" => Ok(TransitionKind::Opened),
        "resolved" => Ok(TransitionKind::Resolved),
        other => Err(corrupt(&format!("unknown transition kind {other:?}"))),
    }
}

fn incident_from(json: &[u8]) -> Result<Incident, StoreError> {
    serde_json::from_slice::<IncidentRecord>(json)
        .map(IncidentRecord::into_incident)
        .map_err(|error| corrupt(&format!("an incident record: {error}")))
}

fn incident_json(incident: &Incident) -> String {
    // Serializing plain fields cannot fail.
    serde_json::to_string(&IncidentRecord::of(incident)).unwrap_or_default()
}

/// `rule\0host`: a pair's field in the `open` and `last_end` hashes.
fn pair_key(rule: &str, host: &str) -> String {
    format!("{rule}\0{host}")
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
        })
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

    fn unavailable(&self, detail: String) -> StoreError {
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

/// `redis://HOST:PORT/DB` without a password.
fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

impl Store for RedisStore {
    fn shared(&self) -> bool {
        true
    }

    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        let encoded = Encoded::new(samples);
        self.append_batches(&[(samples, &encoded)])
    }

    fn append_batches(&self, batches: &[(&[Sample], &Encoded)]) -> Result<(), StoreError> {
        let batches: Vec<_> = batches
            .iter()
            .filter(|(_, encoded)| encoded.count > 0)
            .collect();
        if batches.is_empty() {
            return Ok(());
        }
        let mut invocation = SCRIPTS.append.prepare_invoke();
        for name in [
            "seq",
            "by_seq",
            "by_max",
            "by_min",
            "batch",
            "batch_meta",
            "latest",
            "latest_ts",
        ] {
            invocation.key(self.key(name));
        }
        invocation.arg(batches.len());
        // Each host's latest sample among these (a later one wins a tie).
        let mut latest: std::collections::BTreeMap<&str, &Sample> = Default::default();
        for (samples, encoded) in &batches {
            invocation
                .arg(encoded.count)
                .arg(encoded.min_ts)
                .arg(encoded.max_ts)
                .arg(&encoded.data[..]);
            for sample in samples.iter() {
                let entry = latest.entry(&sample.host).or_insert(sample);
                if entry.ts <= sample.ts {
                    *entry = sample;
                }
            }
        }
        invocation.arg(latest.len());
        let mut fields = Vec::new();
        for (host, sample) in latest {
            encode_metrics(&sample.metrics, &mut fields);
            invocation.arg(host).arg(sample.ts).arg(&fields[..]);
        }
        self.run(move |mut c| async move { invocation.invoke_async::<Value>(&mut c).await })?;
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
            samples.push(Sample {
                host,
                ts,
                metrics: decode_metrics(&fields)?,
            });
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

    fn compact_samples(&self, before: Millis) -> Result<u64, StoreError> {
        self.compact(before)
    }

    fn scan_rollups(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut dyn FnMut(&str, &Point),
    ) -> Result<(), StoreError> {
        self.rollups(query, visit)
    }

    fn rolled_up_until(&self) -> Result<Millis, StoreError> {
        let key = self.key("rolled_up_until");
        let until: Option<Millis> = self.run(move |mut c| async move { c.get(key).await })?;
        Ok(until.unwrap_or(Millis::MIN))
    }

    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError> {
        self.delete_points_before(step, before)
    }

    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError> {
        let mut invocation = SCRIPTS.acquire.prepare_invoke();
        invocation
            .key(self.key("lease"))
            .key(self.key("lease_token"))
            .arg(node)
            .arg(ttl.max(1));
        let token: Option<u64> =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        Ok(token.map(|token| Lease {
            node: node.to_string(),
            token,
        }))
    }

    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError> {
        let mut invocation = SCRIPTS.renew.prepare_invoke();
        invocation
            .key(self.key("lease"))
            .arg(format!("{} {}", lease.token, lease.node))
            .arg(ttl.max(1));
        let renewed: i64 =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        Ok(renewed == 1)
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut invocation = SCRIPTS.release.prepare_invoke();
        invocation
            .key(self.key("lease"))
            .arg(format!("{} {}", lease.token, lease.node));
        self.run(move |mut c| async move { invocation.invoke_async::<Value>(&mut c).await })?;
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

    fn publish_states(&self, lease: &Lease, states: &[u8]) -> Result<(), StoreError> {
        let mut invocation = SCRIPTS.publish.prepare_invoke();
        invocation
            .key(self.key("lease"))
            .key(self.key("states"))
            .arg(format!("{} {}", lease.token, lease.node))
            .arg(states);
        let published: i64 =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        if published == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced {
                node: lease.node.clone(),
                token: lease.token,
            })
        }
    }

    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key("states");
        self.run(move |mut c| async move { c.get(key).await })
    }

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

    fn record_transitions_to(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
    ) -> Result<(), StoreError> {
        let mut invocation = SCRIPTS.record.prepare_invoke();
        for name in [
            "lease",
            "incident",
            "open",
            "last_end",
            "resolved",
            "outbox_seq",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_ids",
            "pending",
        ] {
            invocation.key(self.key(name));
        }
        invocation
            .arg(format!("{} {}", lease.token, lease.node))
            .arg(transitions.len());
        for (index, transition) in transitions.iter().enumerate() {
            let targets = targets.get(index).map_or(&[][..], Vec::as_slice);
            let incident = &transition.incident;
            invocation
                .arg(transition.kind.as_str())
                .arg(&incident.id)
                .arg(pair_key(&incident.rule_name, &incident.host_name))
                .arg(incident_json(incident))
                .arg(
                    incident
                        .end_time
                        .map(|end| end.to_string())
                        .unwrap_or_default(),
                )
                .arg(transition.at)
                .arg(targets.len());
            for target in targets {
                invocation.arg(target);
            }
        }
        let outcome: Vec<String> =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        match outcome.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("fenced") => Err(StoreError::Fenced {
                node: lease.node.clone(),
                token: lease.token,
            }),
            Some("open") if outcome.len() == 3 => {
                let (rule, host) = outcome[1].split_once('\0').unwrap_or((&outcome[1], ""));
                Err(StoreError::AlreadyOpen {
                    rule: rule.to_string(),
                    host: host.to_string(),
                    open: outcome[2].clone(),
                })
            }
            _ => Err(corrupt(&format!("recording answered {outcome:?}"))),
        }
    }

    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError> {
        let (open, last_end, incident) =
            (self.key("open"), self.key("last_end"), self.key("incident"));
        let (open, ends): (
            std::collections::BTreeMap<String, String>,
            std::collections::BTreeMap<String, Millis>,
        ) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .hgetall(open)
                .hgetall(last_end)
                .query_async(&mut c)
                .await
        })?;
        let ids: Vec<String> = open.values().cloned().collect();
        let records: Values = if ids.is_empty() {
            Vec::new()
        } else {
            self.run(move |mut c| async move { c.hmget(incident, ids).await })?
        };
        let mut incidents = open.keys().zip(records);
        let mut pairs: std::collections::BTreeMap<(String, String), PairRecord> =
            Default::default();
        let split = |key: &str| -> Result<(String, String), StoreError> {
            key.split_once('\0')
                .map(|(rule, host)| (rule.to_string(), host.to_string()))
                .ok_or_else(|| corrupt(&format!("a pair {key:?}")))
        };
        for (key, end) in &ends {
            let (rule, host) = split(key)?;
            pairs.insert(
                (rule.clone(), host.clone()),
                PairRecord {
                    rule_name: rule,
                    host,
                    open: None,
                    last_end: Some(*end),
                },
            );
        }
        for (key, record) in incidents.by_ref() {
            let Some(record) = record else {
                continue;
            };
            let (rule, host) = split(key)?;
            pairs
                .entry((rule.clone(), host.clone()))
                .or_insert(PairRecord {
                    rule_name: rule,
                    host,
                    open: None,
                    last_end: None,
                })
                .open = Some(incident_from(&record)?);
        }
        Ok(pairs.into_values().collect())
    }

    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError> {
        let (open, resolved, incident) =
            (self.key("open"), self.key("resolved"), self.key("incident"));
        let (open, ended): (Vec<String>, Vec<String>) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .hvals(open)
                .zrangebyscore(resolved, from, "+inf")
                .query_async(&mut c)
                .await
        })?;
        let read = |ids: Vec<String>| -> Result<Vec<Incident>, StoreError> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let incident = incident.clone();
            let records: Values =
                self.run(move |mut c| async move { c.hmget(incident, ids).await })?;
            let mut incidents = records
                .into_iter()
                .flatten()
                .map(|record| incident_from(&record))
                .collect::<Result<Vec<_>, _>>()?;
            incidents.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
            Ok(incidents)
        };
        let active = read(open)?;
        let mut resolved = read(ended)?;
        resolved.retain(|incident| incident.start_time <= to && incident.end_time.is_some());
        Ok(Incidents { active, resolved })
    }

    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        let (incident, calls, key) = (
            self.key("incident"),
            self.key("calls"),
            self.key("outbox_key"),
        );
        let wanted = id.to_string();
        let (record, lines, keys): (
            Option<Vec<u8>>,
            Option<String>,
            std::collections::BTreeMap<i64, String>,
        ) = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .hget(incident, &wanted)
                .hget(calls, &wanted)
                .hgetall(key)
                .query_async(&mut c)
                .await
        })?;
        let Some(record) = record else {
            return Ok(None);
        };
        let incident = incident_from(&record)?;
        let mut hook_calls = Vec::new();
        for line in lines.iter().flat_map(|lines| lines.lines()) {
            let call: CallRecord = serde_json::from_str(line)
                .map_err(|error| corrupt(&format!("a hook call: {error}")))?;
            hook_calls.push(HookCall {
                incident_id: call.incident,
                target: call.target,
                kind: kind_from(&call.kind)?,
                attempt: call.attempt,
                started: call.started,
                duration_ms: call.duration_ms,
                outcome: call.outcome,
                succeeded: call.succeeded,
                stdout: call.stdout,
                stderr: call.stderr,
            });
        }
        let prefix = format!("{id}\0");
        let mine: Vec<i64> = keys
            .into_iter()
            .filter(|(_, key)| key.starts_with(&prefix))
            .map(|(delivery, _)| delivery)
            .collect();
        let pending = self.deliveries(mine)?;
        Ok(Some(IncidentDetail {
            incident,
            calls: hook_calls,
            pending,
        }))
    }

    fn claim_deliveries(
        &self,
        now: Millis,
        claim: &Claim<'_>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut invocation = SCRIPTS.claim.prepare_invoke();
        for name in [
            "outbox_ids",
            "outbox_key",
            "outbox_next",
            "claims",
            "outbox_dead",
        ] {
            invocation.key(self.key(name));
        }
        invocation
            .arg(now)
            .arg(claim.node)
            .arg(claim.until)
            .arg(limit);
        let claimed: Vec<i64> =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        self.deliveries(claimed)
    }

    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError> {
        let mut invocation = SCRIPTS.next_due.prepare_invoke();
        for name in [
            "outbox_ids",
            "outbox_key",
            "outbox_next",
            "claims",
            "outbox_dead",
        ] {
            invocation.key(self.key(name));
        }
        let next: Option<String> =
            self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })?;
        next.map(|at| {
            at.parse()
                .map_err(|_| corrupt(&format!("a delivery time {at:?}")))
        })
        .transpose()
    }

    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        let then = retry_at.map(|at| at.to_string()).unwrap_or_default();
        self.finish(delivery, call, then)
    }

    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError> {
        self.finish(delivery, call, "dead".to_string())
    }

    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError> {
        let mut invocation = SCRIPTS.retry_dead.prepare_invoke();
        for name in ["outbox_key", "outbox_dead", "outbox_next"] {
            invocation.key(self.key(name));
        }
        invocation.arg(id).arg(now);
        self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })
    }

    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        let ids = self.key("outbox_ids");
        self.run(move |mut c| async move { c.zcard(ids).await })
    }

    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError> {
        let mut invocation = SCRIPTS.delete_incidents.prepare_invoke();
        for name in ["resolved", "incident", "calls", "pending"] {
            invocation.key(self.key(name));
        }
        invocation.arg(before);
        self.run(move |mut c| async move { invocation.invoke_async(&mut c).await })
    }
}

impl RedisStore {
    /// Records a call and does `then` to its delivery (see `FINISH`).
    fn finish(&self, delivery: i64, call: &HookCall, then: String) -> Result<(), StoreError> {
        let record = serde_json::to_string(&CallRecord {
            incident: call.incident_id.clone(),
            target: call.target.clone(),
            kind: call.kind.as_str().to_string(),
            attempt: call.attempt,
            started: call.started,
            duration_ms: call.duration_ms,
            outcome: call.outcome.clone(),
            succeeded: call.succeeded,
            stdout: call.stdout.clone(),
            stderr: call.stderr.clone(),
        })
        .map_err(|error| corrupt(&format!("a hook call: {error}")))?;
        let mut invocation = SCRIPTS.finish.prepare_invoke();
        for name in [
            "calls",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_attempts",
            "outbox_ids",
            "claims",
            "pending",
            "outbox_dead",
        ] {
            invocation.key(self.key(name));
        }
        invocation
            .arg(delivery)
            .arg(&call.incident_id)
            .arg(record)
            .arg(then);
        self.run(move |mut c| async move { invocation.invoke_async::<Value>(&mut c).await })?;
        Ok(())
    }

    /// The deliveries `ids` (those still waiting), in id order.
    fn deliveries(&self, mut ids: Vec<i64>) -> Result<Vec<Delivery>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        ids.sort_unstable();
        let (outbox, next, attempts, dead) = (
            self.key("outbox"),
            self.key("outbox_next"),
            self.key("outbox_attempts"),
            self.key("outbox_dead"),
        );
        let wanted = ids.clone();
        type Found = (
            Values,
            Vec<Option<Millis>>,
            Vec<Option<u32>>,
            Vec<Option<u8>>,
        );
        let (payloads, nexts, tries, deaths): Found = self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .hmget(outbox, &wanted)
                .hmget(next, &wanted)
                .hmget(attempts, &wanted)
                .hmget(dead, &wanted)
                .query_async(&mut c)
                .await
        })?;
        let mut deliveries = Vec::with_capacity(ids.len());
        let found = payloads.into_iter().zip(nexts).zip(tries).zip(deaths);
        for (id, (((payload, next), tries), dead)) in ids.into_iter().zip(found) {
            let (Some(payload), Some(next)) = (payload, next) else {
                continue;
            };
            let mut parts = payload.splitn(3, |byte| *byte == 0);
            let (Some(kind), Some(target), Some(record)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("a delivery"));
            };
            deliveries.push(Delivery {
                id,
                target: String::from_utf8_lossy(target).into_owned(),
                kind: kind_from(&String::from_utf8_lossy(kind))?,
                incident: incident_from(record)?,
                attempts: tries.unwrap_or(0),
                next_attempt: next,
                dead: dead.is_some(),
            });
        }
        Ok(deliveries)
    }
}
