-- Co-edited post bodies. The Yrs document is the body's source of truth: a snapshot (the
-- whole state as a v1 update, covering the log up to upto_seq) plus the update log after it.
-- posts.body/body_html are a copy refreshed from the document for listing and search.
CREATE TABLE doc_updates (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,                      -- 1, 2, 3 … per post; a row may merge many updates
    data BLOB NOT NULL,                     -- a Yjs update, lib0 v1 encoding
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, seq)
);

CREATE TABLE doc_snapshots (
    post_id BIGINT PRIMARY KEY REFERENCES posts (id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    upto_seq BIGINT NOT NULL,                 -- log rows at or below this are in the snapshot
    created_at BIGINT NOT NULL
);

-- Version history: the body's text at a moment, automatic (name NULL) or named.
CREATE TABLE doc_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    name TEXT,
    body TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id) ON DELETE SET NULL,   -- NULL: taken automatically
    created_at BIGINT NOT NULL
);
CREATE INDEX doc_versions_post ON doc_versions (post_id, id);

-- Who edited the body between the previous version and this one.
CREATE TABLE doc_version_authors (
    version_id BIGINT NOT NULL REFERENCES doc_versions (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (version_id, user_id)
);

-- A locked post is read-only for everyone but the study's leader.
ALTER TABLE posts ADD COLUMN locked_at BIGINT;
