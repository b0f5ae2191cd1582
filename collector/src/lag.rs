//! Consumer lag: the poller that finds consumer groups (`discovery`) and samples their
//! committed offsets (`group_offsets`, `offset_fetch`) and partitions' watermarks from the
//! broker, the pure functions that turn samples into lag
//! (`offset_lag`) and states (`rules`, `evaluate`), their configuration, and the service
//! that runs a cycle every interval and raises alerts.

pub mod config;
pub mod discovery;
pub mod evaluate;
pub mod group_offsets;
pub mod offset_fetch;
pub mod offset_lag;
pub mod poller;
pub mod poller_assignment;
pub mod rules;
pub mod service;
