-- Tasks, their posts, and file attachments. File bytes live in object storage; a files row
-- is inserted only after its object is stored, in the same transaction that charges the
-- study's quota (studies.storage_bytes, a guarded counter like member_count).
ALTER TABLE studies ADD COLUMN storage_bytes BIGINT NOT NULL DEFAULT 0;

CREATE TABLE tasks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,                -- markdown source
    description_html TEXT NOT NULL,           -- rendered and sanitized once, at write time
    due_on TEXT,                              -- ISO 'YYYY-MM-DD' (sorts as text)
    assignee_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    status TEXT NOT NULL,                     -- open | done
    created_by BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX tasks_study ON tasks (study_id, due_on, id);

CREATE TABLE posts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    task_id BIGINT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    author_id BIGINT NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    title_key TEXT NOT NULL,                  -- lower-cased title, for case-insensitive search
    body TEXT NOT NULL,                       -- markdown source
    body_html TEXT NOT NULL,                  -- rendered, highlighted and sanitized at write time
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX posts_task ON posts (task_id, id);

-- post_id NULL: an attachment of the study's recruiting post.
CREATE TABLE files (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    post_id BIGINT REFERENCES posts (id) ON DELETE CASCADE,
    uploader_id BIGINT NOT NULL REFERENCES users (id),
    object_key TEXT NOT NULL UNIQUE,          -- random; never derived from the filename
    name TEXT NOT NULL,                       -- the sanitized original filename (metadata only)
    content_type TEXT NOT NULL,               -- sniffed from the bytes
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,                     -- hex
    created_at BIGINT NOT NULL
);
CREATE INDEX files_study ON files (study_id);
CREATE INDEX files_post ON files (post_id);
