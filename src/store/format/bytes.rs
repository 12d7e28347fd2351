//! Byte-level pieces of the stored sample formats ([`batch`](super::batch)
//! and [`block`](super::block)): varints, zigzag integers, bit-packed
//! integers of a fixed width, and a reader that checks every step, so that
//! damaged bytes give an error and never a panic.

use crate::store::StoreError;

/// What a reader reports when the bytes end early or make no sense.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a stored sample {what} cannot be decoded"))
}

/// Maps signed integers to unsigned ones, small magnitudes to small numbers.
pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Appends `value` as a LEB128 varint (1 byte per 7 bits).
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

/// Field names that version 2 of the block and rollup formats writes as a
/// number: the built-in fields and the Botpress feed's criticals, which
/// nearly every block holds. Frozen: a name's place here is its code in
/// every row stored since, so names are only ever added at the end.
pub(crate) const KNOWN_NAMES: [&str; 11] = [
    "cpu.usage",
    "mem.usage",
    "mem.free",
    "requests.count",
    "requests.latency_sum",
    "requests.latency_avg",
    "eventsIn.count",
    "eventsOut.count",
    "warnings.count",
    "errors.count",
    "criticals.count",
];

/// Appends a field name (format version 2): one varint, odd for the
/// [`KNOWN_NAMES`] entry `(code - 1) / 2`, even for `2 * len` followed by
/// the name's bytes.
pub(crate) fn put_name(out: &mut Vec<u8>, name: &str) {
    match KNOWN_NAMES.iter().position(|known| *known == name) {
        Some(place) => put_varint(out, place as u64 * 2 + 1),
        None => {
            put_varint(out, name.len() as u64 * 2);
            out.extend_from_slice(name.as_bytes());
        }
    }
}

/// The bits needed for `value` (0 for 0).
pub(crate) fn width(value: u64) -> u32 {
    64 - value.leading_zeros()
}

/// Appends `values`, each in `width` bits, least significant bit first.
pub(crate) fn put_packed(out: &mut Vec<u8>, values: &[u64], width: u32) {
    if width == 0 {
        return;
    }
    let mut pending: u128 = 0;
    let mut bits = 0u32;
    for &value in values {
        pending |= u128::from(value) << bits;
        bits += width;
        while bits >= 8 {
            out.push(pending as u8);
            pending >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(pending as u8);
    }
}

/// The bytes that [`put_packed`] writes for `count` values of `width` bits.
pub(crate) fn packed_len(count: usize, width: u32) -> Option<usize> {
    count
        .checked_mul(width as usize)?
        .checked_add(7)
        .map(|bits| bits / 8)
}

/// Reads values written by [`put_packed`], one after the other.
#[derive(Debug, Clone)]
pub(crate) struct Packed<'a> {
    bytes: &'a [u8],
    width: u32,
    /// The next value's first bit.
    bit: usize,
}

impl<'a> Packed<'a> {
    /// `bytes` must be [`packed_len`] long for the values read.
    pub fn new(bytes: &'a [u8], width: u32) -> Self {
        Packed {
            bytes,
            width,
            bit: 0,
        }
    }

    #[inline]
    pub fn next(&mut self) -> Result<u64, StoreError> {
        let width = self.width as usize;
        if width == 0 {
            return Ok(0);
        }
        let (at, offset) = (self.bit / 8, self.bit % 8);
        if offset + width <= 64 {
            // One little-endian word from the value's first byte holds it
            // all: loaded at once (zeros past the end), not bit by bit.
            if (self.bit + width).div_ceil(8) > self.bytes.len() {
                return Err(corrupt("column"));
            }
            let word = match self.bytes.get(at..at + 8) {
                Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([0; 8])),
                None => {
                    let mut eight = [0u8; 8];
                    let rest = self.bytes.get(at..).unwrap_or_default();
                    eight[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(eight)
                }
            };
            self.bit += width;
            let value = word >> offset;
            return Ok(match width {
                64 => value,
                _ => value & ((1u64 << width) - 1),
            });
        }
        let mut value = 0u64;
        let mut got = 0usize;
        while got < width {
            let at = self.bit + got;
            let byte = *self.bytes.get(at / 8).ok_or_else(|| corrupt("column"))?;
            let offset = at % 8;
            let take = (8 - offset).min(width - got);
            let bits = (u64::from(byte) >> offset) & ((1u64 << take) - 1);
            value |= bits << got;
            got += take;
        }
        self.bit += width;
        Ok(value)
    }
}

