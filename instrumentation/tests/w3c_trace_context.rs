//! The 40 level-1 cases of the W3C Trace Context test suite (github.com/w3c/trace-context,
//! `test/test.py`, `STRICT_LEVEL=2`), one row per request the suite sends, run through the
//! same propagation as the suite's test service (`examples/w3c_service.rs`): `extract` →
//! send span → `inject`. The suite itself runs by hand with `tests/w3c/run.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use causeway_instrumentation::{
    Headers, MessageMeta, extract, inject, parse_traceparent, start_send_span,
};
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";
/// The suite's usual valid `traceparent`, sampled.
const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";
/// The same, not sampled (the suite's tracestate cases use it).
const TP0: &str = "00-12345678901234567890123456789012-1234567890123456-00";

/// What the outgoing `traceparent` must do with the incoming trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trace {
    /// Same trace id, new parent id, same sampled flag.
    Kept,
    /// A new trace id: the incoming `traceparent` was unusable.
    New,
}

/// One request of the suite and what the call it triggers must carry.
struct Case {
    test: &'static str,
    reason: &'static str,
    headers: Vec<(String, String)>,
    trace: Trace,
    /// The whole outgoing `tracestate`; `None` when there must be none.
    tracestate: Option<String>,
}

fn case(
    test: &'static str,
    reason: &'static str,
    headers: &[(&str, &str)],
    trace: Trace,
    tracestate: Option<&str>,
) -> Case {
    Case {
        test,
        reason,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        trace,
        tracestate: tracestate.map(str::to_owned),
    }
}

/// The test service's work for one incoming request and one callback.
fn propagate(tracer: &SdkTracer, incoming: &[(String, String)]) -> Headers {
    let headers = Headers::from_entries(
        incoming
            .iter()
            .map(|(n, v)| (n.clone(), Some(v.as_bytes().to_vec())))
            .collect(),
    );
    let extracted = extract(&headers);
    let meta = MessageMeta::new("w3c-callback");
    let cx = start_send_span(tracer, &meta, &extracted.context);
    let mut outgoing = Headers::new();
    inject(&cx, &mut outgoing, &meta);
    cx.span().end();
    outgoing
}

fn tracer() -> (SdkTracer, SdkTracerProvider) {
    let provider = SdkTracerProvider::builder().build();
    (provider.tracer("w3c"), provider)
}

/// The outgoing traceparent, checked against the suite's own format regex
/// `^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$` and that there is one.
fn outgoing_traceparent(outgoing: &Headers, what: &str) -> (String, String, String) {
    let values: Vec<_> = outgoing.get_all_raw("traceparent").collect();
    assert_eq!(values.len(), 1, "{what}: exactly one traceparent");
    let value = std::str::from_utf8(values[0].unwrap()).unwrap();
    let fields: Vec<&str> = value.split('-').collect();
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        fields.len() == 4
            && lower_hex(fields[0], 2)
            && lower_hex(fields[1], 32)
            && lower_hex(fields[2], 16)
            && lower_hex(fields[3], 2),
        "{what}: {value:?} is not a version-00 traceparent"
    );
    assert!(parse_traceparent(value).is_ok(), "{what}: {value:?} parses");
    (
        fields[1].to_owned(),
        fields[2].to_owned(),
        fields[3].to_owned(),
    )
}

