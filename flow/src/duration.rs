//! The one duration formatter: every duration causeway prints (`flow`, `flows`, `lag`,
//! `alerts`, the dashboard) goes through [`format_duration`], in one of two styles.
//!
//! A duration is shown in the largest unit that keeps it readable, and past a minute as two
//! whole units (`2 min 5 s`, `3 h 20 min`, `4 d 6 h`, `2 y 17 d`), so a stalled group's
//! years of lag read as years, not as millions of minutes.

/// Nanoseconds per unit.
const MICRO: u64 = 1_000;
const MILLI: u64 = 1_000_000;
const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const YEAR: u64 = 365 * DAY;

/// How a duration is spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationStyle {
    /// With spaces, for command output: `850 ns`, `12 µs`, `3.4 ms`, `1.25 s`, `2 min 5 s`.
    Spaced,
    /// Without spaces, for narrow columns: `850ns`, `12µs`, `3.4ms`, `450ms`, `1.25s`, `2m05s`.
    Compact,
}

/// `ns` nanoseconds in `style`. Negative durations (clock skew) keep their sign.
pub fn format_duration(ns: i64, style: DurationStyle) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    let spaced = style == DurationStyle::Spaced;
    let body = if ns < MICRO {
        unit(ns, "ns", spaced)
    } else if ns < MILLI {
        unit(ns / MICRO, "µs", spaced)
    } else if ns < SECOND {
        if spaced || ns < 100 * MILLI {
            decimal(ns as f64 / MILLI as f64, 1, "ms", spaced)
        } else {
            unit(ns / MILLI, "ms", spaced)
        }
    } else if ns < MINUTE {
        decimal(ns as f64 / SECOND as f64, 2, "s", spaced)
    } else if ns < HOUR {
        two_units(
            ns / MINUTE,
            ns / SECOND % 60,
            ["min", "s"],
            ["m", "s"],
            spaced,
        )
    } else if ns < DAY {
        two_units(
            ns / HOUR,
            ns / MINUTE % 60,
            ["h", "min"],
            ["h", "m"],
            spaced,
        )
    } else if ns < YEAR {
        two_units(ns / DAY, ns / HOUR % 24, ["d", "h"], ["d", "h"], spaced)
    } else {
        two_units(ns / YEAR, ns % YEAR / DAY, ["y", "d"], ["y", "d"], spaced)
    };
    format!("{sign}{body}")
}

/// [`format_duration`] in the spaced style, for command output.
pub fn human_duration(ns: i64) -> String {
    format_duration(ns, DurationStyle::Spaced)
}

/// [`format_duration`] in the compact style, for narrow columns.
pub fn compact_duration(ns: i64) -> String {
    format_duration(ns, DurationStyle::Compact)
}

fn unit(value: u64, unit: &str, spaced: bool) -> String {
    if spaced {
        format!("{value} {unit}")
    } else {
        format!("{value}{unit}")
    }
}

fn decimal(value: f64, places: usize, unit: &str, spaced: bool) -> String {
    if spaced {
        format!("{value:.places$} {unit}")
    } else {
        format!("{value:.places$}{unit}")
    }
}

fn two_units(
    big: u64,
    small: u64,
    spaced_units: [&str; 2],
    compact_units: [&str; 2],
    spaced: bool,
) -> String {
    if spaced {
        format!("{big} {} {small} {}", spaced_units[0], spaced_units[1])
    } else {
        format!("{big}{}{small:02}{}", compact_units[0], compact_units[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn spaced_durations_read_naturally() {
        let cases: &[(i64, &str, &str)] = &[
            (850, "850 ns", "nanoseconds"),
            (12_345, "12 µs", "microseconds truncate"),
            (3_400_000, "3.4 ms", "milliseconds with one decimal"),
            (
                450_000_000,
                "450.0 ms",
                "hundreds of milliseconds keep the decimal",
            ),
            (1_250_000_000, "1.25 s", "seconds with two decimals"),
            (125 * S, "2 min 5 s", "minutes"),
            (3 * 3_600 * S + 20 * 60 * S, "3 h 20 min", "hours"),
            (4 * 86_400 * S + 6 * 3_600 * S, "4 d 6 h", "days"),
            (
                7_523_372_036 * S,
                "238 y 206 d",
                "years read as years, not as 125389533 min 56 s",
            ),
            (
                -2_000_000,
                "-2.0 ms",
                "negative (clock skew) keeps its sign",
            ),
            (
                i64::MIN,
                "-292 y 171 d",
                "the most negative value does not overflow",
            ),
        ];
        for (ns, expected, reason) in cases {
            assert_eq!(human_duration(*ns), *expected, "{reason}");
        }
    }

    #[test]
    fn compact_durations_fit_narrow_columns() {
        let cases: &[(i64, &str, &str)] = &[
            (0, "0ns", "zero"),
            (999, "999ns", "below a microsecond"),
            (850_000, "850µs", "microseconds"),
            (12_340_000, "12.3ms", "milliseconds with a decimal"),
            (450_000_000, "450ms", "hundreds of milliseconds"),
            (4_200_000_000, "4.20s", "seconds"),
            (185 * S, "3m05s", "minutes"),
            (2 * 3_600 * S + 5 * 60 * S, "2h05m", "hours"),
            (3 * 86_400 * S + 4 * 3_600 * S, "3d04h", "days"),
            (2 * 365 * 86_400 * S + 17 * 86_400 * S, "2y17d", "years"),
            (-3_000_000, "-3.0ms", "negative under clock skew"),
        ];
        for (ns, expected, reason) in cases {
            assert_eq!(compact_duration(*ns), *expected, "{reason}");
        }
    }
}
