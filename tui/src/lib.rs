//! causeway-tui: the terminal dashboard over the flow model of `causeway-flow`
//! (Action → update → view: `event` is the only input, `data` the only caller of storage
//! and the flow loader, `keymap` maps keys to actions, `state` holds the pure reducer,
//! `views` draw).

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
