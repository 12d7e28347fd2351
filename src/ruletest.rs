//! `alertd test`: unit tests for rules (docs/testing.md). A test file names
//! a configuration, and each of its tests gives series of values per host
//! and field and what must be open (or every transition so far) at given
//! times. The rules run through the same engine as the service and
//! `replay`, without a server, a store or a hook.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::config::{Config, Loaded};
use crate::duration::{HumanDuration, Millis, parse_duration};
use crate::engine::Engine;
use crate::incident::{Incident, JsonNumber, SequentialIds, Transition};
use crate::sample::Sample;

/// Why a test file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// The file, or the configuration it names, is not valid: every
    /// problem, one per line, each naming the test and the key.
    #[error("{}", problems.join("\n"))]
    Invalid { problems: Vec<String> },
}

/// A test file, checked and ready to run.
#[derive(Debug)]
pub struct TestFile {
    pub path: PathBuf,
    pub config: Config,
    pub tests: Vec<RuleTest>,
}

/// Per host, per field: value `i` at `i * interval`; `None`: no value.
pub type Series = BTreeMap<String, BTreeMap<String, Vec<Option<f64>>>>;

/// One test: samples made from series, and what is expected when.
#[derive(Debug)]
pub struct RuleTest {
    pub name: String,
    pub interval: Millis,
    pub series: Series,
    pub expect: Vec<Expectation>,
}

/// What must hold at one time.
#[derive(Debug)]
pub struct Expectation {
    pub at: Millis,
    pub what: Expected,
}

#[derive(Debug)]
pub enum Expected {
    /// Exactly these incidents are open.
    Open(Vec<ExpectedIncident>),
    /// Exactly these transitions happened up to `at`, in order.
    Transitions(Vec<ExpectedTransition>),
}

/// An open incident: rule and host, and when given, its trigger value
/// (`Some(None)`: no data), severity and start.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedIncident {
    pub rule: String,
    pub host: String,
    pub trigger_value: Option<Option<f64>>,
    pub severity: Option<String>,
    pub start_time: Option<Millis>,
}

/// A transition: its event, rule and host, and when given, its tick and
/// trigger value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedTransition {
    pub event: String,
    pub rule: String,
    pub host: String,
    pub at: Option<Millis>,
    pub trigger_value: Option<Option<f64>>,
}

/// How a test went.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Passed,
    /// The first expectation that did not hold: its time, and what was
    /// expected and found, one line each.
    Failed {
        at: Millis,
        what: &'static str,
        expected: Vec<String>,
        got: Vec<String>,
    },
}

/// Reads and checks a test file: its configuration (a path relative to the
/// file, or an object), and every test.
pub fn load(path: &Path) -> Result<TestFile, TestFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TestFileError::Read {
        file: shown.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|error| TestFileError::Invalid {
        problems: vec![format!("{shown}: not JSON: {error}")],
    })?;
    let mut checker = Checker {
        file: shown.clone(),
        problems: Vec::new(),
    };
    let Some(top) = value.as_object() else {
        return Err(checker.fail("top level", "expected an object with config and tests"));
    };
    checker.unknown_keys("top level", top, &["config", "tests"]);
    let config = match top.get("config") {
        None => return Err(checker.fail("top level", "config is missing")),
        Some(Value::String(relative)) => {
            let file = path.parent().unwrap_or(Path::new(".")).join(relative);
            match Config::load(&file) {
                Ok(Loaded { config, .. }) => config,
                Err(error) => {
                    return Err(TestFileError::Invalid {
                        problems: vec![format!("{shown}: config {relative:?}: {error}")],
                    });
                }
            }
        }
        Some(object @ Value::Object(_)) => {
            match Config::parse(&object.to_string(), &format!("{shown} (config)")) {
                Ok(Loaded { config, .. }) => config,
                Err(error) => {
                    return Err(TestFileError::Invalid {
                        problems: error.to_string().lines().map(str::to_string).collect(),
                    });
                }
            }
        }
        Some(other) => {
            return Err(checker.fail(
                "top level",
                &format!(
                    "config {}: expected a file name or a configuration object",
                    short(other)
                ),
            ));
        }
    };
    let tests = match top.get("tests") {
        Some(Value::Array(tests)) if !tests.is_empty() => tests,
        Some(Value::Array(_)) => return Err(checker.fail("top level", "tests is empty")),
        Some(other) => {
            return Err(checker.fail(
                "top level",
                &format!("tests {}: expected an array of tests", short(other)),
            ));
        }
        None => return Err(checker.fail("top level", "tests is missing")),
    };
    let tests: Vec<RuleTest> = tests
        .iter()
        .enumerate()
        .filter_map(|(index, test)| checker.test(index, test, &config))
        .collect();
    if checker.problems.is_empty() {
        Ok(TestFile {
            path: path.to_path_buf(),
            config,
            tests,
        })
    } else {
        Err(TestFileError::Invalid {
            problems: checker.problems,
        })
    }
}

