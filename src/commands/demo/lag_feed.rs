//! Lag for the demo: the embedded bus's offsets as lag samples, and the collector's lag
//! service (rules, alerts) evaluating them, or polling the real broker with `--kafka`.

use std::time::Duration;

use anyhow::Context;
use causeway_collector::alerting::hook_config::RawHook;
use causeway_collector::lag::config::{LagConfig, RawRule};
use causeway_collector::lag::service::LagService;
use causeway_demo::bus::{Bus, LagSnapshot};
use causeway_storage::now_ns;
use causeway_storage::{LagSample, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `source` of samples taken from the embedded bus.
pub const BUS_SOURCE: &str = "demo-bus";
/// How often lag is sampled and the rules evaluated.
pub const LAG_INTERVAL: Duration = Duration::from_secs(1);
/// The demo's lag rule: a group is late once messages wait this many deep or this long.
pub const RULE_NAME: &str = "demo-consumer-lag";

/// The demo's lag settings: one rule over every group, quick to fire and to resolve so a
/// short run shows the whole alert life cycle.
pub fn demo_lag_config() -> LagConfig {
    LagConfig {
        interval: Some(humantime::format_duration(LAG_INTERVAL).to_string()),
        rules: vec![RawRule {
            name: Some(RULE_NAME.to_owned()),
            warn_messages: Some(12),
            err_messages: Some(60),
            warn_after: Some("3s".to_owned()),
            err_after: Some("10s".to_owned()),
            window: Some("30s".to_owned()),
            resolve_after: Some("2s".to_owned()),
            ..RawRule::default()
        }],
        ..LagConfig::default()
    }
}

/// A bus lag observation as the lag poller would have stored it.
pub fn to_sample(snapshot: &LagSnapshot, sampled_ns: i64) -> LagSample {
    LagSample {
        sampled_ns,
        consumer_group: snapshot.group.clone(),
        topic: snapshot.topic.clone(),
        partition: snapshot.partition,
        committed_offset: Some(snapshot.committed_offset),
        low_watermark: Some(snapshot.low_watermark),
        high_watermark: Some(snapshot.high_watermark),
        lag: Some(snapshot.lag_messages()),
        members: Some(1),
        source: BUS_SOURCE.to_owned(),
    }
}

/// The running lag tasks; stop them with [`LagFeed::stop`].
pub struct LagFeed {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    store: Store,
}

impl LagFeed {
    /// Starts the lag service over `db`, telling `hooks`, and, for the embedded bus, a
    /// sampler feeding it.
    pub async fn start(
        db: &std::path::Path,
        bus: Option<Bus>,
        kafka: Option<&str>,
        hooks: &[RawHook],
    ) -> anyhow::Result<LagFeed> {
        let store = Store::open(db)
            .await
            .with_context(|| format!("cannot open {} for lag samples", db.display()))?;
        let mut config = demo_lag_config();
        config.hooks = hooks.to_vec();
        let settings = config.validate().context("invalid demo lag settings")?;
        let service = LagService::new(store.clone(), settings, kafka)
            .context("cannot start the lag service")?;
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(bus) = bus {
            tasks.push(tokio::spawn(sample_bus(
                bus,
                store.clone(),
                stopped.clone(),
            )));
        }
        tasks.push(service.spawn(stopped));
        Ok(LagFeed { stop, tasks, store })
    }

    /// Stops sampling and evaluating, and closes the store handle.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.store.close().await;
    }
}

async fn sample_bus(bus: Bus, store: Store, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(LAG_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let now = now_ns();
        let samples: Vec<LagSample> = bus
            .lag_snapshot()
            .iter()
            .map(|s| to_sample(s, now))
            .collect();
        if let Err(error) = store.write_lag_samples(&samples).await {
            tracing::warn!(%error, "cannot store bus lag samples");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn demo_rules_validate() {
        let settings = demo_lag_config().validate().unwrap();
        assert_eq!(settings.interval, LAG_INTERVAL);
        assert_eq!(settings.rules.len(), 1);
        assert_eq!(settings.rules[0].name, RULE_NAME);
    }

    #[test]
    fn snapshot_becomes_a_sample() {
        let snapshot = LagSnapshot {
            group: "shipping".into(),
            topic: "payments".into(),
            partition: 2,
            committed_offset: 3,
            low_watermark: 0,
            high_watermark: 10,
            next_record_timestamp_ms: Some(5),
        };
        let sample = to_sample(&snapshot, 42);
        assert_eq!(sample.lag, Some(7));
        assert_eq!((sample.sampled_ns, sample.partition), (42, 2));
        assert_eq!(sample.source, BUS_SOURCE);
    }
}
