//! The compacted sample format: one host's samples of one period, one column
//! per field.
//!
//! Timestamps and most metric values are integers, or decimals with a few
//! digits, that change little from one sample to the next. A block stores
//! each column as such integers (the value times 10^d, for the smallest d
//! from 0 to 6 that gives every value back bit for bit), as differences (or
//! differences of differences, whichever is smaller) packed at the width of
//! the largest one: a steady counter or a regular timestamp takes no bits
//! at all. A column whose values are not such decimals falls back to the
//! XOR of each value with the one before, without its zero bytes.
//!
//! ```text
//! block   = version:u8 count:varint ints(ts) fields:varint field*
//! field   = name presence:u8 [bitmap] values
//! name    = code:varint [bytes]      odd: a known name; even: 2 x len, then the name
//! values  = 2 x decimals:u8 ints | 1:u8 len:varint xor-bytes
//! ints    = (2 x width + order - 1):u8 first:zigzag [delta:zigzag] packed-residuals
//! ```
//!
//! Version 2 (above) writes the built-in fields' names as one byte and
//! each column's kind, decimals, order and width in two bytes. Version 1,
//! still read, wrote names in full (`len:varint bytes`), `values` as
//! `kind:u8 [decimals:u8]` and `ints` as `order:u8 first [delta] width:u8`.
//!
//! A [`BlockReader`] decodes one sample at a time, so that reading many
//! blocks at once holds their bytes, not their samples. The format has no
//! store in it: the embedded store keeps blocks in SQLite, a cluster in Redis.

use super::bytes::{Packed, Reader, packed_len, put_name, put_packed, put_varint, width, zigzag};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::StoreError;

/// The version written; [`FIRST_VERSION`] and later are read.
pub(super) const VERSION: u8 = 2;
pub(super) const FIRST_VERSION: u8 = 1;

/// The most samples one block holds.
pub const MAX_SAMPLES: usize = 1 << 20;

/// The most decimal digits a column is scaled by.
const MAX_DECIMALS: u8 = 6;

/// Integers beyond this lose precision as `f64`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

pub(super) const ALL_PRESENT: u8 = 0;
pub(super) const BITMAP: u8 = 1;
const SCALED: u8 = 0;
const XOR: u8 = 1;

/// Encodes `samples` (one host's, in the order they are to be read back).
/// Returns `None` for more than [`MAX_SAMPLES`] or none at all.
pub fn encode(samples: &[&Sample]) -> Option<Vec<u8>> {
    if samples.is_empty() || samples.len() > MAX_SAMPLES {
        return None;
    }
    let mut out = Vec::with_capacity(64 + samples.len() * 16);
    out.push(VERSION);
    put_varint(&mut out, samples.len() as u64);
    let stamps: Vec<i64> = samples.iter().map(|sample| sample.ts).collect();
    put_ints(&mut out, &stamps);
    // Fields in the order they first appear.
    let mut names: Vec<&str> = Vec::new();
    let mut index: rustc_hash::FxHashMap<&str, usize> = Default::default();
    for sample in samples {
        for (name, _) in &sample.metrics {
            index.entry(name).or_insert_with(|| {
                names.push(name);
                names.len() - 1
            });
        }
    }
    put_varint(&mut out, names.len() as u64);
    for (column, name) in names.into_iter().enumerate() {
        let values = put_column_head(
            &mut out,
            samples.iter().map(|sample| sample.metrics.as_slice()),
            column,
            name,
        );
        put_values(&mut out, &values);
    }
    Some(out)
}

/// Writes a column's name and which rows have it (all, or a bitmap), and
/// returns its values in row order. Each row's value is looked for first at
/// `column`, where it mostly is: rows tend to give their fields in one order.
pub(super) fn put_column_head<'r, K, V>(
    out: &mut Vec<u8>,
    rows: impl ExactSizeIterator<Item = &'r [(K, V)]>,
    column: usize,
    name: &str,
) -> Vec<V>
where
    K: AsRef<str> + 'r,
    V: Copy + 'r,
{
    let count = rows.len();
    let mut present = vec![0u8; count.div_ceil(8)];
    let mut values = Vec::with_capacity(count);
    for (i, row) in rows.enumerate() {
        let found = match row.get(column) {
            Some((field, value)) if field.as_ref() == name => Some(value),
            _ => row
                .iter()
                .find(|(field, _)| field.as_ref() == name)
                .map(|(_, value)| value),
        };
        if let Some(value) = found {
            values.push(*value);
            present[i / 8] |= 1 << (i % 8);
        }
    }
    put_name(out, name);
    if values.len() == count {
        out.push(ALL_PRESENT);
    } else {
        out.push(BITMAP);
        out.extend_from_slice(&present);
    }
    values
}

