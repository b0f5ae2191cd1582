//! causeway-instrumentation.
