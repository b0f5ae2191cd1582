//! Strict W3C Trace Context parsing of `traceparent` values (`tracestate` is in
//! [`crate::tracestate`]).
//!
//! The SDK's `TraceContextPropagator` accepts ids shorter than the standard length (it parses
//! them as integers); this parser follows the W3C grammar exactly and names what was wrong.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId};

pub use crate::tracestate::{TRACESTATE_MAX_MEMBERS, parse_tracestate};

/// Length of a version-00 `traceparent`: `vv-<32 hex>-<16 hex>-ff`.
const TRACEPARENT_LEN: usize = 55;
/// The one version value that is forbidden.
const FORBIDDEN_VERSION: &str = "ff";

/// Why a `traceparent` value was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    /// The version is not two lower-case hex digits, or is `ff`.
    #[error("invalid traceparent version")]
    InvalidVersion,
    /// The value does not have the length or `-` separators the version requires.
    #[error("traceparent has the wrong shape")]
    WrongShape,
    /// A field holds upper-case hex digits, which W3C forbids.
    #[error("traceparent has upper-case hex")]
    UpperCaseHex,
    /// A field holds something other than hex digits.
    #[error("traceparent has a non-hex digit")]
    NotHex,
    /// The trace id is all zeros.
    #[error("traceparent trace id is all zeros")]
    ZeroTraceId,
    /// The parent (span) id is all zeros.
    #[error("traceparent parent id is all zeros")]
    ZeroSpanId,
}

impl TraceparentError {
    /// A short stable name for span attributes, such as `zero_trace_id`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidVersion => "invalid_version",
            Self::WrongShape => "wrong_shape",
            Self::UpperCaseHex => "upper_case_hex",
            Self::NotHex => "not_hex",
            Self::ZeroTraceId => "zero_trace_id",
            Self::ZeroSpanId => "zero_span_id",
        }
    }
}

/// The fields of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// The trace id, never zero.
    pub trace_id: TraceId,
    /// The parent span id, never zero.
    pub span_id: SpanId,
    /// Trace flags; only the sampled bit is kept.
    pub flags: TraceFlags,
}

fn check_hex(field: &str) -> Result<(), TraceparentError> {
    for byte in field.bytes() {
        match byte {
            b'0'..=b'9' | b'a'..=b'f' => {}
            b'A'..=b'F' => return Err(TraceparentError::UpperCaseHex),
            _ => return Err(TraceparentError::NotHex),
        }
    }
    Ok(())
}

/// Parses a `traceparent` value following W3C Trace Context level 1.
///
/// Version `00` must be exactly 55 characters. Higher versions are parsed leniently: the
/// first 55 characters are read as version 00 and anything after must start with `-`.
/// Surrounding spaces and tabs (HTTP optional whitespace) are ignored.
pub fn parse_traceparent(value: &str) -> Result<Traceparent, TraceparentError> {
    let value = value.trim_matches([' ', '\t']);
    let version = value.get(..2).ok_or(TraceparentError::WrongShape)?;
    if version.len() != 2 || check_hex(version).is_err() || version == FORBIDDEN_VERSION {
        return Err(TraceparentError::InvalidVersion);
    }
    let fixed = match (version, value.len()) {
        ("00", TRACEPARENT_LEN) => value,
        ("00", _) => return Err(TraceparentError::WrongShape),
        (_, len) if len == TRACEPARENT_LEN => value,
        (_, len) if len > TRACEPARENT_LEN && value.as_bytes()[TRACEPARENT_LEN] == b'-' => value
            .get(..TRACEPARENT_LEN)
            .ok_or(TraceparentError::WrongShape)?,
        _ => return Err(TraceparentError::WrongShape),
    };
    let bytes = fixed.as_bytes();
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return Err(TraceparentError::WrongShape);
    }
    // The separators are ASCII, so these slices fall on character boundaries.
    let fields = (fixed.get(3..35), fixed.get(36..52), fixed.get(53..55));
    let (Some(trace_hex), Some(span_hex), Some(flags_hex)) = fields else {
        return Err(TraceparentError::WrongShape);
    };
    check_hex(trace_hex)?;
    check_hex(span_hex)?;
    check_hex(flags_hex)?;
    let trace_id = TraceId::from_hex(trace_hex).map_err(|_| TraceparentError::NotHex)?;
    let span_id = SpanId::from_hex(span_hex).map_err(|_| TraceparentError::NotHex)?;
    let flags = u8::from_str_radix(flags_hex, 16).map_err(|_| TraceparentError::NotHex)?;
    if trace_id == TraceId::INVALID {
        return Err(TraceparentError::ZeroTraceId);
    }
    if span_id == SpanId::INVALID {
        return Err(TraceparentError::ZeroSpanId);
    }
    Ok(Traceparent {
        trace_id,
        span_id,
        flags: TraceFlags::new(flags) & TraceFlags::SAMPLED,
    })
}

