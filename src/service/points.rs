//! Points from the standard senders ([`crate::series`]): OTLP, remote write
//! and scrapes all come through [`Service::ingest_points`], which translates
//! them under one lock, stores the samples made like any pushed batch, and
//! only then lets the translator remember what it saw.
//!
//! The lock (`ingest.series`) is held across the store write, so that two
//! requests cannot both count one counter's increase; it comes before
//! `ingest.commit` in the lock order ([`super`]).

use std::sync::Mutex;

use rustc_hash::FxHashMap;
use tracing::debug;

use super::{Service, lock};
use crate::series::exposition::Family;
use crate::series::{Batch, Refusals, Translator};
use crate::store::StoreError;

/// The most metric families whose types remote write metadata told.
const FAMILIES_KEPT: usize = 100_000;

/// The standard senders' part of the node.
#[derive(Default)]
pub(super) struct Points {
    /// What the translator remembers: counters' totals, intervals done.
    pub(super) translator: Mutex<Translator>,
    /// Metric families' types, from remote write metadata.
    pub(super) families: Mutex<FxHashMap<String, Family>>,
}

/// The ways points come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Otlp,
    RemoteWrite,
    Scrape,
}

impl Via {
    pub const ALL: [Via; 3] = [Via::Otlp, Via::RemoteWrite, Via::Scrape];

    pub fn name(self) -> &'static str {
        match self {
            Via::Otlp => "otlp",
            Via::RemoteWrite => "remote_write",
            Via::Scrape => "scrape",
        }
    }
}

/// What became of a batch of points that was stored.
#[derive(Debug, Default)]
pub struct Taken {
    /// Points that fed a field.
    pub taken: u64,
    /// Points refused, by reason.
    pub refused: Refusals,
    /// Points left out on purpose (staleness markers, histogram buckets,
    /// an interval stored already).
    pub skipped: u64,
    /// Samples stored.
    pub samples: usize,
}

/// Why a batch of points was not stored: nothing of it was.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl Service {
    /// Translates `batch` and stores its samples, all or none. Blocking.
    pub fn ingest_points(&self, via: Via, batch: Batch) -> Result<Taken, PointsError> {
        let config = self.config();
        let mapping = &config.ingest.mapping;
        let mut translator = lock(&self.points.translator);
        let now = self.now();
        let mut translation =
            translator.translate(mapping, &batch, now, config.server.max_future_skew);
        let samples = std::mem::take(&mut translation.samples);
        let (samples, refused, limit) = match self.admit_hosts_partly(samples) {
            Ok(admitted) => admitted,
            Err(error) => {
                translator.rollback(&mut translation);
                return Err(PointsError::Store(error));
            }
        };
        if let Some(limit) = limit {
            // The new hosts past the limits: their points are refused, the
            // others' stored (a sender would send the whole batch again).
            let message = limit.to_string();
            for (field, _) in refused.iter().flat_map(|sample| &sample.metrics) {
                translation
                    .refused
                    .add(|| format!(" ({field} and others): {message}"), "host limit");
            }
        }
        let count = samples.len();
        if !samples.is_empty()
            && let Err(error) = self.ingest(samples)
        {
            translator.rollback(&mut translation);
            return Err(PointsError::Store(error));
        }
        translator.commit(&mut translation, now);
        drop(translator);
        self.metrics.points(
            via,
            translation.taken,
            translation.refused.count(),
            translation.skipped,
        );
        debug!(
            via = via.name(),
            taken = translation.taken,
            refused = translation.refused.count(),
            skipped = translation.skipped,
            samples = count,
            "points stored"
        );
        Ok(Taken {
            taken: translation.taken,
            refused: translation.refused,
            skipped: translation.skipped,
            samples: count,
        })
    }

    /// Where the standard senders' points go instead of here: the leader's
    /// address, in a cluster this node does not lead (as last read), so that
    /// one node translates them all and a counter sent to several nodes in
    /// turn is counted once. `None`: take them here.
    pub fn leader_url(&self) -> Option<String> {
        if !self.topology.is_cluster() || self.is_leading() {
            return None;
        }
        let cluster = self.cluster();
        let leader = cluster.leader?.node;
        if leader == self.host_name() {
            return None;
        }
        cluster
            .nodes
            .into_iter()
            .find(|node| node.node == leader)
            .and_then(|node| node.url)
    }

    /// Forgets the scraped counters' totals: this node starts scraping
    /// after another did ([`crate::series::Translator::forget_scraped`]).
    pub(super) fn forget_scraped_totals(&self) {
        lock(&self.points.translator).forget_scraped();
    }

    /// Counts points refused before translation (undecodable, no name).
    pub fn points_refused(&self, via: Via, count: u64) {
        self.metrics.points(via, 0, count, 0);
    }

    /// Keeps the types that remote write metadata declares.
    pub fn learn_families(&self, declared: impl IntoIterator<Item = (String, Family)>) {
        let mut families = lock(&self.points.families);
        for (name, family) in declared {
            if families.len() < FAMILIES_KEPT || families.contains_key(&name) {
                families.insert(name, family);
            }
        }
    }

    /// The declared family of the sample `name`, if its metadata was seen:
    /// the family so named, or the one it is the `_total`, `_count`, `_sum`
    /// or `_bucket` of.
    pub fn family_of(&self, name: &str) -> Option<(String, Family)> {
        let families = lock(&self.points.families);
        std::iter::once(name)
            .chain(
                ["_total", "_count", "_sum", "_bucket"]
                    .iter()
                    .filter_map(|suffix| name.strip_suffix(suffix)),
            )
            .find_map(|family| {
                families
                    .get(family)
                    .map(|declared| (family.to_string(), *declared))
            })
    }
}
