//! Reading spans on rusqlite connections, for the reads a flow is loaded with (its spans,
//! the spans of the traces it reaches, the links into them).
//!
//! These reads return a few hundred rows of two dozen columns each. Through sqlx, every
//! column of every row was copied into its own value (`sqlite3_value_dup`) on the
//! connection's thread, handed to the async side over a channel, decoded there and freed:
//! perf of the flow benchmark put more of its time there than in SQLite's own search. Here
//! a blocking task steps the statement and decodes each column in place.
//!
//! Connections are read-only, with the reading pools' settings
//! (`connection::open_rusqlite_reader`), and are kept for reuse (at most
//! [`IDLE_CONNECTIONS`]); each caches its prepared statements.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, Row, params_from_iter};

use crate::connection::open_rusqlite_reader;
use crate::error::StorageError;
use crate::ids::{SpanId, TraceId};
use crate::record::{Messaging, SpanKind, SpanLink, SpanRecord, StatusCode};
use crate::span_query::ROWID_COLUMN;

/// Connections kept open between reads.
const IDLE_CONNECTIONS: usize = 4;
/// Prepared statements each connection keeps.
const CACHED_STATEMENTS: usize = 64;

/// Read-only rusqlite connections to one store file.
#[derive(Clone)]
pub(crate) struct SpanReaders {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl fmt::Debug for SpanReaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanReaders")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SpanReaders {
    /// Readers of the store at `path`; connections open on first use.
    pub(crate) fn new(path: &Path) -> SpanReaders {
        SpanReaders {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Runs `read` on a connection, on a blocking thread.
    pub(crate) async fn run<T, F>(&self, read: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let taken = inner.idle.lock().ok().and_then(|mut idle| idle.pop());
            let connection = match taken {
                Some(connection) => connection,
                None => open_rusqlite_reader(&inner.path, CACHED_STATEMENTS)
                    .map_err(StorageError::from_read)?,
            };
            let result = read(&connection).map_err(StorageError::from_read);
            if let Ok(mut idle) = inner.idle.lock()
                && idle.len() < IDLE_CONNECTIONS
            {
                idle.push(connection);
            }
            result
        })
        .await
        .map_err(|error| StorageError::Corrupt(format!("span read task failed: {error}")))?
    }
}

/// A span row (selected with `SPAN_COLUMNS`) and the rowid that orders its copies.
pub(crate) fn span_row(row: &Row<'_>) -> rusqlite::Result<(SpanRecord, i64)> {
    let parent = match row.get_ref(2)? {
        ValueRef::Null => None,
        value => Some(span_id(value.as_blob()?, 2)?),
    };
    let record = SpanRecord {
        trace_id: trace_id(row.get_ref(0)?.as_blob()?, 0)?,
        span_id: span_id(row.get_ref(1)?.as_blob()?, 1)?,
        parent_span_id: parent,
        name: text(row, 3)?,
        kind: SpanKind::from_code(row.get(4)?),
        service_name: text(row, 5)?,
        scope_name: text(row, 6)?,
        start_ns: row.get(7)?,
        end_ns: row.get(8)?,
        status_code: StatusCode::from_code(row.get(9)?),
        status_message: text(row, 10)?,
        attributes: json(row, 11)?,
        resource: json(row, 12)?,
        events: json(row, 13)?,
        links: Vec::new(),
        messaging: Messaging {
            correlation_id: row.get(14)?,
            message_id: row.get(15)?,
            event_type: row.get(16)?,
            destination: row.get(17)?,
            partition: row.get(18)?,
            offset: row.get(19)?,
            consumer_group: row.get(20)?,
            operation_type: row.get(21)?,
            message_key: row.get(22)?,
        },
    };
    Ok((record, row.get(ROWID_COLUMN)?))
}

/// A link row selected as (trace_id, span_id, linked_trace_id, linked_span_id,
/// attributes): the span that holds it, and the link.
pub(crate) fn link_row(row: &Row<'_>) -> rusqlite::Result<((TraceId, SpanId), SpanLink)> {
    let holder = (
        trace_id(row.get_ref(0)?.as_blob()?, 0)?,
        span_id(row.get_ref(1)?.as_blob()?, 1)?,
    );
    let link = SpanLink {
        trace_id: trace_id(row.get_ref(2)?.as_blob()?, 2)?,
        span_id: span_id(row.get_ref(3)?.as_blob()?, 3)?,
        attributes: json(row, 4)?,
    };
    Ok((holder, link))
}

