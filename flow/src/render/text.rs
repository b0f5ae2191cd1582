//! The text rendering of a flow: a header, a tree of steps (children and the processes of
//! each sent message under their cause), per-event verdicts with hop timings, anomalies,
//! and the critical path with each kind's share.

use std::collections::BTreeSet;
use std::fmt::Write;

use causeway_storage::StatusCode;

use super::{clean, human_duration};
use crate::{ConsumerKind, EdgeKind, Flow, Outcome, SegmentKind, StepIndex};

/// The flow as readable text, ending with a newline.
pub fn text(flow: &Flow) -> String {
    let mut out = String::new();
    header(flow, &mut out);
    tree(flow, &mut out);
    events(flow, &mut out);
    anomalies(flow, &mut out);
    critical_path(flow, &mut out);
    out
}

fn header(flow: &Flow, out: &mut String) {
    let ids: Vec<String> = flow
        .correlation_ids
        .iter()
        .map(|id| clean(id).into_owned())
        .collect();
    let _ = writeln!(
        out,
        "flow {}  status {}  duration {}  spans {}  traces {}  events {}",
        if ids.is_empty() {
            "(no correlation id)".to_owned()
        } else {
            ids.join(", ")
        },
        snake_name(&flow.status),
        human_duration(flow.duration_ns),
        flow.steps.len(),
        flow.trace_ids.len(),
        flow.events.len()
    );
    let services: Vec<String> = flow
        .services
        .iter()
        .map(|s| clean(s).into_owned())
        .collect();
    let _ = writeln!(out, "services: {}", services.join(", "));
}

/// Each step hangs under its parent, or else under the send it consumed (marked `⇢`).
fn tree(flow: &Flow, out: &mut String) {
    let count = flow.steps.len();
    let mut cause: Vec<Option<(StepIndex, EdgeKind)>> = vec![None; count];
    for edge in &flow.edges {
        let slot = &mut cause[edge.to];
        let better = match slot {
            None => true,
            Some((_, kind)) => *kind != EdgeKind::Parent && edge.kind == EdgeKind::Parent,
        };
        if better {
            *slot = Some((edge.from, edge.kind));
        }
    }
    let mut children: Vec<Vec<(StepIndex, EdgeKind)>> = vec![Vec::new(); count];
    for (index, cause) in cause.iter().enumerate() {
        if let Some((from, kind)) = cause {
            children[*from].push((index, *kind));
        }
    }
    let marked: BTreeSet<StepIndex> = flow
        .anomalies
        .iter()
        .flat_map(|a| a.steps.clone())
        .collect();
    out.push_str("\nsteps\n");
    let mut printed = vec![false; count];
    // Roots first; then anything left unprinted (cycles with no root) as roots too.
    let roots: Vec<StepIndex> = (0..count).filter(|&i| cause[i].is_none()).collect();
    for root in roots.into_iter().chain(0..count) {
        if printed[root] {
            continue;
        }
        let mut stack = vec![(root, 0usize, EdgeKind::Parent)];
        while let Some((index, depth, kind)) = stack.pop() {
            if printed[index] {
                continue;
            }
            printed[index] = true;
            step_line(flow, index, depth, kind, marked.contains(&index), out);
            for &(child, kind) in children[index].iter().rev() {
                if !printed[child] {
                    stack.push((child, depth + 1, kind));
                }
            }
        }
    }
}

