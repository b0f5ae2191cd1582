//! causeway-tui.
