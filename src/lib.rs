//! alertd: threshold alerting for clusters, re-creating the alerting feature of
//! Botpress Pro as a standalone service.
//!
//! The crate is a pure core with thin shells around it:
//!
//! - [`duration`]: the `ms`-style durations of the configuration.
//! - [`address`]: host names in `Host` headers, origins and URLs.
//! - [`config`]: the configuration file, parsed and then validated into a [`config::Config`].
//! - [`field`]: built-in and custom metric field names.
//! - [`sample`]: samples, parsed and checked without allocating per sample.
//! - [`series`]: points from standard senders (OTLP, Prometheus remote write, scraped
//!   pages) made into samples.
//! - [`engine`]: the incremental rule engine. No I/O, no clock: it takes samples and
//!   an evaluation time and returns [`incident::Transition`]s.
//! - [`incident`]: incident objects and their JSON form.
//! - [`replay`]: runs recorded samples through the engine with a simulated clock.
//! - [`check`]: the one-line-per-rule summary of a configuration.
//! - [`export`]: stored samples written as the JSON lines `replay` reads.
//! - [`store`]: the durable state of the service, by capability (samples, incidents and
//!   their outbox, coordination, sessions), in SQLite (one node) or Redis (a cluster).
//! - [`notify`]: who is told of a transition (hooks, webhooks, Slack) and how a call went.
//! - [`service`]: `alertd run`'s node: ingestion, the watcher, hook dispatcher, collector, janitor.
//! - [`view`]: typed views of rules and incidents, one shape for the API, the pages and
//!   notifications.
//! - [`query`]: the read layer that makes those views from the node's state.
//! - [`http`]: the HTTP API and its error mapping, over the service.
//! - [`pages`]: the web pages, read-only views over the service.
//! - [`stats`]: stored samples downsampled into buckets, for the API and the pages.
//! - [`clock`]: the service's source of time and waits, injected.
//! - `fuzz` (with the `fuzzing` feature): the properties the fuzz targets check.

pub mod address;
mod auth;
pub mod check;
pub mod clock;
pub mod config;
pub mod duration;
pub mod engine;
pub mod export;
pub mod field;
mod fleet;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod incident;
pub mod notify;
pub mod pages;
pub mod query;
pub mod replay;
pub mod ruletest;
pub mod sample;
pub mod series;
pub mod service;
pub mod silence;
pub mod stats;
pub mod store;
pub mod view;
