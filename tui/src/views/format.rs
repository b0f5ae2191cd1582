//! Durations and clock times as the views print them; durations come from the one
//! formatter in `causeway_flow::duration`.

/// Nanoseconds per unit.
const MILLI: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// A duration in the compact style of the one formatter: `850µs`, `12.3ms`, `4.20s`, `3m05s`.
pub fn duration(ns: i64) -> String {
    causeway_flow::duration::compact_duration(ns)
}

/// The UTC clock time of a Unix timestamp in nanoseconds: `14:03:27.512`.
pub fn clock(ns: i64) -> String {
    let millis_of_day = (ns.div_euclid(MILLI)).rem_euclid(SECONDS_PER_DAY * 1_000);
    let seconds = millis_of_day / 1_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60,
        millis_of_day % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_utc_time_of_day() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "00:00:00.000", "the epoch"),
            (
                1_700_000_000_123_000_000,
                "22:13:20.123",
                "a real timestamp",
            ),
            (
                -MILLI,
                "23:59:59.999",
                "before the epoch wraps to the previous day",
            ),
        ];
        for (ns, expected, reason) in cases {
            assert_eq!(clock(*ns), *expected, "{reason}");
        }
    }
}
