//! Durations as configuration spells them (`30s`, `5m`, `1h 30m`), one parser for every
//! section of the collector's config.

use std::time::Duration;

/// Parses a humantime duration, with an error that quotes the input.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}
