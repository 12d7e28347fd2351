//! Samples (SPEC section 4): one host's metrics for one collection tick.
//!
//! [`SampleReader`] parses the JSON form `{"host": ..., "ts": ..., "metrics": {...}}`
//! straight into reusable buffers: nested metric objects are flattened with
//! dots while parsing, every value is checked, and a bad sample is rejected
//! whole with a [`SampleError`] that names the part. Parsing a line allocates
//! nothing once the buffers have grown, which keeps replay fast.
//!
//! Lines of the usual shape (flat metrics, no escapes) are read by a strict
//! fast path ([`fast`]); everything else, and every error, goes through serde_json.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

mod fast;

use crate::duration::Millis;
use crate::field::checked_field_hash;

/// The latest accepted timestamp: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP: Millis = 253_402_300_799_999;

/// Longest accepted host name, in bytes.
pub const MAX_HOST_NAME_LEN: usize = 255;

/// A validated sample that owns its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub host: String,
    pub ts: Millis,
    /// Flattened field names and their finite values, in the order given.
    pub metrics: Vec<(String, f64)>,
}

impl Sample {
    pub fn new(host: impl Into<String>, ts: Millis, metrics: &[(&str, f64)]) -> Self {
        Sample {
            host: host.into(),
            ts,
            metrics: metrics.iter().map(|&(f, v)| (f.to_string(), v)).collect(),
        }
    }

    /// Parses one sample from JSON text.
    pub fn from_json(text: &[u8]) -> Result<Sample, SampleError> {
        let mut reader = SampleReader::default();
        reader.parse(text)?;
        Ok(reader.to_sample())
    }
}

/// Why a sample was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("invalid JSON at column {column}: {message}")]
    Syntax { column: usize, message: String },
    #[error("expected a JSON object with host, ts and metrics")]
    NotAnObject,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("unknown key {0:?} (a sample has host, ts and metrics)")]
    UnknownKey(String),
    #[error("duplicate key {0:?}")]
    DuplicateKey(&'static str),
    #[error("host: {0}")]
    Host(&'static str),
    #[error("ts: {0}")]
    Timestamp(String),
    #[error("metrics: expected an object of fields and numbers, got {0}")]
    MetricsNotAnObject(&'static str),
    #[error("metrics.{field}: expected a finite number, got {got}")]
    NotANumber { field: String, got: &'static str },
    #[error("metrics.{0}: field names are 1 to 128 of the characters A-Z a-z 0-9 _ . : -")]
    BadFieldName(String),
    #[error("metrics.{0}: duplicate field")]
    DuplicateField(String),
}

/// One metric of the sample being parsed: a name in [`SampleReader::names`] and its value.
#[derive(Debug, Clone, Copy)]
struct Metric {
    name_start: u32,
    name_end: u32,
    hash: u64,
    value: f64,
}

/// Parses samples into reusable buffers; see the module documentation.
#[derive(Debug, Default)]
pub struct SampleReader {
    host: String,
    ts: Millis,
    /// The dotted path of the object being parsed (empty at the top of `metrics`).
    prefix: String,
    /// Where the path of the metric being parsed starts in `names`.
    path_start: usize,
    /// The names of the metrics parsed so far, end to end.
    names: String,
    metrics: Vec<Metric>,
    /// The precise error found by the visitors; serde only carries a string.
    error: Option<SampleError>,
}

impl SampleReader {
    /// Parses `text` as one sample; on success its parts are readable until
    /// the next call.
    pub fn parse(&mut self, text: &[u8]) -> Result<(), SampleError> {
        self.clear();
        if fast::parse(text, self) {
            return self.check_duplicates();
        }
        self.parse_with_serde(text)
    }

    fn clear(&mut self) {
        self.host.clear();
        self.prefix.clear();
        self.names.clear();
        self.metrics.clear();
        self.error = None;
    }

    /// The reference parser: any JSON, every error with its precise message.
    fn parse_with_serde(&mut self, text: &[u8]) -> Result<(), SampleError> {
        self.clear();
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let parsed = SampleSeed { reader: self }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
        if let Err(e) = parsed {
            return Err(self.error.take().unwrap_or_else(|| syntax_error(&e)));
        }
        self.check_duplicates()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn ts(&self) -> Millis {
        self.ts
    }

    /// The metrics as (field, value), in the order given.
    pub fn metrics(&self) -> impl ExactSizeIterator<Item = (&str, f64)> + '_ {
        self.metrics.iter().map(|m| (self.name(m), m.value))
    }

    /// The metrics with each name's FNV-1a hash (see [`crate::field::field_hash`]), for fast lookups.
    pub fn hashed_metrics(&self) -> impl ExactSizeIterator<Item = (&str, u64, f64)> + '_ {
        self.metrics.iter().map(|m| (self.name(m), m.hash, m.value))
    }

    pub fn to_sample(&self) -> Sample {
        Sample {
            host: self.host.clone(),
            ts: self.ts,
            metrics: self.metrics().map(|(f, v)| (f.to_string(), v)).collect(),
        }
    }

    fn name(&self, metric: &Metric) -> &str {
        &self.names[metric.name_start as usize..metric.name_end as usize]
    }

    fn check_duplicates(&self) -> Result<(), SampleError> {
        for (i, a) in self.metrics.iter().enumerate() {
            for b in &self.metrics[..i] {
                if a.hash == b.hash && self.name(a) == self.name(b) {
                    return Err(SampleError::DuplicateField(self.name(a).to_string()));
                }
            }
        }
        Ok(())
    }

    /// Records a precise error and returns serde's carrier for it.
    fn fail<E: de::Error>(&mut self, error: SampleError) -> E {
        let carrier = E::custom(&error);
        self.error = Some(error);
        carrier
    }
}

fn syntax_error(error: &serde_json::Error) -> SampleError {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    };
    SampleError::Syntax {
        column: error.column(),
        message,
    }
}

struct SampleSeed<'r> {
    reader: &'r mut SampleReader,
}

