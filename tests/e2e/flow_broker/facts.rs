//! The facts each golden flow must show, asserted explicitly so that a test never passes
//! only because a snapshot was accepted.

use serde_json::Value;

use super::scenarios::DEAD_LETTER_TOPIC;

/// One golden flow: its correlation ID and the facts it must show.
pub(crate) struct Check {
    /// The correlation ID, also the snapshot's name.
    pub correlation_id: &'static str,
    /// Assertions on the flow document.
    pub facts: fn(&Value),
}

/// The flows compared with golden files.
pub(crate) const CHECKS: [Check; 9] = [
    Check {
        correlation_id: "flow-error",
        facts: error_facts,
    },
    Check {
        correlation_id: "flow-retried",
        facts: retried_facts,
    },
    Check {
        correlation_id: "flow-duplicate",
        facts: duplicate_facts,
    },
    Check {
        correlation_id: "flow-dead-letter",
        facts: dead_letter_facts,
    },
    Check {
        correlation_id: "flow-compensation",
        facts: compensation_facts,
    },
    Check {
        correlation_id: "flow-out-of-order",
        facts: out_of_order_facts,
    },
    Check {
        correlation_id: "flow-propagation-break",
        facts: propagation_break_facts,
    },
    Check {
        correlation_id: "flow-schema-change",
        facts: schema_change_facts,
    },
    Check {
        correlation_id: "flow-missing",
        facts: missing_facts,
    },
];

/// The outcome `flow` gives `group` on the event of `event_type`.
fn outcome(flow: &Value, event_type: &str, group: &str) -> String {
    let events = flow["events"].as_array().expect("events");
    let event = events
        .iter()
        .position(|e| e["event_type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} event in {flow:#}"));
    flow["verdicts"]
        .as_array()
        .expect("verdicts")
        .iter()
        .find(|v| v["event"] == event && v["consumer_group"] == group)
        .and_then(|v| v["outcome"].as_str())
        .unwrap_or_else(|| panic!("no verdict for {group} on {event_type} in {flow:#}"))
        .to_owned()
}

/// The anomalies of `kind`, each as the list of steps that prove it; panics unless there
/// is at least one and every one has proof.
fn proven(flow: &Value, kind: &str) -> Vec<Vec<usize>> {
    let found: Vec<Vec<usize>> = flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["kind"] == kind)
        .map(|a| {
            a["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|s| usize::try_from(s.as_u64().expect("a step index")).expect("fits"))
                .collect()
        })
        .collect();
    assert!(!found.is_empty(), "no {kind} anomaly in {flow:#}");
    assert!(
        found.iter().all(|proof| !proof.is_empty()),
        "a {kind} anomaly without proof: {flow:#}"
    );
    found
}

/// The anomaly kinds of `flow`, sorted and deduplicated.
fn kinds(flow: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter_map(|a| a["kind"].as_str().map(str::to_owned))
        .collect();
    kinds.dedup();
    kinds
}

/// The field `key` of step `index`, as text.
fn step_field(flow: &Value, index: usize, key: &str) -> String {
    match &flow["steps"][index][key] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The event types of `steps`.
fn event_types(flow: &Value, steps: &[usize]) -> Vec<String> {
    steps
        .iter()
        .map(|&step| step_field(flow, step, "event_type"))
        .collect()
}

fn error_facts(flow: &Value) {
    assert_eq!(outcome(flow, "order.placed.v1", "billing"), "failed");
    let proof = proven(flow, "error");
    assert_eq!(step_field(flow, proof[0][0], "service"), "billing-service");
    assert_eq!(step_field(flow, proof[0][0], "status"), "error");
    assert_eq!(flow["status"], "error");
}

fn retried_facts(flow: &Value) {
    assert_eq!(
        outcome(flow, "order.placed.v1", "billing"),
        "retried_then_processed"
    );
    assert_eq!(flow["hops"][0]["retries"], 1, "{flow:#}");
    assert_eq!(
        kinds(flow),
        Vec::<String>::new(),
        "a retry is not an anomaly"
    );
    assert_eq!(flow["status"], "ok");
}

fn duplicate_facts(flow: &Value) {
    let proof = proven(flow, "duplicate_delivery");
    assert_eq!(proof[0].len(), 2, "both deliveries prove it: {flow:#}");
    for step in &proof[0] {
        assert_eq!(step_field(flow, *step, "consumer_group"), "billing");
    }
    proven(flow, "redelivery");
    assert_eq!(outcome(flow, "order.placed.v1", "billing"), "processed");
}

fn dead_letter_facts(flow: &Value) {
    assert_eq!(
        outcome(flow, "payment.requested.v1", "payments"),
        "dead_lettered"
    );
    let proof = proven(flow, "dead_letter");
    let forward = *proof[0].last().expect("the forward");
    assert_eq!(step_field(flow, forward, "topic"), DEAD_LETTER_TOPIC);
    assert_eq!(step_field(flow, forward, "role"), "send");
    assert_eq!(flow["hops"][0]["retries"], 2, "{flow:#}");
    assert_eq!(flow["status"], "error");
}

fn compensation_facts(flow: &Value) {
    let proof = proven(flow, "compensation");
    assert_eq!(
        event_types(flow, &proof[0]),
        ["payment.refunded.v1", "payment.refunded.v1"],
        "the refund's send and processing prove it"
    );
    assert_eq!(outcome(flow, "order.placed.v1", "payments"), "processed");
    assert_eq!(outcome(flow, "payment.refunded.v1", "orders"), "processed");
}

fn out_of_order_facts(flow: &Value) {
    let proof = proven(flow, "out_of_order");
    let [earlier, later] = proof[0][..] else {
        panic!("two steps prove it: {flow:#}");
    };
    assert_eq!(step_field(flow, earlier, "event_type"), "order.placed.v1");
    assert_eq!(step_field(flow, later, "event_type"), "order.paid.v1");
    assert!(later < earlier, "the later event was processed first");
}

fn propagation_break_facts(flow: &Value) {
    let proofs = proven(flow, "propagation_break");
    let details: Vec<&str> = flow["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["kind"] == "propagation_break")
        .filter_map(|a| a["detail"].as_str())
        .collect();
    for expected in ["without its trace context", "re-published without"] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected:?} in {details:?}"
        );
    }
    assert_eq!(proofs.len(), 2, "one break per hop: {flow:#}");
    let message_edges = flow["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| e["kind"] == "message")
        .count();
    assert_eq!(message_edges, 1, "matched by message id only: {flow:#}");
    assert_eq!(flow["trace_ids"].as_array().map(Vec::len), Some(2));
}

fn schema_change_facts(flow: &Value) {
    let proof = proven(flow, "schema_change");
    assert_eq!(
        event_types(flow, &proof[0]),
        ["order.placed.v1", "order.placed.v2"]
    );
}

fn missing_facts(flow: &Value) {
    assert_eq!(outcome(flow, "order.placed.v1", "audit"), "not_seen_yet");
    assert_eq!(outcome(flow, "order.placed.v1", "billing"), "processed");
    let proof = proven(flow, "missing");
    assert_eq!(step_field(flow, proof[0][0], "role"), "send");
    assert_eq!(flow["status"], "incomplete");
}
