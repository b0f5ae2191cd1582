//! Trace and span identifiers: fixed-size bytes, shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a textual or byte identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The input had the wrong number of bytes or hex digits.
    #[error("identifier must be {expected} bytes ({} hex digits), got {got} bytes", expected * 2)]
    Length {
        /// Bytes the identifier needs.
        expected: usize,
        /// Bytes the input had (half its length for hex text, rounded down).
        got: usize,
    },
    /// The input was not hexadecimal.
    #[error("identifier is not hexadecimal")]
    NotHex,
    /// Every byte was zero, which OpenTelemetry and W3C Trace Context reserve as invalid.
    #[error("identifier is all zeros")]
    AllZero,
}

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in this identifier.
            pub const LEN: usize = $len;

            /// Builds an identifier from bytes, refusing a wrong length or all zeros.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let array: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    expected: $len,
                    got: bytes.len(),
                })?;
                if array.iter().all(|b| *b == 0) {
                    return Err(IdError::AllZero);
                }
                Ok(Self(array))
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                if text.len() != $len * 2 {
                    return Err(IdError::Length { expected: $len, got: text.len() / 2 });
                }
                let bytes = hex::decode(text).map_err(|_| IdError::NotHex)?;
                Self::from_bytes(&bytes)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

byte_id!(
    /// A 16-byte W3C/OpenTelemetry trace id.
    TraceId,
    16
);
byte_id!(
    /// An 8-byte W3C/OpenTelemetry span id.
    SpanId,
    8
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_as_lowercase_hex() {
        let cases: &[(&str, Result<(), IdError>, &str)] = &[
            (
                "4bf92f3577b34da6a3ce929d0e0e4736",
                Ok(()),
                "a valid trace id",
            ),
            (
                "4BF92F3577B34DA6A3CE929D0E0E4736",
                Ok(()),
                "upper case is read, printed lower",
            ),
            (
                "00000000000000000000000000000000",
                Err(IdError::AllZero),
                "all zeros is invalid",
            ),
            (
                "4bf92f3577b34da6",
                Err(IdError::Length {
                    expected: 16,
                    got: 8,
                }),
                "span-sized",
            ),
            (
                "zzf92f3577b34da6a3ce929d0e0e4736",
                Err(IdError::NotHex),
                "not hex",
            ),
        ];
        for (text, expected, reason) in cases {
            let parsed = text.parse::<TraceId>();
            match expected {
                Ok(()) => {
                    let id = parsed.unwrap_or_else(|e| panic!("{reason}: {e}"));
                    assert_eq!(id.to_string(), text.to_lowercase(), "{reason}");
                }
                Err(error) => assert_eq!(parsed.as_ref().err(), Some(error), "{reason}"),
            }
        }
    }

    #[test]
    fn span_id_from_bytes_checks_length() {
        assert!(SpanId::from_bytes(&[1; 8]).is_ok());
        assert_eq!(
            SpanId::from_bytes(&[1; 7]),
            Err(IdError::Length {
                expected: 8,
                got: 7
            })
        );
        assert_eq!(SpanId::from_bytes(&[0; 8]), Err(IdError::AllZero));
    }
}
