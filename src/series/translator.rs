//! The [`Translator`]: points in, samples out, with what it must remember
//! between batches (counters' last totals, which intervals are stored) kept
//! so that a batch the store refused can be undone (module docs of
//! [`super`]).

use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::{Batch, Combine, Derived, Kind, Mapping, Point, glob};
use crate::duration::Millis;
use crate::field::is_valid_field_name;
use crate::sample::{MAX_HOST_NAME_LEN, MAX_TIMESTAMP, Sample};

/// The earliest timestamp a pushed sample may carry (2001-09-09).
const MIN_TS: Millis = 1_000_000_000_000;

/// Points a translation did not take, by reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refusals {
    /// Each reason (the first example of it) with how many points it refused.
    pub reasons: Vec<(String, u64)>,
}

impl Refusals {
    /// How many points were refused.
    pub fn count(&self) -> u64 {
        self.reasons.iter().map(|(_, count)| count).sum()
    }

    /// Counts a point refused for `kind` (the start of its reason); the
    /// first of a kind gives the details.
    pub(crate) fn add(&mut self, reason: impl FnOnce() -> String, kind: &'static str) {
        // One entry per kind of reason, keeping the first example's words.
        if let Some(entry) = self
            .reasons
            .iter_mut()
            .find(|(text, _)| text.starts_with(kind))
        {
            entry.1 += 1;
        } else {
            self.reasons.push((format!("{kind}{}", reason()), 1));
        }
    }

    /// One line for an answer or a log: every reason with its count.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|(reason, count)| format!("{count} point(s): {reason}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What a batch became.
#[derive(Debug, Default)]
pub struct Translation {
    /// One per host and interval that has a field done.
    pub samples: Vec<Sample>,
    pub refused: Refusals,
    /// Points left out on purpose: NaN staleness markers, histogram
    /// buckets, a value of an interval already stored.
    pub skipped: u64,
    /// Points taken (they fed a field, now or in a sample to come).
    pub taken: u64,
    undo: Undo,
}

/// What to put back if the samples are not stored: each total and field a
/// batch changed, as it was before (`None`: it did not exist).
#[derive(Debug, Default)]
struct Undo {
    totals: Vec<(u64, Option<Total>)>,
    fields: Vec<(Name, Name, Option<FieldState>)>,
}

/// A host's or field's name, shared by the state that holds it.
type Name = Arc<str>;

/// A counter's last total.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Total {
    value: f64,
    start: Option<Millis>,
    ts: Millis,
    /// When it came, by the node's clock.
    seen: Millis,
    /// The batch that last changed it (see [`Translator::batch`]).
    batch: u64,
    /// It came from a scrape (a batch with its host given).
    scraped: bool,
}

impl Total {
    /// `point`'s total, as batch `number` of `batch` brings it at `now`.
    fn of(point: &Point, start: Option<Millis>, now: Millis, number: u64, batch: &Batch) -> Self {
        Total {
            value: point.value,
            start,
            ts: point.ts,
            seen: now,
            batch: number,
            scraped: batch.host.is_some(),
        }
    }
}

/// One host's fields.
#[derive(Debug)]
struct HostFields {
    name: Name,
    fields: FxHashMap<Name, FieldState>,
}

/// One host's one field: the interval being gathered and what the last
/// stored interval was made of.
#[derive(Debug, Clone, PartialEq)]
struct FieldState {
    field: Name,
    /// The interval being gathered (its start), if any.
    bucket: Option<Millis>,
    /// Its series so far: which selector each fed and its value (`None`:
    /// a counter's first total, which has no increase yet).
    pending: FxHashMap<u64, (u8, Option<f64>)>,
    /// The last interval stored.
    done: Option<Millis>,
    /// The series that made it, in order: the next interval is complete
    /// once they are all in.
    expected: Vec<u64>,
    /// When a point last came (for forgetting the state of series gone).
    seen: Millis,
    /// How its value is made (presets for one field differ by sender).
    combine: Combine,
    /// What makes the field for this host: a metric of its name (which no
    /// preset then feeds), or a preset (which another no longer feeds).
    maker: Option<Maker>,
    /// The batch that last changed it.
    batch: u64,
    /// Increases that came for an interval already stored, by selector
    /// (0, and 1 for the rest): added to the next interval stored.
    carry: [f64; 2],
    carried: bool,
}

