//! Incidents, their deliveries and hook calls in Redis: the recording of a
//! tick's transitions (fenced by the lease, conditional on no other open
//! incident of a pair), the queries, and the outbox's claims.

use redis::{AsyncCommands, Value};
use serde::{Deserialize, Serialize};

use super::{RedisStore, SCRIPTS, Values, corrupt};
use crate::duration::Millis;
use crate::incident::{Incident, PairChange, PairRecord, PairRecords, Transition, TransitionKind};
use crate::store::{
    Claim, Delivery, HookCall, IncidentDetail, Incidents, Lease, StoreError, Undelivered,
};

/// A stored incident: its fields, the trigger value exactly.
#[derive(Serialize, Deserialize)]
struct IncidentRecord {
    id: String,
    rule: String,
    host: String,
    start: Millis,
    end: Option<Millis>,
    /// `null` where an alertd before 0.1's finite aggregates stored an
    /// infinite `avg`: read as NaN (shown as no value), so that such a
    /// record no longer makes the whole incident log unreadable.
    #[serde(deserialize_with = "value_or_nan")]
    value: f64,
    /// Why it was resolved, when not by its rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resolution: Option<String>,
    /// What a rule with options gives its incidents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    severity: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_since: Option<Millis>,
}

fn value_or_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

impl IncidentRecord {
    fn of(incident: &Incident) -> IncidentRecord {
        let details = incident.details.as_deref().cloned().unwrap_or_default();
        IncidentRecord {
            id: incident.id.clone(),
            rule: incident.rule_name.to_string(),
            host: incident.host_name.to_string(),
            start: incident.start_time,
            end: incident.end_time,
            value: incident.trigger_value,
            resolution: incident.resolution.as_deref().map(str::to_string),
            severity: details.severity,
            labels: details.labels,
            description: details.description,
            pending_since: details.pending_since,
        }
    }

    fn into_incident(self) -> Incident {
        Incident {
            id: self.id,
            rule_name: self.rule.into(),
            host_name: self.host.into(),
            start_time: self.start,
            end_time: self.end,
            trigger_value: self.value,
            resolution: self.resolution.map(Into::into),
            details: {
                let details = crate::incident::IncidentDetails {
                    severity: self.severity,
                    labels: self.labels,
                    description: self.description,
                    pending_since: self.pending_since,
                };
                (!details.is_empty()).then(|| std::sync::Arc::new(details))
            },
        }
    }
}

/// A stored hook call.
#[derive(Serialize, Deserialize)]
struct CallRecord {
    incident: String,
    target: String,
    kind: String,
    attempt: u32,
    started: Millis,
    duration_ms: u64,
    outcome: String,
    succeeded: bool,
    stdout: String,
    stderr: String,
}

fn kind_from(text: &str) -> Result<TransitionKind, StoreError> {
    match text {
        "opened" | "reminder" | "acknowledged" => Ok(TransitionKind::Opened),
        "resolved" => Ok(TransitionKind::Resolved),
        other => Err(corrupt(&format!("unknown transition kind {other:?}"))),
    }
}

pub(super) fn incident_from(json: &[u8]) -> Result<Incident, StoreError> {
    serde_json::from_slice::<IncidentRecord>(json)
        .map(IncidentRecord::into_incident)
        .map_err(|error| corrupt(&format!("an incident record: {error}")))
}

pub(super) fn incident_json(incident: &Incident) -> String {
    // Serializing plain fields cannot fail.
    serde_json::to_string(&IncidentRecord::of(incident)).unwrap_or_default()
}

/// `rule\0host`: a pair's field in the `open` and `last_end` hashes.
fn pair_key(rule: &str, host: &str) -> String {
    format!("{rule}\0{host}")
}

