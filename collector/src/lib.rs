//! causeway-collector.
