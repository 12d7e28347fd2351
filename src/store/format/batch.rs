//! The format of recent samples: the samples of one append, as one value.
//!
//! Recent samples are what a crash must not lose and what the rule windows
//! are rebuilt from; they are written once per append, as fast as possible,
//! and read back in full. A batch names each host and field once, then gives
//! each sample's sequence number (as the gap after the one before), host,
//! timestamp (as the difference from the one before) and fields with their
//! values as 8 bytes. About 95 bytes for a sample of the 10 built-in fields,
//! where a row per sample took 235.
//!
//! ```text
//! batch  = version:u8 hosts:varint str* fields:varint str* count:varint sample*
//! sample = seq-gap:varint host:varint ts-delta:zigzag metrics:varint (field:varint value:f64)*
//! ```

use rustc_hash::FxHashMap;

use super::bytes::{Reader, put_str, put_varint, zigzag};
use crate::duration::Millis;
use crate::sample::Sample;
use crate::store::StoreError;

const VERSION: u8 = 1;

/// A batch encoded ahead of its append (see `SampleStore::append_batches`), with
/// what the store indexes it by.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    pub data: Vec<u8>,
    pub count: usize,
    pub min_ts: Millis,
    pub max_ts: Millis,
}

impl Encoded {
    /// Encodes `samples` (with consecutive sequence numbers); refuses a
    /// sample with a value that could not be read back (not finite), so
    /// that nothing written is unreadable.
    pub fn new(samples: &[Sample]) -> Result<Encoded, StoreError> {
        storable(samples)?;
        let mut data = Vec::with_capacity(samples.len() * 100);
        encode(samples, &mut data);
        Ok(Encoded {
            data,
            count: samples.len(),
            min_ts: samples.iter().map(|s| s.ts).min().unwrap_or(0),
            max_ts: samples.iter().map(|s| s.ts).max().unwrap_or(0),
        })
    }
}

/// Refuses samples that hold a value the decoders refuse: NaN or an
/// infinity. Samples parsed from input never do; this guards every other
/// way in (a sum of pushed counters, a computed field).
pub fn storable(samples: &[Sample]) -> Result<(), StoreError> {
    for (index, sample) in samples.iter().enumerate() {
        if let Some((field, value)) = sample.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(StoreError::Unstorable(format!(
                "sample {index} (host {:?}, ts {}): {field} is {value}, and only finite \
                 numbers can be stored",
                sample.host, sample.ts
            )));
        }
    }
    Ok(())
}

/// A batch of samples with their sequence numbers (increasing, maybe with
/// gaps), encoded: `None` for no sample.
#[derive(Debug, Clone)]
pub struct Sequenced {
    /// The first and last samples' sequence numbers.
    pub first: i64,
    pub last: i64,
    pub encoded: Encoded,
}

impl Sequenced {
    pub fn new(samples: &[(i64, Sample)]) -> Option<Sequenced> {
        let ((first, _), (last, _)) = samples.first().zip(samples.last())?;
        let mut previous = first - 1;
        let mut numbered = Vec::with_capacity(samples.len());
        for (seq, sample) in samples {
            numbered.push(((seq - previous - 1) as u64, sample));
            previous = *seq;
        }
        let mut data = Vec::new();
        encode_numbered(numbered.iter().copied(), &mut data);
        Some(Sequenced {
            first: *first,
            last: *last,
            encoded: Encoded {
                data,
                count: samples.len(),
                min_ts: samples.iter().map(|(_, s)| s.ts).min().unwrap_or(0),
                max_ts: samples.iter().map(|(_, s)| s.ts).max().unwrap_or(0),
            },
        })
    }
}

/// Every sample of an encoded batch whose first sample is numbered
/// `first_seq`, with its sequence number.
pub fn decode(data: &[u8], first_seq: i64) -> Result<Vec<(i64, Sample)>, StoreError> {
    let mut reader = BatchReader::new(data, first_seq)?;
    let mut samples = Vec::with_capacity(reader.len());
    while let Some(numbered) = reader.next_sample()? {
        samples.push(numbered);
    }
    Ok(samples)
}

/// Encodes `samples`, whose sequence numbers are `first_seq`, `first_seq + 1`, ...
pub fn encode(samples: &[Sample], out: &mut Vec<u8>) {
    encode_numbered(samples.iter().map(|sample| (0, sample)), out);
}

