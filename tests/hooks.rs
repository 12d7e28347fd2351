//! Hooks run as real processes (docs/engine.md, Hooks): found in name order, given
//! the incident on standard input and in the environment, timed out, their
//! output and exit status reported.

#[path = "support/programs.rs"]
mod programs;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use alertd::incident::{Incident, TransitionKind};
use alertd::notify::hooks::{
    Hook, HookKind, HookOutcome, HookResult, LOGGER_MARK, OUTPUT_LIMIT, discover, run_hook,
};

fn write_hook(dir: &Path, name: &str, script: &str, mode: u32) -> Hook {
    let path = dir.join(name);
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    Hook {
        name: name.to_string(),
        path,
        kind: if name.ends_with(".js") {
            HookKind::Js
        } else {
            HookKind::Exec
        },
        args: Vec::new(),
    }
}

/// Runs `script` as a hook for an opened incident.
async fn run_script(script: &str, timeout: Duration) -> HookOutcome {
    let dir = tempfile::tempdir().unwrap();
    let hook = write_hook(dir.path(), "hook", script, 0o755);
    run_hook(&hook, &incident(None), TransitionKind::Opened, timeout).await
}

fn incident(end_time: Option<i64>) -> Incident {
    Incident {
        id: "01JD6Z8J1V6N5WQ3W5G1B8H1QX".into(),
        rule_name: "High CPU Usage".into(),
        host_name: "web-1".into(),
        start_time: 1_795_428_010_000,
        end_time,
        trigger_value: 71.5,
        resolution: None,
        details: None,
    }
}

