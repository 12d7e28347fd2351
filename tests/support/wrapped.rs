//! A store that runs a check before every call to the real SQLite store:
//! the check may fail the call (fault injection) or hold it (to catch the
//! service in the middle of something).

use alertd::engine::SavedPair;
use alertd::incident::Transition;
use alertd::sample::Sample;
use alertd::store::{
    Delivery, HookCall, HostSeen, IncidentDetail, Incidents, SqliteStore, Store, StoreError,
};

/// What runs before each call, with the method's name.
pub type Before = Box<dyn Fn(&str) -> Result<(), StoreError> + Send + Sync>;

pub struct Wrapped {
    pub inner: SqliteStore,
    pub before: Before,
}

impl Store for Wrapped {
    fn append_samples(&self, samples: &[Sample]) -> Result<(), StoreError> {
        (self.before)("append_samples")?;
        self.inner.append_samples(samples)
    }
    fn scan_samples_before(
        &self,
        from: i64,
        to: i64,
        cursor: i64,
        visit: &mut dyn FnMut(Sample),
    ) -> Result<(), StoreError> {
        (self.before)("scan_samples_before")?;
        self.inner.scan_samples_before(from, to, cursor, visit)
    }
    fn sample_cursor(&self) -> Result<i64, StoreError> {
        (self.before)("sample_cursor")?;
        self.inner.sample_cursor()
    }
    fn latest_samples(&self) -> Result<Vec<Sample>, StoreError> {
        (self.before)("latest_samples")?;
        self.inner.latest_samples()
    }
    fn hosts(&self) -> Result<Vec<HostSeen>, StoreError> {
        (self.before)("hosts")?;
        self.inner.hosts()
    }
    fn delete_samples_before(&self, before: i64) -> Result<u64, StoreError> {
        (self.before)("delete_samples_before")?;
        self.inner.delete_samples_before(before)
    }
    fn record_transitions(
        &self,
        transitions: &[Transition],
        targets: &[String],
    ) -> Result<(), StoreError> {
        (self.before)("record_transitions")?;
        self.inner.record_transitions(transitions, targets)
    }
    fn pairs(&self) -> Result<Vec<SavedPair>, StoreError> {
        (self.before)("pairs")?;
        self.inner.pairs()
    }
    fn incidents(&self, from: i64, to: i64) -> Result<Incidents, StoreError> {
        (self.before)("incidents")?;
        self.inner.incidents(from, to)
    }
    fn incident(&self, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
        (self.before)("incident")?;
        self.inner.incident(id)
    }
    fn due_deliveries(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        (self.before)("due_deliveries")?;
        self.inner.due_deliveries(now, limit)
    }
    fn next_delivery_time(&self) -> Result<Option<i64>, StoreError> {
        (self.before)("next_delivery_time")?;
        self.inner.next_delivery_time()
    }
    fn finish_delivery(
        &self,
        delivery: i64,
        call: &HookCall,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        (self.before)("finish_delivery")?;
        self.inner.finish_delivery(delivery, call, retry_at)
    }
    fn pending_deliveries(&self) -> Result<u64, StoreError> {
        (self.before)("pending_deliveries")?;
        self.inner.pending_deliveries()
    }
    fn delete_incidents_resolved_before(&self, before: i64) -> Result<u64, StoreError> {
        (self.before)("delete_incidents_resolved_before")?;
        self.inner.delete_incidents_resolved_before(before)
    }
}
