-- causeway's PostgreSQL schema: the tables of the SQLite schema (migrations 0001-0006), laid
-- out for volume. Spans and their links are partitioned by the day they were stored
-- (`ingest_day`, days since the Unix epoch): the writer creates each day's partitions, and
-- retention drops whole days. The upsert key (trace id, span id) holds within a day; a
-- retry stored on a later day is kept twice until retention drops the older copy, and
-- every read keeps the newest copy (the SQLite store does the same with its segments).
-- Text that is sorted or compared as a key uses the "C" collation: byte order, as SQLite.

CREATE TABLE spans (
    trace_id        BYTEA   NOT NULL,
    span_id         BYTEA   NOT NULL,
    parent_span_id  BYTEA,
    name            TEXT    NOT NULL,
    kind            BIGINT  NOT NULL,
    service_name    TEXT    NOT NULL,
    scope_name      TEXT    NOT NULL,
    start_ns        BIGINT  NOT NULL,
    end_ns          BIGINT  NOT NULL,
    status_code     BIGINT  NOT NULL,
    status_message  TEXT    NOT NULL,
    attributes      TEXT    NOT NULL,
    resource        TEXT    NOT NULL,
    events          TEXT    NOT NULL,
    correlation_id  TEXT COLLATE "C",
    message_id      TEXT,
    event_type      TEXT,
    destination     TEXT COLLATE "C",
    partition_id    BIGINT,
    kafka_offset    BIGINT,
    consumer_group  TEXT COLLATE "C",
    operation_type  TEXT,
    message_key     TEXT,
    ingested_ns     BIGINT  NOT NULL,
    ingest_day      BIGINT  NOT NULL,
    PRIMARY KEY (trace_id, span_id, ingest_day)
) PARTITION BY RANGE (ingest_day);

-- The flow queries: spans by correlation ID, the traces of send spans and of parentless
-- consumer spans at a message position, the newest spans (attribute scan, retention).
CREATE INDEX spans_by_correlation ON spans (correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX spans_by_send_position ON spans (destination, partition_id, kafka_offset)
    WHERE kind = 4 AND kafka_offset IS NOT NULL;
CREATE INDEX spans_by_orphan_position ON spans (destination, partition_id, kafka_offset)
    WHERE kind = 5 AND parent_span_id IS NULL AND kafka_offset IS NOT NULL;
CREATE INDEX spans_by_ingest ON spans (ingested_ns);

CREATE TABLE span_links (
    trace_id        BYTEA  NOT NULL,
    span_id         BYTEA  NOT NULL,
    linked_trace_id BYTEA  NOT NULL,
    linked_span_id  BYTEA  NOT NULL,
    attributes      TEXT   NOT NULL,
    ingested_ns     BIGINT NOT NULL,
    ingest_day      BIGINT NOT NULL,
    PRIMARY KEY (trace_id, span_id, linked_trace_id, linked_span_id, ingest_day)
) PARTITION BY RANGE (ingest_day);

CREATE INDEX span_links_by_target ON span_links (linked_trace_id, linked_span_id);

CREATE TABLE correlations (
    correlation_id TEXT COLLATE "C"    PRIMARY KEY,
    first_start_ns BIGINT  NOT NULL,
    last_end_ns    BIGINT  NOT NULL,
    has_error      BOOLEAN NOT NULL,
    last_seen_ns   BIGINT  NOT NULL
);

CREATE INDEX correlations_by_start ON correlations (first_start_ns, correlation_id);

CREATE TABLE flow_roots (
    trace_id       BYTEA   PRIMARY KEY,
    first_start_ns BIGINT  NOT NULL,
    last_end_ns    BIGINT  NOT NULL,
    has_error      BOOLEAN NOT NULL,
    last_seen_ns   BIGINT  NOT NULL
);

CREATE INDEX flow_roots_by_start ON flow_roots (first_start_ns, trace_id);

CREATE TABLE topology (
    destination    TEXT COLLATE "C"   NOT NULL,
    consumer_group TEXT COLLATE "C"   NOT NULL,
    first_seen_ns  BIGINT NOT NULL,
    last_seen_ns   BIGINT NOT NULL,
    PRIMARY KEY (destination, consumer_group)
);

CREATE TABLE lag_samples (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sampled_ns       BIGINT  NOT NULL,
    consumer_group   TEXT COLLATE "C"    NOT NULL,
    topic            TEXT COLLATE "C"    NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset BIGINT,
    low_watermark    BIGINT,
    high_watermark   BIGINT,
    lag              BIGINT,
    members          BIGINT,
    source           TEXT    NOT NULL
);

CREATE INDEX lag_samples_by_partition
    ON lag_samples (consumer_group, topic, partition_id, sampled_ns);
CREATE INDEX lag_samples_by_time ON lag_samples (sampled_ns);

CREATE TABLE lag_status (
    consumer_group   TEXT COLLATE "C"    NOT NULL,
    topic            TEXT COLLATE "C"    NOT NULL,
    partition_id     INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    committed_offset BIGINT,
    high_watermark   BIGINT,
    lag              BIGINT,
    time_lag_ms      BIGINT,
    rate_per_s       DOUBLE PRECISION,
    catch_up_ms      BIGINT,
    updated_ns       BIGINT  NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
);

CREATE TABLE lag_groups (
    consumer_group TEXT COLLATE "C"    NOT NULL,
    topic          TEXT COLLATE "C"    NOT NULL,
    committed      BOOLEAN NOT NULL,
    found_ns       BIGINT  NOT NULL,
    PRIMARY KEY (consumer_group, topic)
);

CREATE TABLE alerts (
    fingerprint TEXT COLLATE "C"   NOT NULL,
    starts_ns   BIGINT NOT NULL,
    rule        TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    labels      TEXT   NOT NULL,
    annotations TEXT   NOT NULL,
    ends_ns     BIGINT,
    updated_ns  BIGINT NOT NULL,
    notified_ns BIGINT,
    PRIMARY KEY (fingerprint, starts_ns)
);

CREATE INDEX alerts_by_update ON alerts (updated_ns);