impl FieldState {
    fn new(field: Name) -> Self {
        FieldState {
            field,
            bucket: None,
            pending: FxHashMap::default(),
            done: None,
            expected: Vec::new(),
            seen: 0,
            combine: Combine::Sum,
            maker: None,
            batch: 0,
            carry: [0.0; 2],
            carried: false,
        }
    }
}

/// What makes a field for a host, when a metric and presets could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Maker {
    Own,
    Preset(&'static str),
}

/// Turns points into samples, remembering counters' totals and which
/// intervals are done (module docs).
#[derive(Debug, Default)]
pub struct Translator {
    totals: FxHashMap<u64, Total>,
    hosts: FxHashMap<Name, HostFields>,
    /// When the state of series gone was last forgotten.
    forgotten_at: Millis,
    /// Counts the batches: a total or field whose `batch` is this one was
    /// saved for its undo already.
    batch: u64,
}

/// A field a point feeds: by name (passed through) or a derived field.
#[derive(Clone, Copy)]
enum Feeds<'m> {
    Own,
    Derived(&'m Derived, u8),
}

impl Feeds<'_> {
    fn field<'a>(&'a self, point: &'a Point) -> &'a str {
        match self {
            Feeds::Own => &point.metric,
            Feeds::Derived(derived, _) => &derived.field,
        }
    }
}

/// How long the state of a series or field that no point came for is kept.
pub const FORGET_AFTER: Millis = 3_600_000;

/// How often that state is looked through (a pass over all of it).
const FORGET_EVERY: Millis = 60_000;

impl Translator {
    /// How many counters' totals are remembered.
    pub fn series(&self) -> usize {
        self.totals.len()
    }

