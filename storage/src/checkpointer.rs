//! WAL checkpoints off the writer's path: a thread with its own connection copies the
//! write-ahead log back into the database, so the span writer never waits on that work
//! (or its fsync). Measured: the writer's own automatic checkpoints cost a third of ingest
//! throughput.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::connection::{open_rusqlite, poll_lock};
use crate::error::StorageError;

/// How often the log is copied back.
const INTERVAL: Duration = Duration::from_millis(100);
/// Log size (in 4 KiB pages, about 64 MiB) past which the checkpointer makes the writer
/// wait for a full checkpoint, so that the log starts over and stays bounded.
const RESTART_FRAMES: i64 = 16_384;
/// Log size (about 256 MiB) past which a full checkpoint waits for readers as long as it
/// takes (up to the busy timeout). Below it, it waits at most [`BRIEF_WAITS`] looks.
const PATIENT_FRAMES: i64 = 4 * RESTART_FRAMES;
/// Looks (a millisecond apart) a full checkpoint below [`PATIENT_FRAMES`] gives readers to
/// finish. While it waits, it holds the write lock, and a flow rule pass reads ranges of
/// new spans back to back: waiting for every read to end held span commits back for up to
/// the busy timeout. Given up (the pragma reports it busy), it is tried again 100 ms later.
const BRIEF_WAITS: i32 = 20;

/// A running checkpointer; stops (and its thread ends) when dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(crate) fn start(path: &Path) -> Result<Checkpointer, StorageError> {
        let connection = open_rusqlite(path, false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("causeway-checkpoint".into())
            .spawn(move || run(&connection, &stopped))
            .map_err(|source| StorageError::Create {
                path: path.to_owned(),
                source,
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The loop notices within one interval; a join error means it panicked, which
            // has already been reported on stderr.
            let _ = thread.join();
        }
    }
}

fn run(connection: &Connection, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(INTERVAL);
        match checkpoint(connection, "PASSIVE") {
            Ok(log_frames) if log_frames > RESTART_FRAMES => {
                let wait = if log_frames > PATIENT_FRAMES {
                    poll_lock
                } else {
                    poll_briefly
                };
                let restarted = connection
                    .busy_handler(Some(wait))
                    .and_then(|()| checkpoint(connection, "RESTART"));
                if let Err(error) = restarted {
                    tracing::warn!(error = %error, "wal restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "wal checkpoint failed"),
        }
    }
}

/// The busy handler of a full checkpoint that may give up: [`BRIEF_WAITS`] looks.
fn poll_briefly(attempts: i32) -> bool {
    attempts < BRIEF_WAITS && poll_lock(attempts)
}

/// Runs one checkpoint in `mode` and returns the log's size in frames.
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<i64> {
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_copied_back_and_the_thread_stops() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wal.db");
        let writer = Connection::open(&path)?;
        writer.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (x BLOB); INSERT INTO t VALUES (zeroblob(100000));",
        )?;
        // With automatic checkpoints off, the blob lives only in the log for now.
        assert!(std::fs::metadata(&path)?.len() < 100_000);
        let checkpointer = Checkpointer::start(&path)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path)?.len() < 100_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was never copied back"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let started = std::time::Instant::now();
        drop(checkpointer);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the thread stops when dropped"
        );
        Ok(())
    }

    #[test]
    fn a_long_read_does_not_hold_commits_back() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("wal.db");
        let writer = open_rusqlite(&path, true)?;
        writer.execute_batch("CREATE TABLE t (x BLOB)")?;
        // A reader whose snapshot predates the log's growth keeps the log from starting
        // over until it finishes.
        let reader = open_rusqlite(&path, false)?;
        reader.execute_batch("BEGIN")?;
        let _: i64 = reader.query_row("SELECT count(*) FROM t", [], |row| row.get(0))?;
        let past_restart = (RESTART_FRAMES + 1_000) * 4096;
        writer.execute("INSERT INTO t VALUES (zeroblob(?))", [past_restart])?;
        let checkpointer = Checkpointer::start(&path)?;
        // The read lasts three seconds; a full checkpoint that waited for it would hold
        // the write lock (and these commits) that long.
        let read_ends = std::time::Instant::now() + Duration::from_secs(3);
        let mut slowest = Duration::ZERO;
        while std::time::Instant::now() < read_ends {
            let started = std::time::Instant::now();
            writer.execute("INSERT INTO t VALUES (x'00')", [])?;
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            slowest < Duration::from_secs(1),
            "a commit waited {slowest:?} behind a checkpoint waiting for the reader"
        );
        reader.execute_batch("COMMIT")?;
        // Once the read is over, the log starts over again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            writer.execute("INSERT INTO t VALUES (x'00')", [])?;
            let frames = checkpoint(&writer, "PASSIVE")?;
            if frames < RESTART_FRAMES {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the log never started over ({frames} frames)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(checkpointer);
        Ok(())
    }
}
