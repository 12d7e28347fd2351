//! Ingestion over HTTP: whole samples from any host (`POST /api/v1/samples`)
//! and counters for this node's next sample (`POST /api/v1/metrics`). A batch
//! is parsed and checked whole before anything of it is stored.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserializer;
use serde::de::{SeqAccess, Visitor};
use serde_json::json;
use serde_json::value::RawValue;

use super::{ApiError, ApiResult, blocking};
use crate::duration::{HumanDuration, Millis};
use crate::incident::rfc3339;
use crate::sample::{Sample, SampleReader};
use crate::service::Service;

/// `POST /api/v1/metrics`: counters for this node's next sample.
pub(super) async fn metrics(
    State(service): State<Arc<Service>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    let body = body?;
    if !service.read_config(|config| config.monitoring.enabled) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "monitoring is disabled on this node: set monitoring.enabled to collect counters",
        ));
    }
    // Say precisely what is wrong with a body that is not a JSON text at all.
    if let Err(error) = std::str::from_utf8(&body) {
        return Err(ApiError::bad_request(format!(
            "the body is not UTF-8: byte {} is not valid",
            error.valid_up_to()
        )));
    }
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        let hint =
            if body.windows(3).any(|w| w == b"NaN") || body.windows(8).any(|w| w == b"Infinity") {
                " (NaN and Infinity are not JSON numbers)"
            } else {
                ""
            };
        return Err(ApiError::bad_request(format!(
            "the body is not JSON: {error}{hint}"
        )));
    }
    // A counters object is a sample's metrics: the same rules, the same errors.
    let mut wrapped = Vec::with_capacity(body.len() + 32);
    wrapped.extend_from_slice(br#"{"host":"-","ts":0,"metrics":"#);
    wrapped.extend_from_slice(&body);
    wrapped.push(b'}');
    let mut reader = SampleReader::default();
    if let Err(error) = reader.parse(&wrapped) {
        // The wrapper cannot be at fault but for a body that is not one value.
        return Err(ApiError::bad_request(match error {
            crate::sample::SampleError::Syntax { .. } => {
                "expected a JSON object of counters and numbers".to_string()
            }
            other => other.to_string(),
        }));
    }
    let counters: Vec<(String, f64)> = reader
        .metrics()
        .map(|(field, value)| (field.to_string(), value))
        .collect();
    service
        .counters()
        .add(&counters)
        .map_err(|overflow| ApiError::bad_request(overflow.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A batch's first bad sample.
struct BadSample {
    index: usize,
    message: String,
}

/// Parses a batch: a JSON array of samples (or one sample), or NDJSON.
fn parse_batch(body: &[u8], ndjson: bool) -> Result<Vec<Sample>, BadSample> {
    if !ndjson && let Some(samples) = parse_array_fast(body) {
        return Ok(samples);
    }
    if ndjson {
        parse_ndjson(body)
    } else {
        parse_batch_reference(body)
    }
}

/// NDJSON: one sample per line, blank lines skipped.
fn parse_ndjson(body: &[u8]) -> Result<Vec<Sample>, BadSample> {
    parse_with(body, true)
}

/// An array (or one sample) read through serde: every error precise.
fn parse_batch_reference(body: &[u8]) -> Result<Vec<Sample>, BadSample> {
    parse_with(body, false)
}

fn parse_with(body: &[u8], ndjson: bool) -> Result<Vec<Sample>, BadSample> {
    let mut reader = SampleReader::default();
    let mut samples = Vec::new();
    let mut one = |index: usize, text: &[u8], line: Option<usize>| {
        reader.parse(text).map_err(|error| BadSample {
            index,
            message: match line {
                Some(line) => format!("sample {index} (line {line}): {error}"),
                None => format!("sample {index}: {error}"),
            },
        })?;
        samples.push(reader.to_sample());
        Ok(())
    };
    if ndjson {
        let mut index = 0;
        for (number, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            one(index, line, Some(number + 1))?;
            index += 1;
        }
    } else {
        let trimmed = body.trim_ascii_start();
        if trimmed.first() == Some(&b'{') {
            one(0, body, None)?;
        } else {
            let parsed = Cell::new(0);
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let elements = serde::de::DeserializeSeed::deserialize(
                RawSamples { parsed: &parsed },
                &mut deserializer,
            )
            .and_then(|elements| deserializer.end().map(|()| elements))
            .map_err(|error| BadSample {
                index: parsed.get(),
                message: format!(
                    "expected a JSON array of samples (or NDJSON with Content-Type: \
                         application/x-ndjson): {error}"
                ),
            })?;
            for (index, element) in elements.iter().enumerate() {
                one(index, element.get().as_bytes(), None)?;
            }
        }
    }
    Ok(samples)
}

/// A JSON array of valid samples, in one pass over the text; `None` for
/// anything else, which [`parse_batch`] then reads again to say what is wrong.
fn parse_array_fast(body: &[u8]) -> Option<Vec<Sample>> {
    let elements = split_array(body)?;
    let mut reader = SampleReader::default();
    let mut samples = Vec::with_capacity(elements.len());
    for element in elements {
        reader.parse(element).ok()?;
        samples.push(reader.to_sample());
    }
    Some(samples)
}

/// The text of each element of a JSON array, found by tracking strings and
/// nesting only; `None` for anything unusual (the caller then parses the
/// whole body with serde, which says precisely what is wrong). Each element
/// is parsed, and so checked, on its own afterwards.
fn split_array(body: &[u8]) -> Option<Vec<&[u8]>> {
    let body = body.trim_ascii();
    let inner = body.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let mut elements = Vec::with_capacity(inner.len() / 200 + 1);
    if inner.trim_ascii().is_empty() {
        return Some(elements);
    }
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < inner.len() {
        match inner[i] {
            b'"' => {
                // To the closing quote, past escaped characters.
                i += 1;
                loop {
                    let at = i + memchr::memchr2(b'"', b'\\', inner.get(i..)?)?;
                    if inner[at] == b'\\' {
                        i = at + 2;
                    } else {
                        i = at;
                        break;
                    }
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 0 => {
                elements.push(inner[start..i].trim_ascii());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return None;
    }
    elements.push(inner[start..].trim_ascii());
    // An empty element is a syntax error: let serde name it.
    (!elements.iter().any(|element| element.is_empty())).then_some(elements)
}

/// Reads a JSON array into its elements' text, counting the elements read so
/// that a syntax error can name the sample it is in.
struct RawSamples<'c> {
    parsed: &'c Cell<usize>,
}

impl<'de> serde::de::DeserializeSeed<'de> for RawSamples<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RawSamples<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of samples")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(element) = seq.next_element()? {
            elements.push(element);
            self.parsed.set(elements.len());
        }
        Ok(elements)
    }
}

/// `POST /api/v1/samples`: whole samples, all stored or none.
pub(super) async fn samples(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body = body?;
    let ndjson = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let value = value.trim_start().to_ascii_lowercase();
            value.starts_with("application/x-ndjson") || value.starts_with("application/jsonl")
        });
    let worker = service.clone();
    let now = service.now();
    let skew = service.read_config(|config| config.server.max_future_skew);
    let checked = move |samples: Vec<Sample>| plausible(&samples, now, skew).map(|()| samples);
    blocking(move || match parse_batch(&body, ndjson).and_then(checked) {
        Ok(samples) => {
            let accepted = samples.len();
            worker.ingest(samples)?;
            Ok(json!({"accepted": accepted}))
        }
        Err(bad) => {
            worker.metrics().batch_rejected(1);
            Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                message: bad.message,
                index: Some(bad.index),
            })
        }
    })
    .await
}

