//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text,
//! as a scraped `/metrics` page serves them, read into [`Point`]s.
//!
//! Written here rather than taken from a crate: the parsers on crates.io
//! either stop at the first problem without saying where, or pull a regex or
//! grammar engine in for a line format. This one names the line and column
//! of what it refuses, and refuses the whole page.

use super::{Kind, Labels, Point};
use crate::duration::Millis;

/// A page that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ExpositionError {
    pub line: usize,
    pub message: String,
}

/// The type a family declares (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// `untyped`, `unknown`, `info`, `stateset`, `gaugehistogram`: values
    /// taken as they are.
    Other,
}

impl Family {
    fn parse(text: &str) -> Option<Family> {
        Some(match text {
            "counter" => Family::Counter,
            "gauge" => Family::Gauge,
            "histogram" => Family::Histogram,
            "summary" => Family::Summary,
            "untyped" | "unknown" | "info" | "stateset" | "gaugehistogram" => Family::Other,
            _ => return None,
        })
    }
}

/// Whether the sample `name` of a family of type `family` (if declared)
/// counts up: a counter's total, a histogram's or summary's `_count`, `_sum`
/// and `_bucket`. Without a declared type, the names that end so
/// (`_total`, `_count`, `_sum`, `_bucket`) are taken for counters. `None`:
/// a sample to leave out (`_created`, which is a time).
pub fn kind_of(name: &str, family: Option<(&str, Family)>) -> Option<Kind> {
    let counts = Some(Kind::Cumulative { start: None });
    match family {
        Some((family_name, declared)) => {
            let suffix = name.strip_prefix(family_name).unwrap_or("");
            match (declared, suffix) {
                (_, "_created") => None,
                (Family::Counter, _) => counts,
                (Family::Histogram | Family::Summary, "_count" | "_sum" | "_bucket") => counts,
                _ => Some(Kind::Gauge),
            }
        }
        None if name.ends_with("_created") => None,
        None if ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|suffix| name.ends_with(suffix)) =>
        {
            counts
        }
        None => Some(Kind::Gauge),
    }
}

/// Reads a page scraped at `now`: every sample as a point (timestamps the
/// page gives are kept), or the first problem.
pub fn parse(text: &str, now: Millis) -> Result<Vec<Point>, ExpositionError> {
    let mut points = Vec::new();
    // The families declared so far, by name.
    let mut families: rustc_hash::FxHashMap<String, Family> = Default::default();
    let mut open_metrics_end = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| ExpositionError {
            line: number,
            message,
        };
        if open_metrics_end {
            if line.trim().is_empty() {
                continue;
            }
            return Err(fail("text after \"# EOF\"".to_string()));
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        return Err(fail("# TYPE needs a metric name and a type".to_string()));
                    };
                    let family = Family::parse(kind).ok_or_else(|| {
                        fail(format!(
                            "# TYPE {name} {kind:?}: expected counter, gauge, histogram, \
                             summary, untyped, unknown, info, stateset or gaugehistogram"
                        ))
                    })?;
                    families.insert(name.to_string(), family);
                }
                Some("EOF") => open_metrics_end = true,
                _ => {} // HELP, UNIT and comments
            }
            continue;
        }
        let (name, labels, rest) = sample_head(line)
            .map_err(|(column, message)| fail(format!("column {column}: {message}")))?;
        // An OpenMetrics exemplar follows " # ".
        let rest = rest.split(" # ").next().unwrap_or(rest);
        let mut words = rest.split_whitespace();
        let value_text = words
            .next()
            .ok_or_else(|| fail(format!("{name}: no value")))?;
        let value = parse_value(value_text)
            .ok_or_else(|| fail(format!("{name}: {value_text:?} is not a number")))?;
        let ts = match words.next() {
            None => now,
            Some(ts) => parse_timestamp(ts)
                .ok_or_else(|| fail(format!("{name}: timestamp {ts:?} is not a number")))?,
        };
        if let Some(extra) = words.next() {
            return Err(fail(format!(
                "{name}: unexpected {extra:?} after the timestamp"
            )));
        }
        let family = family_of(&families, name);
        let Some(kind) = kind_of(name, family) else {
            continue;
        };
        points.push(Point {
            metric: name.into(),
            labels: Labels::of(labels),
            kind,
            value,
            ts,
        });
    }
    Ok(points)
}

