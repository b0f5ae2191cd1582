//! The only caller of storage: a task that answers the dashboard's requests off the draw
//! loop, rebuilding flows as it goes. Answers arrive as [`Loaded`] over a channel.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use causeway_conventions::alert::{annotation, label};
use causeway_flow::{FlowSpans as LoadedSpans, load_listed, load_spans_with, load_topology};
use causeway_storage::{
    CorrelationRow, CorrelationSearch, SpanRecord, StorageError, Store, now_ns,
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::model::{AlertRow, FlowRow, FlowSpans, LagRow, badge};
use crate::sanitize::clean;
use crate::state::{Loaded, Request, ViewId};
use causeway_flow::{FlowOptions, FlowStatus, FlowSummary, Topology, reconstruct};

/// Most alerts listed.
const ALERT_LIMIT: i64 = 500;
/// How far back the lag sparkline reaches.
const LAG_TREND_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long the learnt topology is reused before it is read again.
const TOPOLOGY_TTL: Duration = Duration::from_secs(10);
/// Most flow summaries kept between refreshes.
const SUMMARY_CACHE_LIMIT: usize = 4_096;

/// Starts the data task: it reads `requests` until the channel closes and sends each
/// answer on `answers`, rebuilding flows with `options`.
pub fn spawn(
    store: Store,
    options: FlowOptions,
    mut requests: UnboundedReceiver<Request>,
    answers: UnboundedSender<Loaded>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = Reader::with_options(store, options);
        while let Some(first) = requests.recv().await {
            // Answer only the newest request of each kind: older ones are already stale.
            let mut batch = vec![first];
            while let Ok(next) = requests.try_recv() {
                batch.retain(|queued| {
                    std::mem::discriminant(queued) != std::mem::discriminant(&next)
                });
                batch.push(next);
            }
            for request in batch {
                let answer = reader.answer(request).await;
                if answers.send(answer).is_err() {
                    return;
                }
            }
        }
    })
}

/// The store, with what is worth keeping between requests.
pub struct Reader {
    store: Store,
    options: FlowOptions,
    topology: Option<(Instant, Topology)>,
    summaries: HashMap<String, (CorrelationRow, Option<FlowRow>)>,
}

impl Reader {
    /// A reader over `store` with the default reconstruction options.
    pub fn new(store: Store) -> Reader {
        Reader::with_options(store, FlowOptions::default())
    }

    /// A reader over `store` that rebuilds flows with `options`.
    pub fn with_options(store: Store, options: FlowOptions) -> Reader {
        Reader {
            store,
            options,
            topology: None,
            summaries: HashMap::new(),
        }
    }

    /// Runs one request; failures become [`Loaded::Failed`] or [`Loaded::Unavailable`].
    pub async fn answer(&mut self, request: Request) -> Loaded {
        let result = match request {
            Request::Flows {
                filter,
                offset,
                limit,
            } => self.flows(filter, offset, limit).await,
            Request::Flow { id } => self.flow(id).await,
            Request::Trace { trace_id } => self.flow(trace_id.to_string()).await,
            Request::Lag => match self.lag().await {
                Err(error) => return unavailable(ViewId::Lag, &error),
                ok => ok,
            },
            Request::Alerts => match self.alerts().await {
                Err(error) => return unavailable(ViewId::Alerts, &error),
                ok => ok,
            },
        };
        result.unwrap_or_else(|error| {
            tracing::warn!(error = %error, "dashboard read failed");
            Loaded::Failed(error.to_string())
        })
    }

    async fn topology(&mut self) -> Result<Topology, StorageError> {
        if let Some((read_at, topology)) = &self.topology
            && read_at.elapsed() < TOPOLOGY_TTL
        {
            return Ok(topology.clone());
        }
        let topology = load_topology(&self.store).await?;
        self.topology = Some((Instant::now(), topology.clone()));
        Ok(topology)
    }