/// Writes a column of values: as scaled integers when they are decimals
/// with a few digits, else XORed.
pub(super) fn put_values(out: &mut Vec<u8>, values: &[f64]) {
    match decimals(values) {
        Some((digits, ints)) => {
            out.push(digits << 1 | SCALED);
            put_ints(out, &ints);
        }
        None => {
            out.push(XOR);
            let mut xor = Vec::with_capacity(values.len() * 8);
            put_xor(&mut xor, values);
            put_varint(out, xor.len() as u64);
            out.extend_from_slice(&xor);
        }
    }
}

/// The smallest number of decimals `d` for which every value is an integer
/// divided by 10^d, bit for bit, with those integers.
fn decimals(values: &[f64]) -> Option<(u8, Vec<i64>)> {
    let mut ints = Vec::with_capacity(values.len());
    'digits: for digits in 0..=MAX_DECIMALS {
        let scale = scale(digits);
        ints.clear();
        for &value in values {
            let int = (value * scale).round();
            if int.abs() > EXACT_INTEGERS {
                continue 'digits;
            }
            // Checked as it will be read back: from the integer (so that -0.0,
            // whose integer is 0, is not taken for one).
            let int = int as i64;
            if (int as f64 / scale).to_bits() != value.to_bits() {
                continue 'digits;
            }
            ints.push(int);
        }
        return Some((digits, ints));
    }
    None
}

fn scale(digits: u8) -> f64 {
    10f64.powi(i32::from(digits))
}

/// Writes integers as differences (order 1) or differences of differences
/// (order 2), whichever packs narrower, after the first value (and delta).
pub(super) fn put_ints(out: &mut Vec<u8>, ints: &[i64]) {
    let deltas: Vec<i64> = ints.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
    let second: Vec<u64> = deltas
        .windows(2)
        .map(|w| zigzag(w[1].wrapping_sub(w[0])))
        .collect();
    let first: Vec<u64> = deltas.iter().map(|&delta| zigzag(delta)).collect();
    let widest = |residuals: &[u64]| residuals.iter().map(|&r| width(r)).max().unwrap_or(0);
    let (order, residuals) = if deltas.len() >= 2 && widest(&second) < widest(&first) {
        (2u8, &second)
    } else {
        (1u8, &first)
    };
    let bits = widest(residuals);
    out.push((bits as u8) << 1 | (order - 1));
    if let Some(&head) = ints.first() {
        put_varint(out, zigzag(head));
    }
    if order == 2 {
        put_varint(out, zigzag(deltas[0]));
    }
    put_packed(out, residuals, bits);
}

/// Each value XORed with the one before (the first with 0), as one byte
/// saying how many leading and trailing zero bytes were left out, then the
/// bytes in between.
fn put_xor(out: &mut Vec<u8>, values: &[f64]) {
    let mut previous = 0u64;
    for value in values {
        let bits = value.to_bits();
        let xor = bits ^ previous;
        previous = bits;
        if xor == 0 {
            out.push(0x80);
            continue;
        }
        let leading = xor.leading_zeros() / 8;
        let trailing = xor.trailing_zeros() / 8;
        out.push(((leading as u8) << 4) | trailing as u8);
        let bytes = xor.to_le_bytes();
        out.extend_from_slice(&bytes[trailing as usize..(8 - leading) as usize]);
    }
}

/// Integers written by [`put_ints`], read one at a time.
#[derive(Debug, Clone)]
pub(super) struct Ints<'a> {
    order: u8,
    /// Values still to read.
    left: usize,
    /// Values read so far.
    read: usize,
    previous: i64,
    delta: i64,
    residuals: Packed<'a>,
}

