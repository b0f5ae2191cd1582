//! The OTLP/HTTP metrics endpoint: `POST /v1/metrics` with protobuf or JSON bodies, plain,
//! gzip or zstd. Lag gauges are stored; other metrics are accepted and dropped.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use causeway_storage::Store;

use crate::otlp::body_decode::BodyFormat;
use crate::otlp::export_decode::METRICS;
use crate::otlp::http_receiver::{Refusal, decode_http, encode_response, refusal_response};
use crate::otlp::limits::ReceiverLimits;
use crate::otlp::metrics_grpc::store_metrics;
use crate::self_metrics::SelfMetrics;

/// Path of the OTLP/HTTP metrics endpoint.
pub const METRICS_PATH: &str = "/v1/metrics";

struct MetricsReceiver {
    store: Store,
    limits: ReceiverLimits,
    metrics: Arc<SelfMetrics>,
}

/// A router serving [`METRICS_PATH`], to merge beside the trace receiver.
pub fn router(store: Store, limits: ReceiverLimits, metrics: Arc<SelfMetrics>) -> Router {
    Router::new()
        .route(METRICS_PATH, post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(MetricsReceiver {
            store,
            limits,
            metrics,
        }))
}

async fn export(
    State(receiver): State<Arc<MetricsReceiver>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let format = match BodyFormat::from_content_type(content_type) {
        Ok(format) => format,
        Err(error) => {
            receiver.metrics.request_invalid();
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, error.to_string()).into_response();
        }
    };
    let decoded = match decode_http(&METRICS, &receiver.limits, format, &headers, body).await {
        Ok(decoded) => decoded,
        Err(refusal) => return refusal_response(format, refusal, &receiver.metrics),
    };
    match store_metrics(&receiver.store, &decoded.request).await {
        Ok(response) => encode_response(format, &response),
        Err(error) => refusal_response(
            format,
            Refusal::Retry(format!("cannot store lag samples: {error}")),
            &receiver.metrics,
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::memory_budget::MemoryBudget;
    use crate::otlp::limits::DecodeSlots;

    fn test_limits() -> ReceiverLimits {
        ReceiverLimits {
            max_body_bytes: 1 << 20,
            read_timeout: std::time::Duration::from_secs(5),
            budget: MemoryBudget::new(16 << 20),
            decoding: DecodeSlots::default(),
        }
    }

    const LAG_EXPORT: &str = r#"{"resourceMetrics":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"billing"}}]},
        "scopeMetrics":[{"metrics":[{"name":"kafka.consumer_group.lag","gauge":{"dataPoints":[
        {"attributes":[{"key":"group","value":{"stringValue":"billing"}},
        {"key":"topic","value":{"stringValue":"orders"}},
        {"key":"partition","value":{"intValue":"1"}}],"asInt":"12"}]}}]}]}]}"#;

    async fn post(store: &Store, content_type: &str, body: &'static str) -> StatusCode {
        let request = Request::post(METRICS_PATH)
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap();
        router(
            store.clone(),
            test_limits(),
            Arc::new(SelfMetrics::default()),
        )
        .oneshot(request)
        .await
        .unwrap()
        .status()
    }

    #[tokio::test]
    async fn json_lag_gauges_are_stored_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.db")).await.unwrap();
        assert_eq!(
            post(&store, "application/json", LAG_EXPORT).await,
            StatusCode::OK
        );
        let samples = store.lag_samples_since(0).await.unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].partition, samples[0].lag), (1, Some(12)));
        assert_eq!(samples[0].source, "otlp:billing");
        assert_eq!(
            post(&store, "application/json", "{not json").await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            post(&store, "text/plain", "x").await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(store.lag_samples_since(0).await.unwrap().len(), 1);
    }
}
