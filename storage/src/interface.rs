//! The storage interface: what every backend (SQLite, PostgreSQL) answers, one trait per
//! part of causeway that uses the store. [`crate::Store`] dispatches each of its methods to
//! the backend it opened through these traits, and the conformance suite
//! (`storage/tests/conformance.rs`) runs the same cases against each backend.
//!
//! Methods return `Send` futures: the collector runs them on spawned tasks.

use std::future::Future;

use crate::alert_query::AlertRow;
use crate::correlation_search::CorrelationSearch;
use crate::error::StorageError;
use crate::flow_query::{CorrelationQuery, CorrelationRow};
use crate::ids::{SpanId, TraceId};
use crate::lag_group_query::LagGroupTopic;
use crate::lag_query::{LagSample, LagStatusRow, WaitingEvent};
use crate::record::SpanRecord;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::span_encode::EncodedSpans;
use crate::span_write::WriteSummary;
use crate::stitch_query::{LinkRef, Position};

/// The span writer and the reads by span, trace and correlation ID.
pub trait SpanStore {
    /// Upserts every span of every batch in one transaction, keyed on (trace id, span id):
    /// a retried span replaces its earlier copy. Returns once the transaction committed.
    fn write_spans(
        &self,
        batches: Vec<EncodedSpans>,
    ) -> impl Future<Output = Result<WriteSummary, StorageError>> + Send;

