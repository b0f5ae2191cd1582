//! Flow rules: alerts on what the flows themselves show (a dead letter, a failed span, a
//! compensation, an event an expected group has not processed in time, a lost trace
//! context). Their configuration (`config`), the pure evaluation of a chunk of new spans
//! (`evaluate`), what each alert has counted (`subjects`), the index of stored due items
//! a chunk's consumptions are matched against (`stored_items`) and the starts of recent
//! sends they are found by (`recent_sends`), and the service that runs a pass every
//! interval over the spans written since the last one (`service`). Alerts go through
//! [`crate::alerting`], as lag alerts do.

pub mod config;
pub mod evaluate;
pub mod recent_sends;
pub mod service;
pub mod stored_items;
pub mod subjects;
