//! Row decoders shared by the backends: the same columns, selected in the same order, decode
//! the same way from an SQLite or a PostgreSQL row.

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::alert_query::{AlertRow, from_json};
use crate::error::StorageError;
use crate::lag_group_query::LagGroupTopic;
use crate::lag_query::{LagSample, LagStatusRow, WaitingEvent, decode_state};

/// Decodes a row selected as (sampled_ns, consumer_group, topic, partition_id,
/// committed_offset, low_watermark, high_watermark, lag, members, source).
pub(crate) fn lag_sample<R>(row: &R) -> Result<LagSample, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LagSample {
        sampled_ns: row.try_get(0)?,
        consumer_group: row.try_get(1)?,
        topic: row.try_get(2)?,
        partition: row.try_get(3)?,
        committed_offset: row.try_get(4)?,
        low_watermark: row.try_get(5)?,
        high_watermark: row.try_get(6)?,
        lag: row.try_get(7)?,
        members: row.try_get(8)?,
        source: row.try_get(9)?,
    })
}

/// Decodes a row selected as (consumer_group, topic, partition_id, state,
/// committed_offset, high_watermark, lag, time_lag_ms, rate_per_s, catch_up_ms, updated_ns).
pub(crate) fn lag_status<R>(row: &R) -> Result<LagStatusRow, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LagStatusRow {
        consumer_group: row.try_get(0)?,
        topic: row.try_get(1)?,
        partition: row.try_get(2)?,
        state: decode_state(row.try_get(3)?)?,
        committed_offset: row.try_get(4)?,
        high_watermark: row.try_get(5)?,
        lag: row.try_get(6)?,
        time_lag_ms: row.try_get(7)?,
        rate_per_s: row.try_get(8)?,
        catch_up_ms: row.try_get(9)?,
        updated_ns: row.try_get(10)?,
    })
}

/// Decodes a row selected as (consumer_group, topic, committed, found_ns).
pub(crate) fn lag_group<R>(row: &R) -> Result<LagGroupTopic, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(LagGroupTopic {
        consumer_group: row.try_get(0)?,
        topic: row.try_get(1)?,
        committed: row.try_get(2)?,
        found_ns: row.try_get(3)?,
    })
}

/// Decodes a row selected as (fingerprint, starts_ns, rule, status, labels, annotations,
/// ends_ns, updated_ns, notified_ns).
pub(crate) fn alert<R>(row: &R) -> Result<AlertRow, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let labels: String = row.try_get(4)?;
    let annotations: String = row.try_get(5)?;
    Ok(AlertRow {
        fingerprint: row.try_get(0)?,
        starts_ns: row.try_get(1)?,
        rule: row.try_get(2)?,
        status: row.try_get(3)?,
        labels: from_json(&labels)?,
        annotations: from_json(&annotations)?,
        ends_ns: row.try_get(6)?,
        updated_ns: row.try_get(7)?,
        notified_ns: row.try_get(8)?,
    })
}

/// Decodes a send span selected as (kafka_offset, correlation_id, trace_id, start_ns).
pub(crate) fn waiting_event<R>(row: &R) -> Result<WaitingEvent, StorageError>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let trace_id: Vec<u8> = row.try_get(2)?;
    Ok(WaitingEvent {
        kafka_offset: row.try_get(0)?,
        correlation_id: row.try_get(1)?,
        trace_id: hex::encode(trace_id),
        sent_ns: row.try_get(3)?,
    })
}
