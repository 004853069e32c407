-- Scheduled jobs (src/jobs/): the last run of each job, and what the study jobs have done so
-- that running one twice changes nothing the second time.
CREATE TABLE job_runs (
    job TEXT PRIMARY KEY,                     -- orphan_sweep | session_purge | recruitment_close | study_reminders
    last_started_at BIGINT NOT NULL,
    last_finished_at BIGINT,                  -- null until the first run finishes
    last_ok BOOLEAN,                          -- null until the first run finishes
    last_detail TEXT NOT NULL DEFAULT ''      -- what the last finished run did, or its error
);

-- The deadline the recruitment-close job last closed recruitment for: a leader who reopens
-- recruitment is not closed again until the deadline moves.
ALTER TABLE studies ADD COLUMN recruit_closed_for TEXT;
-- When the members were told the study starts (once per study).
ALTER TABLE studies ADD COLUMN start_reminded_at BIGINT;
-- Studies still recruiting past their deadline when this ships were kept open by their
-- leaders (nothing closed them before): they count as reopened, so the first run does not
-- close them all at once. Dates are UTC, as the job reads them.
UPDATE studies SET recruit_closed_for = recruit_closes_on
    WHERE status = 'recruiting' AND recruit_closes_on < date('now');
CREATE INDEX studies_recruiting_deadline ON studies (recruit_closes_on, id) WHERE status = 'recruiting';
CREATE INDEX studies_start_reminder ON studies (starts_on, id) WHERE start_reminded_at IS NULL;
