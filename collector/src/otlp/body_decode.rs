//! HTTP request bodies: content types, content encodings, and decompression with a hard
//! limit enforced while decompressing, so a compression bomb costs at most the limit.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

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
    #[error("malformed ExportTraceServiceRequest: {0}")]
    Malformed(String),
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

    /// Decodes an export request from an uncompressed body.
    pub fn decode(self, body: &[u8]) -> Result<ExportTraceServiceRequest, BodyError> {
        match self {
            BodyFormat::Protobuf => ExportTraceServiceRequest::decode(body)
                .map_err(|error| BodyError::Malformed(error.to_string())),
            BodyFormat::Json => serde_json::from_slice(body)
                .map_err(|error| BodyError::Malformed(error.to_string())),
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

    /// Decompresses `body`, failing as soon as the output would pass `limit` bytes.
    pub fn decompress(self, body: Vec<u8>, limit: usize) -> Result<Vec<u8>, BodyError> {
        match self {
            BodyEncoding::Identity if body.len() > limit => Err(BodyError::TooLarge { limit }),
            BodyEncoding::Identity => Ok(body),
            BodyEncoding::Gzip => read_limited(
                flate2::read::MultiGzDecoder::new(body.as_slice()),
                "gzip",
                limit,
            ),
            BodyEncoding::Zstd => {
                let decoder = zstd::stream::read::Decoder::with_buffer(body.as_slice())
                    .map_err(|error| corrupt("zstd", &error))?;
                read_limited(decoder, "zstd", limit)
            }
        }
    }
}

fn read_limited(
    reader: impl Read,
    encoding: &'static str,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut output = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut output)
        .map_err(|error| corrupt(encoding, &error))?;
    if output.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(output)
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
