//! How the pages write times, durations and values.

use crate::config::{Aggregation, Rule};
use crate::duration::Millis;
use crate::incident::rfc3339;

/// `2026-11-23 10:00:10` (UTC).
pub fn time(at: Millis) -> String {
    let mut text = rfc3339(at);
    text.truncate(19);
    text.replace('T', " ")
}

/// `2026-11-23 10:00`, the value of a custom range's field.
pub fn time_input(at: Millis) -> String {
    let mut text = rfc3339(at);
    text.truncate(16);
    text.replace('T', " ")
}

/// A time on a chart's axis (UTC): `10:00:20` for a frame of ten minutes or
/// less, `10:00` up to twelve hours, `11-23 10:00` beyond, so that a day's
/// axis says which day.
pub fn axis_time(at: Millis, frame: Millis) -> String {
    let text = rfc3339(at);
    if frame > 12 * 3_600_000 {
        format!("{} {}", &text[5..10], &text[11..16])
    } else if frame > 10 * 60_000 {
        text[11..16].to_string()
    } else {
        text[11..19].to_string()
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

/// The unit of a built-in field's values, with its leading space where it
/// takes one: `%`, ` KB`, ` ms`; empty for counters and custom fields.
pub fn unit(field: &str) -> &'static str {
    match field {
        "cpu.usage" | "mem.usage" => "%",
        "mem.free" => " KB",
        "requests.latency_sum" | "requests.latency_avg" => " ms",
        _ => "",
    }
}

/// A rule's aggregate with its unit: `71.5%`, `440,129 KB`, `3 samples`.
pub fn measured(value: f64, rule: &Rule) -> String {
    match rule.aggregation {
        Aggregation::Count => format!(
            "{} sample{}",
            self::value(value),
            if value == 1.0 { "" } else { "s" }
        ),
        _ => format!("{}{}", self::value(value), unit(&rule.field)),
    }
}

/// A rule's aggregate against its threshold: `440,129 KB <= 500,000 KB`.
pub fn against(value: f64, rule: &Rule) -> String {
    format!(
        "{} {} {}",
        measured(value, rule),
        rule.operand.symbol(),
        measured(rule.threshold, rule)
    )
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
        assert_eq!(time_input(1_732_356_010_000), "2024-11-23 10:00");
        assert_eq!(axis_time(1_732_356_010_000, 3_600_000), "10:00");
        assert_eq!(axis_time(1_732_356_010_000, 7 * 86_400_000), "11-23 10:00");
        assert_eq!(axis_time(1_732_356_010_000, 86_400_000), "11-23 10:00");
        assert_eq!(axis_time(1_732_356_010_000, 300_000), "10:00:10");
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

    #[test]
    fn values_say_their_unit_and_threshold() {
        let rule = |field: &str, aggregation, operand, threshold| Rule {
            name: "r".into(),
            field: field.into(),
            aggregation,
            operand,
            threshold,
            timeframe: 60_000,
            cooldown: 0,
            options: Default::default(),
        };
        use crate::config::Operand::{EqualOrLessThan, EqualOrMoreThan};
        let free = rule("mem.free", Aggregation::Min, EqualOrLessThan, 500_000.0);
        assert_eq!(against(440_129.0, &free), "440,129 KB <= 500,000 KB");
        let cpu = rule("cpu.usage", Aggregation::Avg, EqualOrMoreThan, 60.0);
        assert_eq!(against(71.5, &cpu), "71.5% >= 60%");
        let silent = rule("cpu.usage", Aggregation::Count, EqualOrLessThan, 0.0);
        assert_eq!(against(0.0, &silent), "0 samples <= 0 samples");
        assert_eq!(measured(1.0, &silent), "1 sample");
        let errors = rule("errors.count", Aggregation::Sum, EqualOrMoreThan, 10.0);
        assert_eq!(against(12.0, &errors), "12 >= 10");
    }
}
