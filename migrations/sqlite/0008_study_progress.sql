-- When a study first went in progress and when it completed: reviews are between people who
-- were members together in that period (see the review rule in the store).
ALTER TABLE studies ADD COLUMN progress_started_at BIGINT;
ALTER TABLE studies ADD COLUMN completed_at BIGINT;
-- Studies that are past recruiting already: their period is taken from what is recorded.
UPDATE studies SET progress_started_at = created_at WHERE status IN ('in_progress', 'completed');
UPDATE studies SET completed_at = updated_at WHERE status = 'completed';
