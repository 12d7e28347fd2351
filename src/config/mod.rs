//! Configuration (docs/engine.md, Configuration): the two file shapes, defaults, and
//! validation into a [`Config`] that cannot be invalid.
//!
//! Loading is two steps. The JSON is read into the [`raw`] types, which accept
//! anything of the right overall shape; [`validate`] then checks every key and
//! returns either a `Config` with its warnings, or every problem of the file,
//! each naming its place (`alerting.rules[2] "High CPU": timeframe "2x": ...`).

pub mod ingest;
pub mod maintenance;
pub mod notify;
pub mod raw;
mod validate;

pub use validate::validate;

use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::duration::{HumanDuration, Millis};

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub shape: Shape,
    pub monitoring: Monitoring,
    pub alerting: Alerting,
    /// The service's own settings, `server`, `storage` and `hooks`: defaults
    /// in a Botpress-shaped file, which has no place for them.
    pub server: Server,
    pub storage: Storage,
    pub hooks: Hooks,
    /// `ingest`: series from standard senders, and scrape targets; its
    /// defaults in a Botpress-shaped file.
    pub ingest: ingest::Ingest,
}

/// `server`: how `alertd run` serves HTTP (not in the original product).
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `server.listen`: the address of the HTTP API, unless `--listen` says otherwise.
    pub listen: String,
    /// `server.token`: the bearer token every `/api` request must carry.
    pub token: Option<String>,
    /// `server.bodyLimit`: the largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `server.hostName`: the name this node's own samples carry.
    pub host_name: Option<String>,
    /// `server.maxFutureSkew`: a pushed sample whose `ts` is further ahead of
    /// this node's clock is refused.
    pub max_future_skew: Millis,
    /// `server.idleTimeout`: how long a client has to send a request's
    /// headers, on a new connection or between kept-alive requests.
    pub idle_timeout: Millis,
    /// `server.publicUrl`: how people reach this node (`https://alerts.example.com/`);
    /// its host is the one name besides loopback names that requests may use.
    pub public_url: Option<String>,
    /// `server.maxHosts`: the most hosts the store may know; a pushed batch
    /// that would bring more is refused (429).
    pub max_hosts: usize,
    /// `server.maxNewHostsPerBatch`: the most hosts one pushed batch may add
    /// (400 beyond).
    pub max_new_hosts_per_batch: usize,
    /// `server.connectionsPerClient`: the most connections one client
    /// address may hold open at once.
    pub connections_per_client: usize,
    /// `server.trustedProxies`: the reverse proxies (addresses or networks)
    /// whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `server.idempotencyWindow`: how long the store keeps a push's
    /// `Idempotency-Key`, within which the same push sent again is not
    /// stored again.
    pub idempotency_window: Millis,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: DEFAULT_LISTEN.to_string(),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            host_name: None,
            max_future_skew: 300_000,
            idle_timeout: 30_000,
            public_url: None,
            max_hosts: 10_000,
            max_new_hosts_per_batch: 1_000,
            connections_per_client: 64,
            trusted_proxies: Vec::new(),
            idempotency_window: 600_000,
        }
    }
}

/// `storage`: where `alertd run` keeps its state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Storage {
    /// `storage.dataDir`: as written; relative paths are resolved against the
    /// configuration file's directory by the caller.
    pub data_dir: Option<String>,
    /// `storage.backend` and what it needs.
    pub backend: Backend,
    /// `storage.lease`: how long the evaluating node's lease runs unless
    /// renewed; by default three watcher intervals (see
    /// [`Config::lease_ttl`]).
    pub lease: Option<Millis>,
    /// `storage.maxClockSkew`: how far a node's clock may be from the shared
    /// store's before the node refuses to lead (see
    /// [`Config::max_clock_skew`]).
    pub max_clock_skew: Option<Millis>,
}

