//! The collector's own metrics, counted with atomics and served as Prometheus text on
//! `GET /metrics`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;

/// Path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// Spans committed to the store.
pub const SPANS_ACCEPTED: &str = "causeway_collector_spans_accepted_total";
/// Spans refused for bad ids (reported in `partial_success`).
pub const SPANS_REJECTED: &str = "causeway_collector_spans_rejected_total";
/// Spans refused because the writer was full (the exporter is asked to retry).
pub const SPANS_REFUSED: &str = "causeway_collector_spans_refused_total";
/// Spans whose batch failed to commit (the exporter was answered with an error).
pub const SPANS_FAILED: &str = "causeway_collector_spans_failed_total";
/// Malformed, oversized or wrongly typed requests.
pub const REQUESTS_INVALID: &str = "causeway_collector_requests_invalid_total";
/// OTLP records read from Kafka and stored.
pub const KAFKA_RECORDS_STORED: &str = "causeway_collector_kafka_records_stored_total";
/// OTLP records read from Kafka that were malformed or too large, and skipped.
pub const KAFKA_RECORDS_INVALID: &str = "causeway_collector_kafka_records_invalid_total";
/// Time to write and commit one batch.
pub const BATCH_COMMIT_SECONDS: &str = "causeway_collector_batch_commit_seconds";
/// Spans accepted but not yet committed.
pub const QUEUE_SPANS: &str = "causeway_collector_queue_spans";
/// 1 while this collector holds the store's lease (runs the lag poller, rules and hooks).
pub const LEASE_HELD: &str = "causeway_collector_lease_held";
/// Times this collector took the store's lease.
pub const LEASE_ACQUIRED: &str = "causeway_collector_lease_acquired_total";