impl<'a> Ints<'a> {
    /// Reads the header of integers written by format `version`.
    pub fn read(reader: &mut Reader<'a>, count: usize, version: u8) -> Result<Self, StoreError> {
        let head = reader.byte()?;
        let (order, bits) = if version == 1 {
            (head, None)
        } else {
            (1 + (head & 1), Some(u32::from(head >> 1)))
        };
        if order != 1 && order != 2 {
            return Err(reader.error());
        }
        let first = if count > 0 { reader.signed()? } else { 0 };
        let delta = if order == 2 { reader.signed()? } else { 0 };
        let bits = match bits {
            Some(bits) => bits,
            None => u32::from(reader.byte()?),
        };
        if bits > 64 {
            return Err(reader.error());
        }
        let residuals = count.saturating_sub(usize::from(order));
        let len = packed_len(residuals, bits).ok_or_else(|| reader.error())?;
        let bytes = reader.take(len)?;
        Ok(Ints {
            order,
            left: count,
            read: 0,
            previous: first,
            delta,
            residuals: Packed::new(bytes, bits),
        })
    }

    #[inline]
    pub fn next(&mut self) -> Result<i64, StoreError> {
        if self.left == 0 {
            return Err(super::bytes::corrupt("block"));
        }
        self.left -= 1;
        self.read += 1;
        match (self.read, self.order) {
            (1, _) => {}
            (2, 2) => self.previous = self.previous.wrapping_add(self.delta),
            (_, 1) => {
                let delta = super::bytes::unzigzag(self.residuals.next()?);
                self.previous = self.previous.wrapping_add(delta);
            }
            _ => {
                self.delta = self
                    .delta
                    .wrapping_add(super::bytes::unzigzag(self.residuals.next()?));
                self.previous = self.previous.wrapping_add(self.delta);
            }
        }
        Ok(self.previous)
    }
}

impl Ints<'_> {
    /// Appends the next `count` values to `out`, as [`Ints::next`] would
    /// give them one by one, in one loop.
    pub fn fill(&mut self, count: usize, out: &mut Vec<i64>) -> Result<(), StoreError> {
        if count > self.left {
            return Err(super::bytes::corrupt("block"));
        }
        out.reserve(count);
        // The values with nothing packed: the first, and the second of
        // second order.
        let mut left = count;
        while left > 0 && self.read < usize::from(self.order) {
            out.push(self.next()?);
            left -= 1;
        }
        let (mut previous, mut delta) = (self.previous, self.delta);
        if self.order == 1 {
            self.residuals.each(left, |residual| {
                previous = previous.wrapping_add(super::bytes::unzigzag(residual));
                out.push(previous);
            })?;
        } else {
            self.residuals.each(left, |residual| {
                delta = delta.wrapping_add(super::bytes::unzigzag(residual));
                previous = previous.wrapping_add(delta);
                out.push(previous);
            })?;
        }
        self.read += left;
        self.left -= left;
        (self.previous, self.delta) = (previous, delta);
        Ok(())
    }
}

