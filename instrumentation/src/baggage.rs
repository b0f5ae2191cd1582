//! W3C Baggage as a second carrier of the correlation ID, for flows that pass through
//! services which forward `baggage` but not causeway's `correlation-id` header (any
//! OpenTelemetry SDK with its default propagators does).
//!
//! The correlation ID travels as the list-member `correlation.id`
//! ([`BAGGAGE_CORRELATION_ID`]), its value percent-encoded. Reading is lenient: list-members
//! that break the W3C grammar are skipped (and counted), never an error. Writing merges: every
//! valid member of the baggage already there is kept as sent, the `correlation.id` member is
//! replaced or appended, and when the result would pass the W3C limits (64 list-members,
//! 8192 bytes) the baggage is sent on unchanged instead.

use causeway_conventions::header;
use causeway_conventions::messaging::BAGGAGE_CORRELATION_ID;

use crate::correlation::sanitize_correlation_id;
use crate::headers::Headers;

/// Most list-members a `baggage` header must be able to carry.
pub const BAGGAGE_MAX_MEMBERS: usize = 64;
/// Most bytes a `baggage` header must be able to carry.
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// One list-member of a `baggage` value that follows the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key, without surrounding whitespace.
    pub key: &'a str,
    /// The value as sent (percent-encoded), without surrounding whitespace.
    pub raw_value: &'a str,
    /// The whole member as sent, without surrounding whitespace: key, value and properties.
    pub text: &'a str,
}

impl<'a> Member<'a> {
    /// The value, percent-decoded.
    pub fn value(&self) -> String {
        percent_decode(self.raw_value)
    }

    /// The properties as sent (`k1=v1;k2`), empty when there are none.
    pub fn properties(&self) -> &'a str {
        self.text
            .split_once(';')
            .map_or("", |(_, properties)| properties.trim_matches(OWS))
    }
}

impl Parsed<'_> {
    /// The first usable correlation ID among the `correlation.id` members, percent-decoded
    /// and checked as a header value would be.
    pub fn correlation_id(&self) -> Option<String> {
        let decoded = self
            .members
            .iter()
            .map(|member| (member.key, member.value()));
        first_correlation_id(decoded)
    }
}

/// The first usable correlation ID among decoded `(key, value)` members.
pub fn first_correlation_id<K, V>(members: impl IntoIterator<Item = (K, V)>) -> Option<String>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    members
        .into_iter()
        .filter(|(key, _)| key.as_ref() == BAGGAGE_CORRELATION_ID)
        .find_map(|(_, value)| sanitize_correlation_id(value.as_ref()).map(str::to_owned))
}

/// The list-members of a `baggage` value: those that follow the grammar, in order, and how
/// many did not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Valid list-members, in order, duplicates kept.
    pub members: Vec<Member<'a>>,
    /// How many non-empty list-members break the grammar.
    pub invalid: usize,
}

const OWS: [char; 2] = [' ', '\t'];

/// RFC 9110 `tchar`: the characters of a `token`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'..=b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// `baggage-octet`: printable US-ASCII without space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn is_value(text: &str) -> bool {
    text.bytes().all(is_baggage_octet)
}

/// `property = key OWS "=" OWS value / key OWS`.
fn is_property(text: &str) -> bool {
    match text.split_once('=') {
        Some((key, value)) => is_token(key.trim_matches(OWS)) && is_value(value.trim_matches(OWS)),
        None => is_token(text.trim_matches(OWS)),
    }
}

fn parse_member(text: &str) -> Option<Member<'_>> {
    let mut parts = text.split(';');
    let (key, raw_value) = parts.next()?.split_once('=')?;
    let (key, raw_value) = (key.trim_matches(OWS), raw_value.trim_matches(OWS));
    (is_token(key) && is_value(raw_value) && parts.all(is_property)).then_some(Member {
        key,
        raw_value,
        text,
    })
}

