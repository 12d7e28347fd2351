//! A store that remembers its last failure, so that `/healthz` reports a
//! store that fails requests, not only one that cannot answer at all.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    Delivery, HookCall, HostSeen, IncidentDetail, Incidents, SampleCursor, Store, StoreError,
};
use crate::duration::Millis;
use crate::engine::SavedPair;
use crate::incident::Transition;
use crate::sample::Sample;

/// Wraps any store; every call goes through, its failures are noted.
pub struct Observed {
    inner: Arc<dyn Store>,
    last_failure: Mutex<Option<(Instant, String)>>,
}

impl Observed {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Observed {
            inner,
            last_failure: Mutex::new(None),
        }
    }

    /// The last failure within `recent`, if any: what it said.
    pub fn failed_within(&self, recent: Duration) -> Option<String> {
        let last = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() <= recent)
            .map(|(_, what)| what.clone())
    }

    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(error) = &result {
            *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), error.to_string()));
        }
        result
    }
}

impl Store for Observed {
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        self.noted(self.inner.append_samples(samples))
    }
    fn scan_samples_before(
        &self,
        from: Millis,
        to: Millis,
        cursor: SampleCursor,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        self.noted(self.inner.scan_samples_before(from, to, cursor, visit))
    }
    fn sample_cursor(&self) -> Result<SampleCursor, StoreError> {
        self.noted(self.inner.sample_cursor())
    }
    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        self.noted(self.inner.latest_samples())
    }
    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError> {
        self.noted(self.inner.hosts())
    }
    fn delete_samples_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.noted(self.inner.delete_samples_before(before))
    }
    fn record_transitions(
        &self,
        transitions: &[Transition],
        targets: &[String],
    ) -> Result<(), StoreError> {
        self.noted(self.inner.record_transitions(transitions, targets))
    }
    fn pairs(&self) -> Result<Vec<SavedPair>, StoreError> {
        self.noted(self.inner.pairs())
    }
    fn incidents(&self, from: Millis, to: Millis) -> Result<Incidents, StoreError> {
        self.noted(self.inner.incidents(from, to))
    }
    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        self.noted(self.inner.incident(id))
    }
    fn due_deliveries(&self, now: Millis, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.noted(self.inner.due_deliveries(now, limit))
    }
    fn next_delivery_time(&self) -> Result<Option<Millis>, StoreError> {
        self.noted(self.inner.next_delivery_time())
    }
    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<Millis>,
    ) -> Result<(), StoreError> {
        self.noted(self.inner.finish_delivery(delivery, call, retry_at))
    }
    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        self.noted(self.inner.pending_deliveries())
    }
    fn delete_incidents_resolved_before(&self, before: Millis) -> Result<u64, StoreError> {
        self.noted(self.inner.delete_incidents_resolved_before(before))
    }
}
