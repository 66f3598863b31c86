//! Idempotency keys on SQLite and PostgreSQL: the statements (one text for both, placeholders
//! numbered per dialect) and the `IdempotencyStore` implementation written once for both by
//! `sql_idempotency_store!`.

use super::queue_sql::numbered;
use super::sql::Dialect;

/// Every statement of the idempotency keys, in a dialect.
#[derive(Debug)]
pub(crate) struct IdempotencyStatements {
    pub(crate) forget_expired: String,
    pub(crate) insert: String,
    pub(crate) find: String,
    pub(crate) take_over: String,
    pub(crate) complete: String,
    pub(crate) release: String,
    pub(crate) purge: String,
}

/// A key whose time is up at `now` (a placeholder): expired, and not held by a live lock.
fn expired(now: &str) -> String {
    format!("expires_at_ms <= {now} AND (completed OR locked_until_ms <= {now})")
}

impl IdempotencyStatements {
    pub(crate) fn new(dialect: Dialect) -> Self {
        let p = |s: &str| numbered(dialect, s);
        IdempotencyStatements {
            forget_expired: p(&format!(
                "DELETE FROM idempotency_keys WHERE key = $1 AND {}",
                expired("$2")
            )),
            insert: p("INSERT INTO idempotency_keys
                         (key, fingerprint, token, locked_until_ms, expires_at_ms)
                       VALUES ($1, $2, 1, $3, $4)
                       ON CONFLICT (key) DO NOTHING RETURNING token"),
            find: p(
                "SELECT fingerprint, token, completed, result, locked_until_ms
                     FROM idempotency_keys WHERE key = $1",
            ),
            take_over: p("UPDATE idempotency_keys
                          SET token = token + 1, locked_until_ms = $3, expires_at_ms = $4
                          WHERE key = $1 AND token = $2 AND NOT completed
                          RETURNING token"),
            complete: p("UPDATE idempotency_keys
                         SET completed = TRUE, result = $3, expires_at_ms = $4
                         WHERE key = $1 AND token = $2 AND NOT completed"),
            release: p("DELETE FROM idempotency_keys
                        WHERE key = $1 AND token = $2 AND NOT completed"),
            purge: p(&format!(
                "DELETE FROM idempotency_keys WHERE {}",
                expired("$1")
            )),
        }
    }
}

/// Implements `IdempotencyStore` for `$store` (which has `idempotency_sql` and `begin_write`,
/// opening a write transaction, and `pool`).
macro_rules! sql_idempotency_store {
    ($store:ty, $db:ty) => {
        impl $crate::idempotency::IdempotencyStore for $store {
            fn claim<'a>(
                &'a self,
                key: &'a str,
                fingerprint: &'a str,
                now_ms: i64,
                locked_until_ms: i64,
                expires_at_ms: i64,
            ) -> $crate::backend::StoreFuture<'a, $crate::idempotency::Claimed> {
                use $crate::idempotency::Claimed;
                Box::pin(async move {
                    let q = &self.idempotency_sql;
                    let mut tx = self.begin_write().await?;
                    sqlx::query(sqlx::AssertSqlSafe(&*q.forget_expired))
                        .bind(key)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    // A holder that releases between the insert and the find frees the key:
                    // claim once more.
                    for _ in 0..3 {
                        let inserted: Option<(i64,)> =
                            sqlx::query_as(sqlx::AssertSqlSafe(&*q.insert))
                                .bind(key)
                                .bind(fingerprint)
                                .bind(locked_until_ms)
                                .bind(expires_at_ms)
                                .fetch_optional(&mut *tx)
                                .await?;
                        if let Some((token,)) = inserted {
                            tx.commit().await?;
                            return Ok(Claimed::New(token));
                        }
                        let found: Option<(String, i64, bool, Option<Vec<u8>>, i64)> =
                            sqlx::query_as(sqlx::AssertSqlSafe(&*q.find))
                                .bind(key)
                                .fetch_optional(&mut *tx)
                                .await?;
                        let Some((stored, token, completed, result, locked_until)) = found else {
                            continue;
                        };
                        let claimed = if stored != fingerprint {
                            Claimed::Mismatch
                        } else if completed {
                            Claimed::Completed(result.unwrap_or_default())
                        } else if locked_until > now_ms {
                            Claimed::InFlight
                        } else {
                            let taken: Option<(i64,)> =
                                sqlx::query_as(sqlx::AssertSqlSafe(&*q.take_over))
                                    .bind(key)
                                    .bind(token)
                                    .bind(locked_until_ms)
                                    .bind(expires_at_ms)
                                    .fetch_optional(&mut *tx)
                                    .await?;
                            // Another claim took it over first.
                            taken.map_or(Claimed::InFlight, |(t,)| Claimed::New(t))
                        };
                        tx.commit().await?;
                        return Ok(claimed);
                    }
                    Err($crate::StoreError::Unexpected(
                        "the idempotency key kept being freed and taken".into(),
                    ))
                })
            }

            fn complete<'a>(
                &'a self,
                key: &'a str,
                token: i64,
                result: &'a [u8],
                _now_ms: i64,
                expires_at_ms: i64,
            ) -> $crate::backend::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.idempotency_sql.complete))
                        .bind(key)
                        .bind(token)
                        .bind(result)
                        .bind(expires_at_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn release<'a>(
                &'a self,
                key: &'a str,
                token: i64,
            ) -> $crate::backend::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.idempotency_sql.release))
                        .bind(key)
                        .bind(token)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn purge(&self, now_ms: i64) -> $crate::backend::StoreFuture<'_, u64> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.idempotency_sql.purge))
                        .bind(now_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                })
            }
        }
    };
}

pub(crate) use sql_idempotency_store;