    /// Translates `batch` at `now`: samples to store, and the state to
    /// [`commit`](Self::commit) once they are stored, or
    /// [`rollback`](Self::rollback) if they are not. `max_future` is how far
    /// ahead of `now` a point may be.
    pub fn translate(
        &mut self,
        mapping: &Mapping,
        batch: &Batch,
        now: Millis,
        max_future: Millis,
    ) -> Translation {
        let mut out = Translation::default();
        let interval = mapping.interval.max(1);
        self.batch += 1;
        let batch_number = self.batch;
        // Oldest first, so that totals and intervals move forward.
        let mut order: Vec<&Point> = batch.points.iter().collect();
        order.sort_by_key(|point| point.ts);
        let mut emitted: Vec<(Name, Millis, Name, f64)> = Vec::new();
        let mut feeds: Vec<Feeds> = Vec::new();
        for point in order {
            if is_stale_marker(point.value) {
                out.skipped += 1;
                continue;
            }
            let host = match &batch.host {
                Some(host) => host.as_str(),
                None => match mapping
                    .host_labels
                    .iter()
                    .find_map(|name| point.label(name).filter(|value| !value.is_empty()))
                {
                    Some(host) => host,
                    None => {
                        out.refused.add(
                            || {
                                format!(
                                    " (metric {:?}): none of the labels {:?} names a host",
                                    point.metric, mapping.host_labels
                                )
                            },
                            "no host",
                        );
                        continue;
                    }
                },
            };
            if let Err((kind, reason)) = check(point, host, now, max_future) {
                out.refused.add(|| reason, kind);
                continue;
            }
            feeds_of(mapping, point, &mut feeds);
            if feeds.is_empty() {
                out.skipped += 1;
                continue;
            }
            if let Some(Feeds::Own) = feeds.first()
                && !is_valid_field_name(&point.metric)
            {
                out.refused.add(
                    || {
                        format!(
                            " {:?}: a field name is 1 to 128 of A-Z a-z 0-9 _ . : - (map it to \
                             a valid name with ingest.fields)",
                            point.metric
                        )
                    },
                    "not a valid field name",
                );
                continue;
            }
            let series = series_id(host, point);
            let bucket = point.ts - point.ts.rem_euclid(interval);
            let late = self.hosts.get(host).is_some_and(|fields| {
                feeds.iter().all(|feed| {
                    fields
                        .fields
                        .get(feed.field(point))
                        .is_some_and(|state| state.done.is_some_and(|done| bucket <= done))
                })
            });
            if late && point.kind != Kind::Delta {
                // Every field it feeds has this interval stored: a late part
                // of it only tells which series make the field next time. A
                // counter's total stays, so that its increase goes to the
                // next interval (a delta is carried there below); a counter
                // seen for the first time takes it as its baseline.
                if let Kind::Cumulative { start } = point.kind
                    && !self.totals.contains_key(&series)
                    && self.totals.len() < mapping.max_series
                {
                    out.undo.totals.push((series, None));
                    let total = Total::of(point, start, now, batch_number, batch);
                    self.totals.insert(series, total);
                }
                for feed in &feeds {
                    let field = feed.field(point);
                    let stored = self.hosts.get(host).is_some_and(|fields| {
                        fields
                            .fields
                            .get(field)
                            .is_some_and(|state| state.done == Some(bucket))
                    });
                    if stored {
                        let state = self.field_state(&mut out.undo, host, field);
                        if let Err(at) = state.expected.binary_search(&series) {
                            state.expected.insert(at, series);
                        }
                    }
                }
                out.skipped += 1;
                continue;
            }
            // The value this point adds: a counter's increase, if known.
            let value = match point.kind {
                Kind::Gauge | Kind::Delta => Some(point.value),
                Kind::Cumulative { start } => {
                    let before = self.totals.get(&series).copied();
                    if before.is_none() && self.totals.len() >= mapping.max_series {
                        out.refused.add(
                            || {
                                format!(
                                    " ({}): alertd remembers the totals of {} counters \
                                     (ingest.maxSeries)",
                                    point.metric, mapping.max_series
                                )
                            },
                            "too many series",
                        );
                        continue;
                    }
                    if before.is_some_and(|before| point.ts <= before.ts) {
                        // Sent again, or out of order: counted already.
                        out.skipped += 1;
                        continue;
                    }
                    let increase = before.map(|before| {
                        let restarted = point.value < before.value
                            || (start.is_some() && start != before.start);
                        if restarted {
                            // A reset: the counter counted from zero since.
                            point.value
                        } else {
                            point.value - before.value
                        }
                    });
                    if before.is_none_or(|before| before.batch != batch_number) {
                        out.undo.totals.push((series, before));
                    }
                    let total = Total::of(point, start, now, batch_number, batch);
                    self.totals.insert(series, total);
                    increase
                }
            };
            let increase = point.kind != Kind::Gauge;
            // A counter's first total sets its baseline: taken, though it
            // adds nothing yet.
            let mut took = increase && value.is_none();
            for feed in &feeds {
                let (field, role, combine) = match *feed {
                    Feeds::Own => (&*point.metric, 0, Combine::Sum),
                    Feeds::Derived(derived, role) => {
                        (derived.field.as_str(), role, derived.combine)
                    }
                };
                let host_name = self.host_name(host);
                let state = self.field_state(&mut out.undo, host, field);
                match (*feed, state.maker) {
                    // The host's own values, or the first preset's, make it.
                    (Feeds::Derived(_, _), Some(Maker::Own)) => continue,
                    (Feeds::Derived(derived, _), Some(Maker::Preset(first)))
                        if derived.preset != Some(first) =>
                    {
                        continue;
                    }
                    (Feeds::Derived(derived, _), None) => {
                        state.maker = derived.preset.map(Maker::Preset);
                    }
                    (Feeds::Own, Some(Maker::Preset(_))) => {
                        // The host's own values replace a preset's from now on.
                        state.maker = Some(Maker::Own);
                        state.pending.clear();
                        state.expected.clear();
                        state.carry = [0.0; 2];
                        state.carried = false;
                        state.bucket = None;
                        state.combine = Combine::Sum;
                    }
                    (Feeds::Own, _) => state.maker = Some(Maker::Own),
                    _ => {}
                }
                state.seen = state.seen.max(now);
                if state.done.is_some_and(|done| bucket <= done) {
                    // This field has the interval stored: the series makes it
                    // next time, and an increase goes to the next interval.
                    if state.done == Some(bucket)
                        && let Err(at) = state.expected.binary_search(&series)
                    {
                        state.expected.insert(at, series);
                    }
                    if increase && let Some(value) = value {
                        state.carry[usize::from(role).min(1)] += value;
                        state.carried = true;
                        took = true;
                    }
                    continue;
                }
                if let Some(open) = state.bucket.filter(|&open| open < bucket) {
                    // A newer interval begins: the one gathered is as
                    // complete as it will be.
                    if let Some(value) = finish(state) {
                        emitted.push((host_name.clone(), open, state.field.clone(), value));
                    }
                }
                if state.bucket.is_none() {
                    state.bucket = Some(bucket);
                    state.combine = combine;
                }
                if state.bucket.is_some_and(|open| open > bucket) {
                    // Older than the interval being gathered (another
                    // series is ahead): an increase joins that interval, a
                    // gauge's value is too late.
                    if increase && let Some(value) = value {
                        let entry = state.pending.entry(series).or_insert((role, None));
                        entry.1 = Some(entry.1.unwrap_or(0.0) + value);
                        took = true;
                    }
                    continue;
                }
                took = true;
                let entry = state.pending.entry(series).or_insert((role, None));
                entry.1 = match (entry.1, value) {
                    // Two points of one series in one interval: a gauge's
                    // latest counts, increases add up.
                    (Some(old), Some(new)) if point.kind != Kind::Gauge => Some(old + new),
                    (old, None) => old,
                    (_, new) => new,
                };
            }
            if took {
                out.taken += 1;
            } else {
                out.skipped += 1;
            }
        }
        // Intervals now complete: every series of the last stored one is in.
        for (host, field, _) in &out.undo.fields {
            let Some(state) = self
                .hosts
                .get_mut(host)
                .and_then(|fields| fields.fields.get_mut(field))
            else {
                continue;
            };
            let Some(bucket) = state.bucket else {
                continue;
            };
            let complete = state
                .expected
                .iter()
                .all(|series| state.pending.contains_key(series));
            if complete && let Some(value) = finish(state) {
                emitted.push((host.clone(), bucket, field.clone(), value));
            }
        }
        out.samples = samples_of(emitted);
        out
    }

