//! Request bodies of both receivers: content types, content encodings, and decompression
//! with a hard limit enforced while decompressing, charged to the memory budget as it
//! grows, so a compression bomb costs at most the limit.

use std::io::Read;

use prost::Message;
use serde::de::DeserializeOwned;

use crate::memory_budget::{BudgetError, Charge};

/// `Content-Type` of OTLP protobuf bodies.
pub const PROTOBUF: &str = "application/x-protobuf";
/// `Content-Type` of OTLP JSON bodies.
pub const JSON: &str = "application/json";

/// The two OTLP/HTTP body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// Binary protobuf.
    Protobuf,
    /// The OTLP JSON mapping (hex ids, camelCase keys).
    Json,
}

/// The supported `Content-Encoding`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No compression.
    Identity,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The content type is not one OTLP/HTTP defines.
    #[error("unsupported content type {0:?}: use application/x-protobuf or application/json")]
    UnsupportedType(String),
    /// The content encoding is not supported.
    #[error("unsupported content encoding {0:?}: use gzip or zstd")]
    UnsupportedEncoding(String),
    /// The body, compressed or not, is larger than allowed.
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The compressed stream is corrupt.
    #[error("cannot decompress {encoding} body: {reason}")]
    Corrupt {
        /// The encoding named by the request.
        encoding: &'static str,
        /// What the decompressor said.
        reason: String,
    },
    /// The body is not a valid export request in its format.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The request type expected (`ExportTraceServiceRequest`).
        what: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The memory budget cannot hold what decoding the body would take.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl BodyFormat {
    /// Reads a `Content-Type` header value, ignoring parameters such as `charset`.
    pub fn from_content_type(value: Option<&str>) -> Result<BodyFormat, BodyError> {
        let text = value.unwrap_or_default();
        let essence = text.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(PROTOBUF) {
            Ok(BodyFormat::Protobuf)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Ok(BodyFormat::Json)
        } else {
            Err(BodyError::UnsupportedType(text.to_owned()))
        }
    }

    /// The `Content-Type` to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Protobuf => PROTOBUF,
            BodyFormat::Json => JSON,
        }
    }

    /// Decodes a `what` message (`ExportTraceServiceRequest`, say) from an uncompressed
    /// body.
    pub fn decode<T: Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
        what: &'static str,
    ) -> Result<T, BodyError> {
        let malformed = |reason: String| BodyError::Malformed { what, reason };
        match self {
            BodyFormat::Protobuf => T::decode(body).map_err(|error| malformed(error.to_string())),
            BodyFormat::Json => {
                serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))
            }
        }
    }
}

impl BodyEncoding {
    /// Reads a `Content-Encoding` header value; absent means identity.
    pub fn from_header(value: Option<&str>) -> Result<BodyEncoding, BodyError> {
        match value.map(str::trim) {
            None | Some("") => Ok(BodyEncoding::Identity),
            Some(text) if text.eq_ignore_ascii_case("identity") => Ok(BodyEncoding::Identity),
            Some(text) if text.eq_ignore_ascii_case("gzip") => Ok(BodyEncoding::Gzip),
            Some(text) if text.eq_ignore_ascii_case("zstd") => Ok(BodyEncoding::Zstd),
            Some(text) => Err(BodyError::UnsupportedEncoding(text.to_owned())),
        }
    }

    /// Decompresses `body`, failing as soon as the output would pass `limit` bytes. The
    /// output is charged to `charge` as it grows; the compressed body is given back.
    pub fn decompress(
        self,
        body: Vec<u8>,
        limit: usize,
        charge: &mut Charge,
    ) -> Result<Vec<u8>, BodyError> {
        let plain = match self {
            BodyEncoding::Identity if body.len() > limit => {
                return Err(BodyError::TooLarge { limit });
            }
            BodyEncoding::Identity => return Ok(body),
            BodyEncoding::Gzip => read_limited(
                flate2::read::MultiGzDecoder::new(body.as_slice()),
                "gzip",
                limit,
                charge,
            )?,
            BodyEncoding::Zstd => {
                let decoder = zstd::stream::read::Decoder::with_buffer(body.as_slice())
                    .map_err(|error| corrupt("zstd", &error))?;
                read_limited(decoder, "zstd", limit, charge)?
            }
        };
        charge.shrink(body.capacity());
        Ok(plain)
    }
}

/// Bytes decompressed at a time, each charged before it is written.
const DECOMPRESS_STEP: usize = 256 * 1024;

fn read_limited(
    mut reader: impl Read,
    encoding: &'static str,
    limit: usize,
    charge: &mut Charge,
) -> Result<Vec<u8>, BodyError> {
    let mut output: Vec<u8> = Vec::new();
    loop {
        let room = limit.saturating_add(1).saturating_sub(output.len());
        if room == 0 {
            return Err(BodyError::TooLarge { limit });
        }
        let step = room.min(DECOMPRESS_STEP);
        let before = output.capacity();
        output.reserve(step);
        charge.grow(output.capacity() - before)?;
        let read = (&mut reader)
            .take(step as u64)
            .read_to_end(&mut output)
            .map_err(|error| corrupt(encoding, &error))?;
        if read == 0 {
            return Ok(output);
        }
    }
}

fn corrupt(encoding: &'static str, error: &std::io::Error) -> BodyError {
    BodyError::Corrupt {
        encoding,
        reason: error.to_string(),
    }
}

#[cfg(test)]
#[path = "body_decode_tests.rs"]
mod tests;
