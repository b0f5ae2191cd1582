//! `causeway lag`: consumer-group lag per partition, in messages and seconds, with the
//! state the collector's lag rules gave it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, bail};
use causeway_conventions::LagState;
use causeway_flow::duration::human_duration;
use causeway_flow::sanitize::clean;
use causeway_storage::{Database, LagStatusRow};
use serde::Serialize;

use super::flow::open_store;

/// Nanoseconds in a millisecond.
const NANOS_PER_MILLI: i64 = 1_000_000;

/// Output formats of `causeway lag`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LagFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `causeway lag`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: LagFormat,
}

/// One group's totals.
#[derive(Debug, Serialize)]
struct GroupSummary {
    consumer_group: String,
    #[serde(serialize_with = "state_name")]
    state: LagState,
    lag: i64,
    max_time_lag_ms: Option<i64>,
    partitions: usize,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    groups: Vec<GroupSummary>,
    partitions: &'a [LagStatusRow],
}

/// Runs `causeway lag`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    let rows = store
        .lag_status()
        .await
        .with_context(|| format!("cannot read lag from {}", db))?;
    if rows.is_empty() {
        bail!(
            "no consumer lag in {} yet (run `causeway collector --kafka BROKERS`, or report \
             kafka.consumer_group.lag over OTLP)",
            db
        );
    }
    let output = match args.format {
        LagFormat::Json => {
            let document = Document {
                schema: "causeway.lag.v1",
                groups: summarise(&rows),
                partitions: &rows,
            };
            let mut text = serde_json::to_string_pretty(&document).context("cannot encode json")?;
            text.push('\n');
            text
        }
        LagFormat::Table => table(&rows),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the lag table to stdout")?;
    Ok(())
}

/// A lag state in JSON as its one text form, as `partitions[].state` is.
fn state_name<S: serde::Serializer>(state: &LagState, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.name())
}

fn summarise(rows: &[LagStatusRow]) -> Vec<GroupSummary> {
    let mut groups: BTreeMap<&str, GroupSummary> = BTreeMap::new();
    for row in rows {
        let group = groups
            .entry(row.consumer_group.as_str())
            .or_insert_with(|| GroupSummary {
                consumer_group: row.consumer_group.clone(),
                state: row.state,
                lag: 0,
                max_time_lag_ms: None,
                partitions: 0,
            });
        group.state = group.state.max(row.state);
        group.lag += row.lag.unwrap_or(0);
        group.max_time_lag_ms = group.max_time_lag_ms.max(row.time_lag_ms);
        group.partitions += 1;
    }
    groups.into_values().collect()
}

fn table(rows: &[LagStatusRow]) -> String {
    let dash = || "-".to_owned();
    let mut cells = vec![
        [
            "GROUP",
            "TOPIC",
            "PART",
            "STATE",
            "COMMITTED",
            "HIGH",
            "LAG",
            "TIME LAG",
            "TREND/S",
            "CATCH UP",
        ]
        .map(str::to_owned),
    ];
    for row in rows {
        cells.push([
            clean(&row.consumer_group).into_owned(),
            clean(&row.topic).into_owned(),
            row.partition.to_string(),
            row.state.name().to_owned(),
            row.committed_offset
                .map_or_else(|| "none".to_owned(), |c| c.to_string()),
            row.high_watermark.map_or_else(dash, |h| h.to_string()),
            row.lag
                .map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
            row.time_lag_ms.map_or_else(dash, |ms| {
                human_duration(ms.saturating_mul(NANOS_PER_MILLI))
            }),
            row.rate_per_s.map_or_else(dash, |r| format!("{r:+.1}")),
            row.catch_up_ms.map_or_else(dash, |ms| {
                human_duration(ms.saturating_mul(NANOS_PER_MILLI))
            }),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|column| {
            cells
                .iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in &cells {
        let mut line = String::new();
        for (column, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[column]);
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn row(group: &str, partition: i32, state: LagState, lag: Option<i64>) -> LagStatusRow {
        LagStatusRow {
            consumer_group: group.into(),
            topic: "orders".into(),
            partition,
            state,
            committed_offset: lag.map(|l| 10 - l),
            high_watermark: Some(10),
            lag,
            time_lag_ms: lag.map(|l| l * 1_000),
            rate_per_s: None,
            catch_up_ms: None,
            updated_ns: 0,
        }
    }

    #[test]
    fn groups_take_the_worst_state_and_sum_lag() {
        let rows = [
            row("billing", 0, LagState::Ok, Some(1)),
            row("billing", 1, LagState::Stall, Some(4)),
            row("ship", 0, LagState::Unknown, None),
        ];
        let groups = summarise(&rows);
        assert_eq!(groups[0].state, LagState::Stall);
        assert_eq!(groups[0].lag, 5);
        assert_eq!(groups[0].max_time_lag_ms, Some(4_000));
        assert_eq!(groups[1].state, LagState::Unknown);
    }

    #[test]
    fn table_says_unknown_rather_than_zero_and_strips_control_characters() {
        let text = table(&[row("bill\x1b[2Jing", 0, LagState::Unknown, None)]);
        assert!(text.contains("unknown"), "{text}");
        assert!(text.contains("none"), "{text}");
        assert!(!text.contains('\x1b'), "{text}");
    }
}