    /// The name of `host`, which the state holds (made if new).
    fn host_name(&mut self, host: &str) -> Name {
        match self.hosts.get(host) {
            Some(fields) => fields.name.clone(),
            None => {
                let name: Name = host.into();
                self.hosts.insert(
                    name.clone(),
                    HostFields {
                        name: name.clone(),
                        fields: FxHashMap::default(),
                    },
                );
                name
            }
        }
    }

    /// `host`'s `field`, made if new; saved for the batch's undo the first
    /// time the batch touches it.
    fn field_state(&mut self, undo: &mut Undo, host: &str, field: &str) -> &mut FieldState {
        let host_name = self.host_name(host);
        let batch = self.batch;
        let fields = &mut self
            .hosts
            .get_mut(host)
            .expect("host_name made the host")
            .fields;
        if !fields.contains_key(field) {
            let name: Name = field.into();
            undo.fields.push((host_name, name.clone(), None));
            let mut state = FieldState::new(name.clone());
            state.batch = batch;
            fields.insert(name, state);
        } else if let Some(state) = fields.get_mut(field)
            && state.batch != batch
        {
            undo.fields
                .push((host_name, state.field.clone(), Some(state.clone())));
            state.batch = batch;
        }
        fields.get_mut(field).expect("made above")
    }

