//! What the engine keeps per host: its samples, one window and one alarm
//! per rule, and the steps of a tick on one host (windows moved, a host
//! forgotten, a pair's transition decided).

use std::sync::Arc;

use super::ExactSum;
use super::window::{Extrema, Ring, Running, Seq, Window};
use crate::config::{Aggregation, NoData, Operand, Rule};
use crate::duration::Millis;
use crate::incident::{
    Incident, IncidentDetails, IncidentIds, JsonNumber, Transition, TransitionKind,
};

/// A rule as the engine uses it.
#[derive(Debug, Clone)]
pub(super) struct EngineRule {
    pub(super) rule: Rule,
    /// Whether it evaluates as the original's rules ([`Rule::is_plain`]).
    pub(super) plain: bool,
    pub(super) name: Arc<str>,
    /// Column of the rule's field in every host's [`Ring`].
    pub(super) slot: usize,
    /// Where the rule's running state lives in a host.
    pub(super) state: StateSlot,
}

/// Which of a host's running states belongs to a rule (see [`Running`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum StateSlot {
    Plain,
    Sum(usize),
    Min(usize),
    Max(usize),
}

impl StateSlot {
    pub(super) fn of<'s>(
        self,
        sums: &'s mut [ExactSum],
        extrema: &'s mut [Extrema],
    ) -> Running<'s> {
        match self {
            StateSlot::Plain => Running::Plain,
            StateSlot::Sum(i) => Running::Sum(&mut sums[i]),
            StateSlot::Min(i) => Running::Min(&mut extrema[i]),
            StateSlot::Max(i) => Running::Max(&mut extrema[i]),
        }
    }
}

/// The aggregate of `rule` over `window` (docs/engine.md, Aggregations); `None`
/// when it has no value.
#[inline]
pub(super) fn aggregate(
    rule: &EngineRule,
    window: &Window,
    sums: &[ExactSum],
    extrema: &[Extrema],
) -> Option<f64> {
    let count = window.count();
    match (rule.rule.aggregation, rule.state) {
        (Aggregation::Count, _) => Some(f64::from(count)),
        // A sum past the largest double stays at it, so that every
        // aggregate is a finite number that can be stored and shown; no
        // finite threshold compares differently with it than with infinity
        // but the largest double itself.
        (Aggregation::Sum, StateSlot::Sum(i)) => Some(sums[i].value().clamp(-f64::MAX, f64::MAX)),
        (Aggregation::Avg, StateSlot::Sum(i)) => (count > 0).then(|| sums[i].mean(count)),
        (Aggregation::Last, _) => window.last_value(),
        (_, StateSlot::Min(i) | StateSlot::Max(i)) => extrema[i].front().map(|&(_, value)| value),
        // Engine::new gives every sum, avg, min and max rule its state.
        _ => None,
    }
}

/// The open incident of one (rule, host) pair, the end of its last
/// resolved one, and for rules with options (docs/engine.md, Rule options)
/// since when its condition holds and since when its open incident has
/// been clear.
#[derive(Debug, Clone, Default)]
pub(super) struct Alarm {
    /// Boxed: rarely present, and a tick reads every alarm.
    pub(super) open: Option<Box<OpenIncident>>,
    pub(super) last_end: Option<Millis>,
    /// While nothing is open: the first tick of the current run of ticks
    /// at which the condition holds.
    pub(super) pending_since: Option<Millis>,
    /// While an incident is open: the first tick of the current run of
    /// clear ticks.
    pub(super) clear_since: Option<Millis>,
}

#[derive(Debug, Clone)]
pub(super) struct OpenIncident {
    pub(super) id: String,
    pub(super) start_time: Millis,
    /// NaN when it opened on no data.
    pub(super) trigger_value: f64,
    pub(super) details: Option<Arc<IncidentDetails>>,
}

/// What a pair's `pendingSince` and `clearSince` become at a tick that does
/// not open or resolve its incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct StateChange {
    pub(super) pending_since: Option<Millis>,
    pub(super) clear_since: Option<Millis>,
}

#[derive(Debug)]
pub(super) struct Host {
    pub(super) name: Arc<str>,
    pub(super) ring: Ring,
    /// Samples before this sequence number have entered every window.
    pub(super) entered: Seq,
    /// The newest timestamp among samples that have entered (`ts <= t`).
    pub(super) latest_visible: Option<Millis>,
    /// One per rule, in rule order.
    pub(super) windows: Vec<Window>,
    /// One per `sum` or `avg` rule.
    pub(super) sums: Vec<ExactSum>,
    /// One per `min` or `max` rule.
    pub(super) extrema: Vec<Extrema>,
    /// One per rule; read only when a window's condition changes.
    pub(super) alarms: Vec<Alarm>,
}

