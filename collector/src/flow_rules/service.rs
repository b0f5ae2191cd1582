//! The flow rule service: every interval, one pass over the spans written since the last
//! one (by position, in bounded ranges; never a rescan), the due-time table for events waiting
//! for their expected groups, and the alerts, through the same tracker and hooks as lag
//! alerts. A thin shell around the pure parts (`evaluate`, `subjects`); its work on the
//! due-time table is in `due`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use causeway_conventions::alert::label;
use causeway_storage::{
    FlowPassWrite, FlowRuleStore, RuleSpan, SpanId, StorageError, Store, TraceId, now_ns,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerting::hook_config::HookConfig;
use crate::alerting::notifier::Notifier;
use crate::flow_rules::config::FlowRuleKind;
use crate::flow_rules::evaluate::{
    ChunkContext, EXPORT_GRACE_NS, Expected, Occurrence, dead_letter, evaluate_chunk,
    missing_parents, needing_links,
};
use crate::flow_rules::held_items::{HELD_ITEMS, HeldItems};
use crate::flow_rules::recent_sends::{RECENT_SENDS, RecentSends};
use crate::flow_rules::subjects::Subjects;
use crate::flows_config::FlowRuleSettings;

mod due;

/// Spans read per range: few enough that reading the next ranges overlaps evaluating
/// this one for most of a pass, and that the ranges in memory at once stay small. On the
/// ingest bench, 20,000 put the collector's steady RSS at 121 to 129 MiB, 5,000 at 93 and
/// 109; the pass bench took as long with either (docs/DECISIONS.md).
pub const CHUNK_SPANS: usize = 5_000;
/// Ranges being read while one is evaluated.
const READ_AHEAD: usize = 2;
/// Most spans one pass reads; a backlog is worked off over the next passes.
pub const MAX_PASS_ROWS: usize = 500_000;

/// A failed flow rule pass.
#[derive(Debug, thiserror::Error)]
pub enum FlowRuleServiceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StorageError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// New spans evaluated.
    pub spans: usize,
    /// Rule matches counted.
    pub matches: usize,
    /// Events found overdue in this pass.
    pub overdue: usize,
    /// Alerts firing after the pass.
    pub firing: usize,
    /// Notifications handed to hooks.
    pub notifications: usize,
}

/// A dead-letter send whose processing span (naming the group) is not stored yet.
#[derive(Debug, Clone)]
struct Orphan {
    span: RuleSpan,
    give_up_ns: i64,
}

/// Runs the flow rules.
pub struct FlowRuleService {
    store: Store,
    rules_store: FlowRuleStore,
    settings: FlowRuleSettings,
    /// How the alerts' `causeway flow` commands name the store.
    db: String,
    notifier: Notifier,
    subjects: Subjects,
    cursor: i64,
    orphans: Vec<Orphan>,
    recent_sends: RecentSends,
}

impl FlowRuleService {
    /// A service over `store` (read-write), telling `hooks`. It picks up where a previous
    /// run stopped: its cursor, its open alerts and what they counted; a store no pass ever
    /// ran on starts at its newest span (history is not alerted on).
    pub async fn new(
        store: Store,
        settings: FlowRuleSettings,
        hooks: Vec<HookConfig>,
    ) -> Result<FlowRuleService, FlowRuleServiceError> {
        let rules_store = store.flow_rule_store()?;
        let db = store.command_db();
        let mut service = FlowRuleService {
            store,
            rules_store,
            settings,
            db,
            notifier: Notifier::new(hooks),
            subjects: Subjects::new(),
            cursor: 0,
            orphans: Vec::new(),
            recent_sends: RecentSends::new(RECENT_SENDS),
        };
        // A store no pass ever ran on starts at its newest span.
        service.cursor = service.rules_store.newest_position().await?;
        service.restore().await?;
        Ok(service)
    }

    /// Reads back the state the store keeps: the cursor (when a pass ever stored one), the
    /// open flow alerts and what they counted. Done at start and again whenever this
    /// collector takes the lease over from another one (which moved them meanwhile).
    async fn restore(&mut self) -> Result<(), StorageError> {
        if let Some(cursor) = self.rules_store.cursor().await? {
            self.cursor = cursor;
        }
        self.notifier.forget();
        for row in self.rules_store.open_alerts().await? {
            if row.labels.contains_key(label::FLOW_KIND) {
                self.notifier.restore(&row);
            }
        }
        let settings = &self.settings;
        let mut subjects = Subjects::new();
        for row in self.rules_store.subjects().await? {
            let name = row.labels.get(label::ALERT_NAME);
            if let Some(rule) = settings.rules.iter().position(|r| Some(&r.name) == name) {
                subjects.restore(rule, &row);
            }
        }
        // The overdue events are counted again from the due-time table: a pass stopped
        // half-way may have written its chunks but not its counts.
        for (_, subject) in subjects.iter_mut() {
            if settings.rules[subject.rule].kind == FlowRuleKind::IncompleteAfter {
                subject.count = 0;
            }
        }
        let now = now_ns();
        for (rule_name, topic, groups, count) in self.rules_store.overdue_counts().await? {
            let Some(rule) = settings.rules.iter().position(|r| r.name == rule_name) else {
                continue;
            };
            for group in groups {
                let subject = BTreeMap::from([
                    (label::CONSUMER_GROUP.to_owned(), group),
                    (label::TOPIC.to_owned(), topic.clone()),
                ]);
                subjects.overdue(&settings.rules, rule, &subject, count, None, now);
            }
        }
        self.subjects = subjects;
        self.orphans.clear();
        Ok(())
    }

