//! The SQLite backend behind the storage interface: each trait method is the
//! [`SqliteStore`] method of the same name (the queries live in `span_query.rs`,
//! `flow_query.rs` and the other SQLite files).

use std::future::Future;

use crate::alert_query::AlertRow;
use crate::correlation_search::CorrelationSearch;
use crate::error::StorageError;
use crate::flow_query::{CorrelationQuery, CorrelationRow};
use crate::ids::{SpanId, TraceId};
use crate::interface::{
    AlertStore, Backend, FlowListStore, FlowStore, LagStore, RetentionStore, SpanStore,
    TopologyStore,
};
use crate::lag_group_query::LagGroupTopic;
use crate::lag_query::{LagSample, LagStatusRow, WaitingEvent};
use crate::record::SpanRecord;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::span_encode::EncodedSpans;
use crate::span_write::WriteSummary;
use crate::stitch_query::{LinkRef, Position};
use crate::store::SqliteStore;

/// Implements trait methods as calls of the [`SqliteStore`] methods of the same name.
macro_rules! forward {
    ($(fn $name:ident(&self $(, $arg:ident: $type:ty)*) -> $output:ty;)*) => {
        $(
            fn $name(
                &self
                $(, $arg: $type)*
            ) -> impl Future<Output = Result<$output, StorageError>> + Send {
                SqliteStore::$name(self $(, $arg)*)
            }
        )*
    };
}

impl SpanStore for SqliteStore {
    forward! {
        fn write_spans(&self, batches: Vec<EncodedSpans>) -> WriteSummary;
        fn spans_by_correlation(&self, correlation_id: &str, limit: i64) -> Vec<SpanRecord>;
        fn spans_by_trace(&self, trace_id: TraceId, limit: i64) -> Vec<SpanRecord>;
        fn spans_linking_to(&self, trace_id: TraceId, span_id: SpanId) -> Vec<(TraceId, SpanId)>;
        fn span_count(&self) -> i64;
    }
}

impl FlowStore for SqliteStore {
    forward! {
        fn flow_spans(&self, correlation_ids: &[String], limit: i64) -> Vec<SpanRecord>;
        fn correlations_of_trace(&self, trace_id: TraceId) -> Vec<String>;
        fn spans_of_traces(&self, traces: &[TraceId], limit: i64) -> Vec<SpanRecord>;
        fn links_into_traces(&self, traces: &[TraceId], limit: i64) -> Vec<LinkRef>;
        fn traces_at_positions(&self, positions: &[Position], limit: i64) -> Vec<TraceId>;
        fn traces_with_attribute(&self, keys: &[String], value: &str, scan_rows: i64)
            -> Vec<TraceId>;
    }
}

impl FlowListStore for SqliteStore {
    forward! {
        fn recent_correlations(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
        fn recent_flow_roots(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
        fn recent_flows(&self, query: &CorrelationQuery) -> Vec<CorrelationRow>;
        fn search_correlations(&self, search: &CorrelationSearch) -> Vec<CorrelationRow>;
        fn correlations_with_attributes(&self, filters: &[(String, String)], limit: i64)
            -> Vec<String>;
    }
}

impl TopologyStore for SqliteStore {
    forward! {
        fn topology(&self) -> Vec<(String, String)>;
    }
}

impl LagStore for SqliteStore {
    forward! {
        fn write_lag_samples(&self, samples: &[LagSample]) -> ();
        fn lag_samples_since(&self, since_ns: i64) -> Vec<LagSample>;
        fn write_lag_status(&self, rows: &[LagStatusRow]) -> ();
        fn lag_status(&self) -> Vec<LagStatusRow>;
        fn downsample_lag(&self, older_than_ns: i64, bucket_ns: i64) -> u64;
        fn delete_lag_before(&self, cutoff_ns: i64) -> u64;
        fn oldest_waiting_event(&self, topic: &str, partition: i32, committed_offset: i64)
            -> Option<WaitingEvent>;
        fn lag_groups(&self) -> Vec<LagGroupTopic>;
        fn save_lag_groups(&self, known: &[LagGroupTopic], gone: &[String], source: &str) -> ();
    }
}

impl AlertStore for SqliteStore {
    forward! {
        fn upsert_alerts(&self, alerts: &[AlertRow]) -> ();
        fn alerts(&self, limit: i64) -> Vec<AlertRow>;
        fn unresolved_alerts(&self) -> Vec<AlertRow>;
    }
}

impl RetentionStore for SqliteStore {
    forward! {
        fn apply_retention(&self, policy: &RetentionPolicy) -> RetentionReport;
        fn used_bytes(&self) -> i64;
    }
}

impl Backend for SqliteStore {
    forward! {
        fn has_schema(&self) -> bool;
        fn mark_as_demo(&self) -> ();
    }

    async fn close(self) {
        SqliteStore::close(self).await;
    }
}
