-- The notifications page lists the reminders coming up (tokens by refresh-token expiry) and
-- the reminders sent lately: each an index range, never the whole table.
CREATE INDEX tokens_by_refresh_expiry ON tokens (refresh_expires_at, id);
CREATE INDEX reminders_sent_by_time ON reminders_sent (sent_at);