/// Encodes samples with gaps between their sequence numbers: each pair is
/// (gap after the sample before, sample).
pub fn encode_numbered<'a>(samples: impl Iterator<Item = (u64, &'a Sample)>, out: &mut Vec<u8>) {
    let mut hosts = Names::default();
    let mut fields = Names::default();
    // The previous sample's field indexes: samples mostly repeat their
    // fields in the same order, which then costs a comparison, not a lookup.
    let mut previous: Vec<(&str, u64)> = Vec::new();
    let mut body = Vec::with_capacity(out.capacity());
    let mut count = 0u64;
    let mut previous_ts = 0i64;
    for (gap, sample) in samples {
        count += 1;
        put_varint(&mut body, gap);
        put_varint(&mut body, hosts.index(&sample.host));
        put_varint(&mut body, zigzag(sample.ts.wrapping_sub(previous_ts)));
        previous_ts = sample.ts;
        put_varint(&mut body, sample.metrics.len() as u64);
        for (i, (name, value)) in sample.metrics.iter().enumerate() {
            let index = match previous.get(i) {
                Some(&(known, index)) if known == name => index,
                _ => {
                    let index = fields.index(name);
                    if i < previous.len() {
                        previous[i] = (name, index);
                    } else {
                        previous.push((name, index));
                    }
                    index
                }
            };
            put_varint(&mut body, index);
            body.extend_from_slice(&value.to_le_bytes());
        }
    }
    out.clear();
    out.push(VERSION);
    for names in [&hosts.names, &fields.names] {
        put_varint(out, names.len() as u64);
        for name in names {
            put_str(out, name);
        }
    }
    put_varint(out, count);
    out.extend_from_slice(&body);
}

/// Names numbered in the order first seen.
#[derive(Default)]
struct Names<'a> {
    index: FxHashMap<&'a str, u64>,
    names: Vec<&'a str>,
    /// The last name looked up, and its number.
    last: Option<(&'a str, u64)>,
}

impl<'a> Names<'a> {
    fn index(&mut self, name: &'a str) -> u64 {
        if let Some((last, index)) = self.last
            && last == name
        {
            return index;
        }
        let next = self.names.len() as u64;
        let index = *self.index.entry(name).or_insert_with(|| {
            self.names.push(name);
            next
        });
        self.last = Some((name, index));
        index
    }
}

/// Reads a batch's samples in order, with their sequence numbers.
pub struct BatchReader<'a> {
    bytes: Reader<'a>,
    hosts: Vec<&'a str>,
    fields: Vec<&'a str>,
    left: usize,
    seq: i64,
    ts: Millis,
}

impl<'a> BatchReader<'a> {
    /// `first_seq` is the sequence number of the batch's first sample.
    pub fn new(bytes: &'a [u8], first_seq: i64) -> Result<Self, StoreError> {
        let limit = bytes.len();
        let mut reader = Reader::new(bytes, "batch");
        if reader.byte()? != VERSION {
            return Err(reader.error());
        }
        let names = |reader: &mut Reader<'a>| -> Result<Vec<&'a str>, StoreError> {
            let count = reader.count(limit)?;
            (0..count).map(|_| reader.str()).collect()
        };
        let hosts = names(&mut reader)?;
        let fields = names(&mut reader)?;
        let left = reader.count(limit)?;
        Ok(BatchReader {
            bytes: reader,
            hosts,
            fields,
            left,
            seq: first_seq.wrapping_sub(1),
            ts: 0,
        })
    }

