//! Configuration (SPEC section 3): the two file shapes, defaults, and
//! validation into a [`Config`] that cannot be invalid.
//!
//! Loading is two steps. The JSON is read into the [`raw`] types, which accept
//! anything of the right overall shape; [`validate`] then checks every key and
//! returns either a `Config` with its warnings, or every problem of the file,
//! each naming its place (`alerting.rules[2] "High CPU": timeframe "2x": ...`).

pub mod raw;

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::duration::{DurationError, HumanDuration, Millis, parse_duration};
use crate::field;
use raw::{Raw, RawAlerting, RawHooks, RawMonitoring, RawRule, RawServer, RawStorage};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub shape: Shape,
    pub monitoring: Monitoring,
    pub alerting: Alerting,
    /// The service's own settings (`server`, `storage`, `hooks`); defaults in
    /// a Botpress-shaped file, which has no place for them.
    pub service: Service,
}

/// Settings of `alertd run` that the original product did not have.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `server.listen`: the address of the HTTP API, unless `--listen` says otherwise.
    pub listen: String,
    /// `server.token`: the bearer token every `/api` request must carry.
    pub token: Option<String>,
    /// `server.bodyLimit`: the largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `server.hostName`: the name this node's own samples carry.
    pub host_name: Option<String>,
    /// `storage.dataDir`: as written; relative paths are resolved against the
    /// configuration file's directory by the caller.
    pub data_dir: Option<String>,
    /// `hooks.timeout`: a hook still running after this is killed.
    pub hook_timeout: Millis,
    /// `server.maxFutureSkew`: a pushed sample whose `ts` is further ahead of
    /// this node's clock is refused.
    pub max_future_skew: Millis,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            listen: DEFAULT_LISTEN.to_string(),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            host_name: None,
            data_dir: None,
            hook_timeout: 10_000,
            max_future_skew: 300_000,
        }
    }
}

/// Where `alertd run` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7373";
/// The default request body limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The native shape's top-level keys.
pub const TOP_LEVEL_KEYS: &[&str] = &["monitoring", "alerting", "server", "storage", "hooks"];

/// Which of the two accepted file shapes a configuration was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Top-level `monitoring` and `alerting`.
    Native,
    /// A `botpress.config.json`, read from `pro.monitoring` and `pro.alerting`.
    Botpress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitoring {
    pub enabled: bool,
    pub collection_interval: Millis,
    /// Samples older than this are deleted; a host silent for this long is forgotten.
    pub retention_period: Millis,
    pub janitor_interval: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    pub enabled: bool,
    pub watcher_interval: Millis,
    /// Resolved incidents whose end is older than this are deleted.
    pub retention_period: Millis,
    pub janitor_interval: Millis,
    pub rules: Vec<Rule>,
}

/// An incident rule (SPEC section 3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Trimmed, non-empty and unique among the rules.
    pub name: String,
    pub field: String,
    pub aggregation: Aggregation,
    pub operand: Operand,
    /// The rule's `value`: what the aggregate is compared with.
    pub threshold: f64,
    /// Always > 0.
    pub timeframe: Millis,
    pub cooldown: Millis,
}

impl Rule {
    /// Whether an aggregate satisfies the rule's condition.
    #[inline]
    pub fn holds(&self, aggregate: f64) -> bool {
        match self.operand {
            Operand::EqualOrMoreThan => aggregate >= self.threshold,
            Operand::EqualOrLessThan => aggregate <= self.threshold,
        }
    }
}

/// `High CPU Usage: avg(cpu.usage) over 2m >= 60, cooldown 1m`
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}({}) over {} {} {}",
            self.name,
            self.aggregation,
            self.field,
            HumanDuration(self.timeframe),
            self.operand.symbol(),
            self.threshold
        )?;
        if self.cooldown == 0 {
            f.write_str(", no cooldown")
        } else {
            write!(f, ", cooldown {}", HumanDuration(self.cooldown))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    Avg,
    Sum,
    Min,
    Max,
    Last,
    Count,
}

