//! A running sum that values can be added to and removed from without drift.
//!
//! A plain `f64` running sum accumulates rounding errors as values enter and
//! leave a sliding window: after `+0.1` and `-0.1` it may not be 0 again, and a
//! rule `sum <= 0` over a window that has emptied would never fire. Here every
//! value of magnitude below 2^36 whose binary fraction ends at or above 2^-64
//! (all integers, and decimals such as 12.345 or 0.001) is held exactly as a
//! 128-bit fixed-point integer, so the sum is exact whatever the history and is
//! rounded once when read. Values outside that range (rare in metrics: below
//! about 1e-4 with a long fraction, or above 6.8e10) go to `f64` side sums
//! that are reset to exactly 0 whenever their last value leaves; for integers
//! up to 2^53 those are exact as well.
//!
//! The side sum of large values is kept scaled down by 2^64 (exact: only the
//! exponent changes), so that no number of finite values makes it overflow:
//! the sum itself may still be past the largest `f64` (then it reads as an
//! infinity), but [`ExactSum::mean`] of finite values is always finite.

/// Bits after the binary point in the fixed-point part.
const FRACTION_BITS: i32 = 64;
/// Values with magnitude at or above 2^LIMIT_BITS use the `f64` side sum. With
/// at most 2^27 values in one window the fixed-point total cannot overflow.
const LIMIT_BITS: i32 = 36;
/// 2^-64 and 2^64: the scale of the fixed-point part and of the large side sum.
const DOWN: f64 = f64::from_bits(((1023 - FRACTION_BITS) as u64) << 52);
const UP: f64 = f64::from_bits(((1023 + FRACTION_BITS) as u64) << 52);

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExactSum {
    fixed: i128,
    /// Values below 2^LIMIT_BITS that the fixed-point part cannot hold.
    fine: Side,
    /// Values of at least 2^LIMIT_BITS, each multiplied by 2^-64.
    large: Side,
}

/// A plain `f64` sum that returns to exactly 0 when its last value leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Side {
    sum: f64,
    count: u32,
}

impl Side {
    #[inline]
    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    #[inline]
    fn remove(&mut self, value: f64) {
        self.count -= 1;
        self.sum = if self.count == 0 {
            0.0
        } else {
            self.sum - value
        };
    }
}

impl ExactSum {
    #[inline]
    pub fn add(&mut self, value: f64) {
        match to_fixed(value) {
            Some(fixed) => self.fixed = self.fixed.wrapping_add(fixed),
            None if value.abs() < UP_LIMIT => self.fine.add(value),
            None => self.large.add(value * DOWN),
        }
    }

    /// Removes a value that was added before.
    #[inline]
    pub fn remove(&mut self, value: f64) {
        match to_fixed(value) {
            Some(fixed) => self.fixed = self.fixed.wrapping_sub(fixed),
            None if value.abs() < UP_LIMIT => self.fine.remove(value),
            None => self.large.remove(value * DOWN),
        }
    }

    /// The sum, rounded once to the nearest `f64` when every value was held
    /// exactly; an infinity when it is past the largest `f64`.
    #[inline]
    pub fn value(&self) -> f64 {
        // i128 -> f64 rounds to nearest; scaling by a power of two is exact.
        let mut sum = self.fixed as f64 * DOWN;
        if self.fine.count > 0 {
            sum += self.fine.sum;
        }
        if self.large.count > 0 {
            sum += self.large.sum * UP;
        }
        sum
    }

    /// The mean of `count` values (at least one): the sum divided by
    /// `count`, finite whenever the values are, even where their sum is not.
    #[inline]
    pub fn mean(&self, count: u32) -> f64 {
        let count = f64::from(count);
        let sum = self.value();
        if sum.is_finite() {
            return sum / count;
        }
        // Divided before the large part is scaled back up. The side sum
        // rounds at each value that enters or leaves, so after such values
        // it can stand a little past what the window holds: the mean of
        // finite values is within the finite range, and is kept there.
        let mean = (self.fixed as f64 * DOWN + self.fine.sum) / count + self.large.sum / count * UP;
        mean.clamp(-f64::MAX, f64::MAX)
    }
}

/// The magnitude from which a value goes to the large side sum: 2^LIMIT_BITS.
const UP_LIMIT: f64 = (1u64 << LIMIT_BITS) as f64;

