//! Validation: walks the raw JSON of a configuration file, collects every
//! problem with its place, and builds a [`Config`] only when there is none.

use serde::Deserialize;
use serde_json::Value;

use super::raw::{Raw, RawAlerting, RawHooks, RawMonitoring, RawRule, RawServer, RawStorage};
use super::*;
use crate::duration::{DurationError, HumanDuration, Millis, parse_duration};
use crate::field;

/// Validates a parsed configuration file: every problem, or a `Config`.
pub fn validate(file: &Value) -> Result<Loaded, Vec<Problem>> {
    let mut check = Checker::default();
    let Some(top) = file.as_object() else {
        check.problem("", format!("expected a JSON object, got {}", show(file)));
        return Err(check.problems);
    };
    let (mut server, mut storage, mut hooks) = Default::default();
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
            server = check.server(top.get("server"));
            storage = check.storage(top.get("storage"));
            hooks = check.hooks(top.get("hooks"));
            (Shape::Native, top.get("monitoring"), top.get("alerting"))
        }
    };
    let prefix = match shape {
        Shape::Native => "",
        Shape::Botpress => "pro.",
    };
    let monitoring = check.monitoring(&format!("{prefix}monitoring"), monitoring);
    let mut ingest = super::ingest::Ingest::default();
    ingest.mapping.interval = monitoring.collection_interval;
    if let (Shape::Native, Some(section)) = (shape, top.get("ingest")) {
        let (found, problems) =
            super::ingest::ingest("ingest", section, monitoring.collection_interval);
        for (place, message) in problems {
            check.problem(&place, message);
        }
        ingest = found;
    }
    let alerting = check.alerting(&format!("{prefix}alerting"), alerting, &monitoring);
    if check.problems.is_empty() {
        Ok(Loaded {
            config: Config {
                shape,
                monitoring,
                alerting,
                server,
                storage,
                hooks,
                ingest,
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

    fn server(&mut self, server: Option<&Value>) -> Server {
        let mut found = Server::default();
        let raw: RawServer = self.section("server", server).unwrap_or_default();
        self.unknown_keys("server", &raw.unknown, RawServer::KEYS);
        if let Some(listen) = self.text("server", "listen", raw.listen) {
            if listen.parse::<std::net::SocketAddr>().is_err() {
                self.problem(
                    "server",
                    format!("listen {listen:?}: expected an address such as \"127.0.0.1:7373\""),
                );
            }
            found.listen = listen;
        }
        found.token = self.text("server", "token", raw.token);
        found.host_name = self.text("server", "hostName", raw.host_name);
        match raw.body_limit {
            Raw::Missing => {}
            Raw::Valid(limit) if limit >= 1024 => {
                found.body_limit = usize::try_from(limit).unwrap_or(usize::MAX)
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
        found.max_future_skew =
            self.interval("server", "maxFutureSkew", &raw.max_future_skew, "5m");
        found.idle_timeout = self.interval("server", "idleTimeout", &raw.idle_timeout, "30s");
        found.idempotency_window = self.interval(
            "server",
            "idempotencyWindow",
            &raw.idempotency_window,
            "10m",
        );
        if let Some(url) = self.text("server", "publicUrl", raw.public_url) {
            if crate::address::url_host(&url).is_none() {
                self.problem(
                    "server",
                    format!("publicUrl {url:?}: expected an http(s) URL such as \"https://alerts.example.com/\""),
                );
            }
            found.public_url = Some(url);
        }
        if let Some(hosts) =
            self.number("server", "maxHosts", raw.max_hosts, 1..=10_000_000, "hosts")
        {
            found.max_hosts = hosts;
        }
        if let Some(hosts) = self.number(
            "server",
            "maxNewHostsPerBatch",
            raw.max_new_hosts_per_batch,
            1..=10_000_000,
            "hosts",
        ) {
            found.max_new_hosts_per_batch = hosts;
        }
        if let Some(connections) = self.number(
            "server",
            "connectionsPerClient",
            raw.connections_per_client,
            1..=100_000,
            "connections",
        ) {
            found.connections_per_client = connections;
        }
        match raw.trusted_proxies {
            Raw::Missing => {}
            Raw::Valid(proxies) => {
                for proxy in proxies {
                    match crate::address::network(&proxy) {
                        Ok(network) => found.trusted_proxies.push(network),
                        Err(error) => self.problem(
                            "server",
                            format!("trustedProxies: {proxy:?}: {error}"),
                        ),
                    }
                }
            }
            Raw::Invalid(value) => self.problem(
                "server",
                format!(
                    "trustedProxies {}: expected a list of addresses such as [\"10.0.0.2\", \"fd00::/8\"]",
                    show(&value)
                ),
            ),
        }
        found
    }

    /// A whole number setting within `range`.
    fn number(
        &mut self,
        place: &str,
        key: &str,
        raw: Raw<u64>,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
    ) -> Option<usize> {
        match raw {
            Raw::Missing => None,
            Raw::Valid(number) if range.contains(&number) => usize::try_from(number).ok(),
            Raw::Valid(number) => {
                self.problem(
                    place,
                    format!(
                        "{key} {number}: must be from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            Raw::Invalid(value) => {
                self.problem(
                    place,
                    format!("{key} {}: expected a number of {unit}", show(&value)),
                );
                None
            }
        }
    }

    fn storage(&mut self, storage: Option<&Value>) -> Storage {
        let mut found = Storage::default();
        let raw: RawStorage = self.section("storage", storage).unwrap_or_default();
        self.unknown_keys("storage", &raw.unknown, RawStorage::KEYS);
        found.data_dir = self.text("storage", "dataDir", raw.data_dir);
        let url = self.text("storage", "redisUrl", raw.redis_url);
        let cluster = self.text("storage", "cluster", raw.cluster);
        match self.text("storage", "backend", raw.backend).as_deref() {
            None | Some("sqlite") => {
                if url.is_some() || cluster.is_some() {
                    self.problem(
                        "storage",
                        "redisUrl and cluster need \"backend\": \"redis\"".to_string(),
                    );
                }
            }
            Some("redis") => match url {
                Some(url) if url.starts_with("redis://") => {
                    let cluster = cluster.unwrap_or_else(|| "alertd".to_string());
                    if cluster.is_empty() || cluster.contains(['{', '}', ' ']) {
                        self.problem(
                            "storage",
                            format!(
                                "cluster {cluster:?}: expected a name without braces or spaces"
                            ),
                        );
                    }
                    found.backend = Backend::Redis { url, cluster };
                }
                Some(url) => self.problem(
                    "storage",
                    format!("redisUrl {url:?}: expected redis://HOST:PORT/DB"),
                ),
                None => self.problem(
                    "storage",
                    "backend \"redis\" needs redisUrl (redis://HOST:PORT/DB)".to_string(),
                ),
            },
            Some(other) => self.problem(
                "storage",
                format!("backend {other:?}: expected \"sqlite\" or \"redis\""),
            ),
        }
        if !matches!(raw.lease, Raw::Missing) {
            found.lease = Some(self.interval("storage", "lease", &raw.lease, "30s"));
        }
        if !matches!(raw.max_clock_skew, Raw::Missing) {
            found.max_clock_skew =
                Some(self.interval("storage", "maxClockSkew", &raw.max_clock_skew, "1s"));
        }
        found
    }

    fn hooks(&mut self, hooks: Option<&Value>) -> Hooks {
        let mut found = Hooks::default();
        let raw: RawHooks = self.section("hooks", hooks).unwrap_or_default();
        self.unknown_keys("hooks", &raw.unknown, RawHooks::KEYS);
        found.timeout = self.interval("hooks", "timeout", &raw.timeout, "10s");
        found.give_up_after = self.interval("hooks", "giveUpAfter", &raw.give_up_after, "1d");
        if let Some(bound) = self.number("hooks", "concurrency", raw.concurrency, 1..=256, "calls")
        {
            found.concurrency = bound;
        }
        if let Some(node) = self.text("hooks", "node", raw.node) {
            found.node = node;
        }
        found
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
            minute_rollup_retention: self.interval(
                place,
                "minuteRollupRetention",
                &raw.minute_rollup_retention,
                "25h",
            ),
            ten_minute_rollup_retention: self.interval(
                place,
                "tenMinuteRollupRetention",
                &raw.ten_minute_rollup_retention,
                "10d",
            ),
            hour_rollup_retention: self.interval(
                place,
                "hourRollupRetention",
                &raw.hour_rollup_retention,
                "10d",
            ),
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
        let notify = match &raw.notify {
            None => Vec::new(),
            Some(value) => {
                let names: Vec<&str> = rules.iter().map(|rule| rule.name.as_str()).collect();
                let (targets, problems) =
                    super::notify::targets(&format!("{place}.notify"), value, &names);
                for (at, message) in problems {
                    self.problem(&at, message);
                }
                targets
            }
        };
        let maintenance = match &raw.maintenance {
            None => Vec::new(),
            Some(value) => {
                let (windows, problems) =
                    super::maintenance::windows(&format!("{place}.maintenance"), value);
                for (at, message) in problems {
                    self.problem(&at, message);
                }
                windows
            }
        };
        Alerting {
            notify,
            maintenance,
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
        let options = self.rule_options(&place, &raw, operand, threshold_of(&raw.value));
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
            options,
        };
        self.rule_warnings(&place, &rule, monitoring);
        Some(rule)
    }

    /// The keys beyond the original's (docs/engine.md, Rule options).
    fn rule_options(
        &mut self,
        place: &str,
        raw: &RawRule,
        operand: Option<Operand>,
        threshold: Option<f64>,
    ) -> RuleOptions {
        let mut options = RuleOptions {
            hold_for: self.duration(place, "for", &raw.hold_for, "0", false),
            keep_firing_for: self.duration(
                place,
                "keepFiringFor",
                &raw.keep_firing_for,
                "0",
                false,
            ),
            ..RuleOptions::default()
        };
        match &raw.recovery_value {
            Raw::Missing => {}
            Raw::Invalid(value) => self.problem(
                place,
                format!("recoveryValue {}: expected a number", show(value)),
            ),
            Raw::Valid(recovery) => {
                let wrong_side = match (operand, threshold) {
                    (Some(Operand::EqualOrMoreThan), Some(value)) if *recovery > value => {
                        Some(("at or below", value, "below"))
                    }
                    (Some(Operand::EqualOrLessThan), Some(value)) if *recovery < value => {
                        Some(("at or above", value, "above"))
                    }
                    _ => None,
                };
                match wrong_side {
                    Some((side, value, past)) => self.problem(
                        place,
                        format!(
                            "recoveryValue {recovery}: must be {side} value ({value}) for {}: an \
                             open incident resolves once the aggregate is {past} recoveryValue",
                            operand.map_or("", Operand::as_str)
                        ),
                    ),
                    None => options.recovery = Some(*recovery),
                }
            }
        }
        match &raw.no_data {
            Raw::Missing => {}
            Raw::Valid(text) => match NoData::parse(text) {
                Some(no_data) => options.no_data = no_data,
                None => self.problem(
                    place,
                    format!("noData {text:?}: expected \"keep\", \"resolve\" or \"open\""),
                ),
            },
            Raw::Invalid(value) => self.problem(
                place,
                format!(
                    "noData {}: expected \"keep\", \"resolve\" or \"open\"",
                    show(value)
                ),
            ),
        }
        match &raw.severity {
            Raw::Missing => {}
            Raw::Valid(text) if !text.is_empty() && text.chars().count() <= 64 => {
                options.severity = Some(text.as_str().into());
            }
            Raw::Valid(text) => self.problem(
                place,
                format!("severity {text:?}: must be 1 to 64 characters, such as \"critical\""),
            ),
            Raw::Invalid(value) => self.problem(
                place,
                format!("severity {}: expected a string", show(value)),
            ),
        }
        match &raw.labels {
            Raw::Missing => {}
            Raw::Valid(labels) => {
                let bad = labels.keys().find(|name| !field::is_valid_field_name(name));
                match bad {
                    Some(name) => self.problem(
                        place,
                        format!(
                            "labels {name:?}: a label's name must be 1 to 128 of the characters \
                             A-Z a-z 0-9 _ . : -"
                        ),
                    ),
                    None => options.labels = std::sync::Arc::new(labels.clone()),
                }
            }
            Raw::Invalid(value) => self.problem(
                place,
                format!(
                    "labels {}: expected an object of strings, such as {{\"team\": \"web\"}}",
                    show(value)
                ),
            ),
        }
        match &raw.description {
            Raw::Missing => {}
            Raw::Valid(text) => options.description = Some(text.as_str().into()),
            Raw::Invalid(value) => self.problem(
                place,
                format!("description {}: expected a string", show(value)),
            ),
        }
        options
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
        if rule.options.no_data != NoData::Keep
            && matches!(rule.aggregation, Aggregation::Count | Aggregation::Sum)
        {
            self.warning(
                place,
                format!(
                    "noData {:?} has no effect on a {} rule: it always has a value",
                    rule.options.no_data.as_str(),
                    rule.aggregation
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

/// The rule's `value`, when it is a number.
fn threshold_of(raw: &Raw<f64>) -> Option<f64> {
    match raw {
        Raw::Valid(value) => Some(*value),
        _ => None,
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
