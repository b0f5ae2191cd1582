//! `causeway flow`: rebuilds one event flow by correlation ID or trace ID and prints it as
//! text, JSON, dot or mermaid.

use std::io::Write;

use anyhow::{Context, bail};
use causeway_flow::render::{self, Format};
use causeway_flow::{FlowOptions, load_flow};
use causeway_storage::{Database, Store};

/// Output formats of `causeway flow`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowFormat {
    /// A readable tree with timings and anomaly markers.
    #[default]
    Text,
    /// One JSON document (docs/FLOW-JSON.md).
    Json,
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

impl From<FlowFormat> for Format {
    fn from(format: FlowFormat) -> Format {
        match format {
            FlowFormat::Text => Format::Text,
            FlowFormat::Json => Format::Json,
            FlowFormat::Dot => Format::Dot,
            FlowFormat::Mermaid => Format::Mermaid,
        }
    }
}

/// Arguments of `causeway flow`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// A correlation ID, or a trace ID (32 hex digits).
    pub id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: FlowFormat,
    /// Extra compensation and dead-letter patterns.
    #[command(flatten)]
    pub patterns: PatternArgs,
}

/// Compensation and dead-letter patterns given on the command line (`flow`, `flows` and
/// `tui`). They add to the built-in defaults (docs/FLOWS.md), never replace them.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct PatternArgs {
    /// Also treat event types matching PATTERN as compensations (`*` matches any run of
    /// characters; repeatable; adds to the defaults).
    #[arg(long = "compensation", value_name = "PATTERN", value_parser = parse_pattern)]
    pub compensations: Vec<String>,
    /// Also treat topics matching PATTERN as dead-letter topics (`*` wildcards, any case;
    /// repeatable; adds to the defaults).
    #[arg(long = "dead-letter", value_name = "PATTERN", value_parser = parse_pattern)]
    pub dead_letters: Vec<String>,
    /// Also read a correlation ID from span attribute KEY where the collector stored none
    /// (spans that arrived before its `[flows] correlation_keys` named KEY). `flow ID`
    /// then also finds ID under KEY among the newest 200,000 spans (repeatable).
    #[arg(long = "correlation-key", value_name = "KEY", value_parser = parse_key)]
    pub correlation_keys: Vec<String>,
}

impl PatternArgs {
    /// The reconstruction options: the defaults plus these patterns.
    pub fn options(&self) -> FlowOptions {
        let mut options =
            FlowOptions::with_extra_patterns(self.compensations.clone(), self.dead_letters.clone());
        options.correlation_keys = self.correlation_keys.clone();
        options
    }
}

/// Accepts a `*` glob; an empty (or blank) pattern or one with control characters is an
/// error rather than a pattern that silently matches nothing useful.
fn parse_pattern(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("a pattern must not be empty (example: `*.voided.*`)".to_owned());
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "a pattern must not contain control characters: {text:?}"
        ));
    }
    Ok(text.to_owned())
}

/// Accepts an attribute key: not blank, no control characters and no `"`.
fn parse_key(text: &str) -> Result<String, String> {
    if text.trim().is_empty() || text.chars().any(|c| c.is_control() || c == '"') {
        return Err(format!(
            "an attribute key must be non-blank, without control characters or quotes: {text:?}"
        ));
    }
    Ok(text.to_owned())
}

/// Runs `causeway flow`.
pub async fn run(args: Args, db: &Database) -> anyhow::Result<()> {
    let store = open_store(db).await?;
    let (_, flow) = load_flow(&store, &args.id, &args.patterns.options())
        .await
        .with_context(|| format!("cannot read flow {} from {}", args.id, db))?
        .with_context(|| format!("no spans found for {} in {}", args.id, db))?;
    let output = render::render(&flow, args.format.into());
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the flow to stdout")?;
    Ok(())
}

/// Opens `db` read-only and checks that it holds causeway's schema.
pub async fn open_store(db: &Database) -> anyhow::Result<Store> {
    let store = Store::open_read_only(db).await?;
    if !store
        .has_schema()
        .await
        .with_context(|| format!("cannot read database {}", db))?
    {
        bail!(
            "database {} has no causeway schema (has a collector written to it?)",
            db
        );
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_validated() {
        let cases = [
            ("*.voided.*", true, "a glob"),
            ("order.voided", true, "a literal"),
            ("", false, "empty"),
            ("  ", false, "blank"),
            ("a\u{1b}b", false, "a control character"),
        ];
        for (pattern, valid, reason) in cases {
            assert_eq!(parse_pattern(pattern).is_ok(), valid, "{reason}");
        }
    }
}
