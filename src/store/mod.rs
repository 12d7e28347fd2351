//! Durable state of a running service, by capability.
//!
//! A store keeps what must survive a crash or a restart, in four parts that
//! each backend implements side by side:
//!
//! - [`SampleStore`]: recent samples (to rebuild the rule windows), the
//!   compacted blocks and the rolled-up series;
//! - [`IncidentLog`]: incidents, each (rule, host) pair's last resolution
//!   (its cooldown), the outbox of transitions that hooks have not yet seen,
//!   and the record of every hook call;
//! - [`Coordination`]: the lease and its fencing token, the states the
//!   leader publishes, the nodes' heartbeats;
//! - [`Sessions`]: the pages' sign-in sessions.
//!
//! [`Store`] is all four. [`SqliteStore`] is the embedded default (one file,
//! one process); [`RedisStore`] is a cluster's, shared by every node. Both
//! pass one conformance suite (`tests/store.rs`), split the same way.
//! [`Observed`] wraps either to note failures (for `/healthz`) and to inject
//! faults in tests.
//!
//! The traits are synchronous, and stay so: every method is one short
//! transaction (a SQLite transaction, or one Redis script or pipeline), the
//! embedded backend is a synchronous library, and the service calls the
//! store from blocking threads (`spawn_blocking`), several at once, so that
//! a slow disk never holds the few async threads every request goes
//! through. Reads must not wait for writes. The Redis backend pays for this
//! with a runtime of its own that its calls are handed to; an async trait
//! would move that cost to every SQLite call instead, which is the common
//! case.

pub mod damage;
mod fold;
mod format;
mod observed;
mod redis;
mod sqlite;

pub use format::{batch, block, rollup};

pub use observed::Observed;
pub use redis::RedisStore;
pub use sqlite::{FILE_NAME as SQLITE_FILE_NAME, SqliteStore};

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::incident::{Incident, PairChange, PairRecord, Transition, TransitionKind};
use crate::sample::Sample;
use crate::silence::Silence;
use rollup::{Point, Step};

/// An error from a backend's own library (SQLite, Redis), kept whole so that
/// the backend can look into it (a SQLite error code, say).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why a store operation failed. The operation changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed the operation.
    #[error("{backend}: {source}")]
    Backend {
        backend: &'static str,
        source: BackendError,
    },
    /// The backend cannot be reached (a shared store that is down or cut
    /// off): the same operation may work later.
    #[error("{backend} unavailable: {detail}")]
    Unavailable {
        backend: &'static str,
        detail: String,
    },
    /// A backend error on a named file.
    #[error("{path}: {source}")]
    File { path: String, source: BackendError },
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    /// The failure of a group commit, as seen by the other callers in it.
    #[error("{0}")]
    Group(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The service halted the store: what it found wrong with its files.
    #[error("the store is halted: {0}")]
    Halted(String),
    /// The backend is set up so that it would lose what it acknowledged:
    /// the store refuses to take samples or grant the lease until it is not.
    #[error("{0}")]
    Unsafe(String),
    /// Refused before anything was written: what was to be stored could
    /// not be read back.
    #[error("refused to store: {0}")]
    Unstorable(String),
    /// Found at start: the store is damaged. `place` names it (a file, a
    /// Redis), `advice` is what the operator can do with this backend.
    #[error("{place} is damaged ({detail}); alertd will not start on it. {advice}")]
    Damaged {
        place: String,
        detail: String,
        advice: String,
    },
    /// A read with a cursor met samples compacted after the cursor was read.
    #[error("samples were compacted while a read with a cursor ran; read again")]
    CompactedAfterCursor,
    #[error(
        "the store's schema version is {found}, this alertd knows {known}: {}",
        if found > known { "upgrade alertd" } else { "start alertd run once to upgrade the store" }
    )]
    Version { found: i64, known: i64 },
    /// A write made under a lease that is no longer the current one: the
    /// writer lost its leadership (it was paused or cut off past the lease)
    /// and must step down.
    #[error("lease token {token} of node {node:?} is no longer current: another node leads")]
    Fenced { node: String, token: u64 },
    /// A tick at or before the last one the store recorded, under another
    /// lease: the writer's clock is behind the one that recorded it. Nothing
    /// of the tick was recorded.
    #[error(
        "tick {} is not after the last tick recorded ({}): this node's clock is behind the \
         node that recorded it; nothing of the tick was recorded",
        crate::incident::rfc3339(*tick),
        crate::incident::rfc3339(*last)
    )]
    StaleTick { tick: Millis, last: Millis },
    /// An incident was to open for a (rule, host) that has one open already.
    /// Nothing of the tick was recorded.
    #[error("rule {rule:?} on host {host:?} has an open incident already ({open})")]
    AlreadyOpen {
        rule: String,
        host: String,
        open: String,
    },
}