/// A column written by [`put_values`], read one value at a time.
#[derive(Debug, Clone)]
pub(super) enum Values<'a> {
    Scaled { ints: Ints<'a>, scale: f64 },
    Xor { bytes: Reader<'a>, previous: u64 },
}

impl<'a> Values<'a> {
    /// Reads the header of a column written by format `version`; `count`
    /// values follow.
    pub fn read(
        reader: &mut Reader<'a>,
        count: usize,
        limit: usize,
        version: u8,
    ) -> Result<Self, StoreError> {
        let head = reader.byte()?;
        let (kind, digits) = match version {
            1 if head == SCALED => (SCALED, Some(reader.byte()?)),
            1 => (head, None),
            _ => (head & 1, Some(head >> 1)),
        };
        match kind {
            SCALED => {
                let digits = digits.unwrap_or(u8::MAX);
                if digits > MAX_DECIMALS {
                    return Err(reader.error());
                }
                Ok(Values::Scaled {
                    scale: scale(digits),
                    ints: Ints::read(reader, count, version)?,
                })
            }
            XOR if version > 1 && head != XOR => Err(reader.error()),
            XOR => {
                let len = reader.count(limit)?;
                Ok(Values::Xor {
                    bytes: Reader::new(reader.take(len)?, "block"),
                    previous: 0,
                })
            }
            _ => Err(reader.error()),
        }
    }

    #[inline]
    pub fn next(&mut self) -> Result<f64, StoreError> {
        let value = match self {
            Values::Scaled { ints, scale } => ints.next()? as f64 / *scale,
            Values::Xor { bytes, previous } => {
                let head = bytes.byte()?;
                let xor = if head == 0x80 {
                    0
                } else {
                    let (leading, trailing) = (usize::from(head >> 4), usize::from(head & 0x0f));
                    if leading + trailing >= 8 {
                        return Err(bytes.error());
                    }
                    let mut array = [0u8; 8];
                    array[trailing..8 - leading]
                        .copy_from_slice(bytes.take(8 - leading - trailing)?);
                    u64::from_le_bytes(array)
                };
                *previous ^= xor;
                f64::from_bits(*previous)
            }
        };
        if value.is_finite() {
            Ok(value)
        } else {
            Err(super::bytes::corrupt("block"))
        }
    }
}

impl Values<'_> {
    /// Appends the next `count` values to `out`, as [`Values::next`] would
    /// give them one by one; `scratch` is room for a scaled column's
    /// integers.
    pub fn fill(
        &mut self,
        count: usize,
        out: &mut Vec<f64>,
        scratch: &mut Vec<i64>,
    ) -> Result<(), StoreError> {
        match self {
            Values::Scaled { ints, scale } => {
                scratch.clear();
                ints.fill(count, scratch)?;
                let scale = *scale;
                let start = out.len();
                out.extend(scratch.iter().map(|&int| int as f64 / scale));
                if out[start..].iter().all(|value| value.is_finite()) {
                    Ok(())
                } else {
                    Err(super::bytes::corrupt("block"))
                }
            }
            _ => {
                out.reserve(count);
                for _ in 0..count {
                    out.push(self.next()?);
                }
                Ok(())
            }
        }
    }
}

/// Whether `names` are all different (sorts them).
pub(super) fn distinct(names: &mut [&str]) -> bool {
    names.sort_unstable();
    names.windows(2).all(|pair| pair[0] != pair[1])
}

/// A column's head, as written by format `version` for `count` samples:
/// its field's name, the bitmap of the samples that have it (`None`: all
/// do), and how many values follow.
pub(super) fn column_head<'a>(
    reader: &mut Reader<'a>,
    count: usize,
    version: u8,
) -> Result<(&'a str, Option<&'a [u8]>, usize), StoreError> {
    let name = if version == 1 {
        reader.str()?
    } else {
        reader.name()?
    };
    let present = match reader.byte()? {
        ALL_PRESENT => None,
        BITMAP => Some(reader.take(count.div_ceil(8))?),
        _ => return Err(reader.error()),
    };
    let values = match present {
        None => count,
        Some(bitmap) => bitmap.iter().map(|byte| byte.count_ones() as usize).sum(),
    };
    Ok((name, present, values))
}

#[derive(Debug, Clone)]
struct Column<'a> {
    name: &'a str,
    /// `None` when the field is in every sample.
    present: Option<&'a [u8]>,
    values: Values<'a>,
}

/// A sample's timestamp and fields, without its host.
pub type Stamped = (Millis, Vec<(String, f64)>);

/// Reads the samples of a block, in order.
#[derive(Debug, Clone)]
pub struct BlockReader<'a> {
    count: usize,
    next: usize,
    stamps: Ints<'a>,
    columns: Vec<Column<'a>>,
}

