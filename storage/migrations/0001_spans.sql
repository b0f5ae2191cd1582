-- Spans, their links, and a per-correlation summary kept by the writer.
-- Identifiers are raw bytes: trace ids 16, span ids 8.

CREATE TABLE spans (
    trace_id        BLOB    NOT NULL,
    span_id         BLOB    NOT NULL,
    parent_span_id  BLOB,
    name            TEXT    NOT NULL,
    kind            INTEGER NOT NULL,
    service_name    TEXT    NOT NULL,
    scope_name      TEXT    NOT NULL,
    start_ns        INTEGER NOT NULL,
    end_ns          INTEGER NOT NULL,
    status_code     INTEGER NOT NULL,
    status_message  TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    events          TEXT    NOT NULL,
    correlation_id  TEXT,
    message_id      TEXT,
    event_type      TEXT,
    destination     TEXT,
    partition_id    INTEGER,
    kafka_offset    INTEGER,
    consumer_group  TEXT,
    operation_type  TEXT,
    message_key     TEXT,
    ingested_ns     INTEGER NOT NULL
);

CREATE UNIQUE INDEX spans_by_id ON spans (trace_id, span_id);
CREATE INDEX spans_by_correlation ON spans (correlation_id) WHERE correlation_id IS NOT NULL;

CREATE TABLE span_links (
    trace_id        BLOB NOT NULL,
    span_id         BLOB NOT NULL,
    linked_trace_id BLOB NOT NULL,
    linked_span_id  BLOB NOT NULL,
    attributes      TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id, linked_trace_id, linked_span_id)
) WITHOUT ROWID;

CREATE INDEX span_links_by_target ON span_links (linked_trace_id, linked_span_id);

CREATE TABLE correlations (
    correlation_id TEXT    PRIMARY KEY,
    first_start_ns INTEGER NOT NULL,
    last_end_ns    INTEGER NOT NULL,
    has_error      INTEGER NOT NULL,
    last_seen_ns   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX correlations_by_start ON correlations (first_start_ns);

-- Which consumer groups process which topics, learnt from all stored traffic.
CREATE TABLE topology (
    destination    TEXT    NOT NULL,
    consumer_group TEXT    NOT NULL,
    first_seen_ns  INTEGER NOT NULL,
    last_seen_ns   INTEGER NOT NULL,
    PRIMARY KEY (destination, consumer_group)
) WITHOUT ROWID;