type Head<'a> = (&'a str, Vec<(String, String)>, &'a str);

/// A sample line's name and labels, and what follows them; or the column
/// (from 1) of the problem.
fn sample_head(line: &str) -> Result<Head<'_>, (usize, String)> {
    let bytes = line.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':'))
        .unwrap_or(bytes.len());
    if name_end == 0 || bytes[0].is_ascii_digit() {
        return Err((1, "expected a metric name".to_string()));
    }
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut at = name_end;
    if bytes.get(at) == Some(&b'{') {
        at += 1;
        loop {
            while bytes.get(at) == Some(&b' ') {
                at += 1;
            }
            match bytes.get(at) {
                Some(b'}') => {
                    at += 1;
                    break;
                }
                None => return Err((at + 1, "the labels are not closed with }".to_string())),
                _ => {}
            }
            let key_start = at;
            while bytes
                .get(at)
                .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
            {
                at += 1;
            }
            if at == key_start {
                return Err((at + 1, "expected a label name".to_string()));
            }
            let key = &line[key_start..at];
            if bytes.get(at) != Some(&b'=') || bytes.get(at + 1) != Some(&b'"') {
                return Err((at + 1, format!("label {key}: expected =\"")));
            }
            at += 2;
            let mut value = String::new();
            loop {
                match bytes.get(at) {
                    None => return Err((at + 1, format!("label {key}: the value is not closed"))),
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    Some(b'\\') => {
                        value.push(match bytes.get(at + 1) {
                            Some(b'n') => '\n',
                            Some(b'\\') => '\\',
                            Some(b'"') => '"',
                            _ => {
                                return Err((
                                    at + 1,
                                    format!("label {key}: unknown escape (\\n, \\\\, \\\" only)"),
                                ));
                            }
                        });
                        at += 2;
                    }
                    Some(_) => {
                        // A whole character (labels may be any UTF-8).
                        let rest = &line[at..];
                        let c = rest.chars().next().unwrap_or('\u{fffd}');
                        value.push(c);
                        at += c.len_utf8();
                    }
                }
            }
            labels.push((key.to_string(), value));
            while bytes.get(at) == Some(&b' ') {
                at += 1;
            }
            match bytes.get(at) {
                Some(b',') => at += 1,
                Some(b'}') => {}
                _ => return Err((at + 1, "expected , or } after a label".to_string())),
            }
        }
    }
    if at < bytes.len() && bytes[at] != b' ' && bytes[at] != b'\t' {
        return Err((at + 1, "expected a space before the value".to_string()));
    }
    Ok((name, labels, &line[at..]))
}

