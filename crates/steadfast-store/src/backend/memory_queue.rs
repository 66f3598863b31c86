//! The retry queue in memory: the same rules as the SQL stores, under one mutex.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use super::{MemoryStore, StoreFuture};
use crate::clock::{from_ms, to_ms};
use crate::queue::{
    AttemptRecord, DeadLetter, DeadLetterFilter, Leased, Leases, Message as LiveMessage,
    MessageFilter, NewMessage, QueueStore, TopicStats,
};

/// Queued messages and dead letters.
#[derive(Debug, Default)]
pub(crate) struct Messages {
    next_id: i64,
    next_dead: i64,
    live: BTreeMap<i64, Message>,
    dead: BTreeMap<i64, DeadLetter>,
}

#[derive(Debug, Clone)]
struct Message {
    new: NewMessage,
    attempts: u32,
    visible_at_ms: i64,
    leased: bool,
    history: Vec<AttemptRecord>,
}

impl Messages {
    fn bury(&mut self, id: i64, reason: String, died_at_ms: i64) -> Option<i64> {
        let m = self.live.remove(&id)?;
        self.next_dead += 1;
        let dead = DeadLetter {
            id: self.next_dead,
            message_id: id,
            topic: m.new.topic,
            dedupe_key: m.new.dedupe_key,
            payload: m.new.payload,
            attempts: m.attempts,
            max_attempts: m.new.max_attempts,
            enqueued_at: from_ms(m.new.enqueued_at_ms),
            died_at: from_ms(died_at_ms),
            reason,
            history: m.history,
        };
        self.dead.insert(dead.id, dead);
        Some(self.next_dead)
    }

    /// Stores a message: `(id, true)`, or the live message of its topic with its dedupe key
    /// and `false`.
    fn insert(&mut self, message: NewMessage) -> (i64, bool) {
        if let Some(key) = &message.dedupe_key
            && let Some((id, _)) = self.live.iter().find(|(_, m)| {
                m.new.topic == message.topic && m.new.dedupe_key.as_ref() == Some(key)
            })
        {
            return (*id, false);
        }
        self.next_id += 1;
        let m = Message {
            attempts: 0,
            visible_at_ms: message.visible_at_ms,
            leased: false,
            history: Vec::new(),
            new: message,
        };
        self.live.insert(self.next_id, m);
        (self.next_id, true)
    }

    fn leased_for(&mut self, id: i64, attempt: u32) -> Option<&mut Message> {
        self.live
            .get_mut(&id)
            .filter(|m| m.leased && m.attempts == attempt)
    }
}

impl Messages {
    /// The dead letters `filter` names, oldest first, up to its limit.
    fn picked<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> impl Iterator<Item = &'a DeadLetter> + 'a {
        self.dead
            .values()
            .filter(|d| {
                filter.id.is_none_or(|id| id == d.id)
                    && filter.topic.as_ref().is_none_or(|t| *t == d.topic)
                    && filter.older_than.is_none_or(|at| d.died_at < at)
            })
            .take(filter.limit.map_or(usize::MAX, |n| n as usize))
    }

    fn picked_ids(&self, filter: &DeadLetterFilter) -> Vec<i64> {
        self.picked(filter).map(|d| d.id).collect()
    }
}

impl MemoryStore {
    fn queue<T>(&self, f: impl FnOnce(&mut Messages) -> T) -> T {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut q)
    }
}

impl QueueStore for MemoryStore {
    fn enqueue<'a>(&'a self, messages: &'a [NewMessage]) -> StoreFuture<'a, Vec<(i64, bool)>> {
        let r = self.queue(|q| messages.iter().map(|m| q.insert(m.clone())).collect());
        Box::pin(async move { Ok(r) })
    }

