-- Consumer groups the lag poller found and the topics it found each on, so a restarted
-- collector carries on with groups whose consumers are gone. `committed` is 1 when the
-- broker held committed offsets of the group on the topic (the topic is forgotten once they
-- expire), 0 when only a member's assignment named it (it stays while the group does).
CREATE TABLE lag_groups (
    consumer_group TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    committed      INTEGER NOT NULL,
    found_ns       INTEGER NOT NULL,
    PRIMARY KEY (consumer_group, topic)
) WITHOUT ROWID;