/// Gathers the problems of one file.
struct Checker {
    file: String,
    problems: Vec<String>,
}

impl Checker {
    fn problem(&mut self, place: &str, message: &str) {
        self.problems
            .push(format!("{}: {place}: {message}", self.file));
    }

    fn fail(mut self, place: &str, message: &str) -> TestFileError {
        self.problem(place, message);
        TestFileError::Invalid {
            problems: self.problems,
        }
    }

    fn unknown_keys(&mut self, place: &str, object: &Map<String, Value>, known: &[&str]) {
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            self.problem(
                place,
                &format!("unknown key {key:?} (expected {})", known.join(", ")),
            );
        }
    }

    fn duration(&mut self, place: &str, key: &str, value: Option<&Value>) -> Option<Millis> {
        match value {
            None => {
                self.problem(place, &format!("{key} is missing"));
                None
            }
            Some(Value::String(text)) => match parse_duration(text) {
                Ok(millis) => Some(millis),
                Err(error) => {
                    self.problem(place, &format!("{key} {text:?}: {error}"));
                    None
                }
            },
            Some(other) => {
                self.problem(
                    place,
                    &format!(
                        "{key} {}: expected a duration such as \"10s\"",
                        short(other)
                    ),
                );
                None
            }
        }
    }

    fn string(&mut self, place: &str, key: &str, value: Option<&Value>) -> Option<String> {
        match value {
            Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
            None => {
                self.problem(place, &format!("{key} is missing"));
                None
            }
            Some(other) => {
                self.problem(
                    place,
                    &format!("{key} {}: expected a non-empty string", short(other)),
                );
                None
            }
        }
    }

    /// An optional trigger value: a number, or `null` for no data.
    fn trigger(&mut self, place: &str, value: Option<&Value>) -> Option<Option<Option<f64>>> {
        match value {
            None => Some(None),
            Some(Value::Null) => Some(Some(None)),
            Some(Value::Number(number)) => Some(Some(number.as_f64())),
            Some(other) => {
                self.problem(
                    place,
                    &format!(
                        "triggerValue {}: expected a number, or null for no data",
                        short(other)
                    ),
                );
                None
            }
        }
    }

    fn test(&mut self, index: usize, test: &Value, config: &Config) -> Option<RuleTest> {
        let mut place = format!("tests[{index}]");
        let Some(object) = test.as_object() else {
            self.problem(
                &place,
                &format!("expected a test object, got {}", short(test)),
            );
            return None;
        };
        let before = self.problems.len();
        let name = self.string(&place, "name", object.get("name"));
        if let Some(name) = &name {
            place = format!("tests[{index}] {name:?}");
        }
        self.unknown_keys(&place, object, &["name", "interval", "series", "expect"]);
        let interval = self
            .duration(&place, "interval", object.get("interval"))
            .filter(|interval| {
                let positive = *interval > 0;
                if !positive {
                    self.problem(&place, "interval must be longer than 0");
                }
                positive
            });
        let series = self.series(&place, object.get("series"));
        let expect = self.expectations(&place, object.get("expect"), config);
        if self.problems.len() > before {
            return None;
        }
        Some(RuleTest {
            name: name?,
            interval: interval?,
            series: series?,
            expect: expect?,
        })
    }

    fn series(&mut self, place: &str, value: Option<&Value>) -> Option<Series> {
        let Some(hosts) = value.and_then(Value::as_object) else {
            self.problem(
                place,
                "series: expected an object of hosts, each an object of fields and their values",
            );
            return None;
        };
        let mut series = BTreeMap::new();
        for (host, fields) in hosts {
            let Some(fields) = fields.as_object() else {
                self.problem(
                    place,
                    &format!(
                        "series.{host} {}: expected an object of fields",
                        short(fields)
                    ),
                );
                continue;
            };
            let mut values = BTreeMap::new();
            for (field, notation) in fields {
                if !crate::field::is_valid_field_name(field) {
                    self.problem(
                        place,
                        &format!("series.{host}.{field}: not a valid field name"),
                    );
                    continue;
                }
                let Some(text) = notation.as_str() else {
                    self.problem(
                        place,
                        &format!(
                            "series.{host}.{field} {}: expected values such as \"1 2 3x4 _\"",
                            short(notation)
                        ),
                    );
                    continue;
                };
                match expand(text) {
                    Ok(expanded) => {
                        values.insert(field.clone(), expanded);
                    }
                    Err(message) => {
                        self.problem(place, &format!("series.{host}.{field}: {message}"));
                    }
                }
            }
            series.insert(host.clone(), values);
        }
        Some(series)
    }

    fn expectations(
        &mut self,
        place: &str,
        value: Option<&Value>,
        config: &Config,
    ) -> Option<Vec<Expectation>> {
        let items = match value {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                self.problem(place, "expect: expected a non-empty array of expectations");
                return None;
            }
        };
        let interval = config.alerting.watcher_interval;
        let mut expectations = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let here = format!("{place}: expect[{index}]");
            let Some(object) = item.as_object() else {
                self.problem(&here, &format!("expected an object, got {}", short(item)));
                continue;
            };
            self.unknown_keys(&here, object, &["at", "open", "transitions"]);
            let Some(at) = self.duration(&here, "at", object.get("at")) else {
                continue;
            };
            if at % interval != 0 {
                self.problem(
                    &here,
                    &format!(
                        "at {}: not a tick: ticks fall on the multiples of \
                         alerting.watcherInterval ({})",
                        HumanDuration(at),
                        HumanDuration(interval)
                    ),
                );
                continue;
            }
            let what = match (object.get("open"), object.get("transitions")) {
                (Some(open), None) => self.open(&here, open, config).map(Expected::Open),
                (None, Some(transitions)) => self
                    .transitions(&here, transitions, config)
                    .map(Expected::Transitions),
                _ => {
                    self.problem(&here, "give either open or transitions");
                    None
                }
            };
            if let Some(what) = what {
                expectations.push(Expectation { at, what });
            }
        }
        expectations.sort_by_key(|expectation| expectation.at);
        Some(expectations)
    }

    fn rule_name(&mut self, place: &str, value: Option<&Value>, config: &Config) -> Option<String> {
        let name = self.string(place, "rule", value)?;
        if config.alerting.rules.iter().any(|rule| rule.name == name) {
            Some(name)
        } else {
            self.problem(
                place,
                &format!("rule {name:?}: the configuration has no rule of that name"),
            );
            None
        }
    }

    /// The objects of the array `value` (under `key` at `place`), each with
    /// its own place; what is not an object is a problem.
    fn objects<'v>(
        &mut self,
        place: &str,
        key: &str,
        value: &'v Value,
    ) -> Option<Vec<(String, &'v Map<String, Value>)>> {
        let Some(items) = value.as_array() else {
            self.problem(
                place,
                &format!("{key} {}: expected an array of objects", short(value)),
            );
            return None;
        };
        let mut objects = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let here = format!("{place}.{key}[{index}]");
            match item.as_object() {
                Some(object) => objects.push((here, object)),
                None => self.problem(&here, &format!("expected an object, got {}", short(item))),
            }
        }
        Some(objects)
    }

    fn open(
        &mut self,
        place: &str,
        value: &Value,
        config: &Config,
    ) -> Option<Vec<ExpectedIncident>> {
        let mut incidents = Vec::new();
        for (here, object) in self.objects(place, "open", value)? {
            self.unknown_keys(
                &here,
                object,
                &["rule", "host", "triggerValue", "severity", "startTime"],
            );
            let rule = self.rule_name(&here, object.get("rule"), config);
            let host = self.string(&here, "host", object.get("host"));
            let trigger = self.trigger(&here, object.get("triggerValue"));
            let severity = match object.get("severity") {
                None => Some(None),
                value => self.string(&here, "severity", value).map(Some),
            };
            let start = match object.get("startTime") {
                None => Some(None),
                value => self.duration(&here, "startTime", value).map(Some),
            };
            if let (Some(rule), Some(host), Some(trigger_value), Some(severity), Some(start_time)) =
                (rule, host, trigger, severity, start)
            {
                incidents.push(ExpectedIncident {
                    rule,
                    host,
                    trigger_value,
                    severity,
                    start_time,
                });
            }
        }
        Some(incidents)
    }

    fn transitions(
        &mut self,
        place: &str,
        value: &Value,
        config: &Config,
    ) -> Option<Vec<ExpectedTransition>> {
        let mut transitions = Vec::new();
        for (here, object) in self.objects(place, "transitions", value)? {
            self.unknown_keys(
                &here,
                object,
                &["event", "rule", "host", "at", "triggerValue"],
            );
            let event = match object.get("event").and_then(Value::as_str) {
                Some(event @ ("opened" | "resolved")) => Some(event.to_string()),
                _ => {
                    self.problem(&here, "event: expected \"opened\" or \"resolved\"");
                    None
                }
            };
            let rule = self.rule_name(&here, object.get("rule"), config);
            let host = self.string(&here, "host", object.get("host"));
            let at = match object.get("at") {
                None => Some(None),
                value => self.duration(&here, "at", value).map(Some),
            };
            let trigger = self.trigger(&here, object.get("triggerValue"));
            if let (Some(event), Some(rule), Some(host), Some(at), Some(trigger_value)) =
                (event, rule, host, at, trigger)
            {
                transitions.push(ExpectedTransition {
                    event,
                    rule,
                    host,
                    at,
                    trigger_value,
                });
            }
        }
        Some(transitions)
    }
}

