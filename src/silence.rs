//! Silences (docs/notifications.md): for a while, the incidents that match
//! are recorded and shown as usual, but no target is called for them.
//!
//! A silence matches an incident when every matcher it has matches: the
//! rule's name, the host's, the severity, each label named. A matcher's
//! value is exact, or a glob where `*` stands for any run of characters
//! (`web-*`). What a silence holds back, and when it is sent after all, is
//! decided by [`decide`], without a clock or a store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Millis;
use crate::incident::{Incident, TransitionKind};

/// The longest a silence may last: a year.
pub const LONGEST: Millis = 366 * 24 * 3_600_000;
/// The most matchers of one silence, labels included.
pub const MOST_MATCHERS: usize = 32;
/// The longest value of a matcher, comment or author.
const LONGEST_TEXT: usize = 1_000;

/// What a silence matches; every matcher given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matchers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Matchers {
    /// Whether `incident` matches every matcher. An incident without a
    /// severity or a label does not match a matcher on it.
    pub fn matches(&self, incident: &Incident) -> bool {
        let details = incident.details.as_deref();
        let severity = details.and_then(|details| details.severity.as_deref());
        self.rule
            .as_deref()
            .is_none_or(|pattern| glob(pattern, &incident.rule_name))
            && self
                .host
                .as_deref()
                .is_none_or(|pattern| glob(pattern, &incident.host_name))
            && self
                .severity
                .as_deref()
                .is_none_or(|pattern| severity.is_some_and(|severity| glob(pattern, severity)))
            && self.labels.iter().all(|(name, pattern)| {
                details
                    .and_then(|details| details.labels.get(name))
                    .is_some_and(|value| glob(pattern, value))
            })
    }

    fn count(&self) -> usize {
        [&self.rule, &self.host, &self.severity]
            .iter()
            .filter(|matcher| matcher.is_some())
            .count()
            + self.labels.len()
    }

    /// What is wrong with the matchers, if anything: none at all (a silence
    /// of everything must say so with `*`), too many, an empty value or
    /// label name, a value too long.
    pub fn problem(&self) -> Option<String> {
        if self.count() == 0 {
            return Some(
                "matchers: none given; name a rule, host, severity or label \
                 (\"host\": \"*\" silences every host)"
                    .to_string(),
            );
        }
        if self.count() > MOST_MATCHERS {
            return Some(format!("matchers: at most {MOST_MATCHERS}"));
        }
        let named = [
            ("rule", &self.rule),
            ("host", &self.host),
            ("severity", &self.severity),
        ];
        let values = named
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.as_deref()?)))
            .chain(
                self.labels
                    .iter()
                    .map(|(name, value)| (format!("labels.{name}"), value.as_str())),
            );
        for (name, value) in values {
            if value.is_empty() {
                return Some(format!("matchers.{name}: empty; use \"*\" for any"));
            }
            if value.len() > LONGEST_TEXT {
                return Some(format!("matchers.{name}: longer than {LONGEST_TEXT} bytes"));
            }
        }
        if self.labels.keys().any(String::is_empty) {
            return Some("matchers.labels: a label name is empty".to_string());
        }
        None
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (none included) and every other character for itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the place in `text` it was tried from.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((at, from)) = star {
            // The `*` takes one more character.
            p = at + 1;
            t = from + 1;
            star = Some((at, from + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

/// A silence, as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Silence {
    pub id: String,
    pub matchers: Matchers,
    pub starts_at: Millis,
    pub ends_at: Millis,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
    pub created_at: Millis,
    /// When it was expired early (`DELETE /api/v1/silences/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Millis>,
}

/// Where a silence stands at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Active,
    Expired,
}

impl Silence {
    pub fn state(&self, now: Millis) -> State {
        if now >= self.ends_at {
            State::Expired
        } else if now < self.starts_at {
            State::Pending
        } else {
            State::Active
        }
    }

    pub fn is_active(&self, now: Millis) -> bool {
        self.state(now) == State::Active
    }
}

/// `POST /api/v1/silences`: what a client sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewSilence {
    pub matchers: Matchers,
    /// Milliseconds since the epoch; now when absent.
    #[serde(default)]
    pub starts_at: Option<Millis>,
    #[serde(default)]
    pub ends_at: Option<Millis>,
    /// How long from `startsAt`, in place of `endsAt` (`"2h"`).
    #[serde(default)]
    pub duration: Option<String>,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub created_by: String,
}

