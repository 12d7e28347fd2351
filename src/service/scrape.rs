//! Scraping: the `/metrics` pages of `ingest.scrape`, each read on its own
//! schedule (at the multiples of its interval since the epoch) with a
//! timeout, its points stored like any others ([`Service::ingest_points`]).
//!
//! In a cluster only the node that holds the lease scrapes, so that each
//! target is read by exactly one node; the others show what it published.
//! A target whose scrape fails is marked with the error until one succeeds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use super::points::Via;
use super::{Service, Woke, lock};
use crate::config::ingest::ScrapeTarget;
use crate::duration::Millis;
use crate::series::{Batch, exposition};

/// The largest page read, in bytes: a bigger one fails.
const PAGE_LIMIT: usize = 32 * 1024 * 1024;

/// How a target's last scrape went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub url: String,
    pub host: String,
    /// `ingest.scrape` interval, in ms.
    pub interval: Millis,
    /// When the last scrape started.
    pub last_scrape: Option<Millis>,
    /// How long it took, in ms.
    pub duration_ms: Option<u64>,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
    /// Points it read, and samples it stored.
    pub points: u64,
    pub samples: u64,
    /// Points it refused, with the reasons.
    pub refused: u64,
    pub refusals: Option<String>,
    /// Failures in a row.
    pub failures: u64,
    /// Whether the target is up: its last scrape succeeded.
    pub up: bool,
}

impl TargetStatus {
    fn new(target: &ScrapeTarget) -> Self {
        TargetStatus {
            url: target.shown_url(),
            host: target.host.clone(),
            interval: target.interval,
            last_scrape: None,
            duration_ms: None,
            error: None,
            points: 0,
            samples: 0,
            refused: 0,
            refusals: None,
            failures: 0,
            up: false,
        }
    }
}

/// The statuses of this node's scrapes, by target name.
#[derive(Default)]
pub(super) struct Scrapes {
    statuses: Mutex<BTreeMap<String, TargetStatus>>,
}

impl Service {
    /// Every configured target's status: this node's own when it scrapes
    /// (alone, or leading a cluster), the leader's as published otherwise.
    pub fn scrape_statuses(&self) -> Vec<TargetStatus> {
        let targets = self.config().ingest.scrape.clone();
        let known: BTreeMap<String, TargetStatus> = if self.scrapes_here() {
            lock(&self.scrapes.statuses).clone()
        } else {
            self.published_scrapes()
                .into_iter()
                .map(|status| (format!("{} {}", status.host, status.url), status))
                .collect()
        };
        targets
            .iter()
            .map(|target| {
                known
                    .get(&target.name())
                    .cloned()
                    .unwrap_or_else(|| TargetStatus::new(target))
            })
            .collect()
    }

    /// This node's statuses, for the leader to publish.
    pub(super) fn own_scrape_statuses(&self) -> Vec<TargetStatus> {
        lock(&self.scrapes.statuses).values().cloned().collect()
    }

    /// Whether this node scrapes: alone, or holding a cluster's lease.
    fn scrapes_here(&self) -> bool {
        !self.topology.is_cluster() || self.is_leading()
    }

    /// Reads one target now and stores what it gave.
    async fn scrape(self: &Arc<Self>, client: &reqwest::Client, target: &ScrapeTarget, at: Millis) {
        let started = Instant::now();
        let result = self.scrape_once(client, target, at).await;
        let elapsed = started.elapsed().as_millis() as u64;
        let mut statuses = lock(&self.scrapes.statuses);
        let status = statuses
            .entry(target.name())
            .or_insert_with(|| TargetStatus::new(target));
        status.interval = target.interval;
        status.last_scrape = Some(at);
        status.duration_ms = Some(elapsed);
        match result {
            Ok((points, taken)) => {
                if !status.up && status.failures > 0 {
                    info!(target = %target.name(), "scrape target is up again");
                }
                status.error = None;
                status.failures = 0;
                status.up = true;
                status.points = points;
                status.samples = taken.samples as u64;
                status.refused = taken.refused.count();
                status.refusals = (taken.refused.count() > 0).then(|| taken.refused.summary());
                self.metrics.scrape(true);
            }
            Err(error) => {
                if status.failures == 0 {
                    warn!(target = %target.name(), %error, "scrape failed");
                }
                status.error = Some(error);
                status.failures += 1;
                status.up = false;
                self.metrics.scrape(false);
            }
        }
    }

