//! `causeway flows`: recent event flows, one row per correlation ID (or, for a flow that
//! carries none, per first trace), newest first.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use causeway_flow::duration::human_duration;
use causeway_flow::sanitize::clean;
use causeway_flow::{
    FlowFilter, FlowSummary, load_listed, load_topology, parse_attribute_filter, reconstruct,
};
use causeway_storage::{CorrelationQuery, Database, Store, now_ns};
use serde::Serialize;

use super::flow::{PatternArgs, open_store};

/// Rows read per page of correlations.
const PAGE: i64 = 200;

/// Output formats of `causeway flows`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowsFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `causeway flows`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Only flows that started within this long (e.g. `15m`, `1h`, `2d`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only flows in which this service took part.
    #[arg(long)]
    pub service: Option<String>,
    /// Only flows with an event of this type (`*` wildcards allowed).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only flows with an error.
    #[arg(long)]
    pub errors: bool,
    /// Only flows with a fault (an error not recovered from, a dead letter, a compensation,
    /// a missing group, a lost trace context, a duplicate or out-of-order processing, a
    /// conflicting schema change), not only facts.
    #[arg(long)]
    pub faults: bool,
    /// Only flows with a span attribute of this value (`key=value`, repeatable), searched in
    /// at most 500,000 spans: the newest, and older runs of spans whose attribute filter
    /// may hold the value (on PostgreSQL, the newest).
    #[arg(long = "where", value_name = "KEY=VALUE", value_parser = parse_where)]
    pub filters: Vec<(String, String)>,
    /// Most flows to list.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FlowsFormat,
    /// Extra compensation and dead-letter patterns.
    #[command(flatten)]
    pub patterns: PatternArgs,
}

fn parse_where(term: &str) -> Result<(String, String), String> {
    parse_attribute_filter(term).ok_or_else(|| format!("expected KEY=VALUE, got {term:?}"))
}

#[derive(Serialize)]
struct Document {
    schema: &'static str,
    flows: Vec<FlowSummary>,
}

/// Runs `causeway flows`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    let summaries = list(&store, &args).await?;
    let output = match args.format {
        FlowsFormat::Json => {
            let document = Document {
                schema: "causeway.flows.v1",
                flows: summaries,
            };
            let mut text = serde_json::to_string_pretty(&document).context("cannot encode json")?;
            text.push('\n');
            text
        }
        FlowsFormat::Table => table(&summaries),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the flow list to stdout")?;
    Ok(())
}

/// Reads correlations newest first, page by page, rebuilding each flow for its summary,
/// until `limit` pass the filters or a bounded number of rows has been scanned.
async fn list(store: &Store, args: &Args) -> anyhow::Result<Vec<FlowSummary>> {
    if args.limit == 0 {
        bail!("--limit must be at least 1");
    }
    let scan_cap = args.limit.saturating_mul(20).max(2_000);
    let topology = load_topology(store).await.context("cannot read topology")?;
    let lister = Lister {
        store,
        args,
        scan_cap,
        topology,
        filter: FlowFilter {
            service: args.service.clone(),
            event_type: args.event_type.clone(),
            errors_only: args.errors,
            faults_only: args.faults,
            attributes: args.filters.clone(),
        },
    };
    let mut checked = HashMap::new();
    if args.filters.is_empty() {
        return lister.list_among(None, &mut checked).await;
    }
    // `--where` first narrows the list to the flows of the spans that carry the values
    // (`correlations_with_attributes`, a bounded search); each flow is still checked
    // exactly. It asks for twice the list's length, and four times more each time too few
    // of those flows pass the other filters, up to the scan cap.
    let mut asked = args.limit.saturating_mul(2).min(scan_cap);
    loop {
        let ids = store
            .correlations_with_attributes(&args.filters, i64::try_from(asked).unwrap_or(i64::MAX))
            .await
            .context("cannot search span attributes")?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = ids.len();
        let summaries = lister.list_among(Some(ids), &mut checked).await?;
        if summaries.len() >= args.limit || found < asked || asked >= scan_cap {
            return Ok(summaries);
        }
        asked = asked.saturating_mul(4).min(scan_cap);
    }
}

