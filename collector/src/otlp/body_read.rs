//! Reading a request body into memory, for both receivers: every piece is charged to the
//! memory budget as it arrives, a body larger than its limit is refused as soon as that
//! shows, and a client that stops sending (or sends too slowly) is cut off.

use std::time::Duration;

use bytes::Buf;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;

use crate::memory_budget::{BudgetError, Charge};

/// How long a whole body may take, in read timeouts: a client must keep sending at a rate
/// that delivers its body in this many read timeouts.
const BODY_DEADLINE_READ_TIMEOUTS: u32 = 6;

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The body is larger than allowed.
    #[error("request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The client sent nothing for a read timeout, or not all of its body in time.
    #[error("request body not received in time ({0})")]
    TimedOut(String),
    /// The memory budget could not hold it.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The body is not what its protocol requires (a gRPC frame that is not one message).
    #[error("{0}")]
    Invalid(String),
    /// The connection failed while reading.
    #[error("cannot read request body: {0}")]
    Broken(String),
}

/// Limits of one body.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most bytes.
    pub max_bytes: usize,
    /// Longest wait for the next piece.
    pub read_timeout: Duration,
}

/// Reads `body` whole, charging `charge` for it. `check` sees the bytes read so far after
/// every piece and may refuse them early.
pub async fn read_body<B>(
    body: B,
    limits: ReadLimits,
    charge: &mut Charge,
    mut check: impl FnMut(&[u8]) -> Result<(), ReadError>,
) -> Result<Vec<u8>, ReadError>
where
    B: Body,
    B::Error: std::fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let started = Instant::now();
    let deadline = started + limits.read_timeout * BODY_DEADLINE_READ_TIMEOUTS;
    let mut collected: Vec<u8> = Vec::new();
    loop {
        let next_by = (Instant::now() + limits.read_timeout).min(deadline);
        let frame = match tokio::time::timeout_at(next_by, body.frame()).await {
            Err(_) if next_by == deadline => {
                return Err(ReadError::TimedOut(format!(
                    "the whole body must arrive within {:?}",
                    deadline - started
                )));
            }
            Err(_) => {
                return Err(ReadError::TimedOut(format!(
                    "nothing received for {:?}",
                    limits.read_timeout
                )));
            }
            Ok(None) => return Ok(collected),
            Ok(Some(Err(error))) => return Err(ReadError::Broken(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers: nothing to keep.
            continue;
        };
        let length = data.remaining();
        if collected.len().saturating_add(length) > limits.max_bytes {
            return Err(ReadError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        let before = collected.capacity();
        collected.reserve(length);
        charge.grow(collected.capacity() - before)?;
        while data.has_remaining() {
            let chunk = data.chunk();
            let taken = chunk.len();
            collected.extend_from_slice(chunk);
            data.advance(taken);
        }
        check(&collected)?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};

    use super::*;
    use crate::memory_budget::MemoryBudget;

    fn limits(max_bytes: usize) -> ReadLimits {
        ReadLimits {
            max_bytes,
            read_timeout: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_and_charged() {
        let budget = MemoryBudget::new(1 << 20);
        let mut charge = budget.charge();
        let body = Full::new(Bytes::from(vec![7_u8; 5000]));
        let read = read_body(body, limits(10_000), &mut charge, |_| Ok(()))
            .await
            .unwrap();
        assert_eq!(read.len(), 5000);
        assert!(charge.bytes() >= 5000, "charged {}", charge.bytes());
    }

    #[tokio::test]
    async fn too_large_bodies_and_budgets_refuse() {
        let budget = MemoryBudget::new(1 << 20);
        let mut charge = budget.charge();
        let body = Full::new(Bytes::from(vec![0_u8; 5000]));
        let refused = read_body(body, limits(4000), &mut charge, |_| Ok(())).await;
        assert_eq!(refused, Err(ReadError::TooLarge { limit: 4000 }));

        let small = MemoryBudget::new(4096);
        let mut charge = small.charge();
        let body = Full::new(Bytes::from(vec![0_u8; 5000]));
        let refused = read_body(body, limits(1 << 20), &mut charge, |_| Ok(())).await;
        assert!(
            matches!(
                refused,
                Err(ReadError::Budget(BudgetError::TooLarge { .. }))
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let budget = MemoryBudget::new(1 << 20);
        let mut charge = budget.charge();
        let stalled = StreamBody::new(futures::stream::pending::<
            Result<http_body::Frame<Bytes>, std::io::Error>,
        >());
        let refused = read_body(stalled, limits(1000), &mut charge, |_| Ok(())).await;
        assert!(
            matches!(refused, Err(ReadError::TimedOut(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn the_check_refuses_early() {
        let budget = MemoryBudget::new(1 << 20);
        let mut charge = budget.charge();
        let body = Full::new(Bytes::from_static(b"abc"));
        let refused = read_body(body, limits(1000), &mut charge, |bytes| {
            if bytes.starts_with(b"a") {
                Err(ReadError::Invalid("starts with a".into()))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(refused, Err(ReadError::Invalid("starts with a".into())));
    }
}