#[test]
fn discovery_lists_executables_in_name_order_and_says_what_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    write_hook(dir.path(), "b-pager", "#!/bin/sh\n", 0o755);
    write_hook(dir.path(), "A-log", "#!/bin/sh\n", 0o700);
    write_hook(dir.path(), "a-mail", "#!/bin/sh\n", 0o755);
    write_hook(dir.path(), ".disabled", "#!/bin/sh\n", 0o755);
    write_hook(dir.path(), "notes.txt", "not a program", 0o644);
    fs::create_dir(dir.path().join("lib")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("missing"), dir.path().join("dangling")).unwrap();
    let found = discover(dir.path()).unwrap();
    let names: Vec<&str> = found.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["A-log", "a-mail", "b-pager"]);
    assert_eq!(
        found.skipped,
        [
            ("dangling".to_string(), "a broken link"),
            ("lib".to_string(), "not a file"),
            (
                "notes.txt".to_string(),
                "not executable (chmod +x to enable it)"
            ),
        ]
    );
    assert_eq!(
        discover(&dir.path().join("absent")).unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn a_hook_gets_the_incident_on_stdin_and_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let hook = write_hook(
        dir.path(),
        "record",
        &format!(
            "#!/bin/sh\n{{ echo \"$INCIDENT_ID|$INCIDENT_RULE|$INCIDENT_HOST|$INCIDENT_STATUS\"; cat; }} > '{}'\necho done\n",
            seen.display()
        ),
        0o755,
    );
    let outcome = run_hook(
        &hook,
        &incident(Some(1_795_428_200_000)),
        TransitionKind::Resolved,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(outcome.result, HookResult::Exited(0));
    assert!(outcome.succeeded());
    assert_eq!(outcome.stdout, "done\n");
    let recorded = fs::read_to_string(&seen).unwrap();
    let (env, stdin) = recorded.split_once('\n').unwrap();
    assert_eq!(
        env,
        "01JD6Z8J1V6N5WQ3W5G1B8H1QX|High CPU Usage|web-1|resolved"
    );
    let json: serde_json::Value = serde_json::from_str(stdin).unwrap();
    assert_eq!(json["endTime"], "2026-11-23T10:03:20.000Z");
    assert_eq!(json["triggerValue"], 71.5);
}

#[tokio::test]
async fn a_failing_hook_reports_its_status_and_output() {
    let outcome = run_script(
        "#!/bin/sh\necho 'no route to pager' >&2\nexit 3\n",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(outcome.result, HookResult::Exited(3));
    assert!(!outcome.succeeded());
    assert_eq!(outcome.stderr, "no route to pager\n");
    assert_eq!(outcome.result.to_string(), "exited with status 3");
}

#[tokio::test]
async fn a_hook_that_hangs_is_killed_at_the_timeout() {
    let outcome = run_script("#!/bin/sh\nexec sleep 30\n", Duration::from_millis(300)).await;
    assert_eq!(outcome.result, HookResult::TimedOut);
    // Not a timing assertion: only that the 30 s sleep did not run to its end.
    assert!(
        outcome.duration < Duration::from_secs(20),
        "{:?}",
        outcome.duration
    );
}

#[tokio::test]
async fn a_hook_killed_by_a_signal_says_so() {
    let outcome = run_script("#!/bin/sh\nkill -9 $$\n", Duration::from_secs(10)).await;
    assert_eq!(outcome.result, HookResult::Signalled(9));
}

#[tokio::test]
async fn a_hook_that_cannot_start_is_reported() {
    let outcome = run_script("#!/nonexistent/interpreter\n", Duration::from_secs(10)).await;
    assert!(
        matches!(outcome.result, HookResult::NotStarted(_)),
        "{:?}",
        outcome.result
    );
}

#[tokio::test]
async fn output_is_kept_up_to_the_limit_and_a_chatty_hook_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    // About 1 MB on each pipe, far past the pipe buffers and the limit.
    let hook = write_hook(
        dir.path(),
        "chatty",
        "#!/bin/sh\nhead -c 1000000 /dev/zero | tr '\\0' x\nhead -c 1000000 /dev/zero | tr '\\0' y >&2\n",
        0o755,
    );
    let outcome = run_hook(
        &hook,
        &incident(None),
        TransitionKind::Opened,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(outcome.result, HookResult::Exited(0));
    let mark = format!("\n[{} more bytes not kept]", 1_000_000 - OUTPUT_LIMIT);
    for (output, byte) in [(&outcome.stdout, b'x'), (&outcome.stderr, b'y')] {
        let kept = output.strip_suffix(&mark).expect("the cut is said");
        assert_eq!(kept.len(), OUTPUT_LIMIT);
        assert!(kept.bytes().all(|b| b == byte));
    }
}

/// Whether a process runs (a zombie, dead but not yet reaped, does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

fn wait_gone(pid: &str) {
    for _ in 0..250 {
        if !alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("process {pid} outlived its hook");
}

/// Runs a hook that starts `sleep 300` in the background, then runs `rest`;
/// returns the outcome and the background process's id.
async fn run_leaving_a_child(rest: &str, timeout: Duration) -> (HookOutcome, String) {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!(
        "#!/bin/sh\nsleep 300 &\necho $! > '{}'\n{rest}\n",
        pid_file.display()
    );
    let outcome = run_script(&script, timeout).await;
    let pid = fs::read_to_string(&pid_file).unwrap().trim().to_string();
    (outcome, pid)
}

#[tokio::test]
async fn what_a_hook_leaves_running_ends_with_it() {
    // The background sleep holds the output pipe: before, the call waited
    // for it until the timeout and was recorded as timed out.
    let (outcome, child) = run_leaving_a_child("echo sent\nexit 0", Duration::from_secs(20)).await;
    assert_eq!(outcome.result, HookResult::Exited(0));
    assert_eq!(outcome.stdout, "sent\n");
    wait_gone(&child);
}

#[tokio::test]
async fn at_the_timeout_the_whole_process_group_is_killed() {
    let (outcome, child) = run_leaving_a_child("exec sleep 300", Duration::from_millis(500)).await;
    assert_eq!(outcome.result, HookResult::TimedOut);
    wait_gone(&child);
}

#[tokio::test]
async fn a_hook_that_ignores_its_input_is_fine() {
    let outcome = run_script("#!/bin/sh\nexec 0<&-\nexit 0\n", Duration::from_secs(10)).await;
    assert_eq!(outcome.result, HookResult::Exited(0));
}

/// The original product's example hook (its documentation's
/// `data/global/hooks/on_incident_status_changed/alert.js`).
const SEED_EXAMPLE: &str = "async function alertChanged() {
  if (!incident.endTime) {
    console.log('HOOK: Incident Opened:', incident)
  } else {
    console.log('HOOK: Incident Closed:', incident)
  }

  // Here you could send a SMS, an E-mail, etc...
  // await
}

return alertChanged()
";

async fn run_js(source: &str, end_time: Option<i64>) -> HookOutcome {
    let dir = tempfile::tempdir().unwrap();
    // Not executable: a .js hook needs no mode, as in the original product.
    let hook = write_hook(dir.path(), "alert.js", source, 0o644);
    assert_eq!(
        discover(dir.path()).unwrap().hooks,
        std::slice::from_ref(&hook)
    );
    let kind = match end_time {
        Some(_) => TransitionKind::Resolved,
        None => TransitionKind::Opened,
    };
    run_hook(&hook, &incident(end_time), kind, Duration::from_secs(20)).await
}

#[tokio::test]
async fn the_original_js_hook_runs_unchanged_under_node() {
    if !programs::needed("node") {
        return;
    }
    let opened = run_js(SEED_EXAMPLE, None).await;
    assert_eq!(opened.result, HookResult::Exited(0), "{}", opened.stderr);
    assert!(
        opened.stdout.starts_with("HOOK: Incident Opened: {"),
        "{}",
        opened.stdout
    );
    assert!(opened.stdout.contains("ruleName: 'High CPU Usage'"));
    assert!(opened.stdout.contains("triggerValue: 71.5"));
    let resolved = run_js(SEED_EXAMPLE, Some(1_795_428_200_000)).await;
    assert!(resolved.stdout.contains("HOOK: Incident Closed:"));
    assert!(
        resolved
            .stdout
            .contains("endTime: '2026-11-23T10:03:20.000Z'")
    );
}

#[tokio::test]
async fn a_js_hook_can_await_log_and_fail() {
    if !programs::needed("node") {
        return;
    }
    let logged = run_js(
        "await new Promise((done) => setTimeout(done, 10));\n\
         bp.logger.warn('paging', incident.hostName, {n: 1});",
        None,
    )
    .await;
    assert_eq!(logged.result, HookResult::Exited(0), "{}", logged.stderr);
    assert_eq!(
        logged.stdout,
        format!("{LOGGER_MARK}warn paging web-1 {{ n: 1 }}\n")
    );
    let thrown = run_js("throw new Error('no route to pager')", None).await;
    assert_eq!(thrown.result, HookResult::Exited(1));
    assert!(
        thrown.stderr.contains("Error: no route to pager"),
        "{}",
        thrown.stderr
    );
    let broken = run_js("if (", None).await;
    assert_eq!(broken.result, HookResult::Exited(2));
    assert!(broken.stderr.contains("alert.js: "), "{}", broken.stderr);
}
