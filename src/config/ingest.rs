//! `ingest`: how series from standard senders become fields, and which
//! `/metrics` pages alertd scrapes (docs/ingest.md).
//!
//! ```json
//! "ingest": {
//!   "hostLabels": ["host.name", "host", "instance"],
//!   "keep": ["*"],
//!   "presets": ["node_exporter", "otel_hostmetrics"],
//!   "fields": [{"field": "disk.root.free", "metric": "node_filesystem_avail_bytes",
//!               "labels": {"mountpoint": "/"}}],
//!   "maxSeries": 1000000,
//!   "maxPointsPerRequest": 200000,
//!   "scrape": [{"url": "http://10.0.0.5:9100/metrics", "host": "db-1", "interval": "10s"}]
//! }
//! ```

use serde_json::{Map, Value};

use crate::duration::{HumanDuration, Millis, parse_duration};
use crate::field::is_valid_field_name;
use crate::sample::MAX_HOST_NAME_LEN;
use crate::series::{Combine, Derived, Mapping, Matcher, Selector, preset};

/// The validated section.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingest {
    /// How points become fields; its interval is the collection interval.
    pub mapping: Mapping,
    /// The most data points one request may carry (413 beyond).
    pub max_points: usize,
    pub scrape: Vec<ScrapeTarget>,
}

impl Default for Ingest {
    fn default() -> Self {
        Ingest {
            mapping: Mapping::default(),
            max_points: 200_000,
            scrape: Vec::new(),
        }
    }
}

/// A `/metrics` page alertd reads on its own schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeTarget {
    pub url: String,
    /// The host its samples are of.
    pub host: String,
    pub interval: Millis,
    /// A scrape not answered within this fails.
    pub timeout: Millis,
}

impl ScrapeTarget {
    /// The target's name on pages and in logs: its host and URL, without
    /// the password a URL may carry.
    pub fn name(&self) -> String {
        format!("{} {}", self.host, self.shown_url())
    }

    /// The URL without its user and password (`http://user:secret@host/`
    /// shows as `http://…@host/`).
    pub fn shown_url(&self) -> String {
        match self.url.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                match rest[..authority_end].rfind('@') {
                    Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
                    None => self.url.clone(),
                }
            }
            None => self.url.clone(),
        }
    }
}

const KEYS: &[&str] = &[
    "hostLabels",
    "keep",
    "presets",
    "fields",
    "maxSeries",
    "maxPointsPerRequest",
    "scrape",
];
const FIELD_KEYS: &[&str] = &["field", "metric", "labels"];
const SCRAPE_KEYS: &[&str] = &["url", "host", "interval", "timeout"];

/// Reads `ingest` (at `place`); `interval` is `monitoring.collectionInterval`.
/// Returns the section and the problems found, each with where it is.
pub fn ingest(place: &str, value: &Value, interval: Millis) -> (Ingest, Vec<(String, String)>) {
    let mut found = Ingest::default();
    found.mapping.interval = interval;
    let mut problems = Vec::new();
    let Some(object) = value.as_object() else {
        problems.push((
            place.to_string(),
            format!("expected an object, got {value}"),
        ));
        return (found, problems);
    };
    let mut problem = |at: String, message: String| problems.push((at, message));
    for key in object.keys() {
        if !KEYS.contains(&key.as_str()) {
            problem(
                place.to_string(),
                format!("unknown key {key:?} (expected one of {KEYS:?})"),
            );
        }
    }
    match names(object, "hostLabels") {
        Ok(Some(labels)) if labels.is_empty() => problem(
            place.to_string(),
            "hostLabels: name at least one label (or attribute) that holds the host".to_string(),
        ),
        Ok(Some(labels)) => found.mapping.host_labels = labels,
        Ok(None) => {}
        Err(message) => problem(place.to_string(), message),
    }
    match names(object, "keep") {
        Ok(Some(keep)) => found.mapping.keep = keep,
        Ok(None) => {}
        Err(message) => problem(place.to_string(), message),
    }
    let mut derived: Vec<Derived> = Vec::new();
    if let Some(fields) = object.get("fields") {
        match fields.as_array() {
            Some(items) => {
                for (index, item) in items.iter().enumerate() {
                    let at = format!("{place}.fields[{index}]");
                    match mapping(item) {
                        Ok(field) if derived.iter().any(|other| other.field == field.field) => {
                            problem(at, format!("field {:?} is mapped twice", field.field));
                        }
                        Ok(field) => derived.push(field),
                        Err(message) => problem(at, message),
                    }
                }
            }
            None => problem(
                format!("{place}.fields"),
                "expected an array of {\"field\", \"metric\", \"labels\"} objects".to_string(),
            ),
        }
    }
    match names(object, "presets") {
        Ok(Some(presets)) => {
            for name in presets {
                match preset::fields(&name) {
                    Some(fields) => derived.extend(fields),
                    None => problem(
                        format!("{place}.presets"),
                        format!("no preset {name:?} (there are {:?})", preset::NAMES),
                    ),
                }
            }
        }
        Ok(None) => derived.extend(preset::all()),
        Err(message) => problem(place.to_string(), message),
    }
    for (index, mapped) in derived.iter().enumerate() {
        if mapped.preset.is_some() {
            continue;
        }
        if let Some(preset) = derived
            .iter()
            .filter(|other| other.field == mapped.field)
            .find_map(|other| other.preset)
        {
            problem(
                format!("{place}.fields[{index}]"),
                format!(
                    "field {:?} is made by the preset {preset}: name the mapping otherwise, or \
                     leave {preset} out of ingest.presets",
                    mapped.field
                ),
            );
        }
    }
    found.mapping.derived = derived;
    match count(object, "maxSeries", 1..=100_000_000) {
        Ok(Some(most)) => found.mapping.max_series = most,
        Ok(None) => {}
        Err(message) => problem(place.to_string(), message),
    }
    match count(object, "maxPointsPerRequest", 1..=100_000_000) {
        Ok(Some(most)) => found.max_points = most,
        Ok(None) => {}
        Err(message) => problem(place.to_string(), message),
    }
    if let Some(scrape) = object.get("scrape") {
        match scrape.as_array() {
            Some(items) => {
                for (index, item) in items.iter().enumerate() {
                    let at = format!("{place}.scrape[{index}]");
                    match target(item, interval) {
                        Ok(target)
                            if found.scrape.iter().any(|other| {
                                other.url == target.url && other.host == target.host
                            }) =>
                        {
                            problem(at, format!("{} is listed twice", target.name()));
                        }
                        Ok(target) => found.scrape.push(target),
                        Err(message) => problem(at, message),
                    }
                }
            }
            None => problem(
                format!("{place}.scrape"),
                "expected an array of {\"url\", \"host\", \"interval\"} objects".to_string(),
            ),
        }
    }
    (found, problems)
}

