//! causeway-demo.
