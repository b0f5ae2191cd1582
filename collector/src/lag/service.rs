//! The lag service: every interval, poll (on a blocking thread), store the samples,
//! evaluate the rules, store statuses and alerts, hand due notifications to the hooks, and
//! apply sample retention. A thin shell around the pure parts.
//!
//! It runs in one collector of a store at a time: each interval it first tries the store's
//! lease ([`causeway_storage::StoreLease`]; always held on an SQLite file, an advisory
//! lock on PostgreSQL) and skips the cycle without it. On taking the lease it reads the
//! pending and firing lag alerts back from the store, with when their hooks were last
//! told, so an alert the previous holder raised goes on in its episode: it is neither sent
//! again nor dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_storage::{StorageError, Store, StoreLease, now_ns};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerting::alert::Condition;
use crate::alerting::notifier::Notifier;
use crate::lag::config::LagSettings;
use crate::lag::discovery::{known_from_rows, rows_of_known};
use crate::lag::evaluate::{RuleVerdict, evaluate};
use crate::lag::poller::{HeadRecords, LagPoller, POLLER_SOURCE, PollError, PollTargets};
use crate::self_metrics::SelfMetrics;
use causeway_conventions::alert::{annotation, label};

/// Samples of how far back are read for each evaluation, in poll intervals, at least.
const HISTORY_INTERVALS: u32 = 30;
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Lagging partitions whose record at the committed offset is read per cycle (the most
/// lagging first), for a measured rather than interpolated age.
const HEAD_READ_LIMIT: usize = 200;
/// Per-request time limit of the Kafka client.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed lag cycle.
#[derive(Debug, thiserror::Error)]
pub enum LagServiceError {
    /// Polling the cluster failed.
    #[error(transparent)]
    Poll(#[from] PollError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StorageError),
    /// The blocking poll thread died.
    #[error("lag poll thread failed: {0}")]
    Thread(String),
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleReport {
    /// Samples taken by the poller.
    pub samples: usize,
    /// Partitions evaluated.
    pub partitions: usize,
    /// Alerts firing after the cycle.
    pub firing: usize,
    /// Notifications handed to hooks.
    pub notifications: usize,
}

/// Polls, evaluates and alerts.
pub struct LagService {
    store: Store,
    settings: LagSettings,
    poller: Option<Arc<Mutex<LagPoller>>>,
    notifier: Notifier,
    last_retention_ns: i64,
    /// Whether the groups found by an earlier run were handed to the poller yet.
    known_loaded: bool,
    /// This collector's claim on the store's lease (`None` once released).
    lease: Option<StoreLease>,
    /// Whether this service holds the lease and has taken over the alert state.
    lease_held: bool,
    /// Whether waiting for another collector's lease (or failing to reach it) was logged
    /// since the last change, so each is logged once, not every interval.
    standby_logged: bool,
    metrics: Option<Arc<SelfMetrics>>,
    /// Tells the flow rule service whether this collector holds the lease.
    lease_watch: Option<watch::Sender<bool>>,
}

impl LagService {
    /// A service over `store`. Without `brokers` it only evaluates samples that services
    /// report over OTLP.
    pub fn new(
        store: Store,
        settings: LagSettings,
        brokers: Option<&str>,
    ) -> Result<Self, LagServiceError> {
        let poller = brokers
            .map(|brokers| {
                let targets = PollTargets {
                    groups: settings.groups.clone(),
                    group_topics: settings.group_topics.clone(),
                };
                LagPoller::new(brokers, targets, KAFKA_TIMEOUT)
            })
            .transpose()?
            .map(|poller| Arc::new(Mutex::new(poller)));
        let notifier = Notifier::new(settings.hooks.clone());
        let lease = Some(store.lease());
        Ok(LagService {
            store,
            settings,
            poller,
            notifier,
            last_retention_ns: 0,
            known_loaded: false,
            lease,
            lease_held: false,
            standby_logged: false,
            metrics: None,
            lease_watch: None,
        })
    }

    /// Tells `lease` whether this collector holds the lease (and has taken over the lag
    /// alerts), after every try: the flow rules run only while it does.
    pub fn sharing_lease(mut self, lease: watch::Sender<bool>) -> Self {
        self.lease_watch = Some(lease);
        self
    }

    /// Reports whether this collector holds the lease in `metrics`.
    pub fn reporting_to(mut self, metrics: Arc<SelfMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Tries the store's lease and says whether this collector runs the cycle now. On
    /// taking the lease it first reads back the pending and firing lag alerts (see the
    /// module header); when that read fails the cycle waits for the next interval.
    pub async fn hold_lease(&mut self) -> bool {
        let Some(lease) = &mut self.lease else {
            return false;
        };
        let shared = lease.is_shared();
        let held = match lease.try_hold().await {
            Ok(held) => held,
            Err(error) => {
                if self.lease_held || !self.standby_logged {
                    tracing::warn!(%error, "cannot reach the store's lease");
                    self.standby_logged = true;
                }
                false
            }
        };
        match (self.lease_held, held) {
            (false, true) => match self.take_over().await {
                Ok(restored) => {
                    self.lease_held = true;
                    self.standby_logged = false;
                    if shared {
                        tracing::info!(
                            alerts_restored = restored,
                            "lease acquired: this collector runs the lag poller, lag rules, \
                             flow rules and alert hooks"
                        );
                    }
                }
                Err(error) => tracing::warn!(
                    %error,
                    "lease acquired but the stored alerts cannot be read: trying again next interval"
                ),
            },
            (true, false) => {
                self.lease_held = false;
                tracing::warn!(
                    "lease lost: this collector stops running the lag poller, lag rules, \
                     flow rules and alert hooks, and tries again every interval"
                );
            }
            (false, false) if !self.standby_logged => {
                self.standby_logged = true;
                tracing::info!(
                    interval = ?self.settings.interval,
                    "lease held by another collector: this one ingests only, and tries again \
                     every interval"
                );
            }
            _ => {}
        }
        if let Some(metrics) = &self.metrics {
            metrics.lease_held(self.lease_held);
        }
        if let Some(watch) = &self.lease_watch {
            watch.send_replace(self.lease_held);
        }
        self.lease_held
    }

    /// Carries on with the lag alerts stored by whoever held the lease before; returns how
    /// many were taken back.
    async fn take_over(&mut self) -> Result<usize, StorageError> {
        let rows = self.store.unresolved_alerts().await?;
        self.notifier.forget();
        let mut restored = 0;
        // Flow alerts belong to the flow rule service.
        for row in rows
            .iter()
            .filter(|r| !r.labels.contains_key(label::FLOW_KIND))
        {
            self.notifier.restore(row);
            restored += 1;
        }
        // The groups the previous holder found, as after a restart.
        self.known_loaded = false;
        Ok(restored)
    }

    /// Runs cycles every interval until `stop` turns true, then waits for deliveries in
    /// flight.
    pub fn spawn(mut self, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.settings.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
                let held = tokio::select! {
                    held = self.hold_lease() => held,
                    _ = stop.wait_for(|stopped| *stopped) => break,
                };
                if !held {
                    continue;
                }
                // A cycle waiting on an unreachable broker must not hold up shutdown.
                tokio::select! {
                    result = self.cycle(now_ns()) => {
                        if let Err(error) = result {
                            tracing::warn!(%error, "lag cycle failed");
                        }
                    }
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
            }
            self.finish_deliveries().await;
            if let Some(watch) = &self.lease_watch {
                watch.send_replace(false);
            }
            // Released at once, so another collector takes over at its next try.
            if let Some(lease) = self.lease.take() {
                lease.release().await;
            }
        })
    }

    /// Waits for every notification handed to hooks so far.
    pub async fn finish_deliveries(&mut self) {
        self.notifier.finish().await;
    }

    /// One cycle at `now_ns`.
    pub async fn cycle(&mut self, now_ns: i64) -> Result<CycleReport, LagServiceError> {
        let mut report = CycleReport::default();
        let mut heads = HeadRecords::new();
        if let Some(poller) = &self.poller {
            let learned = self.store.topology().await?;
            // The groups an earlier run found, so a restarted collector carries on.
            let known = if self.known_loaded {
                None
            } else {
                let known = known_from_rows(self.store.lag_groups().await?);
                self.known_loaded = true;
                Some(known)
            };
            let poller = Arc::clone(poller);
            let (samples, polled_heads, changes) = tokio::task::spawn_blocking(move || {
                let mut poller = poller
                    .lock()
                    .map_err(|_| LagServiceError::Thread("poller lock poisoned".into()))?;
                if let Some(known) = known {
                    poller.remember(known);
                }
                let samples = poller.poll(&learned, now_ns)?;
                let heads = poller.head_records(&samples, HEAD_READ_LIMIT);
                Ok::<_, LagServiceError>((samples, heads, poller.take_changes()))
            })
            .await
            .map_err(|e| LagServiceError::Thread(e.to_string()))??;
            report.samples = samples.len();
            heads = polled_heads;
            if let Some(changes) = changes {
                for group in &changes.forgotten {
                    tracing::info!(group = %group, "consumer group is gone from the broker");
                }
                self.store
                    .save_lag_groups(
                        &rows_of_known(&changes.known),
                        &changes.forgotten,
                        POLLER_SOURCE,
                    )
                    .await?;
            }
            self.store.write_lag_samples(&samples).await?;
        }
        let span = self
            .settings
            .rules
            .iter()
            .map(|r| r.window_ns)
            .max()
            .unwrap_or(0)
            .max(nanos(self.settings.interval * HISTORY_INTERVALS));
        let samples = self.store.lag_samples_since(now_ns - span).await?;
        let evaluation = evaluate(&samples, &self.settings.rules, now_ns, &heads);
        report.partitions = evaluation.statuses.len();
        self.store.write_lag_status(&evaluation.statuses).await?;

        let mut conditions = Vec::new();
        for verdict in &evaluation.verdicts {
            conditions.push(self.condition(verdict).await?);
        }
        let round = self.notifier.update(&conditions, now_ns);
        report.notifications = round.deliveries.len();
        report.firing = round.firing;
        self.store.upsert_alerts(&round.rows).await?;
        self.notifier.send(round.deliveries);
        if now_ns - self.last_retention_ns >= nanos(RETENTION_EVERY) {
            self.last_retention_ns = now_ns;
            self.store
                .downsample_lag(
                    now_ns - self.settings.raw_retention_ns,
                    self.settings.downsample_bucket_ns,
                )
                .await?;
            self.store
                .delete_lag_before(now_ns - self.settings.retention_ns)
                .await?;
        }
        Ok(report)
    }

    /// The alert condition for one rule's verdict on one group, naming the oldest waiting
    /// event when it is active.
    async fn condition(&self, verdict: &RuleVerdict) -> Result<Condition, StorageError> {
        let rule = &self.settings.rules[verdict.rule];
        let group = &verdict.verdict;
        let active = group.state >= rule.fire_at;
        let labels = BTreeMap::from([
            (label::ALERT_NAME.to_owned(), rule.name.clone()),
            (label::CONSUMER_GROUP.to_owned(), verdict.group.clone()),
            (label::SEVERITY.to_owned(), rule.severity.clone()),
        ]);
        let mut annotations = BTreeMap::from([
            (annotation::STATE.to_owned(), group.state.name().to_owned()),
            (
                annotation::LAG_MESSAGES.to_owned(),
                group.total_lag.to_string(),
            ),
        ]);
        let seconds = |ms: i64| format!("{:.1}", ms as f64 / 1000.0);
        if let Some(ms) = group.max_time_lag_ms {
            annotations.insert(annotation::LAG_SECONDS.to_owned(), seconds(ms));
        }
        if let Some(ms) = group.catch_up_ms {
            annotations.insert(annotation::CATCH_UP_SECONDS.to_owned(), seconds(ms));
        }
        let mut summary = format!(
            "consumer group {} is {} with {} messages waiting",
            verdict.group,
            group.state.name(),
            group.total_lag
        );
        if let (true, Some((topic, partition, committed))) = (active, &group.worst_partition) {
            annotations.insert(annotation::WAITING_TOPIC.to_owned(), topic.clone());
            annotations.insert(
                annotation::WAITING_PARTITION.to_owned(),
                partition.to_string(),
            );
            annotations.insert(annotation::WAITING_OFFSET.to_owned(), committed.to_string());
            if let Some(event) = self
                .store
                .oldest_waiting_event(topic, *partition, *committed)
                .await?
            {
                annotations.insert(annotation::WAITING_TRACE_ID.to_owned(), event.trace_id);
                if let Some(correlation) = event.correlation_id {
                    summary.push_str(&format!("; oldest waiting event {correlation}"));
                    annotations.insert(annotation::WAITING_CORRELATION_ID.to_owned(), correlation);
                }
            }
        }
        annotations.insert(annotation::SUMMARY.to_owned(), summary);
        Ok(Condition {
            rule: rule.name.clone(),
            labels,
            annotations,
            active,
            for_ns: rule.for_ns,
            resolve_after_ns: rule.resolve_after_ns,
        })
    }
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}