    fn lease<'a>(
        &'a self,
        topic: &'a str,
        n: u32,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreFuture<'a, Leases> {
        let r = self.queue(|q| {
            let mut buried = 0;
            let mut ready: Vec<(i64, i64)> = q
                .live
                .iter()
                .filter(|(_, m)| m.new.topic == topic && m.visible_at_ms <= now_ms)
                .map(|(id, m)| (m.visible_at_ms, *id))
                .collect();
            ready.sort_unstable();
            let mut out = Vec::new();
            for (_, id) in ready {
                if out.len() >= n as usize {
                    break;
                }
                let Some(m) = q.live.get_mut(&id) else {
                    continue;
                };
                if m.leased {
                    m.history.push(AttemptRecord {
                        attempt: m.attempts,
                        at_ms: m.visible_at_ms,
                        error: "lease expired".into(),
                    });
                    if m.attempts >= m.new.max_attempts {
                        let reason = format!("{} attempts failed; last: lease expired", m.attempts);
                        q.bury(id, reason, now_ms);
                        buried += 1;
                        continue;
                    }
                }
                m.attempts += 1;
                m.leased = true;
                m.visible_at_ms = until_ms;
                out.push(Leased {
                    id,
                    topic: m.new.topic.clone(),
                    dedupe_key: m.new.dedupe_key.clone(),
                    payload: m.new.payload.clone(),
                    attempt: m.attempts,
                    max_attempts: m.new.max_attempts,
                    enqueued_at_ms: m.new.enqueued_at_ms,
                });
            }
            Leases {
                leased: out,
                buried,
            }
        });
        Box::pin(async move { Ok(r) })
    }

    fn ack<'a>(&'a self, leases: &'a [(i64, u32)]) -> StoreFuture<'a, Vec<(i64, u32)>> {
        let r = self.queue(|q| {
            leases
                .iter()
                .filter(|&&(id, attempt)| {
                    q.leased_for(id, attempt).is_some() && q.live.remove(&id).is_some()
                })
                .copied()
                .collect()
        });
        Box::pin(async move { Ok(r) })
    }

    fn extend(&self, id: i64, attempt: u32, until_ms: i64) -> StoreFuture<'_, bool> {
        let r = self.queue(|q| match q.leased_for(id, attempt) {
            Some(m) => {
                m.visible_at_ms = until_ms;
                true
            }
            None => false,
        });
        Box::pin(async move { Ok(r) })
    }

    fn retry_later<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        visible_at_ms: i64,
    ) -> StoreFuture<'a, bool> {
        let r = self.queue(|q| match q.leased_for(id, failure.attempt) {
            Some(m) => {
                m.history.push(failure.clone());
                m.leased = false;
                m.visible_at_ms = visible_at_ms;
                true
            }
            None => false,
        });
        Box::pin(async move { Ok(r) })
    }

    fn bury<'a>(
        &'a self,
        id: i64,
        failure: &'a AttemptRecord,
        reason: &'a str,
    ) -> StoreFuture<'a, Option<i64>> {
        let r = self.queue(|q| {
            q.leased_for(id, failure.attempt)?
                .history
                .push(failure.clone());
            q.bury(id, reason.to_owned(), failure.at_ms)
        });
        Box::pin(async move { Ok(r) })
    }

    fn dead_letters<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
    ) -> StoreFuture<'a, Vec<DeadLetter>> {
        let r = self.queue(|q| q.picked(filter).cloned().collect());
        Box::pin(async move { Ok(r) })
    }

    fn redrive<'a>(
        &'a self,
        filter: &'a DeadLetterFilter,
        now_ms: i64,
        max_attempts: &'a (dyn Fn(&DeadLetter) -> u32 + Sync),
    ) -> StoreFuture<'a, u64> {
        let r = self.queue(|q| {
            let mut moved = 0;
            for id in q.picked_ids(filter) {
                let Some(d) = q.dead.get(&id) else { continue };
                let message = NewMessage {
                    max_attempts: max_attempts(d),
                    topic: d.topic.clone(),
                    dedupe_key: d.dedupe_key.clone(),
                    payload: d.payload.clone(),
                    visible_at_ms: now_ms,
                    enqueued_at_ms: to_ms(d.enqueued_at),
                };
                // A live message with its dedupe key: it stays a dead letter.
                if q.insert(message).1 {
                    q.dead.remove(&id);
                    moved += 1;
                }
            }
            moved
        });
        Box::pin(async move { Ok(r) })
    }

    fn purge<'a>(&'a self, filter: &'a DeadLetterFilter) -> StoreFuture<'a, u64> {
        let r = self.queue(|q| {
            let ids = q.picked_ids(filter);
            ids.iter().filter(|id| q.dead.remove(id).is_some()).count() as u64
        });
        Box::pin(async move { Ok(r) })
    }

    fn stats<'a>(
        &'a self,
        topic: Option<&'a str>,
        now_ms: i64,
    ) -> StoreFuture<'a, Vec<TopicStats>> {
        let r = self.queue(|q| {
            let mut by: BTreeMap<String, TopicStats> = BTreeMap::new();
            let wanted = |t: &str| topic.is_none_or(|w| w == t);
            for m in q.live.values().filter(|m| wanted(&m.new.topic)) {
                let s = by.entry(m.new.topic.clone()).or_default();
                let at = from_ms(m.new.enqueued_at_ms);
                s.oldest_at = Some(s.oldest_at.map_or(at, |o| o.min(at)));
                if m.visible_at_ms <= now_ms {
                    s.ready += 1;
                    let since = from_ms(m.visible_at_ms);
                    s.ready_since = Some(s.ready_since.map_or(since, |o| o.min(since)));
                } else if m.leased {
                    s.leased += 1;
                } else {
                    s.scheduled += 1;
                }
            }
            for d in q.dead.values().filter(|d| wanted(&d.topic)) {
                by.entry(d.topic.clone()).or_default().dead += 1;
            }
            by.into_iter()
                .map(|(topic, mut s)| {
                    s.topic = topic;
                    s
                })
                .collect()
        });
        Box::pin(async move { Ok(r) })
    }

    fn messages<'a>(&'a self, filter: &'a MessageFilter) -> StoreFuture<'a, Vec<LiveMessage>> {
        let r = self.queue(|q| {
            q.live
                .iter()
                .filter(|(id, m)| {
                    filter.id.is_none_or(|want| want == **id)
                        && filter.topic.as_ref().is_none_or(|t| *t == m.new.topic)
                })
                .take(filter.limit.map_or(usize::MAX, |n| n as usize))
                .map(|(id, m)| LiveMessage {
                    id: *id,
                    topic: m.new.topic.clone(),
                    dedupe_key: m.new.dedupe_key.clone(),
                    payload: m.new.payload.clone(),
                    attempts: m.attempts,
                    max_attempts: m.new.max_attempts,
                    leased: m.leased,
                    visible_at: from_ms(m.visible_at_ms),
                    enqueued_at: from_ms(m.new.enqueued_at_ms),
                    history: m.history.clone(),
                })
                .collect()
        });
        Box::pin(async move { Ok(r) })
    }

    fn purge_messages<'a>(&'a self, topic: &'a str) -> StoreFuture<'a, u64> {
        let r = self.queue(|q| {
            let before = q.live.len();
            q.live.retain(|_, m| m.leased || m.new.topic != topic);
            (before - q.live.len()) as u64
        });
        Box::pin(async move { Ok(r) })
    }
}
