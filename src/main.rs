//! The `alertd` command line: parses arguments and hands over to the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use alertd::config::{Config, ConfigError, Loaded};
use alertd::incident::UlidIds;
use alertd::replay::{ReplayError, ReplayOptions, replay_path};

mod run;
mod silence_cli;

/// mimalloc instead of the system's allocator: parsing a batch allocates per
/// sample from several threads at once, where glibc's malloc and free took
/// 14 % of the service's time under ingestion load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for invalid input: a configuration or samples that do not validate.
pub(crate) const INVALID_INPUT: u8 = 2;
/// Exit status when a file cannot be read or the output cannot be written.
pub(crate) const IO_FAILURE: u8 = 1;

#[derive(Parser)]
#[command(name = "alertd", version, about = "Threshold alerting for clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run recorded samples through the rules and print the transitions as JSON lines.
    Replay {
        /// Configuration file (native, or a botpress.config.json).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Samples, one JSON object per line, in any order; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        samples: PathBuf,
        /// Evaluate ticks up to this time (ms since the epoch) instead of the latest sample.
        #[arg(long, value_name = "MS",
              value_parser = clap::value_parser!(i64).range(0..=alertd::sample::MAX_TIMESTAMP))]
        until: Option<i64>,
        /// Print what the replay did (samples, ticks, memory) to standard error.
        #[arg(long)]
        stats: bool,
    },
    /// Run the service: HTTP API, rule evaluation, hooks, monitoring of this node.
    Run {
        /// Configuration file (native, or a botpress.config.json); SIGHUP reads it again.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Address of the HTTP API [default: server.listen, else 127.0.0.1:7373].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Directory of the store and the hooks [default: storage.dataDir, else ./data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Name of this node's own samples [default: server.hostName, else the OS host name].
        #[arg(long, value_name = "NAME")]
        host_name: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Write stored samples as JSON lines, which `alertd replay --samples` reads.
    Export {
        /// Configuration file: the store is in its data directory.
        #[arg(long, value_name = "FILE", required_unless_present = "data_dir")]
        config: Option<PathBuf>,
        /// Directory of the store [default: the configuration's].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// First time: ms since the epoch, RFC 3339, or a duration before now (7d)
        /// [default: the oldest sample].
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Last time, in the same forms [default: now].
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only this host (repeat for more).
        #[arg(long, value_name = "NAME")]
        host: Vec<String>,
        /// Only these fields, comma-separated.
        #[arg(long, value_name = "A,B", value_delimiter = ',')]
        fields: Option<Vec<String>>,
    },
    /// Run rule tests: series of values through the rules, and what must be open when.
    Test {
        /// Test files (docs/testing.md).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Make, list and end silences on a running alertd (docs/notifications.md).
    Silence {
        #[command(subcommand)]
        action: silence_cli::Action,
        /// The service's address; the API token, if it needs one, from ALERTD_TOKEN.
        #[arg(
            long,
            global = true,
            value_name = "URL",
            default_value = "http://127.0.0.1:7373"
        )]
        url: String,
    },
    /// Validate a configuration and print one line per rule.
    Check {
        /// Configuration file (native, or a botpress.config.json).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            config,
            listen,
            data_dir,
            host_name,
            log_format,
        } => run::run(run::RunArgs {
            config,
            listen,
            data_dir,
            host_name,
            json_logs: log_format == LogFormat::Json,
        }),
        Command::Check { config } => check(&config),
        Command::Silence { action, url } => silence_cli::silence(action, &url),
        Command::Test { files } => test(&files),
        Command::Export {
            config,
            data_dir,
            from,
            to,
            host,
            fields,
        } => export(
            config.as_deref(),
            data_dir.as_deref(),
            from.as_deref(),
            to.as_deref(),
            host,
            fields,
        ),
        Command::Replay {
            config,
            samples,
            until,
            stats,
        } => replay(&config, &samples, until, stats),
    }
}

pub(crate) fn load(path: &Path) -> Result<Loaded, ExitCode> {
    match Config::load(path) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {}: {warning}", path.display());
            }
            Ok(loaded)
        }
        Err(error) => {
            for line in error.to_string().lines() {
                eprintln!("error: {line}");
            }
            Err(ExitCode::from(match error {
                ConfigError::Read { .. } => IO_FAILURE,
                _ => INVALID_INPUT,
            }))
        }
    }
}

/// Exit status when a rule test fails.
const TEST_FAILED: u8 = 1;

