//! The configuration file as written, before validation.
//!
//! Every leaf is a [`Raw`], which keeps a value of the wrong type instead of
//! failing, and every object collects its unknown keys, so that validation can
//! report every problem of a file at once instead of stopping at the first.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A leaf value as found in the file: absent, of the expected type, or not.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Raw<T> {
    #[default]
    Missing,
    Valid(T),
    Invalid(Value),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Raw<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Ok(match T::deserialize(&value) {
            Ok(typed) => Raw::Valid(typed),
            Err(_) => Raw::Invalid(value),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawMonitoring {
    #[serde(default)]
    pub enabled: Raw<bool>,
    #[serde(default)]
    pub collection_interval: Raw<String>,
    #[serde(default)]
    pub retention_period: Raw<String>,
    #[serde(default)]
    pub janitor_interval: Raw<String>,
    #[serde(default)]
    pub minute_rollup_retention: Raw<String>,
    #[serde(default)]
    pub ten_minute_rollup_retention: Raw<String>,
    #[serde(default)]
    pub hour_rollup_retention: Raw<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawMonitoring {
    pub const KEYS: &[&str] = &[
        "enabled",
        "collectionInterval",
        "retentionPeriod",
        "janitorInterval",
        "minuteRollupRetention",
        "tenMinuteRollupRetention",
        "hourRollupRetention",
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAlerting {
    #[serde(default)]
    pub enabled: Raw<bool>,
    #[serde(default)]
    pub watcher_interval: Raw<String>,
    #[serde(default)]
    pub retention_period: Raw<String>,
    #[serde(default)]
    pub janitor_interval: Raw<String>,
    #[serde(default)]
    pub rules: Raw<Vec<Value>>,
    #[serde(default)]
    pub notify: Option<Value>,
    #[serde(default)]
    pub maintenance: Option<Value>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawAlerting {
    pub const KEYS: &[&str] = &[
        "enabled",
        "watcherInterval",
        "retentionPeriod",
        "janitorInterval",
        "rules",
        "notify",
        "maintenance",
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRule {
    #[serde(default)]
    pub name: Raw<String>,
    #[serde(default)]
    pub field: Raw<String>,
    #[serde(default)]
    pub aggregation: Raw<String>,
    #[serde(default)]
    pub operand: Raw<String>,
    #[serde(default)]
    pub value: Raw<f64>,
    #[serde(default)]
    pub timeframe: Raw<String>,
    #[serde(default)]
    pub cooldown: Raw<String>,
    #[serde(default, rename = "for")]
    pub hold_for: Raw<String>,
    #[serde(default)]
    pub keep_firing_for: Raw<String>,
    #[serde(default)]
    pub recovery_value: Raw<f64>,
    #[serde(default)]
    pub no_data: Raw<String>,
    #[serde(default)]
    pub severity: Raw<String>,
    #[serde(default)]
    pub labels: Raw<BTreeMap<String, String>>,
    #[serde(default)]
    pub description: Raw<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawRule {
    pub const KEYS: &[&str] = &[
        "name",
        "field",
        "aggregation",
        "operand",
        "value",
        "timeframe",
        "cooldown",
        "for",
        "keepFiringFor",
        "recoveryValue",
        "noData",
        "severity",
        "labels",
        "description",
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawServer {
    #[serde(default)]
    pub listen: Raw<String>,
    #[serde(default)]
    pub token: Raw<String>,
    #[serde(default)]
    pub body_limit: Raw<u64>,
    #[serde(default)]
    pub host_name: Raw<String>,
    #[serde(default)]
    pub max_future_skew: Raw<String>,
    #[serde(default)]
    pub idle_timeout: Raw<String>,
    #[serde(default)]
    pub public_url: Raw<String>,
    #[serde(default)]
    pub max_hosts: Raw<u64>,
    #[serde(default)]
    pub max_new_hosts_per_batch: Raw<u64>,
    #[serde(default)]
    pub connections_per_client: Raw<u64>,
    #[serde(default)]
    pub trusted_proxies: Raw<Vec<String>>,
    #[serde(default)]
    pub idempotency_window: Raw<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawServer {
    pub const KEYS: &[&str] = &[
        "listen",
        "token",
        "bodyLimit",
        "hostName",
        "maxFutureSkew",
        "idleTimeout",
        "publicUrl",
        "maxHosts",
        "maxNewHostsPerBatch",
        "connectionsPerClient",
        "trustedProxies",
        "idempotencyWindow",
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawStorage {
    #[serde(default)]
    pub data_dir: Raw<String>,
    #[serde(default)]
    pub backend: Raw<String>,
    #[serde(default)]
    pub redis_url: Raw<String>,
    #[serde(default)]
    pub cluster: Raw<String>,
    #[serde(default)]
    pub lease: Raw<String>,
    #[serde(default)]
    pub max_clock_skew: Raw<String>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawStorage {
    pub const KEYS: &[&str] = &[
        "dataDir",
        "backend",
        "redisUrl",
        "cluster",
        "lease",
        "maxClockSkew",
    ];
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawHooks {
    #[serde(default)]
    pub timeout: Raw<String>,
    #[serde(default)]
    pub node: Raw<String>,
    #[serde(default)]
    pub give_up_after: Raw<String>,
    #[serde(default)]
    pub concurrency: Raw<u64>,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

impl RawHooks {
    pub const KEYS: &[&str] = &["timeout", "node", "giveUpAfter", "concurrency"];
}
