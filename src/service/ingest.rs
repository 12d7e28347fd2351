//! Ingestion: samples are committed to the store, many batches in one
//! transaction, and only then handed to the engine.

use tracing::debug;

use std::sync::Mutex;

use super::{Counters, Service, lock};
use crate::duration::{HumanDuration, Millis};
use crate::incident::rfc3339;
use crate::sample::Sample;
use crate::sample::batch::BadSample;
use crate::store::batch::Encoded;
use crate::store::{Appended, Once, StoreError};

/// Batches waiting for a commit, and the outcome of commits made on behalf
/// of callers that have not yet looked.
#[derive(Default)]
pub(super) struct GroupCommit {
    next_ticket: u64,
    waiting: Vec<(u64, Vec<Sample>, Encoded, Option<Once>)>,
    results: rustc_hash::FxHashMap<u64, Result<Appended, String>>,
}

/// The hosts the store knows, as far as this node has seen: read from the
/// store when a batch names a host not in it (at most once a minute), and
/// grown by every batch admitted since. Hosts that retention forgot leave it
/// at the next read; in a cluster, the hosts other nodes took join it then
/// (so the nodes of a cluster may together pass `server.maxHosts` by what
/// each admits within a minute). A batch the store then fails to keep
/// leaves its hosts counted until the next read.
#[derive(Default)]
pub(super) struct KnownHosts {
    names: rustc_hash::FxHashSet<String>,
    read_at: Option<std::time::Instant>,
}

/// How often [`KnownHosts`] may be read again from the store.
const KNOWN_HOSTS_REREAD: std::time::Duration = std::time::Duration::from_secs(60);

/// A pushed batch refused for the hosts it would add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostLimit {
    #[error(
        "this batch brings {new} hosts that alertd does not know, more than \
         server.maxNewHostsPerBatch ({limit}) allows at once: send new hosts in smaller batches"
    )]
    PerBatch { new: usize, limit: usize },
    #[error(
        "alertd knows {known} hosts; this batch's {new} new ones would pass server.maxHosts \
         ({limit}): raise the limit, or wait until retention forgets hosts that stopped reporting"
    )]
    Total {
        known: usize,
        new: usize,
        limit: usize,
    },
}

/// A batch admitted in part: the samples kept, those of hosts kept out,
/// and the limit that kept them out.
pub(super) type Admitted = (Vec<Sample>, Vec<Sample>, Option<HostLimit>);

/// Why [`Service::admit_hosts`] refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum HostLimitError {
    #[error(transparent)]
    Limit(HostLimit),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The ingestion's part of the node.
#[derive(Default)]
pub(super) struct Ingest {
    /// The hosts new batches are counted against.
    pub(super) known: Mutex<KnownHosts>,
    /// Held by the caller that commits a group of sample batches.
    pub(super) commit: Mutex<()>,
    /// Batches of samples waiting to be committed together.
    pub(super) group: Mutex<GroupCommit>,
    /// The counters pushed for this node's next sample.
    pub(super) counters: Counters,
}

impl Service {
    /// Refuses a pushed batch with a sample that no running host could have
    /// sent now: one from before 2001 (seconds sent as milliseconds), or one
    /// further ahead of this node's clock than `server.maxFutureSkew`.
    /// `replay` and `export` take any valid `ts`.
    pub fn plausible(&self, samples: &[Sample]) -> Result<(), BadSample> {
        let skew = self.read_config(|config| config.server.max_future_skew);
        plausible(samples, self.now(), skew)
    }

    /// Admits a pushed batch's hosts under `server.maxNewHostsPerBatch` and
    /// `server.maxHosts`, counting them known from now on; refuses the
    /// whole batch otherwise (and counts the refusal). Blocking: it may read
    /// the store's hosts. This node's own samples are not pushed and never
    /// refused.
    pub fn admit_hosts(&self, samples: &[Sample]) -> Result<(), HostLimitError> {
        match self.admit(samples, false)? {
            None => Ok(()),
            Some(refused) => {
                self.metrics.batch_rejected(samples.len());
                Err(HostLimitError::Limit(refused))
            }
        }
    }

