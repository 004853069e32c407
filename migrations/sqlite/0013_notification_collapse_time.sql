-- When a collapse key last notified anyone: a notice kept to one per study per interval
-- (a call starting) is checked against the store, so the gap holds across restarts of the
-- actor that sends it and across nodes.
CREATE INDEX notifications_collapse_time ON notifications (collapse_key, created_at)
    WHERE collapse_key IS NOT NULL;
