//! Targets: who is told of a transition. At the tick, [`Targets`] lists the
//! hooks present and the configured targets, and names those a transition
//! goes to ([`Targets::targets_for`]); the outbox keeps each name as text
//! ([`TargetId`]'s `Display`), and the dispatcher reads it back
//! ([`TargetId::parse`]) to find the notifier.

use std::fmt;
use std::path::Path;

use tracing::{debug, error};

use super::hooks::{self, HookKind};
use crate::config::notify::Target;
use crate::incident::Transition;

/// What a delivery goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetId {
    /// A file of the hooks folder, by name: `exec:<file>` or `js:<file>`.
    Hook { kind: HookKind, file: String },
    /// A target of `alerting.notify`, by name: `notify:<name>`.
    Configured(String),
}

impl TargetId {
    /// The target a delivery names, or why it names none (an outbox written
    /// by another version, say).
    pub fn parse(text: &str) -> Result<TargetId, String> {
        match text.split_once(':') {
            Some(("exec", file)) => Ok(TargetId::Hook {
                kind: HookKind::Exec,
                file: file.to_string(),
            }),
            Some(("js", file)) => Ok(TargetId::Hook {
                kind: HookKind::Js,
                file: file.to_string(),
            }),
            Some(("notify", name)) => Ok(TargetId::Configured(name.to_string())),
            _ => Err(format!("unknown kind of target {text:?}")),
        }
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetId::Hook {
                kind: HookKind::Exec,
                file,
            } => write!(f, "exec:{file}"),
            TargetId::Hook {
                kind: HookKind::Js,
                file,
            } => write!(f, "js:{file}"),
            TargetId::Configured(name) => write!(f, "notify:{name}"),
        }
    }
}

/// The targets present at one tick: every hook of the hooks folder, and the
/// configured targets with their filters.
pub struct Targets<'a> {
    hooks: Vec<TargetId>,
    configured: &'a [Target],
}

impl<'a> Targets<'a> {
    /// Lists the hooks of `hook_dir` now (a folder that cannot be read gives
    /// none, and says so in the log) beside the `configured` targets.
    pub fn list(hook_dir: &Path, configured: &'a [Target]) -> Targets<'a> {
        let hooks = match hooks::discover(hook_dir) {
            Ok(discovery) => {
                for (name, why) in &discovery.skipped {
                    debug!(hook = name, "hook skipped: {why}");
                }
                discovery
                    .hooks
                    .into_iter()
                    .map(|hook| TargetId::Hook {
                        kind: hook.kind,
                        file: hook.name,
                    })
                    .collect()
            }
            Err(error) => {
                error!(dir = %hook_dir.display(), %error, "cannot list hooks");
                Vec::new()
            }
        };
        Targets { hooks, configured }
    }

    /// Who is told of `transition`: every hook, in name order, then each
    /// configured target that wants it, in the file's order.
    pub fn targets_for(&self, transition: &Transition) -> Vec<TargetId> {
        let mut targets = self.hooks.clone();
        targets.extend(
            self.configured
                .iter()
                .filter(|target| wants(target, transition))
                .map(|target| TargetId::Configured(target.name.clone())),
        );
        targets
    }
}

/// Whether a configured target is told of `transition`: its rules filter
/// and its events filter both let it through (an absent filter lets all).
fn wants(target: &Target, transition: &Transition) -> bool {
    let rule = &*transition.incident.rule_name;
    target
        .rules
        .as_ref()
        .is_none_or(|rules| rules.iter().any(|name| name == rule))
        && target
            .events
            .as_ref()
            .is_none_or(|events| events.contains(&transition.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_reads_back_as_written() {
        for text in ["exec:10-page", "js:alert.js", "notify:ops", "notify:a:b"] {
            assert_eq!(TargetId::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            TargetId::parse("pager:x").unwrap_err(),
            "unknown kind of target \"pager:x\""
        );
        assert!(TargetId::parse("exec").is_err());
    }
}
