//! Normalises a flow document for its golden file: what changes from run to run (trace and
//! span ids, times and durations) is replaced by stable placeholders, everything
//! structural (steps, services, events, topics, groups, edges, verdicts, anomalies and
//! their proof, critical-path segment kinds) is kept as it is.

use std::collections::HashMap;

use serde_json::Value;

/// Placeholder for any time or duration in nanoseconds.
const NANOS: &str = "<ns>";

/// `flow` with ids replaced by `trace-N` / `span-N` (numbered by first appearance in the
/// steps, which are in time order) and every `*_ns` number replaced by `<ns>`.
pub(crate) fn normalise(flow: &Value) -> Value {
    let mut ids = HashMap::new();
    let (mut traces, mut spans) = (0, 0);
    for step in flow["steps"].as_array().into_iter().flatten() {
        for (key, counter, prefix) in [
            ("trace_id", &mut traces, "trace"),
            ("span_id", &mut spans, "span"),
        ] {
            if let Some(id) = step[key].as_str()
                && !ids.contains_key(id)
            {
                ids.insert(id.to_owned(), format!("{prefix}-{counter}"));
                *counter += 1;
            }
        }
    }
    let mut normalised = replace(flow, None, &ids);
    // Sorted by the real ids before; sort by placeholder so the order is stable too.
    if let Some(Value::Array(traces)) = normalised.get_mut("trace_ids") {
        traces.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    normalised
}

fn replace(value: &Value, key: Option<&str>, ids: &HashMap<String, String>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace(v, Some(k), ids)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| replace(v, key, ids)).collect()),
        Value::Number(_) if key.is_some_and(|k| k.ends_with("_ns")) => Value::from(NANOS),
        Value::String(text) => ids
            .get(text)
            .map_or_else(|| value.clone(), |id| Value::from(id.as_str())),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_and_times_become_placeholders_and_structure_stays() {
        let flow = json!({
            "trace_ids": ["aa", "bb"],
            "steps": [
                { "trace_id": "bb", "span_id": "01", "start_ns": 5, "offset": 3 },
                { "trace_id": "aa", "span_id": "02", "start_ns": 9, "offset": null },
            ],
            "hops": [{ "queue_wait_ns": 7, "publish_ns": null, "retries": 1 }],
            "edges": [{ "from": 0, "to": 1, "kind": "link" }],
        });
        let expected = json!({
            "trace_ids": ["trace-0", "trace-1"],
            "steps": [
                { "trace_id": "trace-0", "span_id": "span-0", "start_ns": "<ns>", "offset": 3 },
                { "trace_id": "trace-1", "span_id": "span-1", "start_ns": "<ns>", "offset": null },
            ],
            "hops": [{ "queue_wait_ns": "<ns>", "publish_ns": null, "retries": 1 }],
            "edges": [{ "from": 0, "to": 1, "kind": "link" }],
        });
        assert_eq!(normalise(&flow), expected);
    }
}
