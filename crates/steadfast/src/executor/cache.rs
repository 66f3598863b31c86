//! The key cache: sharded, read-copy-update tables of entries, bounded by a second-chance
//! sweep, each entry re-resolved when the policies' generation moves; in front of it, each
//! thread's few most recent keys.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use hashbrown::HashTable;

use super::bind::Bound;
use super::{Inner, SHARDS};
use crate::key::{Key, KeyError};

/// One shard of the key cache: entries found by a hash computed once per lookup.
///
/// Read-copy-update: readers `load` the table (no lock, no shared counter to bump); writers,
/// one at a time per shard, copy it to insert or sweep and store the copy. The cache is read
/// on every call and written once per new key.
#[derive(Debug, Default)]
pub(super) struct Shard {
    pub(super) table: ArcSwap<HashTable<Arc<Entry>>>,
    writer: Mutex<()>,
}

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) key: Key,
    hash: u64,
    pub(super) bound: ArcSwap<Bound>,
    generation: AtomicU64,
    touched: AtomicBool,
}

impl Inner {
    pub(super) fn shard(&self, hash: u64) -> &Shard {
        // The table uses the hash's low bits; the shard takes high ones.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// The cached entry of `key`, made (and the cache swept) if absent.
    pub(super) fn entry(&self, key: &str) -> Result<Arc<Entry>, KeyError> {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let found = |e: &Arc<Entry>| e.key.as_str() == key;
        if let Some(e) = shard.table.load().find(hash, found) {
            return Ok(e.clone());
        }
        let parsed = Key::parse(key)?;
        let generation = self.generation.load(Ordering::Acquire);
        let plan = self.policies.load().resolve(key).plan().clone();
        let entry = Arc::new(Entry {
            key: parsed,
            hash,
            bound: ArcSwap::from_pointee(self.bind(plan, None)),
            generation: AtomicU64::new(generation),
            touched: AtomicBool::new(true),
        });
        let _writer = shard.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = shard.table.load_full();
        if let Some(e) = current.find(hash, found) {
            return Ok(e.clone()); // another thread made it meanwhile
        }
        let mut map = (*current).clone();
        if map.len() >= self.shard_cap {
            let before = map.len();
            // Second chance: keep what was used since the last sweep, clearing its mark.
            map.retain(|e| e.touched.swap(false, Ordering::Relaxed));
            if map.len() >= self.shard_cap
                && let Some(victim) = map.iter().next().cloned()
                && let Ok(slot) = map.find_entry(victim.hash, |e| Arc::ptr_eq(e, &victim))
            {
                slot.remove();
            }
            self.len.fetch_sub(before - map.len(), Ordering::Relaxed);
        }
        map.insert_unique(hash, entry.clone(), |e| e.hash);
        shard.table.store(Arc::new(map));
        self.len.fetch_add(1, Ordering::Relaxed);
        Ok(entry)
    }

    /// The entry's plan under the policies in force, re-resolved if they changed (keeping
    /// the state of strategies whose options did not change).
    pub(super) fn current(&self, entry: &Entry) -> Arc<Bound> {
        if !entry.touched.load(Ordering::Relaxed) {
            entry.touched.store(true, Ordering::Relaxed);
        }
        let generation = self.generation.load(Ordering::Acquire);
        if entry.generation.load(Ordering::Acquire) == generation {
            return entry.bound.load_full();
        }
        let plan = self
            .policies
            .load()
            .resolve(entry.key.as_str())
            .plan()
            .clone();
        let previous = entry.bound.load();
        let bound = if Arc::ptr_eq(&previous.plan, &plan) {
            Arc::clone(&previous)
        } else {
            Arc::new(self.bind(plan, Some(&previous)))
        };
        entry.bound.store(bound.clone());
        entry.generation.store(generation, Ordering::Release);
        bound
    }
}

/// How many keys each thread remembers.
const RECENT: usize = 4;

/// A key this thread resolved: the plan it had under one generation of one executor.
struct Recent {
    executor: u64,
    generation: u64,
    entry: Arc<Entry>,
    bound: Arc<Bound>,
}

/// A thread's most recent keys, replaced in turn.
struct Recents {
    slots: [Option<Recent>; RECENT],
    next: usize,
}

thread_local! {
    static RECENTS: RefCell<Recents> = const {
        RefCell::new(Recents {
            slots: [None, None, None, None],
            next: 0,
        })
    };
}

static EXECUTORS: AtomicU64 = AtomicU64::new(0);

/// A number no other executor of this process has.
pub(super) fn next_executor_id() -> u64 {
    EXECUTORS.fetch_add(1, Ordering::Relaxed)
}

/// `key`'s plan if this thread resolved it under `generation` of `executor`: the bytes of
/// the key and two numbers compared, where the shared cache hashes the key and loads its
/// shard's table.
#[inline]
pub(super) fn recent(executor: u64, generation: u64, key: &str) -> Option<Arc<Bound>> {
    RECENTS
        .try_with(|r| {
            let r = r.try_borrow().ok()?;
            let hit = r.slots.iter().flatten().find(|s| {
                s.executor == executor
                    && s.generation == generation
                    && same_key(s.entry.key.as_str().as_bytes(), key.as_bytes())
            })?;
            if !hit.entry.touched.load(Ordering::Relaxed) {
                hit.entry.touched.store(true, Ordering::Relaxed);
            }
            Some(hit.bound.clone())
        })
        .ok()
        .flatten()
}

/// Whether two keys are the same, compared in place 8 bytes at a time for keys of 8 to 32
/// bytes (most keys), rather than through a call to `memcmp`.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if !(8..=32).contains(&n) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    // Whole words from the start, then the last 8 bytes (which may overlap the one before).
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// Remembers `entry`'s plan under `generation` of `executor` in this thread's recent keys.
pub(super) fn remember(executor: u64, generation: u64, entry: Arc<Entry>, bound: Arc<Bound>) {
    let _ = RECENTS.try_with(|r| {
        let Ok(mut r) = r.try_borrow_mut() else {
            return;
        };
        let recent = Recent {
            executor,
            generation,
            entry,
            bound,
        };
        // The slot this key had (a new generation), else the next in turn.
        let at = r
            .slots
            .iter()
            .position(|s| {
                s.as_ref().is_some_and(|s| {
                    s.executor == executor && s.entry.key.as_str() == recent.entry.key.as_str()
                })
            })
            .unwrap_or(r.next);
        r.slots[at] = Some(recent);
        if at == r.next {
            r.next = (r.next + 1) % RECENT;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::same_key;
    use proptest::prelude::*;

    proptest! {
        /// The word-wise comparison agrees with byte-wise equality at every length, for
        /// keys that differ in one byte anywhere.
        #[test]
        fn same_key_is_equality(key in "[a-zA-Z.*]{0,40}", at in any::<prop::sample::Index>()) {
            let a = key.as_bytes();
            prop_assert!(same_key(a, a));
            if !a.is_empty() {
                let mut b = a.to_vec();
                let i = at.index(b.len());
                b[i] ^= 1;
                prop_assert_eq!(same_key(a, &b), a == b.as_slice());
                prop_assert!(!same_key(a, &b[..b.len() - 1]));
            }
        }
    }
}
