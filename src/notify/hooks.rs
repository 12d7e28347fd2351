//! Hooks (docs/engine.md, Hooks): the executables and the original product's `.js`
//! hook files that are told of every incident transition, in
//! `<data dir>/global/hooks/on_incident_status_changed/`.
//!
//! This module finds the hooks ([`discover`]), runs one hook for one
//! transition ([`run_hook`]): no shell, the incident JSON on standard input,
//! `INCIDENT_ID`, `INCIDENT_RULE`, `INCIDENT_HOST`, `INCIDENT_STATUS` and
//! `INCIDENT_SEVERITY` (empty when its rule gives none) in the
//! environment, a timeout, its output captured up to a limit. Recording
//! transitions durably and calling each hook at least once is the service's
//! outbox; this module only makes the calls.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::incident::{Incident, TransitionKind};

/// Where hooks live, under the data directory.
pub const HOOK_DIR: &str = "global/hooks/on_incident_status_changed";

/// How much of a hook's standard output and of its standard error is kept.
pub const OUTPUT_LIMIT: usize = 16 * 1024;

/// A file to call on every transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// The file name, which orders the hooks.
    pub name: String,
    pub path: PathBuf,
    pub kind: HookKind,
    /// Arguments (an `exec` target's; none for the hooks folder's).
    pub args: Vec<String>,
}

/// How a hook is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// An executable file, run as it is.
    Exec,
    /// A `.js` file as the original product's hooks are: a script body run
    /// under Node.js with `incident` and `bp` in scope (see [`JS_RUNNER`]).
    Js,
}

/// Runs a `.js` hook under Node.js: the file's text is the body of an async
/// function of `incident` (the incident object, from standard input) and
/// `bp` (`bp.logger.info/warn/error/debug`, whose lines alertd logs under
/// the hook's name). The call succeeds when that function's promise
/// resolves, and fails with the error's stack when it rejects or the body
/// does not parse, or when the promise is left unsettled with nothing more
/// to wait for.
pub const JS_RUNNER: &str = r#"
const fs = require('fs');
const util = require('util');
const path = process.argv[1];
const incident = JSON.parse(fs.readFileSync(0, 'utf8'));
const log = (level) => (...parts) =>
  process.stdout.write('\u001e' + level + ' ' + util.format(...parts).replace(/\n/g, ' ') + '\n');
const bp = { logger: { info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug') } };
const AsyncFunction = (async () => {}).constructor;
let hook;
try {
  hook = new AsyncFunction('incident', 'bp', fs.readFileSync(path, 'utf8'));
} catch (error) {
  console.error(path + ': ' + error.message);
  process.exit(2);
}
// Node.js ends with status 0 when nothing is left to wait for, even if the
// hook's promise never settled: that is no delivery.
process.on('beforeExit', () => {
  console.error(path + ': the hook ended with its promise never settled (resolved or rejected)');
  process.exit(1);
});
hook(incident, bp).then(
  () => process.exit(0),
  (error) => { console.error((error && error.stack) || String(error)); process.exit(1); });
"#;

/// The mark that starts a `bp.logger` line in a `.js` hook's output.
pub const LOGGER_MARK: char = '\u{1e}';

/// What [`discover`] found in the hooks directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The hooks to run, in name order (byte order).
    pub hooks: Vec<Hook>,
    /// Files that are not run, and why (disabled files, starting with `.`, are not listed).
    pub skipped: Vec<(String, &'static str)>,
}

/// Lists the hooks in `dir`. A missing directory means no hooks.
pub fn discover(dir: &Path) -> std::io::Result<Discovery> {
    let mut discovery = Discovery::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(discovery),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // disabled, as in the original product
        }
        let path = entry.path();
        // Follows symbolic links: a link to an executable is a hook.
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(_) => {
                discovery.skipped.push((name, "a broken link"));
                continue;
            }
        };
        if !metadata.is_file() {
            discovery.skipped.push((name, "not a file"));
        } else if name.ends_with(".js") {
            discovery.hooks.push(Hook {
                name,
                path,
                kind: HookKind::Js,
                args: Vec::new(),
            });
        } else if !is_executable(&metadata) {
            discovery
                .skipped
                .push((name, "not executable (chmod +x to enable it)"));
        } else {
            discovery.hooks.push(Hook {
                name,
                path,
                kind: HookKind::Exec,
                args: Vec::new(),
            });
        }
    }
    discovery
        .hooks
        .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    discovery.skipped.sort();
    Ok(discovery)
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    true
}

/// How one call of a hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    pub result: HookResult,
    /// Standard output and standard error, each cut at [`OUTPUT_LIMIT`] bytes
    /// (then a line says how many more there were).
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl HookOutcome {
    pub fn succeeded(&self) -> bool {
        self.result == HookResult::Exited(0)
    }
}

/// Why a hook call ended. Only `Exited(0)` is a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookResult {
    Exited(i32),
    /// Killed by a signal (its number).
    Signalled(i32),
    /// Still running at the timeout, and killed.
    TimedOut,
    /// Could not be started (the message says why).
    NotStarted(String),
}

impl std::fmt::Display for HookResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookResult::Exited(code) => write!(f, "exited with status {code}"),
            HookResult::Signalled(signal) => write!(f, "killed by signal {signal}"),
            HookResult::TimedOut => f.write_str("timed out and was killed"),
            HookResult::NotStarted(reason) => write!(f, "could not start: {reason}"),
        }
    }
}

