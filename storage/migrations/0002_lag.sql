-- Consumer lag: raw and downsampled samples, the latest evaluated status per partition,
-- alerts with their lifecycle, and an index to find the oldest waiting event.

-- One observation of a group's position on one partition. `committed_offset` is NULL when
-- the group has no committed offset there (lag unknown, never 0). `source` is `poller` for
-- the collector's own poll, `otlp:<service>` for a gauge a service reported.
CREATE TABLE lag_samples (
    sampled_ns       INTEGER NOT NULL,
    consumer_group   TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL,
    committed_offset INTEGER,
    low_watermark    INTEGER,
    high_watermark   INTEGER,
    lag              INTEGER,
    members          INTEGER,
    source           TEXT    NOT NULL
);

CREATE INDEX lag_samples_by_partition
    ON lag_samples (consumer_group, topic, partition_id, sampled_ns);
CREATE INDEX lag_samples_by_time ON lag_samples (sampled_ns);

-- The latest evaluation of every partition a group consumes, replaced each cycle.
CREATE TABLE lag_status (
    consumer_group   TEXT    NOT NULL,
    topic            TEXT    NOT NULL,
    partition_id     INTEGER NOT NULL,
    state            TEXT    NOT NULL,
    committed_offset INTEGER,
    high_watermark   INTEGER,
    lag              INTEGER,
    time_lag_ms      INTEGER,
    rate_per_s       REAL,
    catch_up_ms      INTEGER,
    updated_ns       INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_id)
) WITHOUT ROWID;

-- Alerts: one row per episode (fingerprint and start time).
CREATE TABLE alerts (
    fingerprint      TEXT    NOT NULL,
    starts_ns        INTEGER NOT NULL,
    rule             TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    labels           TEXT    NOT NULL,
    annotations      TEXT    NOT NULL,
    ends_ns          INTEGER,
    updated_ns       INTEGER NOT NULL,
    notified_ns      INTEGER,
    PRIMARY KEY (fingerprint, starts_ns)
) WITHOUT ROWID;

CREATE INDEX alerts_by_update ON alerts (updated_ns);

-- Producer send spans by where their message landed, to name the oldest waiting event.
CREATE INDEX spans_by_send_position ON spans (destination, partition_id, kafka_offset)
    WHERE kind = 4 AND kafka_offset IS NOT NULL;