fn test(files: &[PathBuf]) -> ExitCode {
    use alertd::ruletest::{Outcome, TestFileError, load, report, run};
    let mut loaded = Vec::new();
    let mut invalid = false;
    for path in files {
        match load(path) {
            Ok(file) => loaded.push(file),
            Err(error) => {
                invalid = true;
                for line in error.to_string().lines() {
                    eprintln!("error: {line}");
                }
                if matches!(error, TestFileError::Read { .. }) {
                    return ExitCode::from(IO_FAILURE);
                }
            }
        }
    }
    if invalid {
        return ExitCode::from(INVALID_INPUT);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut stdout = std::io::stdout().lock();
    for file in &loaded {
        for (name, outcome) in run(file) {
            match report(&format!("{name} ({})", file.path.display()), &outcome) {
                Some(text) => {
                    failed += 1;
                    if write!(stdout, "{text}").is_err() {
                        return ExitCode::from(IO_FAILURE);
                    }
                }
                None => {
                    debug_assert_eq!(outcome, Outcome::Passed);
                    passed += 1;
                }
            }
        }
    }
    if writeln!(stdout, "{passed} passed, {failed} failed").is_err() {
        return ExitCode::from(IO_FAILURE);
    }
    if failed > 0 {
        ExitCode::from(TEST_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn check(path: &Path) -> ExitCode {
    let loaded = match load(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let mut stdout = std::io::stdout().lock();
    let now = alertd::clock::Clock::now(&alertd::clock::SystemClock);
    for line in alertd::check::summary(&loaded, now) {
        if writeln!(stdout, "{line}").is_err() {
            return ExitCode::from(IO_FAILURE);
        }
    }
    ExitCode::SUCCESS
}

fn export(
    config: Option<&Path>,
    data_dir: Option<&Path>,
    from: Option<&str>,
    to: Option<&str>,
    hosts: Vec<String>,
    fields: Option<Vec<String>>,
) -> ExitCode {
    let now = alertd::clock::Clock::now(&alertd::clock::SystemClock);
    let time = |text: Option<&str>, default: i64| match text {
        None => Ok(default),
        Some(text) => alertd::export::parse_time(text, now),
    };
    let (from, to) = match (time(from, i64::MIN), time(to, now)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(error), _) | (_, Err(error)) => {
            eprintln!("error: {error}");
            return ExitCode::from(INVALID_INPUT);
        }
    };
    // A cluster's samples are in its Redis; a node's in its data directory.
    use alertd::config::Backend;
    let (backend, dir) = match (data_dir, config) {
        (Some(dir), None) => (Backend::Sqlite, dir.to_path_buf()),
        (data_dir, Some(path)) => match load(path) {
            Ok(loaded) => {
                let backend = loaded.config.storage.backend.clone();
                if data_dir.is_some() && backend != Backend::Sqlite {
                    eprintln!(
                        "error: --data-dir names a node's store, but {} keeps the samples in \
                         Redis (storage.backend): drop --data-dir to export the cluster's samples",
                        path.display()
                    );
                    return ExitCode::from(INVALID_INPUT);
                }
                let dir = alertd::service::data_dir(data_dir, &loaded.config, path);
                (backend, dir)
            }
            Err(code) => return code,
        },
        (None, None) => unreachable!("clap requires --config without --data-dir"),
    };
    let opened = alertd::store::open(&backend, &dir, alertd::store::Access::ReadOnly);
    let store = match opened {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(IO_FAILURE);
        }
    };
    let options = alertd::export::ExportOptions {
        from,
        to,
        hosts,
        fields,
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match alertd::export::export(store.as_ref(), &options, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(IO_FAILURE)
        }
    }
}

fn replay(config: &Path, samples: &Path, until: Option<i64>, stats: bool) -> ExitCode {
    let loaded = match load(config) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let started = std::time::Instant::now();
    let mut stdout = std::io::stdout().lock();
    let result = replay_path(
        &loaded.config,
        samples,
        ReplayOptions { until },
        &mut UlidIds,
        &mut stdout,
    );
    match result {
        Ok(summary) => {
            if stats {
                let seconds = started.elapsed().as_secs_f64();
                let memory = summary.peak_memory;
                eprintln!(
                    "replayed {} samples in {seconds:.2} s ({:.0} samples/s), {} ticks, {} transitions{}; \
                     peak window data {} bytes for {} values in {} hosts ({:.2} bytes/value)",
                    summary.samples,
                    summary.samples as f64 / seconds,
                    summary.ticks,
                    summary.transitions,
                    if summary.sorted {
                        ", input sorted in memory"
                    } else {
                        ""
                    },
                    memory.window_bytes,
                    memory.values_held,
                    memory.hosts,
                    memory.window_bytes as f64 / memory.values_held.max(1) as f64,
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(match error {
                ReplayError::Sample { .. } => INVALID_INPUT,
                ReplayError::Read { .. } | ReplayError::Write(_) => IO_FAILURE,
            })
        }
    }
}
