//! The service's own figures, served at `GET /metrics` in the Prometheus text
//! format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::incident::{Transition, TransitionKind};

/// Stored in `clock_skew` so that its zero (the default) means unset.
const SKEW_UNSET: u64 = 1 << 63;

/// Counters and gauges, updated without locks.
#[derive(Debug, Default)]
pub struct Metrics {
    samples_ingested: AtomicU64,
    samples_rejected: AtomicU64,
    batches_rejected: AtomicU64,
    /// Batches refused for bringing too many new hosts: at once, in all.
    hosts_refused: [AtomicU64; 2],
    wrong_tokens: AtomicU64,
    ticks: AtomicU64,
    ticks_missed: AtomicU64,
    ticks_failed: AtomicU64,
    last_tick_lag_millis: AtomicU64,
    tick_nanos_total: AtomicU64,
    last_tick_nanos: AtomicU64,
    opened: AtomicU64,
    resolved: AtomicU64,
    hook_successes: AtomicU64,
    hook_failures: AtomicU64,
    pending_deliveries: AtomicU64,
    leader: AtomicU64,
    deliveries_dead: AtomicU64,
    deliveries_held: AtomicU64,
    deliveries_not_sent: AtomicU64,
    lease_changes: AtomicU64,
    /// Points from standard senders by way in (`Via` order): taken,
    /// refused, skipped.
    points: [[AtomicU64; 3]; 3],
    /// Scrapes that succeeded, failed.
    scrapes: [AtomicU64; 2],
    /// This node's clock minus the shared store's, in ms, as an `i64`'s
    /// bits; `u64::MAX` until compared (or with a store of its own).
    clock_skew: AtomicU64,
}

/// What the service's state adds to the counters when they are rendered.
pub struct Gauges {
    pub rules: usize,
    pub hosts: usize,
    pub open_incidents: usize,
    /// Open incidents by their rule's severity (`""`: none).
    pub open_by_severity: std::collections::BTreeMap<String, usize>,
    /// The shared store's memory as last read: used, and its limit (0: none).
    pub store_memory: Option<(u64, u64)>,
}

impl Metrics {
    pub fn samples_ingested(&self, count: usize) {
        self.samples_ingested.fetch_add(count as u64, Relaxed);
    }

    /// A rejected batch of `count` samples.
    pub fn batch_rejected(&self, count: usize) {
        self.batches_rejected.fetch_add(1, Relaxed);
        self.samples_rejected.fetch_add(count as u64, Relaxed);
    }

    /// A batch refused by a host limit (`total`: `server.maxHosts`, else
    /// `server.maxNewHostsPerBatch`).
    pub fn hosts_refused(&self, total: bool) {
        self.hosts_refused[usize::from(total)].fetch_add(1, Relaxed);
    }

    /// Points that came `via` a standard sender.
    pub fn points(&self, via: super::Via, taken: u64, refused: u64, skipped: u64) {
        let row = &self.points[via as usize];
        row[0].fetch_add(taken, Relaxed);
        row[1].fetch_add(refused, Relaxed);
        row[2].fetch_add(skipped, Relaxed);
    }

    /// A scrape that succeeded (or not).
    pub fn scrape(&self, succeeded: bool) {
        self.scrapes[usize::from(!succeeded)].fetch_add(1, Relaxed);
    }

    /// This node's clock minus the shared store's, as last compared.
    pub fn clock_skew(&self, skew: crate::duration::Millis) {
        self.clock_skew.store((skew as u64) ^ SKEW_UNSET, Relaxed);
    }

    /// A wrong token was given (API or sign-in), or refused unread while
    /// its address was throttled.
    pub fn wrong_token(&self) {
        self.wrong_tokens.fetch_add(1, Relaxed);
    }

    pub fn tick(&self, took: Duration, transitions: &[Transition]) {
        let nanos = took.as_nanos() as u64;
        self.ticks.fetch_add(1, Relaxed);
        self.tick_nanos_total.fetch_add(nanos, Relaxed);
        self.last_tick_nanos.store(nanos, Relaxed);
        for transition in transitions {
            match transition.kind {
                TransitionKind::Opened => self.opened.fetch_add(1, Relaxed),
                TransitionKind::Resolved => self.resolved.fetch_add(1, Relaxed),
            };
        }
    }