    /// Every span whose correlation ID is `correlation_id`, at most `limit`, oldest first,
    /// with their links.
    fn spans_by_correlation(
        &self,
        correlation_id: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<SpanRecord>, StorageError>> + Send;

    /// Every span of one trace, at most `limit`, oldest first, with their links.
    fn spans_by_trace(
        &self,
        trace_id: TraceId,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<SpanRecord>, StorageError>> + Send;

    /// Spans elsewhere that link to the given span (the reverse direction of links).
    fn spans_linking_to(
        &self,
        trace_id: TraceId,
        span_id: SpanId,
    ) -> impl Future<Output = Result<Vec<(TraceId, SpanId)>, StorageError>> + Send;

    /// Number of span rows stored.
    fn span_count(&self) -> impl Future<Output = Result<i64, StorageError>> + Send;
}

/// The reads that rebuild one flow (`causeway flow`, the dashboard's flow view).
pub trait FlowStore {
    /// The spans carrying one of `correlation_ids` and the spans without a correlation ID
    /// in the same traces, at most `limit` (oldest first).
    fn flow_spans(
        &self,
        correlation_ids: &[String],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<SpanRecord>, StorageError>> + Send;

    /// The correlation IDs the spans of `trace_id` carry, sorted, bounded.
    fn correlations_of_trace(
        &self,
        trace_id: TraceId,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;

    /// Every span of `traces`, at most `limit`, oldest first, with their links.
    fn spans_of_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<SpanRecord>, StorageError>> + Send;

    /// The links spans of other traces recorded into `traces`, at most `limit`.
    fn links_into_traces(
        &self,
        traces: &[TraceId],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<LinkRef>, StorageError>> + Send;

    /// The traces of send spans and parentless consumer spans at `positions`.
    fn traces_at_positions(
        &self,
        positions: &[Position],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<TraceId>, StorageError>> + Send;

    /// The traces of spans among the newest `scan_rows` whose attribute under one of
    /// `keys` is `value` (or an array holding it).
    fn traces_with_attribute(
        &self,
        keys: &[String],
        value: &str,
        scan_rows: i64,
    ) -> impl Future<Output = Result<Vec<TraceId>, StorageError>> + Send;
}

/// The flows list (`causeway flows`, the dashboard's list and search).
pub trait FlowListStore {
    /// Recent correlations, newest first, filtered and bounded by `query`.
    fn recent_correlations(
        &self,
        query: &CorrelationQuery,
    ) -> impl Future<Output = Result<Vec<CorrelationRow>, StorageError>> + Send;

    /// Flows that carry no correlation ID, newest first, as rows named by their trace.
    fn recent_flow_roots(
        &self,
        query: &CorrelationQuery,
    ) -> impl Future<Output = Result<Vec<CorrelationRow>, StorageError>> + Send;

    /// Correlations and flows without one merged by (start, ID), newest first.
    fn recent_flows(
        &self,
        query: &CorrelationQuery,
    ) -> impl Future<Output = Result<Vec<CorrelationRow>, StorageError>> + Send;

    /// One window of the flows list that matches a free text, newest first.
    fn search_correlations(
        &self,
        search: &CorrelationSearch,
    ) -> impl Future<Output = Result<Vec<CorrelationRow>, StorageError>> + Send;

    /// The correlation IDs of the newest [`crate::ATTRIBUTE_SCAN_SPANS`] spans for which
    /// every `(key, value)` of `filters` is carried by one of those spans (as a span or
    /// resource attribute; an uncorrelated span counts for the correlations of its trace),
    /// most recently written first, at most `limit`. May hold a few that callers must
    /// confirm (`causeway flows --where`).
    fn correlations_with_attributes(
        &self,
        filters: &[(String, String)],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;
}

/// Which consumer groups read which topics, learnt from stored traffic.
pub trait TopologyStore {
    /// Every `(topic, consumer group)` pair seen, sorted.
    fn topology(&self) -> impl Future<Output = Result<Vec<(String, String)>, StorageError>> + Send;
}

/// Consumer lag: samples, evaluated statuses, found groups, the oldest waiting event.
pub trait LagStore {
    /// Appends lag samples in one transaction.
    fn write_lag_samples(
        &self,
        samples: &[LagSample],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Every sample taken at or after `since_ns`, by group, topic, partition and time.
    fn lag_samples_since(
        &self,
        since_ns: i64,
    ) -> impl Future<Output = Result<Vec<LagSample>, StorageError>> + Send;

    /// Replaces the stored status of every partition in `rows` in one transaction.
    fn write_lag_status(
        &self,
        rows: &[LagStatusRow],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The latest status of every partition, by group, topic and partition.
    fn lag_status(&self) -> impl Future<Output = Result<Vec<LagStatusRow>, StorageError>> + Send;

    /// Keeps only the latest sample per bucket of `bucket_ns` among those older than
    /// `older_than_ns`; returns how many went.
    fn downsample_lag(
        &self,
        older_than_ns: i64,
        bucket_ns: i64,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Deletes samples before `cutoff_ns` and statuses not updated since.
    fn delete_lag_before(
        &self,
        cutoff_ns: i64,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// The send span of the first message at or after `committed_offset` on one partition.
    fn oldest_waiting_event(
        &self,
        topic: &str,
        partition: i32,
        committed_offset: i64,
    ) -> impl Future<Output = Result<Option<WaitingEvent>, StorageError>> + Send;

    /// Every group and topic the lag poller found, by group and topic.
    fn lag_groups(&self) -> impl Future<Output = Result<Vec<LagGroupTopic>, StorageError>> + Send;

    /// Replaces the found groups and forgets the rows of groups that are gone.
    fn save_lag_groups(
        &self,
        known: &[LagGroupTopic],
        gone: &[String],
        source: &str,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
}

/// Alert episodes.
pub trait AlertStore {
    /// Inserts or replaces alert episodes, keyed on fingerprint and start time.
    fn upsert_alerts(
        &self,
        alerts: &[AlertRow],
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// The most recently updated episodes, firing first, then pending, then resolved.
    fn alerts(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<AlertRow>, StorageError>> + Send;

    /// Every episode still pending or firing, oldest first: what a collector carries on
    /// with when it takes the lease (or restarts).
    fn unresolved_alerts(&self)
    -> impl Future<Output = Result<Vec<AlertRow>, StorageError>> + Send;
}

/// Dropping old history.
pub trait RetentionStore {
    /// Applies a retention policy to the stored spans.
    fn apply_retention(
        &self,
        policy: &RetentionPolicy,
    ) -> impl Future<Output = Result<RetentionReport, StorageError>> + Send;

    /// Bytes the store's data takes.
    fn used_bytes(&self) -> impl Future<Output = Result<i64, StorageError>> + Send;
}

/// Everything a backend answers.
pub trait Backend:
    SpanStore + FlowStore + FlowListStore + TopologyStore + LagStore + AlertStore + RetentionStore
{
    /// Whether causeway's schema exists in the database.
    fn has_schema(&self) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Stamps the database as the demo's (see [`crate::DatabaseOwner`]).
    fn mark_as_demo(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Closes every connection.
    fn close(self) -> impl Future<Output = ()> + Send;
}
