//! Fixture flows made by the real instrumentation over a real broker (tansu) and the real
//! collector, one flow per anomaly, each checked against a golden JSON document
//! (`causeway flow ID --format json`, with ids and times normalised) and by explicit
//! assertions on the facts that matter.
//!
//! All scenarios share one broker, one collector and one set of OTLP pipelines, and run
//! concurrently; each uses its own topics (the topology is learnt from all stored traffic,
//! so shared topics would make one scenario's groups missing in another) and its own
//! correlation ID. Consumers are assigned their partition and read from the beginning
//! (no group rebalance to wait for), and every scenario sends before it consumes, so
//! queue waits are never zero and the critical path keeps the same shape from run to run.
//!
//! Clock skew cannot be produced honestly on one machine (every process shares one clock):
//! it stays covered by the pure fixtures in `tui/src/flow/tests.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod facts;
mod golden;
mod scenarios;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use causeway_instrumentation::PipelineGuard;
use causeway_storage::Store;

use crate::flow::real_broker::pipeline;
use crate::flow::{causeway, json_of};
use crate::harness::{Broker, CollectorProcess, temp_dir};

/// How long any one wait (a message, the store) may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// The services of the fixture shop, each with its own OTLP pipeline.
const SERVICES: [&str; 5] = [
    "order-service",
    "billing-service",
    "payment-service",
    "shipping-service",
    "catalog-service",
];

/// The broker, the collector and one pipeline per service, shared by the scenarios.
pub(crate) struct World {
    broker: Broker,
    pipelines: BTreeMap<&'static str, PipelineGuard>,
}

/// Polls the store until every correlation has at least its expected number of spans.
async fn wait_for_spans(db: &Path, expected: &[(&str, usize)], collector: &CollectorProcess) {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut short = Vec::new();
        if let Ok(store) = Store::open_read_only(db).await {
            for &(correlation, count) in expected {
                let stored = store
                    .flow_spans(&[correlation.to_owned()], 1_000)
                    .await
                    .map(|spans| spans.len())
                    .unwrap_or(0);
                if stored < count {
                    short.push((correlation, stored, count));
                }
            }
            store.close().await;
        } else {
            short.push(("(store)", 0, 1));
        }
        if short.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spans never reached the store (correlation, stored, expected): {short:?}\n{}",
            collector.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_anomaly_from_real_traffic_matches_its_golden_flow() {
    let dir = temp_dir();
    let db = dir.path().join("causeway.db");
    let broker = Broker::start();
    for topic in scenarios::TOPICS {
        broker.create_topic(topic, 1);
    }
    let collector = CollectorProcess::start(&db, &[]);
    let pipelines = SERVICES
        .iter()
        .map(|&service| (service, pipeline(&collector, service)))
        .collect();
    let world = World { broker, pipelines };

    tokio::time::timeout(Duration::from_secs(60), scenarios::run_all(&world))
        .await
        .expect("every scenario ran in time");
    for (_, guard) in world.pipelines {
        guard.shutdown().await.expect("the pipeline flushes");
    }
    wait_for_spans(&db, scenarios::EXPECTED_SPANS, &collector).await;

    for check in facts::CHECKS {
        let flow = json_of(&causeway(
            &db,
            &["flow", check.correlation_id, "--format", "json"],
        ));
        (check.facts)(&flow);
        let normalised = golden::normalise(&flow);
        let text = serde_json::to_string_pretty(&normalised).expect("json encodes");
        insta::assert_snapshot!(check.correlation_id, text);
    }
}