    /// Keeps what `translation` changed: its samples are stored.
    pub fn commit(&mut self, translation: &mut Translation, now: Millis) {
        translation.undo = Undo::default();
        if now - self.forgotten_at >= FORGET_EVERY {
            self.forgotten_at = now;
            self.forget_before(now - FORGET_AFTER);
        }
    }

    /// Forgets the totals of scraped counters: another node scraped them
    /// meanwhile (and stored their increases), so that the next scrape of
    /// each is a new baseline rather than an increase counted twice.
    pub fn forget_scraped(&mut self) {
        self.totals.retain(|_, total| !total.scraped);
    }

    /// Puts back what `translation` changed: its samples were not stored.
    pub fn rollback(&mut self, translation: &mut Translation) {
        let undo = std::mem::take(&mut translation.undo);
        for (series, before) in undo.totals {
            match before {
                Some(total) => self.totals.insert(series, total),
                None => self.totals.remove(&series),
            };
        }
        for (host, field, before) in undo.fields {
            let Some(fields) = self.hosts.get_mut(&host) else {
                continue;
            };
            match before {
                Some(state) => {
                    fields.fields.insert(field, state);
                }
                None => {
                    fields.fields.remove(&field);
                    if fields.fields.is_empty() {
                        self.hosts.remove(&host);
                    }
                }
            }
        }
    }

    /// Forgets the counters and fields no point came for since `before`.
    fn forget_before(&mut self, before: Millis) {
        self.totals.retain(|_, total| total.seen >= before);
        self.hosts.retain(|_, host| {
            host.fields.retain(|_, state| state.seen >= before);
            !host.fields.is_empty()
        });
    }
}

/// Why `point` (of `host`) cannot be taken at `now`: the kind of reason
/// and its details.
fn check(
    point: &Point,
    host: &str,
    now: Millis,
    max_future: Millis,
) -> Result<(), (&'static str, String)> {
    if host.len() > MAX_HOST_NAME_LEN {
        return Err((
            "host name too long",
            format!(" ({} bytes): at most {MAX_HOST_NAME_LEN}", host.len()),
        ));
    }
    if host.chars().any(char::is_control) {
        return Err((
            "host name with control characters",
            format!(" ({host:?}): a host name has none"),
        ));
    }
    if !point.value.is_finite() {
        return Err((
            "not a finite number",
            format!(" (metric {:?}, {})", point.metric, point.value),
        ));
    }
    if point.ts < MIN_TS || point.ts > MAX_TIMESTAMP {
        return Err((
            "timestamp out of range",
            format!(
                " (metric {:?}, {} ms): before 2001-09-09 or past year 9999",
                point.metric, point.ts
            ),
        ));
    }
    if point.ts > now.saturating_add(max_future) {
        return Err((
            "timestamp in the future",
            format!(
                " (metric {:?}): {} ms ahead of this node's clock, more than \
                 server.maxFutureSkew",
                point.metric,
                point.ts - now
            ),
        ));
    }
    Ok(())
}

/// Prometheus marks a series that ended with this NaN.
fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == 0x7ff0_0000_0000_0002
}

/// The fields `point` feeds: its own name (if kept and no derived field is
/// so named), and each derived field whose selectors take it.
fn feeds_of<'m>(mapping: &'m Mapping, point: &Point, found: &mut Vec<Feeds<'m>>) {
    found.clear();
    let own = !is_distribution_part(point)
        && mapping
            .keep
            .iter()
            .any(|pattern| glob(pattern, &point.metric))
        && !mapping
            .derived
            .iter()
            .any(|derived| derived.preset.is_none() && *derived.field == *point.metric);
    if own {
        found.push(Feeds::Own);
    }
    for derived in &mapping.derived {
        if let Some(role) = derived.inputs.iter().position(|input| input.matches(point)) {
            found.push(Feeds::Derived(derived, role as u8));
        }
    }
}

