-- A per-row version for tasks and posts, bumped by every write that changes what a task or
-- post event carries (a task's post count, a post's attachment count included). Edits are
-- conditional on the version they read, so concurrent partial edits merge instead of the
-- later one overwriting the earlier with stale fields, and live events carry it so the
-- `Study` actor never forwards an older state after a newer one.
ALTER TABLE tasks ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE posts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
