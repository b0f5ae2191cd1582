-- Flows that carry no correlation ID, and the positions of consumptions that lost their
-- trace context.
--
-- flow_roots: one row per trace holding a send span without a correlation ID, kept by the
-- writer like `correlations`. The flows list shows such a flow under the trace of its
-- first producer; the reader drops a row whose trace turns out to be downstream of another
-- (docs/INTEROP.md). Keyed by the raw 16-byte trace id.
CREATE TABLE flow_roots (
    trace_id       BLOB    PRIMARY KEY,
    first_start_ns INTEGER NOT NULL,
    last_end_ns    INTEGER NOT NULL,
    has_error      INTEGER NOT NULL,
    last_seen_ns   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX flow_roots_by_start ON flow_roots (first_start_ns);

-- Consumer spans with no parent (their trace context was lost, or never sent), by the
-- position of the message they consumed: the reader matches them to the send span at the
-- same topic, partition and offset (`spans_by_send_position` finds the other side).
-- Spans that have a parent are already joined to their producer and are not indexed.
CREATE INDEX spans_by_orphan_position ON spans (destination, partition_id, kafka_offset)
    WHERE kind = 5 AND parent_span_id IS NULL AND kafka_offset IS NOT NULL;