impl Aggregation {
    pub const ALL: [Aggregation; 6] = [
        Aggregation::Avg,
        Aggregation::Sum,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Last,
        Aggregation::Count,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Avg => "avg",
            Aggregation::Sum => "sum",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Last => "last",
            Aggregation::Count => "count",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operand {
    EqualOrMoreThan,
    EqualOrLessThan,
}

impl Operand {
    pub fn as_str(self) -> &'static str {
        match self {
            Operand::EqualOrMoreThan => "equalOrMoreThan",
            Operand::EqualOrLessThan => "equalOrLessThan",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Operand::EqualOrMoreThan => ">=",
            Operand::EqualOrLessThan => "<=",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Operand::EqualOrMoreThan, Operand::EqualOrLessThan]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// One problem (or warning) found in a configuration, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: `alerting.rules[2] "High CPU"`, `monitoring`, ...
    pub place: String,
    /// What: `timeframe "2x": unknown unit "x"`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON at line {line} column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", problems.iter().map(|p| format!("{path}: {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// A valid configuration and what validation found worth saying about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates configuration text; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Loaded, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        validate(&value).map_err(|problems| ConfigError::Invalid {
            path: path.to_string(),
            problems,
        })
    }
}

/// serde_json appends " at line L column C" to its messages; the caller
/// reports the position itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Validates a parsed configuration file: every problem, or a `Config`.
pub fn validate(file: &Value) -> Result<Loaded, Vec<Problem>> {
    let mut check = Checker::default();
    let Some(top) = file.as_object() else {
        check.problem("", format!("expected a JSON object, got {}", show(file)));
        return Err(check.problems);
    };
    let mut service = Service::default();
    let (shape, monitoring, alerting) = match top.get("pro") {
        Some(pro) => {
            // botpress.config.json: everything but pro.monitoring and pro.alerting is ignored.
            let Some(pro) = pro.as_object() else {
                check.problem("pro", format!("expected an object, got {}", show(pro)));
                return Err(check.problems);
            };
            (Shape::Botpress, pro.get("monitoring"), pro.get("alerting"))
        }
        None => {
            for key in top.keys() {
                if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                    check.unknown_key("top level", key, TOP_LEVEL_KEYS);
                }
            }
            service = check.service(top.get("server"), top.get("storage"), top.get("hooks"));
            (Shape::Native, top.get("monitoring"), top.get("alerting"))
        }
    };
    let prefix = match shape {
        Shape::Native => "",
        Shape::Botpress => "pro.",
    };
    let monitoring = check.monitoring(&format!("{prefix}monitoring"), monitoring);
    let alerting = check.alerting(&format!("{prefix}alerting"), alerting, &monitoring);
    if check.problems.is_empty() {
        Ok(Loaded {
            config: Config {
                shape,
                monitoring,
                alerting,
                service,
            },
            warnings: check.warnings,
        })
    } else {
        Err(check.problems)
    }
}

