//! The fast path for samples of the usual shape:
//! `{"host":"web-1","ts":1795428010000,"metrics":{"cpu.usage":71.5,...}}`,
//! keys in any order, JSON white space anywhere, flat metrics.
//!
//! It reads only what it can read exactly as the serde path would: strings
//! without escapes, an integer `ts`, field names of the allowed characters,
//! and numbers in JSON's grammar (integers converted as serde_json converts
//! them; the others parsed to the nearest double, as serde_json's
//! `float_roundtrip` does). On anything else, a valid but unusual line or an
//! invalid one, it gives up and the serde path reads the line from scratch,
//! so results and error messages never depend on which path ran.

use super::{MAX_HOST_NAME_LEN, MAX_TIMESTAMP, Metric, SampleReader};
use crate::field::{field_hash, is_field_name_bytes};

/// Text already checked to be ASCII (digits and signs of a number, or
/// field-name bytes), as a `str` without checking it again.
fn ascii(bytes: &[u8]) -> &str {
    debug_assert!(bytes.is_ascii());
    // SAFETY: callers pass only bytes they have matched against ASCII-only
    // grammars (JSON number characters, `is_field_name_bytes`), and ASCII is UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

/// Reads `line` into `reader` if it has the usual shape; `false` to hand it
/// to the serde path (the reader's buffers are then to be cleared).
pub(super) fn parse(line: &[u8], reader: &mut SampleReader) -> bool {
    Cursor { line, at: 0 }.sample(reader).is_some()
}

/// The value of a run of ASCII digits, if it fits in a `u64`.
fn digits_value(text: &str) -> Option<u64> {
    text.bytes().try_fold(0u64, |value, digit| {
        let digit = digit.checked_sub(b'0').filter(|&d| d <= 9)?;
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

struct Cursor<'l> {
    line: &'l [u8],
    at: usize,
}

impl<'l> Cursor<'l> {
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.line.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips white space, then consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.line.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// The bytes between a quote and the next one. Callers accept them only
    /// if they hold no backslash (an escape, which the serde path reads) and
    /// no control character.
    fn raw_string(&mut self) -> Option<&'l [u8]> {
        self.eat(b'"')?;
        let start = self.at;
        let length = self.line[start..].iter().position(|&b| b == b'"')?;
        self.at = start + length + 1;
        Some(&self.line[start..start + length])
    }

    /// A number in JSON's grammar: its text, and whether it is an integer.
    fn number(&mut self) -> Option<(&'l str, bool)> {
        self.skip_space();
        let start = self.at;
        let digits = |cursor: &mut Self| {
            let from = cursor.at;
            while cursor.line.get(cursor.at).is_some_and(u8::is_ascii_digit) {
                cursor.at += 1;
            }
            cursor.at - from
        };
        if self.line.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let first = *self.line.get(self.at)?;
        let whole = digits(self);
        if whole == 0 || (first == b'0' && whole > 1) {
            return None;
        }
        let mut integer = true;
        if self.line.get(self.at) == Some(&b'.') {
            self.at += 1;
            integer = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.line.get(self.at) {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.line.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some((ascii(&self.line[start..self.at]), integer))
    }

    /// A metric value converted as serde_json converts it.
    fn value(&mut self) -> Option<f64> {
        let (text, integer) = self.number()?;
        if integer {
            // serde_json reads integers as u64 or i64 (and `-0` as -0.0);
            // larger ones are left to it. Rounding to nearest is symmetric, so
            // negating after the conversion gives what i64 -> f64 gives.
            return match text.strip_prefix('-') {
                Some(magnitude) => digits_value(magnitude)
                    .filter(|&m| m <= 1 << 63)
                    .map(|m| -(m as f64)),
                None => digits_value(text).map(|v| v as f64),
            };
        }
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    fn sample(&mut self, reader: &mut SampleReader) -> Option<()> {
        self.eat(b'{')?;
        let (mut host, mut ts, mut metrics) = (false, false, false);
        loop {
            match self.raw_string()? {
                b"host" if !host => {
                    self.eat(b':')?;
                    let bytes = self.raw_string()?;
                    let plain = bytes
                        .iter()
                        .fold(true, |plain, &b| plain & (b >= 0x20 && b != b'\\'));
                    if !plain || bytes.is_empty() || bytes.len() > MAX_HOST_NAME_LEN {
                        return None;
                    }
                    let name = std::str::from_utf8(bytes).ok()?;
                    if bytes.iter().any(|&b| b >= 0x7f) && name.chars().any(char::is_control) {
                        return None;
                    }
                    reader.host.push_str(name);
                    host = true;
                }
                b"ts" if !ts => {
                    self.eat(b':')?;
                    let (text, integer) = self.number()?;
                    let millis =
                        digits_value(text).filter(|&t| integer && t <= MAX_TIMESTAMP as u64)?;
                    reader.ts = millis as i64;
                    ts = true;
                }
                b"metrics" if !metrics => {
                    self.eat(b':')?;
                    self.metrics(reader)?;
                    metrics = true;
                }
                _ => return None,
            }
            if self.eat(b',').is_none() {
                break;
            }
        }
        self.eat(b'}')?;
        self.skip_space();
        (host && ts && metrics && self.at == self.line.len()).then_some(())
    }

    fn metrics(&mut self, reader: &mut SampleReader) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            // Field bytes exclude backslashes and control characters.
            let bytes = self.raw_string()?;
            if !is_field_name_bytes(bytes) {
                return None;
            }
            let name = ascii(bytes);
            let hash = field_hash(name);
            self.eat(b':')?;
            let value = self.value()?;
            let name_start = reader.names.len() as u32;
            reader.names.push_str(name);
            reader.metrics.push(Metric {
                name_start,
                name_end: reader.names.len() as u32,
                hash,
                value,
            });
            if self.eat(b',').is_none() {
                break;
            }
        }
        self.eat(b'}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the fast path read, or `None` if it handed the line over.
    fn fast(line: &str) -> Option<crate::sample::Sample> {
        let mut reader = SampleReader::default();
        parse(line.as_bytes(), &mut reader).then(|| reader.to_sample())
    }

    fn serde(line: &str) -> Result<crate::sample::Sample, crate::sample::SampleError> {
        let mut reader = SampleReader::default();
        reader.parse_with_serde(line.as_bytes())?;
        Ok(reader.to_sample())
    }

    #[test]
    fn reads_the_usual_shape() {
        let line =
            r#" {"host":"web-1", "ts": 1795428010000 ,"metrics":{"cpu.usage":71.5,"n":-3,"z":0}}"#;
        assert_eq!(fast(line), Some(serde(line).unwrap()));
        assert_eq!(
            fast(r#"{"metrics":{},"ts":0,"host":"h"}"#),
            Some(serde(r#"{"host":"h","ts":0,"metrics":{}}"#).unwrap())
        );
    }

    #[test]
    fn hands_over_what_it_does_not_read() {
        for line in [
            r#"{"host":"w\u0065b","ts":1,"metrics":{}}"#,
            r#"{"host":"h","ts":1.0,"metrics":{}}"#,
            r#"{"host":"h","ts":1,"metrics":{"cpu":{"usage":1}}}"#,
            r#"{"host":"h","ts":1,"metrics":{"x":01}}"#,
            r#"{"host":"h","ts":1,"metrics":{"x":1e999}}"#,
            r#"{"host":"h","ts":1,"metrics":{"x":18446744073709551616}}"#,
            r#"{"host":"h","ts":1,"metrics":{"x":"1"}}"#,
            r#"{"host":"h","ts":1,"metrics":{"x":1,}}"#,
            r#"{"host":"h","host":"h","ts":1,"metrics":{}}"#,
            r#"{"host":"h","ts":1,"metrics":{},"x":1}"#,
            r#"{"host":"h","ts":1,"metrics":{}} x"#,
            r#"{"host":"","ts":1,"metrics":{}}"#,
            "{\"host\":\"a\u{85}b\",\"ts\":1,\"metrics\":{}}",
        ] {
            assert_eq!(fast(line), None, "{line}");
        }
    }

    /// Pieces that lines are made of: valid ones, and every way to break them.
    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => (-1_000_000i64..1_000_000).prop_map(|v| v.to_string()),
            3 => (-1e4f64..1e4).prop_map(|v| format!("{v:.2}")),
            1 => any::<i64>().prop_map(|v| v.to_string()),
            1 => any::<u64>().prop_map(|v| v.to_string()),
            1 => any::<f64>().prop_map(|v| v.to_string()),
            1 => any::<f64>().prop_map(|v| format!("{v:e}")),
            2 => prop::sample::select(vec![
                "0", "-0", "-0.0", "1e400", "-1e-400", "01", "1.", ".5", "1e", "1e+", "+1", "-", "NaN",
                "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
                "18446744073709551616", "1E5", "2.5e-3", "\"1\"", "null", "true", "[1]", "{}",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn key_text() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => "[A-Za-z0-9_.:-]{1,12}",
            1 => prop::sample::select(vec!["", "a b", "é", "a\\u0062", "x\\\"y", "cpu.usage", "cpu.usage"])
                .prop_map(str::to_string),
        ]
    }

    pub(super) fn line_strategy() -> impl Strategy<Value = String> {
        let space = prop::sample::select(vec!["", "", "", " ", "\t", "\n "]);
        let metric = (key_text(), number_text(), space.clone())
            .prop_map(|(k, v, s)| format!("\"{k}\":{s}{v}"));
        let metrics =
            prop::collection::vec(metric, 0..5).prop_map(|m| format!("{{{}}}", m.join(",")));
        let host = prop_oneof![
            8 => "[a-z0-9-]{0,10}".prop_map(|h| format!("\"{h}\"")),
            1 => prop::sample::select(vec!["\"a\\nb\"", "7", "\"\u{7f}\"", "\"é\""]).prop_map(str::to_string),
        ];
        let ts = prop_oneof![4 => (0i64..2_000_000_000_000).prop_map(|t| t.to_string()), 1 => number_text()];
        (
            host,
            ts,
            metrics,
            space,
            prop::sample::select(vec![0usize, 1, 2, 3, 4, 5]),
            prop::bool::weighted(0.1),
        )
            .prop_map(|(host, ts, metrics, s, order, extra)| {
                let mut parts = vec![
                    format!("\"host\":{s}{host}"),
                    format!("\"ts\":{ts}"),
                    format!("\"metrics\":{metrics}"),
                ];
                parts.rotate_left(order % 3);
                if order >= 3 {
                    parts.swap(0, 1);
                }
                if extra {
                    parts.push("\"extra\":1".to_string());
                }
                format!("{s}{{{}}}{s}", parts.join(","))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// `parse`, fast path and all, gives exactly what the serde path gives:
        /// the same sample to the bit, or the same error.
        #[test]
        fn agrees_with_serde(line in line_strategy()) {
            let mut reader = SampleReader::default();
            let got = reader.parse(line.as_bytes()).map(|()| reader.to_sample());
            let expected = serde(&line);
            match (&got, &expected) {
                (Ok(sample), Ok(reference)) => {
                    prop_assert_eq!(&sample.host, &reference.host);
                    prop_assert_eq!(sample.ts, reference.ts);
                    let bits = |s: &crate::sample::Sample| {
                        s.metrics.iter().map(|(n, v)| (n.clone(), v.to_bits())).collect::<Vec<_>>()
                    };
                    prop_assert_eq!(bits(sample), bits(reference), "{}", line);
                }
                _ => prop_assert_eq!(got, expected, "{}", line),
            }
        }
    }
}
#[cfg(test)]
mod coverage {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    /// The agreement property is only worth something if many generated lines
    /// take the fast path and many do not.
    #[test]
    fn generated_lines_exercise_both_paths() {
        let mut runner = TestRunner::deterministic();
        let strategy = super::tests::line_strategy();
        let mut fast = 0;
        for _ in 0..2000 {
            let line = strategy.new_tree(&mut runner).unwrap().current();
            let mut reader = super::SampleReader::default();
            fast += usize::from(super::parse(line.as_bytes(), &mut reader));
        }
        assert!(
            (300..1700).contains(&fast),
            "{fast} of 2000 lines took the fast path"
        );
    }
}
