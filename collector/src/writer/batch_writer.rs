//! The batch writer: the one task that groups spans into transactions for the store.
//!
//! Receivers reserve room for their spans ([`WriterHandle::reserve`]), encode them, and
//! submit them with [`Reservation::write`], which resolves only after the transaction
//! holding them has committed. The writer groups waiting submissions into large
//! transactions, committed one at a time on SQLite and a few at once on PostgreSQL
//! ([`Store::concurrent_writes`]). Room is counted in spans and bounded: when it runs
//! out, `reserve` refuses at once, so memory stays bounded and exporters are told to
//! retry. Retention runs beside the writer, started by its ticks.

use std::sync::Arc;
use std::time::Duration;

use causeway_storage::{EncodedSpans, RetentionPolicy, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::memory_budget::Charge;
use crate::self_metrics::SelfMetrics;

/// How the writer batches and how much it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Most spans in one transaction.
    pub max_batch_spans: usize,
    /// How long to wait for more spans before committing a smaller batch.
    pub max_batch_delay: Duration,
    /// Most spans reserved or waiting for commit at any time.
    pub max_in_flight_spans: usize,
    /// Retention to apply, and how often.
    pub retention: Option<(RetentionPolicy, Duration)>,
}

/// Why spans were not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The writer holds as many spans as it may; retry later.
    #[error("collector is busy: {in_flight_limit} spans are waiting to be written, retry later")]
    Busy {
        /// The configured bound on waiting spans.
        in_flight_limit: usize,
    },
    /// The writer has shut down.
    #[error("collector is shutting down")]
    Stopped,
    /// The transaction holding the spans failed; none of them were stored.
    #[error("cannot store spans: {0}")]
    Commit(String),
}

/// A submission waiting in the writer's queue.
struct Submission {
    spans: EncodedSpans,
    ack: oneshot::Sender<Result<(), WriteError>>,
    permit: OwnedSemaphorePermit,
    /// The memory the spans hold, given back once they are committed.
    charge: Charge,
}

/// The receivers' side of the writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WriterHandle {
    sender: mpsc::UnboundedSender<Submission>,
    room: Arc<Semaphore>,
    max_in_flight_spans: usize,
    metrics: Arc<SelfMetrics>,
}

/// Room for a number of spans in the writer's queue, held until they are committed.
#[derive(Debug)]
pub struct Reservation {
    handle: WriterHandle,
    permit: OwnedSemaphorePermit,
}

impl WriterHandle {
    /// Refuses at once when no room at all is left, before a request of `offered` spans
    /// is converted.
    pub fn refuse_if_full(&self, offered: usize) -> Result<(), WriteError> {
        if self.room.is_closed() {
            return Err(WriteError::Stopped);
        }
        if self.room.available_permits() == 0 {
            self.metrics.spans_refused(offered as u64);
            return Err(WriteError::Busy {
                in_flight_limit: self.max_in_flight_spans,
            });
        }
        Ok(())
    }

    /// Reserves room for `spans` spans, or refuses at once when the writer is full. A
    /// request larger than the whole bound reserves the whole bound.
    pub fn reserve(&self, spans: usize) -> Result<Reservation, WriteError> {
        let wanted = spans.clamp(1, self.max_in_flight_spans);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        match Arc::clone(&self.room).try_acquire_many_owned(wanted) {
            Ok(permit) => Ok(Reservation {
                handle: self.clone(),
                permit,
            }),
            Err(TryAcquireError::NoPermits) => {
                self.metrics.spans_refused(spans as u64);
                Err(WriteError::Busy {
                    in_flight_limit: self.max_in_flight_spans,
                })
            }
            Err(TryAcquireError::Closed) => Err(WriteError::Stopped),
        }
    }
}

impl Reservation {
    /// Queues the spans and waits until the transaction holding them has committed; the
    /// memory `charge` they hold is given back then.
    pub async fn write(self, spans: EncodedSpans, charge: Charge) -> Result<(), WriteError> {
        if spans.is_empty() {
            return Ok(());
        }
        let count = spans.len() as u64;
        let metrics = Arc::clone(&self.handle.metrics);
        let (ack, done) = oneshot::channel();
        metrics.queue_grew(count);
        let submission = Submission {
            spans,
            ack,
            permit: self.permit,
            charge,
        };
        if self.handle.sender.send(submission).is_err() {
            metrics.queue_shrank(count);
            return Err(WriteError::Stopped);
        }
        // A dropped acknowledgement means the writer stopped before committing.
        done.await.unwrap_or(Err(WriteError::Stopped))
    }
}

/// Starts the writer task. It runs until every [`WriterHandle`] is dropped, commits what
/// is still queued, and closes the store.
pub fn spawn_writer(
    store: Store,
    options: WriterOptions,
    metrics: Arc<SelfMetrics>,
) -> (WriterHandle, JoinHandle<()>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let max_in_flight_spans = options.max_in_flight_spans.clamp(1, Semaphore::MAX_PERMITS);
    let handle = WriterHandle {
        sender,
        room: Arc::new(Semaphore::new(max_in_flight_spans)),
        max_in_flight_spans,
        metrics: Arc::clone(&metrics),
    };
    let task = tokio::spawn(run(store, receiver, options, metrics));
    (handle, task)
}