    /// Runs a pass every interval while `lease` says this collector holds the store's
    /// lease, until `stop` turns true, then waits for deliveries in flight. On taking the
    /// lease (over from another collector, or at start) it first reads the stored state
    /// back; without it, it evaluates nothing and sends nothing.
    pub fn spawn(
        mut self,
        mut stop: watch::Receiver<bool>,
        lease: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.settings.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The state read by `new` may be stale by the time the lease is ours.
            let mut current = false;
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
                if !*lease.borrow() {
                    current = false;
                    continue;
                }
                if !current {
                    if let Err(error) = self.restore().await {
                        tracing::warn!(%error, "flow rule state cannot be read back: trying again next interval");
                        continue;
                    }
                    current = true;
                }
                if let Err(error) = self.pass(now_ns()).await {
                    // What the pass counted and held since its cursor was last written is
                    // read back from the store, and those spans are evaluated again.
                    tracing::warn!(%error, "flow rule pass failed: its state is read back next interval");
                    current = false;
                }
            }
            self.finish_deliveries().await;
        })
    }

    /// Waits for every notification handed to hooks so far.
    pub async fn finish_deliveries(&mut self) {
        self.notifier.finish().await;
    }

    /// One pass at `now_ns`: the new spans, the events that fell due, then the alerts.
    pub async fn pass(&mut self, now_ns: i64) -> Result<PassReport, FlowRuleServiceError> {
        let mut report = PassReport::default();
        let expected = self.expected().await?;
        let breaks = self
            .settings
            .rules
            .iter()
            .any(|r| r.kind == FlowRuleKind::PropagationBreak);
        let wants_due = self
            .settings
            .rules
            .iter()
            .any(|r| r.kind == FlowRuleKind::IncompleteAfter);
        // The spans stored when the pass starts, in ranges of positions (rowids on SQLite,
        // writing transactions on PostgreSQL). The ranges after the one being evaluated are
        // read ahead, two at once, so that a pass costs about the reading alone.
        let mut ranges = self
            .rules_store
            .pass_ranges(self.cursor, CHUNK_SPANS, MAX_PASS_ROWS)
            .await?
            .into_iter();
        let mut reading: VecDeque<JoinHandle<Result<Vec<RuleSpan>, StorageError>>> =
            VecDeque::new();
        let mut held = HeldItems::default();
        let mut evaluated = self.cursor;
        loop {
            while reading.len() < READ_AHEAD
                && let Some((after, through)) = ranges.next()
            {
                reading.push_back(self.read_range(after, through, breaks));
            }
            let Some(read) = reading.pop_front() else {
                break;
            };
            let spans = read.await.map_err(|error| {
                StorageError::Corrupt(format!("flow rule read task failed: {error}"))
            })??;
            let Some(last) = spans.last().map(|s| s.rowid) else {
                continue;
            };
            report.spans += spans.len();
            report.matches += self.chunk(&spans, &expected, now_ns, &mut held).await?;
            evaluated = last;
        }
        if !held.is_empty() {
            let mut write = FlowPassWrite {
                cursor: Some(evaluated),
                ..FlowPassWrite::default()
            };
            self.release(&mut held, &mut write);
            self.rules_store.write(write).await?;
            self.cursor = evaluated;
        }
        report.matches += self.orphans(now_ns).await?;
        if wants_due {
            report.overdue = self.fall_due(now_ns).await?;
            self.recheck_overdue(now_ns).await?;
        }
        let conditions = self
            .subjects
            .conditions(&self.settings.rules, now_ns, &self.db);
        let round = self.notifier.update(&conditions, now_ns);
        report.firing = round.firing;
        report.notifications = round.deliveries.len();
        let mut write = FlowPassWrite {
            alerts: round.rows,
            ..FlowPassWrite::default()
        };
        // A subject whose alert is not open and whose condition is clear has ended its
        // episode: its count starts again from nothing.
        let ended: Vec<String> = self
            .subjects
            .iter()
            .filter(|(print, subject)| {
                !self.notifier.is_open(print)
                    && !self.subjects.active(&self.settings.rules, subject, now_ns)
            })
            .map(|(print, _)| print.clone())
            .collect();
        for print in &ended {
            self.subjects.forget(print);
        }
        write.subjects_deleted = ended;
        write.subjects = self
            .subjects
            .iter()
            .map(|(print, subject)| subject.to_row(print))
            .collect();
        let longest = self
            .settings
            .rules
            .iter()
            .filter(|r| r.kind == FlowRuleKind::IncompleteAfter)
            .map(|r| r.after_ns)
            .max()
            .unwrap_or(0);
        // A consumption is remembered until its send, however late, has fallen due.
        write.forget_seen_before_ns =
            Some(now_ns - longest.saturating_add(EXPORT_GRACE_NS).saturating_mul(2));
        self.rules_store.write(write).await?;
        self.notifier.send(round.deliveries);
        Ok(report)
    }

    /// Starts reading the spans of positions `after + 1 ..= through`.
    fn read_range(
        &self,
        after: i64,
        through: i64,
        breaks: bool,
    ) -> JoinHandle<Result<Vec<RuleSpan>, StorageError>> {
        let rules_store = self.rules_store.clone();
        tokio::spawn(async move { rules_store.spans_in(after, through, breaks).await })
    }

    /// Which groups process which topics, from the stored topology.
    async fn expected(&self) -> Result<Expected, StorageError> {
        let mut expected = Expected::new();
        for (topic, group) in self.store.topology().await? {
            expected.entry(topic).or_default().insert(group);
        }
        Ok(expected)
    }

    /// Evaluates one chunk: holds its new due items, and writes what it changed in the
    /// store, with the cursor past it once nothing is held; returns the matches counted.
    async fn chunk(
        &mut self,
        spans: &[RuleSpan],
        expected: &Expected,
        now_ns: i64,
        held: &mut HeldItems,
    ) -> Result<usize, FlowRuleServiceError> {
        let needing = needing_links(spans, |parent| held.has_send(parent));
        let links = if needing.is_empty() {
            HashMap::new()
        } else {
            self.rules_store.links_of(needing).await?
        };
        let missing = missing_parents(spans, &self.settings);
        let parents: HashMap<(TraceId, SpanId), RuleSpan> = if missing.is_empty() {
            HashMap::new()
        } else {
            self.rules_store
                .spans_by_id(missing)
                .await?
                .into_iter()
                .map(|s| ((s.trace_id, s.span_id), s))
                .collect()
        };
        let outcome = evaluate_chunk(
            spans,
            &ChunkContext {
                settings: &self.settings,
                expected,
                links: &links,
                parents: &parents,
                may_wait: true,
            },
        );
        let matches = outcome.occurrences.len();
        self.count(&outcome.occurrences, now_ns);
        for span in outcome.waiting_for_parent {
            let give_up_ns = span.ingested_ns.saturating_add(EXPORT_GRACE_NS);
            self.orphans.push(Orphan { span, give_up_ns });
        }
        held.hold(outcome.due);
        let mut write = FlowPassWrite::default();
        self.consume_earlier(outcome.consumptions, held, &mut write, now_ns)
            .await?;
        if held.len() > HELD_ITEMS {
            self.release(held, &mut write);
        }
        if held.is_empty() {
            write.cursor = spans.last().map(|s| s.rowid);
        }
        let cursor = write.cursor;
        if write != FlowPassWrite::default() {
            self.rules_store.write(write).await?;
        }
        if let Some(cursor) = cursor {
            self.cursor = cursor;
        }
        Ok(matches)
    }

    /// Moves every held item into `write`, remembering its send's start.
    fn release(&mut self, held: &mut HeldItems, write: &mut FlowPassWrite) {
        let items = held.take();
        for item in &items {
            self.recent_sends.remember(item.send_span_id, item.sent_ns);
        }
        write.due_upserts.extend(items);
    }

    fn count(&mut self, occurrences: &[Occurrence], now_ns: i64) {
        for occurrence in occurrences {
            self.subjects
                .record(&self.settings.rules, occurrence, now_ns);
        }
    }

    /// Counts the dead-letter sends that were waiting for their processing span: by its
    /// group once it is stored, or by their service once the wait is over.
    async fn orphans(&mut self, now_ns: i64) -> Result<usize, StorageError> {
        if self.orphans.is_empty() {
            return Ok(0);
        }
        let ids: Vec<(TraceId, SpanId)> = self
            .orphans
            .iter()
            .filter_map(|o| Some((o.span.trace_id, o.span.parent_span_id?)))
            .collect();
        let found: HashMap<(TraceId, SpanId), RuleSpan> = self
            .rules_store
            .spans_by_id(ids)
            .await?
            .into_iter()
            .map(|s| ((s.trace_id, s.span_id), s))
            .collect();
        let mut occurrences = Vec::new();
        let mut still = Vec::new();
        for orphan in self.orphans.drain(..) {
            let parent = orphan
                .span
                .parent_span_id
                .and_then(|p| found.get(&(orphan.span.trace_id, p)));
            if parent.is_some() || now_ns >= orphan.give_up_ns {
                dead_letter(&orphan.span, parent, &self.settings, &mut occurrences);
            } else {
                still.push(orphan);
            }
        }
        self.orphans = still;
        let matches = occurrences.len();
        self.count(&occurrences, now_ns);
        Ok(matches)
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
