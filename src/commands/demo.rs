//! `causeway demo`: the simulated shop, the collector and the dashboard in one process.
//!
//! The collector listens on loopback (4317/4318, or free ports when those are taken), the
//! shop's services export their spans to it over real OTLP, lag is sampled from the bus
//! (or polled from the broker with `--kafka`) and evaluated by the lag rules, and the
//! collector's flow rules raise alerts on dead letters and late groups. Alerts go to the
//! config file's `[[hooks]]`. Headless, it prints a summary and fails when an injected fault
//! was not found.

mod flow_rules;
mod lag_feed;
mod summary;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use causeway_collector::alerting::alert::AlertStatus;
use causeway_collector::alerting::hook_config::RawHook;
use causeway_collector::{Collector, CollectorConfig, CollectorError, RunningCollector};
use causeway_demo::bus::Bus;
use causeway_demo::faults::{
    DemoConfig, ScheduledFault, check_rate, default_schedule, parse_fault_flag,
};
use causeway_demo::shop::{self, ShopConfig};
use causeway_demo::telemetry::ShopTelemetry;
use causeway_demo::transport::Transport;
use causeway_flow::sanitize::clean;
use causeway_storage::{Database, DatabaseOwner, Store, WriterLock, database_owner};

use lag_feed::LagFeed;

/// Orders per second unless `--rate` or the config file says otherwise.
const DEFAULT_RATE: f64 = 5.0;
/// Length of the fault schedule when the run has no set end (the dashboard).
const INTERACTIVE_SCHEDULE: Duration = Duration::from_secs(60);
/// After the last order, how long the services must be idle to count as drained.
const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// After the last order, the longest wait for the services to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// After draining, the longest wait for firing alerts to resolve.
const RESOLUTION_LIMIT: Duration = Duration::from_secs(15);

/// Output formats of the headless summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Arguments of `causeway demo`.
#[derive(Debug, Default, clap::Args)]
#[command(
    after_help = "The demo starts on a fresh database: the --db file (and its -wal and -shm \
files) is deleted and recreated. Only a database the demo created itself is ever replaced: \
a collector's database or any other file is refused. Use a dedicated path such as --db demo.db. See docs/DEMO.md for faults and the config file."
)]
pub struct Args {
    /// Run the shop over this Kafka cluster (`host:port,...`) instead of the embedded bus.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// No dashboard: run for --duration, print a summary, exit non-zero if a fault was missed.
    #[arg(long)]
    pub headless: bool,
    /// How long a headless run lasts (`20s`, `2m`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// TOML file with the order rate and the fault schedule (see docs/DEMO.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Orders per second.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
    /// Inject a fault (`KIND[@TIME]`, repeatable); replaces the default schedule. Headless
    /// runs also read `KIND` lines from stdin and inject them at once.
    #[arg(long = "fault", value_name = "KIND[@TIME]", value_parser = parse_fault)]
    pub faults: Vec<ScheduledFault>,
    /// Inject no faults (a clean run: no fault found, no flow alert raised); faults asked
    /// for on stdin are still injected.
    #[arg(long, conflicts_with = "faults")]
    pub no_faults: bool,
    /// Format of the headless summary.
    #[arg(long, value_enum, default_value_t)]
    pub format: SummaryFormat,
}

fn parse_fault(flag: &str) -> Result<ScheduledFault, String> {
    parse_fault_flag(flag).map_err(|error| error.to_string())
}

