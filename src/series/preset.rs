//! Presets: the built-in fields (`cpu.usage`, `mem.usage`, `mem.free`) made
//! from what node_exporter and the OpenTelemetry Collector's host metrics
//! receiver report, so that the original's rules work on a fleet that runs
//! only those (docs/ingest.md, Presets).
//!
//! Each is computed the way alertd's own collector computes it: CPU busy
//! over the interval (idle and I/O wait count as idle), memory in use as
//! `(total − available) ÷ total`, free memory as what is available, in KB.

use super::{Combine, Derived, Matcher, Selector};

/// A preset's name as the configuration writes it, and its fields.
pub const NAMES: &[&str] = &["node_exporter", "otel_hostmetrics"];

/// The fields of the preset `name`, if there is one so named.
pub fn fields(name: &str) -> Option<Vec<Derived>> {
    let fields = match name {
        "node_exporter" => node_exporter(),
        "otel_hostmetrics" => otel_hostmetrics(),
        _ => return None,
    };
    let name = NAMES.iter().find(|known| **known == name)?;
    Some(
        fields
            .into_iter()
            .map(|field| Derived {
                preset: Some(name),
                ..field
            })
            .collect(),
    )
}

/// Every preset's fields (the default: each reads only its own metrics).
pub fn all() -> Vec<Derived> {
    NAMES
        .iter()
        .filter_map(|name| fields(name))
        .flatten()
        .collect()
}

fn selector(metric: &str, matchers: &[(&[&str], &[&str])]) -> Selector {
    Selector {
        metric: metric.to_string(),
        matchers: matchers
            .iter()
            .map(|(names, values)| Matcher {
                names: names.iter().map(|name| name.to_string()).collect(),
                values: values.iter().map(|value| value.to_string()).collect(),
            })
            .collect(),
    }
}

fn derived(field: &str, inputs: Vec<Selector>, combine: Combine) -> Derived {
    Derived {
        field: field.to_string(),
        inputs,
        combine,
        preset: None,
    }
}

/// node_exporter: `node_cpu_seconds_total{mode}` and `node_memory_*_bytes`.
fn node_exporter() -> Vec<Derived> {
    let cpu = "node_cpu_seconds_total";
    vec![
        derived(
            "cpu.usage",
            vec![
                selector(cpu, &[(&["mode"], &["idle", "iowait"])]),
                selector(cpu, &[]),
            ],
            Combine::BusyPercent,
        ),
        derived(
            "mem.usage",
            vec![
                selector("node_memory_MemAvailable_bytes", &[]),
                selector("node_memory_MemTotal_bytes", &[]),
            ],
            Combine::UsedPercent,
        ),
        derived(
            "mem.free",
            vec![selector("node_memory_MemAvailable_bytes", &[])],
            Combine::Kibibytes,
        ),
    ]
}

/// The Collector's host metrics receiver: `system.cpu.time{state}` and
/// `system.memory.usage{state}` (the state attribute under each of the names
/// it has had).
fn otel_hostmetrics() -> Vec<Derived> {
    let state: &[&str] = &["state", "system.cpu.state", "cpu.state"];
    let memory_state: &[&str] = &["state", "system.memory.state"];
    let available: &[&str] = &["free", "buffered", "cached", "slab_reclaimable"];
    vec![
        derived(
            "cpu.usage",
            vec![
                selector("system.cpu.time", &[(state, &["idle", "wait"])]),
                selector("system.cpu.time", &[]),
            ],
            Combine::BusyPercent,
        ),
        derived(
            "mem.usage",
            vec![
                selector("system.memory.usage", &[(memory_state, available)]),
                selector("system.memory.usage", &[(memory_state, &["used"])]),
            ],
            Combine::BusyPercent,
        ),
        derived(
            "mem.free",
            vec![selector(
                "system.memory.usage",
                &[(memory_state, available)],
            )],
            Combine::Kibibytes,
        ),
    ]
}