/// Joins decoded spans (in the order to return) with their links. A span stored in two
/// segments (a retry after its segment closed) is returned once, as its newest copy, and
/// its links once each.
pub(crate) fn join_spans(
    rows: Vec<(SpanRecord, i64)>,
    links: Vec<((TraceId, SpanId), SpanLink)>,
) -> Vec<SpanRecord> {
    let mut links_by_span: HashMap<(TraceId, SpanId), Vec<SpanLink>> = HashMap::new();
    for (holder, link) in links {
        let known = links_by_span.entry(holder).or_default();
        if !known
            .iter()
            .any(|k| (k.trace_id, k.span_id) == (link.trace_id, link.span_id))
        {
            known.push(link);
        }
    }
    let mut newest: HashMap<(TraceId, SpanId), (usize, i64)> = HashMap::with_capacity(rows.len());
    let mut records: Vec<Option<SpanRecord>> = Vec::with_capacity(rows.len());
    for (record, rowid) in rows {
        let key = (record.trace_id, record.span_id);
        match newest.get(&key) {
            Some(&(_, kept)) if kept > rowid => continue,
            Some(&(older, _)) => records[older] = None,
            None => {}
        }
        newest.insert(key, (records.len(), rowid));
        records.push(Some(record));
    }
    records
        .into_iter()
        .flatten()
        .map(|mut record| {
            record.links = links_by_span
                .remove(&(record.trace_id, record.span_id))
                .unwrap_or_default();
            record
        })
        .collect()
}

fn text(row: &Row<'_>, index: usize) -> rusqlite::Result<String> {
    Ok(row.get_ref(index)?.as_str()?.to_owned())
}

fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    serde_json::from_slice(row.get_ref(index)?.as_bytes()?)
        .map_err(|error| corrupt(index, "json", error))
}

pub(crate) fn trace_id(bytes: &[u8], index: usize) -> rusqlite::Result<TraceId> {
    TraceId::from_bytes(bytes).map_err(|error| corrupt(index, "trace id", error))
}

pub(crate) fn span_id(bytes: &[u8], index: usize) -> rusqlite::Result<SpanId> {
    SpanId::from_bytes(bytes).map_err(|error| corrupt(index, "span id", error))
}

/// A column that does not hold what causeway wrote (`what`): reported as a conversion
/// failure of that column.
fn corrupt(index: usize, what: &str, error: impl fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Blob,
        format!("{what}: {error}").into(),
    )
}

impl SpanReaders {
    /// The spans `span_sql` selects (with `SPAN_COLUMNS`, in the order to return) joined
    /// with the links `link_sql` selects, the two read at once on two connections.
    pub(crate) async fn spans_with_links(
        &self,
        span_sql: String,
        span_params: Vec<Value>,
        link_sql: String,
        link_params: Vec<Value>,
    ) -> Result<Vec<SpanRecord>, StorageError> {
        let spans = self.run(move |connection| {
            let mut statement = connection.prepare_cached(&span_sql)?;
            statement
                .query_map(params_from_iter(span_params), span_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
        let links = self.run(move |connection| {
            let mut statement = connection.prepare_cached(&link_sql)?;
            statement
                .query_map(params_from_iter(link_params), link_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
        let (rows, links) = tokio::try_join!(spans, links)?;
        Ok(join_spans(rows, links))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::store::SqliteStore as Store;
    use crate::{EncodedSpans, testsuite};

    #[tokio::test]
    async fn a_column_causeway_did_not_write_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spans.db");
        let store = Store::open(&path).await.unwrap();
        let trace = TraceId([7; 16]);
        let span = testsuite::span(trace, SpanId([1; 8]))
            .send("orders")
            .build();
        store
            .write_spans(vec![EncodedSpans::encode(&[span])])
            .await
            .unwrap();
        assert_eq!(store.spans_by_trace(trace, 10).await.unwrap().len(), 1);
        let other = Connection::open(&path).unwrap();
        other
            .execute("UPDATE spans SET attributes = '{not json'", [])
            .unwrap();
        let error = store.spans_by_trace(trace, 10).await.unwrap_err();
        assert!(
            matches!(error, StorageError::Read(_)),
            "a corrupt attributes column is a read error: {error:?}"
        );
        other
            .execute("UPDATE spans SET attributes = '{}', span_id = x'0102'", [])
            .unwrap();
        let error = store.spans_by_trace(trace, 10).await.unwrap_err();
        assert!(
            error.to_string().contains("span id"),
            "a short span id is named: {error}"
        );
    }

    #[test]
    fn the_newest_copy_of_a_span_wins_and_its_links_come_once() {
        let trace = TraceId([1; 16]);
        let old = testsuite::span(trace, SpanId([1; 8])).name("old").build();
        let new = testsuite::span(trace, SpanId([1; 8])).name("new").build();
        let link = SpanLink {
            trace_id: TraceId([2; 16]),
            span_id: SpanId([2; 8]),
            attributes: serde_json::Map::new(),
        };
        let holder = (trace, SpanId([1; 8]));
        let joined = join_spans(
            vec![(new, 9), (old, 3)],
            vec![(holder, link.clone()), (holder, link)],
        );
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].name, "new");
        assert_eq!(joined[0].links.len(), 1);
    }
}
