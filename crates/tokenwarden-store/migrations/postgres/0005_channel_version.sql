-- A channel's version, as apps and tokens have: a change is written only over the version it
-- read, so two concurrent edits of one channel never lose each other's fields (issue 15).
ALTER TABLE notification_channels ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