/// Runs `causeway demo`.
pub async fn run(args: Args, database: &Database) -> anyhow::Result<()> {
    let Some(db) = database.sqlite_path() else {
        bail!(
            "the demo recreates its own SQLite file: --db must be a file path such as demo.db, \
             not {database}"
        );
    };
    if args.headless {
        crate::logging::to_stderr();
    } else {
        crate::logging::to_file(&super::tui::log_path(database))?;
    }
    let file = match &args.config {
        Some(path) => Some(DemoConfig::load(path)?),
        None => None,
    };
    let rate = check_rate(
        args.rate
            .or(file.as_ref().and_then(|f| f.rate))
            .unwrap_or(DEFAULT_RATE),
    )?;
    let run_length = if args.headless {
        args.duration
    } else {
        INTERACTIVE_SCHEDULE
    };
    let hooks = flow_rules::demo_hooks(file.as_ref().map_or(&[][..], |f| &f.hooks[..]))?;
    let schedule = if args.no_faults {
        Vec::new()
    } else if !args.faults.is_empty() {
        args.faults.clone()
    } else if let Some(faults) = file.and_then(|f| f.faults) {
        faults
    } else {
        default_schedule(run_length)
    };

    fresh_database(db).await?;
    let collector = start_collector(db, &hooks).await?;
    let endpoint = format!("http://{}", collector.grpc_addr());
    let (transport, bus) = match &args.kafka {
        Some(brokers) => (Transport::kafka(brokers)?, None),
        None => {
            let bus = Bus::new();
            (Transport::Embedded(bus.clone()), Some(bus))
        }
    };
    let transport_name = if args.kafka.is_some() {
        "kafka"
    } else {
        "embedded"
    };
    let lag = LagFeed::start(db, bus, args.kafka.as_deref(), &hooks).await?;
    let telemetry = ShopTelemetry::otlp(&endpoint)?;
    let started = Instant::now();
    let running = shop::start(ShopConfig { rate, schedule }, transport, telemetry)
        .await
        .context("cannot start the shop")?;

    if args.headless {
        eprintln!(
            "causeway demo: {transport_name} bus, collector on {} (otlp grpc) and {} (otlp http), database {}, running {}",
            collector.grpc_addr(),
            collector.http_addr(),
            db.display(),
            humantime::format_duration(args.duration)
        );
        let board = running.board().clone();
        // A plain thread: a blocking read of stdin cannot be cancelled, and the thread ends
        // with the process.
        std::thread::spawn(move || faults_from_stdin(&board));
        tokio::select! {
            _ = tokio::time::sleep(args.duration) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("causeway demo: interrupted, summarising"),
        }
    } else {
        let options = causeway_tui::RunOptions::default();
        causeway_tui::run(database, options)
            .await
            .map_err(anyhow::Error::from)?;
    }

    let report = running.stop(DRAIN_QUIET, DRAIN_LIMIT).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    // Let the lag and flow rules see the recovered groups before stopping them.
    wait_for_resolution(db).await;
    lag.stop().await;
    collector.shutdown().await;
    if !args.headless {
        let faults: Vec<String> = report
            .injected
            .iter()
            .map(|f| {
                let target = f.correlation_id.as_deref().or(f.group.as_deref());
                format!("{} ({})", f.kind.as_str(), clean(target.unwrap_or("-")))
            })
            .collect();
        eprintln!(
            "causeway demo: {} orders; faults injected: {}; database kept at {} \
             (try: causeway --db {} flows --errors)",
            report.orders,
            if faults.is_empty() {
                "none".to_owned()
            } else {
                faults.join(", ")
            },
            db.display(),
            db.display()
        );
        return Ok(());
    }

    let store = Store::open_read_only(db)
        .await
        .with_context(|| format!("cannot open {} to summarise", db.display()))?;
    let summary = summary::summarise(&store, transport_name, duration_ms, report).await?;
    store.close().await;
    let output = match args.format {
        SummaryFormat::Json => {
            let mut text = serde_json::to_string_pretty(&summary).context("cannot encode json")?;
            text.push('\n');
            text
        }
        SummaryFormat::Text => summary::text(&summary),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write the summary to stdout")?;
    if !summary.missing.is_empty() {
        let names: Vec<&str> = summary.missing.iter().map(|f| f.kind.as_str()).collect();
        bail!(
            "{} injected fault(s) not found: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// Headless, faults can be asked for on demand: one `KIND[@TIME]` per line on stdin is
/// applied to the next order (the time is ignored).
fn faults_from_stdin(board: &causeway_demo::board::FaultBoard) {
    for line in std::io::stdin().lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        match parse_fault_flag(&line) {
            Ok(fault) => {
                eprintln!("causeway demo: injecting {} now", fault.kind.as_str());
                board.request(fault);
            }
            Err(error) => eprintln!("causeway demo: {error}"),
        }
    }
}

/// Deletes the demo database (and its WAL files) so the run starts fresh, then creates it
/// stamped as the demo's. Refuses to replace anything the demo did not create: another
/// program's file, or a database a collector filled.
async fn fresh_database(db: &Path) -> anyhow::Result<()> {
    // Never delete a file a collector is writing; the lock is let go before the demo's own
    // collector takes it.
    let _lock = WriterLock::acquire(db)?;
    match database_owner(db).with_context(|| format!("cannot read {}", db.display()))? {
        DatabaseOwner::Nobody | DatabaseOwner::Demo => {}
        DatabaseOwner::NotSqlite => bail!(
            "refusing to replace {}: not an SQLite database (the demo recreates its --db file)",
            db.display()
        ),
        DatabaseOwner::Other => bail!(
            "refusing to replace {}: it holds data the demo did not write; run the demo on \
             another file (causeway --db demo.db demo) or delete it first",
            db.display()
        ),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot delete {}", Path::new(&path).display()));
            }
        }
    }
    let store = Store::open(db)
        .await
        .with_context(|| format!("cannot create {}", db.display()))?;
    store
        .mark_as_demo()
        .await
        .with_context(|| format!("cannot stamp {} as the demo's", db.display()))?;
    store.close().await;
    Ok(())
}

/// Starts the collector on the default loopback ports, or free ones when they are taken,
/// with the demo's flow rules and hooks.
async fn start_collector(db: &Path, hooks: &[RawHook]) -> anyhow::Result<RunningCollector> {
    let mut config = CollectorConfig {
        db: db.to_owned().into(),
        flows: flow_rules::demo_flows_config(),
        ..CollectorConfig::default()
    };
    config.lag.hooks = hooks.to_vec();
    config.metrics.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    match Collector::start(&config).await {
        Ok(collector) => Ok(collector),
        Err(CollectorError::Bind { addr, .. }) => {
            tracing::info!(%addr, "default otlp port taken, using free ports");
            config.otlp.grpc = SocketAddr::from(([127, 0, 0, 1], 0));
            config.otlp.http = SocketAddr::from(([127, 0, 0, 1], 0));
            Collector::start(&config)
                .await
                .context("cannot start the collector")
        }
        Err(error) => Err(error).context("cannot start the collector"),
    }
}

/// While an alert fires (a slow consumer's, a dead letter's), waits a bounded while for it to
/// resolve, so the summary and the hooks see the whole life cycle.
async fn wait_for_resolution(db: &Path) {
    let Ok(store) = Store::open_read_only(db).await else {
        return;
    };
    let deadline = Instant::now() + RESOLUTION_LIMIT;
    while Instant::now() < deadline {
        match store.alerts(1_000).await {
            Ok(alerts)
                if alerts
                    .iter()
                    .all(|a| a.status != AlertStatus::Firing.name()) =>
            {
                break;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "cannot read alerts");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    store.close().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn help_says_the_database_is_recreated() {
        use clap::Args as _;
        let mut command = Args::augment_args(clap::Command::new("demo"));
        let help = command.render_long_help().to_string();
        assert!(help.contains("is deleted and recreated"), "{help}");
    }

    #[tokio::test]
    async fn fresh_database_replaces_only_the_demos_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db");
        let wal = dir.path().join("demo.db-wal");
        // A collector's database (not stamped) must survive.
        Store::open(&db).await.unwrap().close().await;
        let error = fresh_database(&db).await.unwrap_err();
        assert!(format!("{error:#}").contains("did not write"), "{error:#}");
        assert!(db.exists(), "somebody's database is left alone");
        std::fs::remove_file(&db).unwrap();
        // Any other file is refused too.
        std::fs::write(&db, b"my notes\n").unwrap();
        assert!(fresh_database(&db).await.is_err(), "not a database");
        std::fs::remove_file(&db).unwrap();
        // Nothing there, or an empty file: created and stamped.
        std::fs::write(&db, b"").unwrap();
        fresh_database(&db).await.unwrap();
        assert_eq!(database_owner(&db).unwrap(), DatabaseOwner::Demo);
        // The demo's own database (with a stale WAL) is replaced.
        std::fs::write(&wal, b"stale").unwrap();
        fresh_database(&db).await.unwrap();
        assert_eq!(database_owner(&db).unwrap(), DatabaseOwner::Demo);
        assert!(!wal.exists() || std::fs::read(&wal).unwrap() != b"stale");
        // Not even the demo's own database while a collector writes it.
        let held = WriterLock::acquire(&db).unwrap();
        let error = fresh_database(&db).await.unwrap_err();
        assert!(
            format!("{error:#}").contains("another collector"),
            "{error:#}"
        );
        assert_eq!(database_owner(&db).unwrap(), DatabaseOwner::Demo);
        drop(held);
        fresh_database(&db).await.unwrap();
    }
}
