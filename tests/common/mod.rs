//! Helpers shared by the integration tests.
#![allow(dead_code)]

use alertd::config::{Aggregation, Operand, Rule};
use alertd::duration::Millis;

/// A rule on field `f`.
pub fn rule(
    name: &str,
    aggregation: Aggregation,
    operand: Operand,
    threshold: f64,
    timeframe: Millis,
    cooldown: Millis,
) -> Rule {
    Rule {
        name: name.to_string(),
        field: "f".to_string(),
        aggregation,
        operand,
        threshold,
        timeframe,
        cooldown,
        options: Default::default(),
    }
}

/// One step of a series: a sample with a value, a sample without the field
/// (`_`), or no sample at all (`.`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Value(f64),
    WithoutField,
    Silent,
}

/// Expands the series notation: `"10 10 100x3 _ .x2"` is 10, 10, 100, 100,
/// 100, a sample without the field, and two steps without a sample.
pub fn series(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for word in text.split_whitespace() {
        let (item, times) = match word.split_once('x') {
            Some((item, times)) => (item, times.parse::<usize>().expect("repeat count")),
            None => (word, 1),
        };
        let step = match item {
            "_" => Step::WithoutField,
            "." => Step::Silent,
            number => Step::Value(number.parse().expect("a number")),
        };
        steps.extend(std::iter::repeat_n(step, times));
    }
    steps
}