/// A JSON value as a message shows it, shortened.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(37).collect::<String>())
    } else {
        text
    }
}

/// The values of a series in the expanding notation: `a+bxn` is the `n + 1`
/// values `a, a+b, ..., a+n*b`; `a-bxn` counts down; `axn` is `a` repeated
/// `n + 1` times; `_` is no value, `_xn` is `n + 1` of them; a plain number
/// is one value.
pub fn expand(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut values = Vec::new();
    for word in text.split_whitespace() {
        let bad = |why: &str| format!("{word:?}: {why}");
        let (head, times) = match word.rsplit_once('x') {
            Some((head, times)) => {
                let times: usize = times
                    .parse()
                    .map_err(|_| bad("expected a whole number of repeats after x"))?;
                if times > 1_000_000 {
                    return Err(bad("more than 1,000,000 repeats"));
                }
                (head, Some(times))
            }
            None => (word, None),
        };
        if head == "_" {
            values.extend(std::iter::repeat_n(None, times.map_or(1, |n| n + 1)));
            continue;
        }
        // `a+b` or `a-b`: the sign after the first character that does not
        // belong to an exponent.
        let split = head
            .char_indices()
            .skip(1)
            .find(|&(at, c)| {
                (c == '+' || c == '-') && !matches!(head.as_bytes()[at - 1], b'e' | b'E')
            })
            .map(|(at, _)| at);
        let number = |text: &str| -> Result<f64, String> {
            text.parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .ok_or_else(|| bad(&format!("{text:?} is not a finite number")))
        };
        match (split, times) {
            (Some(at), Some(times)) => {
                let start = number(&head[..at])?;
                let step = number(&head[at..])?;
                values.extend((0..=times).map(|i| Some(start + step * i as f64)));
            }
            (Some(_), None) => {
                return Err(bad("a step (a+b) needs a count of steps: a+bxn"));
            }
            (None, Some(times)) => {
                let value = number(head)?;
                values.extend(std::iter::repeat_n(Some(value), times + 1));
            }
            (None, None) => values.push(Some(number(head)?)),
        }
    }
    if values.is_empty() {
        return Err("no values".to_string());
    }
    Ok(values)
}

