//! What both OTLP/gRPC services (traces and metrics) share: reading one unary call's
//! message (its frame checked as it arrives, so an oversized message is refused from its
//! 5-byte header), the answer (a message, or a status), and the status of each refusal.
//!
//! The services read and decode calls themselves instead of through tonic's codec, so
//! that the body is read (with the read timeout and memory charge) before a decoding slot
//! is taken, and so that each refusal gets the status docs/COLLECTOR.md promises: too
//! large is `RESOURCE_EXHAUSTED` (tonic says `OUT_OF_RANGE`, which exporters retry), not
//! protobuf is `INVALID_ARGUMENT` (tonic's generated codec says `INTERNAL`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use prost::Message;
use tonic::codegen::{BoxFuture, http};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use serde::de::DeserializeOwned;

use crate::memory_budget::{BudgetError, Charge};
use crate::otlp::body_decode::{BodyEncoding, BodyError, BodyFormat};
use crate::otlp::body_read::{ReadError, ReadLimits, read_body};
use crate::otlp::export_decode::{Decoded, ExportKind, decode_export_where_cheap};
use crate::otlp::limits::{BUSY_DECODING, RETRY_DELAY, ReceiverLimits};

/// Bytes before each gRPC message: a compressed flag and a big-endian length.
const FRAME_HEADER: usize = 5;
/// The request header naming the compression of compressed messages.
const GRPC_ENCODING: &str = "grpc-encoding";
/// The header listing the compressions accepted.
const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";
/// What this server accepts.
const ACCEPTED_ENCODINGS: &str = "gzip,zstd,identity";

/// The one message of a unary call, still compressed as sent.
#[derive(Debug)]
pub struct UnaryMessage {
    /// How to decompress it.
    pub encoding: BodyEncoding,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Reads the message of a unary call of at most `max_message_bytes` (after
/// decompression), charging `charge` for it.
pub async fn read_unary<B>(
    request: http::Request<B>,
    max_message_bytes: usize,
    read_timeout: std::time::Duration,
    charge: &mut Charge,
) -> Result<UnaryMessage, Status>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let (parts, body) = request.into_parts();
    let named = parts
        .headers
        .get(GRPC_ENCODING)
        .map(|value| value.to_str().unwrap_or("?"));
    let encoding = BodyEncoding::from_header(named).map_err(|error| {
        let mut status = Status::unimplemented(error.to_string());
        if let Ok(accepted) = ACCEPTED_ENCODINGS.parse() {
            status.metadata_mut().insert(GRPC_ACCEPT_ENCODING, accepted);
        }
        status
    })?;
    let limits = ReadLimits {
        max_bytes: max_message_bytes.saturating_add(FRAME_HEADER),
        read_timeout,
    };
    let check = |bytes: &[u8]| check_frame(bytes, encoding, max_message_bytes);
    let mut bytes = read_body(body, limits, charge, check)
        .await
        .map_err(|error| status_of_read(&error, max_message_bytes))?;
    let declared = match frame_length(&bytes) {
        Some(length) if bytes.len() == FRAME_HEADER + length => length,
        _ => {
            return Err(Status::invalid_argument(
                "a unary call must carry exactly one whole message",
            ));
        }
    };
    let compressed = bytes[0] == 1;
    bytes.drain(..FRAME_HEADER);
    debug_assert_eq!(bytes.len(), declared);
    Ok(UnaryMessage {
        encoding: if compressed {
            encoding
        } else {
            BodyEncoding::Identity
        },
        bytes,
    })
}

fn frame_length(bytes: &[u8]) -> Option<usize> {
    let header: [u8; 4] = bytes.get(1..FRAME_HEADER)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(header)).ok()
}