impl<'de> DeserializeSeed<'de> for SampleSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SampleSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        let (mut host, mut ts, mut metrics) = (false, false, false);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Host => {
                    if host {
                        return Err(reader.fail(SampleError::DuplicateKey("host")));
                    }
                    host = true;
                    map.next_value_seed(HostSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Ts => {
                    if ts {
                        return Err(reader.fail(SampleError::DuplicateKey("ts")));
                    }
                    ts = true;
                    reader.ts = map.next_value_seed(TsSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Metrics => {
                    if metrics {
                        return Err(reader.fail(SampleError::DuplicateKey("metrics")));
                    }
                    metrics = true;
                    map.next_value_seed(MetricsSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Other(name) => {
                    return Err(reader.fail(SampleError::UnknownKey(name)));
                }
            }
        }
        for (present, name) in [(host, "host"), (ts, "ts"), (metrics, "metrics")] {
            if !present {
                return Err(reader.fail(SampleError::Missing(name)));
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }
}

enum Key {
    Host,
    Ts,
    Metrics,
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "host" => Key::Host,
            "ts" => Key::Ts,
            "metrics" => Key::Metrics,
            other => Key::Other(other.to_string()),
        })
    }
}

struct HostSeed<'r> {
    reader: &'r mut SampleReader,
}

impl<'de> DeserializeSeed<'de> for HostSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HostSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a host name")
    }

    fn visit_str<E: de::Error>(self, host: &str) -> Result<(), E> {
        let problem = if host.is_empty() {
            Some("must not be empty")
        } else if host.len() > MAX_HOST_NAME_LEN {
            Some("longer than 255 bytes")
        } else if host.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(self.reader.fail(SampleError::Host(problem)));
        }
        self.reader.host.push_str(host);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got an object")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got an array")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a boolean")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got null")))
    }
}

struct TsSeed<'r> {
    reader: &'r mut SampleReader,
}

impl TsSeed<'_> {
    fn range_error<E: de::Error>(self, shown: String) -> E {
        self.reader.fail(SampleError::Timestamp(format!(
            "{shown}: expected whole milliseconds since the Unix epoch, from 0 to {MAX_TIMESTAMP}"
        )))
    }
}