/// What listing needs, shared by the rounds of a `--where` search.
struct Lister<'a> {
    store: &'a Store,
    args: &'a Args,
    scan_cap: usize,
    topology: causeway_flow::Topology,
    filter: FlowFilter,
}

impl Lister<'_> {
    /// Lists the flows among `correlation_ids` (all when `None`), newest first. `checked`
    /// keeps each flow's verdict across rounds, so no flow is rebuilt twice.
    async fn list_among(
        &self,
        correlation_ids: Option<Vec<String>>,
        checked: &mut HashMap<String, Option<FlowSummary>>,
    ) -> anyhow::Result<Vec<FlowSummary>> {
        let args = self.args;
        let options = args.patterns.options();
        let mut query = CorrelationQuery {
            since_ns: args
                .since
                .map(|since| now_ns().saturating_sub(nanos(since))),
            before: None,
            service: args.service.clone(),
            event_type: args.event_type.clone(),
            errors_only: args.errors,
            correlation_ids,
            limit: PAGE,
        };
        let mut summaries = Vec::new();
        let mut scanned = 0;
        while summaries.len() < args.limit && scanned < self.scan_cap {
            let rows = self
                .store
                .recent_flows(&query)
                .await
                .context("cannot list flows")?;
            let Some(last) = rows.last() else { break };
            query.before = Some((last.first_start_ns, last.correlation_id.clone()));
            scanned += rows.len();
            for row in rows {
                if let Some(verdict) = checked.get(&row.correlation_id) {
                    summaries.extend(verdict.clone());
                } else {
                    let verdict = match load_listed(self.store, &row)
                        .await
                        .with_context(|| format!("cannot read flow {}", row.correlation_id))?
                    {
                        Some(loaded) => {
                            let spans = loaded.spans;
                            let flow = reconstruct(&spans, &self.topology, &options);
                            self.filter
                                .matches(&flow, &spans)
                                .then(|| FlowSummary::of(&row.correlation_id, &flow))
                        }
                        None => None,
                    };
                    summaries.extend(verdict.clone());
                    checked.insert(row.correlation_id.clone(), verdict);
                }
                if summaries.len() == args.limit {
                    break;
                }
            }
        }
        Ok(summaries)
    }
}

fn table(summaries: &[FlowSummary]) -> String {
    let mut out = format!(
        "{:<20} {:>10} {:<10} {:>6} {:>6}  {:<24} {:<24} {:<30} {}\n",
        "START",
        "DURATION",
        "STATUS",
        "EVENTS",
        "SPANS",
        "FAULTS",
        "FACTS",
        "SERVICES",
        "CORRELATION"
    );
    for summary in summaries {
        let services: Vec<String> = summary
            .services
            .iter()
            .map(|s| clean(s).into_owned())
            .collect();
        let _ = writeln!(
            out,
            "{:<20} {:>10} {:<10} {:>6} {:>6}  {:<24} {:<24} {:<30} {}",
            start_time(summary.start_ns),
            human_duration(summary.duration_ns),
            serde_kind(&summary.status),
            summary.event_count,
            summary.span_count,
            counts(&summary.faults),
            counts(&summary.facts),
            services.join(","),
            clean(&summary.correlation_id)
        );
    }
    if summaries.is_empty() {
        out.push_str("(no flows)\n");
    }
    out
}

/// `kind:count,kind:count`, or `-` for none.
fn counts(by_kind: &std::collections::BTreeMap<causeway_flow::AnomalyKind, usize>) -> String {
    if by_kind.is_empty() {
        return "-".to_owned();
    }
    by_kind
        .iter()
        .map(|(kind, count)| format!("{}:{count}", serde_kind(kind)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The snake_case name serde gives a unit variant.
fn serde_kind<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "?".to_owned(),
    }
}

fn start_time(ns: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn help_states_how_far_where_looks() {
        use clap::Args as _;
        let mut command = Args::augment_args(clap::Command::new("flows"));
        let help = command.render_long_help().to_string();
        let newest = causeway_storage::ATTRIBUTE_SCAN_SPANS
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|digits| String::from_utf8_lossy(digits).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        assert!(help.contains(&format!("at most {newest} spans")), "{help}");
    }
}
