//! Silences in the service: made and expired through the API, and asked by
//! the dispatcher whether a due delivery is sent, held back or dropped
//! ([`crate::silence::decide`]).

use tracing::info;

use super::Service;
use crate::duration::Millis;
use crate::incident::TransitionKind;
use crate::silence::{Decision, NOT_SENT, NewSilence, Opening, Silence, decide, silencing};
use crate::store::{Delivery, Store, StoreError};

/// Why a new silence was not made.
#[derive(Debug)]
pub enum Refused {
    /// What is wrong with what was asked.
    Invalid(String),
    Store(StoreError),
}

impl From<StoreError> for Refused {
    fn from(error: StoreError) -> Self {
        Refused::Store(error)
    }
}

impl Service {
    /// Stores the silence `asked` for, from now. Blocking.
    pub fn add_silence(&self, asked: NewSilence) -> Result<Silence, Refused> {
        let now = self.now();
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now.max(0) as u64);
        let id = ulid::Ulid::from_datetime(at).to_string();
        let silence = asked.silence(id, now).map_err(Refused::Invalid)?;
        self.store.put_silence(&silence)?;
        info!(
            id = silence.id,
            matchers = ?silence.matchers,
            starts_at = silence.starts_at,
            ends_at = silence.ends_at,
            created_by = silence.created_by,
            "silence added"
        );
        Ok(silence)
    }

    /// Every silence kept: active ones first, then those to come, then
    /// those ended; each group by its end. Blocking.
    pub fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        let now = self.now();
        let mut silences = self.store.silences()?;
        silences.sort_by_key(|silence| (silence.state(now) as u8, silence.ends_at));
        Ok(silences)
    }

    /// Ends the silence `id` now, if it has not ended; the deliveries it
    /// held are due at once. `None` for no such silence. Blocking.
    pub fn expire_silence(&self, id: &str) -> Result<Option<Silence>, StoreError> {
        let now = self.now();
        let Some(mut silence) = self.store.silences()?.into_iter().find(|s| s.id == id) else {
            return Ok(None);
        };
        if silence.ends_at > now {
            silence.ends_at = now.max(silence.starts_at);
            silence.expired_at = Some(now);
            self.store.put_silence(&silence)?;
            let released = self.store.release_held(now)?;
            info!(id, released, "silence expired early");
            self.dispatch.outbox.notify_one();
        }
        Ok(Some(silence))
    }
}

/// Why an incident was not acknowledged.
#[derive(Debug)]
pub enum NotAcknowledged {
    Unknown,
    /// Resolved already: nobody needs to handle it.
    Resolved,
    /// What is wrong with what was asked.
    Invalid(String),
    Store(StoreError),
}

impl From<StoreError> for NotAcknowledged {
    fn from(error: StoreError) -> Self {
        NotAcknowledged::Store(error)
    }
}

impl Service {
    /// Records that `by` handles the open incident `id`; the
    /// acknowledgement kept (the first one, if it had one). Blocking.
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        comment: &str,
    ) -> Result<crate::store::Ack, NotAcknowledged> {
        let by = by.trim();
        if by.is_empty() || by.len() > 200 {
            return Err(NotAcknowledged::Invalid(
                "by: who acknowledges, 1 to 200 bytes".to_string(),
            ));
        }
        if comment.len() > 1_000 {
            return Err(NotAcknowledged::Invalid(
                "comment: longer than 1000 bytes".to_string(),
            ));
        }
        let detail = self.store.incident(id)?.ok_or(NotAcknowledged::Unknown)?;
        if !detail.incident.is_open() {
            return Err(NotAcknowledged::Resolved);
        }
        let ack = crate::store::Ack {
            by: by.to_string(),
            comment: comment.trim().to_string(),
            at: self.now(),
        };
        // The targets that asked to be told of acknowledgements, and whose
        // rules take the incident.
        let targets: Vec<String> = self.read_config(|config| {
            (config.alerting.notify.iter())
                .filter(|target| target.acknowledged)
                .filter(|target| {
                    target.rules.as_ref().is_none_or(|rules| {
                        rules
                            .iter()
                            .any(|rule| **rule == *detail.incident.rule_name)
                    })
                })
                .map(|target| crate::notify::TargetId::Configured(target.name.clone()).to_string())
                .collect()
        });
        let kept = self
            .store
            .acknowledge(id, &ack, &targets)?
            .ok_or(NotAcknowledged::Unknown)?;
        if !targets.is_empty() {
            self.dispatch.outbox.notify_one();
        }
        info!(id, by = kept.by, "incident acknowledged");
        Ok(kept)
    }
}

/// What to do with `delivery`, due at `now`, given the stored silences and
/// `windows` (the maintenance windows active now, as silences). Blocking.
/// Reads the incident's calls only when a silence is stored or a window
/// active, or the delivery was held.
pub(super) fn decision(
    store: &dyn Store,
    delivery: &Delivery,
    now: Millis,
    windows: Vec<Silence>,
) -> Result<Decision, StoreError> {
    let mut silences = store.silences()?;
    silences.extend(windows);
    if delivery.note == Some(crate::store::Note::Reminder) {
        // A reminder is for an incident still open that nobody handles,
        // and is not worth holding back.
        let id = &delivery.incident.id;
        let detail = store.incident(id)?;
        let open = detail
            .as_ref()
            .is_some_and(|detail| detail.incident.is_open());
        // Reminders queued behind one that could not be sent (a claim of a
        // node that died runs out first) are one reminder, not a burst.
        let superseded = detail.as_ref().is_some_and(|detail| {
            detail.pending.iter().any(|later| {
                later.id > delivery.id
                    && later.target == delivery.target
                    && later.note == Some(crate::store::Note::Reminder)
            })
        });
        let why = if !open {
            Some("resolved since".to_string())
        } else if superseded {
            Some("a later reminder replaces it".to_string())
        } else if !store.acknowledgements(&[id])?.is_empty() {
            Some("acknowledged since".to_string())
        } else {
            let names: Vec<&str> = silencing(&silences, &delivery.incident, now)
                .map(|silence| silence.id.as_str())
                .collect();
            (!names.is_empty()).then(|| format!("silenced by {}", names.join(", ")))
        };
        return Ok(match why {
            Some(why) => Decision::Drop { why },
            None => Decision::Send,
        });
    }
    let held = delivery.held_by.is_some();
    if silences.is_empty() && !held {
        return Ok(Decision::Send);
    }
    let matching: Vec<&Silence> = silencing(&silences, &delivery.incident, now).collect();
    let detail = store.incident(&delivery.incident.id)?;
    let resolved = match (&detail, delivery.kind) {
        (_, TransitionKind::Resolved) => true,
        (Some(detail), TransitionKind::Opened) => !detail.incident.is_open(),
        // Deleted meanwhile: long resolved.
        (None, TransitionKind::Opened) => true,
    };
    let calls = detail.as_ref().map_or(&[][..], |detail| &detail.calls[..]);
    let opened = calls
        .iter()
        .filter(|call| call.target == delivery.target && call.kind == TransitionKind::Opened);
    let opening = if opened.clone().any(|call| call.succeeded) {
        Opening::Sent
    } else if opened
        .clone()
        .any(|call| !call.succeeded && call.outcome.starts_with(NOT_SENT))
    {
        Opening::Withheld
    } else {
        Opening::Other
    };
    Ok(decide(delivery.kind, held, &matching, resolved, opening))
}