    /// [`Service::admit_hosts`] for a batch that may be taken in part (the
    /// standard senders'): as many new hosts as the limits let in, in the
    /// order they come; the samples of the others are returned apart, with
    /// the limit that kept them out.
    pub(super) fn admit_hosts_partly(&self, samples: Vec<Sample>) -> Result<Admitted, StoreError> {
        let refused = self.admit(&samples, true)?;
        if refused.is_none() {
            return Ok((samples, Vec::new(), None));
        }
        let known = lock(&self.ingest.known);
        let (kept, out): (Vec<Sample>, Vec<Sample>) = samples
            .into_iter()
            .partition(|sample| known.names.contains(&sample.host));
        Ok((kept, out, refused))
    }

    /// Counts `samples`' new hosts known, all of them, or with `partly` as
    /// many as the limits let in (in the order they come); says which limit
    /// kept hosts out, if one did (and counts it).
    fn admit(&self, samples: &[Sample], partly: bool) -> Result<Option<HostLimit>, StoreError> {
        let (per_batch, most) = self.read_config(|config| {
            (
                config.server.max_new_hosts_per_batch,
                config.server.max_hosts,
            )
        });
        let mut known = lock(&self.ingest.known);
        let unknown = |known: &KnownHosts| {
            let mut seen = rustc_hash::FxHashSet::default();
            samples
                .iter()
                .map(|sample| sample.host.as_str())
                .filter(|host| !known.names.contains(*host) && seen.insert(*host))
                .collect::<Vec<&str>>()
        };
        let mut new = unknown(&known);
        if new.is_empty() {
            return Ok(None);
        }
        if known
            .read_at
            .is_none_or(|at| at.elapsed() >= KNOWN_HOSTS_REREAD)
        {
            let stored = self.store.hosts()?;
            known.names = stored.into_iter().map(|seen| seen.host).collect();
            known.read_at = Some(std::time::Instant::now());
            new = unknown(&known);
        }
        let refused = if new.len() > per_batch {
            Some(HostLimit::PerBatch {
                new: new.len(),
                limit: per_batch,
            })
        } else if known.names.len() + new.len() > most {
            Some(HostLimit::Total {
                known: known.names.len(),
                new: new.len(),
                limit: most,
            })
        } else {
            None
        };
        let room = match refused {
            None => new.len(),
            Some(_) if partly => per_batch.min(most.saturating_sub(known.names.len())),
            Some(_) => 0,
        };
        if let Some(refused) = &refused {
            self.metrics
                .hosts_refused(matches!(refused, HostLimit::Total { .. }));
        }
        let admitted: Vec<String> = new.into_iter().take(room).map(str::to_string).collect();
        known.names.extend(admitted);
        Ok(refused)
    }

    /// Stores valid samples, then hands them to the engine. Blocking.
    ///
    /// Batches that arrive while another is being committed are committed
    /// together by whichever caller takes the commit lock next (group
    /// commit): one transaction and one sync to disk for all of them. Each
    /// caller returns once its own samples are durable. Readers never wait
    /// for this: they do not take the commit lock, and the engine is locked
    /// only while the committed samples enter it.
    pub fn ingest(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        self.ingest_once(samples, None).map(|_| ())
    }