/// Runs every test of `file`.
pub fn run(file: &TestFile) -> Vec<(String, Outcome)> {
    file.tests
        .iter()
        .map(|test| (test.name.clone(), run_test(&file.config, test)))
        .collect()
}

/// Runs one test: every sample, then every tick up to the last expectation.
pub fn run_test(config: &Config, test: &RuleTest) -> Outcome {
    let mut engine = Engine::from_config(config);
    for (host, fields) in &test.series {
        let steps = fields.values().map(Vec::len).max().unwrap_or(0);
        for step in 0..steps {
            let metrics: Vec<(String, f64)> = fields
                .iter()
                .filter_map(|(field, values)| {
                    values
                        .get(step)
                        .copied()
                        .flatten()
                        .map(|value| (field.clone(), value))
                })
                .collect();
            if !metrics.is_empty() {
                engine.ingest(&Sample {
                    host: host.clone(),
                    ts: step as Millis * test.interval,
                    metrics,
                });
            }
        }
    }
    let interval = config.alerting.watcher_interval;
    let last = test.expect.last().map_or(0, |expectation| expectation.at);
    let mut ids = SequentialIds::default();
    let mut transitions: Vec<Transition> = Vec::new();
    let mut open: BTreeMap<(usize, String), Incident> = BTreeMap::new();
    let mut expectations = test.expect.iter().peekable();
    let mut tick = 0;
    while tick <= last {
        let before = transitions.len();
        if engine.evaluate(tick, &mut ids, &mut transitions).is_err() {
            break; // ticks only move forward here
        }
        for transition in &transitions[before..] {
            let key = (transition.rule, transition.incident.host_name.to_string());
            if transition.incident.is_open() {
                open.insert(key, transition.incident.clone());
            } else {
                open.remove(&key);
            }
        }
        while let Some(expectation) = expectations.next_if(|e| e.at == tick) {
            let failed = match &expectation.what {
                Expected::Open(expected) => {
                    let got: Vec<&Incident> = open.values().collect();
                    check_open(expected, &got)
                }
                Expected::Transitions(expected) => check_transitions(expected, &transitions),
            };
            if let Some((what, expected, got)) = failed {
                return Outcome::Failed {
                    at: tick,
                    what,
                    expected,
                    got,
                };
            }
        }
        tick += interval;
    }
    Outcome::Passed
}

