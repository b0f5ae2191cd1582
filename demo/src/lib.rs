//! causeway-demo: a simulated shop of event-driven services (order, inventory, payment,
//! shipping, notification) with injectable faults, running over an embedded bus or a real
//! Kafka broker.
//!
//! Pure parts: [`catalog`] (names), [`handlers`] (what each service does with an event),
//! [`faults`] (kinds, schedule, config file), [`verdict`] (was each fault found?) and the
//! [`bus`] itself. IO shells: [`runner`] (consume, spans, retries, dead letters),
//! [`transport`] (bus or Kafka), [`telemetry`] (OTLP per service) and [`shop`].
//!
//! ```
//! use causeway_demo::bus::{Bus, OutgoingRecord};
//!
//! let bus = Bus::new();
//! bus.create_topic("orders", 3)?;
//! let record = OutgoingRecord {
//!     topic: "orders".into(),
//!     key: Some(b"ord-1042".to_vec()),
//!     payload: b"{}".to_vec(),
//!     headers: vec![("correlation-id".into(), Some(b"ord-1042".to_vec()))],
//! };
//! let (partition, offset) = bus.produce(record)?;
//! let consumer = bus.subscribe("inventory", &["orders"])?;
//! let received = consumer.poll().expect("one record waits");
//! assert_eq!((received.partition, received.offset), (partition, offset));
//! consumer.commit(&received)?;
//! assert!(bus.lag_snapshot().iter().all(|lag| lag.lag_messages() == 0));
//! # Ok::<(), causeway_demo::bus::BusError>(())
//! ```

pub mod board;
pub mod bus;
pub mod catalog;
pub mod faults;
pub mod handlers;
pub mod partitioner;
pub mod runner;
pub mod shop;
pub mod telemetry;
pub mod transport;
pub mod verdict;
