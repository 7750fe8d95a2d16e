//! Helpers for the in-memory tables the core and the adapters keep per call,
//! keyed by the identifiers of [`crate::ids`].

use std::collections::HashMap;
use std::hash::Hash;

/// Gives a map's memory back once it holds a quarter of what it has room
/// for. A `HashMap` never shrinks by itself, so after a burst of 50,000
/// calls the gateway's indexes kept ~100 MB of empty slots. Shrinking to
/// twice the length leaves room to grow again, and a map must lose three
/// quarters of its entries between two shrinks, so the rehashing is
/// amortised. Call it after removing entries.
pub fn shrink<K: Eq + Hash, V>(map: &mut HashMap<K, V>) {
    const SMALL: usize = 64;
    if map.capacity() > SMALL && map.len() * 4 < map.capacity() {
        map.shrink_to((map.len() * 2).max(SMALL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_gives_memory_back_once_a_quarter_full() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|n| (n, n)).collect();
        assert!(map.capacity() >= 10_000);
        // More than a quarter used: left alone.
        map.retain(|n, _| *n < 4_000);
        shrink(&mut map);
        assert!(map.capacity() >= 10_000, "{}", map.capacity());
        // Under a quarter: room for twice the length, no more.
        map.retain(|n, _| *n < 100);
        shrink(&mut map);
        assert!((200..1_000).contains(&map.capacity()), "{}", map.capacity());
        map.clear();
        shrink(&mut map);
        assert!(map.capacity() >= 64);
    }
}
