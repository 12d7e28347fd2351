//! Hooks: a program run with the incident as JSON on its standard input.

use std::path::PathBuf;

use tracing::{debug, error, info, warn};

use super::hooks::{Hook, HookResult, LOGGER_MARK, run_hook_with};
use super::{Called, Calling, Notification, Notifier, Retry};

/// A hook of the hooks folder, or an `exec` target.
pub struct HookNotifier {
    pub hook: Hook,
    /// The Node.js that runs `.js` hooks.
    pub node: PathBuf,
}

impl Notifier for HookNotifier {
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a> {
        Box::pin(async move {
            let event = notification.event;
            if !self.hook.path.is_file() {
                return Called::missing(format!("no such file ({})", self.hook.path.display()));
            }
            let outcome = run_hook_with(
                &self.hook,
                event.incident,
                event.kind,
                notification.timeout,
                &self.node,
            )
            .await;
            // What a `.js` hook logged through `bp.logger`, in alertd's log.
            let name = &self.hook.name;
            for line in outcome.stdout.lines() {
                if let Some(logged) = line.strip_prefix(LOGGER_MARK) {
                    let (level, message) = logged.split_once(' ').unwrap_or(("info", logged));
                    match level {
                        "error" => error!(hook = name, "{message}"),
                        "warn" => warn!(hook = name, "{message}"),
                        "debug" => debug!(hook = name, "{message}"),
                        _ => info!(hook = name, "{message}"),
                    }
                }
            }
            let succeeded = outcome.succeeded();
            Called {
                outcome: match outcome.result {
                    HookResult::TimedOut => {
                        format!("timed out after {:?} and was killed", notification.timeout)
                    }
                    result => result.to_string(),
                },
                succeeded,
                retry: Retry::Later,
                stdout: outcome.stdout,
                stderr: outcome.stderr,
                duration: outcome.duration,
            }
        })
    }
}