    /// [`Service::ingest`], with the push's idempotency key if it has one:
    /// a batch whose key the store holds already is not stored again (nor
    /// given to the engine again). Says what became of the batch.
    pub fn ingest_once(
        &self,
        samples: Vec<Sample>,
        once: Option<Once>,
    ) -> Result<Appended, StoreError> {
        // Encoded before any lock: callers encode at once, the committer only
        // writes.
        let encoded = Encoded::new(&samples)?;
        let ticket = {
            let mut group = lock(&self.ingest.group);
            group.next_ticket += 1;
            let ticket = group.next_ticket;
            group.waiting.push((ticket, samples, encoded, once));
            ticket
        };
        let commit = lock(&self.ingest.commit);
        let mut group = lock(&self.ingest.group);
        if let Some(result) = group.results.remove(&ticket) {
            // Committed by the caller that held the commit lock before.
            return result.map_err(StoreError::Group);
        }
        let waiting = std::mem::take(&mut group.waiting);
        drop(group);
        let batches: Vec<(&[Sample], &Encoded)> = waiting
            .iter()
            .map(|(_, samples, encoded, _)| (samples.as_slice(), encoded))
            .collect();
        let keys: Vec<Option<&Once>> = waiting.iter().map(|(.., once)| once.as_ref()).collect();
        let result = self.store.append_once(&batches, &keys);
        // The samples stored now, in order: not those of a batch sent again.
        let stored: Vec<&Sample> = match &result {
            Ok(outcomes) => waiting
                .iter()
                .zip(outcomes)
                .filter(|(_, outcome)| **outcome == Appended::Stored)
                .flat_map(|((_, samples, ..), _)| samples)
                .collect(),
            Err(_) => Vec::new(),
        };
        if let Some(rebuilding) = lock(&self.evaluation.rebuilding).as_mut() {
            rebuilding.extend(stored.iter().map(|sample| (*sample).clone()));
        }
        // The other callers of the group learn the outcome before the commit
        // lock is released, since that is when they look.
        let mut group = lock(&self.ingest.group);
        let mut own = Err(String::new());
        for (index, (other, ..)) in waiting.iter().enumerate() {
            let outcome = match &result {
                Ok(outcomes) => outcomes
                    .get(index)
                    .copied()
                    .ok_or_else(|| "the store answered fewer batches than it was given".into()),
                Err(error) => Err(error.to_string()),
            };
            if *other == ticket {
                own = outcome;
            } else {
                group.results.insert(*other, outcome);
            }
        }
        drop(group);
        // With alerting off nothing evaluates, so nothing would ever leave
        // the windows: the engine gets the samples from the store when
        // alerting is turned on (the reload that turns it on rebuilds it).
        // In a cluster the leader follows every node's appends from the
        // store instead ([`Service::follow_appends`]).
        if !stored.is_empty()
            && self.config().alerting.enabled
            && self.topology.feeds_engine_at_ingest()
        {
            // Hand over hand: the engine's lock is taken before the commit
            // lock is released, so that groups enter the engine in the order
            // they were committed while the next group is being written.
            let mut evaluator = self.engine();
            drop(commit);
            for sample in &stored {
                evaluator.engine.ingest(sample);
            }
        } else {
            drop(commit);
        }
        if result.is_ok() {
            self.metrics.samples_ingested(stored.len());
            debug!(samples = stored.len(), batches = waiting.len(), "committed");
        }
        match result {
            Ok(_) => own.map_err(StoreError::Group),
            Err(error) => Err(error),
        }
    }
}

/// Timestamps before this (2001-09-09T01:46:40Z) are refused: they are
/// almost always seconds sent where milliseconds are expected.
const MIN_PLAUSIBLE_TS: Millis = 1_000_000_000_000;

/// Refuses a batch with a sample that no running host could have sent at
/// `now`: one from before 2001 (seconds instead of milliseconds) or further
/// in the future than `skew`.
fn plausible(samples: &[Sample], now: Millis, skew: Millis) -> Result<(), BadSample> {
    for (index, sample) in samples.iter().enumerate() {
        let ts = sample.ts;
        let message = if ts < MIN_PLAUSIBLE_TS {
            format!(
                "sample {index}: ts {ts} is before 2001-09-09 ({MIN_PLAUSIBLE_TS}): ts is in \
                 milliseconds since the Unix epoch; if {ts} is in seconds, send {}",
                i128::from(ts) * 1000
            )
        } else if ts > now.saturating_add(skew) {
            format!(
                "sample {index}: ts {ts} ({}) is {} ahead of this node's clock, more than \
                 server.maxFutureSkew ({}): check the sender's clock, and that ts is in \
                 milliseconds",
                rfc3339(ts),
                HumanDuration(ts - now),
                HumanDuration(skew)
            )
        } else {
            continue;
        };
        return Err(BadSample { index, message });
    }
    Ok(())
}
