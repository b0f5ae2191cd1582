//! causeway-tui.

pub mod flow;