async fn run(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<Submission>,
    options: WriterOptions,
    metrics: Arc<SelfMetrics>,
) {
    let max_batch_spans = options.max_batch_spans.max(1);
    let max_commits = store.concurrent_writes().max(1);
    let mut retention = options.retention.map(|(policy, every)| {
        let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        (policy, ticker)
    });
    // Retention runs beside the writer, one small transaction at a time, so that a large
    // delete never holds commits back; a pass still running when the next tick comes is
    // left to finish instead of starting a second one.
    let mut retention_pass: Option<JoinHandle<()>> = None;
    // Batches being committed: one at a time on SQLite; on PostgreSQL the next batch is
    // gathered and sent while earlier ones commit.
    let mut commits: JoinSet<()> = JoinSet::new();
    loop {
        let first = tokio::select! {
            submission = receiver.recv(), if commits.len() < max_commits => match submission {
                Some(submission) => submission,
                None => break,
            },
            Some(finished) = commits.join_next() => {
                if let Err(error) = finished {
                    // Its receivers were told the writer stopped (their acknowledgements
                    // were dropped); the next batches are still written.
                    tracing::error!(%error, "a batch commit panicked");
                }
                continue;
            }
            () = next_tick(&mut retention) => {
                let idle = retention_pass.as_ref().is_none_or(JoinHandle::is_finished);
                if let (Some((policy, _)), true) = (&retention, idle) {
                    let (store, policy) = (store.clone(), *policy);
                    retention_pass =
                        Some(tokio::spawn(async move { apply_retention(&store, &policy).await }));
                }
                continue;
            }
        };
        let mut spans = first.spans.len();
        let mut pending = vec![first];
        let deadline = Instant::now() + options.max_batch_delay;
        while spans < max_batch_spans {
            let next = match receiver.try_recv() {
                Ok(submission) => Some(submission),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, receiver.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            let Some(submission) = next else { break };
            spans += submission.spans.len();
            pending.push(submission);
        }
        let (store, metrics) = (store.clone(), Arc::clone(&metrics));
        commits.spawn(async move { commit(&store, pending, &metrics).await });
    }
    // Every queued batch is committed before the store closes.
    while let Some(finished) = commits.join_next().await {
        if let Err(error) = finished {
            tracing::error!(%error, "a batch commit panicked");
        }
    }
    if let Some(pass) = retention_pass {
        // Each chunk is its own transaction: stopping between chunks loses nothing.
        pass.abort();
        let _ = pass.await;
    }
    store.close().await;
}

/// Waits for the next retention tick, or forever when retention is off.
async fn next_tick(retention: &mut Option<(RetentionPolicy, tokio::time::Interval)>) {
    match retention {
        Some((_, ticker)) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn apply_retention(store: &Store, policy: &RetentionPolicy) {
    match store.apply_retention(policy).await {
        Ok(report) if report.deleted_by_age + report.deleted_by_size > 0 => tracing::info!(
            deleted_by_age = report.deleted_by_age,
            deleted_by_size = report.deleted_by_size,
            "retention deleted old spans"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(error = %error, "retention failed"),
    }
}

async fn commit(store: &Store, pending: Vec<Submission>, metrics: &SelfMetrics) {
    // One merged batch keeps every statement full-size (and its prepared form cached),
    // however small the submissions were. It is made the right size at once: growing it
    // would hold two copies of its rows for a moment, outside the memory budget.
    let (spans, links) = pending.iter().fold((0, 0), |(spans, links), submission| {
        (
            spans + submission.spans.len(),
            links + submission.spans.link_count(),
        )
    });
    let single = pending.len() == 1;
    let mut merged: Option<EncodedSpans> = None;
    let mut acks = Vec::with_capacity(pending.len());
    for submission in pending {
        match &mut merged {
            None if single => merged = Some(submission.spans),
            None => {
                let mut batch = EncodedSpans::with_capacity(spans, links);
                batch.append(submission.spans);
                merged = Some(batch);
            }
            Some(batch) => batch.append(submission.spans),
        }
        acks.push((submission.ack, submission.permit, submission.charge));
    }
    let merged = merged.unwrap_or_default();
    let count = merged.len() as u64;
    let started = Instant::now();
    let result = store.write_spans(vec![merged]).await;
    metrics.commit_took(started.elapsed());
    let outcome = match result {
        Ok(_) => {
            metrics.spans_accepted(count);
            Ok(())
        }
        Err(error) => {
            tracing::warn!(error = %error, spans = count, "batch commit failed");
            metrics.spans_failed(count);
            Err(WriteError::Commit(error.to_string()))
        }
    };
    metrics.queue_shrank(count);
    for (ack, permit, charge) in acks {
        // The receiver may have gone (client hung up); the spans are stored either way.
        let _ = ack.send(outcome.clone());
        drop(permit);
        drop(charge);
    }
}

#[cfg(test)]
#[path = "batch_writer_tests.rs"]
mod tests;
