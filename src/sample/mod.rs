//! Samples (docs/engine.md, Samples): one host's metrics for one collection tick.
//!
//! [`SampleReader`] parses the JSON form `{"host": ..., "ts": ..., "metrics": {...}}`
//! straight into reusable buffers: nested metric objects are flattened with
//! dots while parsing, every value is checked, and a bad sample is rejected
//! whole with a [`SampleError`] that names the part. Parsing a line allocates
//! nothing once the buffers have grown, which keeps replay fast.
//!
//! Lines of the usual shape (flat metrics, no escapes) are read by a strict
//! fast path ([`fast`]); everything else, and every error, goes through serde_json.

use serde::de::{self, DeserializeSeed};

pub mod batch;
mod fast;
mod reference;

use reference::{SampleSeed, syntax_error};

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

    /// The fast parser alone: `None` when it does not take `text` (which
    /// [`SampleReader::parse`] then gives to the reference parser). For tests
    /// and fuzzing, which check that both parsers agree.
    pub fn parse_fast(&mut self, text: &[u8]) -> Option<Result<(), SampleError>> {
        self.clear();
        fast::parse(text, self).then(|| self.check_duplicates())
    }

    /// Parses `text` as a sample's `metrics` object alone (the counters of
    /// `POST /api/v1/metrics`): the same rules and the same errors as inside
    /// a sample. The host and time are left empty.
    pub fn parse_metrics(&mut self, text: &[u8]) -> Result<(), SampleError> {
        self.clear();
        let mut deserializer = serde_json::Deserializer::from_slice(text);
        let parsed = reference::MetricsSeed { reader: self }
            .deserialize(&mut deserializer)
            .and_then(|()| deserializer.end());
        if let Err(e) = parsed {
            return Err(self.error.take().unwrap_or_else(|| syntax_error(&e)));
        }
        self.check_duplicates()
    }

    /// The reference parser alone (serde), for tests and fuzzing.
    pub fn parse_reference(&mut self, text: &[u8]) -> Result<(), SampleError> {
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
