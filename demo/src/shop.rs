//! The running shop: the services as tasks, the order generator with its fault schedule,
//! and an orderly stop that lets in-flight sagas finish and exports every span.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use causeway_instrumentation::{Headers, MessageMeta, inject, start_send_span};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::board::FaultBoard;
use crate::bus::OutgoingRecord;
use crate::catalog::{FIRST_ORDER_NUMBER, Service, TOPICS, order_id, schema_of, topic_of};
use crate::faults::{FaultSchedule, InjectedFault, ScheduledFault};
use crate::handlers::place_order;
use crate::runner::{ServiceContext, ShopCounters, event_source};
use crate::telemetry::ShopTelemetry;
use crate::transport::{Transport, TransportError};

/// How a shop runs.
#[derive(Debug, Clone)]
pub struct ShopConfig {
    /// Orders per second.
    pub rate: f64,
    /// Faults to inject, by time since the start.
    pub schedule: Vec<ScheduledFault>,
}

/// What a shop did, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShopReport {
    /// Orders placed.
    pub orders: u64,
    /// Records processed by all services.
    pub processed: u64,
    /// Records published by all services.
    pub published: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Sends, receives or commits that failed.
    pub transport_errors: u64,
    /// Faults injected, in order.
    pub injected: Vec<InjectedFault>,
}

/// A shop whose services are running.
pub struct RunningShop {
    board: FaultBoard,
    counters: Arc<ShopCounters>,
    telemetry: ShopTelemetry,
    stop_orders: watch::Sender<bool>,
    stop_services: watch::Sender<bool>,
    orders: tokio::task::JoinHandle<u64>,
    services: JoinSet<()>,
}

/// Starts every service, then the order generator.
pub async fn start(
    config: ShopConfig,
    transport: Transport,
    telemetry: ShopTelemetry,
) -> Result<RunningShop, TransportError> {
    transport.create_topics(&TOPICS).await?;
    let board = FaultBoard::new();
    let counters = Arc::new(ShopCounters::default());
    let (stop_services, services_stopped) = watch::channel(false);
    let mut services = JoinSet::new();
    let context = |service: Service| ServiceContext {
        service,
        tracer: telemetry.tracer(service),
        transport: transport.clone(),
        board: board.clone(),
        counters: counters.clone(),
    };
    for service in Service::ALL {
        let consumer = transport.subscribe(service.group(), service.topics())?;
        services.spawn(context(service).run(consumer, services_stopped.clone()));
    }
    let (stop_orders, orders_stopped) = watch::channel(false);
    let orders = tokio::spawn(place_orders(
        context(Service::Order),
        config,
        orders_stopped,
    ));
    Ok(RunningShop {
        board,
        counters,
        telemetry,
        stop_orders,
        stop_services,
        orders,
        services,
    })
}

impl RunningShop {
    /// The fault board, to inject faults on demand.
    pub fn board(&self) -> &FaultBoard {
        &self.board
    }

    /// Faults injected so far.
    pub fn injected(&self) -> Vec<InjectedFault> {
        self.board.injected()
    }

    /// Stops placing orders, waits until the services have been idle for `quiet` (at most
    /// `drain`), stops them and exports every span.
    pub async fn stop(self, quiet: Duration, drain: Duration) -> ShopReport {
        let _ = self.stop_orders.send(true);
        let orders = self.orders.await.unwrap_or_default();
        let deadline = tokio::time::Instant::now() + drain;
        loop {
            let last =
                Duration::from_millis(self.counters.last_activity_ms.load(Ordering::Relaxed));
            let idle = self.board.elapsed().saturating_sub(last);
            if idle >= quiet || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.stop_services.send(true);
        let mut services = self.services;
        while services.join_next().await.is_some() {}
        let telemetry = self.telemetry.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || telemetry.shutdown()).await {
            tracing::warn!(error = %error, "span export at shutdown failed");
        }
        ShopReport {
            orders,
            processed: self.counters.processed.load(Ordering::Relaxed),
            published: self.counters.published.load(Ordering::Relaxed),
            dead_lettered: self.counters.dead_lettered.load(Ordering::Relaxed),
            transport_errors: self.counters.transport_errors.load(Ordering::Relaxed),
            injected: self.board.injected(),
        }
    }
}

/// Places orders at `config.rate` until stopped, applying faults as they fall due;
/// returns how many it placed.
async fn place_orders(
    context: ServiceContext,
    config: ShopConfig,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let mut schedule = FaultSchedule::new(config.schedule);
    let interval = Duration::from_secs_f64(1.0 / config.rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut placed = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return placed,
        }
        if *stop.borrow() {
            return placed;
        }
        let mut due = schedule.due(context.board.elapsed());
        due.extend(context.board.take_requested());
        let correlation = order_id(FIRST_ORDER_NUMBER + placed);
        let shape = context.board.apply(&due, &correlation);
        let (event_type, payload) = place_order(FIRST_ORDER_NUMBER + placed, shape);
        placed += 1;
        let mut meta = MessageMeta::new(topic_of(event_type))
            .with_key(correlation.clone())
            .with_event_type(event_type)
            .with_event_source(event_source(Service::Order))
            .with_correlation_id(correlation.clone());
        meta.data_schema = Some(schema_of(event_type));
        meta.ensure_event_id();
        let cx = start_send_span(&context.tracer, &meta, &Context::new());
        let mut headers = Headers::new();
        inject(&cx, &mut headers, &meta);
        let record = OutgoingRecord {
            topic: meta.topic.clone(),
            key: Some(correlation.clone().into_bytes()),
            payload,
            headers: headers.into_entries(),
        };
        context.send(&cx, &record).await;
        if context.board.duplicates(&correlation) {
            // The fault: the acknowledgement was lost and the producer sent it again.
            context.send(&cx, &record).await;
        }
        cx.span().end();
    }
}

#[cfg(test)]
mod tests;