impl<'a> BlockReader<'a> {
    /// Reads the block's header and column headers; the samples are decoded
    /// by [`BlockReader::next_sample`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let mut reader = Reader::new(bytes, "block");
        let version = reader.byte()?;
        if !(FIRST_VERSION..=VERSION).contains(&version) {
            return Err(reader.error());
        }
        let count = reader.count(MAX_SAMPLES)?;
        let stamps = Ints::read(&mut reader, count, version)?;
        let fields = reader.count(bytes.len())?;
        let mut columns = Vec::with_capacity(fields);
        for _ in 0..fields {
            let (name, present, values_count) = column_head(&mut reader, count, version)?;
            let values = Values::read(&mut reader, values_count, bytes.len(), version)?;
            columns.push(Column {
                name,
                present,
                values,
            });
        }
        // A field named twice is damage: a sample would have two values of it.
        let mut names: Vec<&str> = columns.iter().map(|column| column.name).collect();
        if !reader.is_empty() || !distinct(&mut names) {
            return Err(reader.error());
        }
        Ok(BlockReader {
            count,
            next: 0,
            stamps,
            columns,
        })
    }

    /// How many samples the block holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next sample's timestamp and fields, `None` after the last.
    pub fn next_sample(&mut self) -> Result<Option<Stamped>, StoreError> {
        if self.next == self.count {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        let ts = self.stamps.next()?;
        let mut metrics = Vec::with_capacity(self.columns.len());
        for column in &mut self.columns {
            let here = column
                .present
                .is_none_or(|bitmap| bitmap[i / 8] & (1 << (i % 8)) != 0);
            if here {
                metrics.push((column.name.to_string(), column.values.next()?));
            }
        }
        Ok(Some((ts, metrics)))
    }

    /// Hands the samples of `[from, to]` to `visitor` as `host`'s, in the
    /// block's order, the block's field names given once, and of each
    /// sample the fields the visitor [wants](crate::store::SampleVisitor::wants)
    /// (`room`: room to decode into, kept between blocks). A block damaged
    /// part-way has handed over the samples before the damage; damage in a
    /// column not wanted is not met (it is not decoded).
    pub fn visit(
        self,
        host: &str,
        (from, to): (Millis, Millis),
        visitor: &mut dyn crate::store::SampleVisitor,
        room: &mut Room,
    ) -> Result<(), StoreError> {
        {
            let names: Vec<&str> = self.columns.iter().map(|column| column.name).collect();
            visitor.names(&names);
        }
        room.wanted.clear();
        room.wanted
            .extend((0..self.columns.len()).map(|place| visitor.wants(place)));
        // Column by column (each a run of values decoded at once); a block
        // that does not decode whole is read sample by sample, up to the
        // damage.
        match self.clone().decode_wanted(room) {
            Ok(()) => {
                room.visit(host, (from, to), &self, visitor);
                Ok(())
            }
            Err(_) => self.visit_by_sample(host, (from, to), visitor, room),
        }
    }

    /// Decodes the timestamps and the wanted columns into `room`.
    fn decode_wanted(mut self, room: &mut Room) -> Result<(), StoreError> {
        room.stamps.clear();
        self.stamps.fill(self.count, &mut room.stamps)?;
        room.columns.resize_with(self.columns.len(), Vec::new);
        for ((column, out), wanted) in self
            .columns
            .iter_mut()
            .zip(&mut room.columns)
            .zip(&room.wanted)
        {
            out.clear();
            if !wanted {
                continue;
            }
            let count = match column.present {
                None => self.count,
                // The bits past the samples are not read.
                Some(bitmap) => (0..self.count)
                    .filter(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
                    .count(),
            };
            column.values.fill(count, out, &mut room.scratch)?;
        }
        Ok(())
    }

    /// [`BlockReader::visit`], one sample decoded after the other.
    fn visit_by_sample(
        mut self,
        host: &str,
        (from, to): (Millis, Millis),
        visitor: &mut dyn crate::store::SampleVisitor,
        room: &mut Room,
    ) -> Result<(), StoreError> {
        let values = &mut room.values;
        for i in 0..self.count {
            let ts = self.stamps.next()?;
            values.clear();
            for (place, column) in self.columns.iter_mut().enumerate() {
                let here = column
                    .present
                    .is_none_or(|bitmap| bitmap[i / 8] & (1 << (i % 8)) != 0);
                // A column not wanted is not decoded (its damage is not met).
                if here && room.wanted[place] {
                    values.push((place, column.values.next()?));
                }
            }
            if ts >= from && ts <= to {
                visitor.sample(host, ts, values);
            }
        }
        self.next = self.count;
        Ok(())
    }

    /// Every sample of the block, for `host`.
    pub fn samples(mut self, host: &str) -> Result<Vec<Sample>, StoreError> {
        let mut samples = Vec::with_capacity(self.count);
        while let Some((ts, metrics)) = self.next_sample()? {
            samples.push(Sample {
                host: host.to_string(),
                ts,
                metrics,
            });
        }
        Ok(samples)
    }
}

/// Room to decode blocks into ([`BlockReader::visit`]), kept from one
/// block to the next so that a read of many blocks allocates once.
#[derive(Debug, Default)]
pub struct Room {
    /// A sample's fields as handed to the visitor.
    values: Vec<(usize, f64)>,
    stamps: Vec<i64>,
    /// Per column, its values (empty when not wanted).
    columns: Vec<Vec<f64>>,
    wanted: Vec<bool>,
    /// Per column, the place of its next value.
    cursors: Vec<usize>,
    scratch: Vec<i64>,
}

impl Room {
    /// Hands the decoded samples of `[from, to]` to `visitor`.
    fn visit(
        &mut self,
        host: &str,
        (from, to): (Millis, Millis),
        block: &BlockReader<'_>,
        visitor: &mut dyn crate::store::SampleVisitor,
    ) {
        let next = &mut self.cursors;
        next.clear();
        next.resize(block.columns.len(), 0);
        for (i, &ts) in self.stamps.iter().enumerate() {
            let inside = ts >= from && ts <= to;
            self.values.clear();
            for (place, column) in block.columns.iter().enumerate() {
                if !self.wanted[place] {
                    continue;
                }
                let here = column
                    .present
                    .is_none_or(|bitmap| bitmap[i / 8] & (1 << (i % 8)) != 0);
                if here {
                    if inside {
                        self.values.push((place, self.columns[place][next[place]]));
                    }
                    next[place] += 1;
                }
            }
            if inside {
                visitor.sample(host, ts, &self.values);
            }
        }
    }
}

/// What a visit hands over, recorded: per sample its time and its fields by
/// name with their values' bits (the block tests and the `stored` fuzz
/// target compare it with reading sample by sample).
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Default)]
pub struct Seen {
    names: Vec<String>,
    /// Which places are wanted: every `want`-th (all when 1 or 0).
    pub want: usize,
    pub samples: Vec<(Millis, Vec<(String, u64)>)>,
}

