//! The retry queue on SQLite and PostgreSQL: the statements (one text per dialect) and the
//! `QueueStore` implementation written once for both by `sql_queue_store!`.
//!
//! A lease names itself by `(id, attempts)`: every statement that answers one checks both
//! and `leased`, so the answer of a consumer whose lease expired (and was leased again, which
//! counted another attempt) changes nothing.

use super::sql::Dialect;

/// Rows one batched statement carries at most (6 parameters each: PostgreSQL takes 65 535,
/// SQLite 32 766).
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// `sql` with its `$n` placeholders in `dialect`'s form: PostgreSQL's `$n` as written,
/// SQLite's `?n` (JSON paths such as `'$[#]'` keep their `$`).
pub(crate) fn numbered(dialect: Dialect, sql: &str) -> String {
    if dialect == Dialect::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let placeholder = c == '$' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if placeholder { '?' } else { c });
    }
    out
}

/// Every statement of the queue, in a dialect.
#[derive(Debug)]
pub(crate) struct QueueStatements {
    pub(crate) insert: String,
    pub(crate) find_dedupe: String,
    pub(crate) bury_expired: String,
    /// The second statement of burying expired leases (`None`: `bury_expired` deletes).
    pub(crate) delete_expired: Option<String>,
    pub(crate) lease: String,
    pub(crate) extend: String,
    pub(crate) retry_later: String,
    pub(crate) bury: String,
    /// Whether `bury` deletes the row itself (else `delete` follows it).
    pub(crate) bury_deletes: bool,
    pub(crate) delete: String,
    pub(crate) dead_letters: String,
    pub(crate) redrive: String,
    pub(crate) delete_dead: String,
    pub(crate) purge: String,
    pub(crate) stats: String,
    pub(crate) stats_dead: String,
    pub(crate) messages: String,
    pub(crate) purge_messages: String,
    /// `LIMIT` for "no limit".
    pub(crate) no_limit: i64,
}

