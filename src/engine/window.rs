//! A host's retained samples ([`Ring`]) and one rule's rolling window over
//! them ([`Window`]).
//!
//! Samples are numbered by a sequence number (`Seq`) in timestamp order. A
//! window is the range `start..entered` of those numbers, where `entered` is
//! shared by all windows of the host (every sample with `ts <= t` has entered)
//! and `start` is the rule's own (every sample with `ts <= t - timeframe` has
//! left). Each sample enters and leaves a window once, and the aggregate is
//! kept up to date on the way: counts and sums as running totals, `min` and
//! `max` as monotonic deques, `last` as the newest value.
//!
//! A tick over many hosts is bound by memory, not arithmetic, so the layout
//! keeps what a tick touches small: a window is 24 bytes, sums and deques
//! exist only for the rules that need them ([`Running`]), and a sample's
//! timestamp sits in the same row as its values.

use std::collections::VecDeque;

use super::exact_sum::ExactSum;
use crate::duration::Millis;

/// Sequence number of a sample within its host.
pub type Seq = u64;

/// The samples a host keeps, one row each: the timestamp, then the values of
/// the fields rules use (`width` of them, NaN where the sample lacks the
/// field), all stored as 64-bit words.
#[derive(Debug, Default)]
pub struct Ring {
    /// Sequence number of the first row.
    base: Seq,
    rows: VecDeque<u64>,
    width: usize,
}

impl Ring {
    pub fn new(width: usize) -> Self {
        Ring {
            width,
            ..Ring::default()
        }
    }

    #[inline]
    fn stride(&self) -> usize {
        self.width + 1
    }

    /// One past the newest sequence number.
    #[inline]
    pub fn end(&self) -> Seq {
        self.base + self.len() as Seq
    }

    pub fn base(&self) -> Seq {
        self.base
    }

    /// Number of samples held.
    #[inline]
    pub fn len(&self) -> usize {
        self.rows.len() / self.stride()
    }

    pub fn width(&self) -> usize {
        self.width
    }

    #[inline]
    pub fn ts(&self, seq: Seq) -> Millis {
        self.rows[(seq - self.base) as usize * self.stride()] as Millis
    }

    #[inline]
    pub fn value(&self, seq: Seq, slot: usize) -> f64 {
        f64::from_bits(self.rows[(seq - self.base) as usize * self.stride() + 1 + slot])
    }

    /// Address of a sample's row, for prefetching.
    pub fn locate(&self, seq: Seq) -> *const u64 {
        &self.rows[(seq - self.base) as usize * self.stride()]
    }

    /// Adds a sample, after every sample with `ts <= sample ts` (ties keep
    /// arrival order). Returns its sequence number; samples after it move up by one.
    pub fn insert(&mut self, ts: Millis, values: &[f64]) -> Seq {
        debug_assert_eq!(values.len(), self.width);
        self.reserve_row();
        let row = std::iter::once(ts as u64).chain(values.iter().map(|v| v.to_bits()));
        let len = self.len();
        if len == 0 || self.ts(self.end() - 1) <= ts {
            self.rows.extend(row);
            return self.end() - 1;
        }
        let position = partition_point(len, |index| self.ts(self.base + index as Seq) <= ts);
        for (offset, word) in row.enumerate() {
            self.rows.insert(position * self.stride() + offset, word);
        }
        self.base + position as Seq
    }

    /// Makes room for one more sample. Rings grow by an eighth, not by
    /// doubling: they hold most of the engine's memory, and a full window
    /// would otherwise leave up to half of its allocation unused.
    fn reserve_row(&mut self) {
        if self.rows.len() + self.stride() > self.rows.capacity() {
            let rows = (self.len() / 8).max(4);
            self.rows.reserve_exact(rows * self.stride());
        }
    }

