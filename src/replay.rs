//! Replay (docs/engine.md, Replay): recorded samples through the engine with a
//! simulated clock, printing the transitions.
//!
//! A file in timestamp order (the usual case) is streamed: the ticks before a
//! sample are evaluated as soon as the sample is read, so memory grows with
//! the number of hosts and the longest timeframe, not with the file. Should a
//! sample turn out to be older than a tick already evaluated, the file is read
//! again in sort mode: every sample in memory, stably sorted by timestamp
//! (ties keep file order), then replayed. Either way the output is held back
//! until the whole file has been read and checked, so a bad line anywhere
//! prints nothing but its error.

use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::duration::Millis;
use crate::engine::{Engine, FieldTable, MemoryStats};
use crate::incident::{IncidentIds, Transition};
use crate::sample::{SampleError, SampleReader};

#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Evaluate ticks up to this time instead of up to the latest sample.
    pub until: Option<Millis>,
}

/// What a replay did, for `--stats` and for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub samples: u64,
    pub ticks: u64,
    pub transitions: u64,
    /// Whether the input had to be sorted in memory.
    pub sorted: bool,
    /// The engine's memory at the largest of the measurements taken.
    pub peak_memory: MemoryStats,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}:{line}: {error}")]
    Sample {
        path: String,
        line: u64,
        error: SampleError,
    },
    #[error("writing the output: {0}")]
    Write(io::Error),
}

/// Replays the samples in `path` (`-` for standard input) and writes the
/// transitions to `out` as JSON lines.
pub fn replay_path(
    config: &Config,
    path: &Path,
    options: ReplayOptions,
    ids: &mut dyn IncidentIds,
    out: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let shown = path.display().to_string();
    let read_error = |source| ReplayError::Read {
        path: shown.clone(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut input = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut input)
            .map_err(read_error)?;
        replay(config, Cursor::new(input), &shown, options, ids, out)
    } else {
        let file = std::fs::File::open(path).map_err(read_error)?;
        replay(
            config,
            BufReader::with_capacity(1 << 20, file),
            &shown,
            options,
            ids,
            out,
        )
    }
}

/// Replays samples from `input`; `name` only names it in errors.
pub fn replay<R: BufRead + Seek>(
    config: &Config,
    mut input: R,
    name: &str,
    options: ReplayOptions,
    ids: &mut dyn IncidentIds,
    out: &mut dyn Write,
) -> Result<ReplaySummary, ReplayError> {
    let mut run = Run::new(config, options, ids);
    let streamed = for_each_sample(
        &mut input,
        name,
        &run.engine.fields().clone(),
        |host, ts, values| run.push(host, ts, values),
    )?;
    let (output, summary) = if streamed.is_ok() {
        run.finish()
    } else {
        input
            .seek(SeekFrom::Start(0))
            .map_err(|source| ReplayError::Read {
                path: name.to_string(),
                source,
            })?;
        replay_sorted(config, &mut input, name, options, run.ids)?
    };
    out.write_all(&output).map_err(ReplayError::Write)?;
    out.flush().map_err(ReplayError::Write)?;
    Ok(summary)
}

/// Sort mode: every sample in memory, stably sorted by timestamp, then replayed.
fn replay_sorted<R: BufRead>(
    config: &Config,
    input: &mut R,
    name: &str,
    options: ReplayOptions,
    ids: &mut dyn IncidentIds,
) -> Result<(Vec<u8>, ReplaySummary), ReplayError> {
    struct Held {
        ts: Millis,
        host: u32,
    }
    let mut run = Run::new(config, options, ids);
    let width = run.engine.fields().len();
    let mut held: Vec<Held> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    let mut hosts: Vec<String> = Vec::new();
    let mut host_ids: FxHashMap<String, u32> = FxHashMap::default();
    let _ = for_each_sample(
        input,
        name,
        &run.engine.fields().clone(),
        |host, ts, sample_values| {
            let id = match host_ids.get(host) {
                Some(&id) => id,
                None => {
                    hosts.push(host.to_string());
                    host_ids.insert(host.to_string(), hosts.len() as u32 - 1);
                    hosts.len() as u32 - 1
                }
            };
            held.push(Held { ts, host: id });
            values.extend_from_slice(sample_values);
            Ok::<(), OutOfOrder>(())
        },
    )?;
    let mut order: Vec<u32> = (0..held.len() as u32).collect();
    order.sort_by_key(|&i| held[i as usize].ts); // stable: ties keep file order
    for i in order {
        let sample = &held[i as usize];
        let row = &values[i as usize * width..(i as usize + 1) * width];
        // Sorted input cannot be out of order.
        let _ = run.push(&hosts[sample.host as usize], sample.ts, row);
    }
    let (output, mut summary) = run.finish();
    summary.sorted = true;
    Ok((output, summary))
}

/// A sample older than a tick already evaluated.
#[derive(Debug)]
struct OutOfOrder;

