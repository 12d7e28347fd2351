//! The monitoring collector (docs/engine.md, The monitoring collector): one
//! sample of this node every `collectionInterval`, with CPU and memory from the
//! OS and the counters the application pushed since the last collection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sysinfo::System;
use tokio::sync::watch;
use tracing::{debug, error};

use super::{Service, Woke, next_multiple};
use crate::sample::Sample;

/// The application counters, 0 unless pushed (docs/engine.md, The monitoring collector).
pub const COUNTERS: &[&str] = &[
    "requests.count",
    "requests.latency_sum",
    "eventsIn.count",
    "eventsOut.count",
    "warnings.count",
    "errors.count",
];

/// Counters pushed since the last collection, by field.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<String, f64>>);

/// A push that would take a counter, or the latency average computed from
/// two of them, past the largest number that can be stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{field}: {reason}, past the largest number that can be stored (about 1.8e308); nothing of \
     this push was counted"
)]
pub struct CounterOverflow {
    pub field: String,
    pub reason: String,
}

impl Counters {
    /// Adds pushed values (already validated: field names, finite numbers),
    /// all or none: refused when a total, or the latency average the next
    /// collection computes from the totals, would not be finite.
    pub fn add(&self, values: &[(String, f64)]) -> Result<(), CounterOverflow> {
        let mut counters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let totals: Vec<(String, f64)> = summed(&counters, values)?
            .into_iter()
            .map(|(field, total)| (field.to_string(), total))
            .collect();
        for (field, total) in totals {
            counters.insert(field, total);
        }
        Ok(())
    }

    /// Whether [`Counters::add`] would take `values` now.
    pub fn check(&self, values: &[(String, f64)]) -> Result<(), CounterOverflow> {
        let counters = self.0.lock().unwrap_or_else(|p| p.into_inner());
        summed(&counters, values).map(|_| ())
    }

    /// The counters pushed since the last collection.
    pub fn totals(&self) -> BTreeMap<String, f64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the counters, leaving them all at 0.
    pub fn take(&self) -> BTreeMap<String, f64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A number as a person reads it in an error: `1.7e308`, not 309 digits.
struct Short(f64);

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let magnitude = self.0.abs();
        if magnitude != 0.0 && !(1e-6..1e15).contains(&magnitude) {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The metrics of one collection: the OS readings and the counters.
pub fn collect(system: &mut System, counters: BTreeMap<String, f64>) -> Vec<(String, f64)> {
    system.refresh_cpu_usage();
    system.refresh_memory();
    let mut metrics = Vec::with_capacity(COUNTERS.len() + 4 + counters.len());
    let cpu = f64::from(system.global_cpu_usage()).clamp(0.0, 100.0);
    metrics.push(("cpu.usage".to_string(), round(cpu)));
    let total = system.total_memory();
    if total > 0 {
        let used = total.saturating_sub(system.available_memory());
        metrics.push((
            "mem.usage".to_string(),
            round(used as f64 * 100.0 / total as f64),
        ));
    }
    metrics.push((
        "mem.free".to_string(),
        (system.available_memory() / 1024) as f64,
    ));
    metrics.extend(counter_fields(counters));
    metrics
}

/// The fields a collection makes of the pushed counters: every built-in
/// counter (0 unless pushed), the latency average, and the custom ones.
pub fn counter_fields(mut counters: BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut metrics = Vec::with_capacity(COUNTERS.len() + 1 + counters.len());
    // Computed below, whatever was pushed under its name.
    counters.remove("requests.latency_avg");
    let count = counters.get("requests.count").copied().unwrap_or(0.0);
    let sum = counters.get("requests.latency_sum").copied().unwrap_or(0.0);
    for field in COUNTERS {
        let value = counters.remove(*field).unwrap_or(0.0);
        metrics.push((field.to_string(), value));
    }
    if count > 0.0 {
        metrics.push(("requests.latency_avg".to_string(), sum / count));
    }
    // Custom counters: pushed fields beyond the built-in ones.
    metrics.extend(counters);
    // [`Counters::add`] keeps every total and the average finite; should a
    // reading of the OS ever not be, the field is left out of the sample
    // rather than the sample refused by the store.
    metrics.retain(|(field, value)| {
        let finite = value.is_finite();
        if !finite {
            error!(
                field,
                value, "a collected value is not finite: left out of this sample"
            );
        }
        finite
    });
    metrics
}

/// Two decimals are all a percentage needs.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Collects a sample every `collectionInterval` while monitoring is enabled.
pub(super) async fn collector(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let mut system = System::new();
    // CPU usage is measured between two refreshes: this is the first.
    system.refresh_cpu_usage();
    loop {
        let monitoring = service.read_config(|config| config.monitoring.clone());
        let at = next_multiple(service.now(), monitoring.collection_interval);
        let woke = service.wait_until(at, &mut stop).await;
        if woke == Woke::Stop {
            return;
        }
        if !monitoring.enabled || woke == Woke::Reload {
            // Disabled, or woken by a reload: pushed counters are kept for
            // when collection runs (and cleared if it never does).
            if !monitoring.enabled {
                service.ingest.counters.take();
            }
            continue;
        }
        let metrics = collect(&mut system, service.ingest.counters.take());
        let sample = Sample {
            host: service.host_name().to_string(),
            ts: at,
            metrics,
        };
        debug!(?sample, "collected");
        let worker = service.clone();
        match tokio::task::spawn_blocking(move || worker.ingest(vec![sample])).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => error!(%error, "cannot store this node's sample"),
            Err(error) => error!(%error, "collection panicked"),
        }
    }
}

/// The totals `values` would make of `counters`: refused when a total, or
/// the latency average the next collection computes from the totals, would
/// not be finite.
fn summed<'a>(
    counters: &'a BTreeMap<String, f64>,
    values: &'a [(String, f64)],
) -> Result<BTreeMap<&'a str, f64>, CounterOverflow> {
    let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
    for (field, value) in values {
        let total = totals
            .entry(field)
            .or_insert_with(|| counters.get(field).copied().unwrap_or(0.0));
        let sum = *total + value;
        if !sum.is_finite() {
            return Err(CounterOverflow {
                field: field.clone(),
                reason: format!(
                    "adding {} to the {} counted since the last collection gives {sum}",
                    Short(*value),
                    Short(*total)
                ),
            });
        }
        *total = sum;
    }
    let total = |field: &str| {
        totals
            .get(field)
            .or_else(|| counters.get(field))
            .copied()
            .unwrap_or(0.0)
    };
    let (count, sum) = (total("requests.count"), total("requests.latency_sum"));
    if count > 0.0 && !(sum / count).is_finite() {
        return Err(CounterOverflow {
            field: "requests.latency_avg".to_string(),
            reason: format!(
                "requests.latency_sum / requests.count would be {} / {} = {}",
                Short(sum),
                Short(count),
                sum / count
            ),
        });
    }
    Ok(totals)
}
