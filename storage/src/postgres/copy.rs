//! A write's new spans and links in PostgreSQL's binary `COPY` format, the cheapest way
//! to hand the server rows: it inserts them a page at a time (one log record for many
//! rows), where an `INSERT` logs each row on its own.
//!
//! The format: a signature and two 32-bit words; per row, a 16-bit field count, then per
//! field a 32-bit length (-1 for NULL) and the value in the type's binary form (`bytea`
//! and `text` as their bytes, `bigint` as 8 bytes, big-endian); a field count of -1 ends it.

use crate::span_encode::{LinkRow, SpanRow};

/// The copy of new spans: every column the insert writes, `ingest_xid` left to its default
/// (the writing transaction's id).
pub(super) const SPAN_COPY: &str = "COPY spans (trace_id, span_id, parent_span_id, name, \
    kind, service_name, scope_name, start_ns, end_ns, status_code, status_message, attributes, \
    resource, events, correlation_id, message_id, event_type, destination, partition_id, \
    kafka_offset, consumer_group, operation_type, message_key, ingested_ns, ingest_day) \
    FROM STDIN (FORMAT binary)";

/// The copy of new links.
pub(super) const LINK_COPY: &str = "COPY span_links (trace_id, span_id, linked_trace_id, \
    linked_span_id, attributes, ingested_ns, ingest_day) FROM STDIN (FORMAT binary)";

/// The binary format's signature, then its flags and header extension length (both 0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows being laid out in the binary format.
struct CopyData {
    bytes: Vec<u8>,
    /// Set when a value was too long for the format's 32-bit length (2 GiB): the data is
    /// then not sent.
    oversized: bool,
}

/// Why rows could not be laid out for a copy.
#[derive(Debug, thiserror::Error)]
#[error("a span holds a value of more than 2 GiB, which PostgreSQL cannot store")]
pub(super) struct Oversized;

impl CopyData {
    fn with_capacity(capacity: usize) -> CopyData {
        let mut bytes = Vec::with_capacity(HEADER.len() + capacity + 2);
        bytes.extend_from_slice(HEADER);
        CopyData {
            bytes,
            oversized: false,
        }
    }

    fn row(&mut self, fields: i16) {
        self.bytes.extend_from_slice(&fields.to_be_bytes());
    }

    /// A `bytea` or `text` value (text as UTF-8, the connection's encoding).
    fn bytes(&mut self, value: &[u8]) {
        match i32::try_from(value.len()) {
            Ok(length) => {
                self.bytes.extend_from_slice(&length.to_be_bytes());
                self.bytes.extend_from_slice(value);
            }
            Err(_) => {
                self.oversized = true;
                self.null();
            }
        }
    }

    fn optional_bytes(&mut self, value: Option<&[u8]>) {
        match value {
            Some(value) => self.bytes(value),
            None => self.null(),
        }
    }

    fn text(&mut self, value: &str) {
        self.bytes(value.as_bytes());
    }

    fn optional_text(&mut self, value: Option<&str>) {
        self.optional_bytes(value.map(str::as_bytes));
    }

    fn bigint(&mut self, value: i64) {
        self.bytes.extend_from_slice(&8_i32.to_be_bytes());
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn optional_bigint(&mut self, value: Option<i64>) {
        match value {
            Some(value) => self.bigint(value),
            None => self.null(),
        }
    }

    fn null(&mut self) {
        self.bytes.extend_from_slice(&(-1_i32).to_be_bytes());
    }

    fn finish(mut self) -> Result<Vec<u8>, Oversized> {
        if self.oversized {
            return Err(Oversized);
        }
        self.bytes.extend_from_slice(&(-1_i16).to_be_bytes());
        Ok(self.bytes)
    }
}

/// The copy data of `rows`, stored at `ingested_ns` on `day`, for [`SPAN_COPY`].
pub(super) fn span_rows(
    rows: &[&SpanRow],
    ingested_ns: i64,
    day: i64,
) -> Result<Vec<u8>, Oversized> {
    let text_bytes: usize = rows
        .iter()
        .map(|r| r.attributes.len() + r.resource.len() + r.events.len() + r.name.len())
        .sum();
    let mut data = CopyData::with_capacity(text_bytes + rows.len() * 300);
    for row in rows {
        data.row(25);
        data.bytes(&row.trace_id);
        data.bytes(&row.span_id);
        data.optional_bytes(row.parent_span_id.as_ref().map(|id| &id[..]));
        data.text(&row.name);
        data.bigint(row.kind);
        data.text(&row.service_name);
        data.text(&row.scope_name);
        data.bigint(row.start_ns);
        data.bigint(row.end_ns);
        data.bigint(row.status_code);
        data.text(&row.status_message);
        data.text(&row.attributes);
        data.text(&row.resource);
        data.text(&row.events);
        data.optional_text(row.correlation_id.as_deref());
        data.optional_text(row.message_id.as_deref());
        data.optional_text(row.event_type.as_deref());
        data.optional_text(row.destination.as_deref());
        data.optional_bigint(row.partition);
        data.optional_bigint(row.offset);
        data.optional_text(row.consumer_group.as_deref());
        data.optional_text(row.operation_type.as_deref());
        data.optional_text(row.message_key.as_deref());
        data.bigint(ingested_ns);
        data.bigint(day);
    }
    data.finish()
}

/// The copy data of `rows`, stored at `ingested_ns` on `day`, for [`LINK_COPY`].
pub(super) fn link_rows(
    rows: &[&LinkRow],
    ingested_ns: i64,
    day: i64,
) -> Result<Vec<u8>, Oversized> {
    let text_bytes: usize = rows.iter().map(|r| r.attributes.len()).sum();
    let mut data = CopyData::with_capacity(text_bytes + rows.len() * 100);
    for row in rows {
        data.row(7);
        data.bytes(&row.trace_id);
        data.bytes(&row.span_id);
        data.bytes(&row.linked_trace_id);
        data.bytes(&row.linked_span_id);
        data.text(&row.attributes);
        data.bigint(ingested_ns);
        data.bigint(day);
    }
    data.finish()
}
