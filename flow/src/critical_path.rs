//! The critical path: walking back from the step that ended last, through parents and
//! queue hops, to the flow's first step, splitting the time into publish, queue wait,
//! processing and retry back-off.

use std::collections::{BTreeSet, HashMap};

use super::model::{
    CriticalPath, Edge, EdgeKind, Event, Hop, Segment, SegmentKind, Shares, Step, StepIndex,
    StepRole,
};

/// Finds the critical path. Cycles (through links or bad parent ids) end the walk.
pub(crate) fn find(steps: &[Step], edges: &[Edge], events: &[Event], hops: &[Hop]) -> CriticalPath {
    let Some(last) = (0..steps.len()).max_by_key(|&i| (steps[i].end_ns, std::cmp::Reverse(i)))
    else {
        return CriticalPath::default();
    };
    let mut hop_of_attempt: HashMap<StepIndex, &Hop> = HashMap::new();
    for hop in hops {
        for &attempt in &hop.attempts {
            hop_of_attempt.insert(attempt, hop);
        }
    }
    let mut link_source: HashMap<StepIndex, StepIndex> = HashMap::new();
    for edge in edges.iter().filter(|e| e.kind != EdgeKind::Parent) {
        link_source.entry(edge.to).or_insert(edge.from);
    }
    let mut segments = Vec::new();
    let mut visited = BTreeSet::new();
    let mut current = last;
    let mut cursor = steps[last].end_ns;
    while visited.insert(current) {
        let step = &steps[current];
        let own_kind = if step.role == StepRole::Send {
            SegmentKind::Publish
        } else {
            SegmentKind::Processing
        };
        let hop = hop_of_attempt.get(&current).copied();
        let send = hop.and_then(|h| {
            events[h.event]
                .send
                .or_else(|| h.attempts.first().and_then(|f| link_source.get(f).copied()))
        });
        match (hop, send) {
            (Some(hop), Some(send)) => {
                // The attempts up to this one: processing, with back-off between them.
                let upto: Vec<StepIndex> = hop
                    .attempts
                    .iter()
                    .copied()
                    .take_while(|&a| a != current)
                    .chain(std::iter::once(current))
                    .collect();
                let mut end = cursor;
                for (position, &attempt) in upto.iter().enumerate().rev() {
                    let attempt_step = &steps[attempt];
                    push(
                        &mut segments,
                        SegmentKind::Processing,
                        attempt,
                        attempt_step.start_ns,
                        end.min(attempt_step.end_ns),
                    );
                    visited.insert(attempt);
                    end = attempt_step.start_ns;
                    if position > 0 {
                        let previous_end = steps[upto[position - 1]].end_ns;
                        push(
                            &mut segments,
                            SegmentKind::Backoff,
                            attempt,
                            previous_end,
                            end,
                        );
                        end = previous_end.min(end);
                    }
                }
                let send_end = steps[send].end_ns;
                push(
                    &mut segments,
                    SegmentKind::QueueWait,
                    upto[0],
                    send_end,
                    end,
                );
                cursor = send_end.min(end);
                current = send;
            }
            _ => {
                push(
                    &mut segments,
                    own_kind,
                    current,
                    step.start_ns,
                    cursor.min(step.end_ns),
                );
                cursor = step.start_ns.min(cursor);
                if let Some(parent) = step.parent {
                    current = parent;
                } else if let Some(&source) = link_source.get(&current) {
                    let source_end = steps[source].end_ns;
                    push(
                        &mut segments,
                        SegmentKind::QueueWait,
                        current,
                        source_end,
                        cursor,
                    );
                    cursor = source_end.min(cursor);
                    current = source;
                } else {
                    break;
                }
            }
        }
    }
    segments.reverse();
    segments.retain(|s| s.duration_ns > 0);
    let mut shares = Shares::default();
    for segment in &segments {
        let slot = match segment.kind {
            SegmentKind::Publish => &mut shares.publish_ns,
            SegmentKind::QueueWait => &mut shares.queue_wait_ns,
            SegmentKind::Processing => &mut shares.processing_ns,
            SegmentKind::Backoff => &mut shares.backoff_ns,
        };
        *slot += segment.duration_ns;
    }
    CriticalPath { segments, shares }
}

/// Adds the stretch from `start_ns` to `end_ns` (clamped to zero when the clocks disagree).
fn push(
    segments: &mut Vec<Segment>,
    kind: SegmentKind,
    step: StepIndex,
    start_ns: i64,
    end_ns: i64,
) {
    segments.push(Segment {
        kind,
        step,
        start_ns,
        duration_ns: (end_ns - start_ns).max(0),
    });
}
