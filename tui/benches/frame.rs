//! Dashboard benchmark (prints figures): frame time for a 500-node flow at 200×60, key to
//! paint, the flows list over 100,000 correlations, and the process's peak memory.
//!
//! Run with `cargo bench -p causeway-tui --bench frame`. `CAUSEWAY_BENCH_CORRELATIONS`
//! changes the size of the generated store (cached under the target directory).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use causeway_flow::{FlowOptions, Topology, reconstruct};
use causeway_storage::{EncodedSpans, SCHEMA_VERSION, Store};
use causeway_tui::data::Reader;
use causeway_tui::keymap;
use causeway_tui::model::FlowSpans;
use causeway_tui::state::{Action, Loaded, Request, State, update};
use causeway_tui::theme::Theme;
use causeway_tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const FRAMES: usize = 2_000;
const WIDTH: u16 = 200;
const HEIGHT: u16 = 60;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    frame_times();
    runtime.block_on(flows_list());
    println!(
        "memory: peak RSS of this process {:.1} MiB (target ≤ 64 MiB for the dashboard)",
        peak_rss_kib() as f64 / 1024.0
    );
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(name: &str, samples: &mut [Duration], target: Option<Duration>) {
    let p50 = percentile(samples, 0.50);
    let p99 = percentile(samples, 0.99);
    let max = percentile(samples, 1.0);
    let verdict = match target {
        Some(target) if p99 <= target => format!("  (target p99 ≤ {target:?}: met)"),
        Some(target) => format!("  (target p99 ≤ {target:?}: MISSED)"),
        None => String::new(),
    };
    println!(
        "{name}: n={} p50={:.3}ms p99={:.3}ms max={:.3}ms{verdict}",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

/// A state showing a 500-node chain flow.
fn big_flow_state() -> State {
    let spans = support::chain_flow(1, 167, support::BASE_NS);
    let flow = reconstruct(&spans, &Topology::new(), &FlowOptions::default());
    println!(
        "flow: {} graph nodes, {} steps, {} hops",
        flow.graph.nodes.len(),
        flow.steps.len(),
        flow.hops.len()
    );
    let mut state = State::new("bench.db", (WIDTH, HEIGHT));
    update(&mut state, Action::StartCommand);
    for c in "flow chain-1".chars() {
        update(&mut state, Action::Input(c));
    }
    update(&mut state, Action::Submit);
    update(
        &mut state,
        Action::Loaded(Loaded::Flow(Box::new(FlowSpans {
            id: "chain-1".to_owned(),
            spans,
            flow,
            truncated: false,
        }))),
    );
    state
}

fn frame_times() {
    let theme = Theme::colored();
    let mut state = big_flow_state();
    let mut terminal = Terminal::new(TestBackend::new(WIDTH, HEIGHT)).unwrap();
    // Frames alternate the selected node so that every frame has something to redraw.
    let mut samples = Vec::with_capacity(FRAMES);
    for frame in 0..FRAMES {
        let action = if frame % 2 == 0 {
            Action::Right
        } else {
            Action::Left
        };
        update(&mut state, action);
        let started = Instant::now();
        terminal.draw(|f| views::draw(f, &state, &theme)).unwrap();
        samples.push(started.elapsed());
    }
    report(
        "frame, 500-node flow, graph pane, 200x60",
        &mut samples,
        Some(Duration::from_millis(4)),
    );

    update(&mut state, Action::NextPane);
    let mut samples = Vec::with_capacity(FRAMES);
    let mut key_to_paint = Vec::with_capacity(FRAMES);
    for frame in 0..FRAMES {
        let code = if frame % 400 < 200 {
            KeyCode::Char('j')
        } else {
            KeyCode::Char('k')
        };
        let started = Instant::now();
        let action =
            keymap::action_for(KeyEvent::new(code, KeyModifiers::NONE), state.mode).unwrap();
        update(&mut state, action);
        let painted = Instant::now();
        terminal.draw(|f| views::draw(f, &state, &theme)).unwrap();
        samples.push(painted.elapsed());
        key_to_paint.push(started.elapsed());
    }
    report(
        "frame, 500-node flow, waterfall pane, 200x60",
        &mut samples,
        Some(Duration::from_millis(4)),
    );
    report(
        "key to paint (keymap + update + draw)",
        &mut key_to_paint,
        Some(Duration::from_millis(16)),
    );
}

fn bench_db() -> PathBuf {
    let count: u32 = std::env::var("CAUSEWAY_BENCH_CORRELATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);
    // The name carries the schema version, so that a store cached by an older build is not
    // read with newer queries.
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tui-bench-schema{SCHEMA_VERSION}-{count}.db"))
}

async fn flows_list() {
    let path = bench_db();
    let count: u32 = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    if !path.exists() {
        let started = Instant::now();
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let store = Store::open(&partial).await.unwrap();
        let mut batch = Vec::new();
        for flow in 0..count {
            let base = support::BASE_NS + i64::from(flow) * 10_000_000;
            batch.extend(support::shop_flow(flow + 1, base).into_iter().take(2));
            if batch.len() >= 20_000 {
                store
                    .write_spans(vec![EncodedSpans::encode(&batch)])
                    .await
                    .unwrap();
                batch.clear();
            }
        }
        store
            .write_spans(vec![EncodedSpans::encode(&batch)])
            .await
            .unwrap();
        store.close().await;
        std::fs::rename(&partial, &path).unwrap();
        println!(
            "generated {count} correlations in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    let store = Store::open_read_only(&path).await.unwrap();
    let limit = usize::from(HEIGHT - 3);
    let cases: &[(&str, &str, usize)] = &[
        ("flows list, newest window, cold summaries", "", 0),
        ("flows list, window at offset 50,000", "", 50_000),
        ("flows list, last window", "", count as usize - limit),
        (
            "flows list, filter matching one flow (correlation id)",
            "ord-77777",
            0,
        ),
        (
            "flows list, filter matching every flow (service)",
            "order",
            0,
        ),
        (
            "flows list, filter matching nothing (scans all)",
            "no-such-thing",
            0,
        ),
    ];
    for (name, filter, offset) in cases {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        for _ in 0..5 {
            let mut reader = Reader::new(store.clone());
            let request = Request::Flows {
                filter: (*filter).to_owned(),
                offset: *offset,
                limit,
            };
            let started = Instant::now();
            let answer = reader.answer(request.clone()).await;
            cold.push(started.elapsed());
            assert!(matches!(answer, Loaded::Flows { .. }), "{name}: {answer:?}");
            for _ in 0..5 {
                let started = Instant::now();
                reader.answer(request.clone()).await;
                warm.push(started.elapsed());
            }
        }
        report(&format!("{name}, new reader"), &mut cold, None);
        report(&format!("{name}, refresh"), &mut warm, None);
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}