/// Timestamps before this (2001-09-09T01:46:40Z) are refused: they are
/// almost always seconds sent where milliseconds are expected.
const MIN_PLAUSIBLE_TS: Millis = 1_000_000_000_000;

/// Refuses a batch with a sample that no running host could have sent now:
/// one from before 2001 (seconds instead of milliseconds) or further in the
/// future than `skew`.
fn plausible(samples: &[Sample], now: Millis, skew: Millis) -> Result<(), BadSample> {
    for (index, sample) in samples.iter().enumerate() {
        let ts = sample.ts;
        let message = if ts < MIN_PLAUSIBLE_TS {
            format!(
                "sample {index}: ts {ts} is before 2001-09-09 ({MIN_PLAUSIBLE_TS}): ts is in \
                 milliseconds since the Unix epoch; if {ts} is in seconds, send {}",
                i128::from(ts) * 1000
            )
        } else if ts > now.saturating_add(skew) {
            format!(
                "sample {index}: ts {ts} ({}) is {} ahead of this node's clock, more than \
                 server.maxFutureSkew ({}): check the sender's clock, and that ts is in \
                 milliseconds",
                rfc3339(ts),
                HumanDuration(ts - now),
                HumanDuration(skew)
            )
        } else {
            continue;
        };
        return Err(BadSample { index, message });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wherever the one-pass reading of an array takes a body, it gives what
    /// the reference reading gives.
    #[test]
    fn the_fast_array_reading_agrees_with_serde() {
        let bodies: [&[u8]; 12] = [
            br#"[{"host":"a","ts":1,"metrics":{"x":1}}]"#,
            br#" [ {"host":"a,b]","ts":1,"metrics":{"x":1}} , {"host":"c","ts":2,"metrics":{}} ] "#,
            br#"[{"host":"q\"[{,","ts":1,"metrics":{"y":{"z":2}}}]"#,
            br#"[]"#,
            br#"[ ]"#,
            br#"[{"host":"a","ts":1,"metrics":{"x":1}},]"#,
            br#"[{"host":"a","ts":1,"metrics":{"x":1}} {"host":"b","ts":1,"metrics":{}}]"#,
            br#"[{"host":"a","ts":1,"metrics":{"x":1}}}]"#,
            br#"[1, 2]"#,
            br#"[{"host":"a","ts":1,"metrics":{"x":[1]}}]"#,
            br#"[{"host":"a\u002c","ts":1,"metrics":{"x":1}}]"#,
            br#"[{"host":"a","ts":1,"metrics":{"x":1}}"#,
        ];
        for body in bodies {
            let reference = parse_batch_reference(body);
            if let Some(fast) = parse_array_fast(body) {
                assert_eq!(
                    Ok(fast),
                    reference.map_err(|bad| bad.message),
                    "{}",
                    String::from_utf8_lossy(body)
                );
            } else {
                // Declined: a body the reference reading refuses, or one the
                // fast reading does not try (an escape in a string).
                assert!(
                    reference.is_err() || body.contains(&b'\\'),
                    "declined a plain body the reference reads: {}",
                    String::from_utf8_lossy(body)
                );
            }
        }
        assert_eq!(parse_array_fast(bodies[1]).map(|s| s.len()), Some(2));
        assert_eq!(
            parse_array_fast(bodies[2]).map(|s| s[0].host.clone()),
            Some("q\"[{,".to_string())
        );
        assert!(parse_array_fast(bodies[5]).is_none());
        assert!(parse_array_fast(bodies[6]).is_none());
        assert!(parse_batch(bodies[6], false).is_err());
    }
}
