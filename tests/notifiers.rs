//! One suite for every kind of notifier: an executable hook, a `.js` hook,
//! a webhook and a Slack target each meet the same cases (delivered, refused,
//! timed out, asked to wait, missing), with real processes and a real HTTP
//! receiver, through the door the dispatcher uses
//! ([`Notifiers::notifier_for`]). What each [`Retry`] then makes of the
//! delivery (tried again after the back-off, dead, dropped) is the
//! dispatcher's, tested beside it (`service::dispatch`) and end to end in
//! `tests/notify.rs`.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use alertd::config::Config;
use alertd::incident::{Incident, TransitionKind};
use alertd::notify::hooks::HookKind;
use alertd::notify::{Called, Event, Notification, Notifiers, Retry, TargetId};
use support::receiver::{Receiver, start_receiver};

/// The kinds of target.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Exec,
    Js,
    Webhook,
    Slack,
}

/// What the target is made to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Case {
    Delivered,
    /// Says no: a hook fails, an HTTP target answers 400.
    Refused,
    /// Takes longer than the call may.
    TimedOut,
    /// Asks to be tried later: a hook fails with 75 (EX_TEMPFAIL), an HTTP
    /// target answers 503 with `Retry-After: 7`.
    AskedToWait,
    /// Is not there: the hook file is gone, the target is no longer configured.
    Missing,
}

const CASES: [Case; 5] = [
    Case::Delivered,
    Case::Refused,
    Case::TimedOut,
    Case::AskedToWait,
    Case::Missing,
];

/// The longest a call may take here.
const TIMEOUT: Duration = Duration::from_millis(700);

/// What a case must give for a kind: success, the retry asked for, and a
/// piece of the outcome's text.
fn expected(kind: Kind, case: Case) -> (bool, Retry, &'static str) {
    let http = matches!(kind, Kind::Webhook | Kind::Slack);
    match case {
        Case::Delivered if http => (true, Retry::Later, "HTTP 200"),
        Case::Delivered => (true, Retry::Later, "exited with status 0"),
        Case::Refused if http => (false, Retry::Never, "HTTP 400: refused, not tried again"),
        Case::Refused => (false, Retry::Later, "exited with status 1"),
        Case::TimedOut if http => (false, Retry::Later, "no answer within 700ms"),
        Case::TimedOut => (false, Retry::Later, "timed out after 700ms and was killed"),
        Case::AskedToWait if http => (false, Retry::After(Duration::from_secs(7)), "HTTP 503"),
        Case::AskedToWait => (false, Retry::Later, "exited with status 75"),
        Case::Missing if http => (
            false,
            Retry::Missing,
            "no target is named \"gone\" in alerting.notify any more",
        ),
        Case::Missing => (false, Retry::Missing, "no such file"),
    }
}

/// The hook's text for a case.
fn hook_source(kind: Kind, case: Case) -> &'static str {
    match (kind, case) {
        (Kind::Js, Case::Delivered) => "bp.logger.info('told of', incident.id)",
        (Kind::Js, Case::Refused) => "throw new Error('no route to pager')",
        (Kind::Js, Case::TimedOut) => "await new Promise((done) => setTimeout(done, 60000))",
        (Kind::Js, Case::AskedToWait) => "process.exit(75)",
        (_, Case::Delivered) => "#!/bin/sh\ncat >/dev/null\nexit 0\n",
        (_, Case::Refused) => "#!/bin/sh\nexit 1\n",
        (_, Case::TimedOut) => "#!/bin/sh\nexec sleep 60\n",
        (_, Case::AskedToWait) => "#!/bin/sh\nexit 75\n",
        (_, Case::Missing) => unreachable!("a missing hook has no text"),
    }
}

