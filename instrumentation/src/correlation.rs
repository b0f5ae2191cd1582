//! The business correlation ID: read from message headers, carried in the OpenTelemetry
//! [`Context`] so that whatever a handler publishes inherits it.

use opentelemetry::Context;

use crate::baggage;
use crate::headers::{HeaderValue, Headers};
use causeway_conventions::header::CORRELATION_HEADERS;

/// Longest correlation ID accepted from a header; longer values are ignored.
pub const MAX_CORRELATION_ID_LEN: usize = 256;

/// A correlation ID stored as a [`Context`] value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationId(pub String);

/// A copy of `cx` that carries `correlation_id` as its current correlation ID.
pub fn with_correlation_id(cx: &Context, correlation_id: impl Into<String>) -> Context {
    cx.with_value(CorrelationId(correlation_id.into()))
}

/// The correlation ID carried by `cx`, if any.
pub fn correlation_id(cx: &Context) -> Option<&str> {
    cx.get::<CorrelationId>().map(|id| id.0.as_str())
}

/// The correlation ID of the current task's context (see
/// `opentelemetry::context::FutureExt::with_context` to carry a context into a task).
pub fn current_correlation_id() -> Option<String> {
    correlation_id(&Context::current()).map(str::to_owned)
}

/// A usable correlation ID: trimmed, non-empty, at most [`MAX_CORRELATION_ID_LEN`] bytes,
/// without control characters.
pub fn sanitize_correlation_id(value: &str) -> Option<&str> {
    let value = value.trim();
    let usable = !value.is_empty()
        && value.len() <= MAX_CORRELATION_ID_LEN
        && !value.chars().any(char::is_control);
    usable.then_some(value)
}

/// The correlation ID of a message: the first usable value among `correlation-id`,
/// `x-correlation-id` and `ce_correlationid`, else the first usable `correlation.id` member
/// of its W3C `baggage` (see [`crate::baggage`]). Null, repeated, non-UTF-8 and unusable
/// header values are skipped.
pub fn read_correlation_id(headers: &Headers) -> Option<String> {
    header_correlation_id(headers)
        .or_else(|| baggage::received(headers).and_then(|value| baggage::correlation_id(&value)))
}

/// The correlation ID of a message's correlation headers alone, without the baggage.
pub(crate) fn header_correlation_id(headers: &Headers) -> Option<String> {
    CORRELATION_HEADERS
        .iter()
        .find_map(|name| match headers.get(name) {
            HeaderValue::Text(text) => sanitize_correlation_id(text).map(str::to_owned),
            _ => None,
        })
}

/// Writes `correlation_id` as the `correlation-id` header, replacing any previous one.
pub fn write_correlation_id(headers: &mut Headers, correlation_id: &str) {
    headers.set(CORRELATION_HEADERS[0], correlation_id);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn headers(entries: &[(&str, Option<&[u8]>)]) -> Headers {
        Headers::from_entries(
            entries
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.map(<[u8]>::to_vec)))
                .collect(),
        )
    }

    #[test]
    fn reads_the_first_usable_header() {
        let long = "x".repeat(MAX_CORRELATION_ID_LEN + 1);
        let cases: Vec<(Headers, Option<&str>, &str)> = vec![
            (headers(&[]), None, "no headers"),
            (
                headers(&[("correlation-id", Some(b"ord-1"))]),
                Some("ord-1"),
                "main header",
            ),
            (
                headers(&[("x-correlation-id", Some(b"ord-2"))]),
                Some("ord-2"),
                "x- header",
            ),
            (
                headers(&[("ce_correlationid", Some(b"ord-3"))]),
                Some("ord-3"),
                "cloudevents extension",
            ),
            (
                headers(&[
                    ("ce_correlationid", Some(b"c")),
                    ("correlation-id", Some(b"a")),
                ]),
                Some("a"),
                "correlation-id wins over later-listed names",
            ),
            (
                headers(&[("correlation-id", None), ("x-correlation-id", Some(b"b"))]),
                Some("b"),
                "null main header falls through",
            ),
            (
                headers(&[
                    ("correlation-id", Some(&[0xc3])),
                    ("x-correlation-id", Some(b"b")),
                ]),
                Some("b"),
                "non-utf-8 main header falls through",
            ),
            (
                headers(&[
                    ("correlation-id", Some(b"a")),
                    ("correlation-id", Some(b"b")),
                ]),
                None,
                "repeated header is ambiguous",
            ),
            (
                headers(&[("correlation-id", Some(b"  "))]),
                None,
                "blank value",
            ),
            (
                headers(&[("correlation-id", Some(b" ord-4 "))]),
                Some("ord-4"),
                "trimmed",
            ),
            (
                headers(&[("correlation-id", Some(b"a\nb"))]),
                None,
                "control character",
            ),
            (
                headers(&[("correlation-id", Some(long.as_bytes()))]),
                None,
                "too long",
            ),
            (
                headers(&[("baggage", Some(b"correlation.id=ord-5,other=x"))]),
                Some("ord-5"),
                "baggage when no correlation header",
            ),
            (
                headers(&[
                    ("baggage", Some(b"correlation.id=ord-5")),
                    ("x-correlation-id", Some(b"ord-6")),
                ]),
                Some("ord-6"),
                "any correlation header wins over baggage",
            ),
            (
                headers(&[
                    ("correlation-id", Some(b"a")),
                    ("correlation-id", Some(b"b")),
                    ("baggage", Some(b"correlation.id=ord-7")),
                ]),
                Some("ord-7"),
                "an ambiguous header falls through to baggage",
            ),
            (
                headers(&[
                    ("baggage", Some(b"other=x")),
                    ("baggage", Some(b"correlation.id=ord%2D8")),
                ]),
                Some("ord-8"),
                "repeated baggage headers are one list, values decoded",
            ),
            (
                headers(&[("baggage", Some(b"correlation_id=ord-9"))]),
                None,
                "only the correlation.id key",
            ),
        ];
        for (headers, expected, reason) in cases {
            assert_eq!(
                read_correlation_id(&headers).as_deref(),
                expected,
                "{reason}"
            );
        }
    }

    #[test]
    fn context_carries_the_id() {
        let cx = with_correlation_id(&Context::new(), "ord-9");
        assert_eq!(correlation_id(&cx), Some("ord-9"));
        assert_eq!(correlation_id(&Context::new()), None);
        let _guard = cx.attach();
        assert_eq!(current_correlation_id().as_deref(), Some("ord-9"));
    }

    proptest! {
        #[test]
        fn write_then_read_round_trips(id in "[!-~][ -~]{0,60}[!-~]") {
            let mut headers = Headers::new();
            headers.push("correlation-id", None);
            write_correlation_id(&mut headers, &id);
            prop_assert_eq!(read_correlation_id(&headers), Some(id));
        }
    }
}