    /// How many samples are left to read.
    pub fn len(&self) -> usize {
        self.left
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next sample and its sequence number, `None` after the last.
    pub fn next_sample(&mut self) -> Result<Option<(i64, Sample)>, StoreError> {
        self.next_of(None)
    }

    /// The next sample of `host` (of any host for `None`), skipping the
    /// others without decoding their fields; `None` after the last.
    pub fn next_of(&mut self, host: Option<&str>) -> Result<Option<(i64, Sample)>, StoreError> {
        while let Some((name, count)) = self.next_head()? {
            if host.is_some_and(|host| host != name) {
                for _ in 0..count {
                    self.bytes.varint()?;
                    self.bytes.take(8)?;
                }
                continue;
            }
            let mut metrics = Vec::with_capacity(count);
            for _ in 0..count {
                let (field, value) = self.next_value()?;
                metrics.push((self.fields[field].to_string(), value));
            }
            let sample = Sample {
                host: name.to_string(),
                ts: self.ts,
                metrics,
            };
            return Ok(Some((self.seq, sample)));
        }
        Ok(None)
    }

    /// The names of the fields, which [`BatchReader::next_values`] gives by
    /// their place in this list.
    pub fn field_names(&self) -> &[&'a str] {
        &self.fields
    }

    /// The next sample without copying it: its sequence number, host and
    /// time, and in `values` its fields (by their place in
    /// [`BatchReader::field_names`]) with their values; `None` after the
    /// last.
    pub fn next_values(
        &mut self,
        values: &mut Vec<(usize, f64)>,
    ) -> Result<Option<(i64, &'a str, Millis)>, StoreError> {
        values.clear();
        let Some((name, count)) = self.next_head()? else {
            return Ok(None);
        };
        for _ in 0..count {
            values.push(self.next_value()?);
        }
        Ok(Some((self.seq, name, self.ts)))
    }

    /// Reads the next sample up to its fields: its host and how many fields
    /// it has; `None` after the last.
    fn next_head(&mut self) -> Result<Option<(&'a str, usize)>, StoreError> {
        if self.left == 0 {
            return if self.bytes.is_empty() {
                Ok(None)
            } else {
                Err(self.bytes.error())
            };
        }
        self.left -= 1;
        let reader = &mut self.bytes;
        let gap = reader.varint()?;
        self.seq = self.seq.wrapping_add(1).wrapping_add(gap as i64);
        let name = *self
            .hosts
            .get(reader.count(usize::MAX)?)
            .ok_or_else(|| reader.error())?;
        self.ts = self.ts.wrapping_add(reader.signed()?);
        let count = reader.count(self.fields.len())?;
        Ok(Some((name, count)))
    }

    /// One field of a sample: its place in the field names, and its value.
    fn next_value(&mut self) -> Result<(usize, f64), StoreError> {
        let reader = &mut self.bytes;
        let field = reader.count(usize::MAX)?;
        if field >= self.fields.len() {
            return Err(reader.error());
        }
        let value = reader.f64()?;
        if !value.is_finite() {
            return Err(reader.error());
        }
        Ok((field, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        vec![
            Sample::new("web-1", 1_000, &[("cpu", 1.5), ("mem", -0.0)]),
            Sample::new("web-2", 900, &[("mem", f64::MAX)]),
            Sample::new("web-1", i64::MIN, &[]),
            Sample::new("web-1", i64::MAX, &[("cpu", 3.0)]),
        ]
    }

    #[test]
    fn a_batch_reads_back_what_was_written() {
        let samples = samples();
        let mut bytes = Vec::new();
        encode_numbered(
            samples.iter().enumerate().map(|(i, s)| (i as u64 * 2, s)),
            &mut bytes,
        );
        let mut reader = BatchReader::new(&bytes, 10).unwrap();
        let mut expected_seq = 10;
        for (i, sample) in samples.iter().enumerate() {
            let (seq, back) = reader.next_sample().unwrap().unwrap();
            expected_seq += i as i64 * 2 + if i == 0 { 0 } else { 1 };
            assert_eq!(seq, expected_seq);
            assert_eq!(back.host, sample.host);
            assert_eq!(back.ts, sample.ts);
            assert_eq!(back.metrics.len(), sample.metrics.len());
            for ((a, x), (b, y)) in back.metrics.iter().zip(&sample.metrics) {
                assert_eq!((a, x.to_bits()), (b, y.to_bits()));
            }
        }
        assert!(reader.next_sample().unwrap().is_none());
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let mut bytes = Vec::new();
        encode(&samples(), &mut bytes);
        let read_all = |bytes: &[u8]| -> Result<usize, StoreError> {
            let mut reader = BatchReader::new(bytes, 1)?;
            let mut count = 0;
            while reader.next_sample()?.is_some() {
                count += 1;
            }
            Ok(count)
        };
        assert_eq!(read_all(&bytes).unwrap(), 4);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0xff;
            let _ = read_all(&damaged);
        }
    }
}
