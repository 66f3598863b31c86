//! Idempotency keys in Redis: one hash per key, every transition one Lua script (atomic on
//! the server), so processes on many hosts share the keys.

use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

use super::StoreFuture;
use crate::StoreError;
use crate::idempotency::{Claimed, IdempotencyStore};

/// Forgets the key if its time is up (`expires` passed and no live lock), then inserts it
/// held, takes over an expired lock (token + 1), or says what it is. The hash's own `expires`
/// decides (so a caller's clock rules, as in the SQL stores); `PEXPIRE` only lets Redis
/// collect it afterwards.
const CLAIM: &str = r"
local k, fp = KEYS[1], ARGV[1]
local now, locked, expires = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ttl = math.max(1, tonumber(expires) - now)
local h = redis.call('HMGET', k, 'fp', 'token', 'done', 'result', 'locked', 'expires')
if h[1] and tonumber(h[6]) <= now and (h[3] == '1' or tonumber(h[5]) <= now) then
  redis.call('DEL', k)
  h[1] = false
end
if not h[1] then
  redis.call('HSET', k, 'fp', fp, 'token', '1', 'done', '0', 'locked', locked, 'expires', expires)
  redis.call('PEXPIRE', k, ttl)
  return {'new', '1'}
end
if h[1] ~= fp then return {'mismatch'} end
if h[3] == '1' then return {'completed', h[4]} end
if tonumber(h[5]) > now then return {'inflight'} end
local token = redis.call('HINCRBY', k, 'token', 1)
redis.call('HSET', k, 'locked', locked, 'expires', expires)
redis.call('PEXPIRE', k, ttl)
return {'new', tostring(token)}
";

/// Stores the result if the key is still held under the token.
const COMPLETE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'token', 'done')
if h[1] ~= ARGV[1] or h[2] ~= '0' then return 0 end
redis.call('HSET', KEYS[1], 'done', '1', 'result', ARGV[2], 'expires', ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[4]) - tonumber(ARGV[3])))
return 1
";

/// Deletes the key if it is still held (not completed) under the token.
const RELEASE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'token', 'done')
if h[1] ~= ARGV[1] or h[2] ~= '0' then return 0 end
return redis.call('DEL', KEYS[1])
";

/// Deletes the key if its time is up at `now`.
const PURGE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'done', 'locked', 'expires')
if not h[3] then return 0 end
local now = tonumber(ARGV[1])
if tonumber(h[3]) <= now and (h[1] == '1' or tonumber(h[2]) <= now) then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Idempotency keys in Redis (feature `redis`), under the prefix `steadfast:idem:`.
///
/// The connection reconnects by itself (`ConnectionManager`); clones share it. Redis forgets
/// keys whose time is up on its own, so [`Idempotency::purge_expired`] has little to do.
///
/// [`Idempotency::purge_expired`]: crate::idempotency::Idempotency::purge_expired
///
/// ```no_run
/// use steadfast_store::RedisStore;
/// use steadfast_store::idempotency::Idempotency;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = Idempotency::new(RedisStore::connect("redis://127.0.0.1:6379").await?);
/// # let _ = keys;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    claim: Script,
    complete: Script,
    release: Script,
    purge: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:6379/0`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Open(format!("{url}: {e}")))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| StoreError::Open(format!("{url}: {e}")))?;
        Ok(RedisStore {
            conn,
            prefix: "steadfast:idem:".to_owned(),
            claim: Script::new(CLAIM),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
            purge: Script::new(PURGE),
        })
    }

    /// Keeps keys under `prefix` instead (one per application sharing a server).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

impl IdempotencyStore for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        now_ms: i64,
        locked_until_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, Claimed> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let reply: Vec<Vec<u8>> = self
                .claim
                .key(self.key(key))
                .arg(fingerprint)
                .arg(now_ms)
                .arg(locked_until_ms)
                .arg(expires_at_ms)
                .invoke_async(&mut conn)
                .await?;
            let mut reply = reply.into_iter();
            let kind = reply.next().unwrap_or_default();
            let value = reply.next().unwrap_or_default();
            Ok(match kind.as_slice() {
                b"new" => Claimed::New(String::from_utf8_lossy(&value).parse().map_err(|_| {
                    StoreError::Unexpected("redis: a token that is no number".into())
                })?),
                b"completed" => Claimed::Completed(value),
                b"inflight" => Claimed::InFlight,
                b"mismatch" => Claimed::Mismatch,
                other => {
                    return Err(StoreError::Unexpected(format!(
                        "redis: an unknown claim {:?}",
                        String::from_utf8_lossy(other)
                    )));
                }
            })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        token: i64,
        result: &'a [u8],
        now_ms: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let done: i64 = self
                .complete
                .key(self.key(key))
                .arg(token)
                .arg(result)
                .arg(now_ms)
                .arg(expires_at_ms)
                .invoke_async(&mut conn)
                .await?;
            Ok(done == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, token: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let done: i64 = self
                .release
                .key(self.key(key))
                .arg(token)
                .invoke_async(&mut conn)
                .await?;
            Ok(done == 1)
        })
    }

    fn purge(&self, now_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut keys: Vec<String> = Vec::new();
            {
                let mut scanning = conn.clone();
                let mut scan = scanning
                    .scan_match::<_, String>(format!("{}*", self.prefix))
                    .await?;
                while let Some(k) = scan.next_item().await {
                    keys.push(k?);
                }
            }
            let mut purged = 0;
            for k in keys {
                let done: i64 = self
                    .purge
                    .key(k)
                    .arg(now_ms)
                    .invoke_async(&mut conn)
                    .await?;
                purged += u64::try_from(done).unwrap_or(0);
            }
            Ok(purged)
        })
    }
}