/// Whether a command opens a store to work on it, or only to read it beside
/// a service that may be writing to it (`alertd export`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// Opens the store `backend` names: the one place every command chooses
/// its backend. `data_dir` holds the embedded store's file (a cluster's
/// nodes keep only their hooks there).
pub fn open(
    backend: &crate::config::Backend,
    data_dir: &std::path::Path,
    access: Access,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    use crate::config::Backend;
    Ok(match (backend, access) {
        (Backend::Sqlite, Access::ReadWrite) => {
            std::sync::Arc::new(SqliteStore::open_dir(data_dir)?)
        }
        (Backend::Sqlite, Access::ReadOnly) => {
            std::sync::Arc::new(SqliteStore::open_read_only(data_dir)?)
        }
        (Backend::Redis { url, cluster }, _) => {
            std::sync::Arc::new(RedisStore::open(url, cluster)?)
        }
    })
}

impl StoreError {
    /// Whether the store could not be reached, rather than refusing or
    /// failing the operation.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// The right to evaluate the rules and record transitions, held by one node
/// at a time (see [`Coordination::acquire_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The node that holds it (its `--host-name`).
    pub node: String,
    /// The fencing token: raised at every acquisition, so that a later
    /// lease always has a higher one.
    pub token: u64,
}

/// Who holds the lease now, as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHolder {
    pub node: String,
    pub token: u64,
    /// How long it still runs unless renewed, in ms.
    pub expires_in: Millis,
}

/// A node of the cluster as it last reported itself (see
/// [`Coordination::heartbeat`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Its `--host-name`.
    pub node: String,
    /// When it last reported, on its own clock (ms since the epoch).
    pub heartbeat: Millis,
    /// When it started.
    pub started: Millis,
    /// A fingerprint of its rules: a node whose rules differ from the
    /// leader's would evaluate differently once it leads.
    pub rules: String,
    /// The alertd version it runs.
    pub version: String,
    /// How the other nodes reach it, if they can (absent from what an
    /// earlier version reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A delivery claimed by a node (see [`IncidentLog::claim_deliveries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The claiming node.
    pub node: &'a str,
    /// Targets whose deliveries are not claimed (a grouped target's, on a
    /// node that does not lead: the leader sends grouped messages).
    pub skip: &'a [String],
    /// How long the claim holds, in ms, on the store's clock: after it
    /// another node may claim what this one claimed and has not finished.
    /// A shared store counts it on its own clock (Redis `TIME`), so that no
    /// node's clock decides when another's claim runs out; the embedded
    /// store, from the `now` of the claim.
    pub lasts: Millis,
}

/// The span of time each compacted block of samples covers (per host),
/// aligned to multiples of it.
pub const BLOCK_PERIOD: Millis = 10 * 60 * 1000;

/// The name under which the rollups hold every host's samples together:
/// each step's aggregates across hosts (a sum of sums, the largest maximum,
/// the last value of whichever host sent last). No host has this name, as
/// a host name is never empty.
pub const ALL_HOSTS: &str = "";

/// What [`SampleStore::scan_rollup_rows`] hands each stored row to: its
/// host and its bytes.
pub type RowVisitor<'v> = dyn FnMut(&str, &[u8]) -> Result<(), StoreError> + 'v;

/// Which rolled-up points to read (see [`SampleStore::scan_rollups`]).
#[derive(Debug, Clone, Copy)]
pub struct RollupQuery<'a> {
    pub step: Step,
    /// Points with `from <= ts <= to`.
    pub from: Millis,
    pub to: Millis,
    /// This host's only ([`ALL_HOSTS`]: the aggregates across hosts); each
    /// host's, but not the aggregates, for `None`.
    pub host: Option<&'a str>,
    /// With these fields only.
    pub fields: Option<&'a [String]>,
    /// Each aggregate's count, sum and maximum are enough: a store may leave
    /// the minimum, the last value and its time out (NaN, NaN,
    /// `Millis::MIN`), and decode half as much.
    pub totals_only: bool,
}

/// Per rollup step (in the order of [`Step::ALL`]), the time before which
/// a compaction need not write its rollups ([`SampleStore::compact_samples`]).
pub type RollupsFrom = [Millis; 3];

/// Every rollup written, whatever its time.
pub const EVERY_ROLLUP: RollupsFrom = [Millis::MIN; 3];

/// What [`SampleStore::visit_samples`] hands samples to.
pub trait SampleVisitor {
    /// The samples that follow give their fields by place in `names`.
    fn names(&mut self, names: &[&str]);

    /// One sample: its host, its time, and its fields (by place in the
    /// names last given) with their values.
    fn sample(&mut self, host: &str, ts: Millis, values: &[(usize, f64)]);

    /// Whether the samples that follow need the field at `place` in the
    /// names last given: a store may leave the others out of them (and
    /// not decode them). All of them, unless said otherwise.
    fn wants(&self, place: usize) -> bool {
        let _ = place;
        true
    }
}

/// [`SampleStore::visit_host_samples`] through
/// [`SampleStore::scan_host_samples`]: a [`Sample`] made for each.
pub(crate) fn visit_scanned_host<S: SampleStore + ?Sized>(
    store: &S,
    host: &str,
    (from, to): (Millis, Millis),
    visitor: &mut dyn SampleVisitor,
) -> Result<(), StoreError> {
    let mut values = Vec::new();
    store.scan_host_samples(host, from, to, &mut |sample| {
        visit_sample(visitor, &sample, &mut values)
    })
}