impl Packed<'_> {
    /// Hands `each` the next `count` values, as [`Packed::next`] would give
    /// them, the length checked once for all.
    #[inline]
    pub fn each(&mut self, count: usize, mut each: impl FnMut(u64)) -> Result<(), StoreError> {
        let width = self.width as usize;
        let end = count
            .checked_mul(width)
            .and_then(|bits| bits.checked_add(self.bit))
            .ok_or_else(|| corrupt("column"))?;
        if end.div_ceil(8) > self.bytes.len() {
            return Err(corrupt("column"));
        }
        if width == 0 {
            for _ in 0..count {
                each(0);
            }
            return Ok(());
        }
        if width > 57 {
            for _ in 0..count {
                each(self.next()?);
            }
            return Ok(());
        }
        // A value of at most 57 bits, starting within its first byte, is in
        // the little-endian word loaded from that byte (zeros past the end).
        let mask = (1u64 << width) - 1;
        let bytes = self.bytes;
        let mut bit = self.bit;
        for _ in 0..count {
            let at = bit / 8;
            let word = match bytes.get(at..at + 8) {
                Some(eight) => u64::from_le_bytes(eight.try_into().unwrap_or([0; 8])),
                None => {
                    let mut eight = [0u8; 8];
                    let rest = bytes.get(at..).unwrap_or_default();
                    eight[..rest.len()].copy_from_slice(rest);
                    u64::from_le_bytes(eight)
                }
            };
            each((word >> (bit % 8)) & mask);
            bit += width;
        }
        self.bit = bit;
        Ok(())
    }
}

/// Reads what the `put_*` functions wrote, checking every length.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// Names the format in errors.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn error(&self) -> StoreError {
        corrupt(self.what)
    }

    pub fn byte(&mut self) -> Result<u8, StoreError> {
        let (&first, rest) = self.bytes.split_first().ok_or_else(|| self.error())?;
        self.bytes = rest;
        Ok(first)
    }

    pub fn take(&mut self, len: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < len {
            return Err(self.error());
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    pub fn varint(&mut self) -> Result<u64, StoreError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.error());
            }
            value |= bits << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(self.error())
    }

    /// A varint that counts things: at most `limit`.
    pub fn count(&mut self, limit: usize) -> Result<usize, StoreError> {
        let value = self.varint()?;
        usize::try_from(value)
            .ok()
            .filter(|&count| count <= limit)
            .ok_or_else(|| self.error())
    }

    pub fn signed(&mut self) -> Result<i64, StoreError> {
        Ok(unzigzag(self.varint()?))
    }

    pub fn f64(&mut self) -> Result<f64, StoreError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(array))
    }

    pub fn str(&mut self) -> Result<&'a str, StoreError> {
        let len = self.count(self.bytes.len())?;
        self.utf8(len)
    }

    /// A field name written by [`put_name`].
    pub fn name(&mut self) -> Result<&'a str, StoreError> {
        let code = self.varint()?;
        if code % 2 == 1 {
            return usize::try_from(code / 2)
                .ok()
                .and_then(|place| KNOWN_NAMES.get(place))
                .copied()
                .ok_or_else(|| self.error());
        }
        let len = usize::try_from(code / 2).map_err(|_| self.error())?;
        self.utf8(len)
    }

    fn utf8(&mut self, len: usize) -> Result<&'a str, StoreError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| self.error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        let values = [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN, 1 << 40];
        let mut out = Vec::new();
        for &value in &values {
            put_varint(&mut out, zigzag(value));
        }
        let mut reader = Reader::new(&out, "test");
        for &value in &values {
            assert_eq!(reader.signed().unwrap(), value);
        }
        assert!(reader.is_empty());
        assert!(reader.varint().is_err());
        // Eleven continuation bytes: more than 64 bits.
        let long = [0xffu8; 11];
        assert!(Reader::new(&long, "test").varint().is_err());
    }

    #[test]
    fn packed_values_round_trip_for_every_width() {
        for width in 0..=64u32 {
            let max = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            let values: Vec<u64> = (0..37u64)
                .map(|i| max.wrapping_sub(i * 7919) & max)
                .collect();
            let mut out = Vec::new();
            put_packed(&mut out, &values, width);
            assert_eq!(out.len(), packed_len(values.len(), width).unwrap());
            let mut packed = Packed::new(&out, width);
            for &value in &values {
                assert_eq!(packed.next().unwrap(), value, "width {width}");
            }
            if width > 0 {
                assert!(packed.next().is_err() || width * 38 <= out.len() as u32 * 8);
            }
        }
    }
}