pub(super) fn record_tick(
    store: &RedisStore,
    lease: &Lease,
    transitions: &[Transition],
    targets: &[Vec<String>],
    changes: &[PairChange],
) -> Result<(), StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.record,
        &[
            "lease",
            "incident",
            "open",
            "last_end",
            "resolved",
            "outbox_seq",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_ids",
            "pending",
            "last_tick",
            "pair_states",
        ],
    );
    invocation
        .arg(super::lease_value(lease))
        .arg(transitions.len());
    for (index, transition) in transitions.iter().enumerate() {
        let targets = targets.get(index).map_or(&[][..], Vec::as_slice);
        let incident = &transition.incident;
        invocation
            .arg(transition.kind.as_str())
            .arg(&incident.id)
            .arg(pair_key(&incident.rule_name, &incident.host_name))
            .arg(incident_json(incident))
            .arg(
                incident
                    .end_time
                    .map(|end| end.to_string())
                    .unwrap_or_default(),
            )
            .arg(transition.at)
            .arg(targets.len());
        for target in targets {
            invocation.arg(target);
        }
    }
    invocation.arg(changes.len());
    let since = |at: Option<Millis>| at.map(|at| at.to_string()).unwrap_or_default();
    for change in changes {
        invocation
            .arg(pair_key(&change.rule_name, &change.host))
            .arg(format!(
                "{} {}",
                since(change.pending_since),
                since(change.clear_since)
            ))
            .arg(change.at);
    }
    let outcome: Vec<String> = store.invoke(invocation)?;
    match outcome.first().map(String::as_str) {
        Some("open") if outcome.len() == 3 => {
            let (rule, host) = outcome[1].split_once('\0').unwrap_or((&outcome[1], ""));
            Err(StoreError::AlreadyOpen {
                rule: rule.to_string(),
                host: host.to_string(),
                open: outcome[2].clone(),
            })
        }
        _ => super::tick_outcome(
            &outcome,
            lease,
            crate::store::tick_of(transitions, changes).unwrap_or_default(),
            "recording",
        ),
    }
}

pub(super) fn pairs(store: &RedisStore) -> Result<Vec<PairRecord>, StoreError> {
    let (open, last_end, incident, states) = (
        store.key("open"),
        store.key("last_end"),
        store.key("incident"),
        store.key("pair_states"),
    );
    let (open, ends, states): (
        std::collections::BTreeMap<String, String>,
        std::collections::BTreeMap<String, Millis>,
        std::collections::BTreeMap<String, String>,
    ) = store.run(move |mut c| async move {
        redis::pipe()
            .atomic()
            .hgetall(open)
            .hgetall(last_end)
            .hgetall(states)
            .query_async(&mut c)
            .await
    })?;
    let ids: Vec<String> = open.values().cloned().collect();
    let records: Values = if ids.is_empty() {
        Vec::new()
    } else {
        store.run(move |mut c| async move { c.hmget(incident, ids).await })?
    };
    let mut incidents = open.keys().zip(records);
    let mut pairs = PairRecords::default();
    let split = |key: &str| -> Result<(String, String), StoreError> {
        key.split_once('\0')
            .map(|(rule, host)| (rule.to_string(), host.to_string()))
            .ok_or_else(|| corrupt(&format!("a pair {key:?}")))
    };
    for (key, end) in &ends {
        let (rule, host) = split(key)?;
        pairs.pair(rule, host).last_end = Some(*end);
    }
    for (key, record) in incidents.by_ref() {
        let Some(record) = record else {
            continue;
        };
        let (rule, host) = split(key)?;
        pairs.pair(rule, host).open = Some(incident_from(&record)?);
    }
    for (key, state) in &states {
        let (rule, host) = split(key)?;
        let bad = || corrupt(&format!("the state of pair {key:?}: {state:?}"));
        let (pending, clear) = state.split_once(' ').ok_or_else(bad)?;
        let since = |text: &str| -> Result<Option<Millis>, StoreError> {
            if text.is_empty() {
                Ok(None)
            } else {
                text.parse().map(Some).map_err(|_| bad())
            }
        };
        let pair = pairs.pair(rule, host);
        pair.pending_since = since(pending)?;
        pair.clear_since = since(clear)?;
    }
    Ok(pairs.into_vec())
}