type Failure = (&'static str, Vec<String>, Vec<String>);

fn check_open(expected: &[ExpectedIncident], got: &[&Incident]) -> Option<Failure> {
    let mut unmatched: Vec<&Incident> = got.to_vec();
    let mut all_found = true;
    for want in expected {
        match unmatched
            .iter()
            .position(|incident| matches_open(want, incident))
        {
            Some(found) => {
                unmatched.remove(found);
            }
            None => all_found = false,
        }
    }
    if all_found && unmatched.is_empty() {
        return None;
    }
    Some((
        "open",
        expected.iter().map(ToString::to_string).collect(),
        got.iter().map(|incident| describe_open(incident)).collect(),
    ))
}

fn matches_open(want: &ExpectedIncident, incident: &Incident) -> bool {
    *incident.rule_name == want.rule
        && *incident.host_name == want.host
        && want
            .trigger_value
            .is_none_or(|value| same_value(value, incident.trigger_value))
        && want
            .severity
            .as_deref()
            .is_none_or(|severity| incident.severity() == Some(severity))
        && want
            .start_time
            .is_none_or(|start| incident.start_time == start)
}

/// Whether an expected trigger value (none: no data) is the incident's.
fn same_value(want: Option<f64>, got: f64) -> bool {
    match want {
        None => got.is_nan(),
        Some(value) => value == got,
    }
}

fn check_transitions(expected: &[ExpectedTransition], got: &[Transition]) -> Option<Failure> {
    let same = expected.len() == got.len()
        && expected.iter().zip(got).all(|(want, transition)| {
            transition.kind.as_str() == want.event
                && *transition.incident.rule_name == want.rule
                && *transition.incident.host_name == want.host
                && want.at.is_none_or(|at| transition.at == at)
                && want
                    .trigger_value
                    .is_none_or(|value| same_value(value, transition.incident.trigger_value))
        });
    if same {
        return None;
    }
    Some((
        "transitions",
        expected.iter().map(ToString::to_string).collect(),
        got.iter()
            .map(|transition| {
                format!(
                    "{} {} on {} at {} ({})",
                    transition.kind.as_str(),
                    transition.incident.rule_name,
                    transition.incident.host_name,
                    HumanDuration(transition.at),
                    value_text(transition.incident.trigger_value)
                )
            })
            .collect(),
    ))
}

/// A trigger value as a test shows it: as JSON writes it, or `no data`.
fn value_text(value: f64) -> String {
    if value.is_nan() {
        "no data".to_string()
    } else {
        serde_json::to_string(&JsonNumber(value)).unwrap_or_default()
    }
}

fn describe_open(incident: &Incident) -> String {
    let mut text = format!(
        "{} on {} since {} ({})",
        incident.rule_name,
        incident.host_name,
        HumanDuration(incident.start_time),
        value_text(incident.trigger_value)
    );
    if let Some(severity) = incident.severity() {
        text.push_str(&format!(" [{severity}]"));
    }
    text
}

impl fmt::Display for ExpectedIncident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.rule, self.host)?;
        if let Some(start) = self.start_time {
            write!(f, " since {}", HumanDuration(start))?;
        }
        if let Some(value) = self.trigger_value {
            write!(f, " ({})", value.map_or("no data".to_string(), value_text))?;
        }
        if let Some(severity) = &self.severity {
            write!(f, " [{severity}]")?;
        }
        Ok(())
    }
}