/// Collects problems and warnings while walking the raw configuration.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, place: &str, message: String) {
        self.problems.push(Problem {
            place: place.to_string(),
            message,
        });
    }

    fn warning(&mut self, place: &str, message: String) {
        self.warnings.push(Problem {
            place: place.to_string(),
            message,
        });
    }

    fn unknown_key(&mut self, place: &str, key: &str, known: &[&str]) {
        let hint = known
            .iter()
            .map(|k| {
                (
                    field::edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                    k,
                )
            })
            .filter(|&(d, _)| d <= 3)
            .min_by_key(|&(d, _)| d)
            .map(|(_, k)| format!(" (did you mean {k:?}?)"))
            .unwrap_or_default();
        self.problem(place, format!("unknown key {key:?}{hint}"));
    }

    fn unknown_keys(
        &mut self,
        place: &str,
        unknown: &std::collections::BTreeMap<String, Value>,
        known: &[&str],
    ) {
        for key in unknown.keys() {
            self.unknown_key(place, key, known);
        }
    }

    /// Reads a section object (`monitoring`, `alerting`) into its raw type.
    fn section<T: Default + serde::de::DeserializeOwned>(
        &mut self,
        place: &str,
        value: Option<&Value>,
    ) -> Option<T> {
        match value {
            None => Some(T::default()),
            Some(value @ Value::Object(_)) => match T::deserialize(value) {
                Ok(raw) => Some(raw),
                Err(e) => {
                    self.problem(place, e.to_string());
                    None
                }
            },
            Some(other) => {
                self.problem(place, format!("expected an object, got {}", show(other)));
                None
            }
        }
    }

    fn boolean(&mut self, place: &str, key: &str, raw: Raw<bool>, default: bool) -> bool {
        match raw {
            Raw::Missing => default,
            Raw::Valid(value) => value,
            Raw::Invalid(value) => {
                self.problem(
                    place,
                    format!("{key} {}: expected true or false", show(&value)),
                );
                default
            }
        }
    }

    /// A duration; `positive` rejects 0. Returns `default` after a problem.
    fn duration(
        &mut self,
        place: &str,
        key: &str,
        raw: &Raw<String>,
        default: &str,
        positive: bool,
    ) -> Millis {
        let fallback = parse_duration(default).unwrap_or(1);
        let text = match raw {
            Raw::Missing => return fallback,
            Raw::Valid(text) => text,
            Raw::Invalid(value) => {
                self.problem(
                    place,
                    format!(
                        "{key} {}: expected a duration string such as \"10s\" or \"2m\"",
                        show(value)
                    ),
                );
                return fallback;
            }
        };
        match parse_duration(text) {
            Ok(0) if positive => {
                self.problem(place, format!("{key} {text:?}: must be longer than 0"));
                fallback
            }
            Ok(millis) => millis,
            Err(error) => {
                let message = match error {
                    DurationError::UnknownUnit(unit) => {
                        format!("unknown unit {unit:?} (use ms, s, m, h, d or w)")
                    }
                    other => other.to_string(),
                };
                self.problem(place, format!("{key} {text:?}: {message}"));
                fallback
            }
        }
    }

    /// A setting's interval or period: a duration longer than 0.
    fn interval(&mut self, place: &str, key: &str, raw: &Raw<String>, default: &str) -> Millis {
        self.duration(place, key, raw, default, true)
    }

    fn text(&mut self, place: &str, key: &str, raw: Raw<String>) -> Option<String> {
        match raw {
            Raw::Missing => None,
            Raw::Valid(text) if !text.is_empty() => Some(text),
            Raw::Valid(_) => {
                self.problem(place, format!("{key} \"\": must not be empty"));
                None
            }
            Raw::Invalid(value) => {
                self.problem(place, format!("{key} {}: expected a string", show(&value)));
                None
            }
        }
    }

    fn service(
        &mut self,
        server: Option<&Value>,
        storage: Option<&Value>,
        hooks: Option<&Value>,
    ) -> Service {
        let mut service = Service::default();
        let raw: RawServer = self.section("server", server).unwrap_or_default();
        self.unknown_keys("server", &raw.unknown, RawServer::KEYS);
        if let Some(listen) = self.text("server", "listen", raw.listen) {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                self.problem(
                    "server",
                    format!("listen {listen:?}: expected an address such as \"127.0.0.1:7373\""),
                );
            }
            service.listen = listen;
        }
        service.token = self.text("server", "token", raw.token);
        service.host_name = self.text("server", "hostName", raw.host_name);
        match raw.body_limit {
            Raw::Missing => {}
            Raw::Valid(limit) if limit >= 1024 => {
                service.body_limit = usize::try_from(limit).unwrap_or(usize::MAX)
            }
            Raw::Valid(limit) => self.problem(
                "server",
                format!("bodyLimit {limit}: must be at least 1024 bytes"),
            ),
            Raw::Invalid(value) => self.problem(
                "server",
                format!("bodyLimit {}: expected a number of bytes", show(&value)),
            ),
        }
        service.max_future_skew =
            self.interval("server", "maxFutureSkew", &raw.max_future_skew, "5m");
        let raw: RawStorage = self.section("storage", storage).unwrap_or_default();
        self.unknown_keys("storage", &raw.unknown, RawStorage::KEYS);
        service.data_dir = self.text("storage", "dataDir", raw.data_dir);
        let raw: RawHooks = self.section("hooks", hooks).unwrap_or_default();
        self.unknown_keys("hooks", &raw.unknown, RawHooks::KEYS);
        service.hook_timeout = self.interval("hooks", "timeout", &raw.timeout, "10s");
        service
    }

    fn monitoring(&mut self, place: &str, value: Option<&Value>) -> Monitoring {
        let raw: RawMonitoring = self.section(place, value).unwrap_or_default();
        self.unknown_keys(place, &raw.unknown, RawMonitoring::KEYS);
        Monitoring {
            enabled: self.boolean(place, "enabled", raw.enabled, false),
            collection_interval: self.interval(
                place,
                "collectionInterval",
                &raw.collection_interval,
                "10s",
            ),
            retention_period: self.interval(place, "retentionPeriod", &raw.retention_period, "10d"),
            janitor_interval: self.interval(place, "janitorInterval", &raw.janitor_interval, "15m"),
        }
    }

    fn alerting(
        &mut self,
        place: &str,
        value: Option<&Value>,
        monitoring: &Monitoring,
    ) -> Alerting {
        let raw: RawAlerting = self.section(place, value).unwrap_or_default();
        self.unknown_keys(place, &raw.unknown, RawAlerting::KEYS);
        let rules = match raw.rules {
            Raw::Missing => Vec::new(),
            Raw::Valid(rules) => self.rules(place, &rules, monitoring),
            Raw::Invalid(value) => {
                self.problem(
                    place,
                    format!("rules {}: expected an array of rule objects", show(&value)),
                );
                Vec::new()
            }
        };
        Alerting {
            enabled: self.boolean(place, "enabled", raw.enabled, false),
            watcher_interval: self.interval(place, "watcherInterval", &raw.watcher_interval, "10s"),
            retention_period: self.interval(place, "retentionPeriod", &raw.retention_period, "10d"),
            janitor_interval: self.interval(place, "janitorInterval", &raw.janitor_interval, "15m"),
            rules,
        }
    }

    fn rules(&mut self, section: &str, values: &[Value], monitoring: &Monitoring) -> Vec<Rule> {
        let mut rules: Vec<(usize, Rule)> = Vec::new();
        for (index, value) in values.iter().enumerate() {
            let place = format!("{section}.rules[{index}]");
            match value {
                Value::Object(map) if map.is_empty() => {
                    self.warning(&place, "empty rule {} ignored".to_string());
                }
                Value::Object(_) => match RawRule::deserialize(value) {
                    Ok(raw) => {
                        if let Some(rule) = self.rule(&place, raw, monitoring) {
                            if let Some((first, _)) =
                                rules.iter().find(|(_, r)| r.name == rule.name)
                            {
                                self.problem(
                                    &format!("{place} {:?}", rule.name),
                                    format!(
                                        "name {:?}: already used by {section}.rules[{first}]",
                                        rule.name
                                    ),
                                );
                            } else {
                                rules.push((index, rule));
                            }
                        }
                    }
                    Err(e) => self.problem(&place, e.to_string()),
                },
                other => self.problem(
                    &place,
                    format!("expected a rule object, got {}", show(other)),
                ),
            }
        }
        rules.into_iter().map(|(_, rule)| rule).collect()
    }

    /// Validates one rule; `None` when it has problems (already recorded).
    fn rule(&mut self, index_place: &str, raw: RawRule, monitoring: &Monitoring) -> Option<Rule> {
        let before = self.problems.len();
        let name = match &raw.name {
            Raw::Valid(name) if !name.trim().is_empty() => Some(name.trim().to_string()),
            _ => None,
        };
        let place = match &name {
            Some(name) => format!("{index_place} {name:?}"),
            None => index_place.to_string(),
        };
        match &raw.name {
            Raw::Missing => self.problem(&place, "name is missing".to_string()),
            Raw::Invalid(value) => {
                self.problem(&place, format!("name {}: expected a string", show(value)))
            }
            Raw::Valid(text) if name.is_none() => {
                self.problem(&place, format!("name {text:?}: must not be empty"));
            }
            Raw::Valid(_) => {}
        }
        self.unknown_keys(&place, &raw.unknown, RawRule::KEYS);

        let field = self.string(&place, "field", &raw.field).and_then(|text| {
            if field::is_valid_field_name(text) {
                Some(text.to_string())
            } else {
                self.problem(
                    &place,
                    format!(
                        "field {text:?}: must be 1 to 128 of the characters A-Z a-z 0-9 _ . : -"
                    ),
                );
                None
            }
        });
        let aggregation = self
            .string(&place, "aggregation", &raw.aggregation)
            .and_then(|text| {
                let parsed = Aggregation::parse(text);
                if parsed.is_none() {
                    self.problem(
                        &place,
                        format!(
                            "aggregation {text:?}: expected one of avg, sum, min, max, last, count"
                        ),
                    );
                }
                parsed
            });
        let operand = self
            .string(&place, "operand", &raw.operand)
            .and_then(|text| {
                let parsed = Operand::parse(text);
                if parsed.is_none() {
                    self.problem(
                        &place,
                        format!("operand {text:?}: expected equalOrMoreThan or equalOrLessThan"),
                    );
                }
                parsed
            });
        let threshold = match raw.value {
            Raw::Missing => {
                self.problem(&place, "value is missing".to_string());
                None
            }
            Raw::Valid(value) => Some(value),
            Raw::Invalid(value) => {
                self.problem(&place, format!("value {}: expected a number", show(&value)));
                None
            }
        };
        let timeframe = match &raw.timeframe {
            Raw::Missing => {
                self.problem(&place, "timeframe is missing".to_string());
                None
            }
            present => Some(self.duration(&place, "timeframe", present, "1", true)),
        };
        let cooldown = self.duration(&place, "cooldown", &raw.cooldown, "0", false);
        if self.problems.len() > before {
            return None;
        }
        let rule = Rule {
            name: name?,
            field: field?,
            aggregation: aggregation?,
            operand: operand?,
            threshold: threshold?,
            timeframe: timeframe?,
            cooldown,
        };
        self.rule_warnings(&place, &rule, monitoring);
        Some(rule)
    }

    fn string<'r>(&mut self, place: &str, key: &str, raw: &'r Raw<String>) -> Option<&'r str> {
        match raw {
            Raw::Missing => {
                self.problem(place, format!("{key} is missing"));
                None
            }
            Raw::Valid(text) => Some(text),
            Raw::Invalid(value) => {
                self.problem(place, format!("{key} {}: expected a string", show(value)));
                None
            }
        }
    }

    /// What is valid but probably not what the author meant.
    fn rule_warnings(&mut self, place: &str, rule: &Rule, monitoring: &Monitoring) {
        if !field::is_built_in(&rule.field) {
            let hint = field::likely_built_in(&rule.field)
                .map(|known| format!(" (did you mean {known:?}?)"))
                .unwrap_or_default();
            self.warning(
                place,
                format!(
                    "field {:?} is not a built-in field; it is read as a custom field, \
                     and the rule sees only samples that carry it{hint}",
                    rule.field
                ),
            );
        }
        if rule.timeframe < monitoring.collection_interval {
            self.warning(
                place,
                format!(
                    "timeframe {} is shorter than monitoring.collectionInterval {}: many windows will hold no sample",
                    HumanDuration(rule.timeframe),
                    HumanDuration(monitoring.collection_interval)
                ),
            );
        }
        if rule.timeframe > monitoring.retention_period {
            self.warning(
                place,
                format!(
                    "timeframe {} is longer than monitoring.retentionPeriod {}: the service deletes samples before they leave the window",
                    HumanDuration(rule.timeframe),
                    HumanDuration(monitoring.retention_period)
                ),
            );
        }
    }
}