#[cfg(any(test, feature = "fuzzing"))]
impl crate::store::SampleVisitor for Seen {
    fn names(&mut self, names: &[&str]) {
        self.names = names.iter().map(|name| name.to_string()).collect();
    }
    fn wants(&self, place: usize) -> bool {
        place.is_multiple_of(self.want.max(1))
    }
    fn sample(&mut self, _host: &str, ts: Millis, values: &[(usize, f64)]) {
        let fields = values
            .iter()
            .map(|&(place, value)| (self.names[place].clone(), value.to_bits()))
            .collect();
        self.samples.push((ts, fields));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn round_trip(samples: &[Sample]) -> Vec<u8> {
        let refs: Vec<&Sample> = samples.iter().collect();
        let bytes = encode(&refs).unwrap();
        let back = BlockReader::new(&bytes).unwrap().samples("h").unwrap();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!(a.ts, b.ts);
            assert_eq!(a.metrics.len(), b.metrics.len());
            for (name, value) in &a.metrics {
                let (_, got) = b.metrics.iter().find(|(n, _)| n == name).unwrap();
                assert_eq!(value.to_bits(), got.to_bits(), "{name}");
            }
        }
        bytes
    }

    #[test]
    fn steady_series_pack_into_a_few_bytes_per_sample() {
        let samples: Vec<Sample> = (0..360)
            .map(|i| {
                Sample::new(
                    "h",
                    1_700_000_000_000 + i * 10_000,
                    &[
                        ("cpu.usage", 20.0 + (i % 7) as f64 * 0.5),
                        ("requests.count", 120.0),
                        ("errors.count", 0.0),
                        ("mem.free", 8_126_464.0 + (i % 3) as f64 * 4096.0),
                    ],
                )
            })
            .collect();
        let bytes = round_trip(&samples);
        assert!(bytes.len() < 360 * 6, "{} bytes", bytes.len());
    }

    #[test]
    fn odd_values_and_missing_fields_round_trip() {
        let samples = vec![
            Sample::new("h", -5, &[("a", -0.0), ("b", 0.1 + 0.2)]),
            Sample::new("h", -5, &[("b", f64::MAX)]),
            Sample::new("h", i64::MAX, &[("a", f64::MIN_POSITIVE), ("c", 1e-300)]),
            Sample::new("h", i64::MIN, &[]),
            Sample::new("h", 0, &[("c", 123456.789), ("a", 9.007199254740993e15)]),
        ];
        round_trip(&samples);
    }

