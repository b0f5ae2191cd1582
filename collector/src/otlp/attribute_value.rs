//! OTLP attribute values turned into JSON values, with long strings truncated.

use causeway_storage::Attributes;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as OtlpValue};
use serde_json::Value;

/// The longest attribute string kept, in bytes; longer strings are cut on a character
/// boundary.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4 * 1024;

/// Converts OTLP key/value pairs into an attribute map. A repeated key keeps its last value.
pub fn attributes_from(pairs: Vec<KeyValue>) -> Attributes {
    let mut attributes = Attributes::new();
    for pair in pairs {
        attributes.insert(pair.key, value_from(pair.value));
    }
    attributes
}

/// Converts one OTLP value into JSON: strings (also inside arrays and key/value lists) are
/// truncated, bytes become lowercase hex, and non-finite doubles become their text.
pub fn value_from(value: Option<AnyValue>) -> Value {
    let Some(inner) = value.and_then(|any| any.value) else {
        return Value::Null;
    };
    match inner {
        OtlpValue::StringValue(text) => Value::String(truncate_string(text)),
        OtlpValue::BoolValue(flag) => Value::Bool(flag),
        OtlpValue::IntValue(number) => Value::from(number),
        OtlpValue::DoubleValue(number) => serde_json::Number::from_f64(number)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(number.to_string())),
        OtlpValue::ArrayValue(array) => Value::Array(
            array
                .values
                .into_iter()
                .map(|v| value_from(Some(v)))
                .collect(),
        ),
        OtlpValue::KvlistValue(list) => Value::Object(attributes_from(list.values)),
        OtlpValue::BytesValue(bytes) => {
            let kept = bytes.len().min(MAX_ATTRIBUTE_VALUE_BYTES / 2);
            Value::String(hex::encode(&bytes[..kept]))
        }
        // Only profiles use string tables; a trace has nothing to look the index up in.
        OtlpValue::StringValueStrindex(_) => Value::Null,
    }
}

/// Cuts `text` to at most [`MAX_ATTRIBUTE_VALUE_BYTES`] bytes, never inside a character.
pub fn truncate_string(mut text: String) -> String {
    if text.len() > MAX_ATTRIBUTE_VALUE_BYTES {
        let mut end = MAX_ATTRIBUTE_VALUE_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn any(value: OtlpValue) -> Option<AnyValue> {
        Some(AnyValue { value: Some(value) })
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        let cases: &[(String, usize, &str)] = &[
            ("short".into(), 5, "short strings are kept"),
            ("a".repeat(4096), 4096, "exactly the limit is kept"),
            ("a".repeat(5000), 4096, "ascii is cut at the limit"),
            (
                format!("{}é", "a".repeat(4095)),
                4095,
                "a two-byte character across the limit is dropped whole",
            ),
            (
                "€".repeat(2000),
                4095,
                "three-byte characters cut before the limit",
            ),
        ];
        for (input, expected_len, reason) in cases {
            let cut = truncate_string(input.clone());
            assert_eq!(cut.len(), *expected_len, "{reason}");
            assert!(input.starts_with(&cut), "{reason}");
        }
    }

    #[test]
    fn values_convert_to_json() {
        let long = "x".repeat(10_000);
        let cases: Vec<(Option<AnyValue>, Value, &str)> = vec![
            (None, Value::Null, "a missing value is null"),
            (
                Some(AnyValue { value: None }),
                Value::Null,
                "an empty value is null",
            ),
            (
                any(OtlpValue::IntValue(7)),
                Value::from(7),
                "ints stay ints",
            ),
            (
                any(OtlpValue::BoolValue(true)),
                Value::Bool(true),
                "bools stay bools",
            ),
            (
                any(OtlpValue::DoubleValue(1.5)),
                Value::from(1.5),
                "finite doubles are numbers",
            ),
            (
                any(OtlpValue::DoubleValue(f64::NAN)),
                Value::from("NaN"),
                "non-finite doubles become text, as JSON has no NaN",
            ),
            (
                any(OtlpValue::BytesValue(vec![0xde, 0xad])),
                Value::from("dead"),
                "bytes become hex",
            ),
            (
                any(OtlpValue::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(OtlpValue::StringValue(long.clone())),
                    }],
                })),
                Value::Array(vec![Value::from("x".repeat(4096))]),
                "strings inside arrays are truncated",
            ),
            (
                any(OtlpValue::KvlistValue(KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: any(OtlpValue::StringValue(long.clone())),
                        key_strindex: 0,
                    }],
                })),
                serde_json::json!({ "k": "x".repeat(4096) }),
                "strings inside key/value lists are truncated",
            ),
        ];
        for (input, expected, reason) in cases {
            assert_eq!(value_from(input), expected, "{reason}");
        }
    }
}
