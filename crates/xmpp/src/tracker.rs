//! Outstanding IQs and their deadlines.

use minidom::Element;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// Why an IQ got no result.
#[derive(Debug, Clone, PartialEq)]
pub enum IqFailure {
    /// The peer answered `<iq type='error'/>` (the whole stanza).
    Error(Element),
    /// No answer in time.
    Timeout,
    /// Never sent: the connection to the server was down longer than the
    /// offline queue keeps stanzas (or the queue was full).
    Undelivered,
}

/// Tracks IQs by id; deadlines are kept ordered so expiry is cheap.
#[derive(Default)]
pub(crate) struct IqTracker {
    /// id → its key in `by_deadline`.
    deadlines: HashMap<String, (Instant, u64)>,
    by_deadline: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

impl IqTracker {
    /// Starts tracking `el` if it is an IQ get/set with an id.
    pub fn track(&mut self, el: &Element, now: Instant, timeout: Duration) {
        if el.name() != "iq" || !matches!(el.attr("type"), Some("get" | "set")) {
            return;
        }
        let Some(id) = el.attr("id") else { return };
        self.seq += 1;
        let key = (now + timeout, self.seq);
        if let Some(old) = self.deadlines.insert(id.to_owned(), key) {
            self.by_deadline.remove(&old);
        }
        self.by_deadline.insert(key, id.to_owned());
    }

    /// If `el` answers a tracked IQ, stops tracking it and returns its id.
    pub fn answer(&mut self, el: &Element) -> Option<String> {
        if el.name() != "iq" || !matches!(el.attr("type"), Some("result" | "error")) {
            return None;
        }
        let id = el.attr("id")?;
        let key = self.deadlines.remove(id)?;
        self.by_deadline.remove(&key);
        stox_mapping::tables::shrink(&mut self.deadlines);
        Some(id.to_owned())
    }

    /// Removes and returns every IQ whose deadline has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.deadlines.remove(&id);
            expired.push(id);
        }
        stox_mapping::tables::shrink(&mut self.deadlines);
        expired
    }

    /// The earliest deadline, for the loop's sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|(d, _)| *d)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iq(kind: &str, id: &str) -> Element {
        format!("<iq xmlns='jabber:component:accept' type='{kind}' id='{id}'/>")
            .parse()
            .expect("test stanza parses")
    }

    #[test]
    fn answers_and_expires() {
        let t0 = Instant::now();
        let mut tr = IqTracker::default();
        tr.track(&iq("set", "a"), t0, Duration::from_secs(2));
        tr.track(&iq("get", "b"), t0, Duration::from_secs(1));
        tr.track(&iq("result", "c"), t0, Duration::from_secs(1));
        assert_eq!(tr.len(), 2);
        assert_eq!(tr.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(tr.answer(&iq("result", "a")), Some("a".to_owned()));
        assert_eq!(tr.answer(&iq("result", "a")), None, "answered once only");
        assert_eq!(tr.answer(&iq("set", "b")), None, "a set is not an answer");
        assert!(tr.expire(t0).is_empty());
        assert_eq!(tr.expire(t0 + Duration::from_secs(1)), vec!["b".to_owned()]);
        assert_eq!(tr.len(), 0);
        assert_eq!(tr.next_deadline(), None);
    }

    #[test]
    fn a_reused_id_keeps_only_its_new_deadline() {
        let t0 = Instant::now();
        let mut tr = IqTracker::default();
        tr.track(&iq("set", "a"), t0, Duration::from_secs(1));
        tr.track(&iq("set", "a"), t0, Duration::from_secs(5));
        assert_eq!(tr.by_deadline.len(), 1);
        assert!(tr.expire(t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(tr.expire(t0 + Duration::from_secs(5)), vec!["a".to_owned()]);
    }

    #[test]
    fn the_map_gives_memory_back_after_a_burst() {
        let t0 = Instant::now();
        let mut tr = IqTracker::default();
        for n in 0..10_000 {
            tr.track(&iq("set", &n.to_string()), t0, Duration::from_secs(1));
        }
        let full = tr.deadlines.capacity();
        for n in 0..9_990 {
            assert!(tr.answer(&iq("result", &n.to_string())).is_some());
        }
        assert!(
            tr.deadlines.capacity() * 50 < full,
            "{} of {full}",
            tr.deadlines.capacity()
        );
        assert_eq!(tr.expire(t0 + Duration::from_secs(1)).len(), 10);
    }
}