/// Reads a unary call's message (within the read timeout, charged to the budget), then
/// takes a decoding slot and decodes it as `kind` on a blocking thread.
pub async fn decode_unary<T, B>(
    kind: &'static ExportKind<T>,
    request: http::Request<B>,
    limits: &ReceiverLimits,
) -> Result<Decoded<T>, Status>
where
    T: Message + Default + DeserializeOwned + Send + 'static,
    B: Body,
    B::Error: std::fmt::Display,
{
    let max = limits.max_body_bytes;
    let mut charge = limits.budget.charge();
    let message = read_unary(request, max, limits.read_timeout, &mut charge).await?;
    let Some(slot) = limits.decoding.take().await else {
        return Err(unavailable(BUSY_DECODING));
    };
    let decoded = decode_export_where_cheap(
        kind,
        message.bytes,
        message.encoding,
        BodyFormat::Protobuf,
        max,
        charge,
    )
    .await
    .map_err(unavailable)?
    .map_err(|error| status_of_body(&error, max))?;
    drop(slot);
    Ok(decoded)
}

/// Refuses a frame as soon as its header, or its length, shows it cannot be one
/// acceptable message.
fn check_frame(
    bytes: &[u8],
    encoding: BodyEncoding,
    max_message_bytes: usize,
) -> Result<(), ReadError> {
    let Some(length) = frame_length(bytes) else {
        return Ok(());
    };
    match bytes[0] {
        0 => {}
        1 if encoding != BodyEncoding::Identity => {}
        1 => {
            return Err(ReadError::Invalid(
                "compressed message without a grpc-encoding".into(),
            ));
        }
        flag => {
            return Err(ReadError::Invalid(format!(
                "invalid compressed flag {flag}"
            )));
        }
    }
    if length > max_message_bytes {
        return Err(ReadError::TooLarge {
            limit: max_message_bytes,
        });
    }
    if bytes.len() > FRAME_HEADER + length {
        return Err(ReadError::Invalid(
            "more than one message in a unary call".into(),
        ));
    }
    Ok(())
}

/// The status of a body that could not be read.
pub fn status_of_read(error: &ReadError, max_message_bytes: usize) -> Status {
    match error {
        ReadError::TooLarge { .. } => too_large(max_message_bytes),
        ReadError::Budget(budget) => status_of_budget(budget),
        ReadError::TimedOut(_) => Status::deadline_exceeded(error.to_string()),
        ReadError::Invalid(_) => Status::invalid_argument(error.to_string()),
        ReadError::Broken(_) => Status::cancelled(error.to_string()),
    }
}

/// The status of a message that could not be decoded.
pub fn status_of_body(error: &BodyError, max_message_bytes: usize) -> Status {
    match error {
        BodyError::TooLarge { .. } => too_large(max_message_bytes),
        BodyError::Budget(budget) => status_of_budget(budget),
        BodyError::UnsupportedType(_) | BodyError::UnsupportedEncoding(_) => {
            Status::unimplemented(error.to_string())
        }
        BodyError::Corrupt { .. } | BodyError::Malformed { .. } => {
            Status::invalid_argument(error.to_string())
        }
    }
}

fn status_of_budget(error: &BudgetError) -> Status {
    match error {
        BudgetError::Busy { .. } => unavailable(error.to_string()),
        BudgetError::TooLarge { .. } => Status::resource_exhausted(error.to_string()),
    }
}

fn too_large(max_message_bytes: usize) -> Status {
    Status::resource_exhausted(format!(
        "message is larger than {max_message_bytes} bytes after decompression \
         (otlp.grpc_max_message_size); send smaller batches"
    ))
}

/// `UNAVAILABLE` with retry info: exporters back off and send the batch again.
pub fn unavailable(message: impl Into<String>) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        message,
        ErrorDetails::with_retry_info(Some(RETRY_DELAY)),
    )
}

/// Whether `status` refuses the request itself (counted as an invalid request), as
/// opposed to asking the client to retry.
pub fn refuses_request(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented
    )
}

