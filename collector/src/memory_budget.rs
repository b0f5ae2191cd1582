//! The memory the receivers may hold, counted in bytes and shared by every request.
//!
//! A request is charged for what it will cost before the cost exists: each piece of body
//! as it is read, the body after decompression, and the decoded and converted request as
//! estimated from a scan of its bytes (`otlp::request_cost`). What survives conversion
//! stays charged until the batch writer has committed it. When a charge cannot grow the
//! request is refused at once: retry later when the budget is only busy, never when one
//! request alone needs more than all of it. So the memory behind requests stays under the
//! budget whatever clients send, however many they are.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Charges are kept in units of this many bytes.
const UNIT: usize = 1024;

/// Why a charge could not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Other requests hold the budget; this one fits once they are done.
    #[error(
        "collector is busy: requests in progress hold its {limit} bytes of request memory, retry later"
    )]
    Busy {
        /// The whole budget, in bytes.
        limit: usize,
    },
    /// This request alone needs more than the whole budget.
    #[error(
        "request needs {needed} bytes of memory to decode and store, more than the collector's \
         {limit} (otlp.max_request_memory); send smaller batches"
    )]
    TooLarge {
        /// What the request needs, in bytes.
        needed: usize,
        /// The whole budget, in bytes.
        limit: usize,
    },
}

/// The shared budget. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    limit: usize,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole KiB, at least one).
    pub fn new(bytes: usize) -> MemoryBudget {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            units: Arc::new(Semaphore::new(units)),
            limit: units * UNIT,
        }
    }

    /// The whole budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes not charged to any request right now.
    pub fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }

    /// An empty charge for one request.
    pub fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
            permit: None,
        }
    }
}

/// What one request holds of the budget; given back when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: MemoryBudget,
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Charge {
    /// Bytes charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Charges `bytes` more, or fails without changing the charge.
    pub fn grow(&mut self, bytes: usize) -> Result<(), BudgetError> {
        self.set(self.bytes.saturating_add(bytes))
    }

    /// Charges exactly `bytes` in all: gives back what is no longer needed, or takes more
    /// (failing without change when it cannot).
    pub fn set(&mut self, bytes: usize) -> Result<(), BudgetError> {
        let limit = self.budget.limit;
        if bytes > limit {
            return Err(BudgetError::TooLarge {
                needed: bytes,
                limit,
            });
        }
        let wanted = bytes.div_ceil(UNIT);
        let held = self
            .permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        if wanted > held {
            let more = u32::try_from(wanted - held).unwrap_or(u32::MAX);
            let extra = match Arc::clone(&self.budget.units).try_acquire_many_owned(more) {
                Ok(extra) => extra,
                Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => {
                    return Err(BudgetError::Busy { limit });
                }
            };
            match &mut self.permit {
                Some(permit) => permit.merge(extra),
                None => self.permit = Some(extra),
            }
        } else if wanted < held
            && let Some(permit) = &mut self.permit
        {
            drop(permit.split(held - wanted));
        }
        self.bytes = bytes;
        Ok(())
    }

    /// Gives back `bytes` (at most what is charged).
    pub fn shrink(&mut self, bytes: usize) {
        // Shrinking always succeeds: it only gives permits back.
        let _ = self.set(self.bytes.saturating_sub(bytes));
    }

    /// Takes over everything `other` holds.
    pub fn absorb(&mut self, mut other: Charge) {
        if let Some(permit) = other.permit.take() {
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.bytes = self.bytes.saturating_add(std::mem::take(&mut other.bytes));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn charges_grow_and_shrink_within_the_budget() {
        let budget = MemoryBudget::new(10 * UNIT);
        let mut first = budget.charge();
        first.grow(4 * UNIT + 1).unwrap();
        assert_eq!(
            budget.available(),
            5 * UNIT,
            "a started unit is charged whole"
        );
        let mut second = budget.charge();
        assert_eq!(
            second.grow(6 * UNIT),
            Err(BudgetError::Busy { limit: 10 * UNIT }),
            "the budget is shared"
        );
        assert_eq!(second.bytes(), 0, "a failed grow changes nothing");
        second.grow(5 * UNIT).unwrap();
        first.shrink(2 * UNIT);
        assert_eq!(budget.available(), 2 * UNIT);
        assert_eq!(
            second.grow(11 * UNIT),
            Err(BudgetError::TooLarge {
                needed: 16 * UNIT,
                limit: 10 * UNIT
            }),
            "more than the whole budget is never retried"
        );
        first.absorb(second);
        assert_eq!(first.bytes(), 2 * UNIT + 1 + 5 * UNIT);
        drop(first);
        assert_eq!(budget.available(), 10 * UNIT, "everything is given back");
    }

    #[test]
    fn set_takes_or_gives_back_the_difference() {
        let budget = MemoryBudget::new(8 * UNIT);
        let mut charge = budget.charge();
        charge.set(6 * UNIT).unwrap();
        charge.set(UNIT).unwrap();
        assert_eq!(budget.available(), 7 * UNIT);
        charge.set(8 * UNIT).unwrap();
        assert_eq!(budget.available(), 0);
        charge.set(0).unwrap();
        assert_eq!(budget.available(), 8 * UNIT);
    }
}
