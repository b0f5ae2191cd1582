//! [`Store`]: the handle every other crate uses, on whichever backend its [`Database`]
//! names. Each method is answered by the backend through the traits of
//! [`crate::interface`].

use std::path::Path;

use crate::alert_query::AlertRow;
use crate::correlation_search::CorrelationSearch;
use crate::database::Database;
use crate::error::StorageError;
use crate::flow_query::{CorrelationQuery, CorrelationRow};
use crate::ids::{SpanId, TraceId};
use crate::interface::{
    AlertStore, Backend, FlowListStore, FlowStore, LagStore, RetentionStore, SpanStore,
    TopologyStore,
};
use crate::lag_group_query::LagGroupTopic;
use crate::lag_query::{LagSample, LagStatusRow, WaitingEvent};
use crate::lease::StoreLease;
use crate::postgres::PgStore;
use crate::record::SpanRecord;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::span_encode::EncodedSpans;
use crate::span_write::WriteSummary;
use crate::stitch_query::{LinkRef, Position};
use crate::store::SqliteStore;

/// A handle on one causeway store: an SQLite file (the default) or a PostgreSQL database.
///
/// A read-write store applies the schema migrations when opened; a read-only store never
/// writes, not even the schema.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Calls one backend method on whichever backend the store holds.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.inner {
            Inner::Sqlite($backend) => $call.await,
            Inner::Postgres($backend) => $call.await,
        }
    };
}

/// Declares [`Store`] methods that the backend answers through its interface traits.
macro_rules! dispatch {
    ($($(#[$doc:meta])* fn $name:ident(&self $(, $arg:ident: $type:ty)*) -> $output:ty;)*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $type)*) -> Result<$output, StorageError> {
                    on_backend!(self, backend => backend.$name($($arg),*))
                }
            )*
        }
    };
}

impl Store {
    /// Opens the store `database` names for reading and writing: an SQLite file is created
    /// (mode 0600) when missing; migrations are applied as needed.
    pub async fn open(database: impl Into<Database>) -> Result<Store, StorageError> {
        match database.into() {
            Database::Sqlite(path) => Ok(Store {
                inner: Inner::Sqlite(SqliteStore::open(&path).await?),
            }),
            Database::Postgres(url) => Ok(Store {
                inner: Inner::Postgres(PgStore::open(&url).await?),
            }),
        }
    }

    /// Opens an existing store for reading only. A missing SQLite file is an error, and
    /// the store is never modified through this handle.
    pub async fn open_read_only(database: impl Into<Database>) -> Result<Store, StorageError> {
        match database.into() {
            Database::Sqlite(path) => Ok(Store {
                inner: Inner::Sqlite(SqliteStore::open_read_only(&path).await?),
            }),
            Database::Postgres(url) => Ok(Store {
                inner: Inner::Postgres(PgStore::open_read_only(&url).await?),
            }),
        }
    }

    /// The flow rules' handle on this read-write store (their own connections on SQLite,
    /// the store's pool on PostgreSQL).
    pub fn flow_rule_store(&self) -> Result<crate::FlowRuleStore, StorageError> {
        match &self.inner {
            Inner::Sqlite(store) => Ok(crate::FlowRuleStore::sqlite(store.flow_rules()?)),
            Inner::Postgres(store) => Ok(crate::FlowRuleStore::postgres(store.flow_rules()?)),
        }
    }

    /// This collector's claim on the store's lease: who runs the lag poller, the lag rules
    /// and the alert hooks. Always held on an SQLite file (one writer); shared through an
    /// advisory lock on PostgreSQL.
    pub fn lease(&self) -> StoreLease {
        match &self.inner {
            Inner::Sqlite(_) => StoreLease::exclusive(),
            Inner::Postgres(store) => StoreLease::postgres(store.lease()),
        }
    }

    /// What `--db` names this store in a command shown to people (an alert's `causeway
    /// flow` commands): the SQLite file's path, or the PostgreSQL URL without its password.
    pub fn command_db(&self) -> String {
        match &self.inner {
            Inner::Sqlite(store) => store.path().display().to_string(),
            Inner::Postgres(store) => store.database.without_password(),
        }
    }