impl<'de> DeserializeSeed<'de> for TsSeed<'_> {
    type Value = Millis;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Millis, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TsSeed<'_> {
    type Value = Millis;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }

    fn visit_u64<E: de::Error>(self, ts: u64) -> Result<Millis, E> {
        if ts <= MAX_TIMESTAMP as u64 {
            Ok(ts as Millis)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_i64<E: de::Error>(self, ts: i64) -> Result<Millis, E> {
        if (0..=MAX_TIMESTAMP).contains(&ts) {
            Ok(ts)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_f64<E: de::Error>(self, ts: f64) -> Result<Millis, E> {
        if ts.fract() == 0.0 && (0.0..=MAX_TIMESTAMP as f64).contains(&ts) {
            Ok(ts as Millis)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Millis, E> {
        Err(self.range_error("a string".to_string()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Millis, E> {
        Err(self.range_error("a boolean".to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Millis, E> {
        Err(self.range_error("null".to_string()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(self.range_error("an array".to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(self.range_error("an object".to_string()))
    }
}

/// Visits the metrics object, or an object nested in it (whose dotted path
/// is `reader.prefix`).
struct MetricsSeed<'r> {
    reader: &'r mut SampleReader,
}

impl<'de> DeserializeSeed<'de> for MetricsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetricsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of metrics")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        while map
            .next_key_seed(PathKeySeed {
                reader: &mut *reader,
            })?
            .is_some()
        {
            map.next_value_seed(MetricValueSeed {
                reader: &mut *reader,
            })?;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.reader.fail(SampleError::MetricsNotAnObject("null")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("an array")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a string")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a boolean")))
    }
}

/// Starts the path of a metric at the end of `names`: the prefix, a dot, the
/// key (`cpu` + `usage` -> `cpu.usage`). A flat metric's name is written once
/// and kept where it is.
struct PathKeySeed<'r> {
    reader: &'r mut SampleReader,
}

impl<'de> DeserializeSeed<'de> for PathKeySeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for PathKeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        let reader = self.reader;
        reader.path_start = reader.names.len();
        if !reader.prefix.is_empty() {
            reader.names.push_str(&reader.prefix);
            reader.names.push('.');
        }
        reader.names.push_str(key);
        Ok(())
    }
}

/// A metric's value: a finite number, or an object nested under the path.
struct MetricValueSeed<'r> {
    reader: &'r mut SampleReader,
}

impl MetricValueSeed<'_> {
    fn path(&self) -> &str {
        &self.reader.names[self.reader.path_start..]
    }

    fn number<E: de::Error>(self, value: f64) -> Result<(), E> {
        let Some(hash) = checked_field_hash(self.path()) else {
            let path = self.path().to_string();
            return Err(self.reader.fail(SampleError::BadFieldName(path)));
        };
        let reader = self.reader;
        reader.metrics.push(Metric {
            name_start: reader.path_start as u32,
            name_end: reader.names.len() as u32,
            hash,
            value,
        });
        Ok(())
    }

    fn not_a_number<E: de::Error>(self, got: &'static str) -> E {
        let field = self.path().to_string();
        self.reader.fail(SampleError::NotANumber { field, got })
    }
}

impl<'de> DeserializeSeed<'de> for MetricValueSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MetricValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or an object")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        if value.is_finite() {
            self.number(value)
        } else {
            Err(self.not_a_number("a non-finite number"))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.number(value as f64)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.number(value as f64)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // The path names an object, not a metric: it becomes the prefix of
        // the keys inside, and leaves `names`.
        let reader = self.reader;
        let outer_prefix = reader.prefix.len();
        reader.prefix.clear();
        reader.prefix.push_str(&reader.names[reader.path_start..]);
        reader.names.truncate(reader.path_start);
        MetricsSeed {
            reader: &mut *reader,
        }
        .visit_map(map)?;
        // The outer prefix is the start of this one.
        reader.prefix.truncate(outer_prefix);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_number("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_a_number("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_number("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_a_number("an array"))
    }
}
