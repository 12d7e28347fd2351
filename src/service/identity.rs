//! The cluster's identity, and what a node does when the shared store lost
//! its data.
//!
//! A Redis restarted without persistence (or flushed, or replaced) answers
//! again as if nothing happened: every call succeeds on an empty store. To
//! tell, the cluster keeps an identity in the store, written once by the
//! first node ([`Coordination::identity`]), and each node keeps the one it
//! last saw in its data directory (`cluster-identity`). A node that finds
//! another identity than the one it knew:
//!
//! - records the loss in the store (once for the cluster) with the incidents
//!   it knew open: the leader's engine, or a node that led until the store
//!   went away, what its engine held then;
//! - says so at ERROR; `/healthz` answers 503 and every page shows it until
//!   an operator acknowledges it (`POST /api/v1/cluster/loss/acknowledge`);
//! - steps down if it led: its lease went with the data.
//!
//! Whichever node leads next resolves the lost incidents (`resolution`:
//! `store lost`), so that every hook hears that they ended, and forgets them.
//!
//! [`Coordination::identity`]: crate::store::Coordination::identity

use std::sync::Mutex;

use tracing::{error, warn};

use super::{Service, lock};
use crate::incident::{Incident, Transition};
use crate::store::{Identity, Loss, StoreError};

/// The file in a node's data directory that holds the identity it last saw.
pub const IDENTITY_FILE: &str = "cluster-identity";

/// What the resolution of an incident lost with the store says.
pub const STORE_LOST: &str = "store lost";

/// The identity's part of the node.
#[derive(Default)]
pub(super) struct Known {
    /// The identity this node last saw (read from its data directory first).
    identity: Mutex<Option<Identity>>,
    /// The loss recorded in the store and not yet acknowledged, as last read.
    loss: Mutex<Option<Loss>>,
    /// The incidents open in this node's engine when it last stopped
    /// leading: what it knew, should the store turn out to have lost them.
    open_when_stepped_down: Mutex<Vec<Incident>>,
}

impl Service {
    /// The loss of the shared store's data that was found and not yet
    /// acknowledged, if any.
    pub fn store_loss(&self) -> Option<Loss> {
        lock(&self.known.loss).clone()
    }

    /// Keeps what the engine holds open as the node stops leading.
    pub(super) fn remember_open(&self) {
        let open = self.open_in_engine();
        *lock(&self.known.open_when_stepped_down) = open;
    }

    /// Forgets it once the node leads again (its engine is then rebuilt).
    pub(super) fn forget_remembered_open(&self) {
        lock(&self.known.open_when_stepped_down).clear();
    }

    fn open_in_engine(&self) -> Vec<Incident> {
        self.engine()
            .engine
            .saved_pairs()
            .into_iter()
            .filter_map(|pair| pair.open)
            .collect()
    }

    /// Compares the store's identity with the one this node knew (see the
    /// module's doc); returns the incidents lost with the store that are
    /// still to be resolved. Blocking. Nothing to do with a store of the
    /// node's own.
    pub(super) fn check_identity(&self) -> Result<Vec<Incident>, StoreError> {
        if !self.topology.is_cluster() {
            return Ok(Vec::new());
        }
        let path = self.options.data_dir.join(IDENTITY_FILE);
        let mut known = lock(&self.known.identity);
        if known.is_none() {
            *known = std::fs::read_to_string(&path)
                .ok()
                .and_then(|line| Identity::from_line(&line));
        }
        let now = self.now();
        let found = self.store.identity(&Identity::new(now))?;
        let mut loss = found.loss;
        let mut lost_open = found.lost_open;
        if let Some(was) = known.as_ref()
            && *was != found.current
        {
            let open = match self.is_leading() {
                true => self.open_in_engine(),
                false => lock(&self.known.open_when_stepped_down).clone(),
            };
            let found_now = Loss {
                lost: was.clone(),
                found: found.current.clone(),
                at: now,
                node: self.host_name().to_string(),
            };
            self.store.record_loss(&found_now, &open)?;
            error!(
                lost = was.id,
                found = found.current.id,
                open_incidents = open.len(),
                "the shared store lost its data (restarted without persistence, flushed or \
                 replaced): every sample, incident and delivery in it is gone. The incidents \
                 this node knew open are resolved as \"{STORE_LOST}\". Make Redis persistent \
                 (appendonly yes, appendfsync always), then acknowledge: POST \
                 /api/v1/cluster/loss/acknowledge"
            );
            for incident in &open {
                if !lost_open.iter().any(|lost| lost.id == incident.id) {
                    lost_open.push(incident.clone());
                }
            }
            loss.get_or_insert(found_now);
            self.step_down("the shared store lost its data, and the lease with it");
            lock(&self.known.open_when_stepped_down).clear();
        }
        if known.as_ref() != Some(&found.current) {
            if let Err(error) = std::fs::write(&path, found.current.to_line()) {
                warn!(file = %path.display(), %error, "cannot keep the cluster's identity");
            }
            *known = Some(found.current);
        }
        *lock(&self.known.loss) = loss;
        Ok(lost_open)
    }

    /// While leading: resolves the incidents lost with the store, now, so
    /// that their hooks hear of it, then forgets them.
    pub(super) fn resolve_lost(&self, lost: Vec<Incident>) -> Result<(), StoreError> {
        let Some(lease) = self.lease() else {
            return Ok(());
        };
        if lost.is_empty() {
            return Ok(());
        }
        let now = self.record_time();
        let ids: Vec<String> = lost.iter().map(|incident| incident.id.clone()).collect();
        let transitions: Vec<Transition> = lost
            .into_iter()
            .map(|incident| Transition::resolved_apart(incident, now, Some(STORE_LOST)))
            .collect();
        self.record(&lease, &transitions)?;
        self.store.forget_lost(&ids)?;
        warn!(
            count = ids.len(),
            "incidents lost with the store resolved as \"{STORE_LOST}\"; their hooks are called"
        );
        self.dispatch.outbox.notify_one();
        Ok(())
    }

    /// What `/healthz` and every page say while a loss is not acknowledged.
    pub fn loss_warning(&self) -> Option<String> {
        let loss = self.store_loss()?;
        Some(format!(
            "The shared store lost its data: node {} found it at {} (cluster identity {} \
             created {}, now {}). Samples, incidents and deliveries from before are gone; \
             incidents known open were resolved as \"{STORE_LOST}\". Make Redis persistent \
             (appendonly yes, appendfsync always), then acknowledge: POST \
             /api/v1/cluster/loss/acknowledge",
            loss.node,
            crate::incident::rfc3339(loss.at),
            loss.lost.id,
            crate::incident::rfc3339(loss.lost.created),
            loss.found.id
        ))
    }

    /// Acknowledges the loss (an operator has seen it): returns it.
    pub fn acknowledge_loss(&self) -> Result<Option<Loss>, StoreError> {
        let loss = self.store.acknowledge_loss()?;
        *lock(&self.known.loss) = None;
        Ok(loss)
    }
}