/// A histogram bucket's count (`_bucket` with `le`) or a summary's quantile
/// (with `quantile`): meaningless summed over their buckets or quantiles,
/// so never passed through as they are.
fn is_distribution_part(point: &Point) -> bool {
    point.label("quantile").is_some()
        || (point.metric.ends_with("_bucket") && point.label("le").is_some())
}

/// Closes the interval gathered in `state`: its value, if it has one.
fn finish(state: &mut FieldState) -> Option<f64> {
    let bucket = state.bucket.take()?;
    let pending = std::mem::take(&mut state.pending);
    state.done = Some(bucket);
    state.expected = pending.keys().copied().collect();
    state.expected.sort_unstable();
    let carry = std::mem::take(&mut state.carry);
    let carried = std::mem::take(&mut state.carried);
    let value = combine(state.combine, &pending, carry, carried);
    if value.is_none() {
        // Nothing to store for this interval: what was carried waits for
        // the next one.
        state.carry = carry;
        state.carried = carried;
    }
    value
}

/// An interval's value from its series and what was carried into it.
fn combine(
    how: Combine,
    pending: &FxHashMap<u64, (u8, Option<f64>)>,
    carry: [f64; 2],
    carried: bool,
) -> Option<f64> {
    let mut sums = carry;
    let mut any = carried;
    for (role, value) in pending.values() {
        if let Some(value) = value {
            any = true;
            if let Some(sum) = sums.get_mut(usize::from(*role).min(1)) {
                *sum += value;
            }
        }
    }
    if !any {
        return None;
    }
    let value = match how {
        Combine::Sum => sums[0] + sums[1],
        Combine::BusyPercent => {
            let whole = sums[0] + sums[1];
            if whole <= 0.0 {
                return None;
            }
            two_decimals(100.0 * (1.0 - sums[0] / whole))
        }
        Combine::UsedPercent => {
            if sums[1] <= 0.0 {
                return None;
            }
            two_decimals(100.0 * (1.0 - sums[0] / sums[1]))
        }
        Combine::Kibibytes => (sums[0] / 1024.0).round(),
    };
    value.is_finite().then_some(value)
}

fn two_decimals(value: f64) -> f64 {
    (value.clamp(0.0, 100.0) * 100.0).round() / 100.0
}

/// A series' identity: its host, metric and labels, in any order.
fn series_id(host: &str, point: &Point) -> u64 {
    // Each label hashed on its own and the hashes added: the order of the
    // labels makes no difference, and nothing is allocated.
    let labels = point.labels.iter().fold(0u64, |sum, (name, value)| {
        let mut hasher = FxHasher::default();
        name.hash(&mut hasher);
        value.hash(&mut hasher);
        sum.wrapping_add(mix(hasher.finish()))
    });
    let mut hasher = FxHasher::default();
    host.hash(&mut hasher);
    point.metric.hash(&mut hasher);
    labels.hash(&mut hasher);
    mix(hasher.finish())
}

/// A 64-bit finalizer (SplitMix64's): every bit of the input moves every
/// bit of the output, which FxHash alone does not do.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The fields done, one sample per host and interval.
fn samples_of(mut emitted: Vec<(Name, Millis, Name, f64)>) -> Vec<Sample> {
    // Stable: a host's fields stay in the order they were done.
    emitted.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut samples: Vec<Sample> = Vec::new();
    for (host, ts, field, value) in emitted {
        match samples.last_mut() {
            Some(last) if *last.host == *host && last.ts == ts => {
                last.metrics.push((field.to_string(), value))
            }
            _ => samples.push(Sample {
                host: host.to_string(),
                ts,
                metrics: vec![(field.to_string(), value)],
            }),
        }
    }
    samples
}