    async fn flows(
        &mut self,
        filter: String,
        offset: usize,
        limit: usize,
    ) -> Result<Loaded, StorageError> {
        let search = CorrelationSearch {
            text: filter.clone(),
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        };
        let correlations = self.store.search_correlations(&search).await?;
        let topology = self.topology().await?;
        let mut rows = Vec::with_capacity(correlations.len());
        for correlation in correlations {
            if let Some((seen, row)) = self.summaries.get(&correlation.correlation_id)
                && *seen == correlation
            {
                rows.extend(row.clone());
                continue;
            }
            // A root row whose trace is downstream of another flow is listed there instead.
            let row = load_listed(&self.store, &correlation)
                .await?
                .map(|loaded| flow_row(&correlation, &loaded.spans, &topology, &self.options));
            if self.summaries.len() >= SUMMARY_CACHE_LIMIT {
                self.summaries.clear();
            }
            self.summaries.insert(
                correlation.correlation_id.clone(),
                (correlation, row.clone()),
            );
            rows.extend(row);
        }
        Ok(Loaded::Flows {
            filter,
            offset,
            rows,
        })
    }

    /// Opens a flow by correlation ID or trace ID through the one loader, so the dashboard
    /// opens the same flow as `causeway flow ID`.
    async fn flow(&mut self, id: String) -> Result<Loaded, StorageError> {
        let loaded = load_spans_with(&self.store, &id, &self.options)
            .await?
            .unwrap_or(LoadedSpans {
                id,
                spans: Vec::new(),
                truncated: false,
            });
        let topology = self.topology().await?;
        let flow = reconstruct(&loaded.spans, &topology, &self.options);
        Ok(Loaded::Flow(Box::new(FlowSpans {
            id: loaded.id,
            spans: loaded.spans,
            flow,
            truncated: loaded.truncated,
        })))
    }

    async fn lag(&mut self) -> Result<Loaded, StorageError> {
        let status = self.store.lag_status().await?;
        let since = now_ns() - i64::try_from(LAG_TREND_WINDOW.as_nanos()).unwrap_or(i64::MAX);
        let samples = self.store.lag_samples_since(since).await?;
        let mut rows: BTreeMap<(String, String), LagRow> = BTreeMap::new();
        let mut oldest: HashMap<(String, String), (i32, i64)> = HashMap::new();
        for partition in &status {
            let key = (partition.consumer_group.clone(), partition.topic.clone());
            let row = rows.entry(key.clone()).or_insert_with(|| LagRow {
                group: partition.consumer_group.clone(),
                topic: partition.topic.clone(),
                state: partition.state,
                lag_messages: 0,
                lag_seconds: 0.0,
                trend: Vec::new(),
                partitions: Vec::new(),
                oldest_correlation: None,
            });
            let behind = partition.lag.unwrap_or(0);
            row.lag_messages += behind;
            let seconds = partition.time_lag_ms.unwrap_or(0) as f64 / 1_000.0;
            if seconds > row.lag_seconds {
                row.lag_seconds = seconds;
                if let Some(committed) = partition.committed_offset {
                    oldest.insert(key, (partition.partition, committed));
                }
            }
            row.state = row.state.max(partition.state);
            row.partitions
                .push((i64::from(partition.partition), behind));
        }
        let mut trend: BTreeMap<(String, String), BTreeMap<i64, u64>> = BTreeMap::new();
        for sample in &samples {
            let key = (sample.consumer_group.clone(), sample.topic.clone());
            let lag = u64::try_from(sample.lag.unwrap_or(0)).unwrap_or(0);
            *trend
                .entry(key)
                .or_default()
                .entry(sample.sampled_ns)
                .or_insert(0) += lag;
        }
        for (key, row) in rows.iter_mut() {
            if let Some(points) = trend.remove(key) {
                row.trend = points.into_values().collect();
            }
            if let Some((partition, committed)) = oldest.get(key) {
                row.oldest_correlation = self
                    .store
                    .oldest_waiting_event(&row.topic, *partition, *committed)
                    .await?
                    .and_then(|event| event.correlation_id.or(Some(event.trace_id)));
            }
        }
        let mut rows: Vec<LagRow> = rows.into_values().collect();
        rows.sort_by(|a, b| {
            b.lag_seconds
                .total_cmp(&a.lag_seconds)
                .then(a.group.cmp(&b.group))
        });
        Ok(Loaded::Lag(rows))
    }