/// An explicit mapping: one field, the sum of a metric's series that have
/// the given labels.
fn mapping(item: &Value) -> Result<Derived, String> {
    let object = item
        .as_object()
        .ok_or_else(|| format!("expected an object, got {item}"))?;
    unknown(object, FIELD_KEYS)?;
    let field = text(object, "field")?.ok_or("field is missing")?;
    if !is_valid_field_name(&field) {
        return Err(format!(
            "field {field:?}: a field name is 1 to 128 of the characters A-Z a-z 0-9 _ . : -"
        ));
    }
    let metric = text(object, "metric")?.ok_or("metric is missing")?;
    let matchers = match object.get("labels") {
        None => Vec::new(),
        Some(Value::Object(labels)) => labels
            .iter()
            .map(|(name, value)| match value {
                Value::String(value) => Ok(Matcher {
                    names: vec![name.clone()],
                    values: vec![value.clone()],
                }),
                other => Err(format!("labels.{name} {other}: expected a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "labels {other}: expected an object of label names and values"
            ));
        }
    };
    Ok(Derived {
        field,
        inputs: vec![Selector { metric, matchers }],
        combine: Combine::Sum,
        preset: None,
    })
}

fn target(item: &Value, collection_interval: Millis) -> Result<ScrapeTarget, String> {
    let object = item
        .as_object()
        .ok_or_else(|| format!("expected an object, got {item}"))?;
    unknown(object, SCRAPE_KEYS)?;
    let url = text(object, "url")?.ok_or("url is missing")?;
    if !url.starts_with("http://") && !url.starts_with("https://")
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        // Without what may be a password.
        let shown: String = match url.split_once('@') {
            Some((_, after)) => format!("…@{after}"),
            None => url.clone(),
        };
        return Err(format!(
            "url {shown:?}: expected an http:// or https:// URL"
        ));
    }
    let host = text(object, "host")?
        .ok_or("host is missing: name the host this target's samples are of (\"db-1\")")?;
    if host.len() > MAX_HOST_NAME_LEN {
        return Err(format!("host: at most {MAX_HOST_NAME_LEN} bytes"));
    }
    if host.chars().any(char::is_control) {
        return Err(format!(
            "host {host:?}: a host name has no control characters"
        ));
    }
    let interval = duration(object, "interval")?.unwrap_or(collection_interval);
    let timeout = duration(object, "timeout")?.unwrap_or(interval.min(10_000));
    if timeout > interval {
        return Err(format!(
            "timeout {} is longer than the interval {}: a scrape must end before the next",
            HumanDuration(timeout),
            HumanDuration(interval)
        ));
    }
    Ok(ScrapeTarget {
        url,
        host,
        interval,
        timeout,
    })
}

fn unknown(object: &Map<String, Value>, keys: &[&str]) -> Result<(), String> {
    match object.keys().find(|key| !keys.contains(&key.as_str())) {
        Some(key) => Err(format!("unknown key {key:?} (expected one of {keys:?})")),
        None => Ok(()),
    }
}

fn text(object: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
        Some(other) => Err(format!("{key} {other}: expected a non-empty string")),
    }
}

fn names(object: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) if !text.is_empty() => Ok(text.clone()),
                other => Err(format!("{key}: {other} is not a non-empty string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(format!("{key} {other}: expected an array of strings")),
    }
}

