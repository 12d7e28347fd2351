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
