//! W3C Trace Context `tracestate`, parsed as the current specification and the W3C test
//! suite (github.com/w3c/trace-context, `test/test.py`) define it.
//!
//! - Repeated `tracestate` headers are one list, joined with commas (RFC 9110 field order).
//! - A list-member is `key=value`; spaces and tabs around it are ignored, and empty members
//!   are allowed.
//! - `key = ( lcalpha / DIGIT ) 0*255 ( lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@" )`: up
//!   to 256 characters, `@` anywhere after the first (the older `tenant@system` rule, with a
//!   241/14 split, is gone from the specification).
//! - `value`: 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a
//!   space; leading spaces belong to the value.
//! - At most 32 list-members.
//! - A key that appears twice does not invalidate the list: the first (left-most, most
//!   recent) member is kept and the later ones are dropped, as the specification allows.
//!
//! Anything else makes the whole `tracestate` invalid: it is dropped and the `traceparent`
//! is still used.

use std::str::FromStr;

use opentelemetry::trace::TraceState;

/// Most list-members a `tracestate` may carry.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// Longest key of a list-member, in characters.
pub const TRACESTATE_MAX_KEY_LEN: usize = 256;
/// Longest value of a list-member, in characters.
pub const TRACESTATE_MAX_VALUE_LEN: usize = 256;

/// Why a `tracestate` was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TracestateError {
    /// A `tracestate` header is a Kafka null or not UTF-8.
    #[error("tracestate header is null or not utf-8")]
    Unreadable,
    /// A list-member has no `=`.
    #[error("tracestate list-member has no '='")]
    NoEquals,
    /// A key breaks the key grammar (characters, first character or length).
    #[error("tracestate key is not 1 to 256 of a-z 0-9 _ - * / @ starting with a-z or 0-9")]
    InvalidKey,
    /// A value breaks the value grammar (characters, trailing space or length).
    #[error("tracestate value is not 1 to 256 printable ascii characters other than ',' and '='")]
    InvalidValue,
    /// More than 32 list-members.
    #[error("tracestate has more than 32 list-members")]
    TooManyMembers,
}

impl TracestateError {
    /// A short stable name for span attributes, such as `invalid_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreadable => "unreadable",
            Self::NoEquals => "no_equals",
            Self::InvalidKey => "invalid_key",
            Self::InvalidValue => "invalid_value",
            Self::TooManyMembers => "too_many_members",
        }
    }
}

/// A valid `tracestate`: its list-members in order, each key once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tracestate {
    members: Vec<(String, String)>,
}

fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    bytes.len() <= TRACESTATE_MAX_KEY_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

fn valid_value(value: &str) -> bool {
    let chr = |b: &u8| (0x20..=0x7e).contains(b) && *b != b',' && *b != b'=';
    !value.is_empty()
        && value.len() <= TRACESTATE_MAX_VALUE_LEN
        && value.as_bytes().iter().all(chr)
        && !value.ends_with(' ')
}

impl Tracestate {
    /// Parses one combined `tracestate` value.
    pub fn parse(value: &str) -> Result<Self, TracestateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        let mut count = 0;
        for member in value.split(',').map(|m| m.trim_matches([' ', '\t'])) {
            if member.is_empty() {
                continue;
            }
            count += 1;
            if count > TRACESTATE_MAX_MEMBERS {
                return Err(TracestateError::TooManyMembers);
            }
            let (key, value) = member.split_once('=').ok_or(TracestateError::NoEquals)?;
            if !valid_key(key) {
                return Err(TracestateError::InvalidKey);
            }
            if !valid_value(value) {
                return Err(TracestateError::InvalidValue);
            }
            if !members.iter().any(|(k, _)| k == key) {
                members.push((key.to_owned(), value.to_owned()));
            }
        }
        Ok(Self { members })
    }

    /// Parses the values of every `tracestate` header of a message, in order, as one list.
    /// `None` stands for a header that is a Kafka null or not UTF-8, which makes the whole
    /// list unreadable.
    pub fn from_headers<'a, I>(values: I) -> Result<Self, TracestateError>
    where
        I: IntoIterator<Item = Option<&'a str>>,
    {
        let values = values
            .into_iter()
            .collect::<Option<Vec<&str>>>()
            .ok_or(TracestateError::Unreadable)?;
        Self::parse(&values.join(","))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The list-members in order.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of list-members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when there are no list-members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The header value to send on: `key=value` members joined with `,`.
    pub fn header(&self) -> String {
        let mut header = String::new();
        for (key, value) in &self.members {
            if !header.is_empty() {
                header.push(',');
            }
            header.push_str(key);
            header.push('=');
            header.push_str(value);
        }
        header
    }

    /// The same list as the OpenTelemetry SDK's [`TraceState`], or `None` when the SDK
    /// refuses one of its keys: the SDK still applies the older `tenant@system` key rule
    /// (one `@`, at most 14 characters after it), which the specification has dropped.
    pub fn to_sdk(&self) -> Option<TraceState> {
        TraceState::from_key_value(self.members()).ok()
    }
}

