//! CloudEvents Kafka binding in binary mode: the `ce_*` headers of a message.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::headers::Headers;
use causeway_conventions::header::{
    CE_DATASCHEMA, CE_ID, CE_SOURCE, CE_SPECVERSION, CE_SPECVERSION_VALUE, CE_TIME, CE_TYPE,
};

/// The CloudEvents attributes of one message; each is `None` when absent or unusable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudEvent {
    /// `ce_id`: the event id.
    pub id: Option<String>,
    /// `ce_type`: the event type, such as `order.placed.v1`.
    pub event_type: Option<String>,
    /// `ce_source`: the producer of the event.
    pub source: Option<String>,
    /// `ce_time`: when the event happened, RFC 3339.
    pub time: Option<String>,
    /// `ce_dataschema`: the schema of the payload.
    pub data_schema: Option<String>,
}

impl CloudEvent {
    /// Reads the `ce_*` headers; null, repeated and non-UTF-8 values count as absent.
    pub fn read(headers: &Headers) -> Self {
        let text = |name: &str| headers.get_str(name).map(str::to_owned);
        Self {
            id: text(CE_ID),
            event_type: text(CE_TYPE),
            source: text(CE_SOURCE),
            time: text(CE_TIME),
            data_schema: text(CE_DATASCHEMA),
        }
    }

    /// Writes the present attributes as `ce_*` headers plus `ce_specversion`, replacing any
    /// previous values; absent attributes leave existing headers alone.
    pub fn write(&self, headers: &mut Headers) {
        headers.set(CE_SPECVERSION, CE_SPECVERSION_VALUE);
        let fields = [
            (CE_ID, &self.id),
            (CE_TYPE, &self.event_type),
            (CE_SOURCE, &self.source),
            (CE_TIME, &self.time),
            (CE_DATASCHEMA, &self.data_schema),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                headers.set(name, value.as_str());
            }
        }
    }
}

/// A fresh random event id shaped like a version-4 UUID.
pub fn new_event_id() -> String {
    let bits: u128 = rand::random();
    // Set the version (4) and variant (10xx) bits.
    let bits = (bits & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `time` as an RFC 3339 UTC timestamp with millisecond precision.
pub fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    )
}

/// Year, month and day of the proleptic Gregorian calendar for days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_instants() {
        let cases: Vec<(u64, u32, &str, &str)> = vec![
            (0, 0, "1970-01-01T00:00:00.000Z", "the epoch"),
            (
                951_782_400,
                5,
                "2000-02-29T00:00:00.005Z",
                "leap day of a 400-year leap year",
            ),
            (
                1_709_251_199,
                999,
                "2024-02-29T23:59:59.999Z",
                "last millisecond of a leap day",
            ),
            (1_798_761_600, 0, "2027-01-01T00:00:00.000Z", "new year"),
            (
                4_107_542_400,
                0,
                "2100-03-01T00:00:00.000Z",
                "2100 is not a leap year",
            ),
        ];
        for (secs, millis, expected, reason) in cases {
            let time =
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis.into());
            assert_eq!(rfc3339(time), expected, "{reason}");
        }
    }

    #[test]
    fn event_ids_look_like_uuid_v4_and_differ() {
        let a = new_event_id();
        let b = new_event_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "version nibble in {a}");
        assert!(
            matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
            "variant bits in {a}"
        );
    }

    #[test]
    fn write_then_read_round_trips_and_ignores_bad_values() {
        let event = CloudEvent {
            id: Some("e-1".into()),
            event_type: Some("order.placed.v1".into()),
            source: Some("/order".into()),
            time: Some("2026-01-01T00:00:00.000Z".into()),
            data_schema: None,
        };
        let mut headers = Headers::new();
        event.write(&mut headers);
        assert_eq!(CloudEvent::read(&headers), event);
        assert_eq!(headers.get_str(CE_SPECVERSION), Some("1.0"));

        headers.push(CE_DATASCHEMA, Some(vec![0xff]));
        headers.push(CE_ID, Some(b"e-2".to_vec()));
        let read = CloudEvent::read(&headers);
        assert_eq!(read.data_schema, None, "non-utf-8 schema is absent");
        assert_eq!(read.id, None, "repeated id is absent");
    }
}
