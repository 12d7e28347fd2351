//! Metric field names (docs/engine.md, Terms and The monitoring collector): the built-in fields the
//! collector produces, and the syntax every custom field must follow.

/// The fields a monitoring collector reports for its node (docs/engine.md, The
/// monitoring collector).
pub const BUILT_IN_FIELDS: &[&str] = &[
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
];

/// Longest accepted field name, in bytes.
pub const MAX_FIELD_NAME_LEN: usize = 128;

/// Whether `name` matches `[A-Za-z0-9_.:-]{1,128}`.
#[inline]
pub fn is_valid_field_name(name: &str) -> bool {
    is_field_name_bytes(name.as_bytes())
}

/// [`is_valid_field_name`] for bytes (which are then ASCII). Branch-free over
/// the bytes: names are short and checked for every metric of every sample.
#[inline]
pub fn is_field_name_bytes(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FIELD_NAME_LEN
        && name
            .iter()
            .fold(true, |valid, &byte| valid & is_field_byte(byte))
}

/// Whether `byte` may appear in a field name.
#[inline]
pub fn is_field_byte(byte: u8) -> bool {
    FIELD_BYTES[usize::from(byte)]
}

const FIELD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        byte += 1;
    }
    table
};

/// A cheap hash of a field name, from its length and its first and last
/// eight bytes: a first comparison before the names themselves are compared
/// (equal hashes are always confirmed by comparing the names).
#[inline]
pub fn field_hash(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let word = |chunk: &[u8]| {
        let mut padded = [0u8; 8];
        padded[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(padded)
    };
    let head = word(&bytes[..bytes.len().min(8)]);
    let tail = word(&bytes[bytes.len().saturating_sub(8)..]);
    (head.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ tail.rotate_left(29).wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
        ^ bytes.len() as u64
}

/// [`field_hash`] of `name` if it is a valid field name.
#[inline]
pub fn checked_field_hash(name: &str) -> Option<u64> {
    let valid =
        !name.is_empty() && name.len() <= MAX_FIELD_NAME_LEN && name.bytes().all(is_field_byte);
    valid.then(|| field_hash(name))
}

pub fn is_built_in(name: &str) -> bool {
    BUILT_IN_FIELDS.contains(&name)
}

/// The built-in field a custom field name was most likely meant to be, if it
/// is within two edits of one (`cpu.usgae` -> `cpu.usage`).
pub fn likely_built_in(name: &str) -> Option<&'static str> {
    BUILT_IN_FIELDS
        .iter()
        .map(|&known| (edit_distance(name, known), known))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_name_syntax() {
        for good in ["cpu.usage", "a", "my_app:queue-depth.p99", &"x".repeat(128)] {
            assert!(is_valid_field_name(good), "{good}");
        }
        for bad in ["", "cpu usage", "cpu/usage", "é", &"x".repeat(129)] {
            assert!(!is_valid_field_name(bad), "{bad}");
        }
    }

    #[test]
    fn suggests_the_built_in_field_behind_a_typo() {
        assert_eq!(likely_built_in("cpu.usgae"), Some("cpu.usage"));
        assert_eq!(likely_built_in("error.count"), Some("errors.count"));
        assert_eq!(likely_built_in("queue.depth"), None);
    }
}