    /// Ticks skipped because the watcher woke after the next one was due.
    pub fn ticks_missed(&self, count: u64) {
        self.ticks_missed.fetch_add(count, Relaxed);
    }

    /// A tick whose transitions could not be recorded (it is tried again).
    pub fn tick_failed(&self) {
        self.ticks_failed.fetch_add(1, Relaxed);
    }

    /// How long after its time the latest tick started.
    pub fn tick_lag(&self, lag_millis: i64) {
        self.last_tick_lag_millis
            .store(u64::try_from(lag_millis).unwrap_or(0), Relaxed);
    }

    pub fn hook_call(&self, succeeded: bool) {
        match succeeded {
            true => self.hook_successes.fetch_add(1, Relaxed),
            false => self.hook_failures.fetch_add(1, Relaxed),
        };
    }

    pub fn pending_deliveries(&self, pending: u64) {
        self.pending_deliveries.store(pending, Relaxed);
    }

    /// A delivery was given up on.
    pub fn delivery_dead(&self) {
        self.deliveries_dead.fetch_add(1, Relaxed);
    }

    /// A silence held a delivery back (`held`) or it was not sent at all.
    pub fn delivery_silenced(&self, what: &str, count: u64) {
        match what {
            "held" => self.deliveries_held.fetch_add(count, Relaxed),
            _ => self.deliveries_not_sent.fetch_add(count, Relaxed),
        };
    }

