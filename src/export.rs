//! `alertd export`: stored samples as the NDJSON that `alertd replay`
//! reads, so that "what would this rule have done last week" runs on the
//! stored history.

use std::io::Write;

use serde::Serialize;

use crate::duration::{Millis, parse_duration};
use crate::sample::Sample;
use crate::store::{Store, StoreError};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub from: Millis,
    pub to: Millis,
    /// These hosts only (all when empty).
    pub hosts: Vec<String>,
    /// These fields only (all when `None`). A sample left with no field is
    /// still written: it tells replay that its host was seen.
    pub fields: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the samples: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Serialize)]
struct Line<'a> {
    host: &'a str,
    ts: Millis,
    metrics: Metrics<'a>,
}

/// A sample's fields as a JSON object, in their order.
struct Metrics<'a>(&'a [(String, f64)], Option<&'a [String]>);

impl Serialize for Metrics<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.0 {
            if self.1.is_none_or(|fields| fields.contains(name)) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// Writes the stored samples of `[from, to]`, one JSON object per line, in
/// time order. Returns how many were written.
pub fn export(
    store: &dyn Store,
    options: &ExportOptions,
    out: &mut dyn Write,
) -> Result<u64, ExportError> {
    let mut written = 0u64;
    let mut failed: Option<std::io::Error> = None;
    let mut line = Vec::with_capacity(512);
    let mut write = |sample: Sample| {
        if failed.is_some() || !(options.hosts.is_empty() || options.hosts.contains(&sample.host)) {
            return;
        }
        line.clear();
        let value = Line {
            host: &sample.host,
            ts: sample.ts,
            metrics: Metrics(&sample.metrics, options.fields.as_deref()),
        };
        // Cannot fail: strings and finite numbers.
        let _ = serde_json::to_writer(&mut line, &value);
        line.push(b'\n');
        match out.write_all(&line) {
            Ok(()) => written += 1,
            Err(error) => failed = Some(error),
        }
    };
    store.scan_samples(options.from, options.to, &mut write)?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    out.flush()?;
    Ok(written)
}

/// A point in time on the command line: milliseconds since the epoch, an
/// RFC 3339 time (`2026-11-30T12:00:00Z`), or a duration before `now` (`7d`).
pub fn parse_time(text: &str, now: Millis) -> Result<Millis, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return time
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|since| Millis::try_from(since.as_millis()).ok())
            .ok_or_else(|| format!("{text:?} is before 1970"));
    }
    match parse_duration(text) {
        Ok(ago) => Ok(now.saturating_sub(ago)),
        Err(_) => Err(format!(
            "{text:?} is not a time: give milliseconds since the epoch, an RFC 3339 time \
             (2026-11-30T12:00:00Z) or a duration before now (7d, 36h, 90m)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_three_forms() {
        let now = 1_764_504_000_000;
        assert_eq!(parse_time("1700000000000", now), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2025-11-30T12:00:00Z", now),
            Ok(1_764_504_000_000)
        );
        assert_eq!(parse_time("7d", now), Ok(now - 7 * 86_400_000));
        let error = parse_time("last week", now).unwrap_err();
        assert!(error.contains("\"last week\" is not a time"), "{error}");
    }
}
