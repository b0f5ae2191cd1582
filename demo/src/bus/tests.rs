//! Unit tests of the embedded bus: offsets, commits, partitions by key, headers, redelivery.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn record(topic: &str, key: Option<&str>, payload: &str) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_owned(),
        key: key.map(|k| k.as_bytes().to_vec()),
        payload: payload.as_bytes().to_vec(),
        headers: Vec::new(),
    }
}

#[test]
fn offsets_grow_by_one_per_partition() {
    let bus = Bus::new();
    bus.create_topic("t", 3).unwrap();
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in 0..30 {
        let (partition, offset) = bus
            .produce(record("t", Some(&format!("k{i}")), "v"))
            .unwrap();
        seen.entry(partition).or_default().push(offset);
    }
    assert_eq!(seen.len(), 3, "30 keys spread over every partition");
    for offsets in seen.values() {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "dense offsets from zero");
    }
}

#[test]
fn same_key_same_partition_and_per_key_order() {
    let bus = Bus::new();
    bus.create_topic("t", 4).unwrap();
    let partitions: Vec<i32> = (0..10)
        .map(|i| {
            bus.produce(record("t", Some("ord-1042"), &i.to_string()))
                .unwrap()
                .0
        })
        .collect();
    assert!(partitions.iter().all(|p| *p == partitions[0]));
    let consumer = bus.subscribe("g", &["t"]).unwrap();
    let payloads: Vec<String> = std::iter::from_fn(|| consumer.poll())
        .map(|r| String::from_utf8(r.payload).unwrap())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected, "one key reads back in produce order");
}

#[test]
fn headers_travel_byte_exact() {
    let bus = Bus::new();
    bus.create_topic("t", 1).unwrap();
    let headers: Headers = vec![
        (
            "traceparent".into(),
            Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec()),
        ),
        ("binary".into(), Some(vec![0, 255, 10, 13, 0x80])),
        ("null-value".into(), None),
        ("dup".into(), Some(b"1".to_vec())),
        ("dup".into(), Some(b"2".to_vec())),
        ("empty".into(), Some(Vec::new())),
    ];
    let mut out = record("t", None, "v");
    out.headers = headers.clone();
    bus.produce(out).unwrap();
    let got = bus.subscribe("g", &["t"]).unwrap().poll().unwrap();
    assert_eq!(
        got.headers, headers,
        "order, duplicates, nulls and bytes kept"
    );
}

#[test]
fn commits_drive_lag_and_next_timestamp() {
    let bus = Bus::new();
    bus.create_topic("t", 1).unwrap();
    for ts in [1_000, 2_000, 3_000] {
        bus.produce_at(record("t", None, "v"), ts).unwrap();
    }
    let consumer = bus.subscribe("g", &["t"]).unwrap();
    let lag = &bus.lag_snapshot()[0];
    assert_eq!((lag.committed_offset, lag.high_watermark), (0, 3));
    assert_eq!(lag.lag_messages(), 3);
    assert_eq!(lag.next_record_timestamp_ms, Some(1_000));

    let first = consumer.poll().unwrap();
    let lag = &bus.lag_snapshot()[0];
    assert_eq!(
        lag.lag_messages(),
        3,
        "reading without commit leaves lag unchanged"
    );
    consumer.commit(&first).unwrap();
    let lag = &bus.lag_snapshot()[0];
    assert_eq!(lag.committed_offset, 1);
    assert_eq!(lag.next_record_timestamp_ms, Some(2_000));

    while let Some(r) = consumer.poll() {
        consumer.commit(&r).unwrap();
    }
    let lag = &bus.lag_snapshot()[0];
    assert_eq!(lag.lag_messages(), 0);
    assert_eq!(lag.next_record_timestamp_ms, None, "nothing waits");
}

