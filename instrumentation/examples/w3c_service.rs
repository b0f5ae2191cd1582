//! A test service for the W3C Trace Context test suite (github.com/w3c/trace-context,
//! `test/test.py`), whose propagation is causeway-instrumentation's own: `extract` of the
//! request headers → a send span under the extracted context → `inject` into the headers
//! of the outgoing call. `tests/w3c/run.sh` runs the suite against it.
//!
//! `POST /test` takes a JSON array of `{"url": …, "arguments": …}`; for each element the
//! service opens a send span, injects it and POSTs `arguments` to `url` with every header
//! `inject` wrote, then answers `200`.
//!
//! Usage: `cargo run -p causeway-instrumentation --example w3c_service -- [ADDRESS]`
//! (default `127.0.0.1:0`); it prints `listening on http://ADDRESS/test` once it accepts.

use std::error::Error;
use std::io::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use causeway_instrumentation::{Headers, MessageMeta, extract, inject, start_send_span};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde::Deserialize;

/// One call the harness asks for.
#[derive(Deserialize)]
struct Callback {
    url: String,
    #[serde(default)]
    arguments: serde_json::Value,
}

struct Service {
    tracer: SdkTracer,
    client: reqwest::Client,
}

/// The request headers as message headers: every value, repeated names kept.
fn received(headers: &HeaderMap) -> Headers {
    Headers::from_entries(
        headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), Some(value.as_bytes().to_vec())))
            .collect(),
    )
}

fn http_headers(headers: &Headers) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers.entries() {
        let Some(value) = value else { continue };
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?} cannot go over http: {e}"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|e| format!("header {name} value cannot go over http: {e}"))?;
        map.append(name, value);
    }
    Ok(map)
}

async fn call_back(
    client: &reqwest::Client,
    callback: &Callback,
    headers: &Headers,
) -> Result<(), String> {
    let body = serde_json::to_vec(&callback.arguments)
        .map_err(|e| format!("cannot encode arguments for {}: {e}", callback.url))?;
    let response = client
        .post(&callback.url)
        .headers(http_headers(headers)?)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("call to {} failed: {e}", callback.url))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {}", callback.url, response.status()))
    }
}

async fn handle(State(service): State<Arc<Service>>, headers: HeaderMap, body: Bytes) -> Response {
    let callbacks: Vec<Callback> = match serde_json::from_slice(&body) {
        Ok(callbacks) => callbacks,
        Err(e) => {
            let message = format!("request body is not a list of callbacks: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let extracted = extract(&received(&headers));
    for callback in &callbacks {
        let meta = MessageMeta::new("w3c-callback");
        let cx = start_send_span(&service.tracer, &meta, &extracted.context);
        let mut outgoing = Headers::new();
        inject(&cx, &mut outgoing, &meta);
        let result = call_back(&service.client, callback, &outgoing).await;
        cx.span().end();
        if let Err(message) = result {
            eprintln!("w3c_service: {message}");
            return (StatusCode::BAD_GATEWAY, message).into_response();
        }
    }
    ([(CONTENT_TYPE, "application/json")], "null").into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    // Sampled spans through the real SDK; nothing is exported.
    let provider = SdkTracerProvider::builder().build();
    let service = Arc::new(Service {
        tracer: provider.tracer("w3c-service"),
        client: reqwest::Client::new(),
    });
    let router = Router::new()
        .route("/test", post(handle))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    println!("listening on http://{}/test", listener.local_addr()?);
    std::io::stdout().flush()?;
    axum::serve(listener, router).await?;
    Ok(())
}
