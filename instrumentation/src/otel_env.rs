//! The standard `OTEL_*` environment variables causeway reads, and their parsers.

/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`.
pub const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_HEADERS`.
pub const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_SERVICE_NAME`.
pub const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub const ENV_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_PROPAGATORS`.
pub const ENV_PROPAGATORS: &str = "OTEL_PROPAGATORS";
/// `OTEL_METRIC_EXPORT_INTERVAL`, in milliseconds.
pub const ENV_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";

/// A setting that holds a value causeway does not understand.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct SettingError {
    /// The variable or builder setting.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (collector port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (collector port 4318); the specification's default.
    #[default]
    HttpProtobuf,
}

/// A text-map propagator named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagatorKind {
    /// W3C Trace Context.
    TraceContext,
    /// W3C Baggage.
    Baggage,
}

/// Parses `OTEL_EXPORTER_OTLP_PROTOCOL`.
pub fn parse_protocol(value: &str) -> Result<Protocol, SettingError> {
    match value.trim() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        _ => Err(invalid(
            ENV_PROTOCOL,
            value,
            "expected grpc or http/protobuf",
        )),
    }
}

/// Parses `OTEL_PROPAGATORS`: a comma list of `tracecontext`, `baggage` or `none`.
/// Message headers always use W3C Trace Context; this only sets the global propagator.
pub fn parse_propagators(value: &str) -> Result<Vec<PropagatorKind>, SettingError> {
    let mut kinds = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = match name {
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "none" => continue,
            _ => {
                return Err(invalid(
                    ENV_PROPAGATORS,
                    value,
                    "supported: tracecontext, baggage, none",
                ));
            }
        };
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs separated by commas, values
/// percent-decoded.
pub fn parse_headers(value: &str) -> Result<Vec<(String, String)>, SettingError> {
    let mut headers = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = pair.split_once('=') else {
            return Err(invalid(ENV_HEADERS, value, "expected key=value pairs"));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(invalid(ENV_HEADERS, value, "empty header name"));
        }
        let decoded = percent_decode(val.trim())
            .ok_or_else(|| invalid(ENV_HEADERS, value, "bad percent-encoding"))?;
        headers.push((key.to_ascii_lowercase(), decoded));
    }
    Ok(headers)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A [`SettingError`] for `variable` holding `value`.
pub(crate) fn invalid(variable: &'static str, value: &str, reason: &'static str) -> SettingError {
    SettingError {
        variable,
        value: value.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn protocol_values() {
        let cases = [
            ("grpc", Some(Protocol::Grpc), "grpc"),
            (
                " http/protobuf ",
                Some(Protocol::HttpProtobuf),
                "spaces are trimmed",
            ),
            ("http/json", None, "json bodies are not supported"),
            ("GRPC", None, "values are case-sensitive per the spec"),
        ];
        for (value, expected, reason) in cases {
            assert_eq!(parse_protocol(value).ok(), expected, "{reason}");
        }
    }

    #[test]
    fn propagator_lists() {
        use PropagatorKind::*;
        let cases = [
            (
                "tracecontext,baggage",
                Some(vec![TraceContext, Baggage]),
                "the default list",
            ),
            (
                "baggage, tracecontext",
                Some(vec![Baggage, TraceContext]),
                "order kept",
            ),
            (
                "tracecontext,tracecontext",
                Some(vec![TraceContext]),
                "duplicates dropped",
            ),
            ("none", Some(vec![]), "none disables"),
            ("b3", None, "unsupported propagator"),
        ];
        for (value, expected, reason) in cases {
            assert_eq!(parse_propagators(value).ok(), expected, "{reason}");
        }
    }

    #[test]
    fn header_lists() {
        type Pairs<'a> = Option<Vec<(&'a str, &'a str)>>;
        let cases: Vec<(&str, Pairs, &str)> = vec![
            (
                "api-key=secret",
                Some(vec![("api-key", "secret")]),
                "one pair",
            ),
            (
                "A=1, b = 2",
                Some(vec![("a", "1"), ("b", "2")]),
                "names lower-cased, spaces trimmed",
            ),
            (
                "auth=Bearer%20x%3D",
                Some(vec![("auth", "Bearer x=")]),
                "percent-decoded",
            ),
            ("k=a=b", Some(vec![("k", "a=b")]), "= inside a value"),
            ("novalue", None, "missing ="),
            ("=v", None, "empty name"),
            ("k=%zz", None, "bad escape"),
            ("k=%2", None, "truncated escape"),
            ("k=%ff", None, "escape that is not utf-8"),
        ];
        for (value, expected, reason) in cases {
            let expected = expected.map(|pairs| {
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(parse_headers(value).ok(), expected, "{reason}");
        }
    }
}
