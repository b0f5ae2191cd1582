//! Shared helpers for the end-to-end tests: temporary databases, free ports, the
//! collector binary, the broker.