/// Runs `hook` for one transition of `incident`, `.js` hooks with `node`
/// from the `PATH`.
pub async fn run_hook(
    hook: &Hook,
    incident: &Incident,
    kind: TransitionKind,
    timeout: Duration,
) -> HookOutcome {
    run_hook_with(hook, incident, kind, timeout, Path::new("node")).await
}

/// Starts the hook's process. A file still open for writing somewhere
/// cannot be executed ("Text file busy"): a hook being written as it is
/// called, or the instant between another thread's fork and exec, which
/// holds every open file. Both pass in milliseconds, so the start is tried
/// again a few times before the call counts as not started.
async fn spawn(command: &mut Command) -> std::io::Result<tokio::process::Child> {
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            started => return started,
        }
    }
}

/// Runs `hook` for one transition of `incident`; `.js` hooks with `node`.
pub async fn run_hook_with(
    hook: &Hook,
    incident: &Incident,
    kind: TransitionKind,
    timeout: Duration,
    node: &Path,
) -> HookOutcome {
    let started = Instant::now();
    let outcome = |result, stdout: Vec<u8>, stderr: Vec<u8>| HookOutcome {
        result,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        duration: started.elapsed(),
    };
    let mut command = match hook.kind {
        HookKind::Exec => {
            let mut command = Command::new(&hook.path);
            command.args(&hook.args);
            command
        }
        HookKind::Js => {
            let mut command = Command::new(node);
            command.arg("-e").arg(JS_RUNNER).arg(&hook.path);
            command
        }
    };
    command
        .env("INCIDENT_ID", &incident.id)
        .env("INCIDENT_RULE", &*incident.rule_name)
        .env("INCIDENT_HOST", &*incident.host_name)
        .env("INCIDENT_STATUS", kind.as_str())
        .env("INCIDENT_SEVERITY", incident.severity().unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group, so that whatever the hook starts can be ended
    // with it.
    #[cfg(unix)]
    command.process_group(0);
    let mut child = match spawn(&mut command).await {
        Ok(child) => child,
        Err(error) => {
            return outcome(
                HookResult::NotStarted(error.to_string()),
                Vec::new(),
                Vec::new(),
            );
        }
    };
    let group = child.id();
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = serde_json::to_vec(incident).unwrap_or_default();
    let call = async {
        // A hook that does not read its input may close it early: not an error.
        if let Some(stdin) = stdin.as_mut() {
            let _ = stdin.write_all(&input).await;
        }
        drop(stdin);
        let exited = async {
            let status = child.wait().await;
            // The call is over when the hook exits: what it left running
            // (`sleep 300 &`) goes too, and with it the last holder of the
            // output pipes, so that reading them ends.
            kill_group(group);
            status
        };
        tokio::join!(exited, capture(stdout), capture(stderr))
    };
    let mut call = Box::pin(call);
    let finished = tokio::select! {
        biased;
        finished = &mut call => Some(finished),
        () = running_time(timeout) => {
            // The deadline passed. A hook that exited meanwhile has finished
            // all the same: its exit is a moment away from being read.
            tokio::time::timeout(EXIT_AFTER_DEADLINE, &mut call).await.ok()
        }
    };
    drop(call);
    match finished {
        Some((Ok(status), stdout, stderr)) => outcome(exit_result(status), stdout, stderr),
        Some((Err(error), stdout, stderr)) => {
            outcome(HookResult::NotStarted(error.to_string()), stdout, stderr)
        }
        None => {
            kill_group(group);
            let _ = child.start_kill();
            let _ = child.wait().await;
            outcome(HookResult::TimedOut, Vec::new(), Vec::new())
        }
    }
}

/// How long past its deadline a hook's exit is still taken as its end,
/// rather than a timeout (see [`run_hook_with`]).
const EXIT_AFTER_DEADLINE: Duration = Duration::from_millis(500);

/// Returns once `budget` of this process's running time has passed. Time
/// it spent stopped is not counted: a sleep that ends more than a second
/// later than asked means the process was not running (SIGSTOP, a suspended
/// machine), and counts as asked. So a service stopped while a hook ran does
/// not take its own stop for the hook's (the hook may have been stopped
/// with it, as a paused container is).
async fn running_time(budget: Duration) {
    const STEP: Duration = Duration::from_millis(100);
    const LATE: Duration = Duration::from_secs(1);
    let mut left = budget;
    while !left.is_zero() {
        let step = left.min(STEP);
        let started = std::time::Instant::now();
        tokio::time::sleep(step).await;
        let took = started.elapsed();
        left = left.saturating_sub(if took > step + LATE { step } else { took });
    }
}

/// Kills every process of a hook's process group (the hook's own id), if
/// any is left. The id cannot name another group while one of the hook's
/// processes lives; once none does, the kill finds no group.
fn kill_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(group) = group.and_then(|id| libc::pid_t::try_from(id).ok()) {
        // SAFETY: kill(2) with a negative id signals a process group; it
        // touches no memory of this process.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = group;
}

fn exit_result(status: std::process::ExitStatus) -> HookResult {
    if let Some(code) = status.code() {
        return HookResult::Exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return HookResult::Signalled(signal);
        }
    }
    HookResult::Exited(-1)
}

/// Reads a pipe to its end, keeping the first [`OUTPUT_LIMIT`] bytes, so that
/// a chatty hook neither blocks on a full pipe nor fills memory; what is cut
/// is said at the end (`[1048576 more bytes not kept]`).
async fn capture(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut chunk = [0u8; 8192];
    let mut dropped = 0u64;
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..read.min(room)]);
                dropped += read.saturating_sub(room) as u64;
            }
        }
    }
    if dropped > 0 {
        kept.extend_from_slice(format!("\n[{dropped} more bytes not kept]").as_bytes());
    }
    kept
}
