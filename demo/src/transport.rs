//! Where the shop's records travel: the embedded [`Bus`] or a real Kafka broker. Both
//! hand over records with the same fields and headers, so the services and the
//! instrumentation run unchanged on either.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use causeway_instrumentation::Headers;
use causeway_instrumentation::kafka_headers::{from_kafka, to_kafka};

use crate::bus::{Bus, BusError, BusRecord, GroupConsumer, OutgoingRecord, now_ms};

/// How long creating the shop's topics may take before the broker counts as unreachable.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a send to Kafka may wait in the client before it fails.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What moving records can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The embedded bus refused.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The Kafka client failed.
    #[error("kafka {operation} failed: {cause}")]
    Kafka {
        /// What was being done, naming the topic, group or brokers.
        operation: String,
        /// The client's error.
        cause: KafkaError,
    },
}

fn kafka(operation: impl Into<String>) -> impl FnOnce(KafkaError) -> TransportError {
    let operation = operation.into();
    move |cause| TransportError::Kafka { operation, cause }
}

/// The shop's connection to its bus.
#[derive(Clone)]
pub enum Transport {
    /// The in-process bus.
    Embedded(Bus),
    /// A Kafka broker at these bootstrap servers.
    Kafka {
        /// `bootstrap.servers`.
        brokers: String,
        /// One producer shared by every service.
        producer: FutureProducer,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Embedded(_) => f.write_str("Transport::Embedded"),
            Transport::Kafka { brokers, .. } => write!(f, "Transport::Kafka({brokers})"),
        }
    }
}

impl Transport {
    /// A transport over a Kafka broker. One record per batch, so that brokers that count
    /// batches in their watermarks (tansu) still report lag in records.
    pub fn kafka(brokers: &str) -> Result<Transport, TransportError> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .set("message.timeout.ms", "10000")
            .create()
            .map_err(kafka(format!("producer set-up for {brokers}")))?;
        Ok(Transport::Kafka {
            brokers: brokers.to_owned(),
            producer,
        })
    }

    /// Creates `topics` (name, partitions); topics that exist already are kept.
    pub async fn create_topics(&self, topics: &[(&str, i32)]) -> Result<(), TransportError> {
        match self {
            Transport::Embedded(bus) => {
                for (topic, partitions) in topics {
                    bus.create_topic(topic, *partitions)?;
                }
                Ok(())
            }
            Transport::Kafka { brokers, .. } => {
                let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .create()
                    .map_err(kafka(format!("admin set-up for {brokers}")))?;
                let new_topics: Vec<NewTopic<'_>> = topics
                    .iter()
                    .map(|(name, partitions)| {
                        NewTopic::new(name, *partitions, TopicReplication::Fixed(1))
                    })
                    .collect();
                let options = AdminOptions::new()
                    .request_timeout(Some(ADMIN_TIMEOUT))
                    .operation_timeout(Some(ADMIN_TIMEOUT));
                let results = admin
                    .create_topics(&new_topics, &options)
                    .await
                    .map_err(kafka(format!("create topics on {brokers}")))?;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => {
                            return Err(TransportError::Kafka {
                                operation: format!("create topic {topic} on {brokers}"),
                                cause: KafkaError::AdminOp(code),
                            });
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Sends one record and returns the `(partition, offset)` it got.
    pub async fn send(&self, record: &OutgoingRecord) -> Result<(i32, i64), TransportError> {
        match self {
            Transport::Embedded(bus) => Ok(bus.produce(record.clone())?),
            Transport::Kafka { producer, .. } => {
                let headers = to_kafka(&Headers::from_entries(record.headers.clone()));
                let mut future = FutureRecord::to(&record.topic)
                    .payload(&record.payload)
                    .headers(headers)
                    .timestamp(now_ms());
                if let Some(key) = &record.key {
                    future = future.key(key);
                }
                let delivery =
                    producer
                        .send(future, SEND_TIMEOUT)
                        .await
                        .map_err(|(cause, _)| TransportError::Kafka {
                            operation: format!("send to {}", record.topic),
                            cause,
                        })?;
                Ok((delivery.partition, delivery.offset))
            }
        }
    }

    /// Joins `group` to `topics`, reading from the earliest offset without a commit.
    pub fn subscribe(&self, group: &str, topics: &[&str]) -> Result<ShopConsumer, TransportError> {
        match self {
            Transport::Embedded(bus) => Ok(ShopConsumer::Embedded(bus.subscribe(group, topics)?)),
            Transport::Kafka { brokers, .. } => {
                let consumer: StreamConsumer = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("session.timeout.ms", "10000")
                    .create()
                    .map_err(kafka(format!("consumer set-up for group {group}")))?;
                consumer.subscribe(topics).map_err(kafka(format!(
                    "subscribe group {group} to {}",
                    topics.join(",")
                )))?;
                Ok(ShopConsumer::Kafka {
                    group: group.to_owned(),
                    consumer: Box::new(consumer),
                })
            }
        }
    }
}

/// One consumer-group member of one service.
pub enum ShopConsumer {
    /// On the embedded bus.
    Embedded(GroupConsumer),
    /// On Kafka.
    Kafka {
        /// The group.
        group: String,
        /// The client.
        consumer: Box<StreamConsumer>,
    },
}

impl ShopConsumer {
    /// Waits up to `timeout` for the next record.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Option<BusRecord>, TransportError> {
        match self {
            ShopConsumer::Embedded(consumer) => Ok(consumer.recv(timeout).await),
            ShopConsumer::Kafka { group, consumer } => {
                let message = match tokio::time::timeout(timeout, consumer.recv()).await {
                    Err(_) => return Ok(None),
                    Ok(result) => result.map_err(kafka(format!("receive for group {group}")))?,
                };
                let headers = from_kafka(message.headers()).into_entries();
                Ok(Some(BusRecord {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                    timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
                }))
            }
        }
    }

    /// Commits `record`: the group will next read the offset after it.
    pub fn commit(&self, record: &BusRecord) -> Result<(), TransportError> {
        match self {
            ShopConsumer::Embedded(consumer) => Ok(consumer.commit(record)?),
            ShopConsumer::Kafka { group, consumer } => {
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(
                    &record.topic,
                    record.partition,
                    Offset::Offset(record.offset + 1),
                )
                .map_err(kafka(format!("commit for group {group}")))?;
                consumer
                    .commit(&list, CommitMode::Async)
                    .map_err(kafka(format!("commit for group {group}")))
            }
        }
    }
}