/// The declared family the sample `name` belongs to: the family so named,
/// or the one it is a `_total`, `_count`, ... of.
fn family_of<'a>(
    families: &'a rustc_hash::FxHashMap<String, Family>,
    name: &'a str,
) -> Option<(&'a str, Family)> {
    [
        "", "_total", "_count", "_sum", "_bucket", "_created", "_info",
    ]
    .iter()
    .filter_map(|suffix| name.strip_suffix(suffix))
    .find_map(|family| {
        families
            .get_key_value(family)
            .map(|(family, declared)| (family.as_str(), *declared))
    })
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Milliseconds (the Prometheus format: an integer) or seconds with a
/// fraction (OpenMetrics).
fn parse_timestamp(text: &str) -> Option<Millis> {
    if let Ok(whole) = text.parse::<i64>() {
        // Seconds before the year 5138, or milliseconds after 1973.
        return Some(if whole.abs() < 100_000_000_000 {
            whole.checked_mul(1000)?
        } else {
            whole
        });
    }
    let seconds: f64 = text.parse().ok()?;
    let millis = (seconds * 1000.0).round();
    (millis.is_finite() && millis.abs() < 9.0e15).then_some(millis as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    fn labels(point: &Point) -> Vec<(&str, &str)> {
        point
            .labels
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    #[test]
    fn a_page_reads_with_its_types_labels_and_times() {
        let page = "# HELP http_requests_total Requests.\n\
            # TYPE http_requests_total counter\n\
            http_requests_total{code=\"200\",path=\"/a \\\"b\\\"\\\\c\\nd\"} 1027 1700000000123\n\
            # TYPE temperature gauge\n\
            temperature -3.5e1\n\
            # TYPE rpc_seconds summary\n\
            rpc_seconds{quantile=\"0.5\"} 0.2\n\
            rpc_seconds_sum 8.5\n\
            rpc_seconds_count 40\n\
            untyped_total 3\n\
            created_total_created 1.5e9\n\
            inf_value +Inf\n";
        let points = parse(page, NOW).unwrap();
        let got: Vec<(&str, Kind, f64, Millis)> = points
            .iter()
            .map(|point| (&*point.metric, point.kind, point.value, point.ts))
            .collect();
        let counter = Kind::Cumulative { start: None };
        assert_eq!(
            got[..6],
            [
                ("http_requests_total", counter, 1027.0, 1_700_000_000_123),
                ("temperature", Kind::Gauge, -35.0, NOW),
                ("rpc_seconds", Kind::Gauge, 0.2, NOW),
                ("rpc_seconds_sum", counter, 8.5, NOW),
                ("rpc_seconds_count", counter, 40.0, NOW),
                ("untyped_total", counter, 3.0, NOW),
            ]
        );
        assert_eq!(
            labels(&points[0]),
            [("code", "200"), ("path", "/a \"b\"\\c\nd")]
        );
        // `_created` is a time, not a value: left out.
        assert_eq!(points.len(), 7);
        assert_eq!(&*points[6].metric, "inf_value");
        assert!(points[6].value.is_infinite());
    }

    #[test]
    fn open_metrics_reads_seconds_exemplars_and_the_end() {
        let page = "# TYPE foo counter\n\
            foo_total 17.0 1520879607.789 # {id=\"x\"} 5\n\
            foo_created 1520872607.123\n\
            # EOF\n";
        let points = parse(page, NOW).unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(
            (&*points[0].metric, points[0].value, points[0].ts),
            ("foo_total", 17.0, 1_520_879_607_789)
        );
        let error = parse("# EOF\nfoo 1\n", NOW).unwrap_err();
        assert_eq!(error.to_string(), "line 2: text after \"# EOF\"");
    }

    #[test]
    fn a_bad_page_says_the_line_and_column() {
        let cases = [
            ("ok 1\nbad\n", "line 2: bad: no value"),
            (
                "x{a=\"1\" 2\n",
                "line 1: column 9: expected , or } after a label",
            ),
            ("x{a=1} 2\n", "line 1: column 4: label a: expected =\""),
            (
                "x{a=\"\\q\"} 2\n",
                "line 1: column 6: label a: unknown escape",
            ),
            (
                "x 1 2 3\n",
                "line 1: x: unexpected \"3\" after the timestamp",
            ),
            ("x one\n", "line 1: x: \"one\" is not a number"),
            (
                "# TYPE x widget\n",
                "line 1: # TYPE x \"widget\": expected counter",
            ),
            ("9x 1\n", "line 1: column 1: expected a metric name"),
        ];
        for (page, expected) in cases {
            let error = parse(page, NOW).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{page:?}: {error}");
        }
    }

    #[test]
    fn kinds_follow_the_declared_family_else_the_name() {
        let counter = Some(Kind::Cumulative { start: None });
        assert_eq!(
            kind_of("req_total", Some(("req", Family::Counter))),
            counter
        );
        assert_eq!(kind_of("req_created", Some(("req", Family::Counter))), None);
        assert_eq!(
            kind_of("lat_bucket", Some(("lat", Family::Histogram))),
            counter
        );
        assert_eq!(
            kind_of("lat", Some(("lat", Family::Summary))),
            Some(Kind::Gauge)
        );
        assert_eq!(
            kind_of("bytes_total", Some(("bytes_total", Family::Gauge))),
            Some(Kind::Gauge)
        );
        assert_eq!(kind_of("jobs_total", None), counter);
        assert_eq!(kind_of("jobs_created", None), None);
        assert_eq!(kind_of("load1", None), Some(Kind::Gauge));
    }
}
