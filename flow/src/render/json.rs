//! The JSON document of a flow: the model as it is, plus a schema marker, so that scripts
//! can rely on it (docs/FLOW-JSON.md).

use serde::Serialize;

use crate::Flow;

/// The value of the document's `schema` field; bumped on any incompatible change.
pub const FLOW_JSON_SCHEMA: &str = "causeway.flow.v1";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    flow: &'a Flow,
}

/// The flow as one pretty-printed JSON document, ending with a newline.
pub fn json(flow: &Flow) -> String {
    let document = Document {
        schema: FLOW_JSON_SCHEMA,
        flow,
    };
    match serde_json::to_string_pretty(&document) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        // The model holds only strings, numbers and maps with string keys, which always
        // serialise; an error here would be a bug, reported inside the document.
        Err(error) => {
            let fallback =
                serde_json::json!({"schema": FLOW_JSON_SCHEMA, "error": error.to_string()});
            format!("{fallback}\n")
        }
    }
}