    /// This node took (`true`) or lost the lease.
    pub fn leading(&self, leading: bool) {
        self.leader.store(u64::from(leading), Relaxed);
        self.lease_changes.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition of every figure.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let seconds = |nanos: u64| nanos as f64 / 1e9;
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let get = |counter: &AtomicU64| counter.load(Relaxed).to_string();
        metric(
            "alertd_samples_ingested_total",
            "counter",
            "Samples accepted and stored.",
            &[("", get(&self.samples_ingested))],
        );
        metric(
            "alertd_samples_rejected_total",
            "counter",
            "Samples in rejected batches.",
            &[("", get(&self.samples_rejected))],
        );
        let mut points = Vec::new();
        for via in super::Via::ALL {
            for (outcome, counter) in ["taken", "refused", "skipped"]
                .iter()
                .zip(&self.points[via as usize])
            {
                points.push((
                    format!("{{via=\"{}\",outcome=\"{outcome}\"}}", via.name()),
                    get(counter),
                ));
            }
        }
        let points: Vec<(&str, String)> = points
            .iter()
            .map(|(labels, value)| (labels.as_str(), value.clone()))
            .collect();
        metric(
            "alertd_points_total",
            "counter",
            "Points from OTLP, remote write and scrapes: taken, refused, skipped.",
            &points,
        );
        metric(
            "alertd_scrapes_total",
            "counter",
            "Scrapes of ingest.scrape targets, by outcome.",
            &[
                ("{outcome=\"ok\"}", get(&self.scrapes[0])),
                ("{outcome=\"failed\"}", get(&self.scrapes[1])),
            ],
        );
        metric(
            "alertd_batches_rejected_total",
            "counter",
            "Sample batches rejected whole.",
            &[("", get(&self.batches_rejected))],
        );
        metric(
            "alertd_batches_refused_for_hosts_total",
            "counter",
            "Sample batches refused for the new hosts they brought, by the limit they passed.",
            &[
                (
                    "{limit=\"maxNewHostsPerBatch\"}",
                    get(&self.hosts_refused[0]),
                ),
                ("{limit=\"maxHosts\"}", get(&self.hosts_refused[1])),
            ],
        );
        metric(
            "alertd_wrong_tokens_total",
            "counter",
            "Requests refused for a wrong token, or while their address was throttled for giving them.",
            &[("", get(&self.wrong_tokens))],
        );
        metric(
            "alertd_store_rows_skipped_total",
            "counter",
            "Stored rows left out of reads because they could not be decoded (each is logged).",
            &[("", crate::store::damage::rows_skipped().to_string())],
        );
        metric(
            "alertd_deliveries_dead_total",
            "counter",
            "Deliveries this node gave up on (kept as dead; retried on demand).",
            &[("", get(&self.deliveries_dead))],
        );
        metric(
            "alertd_deliveries_silenced_total",
            "counter",
            "Deliveries this node held back for a silence, or did not send at all.",
            &[
                ("{what=\"held\"}", get(&self.deliveries_held)),
                ("{what=\"not_sent\"}", get(&self.deliveries_not_sent)),
            ],
        );
        metric(
            "alertd_leader",
            "gauge",
            "1 while this node holds the lease and evaluates the rules, else 0.",
            &[("", get(&self.leader))],
        );
        metric(
            "alertd_lease_changes_total",
            "counter",
            "Times this node took or lost the lease.",
            &[("", get(&self.lease_changes))],
        );
        metric(
            "alertd_rules",
            "gauge",
            "Incident rules configured.",
            &[("", gauges.rules.to_string())],
        );
        metric(
            "alertd_hosts",
            "gauge",
            "Hosts the engine holds.",
            &[("", gauges.hosts.to_string())],
        );
        metric(
            "alertd_ticks_total",
            "counter",
            "Evaluation ticks.",
            &[("", get(&self.ticks))],
        );
        metric(
            "alertd_ticks_missed_total",
            "counter",
            "Ticks skipped because the watcher woke after the next one was due (busy or suspended machine, failing store).",
            &[("", get(&self.ticks_missed))],
        );
        metric(
            "alertd_ticks_failed_total",
            "counter",
            "Ticks whose transitions could not be recorded; nothing changed and the tick was tried again.",
            &[("", get(&self.ticks_failed))],
        );
        metric(
            "alertd_tick_lag_seconds",
            "gauge",
            "How long after its time the latest tick started.",
            &[(
                "",
                (self.last_tick_lag_millis.load(Relaxed) as f64 / 1e3).to_string(),
            )],
        );
        metric(
            "alertd_tick_seconds_total",
            "counter",
            "Time spent evaluating ticks, including recording transitions.",
            &[("", seconds(self.tick_nanos_total.load(Relaxed)).to_string())],
        );
        metric(
            "alertd_last_tick_seconds",
            "gauge",
            "Time the last tick took.",
            &[("", seconds(self.last_tick_nanos.load(Relaxed)).to_string())],
        );
        metric(
            "alertd_transitions_total",
            "counter",
            "Incidents opened and resolved.",
            &[
                ("{event=\"opened\"}", get(&self.opened)),
                ("{event=\"resolved\"}", get(&self.resolved)),
            ],
        );
        metric(
            "alertd_open_incidents",
            "gauge",
            "Incidents open now.",
            &[("", gauges.open_incidents.to_string())],
        );
        let by_severity: Vec<(String, String)> = gauges
            .open_by_severity
            .iter()
            .map(|(severity, count)| {
                let escaped = severity
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                (format!("{{severity=\"{escaped}\"}}"), count.to_string())
            })
            .collect();
        let by_severity: Vec<(&str, String)> = by_severity
            .iter()
            .map(|(labels, count)| (labels.as_str(), count.clone()))
            .collect();
        metric(
            "alertd_incidents_open",
            "gauge",
            "Incidents open now, by their rule's severity (empty: none).",
            &by_severity,
        );
        metric(
            "alertd_hook_calls_total",
            "counter",
            "Hook calls by outcome.",
            &[
                ("{outcome=\"success\"}", get(&self.hook_successes)),
                ("{outcome=\"failure\"}", get(&self.hook_failures)),
            ],
        );
        if let Some((used, max)) = gauges.store_memory {
            metric(
                "alertd_redis_used_memory_bytes",
                "gauge",
                "The memory Redis uses, as this node last read it (INFO memory).",
                &[("", used.to_string())],
            );
            metric(
                "alertd_redis_maxmemory_bytes",
                "gauge",
                "Redis' maxmemory (0: no limit).",
                &[("", max.to_string())],
            );
        }
        let skew = self.clock_skew.load(Relaxed);
        if skew != 0 {
            metric(
                "alertd_clock_skew_seconds",
                "gauge",
                "This node's clock minus Redis' (TIME), as last compared: positive when ahead.",
                &[("", (((skew ^ SKEW_UNSET) as i64) as f64 / 1e3).to_string())],
            );
        }
        metric(
            "alertd_pending_hook_deliveries",
            "gauge",
            "Transitions waiting for a hook call.",
            &[("", get(&self.pending_deliveries))],
        );
        out
    }
}