impl QueueStatements {
    pub(crate) fn new(dialect: Dialect) -> Self {
        let pg = dialect == Dialect::Postgres;
        let p = |s: &str| numbered(dialect, s);
        // Appends a JSON value (an expression) to the history.
        let append = |value: &str| -> String {
            if pg {
                format!("history || jsonb_build_array({value})")
            } else {
                format!("json_insert(history, '$[#]', {value})")
            }
        };
        let object = if pg {
            "jsonb_build_object"
        } else {
            "json_object"
        };
        let expired = format!(
            "{object}('attempt', attempts, 'at_ms', visible_at_ms, 'error', 'lease expired')"
        );
        let param_json = |n: u8| {
            if pg {
                format!("${n}::jsonb")
            } else {
                format!("json(${n})")
            }
        };
        let history_out = if pg { "history::text" } else { "history" };
        let skip_locked = if pg { " FOR UPDATE SKIP LOCKED" } else { "" };
        // A missing filter field is NULL; the casts give PostgreSQL its parameters' types.
        let filter = "(CAST($1 AS BIGINT) IS NULL OR id = $1)
                      AND (CAST($2 AS TEXT) IS NULL OR topic = $2)
                      AND (CAST($3 AS BIGINT) IS NULL OR died_at_ms < $3)";
        let exhausted =
            "topic = $1 AND leased AND visible_at_ms <= $2 AND attempts >= max_attempts";
        QueueStatements {
            insert: p("INSERT INTO queue_messages
                         (topic, dedupe_key, payload, max_attempts, visible_at_ms, enqueued_at_ms)
                       VALUES ($1, $2, $3, $4, $5, $6)
                       ON CONFLICT (topic, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
                       RETURNING id"),
            find_dedupe: p("SELECT id FROM queue_messages WHERE topic = $1 AND dedupe_key = $2"),
            // PostgreSQL buries in one statement that deletes first: the DELETE takes each
            // row's lock, so of several workers that find the same expired leases at once,
            // one buries each message and the others find it gone (read committed re-checks
            // a row it waited for). SQLite runs the pair inside BEGIN IMMEDIATE, one writer.
            bury_expired: if pg {
                p(&format!(
                    "WITH gone AS (DELETE FROM queue_messages WHERE {exhausted}
                                   RETURNING id, topic, dedupe_key, payload, attempts,
                                             max_attempts, enqueued_at_ms, visible_at_ms,
                                             history)
                     INSERT INTO dead_letters (message_id, topic, dedupe_key, payload, attempts, max_attempts,
                                               enqueued_at_ms, died_at_ms, reason, history)
                     SELECT id, topic, dedupe_key, payload, attempts, max_attempts, enqueued_at_ms, $2,
                            attempts || ' attempts failed; last: lease expired', {}
                     FROM gone",
                    append(&expired)
                ))
            } else {
                p(&format!(
                    "INSERT INTO dead_letters (message_id, topic, dedupe_key, payload, attempts, max_attempts,
                                               enqueued_at_ms, died_at_ms, reason, history)
                     SELECT id, topic, dedupe_key, payload, attempts, max_attempts, enqueued_at_ms, $2,
                            attempts || ' attempts failed; last: lease expired', {}
                     FROM queue_messages WHERE {exhausted}",
                    append(&expired)
                ))
            },
            delete_expired: (!pg)
                .then(|| p(&format!("DELETE FROM queue_messages WHERE {exhausted}"))),
            lease: p(&format!(
                "UPDATE queue_messages
                 SET attempts = attempts + 1, leased = TRUE, visible_at_ms = $3,
                     history = CASE WHEN leased THEN {} ELSE history END
                 WHERE id IN (SELECT id FROM queue_messages
                              WHERE topic = $1 AND visible_at_ms <= $2
                              ORDER BY visible_at_ms, id LIMIT $4{skip_locked})
                 RETURNING id, topic, dedupe_key, payload, attempts, max_attempts, enqueued_at_ms",
                append(&expired)
            )),
            extend: p("UPDATE queue_messages SET visible_at_ms = $3
                       WHERE id = $1 AND attempts = $2 AND leased"),
            retry_later: p(&format!(
                "UPDATE queue_messages SET leased = FALSE, visible_at_ms = $3, history = {}
                 WHERE id = $1 AND attempts = $2 AND leased",
                append(&param_json(4))
            )),
            // As `bury_expired`: on PostgreSQL the row is deleted by the statement that
            // writes its dead letter, so a late ack of the same lease and the dead letter
            // cannot both succeed.
            bury: if pg {
                p(&format!(
                    "WITH gone AS (DELETE FROM queue_messages
                                   WHERE id = $1 AND attempts = $2 AND leased
                                   RETURNING id, topic, dedupe_key, payload, attempts,
                                             max_attempts, enqueued_at_ms, history)
                     INSERT INTO dead_letters (message_id, topic, dedupe_key, payload, attempts, max_attempts,
                                               enqueued_at_ms, died_at_ms, reason, history)
                     SELECT id, topic, dedupe_key, payload, attempts, max_attempts, enqueued_at_ms, $3, $4, {}
                     FROM gone
                     RETURNING id",
                    append(&param_json(5))
                ))
            } else {
                p(&format!(
                    "INSERT INTO dead_letters (message_id, topic, dedupe_key, payload, attempts, max_attempts,
                                               enqueued_at_ms, died_at_ms, reason, history)
                     SELECT id, topic, dedupe_key, payload, attempts, max_attempts, enqueued_at_ms, $3, $4, {}
                     FROM queue_messages WHERE id = $1 AND attempts = $2 AND leased
                     RETURNING id",
                    append(&param_json(5))
                ))
            },
            bury_deletes: pg,
            delete: p("DELETE FROM queue_messages WHERE id = $1"),
            dead_letters: p(&format!(
                "SELECT id, message_id, topic, dedupe_key, payload, attempts, enqueued_at_ms,
                        died_at_ms, reason, {history_out}, COALESCE(max_attempts, attempts)
                 FROM dead_letters WHERE {filter} ORDER BY id LIMIT $4"
            )),
            redrive: p("INSERT INTO queue_messages
                          (topic, dedupe_key, payload, max_attempts, visible_at_ms, enqueued_at_ms)
                        SELECT topic, dedupe_key, payload, $2, $3, enqueued_at_ms
                        FROM dead_letters WHERE id = $1
                        ON CONFLICT (topic, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
                        RETURNING id"),
            delete_dead: p("DELETE FROM dead_letters WHERE id = $1"),
            purge: p(&format!(
                "DELETE FROM dead_letters WHERE id IN
                   (SELECT id FROM dead_letters WHERE {filter} ORDER BY id LIMIT $4)"
            )),
            stats: p("SELECT topic,
                        SUM(CASE WHEN visible_at_ms <= $1 THEN 1 ELSE 0 END),
                        SUM(CASE WHEN visible_at_ms > $1 AND NOT leased THEN 1 ELSE 0 END),
                        SUM(CASE WHEN visible_at_ms > $1 AND leased THEN 1 ELSE 0 END),
                        MIN(enqueued_at_ms),
                        MIN(CASE WHEN visible_at_ms <= $1 THEN visible_at_ms END)
                      FROM queue_messages WHERE (CAST($2 AS TEXT) IS NULL OR topic = $2)
                      GROUP BY topic ORDER BY topic"),
            stats_dead: p("SELECT topic, COUNT(*) FROM dead_letters
                           WHERE (CAST($1 AS TEXT) IS NULL OR topic = $1) GROUP BY topic"),
            messages: p(&format!(
                "SELECT id, topic, dedupe_key, payload, attempts, max_attempts, leased,
                        visible_at_ms, enqueued_at_ms, {history_out}
                 FROM queue_messages
                 WHERE (CAST($1 AS BIGINT) IS NULL OR id = $1)
                   AND (CAST($2 AS TEXT) IS NULL OR topic = $2)
                 ORDER BY id LIMIT $3"
            )),
            purge_messages: p("DELETE FROM queue_messages WHERE topic = $1 AND NOT leased"),
            no_limit: if pg { i64::MAX } else { -1 },
        }
    }
}

/// A row's history read back from its JSON; `what` and `id` name the row in the error.
pub(crate) fn history(
    json: &str,
    what: &str,
    id: i64,
) -> Result<Vec<crate::queue::AttemptRecord>, crate::StoreError> {
    serde_json::from_str(json)
        .map_err(|e| crate::StoreError::Unreadable(format!("{what} {id}: its history: {e}")))
}

/// Implements `QueueStore` for `$store` (which has `pool`, `queue_sql` and `begin_write`,
/// opening a write transaction).
macro_rules! sql_queue_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn dead_letter_args(
                filter: &$crate::queue::DeadLetterFilter,
                no_limit: i64,
            ) -> (Option<i64>, Option<String>, Option<i64>, i64) {
                (
                    filter.id,
                    filter.topic.clone(),
                    filter.older_than.map($crate::clock::to_ms),
                    filter.limit.map_or(no_limit, i64::from),
                )
            }
        }

        impl $store {
            /// One multi-row insert of `messages[i]` for each `i` in `rows` (none has a dedupe
            /// key), returning their ids.
            /// (sqlx 0.9's builder owns its arguments: topic and payload are copied.)
            fn insert_plain(
                messages: &[$crate::queue::NewMessage],
                rows: &[usize],
            ) -> sqlx::QueryBuilder<$db> {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO queue_messages (topic, dedupe_key, payload, \
                     max_attempts, visible_at_ms, enqueued_at_ms) ",
                );
                insert.push_values(rows, |mut row, &i| {
                    let m = &messages[i];
                    row.push_bind(m.topic.clone())
                        .push_bind(None::<String>)
                        .push_bind(m.payload.clone())
                        .push_bind(i64::from(m.max_attempts))
                        .push_bind(m.visible_at_ms)
                        .push_bind(m.enqueued_at_ms);
                });
                insert.push(" RETURNING id");
                insert
            }

            /// Puts the ids one `insert_plain` of `rows` returned in their places in `out`: they
            /// rise in the order of the rows (one statement draws them in order), so sorted
            /// they match.
            fn place(
                out: &mut [(i64, bool)],
                rows: &[usize],
                mut ids: Vec<(i64,)>,
            ) -> Result<(), $crate::StoreError> {
                if ids.len() != rows.len() {
                    return Err($crate::StoreError::Unexpected(format!(
                        "{} of {} messages were stored",
                        ids.len(),
                        rows.len()
                    )));
                }
                ids.sort_unstable();
                for (&i, (id,)) in rows.iter().zip(ids) {
                    out[i] = (id, true);
                }
                Ok(())
            }

            /// One delete of the messages still leased for each `(id, attempt)`, returning
            /// `(id, attempts)` of those it removed.
            fn delete_leased(leases: &[(i64, u32)]) -> sqlx::QueryBuilder<$db> {
                let mut delete = sqlx::QueryBuilder::<$db>::new(
                    "DELETE FROM queue_messages WHERE leased AND (id, attempts) IN (",
                );
                delete.push_values(leases, |mut row, &(id, attempt)| {
                    row.push_bind(id).push_bind(i64::from(attempt));
                });
                delete.push(") RETURNING id, attempts");
                delete
            }

            /// Inserts `m` (which has a dedupe key) or finds the live message holding its
            /// key. Under PostgreSQL each statement sees the latest commits, so a holder
            /// acked between the two frees the key: insert once more.
            async fn enqueue_keyed(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                m: &$crate::queue::NewMessage,
            ) -> Result<(i64, bool), $crate::StoreError> {
                let q = &self.queue_sql;
                for _ in 0..3 {
                    let id: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(&*q.insert))
                        .bind(&m.topic)
                        .bind(&m.dedupe_key)
                        .bind(&m.payload)
                        .bind(i64::from(m.max_attempts))
                        .bind(m.visible_at_ms)
                        .bind(m.enqueued_at_ms)
                        .fetch_optional(&mut **tx)
                        .await?;
                    if let Some((id,)) = id {
                        return Ok((id, true));
                    }
                    let found: Option<(i64,)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*q.find_dedupe))
                            .bind(&m.topic)
                            .bind(&m.dedupe_key)
                            .fetch_optional(&mut **tx)
                            .await?;
                    if let Some((id,)) = found {
                        return Ok((id, false));
                    }
                }
                Err($crate::StoreError::Unexpected(
                    "the dedupe key kept being freed and taken".into(),
                ))
            }
        }

        impl $crate::queue::QueueStore for $store {
            fn enqueue<'a>(
                &'a self,
                messages: &'a [$crate::queue::NewMessage],
            ) -> $crate::backend::StoreFuture<'a, Vec<(i64, bool)>> {
                Box::pin(async move {
                    let mut out = vec![(0, false); messages.len()];
                    let plain: Vec<usize> = (0..messages.len())
                        .filter(|&i| messages[i].dedupe_key.is_none())
                        .collect();
                    if plain.len() == messages.len() && plain.len() <= ROWS_PER_INSERT {
                        // One statement: atomic alone, no transaction around it.
                        let ids = Self::insert_plain(messages, &plain)
                            .build_query_as()
                            .fetch_all(&self.pool)
                            .await?;
                        Self::place(&mut out, &plain, ids)?;
                        return Ok(out);
                    }
                    let mut tx = self.begin_write().await?;
                    for chunk in plain.chunks(ROWS_PER_INSERT) {
                        let ids = Self::insert_plain(messages, chunk)
                            .build_query_as()
                            .fetch_all(&mut *tx)
                            .await?;
                        Self::place(&mut out, chunk, ids)?;
                    }
                    // With one: insert, or find the live message that holds it.
                    for (i, m) in messages.iter().enumerate() {
                        if m.dedupe_key.is_none() {
                            continue;
                        }
                        out[i] = self.enqueue_keyed(&mut tx, m).await?;
                    }
                    tx.commit().await?;
                    Ok(out)
                })
            }

            fn lease<'a>(
                &'a self,
                topic: &'a str,
                n: u32,
                now_ms: i64,
                until_ms: i64,
            ) -> $crate::backend::StoreFuture<'a, $crate::queue::Leases> {
                Box::pin(async move {
                    let q = &self.queue_sql;
                    let mut tx = self.begin_write().await?;
                    let buried = sqlx::query(sqlx::AssertSqlSafe(&*q.bury_expired))
                        .bind(topic)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if let Some(delete) = &q.delete_expired {
                        sqlx::query(sqlx::AssertSqlSafe(&**delete))
                            .bind(topic)
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let rows: Vec<(i64, String, Option<String>, Vec<u8>, i64, i64, i64)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*q.lease))
                            .bind(topic)
                            .bind(now_ms)
                            .bind(until_ms)
                            .bind(i64::from(n))
                            .fetch_all(&mut *tx)
                            .await?;
                    tx.commit().await?;
                    let mut out: Vec<$crate::queue::Leased> = rows
                        .into_iter()
                        .map(
                            |(id, topic, dedupe_key, payload, attempts, max, enqueued)| {
                                $crate::queue::Leased {
                                    id,
                                    topic,
                                    dedupe_key,
                                    payload,
                                    attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
                                    max_attempts: u32::try_from(max).unwrap_or(u32::MAX),
                                    enqueued_at_ms: enqueued,
                                }
                            },
                        )
                        .collect();
                    out.sort_by_key(|l| l.id);
                    Ok($crate::queue::Leases {
                        leased: out,
                        buried,
                    })
                })
            }

            fn ack<'a>(
                &'a self,
                leases: &'a [(i64, u32)],
            ) -> $crate::backend::StoreFuture<'a, Vec<(i64, u32)>> {
                Box::pin(async move {
                    let rows: Vec<(i64, i64)> = if leases.len() <= ROWS_PER_INSERT {
                        // One statement: atomic alone, no transaction around it.
                        Self::delete_leased(leases)
                            .build_query_as()
                            .fetch_all(&self.pool)
                            .await?
                    } else {
                        let mut rows = Vec::with_capacity(leases.len());
                        let mut tx = self.begin_write().await?;
                        for chunk in leases.chunks(ROWS_PER_INSERT) {
                            rows.extend(
                                Self::delete_leased(chunk)
                                    .build_query_as::<(i64, i64)>()
                                    .fetch_all(&mut *tx)
                                    .await?,
                            );
                        }
                        tx.commit().await?;
                        rows
                    };
                    Ok(rows
                        .into_iter()
                        .map(|(id, attempts)| (id, u32::try_from(attempts).unwrap_or(u32::MAX)))
                        .collect())
                })
            }

            fn extend(
                &self,
                id: i64,
                attempt: u32,
                until_ms: i64,
            ) -> $crate::backend::StoreFuture<'_, bool> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.queue_sql.extend))
                        .bind(id)
                        .bind(i64::from(attempt))
                        .bind(until_ms)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn retry_later<'a>(
                &'a self,
                id: i64,
                failure: &'a $crate::queue::AttemptRecord,
                visible_at_ms: i64,
            ) -> $crate::backend::StoreFuture<'a, bool> {
                Box::pin(async move {
                    let entry = serde_json::to_string(failure)
                        .map_err(|e| $crate::StoreError::Unexpected(e.to_string()))?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.queue_sql.retry_later))
                        .bind(id)
                        .bind(i64::from(failure.attempt))
                        .bind(visible_at_ms)
                        .bind(entry)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected() == 1)
                })
            }

            fn bury<'a>(
                &'a self,
                id: i64,
                failure: &'a $crate::queue::AttemptRecord,
                reason: &'a str,
            ) -> $crate::backend::StoreFuture<'a, Option<i64>> {
                Box::pin(async move {
                    let q = &self.queue_sql;
                    let entry = serde_json::to_string(failure)
                        .map_err(|e| $crate::StoreError::Unexpected(e.to_string()))?;
                    let mut tx = self.begin_write().await?;
                    let dead: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(&*q.bury))
                        .bind(id)
                        .bind(i64::from(failure.attempt))
                        .bind(failure.at_ms)
                        .bind(reason)
                        .bind(entry)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if dead.is_some() && !q.bury_deletes {
                        sqlx::query(sqlx::AssertSqlSafe(&*q.delete))
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(dead.map(|(d,)| d))
                })
            }

            fn dead_letters<'a>(
                &'a self,
                filter: &'a $crate::queue::DeadLetterFilter,
            ) -> $crate::backend::StoreFuture<'a, Vec<$crate::queue::DeadLetter>> {
                Box::pin(async move {
                    let (id, topic, older, limit) =
                        Self::dead_letter_args(filter, self.queue_sql.no_limit);
                    type Row = (
                        i64,
                        i64,
                        String,
                        Option<String>,
                        Vec<u8>,
                        i64,
                        i64,
                        i64,
                        String,
                        String,
                        i64,
                    );
                    let rows: Vec<Row> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*self.queue_sql.dead_letters))
                            .bind(id)
                            .bind(topic)
                            .bind(older)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?;
                    rows.into_iter()
                        .map(|r| {
                            let history =
                                $crate::backend::queue_sql::history(&r.9, "dead letter", r.0)?;
                            Ok($crate::queue::DeadLetter {
                                id: r.0,
                                message_id: r.1,
                                topic: r.2,
                                dedupe_key: r.3,
                                payload: r.4,
                                attempts: u32::try_from(r.5).unwrap_or(u32::MAX),
                                max_attempts: u32::try_from(r.10).unwrap_or(u32::MAX),
                                enqueued_at: $crate::clock::from_ms(r.6),
                                died_at: $crate::clock::from_ms(r.7),
                                reason: r.8,
                                history,
                            })
                        })
                        .collect()
                })
            }

            fn redrive<'a>(
                &'a self,
                filter: &'a $crate::queue::DeadLetterFilter,
                now_ms: i64,
                max_attempts: &'a (dyn Fn(&$crate::queue::DeadLetter) -> u32 + Sync),
            ) -> $crate::backend::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let q = &self.queue_sql;
                    let picked = self.dead_letters(filter).await?;
                    let mut tx = self.begin_write().await?;
                    let mut moved = 0;
                    for d in picked {
                        let back: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(&*q.redrive))
                            .bind(d.id)
                            .bind(i64::from(max_attempts(&d)))
                            .bind(now_ms)
                            .fetch_optional(&mut *tx)
                            .await?;
                        // A live message with its dedupe key: it stays a dead letter.
                        if back.is_some() {
                            sqlx::query(sqlx::AssertSqlSafe(&*q.delete_dead))
                                .bind(d.id)
                                .execute(&mut *tx)
                                .await?;
                            moved += 1;
                        }
                    }
                    tx.commit().await?;
                    Ok(moved)
                })
            }

            fn purge<'a>(
                &'a self,
                filter: &'a $crate::queue::DeadLetterFilter,
            ) -> $crate::backend::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let (id, topic, older, limit) =
                        Self::dead_letter_args(filter, self.queue_sql.no_limit);
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.queue_sql.purge))
                        .bind(id)
                        .bind(topic)
                        .bind(older)
                        .bind(limit)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                })
            }

            fn messages<'a>(
                &'a self,
                filter: &'a $crate::queue::MessageFilter,
            ) -> $crate::backend::StoreFuture<'a, Vec<$crate::queue::Message>> {
                Box::pin(async move {
                    type Row = (
                        i64,
                        String,
                        Option<String>,
                        Vec<u8>,
                        i64,
                        i64,
                        bool,
                        i64,
                        i64,
                        String,
                    );
                    let limit = filter.limit.map_or(self.queue_sql.no_limit, i64::from);
                    let rows: Vec<Row> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*self.queue_sql.messages))
                            .bind(filter.id)
                            .bind(filter.topic.as_deref())
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await?;
                    let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
                    rows.into_iter()
                        .map(|r| {
                            let history =
                                $crate::backend::queue_sql::history(&r.9, "message", r.0)?;
                            Ok($crate::queue::Message {
                                id: r.0,
                                topic: r.1,
                                dedupe_key: r.2,
                                payload: r.3,
                                attempts: n(r.4),
                                max_attempts: n(r.5),
                                leased: r.6,
                                visible_at: $crate::clock::from_ms(r.7),
                                enqueued_at: $crate::clock::from_ms(r.8),
                                history,
                            })
                        })
                        .collect()
                })
            }

            fn purge_messages<'a>(
                &'a self,
                topic: &'a str,
            ) -> $crate::backend::StoreFuture<'a, u64> {
                Box::pin(async move {
                    let done = sqlx::query(sqlx::AssertSqlSafe(&*self.queue_sql.purge_messages))
                        .bind(topic)
                        .execute(&self.pool)
                        .await?;
                    Ok(done.rows_affected())
                })
            }

            fn stats<'a>(
                &'a self,
                topic: Option<&'a str>,
                now_ms: i64,
            ) -> $crate::backend::StoreFuture<'a, Vec<$crate::queue::TopicStats>> {
                Box::pin(async move {
                    let q = &self.queue_sql;
                    let live: Vec<(String, i64, i64, i64, i64, Option<i64>)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*q.stats))
                            .bind(now_ms)
                            .bind(topic)
                            .fetch_all(&self.pool)
                            .await?;
                    let dead: Vec<(String, i64)> =
                        sqlx::query_as(sqlx::AssertSqlSafe(&*q.stats_dead))
                            .bind(topic)
                            .fetch_all(&self.pool)
                            .await?;
                    let mut by = std::collections::BTreeMap::new();
                    let n = |v: i64| u64::try_from(v).unwrap_or(0);
                    for (t, ready, scheduled, leased, oldest, ready_since) in live {
                        by.insert(
                            t.clone(),
                            $crate::queue::TopicStats {
                                topic: t,
                                ready: n(ready),
                                scheduled: n(scheduled),
                                leased: n(leased),
                                dead: 0,
                                oldest_at: Some($crate::clock::from_ms(oldest)),
                                ready_since: ready_since.map($crate::clock::from_ms),
                            },
                        );
                    }
                    for (t, count) in dead {
                        by.entry(t.clone())
                            .or_insert_with(|| $crate::queue::TopicStats {
                                topic: t,
                                ..Default::default()
                            })
                            .dead = n(count);
                    }
                    Ok(by.into_values().collect())
                })
            }
        }
    };
}

pub(crate) use sql_queue_store;
