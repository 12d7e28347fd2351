//! Durations in the format of the `ms` library that the original product used
//! (docs/engine.md, Durations): `"10s"`, `"2m"`, `"1.5h"`, `"2 minutes"`, `"500"`.
//!
//! Values are converted to whole milliseconds, rounded up. Every comparison the
//! alertd makes with a duration is against integer millisecond timestamps
//! (`t - timeframe < ts`, `t < endTime + cooldown`), and for those a fractional
//! duration behaves exactly like its ceiling, so rounding up loses nothing.

use std::fmt;

/// Milliseconds since the Unix epoch, or a length of time in milliseconds.
pub type Millis = i64;

/// The longest duration accepted: 10,000 Julian years. Keeps every sum of a
/// timestamp and a duration far inside `i64`.
pub const MAX_DURATION: Millis = 315_576_000_000_000;

/// Why a string is not a duration. The message never repeats the input; the
/// caller names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("leading or trailing white space")]
    Whitespace,
    #[error("negative durations are not allowed")]
    Negative,
    #[error("missing number before the unit")]
    MissingNumber,
    #[error("malformed number")]
    MalformedNumber,
    #[error("unknown unit {0:?} (use ms, s, m, h, d or w)")]
    UnknownUnit(String),
    #[error("too large (the limit is 10000 years)")]
    TooLarge,
}

const UNITS: &[(&[&str], Millis)] = &[
    (&["ms", "msec", "msecs", "millisecond", "milliseconds"], 1),
    (&["s", "sec", "secs", "second", "seconds"], 1_000),
    (&["m", "min", "mins", "minute", "minutes"], 60_000),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000),
    (&["d", "day", "days"], 86_400_000),
    (&["w", "week", "weeks"], 604_800_000),
];

/// Parses a duration string into whole milliseconds (rounded up).
pub fn parse_duration(text: &str) -> Result<Millis, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if text.trim() != text {
        return Err(DurationError::Whitespace);
    }
    if text.starts_with('-') {
        return Err(DurationError::Negative);
    }
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(number_len);
    let unit = rest.trim_start_matches([' ', '\t']);
    if number.is_empty() {
        return Err(DurationError::MissingNumber);
    }
    let unit_ms = if unit.is_empty() {
        1
    } else {
        let lower = unit.to_ascii_lowercase();
        UNITS
            .iter()
            .find(|(names, _)| names.contains(&lower.as_str()))
            .map(|&(_, ms)| ms)
            .ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?
    };
    // Like `ms`: digits, optionally with one dot that has digits after it
    // ("1.5", ".5"; not "1." nor "1.2.3").
    let (whole, fraction) = match number.split_once('.') {
        None => (number, ""),
        Some((whole, fraction)) => (whole, fraction),
    };
    if fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
        return Err(DurationError::MalformedNumber);
    }
    // Exact decimal arithmetic: value = digits / 10^scale, in unit_ms.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(DurationError::TooLarge);
    }
    let mantissa: u128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| DurationError::MalformedNumber)?
    };
    let scale = 10u128.pow(fraction.len().min(30) as u32);
    let scaled = mantissa
        .checked_mul(unit_ms as u128)
        .ok_or(DurationError::TooLarge)?;
    let millis = scaled.div_ceil(scale);
    if millis > MAX_DURATION as u128 {
        return Err(DurationError::TooLarge);
    }
    Ok(millis as Millis)
}

/// Displays a length of time compactly, largest unit first: `2m`, `1h30m`, `10d`, `1s500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Millis);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const PARTS: &[(&str, Millis)] = &[
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for &(unit, size) in PARTS {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_ms_library_forms() {
        let cases: &[(&str, Millis)] = &[
            ("10s", 10_000),
            ("2m", 120_000),
            ("1.5h", 5_400_000),
            ("10d", 864_000_000),
            ("2 minutes", 120_000),
            ("500", 500),
            ("0", 0),
            ("0s", 0),
            (".5s", 500),
            ("1w", 604_800_000),
            ("3 Weeks", 1_814_400_000),
            ("2HRS", 7_200_000),
            ("1 msec", 1),
            ("5  secs", 5_000),
            ("1 day", 86_400_000),
            ("007s", 7_000),
            ("1.25 seconds", 1_250),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn rounds_fractional_milliseconds_up() {
        assert_eq!(parse_duration("0.5"), Ok(1));
        assert_eq!(parse_duration("1.0001s"), Ok(1_001));
        assert_eq!(parse_duration("0.0001ms"), Ok(1));
    }

    #[test]
    fn rejects_what_ms_rejects() {
        use DurationError::*;
        let cases: &[(&str, DurationError)] = &[
            ("", Empty),
            ("2x", UnknownUnit("x".into())),
            ("-1m", Negative),
            ("m", MissingNumber),
            (" 2m", Whitespace),
            ("2m ", Whitespace),
            ("1.", MalformedNumber),
            ("1.2.3s", MalformedNumber),
            ("1y", UnknownUnit("y".into())),
            ("1e3", UnknownUnit("e3".into())),
            ("2 m s", UnknownUnit("m s".into())),
            ("99999999999999999999999999999999d", TooLarge),
            ("600000w", TooLarge),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).as_ref(), Err(expected), "{text:?}");
        }
    }

    #[test]
    fn formats_compactly() {
        let cases: &[(Millis, &str)] = &[
            (0, "0s"),
            (120_000, "2m"),
            (5_400_000, "1h30m"),
            (864_000_000, "10d"),
            (1_500, "1s500ms"),
            (7, "7ms"),
        ];
        for &(ms, expected) in cases {
            assert_eq!(HumanDuration(ms).to_string(), expected);
        }
    }
}
