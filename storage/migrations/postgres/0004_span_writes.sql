-- How many spans each writing transaction stored, under its id (the spans' `ingest_xid`),
-- written in the same transaction as they are. A flow rule pass cuts its ranges from these
-- rows instead of counting the new spans, which visits every new row: a page written since
-- the last vacuum is not all-visible, so an index-only count still reads the table. A pass
-- deletes the rows it has gone past; retention, those older than every stored span.
CREATE TABLE span_writes (
    xid   xid8   PRIMARY KEY DEFAULT pg_current_xact_id(),
    spans BIGINT NOT NULL
);