impl Host {
    pub(super) fn new(name: &str, width: usize, shape: &HostShape) -> Self {
        Host {
            name: name.into(),
            ring: Ring::new(width),
            entered: 0,
            latest_visible: None,
            windows: vec![Window::default(); shape.rules],
            sums: vec![ExactSum::default(); shape.sums],
            extrema: vec![Extrema::new(); shape.extrema],
            alarms: vec![Alarm::default(); shape.rules],
        }
    }

    /// Empties every window, to take every held sample in again.
    pub(super) fn restart_windows(&mut self) {
        let base = self.ring.base();
        self.entered = base;
        self.windows.iter_mut().for_each(|w| w.restart_at(base));
        self.sums.fill(ExactSum::default());
        self.extrema.iter_mut().for_each(Extrema::clear);
    }
}

/// How many of each running state a host needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HostShape {
    pub(super) rules: usize,
    pub(super) sums: usize,
    pub(super) extrema: usize,
}

/// Asks the CPU to start loading a host's windows and running states.
pub(super) fn prefetch_state(host: &Host) {
    prefetch_bytes(
        host.windows.as_ptr().cast(),
        std::mem::size_of_val(&host.windows[..]),
    );
    prefetch_bytes(
        host.sums.as_ptr().cast(),
        std::mem::size_of_val(&host.sums[..]),
    );
    prefetch_bytes(
        host.extrema.as_ptr().cast(),
        std::mem::size_of_val(&host.extrema[..]),
    );
}

/// Asks the CPU to start loading the samples a tick will add to and remove
/// from a host's windows (their window starts must already be cached).
pub(super) fn prefetch_samples(host: &Host) {
    let row_bytes = (host.ring.width() + 1) * std::mem::size_of::<u64>();
    let mut previous = None;
    let starts = host.windows.iter().map(|w| w.start);
    for seq in std::iter::once(host.entered).chain(starts) {
        if previous == Some(seq) || seq >= host.ring.end() || seq < host.ring.base() {
            continue;
        }
        previous = Some(seq);
        prefetch_bytes(host.ring.locate(seq).cast(), row_bytes);
    }
    for extrema in host.extrema.iter().filter(|e| !e.is_empty()) {
        let (front, back) = extrema.as_slices();
        prefetch_bytes(front.as_ptr().cast(), 16);
        if let Some(newest) = back.last().or(front.last()) {
            prefetch_bytes((newest as *const (Seq, f64)).cast(), 16);
        }
    }
}

