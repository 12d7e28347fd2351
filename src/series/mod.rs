//! Series from the standard senders (OTLP, Prometheus remote write, scraped
//! `/metrics` pages) made into alertd's samples (docs/ingest.md).
//!
//! A sender speaks in *points*: one value of one series (a metric name and its
//! labels) at one time, a gauge or a counter. alertd keeps one sample per host
//! per collection interval, with named fields. The [`Translator`] is that
//! mapping, the same for every way in: it finds each point's host in its
//! labels, the fields it feeds (the metric's own name with its other labels
//! summed away, explicit mappings, presets), turns counters into increases,
//! and puts the points of one host and one interval into one sample.
//!
//! It is pure (no clock, no I/O): the caller gives the time, stores the
//! samples, and then [`Translator::commit`]s or [`Translator::rollback`]s, so
//! that what it remembers (counter totals, which intervals are done) never
//! runs ahead of the store.

pub mod exposition;
pub mod otlp;
pub mod preset;
pub mod remote_write;
mod translator;

pub use translator::{FORGET_AFTER, Refusals, Translation, Translator};

use crate::duration::Millis;

/// One value of one series at one time, as a sender gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric's name (`node_load1`, `system.cpu.time`).
    pub metric: String,
    /// Its labels (Prometheus) or attributes (OTLP, the resource's first):
    /// where a name is repeated, the last one counts.
    pub labels: Vec<(String, String)>,
    pub kind: Kind,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub ts: Millis,
}

impl Point {
    /// The value of label `name`, if the point has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What a point's value is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A value as it is now: taken as it is.
    Gauge,
    /// A running total since `start` (when the sender says): what is
    /// stored is its increase since the series' previous point.
    Cumulative { start: Option<Millis> },
    /// The increase over the point's own interval: stored as it is, the
    /// increases of one interval added up.
    Delta,
}

/// A set of points from one request (or one scrape).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub points: Vec<Point>,
    /// The host of every point (a scrape target's `host`); otherwise each
    /// point's host is read from its labels.
    pub host: Option<String>,
}

/// Which series a derived field reads: a metric, and labels it must have.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

/// A label the series must have with one of `values`; `names` are
/// alternatives (the first the series has is read), for senders that call
/// one label by several names.
#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub names: Vec<String>,
    pub values: Vec<String>,
}

impl Selector {
    fn matches(&self, point: &Point) -> bool {
        point.metric == self.metric
            && self.matchers.iter().all(|matcher| {
                matcher
                    .names
                    .iter()
                    .find_map(|name| point.label(name))
                    .is_some_and(|value| matcher.values.iter().any(|v| v == value))
            })
    }
}

/// How a derived field's inputs make its value. Each series feeds the
/// first of the field's selectors it matches; `s0`, `s1` are the sums of
/// the values fed to selectors 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Combine {
    /// `s0 + s1 + ...`: a metric's series added up.
    #[default]
    Sum,
    /// `100 × (1 − s0 ÷ (s0 + s1))`, two decimals: the share of time (or
    /// memory) not idle (available), when selector 0 reads the idle part and
    /// selector 1 the rest.
    BusyPercent,
    /// `100 × (1 − s0 ÷ s1)`, two decimals: selector 0 the part available,
    /// selector 1 the whole.
    UsedPercent,
    /// `s0 ÷ 1024`, whole: bytes as KB.
    Kibibytes,
}

/// A field made from selected series.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub field: String,
    pub inputs: Vec<Selector>,
    pub combine: Combine,
    /// A preset's field: a host that sends a metric of that very name gets
    /// its own values instead. (An explicit mapping wins over a metric of
    /// its name.)
    pub preset: bool,
}

/// How points become fields (`ingest` in the configuration, validated).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Labels (attributes) that name a point's host, in order.
    pub host_labels: Vec<String>,
    /// Metric names (with `*` for any run of characters) passed through as
    /// fields of their own name; none passed through when empty.
    pub keep: Vec<String>,
    /// Explicit mappings and presets' fields.
    pub derived: Vec<Derived>,
    /// The collection interval: the points of one host within one such
    /// interval are one sample.
    pub interval: Millis,
    /// The most series whose totals are remembered (counters); a new one
    /// past it is refused.
    pub max_series: usize,
}

impl Default for Mapping {
    fn default() -> Self {
        Mapping {
            host_labels: vec!["host.name".into(), "host".into(), "instance".into()],
            keep: vec!["*".into()],
            derived: preset::all(),
            interval: 10_000,
            max_series: 1_000_000,
        }
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests;
