-- Attribute filters for `flows --where` (docs/FLOWS.md): a blocked Bloom filter over every
-- (attribute key, value) pair carried by the spans, and their resources, of each run of
-- 10,000 consecutive rows. A search probes one block per run and value and reads only the
-- runs whose filter may hold the value, plus the rows no filter covers yet (the newest
-- run, being filled, and rows written before this migration).
--
-- The writer builds a run's filter in memory and stores it once the run is full. A span
-- retried into the open segment replaces its row in place: the writer then adds the
-- retry's pairs to the stored filters of that segment's runs, so a filter never misses a
-- value its rows hold.

-- One row per filtered run: its rows and its number of blocks (a power of two).
CREATE TABLE attribute_filter_runs (
    first_rowid INTEGER PRIMARY KEY,
    last_rowid  INTEGER NOT NULL,
    blocks      INTEGER NOT NULL
);

-- The blocks of each run's filter; a block that is all zeros is not stored.
CREATE TABLE attribute_filter_blocks (
    first_rowid INTEGER NOT NULL,
    block       INTEGER NOT NULL,
    bits        BLOB    NOT NULL,
    PRIMARY KEY (first_rowid, block)
) WITHOUT ROWID;
