-- Idempotency keys: one row per key while it is held (a call runs) or remembered (its result
-- is stored). `token` names the holder: a takeover after the lock expired bumps it, so the
-- old holder's completion matches nothing. Times are milliseconds since the Unix epoch.
CREATE TABLE idempotency_keys (
    key              TEXT    PRIMARY KEY,
    fingerprint      TEXT    NOT NULL,
    token            BIGINT  NOT NULL,
    completed        BOOLEAN NOT NULL DEFAULT FALSE,
    result           BYTEA,
    locked_until_ms  BIGINT  NOT NULL,
    expires_at_ms    BIGINT  NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at_ms);
