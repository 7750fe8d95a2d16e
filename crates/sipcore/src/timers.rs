//! Timers as data: a deadline-ordered set of named timers. Setting a timer
//! that is already set moves it; clearing one that is not set does nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

pub(crate) struct TimerQueue<T: Clone + Eq + Hash> {
    by_deadline: BTreeMap<(Instant, u64), T>,
    by_timer: HashMap<T, (Instant, u64)>,
    seq: u64,
}

impl<T: Clone + Eq + Hash> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            by_deadline: BTreeMap::new(),
            by_timer: HashMap::new(),
            seq: 0,
        }
    }
}

impl<T: Clone + Eq + Hash> TimerQueue<T> {
    pub fn set(&mut self, timer: T, at: Instant) {
        self.clear(&timer);
        self.seq += 1;
        self.by_deadline.insert((at, self.seq), timer.clone());
        self.by_timer.insert(timer, (at, self.seq));
    }

    pub fn clear(&mut self, timer: &T) {
        if let Some(key) = self.by_timer.remove(timer) {
            self.by_deadline.remove(&key);
            stox_mapping::tables::shrink(&mut self.by_timer);
        }
    }

    pub fn next(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<T> {
        let entry = self.by_deadline.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let timer = entry.remove();
        self.by_timer.remove(&timer);
        Some(timer)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_timer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_deadline_order_and_can_move_or_go() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut q = TimerQueue::default();
        q.set("a", t0 + ms(30));
        q.set("b", t0 + ms(10));
        q.set("c", t0 + ms(20));
        q.set("a", t0 + ms(5)); // moved
        q.clear(&"c");
        assert_eq!(q.next(), Some(t0 + ms(5)));
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + ms(50)), Some("a"));
        assert_eq!(q.pop_due(t0 + ms(50)), Some("b"));
        assert_eq!(q.pop_due(t0 + ms(50)), None);
        assert_eq!(q.len(), 0);
    }
}