    #[test]
    fn negative_zero_keeps_its_sign() {
        let samples = vec![
            Sample::new("h", 1, &[("a", -0.0)]),
            Sample::new("h", 2, &[("a", 0.0)]),
        ];
        round_trip(&samples);
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let samples: Vec<Sample> = (0..20)
            .map(|i| {
                Sample::new(
                    "h",
                    i * 1000,
                    &[("a", i as f64 * 1.5), ("b", (i as f64).sqrt())],
                )
            })
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let bytes = encode(&refs).unwrap();
        for cut in 0..bytes.len() {
            let read = BlockReader::new(&bytes[..cut]).and_then(|reader| reader.samples("h"));
            assert!(read.is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                // Either an error or some samples: never a panic.
                let _ = BlockReader::new(&damaged).and_then(|reader| reader.samples("h"));
            }
        }
    }

    /// The samples `next_sample` gives before the first error, those of
    /// `[from, to]`, with the fields of the wanted places only.
    fn one_by_one(bytes: &[u8], (from, to): (Millis, Millis), want: usize) -> Seen {
        let mut seen = Seen {
            want,
            ..Seen::default()
        };
        let Ok(mut reader) = BlockReader::new(bytes) else {
            return seen;
        };
        let names: Vec<&str> = reader.columns.iter().map(|column| column.name).collect();
        crate::store::SampleVisitor::names(&mut seen, &names);
        while let Ok(Some((ts, metrics))) = reader.next_sample() {
            if ts < from || ts > to {
                continue;
            }
            let fields = metrics
                .into_iter()
                .filter(|(name, _)| {
                    names
                        .iter()
                        .position(|n| n == name)
                        .unwrap()
                        .is_multiple_of(want)
                })
                .map(|(name, value)| (name, value.to_bits()))
                .collect();
            seen.samples.push((ts, fields));
        }
        seen
    }

    #[test]
    fn a_visit_hands_over_what_reading_sample_by_sample_gives() {
        // Scaled columns, floats XORed, fields in some samples only.
        let samples: Vec<Sample> = (0..61)
            .map(|i| {
                let mut fields = vec![("a", i as f64 * 1.25), ("b", (i as f64).sqrt())];
                if i % 3 == 0 {
                    fields.push(("c", -(i as f64)));
                }
                if i % 7 != 0 {
                    fields.push(("d", 1e-9 * i as f64));
                }
                Sample::new("h", 1_000 + i * 10_000, &fields)
            })
            .collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let bytes = encode(&refs).unwrap();
        let mut room = Room::default();
        let mut visit = |bytes: &[u8], range: (Millis, Millis), want: usize, by_sample: bool| {
            let mut seen = Seen {
                want,
                ..Seen::default()
            };
            let result = BlockReader::new(bytes).and_then(|reader| match by_sample {
                false => reader.visit("h", range, &mut seen, &mut room),
                true => {
                    let names: Vec<&str> = reader.columns.iter().map(|c| c.name).collect();
                    crate::store::SampleVisitor::names(&mut seen, &names);
                    room.wanted = (0..names.len())
                        .map(|place| place.is_multiple_of(want))
                        .collect();
                    reader.visit_by_sample("h", range, &mut seen, &mut room)
                }
            });
            (seen.samples, result.is_ok())
        };
        for range in [(Millis::MIN, Millis::MAX), (95_000, 301_000), (0, 0)] {
            for want in [1, 2, 3] {
                let (seen, whole) = visit(&bytes, range, want, false);
                assert!(whole);
                assert_eq!(seen, one_by_one(&bytes, range, want).samples);
            }
        }
        // Damaged anywhere: the samples before the damage, as read one by
        // one (the wanted columns only, when not all are), never more,
        // never a panic.
        for at in 0..bytes.len() {
            for flip in [1u8, 0x10, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                let range = (Millis::MIN, Millis::MAX);
                let (seen, _) = visit(&damaged, range, 1, false);
                let expected = one_by_one(&damaged, range, 1).samples;
                assert_eq!(seen, expected, "byte {at} ^ {flip:#x}");
                for want in [2, 3] {
                    let (seen, _) = visit(&damaged, range, want, false);
                    let (expected, _) = visit(&damaged, range, want, true);
                    assert_eq!(seen, expected, "byte {at} ^ {flip:#x}, every {want}");
                }
            }
        }
    }

