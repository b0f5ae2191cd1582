//! The stitching patterns of standard instrumentations (docs/INTEROP.md), from the
//! collector's own decoding and conversion of the fixture files to the flow model: each
//! pattern gives the hops its fixture expects, and the flow does not depend on the order
//! the spans arrive in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use causeway_collector::otlp::body_decode::BodyFormat;
use causeway_collector::otlp::convert::convert_request;
use causeway_collector::otlp::messaging_fields::MessagingReader;
use causeway_flow::{ConsumerKind, EdgeKind, Flow, FlowOptions, Outcome, Topology, reconstruct};
use causeway_storage::SpanRecord;
use proptest::prelude::*;

fn fixture(dir: &str, name: &str) -> Vec<SpanRecord> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(dir)
        .join(format!("{name}.json"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let request = BodyFormat::Json
        .decode(&body, "ExportTraceServiceRequest")
        .expect("the fixture decodes as OTLP/JSON");
    let conversion = convert_request(request, &MessagingReader::default());
    assert_eq!(
        conversion.rejections.count, 0,
        "{name}: {:?}",
        conversion.rejections
    );
    conversion.spans
}

fn rebuild(spans: &[SpanRecord]) -> Flow {
    reconstruct(spans, &Topology::default(), &FlowOptions::default())
}

/// The consumers of the message on `topic` at `partition`/`offset`, as (service, group
/// kind, outcome).
fn consumers(flow: &Flow, topic: &str, offset: i64) -> Vec<(String, ConsumerKind, Outcome)> {
    let event = flow
        .events
        .iter()
        .position(|e| e.topic.as_deref() == Some(topic) && e.offset == Some(offset))
        .unwrap_or_else(|| panic!("no event {topic}@{offset}: {:#?}", flow.events));
    flow.hops
        .iter()
        .filter(|h| h.event == event)
        .map(|h| (h.service.clone(), h.consumer_kind, h.outcome))
        .collect()
}

#[test]
fn each_pattern_gives_its_hops() {
    use ConsumerKind::{Group, Service};
    use Outcome::{Processed, Received};
    // (fixture, topic, offset, expected consumers, reason)
    type Case = (
        &'static str,
        &'static str,
        i64,
        Vec<(&'static str, ConsumerKind, Outcome)>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "java-agent-default",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "1: child of the producer",
        ),
        (
            "java-agent-v143-receive",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "2+5: child plus a link, and a poll with one link per record",
        ),
        (
            "java-agent-old-receive",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "3: under a receive root with a link",
        ),
        (
            "dotnet-contrib",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "4: poll and process as separate roots with links",
        ),
        (
            "spring-kafka-batch",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "5: one batch span, a link per record",
        ),
        (
            "go-kotel-linkspans",
            "orders",
            41,
            vec![("billing-service", Group, Processed)],
            "6: a process span linked to the receive span",
        ),
        (
            "go-no-propagator",
            "orders",
            41,
            vec![("billing-service", Service, Received)],
            "7: no context, matched by position",
        ),
        (
            "go-kotel-default",
            "orders",
            41,
            vec![("billing-service", Service, Received)],
            "8: a receive span only, the producer's child",
        ),
    ];
    for (name, topic, offset, expected, reason) in cases {
        let flow = rebuild(&fixture("foreign", name));
        let expected: Vec<(String, ConsumerKind, Outcome)> = expected
            .into_iter()
            .map(|(s, k, o)| (s.to_owned(), k, o))
            .collect();
        assert_eq!(
            consumers(&flow, topic, offset),
            expected,
            "{name} ({reason})"
        );
    }
}

#[test]
fn a_link_to_ones_own_parent_is_one_edge_and_lost_context_is_marked() {
    let flow = rebuild(&fixture("foreign", "java-agent-v143-receive"));
    for edge in flow.edges.iter().filter(|e| e.kind == EdgeKind::Link) {
        assert!(
            !flow
                .edges
                .iter()
                .any(|p| p.kind == EdgeKind::Parent && (p.from, p.to) == (edge.from, edge.to)),
            "a link beside a parent edge: {edge:?}"
        );
    }
    let lost = rebuild(&fixture("foreign", "go-no-propagator"));
    assert!(
        lost.edges.iter().any(|e| e.kind == EdgeKind::Message),
        "spans joined by position alone are marked inferred"
    );
}

#[test]
fn a_chain_break_inside_a_service_is_bridged_as_inferred() {
    // kafka-python and .NET's poll end the consume span before the handler runs: the
    // handler's send has no trace context back to the consumption. Here, the billing
    // process span of the .NET fixture with its child removed from the trace.
    let mut spans = fixture("foreign", "dotnet-contrib");
    let billing_process = spans
        .iter()
        .find(|s| s.service_name == "billing-service" && s.name.starts_with("process"))
        .map(|s| (s.trace_id, s.span_id, s.messaging.message_key.clone()))
        .unwrap();
    for span in spans.iter_mut() {
        if span.parent_span_id == Some(billing_process.1) && span.name.starts_with("send") {
            span.parent_span_id = None;
            span.trace_id = causeway_storage::TraceId([0xab; 16]);
            span.messaging.message_key = Some("cust-42".into());
        }
    }
    for span in spans
        .iter_mut()
        .filter(|s| (s.trace_id, s.span_id) == (billing_process.0, billing_process.1))
    {
        span.messaging.message_key = Some("cust-42".into());
    }
    let flow = rebuild(&spans);
    assert!(
        flow.edges.iter().any(|e| e.kind == EdgeKind::Bridge),
        "the send is bridged to the consumption: {:?}",
        flow.edges
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arrival_order_does_not_change_the_flow(seed in any::<u64>(), which in 0usize..7) {
        let names = [
            ("foreign", "java-agent-v143-receive"),
            ("foreign", "spring-kafka-batch"),
            ("foreign", "go-kotel-linkspans"),
            ("foreign", "dotnet-contrib"),
            ("real", "python-confluent-chain"),
            ("real", "node-kafkajs-batch"),
            ("foreign", "go-no-propagator"),
        ];
        let (dir, name) = names[which];
        let spans = fixture(dir, name);
        let mut shuffled = spans.clone();
        // A Fisher-Yates shuffle driven by the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = (state % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(rebuild(&spans), rebuild(&shuffled));
    }
}
