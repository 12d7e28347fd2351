//! Notification: who is told of a transition, and how. Everything between
//! the tick and a target's call lives here, behind two doors:
//!
//! - at the tick, [`Targets::targets_for`] names who a transition goes to
//!   (the hooks present, and the configured targets whose filters let it
//!   through); the service records one delivery per target in the store's
//!   outbox, with the transition, before anything is called;
//! - the dispatcher ([`crate::service`]) takes each delivery due, finds the
//!   notifier its target names ([`Notifiers::notifier_for`]), gives it the
//!   [`Event`], and learns from the [`Called`] it returns whether and when to
//!   try again. When to try again after a failure (back-off, giving up) is
//!   the dispatcher's, which records every call.
//!
//! The kinds of target:
//!
//! - [`hooks`]: executables and `.js` files of the hooks folder, and `exec`
//!   targets of `alerting.notify` (a program with arguments), run as
//!   processes ([`hook`] is their notifier);
//! - [`webhook`]: an HTTP POST of the event as JSON, signed as Standard
//!   Webhooks do when the target has a secret;
//! - [`slack`]: a readable message to a Slack incoming webhook.

mod hook;
pub mod hooks;
mod http;
mod slack;
mod target;
mod webhook;

pub use target::{TargetId, Targets};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use crate::config::notify::TargetKind;
use crate::config::{Config, Rule};
use crate::incident::{Incident, TransitionKind};
use hooks::{Hook, HookKind};

/// How a call ended, for the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Called {
    /// `exited 0`, `HTTP 503`, `timed out after 10s`, ...
    pub outcome: String,
    pub succeeded: bool,
    /// When to try again after a failure.
    pub retry: Retry,
    /// What the call printed (a hook) or answered (an HTTP target), cut at
    /// [`hooks::OUTPUT_LIMIT`].
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

/// A transition of an incident, as a target is told of it.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub incident: &'a Incident,
    pub kind: TransitionKind,
    /// Not a transition but a note on the open incident (an `Opened`
    /// kind): a reminder or its acknowledgement, and when it was due (part
    /// of a reminder's message id).
    pub note: Option<(crate::store::Note, crate::duration::Millis)>,
}

/// What a notifier is told of a delivery.
pub struct Notification<'a> {
    pub event: Event<'a>,
    /// The incident's rule as this node has it (`None` if it has no rule of
    /// that name any more).
    pub rule: Option<&'a Rule>,
    /// `server.publicUrl`, for links to the incident's page.
    pub public_url: Option<&'a str>,
    /// The API token (`server.token`), which signs acknowledgement links.
    pub token: Option<&'a str>,
    /// The longest a call may take.
    pub timeout: Duration,
}

/// How long an acknowledgement link in a message works: a day.
pub const ACK_LINK_LIFE: crate::duration::Millis = 86_400_000;