/// A remote span context from a parsed `traceparent` and an optional `tracestate`.
pub fn remote_span_context(parent: Traceparent, tracestate: Option<&str>) -> SpanContext {
    SpanContext::new(
        parent.trace_id,
        parent.span_id,
        parent.flags,
        true,
        parse_tracestate(tracestate),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn accepts_valid_values() {
        let cases: Vec<(String, bool, &str)> = vec![
            (format!("00-{TRACE}-{SPAN}-01"), true, "sampled version 00"),
            (
                format!("00-{TRACE}-{SPAN}-00"),
                false,
                "unsampled version 00",
            ),
            (
                format!("00-{TRACE}-{SPAN}-09"),
                true,
                "unknown flag bits are dropped",
            ),
            (
                format!(" 00-{TRACE}-{SPAN}-01\t"),
                true,
                "optional whitespace around",
            ),
            (
                format!("01-{TRACE}-{SPAN}-01"),
                true,
                "future version, same length",
            ),
            (
                format!("cc-{TRACE}-{SPAN}-01-what-the-future-holds"),
                true,
                "future version, extra fields",
            ),
            (
                format!("fe-{TRACE}-{SPAN}-01-"),
                true,
                "highest allowed version",
            ),
        ];
        for (value, sampled, reason) in cases {
            let parsed = parse_traceparent(&value).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(
                parsed.trace_id,
                TraceId::from_hex(TRACE).unwrap(),
                "{reason}"
            );
            assert_eq!(parsed.span_id, SpanId::from_hex(SPAN).unwrap(), "{reason}");
            assert_eq!(parsed.flags.is_sampled(), sampled, "{reason}");
        }
    }

    #[test]
    fn rejects_every_malformed_case_with_its_reason() {
        use TraceparentError::*;
        let zero_trace = "00000000000000000000000000000000";
        let cases: Vec<(String, TraceparentError, &str)> = vec![
            (String::new(), WrongShape, "empty value"),
            ("0".to_owned(), WrongShape, "one character"),
            (
                format!("ff-{TRACE}-{SPAN}-01"),
                InvalidVersion,
                "version ff is forbidden",
            ),
            (
                format!("FE-{TRACE}-{SPAN}-01"),
                InvalidVersion,
                "upper-case version",
            ),
            (
                format!("0x-{TRACE}-{SPAN}-01"),
                InvalidVersion,
                "non-hex version",
            ),
            (
                format!("+0-{TRACE}-{SPAN}-01"),
                InvalidVersion,
                "sign in version",
            ),
            (
                format!("00-{TRACE}-{SPAN}-01-"),
                WrongShape,
                "version 00 with trailing dash",
            ),
            (
                format!("00-{TRACE}-{SPAN}-01-extra"),
                WrongShape,
                "version 00 with extra field",
            ),
            (format!("00-{TRACE}-{SPAN}"), WrongShape, "missing flags"),
            (format!("00-{TRACE}-{SPAN}-"), WrongShape, "empty flags"),
            (
                format!("00-{TRACE}-{SPAN}-1"),
                WrongShape,
                "one-digit flags",
            ),
            (
                "00-ab-cd-01".to_owned(),
                WrongShape,
                "short ids the sdk would accept",
            ),
            (
                format!("00-0{TRACE}-{SPAN}"),
                WrongShape,
                "33-digit trace id",
            ),
            (
                format!("00_{TRACE}_{SPAN}_01"),
                WrongShape,
                "wrong separators",
            ),
            (
                format!("01-{TRACE}-{SPAN}-01x"),
                WrongShape,
                "future version without dash",
            ),
            (
                format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
                UpperCaseHex,
                "upper-case trace id",
            ),
            (
                format!("00-{TRACE}-{}-01", SPAN.to_uppercase()),
                UpperCaseHex,
                "upper-case span id",
            ),
            (
                format!("00-{TRACE}-{SPAN}-0A"),
                UpperCaseHex,
                "upper-case flags",
            ),
            (
                format!("00-{}g-{SPAN}-01", &TRACE[..31]),
                NotHex,
                "non-hex trace id",
            ),
            (
                format!("00-{TRACE}-{}z-01", &SPAN[..15]),
                NotHex,
                "non-hex span id",
            ),
            (format!("00-{TRACE}-{SPAN}-0+"), NotHex, "sign in flags"),
            (
                format!("00-{zero_trace}-{SPAN}-01"),
                ZeroTraceId,
                "all-zero trace id",
            ),
            (
                format!("00-{TRACE}-0000000000000000-01"),
                ZeroSpanId,
                "all-zero span id",
            ),
            (
                format!("00-{}é-{SPAN}-01", &TRACE[..30]),
                NotHex,
                "multi-byte character",
            ),
        ];
        for (value, expected, reason) in cases {
            assert_eq!(
                parse_traceparent(&value),
                Err(expected),
                "{reason}: {value:?}"
            );
        }
    }

    /// An independent statement of the version-00 grammar, to check the parser against.
    fn reference_accepts(value: &str) -> bool {
        let parts: Vec<&str> = value.split('-').collect();
        let lower_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        parts.len() == 4
            && parts[0] == "00"
            && lower_hex(parts[1], 32)
            && lower_hex(parts[2], 16)
            && lower_hex(parts[3], 2)
            && parts[1].bytes().any(|b| b != b'0')
            && parts[2].bytes().any(|b| b != b'0')
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_grammar_on_near_misses(
            value in "00-[0-9a-fA-F]{31,33}-[0-9a-f0]{15,17}-[0-9a-fA-F]{1,3}|00-0{32}-0{15}[01]-01|00-0{31}[01]-[0-9a-f]{16}-01",
        ) {
            prop_assert_eq!(parse_traceparent(&value).is_ok(), reference_accepts(&value), "{}", value);
        }

        #[test]
        fn never_panics_on_any_text(value in "\\PC{0,80}") {
            let _ = parse_traceparent(&value);
            let _ = parse_tracestate(Some(&value));
        }

        #[test]
        fn round_trips_any_valid_ids(trace in 1u128.., span in 1u64.., sampled in any::<bool>()) {
            let value = format!("00-{:032x}-{:016x}-{:02x}", trace, span, u8::from(sampled));
            let parsed = parse_traceparent(&value).unwrap();
            prop_assert_eq!(parsed.trace_id, TraceId::from(trace));
            prop_assert_eq!(parsed.span_id, SpanId::from(span));
            prop_assert_eq!(parsed.flags.is_sampled(), sampled);
        }
    }
}
