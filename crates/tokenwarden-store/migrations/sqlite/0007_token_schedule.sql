-- When the background pass next has to look at each token, so that a pass selects only the
-- tokens that are due (an index range), never the whole table.
--   next_check_at: epoch ms; 0 = at once (every write to the token or its bookkeeping sets it
--                  back to 0, so the next pass looks at the new state); NULL = never, until a
--                  write (a token that cannot be used or refreshed).
--   ahead_at:      when the access token is to be refreshed ahead if the token is in use; a
--                  flush of reads brings next_check_at forward to it.
--   check_seq:     bumped by every write that resets next_check_at: the pass stores the time it
--                  computed only if nothing was written since it read the row.
ALTER TABLE tokens ADD COLUMN next_check_at BIGINT DEFAULT 0;
ALTER TABLE tokens ADD COLUMN ahead_at BIGINT;
ALTER TABLE tokens ADD COLUMN check_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tokens_by_next_check ON tokens (next_check_at, id);
