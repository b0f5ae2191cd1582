//! causeway-demo: a simulated shop of event-driven services (order, inventory, payment,
//! shipping, notification) with injectable faults, running over an embedded bus or a real
//! Kafka broker.

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