/// Hands one sample to `visitor`, with its own names (`values`: room for
/// its fields).
pub(crate) fn visit_sample(
    visitor: &mut dyn SampleVisitor,
    sample: &Sample,
    values: &mut Vec<(usize, f64)>,
) {
    let names: Vec<&str> = sample.metrics.iter().map(|(name, _)| &**name).collect();
    visitor.names(&names);
    values.clear();
    values.extend(sample.metrics.iter().map(|(_, value)| *value).enumerate());
    visitor.sample(&sample.host, sample.ts, values);
}

/// A place in the order samples were appended (see [`SampleStore::sample_cursor`]).
pub type SampleCursor = i64;

/// A host and the timestamp of the latest sample it sent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSeen {
    pub host: String,
    pub last_seen: Millis,
}

/// The answer to an incident query (docs/engine.md, The incident object).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Incidents {
    pub active: Vec<Incident>,
    pub resolved: Vec<Incident>,
}

/// One transition waiting for one hook (a "target"): a row of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Unique, and increasing in the order the transitions were recorded.
    pub id: i64,
    /// Which hook: `exec:<file name>` for an executable hook.
    pub target: String,
    pub kind: TransitionKind,
    /// The incident as it was right after the transition.
    pub incident: Incident,
    /// Calls already made and failed.
    pub attempts: u32,
    /// Not to be tried before this time.
    pub next_attempt: Millis,
    /// Given up on (see [`IncidentLog::bury_delivery`]): kept, not tried again
    /// unless asked ([`IncidentLog::retry_dead`]), and holding back the later
    /// deliveries of its incident to its target.
    pub dead: bool,
    /// Held back by silences (their ids, or a maintenance window's name):
    /// see [`IncidentLog::hold_delivery`]. Kept once it is due again, so
    /// that the dispatcher knows it was held.
    pub held_by: Option<String>,
    /// Not a transition but a note on the open incident (`kind` is
    /// `Opened`): a reminder ([`IncidentLog::enqueue_reminder`]) or its
    /// acknowledgement ([`IncidentLog::acknowledge`]); stored as the kind
    /// `reminder` or `acknowledged`.
    pub note: Option<Note>,
}

/// What a delivery that is not a transition tells of an open incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    Reminder,
    Acknowledged,
}

impl Note {
    /// The outbox's kind, and the event's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Note::Reminder => "reminder",
            Note::Acknowledged => "acknowledged",
        }
    }

    /// The note an outbox kind names, if any.
    pub fn of_kind(kind: &[u8]) -> Option<Note> {
        match kind {
            b"reminder" => Some(Note::Reminder),
            b"acknowledged" => Some(Note::Acknowledged),
            _ => None,
        }
    }
}

/// Someone said they handle an incident (`POST /api/v1/incidents/{id}/ack`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub by: String,
    #[serde(default)]
    pub comment: String,
    pub at: Millis,
}

/// The record of one hook call.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookCall {
    pub incident_id: String,
    pub target: String,
    #[serde(serialize_with = "kind_name")]
    pub kind: TransitionKind,
    /// 1 for the first call of this delivery.
    pub attempt: u32,
    pub started: Millis,
    pub duration_ms: u64,
    /// `exited 0`, `exited 3`, `killed by signal 9`, `timed out after 10s`, ...
    pub outcome: String,
    pub succeeded: bool,
    pub stdout: String,
    pub stderr: String,
}

fn kind_name<S: serde::Serializer>(kind: &TransitionKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// An incident with its hook calls and the deliveries still waiting.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub calls: Vec<HookCall>,
    pub pending: Vec<Delivery>,
}

/// Samples and what is made of them: every host's recent samples, the
/// compacted blocks, the rolled-up series, each host's latest sample.
pub trait SampleStore: Send + Sync {
    /// Stores samples (already validated), and each host's latest time.
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError>;

    /// Stores batches of samples in one transaction, in order, each with its
    /// [`Encoded`](batch::Encoded) form, made by the caller (ahead of any
    /// lock) from the same samples.
    fn append_batches(&self, batches: &[(&[Sample], &batch::Encoded)]) -> Result<(), StoreError> {
        self.append_once(batches, &[]).map(|_| ())
    }

    /// [`SampleStore::append_batches`], each batch with its idempotency key
    /// if it has one (`keys[i]` for `batches[i]`; missing: none), kept in
    /// the same transaction: a batch whose key the store holds already is
    /// not stored again ([`Appended::Replayed`] if its fingerprint is the
    /// same, [`Appended::Conflict`] if not). Returns what became of each
    /// batch.
    fn append_once(
        &self,
        batches: &[(&[Sample], &batch::Encoded)],
        keys: &[Option<&Once>],
    ) -> Result<Vec<Appended>, StoreError>;

    /// Keeps `once` (for a push stored elsewhere than in this store: the
    /// counters of `POST /api/v1/metrics`) unless the store holds its key
    /// already: [`Appended::Stored`] when it was kept now.
    fn remember_once(&self, once: &Once) -> Result<Appended, StoreError>;