fn step_line(
    flow: &Flow,
    index: StepIndex,
    depth: usize,
    kind: EdgeKind,
    marked: bool,
    out: &mut String,
) {
    let step = &flow.steps[index];
    let branch = match (depth, kind) {
        (0, _) => "",
        (_, EdgeKind::Parent) => "└─ ",
        (_, EdgeKind::Link | EdgeKind::Message | EdgeKind::Bridge) => "⇢ ",
    };
    let mut line = format!(
        "#{index:<3} {}{branch}{}  {}  {}",
        "   ".repeat(depth.min(40)),
        clean(&step.service),
        clean(&step.name),
        human_duration(step.duration_ns)
    );
    if let Some(topic) = &step.topic {
        let _ = write!(line, "  [{}", clean(topic));
        if let Some(event_type) = &step.event_type {
            let _ = write!(line, " {}", clean(event_type));
        }
        line.push(']');
    }
    if let Some(group) = &step.consumer_group {
        let _ = write!(line, "  group {}", clean(group));
    }
    if depth > 0 && kind == EdgeKind::Bridge {
        line.push_str("  (inferred: same service, no trace context)");
    }
    if step.status == StatusCode::Error {
        let _ = write!(line, "  ✗ {}", clean(&step.status_message));
    }
    if step.missing_parent {
        line.push_str("  (parent not stored)");
    }
    if marked {
        line.push_str("  !");
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn events(flow: &Flow, out: &mut String) {
    if flow.events.is_empty() {
        return;
    }
    out.push_str("\nevents\n");
    for (index, event) in flow.events.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {}  {}  message {}{}",
            clean(event.topic.as_deref().unwrap_or("(no topic)")),
            clean(event.event_type.as_deref().unwrap_or("(no type)")),
            clean(&event.message_id),
            event
                .producer
                .as_deref()
                .map(|p| format!("  from {}", clean(p)))
                .unwrap_or_default()
        );
        for verdict in flow.verdicts.iter().filter(|v| v.event == index) {
            let consumer = match verdict.consumer_kind {
                ConsumerKind::Group => clean(&verdict.consumer_group).into_owned(),
                // The spans name no group: the consuming service stands in for it.
                ConsumerKind::Service => format!("{} (service)", clean(&verdict.consumer_group)),
            };
            let mut line = format!("    {consumer:<20} {}", outcome_name(verdict.outcome));
            if let Some(hop) = verdict.hop.map(|h| &flow.hops[h]) {
                if let Some(wait) = hop.queue_wait_ns {
                    let _ = write!(line, "  queue {}", human_duration(wait));
                    if hop.clock_skew {
                        line.push_str(" (clock skew)");
                    }
                }
                let _ = write!(line, "  processing {}", human_duration(hop.processing_ns));
                if hop.retries > 0 {
                    let _ = write!(
                        line,
                        "  retries {}  back-off {}",
                        hop.retries,
                        human_duration(hop.backoff_ns)
                    );
                }
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Processed => "processed",
        Outcome::Failed => "FAILED",
        Outcome::RetriedThenProcessed => "retried, then processed",
        Outcome::DeadLettered => "DEAD-LETTERED",
        Outcome::Received => "received (processing not traced)",
        Outcome::NotSeenYet => "NOT SEEN YET",
    }
}

fn anomalies(flow: &Flow, out: &mut String) {
    if flow.anomalies.is_empty() {
        out.push_str("\nno anomalies\n");
        return;
    }
    out.push_str("\nanomalies\n");
    // Faults first (`!`), then facts (`·`, marked as such): a fact is worth knowing, not
    // a failure.
    for fault in [true, false] {
        for anomaly in flow.anomalies.iter().filter(|a| a.is_fault() == fault) {
            let steps: Vec<String> = anomaly.steps.iter().map(|s| format!("#{s}")).collect();
            let _ = writeln!(
                out,
                "  {} {}{}: {}  (steps {})",
                if fault { "!" } else { "·" },
                snake_name(&anomaly.kind),
                if fault { "" } else { " (fact)" },
                clean(&anomaly.detail),
                steps.join(" ")
            );
        }
    }
}

fn critical_path(flow: &Flow, out: &mut String) {
    let path = &flow.critical_path;
    let shares = &path.shares;
    let _ = writeln!(
        out,
        "\ncritical path {}: publish {:.0}% · queue wait {:.0}% · processing {:.0}% · back-off {:.0}%",
        human_duration(shares.total_ns()),
        shares.fraction(SegmentKind::Publish) * 100.0,
        shares.fraction(SegmentKind::QueueWait) * 100.0,
        shares.fraction(SegmentKind::Processing) * 100.0,
        shares.fraction(SegmentKind::Backoff) * 100.0
    );
    for segment in &path.segments {
        let step = &flow.steps[segment.step];
        let _ = writeln!(
            out,
            "  {:<11} {:>10}  {}  {}",
            snake_name(&segment.kind).replace('_', " "),
            human_duration(segment.duration_ns),
            clean(&step.service),
            clean(&step.name)
        );
    }
}

/// The name serde gives a unit variant (`queue_wait`, `not_seen_yet`).
fn snake_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}
