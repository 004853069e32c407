-- Studies: recruiting posts, membership (with history), applications, bans, bookmarks,
-- reviews and the notification inbox. Dates are ISO 'YYYY-MM-DD' text (they sort as text);
-- instants are Unix milliseconds.
CREATE TABLE studies (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    leader_id BIGINT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,                  -- lower-cased title, for case-insensitive search
    description TEXT NOT NULL,                -- markdown source
    capacity BIGINT NOT NULL,                 -- members including the leader
    member_count BIGINT NOT NULL,             -- kept by the Study actor in the same transaction
    status TEXT NOT NULL,                     -- recruiting | in_progress | completed
    recruit_opens_on TEXT NOT NULL,
    recruit_closes_on TEXT NOT NULL,
    starts_on TEXT NOT NULL,
    ends_on TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX studies_deadline ON studies (recruit_closes_on, id);
CREATE INDEX studies_leader ON studies (leader_id);

CREATE TABLE study_tags (
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (study_id, tag)
);
CREATE INDEX study_tags_tag ON study_tags (tag, study_id);

-- One row per (study, user) ever a member; left_at is set when they leave or are removed,
-- so reviews can reach people who belonged before.
CREATE TABLE memberships (
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,                       -- leader | member
    joined_at BIGINT NOT NULL,
    left_at BIGINT,
    PRIMARY KEY (study_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE applications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message TEXT NOT NULL,
    status TEXT NOT NULL,                     -- pending | accepted | rejected | withdrawn
    reason TEXT,
    created_at BIGINT NOT NULL,
    decided_at BIGINT
);
-- At most one open application per user and study, enforced by the database too.
CREATE UNIQUE INDEX applications_one_pending ON applications (study_id, user_id) WHERE status = 'pending';
CREATE INDEX applications_user ON applications (user_id);

CREATE TABLE study_bans (
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (study_id, user_id)
);

CREATE TABLE bookmarks (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, study_id)
);

CREATE TABLE reviews (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    author_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reviewee_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rating BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (study_id, author_id, reviewee_id)
);
CREATE INDEX reviews_reviewee ON reviews (reviewee_id);

CREATE TABLE notifications (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,                    -- JSON object
    created_at BIGINT NOT NULL,
    read_at BIGINT
);
CREATE INDEX notifications_user ON notifications (user_id, id);
