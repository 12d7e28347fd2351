//! A node alone or in a cluster: the one place where the two differ. The
//! rest of the service asks its [`Topology`] what to do, by what the choice
//! is about, instead of testing whether the store is shared.
//!
//! Alone, the node's engine is the only writer of its store: what the engine
//! holds is what the store holds, so the engine is built once at start and
//! fed at ingestion, and a disagreement means the engine is wrong. In a
//! cluster, every node writes samples and one node at a time (the leader)
//! evaluates: the leader builds its engine from the store when it takes the
//! lease, follows every node's appends from there, and steps down whenever
//! the store knows better.

use crate::duration::Millis;
use crate::store::Store;

/// The shortest lease of a node alone ([`Topology::lease_ttl`]).
pub(super) const LONE_LEASE: Millis = 60_000;

/// Whether this node shares its store with other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One node on an embedded store.
    Alone,
    /// One of the nodes of a cluster, on a shared store.
    Cluster,
}

/// What a node does when the store refuses a tick's transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recovery {
    /// Stop leading: taking the lease again rebuilds the engine from the
    /// store (a cluster, where another node led meanwhile).
    StepDown,
    /// Take the lease again at once and keep the engine (alone, paused past
    /// the lease: nobody else wrote).
    LeadAgain,
    /// Rebuild the engine from the store (alone: the store is right).
    Rebuild,
}

impl Topology {
    /// The topology a store implies.
    pub fn of(store: &dyn Store) -> Topology {
        if store.shared() {
            Topology::Cluster
        } else {
            Topology::Alone
        }
    }

    pub fn is_cluster(self) -> bool {
        self == Topology::Cluster
    }

    /// Whether the engine is built when the service starts (alone), rather
    /// than when the node takes the lease (a cluster, from the store as it
    /// is then).
    pub(super) fn builds_engine_at_start(self) -> bool {
        self == Topology::Alone
    }

    /// Whether samples enter the engine as this node commits them (alone),
    /// rather than the leader reading every node's appends from the store
    /// before each tick (a cluster).
    pub(super) fn feeds_engine_at_ingest(self) -> bool {
        self == Topology::Alone
    }

    /// Whether another node may be the one that evaluates, cleans the store
    /// and publishes the rules' states: in a cluster, a node that does not
    /// lead leaves those to the leader and shows what it published.
    pub(super) fn others_may_lead(self) -> bool {
        self == Topology::Cluster
    }

    /// How long the lease runs unless renewed. A node alone has no one to
    /// hand over to, and its data directory's lock already keeps a second
    /// process out: its lease runs at least [`LONE_LEASE`], so that a
    /// machine too busy to renew it within three ticks does not stop
    /// evaluating for nothing.
    pub(super) fn lease_ttl(self, configured: Millis) -> Millis {
        match self {
            Topology::Cluster => configured,
            Topology::Alone => configured.max(LONE_LEASE),
        }
    }

    /// Until when a rebuilt engine must take samples as missing: a node
    /// alone stored none while it was down; a cluster's other nodes did.
    pub(super) fn samples_missing_until(self, built_at: Millis) -> Option<Millis> {
        match self {
            Topology::Alone => Some(built_at),
            Topology::Cluster => None,
        }
    }

    /// What to do when the store refuses a tick's transitions because the
    /// lease was lost (`fenced`) or the incident is already open.
    pub(super) fn recovery(self, fenced: bool) -> Recovery {
        match (self, fenced) {
            (Topology::Cluster, _) => Recovery::StepDown,
            (Topology::Alone, true) => Recovery::LeadAgain,
            (Topology::Alone, false) => Recovery::Rebuild,
        }
    }

    /// Whether a delivery whose target is missing on this node is tried
    /// again later (a cluster: hooks and targets live in each node's files,
    /// and another node may have it) rather than dropped (alone).
    pub(super) fn retries_missing_targets(self) -> bool {
        self == Topology::Cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_tick_is_recovered_by_the_store_in_a_cluster_and_by_the_engine_alone() {
        assert_eq!(Topology::Cluster.recovery(true), Recovery::StepDown);
        assert_eq!(Topology::Cluster.recovery(false), Recovery::StepDown);
        assert_eq!(Topology::Alone.recovery(true), Recovery::LeadAgain);
        assert_eq!(Topology::Alone.recovery(false), Recovery::Rebuild);
    }
}
