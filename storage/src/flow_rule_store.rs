//! [`FlowRuleStore`]: what the collector's flow rules read and keep, on either backend. A
//! pass reads the spans stored since its cursor in ranges ([`FlowRuleStore::pass_ranges`],
//! [`FlowRuleStore::spans_in`]), never by rescanning, and writes each range's outcome with
//! the cursor past it in one transaction. The cursor's unit is the backend's: a rowid on
//! SQLite, a writing transaction's id on PostgreSQL (see its migration 0002).

use std::collections::HashMap;

use crate::alert_query::AlertRow;
use crate::error::StorageError;
pub use crate::flow_rule_rows::{
    DueItem, DueKey, FlowPassWrite, RuleSpan, SeenMark, SendRef, SubjectRow,
};
use crate::flow_rule_sqlite::SqliteFlowRules;
use crate::ids::{SpanId, TraceId};
use crate::postgres::PgFlowRules;

/// The flow rules' handle on a read-write store.
#[derive(Debug, Clone)]
pub struct FlowRuleStore {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Sqlite(SqliteFlowRules),
    Postgres(PgFlowRules),
}

/// Calls one method on whichever backend the handle holds.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.inner {
            Inner::Sqlite($backend) => $call.await,
            Inner::Postgres($backend) => $call.await,
        }
    };
}

impl FlowRuleStore {
    pub(crate) fn sqlite(rules: SqliteFlowRules) -> FlowRuleStore {
        FlowRuleStore {
            inner: Inner::Sqlite(rules),
        }
    }

    pub(crate) fn postgres(rules: PgFlowRules) -> FlowRuleStore {
        FlowRuleStore {
            inner: Inner::Postgres(rules),
        }
    }

    /// Where the last pass stopped, if a pass ever ran.
    pub async fn cursor(&self) -> Result<Option<i64>, StorageError> {
        on_backend!(self, rules => rules.cursor())
    }

    /// The newest position a pass may read up to now: the highest span rowid on SQLite (0
    /// for an empty table); on PostgreSQL, the newest transaction id older than every
    /// transaction still running. A store no pass ever ran on starts here.
    pub async fn newest_position(&self) -> Result<i64, StorageError> {
        on_backend!(self, rules => rules.newest_position())
    }

    /// The ranges `(after, through]` of positions a pass reads after `after`, in order: up
    /// to [`FlowRuleStore::newest_position`], about `chunk_rows` spans each, and at most
    /// about `max_rows` spans in all (a backlog is worked off over the next passes).
    pub async fn pass_ranges(
        &self,
        after: i64,
        chunk_rows: usize,
        max_rows: usize,
    ) -> Result<Vec<(i64, i64)>, StorageError> {
        on_backend!(self, rules => rules.pass_ranges(after, chunk_rows, max_rows))
    }

    /// The spans of positions `after + 1 ..= through`, in the order they were stored. The
    /// propagation break is read only when `breaks` (it costs a look into each span's
    /// attributes).
    pub async fn spans_in(
        &self,
        after: i64,
        through: i64,
        breaks: bool,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        on_backend!(self, rules => rules.spans_in(after, through, breaks))
    }

    /// The spans each of `spans` (segment, trace, span) links to.
    pub async fn links_of(
        &self,
        spans: Vec<(i64, TraceId, SpanId)>,
    ) -> Result<HashMap<(TraceId, SpanId), Vec<(TraceId, SpanId)>>, StorageError> {
        on_backend!(self, rules => rules.links_of(spans))
    }

    /// The stored spans with these ids (the newest copy of each), in any order.
    pub async fn spans_by_id(
        &self,
        ids: Vec<(TraceId, SpanId)>,
    ) -> Result<Vec<RuleSpan>, StorageError> {
        on_backend!(self, rules => rules.spans_by_id(ids))
    }

    /// The due items of these sends, under any rule.
    pub async fn due_of_sends(&self, sends: Vec<SendRef>) -> Result<Vec<DueItem>, StorageError> {
        on_backend!(self, rules => rules.due_of_sends(sends))
    }

    /// Items not yet overdue whose due time is at or before `now_ns`, earliest first, at
    /// most `limit`, through the due-time index.
    pub async fn due_by(&self, now_ns: i64, limit: usize) -> Result<Vec<DueItem>, StorageError> {
        on_backend!(self, rules => rules.due_range(false, now_ns, limit))
    }

    /// Overdue items due before `cutoff_ns`, earliest first, at most `limit`.
    pub async fn overdue_before(
        &self,
        cutoff_ns: i64,
        limit: usize,
    ) -> Result<Vec<DueItem>, StorageError> {
        on_backend!(self, rules => rules.due_range(true, cutoff_ns - 1, limit))
    }

    /// Every overdue item's rule, topic and groups, with how many there are of each: what
    /// the alerts count, read back when the collector starts.
    pub async fn overdue_counts(
        &self,
    ) -> Result<Vec<(String, String, Vec<String>, i64)>, StorageError> {
        on_backend!(self, rules => rules.overdue_counts())
    }

    /// For each item, the groups remembered as having consumed its message (by the span
    /// its trace context points at, its message id or its position); `None` stands for a
    /// consumer that names no group.
    pub async fn seen_groups(
        &self,
        items: Vec<DueItem>,
    ) -> Result<Vec<Vec<Option<String>>>, StorageError> {
        on_backend!(self, rules => rules.seen_groups(items))
    }

    /// What every flow alert has counted.
    pub async fn subjects(&self) -> Result<Vec<SubjectRow>, StorageError> {
        on_backend!(self, rules => rules.subjects())
    }

    /// Alert episodes that are not over for their hooks: pending or firing, or resolved
    /// without the resolution having been notified. What a restarted collector picks up.
    pub async fn open_alerts(&self) -> Result<Vec<AlertRow>, StorageError> {
        on_backend!(self, rules => rules.open_alerts())
    }

    /// Writes one pass's changes in one transaction: a restart sees all of them or none.
    pub async fn write(&self, pass: FlowPassWrite) -> Result<(), StorageError> {
        if pass == FlowPassWrite::default() {
            return Ok(());
        }
        on_backend!(self, rules => rules.write(pass))
    }
}
