-- A message is dead-lettered at most once: keep the first dead letter of any message that
-- has more (written before burying took the message's row in the same statement), then let
-- the index refuse a second.
DELETE FROM dead_letters
WHERE id IN (SELECT d.id FROM dead_letters d
             WHERE EXISTS (SELECT 1 FROM dead_letters e
                           WHERE e.message_id = d.message_id AND e.id < d.id));
CREATE UNIQUE INDEX dead_letters_message ON dead_letters (message_id);
