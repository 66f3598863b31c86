-- The retry gate: one row per target, updated in place with a compare-and-set on `version`.
-- Times are milliseconds since the Unix epoch.
CREATE TABLE gate_records (
    target_type           TEXT    NOT NULL,
    target_id             TEXT    NOT NULL,
    attempts              BIGINT  NOT NULL CHECK (attempts >= 0),
    window_retries        BIGINT  NOT NULL CHECK (window_retries >= 0),
    window_start_ms       BIGINT,
    early_retry_used      BOOLEAN NOT NULL,
    early_requested       BOOLEAN NOT NULL,
    last_attempt_ms       BIGINT,
    last_success_ms       BIGINT,
    next_allowed_ms       BIGINT,
    last_early_granted_ms BIGINT,
    last_error            TEXT,
    policy                JSONB   NOT NULL,
    version               BIGINT  NOT NULL CHECK (version >= 1),
    created_ms            BIGINT  NOT NULL,
    updated_ms            BIGINT  NOT NULL,
    PRIMARY KEY (target_type, target_id)
);
