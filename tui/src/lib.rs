//! causeway-tui: the flow model and its renderers, and the terminal dashboard built on
//! them (Action → update → view: `event` is the only input, `data` the only caller of
//! storage, `keymap` maps keys to actions, `state` holds the pure reducer, `views` draw).

pub mod flow;
pub mod render;

pub mod app;
pub mod data;
pub mod error;
pub mod event;
pub mod keymap;
pub mod model;
pub mod sanitize;
pub mod state;
pub mod theme;
pub mod views;

pub use app::{RunOptions, open_store, run};
pub use error::TuiError;
