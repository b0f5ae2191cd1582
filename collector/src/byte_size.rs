//! Byte sizes as people write them in config files: `4MiB`, `20 MiB`, `2GB`, `1024`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A number of bytes, read from an integer or from text with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Why a byte size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// The text was not a number followed by an optional unit.
    #[error(
        "invalid size {0:?}: expected a number with an optional unit (B, KiB, MiB, GiB, KB, MB, GB)"
    )]
    Invalid(String),
    /// The size does not fit in 64 bits.
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

/// Units and their multipliers; binary and decimal prefixes are both accepted.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

impl ByteSize {
    /// The size in bytes as a `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let invalid = || ByteSizeError::Invalid(text.to_owned());
        if digits.is_empty() {
            return Err(invalid());
        }
        let multiplier = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, multiplier)| *multiplier)
            .ok_or_else(invalid)?;
        let number: u64 = digits
            .parse()
            .map_err(|_| ByteSizeError::TooLarge(text.to_owned()))?;
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| ByteSizeError::TooLarge(text.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(bytes) => Ok(ByteSize(bytes)),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_parse_with_units() {
        let cases: &[(&str, Option<u64>, &str)] = &[
            ("1024", Some(1024), "a bare number is bytes"),
            ("4MiB", Some(4 << 20), "binary megabytes"),
            ("20 MiB", Some(20 << 20), "a space before the unit is fine"),
            ("2GiB", Some(2 << 30), "binary gigabytes"),
            ("2gb", Some(2_000_000_000), "decimal units, any case"),
            ("7B", Some(7), "explicit bytes"),
            ("MiB", None, "a unit without a number"),
            ("4 parsecs", None, "an unknown unit"),
            ("-1MiB", None, "negative sizes"),
            ("1.5GiB", None, "fractions are not accepted"),
            ("99999999999999999999", None, "more than 64 bits"),
            ("16777216TiB", None, "overflow through the multiplier"),
        ];
        for (text, expected, reason) in cases {
            assert_eq!(
                text.parse::<ByteSize>().ok().map(|s| s.0),
                *expected,
                "{reason}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panicking(text in ".{0,24}") {
            let _ = text.parse::<ByteSize>();
        }

        #[test]
        fn numbers_with_kib_round_trip(kib in 0u64..1 << 40) {
            prop_assert_eq!(format!("{kib}KiB").parse::<ByteSize>(), Ok(ByteSize(kib * 1024)));
        }
    }
}
