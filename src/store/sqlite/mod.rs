//! The embedded store: one SQLite file in WAL mode, fully synchronous, so
//! that a committed transaction survives a crash of the process or the
//! machine.
//!
//! This file opens the store and holds its connections (one writer, a pool
//! of readers, a checkpointer). [`queries`] has the SQL of incidents,
//! deliveries and hook calls and the [`Store`](super::Store) implementation;
//! [`samples`] reads and writes samples, [`compaction`] folds them into
//! blocks and rollups, [`rollups`] reads and trims the rolled-up series.

mod compaction;
mod queries;
mod rollups;
mod samples;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::{SampleCursor, StoreError};

/// Bumped whenever the schema changes; a newer file is refused. Version 3
/// added the rollups of [`ALL_HOSTS`](crate::store::ALL_HOSTS), version 4
/// the hour rollups, version 5 blocks and rollup rows of format version 2
/// (which an older alertd cannot read; rows of version 1 stay as they are
/// and are still read).
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1);
CREATE TABLE IF NOT EXISTS recent (
    seq INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    data BLOB NOT NULL
);
-- The rows of late samples (before what is compacted) are found without a scan.
CREATE INDEX IF NOT EXISTS recent_by_min_ts ON recent (min_ts);
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    start INTEGER NOT NULL,
    host TEXT NOT NULL,
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL,
    count INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS blocks_by_period ON blocks (start, host);