    /// Calls `visit` with every sample with `from <= ts <= to`, in timestamp
    /// order, then host name order; a host's samples of equal timestamp in
    /// the order they were appended. Each sample's fields come in the order
    /// given, or once compacted, in the order its host first gave them in
    /// the block's period.
    fn scan_samples(
        &self,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.scan_samples_before(from, to, SampleCursor::MAX, visit)
    }

    /// Hands every sample with `from <= ts <= to` to `visitor` without
    /// copying it, in no particular order: for a reader that only adds
    /// samples up, faster than [`SampleStore::scan_samples`].
    fn visit_samples(
        &self,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        let mut values = Vec::new();
        self.scan_samples(from, to, &mut |sample| {
            visit_sample(visitor, &sample, &mut values)
        })
    }

    /// [`SampleStore::scan_samples`] for one host's samples only.
    fn scan_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.scan_samples(from, to, &mut |sample| {
            if sample.host == host {
                visit(sample)
            }
        })
    }

    /// [`SampleStore::scan_host_samples`] handed to a visitor: the same
    /// samples in the same order, without a [`Sample`] made for each where
    /// the store can.
    fn visit_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        visit_scanned_host(self, host, (from, to), visitor)
    }

    /// [`SampleStore::scan_samples`], leaving out the samples appended at or after
    /// `cursor` (see [`SampleStore::sample_cursor`]).
    fn scan_samples_before(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError>;

    /// Where the next appended sample will stand in append order: every
    /// sample appended before this call is before the cursor, every one
    /// appended after it at or after. Callers that must not miss or repeat a
    /// sample read it while no append runs.
    fn sample_cursor(&self) -> Result<SampleCursor, StoreError>;

    /// Calls `visit` with every sample appended at or after `cursor`, in
    /// append order (whichever node appended it), and returns the cursor
    /// after the last one: how the node that evaluates the rules follows
    /// what every node ingests. Fails with
    /// [`StoreError::CompactedAfterCursor`] if some of those samples were
    /// compacted since.
    fn samples_since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError>;

    /// The latest stored sample of every host (the last appended among equal
    /// timestamps), in host name order.
    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError>;

    /// Every host with a stored sample, in name order.
    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError>;

    /// Deletes the samples with `ts < before`, and the hosts with no sample
    /// left. Returns how many samples were deleted.
    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError>;

    /// Calls `visit` with every sample with `from <= ts <= to` that is not
    /// compacted yet, in no set order: before [`SampleStore::rolled_up_until`],
    /// the samples that arrived after their time was rolled up (late, or
    /// pushed with old timestamps), which no rollup holds until the next
    /// compaction. A read from the rollups adds them, so that it never
    /// misses what a read of the samples has.
    fn scan_unrolled(
        &self,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError>;

    /// Compacts samples with `ts` before the [`BLOCK_PERIOD`] that holds
    /// `before`: what every read returns stays the same, in less space. Does
    /// a bounded amount of work; returns how many samples it compacted, 0
    /// once none is left. A read with a cursor
    /// ([`SampleStore::scan_samples_before`]) fails with
    /// [`StoreError::CompactedAfterCursor`] if samples it should leave out
    /// were compacted after the cursor was read. The rollups of a step are
    /// not written for a row that ends before its time in `rollups_from`
    /// (the janitor would delete them and no read uses them: a backlog of a
    /// week folds without a week of minute rollups); [`EVERY_ROLLUP`] writes
    /// them all.
    fn compact_samples(&self, before: Millis, rollups_from: RollupsFrom)
    -> Result<u64, StoreError>;

    /// Calls `visit` with each stored rollup row (encoded by
    /// [`rollup::encode`]) of the query's step and host that may hold
    /// points of `[from, to]`: hosts in name order, a host's rows in time
    /// order. The query's fields and `totals_only` are for the decoding
    /// ([`SampleStore::scan_rollups`]); an error of `visit` ends the scan.
    fn scan_rollup_rows(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut RowVisitor<'_>,
    ) -> Result<(), StoreError>;

    /// Calls `visit` with the rolled-up points the query asks for, a host's
    /// points in time order. Each (host, step) has one point, made from its
    /// samples when they were compacted: the rollups cover samples before
    /// [`SampleStore::rolled_up_until`], and a sample that came later than that
    /// for an earlier time once the next compaction ran. The points of
    /// [`ALL_HOSTS`] aggregate every host's of the same step. A row that
    /// cannot be decoded is left out, logged and counted.
    fn scan_rollups(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut dyn FnMut(&str, &Point),
    ) -> Result<(), StoreError> {
        let (from, to) = (query.from, query.to);
        if from > to {
            return Ok(());
        }
        let mut points = Vec::new();
        self.scan_rollup_rows(query, &mut |host, row| {
            let decoded = damage::or_skip(
                rollup::decode_fields_into(row, query.fields, query.totals_only, &mut points),
                || format!("a rollup row of host {host:?}"),
            )?;
            if decoded.is_some() {
                for point in points
                    .iter()
                    .filter(|point| point.ts >= from && point.ts <= to)
                {
                    visit(host, point);
                }
            }
            Ok(())
        })
    }

    /// The time before which samples are rolled up (the start of time when
    /// none is).
    fn rolled_up_until(&self) -> Result<Millis, StoreError>;

    /// Deletes the rolled-up points of `step` with `ts < before`. Returns
    /// how many were deleted.
    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError>;
}

/// Incidents and their delivery: the transitions the leader records, each
/// (rule, host) pair's last resolution, the outbox of transitions waiting for
/// a hook, and the record of every hook call.
pub trait IncidentLog: Send + Sync {
    /// Records the transitions of one tick under `lease`, in one
    /// transaction: the incidents as they now are, each pair's last
    /// resolution, and one outbox delivery per transition and target, in
    /// order (`targets[i]` for `transitions[i]`; missing: none). Records
    /// nothing and fails with [`StoreError::Fenced`] if the lease is no
    /// longer the current one, and with [`StoreError::AlreadyOpen`] if an
    /// incident opens for a (rule, host) that has another one open.
    /// Recording the same transitions again changes nothing more. A tick
    /// (the transitions' `at`) must come after the last one recorded, or be
    /// that one under the same lease (a retry): otherwise nothing is recorded
    /// and it fails with [`StoreError::StaleTick`]. An
    /// incident that would end before it started (a leader whose clock is
    /// behind the one that opened it) is refused with
    /// [`StoreError::Unstorable`], and nothing is recorded.
    fn record_transitions_to(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
    ) -> Result<(), StoreError> {
        self.record_tick(lease, transitions, targets, &[])
    }

    /// [`IncidentLog::record_transitions_to`], with the changes of pairs'
    /// `pendingSince` and `clearSince` at the tick, in the same transaction
    /// (a transition also ends its pair's pending and clear runs). A pair
    /// whose change sets both to none keeps no such state.
    fn record_tick(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
        changes: &[PairChange],
    ) -> Result<(), StoreError>;

    /// [`IncidentLog::record_transitions_to`] with the same targets for every
    /// transition.
    fn record_transitions(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[String],
    ) -> Result<(), StoreError> {
        let each = vec![targets.to_vec(); transitions.len()];
        self.record_transitions_to(lease, transitions, &each)
    }

    /// Every pair with an open incident or a past resolution, by rule name,
    /// then host name.
    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError>;

    /// The open incidents, and the resolved ones with `startTime <= to` and
    /// `endTime >= from`; each list by start time, then id.
    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError>;

    /// One incident with its hook calls (oldest first) and pending deliveries.
    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError>;

    /// Claims for `claim.node`, for `claim.lasts`, the deliveries, not
    /// dead, that are due at `now` (the caller's clock) and that no other node has claimed (or
    /// whose claim ran out), oldest first, at most `per_target` of each
    /// target (so that one target's backlog never hides another's
    /// deliveries); leaves out any that has an older delivery of the same
    /// incident to the same target still waiting, claimed or not (so that a
    /// hook sees "opened" before "resolved"). A delivery that `claim.node`
    /// had claimed is claimed again, and counts among its target's.
    fn claim_deliveries(
        &self,
        now: Millis,
        claim: &Claim<'_>,
        per_target: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// The earliest time at which a waiting delivery, not blocked by an
    /// older one, is due or its claim runs out.
    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError>;

    /// Records a call of a delivery's hook; removes the delivery when
    /// `retry_at` is `None`, and otherwise schedules its next attempt and
    /// frees its claim. A delivery already finished (by a node whose claim
    /// ran out meanwhile) is left alone; the call is recorded all the same.
    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError>;

    /// Records a call of a delivery's hook and gives the delivery up: it
    /// stays, marked dead, until [`IncidentLog::retry_dead`] brings it back.
    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError>;

    /// Holds a delivery back until `until` without calling its target (a
    /// silence matches its incident): its claim freed, its attempts kept,
    /// marked held by `by`. Leaves a delivery already finished alone.
    fn hold_delivery(&self, delivery: i64, until: Millis, by: &str) -> Result<(), StoreError>;

    /// Moves a delivery's next attempt to `until` without a call or a mark
    /// (a grouped target's message is not due yet): its claim freed, its
    /// attempts kept.
    fn postpone_delivery(&self, delivery: i64, until: Millis) -> Result<(), StoreError>;

    /// Claims for `claim.node` every delivery of `target` that
    /// [`IncidentLog::claim_deliveries`] would give, with no limit: the
    /// transitions of a grouped target's messages.
    fn claim_target(
        &self,
        target: &str,
        now: Millis,
        claim: &Claim<'_>,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// [`IncidentLog::finish_delivery`] for each of `finished`, at once.
    fn finish_deliveries(
        &self,
        finished: &[(i64, HookCall)],
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        for (delivery, call) in finished {
            self.finish_delivery(*delivery, call, retry_at)?;
        }
        Ok(())
    }

    /// When `target` last sent a message of group `key`.
    fn group_sent(&self, target: &str, key: &str) -> Result<Option<Millis>, StoreError>;

    /// Records that `target` sent a message of group `key` at `at`.
    fn set_group_sent(&self, target: &str, key: &str, at: Millis) -> Result<(), StoreError>;

    /// Forgets the groups last sent before `before`; returns how many.
    fn delete_groups_sent_before(&self, before: Millis) -> Result<u64, StoreError>;

    /// Makes every held delivery that is not dead due at `now` (a silence
    /// ended early). Returns how many were waiting past it.
    fn release_held(&self, now: Millis) -> Result<u64, StoreError>;

    /// Brings back every dead delivery of the incident `id`, due at `now`,
    /// with its count of attempts kept. Returns how many.
    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError>;

    /// How many deliveries are waiting, dead ones included.
    fn pending_deliveries(&self) -> Result<u64, StoreError>;

    /// The incidents that have not reached every hook yet, by id, each with
    /// the worst of its waiting deliveries: not tried yet, failed at least
    /// once and waiting to be tried again, or given up on.
    fn undelivered(&self) -> Result<BTreeMap<String, Undelivered>, StoreError>;

    /// When each (incident, target) with reminders is next reminded (set by
    /// [`IncidentLog::enqueue_reminder`]).
    fn reminder_times(&self) -> Result<BTreeMap<(String, String), Millis>, StoreError>;

    /// Forgets the reminder times of `pairs` (incident id, target): their
    /// incidents are resolved.
    fn forget_reminders(&self, pairs: &[(String, String)]) -> Result<(), StoreError>;

    /// Queues a reminder of the open `incident` for `target`, due at `now`,
    /// and sets its next one at `next`, at once.
    fn enqueue_reminder(
        &self,
        incident: &Incident,
        target: &str,
        now: Millis,
        next: Millis,
    ) -> Result<(), StoreError>;

    /// Records `ack` for the incident `id` unless it has one already, and
    /// then, at once, queues an `acknowledged` delivery for each of
    /// `targets`, due at `ack.at`; the incident's acknowledgement after it
    /// (`None`: no such incident).
    fn acknowledge(
        &self,
        id: &str,
        ack: &Ack,
        targets: &[String],
    ) -> Result<Option<Ack>, StoreError>;

    /// The acknowledgement of each of `ids` that has one.
    fn acknowledgements(&self, ids: &[&str]) -> Result<BTreeMap<String, Ack>, StoreError>;

    /// Deletes resolved incidents with `endTime < before` whose deliveries are
    /// all done, with their hook calls. Returns how many were deleted.
    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError>;
}

/// What the nodes of a cluster share to act as one: the lease (with its
/// fencing token) that lets one node evaluate, the states it publishes after
/// each tick, and every node's heartbeat. A single node uses it alone.
pub trait Coordination: Send + Sync {
    /// Whether other processes (the other nodes of a cluster) write to this
    /// store too. The embedded store is one process's own.
    fn shared(&self) -> bool {
        false
    }

    /// The cluster's identity as the store keeps it, written with `new` if
    /// there is none (a new cluster, or a store that lost its data), with
    /// the loss recorded and not yet acknowledged, and the incidents that
    /// were open at the loss and are not yet resolved. A store of one
    /// process's own has no identity to lose: `new`, nothing lost.
    fn identity(&self, new: &Identity) -> Result<ClusterIdentity, StoreError> {
        Ok(ClusterIdentity {
            current: new.clone(),
            loss: None,
            lost_open: Vec::new(),
        })
    }

    /// Records `loss` (unless one is recorded already) and the incidents
    /// that were open then, to be resolved by whichever node leads.
    fn record_loss(
        &self,
        _loss: &Loss,
        _open: &[crate::incident::Incident],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Forgets the lost incidents `ids` (once their resolution is recorded).
    fn forget_lost(&self, _ids: &[String]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Acknowledges the recorded loss: returns it, and forgets it.
    fn acknowledge_loss(&self) -> Result<Option<Loss>, StoreError> {
        Ok(None)
    }

    /// What the store knows of its own condition without being asked
    /// anything new (no I/O): for `/healthz`, `/metrics` and the pages.
    fn condition(&self) -> Condition {
        Condition::default()
    }

    /// Takes the lease for `node` for `ttl` ms, with a new fencing token
    /// higher than any before, if no other node holds it: nobody does, its
    /// holder let it run out, or `node` holds it already (a node that
    /// restarts takes its lease back at once). `None` while another node
    /// holds it. Leases run on the store's clock, not the callers'.
    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError>;

    /// Extends `lease` to `ttl` ms from now if it is still the current one;
    /// `false` if it was lost (ran out, or was taken).
    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError>;

    /// Gives `lease` up if it is still the current one, so that another node
    /// can take over at once.
    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Who holds the lease now, if anyone.
    fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError>;

    /// Keeps `states` (the leader's encoding of every pair's state after
    /// tick `tick`) for the other nodes to show, and records `tick` as the
    /// last one evaluated, if `lease` is still current (or fails with
    /// [`StoreError::Fenced`]) and the tick may be recorded (see
    /// [`IncidentLog::record_transitions_to`]; or fails with
    /// [`StoreError::StaleTick`]).
    fn publish_states(&self, lease: &Lease, tick: Millis, states: &[u8]) -> Result<(), StoreError>;

    /// The last tick recorded (by [`IncidentLog::record_transitions_to`] or
    /// [`Coordination::publish_states`]), if any: a node that takes the
    /// lease evaluates only later ones.
    fn last_tick(&self) -> Result<Option<Millis>, StoreError>;

    /// The store's own clock (ms since the epoch), when it has one that
    /// every node reads (Redis `TIME`): the nodes compare theirs with it.
    /// `None` for a store of one process's own.
    fn store_clock(&self) -> Result<Option<Millis>, StoreError> {
        Ok(None)
    }

    /// What the leader last published.
    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError>;

    /// Records `status` as its node's latest report.
    fn heartbeat(&self, status: &NodeStatus) -> Result<(), StoreError>;

    /// Every node that ever reported, by name.
    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError>;

    /// Forgets the node `name`.
    fn forget_node(&self, name: &str) -> Result<(), StoreError>;
}

/// How far an incident is from reaching every hook (see
/// [`IncidentLog::undelivered`]), from the least to the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Undelivered {
    /// A delivery not tried yet.
    Waiting,
    /// A delivery held back by a silence.
    Held,
    /// A delivery failed and waits to be tried again.
    Failing,
    /// A delivery was given up on: kept as dead until retried on demand.
    Dead,
}

/// A push's idempotency key (its `Idempotency-Key` header), kept with what
/// it brought so that the same push sent again (a retry after a timeout)
/// is not stored twice, whichever node it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Once {
    /// The sender's key, as it sent it.
    pub key: String,
    /// A digest of what came with the key: the same key with something else
    /// is a conflict, not a retry.
    pub fingerprint: String,
    /// How long the store keeps the key, in ms, on its own clock.
    pub keep: Millis,
}

/// What became of a batch with an idempotency key ([`SampleStore::append_once`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now.
    Stored,
    /// Stored before, under the same key and fingerprint: not again.
    Replayed,
    /// The key was used before for something else: nothing stored.
    Conflict,
}

/// What an incident carries beyond the original's fields, as the embedded
/// store keeps it (one JSON text column): its rule's details, why it was
/// resolved, and whether it has no trigger value (SQLite cannot store NaN).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_since: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    no_value: bool,
}

impl Extra {
    /// The JSON of what `incident` carries beyond the original's fields;
    /// `None` when nothing.
    pub(crate) fn encode(incident: &Incident) -> Option<String> {
        let details = incident.details.as_deref().cloned().unwrap_or_default();
        let extra = Extra {
            severity: details.severity,
            labels: details.labels,
            description: details.description,
            pending_since: details.pending_since,
            resolution: incident.resolution.as_deref().map(str::to_string),
            no_value: incident.trigger_value.is_nan(),
        };
        let empty = extra.severity.is_none()
            && extra.labels.is_empty()
            && extra.description.is_none()
            && extra.pending_since.is_none()
            && extra.resolution.is_none()
            && !extra.no_value;
        // Serializing plain fields cannot fail.
        (!empty).then(|| serde_json::to_string(&extra).unwrap_or_default())
    }

    /// Puts what `json` holds into `incident`.
    pub(crate) fn apply(json: &str, incident: &mut Incident) -> Result<(), serde_json::Error> {
        let extra: Extra = serde_json::from_str(json)?;
        if extra.no_value {
            incident.trigger_value = f64::NAN;
        }
        incident.resolution = extra.resolution.map(Into::into);
        let details = crate::incident::IncidentDetails {
            severity: extra.severity,
            labels: extra.labels,
            description: extra.description,
            pending_since: extra.pending_since,
        };
        incident.details = (!details.is_empty()).then(|| std::sync::Arc::new(details));
        Ok(())
    }
}

/// Whether `tick` may be recorded under `lease` after `last` (the last tick
/// recorded, and the token of the lease that recorded it): only a later
/// tick, or the same under the same lease (a retry).
pub(crate) fn check_tick(
    last: Option<(Millis, u64)>,
    lease: &Lease,
    tick: Millis,
) -> Result<(), StoreError> {
    match last {
        Some((last, token)) if tick < last || (tick == last && token != lease.token) => {
            Err(StoreError::StaleTick { tick, last })
        }
        _ => Ok(()),
    }
}

/// The tick of transitions and pair changes recorded together: the latest
/// `at`.
pub(crate) fn tick_of(transitions: &[Transition], changes: &[PairChange]) -> Option<Millis> {
    transitions
        .iter()
        .map(|transition| transition.at)
        .chain(changes.iter().map(|change| change.at))
        .max()
}

/// Refuses transitions that would store an incident ending before it
/// started: whatever clocks the nodes have, `endTime >= startTime` holds.
pub(crate) fn check_times(transitions: &[Transition]) -> Result<(), StoreError> {
    match transitions.iter().find(|transition| {
        let incident = &transition.incident;
        incident
            .end_time
            .is_some_and(|end| end < incident.start_time)
    }) {
        None => Ok(()),
        Some(transition) => Err(StoreError::Unstorable(format!(
            "incident {} of {:?} on {:?} would end at {} before it started at {}: this \
             node's clock is behind the one that opened it",
            transition.incident.id,
            &*transition.incident.rule_name,
            &*transition.incident.host_name,
            crate::incident::rfc3339(transition.incident.end_time.unwrap_or_default()),
            crate::incident::rfc3339(transition.incident.start_time),
        ))),
    }
}

/// A cluster's identity: an id written once, when the shared store was
/// first used, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub id: String,
    pub created: Millis,
}

