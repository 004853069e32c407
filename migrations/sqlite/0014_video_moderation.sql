-- A study call's moderation (the leader's mutes and locks, with who is allowed past them),
-- written before the leader's request is acknowledged, so a restart of the room or the
-- server does not lift them mid-call. The room owns the JSON; it deletes the row when the
-- call is over (the leader ended it, or the room stopped empty).
CREATE TABLE video_moderation (
    study_id BIGINT PRIMARY KEY REFERENCES studies (id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
