//! A host's retained samples ([`Ring`]) and one rule's rolling window over
//! them ([`Window`]).
//!
//! Samples are numbered by a sequence number (`Seq`) in timestamp order. A
//! window is the range `start..entered` of those numbers, where `entered` is
//! shared by all windows of the host (every sample with `ts <= t` has entered)
//! and `start` is the rule's own (every sample with `ts <= t - timeframe` has
//! left). Each sample enters and leaves a window once, and the aggregate is
//! kept up to date on the way: counts and sums as running totals, `min` and
//! `max` as monotonic deques of sequence numbers, `last` as the newest
//! sequence number that carries the field.

use std::collections::VecDeque;

use super::exact_sum::ExactSum;
use crate::config::Aggregation;
use crate::duration::Millis;

/// Sequence number of a sample within its host.
pub type Seq = u64;

/// The samples a host keeps: timestamps, and for each the values of the fields
/// rules use (row after row, `width` values each, NaN where a sample lacks the field).
#[derive(Debug, Default)]
pub struct Ring {
    /// Sequence number of `ts[0]`.
    base: Seq,
    ts: VecDeque<Millis>,
    values: VecDeque<f64>,
    width: usize,
}

impl Ring {
    pub fn new(width: usize) -> Self {
        Ring {
            width,
            ..Ring::default()
        }
    }

    /// One past the newest sequence number.
    #[inline]
    pub fn end(&self) -> Seq {
        self.base + self.ts.len() as Seq
    }

    pub fn base(&self) -> Seq {
        self.base
    }

    #[inline]
    pub fn ts(&self, seq: Seq) -> Millis {
        self.ts[(seq - self.base) as usize]
    }

    #[inline]
    pub fn value(&self, seq: Seq, slot: usize) -> f64 {
        self.values[(seq - self.base) as usize * self.width + slot]
    }

    /// Addresses of a sample's timestamp and of its row of values, for prefetching.
    pub fn locate(&self, seq: Seq) -> (*const Millis, *const f64) {
        let index = (seq - self.base) as usize;
        let row = if self.width == 0 {
            std::ptr::null()
        } else {
            &self.values[index * self.width] as *const f64
        };
        (&self.ts[index] as *const Millis, row)
    }

    /// Adds a sample, after every sample with `ts <= sample ts` (ties keep
    /// arrival order). Returns its sequence number; samples after it move up by one.
    pub fn insert(&mut self, ts: Millis, values: &[f64]) -> Seq {
        debug_assert_eq!(values.len(), self.width);
        self.reserve_row();
        if self.ts.back().is_none_or(|&newest| newest <= ts) {
            self.ts.push_back(ts);
            self.values.extend(values);
            return self.end() - 1;
        }
        let position = self.ts.partition_point(|&held| held <= ts);
        self.ts.insert(position, ts);
        for (offset, &value) in values.iter().enumerate() {
            self.values.insert(position * self.width + offset, value);
        }
        self.base + position as Seq
    }

    /// Makes room for one more sample. Rings grow by an eighth, not by
    /// doubling: they hold most of the engine's memory, and a full window
    /// would otherwise leave up to half of its allocation unused.
    fn reserve_row(&mut self) {
        if self.ts.len() == self.ts.capacity() {
            let rows = (self.ts.len() / 8).max(4);
            self.ts.reserve_exact(rows);
            self.values.reserve_exact(rows * self.width);
        }
    }

    /// Forgets every sample before `seq`.
    pub fn trim_before(&mut self, seq: Seq) {
        let count = seq.saturating_sub(self.base).min(self.ts.len() as Seq) as usize;
        if count == 0 {
            return;
        }
        self.ts.drain(..count);
        self.values.drain(..count * self.width);
        self.base += count as Seq;
        // A host whose traffic dropped should not keep the capacity of its busiest hour.
        if self.ts.capacity() > 64 && self.ts.len() < self.ts.capacity() / 4 {
            let rows = self.ts.len() + self.ts.len() / 8;
            self.ts.shrink_to(rows);
            self.values.shrink_to(rows * self.width);
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Bytes of memory held for samples.
    pub fn retained_bytes(&self) -> usize {
        (self.ts.capacity() + self.values.capacity()) * 8
    }
}

/// One rule's window over one host's samples, with its running aggregates.
#[derive(Debug, Clone, Default)]
pub struct Window {
    /// First sequence number still in the window.
    pub start: Seq,
    /// Samples in the window that carry the field.
    count: u32,
    /// The value of the newest of them (meaningful when `count > 0`).
    last_value: f64,
    /// Their sum, for `sum` and `avg`.
    sum: ExactSum,
}

/// For a `min` (`max`) window: the samples (sequence number and value) that
/// may still become the window's minimum (maximum), oldest first, values
/// increasing (decreasing). The values are kept here so that neither entering
/// nor reading touches older samples in the ring. Kept beside the
/// [`Window`]s rather than in them, so that a window fits in one cache line.
pub type Extrema = VecDeque<(Seq, f64)>;

impl Window {
    pub fn starting_at(start: Seq) -> Self {
        Window {
            start,
            ..Window::default()
        }
    }

    /// Brings the sample `seq` into the window.
    #[inline]
    pub fn enter(
        &mut self,
        aggregation: Aggregation,
        ring: &Ring,
        slot: usize,
        seq: Seq,
        extrema: &mut Extrema,
    ) {
        let value = ring.value(seq, slot);
        if value.is_nan() {
            return; // the sample lacks this field
        }
        self.count += 1;
        self.last_value = value;
        match aggregation {
            Aggregation::Sum | Aggregation::Avg => self.sum.add(value),
            Aggregation::Min => {
                while extrema.back().is_some_and(|&(_, held)| held >= value) {
                    extrema.pop_back();
                }
                extrema.push_back((seq, value));
            }
            Aggregation::Max => {
                while extrema.back().is_some_and(|&(_, held)| held <= value) {
                    extrema.pop_back();
                }
                extrema.push_back((seq, value));
            }
            Aggregation::Last | Aggregation::Count => {}
        }
    }

    /// Lets every sample with `ts <= horizon` before `entered` leave the window.
    #[inline]
    pub fn leave_until(
        &mut self,
        aggregation: Aggregation,
        ring: &Ring,
        slot: usize,
        entered: Seq,
        horizon: Millis,
        extrema: &mut Extrema,
    ) {
        while self.start < entered && ring.ts(self.start) <= horizon {
            let seq = self.start;
            self.start += 1;
            let value = ring.value(seq, slot);
            if value.is_nan() {
                continue;
            }
            self.count -= 1;
            match aggregation {
                Aggregation::Sum | Aggregation::Avg => self.sum.remove(value),
                Aggregation::Min | Aggregation::Max => {
                    if extrema.front().is_some_and(|&(front, _)| front == seq) {
                        extrema.pop_front();
                    }
                }
                Aggregation::Last | Aggregation::Count => {}
            }
        }
    }

    /// The aggregate over the window; `None` where the SPEC says it has no value.
    #[inline]
    pub fn aggregate(&self, aggregation: Aggregation, extrema: &Extrema) -> Option<f64> {
        match aggregation {
            Aggregation::Count => Some(f64::from(self.count)),
            Aggregation::Sum => Some(self.sum.value()),
            _ if self.count == 0 => None,
            Aggregation::Avg => Some(self.sum.value() / f64::from(self.count)),
            Aggregation::Last => Some(self.last_value),
            Aggregation::Min | Aggregation::Max => extrema.front().map(|&(_, value)| value),
        }
    }

    /// Samples in the window that carry the field.
    pub fn count(&self) -> u32 {
        self.count
    }
}
