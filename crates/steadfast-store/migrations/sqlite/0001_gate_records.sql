-- The retry gate: one row per target, updated in place with a compare-and-set on `version`.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE gate_records (
    target_type           TEXT    NOT NULL,
    target_id             TEXT    NOT NULL,
    attempts              INTEGER NOT NULL CHECK (attempts >= 0),
    window_retries        INTEGER NOT NULL CHECK (window_retries >= 0),
    window_start_ms       INTEGER,
    early_retry_used      BOOLEAN NOT NULL,
    early_requested       BOOLEAN NOT NULL,
    last_attempt_ms       INTEGER,
    last_success_ms       INTEGER,
    next_allowed_ms       INTEGER,
    last_early_granted_ms INTEGER,
    last_error            TEXT,
    policy                TEXT    NOT NULL,
    version               INTEGER NOT NULL CHECK (version >= 1),
    created_ms            INTEGER NOT NULL,
    updated_ms            INTEGER NOT NULL,
    PRIMARY KEY (target_type, target_id)
) WITHOUT ROWID;
