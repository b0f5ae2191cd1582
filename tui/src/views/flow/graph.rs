//! The event graph as route lines: `producer ─▶ topic ─▶ group ▶ service`, one line per
//! topic and consumer group, with hop timings, the group's completeness, anomaly marks
//! and the critical path emphasised. Services with no messaging get a line of their own.

use std::collections::HashSet;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::sanitize;
use crate::theme::Theme;
use crate::views::format;
use causeway_flow::{Flow, NodeKind, Outcome};

/// Longest name drawn for one node.
const NODE_WIDTH: usize = 24;

/// One route: the nodes on it, in order (producers, topic, group, consuming service).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    producers: Vec<usize>,
    topic: Option<usize>,
    group: Option<usize>,
    consumer: Option<usize>,
}

impl Route {
    fn contains(&self, node: usize) -> bool {
        self.producers.contains(&node)
            || self.topic == Some(node)
            || self.group == Some(node)
            || self.consumer == Some(node)
    }
}

/// The graph lines that fit in `area`, scrolled so the selected node's route is visible.
pub fn graph_lines(flow: &Flow, selected: usize, theme: &Theme, area: Rect) -> Vec<Line<'static>> {
    let routes = routes(flow);
    let marks = Marks::of(flow);
    let height = usize::from(area.height).max(1);
    let width = usize::from(area.width);
    let focus = routes
        .iter()
        .position(|route| route.contains(selected))
        .unwrap_or(0);
    let first = focus.saturating_sub(height - 1);
    routes
        .iter()
        .skip(first)
        .take(height)
        .map(|route| route_line(flow, route, selected, &marks, theme, width))
        .collect()
}

fn routes(flow: &Flow) -> Vec<Route> {
    let nodes = &flow.graph.nodes;
    let kind = |index: usize| nodes.get(index).map(|node| node.kind);
    // One pass over the edges: who publishes to each topic, which groups read it, and
    // which service each group runs in.
    let mut producers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut consumer: Vec<Option<usize>> = vec![None; nodes.len()];
    for edge in &flow.graph.edges {
        match (kind(edge.from), kind(edge.to)) {
            (Some(NodeKind::Service), Some(NodeKind::Topic)) => producers[edge.to].push(edge.from),
            (Some(NodeKind::Topic), Some(NodeKind::ConsumerGroup)) => {
                groups[edge.from].push(edge.to)
            }
            (Some(NodeKind::ConsumerGroup), Some(NodeKind::Service)) => {
                consumer[edge.from].get_or_insert(edge.to);
            }
            _ => {}
        }
    }
    let mut routes = Vec::new();
    let mut placed = vec![false; nodes.len()];
    for (topic, node) in nodes.iter().enumerate() {
        if node.kind != NodeKind::Topic {
            continue;
        }
        placed[topic] = true;
        for producer in &producers[topic] {
            placed[*producer] = true;
        }
        if groups[topic].is_empty() {
            routes.push(Route {
                producers: producers[topic].clone(),
                topic: Some(topic),
                group: None,
                consumer: None,
            });
            continue;
        }
        for group in &groups[topic] {
            placed[*group] = true;
            if let Some(service) = consumer[*group] {
                placed[service] = true;
            }
            routes.push(Route {
                producers: producers[topic].clone(),
                topic: Some(topic),
                group: Some(*group),
                consumer: consumer[*group],
            });
        }
    }
    for (index, _) in placed.iter().enumerate().filter(|(_, placed)| !**placed) {
        let route = match kind(index) {
            Some(NodeKind::ConsumerGroup) => Route {
                producers: Vec::new(),
                topic: None,
                group: Some(index),
                consumer: None,
            },
            _ => Route {
                producers: vec![index],
                topic: None,
                group: None,
                consumer: None,
            },
        };
        routes.push(route);
    }
    routes
}