    /// The SQLite file this store reads, for a file store.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner {
            Inner::Sqlite(store) => Some(store.path()),
            Inner::Postgres(_) => None,
        }
    }

    /// How many span writes may commit at once: one on an SQLite file (one writer at a
    /// time), several on PostgreSQL, whose transactions run side by side (the flow rules
    /// read spans by writing transaction, so none is passed over).
    pub fn concurrent_writes(&self) -> usize {
        match &self.inner {
            Inner::Sqlite(_) => 1,
            Inner::Postgres(_) => crate::postgres::CONCURRENT_WRITES,
        }
    }

    /// Sets the spans per segment of an SQLite store's writer (tests and benchmarks that
    /// need small segments); other backends have no segments.
    pub fn set_segment_spans(&self, spans: i64) {
        match &self.inner {
            Inner::Sqlite(store) => store.set_segment_spans(spans),
            Inner::Postgres(_) => {}
        }
    }

    /// Writes spans as [`Store::write_spans`] does, recorded as stored at `ingested_ns`
    /// instead of now: for tests of retention by age.
    #[cfg(any(test, feature = "testsuite"))]
    pub async fn write_spans_ingested_at(
        &self,
        batches: Vec<EncodedSpans>,
        ingested_ns: i64,
    ) -> Result<WriteSummary, StorageError> {
        match &self.inner {
            Inner::Sqlite(store) => store.write_spans_at(batches, ingested_ns).await,
            Inner::Postgres(store) => store.write_spans_at(batches, ingested_ns).await,
        }
    }

    /// Closes every connection (an SQLite store checkpoints its log first).
    pub async fn close(self) {
        match self.inner {
            Inner::Sqlite(store) => Backend::close(store).await,
            Inner::Postgres(store) => Backend::close(store).await,
        }
    }
}

