-- A dead letter keeps the deliveries its topic allowed, so a redrive without the policy
-- file (the CLI's) gives it as many again. Earlier dead letters get their attempts.
ALTER TABLE dead_letters ADD COLUMN max_attempts INTEGER;
UPDATE dead_letters SET max_attempts = attempts;