pub(super) fn incidents(
    store: &RedisStore,
    from: Millis,
    to: Millis,
) -> Result<Incidents, StoreError> {
    let (open, resolved, incident) = (
        store.key("open"),
        store.key("resolved"),
        store.key("incident"),
    );
    let (open, ended): (Vec<String>, Vec<String>) = store.run(move |mut c| async move {
        redis::pipe()
            .atomic()
            .hvals(open)
            .zrangebyscore(resolved, from, "+inf")
            .query_async(&mut c)
            .await
    })?;
    let read = |ids: Vec<String>| -> Result<Vec<Incident>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let incident = incident.clone();
        let records: Values =
            store.run(move |mut c| async move { c.hmget(incident, ids).await })?;
        let mut incidents = records
            .into_iter()
            .flatten()
            .map(|record| incident_from(&record))
            .collect::<Result<Vec<_>, _>>()?;
        incidents.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
        Ok(incidents)
    };
    let active = read(open)?;
    let mut resolved = read(ended)?;
    resolved.retain(|incident| incident.start_time <= to && incident.end_time.is_some());
    Ok(Incidents { active, resolved })
}

pub(super) fn incident(store: &RedisStore, id: &str) -> Result<Option<IncidentDetail>, StoreError> {
    let (incident, calls, key) = (
        store.key("incident"),
        store.key("calls"),
        store.key("outbox_key"),
    );
    let wanted = id.to_string();
    let (record, lines, keys): (
        Option<Vec<u8>>,
        Option<String>,
        std::collections::BTreeMap<i64, String>,
    ) = store.run(move |mut c| async move {
        redis::pipe()
            .atomic()
            .hget(incident, &wanted)
            .hget(calls, &wanted)
            .hgetall(key)
            .query_async(&mut c)
            .await
    })?;
    let Some(record) = record else {
        return Ok(None);
    };
    let incident = incident_from(&record)?;
    let mut hook_calls = Vec::new();
    for line in lines.iter().flat_map(|lines| lines.lines()) {
        let call: CallRecord = serde_json::from_str(line)
            .map_err(|error| corrupt(&format!("a hook call: {error}")))?;
        hook_calls.push(HookCall {
            incident_id: call.incident,
            target: call.target,
            kind: kind_from(&call.kind)?,
            attempt: call.attempt,
            started: call.started,
            duration_ms: call.duration_ms,
            outcome: call.outcome,
            succeeded: call.succeeded,
            stdout: call.stdout,
            stderr: call.stderr,
        });
    }
    let prefix = format!("{id}\0");
    let mine: Vec<i64> = keys
        .into_iter()
        .filter(|(_, key)| key.starts_with(&prefix))
        .map(|(delivery, _)| delivery)
        .collect();
    let pending = deliveries(store, mine)?;
    Ok(Some(IncidentDetail {
        incident,
        calls: hook_calls,
        pending,
    }))
}

pub(super) fn claim_deliveries(
    store: &RedisStore,
    now: Millis,
    claim: &Claim<'_>,
    per_target: usize,
) -> Result<Vec<Delivery>, StoreError> {
    claim_for(
        store,
        now,
        claim,
        i64::try_from(per_target).unwrap_or(i64::MAX),
        "",
    )
}

/// Runs `CLAIM`: at most `per_target` deliveries of each target (of `only`
/// when not empty) but those `claim.skip` names.
fn claim_for(
    store: &RedisStore,
    now: Millis,
    claim: &Claim<'_>,
    per_target: i64,
    only: &str,
) -> Result<Vec<Delivery>, StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.claim,
        &[
            "outbox_ids",
            "outbox_key",
            "outbox_next",
            "claims",
            "outbox_dead",
        ],
    );
    invocation
        .arg(now)
        .arg(claim.node)
        .arg(claim.lasts)
        .arg(per_target)
        .arg(only)
        .arg(claim.skip.join("\n"));
    let claimed: Vec<i64> = store.invoke(invocation)?;
    deliveries(store, claimed)
}

