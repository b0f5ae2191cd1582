-- Flow rules on PostgreSQL (docs/ALERT-RULES.md): the same tables as SQLite's migration
-- 0007, and the position a pass reads spans by.
--
-- SQLite's rowid grows in commit order (one writer); PostgreSQL's writers commit in any
-- order, so a pass reads by the writing transaction's id instead: every span stores it
-- (`ingest_xid`), and a pass reads only transactions older than every one still running
-- (`pg_snapshot_xmin`). A transaction that commits later cannot then add rows below the
-- cursor. Spans stored before this migration have no id and are never evaluated (flow
-- rules never alert on history).
ALTER TABLE spans ADD COLUMN ingest_xid xid8;
ALTER TABLE spans ALTER COLUMN ingest_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX spans_by_ingest_xid ON spans (ingest_xid);

-- The transaction id up to which the flow rules evaluated spans (one row).
CREATE TABLE flow_rule_cursor (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    last_rowid BIGINT NOT NULL
);

-- A send waiting for its processing, per `incomplete_after` rule (`groups`: a JSON array).
CREATE TABLE flow_due (
    send_span_id   BYTEA  NOT NULL,
    rule           TEXT COLLATE "C" NOT NULL,
    send_trace_id  BYTEA  NOT NULL,
    due_ns         BIGINT NOT NULL,
    overdue        BIGINT NOT NULL,
    topic          TEXT COLLATE "C" NOT NULL,
    message_id     TEXT COLLATE "C",
    partition_id   BIGINT,
    kafka_offset   BIGINT,
    correlation_id TEXT,
    event_type     TEXT,
    producer       TEXT   NOT NULL,
    sent_ns        BIGINT NOT NULL,
    groups         TEXT   NOT NULL,
    PRIMARY KEY (send_span_id, rule)
);

CREATE INDEX flow_due_by_time ON flow_due (overdue, due_ns);

-- A consumption whose send had not been seen when it was evaluated.
CREATE TABLE flow_seen (
    seen_ns        BIGINT NOT NULL,
    consumer_group TEXT,
    source_span_id BYTEA,
    topic          TEXT COLLATE "C",
    message_id     TEXT COLLATE "C",
    partition_id   BIGINT,
    kafka_offset   BIGINT
);

CREATE INDEX flow_seen_by_source ON flow_seen (source_span_id)
    WHERE source_span_id IS NOT NULL;
CREATE INDEX flow_seen_by_message ON flow_seen (topic, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX flow_seen_by_position ON flow_seen (topic, partition_id, kafka_offset)
    WHERE kafka_offset IS NOT NULL;
CREATE INDEX flow_seen_by_time ON flow_seen (seen_ns);

-- What one flow alert has counted in its current episode.
CREATE TABLE flow_alert_subjects (
    fingerprint   TEXT COLLATE "C" PRIMARY KEY,
    labels        TEXT   NOT NULL,
    count         BIGINT NOT NULL,
    flow_ids      TEXT   NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns  BIGINT NOT NULL
);
