//! What a read does with a stored row whose bytes cannot be decoded: the
//! row is left out, said at error level and counted, and the read goes on.
//! A damaged row costs that row's samples (or rolled-up points), never the
//! rest of the store: the service still starts, pages and exports still
//! answer. Other store errors (a backend that fails, a file that is not a
//! store) are not damage of one row and still fail the operation.
//!
//! The count is the process's, served by `alertd run` at `/metrics` as
//! `alertd_store_rows_skipped_total`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::StoreError;

static ROWS_SKIPPED: AtomicU64 = AtomicU64::new(0);

/// Stored rows left out of reads since the process started, because they
/// could not be decoded.
pub fn rows_skipped() -> u64 {
    ROWS_SKIPPED.load(Relaxed)
}

/// The decoded row, or `None` for a row that cannot be decoded (logged,
/// counted); other errors pass through. `row` names the row for the log,
/// for example `recent samples from seq 1234`.
pub(crate) fn or_skip<T>(
    decoded: Result<T, StoreError>,
    row: impl FnOnce() -> String,
) -> Result<Option<T>, StoreError> {
    match decoded {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::Corrupt(detail)) => {
            skipped(&row(), &detail);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// Logs and counts one row left out.
pub(crate) fn skipped(row: &str, detail: &str) {
    ROWS_SKIPPED.fetch_add(1, Relaxed);
    tracing::error!(
        row,
        detail,
        "a stored row cannot be decoded: it is left out of reads (and dropped by the next \
         compaction or retention that reaches it); the rest of the store is unaffected"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_undecodable_rows_are_skipped() {
        let before = rows_skipped();
        let kept = or_skip(Ok::<_, StoreError>(3), || "row".to_string());
        assert_eq!(kept.ok().flatten(), Some(3));
        let skipped = or_skip::<u8>(Err(StoreError::Corrupt("x".into())), || "row".into());
        assert!(matches!(skipped, Ok(None)));
        assert!(rows_skipped() > before);
        let failed = or_skip::<u8>(Err(StoreError::Group("down".into())), || "row".into());
        assert!(matches!(failed, Err(StoreError::Group(_))));
    }
}
