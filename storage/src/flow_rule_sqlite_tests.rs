//! Tests of the flow rules' SQLite writes.

use std::time::{Duration, Instant};

use super::*;
use crate::flow_rule_parts::ROWS_PER_TRANSACTION;
use crate::flow_rule_parts::tests::mark;

/// A large write lets another writer commit between its parts: in one transaction, the
/// other writer waited for the whole write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_commits_between_the_parts_of_a_large_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parts.db");
    let store = Store::open(&path).await.unwrap();
    let rules = store.flow_rules().unwrap();
    let other = open_rusqlite(&path, false).unwrap();
    other
        .execute_batch("CREATE TABLE beside (n INTEGER)")
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let committing = std::thread::spawn(move || {
        let mut commits = Vec::new();
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            other.execute("INSERT INTO beside VALUES (1)", []).unwrap();
            commits.push(Instant::now());
            std::thread::sleep(Duration::from_micros(200));
        }
        commits
    });
    let pass = FlowPassWrite {
        seen: (0..ROWS_PER_TRANSACTION * 40).map(mark).collect(),
        cursor: Some(1),
        ..FlowPassWrite::default()
    };
    let started = Instant::now();
    rules.write(pass).await.unwrap();
    let ended = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = committing.join().unwrap();
    // The longest the other writer waited: about one part, not the whole write.
    let longest = commits
        .windows(2)
        .filter(|pair| pair[1] > started && pair[0] < ended)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap();
    let took = ended - started;
    assert!(
        longest < took / 4,
        "the other writer waited {longest:?} at once during a write of {took:?}"
    );
    assert_eq!(rules.cursor().await.unwrap(), Some(1));
}
