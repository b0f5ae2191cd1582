-- `flow_due` keyed by the send's start first: new items are appended at the end of the
-- table instead of landing on a random page of it (a send's span id is random), so a pass
-- that writes thousands of them dirties tens of pages, not thousands. A consumption finds
-- its send's item by the send's start, read from `spans`.
CREATE TABLE flow_due_by_send_time (
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
    PRIMARY KEY (sent_ns, send_span_id, rule)
) WITHOUT ROWID;

INSERT INTO flow_due_by_send_time
SELECT send_span_id, rule, send_trace_id, due_ns, overdue, topic, message_id, partition_id,
       kafka_offset, correlation_id, event_type, producer, sent_ns, groups
FROM flow_due;

DROP TABLE flow_due;
ALTER TABLE flow_due_by_send_time RENAME TO flow_due;
CREATE INDEX flow_due_by_time ON flow_due (overdue, due_ns);