impl NewSilence {
    /// The silence this asks for, made at `now` with `id`; or what is
    /// wrong with it.
    pub fn silence(self, id: String, now: Millis) -> Result<Silence, String> {
        if let Some(problem) = self.matchers.problem() {
            return Err(problem);
        }
        for (name, text) in [("comment", &self.comment), ("createdBy", &self.created_by)] {
            if text.len() > LONGEST_TEXT {
                return Err(format!("{name}: longer than {LONGEST_TEXT} bytes"));
            }
        }
        let starts_at = self.starts_at.unwrap_or(now);
        let ends_at = match (self.ends_at, &self.duration) {
            (Some(_), Some(_)) => {
                return Err("endsAt and duration: give one, not both".to_string());
            }
            (None, None) => return Err("endsAt or duration: one is needed".to_string()),
            (Some(ends_at), None) => ends_at,
            (None, Some(text)) => match crate::duration::parse_duration(text) {
                Ok(duration) if duration > 0 => starts_at.saturating_add(duration),
                _ => {
                    return Err(format!(
                        "duration {text:?}: expected a duration longer than 0, such as \"2h\""
                    ));
                }
            },
        };
        if ends_at <= starts_at {
            return Err("endsAt: must be after startsAt".to_string());
        }
        if ends_at <= now {
            return Err("endsAt: already past".to_string());
        }
        if ends_at.saturating_sub(starts_at.max(now)) > LONGEST {
            return Err("the silence would last more than a year".to_string());
        }
        Ok(Silence {
            id,
            matchers: self.matchers,
            starts_at,
            ends_at,
            comment: self.comment,
            created_by: self.created_by,
            created_at: now,
            expired_at: None,
        })
    }
}

/// The active silences among `silences` that match `incident` at `now`.
pub fn silencing<'s>(
    silences: &'s [Silence],
    incident: &Incident,
    now: Millis,
) -> impl Iterator<Item = &'s Silence> {
    silences
        .iter()
        .filter(move |silence| silence.is_active(now) && silence.matchers.matches(incident))
}

/// What becomes of a delivery that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Call its target.
    Send,
    /// Not yet: due again at `until` (when the silences holding it end).
    Hold { until: Millis, by: String },
    /// Never: recorded as not sent, with why.
    Drop { why: String },
}

/// The outcome a delivery not sent is recorded with begins with this.
pub const NOT_SENT: &str = "not sent: ";

/// What became of the "opened" of an incident for a target, as its calls
/// tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A call succeeded.
    Sent,
    /// Dropped while silenced ([`NOT_SENT`]).
    Withheld,
    /// Neither: not yet called, failing, or never queued for the target
    /// (one that takes only "resolved").
    Other,
}

