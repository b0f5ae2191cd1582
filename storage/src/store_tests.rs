//! Tests of opening the SQLite store: migrations (in order, with gaps, from older
//! files), permissions, refusing other applications' files, and a missing file.

use super::SqliteStore as Store;
use super::*;

#[tokio::test]
async fn a_lower_numbered_migration_added_later_is_still_applied()
-> Result<(), Box<dyn std::error::Error>> {
    assert_eq!(SCHEMA_VERSION, 9, "the highest number, wherever it stands");
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gap.db");
    create_owner_only(&path)?;
    // A file migrated by a build that had every migration but the flow roots (6).
    let without: Vec<(i64, &str, &str)> = MIGRATIONS
        .iter()
        .copied()
        .filter(|(version, _, _)| *version != 6)
        .collect();
    let old = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx_options(&path))
        .await?;
    migrator_of(&without).run(&old).await?;
    old.close().await;
    let refused = Store::open_read_only(&path).await;
    assert!(
        matches!(refused, Err(StorageError::OldSchema { found: 9, .. })),
        "the newest is there, one below it is not: {refused:?}"
    );
    Store::open(&path).await?.close().await;
    Store::open_read_only(&path).await?;
    Ok(())
}

#[tokio::test]
async fn new_database_is_owner_only_and_migrated() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("nested/causeway.db");
    let store = Store::open(&path).await?;
    assert!(store.has_schema().await?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    store.close().await;
    // Opening again applies nothing new and keeps working.
    let again = Store::open(&path).await?;
    assert!(again.has_schema().await?);
    Ok(())
}

/// A new file at `path` with the first `migrations` applied, as an older build left it.
async fn migrated_by_an_older_build(
    path: &Path,
    migrations: usize,
) -> Result<SqlitePool, Box<dyn std::error::Error>> {
    create_owner_only(path)?;
    let old = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(sqlx_options(path))
        .await?;
    migrator_of(&MIGRATIONS[..migrations]).run(&old).await?;
    Ok(old)
}

#[tokio::test]
async fn spans_stored_before_segments_are_read_and_upserted_after_the_migration()
-> Result<(), Box<dyn std::error::Error>> {
    use crate::{SpanId, TraceId};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("old.db");
    let old = migrated_by_an_older_build(&path, 2).await?;
    sqlx::query(
        "INSERT INTO spans (trace_id, span_id, name, kind, service_name, scope_name, \
         start_ns, end_ns, status_code, status_message, attributes, resource, events, \
         correlation_id, ingested_ns) \
         VALUES (?1, ?2, 'old', 4, 'orders', 't', 1, 2, 0, '', '{}', '{}', '[]', 'ord-1', 3)",
    )
    .bind(&[1_u8; 16][..])
    .bind(&[2_u8; 8][..])
    .execute(&old)
    .await?;
    sqlx::query("INSERT INTO span_links VALUES (?1, ?2, ?3, ?4, '{}')")
        .bind(&[1_u8; 16][..])
        .bind(&[2_u8; 8][..])
        .bind(&[5_u8; 16][..])
        .bind(&[6_u8; 8][..])
        .execute(&old)
        .await?;
    old.close().await;

    let refused = Store::open_read_only(&path).await;
    assert!(
        matches!(
            refused,
            Err(StorageError::OldSchema {
                found: 2,
                needed: SCHEMA_VERSION,
                ..
            })
        ),
        "a read-only open names the old schema instead of failing a query later"
    );
    let store = Store::open(&path).await?;
    Store::open_read_only(&path).await?;
    let spans = store.spans_by_trace(TraceId([1; 16]), 10).await?;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].links.len(), 1, "links move to the segmented table");
    assert_eq!(store.spans_by_correlation("ord-1", 10).await?.len(), 1);
    let mut retried = spans[0].clone();
    retried.name = "retried".into();
    store
        .write_spans(vec![crate::EncodedSpans::encode(&[retried])])
        .await?;
    assert_eq!(
        store.span_count().await?,
        1,
        "the retry replaced the old row"
    );
    let linking = store
        .spans_linking_to(TraceId([5; 16]), SpanId([6; 8]))
        .await?;
    assert_eq!(linking, [(TraceId([1; 16]), SpanId([2; 8]))]);
    Ok(())
}