    /// Forgets every sample before `seq`.
    pub fn trim_before(&mut self, seq: Seq) {
        let count = seq.saturating_sub(self.base).min(self.len() as Seq) as usize;
        if count == 0 {
            return;
        }
        self.rows.drain(..count * self.stride());
        self.base += count as Seq;
        // A host whose traffic dropped should not keep the capacity of its busiest hour.
        let words = self.rows.len();
        if self.rows.capacity() > 64 * self.stride() && words < self.rows.capacity() / 4 {
            self.rows.shrink_to(words + words / 8);
        }
    }

    /// Bytes of memory held for samples.
    pub fn retained_bytes(&self) -> usize {
        self.rows.capacity() * 8
    }
}

/// The first index in `0..len` for which `is_before` is false (it must be
/// true for a prefix and false after).
fn partition_point(len: usize, is_before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let middle = (low + high) / 2;
        if is_before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

/// For a `min` (`max`) window: the samples (sequence number and value) that
/// may still become the window's minimum (maximum), oldest first, values
/// increasing (decreasing).
pub type Extrema = VecDeque<(Seq, f64)>;

/// The running state a window keeps beyond its count, by aggregation.
pub enum Running<'s> {
    /// `count` and `last` need nothing more.
    Plain,
    /// `sum` and `avg`.
    Sum(&'s mut ExactSum),
    Min(&'s mut Extrema),
    Max(&'s mut Extrema),
}

/// One rule's window over one host's samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// First sequence number still in the window.
    pub start: Seq,
    /// The value of the newest sample in the window that carries the field
    /// (meaningful when `count > 0`).
    last_value: f64,
    /// Samples in the window that carry the field.
    count: u32,
    /// Whether the (rule, host) pair has an open incident: kept here so that
    /// a tick reads the pair's alarm only when something changes.
    pub open: bool,
}

impl Window {
    /// An empty window starting at `start`, keeping the open flag.
    pub fn restart_at(&mut self, start: Seq) {
        *self = Window {
            start,
            open: self.open,
            ..Window::default()
        };
    }

    /// Brings the sample `seq` into the window.
    #[inline]
    pub fn enter(&mut self, ring: &Ring, slot: usize, seq: Seq, running: &mut Running<'_>) {
        let value = ring.value(seq, slot);
        if value.is_nan() {
            return; // the sample lacks this field
        }
        self.count += 1;
        self.last_value = value;
        match running {
            Running::Plain => {}
            Running::Sum(sum) => sum.add(value),
            Running::Min(extrema) => {
                while extrema.back().is_some_and(|&(_, held)| held >= value) {
                    extrema.pop_back();
                }
                extrema.push_back((seq, value));
            }
            Running::Max(extrema) => {
                while extrema.back().is_some_and(|&(_, held)| held <= value) {
                    extrema.pop_back();
                }
                extrema.push_back((seq, value));
            }
        }
    }

    /// Lets every sample with `ts <= horizon` before `entered` leave the window.
    #[inline]
    pub fn leave_until(
        &mut self,
        ring: &Ring,
        slot: usize,
        entered: Seq,
        horizon: Millis,
        running: &mut Running<'_>,
    ) {
        while self.start < entered && ring.ts(self.start) <= horizon {
            let seq = self.start;
            self.start += 1;
            let value = ring.value(seq, slot);
            if value.is_nan() {
                continue;
            }
            self.count -= 1;
            match running {
                Running::Plain => {}
                Running::Sum(sum) => sum.remove(value),
                Running::Min(extrema) | Running::Max(extrema) => {
                    if extrema.front().is_some_and(|&(front, _)| front == seq) {
                        extrema.pop_front();
                    }
                }
            }
        }
    }

    /// The value of the newest sample in the window that carries the field.
    pub fn last_value(&self) -> Option<f64> {
        (self.count > 0).then_some(self.last_value)
    }

    /// Samples in the window that carry the field.
    pub fn count(&self) -> u32 {
        self.count
    }
}