pub(super) fn next_delivery_time(store: &RedisStore) -> Result<Option<Millis>, StoreError> {
    let invocation = store.script(
        &SCRIPTS.next_due,
        &[
            "outbox_ids",
            "outbox_key",
            "outbox_next",
            "claims",
            "outbox_dead",
        ],
    );
    let next: Option<String> = store.invoke(invocation)?;
    next.map(|at| {
        at.parse()
            .map_err(|_| corrupt(&format!("a delivery time {at:?}")))
    })
    .transpose()
}

pub(super) fn finish_delivery(
    store: &RedisStore,
    delivery: i64,
    call: &HookCall,
    retry_at: Option<Millis>,
) -> Result<(), StoreError> {
    let then = retry_at.map(|at| at.to_string()).unwrap_or_default();
    finish(store, delivery, call, then)
}

pub(super) fn bury_delivery(
    store: &RedisStore,
    delivery: i64,
    call: &HookCall,
) -> Result<(), StoreError> {
    finish(store, delivery, call, "dead".to_string())
}

pub(super) fn hold_delivery(
    store: &RedisStore,
    delivery: i64,
    until: Millis,
    by: &str,
) -> Result<(), StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.hold,
        &["outbox", "outbox_next", "claims", "outbox_held"],
    );
    invocation.arg(delivery).arg(until).arg(by);
    store.invoke::<Value>(invocation)?;
    Ok(())
}

pub(super) fn claim_target(
    store: &RedisStore,
    target: &str,
    now: Millis,
    claim: &Claim<'_>,
) -> Result<Vec<Delivery>, StoreError> {
    claim_for(store, now, claim, i64::MAX, target)
}

pub(super) fn group_sent(
    store: &RedisStore,
    target: &str,
    key: &str,
) -> Result<Option<Millis>, StoreError> {
    let (sent, field) = (store.key("group_sent"), format!("{target}\0{key}"));
    store.run(move |mut c| async move { c.hget(sent, field).await })
}

pub(super) fn set_group_sent(
    store: &RedisStore,
    target: &str,
    key: &str,
    at: Millis,
) -> Result<(), StoreError> {
    let mut invocation = store.script(&SCRIPTS.group_sent, &["group_sent"]);
    invocation.arg(format!("{target}\0{key}")).arg(at);
    store.invoke::<Value>(invocation)?;
    Ok(())
}

pub(super) fn delete_groups_sent_before(
    store: &RedisStore,
    before: Millis,
) -> Result<u64, StoreError> {
    let sent = store.key("group_sent");
    let all: std::collections::HashMap<String, Millis> = {
        let sent = sent.clone();
        store.run(move |mut c| async move { c.hgetall(sent).await })?
    };
    let old: Vec<String> = all
        .into_iter()
        .filter(|(_, at)| *at < before)
        .map(|(field, _)| field)
        .collect();
    if old.is_empty() {
        return Ok(0);
    }
    store.run(move |mut c| async move { c.hdel(sent, old).await })
}

pub(super) fn reminder_times(
    store: &RedisStore,
) -> Result<std::collections::BTreeMap<(String, String), Millis>, StoreError> {
    let reminders = store.key("reminders");
    let all: std::collections::HashMap<String, Millis> =
        store.run(move |mut c| async move { c.hgetall(reminders).await })?;
    Ok(all
        .into_iter()
        .filter_map(|(field, at)| {
            let (id, target) = field.split_once('\0')?;
            Some(((id.to_string(), target.to_string()), at))
        })
        .collect())
}

