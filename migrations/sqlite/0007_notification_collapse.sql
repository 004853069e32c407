-- Repeated notifications of one kind from one person about one thing (an applicant applying
-- again, a member mentioning someone over and over) collapse into the one unread row with the
-- same collapse key instead of piling up; read ones are never touched.
ALTER TABLE notifications ADD COLUMN collapse_key TEXT;
CREATE UNIQUE INDEX notifications_collapse ON notifications (user_id, collapse_key)
    WHERE read_at IS NULL AND collapse_key IS NOT NULL;
