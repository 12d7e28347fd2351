//! The data directory: where it is, and the lock that keeps a second
//! `alertd run` out of it.
//!
//! Two services on one store would both evaluate, both record and both call
//! the hooks: duplicate incidents, every hook called twice. The first takes
//! an exclusive lock on `alertd.lock` in the directory and writes its process
//! id there; the operating system releases the lock when the process ends,
//! however it ends, so a SIGKILL needs no clean-up. The file itself stays.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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
    _file: File,
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
        Ok(DataDirLock { _file: file })
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