impl FromStr for Tracestate {
    type Err = TracestateError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

/// Parses a `tracestate` value into the SDK's [`TraceState`]; an invalid one is dropped
/// whole (the `traceparent` is still used), as is one whose keys the SDK cannot hold (see
/// [`Tracestate::to_sdk`]).
pub fn parse_tracestate(value: Option<&str>) -> TraceState {
    value
        .and_then(|text| Tracestate::parse(text).ok())
        .and_then(|state| state.to_sdk())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    /// Every allowed key character, as the W3C suite's `test_tracestate_all_allowed_characters`
    /// builds it.
    fn all_key_characters() -> String {
        let mut key: String = ('a'..='z').collect();
        key.push_str("0123456789_-*/");
        key
    }

    /// Every allowed value character: 0x20-0x7e without `,` and `=`.
    fn all_value_characters() -> String {
        (0x20u8..=0x7e)
            .filter(|b| *b != b',' && *b != b'=')
            .map(char::from)
            .collect()
    }

    #[test]
    fn parses_valid_lists_member_by_member() {
        let key = all_key_characters();
        let vendor_key = format!("{key}@a-z0-9_-*/");
        let value = all_value_characters();
        let all_chars = format!("{key}={value}");
        let all_chars_vendor = format!("{vendor_key}={value}");
        let long_key = format!("{}=1", "z".repeat(256));
        let tenant_241 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        let tenant_242 = format!("{}@v=1", "t".repeat(242));
        let system_15 = format!("t@{}=1", "v".repeat(15));
        let value_256 = format!("a={}", "v".repeat(256));
        let thirty_two: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
        let thirty_two = thirty_two.join(",");
        type Members<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(&str, Members, &str)> = vec![
            ("", vec![], "empty header is allowed"),
            (" , ,\t", vec![], "only empty members"),
            ("foo=1", vec![("foo", "1")], "one member"),
            (
                "foo=1,bar=2",
                vec![("foo", "1"), ("bar", "2")],
                "order kept",
            ),
            (
                "foo=1 \t , \t bar=2",
                vec![("foo", "1"), ("bar", "2")],
                "spaces and tabs around members",
            ),
            ("foo=1 ", vec![("foo", "1")], "trailing space is OWS"),
            (
                "foo= 1",
                vec![("foo", " 1")],
                "leading space is part of the value",
            ),
            (
                "foo=1,foo=2",
                vec![("foo", "1")],
                "duplicate key: the first is kept",
            ),
            (
                "foo@=1,bar=2",
                vec![("foo@", "1"), ("bar", "2")],
                "@ may end a key",
            ),
            ("foo@@bar=1", vec![("foo@@bar", "1")], "@ may repeat"),
            (
                "foo@bar@baz=1",
                vec![("foo@bar@baz", "1")],
                "several @ separated",
            ),
            (
                "1special=1",
                vec![("1special", "1")],
                "key may start with a digit",
            ),
            (
                &long_key,
                vec![(&long_key[..256], "1")],
                "256-character key",
            ),
            (
                &tenant_241,
                vec![(&tenant_241[..256], "1")],
                "tenant 241, system 14",
            ),
            (
                &tenant_242,
                vec![(&tenant_242[..244], "1")],
                "tenant 242: the old 241 limit is gone",
            ),
            (
                &system_15,
                vec![(&system_15[..17], "1")],
                "system 15: the old 14 limit is gone",
            ),
            (
                &value_256,
                vec![("a", &value_256[2..])],
                "256-character value",
            ),
            (&all_chars, vec![(&key, &value)], "every allowed character"),
            (
                &all_chars_vendor,
                vec![(&vendor_key, &value)],
                "every allowed character with @",
            ),
        ];
        for (header, expected, reason) in cases {
            let state = Tracestate::parse(header).unwrap_or_else(|e| panic!("{reason}: {e}"));
            assert_eq!(state.members().collect::<Vec<_>>(), expected, "{reason}");
        }
        let state = Tracestate::parse(&thirty_two).unwrap();
        assert_eq!(state.len(), 32, "32 members is the limit, not past it");
        assert_eq!(state.get("bar01"), Some("01"));
    }

    #[test]
    fn rejects_invalid_lists_with_their_reason() {
        use TracestateError::*;
        let long_key = format!("{}=1", "z".repeat(257));
        let long_value = format!("a={}", "v".repeat(257));
        let thirty_three: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
        let thirty_three = thirty_three.join(",");
        let cases: Vec<(&str, TracestateError, &str)> = vec![
            ("foo", NoEquals, "no ="),
            ("foo=1,bar", NoEquals, "one member without ="),
            ("=1", InvalidKey, "empty key"),
            ("foo =1", InvalidKey, "space before ="),
            ("FOO=1", InvalidKey, "upper case"),
            ("foo.bar=1", InvalidKey, "dot in key"),
            ("@foo=1,bar=2", InvalidKey, "key starting with @"),
            ("_foo=1", InvalidKey, "key starting with _"),
            ("é=1", InvalidKey, "non-ascii key"),
            (&long_key, InvalidKey, "257-character key"),
            ("foo=", InvalidValue, "empty value"),
            (
                "foo=,bar=3",
                InvalidValue,
                "empty value drops the other members too",
            ),
            ("foo=bar=baz", InvalidValue, "= in a value"),
            ("foo=a\tb", InvalidValue, "tab inside a value"),
            ("foo=\u{7f}", InvalidValue, "DEL is not printable"),
            ("foo=é", InvalidValue, "non-ascii value"),
            (&long_value, InvalidValue, "257-character value"),
            (&thirty_three, TooManyMembers, "33 members"),
        ];
        for (header, expected, reason) in cases {
            assert_eq!(
                Tracestate::parse(header),
                Err(expected),
                "{reason}: {header:?}"
            );
        }
    }

    #[test]
    fn repeated_headers_are_one_list() {
        let no_equals = "z".repeat(257);
        type Expected<'a> = Result<&'a str, TracestateError>;
        let cases: Vec<(Vec<Option<&str>>, Expected, &str)> = vec![
            (vec![], Ok(""), "no header"),
            (
                vec![Some("foo=1,bar=2"), Some("rojo=1,congo=2"), Some("baz=3")],
                Ok("foo=1,bar=2,rojo=1,congo=2,baz=3"),
                "joined in order",
            ),
            (
                vec![Some(""), Some("foo=1")],
                Ok("foo=1"),
                "an empty header adds nothing",
            ),
            (
                vec![Some("foo=1"), Some("foo=2")],
                Ok("foo=1"),
                "duplicate across headers: the first is kept",
            ),
            (
                vec![Some("foo=1"), None],
                Err(TracestateError::Unreadable),
                "a null header spoils the list",
            ),
            (
                vec![Some("foo=1"), Some(&no_equals)],
                Err(TracestateError::NoEquals),
                "an invalid member in any header drops all",
            ),
        ];
        for (values, expected, reason) in cases {
            let parsed = Tracestate::from_headers(values).map(|s| s.header());
            assert_eq!(parsed.as_deref().map_err(|e| *e), expected, "{reason}");
        }
    }

    #[test]
    fn the_sdk_form_is_offered_only_when_the_sdk_accepts_every_key() {
        let cases: Vec<(&str, Option<&str>, &str)> = vec![
            ("foo=1,bar=2", Some("foo=1,bar=2"), "plain keys"),
            ("tenant@sys=1", Some("tenant@sys=1"), "tenant@system"),
            ("", Some(""), "empty"),
            ("foo@@bar=1", None, "two @: the sdk's older rule"),
            (
                "t@vvvvvvvvvvvvvvv=1",
                None,
                "15 after @: the sdk's older rule",
            ),
        ];
        for (header, expected, reason) in cases {
            let sdk = Tracestate::parse(header).unwrap().to_sdk();
            assert_eq!(sdk.map(|s| s.header()).as_deref(), expected, "{reason}");
        }
        assert_eq!(parse_tracestate(Some("foo@@bar=1")), TraceState::default());
        assert_eq!(parse_tracestate(Some("a=1,b=2")).get("b"), Some("2"));
        assert_eq!(parse_tracestate(None), TraceState::default());
    }

    /// An independent statement of the list grammar, to check the parser against.
    fn reference_member_ok(member: &str) -> bool {
        let Some(eq) = member.find('=') else {
            return false;
        };
        let (key, value) = (&member[..eq], &member[eq + 1..]);
        let key_ok = (1..=256).contains(&key.len())
            && key.chars().enumerate().all(|(i, c)| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || (i > 0 && matches!(c, '_' | '-' | '*' | '/' | '@'))
            });
        let value_ok = (1..=256).contains(&value.len())
            && value
                .chars()
                .all(|c| (' '..='~').contains(&c) && c != ',' && c != '=')
            && !value.ends_with(' ');
        key_ok && value_ok
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_grammar(
            members in proptest::collection::vec("[ \t]{0,2}[a-zA-Z0-9@_*/. -]{0,6}(=[ -~]{0,6})?[ \t]{0,2}", 0..40),
        ) {
            let header = members.join(",");
            let trimmed: Vec<&str> = header
                .split(',')
                .map(|m| m.trim_matches([' ', '\t']))
                .filter(|m| !m.is_empty())
                .collect();
            let expected = trimmed.len() <= TRACESTATE_MAX_MEMBERS
                && trimmed.iter().all(|m| reference_member_ok(m));
            prop_assert_eq!(Tracestate::parse(&header).is_ok(), expected, "{:?}", header);
        }

        #[test]
        fn the_header_parses_back_to_the_same_list(
            header in "[a-z0-9][a-z0-9@_*/-]{0,8}=[!-+\\--<>-~]{1,8}(,[a-z0-9][a-z0-9@_*/-]{0,8}=[!-+\\--<>-~]{1,8}){0,31}",
        ) {
            let state = Tracestate::parse(&header).unwrap();
            prop_assert_eq!(Tracestate::parse(&state.header()), Ok(state.clone()));
        }
    }
}
