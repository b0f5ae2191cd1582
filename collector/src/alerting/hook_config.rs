//! Alert hook configuration: the `[[lag.hooks]]` entries as written, and their validated
//! form. Checked with the rest of `[lag]`; a bad hook refuses to start, named.

use std::time::Duration;

use serde::Deserialize;

use crate::duration_text::duration;

/// One `[[lag.hooks]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    /// The hook's name (the Alertmanager `receiver`).
    pub name: Option<String>,
    /// `webhook` or `exec`.
    pub kind: Option<String>,
    /// Webhook: the URL to POST to (plain http; TLS is not built in).
    pub url: Option<String>,
    /// Webhook: the HMAC-SHA256 signing secret.
    pub secret: Option<String>,
    /// Webhook: the environment variable holding the signing secret.
    pub secret_env: Option<String>,
    /// Webhook: attempts after the first (default 3).
    pub retries: Option<u32>,
    /// Exec: the program to run (no shell).
    pub command: Option<String>,
    /// Exec: its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Time limit per attempt (default "10s").
    pub timeout: Option<String>,
    /// Re-notify while firing at this interval (default "4h").
    pub repeat_interval: Option<String>,
    /// The external URL put in payloads (default "http://127.0.0.1").
    pub external_url: Option<String>,
}

/// A validated hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    /// The hook's name.
    pub name: String,
    /// What it runs.
    pub target: HookTarget,
    /// Time limit per attempt.
    pub timeout: Duration,
    /// Re-notify interval while firing.
    pub repeat_interval: Duration,
    /// The external URL put in payloads.
    pub external_url: String,
}

/// Where a hook delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum HookTarget {
    /// POST the Alertmanager-style JSON to a URL.
    Webhook {
        /// The URL.
        url: String,
        /// The HMAC-SHA256 signing secret, when configured.
        secret: Option<String>,
        /// Attempts after the first.
        retries: u32,
    },
    /// Run a program with the JSON on stdin.
    Exec {
        /// The program.
        command: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

pub(crate) fn validate_hook(raw: &RawHook, name: &str) -> Result<HookConfig, String> {
    let timeout =
        duration(raw.timeout.as_deref().unwrap_or("10s")).map_err(|e| format!("timeout: {e}"))?;
    if timeout.is_zero() {
        return Err("timeout must be longer than 0s".into());
    }
    let repeat_interval = duration(raw.repeat_interval.as_deref().unwrap_or("4h"))
        .map_err(|e| format!("repeat_interval: {e}"))?;
    let target = match raw.kind.as_deref() {
        Some("webhook") => {
            let url = raw.url.clone().ok_or("a webhook needs url")?;
            if url.starts_with("https://") {
                return Err(format!(
                    "url {url:?}: https is not built into this collector; point it at a local \
                     relay over http://"
                ));
            }
            if !url.starts_with("http://") {
                return Err(format!("url {url:?} must start with http://"));
            }
            let secret = match (&raw.secret, &raw.secret_env) {
                (Some(_), Some(_)) => return Err("give secret or secret_env, not both".into()),
                (Some(secret), None) => Some(secret.clone()),
                (None, Some(variable)) => Some(std::env::var(variable).map_err(|_| {
                    format!("environment variable {variable} (secret_env) is not set")
                })?),
                (None, None) => None,
            };
            HookTarget::Webhook {
                url,
                secret,
                retries: raw.retries.unwrap_or(3),
            }
        }
        Some("exec") => HookTarget::Exec {
            command: raw
                .command
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or("an exec hook needs command")?,
            args: raw.args.clone(),
        },
        Some(other) => return Err(format!("unknown kind {other:?} (webhook or exec)")),
        None => return Err("kind is missing (webhook or exec)".into()),
    };
    Ok(HookConfig {
        name: name.to_owned(),
        target,
        timeout,
        repeat_interval,
        external_url: raw
            .external_url
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1".into()),
    })
}
