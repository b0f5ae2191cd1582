-- Segmented span indexes. Trace and span ids are random, so an index keyed on them takes
-- every insert at a random leaf; once such an index outgrows the page cache, each insert
-- reads and dirties a page of its own. Prefixing those indexes with a segment number (a
-- run of consecutive inserts) keeps the part being written small: new rows only land in
-- the newest segment's subtree. Reads look up each live segment (100 in a 10M-span store).
--
-- A span retried after its segment was closed is stored again in the newest one; readers
-- keep the newest copy (highest rowid) of each (trace id, span id).

CREATE TABLE span_segments (
    segment     INTEGER PRIMARY KEY,
    first_rowid INTEGER NOT NULL
);

-- Rows stored before this migration form segment 0.
ALTER TABLE spans ADD COLUMN segment INTEGER NOT NULL DEFAULT 0;
INSERT INTO span_segments (segment, first_rowid) VALUES (0, 1);

DROP INDEX spans_by_id;
CREATE UNIQUE INDEX spans_by_segment_id ON spans (segment, trace_id, span_id);

DROP INDEX spans_by_correlation;
CREATE INDEX spans_by_segment_correlation ON spans (segment, correlation_id)
    WHERE correlation_id IS NOT NULL;

CREATE TABLE span_links_segmented (
    segment         INTEGER NOT NULL,
    trace_id        BLOB    NOT NULL,
    span_id         BLOB    NOT NULL,
    linked_trace_id BLOB    NOT NULL,
    linked_span_id  BLOB    NOT NULL,
    attributes      TEXT    NOT NULL,
    PRIMARY KEY (segment, trace_id, span_id, linked_trace_id, linked_span_id)
) WITHOUT ROWID;

INSERT INTO span_links_segmented
    SELECT 0, trace_id, span_id, linked_trace_id, linked_span_id, attributes FROM span_links;
DROP TABLE span_links;
ALTER TABLE span_links_segmented RENAME TO span_links;

CREATE INDEX span_links_by_target ON span_links (segment, linked_trace_id, linked_span_id);

-- The segments each correlation's spans were written to, so that a filter over the
-- correlations list probes those segments only.
ALTER TABLE correlations ADD COLUMN first_segment INTEGER NOT NULL DEFAULT 0;
ALTER TABLE correlations ADD COLUMN last_segment INTEGER NOT NULL DEFAULT 0;
