//! The service/topic/group graph of a flow: services publish to topics, topics deliver to
//! consumer groups, groups run in services.

use std::collections::BTreeMap;

use super::hops::Deliveries;
use super::model::{Graph, GraphEdge, Node, NodeKind, Outcome, Step};

/// Builds the graph; nodes are sorted by kind then name, edges by endpoints.
pub(crate) fn build(steps: &[Step], deliveries: &Deliveries) -> Graph {
    let mut nodes: BTreeMap<Node, usize> = BTreeMap::new();
    for step in steps {
        nodes.insert(node(NodeKind::Service, &step.service), 0);
    }
    for event in &deliveries.events {
        if let Some(topic) = &event.topic {
            nodes.insert(node(NodeKind::Topic, topic), 0);
        }
    }
    for verdict in &deliveries.verdicts {
        nodes.insert(node(NodeKind::ConsumerGroup, &verdict.consumer_group), 0);
    }
    for (position, index) in nodes.values_mut().enumerate() {
        *index = position;
    }
    let id = |kind, name: &str| nodes.get(&node(kind, name)).copied();
    let mut edges: BTreeMap<(usize, usize), (usize, bool)> = BTreeMap::new();
    let mut add = |from: Option<usize>, to: Option<usize>, failed: bool| {
        if let (Some(from), Some(to)) = (from, to) {
            let entry = edges.entry((from, to)).or_insert((0, false));
            entry.0 += 1;
            entry.1 |= failed;
        }
    };
    for event in &deliveries.events {
        let Some(topic) = &event.topic else { continue };
        if let Some(producer) = &event.producer {
            add(
                id(NodeKind::Service, producer),
                id(NodeKind::Topic, topic),
                false,
            );
        }
    }
    for verdict in &deliveries.verdicts {
        let event = &deliveries.events[verdict.event];
        let Some(topic) = &event.topic else { continue };
        let failed = matches!(
            verdict.outcome,
            Outcome::Failed | Outcome::DeadLettered | Outcome::NotSeenYet
        );
        add(
            id(NodeKind::Topic, topic),
            id(NodeKind::ConsumerGroup, &verdict.consumer_group),
            failed,
        );
    }
    for hop in &deliveries.hops {
        add(
            id(NodeKind::ConsumerGroup, &hop.consumer_group),
            id(NodeKind::Service, &hop.service),
            hop.outcome == Outcome::Failed,
        );
    }
    Graph {
        nodes: nodes.into_keys().collect(),
        edges: edges
            .into_iter()
            .map(|((from, to), (messages, failed))| GraphEdge {
                from,
                to,
                messages,
                failed,
            })
            .collect(),
    }
}

fn node(kind: NodeKind, name: &str) -> Node {
    Node {
        kind,
        name: name.to_owned(),
    }
}
