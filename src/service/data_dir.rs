//! The data directory: where it is, and the lock that keeps a second
//! `alertd run` out of it.
//!
//! Two services on one store would both evaluate, both record and both call
//! the hooks: duplicate incidents, every hook called twice. The first takes
//! an exclusive lock on `alertd.lock` in the directory and writes its process
//! id there; the operating system releases the lock when the process ends,
//! however it ends, so a SIGKILL needs no clean-up. The file itself stays.
//!
//! While the service runs, it checks every second that the files it writes
//! are still where they were ([`Watched`]): a lock file removed would let a
//! second instance in (the lock is taken again on a new file at once), and
//! a store file removed (`rm alertd.sqlite-wal`) would make everything
//! written since vanish at the next start, so the store is halted instead
//! (see `Service::watch_files`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Service;
use crate::config::Config;

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "alertd.lock";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data directory {dir} is in use by process {pid}")]
    InUse { dir: String, pid: String },
    #[error("data directory {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// Holds the data directory for this process until dropped (or the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    dir: PathBuf,
    file: File,
    /// Lock files replaced since the start: their locks are held too.
    replaced: Vec<File>,
}

impl DataDirLock {
    /// Creates the directory if needed and takes its lock, without waiting.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, DataDirError> {
        let io = |source| DataDirError::Io {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::InUse {
                    dir: dir.display().to_string(),
                    pid: if pid.is_empty() { "unknown" } else { pid }.to_string(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DataDirLock {
            dir: dir.to_path_buf(),
            file,
            replaced: Vec::new(),
        })
    }

    /// Checks that the lock file is still the one locked. One that was
    /// removed or replaced is made and locked again, so that no second
    /// instance can start beside this one (said at WARN); if another
    /// process took it meanwhile, that is the error returned.
    pub fn check(&mut self) -> Result<(), String> {
        let path = self.dir.join(LOCK_FILE);
        if same_file(&self.file, &path) {
            return Ok(());
        }
        match DataDirLock::acquire(&self.dir) {
            Ok(again) => {
                tracing::warn!(
                    file = %path.display(),
                    "the data directory's lock file was removed or replaced while alertd ran: \
                     locked it again"
                );
                let old = std::mem::replace(&mut self.file, again.file);
                self.replaced.push(old);
                Ok(())
            }
            Err(DataDirError::InUse { pid, .. }) => Err(format!(
                "{} was removed while alertd ran, and process {pid} took the data directory \
                 since: two services now write one store; stop the other one",
                path.display()
            )),
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }
}

/// Whether `path` still names the file `file` has open.
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

/// A file the store writes, held open from the start so that the check can
/// tell whether its path still names it.
#[derive(Debug)]
pub struct Watched {
    path: PathBuf,
    file: File,
}

impl Watched {
    /// The files of `paths` that exist now.
    pub fn files(paths: &[PathBuf]) -> Vec<Watched> {
        paths
            .iter()
            .filter_map(|path| {
                let file = File::open(path).ok()?;
                Some(Watched {
                    path: path.clone(),
                    file,
                })
            })
            .collect()
    }

    /// What is wrong with the file, if its path no longer names it.
    pub fn check(&self) -> Result<(), String> {
        if same_file(&self.file, &self.path) {
            return Ok(());
        }
        Err(format!(
            "{} was removed or replaced while alertd ran: what is written now would be lost at \
             the next start, so the store takes nothing more. Stop alertd with SIGTERM (not \
             SIGKILL: a clean stop writes what the removed file holds into the store) and start \
             it again",
            self.path.display()
        ))
    }
}

/// The files a running service checks: the data directory's lock (given by
/// `alertd run`, which took it) and the store's files.
#[derive(Debug, Default)]
pub struct Files {
    lock: Option<DataDirLock>,
    store: Vec<Watched>,
    /// What the last check found wrong, if anything.
    problem: Option<String>,
}

impl Files {
    pub(super) fn new(store: Vec<Watched>) -> Files {
        Files {
            store,
            ..Files::default()
        }
    }

    fn check(&mut self) -> Option<String> {
        let lock = self.lock.as_mut().map_or(Ok(()), DataDirLock::check);
        lock.and_then(|()| self.store.iter().try_for_each(Watched::check))
            .err()
    }
}

impl Service {
    /// Keeps the data directory's lock for the service's life, and checks
    /// it with the other files.
    pub fn hold_lock(&self, lock: DataDirLock) {
        super::lock(&self.files).lock = Some(lock);
    }

    /// What is wrong with the files the service writes, if anything.
    pub fn file_problem(&self) -> Option<String> {
        super::lock(&self.files).problem.clone()
    }
}

/// Checks the files every second: a problem halts the store (every call
/// fails with it, so that nothing is acknowledged that a restart would lose,
/// and nothing acts on a transition that was not kept) and is logged at
/// ERROR; the end of it lets the store go on.
pub(super) async fn watch_files(service: Arc<Service>, mut stop: watch::Receiver<bool>) {
    loop {
        let worker = service.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let mut files = super::lock(&worker.files);
            let found = files.check();
            let changed = found != files.problem;
            files.problem = found.clone();
            (found, changed)
        })
        .await;
        if let Ok((found, true)) = checked {
            match &found {
                Some(problem) => tracing::error!("{problem}"),
                None => tracing::info!("the data directory's files are in place again"),
            }
            service.observed.halt(found);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Resolves the data directory: `--data-dir` (relative to the current
/// directory), else `storage.dataDir`, else `data`, both relative to the
/// configuration file's directory, so that the service finds the same store
/// whatever directory it is started from.
pub fn data_dir(flag: Option<&Path>, config: &Config, config_path: &Path) -> PathBuf {
    if let Some(dir) = flag {
        return dir.to_path_buf();
    }
    let base = config_path.parent().unwrap_or(Path::new("."));
    base.join(config.storage.data_dir.as_deref().unwrap_or("data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let error = DataDirLock::acquire(dir.path()).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "data directory {} is in use by process {}",
                dir.path().display(),
                std::process::id()
            )
        );
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again once dropped");
    }

    #[test]
    fn a_removed_lock_file_is_locked_again_and_removed_files_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = DataDirLock::acquire(dir.path()).unwrap();
        lock.check().unwrap();
        std::fs::remove_file(dir.path().join(LOCK_FILE)).unwrap();
        lock.check().expect("locked again");
        assert!(
            DataDirLock::acquire(dir.path()).is_err(),
            "a second instance is kept out"
        );
        let store = dir.path().join("store");
        std::fs::write(&store, "x").unwrap();
        let watched = Watched::files(&[store.clone(), dir.path().join("absent")]);
        assert_eq!(watched.len(), 1);
        watched[0].check().unwrap();
        std::fs::remove_file(&store).unwrap();
        std::fs::write(&store, "x").unwrap();
        let error = watched[0].check().unwrap_err();
        assert!(error.contains("was removed or replaced"), "{error}");
    }

    #[test]
    fn the_default_data_directory_is_beside_the_config_file() {
        let config = Config::parse("{}", "test").unwrap().config;
        assert_eq!(
            data_dir(None, &config, Path::new("/etc/alertd/alertd.json")),
            Path::new("/etc/alertd/data")
        );
        assert_eq!(
            data_dir(Some(Path::new("here")), &config, Path::new("/etc/a.json")),
            Path::new("here")
        );
    }
}
