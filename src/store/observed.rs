//! A store that remembers its last failure, so that `/healthz` reports a
//! store that fails requests, not only one that cannot answer at all. It can
//! also run a check before every call, which may fail it: how the fault
//! tests make a real store fail (or hold) any call they choose.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    Claim, Coordination, Delivery, HookCall, HostSeen, IncidentDetail, IncidentLog, Incidents,
    Lease, LeaseHolder, NodeStatus, SampleCursor, SampleStore, SampleVisitor, Sessions,
    SilenceStore, Store, StoreError,
};
use crate::duration::Millis;
use crate::incident::PairRecord;
use crate::incident::Transition;
use crate::sample::Sample;
use crate::store::RollupQuery;
use crate::store::rollup::Step;

/// What runs before each call, given the method's name; an error fails the
/// call without it reaching the store.
pub type Check = Box<dyn Fn(&str) -> Result<(), StoreError> + Send + Sync>;

/// Wraps any store; every call goes through, its failures are noted.
pub struct Observed {
    inner: Arc<dyn Store>,
    check: Option<Check>,
    last_failure: Mutex<Option<(Instant, String)>>,
    /// Why every call fails, while the store is halted.
    halted: Mutex<Option<String>>,
}

impl Observed {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Observed {
            inner,
            check: None,
            last_failure: Mutex::new(None),
            halted: Mutex::new(None),
        }
    }

    /// Fails every call with `why` from now on (its files were removed
    /// under it), or again lets them through (`None`).
    pub fn halt(&self, why: Option<String>) {
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// A store whose every call runs `check` first (fault injection).
    pub fn with_check(inner: Arc<dyn Store>, check: Check) -> Self {
        Observed {
            check: Some(check),
            ..Observed::new(inner)
        }
    }

    /// The last failure within `recent`, if any: what it said.
    pub fn failed_within(&self, recent: Duration) -> Option<String> {
        let last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() <= recent)
            .map(|(_, what)| what.clone())
    }

    /// Runs one call of the inner store, after the check, noting a failure.
    fn call<T>(
        &self,
        method: &str,
        run: impl FnOnce(&dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let halted = self
            .halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let result = match (halted, &self.check) {
            (Some(why), _) => Err(StoreError::Halted(why)),
            (None, Some(check)) => check(method).and_then(|()| run(self.inner.as_ref())),
            (None, None) => run(self.inner.as_ref()),
        };
        if let Err(error) = &result {
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), error.to_string()));
        }
        result
    }
}

