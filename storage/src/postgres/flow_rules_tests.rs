//! Tests of the PostgreSQL flow rules' ranges, on the database `CAUSEWAY_TEST_PG` names:
//! cut from the writers' records of their writes, and still covering spans that an older
//! build wrote without one (the conformance suite covers the rest).

use std::time::{Duration, Instant};

use super::*;
use crate::EncodedSpans;
use crate::database::PostgresUrl;
use crate::flow_rule_rows::FlowPassWrite;
use crate::ids::{SpanId, TraceId};
use crate::interface::SpanStore;
use crate::record::SpanRecord;
use crate::testsuite::{self, PgTestSchema};

/// `count` sends of one trace, with span ids from `first` on.
fn sends(trace: u8, first: u8, count: u8) -> Vec<SpanRecord> {
    (first..first + count)
        .map(|n| {
            testsuite::span(TraceId([trace; 16]), SpanId([n; 8]))
                .send("orders")
                .times(100 + i64::from(n), 200)
                .build()
        })
        .collect()
}

/// The span ids a pass after `after` reads, once `expected` of them are readable (another
/// test's transaction still running holds newer ones back for a moment).
async fn read_after(
    rules: &PgFlowRules,
    after: i64,
    expected: usize,
) -> (Vec<(i64, i64)>, Vec<SpanId>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ranges = rules.pass_ranges(after, 2, 1_000).await.unwrap();
        let mut read = Vec::new();
        for &(from, through) in &ranges {
            read.extend(rules.spans_in(from, through, false).await.unwrap());
        }
        if read.len() >= expected || Instant::now() > deadline {
            return (ranges, read.into_iter().map(|s| s.span_id).collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_come_from_the_writers_records_and_cover_writes_without_one() {
    let schema = PgTestSchema::create().await;
    let store = PgStore::open(&PostgresUrl::parse(&schema.url).unwrap())
        .await
        .unwrap();
    let rules = store.flow_rules().unwrap();
    let start = rules.newest_position().await.unwrap();
    let records = || async {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT xid::text::bigint, spans FROM span_writes ORDER BY xid",
        )
        .fetch_all(&store.pool)
        .await
        .unwrap()
    };

    // Three spans in one write: one record, with its count, under the spans' transaction.
    let first = sends(1, 1, 3);
    store
        .write_spans(vec![EncodedSpans::encode(&first)])
        .await
        .unwrap();
    let recorded = records().await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, 3, "the write's span count");
    let (ranges, read) = read_after(&rules, start, 3).await;
    assert_eq!(read, first.iter().map(|s| s.span_id).collect::<Vec<_>>());
    assert_eq!(
        ranges.last().map(|r| r.1),
        Some(recorded[0].0),
        "cut at the recorded write"
    );

    // An older build records nothing: with no record at all, the new spans are counted.
    sqlx::query("DELETE FROM span_writes")
        .execute(&store.pool)
        .await
        .unwrap();
    let (_, read) = read_after(&rules, start, 3).await;
    assert_eq!(read.len(), 3, "found without a record");

    // A recorded write after it: the range up to it holds the unrecorded write too.
    let second = sends(2, 10, 2);
    store
        .write_spans(vec![EncodedSpans::encode(&second)])
        .await
        .unwrap();
    let (ranges, read) = read_after(&rules, start, 5).await;
    let mut expected: Vec<SpanId> = first.iter().chain(&second).map(|s| s.span_id).collect();
    expected.sort_unstable_by_key(|id| id.0);
    let mut sorted = read.clone();
    sorted.sort_unstable_by_key(|id| id.0);
    assert_eq!(sorted, expected, "every span once: {ranges:?}");

    // A pass past the writes deletes their records.
    let through = ranges.last().unwrap().1;
    rules
        .write(FlowPassWrite {
            cursor: Some(through),
            ..FlowPassWrite::default()
        })
        .await
        .unwrap();
    assert!(records().await.is_empty(), "passed records are deleted");
    store.pool.close().await;
    schema.drop().await;
}
