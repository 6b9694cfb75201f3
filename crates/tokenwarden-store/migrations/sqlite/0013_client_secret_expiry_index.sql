-- Client secrets expire too (issue 12): the reminders coming up list them by their expiry, and
-- /metrics counts and labels the soonest (issue 13), each an index range like the refresh
-- token's `tokens_by_refresh_expiry` (0008), never the whole table.
CREATE INDEX tokens_by_client_secret_expiry ON tokens (client_secret_expires_at, id);
