//! Batches of samples as they are pushed: a JSON array of samples (or one
//! sample), or NDJSON (one sample per line). A batch is read whole: its
//! first bad sample is said with its index (and line), and nothing of it is
//! taken.

use std::cell::Cell;
use std::fmt;

use serde::Deserializer;
use serde::de::{SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Sample, SampleReader};

/// How a batch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A JSON array of samples, or one sample object.
    Json,
    /// One sample per line; blank lines are skipped.
    Ndjson,
}

/// A batch's first bad sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSample {
    /// Its place in the batch, from 0.
    pub index: usize,
    /// What is wrong, naming the sample (`sample 3 (line 4): metrics.x: ...`).
    pub message: String,
}

/// Parses a batch.
pub fn parse_batch(body: &[u8], format: Format) -> Result<Vec<Sample>, BadSample> {
    match format {
        Format::Json => match parse_array_fast(body) {
            Some(samples) => Ok(samples),
            None => parse_batch_reference(body),
        },
        Format::Ndjson => parse_ndjson(body),
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
        assert!(parse_batch(bodies[6], Format::Json).is_err());
    }
}