pub(super) fn enqueue_reminder(
    store: &RedisStore,
    incident: &Incident,
    target: &str,
    now: Millis,
    next: Millis,
) -> Result<(), StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.remind,
        &[
            "outbox_seq",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_ids",
            "pending",
            "reminders",
        ],
    );
    invocation
        .arg(&incident.id)
        .arg(target)
        .arg(incident_json(incident))
        .arg(now)
        .arg(next);
    store.invoke::<Value>(invocation)?;
    Ok(())
}

pub(super) fn acknowledge(
    store: &RedisStore,
    id: &str,
    ack: &crate::store::Ack,
    targets: &[String],
) -> Result<Option<crate::store::Ack>, StoreError> {
    let data = serde_json::to_string(ack)
        .map_err(|error| corrupt(&format!("an acknowledgement: {error}")))?;
    let mut invocation = store.script(
        &SCRIPTS.acknowledge,
        &[
            "incident",
            "acks",
            "outbox_seq",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_ids",
            "pending",
        ],
    );
    invocation.arg(id).arg(data).arg(ack.at).arg(targets.len());
    for target in targets {
        invocation.arg(target);
    }
    let kept: Option<String> = store.invoke(invocation)?;
    kept.map(|kept| {
        serde_json::from_str(&kept)
            .map_err(|error| corrupt(&format!("an acknowledgement: {error}")))
    })
    .transpose()
}

pub(super) fn acknowledgements(
    store: &RedisStore,
    ids: &[&str],
) -> Result<std::collections::BTreeMap<String, crate::store::Ack>, StoreError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let acks = store.key("acks");
    let wanted: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let asked = wanted.clone();
    let found: Vec<Option<String>> =
        store.run(move |mut c| async move { c.hmget(acks, asked).await })?;
    Ok(wanted
        .into_iter()
        .zip(found)
        .filter_map(|(id, data)| Some((id, serde_json::from_str(&data?).ok()?)))
        .collect())
}

pub(super) fn release_held(store: &RedisStore, now: Millis) -> Result<u64, StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.release_held,
        &["outbox_held", "outbox_next", "outbox_dead"],
    );
    invocation.arg(now);
    store.invoke(invocation)
}

pub(super) fn retry_dead(store: &RedisStore, id: &str, now: Millis) -> Result<u64, StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.retry_dead,
        &["outbox_key", "outbox_dead", "outbox_next"],
    );
    invocation.arg(id).arg(now);
    store.invoke(invocation)
}

pub(super) fn pending_deliveries(store: &RedisStore) -> Result<u64, StoreError> {
    let ids = store.key("outbox_ids");
    store.run(move |mut c| async move { c.zcard(ids).await })
}

pub(super) fn undelivered(
    store: &RedisStore,
) -> Result<std::collections::BTreeMap<String, Undelivered>, StoreError> {
    let (key, attempts, dead, held) = (
        store.key("outbox_key"),
        store.key("outbox_attempts"),
        store.key("outbox_dead"),
        store.key("outbox_held"),
    );
    type Found = (
        std::collections::HashMap<i64, Vec<u8>>,
        std::collections::HashMap<i64, u32>,
        std::collections::HashMap<i64, u8>,
        std::collections::HashMap<i64, Vec<u8>>,
    );
    let (keys, tries, deaths, holds): Found = store.run(move |mut c| async move {
        redis::pipe()
            .atomic()
            .hgetall(key)
            .hgetall(attempts)
            .hgetall(dead)
            .hgetall(held)
            .query_async(&mut c)
            .await
    })?;
    let mut undelivered = std::collections::BTreeMap::new();
    for (delivery, key) in keys {
        let state = if deaths.contains_key(&delivery) {
            Undelivered::Dead
        } else if tries.get(&delivery).copied().unwrap_or(0) > 0 {
            Undelivered::Failing
        } else if holds.contains_key(&delivery) {
            Undelivered::Held
        } else {
            Undelivered::Waiting
        };
        let incident = key.split(|byte| *byte == 0).next().unwrap_or_default();
        let entry = undelivered
            .entry(String::from_utf8_lossy(incident).into_owned())
            .or_insert(state);
        *entry = (*entry).max(state);
    }
    Ok(undelivered)
}