    #[test]
    fn a_block_naming_a_field_twice_is_refused() {
        let samples = [
            Sample::new("h", 1, &[("ab", 1.0), ("ac", 2.0)]),
            Sample::new("h", 2, &[("ab", 3.0), ("ac", 4.0)]),
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        let mut bytes = encode(&refs).unwrap();
        assert!(BlockReader::new(&bytes).is_ok());
        // The second name, "ac", made "ab" in place.
        let at = bytes
            .windows(2)
            .rposition(|pair| pair == b"ac")
            .expect("the names are in the block in full");
        bytes[at + 1] = b'b';
        let error = BlockReader::new(&bytes).unwrap_err();
        assert!(error.to_string().contains("block"), "{error}");
    }

    /// The samples the version-1 fixtures below were written from.
    pub(crate) fn fixture_samples() -> Vec<Sample> {
        vec![
            Sample::new(
                "h",
                1_700_000_000_000,
                &[("cpu.usage", 12.5), ("custom.x", 0.1 + 0.2)],
            ),
            Sample::new(
                "h",
                1_700_000_010_000,
                &[("cpu.usage", 13.25), ("errors.count", 2.0)],
            ),
            Sample::new(
                "h",
                1_700_000_020_000,
                &[
                    ("cpu.usage", 11.0),
                    ("custom.x", -4.0),
                    ("errors.count", 3.0),
                ],
            ),
        ]
    }

    pub(crate) fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A block written by version 1 (before names became codes) still
    /// reads back exactly; the same samples now take fewer bytes.
    #[test]
    fn version_1_blocks_still_read_back() {
        let written_by_version_1 = hex(
            "01030280a0abfef962a09c010003096370752e757361676500000201c4130996820308637573746f6d2e78\
             0105011200343333333333d33f00343333333333c3ff0c6572726f72732e636f756e740106000001040202",
        );
        let samples = fixture_samples();
        let back = BlockReader::new(&written_by_version_1)
            .unwrap()
            .samples("h")
            .unwrap();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!((a.ts, &a.metrics), (b.ts, &b.metrics));
        }
        let now = round_trip(&samples);
        assert_eq!(now[0], VERSION);
        assert!(
            now.len() < written_by_version_1.len() - 20,
            "{} bytes",
            now.len()
        );
    }

    /// Ten built-in fields cost a byte each for their names: a steady
    /// minute of them is a few bytes a field, header and all.
    #[test]
    fn built_in_names_take_one_byte() {
        let samples: Vec<Sample> = (0..6)
            .map(|i| {
                let fields: Vec<(&str, f64)> = crate::field::BUILT_IN_FIELDS
                    .iter()
                    .map(|name| (*name, 1.0))
                    .collect();
                Sample::new("h", 1_700_000_000_000 + i * 10_000, &fields)
            })
            .collect();
        let bytes = round_trip(&samples);
        // The header and timestamps about 14 bytes; per field: name,
        // presence, kind, ints head, first value (version 1: 27 bytes for
        // "requests.latency_sum").
        assert!(bytes.len() <= 16 + 10 * 5, "{} bytes", bytes.len());
    }

    /// Every known name and custom names of every length read back; a
    /// code past the known names is an error.
    #[test]
    fn names_round_trip_as_codes_or_bytes() {
        let custom: Vec<String> = (0..130).map(|len| "n".repeat(len)).collect();
        let names = super::super::bytes::KNOWN_NAMES
            .iter()
            .copied()
            .chain(custom.iter().map(String::as_str))
            .chain(["cpu.usage.p99", "Cpu.usage"]);
        let mut out = Vec::new();
        let names: Vec<&str> = names.collect();
        for name in &names {
            super::super::bytes::put_name(&mut out, name);
        }
        let mut reader = Reader::new(&out, "block");
        for name in &names {
            assert_eq!(reader.name().unwrap(), *name);
        }
        assert!(reader.is_empty());
        let past = super::super::bytes::KNOWN_NAMES.len() as u64 * 2 + 1;
        let mut out = Vec::new();
        put_varint(&mut out, past);
        assert!(Reader::new(&out, "block").name().is_err());
    }
}