/// A successful answer carrying `message`.
pub fn grpc_ok<M: Message>(message: &M) -> http::Response<tonic::body::Body> {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(FRAME_HEADER + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap_or(u32::MAX));
    frame.put_slice(&encoded);
    let mut trailers = http::HeaderMap::new();
    // Adding an OK status to a fresh map cannot fail: its code and empty message are
    // valid header values.
    let _ = Status::ok("").add_header(&mut trailers);
    let mut response = http::Response::new(tonic::body::Body::new(UnaryBody {
        data: Some(frame.freeze()),
        trailers: Some(trailers),
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// An answer that is only `status` (trailers-only).
pub fn grpc_error(status: Status) -> http::Response<tonic::body::Body> {
    status.into_http()
}

/// The answer to a call of a method the service does not have.
pub fn unknown_method(path: &str) -> BoxFuture<http::Response<tonic::body::Body>, Infallible> {
    let message = format!("unknown method {path}");
    Box::pin(async move { Ok(grpc_error(Status::unimplemented(message))) })
}

/// One data frame, then the trailers.
struct UnaryBody {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
}

impl Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn frames_are_refused_from_their_header() {
        let header = |flag: u8, length: u32| {
            let mut bytes = vec![flag];
            bytes.extend_from_slice(&length.to_be_bytes());
            bytes
        };
        let gzip = BodyEncoding::Gzip;
        let plain = BodyEncoding::Identity;
        /// (bytes so far, encoding, verdict, reason)
        type Case = (Vec<u8>, BodyEncoding, Result<(), ReadError>, &'static str);
        let cases: Vec<Case> = vec![
            (vec![0, 0], plain, Ok(()), "too short to tell"),
            (header(0, 100), plain, Ok(()), "a small message"),
            (
                header(0, 101),
                plain,
                Err(ReadError::TooLarge { limit: 100 }),
                "too large, before its body arrives",
            ),
            (header(1, 10), gzip, Ok(()), "compressed with an encoding"),
            (
                header(1, 10),
                plain,
                Err(ReadError::Invalid(
                    "compressed message without a grpc-encoding".into(),
                )),
                "compressed without one",
            ),
            (
                header(2, 10),
                gzip,
                Err(ReadError::Invalid("invalid compressed flag 2".into())),
                "an unknown flag",
            ),
            (
                [header(0, 1), vec![9, 9]].concat(),
                plain,
                Err(ReadError::Invalid(
                    "more than one message in a unary call".into(),
                )),
                "bytes past the message",
            ),
        ];
        for (bytes, encoding, expected, reason) in cases {
            assert_eq!(check_frame(&bytes, encoding, 100), expected, "{reason}");
        }
    }

    #[test]
    fn each_refusal_has_the_promised_status() {
        let busy = BudgetError::Busy { limit: 1 };
        let cases = [
            (
                status_of_read(&ReadError::TooLarge { limit: 9 }, 4),
                Code::ResourceExhausted,
            ),
            (
                status_of_body(&BodyError::TooLarge { limit: 9 }, 4),
                Code::ResourceExhausted,
            ),
            (
                status_of_body(
                    &BodyError::Budget(BudgetError::TooLarge {
                        needed: 2,
                        limit: 1,
                    }),
                    4,
                ),
                Code::ResourceExhausted,
            ),
            (
                status_of_body(&BodyError::Budget(busy), 4),
                Code::Unavailable,
            ),
            (
                status_of_read(&ReadError::TimedOut("x".into()), 4),
                Code::DeadlineExceeded,
            ),
            (
                status_of_body(
                    &BodyError::Malformed {
                        what: "x",
                        reason: "y".into(),
                    },
                    4,
                ),
                Code::InvalidArgument,
            ),
        ];
        for (status, code) in cases {
            assert_eq!(status.code(), code, "{status:?}");
        }
        let retry = status_of_body(&BodyError::Budget(busy), 4)
            .get_details_retry_info()
            .map(|info| info.retry_delay);
        assert_eq!(retry, Some(Some(RETRY_DELAY)), "busy asks to retry later");
    }
}