/// Node names on the critical path and touched by faults (facts do not mark a node).
struct Marks<'a> {
    critical: HashSet<(NodeKind, &'a str)>,
    anomalous: HashSet<(NodeKind, &'a str)>,
}

impl<'a> Marks<'a> {
    fn of(flow: &'a Flow) -> Marks<'a> {
        let names = |steps: &mut dyn Iterator<Item = usize>| {
            let mut set = HashSet::new();
            for step in steps.filter_map(|index| flow.steps.get(index)) {
                set.insert((NodeKind::Service, step.service.as_str()));
                if let Some(topic) = &step.topic {
                    set.insert((NodeKind::Topic, topic.as_str()));
                }
                if let Some(group) = &step.consumer_group {
                    set.insert((NodeKind::ConsumerGroup, group.as_str()));
                }
            }
            set
        };
        Marks {
            critical: names(&mut flow.critical_path.segments.iter().map(|s| s.step)),
            anomalous: names(
                &mut flow
                    .anomalies
                    .iter()
                    .filter(|a| a.is_fault())
                    .flat_map(|a| a.steps.iter().copied()),
            ),
        }
    }
}

fn route_line(
    flow: &Flow,
    route: &Route,
    selected: usize,
    marks: &Marks<'_>,
    theme: &Theme,
    width: usize,
) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let node_span = |index: usize| -> Span<'static> {
        let Some(node) = flow.graph.nodes.get(index) else {
            return Span::raw("?");
        };
        let key = (node.kind, node.name.as_str());
        let name = sanitize::fit(&node.name, NODE_WIDTH);
        let mark = if marks.anomalous.contains(&key) {
            "!"
        } else {
            ""
        };
        let text = match node.kind {
            NodeKind::Service => format!("{name}{mark}"),
            NodeKind::Topic => format!("⟦{name}⟧{mark}"),
            NodeKind::ConsumerGroup => format!("⟨{name}⟩{mark}"),
        };
        let style: Style = if index == selected {
            theme.selected
        } else if marks.critical.contains(&key) {
            theme.critical
        } else if mark.is_empty() {
            theme.text
        } else {
            theme.warn
        };
        Span::styled(text, style)
    };
    for (position, producer) in route.producers.iter().enumerate() {
        if position > 0 {
            spans.push(Span::styled(",", theme.muted));
        }
        spans.push(node_span(*producer));
    }
    if let Some(topic) = route.topic {
        if !route.producers.is_empty() {
            spans.push(Span::styled(" ─▶ ", theme.link));
        }
        spans.push(node_span(topic));
    }
    if let Some(group) = route.group {
        if route.topic.is_some() {
            spans.push(Span::styled(" ─▶ ", theme.link));
        }
        spans.push(node_span(group));
        if let Some(consumer) = route.consumer {
            spans.push(Span::styled(" ▶ ", theme.muted));
            spans.push(node_span(consumer));
        }
        spans.extend(hop_spans(flow, route, theme));
    } else if route.topic.is_some() {
        spans.push(Span::styled("  (no consumer seen)", theme.muted));
    }
    fit_line(spans, width)
}

/// Timings and completeness of the route's group on the route's topic.
fn hop_spans(flow: &Flow, route: &Route, theme: &Theme) -> Vec<Span<'static>> {
    let name = |index: Option<usize>| {
        index
            .and_then(|index| flow.graph.nodes.get(index))
            .map(|node| node.name.as_str())
    };
    let (Some(topic), Some(group)) = (name(route.topic), name(route.group)) else {
        return Vec::new();
    };
    let on_route = |event: usize| {
        flow.events
            .get(event)
            .is_some_and(|event| event.topic.as_deref() == Some(topic))
    };
    let hops: Vec<_> = flow
        .hops
        .iter()
        .filter(|hop| hop.consumer_group == group && on_route(hop.event))
        .collect();
    let max_wait = hops.iter().filter_map(|hop| hop.queue_wait_ns).max();
    let max_processing = hops.iter().map(|hop| hop.processing_ns).max();
    let (mut done, mut failed, mut waiting, mut total) = (0, 0, 0, 0);
    for verdict in flow
        .verdicts
        .iter()
        .filter(|verdict| verdict.consumer_group == group && on_route(verdict.event))
    {
        total += 1;
        match verdict.outcome {
            Outcome::Processed | Outcome::RetriedThenProcessed | Outcome::Received => done += 1,
            Outcome::Failed | Outcome::DeadLettered => failed += 1,
            Outcome::NotSeenYet => waiting += 1,
        }
    }
    let mut spans = vec![Span::raw("  ")];
    if let Some(wait) = max_wait {
        spans.push(Span::styled(
            format!("wait {} ", format::duration(wait)),
            theme.queue_wait,
        ));
    }
    if let Some(processing) = max_processing {
        spans.push(Span::styled(
            format!("proc {} ", format::duration(processing)),
            theme.muted,
        ));
    }
    let (text, style) = if failed > 0 {
        (format!("✗ {done}/{total} ({failed} failed)"), theme.error)
    } else if waiting > 0 {
        (format!("… {done}/{total} ({waiting} waiting)"), theme.warn)
    } else {
        (format!("✓ {done}/{total}"), theme.ok)
    };
    spans.push(Span::styled(text, style));
    spans
}

/// Cuts a line of spans to `width` cells, ending in an ellipsis when cut.
fn fit_line(spans: Vec<Span<'static>>, width: usize) -> Line<'static> {
    let mut used = 0;
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let cells = span.width();
        if used + cells <= width {
            used += cells;
            out.push(span);
            continue;
        }
        let room = width.saturating_sub(used);
        out.push(Span::styled(sanitize::fit(&span.content, room), span.style));
        break;
    }
    Line::from(out)
}