/// Parses every line of `input` and calls `each` with the host, the
/// timestamp and the values of the engine's fields (NaN where absent).
/// Stops early, returning its error, when `each` fails.
fn for_each_sample<R: BufRead, E>(
    input: &mut R,
    name: &str,
    fields: &FieldTable,
    mut each: impl FnMut(&str, Millis, &[f64]) -> Result<(), E>,
) -> Result<Result<(), E>, ReplayError> {
    let read_error = |source| ReplayError::Read {
        path: name.to_string(),
        source,
    };
    let mut spanning = Vec::new();
    let mut line_number = 0u64;
    let mut reader = SampleReader::default();
    let mut values = vec![f64::NAN; fields.len()];
    loop {
        // A line that lies whole in the read buffer is parsed where it is;
        // only one that spans the buffer's end is copied out first.
        let buffer = input.fill_buf().map_err(read_error)?;
        if buffer.is_empty() {
            return Ok(Ok(()));
        }
        let (line, in_buffer) = match memchr::memchr(b'\n', buffer) {
            Some(end) => (&buffer[..=end], end + 1),
            None => {
                spanning.clear();
                input.read_until(b'\n', &mut spanning).map_err(read_error)?;
                (&spanning[..], 0)
            }
        };
        line_number += 1;
        let parsed = if line.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(reader.parse(line))
        };
        input.consume(in_buffer);
        match parsed {
            None => continue,
            Some(Err(error)) => {
                return Err(ReplayError::Sample {
                    path: name.to_string(),
                    line: line_number,
                    error,
                });
            }
            Some(Ok(())) => {}
        }
        values.fill(f64::NAN);
        for (field, hash, value) in reader.hashed_metrics() {
            if let Some(slot) = fields.slot(field, hash) {
                values[slot] = value;
            }
        }
        if let Err(stop) = each(reader.host(), reader.ts(), &values) {
            return Ok(Err(stop));
        }
    }
}

/// The simulated clock: evaluates each tick once every sample it can see has
/// been read.
struct Run<'i> {
    engine: Engine,
    ids: &'i mut dyn IncidentIds,
    watcher_interval: Millis,
    until: Option<Millis>,
    /// The first tick not evaluated yet.
    next_tick: Option<Millis>,
    last_evaluated: Option<Millis>,
    latest_ts: Option<Millis>,
    transitions: Vec<Transition>,
    output: Vec<u8>,
    summary: ReplaySummary,
}

impl<'i> Run<'i> {
    fn new(config: &Config, options: ReplayOptions, ids: &'i mut dyn IncidentIds) -> Self {
        Run {
            engine: Engine::from_config(config),
            ids,
            watcher_interval: config.alerting.watcher_interval,
            until: options.until,
            next_tick: None,
            last_evaluated: None,
            latest_ts: None,
            transitions: Vec::new(),
            output: Vec::new(),
            summary: ReplaySummary::default(),
        }
    }

    fn push(&mut self, host: &str, ts: Millis, values: &[f64]) -> Result<(), OutOfOrder> {
        if self.last_evaluated.is_some_and(|last| ts <= last) {
            return Err(OutOfOrder);
        }
        // ts >= 0: the first tick at or after it.
        let first_tick =
            (ts + self.watcher_interval - 1) / self.watcher_interval * self.watcher_interval;
        if self.last_evaluated.is_none() {
            self.next_tick = Some(
                self.next_tick
                    .map_or(first_tick, |next| next.min(first_tick)),
            );
        }
        self.latest_ts = Some(self.latest_ts.map_or(ts, |latest| latest.max(ts)));
        self.summary.samples += 1;
        // Ticks before this sample cannot see it, nor (in order) any later one.
        self.evaluate_through(ts - 1);
        if self.until.is_none_or(|until| ts <= until) {
            self.engine.ingest_values(host, ts, values);
        }
        Ok(())
    }

    fn evaluate_through(&mut self, limit: Millis) {
        let limit = self.until.map_or(limit, |until| limit.min(until));
        let Some(mut tick) = self.next_tick else {
            return;
        };
        while tick <= limit {
            if self.engine.is_empty() {
                // Nothing held, nothing can happen until the next sample: the
                // ticks up to `limit` count as evaluated (a sample older than
                // them sends the replay to sort mode, as for any other tick).
                let last = limit.div_euclid(self.watcher_interval) * self.watcher_interval;
                self.last_evaluated = Some(last);
                tick = last + self.watcher_interval;
                break;
            }
            self.transitions.clear();
            // Ticks only move forward here, so evaluation cannot fail.
            let _ = self.engine.evaluate(tick, self.ids, &mut self.transitions);
            for transition in &self.transitions {
                // Serializing our own types into memory cannot fail.
                let _ = serde_json::to_writer(&mut self.output, transition);
                self.output.push(b'\n');
            }
            self.summary.transitions += self.transitions.len() as u64;
            self.summary.ticks += 1;
            if self.summary.ticks % 1024 == 1 {
                self.measure_memory();
            }
            self.last_evaluated = Some(tick);
            tick += self.watcher_interval;
        }
        self.next_tick = Some(tick);
    }

    fn measure_memory(&mut self) {
        let now = self.engine.memory();
        if now.window_bytes > self.summary.peak_memory.window_bytes {
            self.summary.peak_memory = now;
        }
    }

    fn finish(mut self) -> (Vec<u8>, ReplaySummary) {
        if let Some(end) = self.until.or(self.latest_ts) {
            self.evaluate_through(end);
        }
        self.measure_memory();
        (self.output, self.summary)
    }
}
