//! One collector per database file: an exclusive lock on a file beside the database,
//! held for as long as the collector runs.
//!
//! SQLite lets two processes write one file in turn, so without this a second collector on
//! the same `--db` would start, acknowledge writes and run a second lag service (and
//! notify twice). The lock is an OS file lock (`flock`) on `<db>.lock`: the kernel drops
//! it when the holder exits, even on SIGKILL, so a crash never leaves a stale lock. The
//! holder writes its process id into the file so that the one refused can name it.
//!
//! The holder removes the file when it stops. A process that opened the file just before
//! it was removed could then lock a file no longer in the directory, so every locker
//! checks, once it holds the lock, that the path still names the file it locked, and
//! starts over when it does not.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// The suffix of the lock file beside a database (`causeway.db` → `causeway.db.lock`).
pub const LOCK_SUFFIX: &str = ".lock";

/// How many times a lock whose file was replaced under it is tried again.
const ATTEMPTS: usize = 8;

/// The exclusive right to write one database file, released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    /// The locked file; closing it releases the lock.
    file: File,
    /// Where it is.
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of the database at `db`, or fails at once with
    /// [`StorageError::InUse`] naming the process that holds it.
    pub fn acquire(db: &Path) -> Result<WriterLock, StorageError> {
        let path = lock_path(db);
        let io_error = |source| StorageError::LockFile {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        for _ in 0..ATTEMPTS {
            let mut file = open_lock_file(&path).map_err(io_error)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(StorageError::InUse {
                        path: db.to_owned(),
                        holder: holder_of(&mut file),
                    });
                }
                Err(TryLockError::Error(source)) => return Err(io_error(source)),
            }
            if !names_same_file(&path, &file).map_err(io_error)? {
                // The holder removed it between our open and our lock: lock the new one.
                continue;
            }
            file.set_len(0).map_err(io_error)?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
                .and_then(|()| file.flush())
                .map_err(io_error)?;
            return Ok(WriterLock { file, path });
        }
        Err(io_error(std::io::Error::other(
            "the lock file kept being replaced while locking it",
        )))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Removed while still locked; whoever opened it meanwhile notices and starts over.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// `<db>.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(LOCK_SUFFIX);
    PathBuf::from(name)
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// The process id the holder wrote, if it has written it yet.
fn holder_of(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Whether `path` still names the open `file` (false once it was removed or replaced).
fn names_same_file(path: &Path, file: &File) -> std::io::Result<bool> {
    let on_disk = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    let open = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(on_disk.dev() == open.dev() && on_disk.ino() == open.ino())
    }
    #[cfg(not(unix))]
    {
        Ok(on_disk.len() == open.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        let first = WriterLock::acquire(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("c.db.lock"));
        match WriterLock::acquire(&db) {
            Err(StorageError::InUse { path, holder }) => {
                assert_eq!(path, db);
                assert_eq!(holder, Some(std::process::id()), "the holder wrote its pid");
            }
            other => panic!("a second lock must be refused, got {other:?}"),
        }
        drop(first);
        assert!(!lock_path(&db).exists(), "the holder removes its lock file");
        let again = WriterLock::acquire(&db).unwrap();
        drop(again);
    }

    #[test]
    fn a_lock_file_left_by_a_killed_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.db");
        // A killed holder leaves its file (and pid) behind, but not its lock.
        std::fs::write(lock_path(&db), "999999\n").unwrap();
        let lock = WriterLock::acquire(&db).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }

    #[test]
    fn the_refusal_names_the_file_and_the_holder() {
        let error = StorageError::InUse {
            path: PathBuf::from("/data/causeway.db"),
            holder: Some(4242),
        };
        let text = error.to_string();
        assert!(text.contains("/data/causeway.db"), "{text}");
        assert!(text.contains("pid 4242"), "{text}");
    }
}
