//! Idempotency keys in memory: the same rules as the SQL stores, under one mutex.

use std::collections::HashMap;
use std::sync::PoisonError;

use super::{MemoryStore, StoreFuture};
use crate::idempotency::{Claimed, IdempotencyStore};

/// Keys by name.
#[derive(Debug, Default)]
pub(crate) struct Keys(HashMap<String, Key>);

#[derive(Debug)]
struct Key {
    fingerprint: String,
    token: i64,
    result: Option<Vec<u8>>,
    locked_until_ms: i64,
    expires_at_ms: i64,
}

impl Key {
    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms <= now_ms && (self.result.is_some() || self.locked_until_ms <= now_ms)
    }
}

impl MemoryStore {
    fn keys<T>(&self, f: impl FnOnce(&mut HashMap<String, Key>) -> T) -> T {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut keys.0)
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now_ms: i64,
        locked_until_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, Claimed> {
        let claimed = self.keys(|keys| {
            if keys.get(key).is_some_and(|k| k.expired(now_ms)) {
                keys.remove(key);
            }
            let Some(k) = keys.get_mut(key) else {
                let new = Key {
                    fingerprint: fingerprint.to_owned(),
                    token: 1,
                    result: None,
                    locked_until_ms,
                    expires_at_ms,
                };
                keys.insert(key.to_owned(), new);
                return Claimed::New(1);
            };
            if k.fingerprint != fingerprint {
                Claimed::Mismatch
            } else if let Some(result) = &k.result {
                Claimed::Completed(result.clone())
            } else if k.locked_until_ms > now_ms {
                Claimed::InFlight
            } else {
                k.token += 1;
                k.locked_until_ms = locked_until_ms;
                k.expires_at_ms = expires_at_ms;
                Claimed::New(k.token)
            }
        });
        Box::pin(async move { Ok(claimed) })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: i64,
        result: &'a [u8],
        _now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, bool> {
        let done = self.keys(|keys| match keys.get_mut(key) {
            Some(k) if k.token == token && k.result.is_none() => {
                k.result = Some(result.to_vec());
                k.expires_at_ms = expires_at_ms;
                true
            }
            _ => false,
        });
        Box::pin(async move { Ok(done) })
    }

    fn release<'a>(&'a self, key: &'a str, token: i64) -> StoreFuture<'a, bool> {
        let done = self.keys(|keys| {
            let held = keys
                .get(key)
                .is_some_and(|k| k.token == token && k.result.is_none());
            held && keys.remove(key).is_some()
        });
        Box::pin(async move { Ok(done) })
    }

    fn purge(&self, now_ms: i64) -> StoreFuture<'_, u64> {
        let purged = self.keys(|keys| {
            let before = keys.len();
            keys.retain(|_, k| !k.expired(now_ms));
            (before - keys.len()) as u64
        });
        Box::pin(async move { Ok(purged) })
    }
}
