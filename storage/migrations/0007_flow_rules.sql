-- Flow rules (docs/ALERT-RULES.md): where the last evaluation pass stopped, the events
-- waiting for the consumer groups expected to process them, the consumptions seen before
-- their send, and what each flow alert has counted. Evaluation reads only the spans
-- written since the cursor; nothing here is ever rebuilt by rescanning `spans`.

-- The rowid of the last span the flow rules evaluated (one row).
CREATE TABLE flow_rule_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_rowid INTEGER NOT NULL
);

-- A send waiting for its processing, per `incomplete_after` rule: `groups` (a JSON array)
-- lists the expected groups that have not processed it yet; a consumption of the message
-- removes its group, and the row goes once the list is empty. A pass reads the rows due by
-- `flow_due_by_time`; those still waiting then are `overdue` until processed or forgotten.
CREATE TABLE flow_due (
    send_span_id   BLOB    NOT NULL,
    rule           TEXT    NOT NULL,
    send_trace_id  BLOB    NOT NULL,
    due_ns         INTEGER NOT NULL,
    overdue        INTEGER NOT NULL,
    topic          TEXT    NOT NULL,
    message_id     TEXT,
    partition_id   INTEGER,
    kafka_offset   INTEGER,
    correlation_id TEXT,
    event_type     TEXT,
    producer       TEXT    NOT NULL,
    sent_ns        INTEGER NOT NULL,
    groups         TEXT    NOT NULL,
    PRIMARY KEY (send_span_id, rule)
) WITHOUT ROWID;

CREATE INDEX flow_due_by_time ON flow_due (overdue, due_ns);

-- A consumption whose send had not been seen when it was evaluated (exporters deliver
-- spans in any order): checked when the send's row falls due. `consumer_group` is NULL for
-- a consumer that names no group. `source_span_id` is the span its trace context points at
-- (its parent or a link).
CREATE TABLE flow_seen (
    seen_ns        INTEGER NOT NULL,
    consumer_group TEXT,
    source_span_id BLOB,
    topic          TEXT,
    message_id     TEXT,
    partition_id   INTEGER,
    kafka_offset   INTEGER
);

CREATE INDEX flow_seen_by_source ON flow_seen (source_span_id)
    WHERE source_span_id IS NOT NULL;
CREATE INDEX flow_seen_by_message ON flow_seen (topic, message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX flow_seen_by_position ON flow_seen (topic, partition_id, kafka_offset)
    WHERE kafka_offset IS NOT NULL;
CREATE INDEX flow_seen_by_time ON flow_seen (seen_ns);

-- What one flow alert (by fingerprint, with its labels as a JSON object) has counted in
-- its current episode: how many matches, the first flows they belong to (a JSON array),
-- and when it first and last matched.
CREATE TABLE flow_alert_subjects (
    fingerprint   TEXT    PRIMARY KEY,
    labels        TEXT    NOT NULL,
    count         INTEGER NOT NULL,
    flow_ids      TEXT    NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns  INTEGER NOT NULL
) WITHOUT ROWID;