    async fn scrape_once(
        self: &Arc<Self>,
        client: &reqwest::Client,
        target: &ScrapeTarget,
        at: Millis,
    ) -> Result<(u64, super::points::Taken), String> {
        let timeout = Duration::from_millis(target.timeout.max(1) as u64);
        let read = async {
            let response = client
                .get(&target.url)
                .header(
                    reqwest::header::ACCEPT,
                    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1",
                )
                .send()
                .await
                .map_err(|error| format!("cannot reach it: {}", without_url(error)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("it answered HTTP {status}"));
            }
            let mut body = Vec::new();
            let mut response = response;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| format!("reading the page: {}", without_url(error)))?
            {
                if body.len() + chunk.len() > PAGE_LIMIT {
                    return Err(format!("the page is larger than {PAGE_LIMIT} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        let body = tokio::time::timeout(timeout, read).await.map_err(|_| {
            format!(
                "no whole answer within the timeout ({})",
                crate::duration::HumanDuration(target.timeout)
            )
        })??;
        let worker = self.clone();
        let host = target.host.clone();
        // Reading the page and storing it are CPU and disk work: off the
        // async threads.
        tokio::task::spawn_blocking(move || {
            let text = String::from_utf8(body).map_err(|error| {
                format!(
                    "the page is not UTF-8 (byte {})",
                    error.utf8_error().valid_up_to()
                )
            })?;
            let points =
                exposition::parse(&text, at).map_err(|error| format!("the page: {error}"))?;
            let most = worker.config().ingest.max_points;
            if points.len() > most {
                return Err(format!(
                    "the page has {} points, more than ingest.maxPointsPerRequest ({most})",
                    points.len()
                ));
            }
            let count = points.len() as u64;
            let batch = Batch {
                points,
                host: Some(host),
            };
            let taken = worker
                .ingest_points(Via::Scrape, batch)
                .map_err(|error| format!("storing: {error}"))?;
            Ok((count, taken))
        })
        .await
        .map_err(|error| format!("reading the page: {error}"))?
    }
}

/// A client error and its causes, without the URL (the status shows it).
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Scrapes every target on its schedule while the service runs.
pub(super) async fn scraper(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            warn!(%error, "cannot build the HTTP client: no scraping");
            return;
        }
    };
    // When each target is next due, by name.
    let mut due: BTreeMap<String, Millis> = BTreeMap::new();
    let mut running: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut scraping = false;
    loop {
        let targets = service.config().ingest.scrape.clone();
        let now = service.now();
        due.retain(|name, _| targets.iter().any(|target| target.name() == *name));
        for target in &targets {
            due.entry(target.name())
                .or_insert_with(|| super::next_multiple(now, target.interval));
        }
        running.retain(|_, task| !task.is_finished());
        let next = due.values().copied().min();
        let woke = match next {
            Some(at) => service.wait_until(at, &mut stop).await,
            // Nothing to scrape: wait for a reload (or the stop).
            None => service.wait_until(now + 3_600_000, &mut stop).await,
        };
        match woke {
            Woke::Stop => break,
            Woke::Reload => continue,
            Woke::Time => {}
        }
        let now = service.now();
        let here = service.scrapes_here();
        if here && !scraping {
            // Another node may have scraped meanwhile: counters start again
            // from a baseline instead of counting its increases twice.
            let worker = service.clone();
            let _ = tokio::task::spawn_blocking(move || worker.forget_scraped_totals()).await;
        }
        scraping = here;
        for target in &targets {
            let name = target.name();
            let Some(at) = due.get(&name).copied().filter(|&at| at <= now) else {
                continue;
            };
            due.insert(name.clone(), super::next_multiple(now, target.interval));
            if !here || running.contains_key(&name) {
                // Another node scrapes, or the last scrape still runs (it
                // ends at its timeout, shorter than the interval).
                continue;
            }
            let worker = service.clone();
            let client = client.clone();
            let target = target.clone();
            running.insert(
                name,
                tokio::spawn(async move { worker.scrape(&client, &target, at).await }),
            );
        }
    }
    // A scrape in flight is dropped rather than waited for (up to its
    // timeout); what it was storing is stored or not, whole.
    for (_, task) in running {
        task.abort();
    }
}
