//! Wall-clock time as causeway stores it: nanoseconds since the Unix epoch, the unit of
//! every `*_ns` column. The one `now_ns` of the workspace.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch; 0 on a clock set before 1970, `i64::MAX` past 2262.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ns)
}

/// `duration` in nanoseconds, saturating at `i64::MAX` (292 years).
pub fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