#[tokio::test]
async fn due_items_keep_their_fields_and_are_found_by_their_send_after_migration_9()
-> Result<(), Box<dyn std::error::Error>> {
    use crate::{SpanId, TraceId};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("due.db");
    let old = migrated_by_an_older_build(&path, 8).await?;
    // A due item as the flow rules stored it before migration 9 (`write_pass`).
    sqlx::query(
        "INSERT INTO flow_due (send_span_id, rule, send_trace_id, due_ns, overdue, topic, \
         message_id, partition_id, kafka_offset, correlation_id, event_type, producer, \
         sent_ns, groups) VALUES (?1, 'late', ?2, 900, 0, 'orders', 'm1', 0, 7, 'ord-1', \
         NULL, 'checkout', 600, '[\"billing\",\"audit\"]')",
    )
    .bind(&[2_u8; 8][..])
    .bind(&[1_u8; 16][..])
    .execute(&old)
    .await?;
    old.close().await;

    let store = Store::open(&path).await?;
    let send = crate::testsuite::span(TraceId([1; 16]), SpanId([2; 8]))
        .times(600, 700)
        .send("orders")
        .message_id("m1")
        .build();
    store
        .write_spans(vec![crate::EncodedSpans::encode(&[send])])
        .await?;
    let rules = store.flow_rules()?;
    let found = rules
        .due_of_sends(vec![crate::SendRef {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            sent_ns: None,
        }])
        .await?;
    assert_eq!(found.len(), 1, "found through its send's stored start");
    assert_eq!(
        (found[0].sent_ns, found[0].due_ns, found[0].offset),
        (600, 900, Some(7))
    );
    assert_eq!(found[0].groups, ["billing", "audit"]);
    assert_eq!(found[0].correlation_id.as_deref(), Some("ord-1"));
    let due = rules.due_range(false, 1_000, 10).await?;
    assert_eq!(due, found, "and through the due-time index, rebuilt");
    let layout: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'flow_due'")
            .fetch_one(&store.reader)
            .await?;
    assert!(
        layout.contains("PRIMARY KEY (sent_ns, send_span_id, rule)"),
        "keyed by the send's start first: {layout}"
    );
    Ok(())
}

#[tokio::test]
async fn another_applications_file_is_refused_and_left_as_it_was()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("notes.db");
    let other = rusqlite::Connection::open(&path)?;
    other.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('x');")?;
    drop(other);
    match Store::open(&path).await {
        Err(error @ StorageError::Foreign { .. }) => {
            let text = error.to_string();
            assert!(text.contains("notes"), "the refusal names a table: {text}");
            assert!(text.contains("notes.db"), "and the file: {text}");
        }
        other => panic!("a foreign database must be refused, got {other:?}"),
    }
    let after = rusqlite::Connection::open(&path)?;
    let tables: Vec<String> = after
        .prepare("SELECT name FROM sqlite_master ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(tables, ["notes"], "nothing was added to it");

    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "my notes\n")?;
    assert!(matches!(
        Store::open(&text_file).await,
        Err(StorageError::NotSqlite { .. })
    ));
    assert_eq!(std::fs::read_to_string(&text_file)?, "my notes\n");

    // An empty file is a new store.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, "")?;
    Store::open(&empty).await?.close().await;
    Ok(())
}

#[tokio::test]
async fn read_only_open_of_missing_file_is_a_clear_error() {
    let result = Store::open_read_only(Path::new("/nonexistent/dir/causeway.db")).await;
    assert!(matches!(result, Err(StorageError::Missing { .. })));
}
