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

use std::sync::Arc;

use crate::duration::Millis;

/// One value of one series at one time, as a sender gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric's name (`node_load1`, `system.cpu.time`), shared by the
    /// points of one metric or series.
    pub metric: Arc<str>,
    pub labels: Labels,
    pub kind: Kind,
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    pub ts: Millis,
}

impl Point {
    /// The value of label `name`, if the point has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }
}

/// A point's labels (Prometheus) or attributes (OTLP): those it shares with
/// the other points of its resource or series, kept once whatever the number
/// of points, then its own. Where a name is repeated, the last one counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Labels {
    pub shared: Arc<[(String, String)]>,
    pub own: Arc<[(String, String)]>,
}

impl Labels {
    /// Labels of one point alone.
    pub fn of(labels: Vec<(String, String)>) -> Self {
        Labels {
            shared: Arc::from([]),
            own: labels.into(),
        }
    }

    /// The value of label `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.own
            .iter()
            .rev()
            .chain(self.shared.iter().rev())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every label, the shared ones first.
    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.shared.iter().chain(self.own.iter())
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
        *point.metric == *self.metric
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
    /// The preset it is a field of, if any. A host that sends a metric of
    /// that very name gets its own values instead, and where two presets
    /// make one field for a host, the first to make it keeps it. (An
    /// explicit mapping wins over a metric of its name.)
    pub preset: Option<&'static str>,
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

/// The most memory a request's decoded form may take, as
/// [`decoded_size`] estimates it; a bigger one is refused before decoding.
pub const DECODED_BUDGET: usize = 256 << 20;

/// An upper estimate of the memory a protobuf message takes once decoded:
/// every submessage counted at 128 bytes (the size of the biggest structs
/// it can become), every other field at 24 bytes and its length. A few
/// bytes on the wire can be a struct of a hundred (an empty message is two
/// bytes): the body's size alone does not bound the memory. Read from the
/// wire without decoding; a length-delimited field is taken for a message
/// when its bytes read as one. Stops counting past `limit`.
pub fn decoded_size(raw: &[u8], limit: usize) -> usize {
    let mut size = 0;
    walk(raw, 0, &mut size, limit);
    size
}

/// Adds `raw`'s fields to `size`; false (and nothing added) when `raw` is
/// not a message.
fn walk(mut raw: &[u8], depth: u32, size: &mut usize, limit: usize) -> bool {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let before = *size;
    while !raw.is_empty() {
        if *size > limit {
            return true;
        }
        let Ok((_, wire_type)) = decode_key(&mut raw) else {
            *size = before;
            return false;
        };
        let skip = match wire_type {
            WireType::Varint => match decode_varint(&mut raw) {
                Ok(_) => 0,
                Err(_) => {
                    *size = before;
                    return false;
                }
            },
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => match decode_varint(&mut raw)
                .ok()
                .and_then(|length| usize::try_from(length).ok())
            {
                Some(length) => length,
                None => {
                    *size = before;
                    return false;
                }
            },
            WireType::StartGroup | WireType::EndGroup => {
                *size = before;
                return false;
            }
        };
        let Some(payload) = raw.get(..skip) else {
            *size = before;
            return false;
        };
        raw = &raw[skip..];
        let message = wire_type == WireType::LengthDelimited
            && depth < 16
            && (payload.is_empty() || walk(payload, depth + 1, size, limit));
        *size += if message { 128 } else { 24 + payload.len() };
    }
    true
}

/// [`decoded_size`] for a JSON body: every object at 128 bytes, every other
/// value (each comma) at 24, and the text itself.
pub fn json_decoded_size(body: &[u8]) -> usize {
    let objects = memchr::memchr_iter(b'{', body).count();
    let values = memchr::memchr_iter(b',', body).count();
    objects * 128 + values * 24 + body.len()
}