/// The signature of an acknowledgement link of incident `id` that works
/// until `expires`: HMAC-SHA256 with the API token, hex; empty without a
/// token (then the API itself asks for nothing).
pub fn ack_signature(token: Option<&str>, id: &str, expires: crate::duration::Millis) -> String {
    use hmac::{KeyInit, Mac};
    let Some(token) = token else {
        return String::new();
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(format!("acknowledge\0{id}\0{expires}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl Notification<'_> {
    /// A link that acknowledges the incident without signing in, for a
    /// day from `now`, when the public URL is known.
    pub fn ack_link(&self, now: crate::duration::Millis) -> Option<String> {
        let base = self.public_url?.trim_end_matches('/');
        let id = &self.event.incident.id;
        let expires = now.saturating_add(ACK_LINK_LIFE);
        let signature = ack_signature(self.token, id, expires);
        Some(format!("{base}/ack/{id}?expires={expires}&sig={signature}"))
    }

    /// The incident's page, when the public URL is known.
    pub fn link(&self) -> Option<String> {
        let base = self.public_url?;
        Some(format!(
            "{}/incidents/{}",
            base.trim_end_matches('/'),
            self.event.incident.id
        ))
    }
}

/// What a grouped target is told: the transitions of one group since its
/// last message (docs/notifications.md, Grouping).
pub struct GroupNotification<'a> {
    /// Each `groupBy` with the group's value.
    pub group: &'a std::collections::BTreeMap<String, String>,
    /// The group, stable across messages: the group as JSON.
    pub key: &'a str,
    /// The transitions, oldest first.
    pub events: Vec<Event<'a>>,
    /// The group's incidents open now.
    pub firing: &'a [Incident],
    /// `server.publicUrl`, for a link to the incidents page of the group.
    pub public_url: Option<&'a str>,
    pub timeout: Duration,
    /// The message's id: the same for every try of the same transitions.
    pub id: String,
    /// A reminder that the group's incidents are still open (no events).
    pub reminder: bool,
}

impl GroupNotification<'_> {
    /// The incidents page filtered to the group (its rule, host and
    /// severity, those it is grouped by), when the public URL is known.
    pub fn link(&self) -> Option<String> {
        let base = self.public_url?.trim_end_matches('/');
        let filters: Vec<(&str, &str)> = ["rule", "host", "severity"]
            .into_iter()
            .filter_map(|name| Some((name, self.group.get(name)?.as_str())))
            .filter(|(_, value)| !value.is_empty())
            .collect();
        let query = serde_urlencoded::to_string(&filters).unwrap_or_default();
        Some(match query.is_empty() {
            true => format!("{base}/"),
            false => format!("{base}/?{query}"),
        })
    }

    /// How many of the events opened and resolved an incident.
    pub fn counts(&self) -> (usize, usize) {
        let opened = (self.events.iter())
            .filter(|event| event.kind == TransitionKind::Opened)
            .count();
        (opened, self.events.len() - opened)
    }
}

/// A boxed future of a call.
pub type Calling<'a> = Pin<Box<dyn Future<Output = Called> + Send + 'a>>;

/// One kind of target.
pub trait Notifier: Send + Sync {
    /// Makes the call; never fails, but says how it went.
    fn notify<'a>(&'a self, notification: &'a Notification<'a>) -> Calling<'a>;

    /// Sends a group's message; a kind of target that does not group
    /// refuses it for good.
    fn notify_group<'a>(&'a self, _group: &'a GroupNotification<'a>) -> Calling<'a> {
        Box::pin(async {
            Called {
                outcome: "this kind of target does not send grouped messages".to_string(),
                succeeded: false,
                retry: Retry::Never,
                stdout: String::new(),
                stderr: String::new(),
                duration: Duration::ZERO,
            }
        })
    }
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
    /// `config`), or why there is none on this node.
    pub fn notifier_for(
        &self,
        target: &TargetId,
        config: &Config,
        hook_dir: &std::path::Path,
    ) -> Result<Box<dyn Notifier>, String> {
        let node = || PathBuf::from(&config.hooks.node);
        let name = match target {
            TargetId::Configured(name) => name,
            TargetId::Hook { kind, file } => {
                let hook = Hook {
                    name: file.clone(),
                    path: hook_dir.join(file),
                    kind: *kind,
                    args: Vec::new(),
                };
                return Ok(Box::new(hook::HookNotifier { hook, node: node() }));
            }
        };
        let Some(found) = config.alerting.notify.iter().find(|t| t.name == *name) else {
            return Err(format!(
                "no target is named {name:?} in alerting.notify any more"
            ));
        };
        Ok(match &found.kind {
            TargetKind::Exec { path, args } => Box::new(hook::HookNotifier {
                hook: Hook {
                    name: found.name.clone(),
                    path: PathBuf::from(path),
                    kind: HookKind::Exec,
                    args: args.clone(),
                },
                node: node(),
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
        })
    }
}
