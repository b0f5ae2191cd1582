//! The batches of one PostgreSQL write, merged into one row per key.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::span_encode::{CorrelationSummary, EncodedSpans, LinkRow, SpanRow};

/// A link's key: the span that holds it, the span it points to.
type LinkKey = ([u8; 16], [u8; 8], [u8; 16], [u8; 8]);

/// The rows of several batches, merged: one row per key, the last one written winning
/// (a statement may not upsert one key twice).
#[derive(Default)]
pub(super) struct Merged<'a> {
    pub(super) spans: Vec<&'a SpanRow>,
    pub(super) links: Vec<&'a LinkRow>,
    pub(super) correlations: BTreeMap<&'a str, CorrelationSummary>,
    pub(super) roots: BTreeMap<[u8; 16], CorrelationSummary>,
    pub(super) topology: BTreeMap<(&'a str, &'a str), (i64, i64)>,
}

impl<'a> Merged<'a> {
    pub(super) fn of(batches: &'a [EncodedSpans]) -> Merged<'a> {
        let mut merged = Merged::default();
        let mut span_at: HashMap<([u8; 16], [u8; 8]), usize> = HashMap::new();
        let mut link_at: HashMap<LinkKey, usize> = HashMap::new();
        for batch in batches {
            for row in &batch.spans {
                match span_at.get(&(row.trace_id, row.span_id)) {
                    Some(&at) => merged.spans[at] = row,
                    None => {
                        span_at.insert((row.trace_id, row.span_id), merged.spans.len());
                        merged.spans.push(row);
                    }
                }
            }
            for row in &batch.links {
                let key = (
                    row.trace_id,
                    row.span_id,
                    row.linked_trace_id,
                    row.linked_span_id,
                );
                match link_at.get(&key) {
                    Some(&at) => merged.links[at] = row,
                    None => {
                        link_at.insert(key, merged.links.len());
                        merged.links.push(row);
                    }
                }
            }
            for (id, summary) in &batch.correlations {
                merged
                    .correlations
                    .entry(id.as_str())
                    .and_modify(|known| known.merge(*summary))
                    .or_insert(*summary);
            }
            for (trace, summary) in &batch.roots {
                merged
                    .roots
                    .entry(*trace)
                    .and_modify(|known| known.merge(*summary))
                    .or_insert(*summary);
            }
            for ((topic, group), &(first, last)) in &batch.topology {
                merged
                    .topology
                    .entry((topic.as_str(), group.as_str()))
                    .and_modify(|(known_first, known_last)| {
                        *known_first = (*known_first).min(first);
                        *known_last = (*known_last).max(last);
                    })
                    .or_insert((first, last));
            }
        }
        // A span written twice in one write with two correlation IDs (a quick retry merged
        // with its first try) is stored as its last copy: the first copy's ID, carried by no
        // stored span, gets no summary.
        let carried: HashSet<&str> = merged
            .spans
            .iter()
            .filter_map(|row| row.correlation_id.as_deref())
            .collect();
        merged.correlations.retain(|id, _| carried.contains(id));
        merged
    }
}
