//! Limits both OTLP receivers (gRPC and HTTP, traces and metrics) share, in one place so
//! neither receiver imports the other.

use std::time::Duration;

/// Requests whose bodies are read and decoded at once, per receiver. Each holds up to twice the body
/// limit (compressed and plain), so this bounds the receiver's memory.
pub const MAX_CONCURRENT_DECODES: usize = 8;
/// How long a request waits for a decoding slot before it is refused with 503.
pub const DECODE_SLOT_WAIT: Duration = Duration::from_secs(2);

/// How long exporters are asked to wait before retrying when the collector is busy.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);
