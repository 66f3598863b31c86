-- The retry queue: one row per message until it is acked or dead-lettered. A message is
-- leased by pushing `visible_at_ms` past now and counting the delivery in `attempts`; the
-- pair (id, attempts) names one lease, so an ack or nack from a lease that expired matches
-- nothing. Times are milliseconds since the Unix epoch; `history` is a JSON array.
CREATE TABLE queue_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    topic           TEXT    NOT NULL,
    dedupe_key      TEXT,
    payload         BLOB    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    INTEGER NOT NULL CHECK (max_attempts >= 1),
    visible_at_ms   INTEGER NOT NULL,
    leased          BOOLEAN NOT NULL DEFAULT FALSE,
    enqueued_at_ms  INTEGER NOT NULL,
    history         TEXT    NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX queue_messages_dedupe ON queue_messages (topic, dedupe_key)
    WHERE dedupe_key IS NOT NULL;
CREATE INDEX queue_messages_ready ON queue_messages (topic, visible_at_ms, id);

-- What could not succeed, with its whole history, until redriven or purged.
CREATE TABLE dead_letters (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      INTEGER NOT NULL,
    topic           TEXT    NOT NULL,
    dedupe_key      TEXT,
    payload         BLOB    NOT NULL,
    attempts        INTEGER NOT NULL,
    enqueued_at_ms  INTEGER NOT NULL,
    died_at_ms      INTEGER NOT NULL,
    reason          TEXT    NOT NULL,
    history         TEXT    NOT NULL
);
CREATE INDEX dead_letters_topic ON dead_letters (topic, id);
CREATE INDEX dead_letters_died ON dead_letters (died_at_ms);
