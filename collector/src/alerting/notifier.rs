//! What lag and flow alerts share between their evaluation and their hooks: the alert
//! tracker, the hook schedule and the deliveries in flight. Each evaluation hands in its
//! conditions and gets back the rows to store; the payloads then go out on their own tasks.

use causeway_storage::AlertRow;
use tokio::task::JoinHandle;

use crate::alerting::alert::{Alert, AlertChanges, AlertStatus, AlertTracker, Condition};
use crate::alerting::hook::{Delivery, HookSchedule, deliver};
use crate::alerting::hook_config::HookConfig;

/// One evaluation's outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Round {
    /// What changed.
    pub changes: AlertChanges,
    /// The rows to store (stamped as notified when any hook is told).
    pub rows: Vec<AlertRow>,
    /// The payloads due, for [`Notifier::send`].
    pub deliveries: Vec<Delivery>,
    /// Alerts firing after the evaluation.
    pub firing: usize,
}

/// Alert state and hooks of one alert source (the lag rules, or the flow rules).
#[derive(Debug, Default)]
pub struct Notifier {
    hooks: Vec<HookConfig>,
    tracker: AlertTracker,
    schedule: HookSchedule,
    deliveries: Vec<JoinHandle<()>>,
}

impl Notifier {
    /// No alerts yet, telling `hooks`.
    pub fn new(hooks: Vec<HookConfig>) -> Notifier {
        Notifier {
            hooks,
            ..Notifier::default()
        }
    }

    /// Forgets every alert and when hooks heard of it (deliveries in flight go on): before
    /// taking the stored episodes back with [`Notifier::restore`].
    pub fn forget(&mut self) {
        self.tracker = AlertTracker::default();
        self.schedule = HookSchedule::default();
    }

    /// Takes back an alert episode stored before a restart: a pending or firing one goes on
    /// (its hooks are not told again before their repeat interval).
    pub fn restore(&mut self, row: &AlertRow) {
        let Some(alert) = Alert::from_row(row) else {
            return;
        };
        if alert.status == AlertStatus::Resolved {
            return;
        }
        if let Some(at_ns) = row.notified_ns {
            self.schedule
                .remember(self.hooks.len(), &alert.fingerprint, at_ns);
        }
        self.tracker.restore(alert);
    }

    /// Applies one evaluation's conditions at `now_ns`.
    pub fn update(&mut self, conditions: &[Condition], now_ns: i64) -> Round {
        let changes = self.tracker.update(conditions, now_ns);
        let deliveries = self.schedule.due(&self.hooks, &changes, now_ns);
        let notified = (!deliveries.is_empty()).then_some(now_ns);
        let rows = changes
            .to_store
            .iter()
            .map(|alert| alert.to_row(now_ns, notified))
            .collect();
        let firing = self
            .tracker
            .active()
            .filter(|a| a.status == AlertStatus::Firing)
            .count();
        Round {
            changes,
            rows,
            deliveries,
            firing,
        }
    }

    /// Whether an alert with this fingerprint is pending or firing.
    pub fn is_open(&self, fingerprint: &str) -> bool {
        self.tracker.active().any(|a| a.fingerprint == fingerprint)
    }

    /// Hands each payload to its hook on a task of its own (after the rows are stored).
    pub fn send(&mut self, deliveries: Vec<Delivery>) {
        self.deliveries.retain(|task| !task.is_finished());
        for delivery in deliveries {
            let Some(hook) = self.hooks.get(delivery.hook).cloned() else {
                continue;
            };
            self.deliveries.push(tokio::spawn(async move {
                if let Err(error) = deliver(&hook, &delivery.payload).await {
                    tracing::warn!(%error, "alert notification failed");
                }
            }));
        }
    }

    /// Waits for every delivery handed out so far.
    pub async fn finish(&mut self) {
        for delivery in self.deliveries.drain(..) {
            let _ = delivery.await;
        }
    }
}