/// `value * 2^64` as an integer, when that is exact and small enough.
#[inline]
fn to_fixed(value: f64) -> Option<i128> {
    if value == 0.0 {
        return Some(0);
    }
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        return None; // subnormal: far below the fixed-point resolution
    }
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let exponent = biased - 1075; // value = ±mantissa * 2^exponent
    if exponent + 52 >= LIMIT_BITS {
        return None; // includes infinities and NaN
    }
    let shift = exponent + FRACTION_BITS;
    let magnitude = if shift >= 0 {
        i128::from(mantissa) << shift
    } else {
        let drop = -shift;
        if drop > 52 || mantissa & ((1u64 << drop) - 1) != 0 {
            return None;
        }
        i128::from(mantissa >> drop)
    };
    Some(if bits >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn converts_exactly_or_not_at_all() {
        assert_eq!(to_fixed(1.0), Some(1i128 << 64));
        assert_eq!(to_fixed(-2.5), Some(-(5i128 << 63)));
        assert_eq!(to_fixed(0.1).map(|f| f as f64 / 2f64.powi(64)), Some(0.1));
        assert_eq!(to_fixed(2f64.powi(36)), None);
        assert_eq!(to_fixed(1e-30), None);
        assert_eq!(to_fixed(f64::MIN_POSITIVE / 2.0), None);
    }

    #[test]
    fn the_mean_of_finite_values_is_finite() {
        let mut sum = ExactSum::default();
        sum.add(1.7e308);
        sum.add(1e308);
        assert_eq!(sum.value(), f64::INFINITY);
        assert!((sum.mean(2) - 1.35e308).abs() <= 1.35e308 * f64::EPSILON);
        sum.add(-f64::MAX);
        sum.add(-f64::MAX);
        assert!(sum.value().is_finite());
        assert!(sum.mean(4).is_finite());
        // A sum that went past the largest number comes back when its
        // values leave.
        for v in [1.7e308, 1e308, -f64::MAX, -f64::MAX] {
            sum.remove(v);
        }
        sum.add(2.5);
        assert_eq!(sum.value(), 2.5);
    }

    /// Two values at the most negative leave a window that then holds two at
    /// the largest: the side sum, rounded at every step, ends past what the
    /// window holds, and its mean must still be a number.
    #[test]
    fn the_mean_stays_finite_after_large_values_leave() {
        let mut sum = ExactSum::default();
        // Found by hand against the service: the old values are a little
        // less than the largest double, which makes the side sum round.
        let old = -1.797693134862315e308;
        for v in [old, old, f64::MAX, f64::MAX] {
            sum.add(v);
        }
        sum.remove(old);
        sum.remove(old);
        let mean = sum.mean(2);
        assert!(mean.is_finite(), "{mean}");
        assert_eq!(mean, f64::MAX);
    }

    proptest! {
        /// Whatever entered and left, the mean of what is left is finite.
        #[test]
        fn the_mean_of_any_finite_window_is_finite(
            passed in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO, 0..20),
            kept in prop::collection::vec(prop::num::f64::NORMAL | prop::num::f64::ZERO, 1..20),
        ) {
            let mut sum = ExactSum::default();
            passed.iter().chain(&kept).for_each(|&v| sum.add(v));
            passed.iter().for_each(|&v| sum.remove(v));
            prop_assert!(sum.mean(kept.len() as u32).is_finite());
        }
    }

    #[test]
    fn returns_to_exactly_zero() {
        let mut sum = ExactSum::default();
        for v in [0.1, 0.2, 0.3, 1e-30, 1e20, 12.345] {
            sum.add(v);
        }
        for v in [0.1, 0.2, 0.3, 1e-30, 1e20, 12.345] {
            sum.remove(v);
        }
        assert_eq!(sum.value(), 0.0);
    }

    fn sum_of(values: &[f64]) -> ExactSum {
        let mut sum = ExactSum::default();
        values.iter().for_each(|&v| sum.add(v));
        sum
    }

    proptest! {
        /// A sliding window's sum depends only on what is in the window, not on
        /// what passed through it before.
        #[test]
        fn sum_has_no_history(
            passed in prop::collection::vec(-1e6f64..1e6, 0..50),
            kept in prop::collection::vec(-1e6f64..1e6, 0..50),
        ) {
            let mut sum = ExactSum::default();
            passed.iter().chain(&kept).for_each(|&v| sum.add(v));
            passed.iter().for_each(|&v| sum.remove(v));
            prop_assert_eq!(sum.value(), sum_of(&kept).value());
        }

        /// For integers the sum is the plain sum, exactly.
        #[test]
        fn integer_sums_are_exact(values in prop::collection::vec(-(1i64 << 40)..(1i64 << 40), 0..100)) {
            let floats: Vec<f64> = values.iter().map(|&v| v as f64).collect();
            prop_assert_eq!(sum_of(&floats).value(), values.iter().sum::<i64>() as f64);
        }
    }
}