/// What a due delivery should do, given:
///
/// - `kind`, and `held`: whether a silence held it back before;
/// - `silences`: the silences active now that match its incident;
/// - `resolved`: whether the incident is resolved now (for an "opened");
/// - `opening`: what became of the incident's "opened" for the same
///   target (for a "resolved").
///
/// An "opened" is held while a silence matches, and sent once none does
/// if the incident is still open; one whose incident resolved while it was
/// held is dropped, and so is the "resolved" behind it. A "resolved" whose
/// "opened" was sent is always sent, silenced or not, so that nobody is
/// left believing an incident is still open; one whose "opened" was
/// withheld is never sent; any other "resolved" is dropped while a silence
/// matches.
pub fn decide(
    kind: TransitionKind,
    held: bool,
    silences: &[&Silence],
    resolved: bool,
    opening: Opening,
) -> Decision {
    let names = || {
        silences
            .iter()
            .map(|silence| silence.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        TransitionKind::Opened if resolved && (held || !silences.is_empty()) => Decision::Drop {
            why: match silences.is_empty() {
                true => "resolved while a silence held it".to_string(),
                false => format!("silenced by {}; resolved meanwhile", names()),
            },
        },
        TransitionKind::Opened if !silences.is_empty() => Decision::Hold {
            // Due again when the last of them ends.
            until: silences
                .iter()
                .map(|silence| silence.ends_at)
                .max()
                .unwrap_or(0),
            by: names(),
        },
        TransitionKind::Opened => Decision::Send,
        TransitionKind::Resolved if opening == Opening::Sent => Decision::Send,
        TransitionKind::Resolved if opening == Opening::Withheld => Decision::Drop {
            why: "its opening was not sent".to_string(),
        },
        TransitionKind::Resolved if !silences.is_empty() => Decision::Drop {
            why: format!("silenced by {}", names()),
        },
        TransitionKind::Resolved => Decision::Send,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::IncidentDetails;
    use std::sync::Arc;

    #[test]
    fn globs_match_runs_of_any_characters() {
        for (pattern, text, matches) in [
            ("web-*", "web-1", true),
            ("web-*", "web-", true),
            ("web-*", "db-1", false),
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("*-1", "web-1", true),
            ("*-1", "web-10", false),
            ("**a", "ba", true),
            ("web-1", "web-1", true),
            ("web-1", "web-10", false),
            ("w?b", "w?b", true),
            ("w?b", "wab", false),
        ] {
            assert_eq!(glob(pattern, text), matches, "{pattern:?} {text:?}");
        }
    }

    fn incident(
        rule: &str,
        host: &str,
        severity: Option<&str>,
        labels: &[(&str, &str)],
    ) -> Incident {
        Incident {
            id: "i".to_string(),
            rule_name: Arc::from(rule),
            host_name: Arc::from(host),
            start_time: 0,
            end_time: None,
            trigger_value: 1.0,
            resolution: None,
            details: Some(Arc::new(IncidentDetails {
                severity: severity.map(str::to_string),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn every_matcher_given_must_match() {
        let matchers = Matchers {
            host: Some("web-*".to_string()),
            severity: Some("critical".to_string()),
            labels: [("team".to_string(), "ops".to_string())].into(),
            ..Default::default()
        };
        let labels = [("team", "ops")];
        assert!(matchers.matches(&incident("r", "web-1", Some("critical"), &labels)));
        assert!(!matchers.matches(&incident("r", "db-1", Some("critical"), &labels)));
        assert!(!matchers.matches(&incident("r", "web-1", Some("warning"), &labels)));
        assert!(!matchers.matches(&incident("r", "web-1", None, &labels)));
        assert!(!matchers.matches(&incident("r", "web-1", Some("critical"), &[])));
        let rule = Matchers {
            rule: Some("High CPU".to_string()),
            ..Default::default()
        };
        assert!(rule.matches(&incident("High CPU", "x", None, &[])));
        assert!(!rule.matches(&incident("High CPU 2", "x", None, &[])));
    }

    fn new(body: &str) -> Result<Silence, String> {
        let asked: NewSilence = serde_json::from_str(body).map_err(|e| e.to_string())?;
        asked.silence("s1".to_string(), 1_000_000)
    }

    #[test]
    fn a_new_silence_is_checked() {
        let silence =
            new(r#"{"matchers": {"host": "web-*"}, "duration": "2h", "comment": "deploy"}"#)
                .unwrap();
        assert_eq!(
            (silence.starts_at, silence.ends_at),
            (1_000_000, 1_000_000 + 7_200_000)
        );
        assert_eq!(silence.state(1_000_000), State::Active);
        assert_eq!(silence.state(1_000_000 + 7_200_000), State::Expired);
        let later =
            new(r#"{"matchers": {"rule": "r"}, "startsAt": 2000000, "endsAt": 3000000}"#).unwrap();
        assert_eq!(later.state(1_000_000), State::Pending);
        for (body, problem) in [
            (r#"{"matchers": {}, "duration": "1h"}"#, "none given"),
            (
                r#"{"matchers": {"host": ""}, "duration": "1h"}"#,
                "matchers.host: empty",
            ),
            (r#"{"matchers": {"host": "a"}}"#, "one is needed"),
            (
                r#"{"matchers": {"host": "a"}, "duration": "0s"}"#,
                "longer than 0",
            ),
            (
                r#"{"matchers": {"host": "a"}, "duration": "1h", "endsAt": 5}"#,
                "not both",
            ),
            (
                r#"{"matchers": {"host": "a"}, "endsAt": 5}"#,
                "must be after",
            ),
            (
                r#"{"matchers": {"host": "a"}, "startsAt": 1, "endsAt": 5}"#,
                "already past",
            ),
            (
                r#"{"matchers": {"host": "a"}, "duration": "400d"}"#,
                "more than a year",
            ),
            (
                r#"{"matchers": {"hots": "a"}, "duration": "1h"}"#,
                "unknown field",
            ),
            (
                r#"{"matchers": {"labels": {"": "a"}}, "duration": "1h"}"#,
                "label name is empty",
            ),
        ] {
            let error = new(body).unwrap_err();
            assert!(error.contains(problem), "{body}: {error}");
        }
    }

    #[test]
    fn deliveries_are_held_sent_or_dropped() {
        use Decision::*;
        use Opening::{Other, Sent, Withheld};
        use TransitionKind::{Opened, Resolved};
        let silence = new(r#"{"matchers": {"host": "*"}, "duration": "1h"}"#).unwrap();
        let on = [&silence];
        let hold = Hold {
            until: silence.ends_at,
            by: "s1".to_string(),
        };
        // An opening: held while silenced; sent after if still open.
        assert_eq!(decide(Opened, false, &on, false, Other), hold);
        assert_eq!(decide(Opened, true, &on, false, Other), hold);
        assert_eq!(decide(Opened, true, &[], false, Other), Decision::Send);
        assert_eq!(decide(Opened, false, &[], false, Other), Decision::Send);
        // Resolved while held, or silenced and resolved: never sent.
        assert!(matches!(
            decide(Opened, true, &[], true, Other),
            Drop { .. }
        ));
        assert!(matches!(
            decide(Opened, false, &on, true, Other),
            Drop { .. }
        ));
        // Not silenced, resolved since: the opening still goes out first.
        assert_eq!(decide(Opened, false, &[], true, Other), Decision::Send);
        // A resolution whose opening was sent always goes.
        assert_eq!(decide(Resolved, false, &on, true, Sent), Decision::Send);
        // One whose opening was not: dropped while silenced.
        assert!(matches!(
            decide(Resolved, false, &on, true, Other),
            Drop { .. }
        ));
        assert_eq!(decide(Resolved, false, &[], true, Other), Decision::Send);
        // One whose opening was withheld: never, silenced or not.
        assert!(matches!(
            decide(Resolved, false, &[], true, Withheld),
            Drop { .. }
        ));
        assert!(matches!(
            decide(Resolved, false, &on, true, Withheld),
            Drop { .. }
        ));
    }
}