/// A JSON value as shown in a message, shortened when long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Loaded {
        Config::parse(text, "test.json").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = load("{}").config;
        assert_eq!(config.shape, Shape::Native);
        assert_eq!(
            config.monitoring,
            Monitoring {
                enabled: false,
                collection_interval: 10_000,
                retention_period: 864_000_000,
                janitor_interval: 900_000,
            }
        );
        assert!(!config.alerting.enabled);
        assert_eq!(config.alerting.watcher_interval, 10_000);
        assert_eq!(config.alerting.retention_period, 864_000_000);
        assert_eq!(config.alerting.janitor_interval, 900_000);
        assert!(config.alerting.rules.is_empty());
    }

    #[test]
    fn reads_a_rule_and_trims_its_name() {
        let loaded = load(
            r#"{"alerting": {"rules": [{"name": " High CPU Usage ", "field": "cpu.usage",
                "aggregation": "avg", "operand": "equalOrMoreThan", "value": 60,
                "timeframe": "2m", "cooldown": "1m"}]}}"#,
        );
        let rule = &loaded.config.alerting.rules[0];
        assert_eq!(rule.name, "High CPU Usage");
        assert_eq!(rule.timeframe, 120_000);
        assert_eq!(rule.cooldown, 60_000);
        assert_eq!(
            rule.to_string(),
            "High CPU Usage: avg(cpu.usage) over 2m >= 60, cooldown 1m"
        );
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    }

    #[test]
    fn rule_conditions_include_the_threshold() {
        let mut rule = load(
            r#"{"alerting": {"rules": [{"name": "r", "field": "f", "aggregation": "sum",
                "operand": "equalOrLessThan", "value": 0, "timeframe": "1m"}]}}"#,
        )
        .config
        .alerting
        .rules
        .remove(0);
        assert!(rule.holds(0.0) && rule.holds(-1.0) && !rule.holds(0.5));
        rule.operand = Operand::EqualOrMoreThan;
        assert!(rule.holds(0.0) && !rule.holds(-1.0) && rule.holds(0.5));
    }
}
