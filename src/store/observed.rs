//! A store that remembers its last failure, so that `/healthz` reports a
//! store that fails requests, not only one that cannot answer at all. It can
//! also run a check before every call, which may fail it: how the fault
//! tests make a real store fail (or hold) any call they choose.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    Claim, Delivery, HookCall, HostSeen, IncidentDetail, Incidents, Lease, LeaseHolder, NodeStatus,
    SampleCursor, SampleVisitor, Store, StoreError,
};
use crate::duration::Millis;
use crate::incident::PairRecord;
use crate::incident::Transition;
use crate::sample::Sample;
use crate::store::RollupQuery;
use crate::store::rollup::{Point, Step};

/// What runs before each call, given the method's name; an error fails the
/// call without it reaching the store.
pub type Check = Box<dyn Fn(&str) -> Result<(), StoreError> + Send + Sync>;

/// Wraps any store; every call goes through, its failures are noted.
pub struct Observed {
    inner: Arc<dyn Store>,
    check: Option<Check>,
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl Observed {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Observed {
            inner,
            check: None,
            last_failure: Mutex::new(None),
        }
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
        let result = match &self.check {
            Some(check) => check(method).and_then(|()| run(self.inner.as_ref())),
            None => run(self.inner.as_ref()),
        };
        if let Err(error) = &result {
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), error.to_string()));
        }
        result
    }
}

impl Store for Observed {
    fn shared(&self) -> bool {
        self.inner.shared()
    }
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        self.call("append_samples", |store| store.append_samples(samples))
    }
    fn append_batches(
        &self,
        batches: &[(&[Sample], &crate::store::batch::Encoded)],
    ) -> Result<(), StoreError> {
        self.call("append_batches", |store| store.append_batches(batches))
    }
    fn scan_samples_before(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.call("scan_samples_before", |store| {
            store.scan_samples_before(from, to, cursor, visit)
        })
    }
    fn scan_host_samples(
        &self,
        host: &str,
        from: Millis,
        to: Millis,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.call("scan_host_samples", |store| {
            store.scan_host_samples(host, from, to, visit)
        })
    }
    fn visit_samples(
        &self,
        from: Millis,
        to: Millis,
        visitor: &mut dyn SampleVisitor,
    ) -> Result<(), StoreError> {
        self.call("visit_samples", |store| {
            store.visit_samples(from, to, visitor)
        })
    }
    fn sample_cursor(&self) -> Result<SampleCursor, StoreError> {
        self.call("sample_cursor", |store| store.sample_cursor())
    }
    fn samples_since(
        &self,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<SampleCursor, StoreError> {
        self.call("samples_since", |store| store.samples_since(cursor, visit))
    }
    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        self.call("latest_samples", |store| store.latest_samples())
    }
    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError> {
        self.call("hosts", |store| store.hosts())
    }
    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.call("delete_samples_before", |store| {
            store.delete_samples_before(before)
        })
    }
    fn compact_samples(&self, before: Millis) -> Result<u64, StoreError> {
        self.call("compact_samples", |store| store.compact_samples(before))
    }
    fn scan_rollups(
        &self,
        query: &RollupQuery<'_>,
        visit: &mut dyn FnMut(&str, &Point),
    ) -> Result<(), StoreError> {
        self.call("scan_rollups", |store| store.scan_rollups(query, visit))
    }
    fn rolled_up_until(&self) -> Result<Millis, StoreError> {
        self.call("rolled_up_until", |store| store.rolled_up_until())
    }
    fn delete_rollups_before(&self, step: Step, before: Millis) -> Result<u64, StoreError> {
        self.call("delete_rollups_before", |store| {
            store.delete_rollups_before(step, before)
        })
    }
    fn acquire_lease(&self, node: &str, ttl: Millis) -> Result<Option<Lease>, StoreError> {
        self.call("acquire_lease", |store| store.acquire_lease(node, ttl))
    }
    fn renew_lease(&self, lease: &Lease, ttl: Millis) -> Result<bool, StoreError> {
        self.call("renew_lease", |store| store.renew_lease(lease, ttl))
    }
    fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.call("release_lease", |store| store.release_lease(lease))
    }
    fn lease_holder(&self) -> Result<Option<LeaseHolder>, StoreError> {
        self.call("lease_holder", |store| store.lease_holder())
    }
    fn publish_states(&self, lease: &Lease, states: &[u8]) -> Result<(), StoreError> {
        self.call("publish_states", |store| {
            store.publish_states(lease, states)
        })
    }
    fn published_states(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.call("published_states", |store| store.published_states())
    }
    fn put_session(&self, key: &str, expires: Millis) -> Result<(), StoreError> {
        self.call("put_session", |store| store.put_session(key, expires))
    }
    fn session_expires(&self, key: &str) -> Result<Option<Millis>, StoreError> {
        self.call("session_expires", |store| store.session_expires(key))
    }
    fn delete_session(&self, key: &str) -> Result<(), StoreError> {
        self.call("delete_session", |store| store.delete_session(key))
    }
    fn delete_sessions_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.call("delete_sessions_expired", |store| {
            store.delete_sessions_expired(now)
        })
    }
    fn heartbeat(&self, status: &NodeStatus) -> Result<(), StoreError> {
        self.call("heartbeat", |store| store.heartbeat(status))
    }
    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        self.call("nodes", |store| store.nodes())
    }
    fn forget_node(&self, name: &str) -> Result<(), StoreError> {
        self.call("forget_node", |store| store.forget_node(name))
    }
    fn record_transitions_to(
        &self,
        lease: &Lease,
        transitions: &[Transition],
        targets: &[Vec<String>],
    ) -> Result<(), StoreError> {
        self.call("record_transitions", |store| {
            store.record_transitions_to(lease, transitions, targets)
        })
    }
    fn pairs(&self) -> Result<Vec<PairRecord>, StoreError> {
        self.call("pairs", |store| store.pairs())
    }
    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError> {
        self.call("incidents", |store| store.incidents(from, to))
    }
    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        self.call("incident", |store| store.incident(id))
    }
    fn claim_deliveries(
        &self,
        now: Millis,
        claim: &Claim<'_>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.call("claim_deliveries", |store| {
            store.claim_deliveries(now, claim, limit)
        })
    }
    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError> {
        self.call("next_delivery_time", |store| store.next_delivery_time())
    }
    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.call("finish_delivery", |store| {
            store.finish_delivery(delivery, call, retry_at)
        })
    }
    fn bury_delivery(&self, delivery: i64, call: &HookCall) -> Result<(), StoreError> {
        self.call("bury_delivery", |store| store.bury_delivery(delivery, call))
    }
    fn retry_dead(&self, id: &str, now: Millis) -> Result<u64, StoreError> {
        self.call("retry_dead", |store| store.retry_dead(id, now))
    }
    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        self.call("pending_deliveries", |store| store.pending_deliveries())
    }
    fn undelivered(&self) -> Result<std::collections::BTreeMap<String, bool>, StoreError> {
        self.call("undelivered", |store| store.undelivered())
    }
    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.call("delete_incidents_resolved_before", |store| {
            store.delete_incidents_resolved_before(before)
        })
    }
}
