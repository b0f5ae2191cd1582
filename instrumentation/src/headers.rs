//! A broker-agnostic list of message headers with Kafka's semantics: names may repeat and
//! values are raw bytes or null. It is the carrier for OpenTelemetry propagators.

use opentelemetry::propagation::{Extractor, Injector};

/// One message header: a name and a raw value, `None` for a Kafka null header.
pub type Header = (String, Option<Vec<u8>>);

/// How a header lookup turned out when the value must be a single UTF-8 string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    /// No header with that name.
    Missing,
    /// Exactly one header with that name and a UTF-8 value.
    Text(&'a str),
    /// The header is present with a null value.
    Null,
    /// The header appears more than once.
    Repeated,
    /// The value is not valid UTF-8.
    NotUtf8,
}

/// Ordered message headers, as Kafka carries them: repeated names and null values allowed.
///
/// Names are compared ASCII case-insensitively on lookup; [`Headers::set`] writes the name
/// exactly as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<Header>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Headers from raw `(name, value)` pairs, keeping their order and repetitions.
    pub fn from_entries(entries: Vec<Header>) -> Self {
        Self { entries }
    }

    /// The raw `(name, value)` pairs, in order.
    pub fn entries(&self) -> &[Header] {
        &self.entries
    }

    /// Consumes the list, returning the raw pairs.
    pub fn into_entries(self) -> Vec<Header> {
        self.entries
    }

    /// Number of headers, counting repetitions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no headers at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a header, keeping any existing one with the same name.
    pub fn push(&mut self, name: impl Into<String>, value: Option<Vec<u8>>) {
        self.entries.push((name.into(), value));
    }

    /// Replaces every header called `name` with one header holding `value`.
    pub fn set(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.remove(name);
        self.entries.push((name.to_owned(), Some(value.into())));
    }

    /// Removes every header called `name`.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Every raw value of the headers called `name`, in order.
    pub fn get_all_raw<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = Option<&'a [u8]>> + use<'a, 'n> {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The single UTF-8 value of `name`, or why there is none.
    pub fn get(&self, name: &str) -> HeaderValue<'_> {
        let mut values = self.get_all_raw(name);
        let Some(first) = values.next() else {
            return HeaderValue::Missing;
        };
        if values.next().is_some() {
            return HeaderValue::Repeated;
        }
        match first {
            None => HeaderValue::Null,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => HeaderValue::Text(text),
                Err(_) => HeaderValue::NotUtf8,
            },
        }
    }

    /// The single UTF-8 value of `name`, `None` when missing, null, repeated or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            HeaderValue::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        Headers::set(self, key, value);
    }
}

impl Extractor for Headers {
    /// A value usable by a propagator: exactly one, non-null, UTF-8 header.
    fn get(&self, key: &str) -> Option<&str> {
        self.get_str(key)
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::with_capacity(self.entries.len());
        for (name, _) in &self.entries {
            if !keys.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                keys.push(name);
            }
        }
        keys
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .get_all_raw(key)
            .filter_map(|v| v.and_then(|bytes| std::str::from_utf8(bytes).ok()))
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

impl From<Vec<Header>> for Headers {
    fn from(entries: Vec<Header>) -> Self {
        Self::from_entries(entries)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn h(name: &str, value: Option<&[u8]>) -> Header {
        (name.to_owned(), value.map(<[u8]>::to_vec))
    }

    #[test]
    fn get_classifies_every_shape_of_value() {
        let cases: Vec<(&str, Vec<Header>, HeaderValue<'static>)> = vec![
            ("no headers at all", vec![], HeaderValue::Missing),
            (
                "other names only",
                vec![h("other", Some(b"x"))],
                HeaderValue::Missing,
            ),
            (
                "one text value",
                vec![h("k", Some(b"v"))],
                HeaderValue::Text("v"),
            ),
            (
                "empty value is text",
                vec![h("k", Some(b""))],
                HeaderValue::Text(""),
            ),
            (
                "name differs in case",
                vec![h("K", Some(b"v"))],
                HeaderValue::Text("v"),
            ),
            ("kafka null header", vec![h("k", None)], HeaderValue::Null),
            (
                "invalid utf-8",
                vec![h("k", Some(&[0xff, 0xfe]))],
                HeaderValue::NotUtf8,
            ),
            (
                "same name twice",
                vec![h("k", Some(b"a")), h("k", Some(b"a"))],
                HeaderValue::Repeated,
            ),
            (
                "repeated with a null",
                vec![h("k", None), h("k", Some(b"a"))],
                HeaderValue::Repeated,
            ),
        ];
        for (reason, entries, expected) in cases {
            let headers = Headers::from_entries(entries);
            assert_eq!(headers.get("k"), expected, "{reason}");
        }
    }

    #[test]
    fn set_replaces_every_repetition_and_keeps_others() {
        let mut headers =
            Headers::from_entries(vec![h("a", Some(b"1")), h("k", Some(b"old")), h("K", None)]);
        headers.set("k", "new");
        assert_eq!(headers.get("k"), HeaderValue::Text("new"));
        assert_eq!(headers.get("a"), HeaderValue::Text("1"));
        assert_eq!(headers.len(), 2);
    }

    #[test]
    fn extractor_hides_unusable_values_and_dedups_keys() {
        let headers = Headers::from_entries(vec![
            h("a", Some(b"1")),
            h("a", Some(&[0xff])),
            h("b", None),
        ]);
        assert_eq!(Extractor::get(&headers, "a"), None, "repeated is unusable");
        assert_eq!(Extractor::get(&headers, "b"), None, "null is unusable");
        assert_eq!(Extractor::keys(&headers), vec!["a", "b"]);
        assert_eq!(Extractor::get_all(&headers, "a"), Some(vec!["1"]));
        assert_eq!(Extractor::get_all(&headers, "b"), None);
    }

    proptest! {
        #[test]
        fn lookups_never_panic_on_arbitrary_headers(
            entries in proptest::collection::vec(
                ("[a-zA-Z_-]{0,12}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
                0..8,
            ),
            name in "[a-zA-Z_-]{0,12}",
        ) {
            let headers = Headers::from_entries(entries);
            let _ = headers.get(&name);
            let _ = Extractor::keys(&headers);
            let _ = Extractor::get_all(&headers, &name);
        }

        #[test]
        fn set_then_get_round_trips(name in "[a-z_-]{1,12}", value in "\\PC{0,40}") {
            let mut headers = Headers::new();
            headers.push(name.clone(), None);
            headers.set(&name, value.clone());
            prop_assert_eq!(headers.get(&name), HeaderValue::Text(&value));
        }
    }
}
