//! Conversion between rdkafka message headers and the broker-agnostic [`Headers`].

use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};

use crate::headers::Headers;

/// Copies rdkafka headers (borrowed or owned) into a [`Headers`] list, keeping order, null
/// values and repetitions.
pub fn from_kafka<H: rdkafka::message::Headers>(headers: Option<&H>) -> Headers {
    let Some(headers) = headers else {
        return Headers::new();
    };
    let entries = headers
        .iter()
        .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
        .collect();
    Headers::from_entries(entries)
}

/// The rdkafka form of `headers`, ready for a `FutureRecord`.
pub fn to_kafka(headers: &Headers) -> OwnedHeaders {
    headers.entries().iter().fold(
        OwnedHeaders::new_with_capacity(headers.len()),
        |owned, (name, value)| {
            owned.insert(KafkaHeader {
                key: name,
                value: value.as_deref(),
            })
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn round_trips_nulls_repeats_and_bytes() {
        let original = Headers::from_entries(vec![
            ("traceparent".into(), Some(b"00-x".to_vec())),
            ("k".into(), None),
            ("k".into(), Some(vec![0xff, 0x00])),
            ("empty".into(), Some(Vec::new())),
        ]);
        let back = from_kafka(Some(&to_kafka(&original)));
        assert_eq!(back, original);
        assert_eq!(from_kafka::<OwnedHeaders>(None), Headers::new());
    }
}