/// `hooks`: how the calls of hooks and targets are made.
#[derive(Debug, Clone, PartialEq)]
pub struct Hooks {
    /// `hooks.timeout`: a call still running after this is ended.
    pub timeout: Millis,
    /// `hooks.concurrency`: the most calls to one target made at once by
    /// this node (each target has its own slots).
    pub concurrency: usize,
    /// `hooks.giveUpAfter`: a delivery still failing this long after its
    /// transition is given up on (kept as dead, retried on demand).
    pub give_up_after: Millis,
    /// `hooks.node`: the Node.js that runs `.js` hooks (`node` from the `PATH`).
    pub node: String,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            timeout: 10_000,
            concurrency: 8,
            give_up_after: 86_400_000,
            node: "node".to_string(),
        }
    }
}

/// Where the service keeps its state (`storage.backend`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// One node, one SQLite file in its data directory (the default).
    #[default]
    Sqlite,
    /// A cluster of nodes sharing one Redis.
    Redis {
        /// `storage.redisUrl`: `redis://HOST:PORT/DB`.
        url: String,
        /// `storage.cluster`: the name every key of the cluster carries
        /// (`alertd` by default), so that clusters can share a Redis.
        cluster: String,
    },
}

impl Config {
    /// A fingerprint of what decides evaluation (alerting on or off, the
    /// watcher interval, the rules in order): two nodes with the same one
    /// evaluate alike. Stable for one version of alertd.
    pub fn rules_fingerprint(&self) -> String {
        let alerting = &self.alerting;
        let text = format!(
            "{}|{}|{:?}",
            alerting.enabled, alerting.watcher_interval, alerting.rules
        );
        // FNV-1a, 64 bits.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{hash:016x}")
    }

    /// How long the evaluating node's lease runs unless renewed.
    pub fn lease_ttl(&self) -> Millis {
        self.storage
            .lease
            .unwrap_or(3 * self.alerting.watcher_interval)
            .max(1_000)
    }
}

impl Config {
    /// How far a node's clock may be from the shared store's (Redis `TIME`)
    /// before the node refuses to lead: 1 s unless set.
    pub fn max_clock_skew(&self) -> Millis {
        self.storage
            .max_clock_skew
            .unwrap_or(DEFAULT_MAX_CLOCK_SKEW)
    }
}

/// The default `storage.maxClockSkew`: machines kept by NTP are within a few
/// milliseconds of each other; a second apart, one of them is not.
pub const DEFAULT_MAX_CLOCK_SKEW: Millis = 1_000;

/// Where `alertd run` listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7373";
/// The default request body limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The native shape's top-level keys.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "monitoring",
    "alerting",
    "server",
    "storage",
    "hooks",
    "ingest",
];

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
    /// Per-minute rollups of samples older than this are deleted.
    pub minute_rollup_retention: Millis,
    /// Per-ten-minute rollups of samples older than this are deleted.
    pub ten_minute_rollup_retention: Millis,
    /// Per-hour rollups of samples older than this are deleted.
    pub hour_rollup_retention: Millis,
}

impl Alerting {
    /// The longest rule timeframe (0 without rules): how far back a window
    /// can see.
    pub fn longest_timeframe(&self) -> Millis {
        self.rules
            .iter()
            .map(|rule| rule.timeframe)
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alerting {
    pub enabled: bool,
    pub watcher_interval: Millis,
    /// Resolved incidents whose end is older than this are deleted.
    pub retention_period: Millis,
    pub janitor_interval: Millis,
    pub rules: Vec<Rule>,
    /// `alerting.notify`: targets besides the hooks folder.
    pub notify: Vec<notify::Target>,
    /// `alerting.maintenance`: recurring windows that silence what they match.
    pub maintenance: Vec<maintenance::Window>,
}

/// An incident rule (docs/engine.md, Incident rules).
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
    /// The keys beyond the original's (docs/engine.md, Rule options).
    pub options: RuleOptions,
}

/// A rule's keys beyond the original's (docs/engine.md, Rule options). At
/// their defaults the rule evaluates exactly as the original's rules do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleOptions {
    /// `for`: how long the condition must have held before an incident opens.
    pub hold_for: Millis,
    /// `keepFiringFor`: how long an open incident must have been clear before
    /// it resolves.
    pub keep_firing_for: Millis,
    /// `recoveryValue`, when given: an open incident is clear only past it.
    pub recovery: Option<f64>,
    /// `noData`: what an aggregate without a value means.
    pub no_data: NoData,
    /// `severity`, carried on the incident.
    pub severity: Option<std::sync::Arc<str>>,
    /// `labels`, carried on the incident.
    pub labels: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    /// `description`, rendered on the incident when it opens.
    pub description: Option<std::sync::Arc<str>>,
}