fn count(
    object: &Map<String, Value>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<usize>, String> {
    match object.get(key) {
        None => Ok(None),
        Some(value) => match value.as_u64() {
            Some(number) if range.contains(&number) => Ok(usize::try_from(number).ok()),
            _ => Err(format!(
                "{key} {value}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            )),
        },
    }
}

fn duration(object: &Map<String, Value>, key: &str) -> Result<Option<Millis>, String> {
    let Some(text) = text(object, key)? else {
        return Ok(None);
    };
    match parse_duration(&text) {
        Ok(0) => Err(format!("{key} {text:?}: must be longer than 0")),
        Ok(millis) => Ok(Some(millis)),
        Err(error) => Err(format!("{key} {text:?}: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(value: Value) -> Vec<String> {
        ingest("ingest", &value, 10_000)
            .1
            .into_iter()
            .map(|(place, message)| format!("{place}: {message}"))
            .collect()
    }

    #[test]
    fn a_url_s_password_is_not_shown() {
        let target = |url: &str| ScrapeTarget {
            url: url.to_string(),
            host: "h".into(),
            interval: 1_000,
            timeout: 1_000,
        };
        assert_eq!(
            target("http://scraper:s3cret@10.0.0.5:9100/metrics").name(),
            "h http://…@10.0.0.5:9100/metrics"
        );
        assert_eq!(
            target("http://10.0.0.5/a@b").shown_url(),
            "http://10.0.0.5/a@b"
        );
    }

    #[test]
    fn defaults_take_everything_with_both_presets() {
        let (found, problems) = ingest("ingest", &json!({}), 5_000);
        assert!(problems.is_empty());
        assert_eq!(found.mapping.interval, 5_000);
        assert_eq!(found.mapping.keep, vec!["*"]);
        assert_eq!(found.mapping.derived, preset::all());
    }

    #[test]
    fn a_full_section_reads() {
        let (found, problems) = ingest(
            "ingest",
            &json!({
                "hostLabels": ["node"],
                "keep": ["node_*"],
                "presets": ["node_exporter"],
                "fields": [{"field": "disk.root.free", "metric": "node_filesystem_avail_bytes",
                            "labels": {"mountpoint": "/"}}],
                "scrape": [{"url": "http://10.0.0.5:9100/metrics", "host": "db-1", "interval": "15s"}]
            }),
            10_000,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(found.mapping.host_labels, vec!["node"]);
        assert_eq!(found.mapping.derived[0].field, "disk.root.free");
        assert_eq!(found.mapping.derived.len(), 4);
        assert_eq!(
            found.scrape,
            vec![ScrapeTarget {
                url: "http://10.0.0.5:9100/metrics".into(),
                host: "db-1".into(),
                interval: 15_000,
                timeout: 10_000,
            }]
        );
    }

    #[test]
    fn bad_sections_say_what_and_where() {
        let cases = [
            (json!([]), "ingest: expected an object, got []"),
            (json!({"keeps": []}), "ingest: unknown key \"keeps\""),
            (
                json!({"hostLabels": []}),
                "ingest: hostLabels: name at least one label",
            ),
            (
                json!({"presets": ["node"]}),
                "ingest.presets: no preset \"node\"",
            ),
            (
                json!({"fields": [{"field": "disk/root", "metric": "m"}]}),
                "ingest.fields[0]: field \"disk/root\": a field name is",
            ),
            (
                json!({"fields": [{"field": "a"}]}),
                "ingest.fields[0]: metric is missing",
            ),
            (
                json!({"fields": [{"field": "a", "metric": "m"}, {"field": "a", "metric": "n"}]}),
                "ingest.fields[1]: field \"a\" is mapped twice",
            ),
            (
                json!({"fields": [{"field": "mem.free", "metric": "m"}]}),
                "ingest.fields[0]: field \"mem.free\" is made by the preset node_exporter",
            ),
            (
                json!({"fields": [{"field": "a", "metric": "m", "labels": {"x": 1}}]}),
                "ingest.fields[0]: labels.x 1: expected a string",
            ),
            (
                json!({"scrape": [{"url": "ftp://x"}]}),
                "ingest.scrape[0]: url \"ftp://x\"",
            ),
            (
                json!({"scrape": [{"url": "http://x/metrics"}]}),
                "ingest.scrape[0]: host is missing",
            ),
            (
                json!({"scrape": [{"url": "http://x/metrics", "host": "h", "interval": "5s", "timeout": "6s"}]}),
                "ingest.scrape[0]: timeout 6s is longer than the interval 5s",
            ),
            (
                json!({"scrape": [{"url": "http://x/", "host": "h"}, {"url": "http://x/", "host": "h"}]}),
                "ingest.scrape[1]: h http://x/ is listed twice",
            ),
            (
                json!({"maxSeries": 0}),
                "ingest: maxSeries 0: expected a whole number from 1",
            ),
        ];
        for (value, expected) in cases {
            let found = problems(value.clone());
            assert!(
                found.iter().any(|problem| problem.starts_with(expected)),
                "{value}: expected {expected:?}, got {found:?}"
            );
        }
    }
}
