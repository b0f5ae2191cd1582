//! The faults the demo injects, when it injects them, and the config file that says so.
//!
//! A [`FaultSchedule`] is pure: given the time since the start it hands out the faults that
//! are due, once each. The shop applies them to the next order (or, for a slow consumer,
//! to a consumer group for a while) and records each as an [`InjectedFault`].

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A failure the demo can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// The card is declined: payment fails, stock is released, the order is cancelled.
    DeclinedPayment,
    /// An order whose payload nobody can parse: retries, then the dead-letter topic.
    PoisonMessage,
    /// The producer retries a send that had succeeded: the same event arrives twice.
    DuplicateDelivery,
    /// One consumer group slows down: lag builds, an alert fires, then it recovers.
    SlowConsumer,
    /// The shipping service re-publishes without `traceparent`.
    DroppedTraceparent,
    /// The order service moves to `order.placed.v2`; a bridge translates back to v1.
    SchemaBump,
}

impl FaultKind {
    /// Every fault, in the order the default schedule injects them.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::DeclinedPayment,
        FaultKind::SlowConsumer,
        FaultKind::PoisonMessage,
        FaultKind::DuplicateDelivery,
        FaultKind::DroppedTraceparent,
        FaultKind::SchemaBump,
    ];

    /// The name used in flags, config files and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::DeclinedPayment => "declined-payment",
            FaultKind::PoisonMessage => "poison-message",
            FaultKind::DuplicateDelivery => "duplicate-delivery",
            FaultKind::SlowConsumer => "slow-consumer",
            FaultKind::DroppedTraceparent => "dropped-traceparent",
            FaultKind::SchemaBump => "schema-bump",
        }
    }

    /// Parses a fault name as [`FaultKind::as_str`] writes it.
    pub fn parse(name: &str) -> Result<FaultKind, FaultConfigError> {
        FaultKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name.trim())
            .ok_or_else(|| FaultConfigError::UnknownKind {
                name: name.to_owned(),
            })
    }
}

/// The consumer group slowed down when a schedule does not name one.
pub const DEFAULT_SLOW_GROUP: &str = "notification";
/// How long a handler of a slowed group takes per message, by default.
pub const DEFAULT_SLOW_DELAY: Duration = Duration::from_millis(400);

/// A fault and when to inject it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFault {
    /// The fault.
    pub kind: FaultKind,
    /// Time after the start of the demo.
    pub at: Duration,
    /// For a slow consumer: the group to slow down.
    pub group: String,
    /// For a slow consumer: how long it stays slow.
    pub duration: Duration,
    /// For a slow consumer: time spent on each message.
    pub delay: Duration,
}

impl ScheduledFault {
    /// `kind` at `at`, with the default slow-consumer settings.
    pub fn new(kind: FaultKind, at: Duration) -> ScheduledFault {
        ScheduledFault {
            kind,
            at,
            group: DEFAULT_SLOW_GROUP.to_owned(),
            duration: Duration::from_secs(8),
            delay: DEFAULT_SLOW_DELAY,
        }
    }
}

/// A fault as it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InjectedFault {
    /// The fault.
    pub kind: FaultKind,
    /// The order it was applied to (none for a slow consumer).
    pub correlation_id: Option<String>,
    /// The consumer group it was applied to (slow consumer only).
    pub group: Option<String>,
    /// Milliseconds after the start of the demo.
    pub at_ms: u64,
}

/// What a config file or flag can get wrong.
#[derive(Debug, thiserror::Error)]
pub enum FaultConfigError {
    /// The file could not be read.
    #[error("cannot read demo config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid demo config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A fault name that does not exist.
    #[error(
        "unknown fault {name:?} (known: declined-payment, poison-message, duplicate-delivery, slow-consumer, dropped-traceparent, schema-bump)"
    )]
    UnknownKind {
        /// The name given.
        name: String,
    },
    /// A duration that does not parse.
    #[error("invalid duration {value:?} for {field}: {message}")]
    Duration {
        /// Which setting.
        field: String,
        /// The value given.
        value: String,
        /// What the parser said.
        message: String,
    },
    /// An order rate that is not a positive number.
    #[error("invalid order rate {rate}: must be above 0 and at most 1000 per second")]
    Rate {
        /// The rate given.
        rate: f64,
    },
}