/// Implements a capability for [`Observed`]: each method goes through
/// [`Observed::call`] under its own name, to the same method of the inner store.
macro_rules! observed {
    ($capability:ident { $(fn $method:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* } $($extra:item)*) => {
        impl $capability for Observed {
            $(fn $method(&self $(, $arg: $ty)*) -> $ret {
                self.call(stringify!($method), |store| store.$method($($arg),*))
            })*
            $($extra)*
        }
    };
}

observed!(SampleStore {
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError>;
    fn append_batches(&self, batches: &[(&[Sample], &crate::store::batch::Encoded)]) -> Result<(), StoreError>;
    fn append_once(&self, batches: &[(&[Sample], &crate::store::batch::Encoded)], keys: &[Option<&crate::store::Once>]) -> Result<Vec<crate::store::Appended>, StoreError>;
    fn remember_once(&self, once: &crate::store::Once) -> Result<crate::store::Appended, StoreError>;
    fn scan_samples_before(&self, from: Millis, to: Millis, cursor: SampleCursor, visit: &mut dyn FnMut(Sample)) -> Result<(), StoreError>;
    fn scan_host_samples(&self, host: &str, from: Millis, to: Millis, visit: &mut dyn FnMut(Sample)) -> Result<(), StoreError>;
    fn visit_host_samples(&self, host: &str, from: Millis, to: Millis, visitor: &mut dyn SampleVisitor) -> Result<(), StoreError>;
    fn visit_samples(&self, from: Millis, to: Millis, visitor: &mut dyn SampleVisitor) -> Result<(), StoreError>;
    fn sample_cursor(&self) -> Result<SampleCursor, StoreError>;
    fn samples_since(&self, cursor: SampleCursor, visit: &mut dyn FnMut(Sample)) -> Result<SampleCursor, StoreError>;
    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError>;
    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError>;
    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError>;
    fn scan_unrolled(&self, from: Millis, to: Millis, visit: &mut dyn FnMut(Sample)) -> Result<(), StoreError>;
    fn compact_samples(&self, before: Millis, rollups_from: crate::store::RollupsFrom) -> Result<u64, StoreError>;
    fn scan_rollup_rows(&self, query: &RollupQuery<'_>, visit: &mut crate::store::RowVisitor<'_>) -> Result<(), StoreError>;
    fn rolled_up_until(&self) -> Result<Millis, StoreError>;
    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError>;
});

observed!(IncidentLog {
    fn record_transitions_to(&self, lease: &Lease, transitions: &[Transition], targets: &[Vec<String>]) -> Result<(), StoreError>;
    fn record_tick(&self, lease: &Lease, transitions: &[Transition], targets: &[Vec<String>], changes: &[crate::incident::PairChange]) -> Result<(), StoreError>;
    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError>;
    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError>;
    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError>;
    fn claim_deliveries(&self, now: Millis, claim: &Claim<'_>, per_target: usize) -> Result<Vec<Delivery>, StoreError>;
    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError>;
    fn finish_delivery(&self, delivery: i64, call: &HookCall, retry_at: Option<Millis>) -> Result<(), StoreError>;
    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError>;
    fn hold_delivery(&self, delivery: i64, until: Millis, by: &str) -> Result<(), StoreError>;
    fn release_held(&self, now: Millis) -> Result<u64, StoreError>;
    fn postpone_delivery(&self, delivery: i64, until: Millis) -> Result<(), StoreError>;
    fn claim_target(&self, target: &str, now: Millis, claim: &Claim<'_>) -> Result<Vec<Delivery>, StoreError>;
    fn finish_deliveries(&self, finished: &[(i64, HookCall)], retry_at: Option<Millis>) -> Result<(), StoreError>;
    fn group_sent(&self, target: &str, key: &str) -> Result<Option<Millis>, StoreError>;
    fn set_group_sent(&self, target: &str, key: &str, at: Millis) -> Result<(), StoreError>;
    fn delete_groups_sent_before(&self, before: Millis) -> Result<u64, StoreError>;
    fn acknowledge(&self, id: &str, ack: &super::Ack, targets: &[String]) -> Result<Option<super::Ack>, StoreError>;
    fn acknowledgements(&self, ids: &[&str]) -> Result<std::collections::BTreeMap<String, super::Ack>, StoreError>;
    fn reminder_times(&self) -> Result<std::collections::BTreeMap<(String, String), Millis>, StoreError>;
    fn enqueue_reminder(&self, incident: &crate::incident::Incident, target: &str, now: Millis, next: Millis) -> Result<(), StoreError>;
    fn forget_reminders(&self, pairs: &[(String, String)]) -> Result<(), StoreError>;
    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError>;
    fn pending_deliveries(&self) -> Result<u64, StoreError>;
    fn undelivered(&self) -> Result<std::collections::BTreeMap<String, crate::store::Undelivered>, StoreError>;
    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError>;
});

observed!(Coordination {
    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError>;
    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError>;
    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;
    fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError>;
    fn publish_states(&self, lease: &Lease, tick: Millis, states: &[u8]) -> Result<(), StoreError>;
    fn last_tick(&self) -> Result<Option<Millis>, StoreError>;
    fn store_clock(&self) -> Result<Option<Millis>, StoreError>;
    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError>;
    fn heartbeat(&self, status: &NodeStatus) -> Result<(), StoreError>;
    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError>;
    fn forget_node(&self, name: &str) -> Result<(), StoreError>;
}
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn condition(&self) -> super::Condition {
        self.inner.condition()
    }
    fn identity(&self, new: &super::Identity) -> Result<super::ClusterIdentity, StoreError> {
        self.call("identity", |store| store.identity(new))
    }
    fn record_loss(&self, loss: &super::Loss, open: &[crate::incident::Incident]) -> Result<(), StoreError> {
        self.call("record_loss", |store| store.record_loss(loss, open))
    }
    fn forget_lost(&self, ids: &[String]) -> Result<(), StoreError> {
        self.call("forget_lost", |store| store.forget_lost(ids))
    }
    fn acknowledge_loss(&self) -> Result<Option<super::Loss>, StoreError> {
        self.call("acknowledge_loss", |store| store.acknowledge_loss())
    }
);

observed!(SilenceStore {
    fn put_silence(&self, silence: &crate::silence::Silence) -> Result<(), StoreError>;
    fn silences(&self) -> Result<Vec<crate::silence::Silence>, StoreError>;
    fn delete_silences_ended_before(&self, before: Millis) -> Result<u64, StoreError>;
});

observed!(Sessions {
    fn put_session(&self, key: &str, expires: Millis) -> Result<(), StoreError>;
    fn session_expires(&self, key: &str) -> Result<Option<Millis>, StoreError>;
    fn delete_session(&self, key: &str) -> Result<(), StoreError>;
    fn delete_sessions_expired(&self, now: Millis) -> Result<u64, StoreError>;
});
