"""A plain confluent-kafka consumer group, with no causeway instrumentation, for lag tests.

Usage: lag_group.py BOOTSTRAP TOPIC GROUP stall|closed|report

stall   Creates TOPIC with 2 partitions, writes 10 records to each, consumes all 20 as a
        live member of GROUP and commits, then pauses and writes 15 more to each. It keeps
        polling as a live member, prints {"event": "stalled", ...}, and waits for a line
        `close` on stdin; then it closes the consumer (the group has no member left) and
        prints {"event": "closed", ...}.
closed  Creates TOPIC with 3 partitions, writes 10 records to partitions 0 and 1 (none to
        2), consumes all 20 as GROUP, commits, closes the consumer, then writes 5 more to
        partition 0, and prints {"event": "closed", ...}: partition 2 was never committed.
report  Prints {"event": "report", ...} for GROUP on TOPIC.

Each event is one JSON line whose "lag" maps every partition of TOPIC to the group's lag
as this client's admin API reports it: the latest offset (ListOffsets) minus the committed
offset (ListConsumerGroupOffsets), or null where the group never committed. Records are
written one per batch (tansu 0.6 counts batches in its high watermark). Any failure exits
non-zero with the reason on stderr.
"""

import json
import sys
import threading
import time

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    Consumer,
    IsolationLevel,
    OFFSET_INVALID,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

TIMEOUT_S = 30


def fail(reason):
    print(reason, file=sys.stderr, flush=True)
    sys.exit(1)


def create_topic(admin, topic, partitions):
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic, timeout=5)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and len(found.partitions) == partitions:
            return
        time.sleep(0.1)
    fail(f"topic {topic} never showed {partitions} partitions")


def produce(bootstrap, topic, partition, count):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    for index in range(count):
        producer.produce(topic, value=f"record {index}".encode(), partition=partition, on_delivery=delivered)
        if producer.flush(TIMEOUT_S) != 0:
            fail(f"record {index} to {topic}/{partition} was not delivered in time")
    if failures:
        fail(f"delivery to {topic}/{partition} failed: {failures[0]}")


def consumer(bootstrap, group):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )


def consume(member, count):
    seen = 0
    deadline = time.monotonic() + TIMEOUT_S
    while seen < count:
        if time.monotonic() > deadline:
            fail(f"consumed {seen} of {count} records before the timeout")
        message = member.poll(0.2)
        if message is None:
            continue
        if message.error() is not None:
            fail(f"consume failed: {message.error()}")
        seen += 1
    member.commit(asynchronous=False)


def lag(admin, topic, group):
    """Partition -> latest offset minus committed offset (None when never committed)."""
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S)
    partitions = sorted(metadata.topics[topic].partitions)
    wanted = [TopicPartition(topic, p) for p in partitions]
    committed_future = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=TIMEOUT_S
    )[group]
    committed = {
        tp.partition: tp.offset for tp in committed_future.result(timeout=TIMEOUT_S).topic_partitions
    }
    latest_futures = admin.list_offsets(
        {tp: OffsetSpec.latest() for tp in wanted},
        isolation_level=IsolationLevel.READ_UNCOMMITTED,
        request_timeout=TIMEOUT_S,
    )
    result = {}
    for tp, future in latest_futures.items():
        high = future.result(timeout=TIMEOUT_S).offset
        offset = committed.get(tp.partition, OFFSET_INVALID)
        result[str(tp.partition)] = None if offset < 0 else high - offset
    return dict(sorted(result.items()))


def emit(event, admin, topic, group):
    print(json.dumps({"event": event, "group": group, "topic": topic, "lag": lag(admin, topic, group)}), flush=True)


def caught_up_member(bootstrap, admin, topic, group, partitions):
    """Creates the topic, writes 10 records to partitions 0 and 1, and returns a live
    member of the group that consumed all 20 and committed."""
    create_topic(admin, topic, partitions)
    for partition in (0, 1):
        produce(bootstrap, topic, partition, 10)
    member = consumer(bootstrap, group)
    member.subscribe([topic])
    consume(member, 20)
    return member


def stall(bootstrap, admin, topic, group):
    member = caught_up_member(bootstrap, admin, topic, group, 2)
    member.pause(member.assignment())
    for partition in (0, 1):
        produce(bootstrap, topic, partition, 15)
    close = threading.Event()

    def wait_for_close():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        close.set()

    threading.Thread(target=wait_for_close, daemon=True).start()
    emit("stalled", admin, topic, group)
    while not close.is_set():
        # Stays a live member: polls (returning nothing while paused) and heartbeats.
        message = member.poll(0.2)
        if message is not None and message.error() is None:
            fail("a paused member received a record")
    member.close()
    emit("closed", admin, topic, group)


def closed(bootstrap, admin, topic, group):
    member = caught_up_member(bootstrap, admin, topic, group, 3)
    member.close()
    produce(bootstrap, topic, 0, 5)
    emit("closed", admin, topic, group)


def main():
    if len(sys.argv) != 5 or sys.argv[4] not in ("stall", "closed", "report"):
        fail(__doc__)
    bootstrap, topic, group, mode = sys.argv[1:]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if mode == "stall":
        stall(bootstrap, admin, topic, group)
    elif mode == "closed":
        closed(bootstrap, admin, topic, group)
    else:
        emit("report", admin, topic, group)


if __name__ == "__main__":
    main()