pub(super) fn delete_incidents_resolved_before(
    store: &RedisStore,
    before: Millis,
) -> Result<u64, StoreError> {
    let mut invocation = store.script(
        &SCRIPTS.delete_incidents,
        &["resolved", "incident", "calls", "pending", "acks"],
    );
    invocation.arg(before);
    store.invoke(invocation)
}

/// Records a call and does `then` to its delivery (see `FINISH`).
fn finish(
    store: &RedisStore,
    delivery: i64,
    call: &HookCall,
    then: String,
) -> Result<(), StoreError> {
    let record = serde_json::to_string(&CallRecord {
        incident: call.incident_id.clone(),
        target: call.target.clone(),
        kind: call.kind.as_str().to_string(),
        attempt: call.attempt,
        started: call.started,
        duration_ms: call.duration_ms,
        outcome: call.outcome.clone(),
        succeeded: call.succeeded,
        stdout: call.stdout.clone(),
        stderr: call.stderr.clone(),
    })
    .map_err(|error| corrupt(&format!("a hook call: {error}")))?;
    let mut invocation = store.script(
        &SCRIPTS.finish,
        &[
            "calls",
            "outbox",
            "outbox_key",
            "outbox_next",
            "outbox_attempts",
            "outbox_ids",
            "claims",
            "pending",
            "outbox_dead",
            "outbox_held",
        ],
    );
    invocation
        .arg(delivery)
        .arg(&call.incident_id)
        .arg(record)
        .arg(then);
    store.invoke::<Value>(invocation)?;
    Ok(())
}

/// The deliveries `ids` (those still waiting), in id order.
fn deliveries(store: &RedisStore, mut ids: Vec<i64>) -> Result<Vec<Delivery>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ids.sort_unstable();
    let (outbox, next, attempts, dead, held) = (
        store.key("outbox"),
        store.key("outbox_next"),
        store.key("outbox_attempts"),
        store.key("outbox_dead"),
        store.key("outbox_held"),
    );
    let wanted = ids.clone();
    type Found = (
        Values,
        Vec<Option<Millis>>,
        Vec<Option<u32>>,
        Vec<Option<u8>>,
        Vec<Option<String>>,
    );
    let (payloads, nexts, tries, deaths, holds): Found = store.run(move |mut c| async move {
        redis::pipe()
            .atomic()
            .hmget(outbox, &wanted)
            .hmget(next, &wanted)
            .hmget(attempts, &wanted)
            .hmget(dead, &wanted)
            .hmget(held, &wanted)
            .query_async(&mut c)
            .await
    })?;
    let mut deliveries = Vec::with_capacity(ids.len());
    let found = payloads
        .into_iter()
        .zip(nexts)
        .zip(tries)
        .zip(deaths)
        .zip(holds);
    for (id, ((((payload, next), tries), dead), held_by)) in ids.into_iter().zip(found) {
        let (Some(payload), Some(next)) = (payload, next) else {
            continue;
        };
        let mut parts = payload.splitn(3, |byte| *byte == 0);
        let (Some(kind), Some(target), Some(record)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt("a delivery"));
        };
        deliveries.push(Delivery {
            id,
            target: String::from_utf8_lossy(target).into_owned(),
            kind: kind_from(&String::from_utf8_lossy(kind))?,
            incident: incident_from(record)?,
            attempts: tries.unwrap_or(0),
            next_attempt: next,
            dead: dead.is_some(),
            held_by,
            note: crate::store::Note::of_kind(kind),
        });
    }
    Ok(deliveries)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_record_with_a_null_trigger_value_reads_back() {
        let json = br#"{"id":"i","rule":"e","host":"atk","start":1,"end":null,"value":null}"#;
        let incident = super::incident_from(json).unwrap();
        assert!(incident.trigger_value.is_nan());
        assert_eq!(&*incident.host_name, "atk");
    }
}