/// Upper bounds of the commit latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Counters and gauges shared by the receivers and the writer.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    spans_accepted: AtomicU64,
    spans_rejected: AtomicU64,
    spans_refused: AtomicU64,
    spans_failed: AtomicU64,
    requests_invalid: AtomicU64,
    kafka_records_stored: AtomicU64,
    kafka_records_invalid: AtomicU64,
    queue_spans: AtomicU64,
    lease_held: AtomicU64,
    lease_acquired: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl SelfMetrics {
    /// Counts spans committed.
    pub fn spans_accepted(&self, spans: u64) {
        self.spans_accepted.fetch_add(spans, Ordering::Relaxed);
    }

    /// Counts spans rejected for bad ids.
    pub fn spans_rejected(&self, spans: u64) {
        self.spans_rejected.fetch_add(spans, Ordering::Relaxed);
    }

    /// Counts spans refused by backpressure.
    pub fn spans_refused(&self, spans: u64) {
        self.spans_refused.fetch_add(spans, Ordering::Relaxed);
    }

    /// Counts spans whose commit failed.
    pub fn spans_failed(&self, spans: u64) {
        self.spans_failed.fetch_add(spans, Ordering::Relaxed);
    }

    /// Counts one malformed or oversized request.
    pub fn request_invalid(&self) {
        self.requests_invalid.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one OTLP record from Kafka stored.
    pub fn kafka_record_stored(&self) {
        self.kafka_records_stored.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one malformed OTLP record from Kafka, skipped.
    pub fn kafka_record_invalid(&self) {
        self.kafka_records_invalid.fetch_add(1, Ordering::Relaxed);
    }

    /// Spans entered the writer's queue.
    pub fn queue_grew(&self, spans: u64) {
        self.queue_spans.fetch_add(spans, Ordering::Relaxed);
    }

    /// Spans left the writer's queue (committed or failed).
    pub fn queue_shrank(&self, spans: u64) {
        self.queue_spans.fetch_sub(spans, Ordering::Relaxed);
    }

    /// Records whether this collector holds the store's lease now; a change to held counts
    /// one acquisition.
    pub fn lease_held(&self, held: bool) {
        let before = self.lease_held.swap(u64::from(held), Ordering::Relaxed);
        if held && before == 0 {
            self.lease_acquired.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one batch commit's duration.
    pub fn commit_took(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Spans accepted so far (for tests and the shutdown log line).
    pub fn accepted_total(&self) -> u64 {
        self.spans_accepted.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let counters = [
            (
                SPANS_ACCEPTED,
                "Spans committed to the store.",
                &self.spans_accepted,
            ),
            (
                SPANS_REJECTED,
                "Spans rejected for invalid ids.",
                &self.spans_rejected,
            ),
            (
                SPANS_REFUSED,
                "Spans refused because the writer queue was full.",
                &self.spans_refused,
            ),
            (
                SPANS_FAILED,
                "Spans whose batch failed to commit.",
                &self.spans_failed,
            ),
            (
                REQUESTS_INVALID,
                "Malformed, oversized or unsupported requests.",
                &self.requests_invalid,
            ),
            (
                KAFKA_RECORDS_STORED,
                "OTLP records read from Kafka and stored.",
                &self.kafka_records_stored,
            ),
            (
                KAFKA_RECORDS_INVALID,
                "OTLP records read from Kafka that were malformed or too large, and skipped.",
                &self.kafka_records_invalid,
            ),
            (
                LEASE_ACQUIRED,
                "Times this collector took the store's lease.",
                &self.lease_acquired,
            ),
        ];
        for (name, help, value) in counters {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let queue = self.queue_spans.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "# HELP {QUEUE_SPANS} Spans accepted but not yet committed.\n# TYPE {QUEUE_SPANS} gauge\n{QUEUE_SPANS} {queue}"
        );
        let held = self.lease_held.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "# HELP {LEASE_HELD} 1 while this collector runs the lag poller, lag rules and alert hooks.\n# TYPE {LEASE_HELD} gauge\n{LEASE_HELD} {held}"
        );
        let name = BATCH_COMMIT_SECONDS;
        let _ = writeln!(
            text,
            "# HELP {name} Time to write and commit one batch.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
        text
    }
}

/// The `GET /metrics` router.
pub fn router(metrics: Arc<SelfMetrics>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(serve_metrics))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<SelfMetrics>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn render_reports_every_series() {
        let metrics = SelfMetrics::default();
        metrics.spans_accepted(10);
        metrics.spans_rejected(2);
        metrics.spans_refused(3);
        metrics.queue_grew(7);
        metrics.queue_shrank(5);
        metrics.commit_took(Duration::from_millis(3));
        metrics.commit_took(Duration::from_secs(10));
        let text = metrics.render();
        let cases: &[(&str, f64, &str)] = &[
            (SPANS_ACCEPTED, 10.0, "accepted spans are counted"),
            (SPANS_REJECTED, 2.0, "rejected spans are counted"),
            (SPANS_REFUSED, 3.0, "refused spans are counted"),
            (SPANS_FAILED, 0.0, "untouched counters read zero"),
            (QUEUE_SPANS, 2.0, "the queue gauge goes up and down"),
            (
                "causeway_collector_batch_commit_seconds_bucket{le=\"0.0025\"}",
                0.0,
                "3 ms is above 2.5 ms",
            ),
            (
                "causeway_collector_batch_commit_seconds_bucket{le=\"0.005\"}",
                1.0,
                "3 ms is within 5 ms",
            ),
            (
                "causeway_collector_batch_commit_seconds_bucket{le=\"5\"}",
                1.0,
                "10 s is past every bound",
            ),
            (
                "causeway_collector_batch_commit_seconds_bucket{le=\"+Inf\"}",
                2.0,
                "+Inf holds every batch",
            ),
            (
                "causeway_collector_batch_commit_seconds_count",
                2.0,
                "two batches",
            ),
            (
                "causeway_collector_batch_commit_seconds_sum",
                10.003,
                "sum of both, in seconds",
            ),
        ];
        for (series, expected, reason) in cases {
            assert_eq!(sample(&text, series), Some(*expected), "{reason}\n{text}");
        }
    }
}
