-- Keyset pagination of the lists (issue 10): each page is an index range scan.
CREATE INDEX tokens_by_name ON tokens (name, id);
CREATE INDEX api_keys_by_app_time ON api_keys (app_id, created_at, id);
CREATE INDEX notification_channels_by_time ON notification_channels (created_at, id);
CREATE INDEX deliveries_by_channel_time ON deliveries (channel_id, at, id);
CREATE INDEX audit_events_by_time_id ON audit_events (at, id);