/// Splits a `baggage` value into its list-members. Empty members (`a=1,,b=2`) are skipped
/// without being counted as invalid.
pub fn parse(value: &str) -> Parsed<'_> {
    let mut parsed = Parsed::default();
    for text in value.split(',').map(|m| m.trim_matches(OWS)) {
        if text.is_empty() {
            continue;
        }
        match parse_member(text) {
            Some(member) => parsed.members.push(member),
            None => parsed.invalid += 1,
        }
    }
    parsed
}

/// Decodes `%XX` sequences; a `%` not followed by two hex digits stays as it is, and bytes
/// that do not form UTF-8 become U+FFFD, as the specification requires.
pub fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_owned();
    }
    let hex = |byte: u8| char::from(byte).to_digit(16);
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                // Two hex digits make at most 0xff.
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

/// Encodes every byte outside `baggage-octet`, and `%`, as `%XX`.
pub fn percent_encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if is_baggage_octet(byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

/// The `baggage` of a message: every `baggage` header with a UTF-8 value, joined with
/// commas (several headers are one list); `None` when there is none.
pub fn received(headers: &Headers) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all_raw(header::BAGGAGE)
        .filter_map(|value| value.and_then(|bytes| std::str::from_utf8(bytes).ok()))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The first usable correlation ID among the `correlation.id` members of a `baggage`
/// value, percent-decoded and checked as a header value would be.
pub fn correlation_id(baggage: &str) -> Option<String> {
    parse(baggage).correlation_id()
}

/// The `baggage` value to send for correlation ID `id` on top of `baggage` (what the
/// message already carries, if anything): its valid members as they were, the first
/// `correlation.id` member replaced by `id` (later ones removed) or `id` appended. When that
/// would pass [`BAGGAGE_MAX_MEMBERS`] or [`BAGGAGE_MAX_BYTES`], `baggage` is returned
/// unchanged: existing members are never dropped to make room.
pub fn with_correlation_id(baggage: Option<&str>, id: &str) -> Option<String> {
    let ours = format!("{BAGGAGE_CORRELATION_ID}={}", percent_encode(id));
    let members = baggage.map(parse).unwrap_or_default().members;
    let mut merged: Vec<&str> = Vec::with_capacity(members.len() + 1);
    let mut placed = false;
    for member in &members {
        if member.key != BAGGAGE_CORRELATION_ID {
            merged.push(member.text);
        } else if !placed {
            merged.push(&ours);
            placed = true;
        }
    }
    if !placed {
        merged.push(&ours);
    }
    let count = merged.len();
    let merged = merged.join(",");
    if count <= BAGGAGE_MAX_MEMBERS && merged.len() <= BAGGAGE_MAX_BYTES {
        Some(merged)
    } else {
        baggage.map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn keys(value: &str) -> Vec<&str> {
        parse(value).members.iter().map(|m| m.key).collect()
    }

    #[test]
    fn parses_the_specification_examples_and_skips_invalid_members() {
        let cases: Vec<(&str, Vec<&str>, usize, &str)> = vec![
            ("", vec![], 0, "empty"),
            ("userId=alice", vec!["userId"], 0, "one member"),
            (
                "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
                vec!["key1", "key2", "key3"],
                0,
                "the specification's three-member example",
            ),
            (
                "userId=Am%C3%A9lie,serverNode=DF%2028,isProduction=false",
                vec!["userId", "serverNode", "isProduction"],
                0,
                "percent-encoded values",
            ),
            ("a=1,,b=2,", vec!["a", "b"], 0, "empty members are skipped"),
            ("a=x=y", vec!["a"], 0, "= inside a value is allowed"),
            ("a=", vec!["a"], 0, "empty value is allowed"),
            ("a=1,a=2", vec!["a", "a"], 0, "duplicates are kept in order"),
            ("a=1,nokey,b=2", vec!["a", "b"], 1, "member without ="),
            ("a=1,=2", vec!["a"], 1, "empty key"),
            ("a b=1,c=2", vec!["c"], 1, "space inside a key"),
            ("a=has space,c=2", vec!["c"], 1, "space inside a value"),
            ("a=\"q\",c=2", vec!["c"], 1, "double quote in a value"),
            ("a=back\\slash,c=2", vec!["c"], 1, "backslash in a value"),
            ("a=é,c=2", vec!["c"], 1, "raw non-ascii value"),
            ("a=1;,c=2", vec!["c"], 1, "empty property"),
            ("a=1;p q,c=2", vec!["c"], 1, "space inside a property key"),
            (
                "a=1;p=v v,c=2",
                vec!["c"],
                1,
                "space inside a property value",
            ),
        ];
        for (value, expected, invalid, reason) in cases {
            assert_eq!(keys(value), expected, "{reason}");
            assert_eq!(parse(value).invalid, invalid, "{reason}");
        }
    }

    #[test]
    fn values_are_percent_decoded_as_the_specification_says() {
        let cases: Vec<(&str, &str, &str)> = vec![
            ("alice", "alice", "plain"),
            ("DF%2028", "DF 28", "encoded space"),
            ("Am%C3%A9lie", "Amélie", "utf-8 sequence"),
            ("Am%c3%a9lie", "Amélie", "lower-case hex"),
            ("100%25", "100%", "encoded percent"),
            ("%FF", "\u{fffd}", "bytes that are not utf-8 become U+FFFD"),
            ("50%", "50%", "lone percent stays"),
            ("%4", "%4", "one hex digit stays"),
            ("%zz", "%zz", "non-hex stays"),
        ];
        for (raw, decoded, reason) in cases {
            assert_eq!(percent_decode(raw), decoded, "{reason}");
        }
        assert_eq!(percent_encode("DF 28"), "DF%2028");
        assert_eq!(percent_encode("Amélie"), "Am%C3%A9lie");
        assert_eq!(percent_encode("a,b;c\\d\"e%f"), "a%2Cb%3Bc%5Cd%22e%25f");
        assert_eq!(
            percent_encode("ord-9/x=y"),
            "ord-9/x=y",
            "= and / are octets"
        );
    }

    #[test]
    fn reads_the_first_usable_correlation_id() {
        let long = format!("correlation.id={}", "x".repeat(300));
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            (
                "correlation.id=ord-9,other=x",
                Some("ord-9"),
                "first member",
            ),
            (
                "other=x, correlation.id = ord-9 ",
                Some("ord-9"),
                "with OWS",
            ),
            (
                "correlation.id=ord-9;ttl=3",
                Some("ord-9"),
                "with a property",
            ),
            ("correlation.id=ord%209", Some("ord 9"), "percent-decoded"),
            ("Correlation.Id=ord-9", None, "keys are case-sensitive"),
            ("correlation_id=ord-9", None, "another key"),
            ("correlation.id=", None, "empty value is unusable"),
            ("correlation.id=%0A", None, "control character"),
            (&long, None, "longer than a header value may be"),
            (
                "correlation.id=,correlation.id=ord-2",
                Some("ord-2"),
                "the first usable of duplicates",
            ),
            (
                "correlation.id=a b,correlation.id=ord-3",
                Some("ord-3"),
                "an invalid member is skipped",
            ),
        ];
        for (value, expected, reason) in cases {
            assert_eq!(correlation_id(value).as_deref(), expected, "{reason}");
        }
    }

    #[test]
    fn merging_keeps_every_other_member() {
        let cases: Vec<(Option<&str>, &str, Option<&str>, &str)> = vec![
            (
                None,
                "ord-1",
                Some("correlation.id=ord-1"),
                "no baggage yet",
            ),
            (
                Some(""),
                "ord-1",
                Some("correlation.id=ord-1"),
                "empty baggage",
            ),
            (
                Some("tenant=acme,region=eu;prop"),
                "ord-1",
                Some("tenant=acme,region=eu;prop,correlation.id=ord-1"),
                "appended, properties kept",
            ),
            (
                Some("a=1, correlation.id=old ;p, b=2"),
                "ord-1",
                Some("a=1,correlation.id=ord-1,b=2"),
                "replaced in place",
            ),
            (
                Some("correlation.id=old,a=1,correlation.id=older"),
                "ord-1",
                Some("correlation.id=ord-1,a=1"),
                "later duplicates of our key removed",
            ),
            (
                Some("a=1,bad member,b=2"),
                "ord-1",
                Some("a=1,b=2,correlation.id=ord-1"),
                "invalid members are left out",
            ),
            (
                Some("a=1"),
                "ord 1,é",
                Some("a=1,correlation.id=ord%201%2C%C3%A9"),
                "percent-encoded",
            ),
        ];
        for (baggage, id, expected, reason) in cases {
            assert_eq!(
                with_correlation_id(baggage, id).as_deref(),
                expected,
                "{reason}"
            );
        }
    }

    #[test]
    fn merging_never_drops_members_to_make_room() {
        let full: Vec<String> = (0..BAGGAGE_MAX_MEMBERS)
            .map(|i| format!("k{i}=v"))
            .collect();
        let full = full.join(",");
        assert_eq!(
            with_correlation_id(Some(&full), "ord-1").as_deref(),
            Some(full.as_str()),
            "64 members: no room for a 65th"
        );
        let mut replaced: Vec<String> = (0..BAGGAGE_MAX_MEMBERS - 1)
            .map(|i| format!("k{i}=v"))
            .collect();
        replaced.push("correlation.id=old".into());
        let replaced = replaced.join(",");
        let merged = with_correlation_id(Some(&replaced), "ord-1").unwrap();
        assert!(
            merged.ends_with(",correlation.id=ord-1"),
            "replacing keeps the count at 64"
        );
        let big = format!("blob={}", "x".repeat(BAGGAGE_MAX_BYTES - 20));
        assert_eq!(
            with_correlation_id(Some(&big), "ord-1").as_deref(),
            Some(big.as_str()),
            "8192 bytes would be passed"
        );
        let exact = format!("blob={}", "x".repeat(BAGGAGE_MAX_BYTES - 5 - 21));
        let merged = with_correlation_id(Some(&exact), "ord-1").unwrap();
        assert_eq!(merged.len(), BAGGAGE_MAX_BYTES, "exactly 8192 bytes fits");
    }

    #[test]
    fn received_joins_repeated_headers() {
        let headers = Headers::from_entries(vec![
            ("baggage".into(), Some(b"a=1".to_vec())),
            ("other".into(), Some(b"x".to_vec())),
            ("Baggage".into(), Some(b"correlation.id=ord-9".to_vec())),
            ("baggage".into(), None),
            ("baggage".into(), Some(vec![0xff])),
        ]);
        let value = received(&headers).unwrap();
        assert_eq!(
            value, "a=1,correlation.id=ord-9",
            "null and non-utf-8 skipped"
        );
        assert_eq!(correlation_id(&value).as_deref(), Some("ord-9"));
        assert_eq!(received(&Headers::new()), None);
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(value in "\\PC{0,60}") {
            let encoded = percent_encode(&value);
            prop_assert!(is_value(&encoded));
            prop_assert_eq!(percent_decode(&encoded), value);
        }

        #[test]
        fn merged_baggage_carries_the_id_and_every_valid_member(
            members in proptest::collection::vec("[a-z]{1,6}=[a-z0-9%]{0,6}( ?;[a-z]{1,3})?", 0..10),
            id in "[!-~][ -~]{0,40}[!-~]",
        ) {
            let baggage = members.join(",");
            let merged = with_correlation_id(Some(&baggage), &id).unwrap();
            prop_assert_eq!(correlation_id(&merged), Some(id));
            let parsed = parse(&merged);
            prop_assert_eq!(parsed.invalid, 0);
            let kept: Vec<&str> = parsed.members.iter().filter(|m| m.key != BAGGAGE_CORRELATION_ID).map(|m| m.text).collect();
            let original: Vec<&str> = parse(&baggage).members.iter().map(|m| m.text).collect();
            prop_assert_eq!(kept, original);
        }

        #[test]
        fn parsing_never_panics(value in "\\PC{0,120}") {
            let _ = parse(&value);
            let _ = correlation_id(&value);
            let _ = with_correlation_id(Some(&value), "ord-1");
        }
    }
}
