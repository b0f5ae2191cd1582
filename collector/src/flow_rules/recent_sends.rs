//! The starts of the sends whose due items this collector wrote most recently, so that a
//! consumption in a later range finds its send's item by its key at once (SQLite stores
//! the items by the send's start) instead of reading the send's span first. A hint only:
//! a send not held here is looked up through its stored span.

use std::collections::VecDeque;

use causeway_storage::SpanId;

use crate::flow_rules::evaluate::FastMap;

/// Sends held at most (about 3 MiB): at 2,000 new due items a second, almost two minutes.
pub const RECENT_SENDS: usize = 100_000;

/// The starts of up to a number of sends, the oldest forgotten first.
#[derive(Debug)]
pub struct RecentSends {
    starts: FastMap<SpanId, i64>,
    order: VecDeque<SpanId>,
    capacity: usize,
}

impl RecentSends {
    /// Holds up to `capacity` sends.
    pub fn new(capacity: usize) -> RecentSends {
        RecentSends {
            starts: FastMap::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `send`'s start, forgetting the oldest send held when full.
    pub fn remember(&mut self, send: SpanId, sent_ns: i64) {
        if self.starts.insert(send, sent_ns).is_some() {
            return;
        }
        self.order.push_back(send);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.starts.remove(&oldest);
        }
    }

    /// `send`'s start, if held.
    pub fn start_of(&self, send: SpanId) -> Option<i64> {
        self.starts.get(&send).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_send_is_forgotten_first() {
        let mut recent = RecentSends::new(2);
        recent.remember(SpanId([1; 8]), 10);
        recent.remember(SpanId([2; 8]), 20);
        recent.remember(SpanId([1; 8]), 11);
        assert_eq!(
            recent.start_of(SpanId([1; 8])),
            Some(11),
            "the latest start"
        );
        recent.remember(SpanId([3; 8]), 30);
        assert_eq!(recent.start_of(SpanId([1; 8])), None, "the oldest went");
        assert_eq!(recent.start_of(SpanId([2; 8])), Some(20));
        assert_eq!(recent.start_of(SpanId([3; 8])), Some(30));
    }
}