/// Makes the target of `kind` behave as `case` asks; returns its name in the
/// outbox and the configuration it lives in.
fn arrange(
    kind: Kind,
    case: Case,
    hooks: &Path,
    receiver: &Receiver,
    address: SocketAddr,
) -> (TargetId, Config) {
    let name = format!("{kind:?}-{case:?}").to_lowercase();
    let mut notify = Vec::new();
    let target = match kind {
        Kind::Exec | Kind::Js => {
            let (hook_kind, file) = match kind {
                Kind::Js => (HookKind::Js, format!("{name}.js")),
                _ => (HookKind::Exec, name.clone()),
            };
            if case != Case::Missing {
                let path = hooks.join(&file);
                std::fs::write(&path, hook_source(kind, case)).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            TargetId::Hook {
                kind: hook_kind,
                file,
            }
        }
        Kind::Webhook | Kind::Slack => {
            match case {
                Case::Refused => receiver.plan(&name, &[(400, None)]),
                Case::AskedToWait => receiver.plan(&name, &[(503, Some(7))]),
                Case::TimedOut => {
                    receiver
                        .delays
                        .lock()
                        .unwrap()
                        .insert(name.clone(), Duration::from_secs(5));
                }
                Case::Delivered | Case::Missing => {}
            }
            let kind = if kind == Kind::Slack {
                "slack"
            } else {
                "webhook"
            };
            if case == Case::Missing {
                TargetId::Configured("gone".to_string())
            } else {
                notify.push(format!(
                    r#"{{"name": "{name}", "type": "{kind}", "url": "http://{address}/hook/{name}"}}"#
                ));
                TargetId::Configured(name)
            }
        }
    };
    let text = format!(
        r#"{{"alerting": {{"enabled": true, "rules": [], "notify": [{}]}}}}"#,
        notify.join(", ")
    );
    let config = Config::parse(&text, "alertd.json").unwrap().config;
    (target, config)
}

fn incident() -> Incident {
    Incident {
        id: "01JD6Z8J1V6N5WQ3W5G1B8H1QX".into(),
        rule_name: "High CPU Usage".into(),
        host_name: "web-1".into(),
        start_time: 1_795_428_010_000,
        end_time: None,
        trigger_value: 71.5,
        resolution: None,
        details: None,
    }
}

/// Calls the target through the door the dispatcher uses.
async fn call(notifiers: &Notifiers, target: &TargetId, config: &Config, hooks: &Path) -> Called {
    let notifier = match notifiers.notifier_for(target, config, hooks) {
        Ok(notifier) => notifier,
        Err(why) => return Called::missing(why),
    };
    let incident = incident();
    let notification = Notification {
        event: Event {
            incident: &incident,
            kind: TransitionKind::Opened,
            note: None,
        },
        rule: None,
        public_url: None,
        token: None,
        timeout: TIMEOUT,
    };
    notifier.notify(&notification).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_notifier_meets_the_same_cases() {
    let kinds: Vec<Kind> = [Kind::Exec, Kind::Js, Kind::Webhook, Kind::Slack]
        .into_iter()
        .filter(|kind| *kind != Kind::Js || support::programs::needed("node"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let (receiver, address) = start_receiver();
    let notifiers = Notifiers::default();
    let mut failures = Vec::new();
    for kind in &kinds {
        for case in CASES {
            let (target, config) = arrange(*kind, case, dir.path(), &receiver, address);
            let called = call(&notifiers, &target, &config, dir.path()).await;
            let (succeeded, retry, says) = expected(*kind, case);
            let got = (called.succeeded, called.retry);
            if got != (succeeded, retry) || !called.outcome.contains(says) {
                failures.push(format!(
                    "{kind:?} {case:?}: got {got:?} {:?}, expected ({succeeded}, {retry:?}) and {says:?}",
                    called.outcome
                ));
            }
            // An HTTP target that was called got the event once.
            if matches!(kind, Kind::Webhook | Kind::Slack) && case != Case::Missing {
                let name = format!("{kind:?}-{case:?}").to_lowercase();
                assert_eq!(receiver.got(&name).len(), 1, "{kind:?} {case:?}");
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `.js` hook whose promise never settles and that leaves nothing to wait
/// for would end with status 0 when Node.js runs out of work: that is not a
/// delivery.
#[tokio::test]
async fn a_js_hook_whose_promise_never_settles_fails() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("stuck.js"), "await new Promise(() => {})").unwrap();
    let target = TargetId::Hook {
        kind: HookKind::Js,
        file: "stuck.js".to_string(),
    };
    let config = Config::parse(
        r#"{"alerting": {"enabled": true, "rules": []}}"#,
        "alertd.json",
    )
    .unwrap()
    .config;
    let called = call(&Notifiers::default(), &target, &config, dir.path()).await;
    assert!(!called.succeeded, "{called:?}");
    assert!(called.stderr.contains("never settled"), "{}", called.stderr);
}
