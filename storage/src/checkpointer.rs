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

use crate::connection::open_rusqlite;
use crate::error::StorageError;

/// How often the log is copied back.
const INTERVAL: Duration = Duration::from_millis(100);
/// Log size (in 4 KiB pages, about 64 MiB) past which the checkpointer makes the writer
/// wait for a full checkpoint, so that the log starts over and stays bounded.
const RESTART_FRAMES: i64 = 16_384;

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
                if let Err(error) = checkpoint(connection, "RESTART") {
                    tracing::warn!(error = %error, "wal restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "wal checkpoint failed"),
        }
    }
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
}