impl Identity {
    /// A new identity made at `now`.
    pub fn new(now: Millis) -> Identity {
        Identity {
            id: ulid::Ulid::generate().to_string(),
            created: now,
        }
    }

    /// The identity as a node keeps it in its data directory: `ID CREATED`.
    pub fn to_line(&self) -> String {
        format!("{} {}", self.id, self.created)
    }

    pub fn from_line(line: &str) -> Option<Identity> {
        let (id, created) = line.trim().split_once(' ')?;
        Some(Identity {
            id: id.to_string(),
            created: created.parse().ok()?,
        })
    }
}

/// A shared store found without the identity a node knew: it lost its data
/// (a Redis restarted without persistence, flushed) or is another one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Loss {
    /// The identity the node knew.
    pub lost: Identity,
    /// The identity the store has now.
    pub found: Identity,
    /// When the node found it.
    pub at: Millis,
    /// The node that found it.
    pub node: String,
}

/// What [`Coordination::identity`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterIdentity {
    pub current: Identity,
    /// A loss recorded and not yet acknowledged.
    pub loss: Option<Loss>,
    /// Incidents open at the loss, not yet resolved.
    pub lost_open: Vec<crate::incident::Incident>,
}

/// What a store knows of its own condition ([`Coordination::condition`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    /// Damage it found on its own, outside any call (the embedded store's
    /// history check at start).
    pub damage: Option<String>,
    /// A setting of the backend under which it would lose what it
    /// acknowledged (Redis evicting keys), with the fix: while it holds,
    /// the store takes no sample and grants no lease.
    pub unsafe_setting: Option<String>,
    /// What the backend would not let the store check about its own safety
    /// (Redis refusing `INFO` and `CONFIG` to alertd's user), with the fix:
    /// the store works on, and says it.
    pub unverified: Option<String>,
    /// The backend's memory as last read: bytes used, and its limit (0: none).
    pub memory: Option<(u64, u64)>,
}

