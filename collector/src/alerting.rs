//! Alerts and the hooks that deliver them: alert state with its lifecycle and fingerprint
//! (`alert`, pure), the Alertmanager v4 payload (`payload`), when each hook hears of each
//! alert (`hook`, pure), and delivery by webhook with an HMAC signature or by command
//! (`hook_webhook`, `hook_exec`, sharing `delivery`), and the `notifier` that ties alert state
//! to the hooks for each alert source (lag rules, flow rules).

pub mod alert;
pub mod delivery;
pub mod hook;
pub mod hook_config;
pub mod hook_exec;
pub mod hook_webhook;
pub mod notifier;
pub mod payload;