/// `noData`: what an aggregate without a value (`avg`, `min`, `max`, `last`
/// over an empty window) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum NoData {
    /// Nothing: an open incident stays open, nothing opens (the original).
    #[default]
    Keep,
    /// Clear: an open incident resolves (after `keepFiringFor`).
    Resolve,
    /// The condition holds: an incident opens (after `for`), with no
    /// trigger value.
    Open,
}

impl NoData {
    pub const ALL: [NoData; 3] = [NoData::Keep, NoData::Resolve, NoData::Open];

    pub fn as_str(self) -> &'static str {
        match self {
            NoData::Keep => "keep",
            NoData::Resolve => "resolve",
            NoData::Open => "open",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == text)
    }
}

impl Rule {
    /// The aggregate past which an open incident is clear: `recoveryValue`,
    /// else the rule's `value`.
    #[inline]
    pub fn recovery_value(&self) -> f64 {
        self.options.recovery.unwrap_or(self.threshold)
    }

    /// Whether an aggregate makes an open incident clear: below
    /// `recoveryValue` for `equalOrMoreThan`, above it for `equalOrLessThan`.
    #[inline]
    pub fn is_clear(&self, aggregate: f64) -> bool {
        match self.operand {
            Operand::EqualOrMoreThan => aggregate < self.recovery_value(),
            Operand::EqualOrLessThan => aggregate > self.recovery_value(),
        }
    }

    /// Whether the rule evaluates exactly as the original's: no `for`, no
    /// `keepFiringFor`, no recovery value apart from its value, and no-data
    /// aggregates change nothing.
    #[inline]
    pub fn is_plain(&self) -> bool {
        let options = &self.options;
        options.hold_for == 0
            && options.keep_firing_for == 0
            && self.recovery_value() == self.threshold
            && options.no_data == NoData::Keep
    }

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
        let options = &self.options;
        if options.hold_for > 0 {
            write!(f, " for {}", HumanDuration(options.hold_for))?;
        }
        if self.recovery_value() != self.threshold {
            let side = match self.operand {
                Operand::EqualOrMoreThan => "below",
                Operand::EqualOrLessThan => "above",
            };
            write!(f, ", resolves {side} {}", self.recovery_value())?;
        }
        if options.keep_firing_for > 0 {
            write!(
                f,
                ", keeps firing {}",
                HumanDuration(options.keep_firing_for)
            )?;
        }
        if options.no_data != NoData::Keep {
            write!(f, ", no data: {}", options.no_data.as_str())?;
        }
        if self.cooldown == 0 {
            f.write_str(", no cooldown")?;
        } else {
            write!(f, ", cooldown {}", HumanDuration(self.cooldown))?;
        }
        if let Some(severity) = &options.severity {
            write!(f, ", severity {severity}")?;
        }
        Ok(())
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
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        // Not UTF-8 is bad input, like bad JSON, not a file that cannot be read.
        let text = std::str::from_utf8(&bytes).map_err(|error| {
            let valid = &bytes[..error.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
            ConfigError::Syntax {
                path: shown.clone(),
                line,
                column: valid.len() - line_start + 1,
                message: format!(
                    "not UTF-8 (byte {:#04x} at offset {})",
                    bytes[error.valid_up_to()],
                    error.valid_up_to()
                ),
            }
        })?;
        Self::parse(text, &shown)
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
                minute_rollup_retention: 25 * 3_600_000,
                ten_minute_rollup_retention: 10 * 86_400_000,
                hour_rollup_retention: 10 * 86_400_000,
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