impl fmt::Display for ExpectedTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.event, self.rule, self.host)?;
        if let Some(at) = self.at {
            write!(f, " at {}", HumanDuration(at))?;
        }
        if let Some(value) = self.trigger_value {
            write!(f, " ({})", value.map_or("no data".to_string(), value_text))?;
        }
        Ok(())
    }
}

/// A failed test's report: its name, the time, and expected against got,
/// side by side.
pub fn report(name: &str, outcome: &Outcome) -> Option<String> {
    let Outcome::Failed {
        at,
        what,
        expected,
        got,
    } = outcome
    else {
        return None;
    };
    let none = |lines: &[String]| {
        if lines.is_empty() {
            vec!["(none)".to_string()]
        } else {
            lines.to_vec()
        }
    };
    let (expected, got) = (none(expected), none(got));
    let width = expected
        .iter()
        .map(|line| line.chars().count())
        .max()
        .unwrap_or(0)
        .max(format!("expected {what}").len());
    let mut text = format!("FAIL {name}\n  at {}:\n", HumanDuration(*at));
    text.push_str(&format!(
        "    {:<width$}   got {what}\n",
        format!("expected {what}")
    ));
    for row in 0..expected.len().max(got.len()) {
        let left = expected.get(row).map_or("", String::as_str);
        let right = got.get(row).map_or("", String::as_str);
        text.push_str(&format!("    {left:<width$}   {right}\n"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn the_expanding_notation() {
        let some = |values: &[f64]| values.iter().map(|v| Some(*v)).collect::<Vec<_>>();
        assert_eq!(expand("1 2 3").unwrap(), some(&[1.0, 2.0, 3.0]));
        assert_eq!(expand("0+1x3").unwrap(), some(&[0.0, 1.0, 2.0, 3.0]));
        assert_eq!(expand("10-2x2").unwrap(), some(&[10.0, 8.0, 6.0]));
        assert_eq!(expand("-5+1x1").unwrap(), some(&[-5.0, -4.0]));
        assert_eq!(expand("1e3+1e2x1").unwrap(), some(&[1000.0, 1100.0]));
        assert_eq!(expand("7x2").unwrap(), some(&[7.0, 7.0, 7.0]));
        assert_eq!(expand("_ 1 _x1").unwrap(), [None, Some(1.0), None, None]);
        assert!(expand("1+2").unwrap_err().contains("needs a count"));
        assert!(expand("ax3").unwrap_err().contains("not a finite number"));
        assert!(expand("1x").unwrap_err().contains("whole number"));
        assert!(expand("").unwrap_err().contains("no values"));
    }
}
