//! The OTLP/HTTP metrics endpoint: `POST /v1/metrics` with protobuf or JSON bodies, plain,
//! gzip or zstd. Lag gauges are stored; other metrics are accepted and dropped.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use causeway_storage::Store;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::metrics_grpc::store_metrics;

/// Path of the OTLP/HTTP metrics endpoint.
pub const METRICS_PATH: &str = "/v1/metrics";

struct MetricsReceiver {
    store: Store,
    max_body_bytes: usize,
}

/// A router serving [`METRICS_PATH`], to merge beside the trace receiver.
pub fn router(store: Store, max_body_bytes: usize) -> Router {
    Router::new()
        .route(METRICS_PATH, post(export))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(Arc::new(MetricsReceiver {
            store,
            max_body_bytes,
        }))
}

async fn export(
    State(receiver): State<Arc<MetricsReceiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let refused =
        |status: StatusCode, error: BodyError| (status, error.to_string()).into_response();
    let format = match BodyFormat::from_content_type(header(CONTENT_TYPE)) {
        Ok(format) => format,
        Err(error) => return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, error),
    };
    let encoding = match BodyEncoding::from_header(header(CONTENT_ENCODING)) {
        Ok(encoding) => encoding,
        Err(error) => return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, error),
    };
    let limit = receiver.max_body_bytes;
    let decoded = tokio::task::spawn_blocking(move || {
        let plain = encoding.decompress(body.to_vec(), limit)?;
        match format {
            BodyFormat::Protobuf => ExportMetricsServiceRequest::decode(plain.as_slice())
                .map_err(|error| BodyError::Malformed(error.to_string())),
            BodyFormat::Json => serde_json::from_slice(&plain)
                .map_err(|error| BodyError::Malformed(error.to_string())),
        }
    })
    .await;
    let request = match decoded {
        Ok(Ok(request)) => request,
        Ok(Err(error @ BodyError::TooLarge { .. })) => {
            return refused(StatusCode::PAYLOAD_TOO_LARGE, error);
        }
        Ok(Err(error)) => return refused(StatusCode::BAD_REQUEST, error),
        Err(error) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("request handling failed: {error}"),
            )
                .into_response();
        }
    };
    match store_metrics(&receiver.store, &request).await {
        Ok(response) => {
            let body = match format {
                BodyFormat::Protobuf => response.encode_to_vec(),
                BodyFormat::Json => {
                    serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec())
                }
            };
            ([(CONTENT_TYPE, format.content_type())], body).into_response()
        }
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot store lag samples: {error}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

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
        router(store.clone(), 1 << 20)
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
