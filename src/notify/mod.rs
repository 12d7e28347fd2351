//! Notifiers: what a delivery's target does with a transition. Each kind of
//! target is one [`Notifier`]; the dispatcher
//! ([`crate::service`]) finds the notifier a delivery's target names
//! ([`notifier_for`]), calls it, and records what came of it.
//!
//! - [`hook`]: executables and `.js` files of the hooks folder, and `exec`
//!   targets of `alerting.notify` (a program with arguments);
//! - [`webhook`]: an HTTP POST of the event as JSON, signed as Standard
//!   Webhooks do when the target has a secret;
//! - [`slack`]: a readable message to a Slack incoming webhook.

mod hook;
mod http;
mod slack;
mod webhook;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::config::notify::{TARGET_PREFIX, TargetKind};
use crate::config::{Config, Rule};
use crate::hooks::{Hook, HookKind};
use crate::store::Delivery;

/// How a call ended, for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// `exited 0`, `HTTP 503`, `timed out after 10s`, ...
    pub outcome: String,
    pub succeeded: bool,
    /// When to try again after a failure.
    pub retry: Retry,
    /// What the call printed (a hook) or answered (an HTTP target), cut at
    /// [`crate::hooks::OUTPUT_LIMIT`].
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

/// After a failed call: whether and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the back-off.
    Later,
    /// Not before this long (an HTTP `Retry-After`), nor before the back-off.
    After(Duration),
    /// Never: it cannot work (the target refused the request for good).
    Never,
    /// The target is missing on this node (a hook file, a configured
    /// target): never on a node alone; later in a cluster, where another
    /// node may have it.
    Missing,
}

impl Called {
    /// A call that could not be made: its target is missing here.
    pub fn missing(why: String) -> Called {
        Called {
            outcome: why,
            succeeded: false,
            retry: Retry::Missing,
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
        }
    }
}

/// What a notifier is told of a delivery.
pub struct Notification<'a> {
    pub delivery: &'a Delivery,
    /// The incident's rule as this node has it (`None` if it has no rule of
    /// that name any more).
    pub rule: Option<&'a Rule>,
    /// `server.publicUrl`, for links to the incident's page.
    pub public_url: Option<&'a str>,
    /// The longest a call may take.
    pub timeout: Duration,
}

impl Notification<'_> {
    /// The incident's page, when the public URL is known.
    pub fn link(&self) -> Option<String> {
        let base = self.public_url?;
        Some(format!(
            "{}/incidents/{}",
            base.trim_end_matches('/'),
            self.delivery.incident.id
        ))
    }
}

/// A boxed future of a call.
pub type Calling<'a> = Pin<Box<dyn Future<Output = Called> + Send + 'a>>;

/// One kind of target.
pub trait Notifier: Send + Sync {
    /// Makes the call; never fails, but says how it went.
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a>;
}

/// What calls need that outlives one call: the HTTP client.
pub struct Notifiers {
    client: reqwest::Client,
}

impl Default for Notifiers {
    fn default() -> Self {
        Notifiers {
            client: http::client(),
        }
    }
}

impl Notifiers {
    /// The notifier `target` names (a hook of `hook_dir`, or a target of
    /// `config`), or why there is none.
    pub fn notifier_for(
        &self,
        target: &str,
        config: &Config,
        hook_dir: &std::path::Path,
    ) -> Result<Box<dyn Notifier>, String> {
        if let Some(name) = target.strip_prefix(TARGET_PREFIX) {
            let Some(found) = config.alerting.notify.iter().find(|t| t.name == name) else {
                return Err(format!(
                    "no target is named {name:?} in alerting.notify any more"
                ));
            };
            return Ok(match &found.kind {
                TargetKind::Exec { path, args } => Box::new(hook::HookNotifier {
                    hook: Hook {
                        name: found.name.clone(),
                        path: PathBuf::from(path),
                        kind: HookKind::Exec,
                        args: args.clone(),
                    },
                    node: PathBuf::from(&config.service.node),
                }),
                TargetKind::Webhook {
                    url,
                    headers,
                    secret,
                } => Box::new(webhook::WebhookNotifier {
                    client: self.client.clone(),
                    url: url.clone(),
                    headers: headers.clone(),
                    secret: secret.clone(),
                }),
                TargetKind::Slack { url } => Box::new(slack::SlackNotifier {
                    client: self.client.clone(),
                    url: url.clone(),
                }),
            });
        }
        let hook = Hook::from_target(hook_dir, target)
            .ok_or_else(|| format!("unknown kind of target {target:?}"))?;
        Ok(Box::new(hook::HookNotifier {
            hook,
            node: PathBuf::from(&config.service.node),
        }))
    }
}