CREATE INDEX IF NOT EXISTS blocks_by_host ON blocks (host, start);
CREATE TABLE IF NOT EXISTS rollups (
    step INTEGER NOT NULL,
    host TEXT NOT NULL,
    start INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (step, host, start)
);
CREATE INDEX IF NOT EXISTS rollups_by_start ON rollups (step, start);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    host TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    trigger_value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_by_end ON incidents (end_time);
CREATE TABLE IF NOT EXISTS pairs (
    rule TEXT NOT NULL,
    host TEXT NOT NULL,
    last_end INTEGER NOT NULL,
    PRIMARY KEY (rule, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    host TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    trigger_value REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_by_incident ON outbox (incident_id, target);
CREATE TABLE IF NOT EXISTS hook_calls (
    id INTEGER PRIMARY KEY,
    incident_id TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hook_calls_by_incident ON hook_calls (incident_id);
CREATE INDEX IF NOT EXISTS incidents_open ON incidents (rule, host) WHERE end_time IS NULL;
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    node TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reminders (
    incident_id TEXT NOT NULL,
    target TEXT NOT NULL,
    next_at INTEGER NOT NULL,
    PRIMARY KEY (incident_id, target)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS acks (
    incident_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS groups_sent (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    sent INTEGER NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY,
    ends_at INTEGER NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS published (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    node TEXT PRIMARY KEY,
    status TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS claims (
    delivery INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    until INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pair_states (
    rule TEXT NOT NULL,
    host TEXT NOT NULL,
    pending_since INTEGER,
    clear_since INTEGER,
    PRIMARY KEY (rule, host)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS once (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS once_by_expiry ON once (expires);
";

/// The file name of the store inside the data directory.
pub const FILE_NAME: &str = "alertd.sqlite";

/// Idle read connections kept open for the next reader.
const IDLE_READERS: usize = 8;

/// The embedded SQLite store.
///
/// One connection writes, and each reader takes a connection of its own (a
/// pool, grown on demand): in WAL mode readers see the last commit and
/// neither wait for the writer nor make it wait.
pub struct SqliteStore {
    /// The file, for error messages and for opening readers.
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// The next sample's sequence number, which orders samples of equal
    /// timestamp; only used with the writer locked.
    next_seq: AtomicI64,
    /// Each host's latest sample, updated after each commit.
    latest: Mutex<samples::LatestSamples>,
    /// See [`SqliteStore::compacting`].
    compacting: Mutex<()>,
    /// Tells the checkpointer that a commit added to the write-ahead log.
    committed: std::sync::mpsc::SyncSender<()>,
    /// What the history's integrity check found, once it has.
    history_damage: Arc<Mutex<Option<String>>>,
}

impl SqliteStore {
    /// Opens (creating if needed) `alertd.sqlite` in `data_dir`.
    pub fn open_dir(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Open {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open(&data_dir.join(FILE_NAME))
    }

    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let named = |error| named(path, error);
        let connection = Connection::open(path).map_err(|e| named(e.into()))?;
        let started = std::time::Instant::now();
        prepare(&connection).map_err(|error| damaged(path, error))?;
        let prepared = started.elapsed();
        check_integrity(&connection, &STATE_TABLES).map_err(|error| damaged(path, error))?;
        let checked = started.elapsed();
        let (next_seq, latest) =
            samples::load(&connection).map_err(|error| damaged(path, error))?;
        tracing::info!(
            file = %path.display(),
            prepared = ?prepared,
            checked = ?checked - prepared,
            loaded = ?started.elapsed() - checked,
            hosts = latest.len(),
            "store opened"
        );
        let checkpoints = open_reader(path).map_err(named)?;
        checkpoints
            .pragma_update(None, "query_only", false)
            .map_err(|e| named(e.into()))?;
        let (committed, commits) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".to_string())
            .spawn(move || checkpointer(checkpoints, commits))
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        let history = path.to_path_buf();
        let history_damage = Arc::new(Mutex::new(None));
        let found = history_damage.clone();
        // Nothing waits for it; it ends with the check.
        let _ = std::thread::Builder::new()
            .name("sqlite-history-check".to_string())
            .spawn(move || {
                if let Some(damage) = check_history(history) {
                    *found.lock().unwrap_or_else(|p| p.into_inner()) = Some(damage);
                }
            });
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(connection),
            readers: Mutex::new(Vec::new()),
            next_seq: AtomicI64::new(next_seq),
            latest: Mutex::new(latest),
            compacting: Mutex::new(()),
            committed,
            history_damage,
        })
    }

    /// Opens the store file in `data_dir` for reading only, beside a
    /// service that may be writing to it (`alertd export`). Refuses a file
    /// that is missing or has another schema version.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let named = |error| named(&path, error);
        if !path.is_file() {
            return Err(StoreError::Open {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here"),
            });
        }
        let connection = open_reader(&path).map_err(named)?;
        let found: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| named(e.into()))?;
        if found != SCHEMA_VERSION {
            return Err(StoreError::Version {
                found,
                known: SCHEMA_VERSION,
            });
        }
        // No checkpoints: nothing is written.
        let (committed, _) = std::sync::mpsc::sync_channel(1);
        Ok(SqliteStore {
            path: path.clone(),
            writer: Mutex::new(connection),
            readers: Mutex::new(Vec::new()),
            next_seq: AtomicI64::new(SampleCursor::MAX),
            latest: Mutex::new(Default::default()),
            compacting: Mutex::new(()),
            committed,
            history_damage: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs `write` on the writing connection.
    fn write<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave a transaction half
        // done (rusqlite rolls back on drop), so a poisoned lock is usable.
        let mut connection = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = write(&mut connection).map_err(|error| named(&self.path, error));
        if result.as_ref().is_err_and(is_disk_error) {
            // A write that the disk refused (full, most likely; the
            // transaction is rolled back): fold the write-ahead log into the
            // file and truncate it now, so that the space it held is free
            // for the next write rather than filled again before the next
            // checkpoint.
            let busy = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            });
            match busy {
                Ok(0) => tracing::warn!(
                    "the disk refused a write (full?): the write-ahead log is folded in \
                     and truncated to free its space"
                ),
                Ok(_) => tracing::warn!(
                    "the disk refused a write (full?); the write-ahead log could not be \
                     folded in yet (readers are using it): it will be at the next checkpoint"
                ),
                Err(error) => tracing::warn!(
                    %error,
                    "the disk refused a write (full?), and folding the write-ahead log in \
                     failed too (the file cannot grow either): it will be once space returns"
                ),
            }
        }
        // Full means the checkpointer has a notice waiting already.
        let _ = self.committed.try_send(());
        result
    }

    /// Runs `read` on a reading connection of its own.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.readers().pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_reader(&self.path).map_err(|error| named(&self.path, error))?,
        };
        let result = read(&connection).map_err(|error| named(&self.path, error));
        let mut readers = self.readers();
        if readers.len() < IDLE_READERS {
            readers.push(connection);
        }
        result
    }

    fn readers(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Backend {
            backend: "sqlite",
            source: Box::new(error),
        }
    }
}

/// Whether SQLite failed for want of disk space or a failed write.
fn is_disk_error(error: &StoreError) -> bool {
    let source = match error {
        StoreError::Backend { source, .. } | StoreError::File { source, .. } => source,
        _ => return false,
    };
    matches!(
        source.downcast_ref::<rusqlite::Error>(),
        Some(rusqlite::Error::SqliteFailure(failure, _))
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure
            )
    )
}

/// Names the file in a SQLite error.
fn named(path: &Path, error: StoreError) -> StoreError {
    match error {
        StoreError::Backend {
            backend: "sqlite",
            source,
        } => StoreError::File {
            path: path.display().to_string(),
            source,
        },
        other => other,
    }
}

/// How long the integrity check at start may take; past it, the service
/// starts without the rest of the check (and says so).
const INTEGRITY_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// The tables of the service's state and recent samples, checked before
/// the store opens. The history (blocks and rollups), most of a large file,
/// is checked after, on a thread of its own ([`check_history`]).
const STATE_TABLES: [&str; 10] = [
    "meta",
    "pair_states",
    "once",
    "recent",
    "incidents",
    "pairs",
    "outbox",
    "hook_calls",
    "lease",
    "claims",
];
const HISTORY_TABLES: [&str; 2] = ["blocks", "rollups"];

/// Checks the structure (`PRAGMA quick_check`) of `tables` within
/// [`INTEGRITY_CHECK_BUDGET`]: a damaged file is refused at start rather
/// than found by the requests that happen to read its damaged pages.
fn check_integrity(connection: &Connection, tables: &[&str]) -> Result<(), StoreError> {
    // Interrupted from another thread when the budget is spent.
    let interrupt = connection.get_interrupt_handle();
    let (finished, finishing) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let waited = finishing.recv_timeout(INTEGRITY_CHECK_BUDGET);
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            interrupt.interrupt();
        }
    });
    let mut found: Result<Vec<String>, rusqlite::Error> = Ok(vec!["ok".to_string()]);
    for table in tables {
        found = quick_check(connection, table);
        if found.as_ref().map_or(true, |lines| lines != &["ok"]) {
            break;
        }
    }
    drop(finished);
    let _ = watchdog.join();
    match found {
        Ok(lines) if lines == ["ok"] => Ok(()),
        Ok(lines) => Err(StoreError::Corrupt(lines.join("; ").replace('\n', "; "))),
        Err(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            tracing::warn!(
                budget = ?INTEGRITY_CHECK_BUDGET,
                "the store's integrity check did not finish in time; starting without it"
            );
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// The first problems `PRAGMA quick_check` finds in `table` and its
/// indexes, or `["ok"]`.
fn quick_check(connection: &Connection, table: &str) -> Result<Vec<String>, rusqlite::Error> {
    // At most 3 problems; the table name is one of ours.
    let mut check = connection.prepare(&format!("PRAGMA quick_check(\"{table}\")"))?;
    let lines = check
        .query_map([], |row| row.get::<_, String>(0))?
        .take(3)
        .collect::<Result<Vec<String>, _>>()?;
    Ok(lines)
}

/// Checks the history tables on a connection of its own, and says what it
/// found: damage there does not endanger alerting (the rule windows are
/// rebuilt from recent samples), so the service runs, logs an error with the
/// advice, and `/healthz` reports it ([`Coordination::damage`]); the
/// requests that read damaged pages fail with 503.
fn check_history(path: PathBuf) -> Option<String> {
    let connection = match open_reader(&path) {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(%error, "the history's integrity check could not start");
            return None;
        }
    };
    let started = std::time::Instant::now();
    for table in HISTORY_TABLES {
        let problems = match quick_check(&connection, table) {
            Ok(lines) if lines == ["ok"] => continue,
            Ok(lines) => lines.join("; ").replace('\n', "; "),
            // A table too damaged to be checked is damaged all the same.
            Err(rusqlite::Error::SqliteFailure(failure, message))
                if matches!(
                    failure.code,
                    rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
                ) =>
            {
                message.unwrap_or_else(|| failure.to_string())
            }
            Err(error) => {
                tracing::warn!(%error, table, "the history's integrity check failed");
                return None;
            }
        };
        let file = path.display();
        let damage = format!(
            "the sample history ({table}) of {file} is damaged ({problems}): reads of old \
             samples may fail; alerting goes on. Recover what the file holds while alertd is \
             stopped: sqlite3 {file} .recover | sqlite3 {file}.recovered, then put the \
             recovered file in its place"
        );
        tracing::error!("{damage}");
        return Some(damage);
    }
    tracing::debug!(elapsed = ?started.elapsed(), "the sample history is sound");
    None
}

/// Begins a write transaction that takes the file's write lock at once
/// (`BEGIN IMMEDIATE`): another writer on the file then waits for it, within
/// the busy timeout, instead of failing with "database is locked" when both
/// would turn a read into a write.
fn begin_write(connection: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    connection.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// A store that cannot be used as it is: damaged, or not a database at all.
/// Says so with the file and what the operator can do.
fn damaged(path: &Path, error: StoreError) -> StoreError {
    let sqlite = match &error {
        StoreError::Backend { source, .. } | StoreError::File { source, .. } => {
            source.downcast_ref::<rusqlite::Error>()
        }
        _ => None,
    };
    let corrupt = match (&error, sqlite) {
        (StoreError::Corrupt(detail), _) => Some(detail.clone()),
        (_, Some(rusqlite::Error::SqliteFailure(failure, message)))
            if matches!(
                failure.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Some(
                message
                    .clone()
                    .unwrap_or_else(|| failure.to_string())
                    .replace('\n', "; "),
            )
        }
        _ => None,
    };
    match corrupt {
        Some(detail) => {
            let path = path.display().to_string();
            StoreError::Damaged {
                advice: format!(
                    "Move it aside (with its -wal and -shm files) to start with an empty store, \
                     or recover what it holds: sqlite3 {path} .recover | sqlite3 \
                     {path}.recovered, then put the recovered file in its place"
                ),
                place: path,
                detail,
            }
        }
        None => named(path, error),
    }
}

/// Sets up the writing connection: WAL, full sync, the schema (moving the
/// samples of an older one).
fn prepare(connection: &Connection) -> Result<(), StoreError> {
    // 8 KiB pages: a block or an hour of rollups fits in one (a new file
    // only; an existing one keeps its page size).
    connection.pragma_update(None, "page_size", 8192)?;
    // Pages freed by a compaction or a deletion are given back to the file
    // system a bounded number at a time ([`SqliteStore::give_back_pages`]);
    // a new file only: an existing one keeps its mode until a VACUUM.
    connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit is on disk when it returns, even across a power loss.
    connection.pragma_update(None, "synchronous", "FULL")?;
    // 64 MiB of page cache: the pages of recent samples stay in memory.
    connection.pragma_update(None, "cache_size", -65_536)?;
    // Checkpoints run on their own thread (see `checkpointer`).
    connection.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a checkpoint, the write-ahead log shrinks back to at most 4 MiB.
    connection.pragma_update(None, "journal_size_limit", 4 * 1024 * 1024)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Version {
            found,
            known: SCHEMA_VERSION,
        });
    }
    let transaction = connection.unchecked_transaction()?;
    transaction.execute_batch(SCHEMA)?;
    samples::migrate_rows(&transaction)?;
    if found < 3 {
        rollups::add_all_hosts_rows(&transaction)?;
    }
    if found < 4 {
        rollups::add_hour_rows(&transaction)?;
    }
    // Added to version 2 files: dead deliveries.
    let has_dead: bool = transaction
        .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'dead'")?
        .exists([])?;
    if !has_dead {
        transaction
            .execute_batch("ALTER TABLE outbox ADD COLUMN dead INTEGER NOT NULL DEFAULT 0")?;
    }
    // Added with silences (issue 28): who holds a delivery back.
    let has_held: bool = transaction
        .prepare("SELECT 1 FROM pragma_table_info('outbox') WHERE name = 'held_by'")?
        .exists([])?;
    if !has_held {
        transaction.execute_batch("ALTER TABLE outbox ADD COLUMN held_by TEXT")?;
    }
    // Added in 0.1 (issue 26): what incidents carry beyond the original's
    // fields (see `Extra`).
    for table in ["incidents", "outbox"] {
        let has_extra: bool = transaction
            .prepare(&format!(
                "SELECT 1 FROM pragma_table_info('{table}') WHERE name = 'extra'"
            ))?
            .exists([])?;
        if !has_extra {
            transaction.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN extra TEXT"))?;
        }
    }
    // The data directory's lock makes this process the only one on the
    // file: a lease left by an earlier process is void.
    transaction.execute("UPDATE lease SET expires = 0", [])?;
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}

/// Copies committed pages from the write-ahead log into the database file
/// after commits, on its own connection and thread, so that a commit never
/// waits for a checkpoint (the writer's automatic checkpoints are off).
/// Passive: it never blocks the writer or a reader. Ends with the store.
fn checkpointer(connection: Connection, commits: std::sync::mpsc::Receiver<()>) {
    while commits.recv().is_ok() {
        if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "checkpoint failed; the next commit tries again");
        }
    }
}

/// A connection for reads only, on the file the writer set up.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.pragma_update(None, "query_only", true)?;
    // 16 MiB of page cache per reader.
    connection.pragma_update(None, "cache_size", -16_384)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(connection)
}
