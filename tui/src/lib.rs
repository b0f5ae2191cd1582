//! causeway-tui.

pub mod flow;
pub mod render;
