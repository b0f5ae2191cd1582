//! The fault board: the faults in force right now, shared by the services of one shop,
//! and the log of every fault injected so far.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::faults::{FaultKind, InjectedFault, ScheduledFault};
use crate::handlers::OrderShape;

#[derive(Debug, Default)]
struct BoardState {
    slow_groups: BTreeMap<String, (Instant, Duration)>,
    drop_traceparent: BTreeSet<String>,
    duplicate: BTreeSet<String>,
    schema_v2: bool,
    requested: Vec<ScheduledFault>,
    injected: Vec<InjectedFault>,
}

/// Shared fault state of one running shop. Cloning gives another handle on it.
#[derive(Debug, Clone)]
pub struct FaultBoard {
    state: Arc<Mutex<BoardState>>,
    started: Instant,
}

impl FaultBoard {
    /// A board with no faults in force, started now.
    pub fn new() -> FaultBoard {
        FaultBoard {
            state: Arc::default(),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BoardState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time since the shop started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Asks for `fault` on demand: it is applied to the next order (or group) at once.
    pub fn request(&self, fault: ScheduledFault) {
        self.lock().requested.push(fault);
    }

    /// Takes the faults asked for on demand.
    pub fn take_requested(&self) -> Vec<ScheduledFault> {
        std::mem::take(&mut self.lock().requested)
    }

    /// Applies `faults` to order `correlation_id` (or, for a slow consumer, to its group)
    /// and logs each; returns how the order must be written.
    pub fn apply(&self, faults: &[ScheduledFault], correlation_id: &str) -> OrderShape {
        let at_ms = self.elapsed().as_millis() as u64;
        let mut state = self.lock();
        let mut shape = OrderShape {
            v2: state.schema_v2,
            ..OrderShape::default()
        };
        for fault in faults {
            let mut logged = InjectedFault {
                kind: fault.kind,
                correlation_id: Some(correlation_id.to_owned()),
                group: None,
                at_ms,
            };
            match fault.kind {
                FaultKind::DeclinedPayment => shape.declined_card = true,
                FaultKind::PoisonMessage => shape.poison = true,
                FaultKind::DuplicateDelivery => {
                    state.duplicate.insert(correlation_id.to_owned());
                }
                FaultKind::DroppedTraceparent => {
                    state.drop_traceparent.insert(correlation_id.to_owned());
                }
                FaultKind::SchemaBump => {
                    state.schema_v2 = true;
                    shape.v2 = true;
                }
                FaultKind::SlowConsumer => {
                    let until = Instant::now() + fault.duration;
                    state
                        .slow_groups
                        .insert(fault.group.clone(), (until, fault.delay));
                    logged.correlation_id = None;
                    logged.group = Some(fault.group.clone());
                }
            }
            state.injected.push(logged);
        }
        shape
    }

    /// How long each message of `group` takes now, when the group is slowed down.
    pub fn slow_delay(&self, group: &str) -> Option<Duration> {
        let state = self.lock();
        let (until, delay) = state.slow_groups.get(group)?;
        (Instant::now() < *until).then_some(*delay)
    }

    /// Whether re-publishing for `correlation_id` loses `traceparent`.
    pub fn drops_traceparent(&self, correlation_id: Option<&str>) -> bool {
        correlation_id.is_some_and(|id| self.lock().drop_traceparent.contains(id))
    }

    /// Whether the order `correlation_id` is sent twice.
    pub fn duplicates(&self, correlation_id: &str) -> bool {
        self.lock().duplicate.contains(correlation_id)
    }

    /// Every fault injected so far, in order.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.lock().injected.clone()
    }
}

impl Default for FaultBoard {
    fn default() -> Self {
        FaultBoard::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn faults_apply_to_their_order_and_are_logged() {
        let board = FaultBoard::new();
        let fault = |kind| ScheduledFault::new(kind, Duration::ZERO);
        let shape = board.apply(&[fault(FaultKind::DeclinedPayment)], "ord-1");
        assert!(shape.declined_card && !shape.poison && !shape.v2);
        let shape = board.apply(&[fault(FaultKind::DroppedTraceparent)], "ord-2");
        assert_eq!(
            shape,
            OrderShape::default(),
            "dropping is the shipper's doing"
        );
        assert!(board.drops_traceparent(Some("ord-2")));
        assert!(!board.drops_traceparent(Some("ord-1")));
        assert!(!board.drops_traceparent(None));
        board.apply(&[fault(FaultKind::SchemaBump)], "ord-3");
        assert!(board.apply(&[], "ord-4").v2, "the bump is permanent");
        let mut slow = fault(FaultKind::SlowConsumer);
        slow.group = "shipping".into();
        slow.duration = Duration::from_secs(60);
        board.apply(&[slow], "ord-5");
        assert_eq!(
            board.slow_delay("shipping"),
            Some(crate::faults::DEFAULT_SLOW_DELAY)
        );
        assert_eq!(board.slow_delay("payment"), None);
        let logged: Vec<(FaultKind, Option<String>, Option<String>)> = board
            .injected()
            .into_iter()
            .map(|f| (f.kind, f.correlation_id, f.group))
            .collect();
        assert_eq!(
            logged,
            vec![
                (FaultKind::DeclinedPayment, Some("ord-1".into()), None),
                (FaultKind::DroppedTraceparent, Some("ord-2".into()), None),
                (FaultKind::SchemaBump, Some("ord-3".into()), None),
                (FaultKind::SlowConsumer, None, Some("shipping".into())),
            ]
        );
    }

    #[test]
    fn slow_consumer_recovers_after_its_window() {
        let board = FaultBoard::new();
        let mut slow = ScheduledFault::new(FaultKind::SlowConsumer, Duration::ZERO);
        slow.duration = Duration::ZERO;
        board.apply(&[slow], "ord-1");
        assert_eq!(board.slow_delay(crate::faults::DEFAULT_SLOW_GROUP), None);
    }
}
