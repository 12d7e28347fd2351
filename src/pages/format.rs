//! How the pages write times, durations and values.

use crate::duration::Millis;
use crate::incident::rfc3339;

/// `2026-11-23 10:00:10` (UTC).
pub fn time(at: Millis) -> String {
    let mut text = rfc3339(at);
    text.truncate(19);
    text.replace('T', " ")
}

/// `2026-11-23T10:00`, the value of a date-time field.
pub fn time_input(at: Millis) -> String {
    let mut text = rfc3339(at);
    text.truncate(16);
    text
}

/// A time on a chart's axis: `10:00`, or `11-23 10:00` for a frame longer
/// than a day and a half.
pub fn axis_time(at: Millis, frame: Millis) -> String {
    let text = rfc3339(at);
    if frame > 36 * 3_600_000 {
        format!("{} {}", &text[5..10], &text[11..16])
    } else {
        text[11..16].to_string()
    }
}

/// `45s`, `3m 20s`, `2h 5m`, `3d 4h`: the two largest units.
pub fn span(ms: Millis) -> String {
    let seconds = ms.max(0) / 1000;
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match () {
        _ if days > 0 => format!("{days}d {hours}h"),
        _ if hours > 0 => format!("{hours}h {minutes}m"),
        _ if minutes > 0 => format!("{minutes}m {secs}s"),
        _ if ms < 1000 && ms > 0 => format!("{ms}ms"),
        _ => format!("{secs}s"),
    }
}

/// A value for reading: at most two decimals, no trailing zeros
/// (`69.61`, `12`, `0.5`), and thousands apart for large ones.
pub fn value(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let rounded = format!("{value:.2}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    let (sign, digits) = match trimmed.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", trimmed),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) if grouped != "0" || !fraction.is_empty() => {
            format!("{sign}{grouped}.{fraction}")
        }
        _ if grouped == "0" => "0".to_string(),
        _ => format!("{sign}{grouped}"),
    }
}

/// A count with thousands apart: `1,234`.
pub fn count(count: usize) -> String {
    value(count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(time(1_732_356_010_000), "2024-11-23 10:00:10");
        assert_eq!(time_input(1_732_356_010_000), "2024-11-23T10:00");
        assert_eq!(axis_time(1_732_356_010_000, 3_600_000), "10:00");
        assert_eq!(axis_time(1_732_356_010_000, 7 * 86_400_000), "11-23 10:00");
    }

    #[test]
    fn spans_keep_two_units() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(250), "250ms");
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(200_000), "3m 20s");
        assert_eq!(span(7_500_000), "2h 5m");
        assert_eq!(span(273_600_000), "3d 4h");
    }

    #[test]
    fn values_are_short() {
        assert_eq!(value(69.614), "69.61");
        assert_eq!(value(12.0), "12");
        assert_eq!(value(0.5), "0.5");
        assert_eq!(value(-0.001), "0");
        assert_eq!(value(-3.25), "-3.25");
        assert_eq!(value(1_234_567.891), "1,234,567.89");
        assert_eq!(value(100.0), "100");
        assert_eq!(count(12_345), "12,345");
    }
}