/// Prefetches the cache lines of `len` bytes at `start`. A hint only: it
/// never faults and changes no result.
#[inline(always)]
pub(super) fn prefetch_bytes(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let mut offset = 0;
        while offset < len {
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch of any
            // address, valid or not, neither faults nor reads into the program.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset).cast()) };
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}

/// One past the newest sample with `ts <= at`.
pub(super) fn visible_end(host: &Host, at: Millis) -> Seq {
    let mut end = host.entered;
    while end < host.ring.end() && host.ring.ts(end) <= at {
        end += 1;
    }
    end
}

/// Moves every window of `host` to tick `at`: samples with `ts <= at` enter,
/// samples with `ts <= at - timeframe` leave; then forgets what no window holds.
pub(super) fn advance_windows(rules: &[EngineRule], host: &mut Host, at: Millis) {
    let entered = host.entered;
    let end = visible_end(host, at);
    if end > entered {
        let newest = host.ring.ts(end - 1);
        host.latest_visible = Some(
            host.latest_visible
                .map_or(newest, |latest| latest.max(newest)),
        );
    }
    let mut oldest_needed = end;
    let Host {
        ring,
        windows,
        sums,
        extrema,
        ..
    } = host;
    for (rule, window) in rules.iter().zip(windows.iter_mut()) {
        let mut running = rule.state.of(sums, extrema);
        for seq in entered..end {
            window.enter(ring, rule.slot, seq, &mut running);
        }
        let horizon = at - rule.rule.timeframe;
        window.leave_until(ring, rule.slot, end, horizon, &mut running);
        oldest_needed = oldest_needed.min(window.start);
    }
    host.entered = end;
    host.ring.trim_before(oldest_needed);
}

/// A forgotten host can be dropped once nothing of it can matter again: no
/// sample left in reach of a window or waiting to become visible, no open
/// incident and no running cooldown.
pub(super) fn can_drop(rules: &[EngineRule], host: &Host, at: Millis) -> bool {
    host.ring.len() == 0
        && host.alarms.iter().zip(rules).all(|(alarm, rule)| {
            alarm.open.is_none()
                && alarm.pending_since.is_none()
                && alarm
                    .last_end
                    .is_none_or(|end| at >= end + rule.rule.cooldown)
        })
}

/// The resolutions of the open incidents of a host that is no longer known
/// (docs/engine.md, Known hosts).
pub(super) fn forget(rules: &[EngineRule], host: &Host, at: Millis, out: &mut Vec<Transition>) {
    for (rule_index, (rule, alarm)) in rules.iter().zip(&host.alarms).enumerate() {
        if let Some(open) = &alarm.open {
            out.push(Transition {
                kind: TransitionKind::Resolved,
                at,
                rule: rule_index,
                incident: incident(rule, &host.name, open, Some(at)),
            });
        }
    }
}

/// Whether the rule must not open at `at` because its window reaches back
/// into a gap in the samples that ends at `gap_end` (the service was not
/// running, so nothing was stored). Only `count` and `sum` rules that fire
/// at or below their value are blind: missing samples push their aggregate
/// down, towards firing, while for any other rule they can only delay an
/// opening or leave the aggregate as the samples that are there say.
fn blind(rule: &EngineRule, at: Millis, gap_end: Option<Millis>) -> bool {
    let lowered_by_missing_samples =
        matches!(rule.rule.aggregation, Aggregation::Count | Aggregation::Sum)
            && rule.rule.operand == Operand::EqualOrLessThan;
    lowered_by_missing_samples && gap_end.is_some_and(|end| at - rule.rule.timeframe < end)
}

/// The transition of one (rule, host) pair at one tick, if any (docs/engine.md, Incidents).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    rule: &EngineRule,
    rule_index: usize,
    host: &Arc<str>,
    alarm: &Alarm,
    aggregate: f64,
    at: Millis,
    gap_end: Option<Millis>,
    ids: &mut dyn IncidentIds,
) -> Option<Transition> {
    let holds = rule.rule.holds(aggregate);
    match &alarm.open {
        None if holds => {
            let cooling = alarm
                .last_end
                .is_some_and(|end| at < end + rule.rule.cooldown);
            if cooling || blind(rule, at, gap_end) {
                return None;
            }
            Some(opening(
                rule,
                rule_index,
                host,
                Some(aggregate),
                at,
                None,
                ids,
            ))
        }
        Some(open) if !holds => Some(Transition {
            kind: TransitionKind::Resolved,
            at,
            rule: rule_index,
            incident: incident(rule, host, open, Some(at)),
        }),
        _ => None,
    }
}

/// The opening of an incident at `at` with trigger value `aggregate` (none:
/// opened on no data), whose condition held since `pending_since`.
fn opening(
    rule: &EngineRule,
    rule_index: usize,
    host: &Arc<str>,
    aggregate: Option<f64>,
    at: Millis,
    pending_since: Option<Millis>,
    ids: &mut dyn IncidentIds,
) -> Transition {
    let open = OpenIncident {
        id: ids.next_id(at),
        start_time: at,
        trigger_value: aggregate.unwrap_or(f64::NAN),
        details: details(&rule.rule, host, aggregate, pending_since),
    };
    Transition {
        kind: TransitionKind::Opened,
        at,
        rule: rule_index,
        incident: incident(rule, host, &open, None),
    }
}

/// What an incident of `rule` carries beyond the original's keys, fixed
/// when it opens: `None` when its rule gives nothing.
fn details(
    rule: &Rule,
    host: &str,
    aggregate: Option<f64>,
    pending_since: Option<Millis>,
) -> Option<Arc<IncidentDetails>> {
    let options = &rule.options;
    let details = IncidentDetails {
        severity: options.severity.as_deref().map(str::to_string),
        labels: (*options.labels).clone(),
        description: options
            .description
            .as_deref()
            .map(|text| describe(text, rule, host, aggregate)),
        pending_since: pending_since.filter(|_| options.hold_for > 0),
    };
    (!details.is_empty()).then(|| Arc::new(details))
}