    async fn alerts(&mut self) -> Result<Loaded, StorageError> {
        let stored = self.store.alerts(ALERT_LIMIT).await?;
        let mut rows: Vec<AlertRow> = stored
            .into_iter()
            .map(|alert| {
                let evidence = alert
                    .annotations
                    .get(annotation::SUMMARY)
                    .cloned()
                    .unwrap_or_else(|| annotations_text(&alert.annotations));
                AlertRow {
                    firing: alert.status != "resolved",
                    pending: alert.status == "pending",
                    group: alert.labels.get(label::CONSUMER_GROUP).cloned(),
                    correlation_id: [
                        annotation::WAITING_CORRELATION_ID,
                        annotation::WAITING_TRACE_ID,
                    ]
                    .iter()
                    .find_map(|key| alert.annotations.get(*key).cloned())
                    .or_else(|| first_flow_id(&alert.annotations)),
                    rule: alert.rule,
                    evidence,
                    started_ns: alert.starts_ns,
                    resolved_ns: alert.ends_ns,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.firing
                .cmp(&a.firing)
                .then(b.started_ns.cmp(&a.started_ns))
        });
        Ok(Loaded::Alerts(rows))
    }
}

/// An alert's annotations as `key=value` pairs, each key and value cleaned before they are
/// joined: one value's unfinished escape sequence cannot hide the pairs after it.
fn annotations_text(annotations: &BTreeMap<String, String>) -> String {
    annotations
        .iter()
        .map(|(key, value)| format!("{}={}", clean(key), clean(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first flow a flow alert names (its annotations list them, comma-separated).
fn first_flow_id(annotations: &BTreeMap<String, String>) -> Option<String> {
    annotations
        .get(annotation::FLOW_IDS)?
        .split(',')
        .map(str::trim)
        .find(|id| !id.is_empty())
        .map(str::to_owned)
}

fn unavailable(view: ViewId, error: &StorageError) -> Loaded {
    Loaded::Unavailable {
        view,
        reason: format!("{} cannot be read from this database: {error}", view.name()),
    }
}

/// A flows-list row for one correlation, from its rebuilt flow.
pub fn flow_row(
    correlation: &CorrelationRow,
    spans: &[SpanRecord],
    topology: &Topology,
    options: &FlowOptions,
) -> FlowRow {
    let flow = reconstruct(spans, topology, options);
    let summary = FlowSummary::of(&correlation.correlation_id, &flow);
    FlowRow {
        correlation_id: correlation.correlation_id.clone(),
        start_ns: correlation.first_start_ns,
        duration_ns: (correlation.last_end_ns - correlation.first_start_ns).max(0),
        services: summary.services,
        events: i64::try_from(summary.event_count).unwrap_or(i64::MAX),
        has_error: correlation.has_error || summary.status == FlowStatus::Error,
        badges: summary
            .faults
            .keys()
            .map(|kind| badge(*kind).to_owned())
            .collect(),
        facts: summary
            .facts
            .keys()
            .map(|kind| badge(*kind).to_owned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_annotation_is_cleaned_before_they_are_joined() {
        let annotations: BTreeMap<String, String> = [
            ("a".to_owned(), "cut \u{1b}[31".to_owned()),
            ("b".to_owned(), "ord-1\u{200d}".to_owned()),
            ("c".to_owned(), "line\u{2028}break".to_owned()),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            annotations_text(&annotations),
            "a=cut \u{fffd} b=ord-1\u{fffd} c=line break"
        );
    }
}
