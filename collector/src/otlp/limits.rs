//! Limits the OTLP receivers (gRPC and HTTP, traces and metrics) share, in one place so
//! neither receiver imports the other.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::memory_budget::MemoryBudget;

/// Requests decoded at once, per receiver: decoding is CPU work, and these bound how much
/// of it runs together. A slot is taken once a body has been read in full, so a slow
/// client never holds one.
pub const MAX_CONCURRENT_DECODES: usize = 8;
/// How long a request whose body is read waits for a decoding slot before it is refused
/// (retry later).
pub const DECODE_SLOT_WAIT: Duration = Duration::from_secs(2);

/// How long exporters are asked to wait before retrying when the collector is busy.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Most HTTP/2 streams (gRPC calls) open at once on one connection.
pub const MAX_HTTP2_STREAMS: u32 = 16;
/// Largest header list of one gRPC call (hyper's default, stated here as a limit).
pub const MAX_HTTP2_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// What every request of one receiver is held to.
#[derive(Debug, Clone)]
pub struct ReceiverLimits {
    /// Largest message or body, after decompression (and, for HTTP, as received).
    pub max_body_bytes: usize,
    /// Longest wait for the next piece of a body.
    pub read_timeout: Duration,
    /// The memory every request of every receiver shares.
    pub budget: MemoryBudget,
    /// The receiver's decoding slots.
    pub decoding: DecodeSlots,
}

/// A receiver's decoding slots, shared by its traces and metrics.
#[derive(Debug, Clone)]
pub struct DecodeSlots(Arc<Semaphore>);

impl Default for DecodeSlots {
    fn default() -> Self {
        DecodeSlots(Arc::new(Semaphore::new(MAX_CONCURRENT_DECODES)))
    }
}

impl DecodeSlots {
    /// A slot, or `None` when none came free within [`DECODE_SLOT_WAIT`].
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(DECODE_SLOT_WAIT, Arc::clone(&self.0).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// The message of a refusal for want of a decoding slot.
pub const BUSY_DECODING: &str = "collector is busy decoding other requests, retry later";
