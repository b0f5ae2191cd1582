//! One module per subcommand: argument parsing and wiring, no logic of their own.

pub mod alerts;
pub mod collector;
pub mod demo;
pub mod flow;
pub mod flows;
pub mod lag;
pub mod tui;
