//! Flow rules: alerts on what the flows themselves show (a dead letter, a failed span, a
//! compensation, an event an expected group has not processed in time, a lost trace
//! context). Their configuration (`config`), the pure evaluation of a chunk of new spans
//! (`evaluate`), what each alert has counted (`subjects`), the due items of a pass not
//! written yet (`held_items`), the index a chunk's consumptions find due items by
//! (`item_index`), the starts of recent sends stored items are found by (`recent_sends`),
//! and the service that runs a pass every interval over the spans written since the last
//! one (`service`). Alerts go through [`crate::alerting`], as lag alerts do.

pub mod config;
pub mod evaluate;
pub mod held_items;
pub mod item_index;
pub mod recent_sends;
pub mod service;
pub mod subjects;