fn level_one_cases() -> Vec<Case> {
    use Trace::{Kept, New};
    let tp_with = |rest: &str| format!("00-{TRACE}-{PARENT}-{rest}");
    let key: String = ('a'..='z').chain("0123456789_-*/".chars()).collect();
    let key_vendor = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x7e)
        .filter(|b| *b != b',' && *b != b'=')
        .map(char::from)
        .collect();
    let all_chars = format!("{key}={value}");
    let all_chars_vendor = format!("{key_vendor}={value}");
    let bars = |range: std::ops::RangeInclusive<u32>| {
        range
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let (b1, b2, b3) = (bars(1..=10), bars(11..=20), bars(21..=30));
    let (b32, b33) = (bars(31..=32), bars(31..=33));
    let all_32 = bars(1..=32);
    let z256 = format!("{}=1", "z".repeat(256));
    let z257 = format!("{}=1", "z".repeat(257));
    let t241 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
    let t242 = format!("{}@v=1", "t".repeat(242));
    let t1 = format!("t@{}=1", "v".repeat(15));
    let version_future = format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like");
    let version_future_dot = format!("cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like");
    let tp = ("traceparent", TP);
    let tp0 = ("traceparent", TP0);
    let mut cases = vec![
        case(
            "test_both_traceparent_and_tracestate_missing",
            "nothing in: a new trace",
            &[],
            New,
            None,
        ),
        case(
            "test_traceparent_included_tracestate_missing",
            "valid traceparent continued",
            &[tp],
            Kept,
            None,
        ),
        case(
            "test_traceparent_duplicated",
            "two traceparent headers are ambiguous",
            &[
                (
                    "traceparent",
                    "00-12345678901234567890123456789011-1234567890123456-01",
                ),
                ("traceparent", TP),
            ],
            New,
            None,
        ),
        case(
            "test_traceparent_header_name",
            "trace-parent is not the name",
            &[("trace-parent", TP)],
            New,
            None,
        ),
        case(
            "test_traceparent_header_name",
            "trace.parent is not the name",
            &[("trace.parent", TP)],
            New,
            None,
        ),
        case(
            "test_traceparent_header_name_valid_casing",
            "TraceParent",
            &[("TraceParent", TP)],
            Kept,
            None,
        ),
        case(
            "test_traceparent_header_name_valid_casing",
            "TrAcEpArEnT",
            &[("TrAcEpArEnT", TP)],
            Kept,
            None,
        ),
        case(
            "test_traceparent_header_name_valid_casing",
            "TRACEPARENT",
            &[("TRACEPARENT", TP)],
            Kept,
            None,
        ),
        case(
            "test_traceparent_version_0x00",
            "version 00 with a trailing dot",
            &[("traceparent", tp_with("01.").as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_version_0x00",
            "version 00 with extra fields",
            &[(
                "traceparent",
                tp_with("01-what-the-future-will-be-like").as_str(),
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_0xcc",
            "future version, same shape",
            &[(
                "traceparent",
                "cc-12345678901234567890123456789012-1234567890123456-01",
            )],
            Kept,
            None,
        ),
        case(
            "test_traceparent_version_0xcc",
            "future version, extra fields after -",
            &[("traceparent", version_future.as_str())],
            Kept,
            None,
        ),
        case(
            "test_traceparent_version_0xcc",
            "future version, extra text without -",
            &[("traceparent", version_future_dot.as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_version_0xff",
            "version ff is forbidden",
            &[(
                "traceparent",
                "ff-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_illegal_characters",
            "dot first in version",
            &[(
                "traceparent",
                ".0-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_illegal_characters",
            "dot second in version",
            &[(
                "traceparent",
                "0.-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_too_long",
            "three-digit version",
            &[(
                "traceparent",
                "000-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_too_long",
            "four-digit version",
            &[(
                "traceparent",
                "0000-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_version_too_short",
            "one-digit version",
            &[(
                "traceparent",
                "0-12345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_id_all_zero",
            "all-zero trace id",
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_id_illegal_characters",
            "dot first in trace id",
            &[(
                "traceparent",
                "00-.2345678901234567890123456789012-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_id_illegal_characters",
            "dot last in trace id",
            &[(
                "traceparent",
                "00-1234567890123456789012345678901.-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_id_too_long",
            "33-digit trace id",
            &[(
                "traceparent",
                "00-123456789012345678901234567890123-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_id_too_short",
            "31-digit trace id",
            &[(
                "traceparent",
                "00-1234567890123456789012345678901-1234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_parent_id_all_zero",
            "all-zero parent id",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-0000000000000000-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_parent_id_illegal_characters",
            "dot first in parent id",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-.234567890123456-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_parent_id_illegal_characters",
            "dot last in parent id",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-123456789012345.-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_parent_id_too_long",
            "17-digit parent id",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-12345678901234567-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_parent_id_too_short",
            "15-digit parent id",
            &[(
                "traceparent",
                "00-12345678901234567890123456789012-123456789012345-01",
            )],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_flags_illegal_characters",
            "dot first in flags",
            &[("traceparent", tp_with(".0").as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_flags_illegal_characters",
            "dot last in flags",
            &[("traceparent", tp_with("0.").as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_flags_too_long",
            "three-digit flags",
            &[("traceparent", tp_with("001").as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_trace_flags_too_short",
            "one-digit flags",
            &[("traceparent", tp_with("1").as_str())],
            New,
            None,
        ),
        case(
            "test_traceparent_ows_handling",
            "leading space",
            &[("traceparent", format!(" {TP}").as_str())],
            Kept,
            None,
        ),
        case(
            "test_traceparent_ows_handling",
            "leading tab",
            &[("traceparent", format!("\t{TP}").as_str())],
            Kept,
            None,
        ),
        case(
            "test_traceparent_ows_handling",
            "trailing space",
            &[("traceparent", format!("{TP} ").as_str())],
            Kept,
            None,
        ),
        case(
            "test_traceparent_ows_handling",
            "trailing tab",
            &[("traceparent", format!("{TP}\t").as_str())],
            Kept,
            None,
        ),
        case(
            "test_traceparent_ows_handling",
            "tabs and spaces around",
            &[("traceparent", format!("\t {TP} \t").as_str())],
            Kept,
            None,
        ),
        case(
            "test_tracestate_included_traceparent_missing",
            "no traceparent: tracestate not read",
            &[("tracestate", "foo=1")],
            New,
            None,
        ),
        case(
            "test_tracestate_included_traceparent_missing",
            "no traceparent: two members not read",
            &[("tracestate", "foo=1,bar=2")],
            New,
            None,
        ),
        case(
            "test_tracestate_included_traceparent_included",
            "tracestate continued",
            &[tp0, ("tracestate", "foo=1,bar=2")],
            Kept,
            Some("foo=1,bar=2"),
        ),
        case(
            "test_tracestate_header_name",
            "trace-state is not the name",
            &[tp0, ("trace-state", "foo=1")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_header_name",
            "trace.state is not the name",
            &[tp0, ("trace.state", "foo=1")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_header_name_valid_casing",
            "TraceState",
            &[tp0, ("TraceState", "foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_header_name_valid_casing",
            "TrAcEsTaTe",
            &[tp0, ("TrAcEsTaTe", "foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_header_name_valid_casing",
            "TRACESTATE",
            &[tp0, ("TRACESTATE", "foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_empty_header",
            "an empty tracestate is accepted, not sent",
            &[tp0, ("tracestate", "")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_empty_header",
            "empty after a member",
            &[tp0, ("tracestate", "foo=1"), ("tracestate", "")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_empty_header",
            "empty before a member",
            &[tp0, ("tracestate", ""), ("tracestate", "foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_multiple_headers_different_keys",
            "three headers are one list, order kept",
            &[
                tp0,
                ("tracestate", "foo=1,bar=2"),
                ("tracestate", "rojo=1,congo=2"),
                ("tracestate", "baz=3"),
            ],
            Kept,
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3"),
        ),
        case(
            "test_tracestate_duplicated_keys",
            "same member twice: kept once",
            &[tp0, ("tracestate", "foo=1,foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_duplicated_keys",
            "same key twice: the first kept",
            &[tp0, ("tracestate", "foo=1,foo=2")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_duplicated_keys",
            "same member in two headers",
            &[tp0, ("tracestate", "foo=1"), ("tracestate", "foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_duplicated_keys",
            "same key in two headers: the first kept",
            &[tp0, ("tracestate", "foo=1"), ("tracestate", "foo=2")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_all_allowed_characters",
            "every key and value character",
            &[tp0, ("tracestate", all_chars.as_str())],
            Kept,
            Some(all_chars.as_str()),
        ),
        case(
            "test_tracestate_all_allowed_characters",
            "every character, key with @",
            &[tp0, ("tracestate", all_chars_vendor.as_str())],
            Kept,
            Some(all_chars_vendor.as_str()),
        ),
        case(
            "test_tracestate_ows_handling",
            "spaces and tabs around commas",
            &[tp0, ("tracestate", "foo=1 \t , \t bar=2, \t baz=3")],
            Kept,
            Some("foo=1,bar=2,baz=3"),
        ),
        case(
            "test_tracestate_ows_handling",
            "tabs and spaces around commas",
            &[tp0, ("tracestate", "foo=1\t \t,\t \tbar=2,\t \tbaz=3")],
            Kept,
            Some("foo=1,bar=2,baz=3"),
        ),
        case(
            "test_tracestate_ows_handling",
            "leading space",
            &[tp0, ("tracestate", " foo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_ows_handling",
            "leading tab",
            &[tp0, ("tracestate", "\tfoo=1")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_ows_handling",
            "trailing space",
            &[tp0, ("tracestate", "foo=1 ")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_ows_handling",
            "trailing tab",
            &[tp0, ("tracestate", "foo=1\t")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_ows_handling",
            "both",
            &[tp0, ("tracestate", "\t foo=1 \t")],
            Kept,
            Some("foo=1"),
        ),
        case(
            "test_tracestate_key_illegal_characters",
            "space before =: dropped, traceparent kept",
            &[tp0, ("tracestate", "foo =1")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_key_illegal_characters",
            "upper-case key",
            &[tp0, ("tracestate", "FOO=1")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_key_illegal_characters",
            "dot in key",
            &[tp0, ("tracestate", "foo.bar=1")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_key_illegal_vendor_format",
            "@ may end a key",
            &[tp0, ("tracestate", "foo@=1,bar=2")],
            Kept,
            Some("foo@=1,bar=2"),
        ),
        case(
            "test_tracestate_key_illegal_vendor_format",
            "@ may not start a key: all dropped",
            &[tp0, ("tracestate", "@foo=1,bar=2")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_key_illegal_vendor_format",
            "@@ inside a key",
            &[tp0, ("tracestate", "foo@@bar=1,bar=2")],
            Kept,
            Some("foo@@bar=1,bar=2"),
        ),
        case(
            "test_tracestate_key_illegal_vendor_format",
            "two separate @",
            &[tp0, ("tracestate", "foo@bar@baz=1,bar=2")],
            Kept,
            Some("foo@bar@baz=1,bar=2"),
        ),
        case(
            "test_tracestate_member_count_limit",
            "32 members over four headers",
            &[
                tp0,
                ("tracestate", b1.as_str()),
                ("tracestate", b2.as_str()),
                ("tracestate", b3.as_str()),
                ("tracestate", b32.as_str()),
            ],
            Kept,
            Some(all_32.as_str()),
        ),
        case(
            "test_tracestate_member_count_limit",
            "33 members over four headers: all dropped",
            &[
                tp0,
                ("tracestate", b1.as_str()),
                ("tracestate", b2.as_str()),
                ("tracestate", b3.as_str()),
                ("tracestate", b33.as_str()),
            ],
            Kept,
            None,
        ),
        case(
            "test_tracestate_key_length_limit",
            "257-character key: all dropped",
            &[tp0, ("tracestate", "foo=1"), ("tracestate", z257.as_str())],
            Kept,
            None,
        ),
        case(
            "test_tracestate_value_illegal_characters",
            "= in a value",
            &[tp0, ("tracestate", "foo=bar=baz")],
            Kept,
            None,
        ),
        case(
            "test_tracestate_value_illegal_characters",
            "empty value drops the valid member too",
            &[tp0, ("tracestate", "foo=,bar=3")],
            Kept,
            None,
        ),
    ];
    // test_tracestate_key_length_limit: keys up to 256 characters, `@` anywhere after the
    // first, are inherited next to `foo=1` from an earlier header.
    let long_keys = [
        ("256-character key", &z256),
        ("241 + @ + 14", &t241),
        ("242 + @ + 1: no tenant limit", &t242),
        ("1 + @ + 15: no system limit", &t1),
    ];
    for (reason, member) in long_keys {
        cases.push(case(
            "test_tracestate_key_length_limit",
            reason,
            &[tp0, ("tracestate", "foo=1"), ("tracestate", member)],
            Kept,
            Some(&format!("foo=1,{member}")),
        ));
    }
    cases
}

#[test]
fn the_suites_level_one_cases_each_with_its_expected_outcome() {
    let (tracer, _provider) = tracer();
    let cases = level_one_cases();
    let tests: HashSet<&str> = cases.iter().map(|c| c.test).collect();
    assert_eq!(
        tests.len(),
        37,
        "every TraceContextTest case is in the table"
    );
    for case in &cases {
        let what = format!("{} ({})", case.test, case.reason);
        let outgoing = propagate(&tracer, &case.headers);
        let (trace, parent, flags) = outgoing_traceparent(&outgoing, &what);
        match case.trace {
            Trace::Kept => {
                assert_eq!(trace, TRACE, "{what}: trace continued");
                assert_ne!(parent, PARENT, "{what}: a new parent id");
                let incoming = case
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("traceparent"))
                    .map(|(_, v)| v.trim_matches([' ', '\t']))
                    .unwrap();
                assert_eq!(flags, &incoming[53..55], "{what}: sampled flag kept");
            }
            Trace::New => {
                assert_ne!(trace, TRACE, "{what}: a new trace");
                assert!(
                    case.headers.iter().all(|(_, v)| !v.contains(&trace)),
                    "{what}: none of the incoming ids"
                );
            }
        }
        let tracestate: Vec<&str> = outgoing
            .get_all_raw("tracestate")
            .map(|v| std::str::from_utf8(v.unwrap()).unwrap())
            .collect();
        match &case.tracestate {
            Some(expected) => assert_eq!(tracestate, vec![expected.as_str()], "{what}"),
            None => assert!(
                tracestate.is_empty(),
                "{what}: no tracestate, got {tracestate:?}"
            ),
        }
    }
}

/// The suite's `AdvancedTest`: one request, three callbacks.
#[test]
fn the_suites_advanced_cases_give_each_call_its_own_parent() {
    let (tracer, _provider) = tracer();
    let cases: [(&str, Option<&str>, bool); 3] = [
        (
            "test_multiple_requests_with_valid_traceparent",
            Some(TP),
            true,
        ),
        ("test_multiple_requests_without_traceparent", None, false),
        (
            "test_multiple_requests_with_illegal_traceparent",
            Some("00-00000000000000000000000000000000-1234567890123456-01"),
            false,
        ),
    ];
    for (test, traceparent, kept) in cases {
        let incoming: Vec<(String, String)> = traceparent
            .map(|v| ("traceparent".to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        let headers = Headers::from_entries(
            incoming
                .iter()
                .map(|(n, v)| (n.clone(), Some(v.as_bytes().to_vec())))
                .collect(),
        );
        // One extraction per request, one send span per callback, as the service does.
        let extracted = extract(&headers);
        let mut traces = HashSet::new();
        let mut parents = HashSet::new();
        for _ in 0..3 {
            let meta = MessageMeta::new("w3c-callback");
            let cx = start_send_span(&tracer, &meta, &extracted.context);
            let mut outgoing = Headers::new();
            inject(&cx, &mut outgoing, &meta);
            cx.span().end();
            let (trace, parent, _) = outgoing_traceparent(&outgoing, test);
            traces.insert(trace);
            parents.insert(parent);
        }
        assert_eq!(parents.len(), 3, "{test}: a new parent id per call");
        assert!(
            !traces.contains(&TraceId::INVALID.to_string()),
            "{test}: never the zero trace id"
        );
        if kept {
            assert_eq!(
                traces,
                HashSet::from([TRACE.to_owned()]),
                "{test}: one trace"
            );
        }
    }
}