/// A rule's `description` with its placeholders replaced: `{{host}}`,
/// `{{rule}}`, `{{value}}` (the trigger value as the incident's JSON writes
/// it, or `no data`) and `{{threshold}}` (the rule's value).
/// In one pass from left to right: a host or rule name that holds a
/// placeholder is written as it is, not replaced again.
pub fn describe(text: &str, rule: &Rule, host: &str, aggregate: Option<f64>) -> String {
    let number = |value: f64| serde_json::to_string(&JsonNumber(value)).unwrap_or_default();
    let value = aggregate.map_or_else(|| "no data".to_string(), number);
    let threshold = number(rule.threshold);
    let placeholders: [(&str, &str); 4] = [
        ("{{host}}", host),
        ("{{rule}}", &rule.name),
        ("{{value}}", &value),
        ("{{threshold}}", &threshold),
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        match placeholders.iter().find(|(name, _)| tail.starts_with(name)) {
            Some((name, replacement)) => {
                out.push_str(replacement);
                rest = &tail[name.len()..];
            }
            None => {
                out.push_str("{{");
                rest = &tail[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The transition or the change of state of one (rule, host) pair of a
/// rule with options at one tick (docs/engine.md, Rule options), with
/// aggregate `aggregate` (none: no value).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_with_options(
    rule: &EngineRule,
    rule_index: usize,
    host: &Arc<str>,
    alarm: &Alarm,
    aggregate: Option<f64>,
    at: Millis,
    gap_end: Option<Millis>,
    ids: &mut dyn IncidentIds,
) -> (Option<Transition>, Option<StateChange>) {
    let options = &rule.rule.options;
    let unchanged = StateChange {
        pending_since: alarm.pending_since,
        clear_since: alarm.clear_since,
    };
    let change = |next: StateChange| (next != unchanged).then_some(next);
    match &alarm.open {
        None => {
            let holds = match aggregate {
                Some(value) => rule.rule.holds(value),
                None => options.no_data == NoData::Open,
            };
            if !holds {
                return (None, change(StateChange::default()));
            }
            let since = alarm.pending_since.unwrap_or(at);
            let cooling = alarm
                .last_end
                .is_some_and(|end| at < end + rule.rule.cooldown);
            if at - since >= options.hold_for && !cooling && !blind(rule, at, gap_end) {
                let opened = opening(rule, rule_index, host, aggregate, at, Some(since), ids);
                return (Some(opened), None);
            }
            (
                None,
                change(StateChange {
                    pending_since: Some(since),
                    clear_since: None,
                }),
            )
        }
        Some(open) => {
            let clear = match aggregate {
                Some(value) => rule.rule.is_clear(value),
                None => options.no_data == NoData::Resolve,
            };
            if !clear {
                return (None, change(StateChange::default()));
            }
            let since = alarm.clear_since.unwrap_or(at);
            if at - since >= options.keep_firing_for {
                let resolved = Transition {
                    kind: TransitionKind::Resolved,
                    at,
                    rule: rule_index,
                    incident: incident(rule, host, open, Some(at)),
                };
                return (Some(resolved), None);
            }
            (
                None,
                change(StateChange {
                    pending_since: None,
                    clear_since: Some(since),
                }),
            )
        }
    }
}

pub(super) fn incident(
    rule: &EngineRule,
    host: &Arc<str>,
    open: &OpenIncident,
    end_time: Option<Millis>,
) -> Incident {
    Incident {
        id: open.id.clone(),
        rule_name: rule.name.clone(),
        host_name: host.clone(),
        start_time: open.start_time,
        end_time,
        trigger_value: open.trigger_value,
        resolution: None,
        details: open.details.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::describe;
    use crate::config::{Aggregation, Operand, Rule};

    #[test]
    fn placeholders_are_replaced_once() {
        let rule = Rule {
            name: "R {{value}}".to_string(),
            field: "x".to_string(),
            aggregation: Aggregation::Avg,
            operand: Operand::EqualOrMoreThan,
            threshold: 60.0,
            timeframe: 1,
            cooldown: 0,
            options: Default::default(),
        };
        assert_eq!(
            describe(
                "{{host}}: {{rule}} at {{value}} of {{threshold}} {{other}} {{",
                &rule,
                "web{{threshold}}",
                Some(71.5)
            ),
            "web{{threshold}}: R {{value}} at 71.5 of 60 {{other}} {{"
        );
        assert_eq!(describe("{{value}}", &rule, "h", None), "no data");
    }
}
