//! causeway-storage: the stored records, the SQLite schema and migrations, and every query.
//!
//! Nothing outside this crate writes SQL. The collector writes through [`Store::write_spans`]
//! (and the other `write_*` methods); the terminal UI and the commands read through the
//! query methods on a read-only [`Store`].

mod alert_query;
mod attribute_filter;
mod attribute_search;
mod backend;
mod checkpointer;
mod clock;
mod connection;
mod correlation_search;
mod database;
mod demo_mark;
mod error;
mod flow_query;
mod flow_rule_parts;
mod flow_rule_ranges;
mod flow_rule_rows;
mod flow_rule_sqlite;
mod flow_rule_store;
mod ids;
pub mod interface;
mod lag_group_query;
mod lag_query;
mod lease;
mod postgres;
mod record;
mod retention;
mod row_decode;
mod segments;
mod span_encode;
mod span_query;
mod span_read;
mod span_write;
mod sqlite_backend;
mod stitch_query;
mod store;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;
mod writer_lock;

pub use alert_query::AlertRow;
pub use attribute_filter::RUN_SPANS as FILTER_RUN_SPANS;
pub use attribute_search::ATTRIBUTE_SCAN_SPANS;
pub use backend::Store;
pub use clock::{duration_ns, now_ns};
pub use compact_str::CompactString;
pub use correlation_search::CorrelationSearch;
pub use database::{Database, DatabaseError, PostgresUrl, hide_passwords};
pub use demo_mark::{DEMO_APPLICATION_ID, DatabaseOwner, database_owner};
pub use error::StorageError;
pub use flow_query::{CorrelationQuery, CorrelationRow, MAX_FLOW_CORRELATIONS};
pub use flow_rule_store::{
    DueItem, DueKey, FlowPassWrite, FlowRuleStore, RuleSpan, SeenMark, SendRef, SubjectRow,
};
pub use ids::{IdError, SpanId, TraceId};
pub use lag_group_query::LagGroupTopic;
pub use lag_query::{LagSample, LagStatusRow, WaitingEvent};
pub use lease::StoreLease;
pub use postgres::{LEASE_LOCK_CLASS, Nagle, POSTGRES_SCHEMA_VERSION, turn_off_nagle};
pub use record::{Attributes, Messaging, SpanEvent, SpanKind, SpanLink, SpanRecord, StatusCode};
pub use retention::{RetentionPolicy, RetentionReport};
pub use segments::SEGMENT_SPANS;
pub use span_encode::EncodedSpans;
pub use span_write::WriteSummary;
pub use stitch_query::{LinkRef, Position};
pub use store::{SCHEMA_VERSION, schema_sql};
pub use writer_lock::{WriterLock, lock_path};