#[test]
fn rewind_redelivers_uncommitted_records() {
    let bus = Bus::new();
    bus.create_topic("t", 1).unwrap();
    for i in 0..3 {
        bus.produce(record("t", None, &i.to_string())).unwrap();
    }
    let consumer = bus.subscribe("g", &["t"]).unwrap();
    let first = consumer.poll().unwrap();
    consumer.commit(&first).unwrap();
    let second = consumer.poll().unwrap();
    assert_eq!(second.offset, 1);
    consumer.rewind_to_committed();
    let again = consumer.poll().unwrap();
    assert_eq!(again, second, "the uncommitted record comes back unchanged");
}

#[test]
fn groups_read_independently() {
    let bus = Bus::new();
    bus.create_topic("t", 2).unwrap();
    bus.produce(record("t", Some("a"), "v")).unwrap();
    let one = bus.subscribe("one", &["t"]).unwrap();
    let two = bus.subscribe("two", &["t"]).unwrap();
    let r = one.poll().unwrap();
    one.commit(&r).unwrap();
    assert!(one.poll().is_none());
    assert_eq!(
        two.poll().unwrap(),
        r,
        "a second group still sees the record"
    );
    let committed: Vec<(String, i64)> = bus
        .lag_snapshot()
        .into_iter()
        .filter(|s| s.partition == r.partition)
        .map(|s| (s.group, s.committed_offset))
        .collect();
    assert_eq!(committed, vec![("one".into(), 1), ("two".into(), 0)]);
}

#[test]
fn refusals_name_the_input() {
    let bus = Bus::new();
    assert_eq!(
        bus.produce(record("missing", None, "v")),
        Err(BusError::UnknownTopic {
            topic: "missing".into()
        })
    );
    assert!(matches!(
        bus.create_topic("t", 0),
        Err(BusError::NoPartitions { .. })
    ));
    bus.create_topic("t", 1).unwrap();
    let consumer = bus.subscribe("g", &["t"]).unwrap();
    let error = consumer.commit_offset("t", 5, 1).unwrap_err();
    assert_eq!(error.to_string(), "group g does not read t[5]");
}

#[tokio::test]
async fn recv_wakes_on_produce_and_times_out_when_idle() {
    let bus = Bus::new();
    bus.create_topic("t", 1).unwrap();
    let mut consumer = bus.subscribe("g", &["t"]).unwrap();
    assert!(consumer.recv(Duration::from_millis(20)).await.is_none());
    let producer = bus.clone();
    let task = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        producer.produce(record("t", None, "late")).unwrap();
    });
    let got = consumer.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.payload, b"late");
    task.await.unwrap();
}

proptest::proptest! {
    /// Whatever is produced, in any key order: each key keeps one partition, offsets are
    /// dense from zero, and one group reads every record once, in partition order.
    #[test]
    fn any_produce_sequence_reads_back_exactly_once(
        partitions in 1i32..6,
        keys in proptest::collection::vec(proptest::option::of(0u8..8), 0..60),
    ) {
        let bus = Bus::new();
        bus.create_topic("t", partitions).unwrap();
        let mut partition_of_key: BTreeMap<u8, i32> = BTreeMap::new();
        let mut produced: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (index, key) in keys.iter().enumerate() {
            let key_text = key.map(|k| format!("ord-{k}"));
            let (partition, offset) = bus
                .produce(record("t", key_text.as_deref(), &index.to_string()))
                .unwrap();
            if let Some(key) = key {
                let first = *partition_of_key.entry(*key).or_insert(partition);
                proptest::prop_assert_eq!(first, partition);
            }
            produced.entry(partition).or_default().push(offset);
        }
        for offsets in produced.values() {
            let dense: Vec<i64> = (0..offsets.len() as i64).collect();
            proptest::prop_assert_eq!(offsets, &dense);
        }
        let consumer = bus.subscribe("g", &["t"]).unwrap();
        let mut read: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        while let Some(r) = consumer.poll() {
            consumer.commit(&r).unwrap();
            read.entry(r.partition).or_default().push(r.offset);
        }
        proptest::prop_assert_eq!(read, produced);
        proptest::prop_assert!(bus.lag_snapshot().iter().all(|s| s.lag_messages() == 0));
    }
}
