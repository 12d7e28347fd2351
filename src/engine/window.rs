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

    /// Adds a sample, after every sample with `ts <= sample ts` (ties keep
    /// arrival order). Returns its sequence number; samples after it move up by one.
    pub fn insert(&mut self, ts: Millis, values: &[f64]) -> Seq {
        debug_assert_eq!(values.len(), self.width);
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
            self.ts.shrink_to(self.ts.len() * 2);
            self.values.shrink_to(self.values.len() * 2);
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
    /// The newest of them (meaningful when `count > 0`).
    last: Seq,
    /// Their sum, for `sum` and `avg`.
    sum: ExactSum,
    /// For `min` (`max`): the sequence numbers of the samples that may still
    /// become the window's minimum (maximum), oldest first, values increasing
    /// (decreasing).
    extrema: VecDeque<Seq>,
}

impl Window {
    pub fn starting_at(start: Seq) -> Self {
        Window {
            start,
            ..Window::default()
        }
    }

    /// Brings the sample `seq` into the window.
    #[inline]
    pub fn enter(&mut self, aggregation: Aggregation, ring: &Ring, slot: usize, seq: Seq) {
        let value = ring.value(seq, slot);
        if value.is_nan() {
            return; // the sample lacks this field
        }
        self.count += 1;
        self.last = seq;
        match aggregation {
            Aggregation::Sum | Aggregation::Avg => self.sum.add(value),
            Aggregation::Min => {
                while self
                    .extrema
                    .back()
                    .is_some_and(|&s| ring.value(s, slot) >= value)
                {
                    self.extrema.pop_back();
                }
                self.extrema.push_back(seq);
            }
            Aggregation::Max => {
                while self
                    .extrema
                    .back()
                    .is_some_and(|&s| ring.value(s, slot) <= value)
                {
                    self.extrema.pop_back();
                }
                self.extrema.push_back(seq);
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
                    if self.extrema.front() == Some(&seq) {
                        self.extrema.pop_front();
                    }
                }
                Aggregation::Last | Aggregation::Count => {}
            }
        }
    }

    /// The aggregate over the window; `None` where the SPEC says it has no value.
    #[inline]
    pub fn aggregate(&self, aggregation: Aggregation, ring: &Ring, slot: usize) -> Option<f64> {
        match aggregation {
            Aggregation::Count => Some(f64::from(self.count)),
            Aggregation::Sum => Some(self.sum.value()),
            _ if self.count == 0 => None,
            Aggregation::Avg => Some(self.sum.value() / f64::from(self.count)),
            Aggregation::Last => Some(ring.value(self.last, slot)),
            Aggregation::Min | Aggregation::Max => {
                self.extrema.front().map(|&s| ring.value(s, slot))
            }
        }
    }

    /// Samples in the window that carry the field.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn retained_bytes(&self) -> usize {
        self.extrema.capacity() * std::mem::size_of::<Seq>()
    }
}