dispatch! {
    /// Upserts every span of every batch in one transaction, keyed on (trace id, span id):
    /// a retried span replaces its earlier copy. Returns once the transaction committed.
    fn write_spans(&self, batches: Vec<EncodedSpans>) -> WriteSummary;
    /// Every span whose correlation ID is `correlation_id`, at most `limit`, oldest first,
    /// with their links.
    fn spans_by_correlation(&self, correlation_id: &str, limit: i64) -> Vec<SpanRecord>;
    /// Every span of one trace, at most `limit`, oldest first, with their links.
    fn spans_by_trace(&self, trace_id: TraceId, limit: i64) -> Vec<SpanRecord>;
    /// Spans elsewhere that link to the given span (the reverse direction of links).
    fn spans_linking_to(&self, trace_id: TraceId, span_id: SpanId) -> Vec<(TraceId, SpanId)>;
    /// Number of span rows stored.
    fn span_count(&self) -> i64;
    /// Every span of the flow that `correlation_ids` name: the spans carrying one of them,
    /// and the spans without a correlation ID in the same traces. At most `limit` spans
    /// (oldest first) and [`crate::MAX_FLOW_CORRELATIONS`] IDs.
    fn flow_spans(&self, correlation_ids: &[String], limit: i64) -> Vec<SpanRecord>;
    /// The correlation IDs that spans of `trace_id` carry, sorted, at most
    /// [`crate::MAX_FLOW_CORRELATIONS`].
    fn correlations_of_trace(&self, trace_id: TraceId) -> Vec<String>;
    /// Every span of `traces`, at most `limit`, oldest first, with their links.
    fn spans_of_traces(&self, traces: &[TraceId], limit: i64) -> Vec<SpanRecord>;
    /// The links that spans of other traces recorded into `traces`, at most `limit`.
    fn links_into_traces(&self, traces: &[TraceId], limit: i64) -> Vec<LinkRef>;
    /// The traces of send spans and parentless consumer spans at `positions`, at most
    /// `limit`.
    fn traces_at_positions(&self, positions: &[Position], limit: i64) -> Vec<TraceId>;
    /// The traces of spans among the newest `scan_rows` whose attribute under one of
    /// `keys` is `value` (a string, or a string array holding it).
    fn traces_with_attribute(&self, keys: &[String], value: &str, scan_rows: i64)
        -> Vec<TraceId>;
    /// Recent correlations, newest first, filtered as `query` says and bounded by its
    /// limit. Page on with `before` set to the last row's (start, id).
    fn recent_correlations(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
    /// Flows that carry no correlation ID, newest first, as rows named by their trace.
    fn recent_flow_roots(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
    /// The flows list, newest first: correlations and flows without one merged by
    /// (start, ID), at most `query.limit`.
    fn recent_flows(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
    /// One window of the flows list, newest first, that match `search`.
    fn search_correlations(&self, search: &CorrelationSearch) -> Vec<CorrelationRow>;
    /// The correlation IDs of the newest [`crate::ATTRIBUTE_SCAN_SPANS`] spans for which
    /// every `(key, value)` of `filters` is carried by one of those spans (as a span or
    /// resource attribute), most recently written first, at most `limit`. May include a
    /// few correlations that do not match exactly: callers confirm each flow.
    fn correlations_with_attributes(&self, filters: &[(String, String)], limit: i64)
        -> Vec<String>;
    /// Every `(topic, consumer group)` pair seen in stored traffic.
    fn topology(&self) -> Vec<(String, String)>;
    /// Appends lag samples in one transaction.
    fn write_lag_samples(&self, samples: &[LagSample]) -> ();
    /// Every sample taken at or after `since_ns`, by group, topic, partition and time.
    fn lag_samples_since(&self, since_ns: i64) -> Vec<LagSample>;
    /// Replaces the stored status of every partition in `rows` in one transaction.
    fn write_lag_status(&self, rows: &[LagStatusRow]) -> ();
    /// The latest status of every partition, by group, topic and partition.
    fn lag_status(&self) -> Vec<LagStatusRow>;
    /// Keeps only the latest sample per bucket of `bucket_ns` among those older than
    /// `older_than_ns`; returns how many went.
    fn downsample_lag(&self, older_than_ns: i64, bucket_ns: i64) -> u64;
    /// Deletes samples taken before `cutoff_ns`, and statuses not updated since then.
    fn delete_lag_before(&self, cutoff_ns: i64) -> u64;
    /// The producer send span of the first message at or after `committed_offset` on one
    /// partition: the oldest event the group is still waiting to consume.
    fn oldest_waiting_event(&self, topic: &str, partition: i32, committed_offset: i64)
        -> Option<WaitingEvent>;
    /// Every group and topic the lag poller found, by group and topic.
    fn lag_groups(&self) -> Vec<LagGroupTopic>;
    /// Replaces the found groups with `known`, and forgets the lag status and `source`
    /// samples of the groups in `gone`, in one transaction.
    fn save_lag_groups(&self, known: &[LagGroupTopic], gone: &[String], source: &str) -> ();
    /// Inserts or updates alert episodes, keyed on fingerprint and start time.
    fn upsert_alerts(&self, alerts: &[AlertRow]) -> ();
    /// The most recently updated alert episodes, at most `limit`: firing first, then
    /// pending, then resolved, newest first within each.
    fn alerts(&self, limit: i64) -> Vec<AlertRow>;
    /// Every alert episode still pending or firing, oldest first: what a collector carries
    /// on with when it takes the lease (or restarts).
    fn unresolved_alerts(&self) -> Vec<AlertRow>;
    /// Applies a retention policy to the stored spans.
    fn apply_retention(&self, policy: &RetentionPolicy) -> RetentionReport;
    /// Bytes the store's data takes.
    fn used_bytes(&self) -> i64;
    /// Whether causeway's schema exists in the database.
    fn has_schema(&self) -> bool;
    /// Stamps the database as the demo's (see [`crate::DatabaseOwner`]).
    fn mark_as_demo(&self) -> ();
}
