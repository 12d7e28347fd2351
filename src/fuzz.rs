//! The properties the fuzz targets check (`fuzz/`), kept here so that the
//! regression test (`tests/fuzz_regressions.rs`) checks the saved inputs in
//! the same way. Each function panics when its property fails, which is how
//! a fuzzer learns of it; for any input that does not break a property it
//! returns normally.

use crate::config::Config;
use crate::duration::{HumanDuration, MAX_DURATION, parse_duration};
use crate::sample::SampleReader;

/// Any text: parsing and validating a configuration returns a result, and a
/// valid one can be summarised.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = Config::parse(text, "fuzz.json") {
        for rule in &loaded.config.alerting.rules {
            let _ = rule.to_string();
        }
    }
}

/// Any bytes: the fast sample parser and the reference (serde) parser agree
/// on every sample the fast one takes: same host, time and metrics, bit for
/// bit, or the same error.
pub fn sample(data: &[u8]) {
    let mut fast = SampleReader::default();
    let mut reference = SampleReader::default();
    let expected = reference.parse_reference(data);
    let Some(got) = fast.parse_fast(data) else {
        return;
    };
    match (&got, &expected) {
        (Ok(()), Ok(())) => {
            assert_eq!(fast.host(), reference.host(), "host");
            assert_eq!(fast.ts(), reference.ts(), "ts");
            let bits = |reader: &SampleReader| -> Vec<(String, u64)> {
                reader
                    .metrics()
                    .map(|(field, value)| (field.to_string(), value.to_bits()))
                    .collect()
            };
            assert_eq!(bits(&fast), bits(&reference), "metrics");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the parsers disagree: fast {got:?}, reference {expected:?}"),
    }
}

/// Any text: a duration parses to a length within bounds that reads back the
/// same in milliseconds, or to an error.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(millis) = parse_duration(text) {
        assert!((0..=MAX_DURATION).contains(&millis), "{text:?} -> {millis}");
        assert_eq!(parse_duration(&format!("{millis}ms")), Ok(millis));
        assert!(!HumanDuration(millis).to_string().is_empty());
    }
}

/// Any bytes as a chart's points (8 bytes of value each, any bit pattern:
/// NaN, infinities, the largest numbers) over any frame: the chart is drawn,
/// and drawing it ends (a fuzzer's timeout catches one that does not).
pub fn chart(data: &[u8]) {
    use crate::pages::chart::{Colour, Line, NARROW, TimeChart};
    let Some((head, values)) = data.split_first_chunk::<17>() else {
        return;
    };
    let number = |at: usize| i64::from_le_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    // A frame of at most a week and a step of at least a second, as the
    // pages allow; where it starts is anything.
    let from = number(0);
    let span = number(8).rem_euclid(7 * 86_400_000) + 1;
    let Some(to) = from.checked_add(span) else {
        return;
    };
    let step = (span / 300).max(1_000);
    let points: Vec<(i64, f64)> = values
        .chunks_exact(8)
        .take(600)
        .enumerate()
        .map(|(index, bytes)| {
            let value = f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            (from.saturating_add(index as i64 * step), value)
        })
        .collect();
    let threshold = points.first().map(|(_, value)| *value);
    let chart = TimeChart {
        from,
        to,
        step,
        width: NARROW,
        height: 200,
        top: (head[16] % 2 == 0).then_some(100.0),
        unit: "",
        threshold: if head[16] % 3 == 0 { threshold } else { None },
        lines: vec![Line {
            colour: Colour::nth(0),
            points,
        }],
    };
    assert!(chart.svg().is_ok(), "the chart could not be drawn");
}
