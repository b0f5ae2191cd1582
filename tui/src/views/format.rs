//! Durations, clock times and counts as the views print them.

/// Nanoseconds per unit.
const MICRO: i64 = 1_000;
const MILLI: i64 = 1_000_000;
const SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// A duration in the largest unit that keeps it readable: `850µs`, `12.3ms`, `4.20s`, `3m05s`.
pub fn duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs() as i64;
    let text = if ns < MICRO {
        format!("{ns}ns")
    } else if ns < MILLI {
        format!("{}µs", ns / MICRO)
    } else if ns < 100 * MILLI {
        format!("{:.1}ms", ns as f64 / MILLI as f64)
    } else if ns < SECOND {
        format!("{}ms", ns / MILLI)
    } else if ns < 60 * SECOND {
        format!("{:.2}s", ns as f64 / SECOND as f64)
    } else {
        let seconds = ns / SECOND;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    };
    format!("{sign}{text}")
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
    fn durations_pick_a_readable_unit() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "0ns", "zero"),
            (999, "999ns", "below a microsecond"),
            (850 * MICRO, "850µs", "microseconds"),
            (12_340_000, "12.3ms", "milliseconds with a decimal"),
            (450 * MILLI, "450ms", "hundreds of milliseconds"),
            (4_200 * MILLI, "4.20s", "seconds"),
            (185 * SECOND, "3m05s", "minutes"),
            (-3 * MILLI, "-3.0ms", "negative under clock skew"),
        ];
        for (ns, expected, reason) in cases {
            assert_eq!(duration(*ns), *expected, "{reason}");
        }
    }

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
