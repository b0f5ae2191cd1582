//! The one loader from an ID to the spans of its flow, used by `causeway flow`, the
//! dashboard and every other reader, so the same ID opens the same flow everywhere.
//!
//! An ID is a trace ID (32 hex digits) or a correlation ID. A trace ID opens the flows of
//! every correlation its spans carry, stitched into one; a trace that carries none opens
//! alone. Anything else, or a trace ID no span has, is looked up as a correlation ID.

use causeway_storage::{SpanRecord, StorageError, Store, TraceId};

use crate::{Flow, FlowOptions, Topology, reconstruct};

/// Most spans read for one flow.
pub const FLOW_SPAN_LIMIT: i64 = 20_000;

/// The spans of one flow, as read for an ID.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSpans {
    /// The ID they were read for, as given.
    pub id: String,
    /// The spans, oldest first.
    pub spans: Vec<SpanRecord>,
    /// Whether [`FLOW_SPAN_LIMIT`] cut the flow short.
    pub truncated: bool,
}

/// Reads the spans of the flow `id` names; `None` when no span matches it.
pub async fn load_spans(store: &Store, id: &str) -> Result<Option<FlowSpans>, StorageError> {
    let mut spans = Vec::new();
    if let Ok(trace_id) = id.parse::<TraceId>() {
        let correlations = store.correlations_of_trace(trace_id).await?;
        spans = if correlations.is_empty() {
            store.spans_by_trace(trace_id, FLOW_SPAN_LIMIT).await?
        } else {
            store.flow_spans(&correlations, FLOW_SPAN_LIMIT).await?
        };
    }
    if spans.is_empty() {
        spans = store
            .flow_spans(std::slice::from_ref(&id.to_owned()), FLOW_SPAN_LIMIT)
            .await?;
    }
    if spans.is_empty() {
        return Ok(None);
    }
    let truncated = i64::try_from(spans.len()).unwrap_or(i64::MAX) >= FLOW_SPAN_LIMIT;
    Ok(Some(FlowSpans {
        id: id.to_owned(),
        spans,
        truncated,
    }))
}

/// The consumer groups expected on each topic, learnt from stored traffic.
pub async fn load_topology(store: &Store) -> Result<Topology, StorageError> {
    Ok(Topology::from_pairs(store.topology().await?))
}

/// Reads and rebuilds the flow `id` names with `options`; `None` when no span matches it.
pub async fn load_flow(
    store: &Store,
    id: &str,
    options: &FlowOptions,
) -> Result<Option<(FlowSpans, Flow)>, StorageError> {
    let Some(spans) = load_spans(store, id).await? else {
        return Ok(None);
    };
    let topology = load_topology(store).await?;
    let flow = reconstruct(&spans.spans, &topology, options);
    Ok(Some((spans, flow)))
}
