//! `causeway alerts`: firing, pending and resolved alerts (lag and flow), newest first: a lag
//! alert names the oldest event its group is waiting on, a flow alert the `causeway flow`
//! command for each of the first flows it counted.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, bail};
use causeway_collector::alerting::payload::rfc3339;
use causeway_conventions::alert::annotation;
use causeway_flow::sanitize::clean;
use causeway_storage::{AlertRow, Database};
use serde::Serialize;

use super::flow::open_store;

/// Output formats of `causeway alerts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertsFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `causeway alerts`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Most alerts to list.
    #[arg(long, default_value_t = 100)]
    pub limit: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: AlertsFormat,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    alerts: &'a [AlertRow],
}

/// Runs `causeway alerts`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    if args.limit < 1 {
        bail!("--limit must be at least 1");
    }
    let store = open_store(db).await?;
    let alerts = store
        .alerts(args.limit)
        .await
        .with_context(|| format!("cannot read alerts from {}", db))?;
    let output = match args.format {
        AlertsFormat::Json => {
            let document = Document {
                schema: "causeway.alerts.v1",
                alerts: &alerts,
            };
            let mut text = serde_json::to_string_pretty(&document).context("cannot encode json")?;
            text.push('\n');
            text
        }
        AlertsFormat::Table if alerts.is_empty() => "no alerts\n".to_owned(),
        AlertsFormat::Table => table(&alerts),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the alert list to stdout")?;
    Ok(())
}

fn table(alerts: &[AlertRow]) -> String {
    let mut text = String::new();
    for alert in alerts {
        let note = |key: &str| alert.annotations.get(key).map(|v| clean(v));
        let _ = write!(
            text,
            "{:<8}  {}  since {}",
            alert.status.to_uppercase(),
            clean(&alert.rule),
            rfc3339(alert.starts_ns)
        );
        if let Some(ends_ns) = alert.ends_ns {
            let _ = write!(text, " until {}", rfc3339(ends_ns));
        }
        text.push('\n');
        let labels: Vec<String> = alert
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect();
        let _ = writeln!(
            text,
            "          {}  [{}]",
            labels.join(" "),
            alert.fingerprint
        );
        if let Some(summary) = note(annotation::SUMMARY) {
            let _ = writeln!(text, "          {summary}");
        }
        if let Some(commands) = alert.annotations.get(annotation::FLOW_COMMANDS) {
            for command in commands.lines().filter(|line| !line.is_empty()) {
                let _ = writeln!(text, "          -> {}", clean(command));
            }
        }
        if let Some(correlation) = note(annotation::WAITING_CORRELATION_ID) {
            let _ = writeln!(
                text,
                "          oldest waiting: {correlation} ({}/{} offset {}) -> causeway flow {correlation}",
                note(annotation::WAITING_TOPIC).unwrap_or_default(),
                note(annotation::WAITING_PARTITION).unwrap_or_default(),
                note(annotation::WAITING_OFFSET).unwrap_or_default(),
            );
        } else if let Some(offset) = note(annotation::WAITING_OFFSET) {
            let _ = writeln!(
                text,
                "          oldest waiting: {}/{} offset {offset} (no send span stored)",
                note(annotation::WAITING_TOPIC).unwrap_or_default(),
                note(annotation::WAITING_PARTITION).unwrap_or_default(),
            );
        }
    }
    text
}
