//! A bounded in-memory cache for the cloud side: entries by key, each with its size in bytes;
//! when the total passes the bound, the oldest inserted go first. It only ever saves store
//! requests: every entry can be read again from the store, so replicas and restarts answer the
//! same. Which keys are safe to keep for how long is the caller's (`super::catalog`).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

/// The cache; shared between request threads.
#[derive(Debug)]
pub struct Bounded<K, V> {
    inner: Mutex<Inner<K, V>>,
    max_bytes: u64,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, (V, u64, Instant)>,
    order: VecDeque<K>,
    bytes: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Bounded<K, V> {
    /// An empty cache of at most `max_bytes` (as the callers count them).
    pub fn new(max_bytes: u64) -> Self {
        Bounded {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// The value under `k` if it was inserted at most `max_age` ago (`None`: any age).
    pub fn get(&self, k: &K, max_age: Option<std::time::Duration>) -> Option<V> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (v, _, at) = g.map.get(k)?;
        match max_age {
            Some(a) if at.elapsed() > a => None,
            _ => Some(v.clone()),
        }
    }

    /// Inserts `v` (about `bytes` bytes) under `k`, dropping the oldest entries past the bound.
    pub fn put(&self, k: K, v: V, bytes: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, b, _)) = g.map.insert(k.clone(), (v, bytes, Instant::now())) {
            g.bytes -= b;
            g.order.retain(|o| o != &k);
        }
        g.bytes += bytes;
        g.order.push_back(k);
        while g.bytes > self.max_bytes && g.order.len() > 1 {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some((_, b, _)) = g.map.remove(&old) {
                g.bytes -= b;
            }
        }
    }

    /// Entries held, and their bytes.
    pub fn usage(&self) -> (usize, u64) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.map.len(), g.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_go_first_past_the_bound_and_ages_are_honoured() {
        let c: Bounded<u32, &str> = Bounded::new(10);
        c.put(1, "a", 4);
        c.put(2, "b", 4);
        c.put(3, "c", 4);
        assert_eq!(c.get(&1, None), None);
        assert_eq!(c.get(&2, None), Some("b"));
        assert_eq!(c.usage(), (2, 8));
        c.put(2, "B", 4);
        assert_eq!((c.get(&2, None), c.usage()), (Some("B"), (2, 8)));
        assert_eq!(c.get(&3, Some(std::time::Duration::ZERO)), None);
        assert_eq!(
            c.get(&3, Some(std::time::Duration::from_secs(60))),
            Some("c")
        );
    }
}
