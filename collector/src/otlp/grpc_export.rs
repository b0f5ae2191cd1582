//! What both OTLP/gRPC services (traces and metrics) share: the protobuf codec, whose
//! decode failures are `INVALID_ARGUMENT` (the codec tonic generates says `INTERNAL`,
//! which exporters retry forever), and the set-up of one export method.

use std::convert::Infallible;
use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{BoxFuture, CompressionEncoding, EnabledCompressionEncodings, http};
use tonic::server::Grpc;

/// A server for one export method taking `Request`s called `what` in error messages:
/// gzip and zstd accepted, messages up to `max_message_bytes` after decompression.
pub fn export_server<Request, Response>(
    what: &'static str,
    max_message_bytes: usize,
) -> Grpc<OtlpCodec<Request, Response>>
where
    Request: Message + Default + Send + 'static,
    Response: Message + Send + 'static,
{
    let mut accept = EnabledCompressionEncodings::default();
    accept.enable(CompressionEncoding::Gzip);
    accept.enable(CompressionEncoding::Zstd);
    Grpc::new(OtlpCodec::new(what))
        .apply_compression_config(accept, EnabledCompressionEncodings::default())
        .apply_max_message_size_config(Some(max_message_bytes), None)
}

/// The answer to a call of a method the service does not have.
pub fn unknown_method(path: &str) -> BoxFuture<http::Response<tonic::body::Body>, Infallible> {
    let message = format!("unknown method {path}");
    Box::pin(async move { Ok(Status::unimplemented(message).into_http()) })
}

/// Decodes `Request` messages and encodes `Response` messages.
#[derive(Debug)]
pub struct OtlpCodec<Request, Response> {
    /// What is decoded, for the error message.
    what: &'static str,
    types: PhantomData<fn(Request) -> Response>,
}

impl<Request, Response> OtlpCodec<Request, Response> {
    /// A codec for requests called `what` in error messages (`ExportTraceServiceRequest`).
    pub fn new(what: &'static str) -> Self {
        OtlpCodec {
            what,
            types: PhantomData,
        }
    }
}

impl<Request, Response> Clone for OtlpCodec<Request, Response> {
    fn clone(&self) -> Self {
        OtlpCodec::new(self.what)
    }
}

impl<Request, Response> Codec for OtlpCodec<Request, Response>
where
    Request: Message + Default + Send + 'static,
    Response: Message + Send + 'static,
{
    type Encode = Response;
    type Decode = Request;
    type Encoder = OtlpCodec<Request, Response>;
    type Decoder = OtlpCodec<Request, Response>;

    fn encoder(&mut self) -> Self::Encoder {
        self.clone()
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

impl<Request, Response> Encoder for OtlpCodec<Request, Response>
where
    Response: Message + Send + 'static,
{
    type Item = Response;
    type Error = Status;

    fn encode(&mut self, item: Response, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|error| Status::internal(format!("cannot encode response: {error}")))
    }
}

impl<Request, Response> Decoder for OtlpCodec<Request, Response>
where
    Request: Message + Default + Send + 'static,
{
    type Item = Request;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Request>, Status> {
        Request::decode(src)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("malformed {}: {error}", self.what)))
    }
}