/// The silences (docs/notifications.md), shared by every node.
pub trait SilenceStore: Send + Sync {
    /// Stores `silence`, in place of the one of its id if any.
    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError>;

    /// Every silence kept, in no particular order.
    fn silences(&self) -> Result<Vec<Silence>, StoreError>;

    /// Deletes the silences that ended before `before`; returns how many.
    fn delete_silences_ended_before(&self, before: Millis) -> Result<u64, StoreError>;
}

/// The sign-in sessions of the pages, by the hash of their id.
pub trait Sessions: Send + Sync {
    /// Keeps a sign-in session of the pages until `expires`, by `key` (a
    /// hash of its id: the store never holds a usable id).
    fn put_session(&self, key: &str, expires: Millis) -> Result<(), StoreError>;

    /// When the session `key` expires, if it exists.
    fn session_expires(&self, key: &str) -> Result<Option<Millis>, StoreError>;

    /// Ends the session `key` (signing out).
    fn delete_session(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes the sessions that expired before `now`; returns how many.
    fn delete_sessions_expired(&self, now: Millis) -> Result<u64, StoreError>;
}

/// The durable state of the service: every capability of one backend.
/// Every method is atomic: it either happens whole or fails changing
/// nothing.
pub trait Store: SampleStore + IncidentLog + Coordination + Sessions + SilenceStore {}

impl<T: SampleStore + IncidentLog + Coordination + Sessions + SilenceStore + ?Sized> Store for T {}

/// Encodes a sample's metrics compactly: per metric, the name's length (one
/// byte), the name, and the value as 8 little-endian bytes.
pub(crate) fn encode_metrics(metrics: &[(String, f64)], out: &mut Vec<u8>) {
    out.clear();
    for (name, value) in metrics {
        // Field names are at most 128 bytes (validated on ingestion).
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// The inverse of [`encode_metrics`].
pub(crate) fn decode_metrics(mut bytes: &[u8]) -> Result<Vec<(String, f64)>, StoreError> {
    let corrupt = || StoreError::Corrupt("a sample's metrics cannot be decoded".to_string());
    let mut metrics = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let len = usize::from(len);
        if rest.len() < len + 8 {
            return Err(corrupt());
        }
        let name = std::str::from_utf8(&rest[..len]).map_err(|_| corrupt())?;
        let value = f64::from_le_bytes(rest[len..len + 8].try_into().map_err(|_| corrupt())?);
        if !value.is_finite() {
            return Err(corrupt());
        }
        metrics.push((name.to_string(), value));
        bytes = &rest[len + 8..];
    }
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip() {
        let metrics = vec![
            ("cpu.usage".to_string(), 12.5),
            ("x".repeat(128), -0.0),
            ("e".to_string(), f64::MAX),
        ];
        let mut bytes = Vec::new();
        encode_metrics(&metrics, &mut bytes);
        let back = decode_metrics(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        for ((a, x), (b, y)) in metrics.iter().zip(&back) {
            assert_eq!(a, b);
            assert_eq!(x.to_bits(), y.to_bits());
        }
        assert!(decode_metrics(&bytes[..bytes.len() - 1]).is_err());
    }
}