/// The demo's settings from a TOML file: order rate and fault schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoConfig {
    /// Orders per second, if the file sets it.
    pub rate: Option<f64>,
    /// Faults to inject; `None` keeps the default schedule.
    pub faults: Option<Vec<ScheduledFault>>,
    /// `[[hooks]]`: where the demo's alerts go, as the collector's `[[lag.hooks]]` entries
    /// are written (checked by the collector, which knows their keys).
    pub hooks: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    rate: Option<f64>,
    faults: Option<Vec<RawFault>>,
    #[serde(default)]
    hooks: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    kind: String,
    at: String,
    group: Option<String>,
    #[serde(rename = "for")]
    duration: Option<String>,
    delay: Option<String>,
}

impl DemoConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<DemoConfig, FaultConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| FaultConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        DemoConfig::parse(&text).map_err(|error| match error {
            FaultConfigError::Parse { message, .. } => FaultConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses config text (the path in errors reads `<text>`).
    pub fn parse(text: &str) -> Result<DemoConfig, FaultConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|error| FaultConfigError::Parse {
            path: "<text>".to_owned(),
            message: error.message().to_owned(),
        })?;
        if let Some(rate) = raw.rate {
            check_rate(rate)?;
        }
        let faults = raw
            .faults
            .map(|faults| faults.into_iter().map(RawFault::resolve).collect())
            .transpose()?;
        Ok(DemoConfig {
            rate: raw.rate,
            faults,
            hooks: raw.hooks,
        })
    }
}

impl RawFault {
    fn resolve(self) -> Result<ScheduledFault, FaultConfigError> {
        let mut fault =
            ScheduledFault::new(FaultKind::parse(&self.kind)?, duration("at", &self.at)?);
        if let Some(group) = self.group {
            fault.group = group;
        }
        if let Some(value) = self.duration {
            fault.duration = duration("for", &value)?;
        }
        if let Some(value) = self.delay {
            fault.delay = duration("delay", &value)?;
        }
        Ok(fault)
    }
}

/// Checks an order rate: positive, finite, at most 1000 a second.
pub fn check_rate(rate: f64) -> Result<f64, FaultConfigError> {
    if rate.is_finite() && rate > 0.0 && rate <= 1000.0 {
        Ok(rate)
    } else {
        Err(FaultConfigError::Rate { rate })
    }
}

fn duration(field: &str, value: &str) -> Result<Duration, FaultConfigError> {
    humantime::parse_duration(value.trim()).map_err(|error| FaultConfigError::Duration {
        field: field.to_owned(),
        value: value.to_owned(),
        message: error.to_string(),
    })
}

/// Parses a `--fault KIND[@AT]` flag, such as `poison-message@5s`.
pub fn parse_fault_flag(flag: &str) -> Result<ScheduledFault, FaultConfigError> {
    match flag.split_once('@') {
        Some((kind, at)) => Ok(ScheduledFault::new(
            FaultKind::parse(kind)?,
            duration("at", at)?,
        )),
        None => Ok(ScheduledFault::new(FaultKind::parse(flag)?, Duration::ZERO)),
    }
}

/// The default schedule for a run of `run` (a minute when the run has no end): every
/// fault once, in the first half, the slow consumer early enough to recover before the end.
pub fn default_schedule(run: Duration) -> Vec<ScheduledFault> {
    let step = run / 14;
    FaultKind::ALL
        .into_iter()
        .enumerate()
        .map(|(index, kind)| {
            let mut fault = ScheduledFault::new(kind, step * (index as u32 + 1));
            if kind == FaultKind::SlowConsumer {
                fault.duration = step * 4;
            }
            fault
        })
        .collect()
}

/// Hands out scheduled faults as they fall due, each once.
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    pending: Vec<ScheduledFault>,
}

impl FaultSchedule {
    /// A schedule of `faults`, in any order.
    pub fn new(mut faults: Vec<ScheduledFault>) -> FaultSchedule {
        faults.sort_by_key(|f| f.at);
        FaultSchedule { pending: faults }
    }

    /// The faults due at `elapsed` that were not handed out before, earliest first.
    pub fn due(&mut self, elapsed: Duration) -> Vec<ScheduledFault> {
        let split = self.pending.partition_point(|f| f.at <= elapsed);
        self.pending.drain(..split).collect()
    }

    /// Faults still to come.
    pub fn remaining(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests;
